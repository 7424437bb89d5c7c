//! uc-nix-agent: moves its node to the desired NixOS system. It realises the
//! system from the deployer's binary cache, refuses a path no trusted key has
//! signed, sets the system profile, activates it, runs the health checks, and
//! rolls back to the previous generation when any step fails.
//!
//! Implemented so far: the switch itself (`switch`) over the real Nix
//! commands (`nix`), with crash recovery. Watching desired state in uc-store
//! and reporting observed state there lands with the store.

pub mod daemon;
pub mod health;
pub mod nix;
pub mod switch;
