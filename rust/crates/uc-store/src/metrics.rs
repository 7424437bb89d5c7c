//! A member's `/metrics`: one registry (uc-daemon's, rendered as
//! OpenMetrics text) holding the counters and histograms the member updates
//! as it goes (`node::{Accepted, ReadRounds, Timings}`) and gauges read from
//! Raft and the state each time it is scraped.

use uc_daemon::metrics::prometheus_client::registry::Unit;
use uc_daemon::metrics::{self as daemon_metrics, Gauge, Registry};

use crate::node::Node;

pub struct Metrics {
    registry: Registry,
    gauges: Gauges,
}

/// Values read when scraped.
#[derive(Default)]
struct Gauges {
    has_leader: Gauge,
    is_leader: Gauge,
    raft_term: Gauge,
    raft_last_log_index: Gauge,
    raft_applied_index: Gauge,
    revision: Gauge,
    compacted_revision: Gauge,
    db_size_in_use: Gauge,
    quota: Gauge,
    leases: Gauge,
    nospace_alarms: Gauge,
}

impl Metrics {
    /// Registers `node`'s counters and histograms and the scraped gauges,
    /// all named `uc_store_…`.
    pub fn new(node: &Node) -> Metrics {
        let mut registry = daemon_metrics::registry("uc_store");
        let gauges = Gauges::default();
        let r = &mut registry;
        r.register(
            "has_leader",
            "1 when this member knows a leader",
            gauges.has_leader.clone(),
        );
        r.register(
            "is_leader",
            "1 when this member is the leader",
            gauges.is_leader.clone(),
        );
        r.register("raft_term", "Current Raft term", gauges.raft_term.clone());
        r.register(
            "raft_last_log_index",
            "Index of the last entry in this member's log",
            gauges.raft_last_log_index.clone(),
        );
        r.register(
            "raft_applied_index",
            "Index of the last entry applied here",
            gauges.raft_applied_index.clone(),
        );
        r.register("revision", "Current MVCC revision", gauges.revision.clone());
        r.register(
            "compacted_revision",
            "Revision history is compacted to",
            gauges.compacted_revision.clone(),
        );
        r.register_with_unit(
            "db_size_in_use",
            "Bytes of retained versions (what the quota counts)",
            Unit::Bytes,
            gauges.db_size_in_use.clone(),
        );
        r.register_with_unit(
            "quota",
            "--quota-backend-bytes",
            Unit::Bytes,
            gauges.quota.clone(),
        );
        r.register("leases", "Granted leases", gauges.leases.clone());
        r.register(
            "nospace_alarms",
            "Members with an active NOSPACE alarm",
            gauges.nospace_alarms.clone(),
        );

        // Counters: prometheus-client appends `_total`.
        r.register(
            "peer_connections_accepted",
            "Connections accepted on the peer URLs (members keep one to each other)",
            node.accepted.peer.clone(),
        );
        r.register(
            "client_connections_accepted",
            "Connections accepted on the client URLs",
            node.accepted.client.clone(),
        );
        r.register(
            "read_rounds_lease",
            "Linearizable read rounds served on the leader lease",
            node.read_rounds.lease.clone(),
        );
        r.register(
            "read_rounds_quorum",
            "Linearizable read rounds that confirmed leadership with a quorum",
            node.read_rounds.quorum.clone(),
        );
        r.register(
            "read_rounds_forwarded",
            "Linearizable read rounds this follower asked the leader to confirm",
            node.read_rounds.forwarded.clone(),
        );
        let timings = &node.timings;
        r.register(
            "proposed_writes",
            "Writes in the entries this leader proposed (divided by uc_store_proposal_duration_seconds_count: the batch size)",
            timings.proposed_writes.clone(),
        );

        r.register_with_unit(
            "disk_log_commit_duration",
            "Raft log commits (appends of one or more entries) including their fsync; etcd's etcd_disk_wal_fsync_duration_seconds",
            Unit::Seconds,
            timings.log_commits.clone(),
        );
        r.register_with_unit(
            "disk_state_commit_duration",
            "Commits of applied batches to state.redb (fsync at most once a second); etcd's etcd_disk_backend_commit_duration_seconds",
            Unit::Seconds,
            timings.state_commits.clone(),
        );
        r.register_with_unit(
            "replication_round_trip",
            "AppendEntries with entries from this leader to a follower, sent to answered (the follower's log commit included)",
            Unit::Seconds,
            timings.round_trips.clone(),
        );
        r.register_with_unit(
            "proposal_duration",
            "Log entries this leader proposed, proposed to applied here (one entry carries a batch of writes)",
            Unit::Seconds,
            timings.proposals.clone(),
        );
        Metrics { registry, gauges }
    }

    /// Reads the gauges from `node`, then renders every metric.
    pub fn render(&self, node: &Node) -> String {
        let raft = node.raft.metrics().borrow().clone();
        let g = &self.gauges;
        g.has_leader.set(i64::from(raft.current_leader.is_some()));
        g.is_leader
            .set(i64::from(raft.current_leader == Some(node.id)));
        g.raft_term.set(gauge(raft.current_term));
        g.raft_last_log_index
            .set(gauge(raft.last_log_index.unwrap_or(0)));
        g.raft_applied_index
            .set(gauge(raft.last_applied.map_or(0, |id| id.index)));
        {
            let machine = node.shared.read();
            let state = &machine.state;
            g.revision.set(state.keyspace.revision());
            g.compacted_revision
                .set(state.keyspace.compacted_revision());
            g.db_size_in_use.set(gauge(state.size));
            g.leases.set(gauge(state.leases.len() as u64));
            g.nospace_alarms.set(gauge(state.nospace.len() as u64));
        }
        g.quota.set(gauge(node.quota_bytes()));
        daemon_metrics::render(&self.registry)
    }
}

/// A count as a gauge's value (saturating; none come near 2^63).
fn gauge(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
