//! uc-lb: the load-balancer listeners under `/uc/v1/lb/listeners/`, served
//! from the store.
//!
//! From the store to the wire: `store` (the keys read) → `spec` (a
//! listener resolved: address, backends, health) → `supervisor` (binds,
//! changes in place, drains) → `pool` (backends in rotation, `balance` and
//! `maglev` choose) → `tcp`, `udp`, `l7` (with `tls`) proxy, with
//! `proxy_protocol` headers when asked. `sync` drives the watch; `health`
//! probes; `report`, `status`, `http` and `metrics` tell what is served;
//! `vip` holds the listener addresses that are on no interface (one node
//! at a time, through a store lease); `daemon` wires them.

pub mod balance;
pub mod daemon;
pub mod health;
pub mod http;
pub mod l7;
pub mod maglev;
pub mod metrics;
pub mod pool;
pub mod proxy;
pub mod proxy_protocol;
pub mod report;
pub mod spec;
pub mod status;
pub mod store;
pub mod supervisor;
pub mod sync;
pub mod tcp;
pub mod tls;
pub mod udp;
pub mod vip;
pub mod xdp;
