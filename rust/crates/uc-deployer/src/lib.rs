//! uc-deployer: imports rendered manifests into the store as desired state,
//! serves node closures as a signed Nix binary cache, drives rollouts and
//! answers the installer's phone-home.
//!
//! Implemented so far: the binary cache (`cache`), importing deployments as
//! desired state (`deploy`), rollouts in waves (`rollout`), phone-home
//! (`phone_home`) and the HTTP API (`api`, `http`). The dashboard is still
//! to come.

pub mod api;
pub mod cache;
pub mod deploy;
pub mod http;
pub mod phone_home;
pub mod rollout;
