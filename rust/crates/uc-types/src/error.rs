use std::path::PathBuf;

use crate::SCHEMA_VERSION;

/// Why a manifest or daemon config was refused.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("{what} is not valid JSON: {source}")]
    Json {
        what: String,
        source: serde_json::Error,
    },

    #[error("{what} has no schemaVersion: it was not rendered by UltraCloud's Nix library (lib.mkCluster)")]
    MissingVersion { what: String },

    #[error(
        "{what} has schemaVersion {found}, but this build reads schemaVersion {SCHEMA_VERSION}; \
         render it with the UltraCloud release these daemons come from, or upgrade the daemons"
    )]
    UnsupportedVersion { what: String, found: String },

    #[error(
        "{what} does not match the manifest contract (schemaVersion {SCHEMA_VERSION}): {source}"
    )]
    Invalid {
        what: String,
        source: serde_json::Error,
    },

    #[error("{what} is inconsistent:\n{}", problems.iter().map(|p| format!("- {p}")).collect::<Vec<_>>().join("\n"))]
    Inconsistent {
        what: String,
        problems: Vec<crate::Problem>,
    },
}
