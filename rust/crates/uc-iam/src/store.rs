//! uc-iam's reads and writes of `/uc/v1/iam/`: the identity model, the
//! published keys, revocations (on leases ending when what they refuse
//! has expired anyway) and the bootstrap admin.

use etcd_client::{Client, Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp};
use serde::de::DeserializeOwned;
use serde::Serialize;
use uc_types::iam::{IamView, Revocation, SigningKeyRecord};
use uc_types::keys;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Store(#[from] etcd_client::Error),
    #[error("{key} does not hold what uc-iam wrote: {source}")]
    Invalid {
        key: String,
        source: serde_json::Error,
    },
}

/// One document at `key`, if present.
pub async fn get<T: DeserializeOwned>(
    client: &mut Client,
    key: &str,
) -> Result<Option<T>, StoreError> {
    Ok(get_versioned(client, key).await?.map(|(value, _)| value))
}

/// Every document under `prefix`, by the last segment of its key.
async fn documents<T: DeserializeOwned>(
    client: &mut Client,
    prefix: &str,
) -> Result<Vec<(String, T)>, StoreError> {
    let response = client
        .get(prefix, Some(GetOptions::new().with_prefix()))
        .await?;
    let mut out = Vec::new();
    for kv in response.kvs() {
        let key = String::from_utf8_lossy(kv.key()).into_owned();
        let value = serde_json::from_slice(kv.value()).map_err(|source| StoreError::Invalid {
            key: key.clone(),
            source,
        })?;
        out.push((key[prefix.len()..].to_owned(), value));
    }
    Ok(out)
}

/// The whole identity model as stored now.
pub async fn load_view(client: &mut Client) -> Result<IamView, StoreError> {
    let prefix = keys::iam_kind_prefix;
    Ok(IamView {
        tenants: documents(client, &prefix("tenants"))
            .await?
            .into_iter()
            .collect(),
        users: documents(client, &prefix("users"))
            .await?
            .into_iter()
            .collect(),
        service_accounts: documents(client, &prefix("service-accounts"))
            .await?
            .into_iter()
            .collect(),
        groups: documents(client, &prefix("groups"))
            .await?
            .into_iter()
            .collect(),
        roles: documents(client, &prefix("roles"))
            .await?
            .into_iter()
            .collect(),
        bindings: documents(client, &prefix("bindings"))
            .await?
            .into_iter()
            .collect(),
    })
}

pub async fn put<T: Serialize>(
    client: &mut Client,
    key: &str,
    value: &T,
    lease: Option<i64>,
) -> Result<(), StoreError> {
    let options = lease.map(|id| PutOptions::new().with_lease(id));
    client
        .put(key, serde_json::to_vec(value).unwrap_or_default(), options)
        .await?;
    Ok(())
}

/// Writes `value` at `key` unless the key exists; whether it wrote.
pub async fn put_if_absent<T: Serialize>(
    client: &mut Client,
    key: &str,
    value: &T,
) -> Result<bool, StoreError> {
    let txn = Txn::new()
        .when([Compare::create_revision(key, CompareOp::Equal, 0)])
        .and_then([TxnOp::put(
            key,
            serde_json::to_vec(value).unwrap_or_default(),
            None,
        )]);
    Ok(client.txn(txn).await?.succeeded())
}

/// A lease living `seconds` (at least 1).
pub async fn lease(client: &mut Client, seconds: u64) -> Result<i64, StoreError> {
    let ttl = i64::try_from(seconds.max(1)).unwrap_or(i64::MAX);
    Ok(client.lease_grant(ttl, None).await?.id())
}

/// Writes a revocation at `key`, on a lease ending at its `until`: the
/// store forgets it once what it refuses has expired by itself.
pub async fn revoke(
    client: &mut Client,
    key: &str,
    revocation: &Revocation,
) -> Result<(), StoreError> {
    let ttl = revocation.until.saturating_sub(revocation.revoked_at);
    let id = lease(client, ttl).await?;
    put(client, key, revocation, Some(id)).await
}

/// Publishes a signing key's public half; a retired one on a lease of
/// `keep_seconds`, after which every token it signed has expired.
pub async fn publish_key(
    client: &mut Client,
    record: &SigningKeyRecord,
    keep_seconds: Option<u64>,
) -> Result<(), StoreError> {
    let lease = match keep_seconds {
        Some(seconds) => Some(lease(client, seconds).await?),
        None => None,
    };
    put(client, &keys::iam_signing_key(&record.kid), record, lease).await
}

pub async fn published_keys(client: &mut Client) -> Result<Vec<SigningKeyRecord>, StoreError> {
    let records = documents(client, &keys::iam_signing_keys_prefix()).await?;
    Ok(records.into_iter().map(|(_, record)| record).collect())
}

/// The document at `key` and its mod revision, if present.
pub async fn get_versioned<T: DeserializeOwned>(
    client: &mut Client,
    key: &str,
) -> Result<Option<(T, i64)>, StoreError> {
    let response = client.get(key, None).await?;
    let Some(kv) = response.kvs().first() else {
        return Ok(None);
    };
    let value = serde_json::from_slice(kv.value()).map_err(|source| StoreError::Invalid {
        key: key.to_owned(),
        source,
    })?;
    Ok(Some((value, kv.mod_revision())))
}

/// Writes `value` at `key` if nobody wrote the key since `revision`;
/// whether it did.
pub async fn put_if_unchanged<T: Serialize>(
    client: &mut Client,
    key: &str,
    value: &T,
    revision: i64,
) -> Result<bool, StoreError> {
    let txn = Txn::new()
        .when([Compare::mod_revision(key, CompareOp::Equal, revision)])
        .and_then([TxnOp::put(
            key,
            serde_json::to_vec(value).unwrap_or_default(),
            None,
        )]);
    Ok(client.txn(txn).await?.succeeded())
}
