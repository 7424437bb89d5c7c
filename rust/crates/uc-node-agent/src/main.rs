//! `uc-node-agent`: runs the instances assigned to this node.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use uc_node_agent::daemon::Options;
use uc_node_agent::runner::Backend;
use uc_types::{DaemonConfig, NodeAgentConfig};

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
    about = "UltraCloud node-agent: run the service instances assigned to this node, health-check them, heartbeat"
)]
struct Args {
    #[command(flatten)]
    log: uc_daemon::LogArgs,
    /// Config rendered by Nix (manifest.nodes.<node>.daemons.node-agent).
    #[arg(long, default_value = "/etc/ultracloud/node-agent.json")]
    config: PathBuf,
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
    let config = match NodeAgentConfig::load(&args.config) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("uc-node-agent: {err}");
            return ExitCode::FAILURE;
        }
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
    let runtime = match uc_daemon::runtime("uc-node-agent") {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    match runtime.block_on(uc_node_agent::daemon::run(
        config,
        options,
        uc_daemon::shutdown_signal(),
    )) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            eprintln!("uc-node-agent: {err}");
            ExitCode::FAILURE
        }
    }
}
