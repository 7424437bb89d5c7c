//! uc-deployer: imports rendered manifests into the store as desired state,
//! serves node closures as a signed Nix binary cache, drives rollouts and
//! answers the installer's phone-home.
//!
//! Implemented so far: the binary cache (`cache`) and the daemon's HTTP
//! surface (`http`). Desired state, rollouts and phone-home build on the store
//! (uc-store) and land with it.

pub mod cache;
pub mod http;
