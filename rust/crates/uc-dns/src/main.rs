//! `uc-dns`: serves the cluster's DNS zones from the store. Reads
//! `/etc/ultracloud/dns.json` unless `--store` is given, in which case the
//! flags are the whole configuration (running by hand, tests).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use uc_dns::daemon::Settings;
use uc_types::DnsConfig;

#[derive(Parser)]
#[command(
    name = "uc-dns",
    version,
    about = "UltraCloud DNS: authoritative answers for the cluster's zones, live from the store",
    after_help = "Without --store, the config rendered by Nix is read (--config); \
                  --listen and --http then override its addresses.\n\
                  With --store, the flags are the whole configuration: --listen defaults to \
                  127.0.0.1:5353, --http to 127.0.0.1:9153, every zone in the store is served.\n\
                  Example: uc-dns --store http://127.0.0.1:2379 --listen 127.0.0.1:5353 --http 127.0.0.1:9153"
)]
struct Args {
    #[command(flatten)]
    log: uc_daemon::LogArgs,
    #[command(flatten)]
    daemon: uc_daemon::DaemonArgs,
    /// Address to answer DNS on, UDP and TCP (repeatable) [flags default: 127.0.0.1:5353].
    #[arg(long = "listen", value_name = "ADDR")]
    listen: Vec<SocketAddr>,
    /// Serve only this zone (repeatable; with --store; default: every zone in the store).
    #[arg(long = "zone", value_name = "APEX")]
    zones: Vec<String>,
    /// UDP sockets per address, one per worker (default: the number of CPUs).
    #[arg(long)]
    udp_sockets: Option<usize>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Print the DS and DNSKEY a zone gets from a key file, serving nothing
    /// (for the parent zone, before the key signs).
    DnssecDs {
        /// The zone, e.g. example.com.
        zone: String,
        /// Its key: PKCS#8 ECDSA P-256, PEM or DER.
        key_file: std::path::PathBuf,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Command::DnssecDs { zone, key_file }) = &args.command {
        return match uc_dns::dnssec::key::describe(zone, key_file) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(err) => uc_daemon::exit_with_error("uc-dns", err),
        };
    }
    // hickory-server logs every query at info: too much for a busy server.
    uc_daemon::init_logging(
        "info,hickory_server=warn,hickory_net=warn,hickory_proto=warn",
        args.log.log_format,
    );
    let settings = match settings(&args) {
        Ok(settings) => settings,
        Err(err) => return uc_daemon::exit_with_error("uc-dns", err),
    };
    uc_daemon::run_daemon(
        "uc-dns",
        uc_dns::daemon::run(settings, uc_daemon::shutdown_signal()),
    )
}

fn settings(args: &Args) -> Result<Settings, uc_types::ContractError> {
    let udp_sockets = args.udp_sockets.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    if args.daemon.from_flags() {
        let zones: BTreeSet<String> = args.zones.iter().cloned().collect();
        return Ok(Settings {
            store_endpoints: args.daemon.store.clone(),
            listen: if args.listen.is_empty() {
                vec![SocketAddr::from(([127, 0, 0, 1], 5353))]
            } else {
                args.listen.clone()
            },
            http_listen: args
                .daemon
                .http
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9153))),
            zones: (!zones.is_empty()).then_some(zones),
            udp_sockets,
            node: args.daemon.node.clone(),
        });
    }
    let config: DnsConfig = args.daemon.load()?;
    Ok(Settings {
        store_endpoints: config.store_endpoints,
        listen: if args.listen.is_empty() {
            config.listen
        } else {
            args.listen.clone()
        },
        http_listen: args.daemon.http.unwrap_or(config.http_listen),
        zones: Some(config.zones.into_iter().collect()),
        udp_sockets,
        node: Some(args.daemon.node.clone().unwrap_or(config.node)),
    })
}
