//! Whose a data dir is: the member id, the initial members and the cluster
//! id every initial member computes from the same flags, and the identity
//! written into a new data dir (`member.json`) and checked at every start.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use uc_types::InitialMember;

use super::error::StartError;
use crate::ids;
use crate::raft::{Member, NodeId};

/// Who this data dir belongs to, written on first start.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Identity {
    name: String,
    member_id: String,
    cluster_id: String,
    token: String,
}

/// This member's id, the initial members and the cluster id, as every
/// initial member computes them from the same flags.
pub(crate) struct Bootstrap {
    pub id: NodeId,
    /// Without client URLs: every initial member must propose the very same
    /// membership (it is entry 0 of every log); they are published later.
    pub members: BTreeMap<NodeId, Member>,
    pub cluster_id: u64,
    pub identity: Identity,
}

pub(crate) fn bootstrap(
    name: &str,
    advertise_peer_urls: &[String],
    initial_cluster: &[InitialMember],
    token: &str,
) -> Result<Bootstrap, StartError> {
    if advertise_peer_urls.is_empty() {
        return Err(StartError::Config(
            "--initial-advertise-peer-urls is empty".into(),
        ));
    }
    let id = ids::member_id(advertise_peer_urls, token);
    let mut members = BTreeMap::new();
    for member in initial_cluster {
        members.insert(
            ids::member_id(&member.peer_urls, token),
            Member {
                name: member.name.clone(),
                peer_urls: member.peer_urls.clone(),
                client_urls: Vec::new(),
            },
        );
    }
    let Some(me) = members.get(&id) else {
        return Err(StartError::Config(format!(
            "--initial-cluster has no member with this member's --initial-advertise-peer-urls {advertise_peer_urls:?} (member {name:?})"
        )));
    };
    if me.name != name {
        return Err(StartError::Config(format!(
            "--initial-cluster names the member with peer URLs {:?} {:?}, but --name is {name:?}",
            me.peer_urls, me.name
        )));
    }
    let ids_list: Vec<u64> = members.keys().copied().collect();
    let cluster_id = ids::cluster_id(&ids_list, token);
    Ok(Bootstrap {
        id,
        members,
        cluster_id,
        identity: Identity {
            name: name.to_string(),
            member_id: format!("{id:x}"),
            cluster_id: format!("{cluster_id:x}"),
            token: token.to_string(),
        },
    })
}

/// Writes the identity into a new data dir, or checks the one found there.
pub(crate) fn check_identity(dir: &Path, identity: &Identity) -> Result<(), StartError> {
    let path = dir.join("member.json");
    let data_dir_error = |detail: String| StartError::DataDir {
        dir: dir.display().to_string(),
        detail,
    };
    match std::fs::read(&path) {
        Ok(bytes) => {
            let found: Identity = serde_json::from_slice(&bytes).map_err(|e| {
                data_dir_error(format!(
                    "member.json is not a uc-store identity ({e}); is this the right --data-dir?"
                ))
            })?;
            if found.cluster_id != identity.cluster_id || found.token != identity.token {
                return Err(data_dir_error(format!(
                    "cluster-id mismatch: the data dir belongs to cluster {} (token {:?}), the config describes cluster {} (token {:?}); point --data-dir elsewhere or fix --initial-cluster/--initial-cluster-token",
                    found.cluster_id, found.token, identity.cluster_id, identity.token
                )));
            }
            if found.member_id != identity.member_id {
                return Err(data_dir_error(format!(
                    "the data dir belongs to member {} ({}), this is member {} ({}); --name or --initial-advertise-peer-urls changed?",
                    found.name, found.member_id, identity.name, identity.member_id
                )));
            }
            Ok(())
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let foreign = std::fs::read_dir(dir)
                .map_err(|e| data_dir_error(e.to_string()))?
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .find(|name| !name.starts_with('.'));
            if let Some(name) = foreign {
                return Err(data_dir_error(format!(
                    "not empty and not a uc-store data dir (found {name:?}, no member.json); refusing to use it"
                )));
            }
            let bytes =
                serde_json::to_vec_pretty(identity).map_err(|e| data_dir_error(e.to_string()))?;
            std::fs::write(&path, bytes).map_err(|e| data_dir_error(e.to_string()))
        }
        Err(err) => Err(data_dir_error(err.to_string())),
    }
}
