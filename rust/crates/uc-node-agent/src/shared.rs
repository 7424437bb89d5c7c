//! What the agent's tasks share: the state the HTTP endpoint shows (and
//! rolling updates read), and the store connection every store task makes.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64};
use std::sync::Mutex;
use std::time::Duration;

use etcd_client::Client;
use uc_types::NodeAgentConfig;

use crate::instance::Statuses;
use crate::runner::Backend;

/// What the HTTP endpoint shows.
pub struct Shared {
    pub node: String,
    pub state_dir: PathBuf,
    pub backend: Backend,
    pub statuses: Mutex<Statuses>,
    pub store_connected: AtomicBool,
    /// The heartbeat lease (0 while the store is unreachable).
    pub lease: AtomicI64,
}

/// A store client, retried with backoff until the store answers; `what`
/// names the task in the log.
pub async fn connect(config: &NodeAgentConfig, what: &str) -> Client {
    let mut delay = Duration::from_millis(200);
    loop {
        match Client::connect(&config.store_endpoints, None).await {
            Ok(client) => return client,
            Err(err) => {
                tracing::warn!(%err, endpoints = ?config.store_endpoints, what, "store unreachable; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}
