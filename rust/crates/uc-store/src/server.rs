//! Starting and stopping a member: data dir checks, Raft, the client, peer
//! and metrics listeners, the leader's duties.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::StreamExt;
use uc_daemon::metrics::{Histogram, LATENCY_SECONDS};
use uc_proto::etcdserverpb::auth_server::AuthServer;
use uc_proto::etcdserverpb::cluster_server::ClusterServer;
use uc_proto::etcdserverpb::kv_server::KvServer;
use uc_proto::etcdserverpb::lease_server::LeaseServer;
use uc_proto::etcdserverpb::maintenance_server::MaintenanceServer;
use uc_proto::etcdserverpb::watch_server::WatchServer;
use uc_proto::ucpeer::peer_server::PeerServer;
use uc_types::{ClusterState, InitialMember};

use crate::api;
use crate::ids;
use crate::node::{Node, Timings};
use crate::raft::log_store::LogStore;
use crate::raft::network::{Acks, Network, PeerChannels, PeerUrls};
use crate::raft::state_machine::StateMachine;
use crate::raft::{Member, NodeId, Raft};

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

/// Who this data dir belongs to, written on first start.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Identity {
    name: String,
    member_id: String,
    cluster_id: String,
    token: String,
}

/// Parses etcd's `--auto-compaction-retention`: hours, or a duration with a
/// unit (`30m`, `1h`, `90s`); `0` turns it off.
pub fn parse_retention(text: &str) -> Result<Option<Duration>, String> {
    let text = text.trim();
    let bad = || {
        format!("--auto-compaction-retention {text:?}: expected hours (\"1\") or a duration (\"30m\", \"1h\", \"90s\")")
    };
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

fn socket_addr(url: &str) -> Result<SocketAddr, StartError> {
    let bad = |detail: &str| StartError::Config(format!("URL {url:?}: {detail}"));
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| bad("only http:// is supported (no TLS yet)"))?;
    let host_port = rest.trim_end_matches('/');
    let host_port = host_port.replace("localhost", "127.0.0.1");
    host_port
        .parse()
        .map_err(|_| bad("expected http://<ip>:<port>"))
}

async fn bind(url: &str) -> Result<TcpListener, StartError> {
    let addr = socket_addr(url)?;
    TcpListener::bind(addr)
        .await
        .map_err(|err| StartError::Listen {
            url: url.to_string(),
            detail: if err.kind() == std::io::ErrorKind::AddrInUse {
                "address already in use (another etcd or uc-store running?)".to_string()
            } else {
                err.to_string()
            },
        })
}

/// This member's id, the initial members and the cluster id, as every
/// initial member computes them from the same flags.
pub(crate) struct Bootstrap {
    pub id: NodeId,
    /// Without client URLs: every initial member must propose the very same
    /// membership (it is entry 0 of every log); they are published later.
    pub members: BTreeMap<NodeId, Member>,
    pub cluster_id: u64,
    pub identity: Identity,
}

pub(crate) fn bootstrap(
    name: &str,
    advertise_peer_urls: &[String],
    initial_cluster: &[InitialMember],
    token: &str,
) -> Result<Bootstrap, StartError> {
    if advertise_peer_urls.is_empty() {
        return Err(StartError::Config(
            "--initial-advertise-peer-urls is empty".into(),
        ));
    }
    let id = ids::member_id(advertise_peer_urls, token);
    let mut members = BTreeMap::new();
    for member in initial_cluster {
        members.insert(
            ids::member_id(&member.peer_urls, token),
            Member {
                name: member.name.clone(),
                peer_urls: member.peer_urls.clone(),
                client_urls: Vec::new(),
            },
        );
    }
    let Some(me) = members.get(&id) else {
        return Err(StartError::Config(format!(
            "--initial-cluster has no member with this member's --initial-advertise-peer-urls {advertise_peer_urls:?} (member {name:?})"
        )));
    };
    if me.name != name {
        return Err(StartError::Config(format!(
            "--initial-cluster names the member with peer URLs {:?} {:?}, but --name is {name:?}",
            me.peer_urls, me.name
        )));
    }
    let ids_list: Vec<u64> = members.keys().copied().collect();
    let cluster_id = ids::cluster_id(&ids_list, token);
    Ok(Bootstrap {
        id,
        members,
        cluster_id,
        identity: Identity {
            name: name.to_string(),
            member_id: format!("{id:x}"),
            cluster_id: format!("{cluster_id:x}"),
            token: token.to_string(),
        },
    })
}

/// Writes the identity into a new data dir, or checks the one found there.
pub(crate) fn check_identity(dir: &Path, identity: &Identity) -> Result<(), StartError> {
    let path = dir.join("member.json");
    let data_dir_error = |detail: String| StartError::DataDir {
        dir: dir.display().to_string(),
        detail,
    };
    match std::fs::read(&path) {
        Ok(bytes) => {
            let found: Identity = serde_json::from_slice(&bytes).map_err(|e| {
                data_dir_error(format!(
                    "member.json is not a uc-store identity ({e}); is this the right --data-dir?"
                ))
            })?;
            if found.cluster_id != identity.cluster_id || found.token != identity.token {
                return Err(data_dir_error(format!(
                    "cluster-id mismatch: the data dir belongs to cluster {} (token {:?}), the config describes cluster {} (token {:?}); point --data-dir elsewhere or fix --initial-cluster/--initial-cluster-token",
                    found.cluster_id, found.token, identity.cluster_id, identity.token
                )));
            }
            if found.member_id != identity.member_id {
                return Err(data_dir_error(format!(
                    "the data dir belongs to member {} ({}), this is member {} ({}); --name or --initial-advertise-peer-urls changed?",
                    found.name, found.member_id, identity.name, identity.member_id
                )));
            }
            Ok(())
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let foreign = std::fs::read_dir(dir)
                .map_err(|e| data_dir_error(e.to_string()))?
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .find(|name| !name.starts_with('.'));
            if let Some(name) = foreign {
                return Err(data_dir_error(format!(
                    "not empty and not a uc-store data dir (found {name:?}, no member.json); refusing to use it"
                )));
            }
            let bytes =
                serde_json::to_vec_pretty(identity).map_err(|e| data_dir_error(e.to_string()))?;
            std::fs::write(&path, bytes).map_err(|e| data_dir_error(e.to_string()))
        }
        Err(err) => Err(data_dir_error(err.to_string())),
    }
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
            detail,
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
    let round_trips = Arc::new(Histogram::new(LATENCY_SECONDS));
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
            proposals: Histogram::new(LATENCY_SECONDS),
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
        peer_addrs.push(listener.local_addr().map_err(|e| StartError::Listen {
            url: url.clone(),
            detail: e.to_string(),
        })?);
        let router = tonic::transport::Server::builder().add_service(
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
        client_addrs.push(listener.local_addr().map_err(|e| StartError::Listen {
            url: url.clone(),
            detail: e.to_string(),
        })?);
        // etcd's gRPC limit: the request limit plus 512 KiB of overhead.
        let limit = api::kv::MAX_REQUEST_BYTES + 512 * 1024;
        let router = tonic::transport::Server::builder()
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
    for (url, listener) in metrics_listeners {
        let url = &url;
        metrics_addrs.push(listener.local_addr().map_err(|e| StartError::Listen {
            url: url.clone(),
            detail: e.to_string(),
        })?);
        let app = crate::http::router(node.clone());
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

enum Listener {
    Peer,
    Client,
}

async fn serve_grpc(
    router: tonic::transport::server::Router,
    listener: TcpListener,
    mut stopped: watch::Receiver<bool>,
    url: String,
    node: Arc<Node>,
    kind: Listener,
) {
    // Small request/response messages: without TCP_NODELAY every answer
    // waits for the peer's delayed ACK (~40 ms).
    let incoming = TcpListenerStream::new(listener).map(move |stream| {
        let stream = stream?;
        let accepted = match kind {
            Listener::Peer => &node.accepted.peer,
            Listener::Client => &node.accepted.client,
        };
        accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        stream.set_nodelay(true)?;
        Ok::<_, std::io::Error>(crate::authority_fix::AuthorityFix::new(stream))
    });
    let shutdown = async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    if let Err(err) = router
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
    {
        tracing::error!(%err, url, "gRPC listener failed");
    }
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
