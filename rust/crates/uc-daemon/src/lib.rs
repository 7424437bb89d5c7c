//! What every UltraCloud daemon's `main` does the same way: structured logs
//! to stderr (`RUST_LOG` overrides the default filter), a multi-threaded
//! runtime, its HTTP listener, and a future that resolves on SIGTERM or
//! Ctrl-C; the flags every daemon shares (`flags`); and the `/metrics`
//! registry (`metrics`).

pub mod flags;
pub mod http;
pub mod metrics;

pub use flags::{ConfigError, DaemonArgs, FlagsConfig, MissingFlag};

use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

/// How log lines are written: `text` for people, `json` (one object per
/// line, with the span's fields) for log shippers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The logging flags every daemon has; `#[command(flatten)]` them into its
/// `Args`.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct LogArgs {
    /// Log line format on stderr: `text` or `json` (one JSON object per line).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "UC_LOG_FORMAT")]
    pub log_format: LogFormat,
}

/// Logs to stderr; `default_filter` (e.g. `"info"`) unless `RUST_LOG` is set.
pub fn init_logging(default_filter: &str, format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
}

/// The multi-threaded runtime; on failure the error is printed, prefixed
/// with the daemon's name, and the exit code to return is given back.
pub fn runtime(daemon: &str) -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|err| {
            eprintln!("{daemon}: cannot start the async runtime: {err}");
            ExitCode::FAILURE
        })
}

/// Runs the daemon's future on the multi-threaded runtime until it returns:
/// exit 0 when it returns `Ok`, otherwise the error logged and printed to
/// stderr as `<daemon>: <err>`, exit 1. What every daemon's `main` ends with:
/// `uc_daemon::run_daemon("uc-foo", uc_foo::daemon::run(config, uc_daemon::shutdown_signal()))`.
pub fn run_daemon<E: std::fmt::Display>(
    daemon: &str,
    run: impl std::future::Future<Output = Result<(), E>>,
) -> ExitCode {
    let runtime = match runtime(daemon) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    match runtime.block_on(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            exit_with_error(daemon, err)
        }
    }
}

/// A daemon that cannot start (its config, a flag): the error on stderr as
/// `<daemon>: <err>`, and exit 1 to return from `main`.
pub fn exit_with_error(daemon: &str, err: impl std::fmt::Display) -> ExitCode {
    eprintln!("{daemon}: {err}");
    ExitCode::FAILURE
}

/// The daemon's HTTP endpoint could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {listen}: {source} (is the port in use? set httpListen)")]
pub struct BindError {
    pub listen: std::net::SocketAddr,
    pub source: std::io::Error,
}

/// Binds the daemon's HTTP endpoint (`httpListen` of its config), with an
/// error that says what to change.
pub async fn bind_http(listen: std::net::SocketAddr) -> Result<tokio::net::TcpListener, BindError> {
    tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| BindError { listen, source })
}

/// Resolves on SIGTERM (systemd stop) or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
            }
        }
        Err(err) => {
            tracing::error!(%err, "cannot listen for SIGTERM; stop with Ctrl-C");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
