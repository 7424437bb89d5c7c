//! Following this node's assignments: the store's service specs and the
//! assignments naming this node, turned into the instances it should run,
//! re-read on every change under `services/`.

use std::collections::BTreeMap;
use std::time::Duration;

use etcd_client::{Client, GetOptions, WatchOptions};
use tokio::sync::watch;
use tracing::Instrument;
use uc_types::keys::{self, Key};
use uc_types::{Assignment, NodeAgentConfig, Service};

use crate::plan::InstancePlan;
use crate::shared::connect;

/// An instance this node should run, and how many of its service may be
/// down at once while a new spec rolls out.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Wanted {
    pub(crate) plan: InstancePlan,
    /// `plan.fingerprint()`, computed once per read of the store rather
    /// than on every reconcile pass.
    pub(crate) fingerprint: String,
    pub(crate) max_unavailable: u32,
}

pub(crate) type Desired = Option<BTreeMap<String, Wanted>>;

/// The instances assigned to this node, from the store's service specs
/// and assignments; a new value on every change under `services/`.
pub(crate) async fn follow_assignments(config: NodeAgentConfig, desired: watch::Sender<Desired>) {
    loop {
        let mut client = connect(&config, "assignments").await;
        if let Err(err) = follow(&mut client, &config, &desired).await {
            tracing::warn!(%err, "lost the store while following assignments; reconnecting");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

async fn follow(
    client: &mut Client,
    config: &NodeAgentConfig,
    desired: &watch::Sender<Desired>,
) -> Result<(), etcd_client::Error> {
    let prefix = keys::services_prefix();
    let revision = read_desired(client, config, desired).await?;
    let mut stream = client
        .watch(
            prefix.clone(),
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(revision + 1),
            ),
        )
        .await?;
    while let Some(response) = stream.message().await? {
        if response.canceled() {
            break;
        }
        if response.events().is_empty() {
            continue;
        }
        // A burst of writes (an import, a drain) becomes one read.
        tokio::time::sleep(Duration::from_millis(50)).await;
        read_desired(client, config, desired).await?;
    }
    Err(etcd_client::Error::WatchError("watch ended".into()))
}

/// Reads the services and this node's assignments, in an `assignments`
/// span with the revision read.
async fn read_desired(
    client: &mut Client,
    config: &NodeAgentConfig,
    desired: &watch::Sender<Desired>,
) -> Result<i64, etcd_client::Error> {
    let span = tracing::info_span!("assignments", revision = tracing::field::Empty);
    read_desired_once(client, config, desired)
        .instrument(span)
        .await
}

async fn read_desired_once(
    client: &mut Client,
    config: &NodeAgentConfig,
    desired: &watch::Sender<Desired>,
) -> Result<i64, etcd_client::Error> {
    let prefix = keys::services_prefix();
    let response = client
        .get(prefix.as_str(), Some(GetOptions::new().with_prefix()))
        .await?;
    let revision = response.header().map_or(0, |h| h.revision());
    tracing::Span::current().record("revision", revision);
    let mut specs: BTreeMap<String, Service> = BTreeMap::new();
    let mut mine: Vec<(String, String, Assignment)> = Vec::new();
    for kv in response.kvs() {
        let key = String::from_utf8_lossy(kv.key());
        match keys::parse(&key) {
            Some(Key::ServiceSpec { service }) => match serde_json::from_slice(kv.value()) {
                Ok(spec) => {
                    specs.insert(service.to_owned(), spec);
                }
                Err(err) => tracing::error!(%key, %err, "unreadable service spec"),
            },
            Some(Key::ServiceAssignment { service, id }) => {
                match serde_json::from_slice::<Assignment>(kv.value()) {
                    Ok(a) if a.node == config.node => {
                        mine.push((service.to_owned(), id.to_owned(), a));
                    }
                    Ok(_) => {}
                    Err(err) => tracing::error!(%key, %err, "unreadable assignment"),
                }
            }
            _ => {}
        }
    }
    let mut plans = BTreeMap::new();
    for (service, id, assignment) in mine {
        let Some(spec) = specs.get(&service) else {
            tracing::warn!(%service, %id, "assignment without a service spec; not started");
            continue;
        };
        match InstancePlan::new(
            &config.node,
            config.address,
            &service,
            &id,
            spec,
            &assignment,
        ) {
            Ok(plan) => {
                let max_unavailable = spec.placement.max_unavailable.max(1);
                plans.insert(
                    plan.name.clone(),
                    Wanted {
                        fingerprint: plan.fingerprint(),
                        plan,
                        max_unavailable,
                    },
                );
            }
            Err(err) => tracing::error!(%service, %id, %err, "cannot run this instance"),
        }
    }
    desired.send_if_modified(|current| {
        let changed = current.as_ref() != Some(&plans);
        *current = Some(plans);
        changed
    });
    Ok(revision)
}
