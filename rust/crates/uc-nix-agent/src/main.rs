//! `uc-nix-agent`: switches this node to a NixOS system from the cluster's
//! binary cache, health-checks it and rolls back on failure. `run` is the
//! daemon (desired and observed state in the store); `switch` and `recover`
//! do one step by hand and print the observed state as JSON. Reads
//! `/etc/ultracloud/nix-agent.json` unless `--store` is given, in which case
//! the flags are the whole configuration (running by hand, tests).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use uc_nix_agent::nix::NixSystem;
use uc_nix_agent::switch::Switcher;
use uc_types::{DesiredSystem, NixAgentConfig, SwitchAction, SystemState, SCHEMA_VERSION};

#[derive(Parser)]
#[command(
    name = "uc-nix-agent",
    version,
    about = "UltraCloud nix-agent: switch to a NixOS system, health-check, roll back",
    after_help = "Without --store, the config rendered by Nix is read (--config); --node, --http, \
                  --profile, --state-dir, --cache-url and --trusted-public-key then override its fields.\n\
                  With --store, the flags are the whole configuration: --node is required; --http \
                  defaults to 127.0.0.1:7482, --profile to /nix/var/nix/profiles/system, --state-dir \
                  to /var/tmp/uc-nix-agent-<node>, no cache URLs or trusted keys (the machine's \
                  nix.conf), switch action `switch`, a 300 s health gate and no health checks.\n\
                  Example: uc-nix-agent --store http://127.0.0.1:2379 --node node01 --http 127.0.0.1:7482 run"
)]
struct Args {
    #[command(flatten)]
    log: uc_daemon::LogArgs,
    #[command(flatten)]
    daemon: uc_daemon::DaemonArgs,
    /// Binary cache to substitute from (repeatable; overrides the config's cacheUrls).
    #[arg(long = "cache-url", value_name = "URL", global = true)]
    cache_urls: Vec<String>,
    /// Public key a substituted path must be signed with (repeatable;
    /// overrides the config's trustedPublicKeys).
    #[arg(long = "trusted-public-key", value_name = "KEY", global = true)]
    trusted_public_keys: Vec<String>,
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
    let config = match config(&args) {
        Ok(config) => config,
        Err(err) => return uc_daemon::exit_with_error("uc-nix-agent", err),
    };
    let switcher = Switcher {
        nix: NixSystem {
            profile: PathBuf::from(&config.profile),
            store_root: args.store_root,
            cache_urls: config.cache_urls.clone(),
            trusted_public_keys: config.trusted_public_keys.clone(),
        },
        state_dir: PathBuf::from(&config.state_dir),
        action: match config.switch_action {
            SwitchAction::Switch => "switch".into(),
            SwitchAction::Boot => "boot".into(),
        },
        checks: config.health_checks.clone(),
        health_gate: Duration::from_secs(config.health_gate_timeout_seconds),
    };
    let observed = match args.command {
        Command::Run => {
            return uc_daemon::run_daemon(
                "uc-nix-agent",
                uc_nix_agent::daemon::run(config, switcher, uc_daemon::shutdown_signal()),
            )
        }
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

/// The config file with the flags' overrides, or with `--store` the flags
/// alone.
fn config(args: &Args) -> Result<NixAgentConfig, uc_daemon::ConfigError> {
    let mut config = if args.daemon.from_flags() {
        let flags = args.daemon.flags_config(
            None,
            "the node whose desired system this agent switches to",
            SocketAddr::from(([127, 0, 0, 1], 7482)),
        )?;
        NixAgentConfig {
            schema_version: SCHEMA_VERSION,
            state_dir: format!("/var/tmp/uc-nix-agent-{}", flags.node),
            cluster: flags.cluster,
            node: flags.node,
            http_listen: flags.http_listen,
            store_endpoints: flags.store_endpoints,
            profile: "/nix/var/nix/profiles/system".to_owned(),
            cache_urls: Vec::new(),
            trusted_public_keys: Vec::new(),
            switch_action: SwitchAction::Switch,
            health_gate_timeout_seconds: 300,
            health_checks: Vec::new(),
        }
    } else {
        let mut config: NixAgentConfig = args.daemon.load()?;
        args.daemon
            .override_file(&mut config.node, &mut config.http_listen);
        config
    };
    if let Some(profile) = &args.profile {
        config.profile = profile.display().to_string();
    }
    if let Some(dir) = &args.state_dir {
        config.state_dir = dir.display().to_string();
    }
    if !args.cache_urls.is_empty() {
        config.cache_urls.clone_from(&args.cache_urls);
    }
    if !args.trusted_public_keys.is_empty() {
        config
            .trusted_public_keys
            .clone_from(&args.trusted_public_keys);
    }
    Ok(config)
}
