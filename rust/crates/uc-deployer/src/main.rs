//! `uc-deployer`: reads /etc/ultracloud/deployer.json; imports deployments
//! into the store, drives rollouts, serves the cluster's binary cache, the
//! API, /health and /metrics.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use uc_deployer::cache::{Cache, KeyError, LocalStore, SigningKey, StoreError};
use uc_deployer::{App, Store};
use uc_types::{DaemonConfig, DeployerConfig};

#[derive(Parser)]
#[command(
    name = "uc-deployer",
    version,
    about = "UltraCloud deployer: signed binary cache of the cluster's systems"
)]
struct Args {
    #[command(flatten)]
    log: uc_daemon::LogArgs,
    /// Config rendered by Nix (manifest.nodes.<node>.daemons.deployer).
    #[arg(long, default_value = "/etc/ultracloud/deployer.json")]
    config: PathBuf,
    /// Override the config's httpListen (address:port).
    #[arg(long)]
    http_listen: Option<SocketAddr>,
    /// Override the config's cache.signingKeyFile.
    #[arg(long)]
    signing_key_file: Option<PathBuf>,
    /// A store path whose closure the cache serves (repeatable). Until desired
    /// state is read from uc-store, this is how the served systems are named.
    #[arg(long = "cache-root")]
    cache_roots: Vec<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    uc_daemon::init_logging("info", args.log.log_format);
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            eprintln!("uc-deployer: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Why the deployer did not start, or stopped.
#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error(transparent)]
    Config(#[from] uc_types::ContractError),
    #[error(transparent)]
    SigningKey(#[from] KeyError),
    #[error("cannot serve the closures of --cache-root: {source}")]
    CacheRoots { source: StoreError },
    #[error("cannot listen on {listen}: {source} (is another process using the port? set httpListen or --http-listen)")]
    Listen {
        listen: SocketAddr,
        source: std::io::Error,
    },
    #[error("HTTP server failed: {source}")]
    Serve { source: std::io::Error },
}

async fn run(args: Args) -> Result<(), RunError> {
    let config = DeployerConfig::load(&args.config)?;
    let listen = args.http_listen.unwrap_or(config.http_listen);
    let key_file = args
        .signing_key_file
        .unwrap_or_else(|| PathBuf::from(&config.cache.signing_key_file));
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
