//! `uc-iam`: the identity service. Runs from flags (`--store` …); the
//! config file rendered from `cluster.iam` is not there yet (docs/iam.md).

use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use uc_iam::daemon::Options;

#[derive(Parser)]
#[command(
    name = "uc-iam",
    version,
    about = "UltraCloud identity service: login by password or API key, short-lived Ed25519 tokens, key rotation, revocation, audit",
    after_help = "Runs from flags: --store is required; --node defaults to local, --http to 127.0.0.1:7491, \
                  the key and secret files to /var/tmp/uc-iam/ (created 0700).\n\
                  Example: uc-iam --store http://127.0.0.1:2379 --node node01 --http 127.0.0.1:7491"
)]
struct Args {
    #[command(flatten)]
    log: uc_daemon::LogArgs,
    #[command(flatten)]
    daemon: uc_daemon::DaemonArgs,
    /// This node's private token-signing key (0600; generated if absent).
    /// Keep it in the daemon's state directory, never in the Nix store.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/var/tmp/uc-iam/signing.key"
    )]
    signing_key_file: PathBuf,
    /// The bootstrap admin's password, first line (0600). If absent, one is
    /// generated, written there and logged once.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/var/tmp/uc-iam/admin.secret"
    )]
    bootstrap_secret_file: PathBuf,
    /// Lifetime of the tokens issued.
    #[arg(long, value_name = "SECONDS", default_value_t = 900)]
    token_ttl_seconds: u64,
    /// How long audit records stay in the store.
    #[arg(long, value_name = "SECONDS", default_value_t = 7 * 24 * 3600)]
    audit_retention_seconds: u64,
}

#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error(
        "--store is required: uc-iam runs from flags until cluster.iam renders its config file"
    )]
    NoStore,
    #[error(transparent)]
    Flag(#[from] uc_daemon::MissingFlag),
    #[error("cannot create {}: {source}", path.display())]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn options(args: &Args) -> Result<Options, StartError> {
    if !args.daemon.from_flags() {
        return Err(StartError::NoStore);
    }
    let http: SocketAddr = ([127, 0, 0, 1], 7491).into();
    let flags = args
        .daemon
        .flags_config(Some("local"), "the node uc-iam runs on", http)?;
    for file in [&args.signing_key_file, &args.bootstrap_secret_file] {
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
    Ok(Options {
        node: flags.node,
        http_listen: flags.http_listen,
        store_endpoints: flags.store_endpoints,
        signing_key_file: args.signing_key_file.clone(),
        bootstrap_secret_file: args.bootstrap_secret_file.clone(),
        token_ttl: Duration::from_secs(args.token_ttl_seconds.max(1)),
        audit_retention: Duration::from_secs(args.audit_retention_seconds.max(60)),
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
