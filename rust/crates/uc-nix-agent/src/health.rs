//! The node's health checks after a switch: commands, TCP connects, HTTP GETs.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use uc_types::{HealthCheckType, SystemHealthCheck};

/// Runs one attempt of a check; Err says why it failed.
pub fn probe(check: &SystemHealthCheck) -> Result<(), String> {
    let timeout = Duration::from_secs(check.timeout_seconds.max(1));
    match check.kind {
        HealthCheckType::Exec => exec(&check.command, timeout),
        HealthCheckType::Tcp => {
            let address = check.address.as_deref().ok_or("no address")?;
            connect(address, timeout).map(drop)
        }
        HealthCheckType::Http => http(check.url.as_deref().ok_or("no url")?, timeout),
    }
}

fn exec(argv: &[String], timeout: Duration) -> Result<(), String> {
    let (program, args) = argv.split_first().ok_or("empty command")?;
    let mut child = Command::new(program)
        .args(args)
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

fn connect(address: &str, timeout: Duration) -> Result<TcpStream, String> {
    let resolved = address
        .to_socket_addrs()
        .map_err(|e| format!("bad address {address}: {e}"))?
        .next()
        .ok_or(format!("{address} resolves to nothing"))?;
    TcpStream::connect_timeout(&resolved, timeout).map_err(|e| format!("connect {address}: {e}"))
}

fn http(url: &str, timeout: Duration) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or(format!("{url}: only http:// is supported"))?;
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let address = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let mut stream = connect(&address, timeout)?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("{url}: {e}"))?;
    let mut head = [0u8; 12];
    stream
        .read_exact(&mut head)
        .map_err(|e| format!("{url}: {e}"))?;
    match std::str::from_utf8(&head[9..12])
        .ok()
        .and_then(|s| s.parse::<u16>().ok())
    {
        Some(code) if (200..300).contains(&code) => Ok(()),
        Some(code) => Err(format!("{url} answered {code}")),
        None => Err(format!("{url} did not answer HTTP")),
    }
}

/// Probes every check until all pass at once, or `gate` runs out; Err lists
/// the checks still failing.
pub fn wait_healthy(checks: &[SystemHealthCheck], gate: Duration) -> Result<(), String> {
    let deadline = Instant::now() + gate;
    loop {
        let failing: Vec<String> = checks
            .iter()
            .filter_map(|c| probe(c).err().map(|why| format!("{}: {why}", c.name)))
            .collect();
        if failing.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "health checks still failing after {gate:?}: {}",
                failing.join("; ")
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn check(kind: HealthCheckType) -> SystemHealthCheck {
        SystemHealthCheck {
            name: "t".into(),
            kind,
            command: vec![],
            address: None,
            url: None,
            timeout_seconds: 1,
        }
    }

    #[test]
    fn exec_checks_exit_status_and_time() {
        let mut c = check(HealthCheckType::Exec);
        c.command = vec!["true".into()];
        assert_eq!(probe(&c), Ok(()));
        c.command = vec!["false".into()];
        assert!(probe(&c).unwrap_err().contains("exited with"));
        c.command = vec!["sleep".into(), "5".into()];
        assert!(probe(&c).unwrap_err().contains("did not finish"));
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
                // One write: the probe hangs up after the status line.
                let response = format!("HTTP/1.1 {answer}\r\nContent-Length: 0\r\n\r\n");
                let _ = s.write_all(response.as_bytes());
            }
        });
        let mut h = check(HealthCheckType::Http);
        h.url = Some(format!("http://127.0.0.1:{port}/health"));
        assert_eq!(probe(&h), Ok(()));
        assert!(probe(&h).unwrap_err().contains("answered 503"));
        server.join().unwrap();

        // A freed port may be taken by anything else on the machine; test
        // TCP against a live listener, and against port 0, which never is.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut t = check(HealthCheckType::Tcp);
        t.address = Some(listener.local_addr().unwrap().to_string());
        assert_eq!(probe(&t), Ok(()));
        t.address = Some("127.0.0.1:0".into());
        assert!(probe(&t).unwrap_err().starts_with("connect 127.0.0.1:0"));
    }

    #[test]
    fn wait_healthy_reports_the_failing_checks() {
        let mut c = check(HealthCheckType::Exec);
        c.name = "never".into();
        c.command = vec!["false".into()];
        let err = wait_healthy(&[c], Duration::from_millis(300)).unwrap_err();
        assert!(err.contains("never: false exited with"), "{err}");
    }
}
