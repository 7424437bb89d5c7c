//! `uc-nix-agent`: switches this node to a NixOS system from the cluster's
//! binary cache, health-checks it and rolls back on failure. `run` is the
//! daemon (desired and observed state in the store); `switch` and `recover`
//! do one step by hand and print the observed state as JSON.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use uc_nix_agent::nix::NixSystem;
use uc_nix_agent::switch::Switcher;
use uc_types::{DaemonConfig, DesiredSystem, NixAgentConfig, SwitchAction, SystemState};

#[derive(Parser)]
#[command(
    name = "uc-nix-agent",
    version,
    about = "UltraCloud nix-agent: switch to a NixOS system, health-check, roll back"
)]
struct Args {
    #[command(flatten)]
    log: uc_daemon::LogArgs,
    /// Config rendered by Nix (manifest.nodes.<node>.daemons.nix-agent).
    #[arg(long, default_value = "/etc/ultracloud/nix-agent.json")]
    config: PathBuf,
    /// Act on a chroot store rooted here instead of the machine's store
    /// (tests and demos on machines that are not the node).
    #[arg(long)]
    store_root: Option<PathBuf>,
    /// Override the config's profile.
    #[arg(long)]
    profile: Option<PathBuf>,
    /// Override the config's stateDir.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The daemon: watch this node's desired system in the store, switch,
    /// report the observed state; /health and /metrics on httpListen.
    Run,
    /// Switch to a system store path; print the observed state as JSON.
    Switch {
        store_path: String,
        /// The desired generation this switch answers.
        #[arg(long, default_value_t = 0)]
        generation: u64,
    },
    /// Finish or undo a switch a killed agent left behind.
    Recover,
}

fn main() -> ExitCode {
    let args = Args::parse();
    uc_daemon::init_logging("info", args.log.log_format);
    let config = match NixAgentConfig::load(&args.config) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("uc-nix-agent: {err}");
            return ExitCode::FAILURE;
        }
    };
    let switcher = Switcher {
        nix: NixSystem {
            profile: args
                .profile
                .unwrap_or_else(|| PathBuf::from(&config.profile)),
            store_root: args.store_root,
            cache_urls: config.cache_urls.clone(),
            trusted_public_keys: config.trusted_public_keys.clone(),
        },
        state_dir: args
            .state_dir
            .unwrap_or_else(|| PathBuf::from(&config.state_dir)),
        action: match config.switch_action {
            SwitchAction::Switch => "switch".into(),
            SwitchAction::Boot => "boot".into(),
        },
        checks: config.health_checks.clone(),
        health_gate: Duration::from_secs(config.health_gate_timeout_seconds),
    };
    let observed = match args.command {
        Command::Run => return daemon(config, switcher),
        Command::Switch {
            store_path,
            generation,
        } => Some(switcher.switch(&DesiredSystem {
            store_path,
            generation,
            rollout: None,
        })),
        Command::Recover => switcher.recover(),
    };
    match observed {
        None => {
            println!("null");
            ExitCode::SUCCESS
        }
        Some(observed) => {
            println!("{}", serde_json::to_string(&observed).unwrap_or_default());
            if observed.state == SystemState::Healthy {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn daemon(config: NixAgentConfig, switcher: Switcher) -> ExitCode {
    let runtime = match uc_daemon::runtime("uc-nix-agent") {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    match runtime.block_on(uc_nix_agent::daemon::run(
        config,
        switcher,
        uc_daemon::shutdown_signal(),
    )) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            eprintln!("uc-nix-agent: {err}");
            ExitCode::FAILURE
        }
    }
}
