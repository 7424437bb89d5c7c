//! One switch: fetch and verify, set the profile, activate, health-check;
//! roll back to the previous generation when any of that fails. A marker in
//! the state dir records a switch in progress, so that an agent killed
//! mid-switch finishes or undoes it on restart instead of guessing.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use uc_types::{unix_seconds, DesiredSystem, ObservedSystem, SystemHealthCheck, SystemState};

use crate::health::{self, GateError};
use crate::nix::{NixError, NixSystem};

pub struct Switcher {
    pub nix: NixSystem,
    pub state_dir: PathBuf,
    /// `switch` or `boot`.
    pub action: String,
    pub checks: Vec<SystemHealthCheck>,
    pub health_gate: Duration,
}

/// Why the switch marker could not be written (the switch is then not
/// started: without it a killed agent could not finish or undo it).
#[derive(Debug, thiserror::Error)]
pub enum MarkerError {
    #[error("cannot create {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot encode the switch marker: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Why a system set in the profile is rolled back.
#[derive(Debug, thiserror::Error)]
pub enum SwitchError {
    #[error(transparent)]
    Activate(#[from] NixError),
    #[error(transparent)]
    Unhealthy(#[from] GateError),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InProgress {
    from: Option<String>,
    to: String,
    generation: u64,
}

fn observed(
    store_path: Option<String>,
    state: SystemState,
    generation: u64,
    error: Option<String>,
) -> ObservedSystem {
    ObservedSystem {
        store_path,
        state,
        generation,
        since: unix_seconds(),
        error,
    }
}

impl Switcher {
    fn activation_lock(&self) -> PathBuf {
        self.state_dir.join("activation.lock")
    }

    fn marker(&self) -> PathBuf {
        self.state_dir.join("switch-in-progress.json")
    }

    fn write_marker(&self, marker: &InProgress) -> Result<(), MarkerError> {
        std::fs::create_dir_all(&self.state_dir).map_err(|source| MarkerError::CreateDir {
            path: self.state_dir.clone(),
            source,
        })?;
        let tmp = self.marker().with_extension("tmp");
        let text = serde_json::to_vec(marker)?;
        std::fs::write(&tmp, text).map_err(|source| MarkerError::Write {
            path: tmp.clone(),
            source,
        })?;
        std::fs::rename(&tmp, self.marker()).map_err(|source| MarkerError::Write {
            path: self.marker(),
            source,
        })
    }

    fn clear_marker(&self) {
        if let Err(err) = std::fs::remove_file(self.marker()) {
            if err.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(%err, "cannot remove the switch marker");
            }
        }
    }

    /// Moves the node to `desired` and says what it runs afterwards.
    /// Everything it logs is in a `switch` span with the generation, the
    /// store path and the rollout.
    pub fn switch(&self, desired: &DesiredSystem) -> ObservedSystem {
        let to = desired.store_path.as_str();
        let generation = desired.generation;
        let span = tracing::info_span!(
            "switch",
            generation,
            store_path = to,
            rollout = tracing::field::Empty
        );
        if let Some(rollout) = &desired.rollout {
            span.record("rollout", rollout.as_str());
        }
        let _span = span.entered();
        let from = self.nix.current();
        if from.as_deref() == Some(to) {
            // Already there (e.g. after a restart): only health is in question.
            return match health::wait_healthy(&self.checks, self.health_gate) {
                Ok(()) => observed(from, SystemState::Healthy, generation, None),
                Err(err) => observed(from, SystemState::Failed, generation, Some(err.to_string())),
            };
        }

        tracing::info!(from = ?from, to, generation, "switching");
        if let Err(err) = self.nix.realise_trusted(to) {
            tracing::error!(%err, to, "not switching");
            return observed(from, SystemState::Failed, generation, Some(err.to_string()));
        }
        if let Err(err) = self.write_marker(&InProgress {
            from: from.clone(),
            to: to.to_owned(),
            generation,
        }) {
            return observed(from, SystemState::Failed, generation, Some(err.to_string()));
        }
        if let Err(err) = self.nix.set_profile(to) {
            self.clear_marker();
            return observed(from, SystemState::Failed, generation, Some(err.to_string()));
        }
        self.activate_and_check(from, to, generation)
    }

    /// With the profile on `to`: activate, health-check, or roll back.
    fn activate_and_check(
        &self,
        from: Option<String>,
        to: &str,
        generation: u64,
    ) -> ObservedSystem {
        let result = self
            .nix
            .activate(to, &self.action, &self.activation_lock())
            .map_err(SwitchError::from)
            .and_then(|()| Ok(health::wait_healthy(&self.checks, self.health_gate)?));
        let outcome = match result {
            Ok(()) => {
                tracing::info!(to, generation, "healthy");
                observed(Some(to.to_owned()), SystemState::Healthy, generation, None)
            }
            Err(err) => self.roll_back(from, generation, err),
        };
        self.clear_marker();
        outcome
    }

    fn roll_back(&self, from: Option<String>, generation: u64, err: SwitchError) -> ObservedSystem {
        tracing::error!(%err, previous = ?from, "switch failed, rolling back");
        let Some(previous) = from else {
            return observed(
                None,
                SystemState::Failed,
                generation,
                Some(format!(
                    "{err}; there is no previous generation to roll back to"
                )),
            );
        };
        let undone = self.nix.set_profile_back(&previous).and_then(|()| {
            self.nix
                .activate(&previous, &self.action, &self.activation_lock())
        });
        match undone {
            Ok(()) => observed(
                Some(previous),
                SystemState::RolledBack,
                generation,
                Some(err.to_string()),
            ),
            Err(again) => observed(
                self.nix.current(),
                SystemState::Failed,
                generation,
                Some(format!(
                    "{err}; rolling back to {previous} failed too: {again}"
                )),
            ),
        }
    }

    /// Finishes or undoes a switch an earlier run was killed in. None when no
    /// switch was in progress, or when it had not yet touched the profile
    /// (the desired system is then simply applied again).
    pub fn recover(&self) -> Option<ObservedSystem> {
        let text = std::fs::read(self.marker()).ok()?;
        let marker: InProgress = match serde_json::from_slice(&text) {
            Ok(marker) => marker,
            Err(err) => {
                tracing::warn!(%err, "unreadable switch marker; ignoring it");
                self.clear_marker();
                return None;
            }
        };
        let _span = tracing::info_span!(
            "recover",
            generation = marker.generation,
            store_path = %marker.to
        )
        .entered();
        let current = self.nix.current();
        if current.as_deref() != Some(marker.to.as_str()) {
            tracing::info!(to = %marker.to, "an interrupted switch never set the profile");
            self.clear_marker();
            return None;
        }
        tracing::warn!(to = %marker.to, from = ?marker.from, "finishing a switch interrupted after the profile was set");
        Some(self.activate_and_check(marker.from, &marker.to, marker.generation))
    }
}
