//! uc-nix-agent: moves its node to the desired NixOS system. It realises the
//! system from the deployer's binary cache, refuses a path no trusted key has
//! signed, sets the system profile, activates it, runs the health checks, and
//! rolls back to the previous generation when any step fails.
//!
//! `switch` is one switch over the real Nix commands (`nix`), with crash
//! recovery; `health` the checks after it; `daemon` watches the node's
//! desired system in the store, switches and reports the observed state.

pub mod daemon;
pub mod health;
pub mod nix;
pub mod switch;
