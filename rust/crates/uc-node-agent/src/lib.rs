//! uc-node-agent: runs the service instances the scheduler assigned to this
//! node, health-checks them and reports their status to the store.

pub mod daemon;
mod follow;
pub mod http;
pub mod instance;
pub mod logs;
pub mod plan;
mod rolling;
pub mod runner;
pub mod shared;
mod status;
