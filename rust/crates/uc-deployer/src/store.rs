//! The deployer's use of the store: the shared connection, typed reads and
//! the rollout record's compare-and-put.

use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp};
use serde::de::DeserializeOwned;
use uc_types::{keys, RolloutRecord};

/// The store client, once connected; what needs the store answers 503
/// until then.
pub type Store = std::sync::Arc<tokio::sync::OnceCell<Client>>;

/// The value at `key`, decoded, with its mod revision; `None` when the key
/// is absent or its value does not decode as `T`.
pub(crate) async fn get_json<T: DeserializeOwned>(
    client: &mut Client,
    key: &str,
) -> Result<Option<(T, i64)>, etcd_client::Error> {
    let response = client.get(key, None).await?;
    Ok(response.kvs().first().and_then(|kv| {
        serde_json::from_slice(kv.value())
            .ok()
            .map(|v| (v, kv.mod_revision()))
    }))
}

/// Replaces the rollout record if it is unchanged since `revision`; false
/// if it changed meanwhile.
pub(crate) async fn compare_and_put(
    client: &mut Client,
    record: &RolloutRecord,
    revision: i64,
) -> Result<bool, etcd_client::Error> {
    let value = serde_json::to_vec(record).unwrap_or_default();
    let txn = Txn::new()
        .when(vec![Compare::mod_revision(
            keys::rollout_current(),
            CompareOp::Equal,
            revision,
        )])
        .and_then(vec![TxnOp::put(keys::rollout_current(), value, None)]);
    Ok(client.txn(txn).await?.succeeded())
}
