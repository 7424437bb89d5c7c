//! uc-deployer: imports rendered manifests into the store as desired state,
//! serves node closures as a signed Nix binary cache, drives rollouts and
//! answers the installer's phone-home.
//!
//! Implemented so far: the binary cache (`cache`), importing deployments as
//! desired state (`deploy`), rollouts in waves (`rollout`), phone-home
//! (`phone_home`), the HTTP API (`api`, `http`) and the web dashboard
//! (`dashboard`).

pub mod api;
pub mod cache;
pub mod dashboard;
pub mod deploy;
pub mod http;
pub mod phone_home;
pub mod rollout;
