//! uc-iam: logs principals in by password or API key and issues short-lived
//! Ed25519 tokens every daemon verifies offline (`uc-auth`); rotates its
//! signing key with overlap, revokes tokens and credentials, audits every
//! grant and denial. The identity model is `uc_types::iam`.

pub mod api_keys;
pub mod audit;
pub mod bootstrap;
pub mod credentials;
pub mod daemon;
pub mod http;
pub mod login;
pub mod metrics;
pub mod signing;
pub mod store;
