//! The flags every daemon shares (`DaemonArgs`), and the one rule for them:
//! with `--store`, the flags are the whole configuration (running by hand,
//! tests driving the binary as a black box); without it, the config file Nix
//! renders is read and `--node` and `--http` override its fields.

use std::net::SocketAddr;
use std::path::PathBuf;

use uc_types::{ContractError, DaemonConfig};

/// `--config`, `--store`, `--node`, `--http`, `--cluster`;
/// `#[command(flatten)]` them into the daemon's `Args`.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct DaemonArgs {
    /// Config file rendered by Nix [default: /etc/ultracloud/<daemon>.json];
    /// not read when --store is given.
    #[arg(long, value_name = "PATH", global = true)]
    pub config: Option<PathBuf>,
    /// Store endpoint (repeat for each member). With --store the flags are the
    /// whole configuration and no config file is read.
    #[arg(long = "store", value_name = "URL", global = true)]
    pub store: Vec<String>,
    /// The node this daemon runs on (overrides the config file's node).
    #[arg(long, value_name = "NAME", global = true)]
    pub node: Option<String>,
    /// Address of the HTTP endpoint: /health, /metrics and the daemon's API
    /// (overrides the config file's httpListen).
    #[arg(long, value_name = "ADDR", global = true)]
    pub http: Option<SocketAddr>,
    /// Cluster name, with --store [default: local].
    #[arg(long, value_name = "NAME", global = true)]
    pub cluster: Option<String>,
}

/// What the shared flags give when they are the whole configuration: the
/// fields every daemon's config has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlagsConfig {
    pub cluster: String,
    pub node: String,
    pub http_listen: SocketAddr,
    pub store_endpoints: Vec<String>,
}

/// A flag the daemon cannot run without when the flags are its whole
/// configuration.
#[derive(Debug, thiserror::Error)]
#[error("{flag} is required with --store ({why})")]
pub struct MissingFlag {
    pub flag: &'static str,
    pub why: &'static str,
}

/// Why a daemon has no configuration: its file could not be read, or a flag
/// it cannot run without is missing.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    File(#[from] uc_types::ContractError),
    #[error(transparent)]
    Flag(#[from] MissingFlag),
}

impl DaemonArgs {
    /// Whether the flags are the whole configuration (`--store` given).
    pub fn from_flags(&self) -> bool {
        !self.store.is_empty()
    }

    /// `--config`, or `/etc/ultracloud/<daemon>.json`.
    pub fn config_path(&self, daemon: &str) -> PathBuf {
        self.config
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("/etc/ultracloud/{daemon}.json")))
    }

    /// The daemon's config file: `--config`, or `/etc/ultracloud/<daemon>.json`.
    pub fn load<C: DaemonConfig>(&self) -> Result<C, ContractError> {
        C::load(&self.config_path(C::DAEMON))
    }

    /// The shared fields from the flags alone: `--node` is required when
    /// `default_node` is `None` (`why` says what it names), `--http` defaults
    /// to `default_http`, `--cluster` to `local`.
    pub fn flags_config(
        &self,
        default_node: Option<&str>,
        why_node: &'static str,
        default_http: SocketAddr,
    ) -> Result<FlagsConfig, MissingFlag> {
        let node = self
            .node
            .clone()
            .or_else(|| default_node.map(str::to_owned))
            .ok_or(MissingFlag {
                flag: "--node",
                why: why_node,
            })?;
        Ok(FlagsConfig {
            cluster: self.cluster.clone().unwrap_or_else(|| "local".to_owned()),
            node,
            http_listen: self.http.unwrap_or(default_http),
            store_endpoints: self.store.clone(),
        })
    }

    /// Applies `--node` and `--http` over a config file's fields.
    pub fn override_file(&self, node: &mut String, http_listen: &mut SocketAddr) {
        if let Some(flag) = &self.node {
            node.clone_from(flag);
        }
        if let Some(flag) = self.http {
            *http_listen = flag;
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        daemon: DaemonArgs,
    }

    fn parse(argv: &[&str]) -> DaemonArgs {
        Args::try_parse_from(std::iter::once("uc-test").chain(argv.iter().copied()))
            .map(|a| a.daemon)
            .unwrap_or_else(|err| panic!("{argv:?}: {err}"))
    }

    const HTTP: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9000);

    #[test]
    fn flags_are_the_whole_config_with_store() {
        let args = parse(&[
            "--store",
            "http://a:2379",
            "--store",
            "http://b:2379",
            "--node",
            "n1",
        ]);
        assert!(args.from_flags());
        let config = args.flags_config(None, "the node", HTTP).unwrap();
        assert_eq!(
            config,
            FlagsConfig {
                cluster: "local".into(),
                node: "n1".into(),
                http_listen: HTTP,
                store_endpoints: vec!["http://a:2379".into(), "http://b:2379".into()],
            }
        );
    }

    #[test]
    fn a_missing_node_names_the_flag() {
        let args = parse(&["--store", "http://a:2379"]);
        let err = args
            .flags_config(None, "the node whose instances this agent runs", HTTP)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "--node is required with --store (the node whose instances this agent runs)"
        );
        let defaulted = args.flags_config(Some("local"), "", HTTP).unwrap();
        assert_eq!(defaulted.node, "local");
    }

    #[test]
    fn without_store_the_file_is_read_and_overridden() {
        let args = parse(&["--node", "n2", "--http", "127.0.0.2:81"]);
        assert!(!args.from_flags());
        assert_eq!(
            args.config_path("scheduler"),
            PathBuf::from("/etc/ultracloud/scheduler.json")
        );
        let (mut node, mut http) = ("n1".to_owned(), HTTP);
        args.override_file(&mut node, &mut http);
        assert_eq!(
            (node.as_str(), http.to_string().as_str()),
            ("n2", "127.0.0.2:81")
        );
        let args = parse(&["--config", "/tmp/x.json"]);
        assert_eq!(args.config_path("scheduler"), PathBuf::from("/tmp/x.json"));
        let (mut node, mut http) = ("n1".to_owned(), HTTP);
        args.override_file(&mut node, &mut http);
        assert_eq!((node.as_str(), http), ("n1", HTTP));
    }
}
