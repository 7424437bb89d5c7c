//! Desired state: importing a rendered manifest (with the systems built for
//! its nodes) into the store, and starting the rollout that moves the nodes.

use std::collections::BTreeMap;

use etcd_client::{Client, Compare, CompareOp, GetOptions, Txn, TxnOp};
use tracing::Instrument;
use uc_types::keys::{self, Key};
use uc_types::{
    unix_seconds, DesiredSystem, Manifest, ManifestRevision, RolloutRecord, RolloutState,
};

use crate::store::get_json;

/// What `uc deploy` sends (a uc-types contract; named here as before).
pub use uc_types::DeployRequest;

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The request is wrong; nothing was written.
    #[error("{0}")]
    Invalid(String),
    /// Another rollout is running; nothing was written.
    #[error("rollout {0} is still running; wait for it, or `uc rollout abort` it first")]
    Busy(u64),
    #[error("store: {0}")]
    Store(#[from] etcd_client::Error),
}

/// Validates and imports a deployment, and starts its rollout, in one
/// transaction that fails if the current manifest or rollout changed
/// meanwhile. Returns the new rollout.
pub async fn deploy(
    client: &mut Client,
    request: DeployRequest,
) -> Result<RolloutRecord, DeployError> {
    let span = tracing::info_span!(
        "import",
        revision = tracing::field::Empty,
        systems = request.systems.len()
    );
    import(client, request).instrument(span).await
}

async fn import(client: &mut Client, request: DeployRequest) -> Result<RolloutRecord, DeployError> {
    let text = request.manifest.to_string();
    let manifest = Manifest::from_json("the deployed manifest", &text)
        .map_err(|e| DeployError::Invalid(e.to_string()))?;
    for (node, path) in &request.systems {
        if !manifest.nodes.contains_key(node) {
            return Err(DeployError::Invalid(format!(
                "systems.{node}: no node \"{node}\" in the manifest"
            )));
        }
        if !path.starts_with("/nix/store/") || path.contains(char::is_whitespace) {
            return Err(DeployError::Invalid(format!(
                "systems.{node} = \"{path}\" is not a store path"
            )));
        }
    }

    let current: Option<(ManifestRevision, i64)> =
        get_json(client, &keys::manifest_current()).await?;
    let rollout: Option<(RolloutRecord, i64)> = get_json(client, &keys::rollout_current()).await?;
    if let Some((r, _)) = &rollout {
        if matches!(r.state, RolloutState::Running | RolloutState::Paused) {
            return Err(DeployError::Busy(r.id));
        }
    }
    let revision = current.as_ref().map_or(1, |(c, _)| c.revision + 1);
    tracing::Span::current().record("revision", revision);

    let mut previous = BTreeMap::new();
    for node in request.systems.keys() {
        let desired: Option<(DesiredSystem, i64)> =
            get_json(client, &keys::desired_system(node)).await?;
        previous.insert(node.clone(), desired.map(|(d, _)| d.store_path));
    }
    let waves: Vec<Vec<String>> = manifest
        .rollout
        .waves
        .iter()
        .map(|wave| {
            wave.iter()
                .filter(|n| request.systems.contains_key(*n))
                .cloned()
                .collect::<Vec<_>>()
        })
        .filter(|wave| !wave.is_empty())
        .collect();
    let record = RolloutRecord {
        id: revision,
        state: if waves.is_empty() {
            RolloutState::Succeeded
        } else {
            RolloutState::Running
        },
        waves,
        wave: 0,
        targets: request.systems.clone(),
        previous,
        health_gate_timeout_seconds: u64::from(manifest.rollout.health_gate_timeout_seconds),
        drain_timeout_seconds: u64::from(manifest.rollout.drain_timeout_seconds),
        auto_revert: manifest.rollout.auto_revert,
        wave_started: unix_seconds(),
        error: None,
    };
    let imported = ManifestRevision {
        revision,
        imported_at: unix_seconds(),
        systems: request.systems,
        manifest,
    };

    let value = serde_json::to_vec(&imported).map_err(|e| DeployError::Invalid(e.to_string()))?;
    let rollout_value =
        serde_json::to_vec(&record).map_err(|e| DeployError::Invalid(e.to_string()))?;
    // Unchanged since read: the manifest, and the rollout (0 = absent).
    let guards = vec![
        Compare::mod_revision(
            keys::manifest_current(),
            CompareOp::Equal,
            current.map_or(0, |(_, r)| r),
        ),
        Compare::mod_revision(
            keys::rollout_current(),
            CompareOp::Equal,
            rollout.map_or(0, |(_, r)| r),
        ),
    ];
    let mut ops = vec![
        TxnOp::put(keys::manifest_current(), value.clone(), None),
        TxnOp::put(keys::manifest_history(revision), value, None),
        TxnOp::put(keys::rollout_current(), rollout_value, None),
    ];
    ops.extend(spec_ops(client, &imported.manifest).await?);
    let txn = Txn::new().when(guards).and_then(ops);
    if !client.txn(txn).await?.succeeded() {
        return Err(DeployError::Invalid(
            "another deployment was imported at the same time; retry".into(),
        ));
    }
    tracing::info!(revision, waves = ?record.waves, "manifest imported, rollout started");
    Ok(record)
}

/// The declared specs the other daemons watch — services for the scheduler,
/// zones for uc-dns, listeners for uc-lb — written with the manifest, and
/// those of names the manifest no longer declares deleted.
async fn spec_ops(client: &mut Client, manifest: &Manifest) -> Result<Vec<TxnOp>, DeployError> {
    let mut ops = Vec::new();
    let encode =
        |v: serde_json::Result<Vec<u8>>| v.map_err(|e| DeployError::Invalid(e.to_string()));
    let mut wanted = std::collections::BTreeSet::new();
    for (name, service) in &manifest.services {
        wanted.insert(keys::service_spec(name));
        ops.push(TxnOp::put(
            keys::service_spec(name),
            encode(serde_json::to_vec(service))?,
            None,
        ));
    }
    for (zone, spec) in &manifest.dns.zones {
        wanted.insert(keys::dns_zone(zone));
        ops.push(TxnOp::put(
            keys::dns_zone(zone),
            encode(serde_json::to_vec(spec))?,
            None,
        ));
    }
    for (name, listener) in &manifest.lb.listeners {
        wanted.insert(keys::lb_listener(name));
        ops.push(TxnOp::put(
            keys::lb_listener(name),
            encode(serde_json::to_vec(listener))?,
            None,
        ));
    }
    for prefix in [
        keys::services_prefix(),
        keys::dns_zones_prefix(),
        keys::lb_listeners_prefix(),
    ] {
        let existing = client
            .get(
                prefix.as_str(),
                Some(GetOptions::new().with_prefix().with_keys_only()),
            )
            .await?;
        for kv in existing.kvs() {
            let Ok(key) = kv.key_str() else { continue };
            // Only whole specs: assignments live below a service's key.
            let is_spec = matches!(
                keys::parse(key),
                Some(Key::ServiceSpec { .. } | Key::DnsZone { .. } | Key::LbListener { .. })
            );
            if is_spec && !wanted.contains(key) {
                ops.push(TxnOp::delete(key, None));
            }
        }
    }
    Ok(ops)
}
