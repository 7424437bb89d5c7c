//! `uc-deployer`: reads /etc/ultracloud/deployer.json (or, with `--store`,
//! only its flags); imports deployments into the store, drives rollouts,
//! serves the cluster's binary cache, the API, /health and /metrics.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use uc_deployer::cache::{Cache, KeyError, LocalStore, SigningKey, StoreError};
use uc_deployer::{App, Store};
use uc_types::{CacheConfig, DeployerConfig, SCHEMA_VERSION};

#[derive(Parser)]
#[command(
    name = "uc-deployer",
    version,
    about = "UltraCloud deployer: signed binary cache of the cluster's systems",
    after_help = "Without --store, the config rendered by Nix is read (--config); --node, --http, \
                  --signing-key-file, --data-dir and --enrollment-token-file then override its fields.\n\
                  With --store, the flags are the whole configuration: --signing-key-file is required \
                  (make one with nix-store --generate-binary-cache-key); --node defaults to local, \
                  --http to 127.0.0.1:7480, --data-dir to /var/tmp/uc-deployer, \
                  --enrollment-token-file to <data-dir>/enrollment-token; the cache's own public key \
                  is the one trusted.\n\
                  Example: uc-deployer --store http://127.0.0.1:2379 --http 127.0.0.1:7480 --signing-key-file ./cache.sec"
)]
struct Args {
    #[command(flatten)]
    log: uc_daemon::LogArgs,
    #[command(flatten)]
    daemon: uc_daemon::DaemonArgs,
    /// The same as --http (the deployer's older name for it).
    #[arg(long, value_name = "ADDR")]
    http_listen: Option<SocketAddr>,
    /// Override the config's cache.signingKeyFile (required with --store).
    #[arg(long, value_name = "PATH")]
    signing_key_file: Option<PathBuf>,
    /// Deployer state [flags default: /var/tmp/uc-deployer].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// File holding the token installers present at phone-home
    /// [flags default: <data-dir>/enrollment-token].
    #[arg(long, value_name = "PATH")]
    enrollment_token_file: Option<PathBuf>,
    /// A store path whose closure the cache serves (repeatable). Until desired
    /// state is read from uc-store, this is how the served systems are named.
    #[arg(long = "cache-root")]
    cache_roots: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    uc_daemon::init_logging("info", args.log.log_format);
    uc_daemon::run_daemon("uc-deployer", run(args))
}

/// Why the deployer did not start, or stopped.
#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error(transparent)]
    Config(#[from] uc_types::ContractError),
    #[error(transparent)]
    Flag(#[from] uc_daemon::MissingFlag),
    #[error(transparent)]
    SigningKey(#[from] KeyError),
    #[error("cannot serve the closures of --cache-root: {source}")]
    CacheRoots { source: StoreError },
    #[error("cannot listen on {listen}: {source} (is another process using the port? set httpListen or --http)")]
    Listen {
        listen: SocketAddr,
        source: std::io::Error,
    },
    #[error("HTTP server failed: {source}")]
    Serve { source: std::io::Error },
}

async fn run(args: Args) -> Result<(), RunError> {
    let config = config(&args)?;
    let listen = config.http_listen;
    let key_file = PathBuf::from(&config.cache.signing_key_file);
    let key = SigningKey::load(&key_file)?;
    let public_key = key.public_key();
    if !config.cache.public_keys.is_empty() && !config.cache.public_keys.contains(&public_key) {
        tracing::warn!(%public_key, trusted = ?config.cache.public_keys,
            "the signing key's public key is not in cluster.deployer.cache.publicKeys: nix-agents will refuse this cache");
    }

    let cache = Arc::new(Cache::new(key, LocalStore::default()));
    let served = cache
        .set_roots(&args.cache_roots)
        .await
        .map_err(|source| RunError::CacheRoots { source })?;
    let store = Store::default();
    tokio::spawn(uc_deployer::rollout::run_connected(
        config.store_endpoints.clone(),
        store.clone(),
        cache.clone(),
    ));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| RunError::Listen { listen, source })?;
    tracing::info!(%listen, %public_key, served_paths = served, node = %config.node, "uc-deployer serving");
    let app = uc_deployer::app(App {
        store,
        cache,
        enrollment_token_file: PathBuf::from(&config.enrollment_token_file),
        trusted_public_keys: if config.cache.public_keys.is_empty() {
            vec![public_key.clone()]
        } else {
            config.cache.public_keys.clone()
        },
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(uc_daemon::shutdown_signal())
        .await
        .map_err(|source| RunError::Serve { source })?;
    tracing::info!("uc-deployer stopped");
    Ok(())
}

/// The config file with the flags' overrides, or with `--store` the flags
/// alone.
fn config(args: &Args) -> Result<DeployerConfig, RunError> {
    let mut daemon = args.daemon.clone();
    daemon.http = daemon.http.or(args.http_listen);
    let mut config = if daemon.from_flags() {
        let flags = daemon.flags_config(
            Some("local"),
            "the node this deployer runs on",
            SocketAddr::from(([127, 0, 0, 1], 7480)),
        )?;
        let signing_key_file = args.signing_key_file.as_ref().ok_or(uc_daemon::MissingFlag {
            flag: "--signing-key-file",
            why: "the key the binary cache signs with; make one with nix-store --generate-binary-cache-key",
        })?;
        let data_dir = args
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("/var/tmp/uc-deployer"));
        DeployerConfig {
            schema_version: SCHEMA_VERSION,
            cluster: flags.cluster,
            node: flags.node,
            http_listen: flags.http_listen,
            store_endpoints: flags.store_endpoints,
            enrollment_token_file: data_dir.join("enrollment-token").display().to_string(),
            data_dir: data_dir.display().to_string(),
            cache: CacheConfig {
                signing_key_file: signing_key_file.display().to_string(),
                public_keys: Vec::new(),
            },
        }
    } else {
        let mut config: DeployerConfig = daemon.load()?;
        daemon.override_file(&mut config.node, &mut config.http_listen);
        if let Some(dir) = &args.data_dir {
            config.data_dir = dir.display().to_string();
        }
        config
    };
    if let Some(file) = &args.signing_key_file {
        config.cache.signing_key_file = file.display().to_string();
    }
    if let Some(file) = &args.enrollment_token_file {
        config.enrollment_token_file = file.display().to_string();
    }
    Ok(config)
}
