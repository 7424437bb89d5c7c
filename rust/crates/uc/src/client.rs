//! The CLI's requests to the deployer API and to node-agents (plain http on
//! the management network), through uc-http.

use std::time::Duration;

pub struct Response {
    pub status: u16,
    pub body: String,
}

/// Why a request got no answer; the message names what was asked.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("URL {base} of {what} must start with http://")]
    NotHttp { what: String, base: String },
    #[error("bad HTTP method {method}")]
    Method { method: String },
    #[error("cannot reach {what} at {base}: {source}")]
    Unreachable {
        what: String,
        base: String,
        source: Box<uc_http::Error>,
    },
    #[error("{what} at {base}: {source}")]
    Failed {
        what: String,
        base: String,
        source: Box<uc_http::Error>,
    },
}

pub fn request(
    base: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<Response, RequestError> {
    request_to("the deployer", base, method, path, body)
}

/// `request` to `what` (named in errors), e.g. a node-agent. The body, if
/// any, is JSON.
pub fn request_to(
    what: &str,
    base: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<Response, RequestError> {
    if !base.starts_with("http://") {
        return Err(RequestError::NotHttp {
            what: what.to_owned(),
            base: base.to_owned(),
        });
    }
    let method =
        uc_http::Method::from_bytes(method.as_bytes()).map_err(|_| RequestError::Method {
            method: method.to_owned(),
        })?;
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let response = uc_http::Request::new(method, url)
        .json(body.unwrap_or("").to_owned())
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .send_blocking()
        .map_err(|source| {
            let (what, base, source) = (what.to_owned(), base.to_owned(), Box::new(source));
            if source.is_connect() {
                RequestError::Unreachable { what, base, source }
            } else {
                RequestError::Failed { what, base, source }
            }
        })?;
    Ok(Response {
        status: response.status.as_u16(),
        body: response.text(),
    })
}

/// The `error` field of an API error body (`uc_types::ApiError`), or the
/// body itself.
pub fn error_text(body: &str) -> String {
    serde_json::from_str::<uc_types::ApiError>(body)
        .map(|answer| answer.error)
        .unwrap_or_else(|_| body.trim().to_owned())
}
