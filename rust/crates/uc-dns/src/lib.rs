//! uc-dns: authoritative DNS for the zones under `/uc/v1/dns/zones/`,
//! answered from an in-memory snapshot of the store.
//!
//! Layers, from the store to the wire: `store` (the keys read) → `build`
//! (declared zone → records, service records resolved) → `catalog` (a new
//! `snapshot` per change, serials) → `zone`/`answer` (pure lookup, as Knot
//! answers) → `server` (hickory-server, sockets). `transfer` answers AXFR
//! and IXFR to a zone's secondaries and `notify` tells them of a new
//! serial; `dnssec` signs the answers of zones declared signed. `sync` drives the watch;
//! `http`, `metrics` and `status` report, `report` writes this
//! server's status to the store; `daemon` wires them.

pub mod answer;
pub mod build;
pub mod catalog;
pub mod daemon;
pub mod dnssec;
#[cfg(test)]
mod fixture;
pub mod http;
pub mod metrics;
pub mod notify;
pub mod records;
pub mod report;
pub mod server;
pub mod snapshot;
pub mod status;
pub mod store;
pub mod sync;
pub mod transfer;
pub mod zone;
