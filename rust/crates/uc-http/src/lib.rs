//! The HTTP/1 client shared by the `uc` CLI (the deployer's and the
//! node-agents' APIs), uc-probe's HTTP health checks and the integration
//! tests: plain `http://` on the management network, one request per
//! connection, on hyper.
//!
//! ```no_run
//! let response = uc_http::Request::get("http://127.0.0.1:8080/health")
//!     .send_blocking()?
//!     .error_for_status()?;
//! println!("{}", response.text());
//! # Ok::<(), uc_http::Error>(())
//! ```
//!
//! [`Request::send`] is async (it needs a tokio runtime with I/O and time
//! enabled); [`Request::send_blocking`] runs it on a runtime of its own.

mod error;

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

pub use error::Error;
pub use hyper::{header, HeaderMap, Method, StatusCode};

/// One request, built up and then sent with [`send`](Request::send) or
/// [`send_blocking`](Request::send_blocking).
#[derive(Debug, Clone)]
pub struct Request {
    method: Method,
    url: String,
    headers: HeaderMap,
    body: Bytes,
    connect_timeout: Duration,
    timeout: Duration,
    max_body: Option<usize>,
}

/// The answer: status, headers and the whole body.
#[derive(Debug, Clone)]
pub struct Response {
    /// The URL asked, for error messages.
    pub url: String,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Request {
    /// A `method` request to `url` (`http://host[:port][/path][?query]`),
    /// with no body, a 10 s connect timeout and a 60 s timeout for the rest.
    pub fn new(method: Method, url: impl Into<String>) -> Request {
        Request {
            method,
            url: url.into(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(60),
            max_body: None,
        }
    }

    pub fn get(url: impl Into<String>) -> Request {
        Request::new(Method::GET, url)
    }

    pub fn post(url: impl Into<String>) -> Request {
        Request::new(Method::POST, url)
    }

    pub fn put(url: impl Into<String>) -> Request {
        Request::new(Method::PUT, url)
    }

    pub fn delete(url: impl Into<String>) -> Request {
        Request::new(Method::DELETE, url)
    }

    /// Adds a header (`Host` is set from the URL unless given here).
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Request {
        self.headers.append(name, value);
        self
    }

    /// The body, sent with its `Content-Length`.
    pub fn body(mut self, body: impl Into<Bytes>) -> Request {
        self.body = body.into();
        self
    }

    /// A JSON body: [`body`](Request::body) with `Content-Type: application/json`.
    pub fn json(self, body: impl Into<Bytes>) -> Request {
        self.header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body)
    }

    /// How long connecting may take, per address the host resolves to.
    pub fn connect_timeout(mut self, timeout: Duration) -> Request {
        self.connect_timeout = timeout;
        self
    }

    /// How long the exchange after connecting may take: sending the request
    /// and reading the whole answer.
    pub fn timeout(mut self, timeout: Duration) -> Request {
        self.timeout = timeout;
        self
    }

    /// Stops reading an answer whose body is longer than `bytes`, failing
    /// with [`Error::BodyTooLarge`] (unlimited by default).
    pub fn max_body(mut self, bytes: usize) -> Request {
        self.max_body = Some(bytes);
        self
    }

    /// Connects, sends the request and reads the whole answer.
    pub async fn send(self) -> Result<Response, Error> {
        let url = self.url.clone();
        let uri: hyper::Uri = url.parse().map_err(|source| Error::InvalidUrl {
            url: url.clone(),
            source,
        })?;
        if uri.scheme_str() != Some("http") {
            return Err(Error::UnsupportedScheme { url });
        }
        let Some(authority) = uri.authority().map(|a| a.as_str().to_owned()) else {
            return Err(Error::NoHost { url });
        };
        let host = uri.host().unwrap_or_default();
        let port = uri.port_u16().unwrap_or(80);
        let stream = connect(&authority, host, port, self.connect_timeout).await?;

        // Origin form on the wire (`GET /path HTTP/1.1` and a Host header),
        // which every server takes; the absolute form is for proxies.
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let mut request = hyper::Request::builder()
            .method(self.method)
            .uri(path)
            .body(Full::new(self.body))
            .map_err(|source| Error::InvalidRequest {
                url: url.clone(),
                source,
            })?;
        let host_value = HeaderValue::from_str(&authority).map_err(|e| Error::InvalidRequest {
            url: url.clone(),
            source: e.into(),
        })?;
        request.headers_mut().insert(HOST, host_value);
        request.headers_mut().extend(self.headers);

        let exchange = exchange(stream, request, &url, self.max_body);
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout {
                url,
                timeout: self.timeout,
            }),
        }
    }

    /// [`send`](Request::send) from blocking code: runs it on a
    /// current-thread runtime of its own (on a thread of its own when called
    /// from inside a runtime, where blocking on another is not allowed).
    pub fn send_blocking(self) -> Result<Response, Error> {
        let run = move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .enable_time()
                .build()
                .map_err(Error::Runtime)?
                .block_on(self.send())
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return run();
        }
        std::thread::scope(|scope| {
            scope
                .spawn(run)
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

impl Response {
    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The response if its status is 2xx, else [`Error::Status`] (carrying
    /// the body, which often says why).
    pub fn error_for_status(self) -> Result<Response, Error> {
        if self.status.is_success() {
            return Ok(self);
        }
        Err(Error::Status {
            body: self.text(),
            url: self.url,
            status: self.status,
        })
    }
}

/// A TCP connection to the first address of `host:port` that accepts one.
async fn connect(
    authority: &str,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<TcpStream, Error> {
    // `host` keeps an IPv6 literal's brackets, as lookup_host wants them.
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|source| Error::Resolve {
            authority: authority.to_owned(),
            source,
        })?
        .collect();
    let mut last = Error::NoAddress {
        authority: authority.to_owned(),
    };
    for address in addresses {
        last = match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(source)) => Error::Connect {
                authority: authority.to_owned(),
                address,
                source,
            },
            Err(_) => Error::ConnectTimeout {
                authority: authority.to_owned(),
                address,
                timeout,
            },
        };
    }
    Err(last)
}

/// Sends `request` over `stream` and reads the answer.
async fn exchange(
    stream: TcpStream,
    request: hyper::Request<Full<Bytes>>,
    url: &str,
    max_body: Option<usize>,
) -> Result<Response, Error> {
    let failed = |source| Error::Exchange {
        url: url.to_owned(),
        source,
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(failed)?;
    // Driven by a task of its own, which ends once the answer has been read
    // and `sender` dropped (or with the runtime).
    tokio::spawn(connection);
    let answer = sender.send_request(request).await.map_err(failed)?;
    let (head, mut body) = answer.into_parts();
    let body = read_body(&mut body, max_body)
        .await
        .map_err(|error| match error {
            BodyError::Hyper(source) => failed(source),
            BodyError::TooLarge(limit) => Error::BodyTooLarge {
                url: url.to_owned(),
                status: head.status,
                limit,
            },
        })?;
    Ok(Response {
        url: url.to_owned(),
        status: head.status,
        headers: head.headers,
        body,
    })
}

enum BodyError {
    Hyper(hyper::Error),
    TooLarge(usize),
}

/// The whole body, or as much as `max` bytes of it.
async fn read_body(body: &mut Incoming, max: Option<usize>) -> Result<Bytes, BodyError> {
    let mut collected = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(BodyError::Hyper)?;
        if let Ok(data) = frame.into_data() {
            collected.extend_from_slice(&data);
            if let Some(max) = max.filter(|max| collected.len() > *max) {
                return Err(BodyError::TooLarge(max));
            }
        }
    }
    Ok(collected.into())
}

#[cfg(test)]
mod tests;
