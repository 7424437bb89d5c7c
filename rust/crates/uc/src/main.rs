//! `uc`: the operator's CLI. For now it reads rendered manifests: checks them
//! against the contract, prints the plan, and extracts daemon configs.

mod plan;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use uc_types::Manifest;

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

fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Plan { manifest } => {
            let manifest = Manifest::load(&manifest).map_err(|e| e.to_string())?;
            print!("{}", plan::render(&manifest));
            Ok(())
        }
        Command::Manifest(ManifestCommand::Check { manifest: path }) => {
            let manifest = Manifest::load(&path).map_err(|e| e.to_string())?;
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
            let manifest = Manifest::load(&manifest).map_err(|e| e.to_string())?;
            let found = manifest.nodes.get(&node).ok_or_else(|| {
                format!(
                    "no node \"{node}\" in the manifest (nodes: {})",
                    manifest
                        .nodes
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
            let daemons = serde_json::to_value(&found.daemons).map_err(|e| e.to_string())?;
            let config = daemons.get(&daemon).ok_or_else(|| {
                format!(
                    "node \"{node}\" does not run \"{daemon}\" (it runs: {})",
                    found.daemons.names().join(", ")
                )
            })?;
            let text = serde_json::to_string_pretty(config).map_err(|e| e.to_string())?;
            println!("{text}");
            Ok(())
        }
    }
}
