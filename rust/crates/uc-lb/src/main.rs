//! `uc-lb`: serves the cluster's load-balancer listeners from the store.
//! Reads `/etc/ultracloud/lb.json` unless `--store` is given, in which case
//! the flags are the whole configuration (running by hand, tests).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use uc_lb::daemon::Settings;
use uc_lb::proxy::Timeouts;
use uc_lb::spec::Selection;
use uc_lb::vip::VipSettings;
use uc_types::LbConfig;

#[derive(Parser)]
#[command(
    name = "uc-lb",
    version,
    about = "UltraCloud load balancer: TCP, UDP, HTTP and HTTPS listeners with health-checked backends, live from the store",
    after_help = "Without --store, the config rendered by Nix is read (--config, default /etc/ultracloud/lb.json) \
                  and its listeners are served; --node and --http override its fields.\n\
                  With --store, the flags are the whole configuration: --http defaults to 127.0.0.1:9154; \
                  with --node, the listeners whose nodes include it are served (a null address binds the node's \
                  first address from the manifest); without --node, every listener in the store is served \
                  (each needs an address) and statuses are written under the node name `local`.\n\
                  Example: uc-lb --store http://127.0.0.1:2379 --node edge1 --http 127.0.0.1:9154"
)]
struct Args {
    #[command(flatten)]
    log: uc_daemon::LogArgs,
    #[command(flatten)]
    daemon: uc_daemon::DaemonArgs,
    /// Write the XDP programs for backends and veth peers into DIR and exit:
    /// decap.o strips the IPIP header of the XDP fast path's packets (for
    /// backends without an ipip device), pass.o passes everything (for the
    /// peer of a veth running native XDP). Load one with
    /// `ip link set dev IF xdp obj DIR/decap.o sec xdp`.
    #[arg(long, value_name = "DIR")]
    write_xdp_programs: Option<std::path::PathBuf>,
    /// Seconds a drained backend's open connections may go on before they are closed.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    drain_timeout: f64,
    /// Seconds a client may take to send a request head or finish a TLS
    /// handshake (slow clients are cut off), and stay idle between requests.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    client_timeout: f64,
    /// Seconds to connect to a backend.
    #[arg(long, value_name = "SECONDS", default_value_t = 3.0)]
    connect_timeout: f64,
    /// Seconds a backend may take to send a response head (then 504).
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    response_timeout: f64,
    /// Seconds a UDP client session lives without a datagram from its backend.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    udp_idle_timeout: f64,
    /// Worker threads of the async runtime; default: one per CPU uc-lb may
    /// run on.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    workers: Option<u16>,
    /// Interface a VIP this node holds is added to (a listener address on
    /// no interface); default: the one whose subnet holds it
    /// (cluster.lb.vip.interface).
    #[arg(long, value_name = "NAME")]
    vip_interface: Option<String>,
    /// TTL of a VIP's store lease: another node takes the VIP within this
    /// many seconds of its holder's death; default 5
    /// (cluster.lb.vip.leaseTtlSeconds).
    #[arg(long, value_name = "SECONDS")]
    vip_lease_ttl: Option<u32>,
}

/// A timeout flag's value, or what is wrong with it.
#[derive(Debug, thiserror::Error)]
enum SettingsError {
    #[error(transparent)]
    Contract(#[from] uc_types::ContractError),
    #[error("--{flag} must be a positive number of seconds, not {value}")]
    Timeout { flag: &'static str, value: f64 },
    #[error("the VIP lease TTL must be 2 to 3600 seconds, not {0}")]
    LeaseTtl(u32),
}

/// The VIP settings of the config file (or the defaults), with the flags'.
fn vip_settings(args: &Args, file: uc_types::LbVip) -> Result<VipSettings, SettingsError> {
    let ttl = args.vip_lease_ttl.unwrap_or(file.lease_ttl_seconds);
    if !(2..=3600).contains(&ttl) {
        return Err(SettingsError::LeaseTtl(ttl));
    }
    Ok(VipSettings {
        interface: args.vip_interface.clone().or(file.interface),
        lease_ttl: Duration::from_secs(u64::from(ttl)),
    })
}

fn seconds(flag: &'static str, value: f64) -> Result<Duration, SettingsError> {
    if value.is_finite() && value > 0.0 && value < 1e9 {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(SettingsError::Timeout { flag, value })
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    uc_daemon::init_logging("info", args.log.log_format);
    if let Some(dir) = &args.write_xdp_programs {
        return match uc_lb::xdp::write_programs(dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => uc_daemon::exit_with_error("uc-lb", err),
        };
    }
    match settings(&args) {
        Ok(settings) => match args.workers {
            None => uc_daemon::run_daemon(
                "uc-lb",
                uc_lb::daemon::run(settings, uc_daemon::shutdown_signal()),
            ),
            Some(workers) => run_on_workers(workers, settings),
        },
        Err(err) => uc_daemon::exit_with_error("uc-lb", err),
    }
}

/// `uc_daemon::run_daemon` on a runtime of `workers` threads.
fn run_on_workers(workers: u16, settings: Settings) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(usize::from(workers))
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(err) => {
            return uc_daemon::exit_with_error(
                "uc-lb",
                format!("cannot start the async runtime: {err}"),
            )
        }
    };
    match runtime.block_on(uc_lb::daemon::run(settings, uc_daemon::shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            uc_daemon::exit_with_error("uc-lb", err)
        }
    }
}

fn settings(args: &Args) -> Result<Settings, SettingsError> {
    let timeouts = Timeouts {
        drain: seconds("drain-timeout", args.drain_timeout)?,
        client: seconds("client-timeout", args.client_timeout)?,
        connect: seconds("connect-timeout", args.connect_timeout)?,
        response: seconds("response-timeout", args.response_timeout)?,
        udp_idle: seconds("udp-idle-timeout", args.udp_idle_timeout)?,
    };
    if args.daemon.from_flags() {
        let node = args.daemon.node.clone();
        return Ok(Settings {
            store_endpoints: args.daemon.store.clone(),
            http_listen: args
                .daemon
                .http
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9154))),
            selection: node.clone().map_or(Selection::All, Selection::Node),
            status_node: node.clone().unwrap_or_else(|| "local".to_owned()),
            node,
            timeouts,
            vip: vip_settings(args, uc_types::LbVip::default())?,
        });
    }
    let mut config: LbConfig = args.daemon.load()?;
    args.daemon
        .override_file(&mut config.node, &mut config.http_listen);
    let vip = vip_settings(args, config.vip)?;
    Ok(Settings {
        store_endpoints: config.store_endpoints,
        http_listen: config.http_listen,
        selection: Selection::Names(config.listeners.into_iter().collect()),
        node: Some(config.node.clone()),
        status_node: config.node,
        timeouts,
        vip,
    })
}
