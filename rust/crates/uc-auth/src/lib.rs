//! What every daemon links to authenticate and authorize a request:
//!
//! - [`policy::decide`]: whether a principal may do an action on a kind of
//!   resource in a tenant, a pure function of the identity model;
//! - [`token`]: uc-iam's signed tokens (JWT, EdDSA per RFC 8037), issued by
//!   uc-iam and verified offline by anyone holding the public keys;
//! - [`keyset::KeySet`]: the published keys and the revocations a verifier
//!   holds, kept current from the store.

pub mod keyset;
pub mod policy;
pub mod token;
pub mod watch;

pub use keyset::KeySet;
pub use token::{Claims, TokenError, Verified};
pub use watch::Verifier;
