#![allow(clippy::unwrap_used)]

use super::*;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread::JoinHandle;

/// A server on 127.0.0.1 answering one connection per canned `answers`
/// (raw HTTP) and handing back the raw requests it read.
fn serve(answers: Vec<&'static str>) -> (String, JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        answers
            .into_iter()
            .map(|answer| {
                let (mut s, _) = listener.accept().unwrap();
                let request = read_request(&mut s);
                s.write_all(answer.as_bytes()).unwrap();
                request
            })
            .collect()
    });
    (base, server)
}

/// The head and the Content-Length bytes of body after it.
fn read_request(s: &mut impl Read) -> String {
    let mut raw = Vec::new();
    let mut buf = [0u8; 512];
    let complete = |raw: &[u8]| {
        let text = String::from_utf8_lossy(raw);
        let (head, body) = text.split_once("\r\n\r\n")?;
        let length = head
            .lines()
            .find_map(|l| {
                l.to_lowercase()
                    .strip_prefix("content-length: ")?
                    .parse()
                    .ok()
            })
            .unwrap_or(0usize);
        (body.len() >= length).then_some(())
    };
    while complete(&raw).is_none() {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "client hung up mid-request");
        raw.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(raw).unwrap()
}

#[test]
fn sends_method_path_headers_and_body_and_reads_the_answer() {
    let (base, server) = serve(vec![
        "HTTP/1.1 201 Created\r\nX-Answer: yes\r\nContent-Length: 7\r\n\r\ncreated",
    ]);
    let response = Request::post(format!("{base}/api/v1/things?x=1"))
        .header(
            HeaderName::from_static("x-asked"),
            HeaderValue::from_static("1"),
        )
        .json(r#"{"a":1}"#)
        .send_blocking()
        .unwrap();
    assert_eq!(response.status, StatusCode::CREATED);
    assert_eq!(response.headers["x-answer"], "yes");
    assert_eq!(response.text(), "created");
    let request = server.join().unwrap().remove(0).to_lowercase();
    assert!(
        request.starts_with("post /api/v1/things?x=1 http/1.1\r\n"),
        "{request}"
    );
    let authority = base.strip_prefix("http://").unwrap();
    for line in [
        format!("host: {authority}"),
        "x-asked: 1".into(),
        "content-type: application/json".into(),
        "content-length: 7".into(),
    ] {
        assert!(request.contains(&format!("\r\n{line}\r\n")), "{request}");
    }
    assert!(request.ends_with("\r\n\r\n{\"a\":1}"), "{request}");
}

#[test]
fn decodes_chunked_bodies_and_reports_bad_statuses() {
    let (base, server) = serve(vec![
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy",
    ]);
    let ok = Request::get(&base).send_blocking().unwrap();
    assert_eq!(ok.error_for_status().unwrap().text(), "abcde");
    let err = Request::delete(format!("{base}/x"))
        .send_blocking()
        .unwrap()
        .error_for_status()
        .unwrap_err();
    assert!(
        err.to_string()
            .ends_with("/x answered 503 Service Unavailable"),
        "{err}"
    );
    assert!(matches!(err, Error::Status { body, .. } if body == "busy"));
    let requests = server.join().unwrap();
    assert!(requests[0].starts_with("GET / HTTP/1.1\r\n"));
    assert!(requests[1].starts_with("DELETE /x HTTP/1.1\r\n"));
}

#[test]
fn bounds_the_body() {
    let (base, server) = serve(vec![
        "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789",
    ]);
    let err = Request::get(&base).max_body(4).send_blocking().unwrap_err();
    assert!(
        matches!(
            err,
            Error::BodyTooLarge {
                status: StatusCode::OK,
                limit: 4,
                ..
            }
        ),
        "{err}"
    );
    server.join().unwrap();
}

#[test]
fn says_what_failed() {
    // Port 0 never accepts a connection (a freed port might).
    let err = Request::get("http://127.0.0.1:0/")
        .send_blocking()
        .unwrap_err();
    assert!(err.is_connect(), "{err}");
    assert!(err
        .to_string()
        .starts_with("cannot connect to 127.0.0.1:0 (127.0.0.1:0): "));

    let err = Request::put("https://127.0.0.1/")
        .send_blocking()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "https://127.0.0.1/: only http:// is supported"
    );
    assert!(matches!(
        Request::get("http://").send_blocking().unwrap_err(),
        Error::InvalidUrl { .. }
    ));

    // A server that accepts but never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/slow", listener.local_addr().unwrap());
    let err = Request::get(&url)
        .timeout(Duration::from_millis(200))
        .send_blocking()
        .unwrap_err();
    assert!(!err.is_connect());
    assert_eq!(
        err.to_string(),
        format!("{url}: no complete answer within 200ms")
    );

    // Not HTTP at all.
    let (base, server) = serve(vec!["SSH-2.0-OpenSSH\r\n\r\n"]);
    let err = Request::get(&base).send_blocking().unwrap_err();
    assert!(matches!(err, Error::Exchange { .. }), "{err}");
    server.join().unwrap();
}

#[tokio::test]
async fn works_from_async_code_both_ways() {
    let (base, server) = serve(vec![
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb",
    ]);
    assert_eq!(Request::get(&base).send().await.unwrap().text(), "a");
    // Blocking from inside a runtime: runs on a thread of its own.
    assert_eq!(Request::get(&base).send_blocking().unwrap().text(), "b");
    server.join().unwrap();
}
