//! Starting and stopping a member: data dir checks, Raft, the client, peer
//! and metrics listeners, the leader's duties.
//!
//! `identity`: whose the data dir is; `listen`: the gRPC listeners.

mod error;
mod identity;
mod listen;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use uc_daemon::metrics::latency_histogram;
use uc_proto::etcdserverpb::auth_server::AuthServer;
use uc_proto::etcdserverpb::cluster_server::ClusterServer;
use uc_proto::etcdserverpb::kv_server::KvServer;
use uc_proto::etcdserverpb::lease_server::LeaseServer;
use uc_proto::etcdserverpb::maintenance_server::MaintenanceServer;
use uc_proto::etcdserverpb::watch_server::WatchServer;
use uc_proto::ucpeer::peer_server::PeerServer;
use uc_types::{ClusterState, InitialMember};

use crate::api;
use crate::node::{Node, Timings};
use crate::raft::log_store::LogStore;
use crate::raft::network::{Acks, Network, PeerChannels, PeerUrls};
use crate::raft::state_machine::StateMachine;
use crate::raft::{Member, NodeId, Raft};

pub use error::{ConfigError, StartError};
pub(crate) use identity::{bootstrap, check_identity, Bootstrap};
use listen::{bind, bound_address, request_span, serve_grpc, Listener};

/// Everything a member needs; built from the rendered config and flags.
#[derive(Debug, Clone)]
pub struct Settings {
    pub name: String,
    pub data_dir: PathBuf,
    pub listen_client_urls: Vec<String>,
    pub advertise_client_urls: Vec<String>,
    pub listen_peer_urls: Vec<String>,
    pub initial_advertise_peer_urls: Vec<String>,
    pub listen_metrics_urls: Vec<String>,
    pub initial_cluster: Vec<InitialMember>,
    pub initial_cluster_state: ClusterState,
    pub initial_cluster_token: String,
    pub election_timeout_ms: u64,
    pub heartbeat_interval_ms: u64,
    pub auto_compaction_retention: Option<Duration>,
    pub quota_backend_bytes: u64,
    pub unsafe_no_fsync: bool,
    pub snapshot_count: u64,
    pub progress_interval: Duration,
    /// Linearizable reads on a leader lease when a quorum acknowledged the
    /// leader recently (see `Node::lease_read_index`); false: a heartbeat
    /// round to a quorum for every read round, as etcd.
    pub lease_reads: bool,
}

/// Parses etcd's `--auto-compaction-retention`: hours, or a duration with a
/// unit (`30m`, `1h`, `90s`); `0` turns it off.
pub fn parse_retention(text: &str) -> Result<Option<Duration>, ConfigError> {
    let text = text.trim();
    let bad = || ConfigError::Retention(text.to_string());
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&text[..i], &text[i..]),
        None => (text, "h"),
    };
    let value: f64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "h" => value * 3600.0,
        "m" => value * 60.0,
        "s" => value,
        _ => return Err(bad()),
    };
    if !(seconds >= 0.0 && seconds.is_finite()) {
        return Err(bad());
    }
    Ok((seconds > 0.0).then(|| Duration::from_secs_f64(seconds)))
}

/// A started member.
pub struct Running {
    pub node: Arc<Node>,
    pub client_addrs: Vec<SocketAddr>,
    pub peer_addrs: Vec<SocketAddr>,
    pub metrics_addrs: Vec<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    log: LogStore,
}

impl Running {
    /// Stops serving, then stops Raft (the log is already durable).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        let _ = self.node.raft.shutdown().await;
        if let Err(err) = self.log.sync().await {
            tracing::warn!(%err, "writing the commit index on shutdown failed");
        }
        if let Err(err) = self.node.shared.flush().await {
            tracing::warn!(%err, "writing the applied state on shutdown failed");
        }
    }
}

pub async fn start(settings: Settings) -> Result<Running, StartError> {
    let dir = &settings.data_dir;
    std::fs::create_dir_all(dir).map_err(|e| StartError::DataDir {
        dir: dir.display().to_string(),
        detail: e.to_string(),
    })?;
    let token = settings.initial_cluster_token.clone();
    let Bootstrap {
        id,
        members,
        cluster_id,
        identity,
    } = bootstrap(
        &settings.name,
        &settings.initial_advertise_peer_urls,
        &settings.initial_cluster,
        &token,
    )?;
    let me_published = Member {
        client_urls: settings.advertise_client_urls.clone(),
        ..members[&id].clone()
    };
    check_identity(dir, &identity)?;

    // Every address first: a port in use changes nothing on disk.
    let mut peer_listeners = Vec::new();
    for url in &settings.listen_peer_urls {
        peer_listeners.push((url.clone(), bind(url).await?));
    }
    let mut client_listeners = Vec::new();
    for url in &settings.listen_client_urls {
        client_listeners.push((url.clone(), bind(url).await?));
    }
    let mut metrics_listeners = Vec::new();
    for url in &settings.listen_metrics_urls {
        metrics_listeners.push((url.clone(), bind(url).await?));
    }

    let db_path = dir.join("raft.redb");
    let log_store =
        LogStore::open(&db_path, !settings.unsafe_no_fsync).map_err(|e| StartError::DataDir {
            dir: dir.display().to_string(),
            detail: match e {
                redb::DatabaseError::DatabaseAlreadyOpen => {
                    "in use by another uc-store process".to_string()
                }
                other => format!("raft.redb: {other}"),
            },
        })?;
    let state_machine = StateMachine::open(dir, !settings.unsafe_no_fsync).map_err(|detail| {
        StartError::DataDir {
            dir: dir.display().to_string(),
            detail: detail.to_string(),
        }
    })?;
    let shared = state_machine.shared();
    let state_commits = shared.state_commit_durations();

    let config = openraft::Config {
        cluster_name: token.clone(),
        heartbeat_interval: settings.heartbeat_interval_ms,
        // openraft waits its leader lease (= the max) plus a random timeout
        // in [min, max) after a committed leader's last heartbeat: this
        // makes a follower stand for election 1.0-1.3 election timeouts
        // after losing the leader, close to etcd's [1, 2).
        election_timeout_min: settings.election_timeout_ms * 35 / 100,
        election_timeout_max: settings.election_timeout_ms * 65 / 100,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(snapshot_interval(
            settings.snapshot_count,
            id,
        )),
        max_in_snapshot_log_to_keep: 1000.min(settings.snapshot_count),
        ..Default::default()
    }
    .validate()
    .map_err(|e| {
        StartError::Config(format!(
            "raft settings: {e} (--election-timeout must be at least 3 times --heartbeat-interval)"
        ))
    })?;
    let peer_urls = PeerUrls::default();
    let channels = PeerChannels::default();
    let acks = Acks::default();
    let round_trips = latency_histogram();
    let network = Network {
        peer_urls: peer_urls.clone(),
        channels: channels.clone(),
        acks: acks.clone(),
        round_trips: round_trips.clone(),
    };
    // openraft's leader lease: how long a follower refuses other candidates
    // after hearing from its leader.
    let leader_lease = Duration::from_millis(config.election_timeout_max);
    let commit_index = log_store.commit_index();
    let log = log_store.clone();
    let raft = Raft::new(id, Arc::new(config), network, log_store, state_machine)
        .await
        .map_err(|e| StartError::Raft(e.to_string()))?;
    let mut membership = raft.metrics();
    tokio::spawn(async move {
        loop {
            let urls: BTreeMap<NodeId, String> = membership
                .borrow_and_update()
                .membership_config
                .membership()
                .nodes()
                .map(|(id, m)| (*id, m.peer_urls.first().cloned().unwrap_or_default()))
                .collect();
            if let Ok(mut current) = peer_urls.write() {
                *current = urls;
            }
            if membership.changed().await.is_err() {
                return;
            }
        }
    });

    let initialized = raft
        .is_initialized()
        .await
        .map_err(|e| StartError::Raft(e.to_string()))?;
    if !initialized && settings.initial_cluster_state == ClusterState::New {
        // Every initial member proposes the same membership; openraft accepts
        // that and the first election decides.
        match raft.initialize(members.clone()).await {
            Ok(()) => tracing::info!(members = members.len(), "bootstrapped a new cluster"),
            Err(err) => tracing::info!(%err, "not bootstrapping"),
        }
    } else if !initialized {
        tracing::info!("joining an existing cluster: waiting for the leader to replicate to this member (add it with `etcdctl member add` first)");
    }

    let (proposals, proposal_queue) = tokio::sync::mpsc::channel(4096);
    let node = Arc::new(Node {
        id,
        cluster_id,
        name: settings.name.clone(),
        token,
        raft,
        shared,
        quota: settings.quota_backend_bytes,
        request_timeout: Duration::from_secs(5),
        election_timeout: Duration::from_millis(settings.election_timeout_ms),
        db_path,
        channels,
        reads: Default::default(),
        accepted: Default::default(),
        acks,
        commit_index,
        lease_window: settings.lease_reads.then_some(leader_lease / 2),
        votes_from: std::time::Instant::now() + leader_lease,
        read_rounds: Default::default(),
        timings: Timings {
            log_commits: log.commit_durations(),
            state_commits,
            round_trips,
            proposals: latency_histogram(),
            proposed_writes: Default::default(),
        },
        proposals,
        membership_changes: tokio::sync::Mutex::new(()),
        quiet: tokio::sync::RwLock::new(()),
        leader_lease,
    });
    tokio::spawn(node.clone().run_proposer(proposal_queue));
    node.publish(me_published);
    let (stop, stopped) = watch::channel(false);
    let mut tasks = Vec::new();
    let mut client_addrs = Vec::new();
    let mut peer_addrs = Vec::new();
    let mut metrics_addrs = Vec::new();

    for (url, listener) in peer_listeners {
        let url = &url;
        peer_addrs.push(bound_address(url, &listener)?);
        let router = tonic::transport::Server::builder()
            .trace_fn(request_span(id))
            .add_service(
                PeerServer::new(api::peer::PeerService { node: node.clone() })
                    .max_decoding_message_size(512 * 1024 * 1024)
                    .max_encoding_message_size(512 * 1024 * 1024),
            );
        tasks.push(tokio::spawn(serve_grpc(
            router,
            listener,
            stopped.clone(),
            url.clone(),
            node.clone(),
            Listener::Peer,
        )));
    }
    for (url, listener) in client_listeners {
        let url = &url;
        client_addrs.push(bound_address(url, &listener)?);
        // etcd's gRPC limit: the request limit plus 512 KiB of overhead.
        let limit = api::kv::MAX_REQUEST_BYTES + 512 * 1024;
        let router = tonic::transport::Server::builder()
            .trace_fn(request_span(id))
            .add_service(
                KvServer::new(api::kv::KvService { node: node.clone() })
                    .max_decoding_message_size(limit),
            )
            .add_service(WatchServer::new(api::watch::WatchService {
                node: node.clone(),
                progress_interval: settings.progress_interval,
            }))
            .add_service(LeaseServer::new(api::lease::LeaseService {
                node: node.clone(),
            }))
            .add_service(ClusterServer::new(api::cluster::ClusterService {
                node: node.clone(),
            }))
            .add_service(MaintenanceServer::new(
                api::maintenance::MaintenanceService { node: node.clone() },
            ))
            .add_service(AuthServer::new(api::auth::AuthService));
        tasks.push(tokio::spawn(serve_grpc(
            router,
            listener,
            stopped.clone(),
            url.clone(),
            node.clone(),
            Listener::Client,
        )));
    }
    // One registry for every metrics URL.
    let metrics = Arc::new(crate::metrics::Metrics::new(&node));
    for (url, listener) in metrics_listeners {
        let url = &url;
        metrics_addrs.push(bound_address(url, &listener)?);
        let app = crate::http::router(node.clone(), metrics.clone());
        let mut stopped = stopped.clone();
        tasks.push(tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            if let Err(err) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(%err, "metrics listener failed");
            }
        }));
    }
    let duties = tokio::spawn(
        node.clone()
            .run_leader_duties(settings.auto_compaction_retention),
    );
    let mut stopped_duties = stopped.clone();
    tasks.push(tokio::spawn(async move {
        let _ = stopped_duties.wait_for(|s| *s).await;
        duties.abort();
    }));
    tracing::info!(
        name = settings.name,
        member_id = format!("{id:x}"),
        cluster_id = format!("{cluster_id:x}"),
        clients = ?client_addrs,
        peers = ?peer_addrs,
        "uc-store serving"
    );
    Ok(Running {
        node,
        client_addrs,
        peer_addrs,
        metrics_addrs,
        stop,
        tasks,
        log,
    })
}

/// Entries between this member's snapshots: --snapshot-count plus a fixed
/// offset of up to a quarter of it, from the member id. A snapshot copies
/// the state under its lock and writes it out; members that all did so at
/// the same index stalled every write of the cluster at once, where with
/// staggered snapshots a quorum of the others goes on.
fn snapshot_interval(snapshot_count: u64, member: u64) -> u64 {
    snapshot_count + member % (snapshot_count / 4 + 1)
}

#[cfg(test)]
mod tests {
    use super::snapshot_interval;

    #[test]
    fn members_snapshot_apart_within_a_quarter_of_the_count() {
        let ids = [
            0x8e1d_07a2_55c3_19f4_u64,
            0x1b2c_3d4e_5f60_7182,
            0xfeed_beef_0000_0003,
        ];
        let intervals: Vec<u64> = ids
            .iter()
            .map(|id| snapshot_interval(10_000, *id))
            .collect();
        assert!(
            intervals.iter().all(|n| (10_000..=12_500).contains(n)),
            "{intervals:?}"
        );
        assert!(
            intervals[0] != intervals[1] && intervals[1] != intervals[2],
            "{intervals:?}"
        );
        assert_eq!(snapshot_interval(1, ids[0]), 1);
        assert_eq!(snapshot_interval(4, 7), 4 + 7 % 2);
    }
}
