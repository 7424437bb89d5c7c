//! `/metrics` (Prometheus text) and `/health` on the metrics URLs.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

use crate::node::Node;

pub fn router(node: Arc<Node>) -> Router {
    let health_node = node.clone();
    Router::new()
        .route("/metrics", get(move || async move { metrics(&node) }))
        .route("/health", get(move || async move { health(&health_node) }))
}

/// As etcd's /health: healthy when the member knows a leader.
fn health(node: &Node) -> (StatusCode, &'static str) {
    match node.leader() {
        Some(_) => (StatusCode::OK, "{\"health\":\"true\"}\n"),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "{\"health\":\"false\",\"reason\":\"no leader\"}\n",
        ),
    }
}

fn metrics(node: &Node) -> String {
    let metrics = node.raft.metrics().borrow().clone();
    let (revision, compacted, size, leases, alarms) = {
        let machine = node.shared.read();
        let state = &machine.state;
        (
            state.keyspace.revision(),
            state.keyspace.compacted_revision(),
            state.size,
            state.leases.len(),
            state.nospace.len(),
        )
    };
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, value: f64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    };
    gauge(
        "uc_store_has_leader",
        "1 when this member knows a leader.",
        f64::from(u8::from(metrics.current_leader.is_some())),
    );
    gauge(
        "uc_store_is_leader",
        "1 when this member is the leader.",
        f64::from(u8::from(metrics.current_leader == Some(node.id))),
    );
    gauge(
        "uc_store_raft_term",
        "Current Raft term.",
        metrics.current_term as f64,
    );
    gauge(
        "uc_store_raft_last_log_index",
        "Index of the last entry in this member's log.",
        metrics.last_log_index.unwrap_or(0) as f64,
    );
    gauge(
        "uc_store_raft_applied_index",
        "Index of the last entry applied here.",
        metrics.last_applied.map_or(0, |id| id.index) as f64,
    );
    gauge(
        "uc_store_revision",
        "Current MVCC revision.",
        revision as f64,
    );
    gauge(
        "uc_store_compacted_revision",
        "Revision history is compacted to.",
        compacted as f64,
    );
    gauge(
        "uc_store_db_size_in_use_bytes",
        "Bytes of retained versions (what the quota counts).",
        size as f64,
    );
    gauge(
        "uc_store_quota_bytes",
        "--quota-backend-bytes.",
        node.quota_bytes() as f64,
    );
    gauge("uc_store_leases", "Granted leases.", leases as f64);
    gauge(
        "uc_store_nospace_alarms",
        "Members with an active NOSPACE alarm.",
        alarms as f64,
    );
    let counters = [
        (
            "uc_store_peer_connections_accepted_total",
            "Connections accepted on the peer URLs (members keep one to each other).",
            &node.accepted.peer,
        ),
        (
            "uc_store_client_connections_accepted_total",
            "Connections accepted on the client URLs.",
            &node.accepted.client,
        ),
        (
            "uc_store_read_rounds_lease_total",
            "Linearizable read rounds served on the leader lease.",
            &node.read_rounds.lease,
        ),
        (
            "uc_store_read_rounds_quorum_total",
            "Linearizable read rounds that confirmed leadership with a quorum.",
            &node.read_rounds.quorum,
        ),
        (
            "uc_store_read_rounds_forwarded_total",
            "Linearizable read rounds this follower asked the leader to confirm.",
            &node.read_rounds.forwarded,
        ),
        (
            "uc_store_proposed_writes_total",
            "Writes in the entries this leader proposed (divided by uc_store_proposal_duration_seconds_count: the batch size).",
            &node.timings.proposed_writes,
        ),
    ];
    for (name, help, count) in counters {
        let value = count.load(std::sync::atomic::Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    }
    let timings = &node.timings;
    timings.log_commits.render(
        &mut out,
        "uc_store_disk_log_commit_duration_seconds",
        "Raft log commits (appends of one or more entries) including their fsync; etcd's etcd_disk_wal_fsync_duration_seconds.",
    );
    timings.state_commits.render(
        &mut out,
        "uc_store_disk_state_commit_duration_seconds",
        "Commits of applied batches to state.redb (fsync at most once a second); etcd's etcd_disk_backend_commit_duration_seconds.",
    );
    timings.round_trips.render(
        &mut out,
        "uc_store_replication_round_trip_seconds",
        "AppendEntries with entries from this leader to a follower, sent to answered (the follower's log commit included).",
    );
    timings.proposals.render(
        &mut out,
        "uc_store_proposal_duration_seconds",
        "Log entries this leader proposed, proposed to applied here (one entry carries a batch of writes).",
    );
    out
}
