//! The keys of the zones declared signed, read from their files when a
//! declaration names a new file, and again at every reload while a file
//! cannot be read (the operator may have just put it there). A zone whose
//! key cannot be read is served unsigned and reported (`KeyProblem`):
//! uc-dns never stops answering for a missing key, and never makes one.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::key::ZoneKey;
use super::signer::ZoneSigner;
use crate::zone::Zone;

/// A zone declared signed but served unsigned, and why (on /health).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyProblem {
    pub zone: String,
    pub key_file: String,
    pub error: String,
}

struct KeyState {
    path: String,
    key: Result<Arc<ZoneKey>, String>,
}

#[derive(Default)]
pub struct Keyring {
    keys: BTreeMap<String, KeyState>,
    signers: BTreeMap<String, Arc<ZoneSigner>>,
}

impl Keyring {
    /// The signers of `zones` (name, current version, declaration) that
    /// are declared signed, reusing a signer (and the signatures it keeps)
    /// while its zone's serial and key stay the same; and the zones whose
    /// key could not be read.
    pub fn sign(
        &mut self,
        zones: &[(String, Arc<Zone>, uc_types::Dnssec)],
    ) -> (Vec<Arc<ZoneSigner>>, Vec<KeyProblem>) {
        let mut signers = Vec::new();
        let mut problems = Vec::new();
        let mut keep = BTreeMap::new();
        for (name, zone, spec) in zones {
            if !spec.enable {
                continue;
            }
            let Some(path) = spec.key_file.as_deref() else {
                problems.push(KeyProblem {
                    zone: name.clone(),
                    key_file: String::new(),
                    error: "dnssec.enable without dnssec.keyFile".to_owned(),
                });
                continue;
            };
            let key = match self.key(name, path, zone) {
                Ok(key) => key,
                Err(error) => {
                    problems.push(KeyProblem {
                        zone: name.clone(),
                        key_file: path.to_owned(),
                        error,
                    });
                    continue;
                }
            };
            let signer = match self.signers.get(name) {
                Some(signer)
                    if signer.serial == zone.serial
                        && Arc::ptr_eq(&signer.key, &key)
                        && signer.dnskey().ttl == zone.ttl =>
                {
                    signer.clone()
                }
                _ => Arc::new(ZoneSigner::new(
                    zone.apex.clone(),
                    key,
                    zone.serial,
                    zone.ttl,
                )),
            };
            keep.insert(name.clone(), signer.clone());
            signers.push(signer);
        }
        self.signers = keep;
        self.keys.retain(|name, _| {
            zones
                .iter()
                .any(|(zone, _, spec)| zone == name && spec.enable)
        });
        (signers, problems)
    }

    /// The key of zone `name` from `path`: the one read before, unless the
    /// path changed or it could not be read then.
    fn key(&mut self, name: &str, path: &str, zone: &Zone) -> Result<Arc<ZoneKey>, String> {
        if let Some(state) = self.keys.get(name) {
            if state.path == path {
                if let Ok(key) = &state.key {
                    return Ok(key.clone());
                }
            }
        }
        let loaded = ZoneKey::load(Path::new(path), &zone.apex).map(Arc::new);
        let before = self.keys.get(name).filter(|state| state.path == path);
        match &loaded {
            Ok(key) => tracing::info!(
                zone = %name,
                key_file = %path,
                key_tag = key.key_tag,
                ds = %key.ds_line(&zone.apex),
                "DNSSEC key loaded; the zone is signed. Give the parent zone this DS"
            ),
            Err(err) => {
                // Once per distinct failure, not at every reload.
                let repeated =
                    before.is_some_and(|state| state.key.as_ref().err() == Some(&err.to_string()));
                if !repeated {
                    tracing::error!(zone = %name, key_file = %path, %err, "DNSSEC key unreadable: serving the zone UNSIGNED (resolvers that have its DS will fail to validate it)");
                }
            }
        }
        let key = loaded.map_err(|err| err.to_string());
        self.keys.insert(
            name.to_owned(),
            KeyState {
                path: path.to_owned(),
                key: key.clone(),
            },
        );
        key
    }
}
