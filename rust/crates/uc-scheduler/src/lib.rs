//! uc-scheduler: places the replicas of every declared service on nodes
//! (roles, labels, anti-affinity, capacity, ports), moves them off nodes
//! that are lost or drained, and reports what it cannot place. One
//! scheduler is active at a time, elected through a store lease.
//!
//! `placement` is the pure decision; `view` reads the store into it and
//! turns its plan into writes; `leader` is the election; `daemon` runs them.

pub mod daemon;
pub mod leader;
pub mod placement;
pub mod view;
