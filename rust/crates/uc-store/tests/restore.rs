//! `uc-store snapshot restore`: a snapshot saved by the real etcdctl from a
//! real etcd 3.4, or from uc-store, becomes a new uc-store cluster that
//! answers every read as the source does (values, revisions, versions,
//! history back to the compaction, leases with their keys); bad input is
//! refused by name and leaves nothing behind.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{Cluster, Kind};
use etcd_client::{Client, GetOptions, LeaseTimeToLiveOptions, PutOptions, Txn, TxnOp};

async fn connect(cluster: &Cluster) -> Client {
    let endpoints: Vec<String> = cluster.members.iter().map(|m| m.client_url()).collect();
    Client::connect(endpoints, None).await.unwrap()
}

/// Writes with everything a restore must carry: enough keys for branch
/// pages in etcd's bbolt file, a value larger than a page, several versions
/// of a key, deletes, a txn, leases with and without keys, a revoked lease,
/// and a compaction. Returns (compacted revision, a lease with keys).
async fn write_history(client: &mut Client) -> (i64, i64) {
    for i in 0..1500 {
        client
            .put(format!("bulk/{i:05}"), format!("value {i}"), None)
            .await
            .unwrap();
    }
    client.put("big", "x".repeat(20_000), None).await.unwrap();
    for v in 0..5 {
        client.put("counter", v.to_string(), None).await.unwrap();
    }
    let compacted = client.put("mark", "1", None).await.unwrap();
    let compacted = compacted.header().unwrap().revision();
    client.delete("bulk/0000", None).await.unwrap();
    client
        .delete(
            "bulk/0001",
            Some(etcd_client::DeleteOptions::new().with_prefix()),
        )
        .await
        .unwrap();
    client
        .txn(Txn::new().and_then([
            TxnOp::put("txn/a", "1", None),
            TxnOp::put("txn/b", "2", None),
            TxnOp::delete("counter", None),
        ]))
        .await
        .unwrap();
    client.put("counter", "again", None).await.unwrap();
    let held = client.lease_grant(600, None).await.unwrap().id();
    let empty = client.lease_grant(300, None).await.unwrap().id();
    let revoked = client.lease_grant(300, None).await.unwrap().id();
    for key in ["leased/a", "leased/b", "leased/c"] {
        let options = PutOptions::new().with_lease(held);
        client.put(key, "l", Some(options)).await.unwrap();
    }
    // Re-put without the lease: detached.
    client.put("leased/c", "free", None).await.unwrap();
    let options = PutOptions::new().with_lease(revoked);
    client
        .put("gone/with-lease", "l", Some(options))
        .await
        .unwrap();
    client.lease_revoke(revoked).await.unwrap();
    client.compact(compacted, None).await.unwrap();
    client.put("after", "compaction", None).await.unwrap();
    assert_ne!(empty, held);
    (compacted, held)
}

/// What a client can read, as comparable data: every key now and at each
/// revision from the compaction on, the compaction error below it, the
/// revision, and the leases with their keys and granted TTLs.
async fn observe(client: &mut Client, compacted: i64) -> Vec<String> {
    let mut seen = Vec::new();
    let all = client
        .get("", Some(GetOptions::new().with_all_keys()))
        .await
        .unwrap();
    let revision = all.header().unwrap().revision();
    seen.push(format!("revision {revision}"));
    for kv in all.kvs() {
        seen.push(format!(
            "{:?}={:?} create={} mod={} version={} lease={}",
            kv.key_str().unwrap(),
            kv.value_str().unwrap().len(),
            kv.create_revision(),
            kv.mod_revision(),
            kv.version(),
            kv.lease()
        ));
    }
    for at in compacted..=revision {
        let options = GetOptions::new().with_all_keys().with_revision(at);
        let then = client.get("", Some(options)).await.unwrap();
        let keys: Vec<String> = then
            .kvs()
            .iter()
            .map(|kv| format!("{}@{}", kv.key_str().unwrap(), kv.mod_revision()))
            .collect();
        seen.push(format!("at {at}: {} keys, newest {:?}", keys.len(), {
            let mut newest = keys.clone();
            newest.sort_by_key(|k| k.rsplit('@').next().unwrap().parse::<i64>().unwrap());
            newest.into_iter().rev().take(3).collect::<Vec<_>>()
        }));
    }
    let below = client
        .get(
            "counter",
            Some(GetOptions::new().with_revision(compacted - 1)),
        )
        .await
        .expect_err("a read below the compaction fails");
    let below = match below {
        etcd_client::Error::GRpcStatus(status) => {
            format!("{:?} {}", status.code(), status.message())
        }
        other => format!("{other:?}"),
    };
    seen.push(format!("below: {below}"));
    let mut leases: Vec<i64> = client
        .leases()
        .await
        .unwrap()
        .leases()
        .iter()
        .map(|l| l.id())
        .collect();
    leases.sort();
    for id in leases {
        let ttl = client
            .lease_time_to_live(id, Some(LeaseTimeToLiveOptions::new().with_keys()))
            .await
            .unwrap();
        let mut keys: Vec<String> = ttl
            .keys()
            .iter()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect();
        keys.sort();
        seen.push(format!(
            "lease {id:x} granted {} keys {keys:?}",
            ttl.granted_ttl()
        ));
    }
    seen
}

fn save_snapshot(endpoint: &str, file: &Path) {
    let out = common::ctl(
        endpoint,
        &["snapshot", "save", file.to_str().unwrap()],
        None,
    );
    assert!(out.status.success(), "snapshot save: {out:?}");
}

fn restore(cluster: &Cluster, i: usize, file: &Path, extra: &[&str]) -> Output {
    let member = &cluster.members[i];
    Command::new(env!("CARGO_BIN_EXE_uc-store"))
        .args(["snapshot", "restore"])
        .arg(file)
        .args(["--name", &member.name, "--data-dir"])
        .arg(&member.dir)
        .args(["--initial-cluster", &cluster.initial_cluster()])
        .args(["--initial-cluster-token", &cluster.token])
        .args(["--initial-advertise-peer-urls", &member.peer_url()])
        .args(extra)
        .output()
        .unwrap()
}

fn restore_all(cluster: &Cluster, file: &Path, extra: &[&str]) -> String {
    let mut said = String::new();
    for i in 0..cluster.members.len() {
        let out = restore(cluster, i, file, extra);
        assert!(out.status.success(), "restore m{i}: {out:?}");
        said = String::from_utf8(out.stdout).unwrap();
    }
    said
}

fn compare(source: &[String], restored: &[String]) {
    assert_eq!(source.len(), restored.len(), "{restored:#?}");
    for (a, b) in source.iter().zip(restored) {
        assert_eq!(a, b);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_etcd_snapshot_restores_into_uc_store_with_revisions_history_and_leases() {
    let mut etcd = Cluster::start(Kind::Etcd, 1, "restore-etcd-source", &[]);
    let mut source = connect(&etcd).await;
    let (compacted, held) = write_history(&mut source).await;
    let file = etcd.scratch("etcd.db");
    save_snapshot(&etcd.members[0].client_url(), &file);
    let expected = observe(&mut source, compacted).await;
    assert!(
        expected
            .iter()
            .any(|l| l.contains("leased/a") && l.contains(&held.to_string())),
        "{expected:#?}"
    );

    let mut uc = Cluster::prepare(Kind::UcStore, 3, "restore-etcd-into-uc", &[]);
    let said = restore_all(&uc, &file, &[]);
    assert!(said.contains("(etcd snapshot)"), "{said}");
    assert!(said.contains(&format!("compacted {compacted}")), "{said}");
    uc.start_all();
    let mut restored = connect(&uc).await;
    compare(&expected, &observe(&mut restored, compacted).await);

    // Both go on from the same revision.
    let next_etcd = source.put("next", "1", None).await.unwrap();
    let next_uc = restored.put("next", "1", None).await.unwrap();
    assert_eq!(
        next_etcd.header().unwrap().revision(),
        next_uc.header().unwrap().revision()
    );
    // The leases are live: revoking one deletes its keys on the restored
    // cluster as on etcd.
    restored.lease_revoke(held).await.unwrap();
    let left = restored
        .get("leased/", Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    let keys: Vec<&str> = left.kvs().iter().map(|kv| kv.key_str().unwrap()).collect();
    assert_eq!(keys, ["leased/c"]);

    // An etcd member's own backend file (no snapshot taken: the member is
    // gone) restores too, with --skip-hash-check, as etcdctl's.
    drop(source);
    // etcd stops gracefully on SIGTERM (its backend committed), then
    // re-raises the signal: not a clean exit status.
    etcd.terminate(0);
    let db = etcd.members[0].dir.join("member/snap/db");
    let mut again = Cluster::prepare(Kind::UcStore, 1, "restore-etcd-db-file", &[]);
    let out = restore(&again, 0, &db, &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--skip-hash-check"), "{err}");
    restore_all(&again, &db, &["--skip-hash-check"]);
    again.start_all();
    let mut client = connect(&again).await;
    let now = client.get("next", None).await.unwrap();
    assert_eq!(
        now.header().unwrap().revision(),
        next_etcd.header().unwrap().revision()
    );
    assert_eq!(now.kvs()[0].value_str().unwrap(), "1");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_uc_store_snapshot_restores_a_new_cluster_with_the_same_data() {
    let old = Cluster::start(Kind::UcStore, 3, "restore-uc-source", &[]);
    let mut source = connect(&old).await;
    let (compacted, _) = write_history(&mut source).await;
    let file = old.scratch("uc.snapshot");
    save_snapshot(&old.members[0].client_url(), &file);
    let expected = observe(&mut source, compacted).await;
    let hash = source.hash_kv(0).await.unwrap().hash();

    let mut new = Cluster::prepare(Kind::UcStore, 3, "restore-uc-target", &[]);
    let said = restore_all(&new, &file, &[]);
    assert!(said.contains("(uc-store snapshot)"), "{said}");
    new.start_all();
    let mut restored = connect(&new).await;
    compare(&expected, &observe(&mut restored, compacted).await);
    // Every member holds exactly the source's history.
    for member in &new.members {
        let mut one = Client::connect([member.client_url()], None).await.unwrap();
        assert_eq!(
            one.hash_kv(0).await.unwrap().hash(),
            hash,
            "{}",
            member.name
        );
    }
    // A new cluster: its own id, none of the old members.
    let members = restored.member_list().await.unwrap();
    let names: Vec<&str> = members.members().iter().map(|m| m.name()).collect();
    assert_eq!(names.len(), 3);
    let old_ids: Vec<u64> = source
        .member_list()
        .await
        .unwrap()
        .members()
        .iter()
        .map(|m| m.id())
        .collect();
    assert!(members.members().iter().all(|m| !old_ids.contains(&m.id())));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_by_name_and_leaves_nothing_behind() {
    let source = Cluster::start(Kind::UcStore, 1, "restore-bad-source", &[]);
    let mut client = connect(&source).await;
    // Records well past the first 512 bytes: a file cut in half is cut
    // inside them, not in the padding.
    for i in 0..200 {
        client
            .put(format!("k{i}"), "v".repeat(100), None)
            .await
            .unwrap();
    }
    let file = source.scratch("good.snapshot");
    save_snapshot(&source.members[0].client_url(), &file);
    let good = std::fs::read(&file).unwrap();
    let target = Cluster::prepare(Kind::UcStore, 1, "restore-bad-target", &[]);
    let dir = &target.members[0].dir;
    let refused = |file: &Path, extra: &[&str]| {
        let out = restore(&target, 0, file, extra);
        assert!(!out.status.success(), "{out:?}");
        assert!(!dir.exists(), "a failed restore left {}", dir.display());
        String::from_utf8(out.stderr).unwrap()
    };

    let damaged = source.scratch("damaged.snapshot");
    let mut bytes = good.clone();
    bytes[40] ^= 0x55;
    std::fs::write(&damaged, &bytes).unwrap();
    let err = refused(&damaged, &[]);
    assert!(err.contains("integrity check failed"), "{err}");

    let cut = source.scratch("cut.snapshot");
    std::fs::write(&cut, &good[..good.len() / 2]).unwrap();
    let err = refused(&cut, &["--skip-hash-check"]);
    assert!(err.contains("cut.snapshot"), "{err}");

    let other = source.scratch("other.file");
    std::fs::write(&other, b"PK\x03\x04 not a snapshot at all").unwrap();
    let err = refused(&other, &["--skip-hash-check"]);
    assert!(
        err.contains("not a snapshot of uc-store or of etcd"),
        "{err}"
    );

    let err = refused(&source.scratch("missing.snapshot"), &[]);
    assert!(err.contains("missing.snapshot"), "{err}");

    // A data dir that holds anything is never touched.
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("precious"), b"keep").unwrap();
    let out = restore(&target, 0, &file, &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("exists and is not empty"), "{err}");
    assert_eq!(std::fs::read(dir.join("precious")).unwrap(), b"keep");
    std::fs::remove_file(dir.join("precious")).unwrap();

    // The good file restores into the now empty dir (as a unit's
    // StateDirectory leaves it).
    let out = restore(&target, 0, &file, &[]);
    assert!(out.status.success(), "{out:?}");
    assert!(dir.join("state.redb").exists() && dir.join("member.json").exists());
}
