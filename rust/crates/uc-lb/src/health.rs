//! A backend's health as probes see it: a pure state machine (rise/fall
//! counting) and the probes themselves (TCP connect, HTTP GET expecting
//! 2xx, over TLS when the listener has `backendTls`), each bounded by the
//! listener's timeout.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::l7::backend_tls::{BackendTls, BackendTlsError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Not probed yet: out of rotation until the first probe says up.
    Unknown,
    Up,
    Down,
}

/// Rise/fall counting. A new backend is `Unknown` and one success brings
/// it up (as HAProxy's first check does); after that `fall` consecutive
/// failures take it down and `rise` consecutive successes bring it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracker {
    pub state: State,
    rise: u32,
    fall: u32,
    streak: u32,
}

impl Tracker {
    pub fn new(rise: u32, fall: u32) -> Tracker {
        Tracker {
            state: State::Unknown,
            rise: rise.max(1),
            fall: fall.max(1),
            streak: 0,
        }
    }

    /// Records a probe's result; the new state when it changed.
    pub fn observe(&mut self, ok: bool) -> Option<State> {
        let next = match (self.state, ok) {
            (State::Unknown, true) => Some(State::Up),
            (State::Unknown, false) => Some(State::Down),
            (State::Up, true) | (State::Down, false) => {
                self.streak = 0;
                None
            }
            (State::Up, false) => {
                self.streak += 1;
                (self.streak >= self.fall).then_some(State::Down)
            }
            (State::Down, true) => {
                self.streak += 1;
                (self.streak >= self.rise).then_some(State::Up)
            }
        };
        if let Some(state) = next {
            self.state = state;
            self.streak = 0;
        }
        next
    }

    /// Goes on from a known state (the probe restarted with new settings).
    pub fn resume(state: State, rise: u32, fall: u32) -> Tracker {
        Tracker {
            state,
            ..Tracker::new(rise, fall)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    Tcp,
    /// GET of this path; 2xx is healthy.
    Http {
        path: String,
    },
}

/// Why a probe failed (logged at debug; the state change at info).
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("connect: {0}")]
    Connect(#[source] std::io::Error),
    #[error("{0}")]
    Tls(#[from] BackendTlsError),
    #[error("HTTP exchange: {0}")]
    Io(#[source] std::io::Error),
    #[error("answered {0:?}, not 2xx")]
    Status(String),
}

pub async fn probe(
    probe: &Probe,
    backend: SocketAddr,
    timeout: Duration,
    tls: Option<&BackendTls>,
) -> Result<(), ProbeError> {
    match tokio::time::timeout(timeout, run(probe, backend, tls)).await {
        Ok(result) => result,
        Err(_) => Err(ProbeError::Timeout(timeout)),
    }
}

async fn run(
    probe: &Probe,
    backend: SocketAddr,
    tls: Option<&BackendTls>,
) -> Result<(), ProbeError> {
    let stream = TcpStream::connect(backend)
        .await
        .map_err(ProbeError::Connect)?;
    let Probe::Http { path } = probe else {
        return Ok(());
    };
    match tls {
        Some(tls) => get(tls.connect(stream, backend).await?, path, backend).await,
        None => get(stream, path, backend).await,
    }
}

async fn get<S>(mut stream: S, path: &str, backend: SocketAddr) -> Result<(), ProbeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {backend}\r\nUser-Agent: uc-lb-health\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(ProbeError::Io)?;
    // The status line is all a probe reads.
    let mut head = [0u8; 64];
    let mut len = 0;
    while len < 12 {
        let n = stream
            .read(&mut head[len..])
            .await
            .map_err(ProbeError::Io)?;
        if n == 0 {
            break;
        }
        len += n;
    }
    let line = String::from_utf8_lossy(&head[..len]).into_owned();
    let code = line.split_whitespace().nth(1).unwrap_or("");
    if line.starts_with("HTTP/") && code.len() == 3 && code.starts_with('2') {
        Ok(())
    } else {
        Err(ProbeError::Status(
            line.lines().next().unwrap_or("").to_owned(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rise_and_fall() {
        // (rise, fall, probe results, states after each)
        use State::*;
        let table: &[(u32, u32, &[bool], &[State])] = &[
            (2, 3, &[true], &[Up]),
            (2, 3, &[false], &[Down]),
            (2, 3, &[true, false, false, false], &[Up, Up, Up, Down]),
            (
                2,
                3,
                &[true, false, true, false, false],
                &[Up, Up, Up, Up, Up],
            ),
            (2, 3, &[false, true, true], &[Down, Down, Up]),
            (
                2,
                3,
                &[false, true, false, true, true],
                &[Down, Down, Down, Down, Up],
            ),
            (1, 1, &[true, false, true], &[Up, Down, Up]),
            (0, 0, &[true, false], &[Up, Down]),
        ];
        for (rise, fall, results, states) in table {
            let mut tracker = Tracker::new(*rise, *fall);
            let seen: Vec<State> = results
                .iter()
                .map(|ok| {
                    tracker.observe(*ok);
                    tracker.state
                })
                .collect();
            assert_eq!(&seen, states, "rise {rise} fall {fall} results {results:?}");
        }
    }
}
