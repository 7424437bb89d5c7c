//! Linearizability under faults. Concurrent clients put, get and
//! compare-and-set a few keys of a 3-member uc-store while members are
//! killed (-9) and restarted, the leader is paused (SIGSTOP), the
//! leadership is moved (MoveLeader), the leader is cut off from the others
//! by a network partition (members in network namespaces, when root), and a
//! follower is removed and added back as a new member; every operation is recorded with its invoke and completion time (failures and
//! timeouts as indeterminate: they may or may not have taken effect). A
//! Wing-Gong-Lowe search per key must find a linearization; a watch over
//! the keys must see every revision once, in order, with no gaps, and every
//! acknowledged write. The checker is first shown to reject broken
//! histories, and a run with `--unsafe-no-fsync` (acknowledged writes not on
//! disk) must be caught losing writes when every member is killed at once.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Cluster, Kind};
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, Txn, TxnOp, WatchOptions,
};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Call {
    Put(String),
    Get,
    Cas { expect: String, new: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// Put done, or Cas applied.
    Ok,
    /// Cas not applied: the value differed.
    Failed,
    Read(Option<String>),
    /// Error or timeout: may or may not have taken effect.
    Unknown,
}

#[derive(Debug, Clone)]
struct Op {
    call: Call,
    outcome: Outcome,
    invoke: u64,
    /// `u64::MAX` when indeterminate.
    complete: u64,
    /// When an indeterminate operation returned its error.
    failed_at: u64,
}

/// How long after its error an indeterminate operation may still take
/// effect (a proposal in the log of a deposed leader is committed by the
/// next one within an election or two; 10 s is far beyond that here).
const UNKNOWN_WINDOW: u64 = 10_000_000_000;

/// One key's history is linearizable as a register (absent at first).
/// Wing & Gong's search with Lowe's memoization of (linearized set, value);
/// an indeterminate operation is either linearized no later than
/// `UNKNOWN_WINDOW` after its invocation ended, or dropped (never applied).
#[allow(clippy::needless_range_loop)] // indices are the bitset positions
fn linearizable(ops: &[Op]) -> Result<(), String> {
    // Reads that failed tell nothing.
    let mut ops: Vec<&Op> = ops
        .iter()
        .filter(|op| !(op.call == Call::Get && op.outcome == Outcome::Unknown))
        .collect();
    ops.sort_by_key(|op| (op.invoke, op.complete));
    let n = ops.len();
    let latest: Vec<u64> = ops
        .iter()
        .map(|op| {
            if op.outcome == Outcome::Unknown {
                op.failed_at.saturating_add(UNKNOWN_WINDOW)
            } else {
                op.complete
            }
        })
        .collect();
    let words = n.div_ceil(64);
    let is_set = |bits: &[u64], i: usize| bits[i / 64] & (1 << (i % 64)) != 0;
    let set = |bits: &mut [u64], i: usize| bits[i / 64] |= 1 << (i % 64);
    let mut seen: HashSet<(Vec<u64>, Option<String>)> = HashSet::new();
    let mut stack: Vec<(Vec<u64>, Option<String>)> = vec![(vec![0; words], None)];
    let mut explored = 0u64;
    while let Some((bits, value)) = stack.pop() {
        if (0..n).all(|i| is_set(&bits, i)) {
            return Ok(());
        }
        if !seen.insert((bits.clone(), value.clone())) {
            continue;
        }
        explored += 1;
        if explored > 5_000_000 {
            return Err(format!(
                "search gave up after {explored} states ({n} operations)"
            ));
        }
        // Only an op invoked before every pending determinate op completed
        // can go next.
        let horizon = (0..n)
            .filter(|i| !is_set(&bits, *i) && ops[*i].outcome != Outcome::Unknown)
            .map(|i| ops[i].complete)
            .min()
            .unwrap_or(u64::MAX);
        let mut candidates: Vec<(usize, Option<String>)> = Vec::new();
        for i in 0..n {
            if is_set(&bits, i) {
                continue;
            }
            if ops[i].invoke > horizon {
                break;
            }
            let op = ops[i];
            let next = match (&op.call, &op.outcome) {
                (Call::Put(v), Outcome::Ok | Outcome::Unknown) => Some(Some(v.clone())),
                (Call::Get, Outcome::Read(read)) => (read == &value).then(|| value.clone()),
                (Call::Cas { expect, new }, Outcome::Ok | Outcome::Unknown) => {
                    (value.as_deref() == Some(expect.as_str())).then(|| Some(new.clone()))
                }
                (Call::Cas { expect, .. }, Outcome::Failed) => {
                    (value.as_deref() != Some(expect.as_str())).then(|| value.clone())
                }
                _ => None,
            };
            if let Some(next) = next {
                candidates.push((i, next));
            }
        }
        // Determinate ops by completion first: tried last-pushed-first.
        candidates.sort_by_key(|(i, _)| {
            std::cmp::Reverse((ops[*i].outcome == Outcome::Unknown, latest[*i]))
        });
        for (i, next) in candidates {
            let mut bits = bits.clone();
            set(&mut bits, i);
            // Whatever could only have taken effect before this op was
            // invoked is dropped now: it did not take effect.
            for k in 0..n {
                if !is_set(&bits, k)
                    && ops[k].outcome == Outcome::Unknown
                    && latest[k] < ops[i].invoke
                {
                    set(&mut bits, k);
                }
            }
            stack.push((bits, next));
        }
        // An indeterminate op may also never take effect at all.
        let mut dropped = bits.clone();
        let mut any = false;
        for k in 0..n {
            if !is_set(&bits, k) && ops[k].outcome == Outcome::Unknown && ops[k].invoke <= horizon {
                set(&mut dropped, k);
                any = true;
                break;
            }
        }
        if any {
            stack.insert(0, (dropped, value.clone()));
        }
    }
    Err(format!(
        "no linearization of {n} operations ({} indeterminate)",
        ops.iter()
            .filter(|op| op.outcome == Outcome::Unknown)
            .count()
    ))
}

fn op(call: Call, outcome: Outcome, invoke: u64, complete: u64) -> Op {
    Op {
        call,
        outcome,
        invoke,
        complete,
        failed_at: if complete == u64::MAX {
            invoke
        } else {
            complete
        },
    }
}

#[test]
fn the_checker_accepts_valid_and_rejects_broken_histories() {
    use Call::*;
    use Outcome::*;
    let put = |v: &str| Put(v.to_string());
    let read = |v: Option<&str>| Read(v.map(str::to_string));
    let cas = |expect: &str, new: &str| Cas {
        expect: expect.to_string(),
        new: new.to_string(),
    };
    // Concurrent put and read: the read may see either value.
    let ok = vec![
        op(put("a"), Ok, 0, 10),
        op(put("b"), Ok, 5, 20),
        op(Get, read(Some("a")), 12, 15),
        op(Get, read(Some("b")), 21, 22),
    ];
    assert!(linearizable(&ok).is_ok());
    // A stale read after a completed write.
    let stale = vec![
        op(put("a"), Ok, 0, 1),
        op(put("b"), Ok, 2, 3),
        op(Get, read(Some("a")), 4, 5),
    ];
    assert!(linearizable(&stale).is_err());
    // A value nobody wrote.
    let invented = vec![op(put("a"), Ok, 0, 1), op(Get, read(Some("z")), 2, 3)];
    assert!(linearizable(&invented).is_err());
    // A lost acknowledged write: read as absent afterwards.
    let lost = vec![op(put("a"), Ok, 0, 1), op(Get, read(None), 2, 3)];
    assert!(linearizable(&lost).is_err());
    // An indeterminate put may have happened, or not.
    let maybe = vec![
        op(put("a"), Unknown, 0, u64::MAX),
        op(Get, read(None), 1, 2),
        op(Get, read(Some("a")), 3, 4),
    ];
    assert!(linearizable(&maybe).is_ok());
    // Two CAS from the same value cannot both succeed.
    let double_cas = vec![
        op(put("a"), Ok, 0, 1),
        op(cas("a", "b"), Ok, 2, 5),
        op(cas("a", "c"), Ok, 3, 6),
    ];
    assert!(linearizable(&double_cas).is_err());
    // A failed CAS must have seen another value.
    let wrong_failure = vec![op(put("a"), Ok, 0, 1), op(cas("a", "b"), Failed, 2, 3)];
    assert!(linearizable(&wrong_failure).is_err());
}

struct Recorder {
    start: Instant,
    ops: Mutex<BTreeMap<String, Vec<Op>>>,
    acked: Mutex<BTreeSet<(String, String)>>,
}

impl Recorder {
    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
}

async fn client(cluster: &Cluster) -> Client {
    let endpoints: Vec<String> = cluster.members.iter().map(|m| m.client_url()).collect();
    let options = ConnectOptions::new()
        .with_timeout(Duration::from_secs(2))
        .with_connect_timeout(Duration::from_millis(300));
    Client::connect(endpoints, Some(options)).await.unwrap()
}

async fn worker(mut client: Client, recorder: Arc<Recorder>, id: usize, until: Instant) {
    let mut n = 0u64;
    while Instant::now() < until {
        let key = format!("lin/{}", (id + n as usize) % 3);
        let value = format!("{id}-{n}");
        let invoke = recorder.now();
        let (call, outcome) = match n % 3 {
            0 => (
                Call::Put(value.clone()),
                match client.put(key.clone(), value.clone(), None).await {
                    Ok(_) => Outcome::Ok,
                    Err(_) => Outcome::Unknown,
                },
            ),
            1 => (
                Call::Get,
                match client.get(key.clone(), None).await {
                    Ok(r) => Outcome::Read(
                        r.kvs()
                            .first()
                            .map(|kv| kv.value_str().unwrap().to_string()),
                    ),
                    Err(_) => Outcome::Unknown,
                },
            ),
            _ => {
                // Compare against the last value this worker read or wrote.
                let expect = format!("{id}-{}", n.saturating_sub(2));
                let txn = Txn::new()
                    .when([Compare::value(
                        key.clone(),
                        CompareOp::Equal,
                        expect.clone(),
                    )])
                    .and_then([TxnOp::put(key.clone(), value.clone(), None)]);
                (
                    Call::Cas {
                        expect,
                        new: value.clone(),
                    },
                    match client.txn(txn).await {
                        Ok(r) if r.succeeded() => Outcome::Ok,
                        Ok(_) => Outcome::Failed,
                        Err(_) => Outcome::Unknown,
                    },
                )
            }
        };
        let returned = recorder.now();
        let complete = if outcome == Outcome::Unknown {
            u64::MAX
        } else {
            returned
        };
        if outcome == Outcome::Ok {
            if let Call::Put(v) | Call::Cas { new: v, .. } = &call {
                recorder
                    .acked
                    .lock()
                    .unwrap()
                    .insert((key.clone(), v.clone()));
            }
        }
        recorder
            .ops
            .lock()
            .unwrap()
            .entry(key)
            .or_default()
            .push(Op {
                call,
                outcome,
                invoke,
                complete,
                failed_at: returned,
            });
        n += 1;
        // A history the checker can search exhaustively in seconds.
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
}

/// Events of one watch, resumed after errors from the next revision.
async fn watch_all(
    cluster_client: Client,
    until: Instant,
    recorder: Arc<Recorder>,
) -> Vec<(i64, String, Option<String>, u64)> {
    let mut client = cluster_client;
    let mut events = Vec::new();
    let mut next = 1;
    while Instant::now() < until {
        let options = WatchOptions::new().with_prefix().with_start_revision(next);
        let Ok(mut stream) = client.watch("lin/", Some(options)).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, stream.message()).await {
                Ok(Ok(Some(message))) => {
                    for event in message.events() {
                        let kv = event.kv().unwrap();
                        let value = (event.event_type() == EventType::Put)
                            .then(|| kv.value_str().unwrap().to_string());
                        events.push((
                            kv.mod_revision(),
                            kv.key_str().unwrap().to_string(),
                            value,
                            recorder.now(),
                        ));
                        next = kv.mod_revision() + 1;
                    }
                }
                Ok(_) => break,
                Err(_) => return events,
            }
        }
    }
    events
}

/// The id of the member called `name`.
async fn member_id(client: &mut Client, name: &str) -> u64 {
    client
        .member_list()
        .await
        .unwrap()
        .members()
        .iter()
        .find(|m| m.name() == name)
        .unwrap()
        .id()
}

#[tokio::test(flavor = "multi_thread")]
async fn histories_under_kill_pause_partition_and_membership_faults_are_linearizable() {
    let (mut cluster, partitions) = match Cluster::start_partitionable(
        Kind::UcStore,
        3,
        "linearizable",
        &[],
    ) {
        Some(cluster) => (cluster, true),
        None => {
            println!("SKIP: partition faults: cannot create network namespaces here (needs root and iproute2); the other faults run");
            (Cluster::start(Kind::UcStore, 3, "linearizable", &[]), false)
        }
    };
    let recorder = Arc::new(Recorder {
        start: Instant::now(),
        ops: Mutex::new(BTreeMap::new()),
        acked: Mutex::new(BTreeSet::new()),
    });
    let until = Instant::now() + Duration::from_secs(18);
    let watcher = tokio::spawn(watch_all(
        client(&cluster).await,
        until + Duration::from_secs(8),
        recorder.clone(),
    ));
    let mut workers = Vec::new();
    for id in 0..5 {
        workers.push(tokio::spawn(worker(
            client(&cluster).await,
            recorder.clone(),
            id,
            until,
        )));
    }
    // The nemesis: kill -9 the leader and restart it; kill a follower;
    // pause the leader (SIGSTOP) past an election timeout.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let leader = cluster.wait_leader(Duration::from_secs(10));
    cluster.kill(leader);
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.restart(leader);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let leader = cluster.wait_leader(Duration::from_secs(10));
    let follower = (leader + 1) % 3;
    cluster.kill(follower);
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.restart(follower);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let leader = cluster.wait_leader(Duration::from_secs(10));
    let pid = cluster.members[leader]
        .process
        .as_ref()
        .unwrap()
        .0
        .id()
        .to_string();
    std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // MoveLeader: the leader hands its leadership to a follower (it keeps
    // quiet for a leader lease, then the follower stands for election).
    let leader = cluster.wait_leader(Duration::from_secs(10));
    let mut on_leader = Client::connect([cluster.members[leader].client_url()], None)
        .await
        .unwrap();
    let target = member_id(&mut on_leader, &cluster.members[(leader + 1) % 3].name).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(err) = on_leader.move_leader(target).await {
        eprintln!("move leader: {err}; retrying");
        assert!(Instant::now() < deadline, "move leader kept failing: {err}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Partition: the leader is cut off from the others (its clients still
    // reach it) past an election timeout, then reconnected.
    if partitions {
        let leader = cluster.wait_leader(Duration::from_secs(10));
        cluster.isolate(leader);
        tokio::time::sleep(Duration::from_millis(2500)).await;
        cluster.heal(leader);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Membership: a follower is removed, wiped, and added back as a new member.
    let leader = cluster.wait_leader(Duration::from_secs(10));
    let follower = (leader + 2) % 3;
    let mut admin = client(&cluster).await;
    let id = member_id(&mut admin, &cluster.members[follower].name).await;
    // Like an operator, retry a reconfiguration the cluster refuses for now
    // (e.g. right after the partition healed).
    let deadline = Instant::now() + Duration::from_secs(15);
    while let Err(err) = admin.member_remove(id).await {
        // An earlier attempt that failed to answer may have taken effect.
        if err.to_string().contains("member not found") {
            break;
        }
        eprintln!("member remove: {err}; retrying");
        assert!(
            Instant::now() < deadline,
            "member remove kept failing: {err}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    cluster.kill(follower);
    let _ = std::fs::remove_dir_all(&cluster.members[follower].dir);
    let peer_url = cluster.members[follower].peer_url();
    while let Err(err) = admin.member_add([peer_url.as_str()], None).await {
        if err.to_string().contains("Peer URLs already exists") {
            break;
        }
        eprintln!("member add: {err}; retrying");
        assert!(Instant::now() < deadline, "member add kept failing: {err}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    cluster.spawn(follower, "existing");
    for worker in workers {
        worker.await.unwrap();
    }
    eprintln!("workers done at {:?}", recorder.start.elapsed());
    // Everything settled: one final read per key closes each history.
    let mut last = client(&cluster).await;
    let mut final_values = BTreeMap::new();
    for k in 0..3 {
        let key = format!("lin/{k}");
        let invoke = recorder.now();
        let read = loop {
            if let Ok(r) = last.get(key.clone(), None).await {
                break r
                    .kvs()
                    .first()
                    .map(|kv| kv.value_str().unwrap().to_string());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        final_values.insert(key.clone(), read.clone());
        let complete = recorder.now();
        recorder
            .ops
            .lock()
            .unwrap()
            .entry(key)
            .or_default()
            .push(Op {
                call: Call::Get,
                outcome: Outcome::Read(read),
                invoke,
                complete,
                failed_at: complete,
            });
    }
    // The watch (checked below to be complete: every revision, in order)
    // settles what indeterminate writes did: a write whose unique value it
    // delivered took effect before the watcher received it; one it never
    // delivered did not take effect.
    let events = watcher.await.unwrap();
    let delivered: BTreeMap<(String, String), u64> = events
        .iter()
        .filter_map(|(_, k, v, at)| v.clone().map(|v| ((k.clone(), v), *at)))
        .collect();
    let mut ops = recorder.ops.lock().unwrap().clone();
    let mut unknown = 0;
    for (key, history) in ops.iter_mut() {
        history.retain_mut(|op| {
            if op.outcome != Outcome::Unknown {
                return true;
            }
            unknown += 1;
            let written = match &op.call {
                Call::Put(v) | Call::Cas { new: v, .. } => v.clone(),
                Call::Get => return false,
            };
            match delivered.get(&(key.clone(), written)) {
                Some(at) => {
                    op.outcome = Outcome::Ok;
                    op.complete = *at;
                    true
                }
                None => false,
            }
        });
    }
    let total: usize = ops.values().map(Vec::len).sum();
    eprintln!("checking {total} operations");
    for (key, history) in &ops {
        let checked_at = Instant::now();
        let result = linearizable(history);
        eprintln!(
            "{key}: {} ops checked in {:?}",
            history.len(),
            checked_at.elapsed()
        );
        if let Err(err) = result {
            panic!("{key}: {err}\n{history:#?}");
        }
    }

    // The watch: every revision once, in order, no gaps; every acked write.
    let revisions: Vec<i64> = events.iter().map(|e| e.0).collect();
    let mut distinct = revisions.clone();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        revisions.len(),
        "a revision was delivered twice"
    );
    assert!(
        revisions.windows(2).all(|w| w[1] == w[0] + 1),
        "gap or reorder in {revisions:?}"
    );
    let seen: BTreeSet<(String, String)> = events
        .iter()
        .filter_map(|(_, k, v, _)| v.clone().map(|v| (k.clone(), v)))
        .collect();
    let acked = recorder.acked.lock().unwrap().clone();
    let missing: Vec<_> = acked.difference(&seen).collect();
    assert!(
        missing.is_empty(),
        "acknowledged writes the watch never saw: {missing:?}"
    );
    // The watch ends in the state the final reads saw.
    let mut replayed: BTreeMap<String, Option<String>> = BTreeMap::new();
    for (_, key, value, _) in &events {
        replayed.insert(key.clone(), value.clone());
    }
    for (key, value) in &final_values {
        assert_eq!(replayed.get(key).cloned().flatten(), value.clone(), "{key}");
    }
    eprintln!(
        "{total} operations ({unknown} indeterminate, {} acknowledged writes), {} watch events: linearizable",
        acked.len(),
        events.len()
    );
}

/// Puts `count` keys, kills every member at once, restarts them; the keys
/// acknowledged but gone afterwards.
async fn lost_after_crash(extra: &[&str], name: &str) -> (usize, usize) {
    let mut cluster = Cluster::start(Kind::UcStore, 3, name, extra);
    let mut writer = client(&cluster).await;
    let mut acked = Vec::new();
    for i in 0..200 {
        let key = format!("durable/{i:04}");
        if writer.put(key.clone(), "v", None).await.is_ok() {
            acked.push(key);
        }
    }
    drop(writer);
    for member in 0..3 {
        cluster.kill(member);
    }
    for member in 0..3 {
        cluster.restart(member);
    }
    cluster.wait_leader(Duration::from_secs(30));
    let mut reader = client(&cluster).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let found = loop {
        match reader
            .get(
                "durable/",
                Some(
                    etcd_client::GetOptions::new()
                        .with_prefix()
                        .with_keys_only(),
                ),
            )
            .await
        {
            Ok(r) => {
                break r
                    .kvs()
                    .iter()
                    .map(|kv| kv.key_str().unwrap().to_string())
                    .collect::<BTreeSet<_>>()
            }
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(err) => panic!("{err}"),
        }
    };
    let lost = acked.iter().filter(|k| !found.contains(*k)).count();
    (acked.len(), lost)
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_writes_survive_killing_every_member_and_unsynced_ones_are_caught() {
    let (acked, lost) = lost_after_crash(&[], "durable-fsync").await;
    assert!(acked > 0);
    assert_eq!(
        lost, 0,
        "{lost} of {acked} acknowledged writes lost with fsync on"
    );
    // The control: without fsync the same check must see losses, or it
    // would not catch a store that acknowledges before syncing.
    let (acked, lost) = lost_after_crash(&["--unsafe-no-fsync"], "durable-nofsync").await;
    assert!(
        lost > 0,
        "with --unsafe-no-fsync all {acked} acknowledged writes survived kill -9 of every member: the durability check cannot tell"
    );
    eprintln!("--unsafe-no-fsync lost {lost} of {acked} acknowledged writes (caught)");
}
