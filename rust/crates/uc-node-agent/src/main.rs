//! `uc-node-agent`: runs the instances assigned to this node. Reads
//! `/etc/ultracloud/node-agent.json` unless `--store` is given, in which
//! case the flags are the whole configuration (running by hand, tests).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use uc_node_agent::daemon::Options;
use uc_node_agent::runner::Backend;
use uc_types::{NodeAgentConfig, SCHEMA_VERSION};

#[derive(Clone, Copy, ValueEnum)]
enum BackendChoice {
    /// systemd when it is PID 1, otherwise supervised processes.
    Auto,
    Process,
    Systemd,
}

#[derive(Parser)]
#[command(
    name = "uc-node-agent",
    version,
    about = "UltraCloud node-agent: run the service instances assigned to this node, health-check them, heartbeat",
    after_help = "Without --store, the config rendered by Nix is read (--config); --node, --http, \
                  --address, --state-dir and --heartbeat-ttl-seconds then override its fields.\n\
                  With --store, the flags are the whole configuration: --node is required; --http \
                  defaults to 127.0.0.1:7483, --address to 127.0.0.1, --state-dir to \
                  /var/tmp/uc-node-agent-<node>, --heartbeat-ttl-seconds to 10.\n\
                  Example: uc-node-agent --store http://127.0.0.1:2379 --node node01 --http 127.0.0.1:7483 --backend process"
)]
struct Args {
    #[command(flatten)]
    log: uc_daemon::LogArgs,
    #[command(flatten)]
    daemon: uc_daemon::DaemonArgs,
    /// The node's address instances bind to (UC_ADDRESS) [flags default: 127.0.0.1].
    #[arg(long, value_name = "IP")]
    address: Option<IpAddr>,
    /// Instance records and logs [flags default: /var/tmp/uc-node-agent-<node>].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// TTL of the node's heartbeat lease [flags default: 10].
    #[arg(long, value_name = "SECONDS")]
    heartbeat_ttl_seconds: Option<u64>,
    /// How instances run: transient systemd units or child processes.
    #[arg(long, value_enum, default_value = "auto")]
    backend: BackendChoice,
    /// Seconds between SIGTERM and SIGKILL when stopping an instance.
    #[arg(long, default_value_t = 10)]
    stop_timeout_seconds: u64,
    /// Rotate an instance's log beyond this size.
    #[arg(long, default_value_t = 10 << 20)]
    log_max_bytes: u64,
    /// Rotated logs kept per instance.
    #[arg(long, default_value_t = 3)]
    log_keep: u32,
    /// On SIGTERM, stop every instance (default: leave them running; the
    /// next start adopts them).
    #[arg(long)]
    stop_instances_on_exit: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    uc_daemon::init_logging("info", args.log.log_format);
    let config = match config(&args) {
        Ok(config) => config,
        Err(err) => return uc_daemon::exit_with_error("uc-node-agent", err),
    };
    let options = Options {
        backend: match args.backend {
            BackendChoice::Auto => Backend::detect(),
            BackendChoice::Process => Backend::Process,
            BackendChoice::Systemd => Backend::Systemd,
        },
        stop_timeout: Duration::from_secs(args.stop_timeout_seconds),
        log_max_bytes: args.log_max_bytes,
        log_keep: args.log_keep,
        stop_instances_on_exit: args.stop_instances_on_exit,
    };
    uc_daemon::run_daemon(
        "uc-node-agent",
        uc_node_agent::daemon::run(config, options, uc_daemon::shutdown_signal()),
    )
}

/// The config file with the flags' overrides, or with `--store` the flags
/// alone.
fn config(args: &Args) -> Result<NodeAgentConfig, uc_daemon::ConfigError> {
    let mut config = if args.daemon.from_flags() {
        let flags = args.daemon.flags_config(
            None,
            "the node whose instances this agent runs and whose heartbeat it writes",
            SocketAddr::from(([127, 0, 0, 1], 7483)),
        )?;
        NodeAgentConfig {
            schema_version: SCHEMA_VERSION,
            state_dir: format!("/var/tmp/uc-node-agent-{}", flags.node),
            cluster: flags.cluster,
            node: flags.node,
            http_listen: flags.http_listen,
            store_endpoints: flags.store_endpoints,
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            heartbeat_ttl_seconds: 10,
        }
    } else {
        let mut config: NodeAgentConfig = args.daemon.load()?;
        args.daemon
            .override_file(&mut config.node, &mut config.http_listen);
        config
    };
    if let Some(address) = args.address {
        config.address = address;
    }
    if let Some(dir) = &args.state_dir {
        config.state_dir = dir.display().to_string();
    }
    if let Some(ttl) = args.heartbeat_ttl_seconds {
        config.heartbeat_ttl_seconds = ttl;
    }
    Ok(config)
}
