//! Health probes shared by UltraCloud's agents (the nix-agent's system
//! checks, the node-agent's instance checks). Blocking: callers in async code
//! run them on a blocking thread. Each returns why it failed. HTTP goes
//! through uc-http.

use std::net::{TcpStream, ToSocketAddrs};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `argv` with `env` added; passes on exit status 0 within `timeout`.
pub fn exec(argv: &[String], env: &[(String, String)], timeout: Duration) -> Result<(), String> {
    let (program, args) = argv.split_first().ok_or("empty command")?;
    let mut child = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(status) if status.success() => return Ok(()),
            Some(status) => return Err(format!("{} exited with {status}", argv.join(" "))),
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{} did not finish within {timeout:?}",
                    argv.join(" ")
                ));
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Connects to `host:port`.
pub fn connect(address: &str, timeout: Duration) -> Result<TcpStream, String> {
    let resolved = address
        .to_socket_addrs()
        .map_err(|e| format!("bad address {address}: {e}"))?
        .next()
        .ok_or(format!("{address} resolves to nothing"))?;
    TcpStream::connect_timeout(&resolved, timeout).map_err(|e| format!("connect {address}: {e}"))
}

/// GETs an `http://` URL; any 2xx passes.
pub fn http(url: &str, timeout: Duration) -> Result<(), String> {
    let answer = uc_http::Request::get(url)
        .connect_timeout(timeout)
        .timeout(timeout)
        // The body is read (bounded) before hanging up: a server whose
        // client vanishes mid-response logs a broken pipe on every probe.
        .max_body(1 << 20)
        .send_blocking();
    let status = match answer {
        Ok(response) => response.status,
        // Only the status counts.
        Err(uc_http::Error::BodyTooLarge { status, .. }) => status,
        Err(err) => return Err(err.to_string()),
    };
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("{url} answered {status}"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    #[test]
    fn exec_checks_exit_status_time_and_environment() {
        let t = Duration::from_secs(1);
        let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(exec(&argv(&["true"]), &[], t), Ok(()));
        assert!(exec(&argv(&["false"]), &[], t)
            .unwrap_err()
            .contains("exited with"));
        assert!(exec(&argv(&["sleep", "5"]), &[], t)
            .unwrap_err()
            .contains("did not finish"));
        let env = [("UC_PROBE_TEST".to_owned(), "yes".to_owned())];
        let check = argv(&["sh", "-c", "test \"$UC_PROBE_TEST\" = yes"]);
        assert_eq!(exec(&check, &env, t), Ok(()));
        assert!(exec(&check, &[], t).is_err());
    }

    #[test]
    fn tcp_and_http_checks() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            for answer in ["200 OK", "503 Service Unavailable"] {
                let (mut s, _) = listener.accept().unwrap();
                let mut request = Vec::new();
                let mut buf = [0u8; 512];
                while !request.ends_with(b"\r\n\r\n") {
                    let n = s.read(&mut buf).unwrap();
                    assert!(n > 0, "client hung up mid-request");
                    request.extend_from_slice(&buf[..n]);
                }
                let response = format!("HTTP/1.1 {answer}\r\nContent-Length: 2\r\n\r\nok");
                s.write_all(response.as_bytes()).unwrap();
            }
        });
        let t = Duration::from_secs(1);
        let url = format!("http://127.0.0.1:{port}/health");
        assert_eq!(http(&url, t), Ok(()));
        assert!(http(&url, t).unwrap_err().contains("answered 503"));
        server.join().unwrap();

        // A freed port may be taken by anything else on the machine; test
        // TCP against a live listener, and against port 0, which never is.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let live = listener.local_addr().unwrap().to_string();
        assert!(connect(&live, t).is_ok());
        assert!(connect("127.0.0.1:0", t)
            .unwrap_err()
            .starts_with("connect 127.0.0.1:0"));
    }
}
