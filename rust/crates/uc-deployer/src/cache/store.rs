//! The local Nix store, through the real `nix` commands: path metadata for
//! narinfo, and NAR dumps for `/nar/` downloads.

use std::path::PathBuf;
use std::process::Stdio;

use serde_json::Value;
use tokio::process::{Child, Command};

use super::nix32;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot run {program}: {source} (is Nix installed and on PATH?)")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("`{command}` failed: {stderr}")]
    Failed { command: String, stderr: String },
    #[error("cannot understand the output of `{command}`: {source}")]
    Output {
        command: String,
        source: OutputError,
    },
}

/// What is wrong with `nix path-info --json`'s output.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("neither a list nor an object")]
    Shape,
    #[error("an entry has no path")]
    NoPath,
    #[error("{path} is not in the store")]
    NotInStore { path: String },
    #[error("{path}: no {field}")]
    Missing { path: String, field: &'static str },
    #[error("{path}: narHash {hash} is not a SHA-256")]
    NotSha256 { path: String, hash: String },
    #[error("{path}: bad reference")]
    BadReference { path: String },
}

/// A store path's metadata, as a narinfo needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathInfo {
    pub path: String,
    /// `sha256:<nix32>`.
    pub nar_hash: String,
    pub nar_size: u64,
    /// Full store paths.
    pub references: Vec<String>,
    pub deriver: Option<String>,
}

impl PathInfo {
    /// The 32-character hash that names the path (and its `.narinfo`).
    pub fn hash_part(&self) -> &str {
        let base = base_name(&self.path);
        base.split_once('-').map_or(base, |(hash, _)| hash)
    }
}

pub fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The Nix commands to use: those on PATH, or from `bin_dir`.
#[derive(Debug, Clone, Default)]
pub struct LocalStore {
    pub bin_dir: Option<PathBuf>,
}

impl LocalStore {
    fn command(&self, program: &str) -> Command {
        let program = match &self.bin_dir {
            Some(dir) => dir.join(program),
            None => PathBuf::from(program),
        };
        let mut command = Command::new(program);
        command.kill_on_drop(true);
        command
    }

    /// Metadata of every path in the closure of `roots`.
    pub(crate) async fn closure(&self, roots: &[String]) -> Result<Vec<PathInfo>, StoreError> {
        if roots.is_empty() {
            return Ok(Vec::new());
        }
        let mut command = self.command("nix");
        command
            .args([
                "--extra-experimental-features",
                "nix-command",
                "path-info",
                "--json",
                "--recursive",
            ])
            .args(roots);
        let shown = format!("nix path-info --json --recursive {}", roots.join(" "));
        let output = command.output().await.map_err(|source| StoreError::Spawn {
            program: "nix".into(),
            source,
        })?;
        if !output.status.success() {
            return Err(StoreError::Failed {
                command: shown,
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        let value: Value =
            serde_json::from_slice(&output.stdout).map_err(|e| StoreError::Output {
                command: shown.clone(),
                source: e.into(),
            })?;
        parse_path_infos(&value).map_err(|source| StoreError::Output {
            command: shown,
            source,
        })
    }

    /// `nix-store --dump <path>`: the NAR on the child's stdout.
    pub(crate) fn dump(&self, path: &str) -> Result<Child, StoreError> {
        self.command("nix-store")
            .args(["--dump", path])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| StoreError::Spawn {
                program: "nix-store".into(),
                source,
            })
    }
}

/// `nix path-info --json` prints a list of objects with a `path` field (Nix
/// up to 2.18) or an object keyed by path (later); hashes are SRI or nix32.
fn parse_path_infos(value: &Value) -> Result<Vec<PathInfo>, OutputError> {
    let entries: Vec<(String, &Value)> = match value {
        Value::Array(items) => items
            .iter()
            .map(|item| {
                let path = item["path"].as_str().ok_or(OutputError::NoPath)?;
                Ok((path.to_owned(), item))
            })
            .collect::<Result<_, OutputError>>()?,
        Value::Object(map) => map
            .iter()
            .map(|(path, item)| (path.clone(), item))
            .collect(),
        _ => return Err(OutputError::Shape),
    };
    entries
        .into_iter()
        .map(|(path, item)| {
            if item.get("valid") == Some(&Value::Bool(false)) {
                return Err(OutputError::NotInStore { path });
            }
            let missing = |field| OutputError::Missing {
                path: path.clone(),
                field,
            };
            let raw_hash = item["narHash"].as_str().ok_or_else(|| missing("narHash"))?;
            let nar_hash =
                nix32::sha256_to_nix32(raw_hash).ok_or_else(|| OutputError::NotSha256 {
                    path: path.clone(),
                    hash: raw_hash.to_owned(),
                })?;
            let nar_size = item["narSize"].as_u64().ok_or_else(|| missing("narSize"))?;
            let references = item["references"]
                .as_array()
                .ok_or_else(|| missing("references"))?
                .iter()
                .map(|r| {
                    r.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| OutputError::BadReference { path: path.clone() })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let deriver = item["deriver"].as_str().map(str::to_owned);
            Ok(PathInfo {
                path,
                nar_hash,
                nar_size,
                references,
                deriver,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_json_shapes() {
        let old = serde_json::json!([{
            "path": "/nix/store/rhy1nwl3s95l2zrvcf2bl992fzkw1kzm-uc-fixture",
            "narHash": "sha256-EFUdrtf6Rn0LWIJufrmg8q99aT3jGfLvd1//zaJEufY=",
            "narSize": 120, "references": [],
            "deriver": "/nix/store/fzahcwdhb41qb9r8yvc6i33fcgyc4rm7-uc-fixture.drv"
        }]);
        let new = serde_json::json!({
            "/nix/store/rhy1nwl3s95l2zrvcf2bl992fzkw1kzm-uc-fixture": {
                "narHash": "sha256:1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h",
                "narSize": 120, "references": [],
                "deriver": "/nix/store/fzahcwdhb41qb9r8yvc6i33fcgyc4rm7-uc-fixture.drv"
            }
        });
        let a = parse_path_infos(&old).expect("old shape");
        let b = parse_path_infos(&new).expect("new shape");
        assert_eq!(a, b);
        assert_eq!(a[0].hash_part(), "rhy1nwl3s95l2zrvcf2bl992fzkw1kzm");
        assert_eq!(
            a[0].nar_hash,
            "sha256:1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h"
        );
    }

    #[test]
    fn refuses_invalid_paths() {
        let v = serde_json::json!({"/nix/store/x-y": {"valid": false}});
        assert!(parse_path_infos(&v)
            .unwrap_err()
            .to_string()
            .contains("not in the store"));
    }
}
