//! `uc-scheduler`: places service replicas on nodes. `run` is the daemon;
//! `plan` prints the placement the leader would make now, writing nothing.
//! Reads `/etc/ultracloud/scheduler.json` unless `--store` is given, in
//! which case the flags are the whole configuration (running by hand, tests).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use uc_scheduler::daemon::Options;
use uc_types::{SchedulerConfig, SCHEMA_VERSION};

#[derive(Parser)]
#[command(
    name = "uc-scheduler",
    version,
    about = "UltraCloud scheduler: place service replicas on nodes, react to node loss and drains",
    after_help = "Without --store, the config rendered by Nix is read (--config); --node, --http \
                  and --node-loss-grace-seconds then override its fields.\n\
                  With --store, the flags are the whole configuration: --node defaults to local, \
                  --http to 127.0.0.1:7481, --node-loss-grace-seconds to 60.\n\
                  Example: uc-scheduler --store http://127.0.0.1:2379 --node node01 --http 127.0.0.1:7481 run"
)]
struct Args {
    #[command(flatten)]
    log: uc_daemon::LogArgs,
    #[command(flatten)]
    daemon: uc_daemon::DaemonArgs,
    /// How long a node's heartbeat may be missing before its instances are
    /// placed elsewhere [flags default: 60].
    #[arg(long, value_name = "SECONDS", global = true)]
    node_loss_grace_seconds: Option<u64>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The daemon: campaign for leadership; as the leader, keep every
    /// service's assignments in the store placed; /health and /metrics on
    /// httpListen.
    Run {
        /// Name in the leader key (default: <node>-<pid>).
        #[arg(long)]
        holder: Option<String>,
        /// Seconds a dead leader's lease lives before a standby takes over.
        #[arg(long, default_value_t = 10)]
        leader_ttl_seconds: u64,
    },
    /// Print the plan for the store's current state as JSON (nodes without a
    /// heartbeat count as briefly silent); writes nothing.
    Plan,
}

fn main() -> ExitCode {
    let args = Args::parse();
    uc_daemon::init_logging("info", args.log.log_format);
    let config = match config(&args) {
        Ok(config) => config,
        Err(err) => return uc_daemon::exit_with_error("uc-scheduler", err),
    };
    let command = async move {
        match args.command {
            Command::Run {
                holder,
                leader_ttl_seconds,
            } => {
                let options = Options {
                    holder: holder
                        .unwrap_or_else(|| format!("{}-{}", config.node, std::process::id())),
                    leader_ttl: Duration::from_secs(leader_ttl_seconds.max(1)),
                };
                uc_scheduler::daemon::run(config, options, uc_daemon::shutdown_signal()).await
            }
            Command::Plan => plan(config).await,
        }
    };
    uc_daemon::run_daemon("uc-scheduler", command)
}

async fn plan(config: SchedulerConfig) -> Result<(), uc_scheduler::daemon::Error> {
    let plan = uc_scheduler::daemon::dry_run(&config.store_endpoints).await?;
    println!("{plan}");
    Ok(())
}

/// The config file with the flags' overrides, or with `--store` the flags
/// alone.
fn config(args: &Args) -> Result<SchedulerConfig, uc_daemon::ConfigError> {
    let mut config = if args.daemon.from_flags() {
        let flags = args.daemon.flags_config(
            Some("local"),
            "the node this scheduler runs on",
            SocketAddr::from(([127, 0, 0, 1], 7481)),
        )?;
        SchedulerConfig {
            schema_version: SCHEMA_VERSION,
            cluster: flags.cluster,
            node: flags.node,
            http_listen: flags.http_listen,
            store_endpoints: flags.store_endpoints,
            node_loss_grace_seconds: 60,
        }
    } else {
        let mut config: SchedulerConfig = args.daemon.load()?;
        args.daemon
            .override_file(&mut config.node, &mut config.http_listen);
        config
    };
    if let Some(grace) = args.node_loss_grace_seconds {
        config.node_loss_grace_seconds = grace;
    }
    Ok(config)
}
