//! The verifier a daemon holds: a [`KeySet`] kept equal to the published
//! keys and revocations in the store by `uc_store_mirror` (a watch, so a
//! revocation reaches every verifier within the mirror's settle time, well
//! under a second).

use std::sync::{Arc, RwLock};

use uc_store_mirror::{Mirror, MirrorStatus, Read};
use uc_types::keys;

use crate::keyset::KeySet;
use crate::token::{TokenError, Verified};

/// Cheap to clone; every clone sees the latest published set.
#[derive(Clone, Debug, Default)]
pub struct Verifier {
    current: Arc<Current<KeySet>>,
}

/// A value replaced whole while readers keep the one they loaded (the
/// verifier's key set, uc-iam's signing key).
#[derive(Debug, Default)]
pub struct Current<T>(RwLock<Arc<T>>);

impl<T> Current<T> {
    pub fn new(value: T) -> Current<T> {
        Current(RwLock::new(Arc::new(value)))
    }

    pub fn load(&self) -> Arc<T> {
        match self.0.read() {
            Ok(value) => value.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn store(&self, value: T) {
        let value = Arc::new(value);
        match self.0.write() {
            Ok(mut current) => *current = value,
            Err(poisoned) => *poisoned.into_inner() = value,
        }
    }
}

impl Verifier {
    pub fn verify(&self, token: &str) -> Result<Verified, TokenError> {
        self.keyset().verify(token, uc_types::unix_seconds())
    }

    /// The set verification uses now.
    pub fn keyset(&self) -> Arc<KeySet> {
        self.current.load()
    }

    pub fn replace(&self, set: KeySet) {
        self.current.store(set);
    }

    /// Never returns: keeps this verifier's set equal to the store's.
    pub async fn watch(self, endpoints: Vec<String>, status: Arc<MirrorStatus>) {
        uc_store_mirror::run(endpoints, KeyWatch { verifier: self }, status).await;
    }
}

struct KeyWatch {
    verifier: Verifier,
}

impl Mirror for KeyWatch {
    type State = KeySet;
    const WHILE_UNREACHABLE: &'static str = "verifying with the last keys and revocations";

    fn reads(&self) -> Vec<Read> {
        vec![
            Read::Prefix(keys::iam_signing_keys_prefix()),
            Read::Prefix(keys::iam_revoked_prefix()),
        ]
    }

    fn apply(state: &mut KeySet, key: &str, value: Option<&[u8]>, _mod_revision: i64) -> bool {
        state.apply(key, value).unwrap_or_else(|err| {
            tracing::warn!(%err, "ignoring an unreadable signing key or revocation");
            false
        })
    }

    fn publish(&mut self, state: &KeySet, revision: i64) {
        tracing::debug!(
            revision,
            keys = state.kids().count(),
            "token keys published"
        );
        self.verifier.replace(state.clone());
    }
}
