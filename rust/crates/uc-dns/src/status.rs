//! How current the served snapshot is, for /health and /metrics: kept by
//! the store mirror (`uc_store_mirror::status`). `Health::Starting` means
//! nothing was read yet, so every query is REFUSED.

pub use uc_store_mirror::status::{Health, MirrorStatus as SyncStatus};
