//! Every RPC through the etcd-client crate (the client every UltraCloud
//! daemon uses), against a 3-member uc-store: results, headers, and errors
//! with etcd's codes and texts.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Cluster, Kind};
use etcd_client::{
    AlarmAction, AlarmType, Client, Compare, CompareOp, DeleteOptions, EventType, GetOptions,
    LeaseTimeToLiveOptions, PutOptions, SortOrder, SortTarget, Txn, TxnOp, TxnOpResponse,
    WatchFilterType, WatchOptions,
};
use tonic::Code;

async fn connect(cluster: &Cluster) -> Client {
    let endpoints: Vec<String> = cluster.members.iter().map(|m| m.client_url()).collect();
    Client::connect(endpoints, None).await.unwrap()
}

async fn connect_to(cluster: &Cluster, member: usize) -> Client {
    Client::connect([cluster.members[member].client_url()], None)
        .await
        .unwrap()
}

fn status(err: etcd_client::Error) -> (Code, String) {
    match err {
        etcd_client::Error::GRpcStatus(status) => (status.code(), status.message().to_string()),
        other => panic!("expected a gRPC status, got {other:?}"),
    }
}

fn values(response: &etcd_client::GetResponse) -> Vec<(String, String)> {
    response
        .kvs()
        .iter()
        .map(|kv| {
            (
                kv.key_str().unwrap().to_string(),
                kv.value_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn kv_range_put_delete_compact() {
    let cluster = Cluster::start(Kind::UcStore, 3, "client-kv", &[]);
    let mut client = connect(&cluster).await;
    let put = client.put("a", "1", None).await.unwrap();
    let header = put.header().unwrap();
    assert_eq!(
        header.revision(),
        2,
        "the first write is revision 2, as in etcd"
    );
    assert_ne!(header.cluster_id(), 0);
    assert_ne!(header.member_id(), 0);
    assert!(header.raft_term() >= 1);
    client.put("b", "2", None).await.unwrap();
    client.put("c", "3", None).await.unwrap();
    let prev = client
        .put("a", "4", Some(PutOptions::new().with_prev_key()))
        .await
        .unwrap();
    assert_eq!(prev.prev_key().unwrap().value(), b"1");

    // Reads: ranges, prefix, all keys, limit/more/count, sort, filters.
    let all = client
        .get("\0", Some(GetOptions::new().with_from_key()))
        .await
        .unwrap();
    assert_eq!(values(&all), pairs(&[("a", "4"), ("b", "2"), ("c", "3")]));
    let range = client
        .get("a", Some(GetOptions::new().with_range("c")))
        .await
        .unwrap();
    assert_eq!(values(&range), pairs(&[("a", "4"), ("b", "2")]));
    let limited = client
        .get("", Some(GetOptions::new().with_all_keys().with_limit(1)))
        .await
        .unwrap();
    assert_eq!(limited.kvs().len(), 1);
    assert!(limited.more());
    assert_eq!(limited.count(), 3);
    let sorted = client
        .get(
            "",
            Some(
                GetOptions::new()
                    .with_all_keys()
                    .with_sort(SortTarget::Mod, SortOrder::Descend),
            ),
        )
        .await
        .unwrap();
    assert_eq!(values(&sorted)[0].0, "a");
    let counted = client
        .get(
            "",
            Some(GetOptions::new().with_all_keys().with_count_only()),
        )
        .await
        .unwrap();
    assert!(counted.kvs().is_empty());
    assert_eq!(counted.count(), 3);
    let keys = client
        .get("", Some(GetOptions::new().with_all_keys().with_keys_only()))
        .await
        .unwrap();
    assert!(keys.kvs().iter().all(|kv| kv.value().is_empty()));
    let filtered = client
        .get(
            "",
            Some(
                GetOptions::new()
                    .with_all_keys()
                    .with_min_create_revision(3)
                    .with_max_mod_revision(4),
            ),
        )
        .await
        .unwrap();
    assert_eq!(values(&filtered), pairs(&[("b", "2"), ("c", "3")]));
    let serializable = client
        .get("a", Some(GetOptions::new().with_serializable()))
        .await
        .unwrap();
    assert_eq!(values(&serializable), pairs(&[("a", "4")]));
    let old = client
        .get("a", Some(GetOptions::new().with_revision(2)))
        .await
        .unwrap();
    assert_eq!(values(&old), pairs(&[("a", "1")]));
    let kv = &old.kvs()[0];
    assert_eq!(
        (kv.create_revision(), kv.mod_revision(), kv.version()),
        (2, 2, 1)
    );

    // Put options.
    let kept = client
        .put("a", "", Some(PutOptions::new().with_ignore_value()))
        .await
        .unwrap();
    assert!(kept.header().unwrap().revision() > 5);
    assert_eq!(
        values(&client.get("a", None).await.unwrap()),
        pairs(&[("a", "4")])
    );
    let (code, message) = status(
        client
            .put("missing", "", Some(PutOptions::new().with_ignore_value()))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (code, message.as_str()),
        (Code::InvalidArgument, "etcdserver: key not found")
    );
    let (code, message) = status(client.put("", "x", None).await.unwrap_err());
    assert_eq!(
        (code, message.as_str()),
        (Code::InvalidArgument, "etcdserver: key is not provided")
    );
    let big = vec![b'x'; 2 * 1024 * 1024];
    let (code, message) = status(client.put("big", big, None).await.unwrap_err());
    assert!(
        code == Code::InvalidArgument
            || code == Code::ResourceExhausted
            || code == Code::OutOfRange,
        "{code:?} {message}"
    );

    // Delete.
    let deleted = client
        .delete(
            "b",
            Some(DeleteOptions::new().with_range("d").with_prev_key()),
        )
        .await
        .unwrap();
    assert_eq!(deleted.deleted(), 2);
    assert_eq!(deleted.prev_kvs().len(), 2);
    let nothing = client.delete("zzz", None).await.unwrap();
    assert_eq!(nothing.deleted(), 0);
    assert_eq!(
        nothing.header().unwrap().revision(),
        deleted.header().unwrap().revision(),
        "a no-op delete bumps no revision"
    );

    // Compaction.
    let revision = deleted.header().unwrap().revision();
    client.compact(revision - 1, None).await.unwrap();
    let (code, message) = status(
        client
            .get("a", Some(GetOptions::new().with_revision(2)))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (code, message.as_str()),
        (
            Code::OutOfRange,
            "etcdserver: mvcc: required revision has been compacted"
        )
    );
    let (code, message) = status(
        client
            .get("a", Some(GetOptions::new().with_revision(revision + 100)))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (code, message.as_str()),
        (
            Code::OutOfRange,
            "etcdserver: mvcc: required revision is a future revision"
        )
    );
    let (code, _) = status(client.compact(revision - 2, None).await.unwrap_err());
    assert_eq!(code, Code::OutOfRange);

    // Every member serves the same data, followers included.
    for member in 0..3 {
        let mut one = connect_to(&cluster, member).await;
        let got = one.get("a", None).await.unwrap();
        assert_eq!(values(&got), pairs(&[("a", "4")]), "member {member}");
        one.put(format!("from-{member}"), "x", None).await.unwrap();
        let own = one.get(format!("from-{member}"), None).await.unwrap();
        assert_eq!(own.kvs().len(), 1, "read-your-writes on member {member}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn txn_compares_and_nested_ops() {
    let cluster = Cluster::start(Kind::UcStore, 3, "client-txn", &[]);
    let mut client = connect(&cluster).await;
    client.put("x", "1", None).await.unwrap();
    let lease = client.lease_grant(60, None).await.unwrap().id();
    client
        .put("l", "v", Some(PutOptions::new().with_lease(lease)))
        .await
        .unwrap();
    let txn = Txn::new()
        .when([
            Compare::value("x", CompareOp::Equal, "1"),
            Compare::version("x", CompareOp::Equal, 1),
            Compare::create_revision("x", CompareOp::Equal, 2),
            Compare::mod_revision("x", CompareOp::Less, 100),
            Compare::lease("l", CompareOp::Equal, lease),
        ])
        .and_then([
            TxnOp::put("x", "2", None),
            TxnOp::get("x", None),
            TxnOp::txn(
                Txn::new()
                    .when([Compare::value("x", CompareOp::Equal, "1")])
                    .and_then([TxnOp::put("nested", "seen-before", None)])
                    .or_else([TxnOp::put("nested", "seen-after", None)]),
            ),
        ])
        .or_else([TxnOp::put("failed", "1", None)]);
    let response = client.txn(txn).await.unwrap();
    assert!(response.succeeded());
    let ops = response.op_responses();
    assert_eq!(ops.len(), 3);
    match &ops[1] {
        TxnOpResponse::Get(get) => {
            assert_eq!(get.kvs()[0].value(), b"2", "reads see the txn's writes")
        }
        other => panic!("{other:?}"),
    }
    let nested = client.get("nested", None).await.unwrap();
    assert_eq!(
        nested.kvs()[0].value(),
        b"seen-before",
        "nested compares see the store before the txn, as in etcd"
    );
    let one_revision = nested.kvs()[0].mod_revision();
    assert_eq!(
        one_revision,
        client.get("x", None).await.unwrap().kvs()[0].mod_revision()
    );

    let failing = client
        .txn(
            Txn::new()
                .when([Compare::value("x", CompareOp::Greater, "5")])
                .and_then([TxnOp::put("never", "1", None)])
                .or_else([TxnOp::get("x", None)]),
        )
        .await
        .unwrap();
    assert!(!failing.succeeded());
    assert!(client.get("never", None).await.unwrap().kvs().is_empty());

    let (code, message) = status(
        client
            .txn(Txn::new().and_then([TxnOp::put("d", "1", None), TxnOp::put("d", "2", None)]))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (code, message.as_str()),
        (
            Code::InvalidArgument,
            "etcdserver: duplicate key given in txn request"
        )
    );
    let many: Vec<TxnOp> = (0..129)
        .map(|i| TxnOp::put(format!("k{i}"), "v", None))
        .collect();
    let (code, message) = status(client.txn(Txn::new().and_then(many)).await.unwrap_err());
    assert_eq!(
        (code, message.as_str()),
        (
            Code::InvalidArgument,
            "etcdserver: too many operations in txn request"
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_streams_history_filters_progress_and_compaction() {
    let cluster = Cluster::start(Kind::UcStore, 3, "client-watch", &[]);
    let mut client = connect(&cluster).await;
    let first = client.put("w/a", "1", None).await.unwrap();
    let start = first.header().unwrap().revision();
    client.put("w/a", "2", None).await.unwrap();

    // History replay from a past revision, with previous values.
    let mut stream = client
        .watch(
            "w/",
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(start)
                    .with_prev_key(),
            ),
        )
        .await
        .unwrap();
    let created = stream.message().await.unwrap().unwrap();
    assert!(created.created());
    let mut events = Vec::new();
    while events.len() < 2 {
        let message = tokio::time::timeout(Duration::from_secs(5), stream.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        events.extend(message.events().iter().cloned());
    }
    assert_eq!(events[0].kv().unwrap().value(), b"1");
    assert_eq!(events[1].kv().unwrap().value(), b"2");
    assert_eq!(events[1].prev_kv().unwrap().value(), b"1");

    // Live events, a delete, filters on a second watcher in the same stream.
    stream
        .watch(
            "w/",
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_filters([WatchFilterType::NoPut]),
            ),
        )
        .await
        .unwrap();
    let created = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(created.created());
    let no_put_id = created.watch_id();
    client.put("w/b", "3", None).await.unwrap();
    client.delete("w/a", None).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let message = tokio::time::timeout(Duration::from_secs(5), stream.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        for event in message.events() {
            seen.push((
                message.watch_id(),
                event.event_type(),
                event.kv().unwrap().key().to_vec(),
            ));
        }
    }
    assert!(seen.contains(&(no_put_id, EventType::Delete, b"w/a".to_vec())));
    assert!(!seen
        .iter()
        .any(|(id, t, _)| *id == no_put_id && *t == EventType::Put));

    // Progress request: an empty response at the current revision.
    stream.request_progress().await.unwrap();
    let progress = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(progress.events().is_empty() && !progress.created() && !progress.canceled());
    assert!(progress.header().unwrap().revision() >= start + 3);

    // Cancel.
    stream.cancel(no_put_id).await.unwrap();
    let canceled = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(canceled.canceled());
    assert_eq!(canceled.watch_id(), no_put_id);

    // A watcher below the compacted revision gets it and is cancelled.
    let now = client
        .put("w/c", "4", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    client.compact(now, None).await.unwrap();
    // Members apply the compaction in their own time (as etcd's do): watch
    // on one member after a linearizable read there, which waits for it.
    let mut one = connect_to(&cluster, 2).await;
    one.get("w/c", None).await.unwrap();
    let mut old = one
        .watch(
            "w/",
            Some(WatchOptions::new().with_prefix().with_start_revision(start)),
        )
        .await
        .unwrap();
    let mut compacted = None;
    for _ in 0..3 {
        let message = tokio::time::timeout(Duration::from_secs(5), old.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if message.canceled() {
            compacted = Some(message.compact_revision());
            break;
        }
    }
    assert_eq!(compacted, Some(now));
}

#[tokio::test(flavor = "multi_thread")]
async fn leases_grant_keepalive_ttl_revoke_and_expire() {
    let cluster = Cluster::start(Kind::UcStore, 3, "client-lease", &[]);
    let mut client = connect(&cluster).await;
    let grant = client.lease_grant(30, None).await.unwrap();
    assert_eq!(grant.ttl(), 30);
    client
        .put("held", "v", Some(PutOptions::new().with_lease(grant.id())))
        .await
        .unwrap();
    let ttl = client
        .lease_time_to_live(grant.id(), Some(LeaseTimeToLiveOptions::new().with_keys()))
        .await
        .unwrap();
    assert_eq!(ttl.granted_ttl(), 30);
    assert!(ttl.ttl() > 25 && ttl.ttl() <= 30, "{}", ttl.ttl());
    assert_eq!(ttl.keys(), [b"held".to_vec()]);
    let (mut keeper, mut responses) = client.lease_keep_alive(grant.id()).await.unwrap();
    keeper.keep_alive().await.unwrap();
    let kept = responses.message().await.unwrap().unwrap();
    assert_eq!((kept.id(), kept.ttl()), (grant.id(), 30));
    let leases = client.leases().await.unwrap();
    assert!(leases.leases().iter().any(|l| l.id() == grant.id()));
    client.lease_revoke(grant.id()).await.unwrap();
    assert!(client.get("held", None).await.unwrap().kvs().is_empty());
    let (code, message) = status(client.lease_revoke(grant.id()).await.unwrap_err());
    assert_eq!(
        (code, message.as_str()),
        (Code::NotFound, "etcdserver: requested lease not found")
    );
    let gone = client.lease_time_to_live(grant.id(), None).await.unwrap();
    assert_eq!(gone.ttl(), -1);

    // A lease nobody keeps alive expires and takes its keys with it; the
    // minimum TTL follows etcd's rule (1.5 election timeouts, so 2 s here).
    let short = client.lease_grant(1, None).await.unwrap();
    assert_eq!(short.ttl(), 2);
    let put = client
        .put("short", "v", Some(PutOptions::new().with_lease(short.id())))
        .await
        .unwrap();
    // From the next revision: a member still applying the put would
    // otherwise start the watch before it (as etcd would).
    let next = put.header().unwrap().revision() + 1;
    let mut watch = client
        .watch("short", Some(WatchOptions::new().with_start_revision(next)))
        .await
        .unwrap();
    let _created = watch.message().await.unwrap();
    let deleted = tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .expect("the lease expires within 10 s")
        .unwrap()
        .unwrap();
    assert_eq!(deleted.events()[0].event_type(), EventType::Delete);

    // Chosen ids, and etcd's errors.
    let chosen = client
        .lease_grant(
            60,
            Some(etcd_client::LeaseGrantOptions::new().with_id(4242)),
        )
        .await
        .unwrap();
    assert_eq!(chosen.id(), 4242);
    let (code, message) = status(
        client
            .lease_grant(
                60,
                Some(etcd_client::LeaseGrantOptions::new().with_id(4242)),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (code, message.as_str()),
        (Code::FailedPrecondition, "etcdserver: lease already exists")
    );
    let (code, message) = status(
        client
            .put("x", "v", Some(PutOptions::new().with_lease(99)))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (code, message.as_str()),
        (Code::NotFound, "etcdserver: requested lease not found")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_and_maintenance() {
    let mut cluster = Cluster::start(Kind::UcStore, 3, "client-cluster", &[]);
    let mut client = connect(&cluster).await;
    let members = client.member_list().await.unwrap();
    assert_eq!(members.members().len(), 3);
    assert!(members.members().iter().all(|m| !m.is_learner()));

    // Status from every member names the same leader.
    let mut leaders = Vec::new();
    for member in 0..3 {
        let mut one = connect_to(&cluster, member).await;
        let status = one.status().await.unwrap();
        assert_eq!(status.version(), "3.4.23");
        assert!(status.raft_index() > 0);
        leaders.push(status.leader());
    }
    assert!(
        leaders.iter().all(|l| *l == leaders[0] && *l != 0),
        "{leaders:?}"
    );

    // Hash/HashKV agree across members once they applied the same writes.
    client.put("h", "1", None).await.unwrap();
    let revision = client
        .put("h", "2", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut hashes = Vec::new();
    for member in 0..3 {
        let mut one = connect_to(&cluster, member).await;
        hashes.push(one.hash_kv(revision).await.unwrap().hash());
        one.hash().await.unwrap();
    }
    assert!(hashes.iter().all(|h| *h == hashes[0]), "{hashes:?}");

    // Snapshot: etcd's framing (a multiple of 512 bytes plus a SHA-256).
    let mut snapshot = client.snapshot().await.unwrap();
    let mut bytes = Vec::new();
    while let Some(chunk) = snapshot.message().await.unwrap() {
        bytes.extend_from_slice(chunk.blob());
    }
    assert_eq!(bytes.len() % 512, 32);
    client.defragment().await.unwrap();

    // Alarms: none raised; activate and disarm NOSPACE by hand.
    let alarms = client
        .alarm(AlarmAction::Get, AlarmType::None, None)
        .await
        .unwrap();
    assert!(alarms.alarms().is_empty());

    // A learner: added, listed, refused promotion until it exists, removed.
    let ip = &cluster.members[0].ip;
    let learner_url = format!("http://{}.9:2380", &ip[..ip.rfind('.').unwrap()]);
    let added = client
        .member_add(
            [learner_url.as_str()],
            Some(etcd_client::MemberAddOptions::new().with_is_learner()),
        )
        .await
        .unwrap();
    let learner = added.member().unwrap().id();
    assert!(added.member().unwrap().is_learner());
    let listed = client.member_list().await.unwrap();
    assert!(listed
        .members()
        .iter()
        .any(|m| m.id() == learner && m.is_learner()));
    let (code, _) = status(
        client
            .member_add([learner_url.as_str()], None)
            .await
            .unwrap_err(),
    );
    assert_eq!(code, Code::FailedPrecondition, "peer URL exists");
    client.member_remove(learner).await.unwrap();
    let (code, message) = status(client.member_remove(learner).await.unwrap_err());
    assert_eq!(
        (code, message.as_str()),
        (Code::NotFound, "etcdserver: member not found")
    );
    let members = client.member_list().await.unwrap();
    assert_eq!(members.members().len(), 3);

    // MemberUpdate moves a member's peer traffic: a follower, then the
    // leader, is told its new peer URL (through another member), restarts
    // listening only there, and still gets every write.
    for round in ["follower", "leader"] {
        let leader = cluster.wait_leader(Duration::from_secs(10));
        let mv = if round == "leader" {
            leader
        } else {
            (0..3).find(|i| *i != leader).unwrap()
        };
        let other = (0..3).find(|i| *i != mv).unwrap();
        let moved_name = cluster.members[mv].name.clone();
        let moved = format!("http://{}:2390", cluster.members[mv].ip);
        let id2 = members
            .members()
            .iter()
            .find(|m| m.name() == moved_name)
            .unwrap()
            .id();
        if round == "follower" {
            let (code, message) = status(
                client
                    .member_update(id2, vec![cluster.members[other].peer_url()])
                    .await
                    .unwrap_err(),
            );
            assert_eq!(
                (code, message.as_str()),
                (
                    Code::FailedPrecondition,
                    "etcdserver: Peer URLs already exists"
                )
            );
            let (code, message) = status(
                client
                    .member_update(42, vec![moved.clone()])
                    .await
                    .unwrap_err(),
            );
            assert_eq!(
                (code, message.as_str()),
                (Code::NotFound, "etcdserver: member not found")
            );
        }
        let mut via = connect_to(&cluster, other).await;
        let updated = via.member_update(id2, vec![moved.clone()]).await.unwrap();
        let m2 = updated.members().iter().find(|m| m.id() == id2).unwrap();
        assert_eq!(m2.peer_urls(), std::slice::from_ref(&moved), "{round}");
        assert_eq!(m2.name(), moved_name, "the name is kept");
        assert!(cluster.terminate(mv));
        cluster.members[mv].peer_listen = Some(moved.clone());
        cluster.spawn(mv, "new");
        // After the leader moved and stopped, the others elect a new one.
        let key = format!("after-update-{round}");
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while via.put(key.as_str(), "1", None).await.is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "{round}: no write after the move"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        loop {
            let mut m2 = connect_to(&cluster, mv).await;
            let seen = m2
                .get(key.as_str(), Some(GetOptions::new().with_serializable()))
                .await
                .is_ok_and(|r| r.count() == 1);
            if seen {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{round}: the moved member gets no writes at its new peer URL"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for member in 0..3 {
            let listed = connect_to(&cluster, member)
                .await
                .member_list()
                .await
                .unwrap();
            let m2 = listed.members().iter().find(|m| m.id() == id2).unwrap();
            assert_eq!(
                m2.peer_urls(),
                std::slice::from_ref(&moved),
                "{round}: member {member} lists the updated URL"
            );
        }
    }

    // Auth is not enabled; nothing hangs.
    let (code, message) = status(client.user_list().await.unwrap_err());
    assert_eq!(
        (code, message.as_str()),
        (
            Code::FailedPrecondition,
            "etcdserver: authentication is not enabled"
        )
    );

    // SIGTERM stops a member cleanly.
    assert!(cluster.terminate(2), "uc-store exits 0 on SIGTERM");
}

/// A metric's value from a member's /metrics.
fn metric(cluster: &Cluster, member: usize, name: &str) -> u64 {
    metric_in(&cluster.metrics_text(member).unwrap(), name)
        .unwrap_or_else(|| panic!("no {name} in /metrics of member {member}"))
}

fn metric_in(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .map(|value| value.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn members_keep_their_peer_connections_across_linearizable_reads_and_writes() {
    // Each linearizable read round makes openraft 0.9 ask for a new network
    // client to every follower; those must share the member's one connection
    // (a connection each had left tens of thousands in TIME-WAIT under load).
    let cluster = Cluster::start(Kind::UcStore, 3, "client-connections", &[]);
    let leader = cluster.wait_leader(Duration::from_secs(10));
    let follower = (leader + 1) % 3;
    let mut via_leader = connect_to(&cluster, leader).await;
    let mut via_follower = connect_to(&cluster, follower).await;
    via_leader.put("c", "0", None).await.unwrap();
    let peer = "uc_store_peer_connections_accepted_total";
    let before: Vec<u64> = (0..3).map(|m| metric(&cluster, m, peer)).collect();
    for i in 0..200 {
        let value = i.to_string();
        via_follower.put("c", value.as_str(), None).await.unwrap();
        for client in [&mut via_leader, &mut via_follower] {
            let got = client.get("c", None).await.unwrap();
            assert_eq!(got.kvs()[0].value(), value.as_bytes());
        }
    }
    let after: Vec<u64> = (0..3).map(|m| metric(&cluster, m, peer)).collect();
    for member in 0..3 {
        assert!(
            after[member] - before[member] <= 2,
            "member {member} accepted {} peer connections during 400 linearizable reads (before {before:?}, after {after:?})",
            after[member] - before[member]
        );
    }
    assert!(
        metric(
            &cluster,
            leader,
            "uc_store_client_connections_accepted_total"
        ) >= 1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn linearizable_reads_use_the_leader_lease_unless_disabled() {
    for lease_reads in ["true", "false"] {
        let cluster = Cluster::start(
            Kind::UcStore,
            3,
            &format!("client-lease-{lease_reads}"),
            &["--lease-reads", lease_reads],
        );
        let leader = cluster.wait_leader(Duration::from_secs(10));
        let follower = (leader + 1) % 3;
        let mut via_leader = connect_to(&cluster, leader).await;
        let mut via_follower = connect_to(&cluster, follower).await;
        for i in 0..50 {
            let value = i.to_string();
            via_leader.put("l", value.as_str(), None).await.unwrap();
            // Read-your-writes through either member, every time.
            for client in [&mut via_leader, &mut via_follower] {
                let got = client.get("l", None).await.unwrap();
                assert_eq!(got.kvs()[0].value(), value.as_bytes());
            }
        }
        let lease = metric(&cluster, leader, "uc_store_read_rounds_lease_total");
        let quorum = metric(&cluster, leader, "uc_store_read_rounds_quorum_total");
        let forwarded = metric(&cluster, follower, "uc_store_read_rounds_forwarded_total");
        assert!(
            forwarded >= 1,
            "the follower asked the leader {forwarded} times"
        );
        if lease_reads == "true" {
            assert!(lease >= 50, "lease rounds {lease}, quorum rounds {quorum}");
        } else {
            assert_eq!(lease, 0, "--lease-reads false still used the lease");
            assert!(quorum >= 50, "quorum rounds {quorum}");
        }
    }
}

/// Where writes spend their time shows in /metrics as histograms: the log
/// writer's commits on every member, replication round trips and proposals
/// on the leader, and the writes per proposal.
#[tokio::test(flavor = "multi_thread")]
async fn write_timings_show_in_metrics() {
    let cluster = Cluster::start(Kind::UcStore, 3, "client-timings", &[]);
    let leader = cluster.wait_leader(Duration::from_secs(10));
    let follower = (leader + 1) % 3;
    let mut client = connect_to(&cluster, follower).await;
    for i in 0..30 {
        client.put(format!("t{i}"), "v", None).await.unwrap();
    }
    let proposals = metric(&cluster, leader, "uc_store_proposal_duration_seconds_count");
    let writes = metric(&cluster, leader, "uc_store_proposed_writes_total");
    assert!(writes >= 30, "proposed writes {writes}");
    assert!((1..=writes).contains(&proposals), "{proposals} proposals");
    assert!(
        metric(
            &cluster,
            leader,
            "uc_store_replication_round_trip_seconds_count"
        ) >= 1
    );
    for member in 0..3 {
        let text = cluster.metrics_text(member).unwrap();
        for name in [
            "uc_store_disk_log_commit_duration_seconds",
            "uc_store_disk_state_commit_duration_seconds",
        ] {
            let commits = metric_in(&text, &format!("{name}_count")).unwrap();
            assert!(commits >= 1, "member {member}: {commits} commits in {name}");
            assert!(
                text.contains(&format!("{name}_bucket{{le=\"+Inf\"}} {commits}\n")),
                "member {member}: the +Inf bucket of {name} holds every commit"
            );
        }
    }
}

/// A write answered by a follower is applied there before the answer, so
/// a serializable read on that follower right after sees it, for every
/// writer of a batch the follower forwarded together.
#[tokio::test(flavor = "multi_thread")]
async fn a_follower_answers_writes_only_once_it_applied_them() {
    let cluster = Cluster::start(Kind::UcStore, 3, "client-follower-ryw", &[]);
    let leader = cluster.wait_leader(Duration::from_secs(10));
    let follower = (leader + 1) % 3;
    let mut writers = Vec::new();
    for writer in 0..6 {
        let mut client = connect_to(&cluster, follower).await;
        writers.push(tokio::spawn(async move {
            let key = format!("ryw/{writer}");
            for i in 0..60 {
                let value = i.to_string();
                client
                    .put(key.as_str(), value.as_str(), None)
                    .await
                    .unwrap();
                let got = client
                    .get(key.as_str(), Some(GetOptions::new().with_serializable()))
                    .await
                    .unwrap();
                assert_eq!(got.kvs()[0].value(), value.as_bytes(), "{key}");
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
}

/// Membership changes made at the same time through different members all
/// succeed: the leader makes them one after another, where openraft alone
/// refuses one while another is uncommitted.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_membership_changes_wait_their_turn() {
    let cluster = Cluster::start(Kind::UcStore, 3, "client-membership-turns", &[]);
    let members = connect(&cluster).await.member_list().await.unwrap();
    let mut updates = Vec::new();
    for (via, member) in cluster.members.iter().enumerate() {
        let id = members
            .members()
            .iter()
            .find(|m| m.name() == member.name)
            .unwrap()
            .id();
        let peer_url = member.peer_url();
        for _ in 0..3 {
            let mut client = connect_to(&cluster, via).await;
            let peer_url = peer_url.clone();
            updates.push(tokio::spawn(async move {
                client.member_update(id, vec![peer_url]).await.map(drop)
            }));
        }
    }
    for update in updates {
        let outcome = tokio::time::timeout(Duration::from_secs(20), update)
            .await
            .expect("a membership change did not finish within 20 s")
            .unwrap();
        assert!(outcome.is_ok(), "{outcome:?}");
    }
}

/// Defragment gives back what a compaction freed, as `etcdctl defrag`
/// does on etcd: the member's db size (Status) shrinks, and the data stays.
#[tokio::test(flavor = "multi_thread")]
async fn defragment_gives_back_the_space_a_compaction_freed() {
    let cluster = Cluster::start(Kind::UcStore, 1, "client-defragment", &[]);
    let mut client = connect(&cluster).await;
    let value = "v".repeat(4096);
    let mut last = 0;
    // Every key twice: compacting to the last revision drops 1000 values.
    for i in (0..1000).chain(0..1000) {
        let put = client.put(format!("k{i:04}"), value.clone(), None).await;
        last = put.unwrap().header().unwrap().revision();
    }
    client.compact(last, None).await.unwrap();
    let endpoint = cluster.members[0].client_url();
    let before = client.status().await.unwrap().db_size();
    let out = common::ctl(&endpoint, &["defrag"], None);
    assert!(out.status.success(), "{out:?}");
    let after = client.status().await.unwrap().db_size();
    assert!(
        after + (3 << 20) < before,
        "db size {before} -> {after}: the compaction freed 4 MB of values"
    );
    let count = client
        .get("k", Some(GetOptions::new().with_prefix().with_count_only()))
        .await
        .unwrap()
        .count();
    assert_eq!(count, 1000);
}

/// MoveLeader hands the leadership to the member asked for (etcdctl
/// move-leader prints etcd's line); writes sent meanwhile all succeed; an
/// unknown member is refused with etcd's error, and a follower answers
/// "not leader".
#[tokio::test(flavor = "multi_thread")]
async fn move_leader_hands_over_to_the_member_asked_for() {
    let cluster = Cluster::start(Kind::UcStore, 3, "client-move-leader", &[]);
    let leader = cluster.wait_leader(Duration::from_secs(10));
    let mut on_leader = connect_to(&cluster, leader).await;
    let old = on_leader.status().await.unwrap().leader();
    let members = on_leader.member_list().await.unwrap();
    let target = members
        .members()
        .iter()
        .map(|m| m.id())
        .find(|id| *id != old)
        .unwrap();

    let mut writer = connect(&cluster).await;
    let writes = tokio::spawn(async move {
        for i in 0..300 {
            writer.put(format!("w{i:03}"), "v", None).await.unwrap();
        }
        writer
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let out = cluster.ctl(&["move-leader", &format!("{target:x}")], None);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("Leadership transferred from {old:x} to {target:x}")
    );
    for i in 0..cluster.members.len() {
        let mut one = connect_to(&cluster, i).await;
        assert_eq!(one.status().await.unwrap().leader(), target, "member {i}");
    }
    let mut writer = writes.await.unwrap();
    let count = writer
        .get("w", Some(GetOptions::new().with_prefix().with_count_only()))
        .await
        .unwrap()
        .count();
    assert_eq!(count, 300);

    let new_leader = (0..cluster.members.len())
        .find(|i| cluster.leader() == Some(*i))
        .unwrap();
    let mut client = connect_to(&cluster, new_leader).await;
    let (code, message) = status(client.move_leader(0x1234).await.unwrap_err());
    assert_eq!(code, Code::FailedPrecondition);
    assert_eq!(message, "etcdserver: bad leader transferee");
    let follower = (new_leader + 1) % cluster.members.len();
    let mut client = connect_to(&cluster, follower).await;
    let (code, message) = status(client.move_leader(old).await.unwrap_err());
    assert_eq!(code, Code::FailedPrecondition);
    assert_eq!(message, "etcdserver: not leader");
}
