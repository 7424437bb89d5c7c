//! Health probes shared by UltraCloud's agents (the nix-agent's system
//! checks, the node-agent's instance checks). Blocking: callers in async code
//! run them on a blocking thread. Each returns why it failed. HTTP goes
//! through uc-http.

use std::net::{TcpStream, ToSocketAddrs};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("empty command")]
    EmptyCommand,
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{source}")]
    Wait {
        command: String,
        source: std::io::Error,
    },
    #[error("{command} exited with {status}")]
    Exited {
        command: String,
        status: std::process::ExitStatus,
    },
    #[error("{command} did not finish within {timeout:?}")]
    Timeout { command: String, timeout: Duration },
    #[error("bad address {address}: {source}")]
    BadAddress {
        address: String,
        source: std::io::Error,
    },
    #[error("{address} resolves to nothing")]
    NoAddress { address: String },
    #[error("connect {address}: {source}")]
    Connect {
        address: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Http(#[source] uc_http::Error),
    #[error("{url} answered {status}")]
    Status {
        url: String,
        status: uc_http::StatusCode,
    },
}

/// Runs `argv` with `env` added; passes on exit status 0 within `timeout`.
pub fn exec(
    argv: &[String],
    env: &[(String, String)],
    timeout: Duration,
) -> Result<(), ProbeError> {
    let (program, args) = argv.split_first().ok_or(ProbeError::EmptyCommand)?;
    let mut child = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|source| ProbeError::Spawn {
            program: program.clone(),
            source,
        })?;
    let deadline = Instant::now() + timeout;
    loop {
        let waited = child.try_wait().map_err(|source| ProbeError::Wait {
            command: argv.join(" "),
            source,
        })?;
        match waited {
            Some(status) if status.success() => return Ok(()),
            Some(status) => {
                return Err(ProbeError::Exited {
                    command: argv.join(" "),
                    status,
                })
            }
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ProbeError::Timeout {
                    command: argv.join(" "),
                    timeout,
                });
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Connects to `host:port`.
pub fn connect(address: &str, timeout: Duration) -> Result<TcpStream, ProbeError> {
    let resolved = address
        .to_socket_addrs()
        .map_err(|source| ProbeError::BadAddress {
            address: address.to_owned(),
            source,
        })?
        .next()
        .ok_or_else(|| ProbeError::NoAddress {
            address: address.to_owned(),
        })?;
    TcpStream::connect_timeout(&resolved, timeout).map_err(|source| ProbeError::Connect {
        address: address.to_owned(),
        source,
    })
}

/// GETs an `http://` URL; any 2xx passes.
pub fn http(url: &str, timeout: Duration) -> Result<(), ProbeError> {
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
        Err(err) => return Err(ProbeError::Http(err)),
    };
    if status.is_success() {
        Ok(())
    } else {
        Err(ProbeError::Status {
            url: url.to_owned(),
            status,
        })
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
        exec(&argv(&["true"]), &[], t).unwrap();
        assert!(exec(&argv(&["false"]), &[], t)
            .unwrap_err()
            .to_string()
            .contains("exited with"));
        assert!(exec(&argv(&["sleep", "5"]), &[], t)
            .unwrap_err()
            .to_string()
            .contains("did not finish"));
        let env = [("UC_PROBE_TEST".to_owned(), "yes".to_owned())];
        let check = argv(&["sh", "-c", "test \"$UC_PROBE_TEST\" = yes"]);
        exec(&check, &env, t).unwrap();
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
        http(&url, t).unwrap();
        assert!(http(&url, t)
            .unwrap_err()
            .to_string()
            .contains("answered 503"));
        server.join().unwrap();

        // A freed port may be taken by anything else on the machine; test
        // TCP against a live listener, and against port 0, which never is.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let live = listener.local_addr().unwrap().to_string();
        assert!(connect(&live, t).is_ok());
        assert!(connect("127.0.0.1:0", t)
            .unwrap_err()
            .to_string()
            .starts_with("connect 127.0.0.1:0"));
    }
}
