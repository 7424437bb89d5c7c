//! Why a member does not start: its flags and config, its data dir, its
//! listeners, Raft.

/// Flags or config values that do not make a member; each names the flag.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    File(#[from] uc_types::ContractError),
    #[error("--auto-compaction-retention {0:?}: expected hours (\"1\") or a duration (\"30m\", \"1h\", \"90s\")")]
    Retention(String),
    #[error("--initial-cluster: {0:?} is not name=peerURL (e.g. infra0=http://10.0.1.10:2380)")]
    InitialCluster(String),
    #[error("--initial-cluster-state {0:?}: expected \"new\" or \"existing\"")]
    InitialClusterState(String),
    #[error("--election-timeout ({election_ms} ms) must be greater than --heartbeat-interval ({heartbeat_ms} ms), which must be above 0")]
    Timeouts { election_ms: u64, heartbeat_ms: u64 },
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(String),
    #[error("data dir {dir}: {detail}")]
    DataDir { dir: String, detail: String },
    #[error("cannot listen on {url}: {detail}")]
    Listen { url: String, detail: String },
    #[error("raft: {0}")]
    Raft(String),
}
