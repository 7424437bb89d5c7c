//! `uc-iam`: the identity service. Reads `/etc/ultracloud/iam.json`
//! (rendered from `cluster.iam`) unless `--store` is given, in which case
//! the flags are the whole configuration (running by hand, tests).

use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use uc_iam::daemon::Options;
use uc_types::{IamConfig, SCHEMA_VERSION};

#[derive(Parser)]
#[command(
    name = "uc-iam",
    version,
    about = "UltraCloud identity service: login by password or API key, short-lived Ed25519 tokens, key rotation, revocation, audit",
    after_help = "Without --store, the config rendered by Nix is read (--config); --node, --http and the \
                  flags below given explicitly override its fields.\n\
                  With --store, the flags are the whole configuration: --node defaults to local, --http to \
                  127.0.0.1:7491, the key and secret files to /var/tmp/uc-iam/ (created 0700).\n\
                  Example: uc-iam --store http://127.0.0.1:2379 --node node01 --http 127.0.0.1:7491"
)]
struct Args {
    #[command(flatten)]
    log: uc_daemon::LogArgs,
    #[command(flatten)]
    daemon: uc_daemon::DaemonArgs,
    /// This node's private token-signing key (0600; generated if absent).
    /// Keep it in the daemon's state directory, never in the Nix store.
    /// [flags default: /var/tmp/uc-iam/signing.key]
    #[arg(long, value_name = "PATH")]
    signing_key_file: Option<PathBuf>,
    /// The bootstrap admin's password, first line (0600). If absent, one is
    /// generated, written there and logged once.
    /// [flags default: /var/tmp/uc-iam/admin.secret]
    #[arg(long, value_name = "PATH")]
    bootstrap_secret_file: Option<PathBuf>,
    /// Lifetime of the tokens issued [flags default: 900].
    #[arg(long, value_name = "SECONDS")]
    token_ttl_seconds: Option<u64>,
    /// How long audit records stay in the store [flags default: 604800, 7 days].
    #[arg(long, value_name = "SECONDS")]
    audit_retention_seconds: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error(transparent)]
    Config(#[from] uc_daemon::ConfigError),
    #[error("cannot create {}: {source}", path.display())]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The config: the flags alone with --store, else the file with the flags
/// given over it.
fn config(args: &Args) -> Result<IamConfig, StartError> {
    let mut config = if args.daemon.from_flags() {
        let http: SocketAddr = ([127, 0, 0, 1], 7491).into();
        let flags = args
            .daemon
            .flags_config(Some("local"), "the node uc-iam runs on", http)
            .map_err(uc_daemon::ConfigError::from)?;
        IamConfig {
            schema_version: SCHEMA_VERSION,
            cluster: flags.cluster,
            node: flags.node,
            http_listen: flags.http_listen,
            store_endpoints: flags.store_endpoints,
            signing_key_file: "/var/tmp/uc-iam/signing.key".into(),
            bootstrap_admin_secret_file: "/var/tmp/uc-iam/admin.secret".into(),
            token_ttl_seconds: 900,
            audit_retention_seconds: 7 * 24 * 3600,
        }
    } else {
        let mut config: IamConfig = args.daemon.load().map_err(uc_daemon::ConfigError::from)?;
        args.daemon
            .override_file(&mut config.node, &mut config.http_listen);
        config
    };
    if let Some(path) = &args.signing_key_file {
        config.signing_key_file = path.display().to_string();
    }
    if let Some(path) = &args.bootstrap_secret_file {
        config.bootstrap_admin_secret_file = path.display().to_string();
    }
    config.token_ttl_seconds = args.token_ttl_seconds.unwrap_or(config.token_ttl_seconds);
    config.audit_retention_seconds = args
        .audit_retention_seconds
        .unwrap_or(config.audit_retention_seconds);
    Ok(config)
}

fn options(args: &Args) -> Result<Options, StartError> {
    let config = config(args)?;
    let files = [
        PathBuf::from(&config.signing_key_file),
        PathBuf::from(&config.bootstrap_admin_secret_file),
    ];
    for file in &files {
        if let Some(dir) = file
            .parent()
            .filter(|d| !d.as_os_str().is_empty() && !d.exists())
        {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|source| StartError::Dir {
                    path: dir.to_owned(),
                    source,
                })?;
        }
    }
    let [signing_key_file, bootstrap_secret_file] = files;
    Ok(Options {
        node: config.node,
        http_listen: config.http_listen,
        store_endpoints: config.store_endpoints,
        signing_key_file,
        bootstrap_secret_file,
        token_ttl: Duration::from_secs(config.token_ttl_seconds.max(1)),
        audit_retention: Duration::from_secs(config.audit_retention_seconds.max(60)),
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    uc_daemon::init_logging("info", args.log.log_format);
    let options = match options(&args) {
        Ok(options) => options,
        Err(err) => return uc_daemon::exit_with_error("uc-iam", err),
    };
    uc_daemon::run_daemon(
        "uc-iam",
        uc_iam::daemon::run(options, uc_daemon::shutdown_signal()),
    )
}
