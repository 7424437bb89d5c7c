//! What can go wrong with one request, each case naming what it was about.

use std::net::SocketAddr;
use std::time::Duration;

use hyper::StatusCode;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{url} is not a URL: {source}")]
    InvalidUrl {
        url: String,
        source: hyper::http::uri::InvalidUri,
    },
    #[error("{url}: only http:// is supported")]
    UnsupportedScheme { url: String },
    #[error("{url}: no host")]
    NoHost { url: String },
    #[error("bad request to {url}: {source}")]
    InvalidRequest {
        url: String,
        source: hyper::http::Error,
    },
    #[error("cannot resolve {authority}: {source}")]
    Resolve {
        authority: String,
        source: std::io::Error,
    },
    #[error("{authority} resolves to no address")]
    NoAddress { authority: String },
    #[error("cannot connect to {authority} ({address}): {source}")]
    Connect {
        authority: String,
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot connect to {authority} ({address}) within {timeout:?}")]
    ConnectTimeout {
        authority: String,
        address: SocketAddr,
        timeout: Duration,
    },
    #[error("{url}: no complete answer within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    /// Sending the request or reading the answer failed, or the answer was
    /// not HTTP/1.
    #[error("{url}: {source}")]
    Exchange { url: String, source: hyper::Error },
    #[error("{url} answered {status} with a body over {limit} bytes")]
    BodyTooLarge {
        url: String,
        status: StatusCode,
        limit: usize,
    },
    /// From [`Response::error_for_status`](crate::Response::error_for_status).
    #[error("{url} answered {status}")]
    Status {
        url: String,
        status: StatusCode,
        body: String,
    },
    #[error("cannot start an I/O runtime: {0}")]
    Runtime(std::io::Error),
}

impl Error {
    /// Whether the server was never reached (its name did not resolve or
    /// no connection was made), so nothing was sent.
    pub fn is_connect(&self) -> bool {
        matches!(
            self,
            Error::Resolve { .. }
                | Error::NoAddress { .. }
                | Error::Connect { .. }
                | Error::ConnectTimeout { .. }
        )
    }
}
