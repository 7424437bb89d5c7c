//! The CLI's requests to the deployer API and to node-agents (plain http on
//! the management network), through uc-http.

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

/// `request` to `what` (named in errors), e.g. a node-agent. The body, if
/// any, is JSON.
pub fn request_to(
    what: &str,
    base: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<Response, String> {
    if !base.starts_with("http://") {
        return Err(format!("URL {base} of {what} must start with http://"));
    }
    let method = uc_http::Method::from_bytes(method.as_bytes())
        .map_err(|e| format!("bad HTTP method {method}: {e}"))?;
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let response = uc_http::Request::new(method, url)
        .json(body.unwrap_or("").to_owned())
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .send_blocking()
        .map_err(|err| {
            if err.is_connect() {
                format!("cannot reach {what} at {base}: {err}")
            } else {
                format!("{what} at {base}: {err}")
            }
        })?;
    Ok(Response {
        status: response.status.as_u16(),
        body: response.text(),
    })
}

/// The `error` field of an API error body, or the body itself.
pub fn error_text(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.trim().to_owned())
}
