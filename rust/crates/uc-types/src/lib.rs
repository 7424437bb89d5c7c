//! The manifest contract: what UltraCloud's Nix library renders and the daemons
//! read. `Manifest` is the whole rendered cluster; each `*Config` is the file
//! one daemon reads from `/etc/ultracloud/<daemon>.json`, which Nix renders as
//! `manifest.nodes.<node>.daemons.<daemon>`.
//!
//! Every type denies unknown fields and every document carries
//! `schemaVersion`, checked before anything else, so that a daemon never
//! half-understands a config rendered by another release.

mod api;
mod daemons;
mod error;
pub mod iam;
pub mod keys;
mod manifest;
mod scheduling;
mod state;
mod validate;

pub use api::*;
pub use daemons::*;
pub use error::ContractError;
pub use manifest::*;
pub use scheduling::*;
pub use state::*;
pub use validate::Problem;

use serde::de::DeserializeOwned;
use std::path::Path;

/// The one schema version this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// Parses a versioned document: checks `schemaVersion` first, so that a
/// document from another release gets a version error rather than a
/// confusing field error. `what` names the document in errors.
pub fn parse_versioned<T: DeserializeOwned>(what: &str, text: &str) -> Result<T, ContractError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|source| ContractError::Json {
            what: what.to_owned(),
            source,
        })?;
    let found = value
        .get("schemaVersion")
        .ok_or_else(|| ContractError::MissingVersion {
            what: what.to_owned(),
        })?;
    match found.as_u64() {
        Some(v) if v == u64::from(SCHEMA_VERSION) => {}
        _ => {
            return Err(ContractError::UnsupportedVersion {
                what: what.to_owned(),
                found: found.to_string(),
            })
        }
    }
    serde_json::from_value(value).map_err(|source| ContractError::Invalid {
        what: what.to_owned(),
        source,
    })
}

/// Reads and parses a versioned document from a file.
pub fn load_versioned<T: DeserializeOwned>(path: &Path) -> Result<T, ContractError> {
    let what = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ContractError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_versioned(&what, &text)
}
