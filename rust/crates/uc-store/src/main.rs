//! `uc-store`: a member of UltraCloud's store. Reads the config Nix renders
//! (`/etc/ultracloud/store.json`) when given `--config`; every etcd flag
//! below overrides it and has etcd's name and meaning, so scripts written
//! for etcd keep working.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use uc_store::restore::{restore, Restore};
use uc_store::server::{parse_retention, ConfigError, Settings};
use uc_types::{ClusterState, DaemonConfig, InitialMember, StoreConfig};

#[derive(Parser)]
#[command(
    name = "uc-store",
    version,
    about = "UltraCloud store: a Raft-replicated key-value store speaking etcd's v3 API",
    args_conflicts_with_subcommands = true
)]
struct Args {
    #[command(flatten)]
    log: uc_daemon::LogArgs,
    #[command(subcommand)]
    command: Option<Command>,
    /// Config rendered by Nix (manifest.nodes.<node>.daemons.store); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Human-readable name for this member.
    #[arg(long)]
    name: Option<String>,
    /// Path to the data directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// URLs to listen on for client traffic (comma-separated).
    #[arg(long, value_delimiter = ',')]
    listen_client_urls: Option<Vec<String>>,
    /// This member's client URLs to advertise to the rest of the cluster.
    #[arg(long, value_delimiter = ',')]
    advertise_client_urls: Option<Vec<String>>,
    /// URLs to listen on for peer traffic.
    #[arg(long, value_delimiter = ',')]
    listen_peer_urls: Option<Vec<String>>,
    /// This member's peer URLs to advertise to the rest of the cluster.
    #[arg(long, value_delimiter = ',')]
    initial_advertise_peer_urls: Option<Vec<String>>,
    /// URLs for /metrics and /health.
    #[arg(long, value_delimiter = ',')]
    listen_metrics_urls: Option<Vec<String>>,
    /// Initial cluster configuration for bootstrapping: name=peerURL,...
    #[arg(long)]
    initial_cluster: Option<String>,
    /// `new` to bootstrap, `existing` to join a cluster this member was added to.
    #[arg(long)]
    initial_cluster_state: Option<String>,
    /// Initial cluster token; part of every member and cluster id.
    #[arg(long)]
    initial_cluster_token: Option<String>,
    /// Time (in milliseconds) of a heartbeat interval.
    #[arg(long)]
    heartbeat_interval: Option<u64>,
    /// Time (in milliseconds) for an election to timeout.
    #[arg(long)]
    election_timeout: Option<u64>,
    /// Auto compaction retention: hours, or a duration (`30m`); 0 disables it.
    #[arg(long)]
    auto_compaction_retention: Option<String>,
    /// Raise a NOSPACE alarm when the keyspace exceeds this size (0: 2 GiB).
    #[arg(long)]
    quota_backend_bytes: Option<u64>,
    /// Applied entries between Raft snapshots (the log before one is purged).
    #[arg(long, default_value_t = 10_000)]
    snapshot_count: u64,
    /// Do not fsync the Raft log: acknowledged writes can be lost on a crash.
    /// For tests only, as etcd's flag of the same name.
    #[arg(long)]
    unsafe_no_fsync: bool,
    /// Serve linearizable reads on the leader's lease while a quorum of
    /// followers acknowledged it within half the leader lease (no heartbeat
    /// round per read; assumes members' clocks run at nearly the same rate).
    /// false: confirm leadership with a quorum for every read round, as etcd.
    /// [default: true]
    #[arg(long, action = clap::ArgAction::Set)]
    lease_reads: Option<bool>,
    /// Seconds between progress notifications to watchers that asked for them.
    #[arg(long, default_value_t = 600)]
    watch_progress_notify_interval: u64,
    /// debug, info, warn or error (RUST_LOG overrides it).
    #[arg(long, default_value = "info")]
    log_level: String,
}

#[derive(Subcommand)]
enum Command {
    /// Snapshot tools, as `etcdctl snapshot`.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
}

#[derive(Subcommand)]
enum SnapshotCommand {
    /// Makes the data dir of one member of a new cluster from a snapshot
    /// saved with `etcdctl snapshot save` (from uc-store or from etcd 3.x),
    /// as `etcdctl snapshot restore`. Restore every member from the same
    /// file with the same --initial-cluster and --initial-cluster-token,
    /// then start each with `--initial-cluster-state new`.
    Restore(RestoreArgs),
}

#[derive(clap::Args)]
struct RestoreArgs {
    /// The snapshot file.
    file: PathBuf,
    /// Human-readable name for this member.
    #[arg(long, default_value = "default")]
    name: String,
    /// Path to the data directory to create [default: <name>.etcd].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Initial cluster configuration for the new cluster: name=peerURL,...
    #[arg(long, default_value = "default=http://localhost:2380")]
    initial_cluster: String,
    /// Initial cluster token for the new cluster.
    #[arg(long, default_value = "etcd-cluster")]
    initial_cluster_token: String,
    /// This member's peer URLs.
    #[arg(long, value_delimiter = ',', default_value = "http://localhost:2380")]
    initial_advertise_peer_urls: Vec<String>,
    /// Restore a file without etcdctl's SHA-256 trailer (e.g. a member's
    /// member/snap/db, or a copy of a uc-store's snapshot.bin).
    #[arg(long)]
    skip_hash_check: bool,
}

fn snapshot_restore(args: RestoreArgs) -> ExitCode {
    let request = match parse_initial_cluster(&args.initial_cluster) {
        Ok(initial_cluster) => Restore {
            data_dir: args
                .data_dir
                .unwrap_or_else(|| PathBuf::from(format!("{}.etcd", args.name))),
            snapshot: args.file,
            name: args.name,
            initial_cluster,
            initial_advertise_peer_urls: args.initial_advertise_peer_urls,
            initial_cluster_token: args.initial_cluster_token,
            skip_hash_check: args.skip_hash_check,
        },
        Err(err) => return uc_daemon::exit_with_error("uc-store snapshot restore", err),
    };
    match restore(&request) {
        Ok(done) => {
            println!(
                "restored {} ({} snapshot) into {}: revision {}, compacted {}, {} keys ({} changes kept), {} leases",
                request.snapshot.display(),
                done.format,
                request.data_dir.display(),
                done.revision,
                done.compacted_revision,
                done.keys,
                done.records,
                done.leases,
            );
            if done.orphaned_lease_keys > 0 {
                println!(
                    "warning: {} keys are attached to leases the snapshot does not hold; they stay, attached to nothing (as etcd)",
                    done.orphaned_lease_keys
                );
            }
            println!(
                "start member {:?} with --data-dir {} --initial-cluster-state new and the same --initial-cluster and --initial-cluster-token",
                request.name,
                request.data_dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(err) => uc_daemon::exit_with_error("uc-store snapshot restore", err),
    }
}

fn parse_initial_cluster(text: &str) -> Result<Vec<InitialMember>, ConfigError> {
    let mut members: Vec<InitialMember> = Vec::new();
    for part in text.split(',').filter(|p| !p.is_empty()) {
        let (name, url) = part
            .split_once('=')
            .ok_or_else(|| ConfigError::InitialCluster(part.to_string()))?;
        match members.iter_mut().find(|m| m.name == name) {
            Some(member) => member.peer_urls.push(url.to_string()),
            None => members.push(InitialMember {
                name: name.to_string(),
                peer_urls: vec![url.to_string()],
            }),
        }
    }
    Ok(members)
}

fn settings(args: Args) -> Result<Settings, ConfigError> {
    let base = match &args.config {
        Some(path) => Some(StoreConfig::load(path)?),
        None => None,
    };
    // etcd's defaults when neither the config nor a flag sets a value.
    let name = args
        .name
        .or(base.as_ref().map(|c| c.name.clone()))
        .unwrap_or_else(|| "default".into());
    let peer_urls = args
        .initial_advertise_peer_urls
        .or(base.as_ref().map(|c| c.initial_advertise_peer_urls.clone()))
        .unwrap_or_else(|| vec!["http://localhost:2380".into()]);
    let initial_cluster = match args.initial_cluster {
        Some(text) => parse_initial_cluster(&text)?,
        None => match &base {
            Some(c) => c.initial_cluster.clone(),
            None => vec![InitialMember {
                name: name.clone(),
                peer_urls: peer_urls.clone(),
            }],
        },
    };
    let state = match args.initial_cluster_state.as_deref() {
        None => base
            .as_ref()
            .map_or(ClusterState::New, |c| c.initial_cluster_state),
        Some("new") => ClusterState::New,
        Some("existing") => ClusterState::Existing,
        Some(other) => return Err(ConfigError::InitialClusterState(other.to_string())),
    };
    let retention = args
        .auto_compaction_retention
        .or(base.as_ref().map(|c| c.auto_compaction_retention.clone()))
        .unwrap_or_else(|| "0".into());
    let heartbeat = args
        .heartbeat_interval
        .or(base.as_ref().map(|c| c.heartbeat_interval_ms))
        .unwrap_or(100);
    let election = args
        .election_timeout
        .or(base.as_ref().map(|c| c.election_timeout_ms))
        .unwrap_or(1000);
    if heartbeat == 0 || election <= heartbeat {
        return Err(ConfigError::Timeouts {
            election_ms: election,
            heartbeat_ms: heartbeat,
        });
    }
    Ok(Settings {
        data_dir: args
            .data_dir
            .or(base.as_ref().map(|c| PathBuf::from(&c.data_dir)))
            .unwrap_or_else(|| PathBuf::from(format!("{name}.etcd"))),
        listen_client_urls: args
            .listen_client_urls
            .or(base.as_ref().map(|c| c.listen_client_urls.clone()))
            .unwrap_or_else(|| vec!["http://localhost:2379".into()]),
        advertise_client_urls: args
            .advertise_client_urls
            .or(base.as_ref().map(|c| c.advertise_client_urls.clone()))
            .unwrap_or_else(|| vec!["http://localhost:2379".into()]),
        listen_peer_urls: args
            .listen_peer_urls
            .or(base.as_ref().map(|c| c.listen_peer_urls.clone()))
            .unwrap_or_else(|| vec!["http://localhost:2380".into()]),
        initial_advertise_peer_urls: peer_urls,
        listen_metrics_urls: args
            .listen_metrics_urls
            .or(base.as_ref().map(|c| c.listen_metrics_urls.clone()))
            .unwrap_or_default(),
        initial_cluster,
        initial_cluster_state: state,
        initial_cluster_token: args
            .initial_cluster_token
            .or(base.as_ref().map(|c| c.initial_cluster_token.clone()))
            .unwrap_or_else(|| "etcd-cluster".into()),
        election_timeout_ms: election,
        heartbeat_interval_ms: heartbeat,
        auto_compaction_retention: parse_retention(&retention)?,
        quota_backend_bytes: args
            .quota_backend_bytes
            .or(base.as_ref().map(|c| c.quota_backend_bytes))
            .unwrap_or(0),
        unsafe_no_fsync: args.unsafe_no_fsync,
        snapshot_count: args.snapshot_count.max(1),
        progress_interval: Duration::from_secs(args.watch_progress_notify_interval.max(1)),
        lease_reads: args
            .lease_reads
            .or(base.as_ref().map(|c| c.lease_reads))
            .unwrap_or(true),
        name,
    })
}

fn main() -> ExitCode {
    let mut args = Args::parse();
    if let Some(Command::Snapshot(SnapshotCommand::Restore(restore))) = args.command.take() {
        return snapshot_restore(restore);
    }
    let level = match args.log_level.as_str() {
        "debug" | "info" | "warn" | "error" => args.log_level.clone(),
        other => {
            eprintln!("uc-store: --log-level {other:?}: expected debug, info, warn or error");
            return ExitCode::FAILURE;
        }
    };
    uc_daemon::init_logging(&format!("{level},openraft=warn"), args.log.log_format);
    let settings = match settings(args) {
        Ok(settings) => settings,
        Err(err) => return uc_daemon::exit_with_error("uc-store", err),
    };
    uc_daemon::run_daemon("uc-store", async move {
        let running = uc_store::server::start(settings).await?;
        uc_daemon::shutdown_signal().await;
        tracing::info!("stopping");
        running.shutdown().await;
        tracing::info!("stopped");
        Ok::<(), uc_store::server::StartError>(())
    })
}
