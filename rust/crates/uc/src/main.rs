//! `uc`: the operator's CLI: reads rendered manifests (check, plan, daemon
//! configs) and talks to the deployer (deploy, rollouts, services, nodes,
//! load balancers, DNS zones) and, for logs, to the node-agents.

mod client;
mod dns;
mod lb;
mod plan;
mod services;
mod table;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use uc_types::{
    ContractError, DeployRequest, DnsView, DnsZoneRecords, LbView, Manifest, NodeActionAnswer,
    NodeActionRequest, RolloutRecord, ServicesView,
};

#[derive(Parser)]
#[command(name = "uc", version, about = "UltraCloud operator CLI")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print what a rendered manifest will run where: nodes, daemons,
    /// services, DNS, load balancers, rollout waves.
    Plan {
        /// Manifest JSON, as rendered by `mkCluster` (`.manifest`).
        manifest: PathBuf,
    },
    /// Work with rendered manifests.
    #[command(subcommand)]
    Manifest(ManifestCommand),
    /// Import a manifest with the systems built for its nodes and start the
    /// rollout that moves the nodes to them.
    Deploy {
        manifest: PathBuf,
        /// NODE=/nix/store/...-nixos-system-NODE (repeatable). Without any,
        /// only services, DNS and load balancers change: no node switches.
        #[arg(long = "system", value_name = "NODE=PATH")]
        systems: Vec<String>,
        #[command(flatten)]
        deployer: Deployer,
    },
    /// Show or steer the current rollout.
    Rollout {
        #[command(subcommand)]
        action: RolloutCommand,
        #[command(flatten)]
        deployer: Deployer,
    },
    /// Services: each instance's node, state, restarts and last message,
    /// and why replicas are unplaced.
    Services {
        /// Print the deployer's JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        deployer: Deployer,
    },
    /// The last lines of a service's instance logs, from each node-agent.
    Logs {
        service: String,
        #[arg(long, default_value_t = 100)]
        lines: usize,
        /// Only this instance id.
        #[arg(long)]
        instance: Option<String>,
        #[command(flatten)]
        deployer: Deployer,
    },
    /// Load-balancer listeners: each LB node's report and every backend's
    /// health (up, down, draining, unknown), and why a listener does not serve.
    Lb {
        /// Print the deployer's JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        deployer: Deployer,
    },
    /// DNS zones in the store: revision, record counts, secondaries and the
    /// uc-dns servers that serve them; `uc dns records ZONE` lists a zone's records.
    Dns {
        #[command(subcommand)]
        command: Option<DnsCommand>,
        /// Print the deployer's JSON instead of a table.
        #[arg(long, global = true)]
        json: bool,
        #[command(flatten)]
        deployer: Deployer,
    },
    /// Cordon, drain or uncordon a node.
    Node {
        #[command(subcommand)]
        action: NodeCommand,
        #[command(flatten)]
        deployer: Deployer,
    },
}

// `--deployer`: the deployer's URL (`UC_DEPLOYER`), also after a
// subcommand. (A plain comment: a doc comment would become help text.)
#[derive(clap::Args)]
struct Deployer {
    #[arg(
        id = "deployer",
        long = "deployer",
        value_name = "DEPLOYER",
        env = "UC_DEPLOYER",
        default_value = "http://127.0.0.1:7480",
        global = true
    )]
    url: String,
}

#[derive(Subcommand)]
enum NodeCommand {
    /// Place no new instances on the node; running ones stay.
    Cordon {
        node: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Cordon, and move the node's instances away, at most each service's
    /// placement.maxUnavailable at a time.
    Drain {
        node: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Make the node schedulable again (nothing moves back by itself).
    Uncordon { node: String },
}

#[derive(Subcommand)]
enum DnsCommand {
    /// The records declared in one zone, and its PTR patterns.
    Records {
        /// The zone's apex, as in `cluster.dns.zones` (a final dot is fine).
        zone: String,
    },
}

#[derive(Subcommand)]
enum RolloutCommand {
    /// Waves, progress and errors of the current rollout.
    Status,
    /// Stop before the next wave (nodes mid-switch finish).
    Pause,
    /// Go on with a paused rollout; the health gate restarts.
    Resume,
    /// End the rollout where it is.
    Abort,
}

#[derive(Subcommand)]
enum ManifestCommand {
    /// Check a manifest against this build's contract (schemaVersion, fields,
    /// references); exit 1 with the reasons when it does not hold.
    Check { manifest: PathBuf },
    /// Print the config one daemon on one node reads from
    /// /etc/ultracloud/<daemon>.json.
    DaemonConfig {
        manifest: PathBuf,
        /// Node name, as in `cluster.nodes`.
        #[arg(long)]
        node: String,
        /// Daemon: store, deployer, scheduler, nix-agent, node-agent, dns or lb.
        #[arg(long)]
        daemon: String,
    },
}

/// Why a command failed; printed after `uc: `.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Manifest(#[from] ContractError),
    #[error("--system {0}: write NODE=/nix/store/...")]
    SystemFlag(String),
    #[error(transparent)]
    Request(#[from] client::RequestError),
    #[error("deployer answered {status}: {message}")]
    Refused { status: u16, message: String },
    #[error("unexpected answer from the deployer: {0}")]
    Answer(serde_json::Error),
    #[error("no node \"{node}\" in the manifest (nodes: {known})")]
    NoNode { node: String, known: String },
    #[error("node \"{node}\" does not run \"{daemon}\" (it runs: {runs})")]
    NoDaemon {
        node: String,
        daemon: String,
        runs: String,
    },
    #[error("cannot print {what} as JSON: {source}")]
    Print {
        what: &'static str,
        source: serde_json::Error,
    },
    #[error(transparent)]
    Logs(#[from] services::LogsError),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("uc: {message}");
            ExitCode::FAILURE
        }
    }
}

fn rollout_summary(r: &RolloutRecord) -> String {
    let mut out = format!(
        "rollout {}: {:?}, wave {} of {}\n",
        r.id,
        r.state,
        (r.wave + 1).min(r.waves.len()),
        r.waves.len()
    );
    for (i, wave) in r.waves.iter().enumerate() {
        let mark = if i < r.wave {
            "done"
        } else if i == r.wave {
            "now "
        } else {
            "    "
        };
        out.push_str(&format!("  {mark} wave {}: {}\n", i + 1, wave.join(", ")));
    }
    if let Some(error) = &r.error {
        out.push_str(&format!("  error: {error}\n"));
    }
    out
}

fn api<T: serde::de::DeserializeOwned>(
    deployer: &Deployer,
    method: &str,
    path: &str,
    body: Option<&str>,
    ok: u16,
) -> Result<T, CliError> {
    let response = client::request(&deployer.url, method, path, body)?;
    if response.status != ok {
        return Err(CliError::Refused {
            status: response.status,
            message: client::error_text(&response.body),
        });
    }
    serde_json::from_str(&response.body).map_err(CliError::Answer)
}

/// Prints a deployer view as its JSON (`--json`) or as `table` renders it.
fn print_view<T: serde::Serialize>(
    json: bool,
    what: &'static str,
    view: &T,
    table: impl Fn(&T) -> String,
) -> Result<(), CliError> {
    if json {
        // Through a Value: its keys print sorted, as they always did.
        let value =
            serde_json::to_value(view).map_err(|source| CliError::Print { what, source })?;
        println!("{value:#}");
    } else {
        print!("{}", table(view));
    }
    Ok(())
}

fn run(command: Command) -> Result<(), CliError> {
    match command {
        Command::Deploy {
            manifest,
            systems,
            deployer,
        } => {
            let parsed = Manifest::load(&manifest)?;
            let mut request = DeployRequest {
                manifest: serde_json::to_value(&parsed).map_err(|source| CliError::Print {
                    what: "the manifest",
                    source,
                })?,
                systems: BTreeMap::new(),
            };
            for system in systems {
                let (node, path) = system
                    .split_once('=')
                    .ok_or_else(|| CliError::SystemFlag(system.clone()))?;
                request.systems.insert(node.to_owned(), path.to_owned());
            }
            let body = serde_json::to_string(&request).map_err(|source| CliError::Print {
                what: "the deployment",
                source,
            })?;
            let record = api(&deployer, "POST", "/api/v1/deploy", Some(&body), 201)?;
            print!("{}", rollout_summary(&record));
            Ok(())
        }
        Command::Rollout { action, deployer } => {
            let record = match action {
                RolloutCommand::Status => api(&deployer, "GET", "/api/v1/rollout", None, 200)?,
                RolloutCommand::Pause => {
                    api(&deployer, "POST", "/api/v1/rollout/pause", None, 200)?
                }
                RolloutCommand::Resume => {
                    api(&deployer, "POST", "/api/v1/rollout/resume", None, 200)?
                }
                RolloutCommand::Abort => {
                    api(&deployer, "POST", "/api/v1/rollout/abort", None, 200)?
                }
            };
            print!("{}", rollout_summary(&record));
            Ok(())
        }
        Command::Services { json, deployer } => {
            let view: ServicesView = api(&deployer, "GET", "/api/v1/services", None, 200)?;
            print_view(json, "the services", &view, services::table)
        }
        Command::Lb { json, deployer } => {
            let view: LbView = api(&deployer, "GET", "/api/v1/lb", None, 200)?;
            print_view(json, "the listeners", &view, lb::render)
        }
        Command::Dns {
            command: None,
            json,
            deployer,
        } => {
            let view: DnsView = api(&deployer, "GET", "/api/v1/dns", None, 200)?;
            print_view(json, "the zones", &view, dns::zones)
        }
        Command::Dns {
            command: Some(DnsCommand::Records { zone }),
            json,
            deployer,
        } => {
            let path = format!("/api/v1/dns/zones/{}", zone.trim_end_matches('.'));
            let records: DnsZoneRecords = api(&deployer, "GET", &path, None, 200)?;
            print_view(json, "the records", &records, dns::records)
        }
        Command::Logs {
            service,
            lines,
            instance,
            deployer,
        } => {
            let view: ServicesView = api(&deployer, "GET", "/api/v1/services", None, 200)?;
            print!(
                "{}",
                services::logs(&view, &service, instance.as_deref(), lines)?
            );
            Ok(())
        }
        Command::Node { action, deployer } => {
            let (node, verb, reason) = match action {
                NodeCommand::Cordon { node, reason } => (node, "cordon", reason),
                NodeCommand::Drain { node, reason } => (node, "drain", reason),
                NodeCommand::Uncordon { node } => (node, "uncordon", None),
            };
            let body = serde_json::to_string(&NodeActionRequest { reason }).map_err(|source| {
                CliError::Print {
                    what: "the request",
                    source,
                }
            })?;
            let _: NodeActionAnswer = api(
                &deployer,
                "POST",
                &format!("/api/v1/nodes/{node}/{verb}"),
                Some(&body),
                200,
            )?;
            println!(
                "{}",
                match verb {
                    "cordon" => format!("node {node} cordoned: no new instances; running ones stay"),
                    "drain" => format!("node {node} draining: its instances move away, at most each service's maxUnavailable at a time; follow with `uc services`"),
                    _ => format!("node {node} uncordoned: schedulable again"),
                }
            );
            Ok(())
        }
        Command::Plan { manifest } => {
            let manifest = Manifest::load(&manifest)?;
            print!("{}", plan::render(&manifest));
            Ok(())
        }
        Command::Manifest(ManifestCommand::Check { manifest: path }) => {
            let manifest = Manifest::load(&path)?;
            println!(
                "{}: cluster \"{}\" holds the contract (schemaVersion {}): {} nodes, {} services",
                path.display(),
                manifest.cluster.name,
                manifest.schema_version,
                manifest.nodes.len(),
                manifest.services.len()
            );
            Ok(())
        }
        Command::Manifest(ManifestCommand::DaemonConfig {
            manifest,
            node,
            daemon,
        }) => {
            let manifest = Manifest::load(&manifest)?;
            let found = manifest.nodes.get(&node).ok_or_else(|| CliError::NoNode {
                node: node.clone(),
                known: manifest
                    .nodes
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
            let print = |source| CliError::Print {
                what: "the daemon config",
                source,
            };
            let daemons = serde_json::to_value(&found.daemons).map_err(print)?;
            let config = daemons.get(&daemon).ok_or_else(|| CliError::NoDaemon {
                node: node.clone(),
                daemon: daemon.clone(),
                runs: found.daemons.names().join(", "),
            })?;
            let text = serde_json::to_string_pretty(config).map_err(print)?;
            println!("{text}");
            Ok(())
        }
    }
}
