//! `uc-scheduler`: places service replicas on nodes. `run` is the daemon;
//! `plan` prints the placement the leader would make now, writing nothing.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use uc_scheduler::daemon::Options;
use uc_types::{DaemonConfig, SchedulerConfig};

#[derive(Parser)]
#[command(
    name = "uc-scheduler",
    version,
    about = "UltraCloud scheduler: place service replicas on nodes, react to node loss and drains"
)]
struct Args {
    #[command(flatten)]
    log: uc_daemon::LogArgs,
    /// Config rendered by Nix (manifest.nodes.<node>.daemons.scheduler).
    #[arg(long, default_value = "/etc/ultracloud/scheduler.json")]
    config: PathBuf,
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
    let config = match SchedulerConfig::load(&args.config) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("uc-scheduler: {err}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match uc_daemon::runtime("uc-scheduler") {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let result = match args.command {
        Command::Run {
            holder,
            leader_ttl_seconds,
        } => {
            let options = Options {
                holder: holder.unwrap_or_else(|| format!("{}-{}", config.node, std::process::id())),
                leader_ttl: Duration::from_secs(leader_ttl_seconds.max(1)),
            };
            runtime.block_on(uc_scheduler::daemon::run(
                config,
                options,
                uc_daemon::shutdown_signal(),
            ))
        }
        Command::Plan => runtime.block_on(plan(config)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            eprintln!("uc-scheduler: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn plan(config: SchedulerConfig) -> Result<(), uc_scheduler::daemon::Error> {
    let plan = uc_scheduler::daemon::dry_run(&config.store_endpoints).await?;
    println!("{plan}");
    Ok(())
}
