//! A minimal HTTP/1.1 client for the deployer API (plain http on the
//! management network), so the CLI needs no HTTP stack.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

pub struct Response {
    pub status: u16,
    pub body: String,
}

pub fn request(
    base: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<Response, String> {
    request_to("the deployer", base, method, path, body)
}

/// `request` to `what` (named in errors), e.g. a node-agent.
pub fn request_to(
    what: &str,
    base: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<Response, String> {
    let authority = base
        .strip_prefix("http://")
        .ok_or(format!("URL {base} of {what} must start with http://"))?
        .trim_end_matches('/');
    let address = authority
        .to_socket_addrs()
        .map_err(|e| format!("bad address {authority} of {what}: {e}"))?
        .next()
        .ok_or(format!("{authority} resolves to nothing"))?;
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(10))
        .map_err(|e| format!("cannot reach {what} at {base}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let body = body.unwrap_or("");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body.as_bytes()))
        .map_err(|e| format!("sending to {base}: {e}"))?;
    let mut raw = String::new();
    stream
        .read_to_string(&mut raw)
        .map_err(|e| format!("reading from {base}: {e}"))?;
    let status = raw
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or(format!("{base} did not answer HTTP"))?;
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok(Response { status, body })
}

/// The `error` field of an API error body, or the body itself.
pub fn error_text(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.trim().to_owned())
}
