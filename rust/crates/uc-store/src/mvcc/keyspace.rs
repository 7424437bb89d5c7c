use std::collections::BTreeMap;
use std::ops::Bound;

/// A key's value at some revision, as etcd's `mvccpb.KeyValue`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyValue {
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// Revision of the put that created this generation of the key.
    pub create_revision: i64,
    /// Revision of the last change.
    pub mod_revision: i64,
    /// Puts since creation, starting at 1; a delete ends the generation.
    pub version: i64,
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    /// Lease id, 0 for none.
    pub lease: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EventKind {
    Put,
    Delete,
}

impl KeyValue {
    /// What a delete event carries: the key and the deleting revision.
    pub(crate) fn tombstone(key: Vec<u8>, mod_revision: i64) -> KeyValue {
        KeyValue {
            key,
            create_revision: 0,
            mod_revision,
            version: 0,
            value: Vec::new(),
            lease: 0,
        }
    }
}

/// A change as a watcher sees it. A delete's `kv` is etcd's tombstone: the
/// key and the deleting revision, everything else zero.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Event {
    pub kind: EventKind,
    pub kv: KeyValue,
    pub prev_kv: Option<KeyValue>,
}

/// Errors carry etcd's texts: clients match on them.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize,
)]
pub enum MvccError {
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted,
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRevision,
}

/// One write of a transaction.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Write {
    Put {
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
        lease: i64,
    },
    /// etcd's range conventions (see `Keyspace::range`).
    Delete {
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        #[serde(with = "serde_bytes")]
        range_end: Vec<u8>,
    },
}

/// What a range sorts by, as etcd's `RangeRequest.SortTarget`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SortTarget {
    #[default]
    Key,
    Version,
    Create,
    Mod,
    Value,
}

/// etcd's `RangeRequest.SortOrder`. `None` with a target other than `Key`
/// sorts ascending, as etcd does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SortOrder {
    #[default]
    None,
    Ascend,
    Descend,
}

/// The options of etcd's `RangeRequest`; zero values mean "not set".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RangeOptions {
    /// 0: the current revision.
    pub revision: i64,
    /// 0: no limit.
    pub limit: usize,
    pub count_only: bool,
    /// Return keys without their values.
    pub keys_only: bool,
    pub sort_order: SortOrder,
    pub sort_target: SortTarget,
    /// Filters on the returned keys (0: unset); `count` ignores them, as in etcd.
    pub min_mod_revision: i64,
    pub max_mod_revision: i64,
    pub min_create_revision: i64,
    pub max_create_revision: i64,
}

impl RangeOptions {
    fn keeps(&self, kv: &KeyValue) -> bool {
        let above = |value: i64, min: i64| min == 0 || value >= min;
        let below = |value: i64, max: i64| max == 0 || value <= max;
        above(kv.mod_revision, self.min_mod_revision)
            && below(kv.mod_revision, self.max_mod_revision)
            && above(kv.create_revision, self.min_create_revision)
            && below(kv.create_revision, self.max_create_revision)
    }

    /// Sorts key-ordered values as etcd's server does after fetching them.
    fn sort(&self, kvs: &mut [&KeyValue]) {
        let order = match (self.sort_target, self.sort_order) {
            // Already in ascending key order.
            (SortTarget::Key, SortOrder::None | SortOrder::Ascend) => return,
            (_, SortOrder::None) => SortOrder::Ascend,
            (_, order) => order,
        };
        let target = self.sort_target;
        // Stable, so equal values stay in key order: deterministic.
        kvs.sort_by(|a, b| {
            let ordering = match target {
                SortTarget::Key => a.key.cmp(&b.key),
                SortTarget::Version => a.version.cmp(&b.version),
                SortTarget::Create => a.create_revision.cmp(&b.create_revision),
                SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
                SortTarget::Value => a.value.cmp(&b.value),
            };
            if order == SortOrder::Descend {
                ordering.reverse()
            } else {
                ordering
            }
        });
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RangeResult {
    pub kvs: Vec<KeyValue>,
    /// Keys in the range, whatever the limit.
    pub count: usize,
    /// More keys than `limit` were in the range.
    pub more: bool,
    /// The store's revision when the range was served.
    pub revision: i64,
}

/// One change of one key: its value after the change, None for a delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    pub(crate) main: i64,
    pub(crate) sub: i64,
    pub(crate) kv: Option<KeyValue>,
}

/// The key space and its history back to the compacted revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyspace {
    pub(crate) revision: i64,
    pub(crate) compacted: i64,
    pub(crate) keys: BTreeMap<Vec<u8>, Vec<Change>>,
}

impl Default for Keyspace {
    fn default() -> Self {
        Self::new()
    }
}

/// The bounds etcd gives `key`/`range_end`: an empty end is the key alone;
/// an end of `\0` is every key from `key` on (all keys when `key` is `\0` too);
/// otherwise `[key, range_end)`.
fn bounds<'a>(key: &'a [u8], range_end: &'a [u8]) -> (Bound<&'a [u8]>, Bound<&'a [u8]>) {
    match range_end {
        [] => (Bound::Included(key), Bound::Included(key)),
        [0] if key == [0] => (Bound::Unbounded, Bound::Unbounded),
        [0] => (Bound::Included(key), Bound::Unbounded),
        end => (Bound::Included(key), Bound::Excluded(end)),
    }
}

/// Whether `key` is in the range `start`/`end` by etcd's conventions.
pub(crate) fn in_range(key: &[u8], start: &[u8], end: &[u8]) -> bool {
    match end {
        [] => key == start,
        [0] => key >= start,
        end => key >= start && key < end,
    }
}

fn empty_range(start: Bound<&[u8]>, end: Bound<&[u8]>) -> bool {
    match (start, end) {
        (Bound::Included(s), Bound::Excluded(e)) => s >= e,
        _ => false,
    }
}

impl Keyspace {
    /// An empty store at revision 1, as etcd starts.
    pub fn new() -> Self {
        Keyspace {
            revision: 1,
            compacted: 0,
            keys: BTreeMap::new(),
        }
    }

    pub fn revision(&self) -> i64 {
        self.revision
    }

    pub fn compacted_revision(&self) -> i64 {
        self.compacted
    }

    pub(crate) fn live(changes: &[Change], at: i64) -> Option<&KeyValue> {
        changes
            .iter()
            .rev()
            .find(|c| c.main <= at)
            .and_then(|c| c.kv.as_ref())
    }

    pub(crate) fn keys_in<'a>(
        &'a self,
        key: &'a [u8],
        range_end: &'a [u8],
    ) -> impl Iterator<Item = (&'a Vec<u8>, &'a Vec<Change>)> + 'a {
        let (start, end) = bounds(key, range_end);
        // BTreeMap::range panics on an inverted range; a client may send one.
        let range = (!empty_range(start, end)).then(|| self.keys.range::<[u8], _>((start, end)));
        range.into_iter().flatten()
    }

    /// Applies the writes of one transaction at one new revision (none when
    /// nothing changes, e.g. deleting absent keys). Returns the store's
    /// revision afterwards and the events, in order.
    pub fn apply(&mut self, writes: &[Write]) -> (i64, Vec<Event>) {
        let mut pending = self.begin();
        for write in writes {
            match write {
                Write::Put { key, value, lease } => {
                    pending.put(self, key, value, *lease);
                }
                Write::Delete { key, range_end } => {
                    pending.delete(self, key, range_end);
                }
            }
        }
        self.commit(pending)
    }

    /// Starts a write transaction: its changes are made at the next revision
    /// and visible to reads through it before it commits.
    pub(crate) fn begin(&self) -> Pending {
        Pending {
            main: self.revision + 1,
            sub: 0,
            events: Vec::new(),
        }
    }

    /// Undoes a write transaction that failed part way.
    pub(crate) fn roll_back(&mut self, pending: Pending) {
        for event in pending.events {
            if let Some(changes) = self.keys.get_mut(&event.kv.key) {
                changes.retain(|c| c.main != pending.main);
                if changes.is_empty() {
                    self.keys.remove(&event.kv.key);
                }
            }
        }
    }

    pub(crate) fn commit(&mut self, pending: Pending) -> (i64, Vec<Event>) {
        if !pending.events.is_empty() {
            self.revision = pending.main;
        }
        (self.revision, pending.events)
    }

    /// Reads the range as a transaction in progress sees it. An explicit
    /// revision is checked against the store before the transaction, as etcd
    /// checks a txn's ranges before running it.
    pub(crate) fn range_pending(
        &self,
        pending: &Pending,
        key: &[u8],
        range_end: &[u8],
        options: RangeOptions,
    ) -> Result<RangeResult, MvccError> {
        let mut result = if options.revision > 0 {
            self.range(key, range_end, options)?
        } else {
            self.range_at(pending.main, key, range_end, options)
        };
        result.revision = pending.revision(self);
        Ok(result)
    }

    /// The live value of one key at the store's revision, ignoring any
    /// transaction in progress.
    pub(crate) fn get_committed(&self, key: &[u8]) -> Option<&KeyValue> {
        self.keys
            .get(key)
            .and_then(|changes| Self::live(changes, self.revision))
    }

    /// The live values of a range at the store's revision, ignoring any
    /// transaction in progress: what etcd's txn compares see.
    pub(crate) fn range_committed<'a>(
        &'a self,
        key: &'a [u8],
        range_end: &'a [u8],
    ) -> Vec<&'a KeyValue> {
        self.keys_in(key, range_end)
            .filter_map(|(_, changes)| Self::live(changes, self.revision))
            .collect()
    }

    fn check_revision(&self, revision: i64) -> Result<i64, MvccError> {
        let at = if revision <= 0 {
            self.revision
        } else {
            revision
        };
        if at > self.revision {
            Err(MvccError::FutureRevision)
        } else if at < self.compacted {
            Err(MvccError::Compacted)
        } else {
            Ok(at)
        }
    }

    /// The live keys of a range at a revision, in key order.
    pub fn range(
        &self,
        key: &[u8],
        range_end: &[u8],
        options: RangeOptions,
    ) -> Result<RangeResult, MvccError> {
        let at = self.check_revision(options.revision)?;
        Ok(self.range_at(at, key, range_end, options))
    }

    fn range_at(
        &self,
        at: i64,
        key: &[u8],
        range_end: &[u8],
        options: RangeOptions,
    ) -> RangeResult {
        let mut live: Vec<&KeyValue> = self
            .keys_in(key, range_end)
            .filter_map(|(_, changes)| Self::live(changes, at))
            .collect();
        let count = live.len();
        if options.count_only {
            live.clear();
        }
        live.retain(|kv| options.keeps(kv));
        options.sort(&mut live);
        let more = options.limit > 0 && live.len() > options.limit;
        if more {
            live.truncate(options.limit);
        }
        let kvs = live
            .into_iter()
            .map(|kv| {
                let mut kv = kv.clone();
                if options.keys_only {
                    kv.value.clear();
                }
                kv
            })
            .collect();
        RangeResult {
            kvs,
            count,
            more,
            revision: self.revision,
        }
    }

    /// Forgets history before `revision`; reads at `revision` and later keep
    /// working, earlier ones fail with `Compacted`. Returns the revisions
    /// (main, sub) of the changes it dropped.
    pub fn compact(&mut self, revision: i64) -> Result<Vec<(i64, i64)>, MvccError> {
        if revision > self.revision {
            return Err(MvccError::FutureRevision);
        }
        if revision <= self.compacted {
            return Err(MvccError::Compacted);
        }
        let mut dropped = Vec::new();
        self.keys.retain(|_, changes| {
            // The last change at or before `revision` is the state there: keep
            // it if it is a value, drop it if it is a delete.
            let keep_from = changes.iter().rposition(|c| c.main <= revision);
            if let Some(i) = keep_from {
                let deleted = changes[i].kv.is_none();
                dropped.extend(
                    changes
                        .drain(..if deleted { i + 1 } else { i })
                        .map(|c| (c.main, c.sub)),
                );
            }
            !changes.is_empty()
        });
        self.compacted = revision;
        Ok(dropped)
    }
}

/// The changes of a write transaction in progress, all at revision `main`.
#[derive(Debug)]
pub(crate) struct Pending {
    main: i64,
    sub: i64,
    events: Vec<Event>,
}

impl Pending {
    /// The revision a read inside the transaction reports: the new one once
    /// it has written something.
    pub(crate) fn revision(&self, ks: &Keyspace) -> i64 {
        if self.events.is_empty() {
            ks.revision
        } else {
            self.main
        }
    }

    /// Puts a key; returns its previous value.
    pub(crate) fn put(
        &mut self,
        ks: &mut Keyspace,
        key: &[u8],
        value: &[u8],
        lease: i64,
    ) -> Option<KeyValue> {
        let main = self.main;
        let changes = ks.keys.entry(key.to_vec()).or_default();
        let prev = changes.last().and_then(|c| c.kv.clone());
        let kv = KeyValue {
            key: key.to_vec(),
            create_revision: prev.as_ref().map_or(main, |p| p.create_revision),
            mod_revision: main,
            version: prev.as_ref().map_or(1, |p| p.version + 1),
            value: value.to_vec(),
            lease,
        };
        changes.push(Change {
            main,
            sub: self.sub,
            kv: Some(kv.clone()),
        });
        self.sub += 1;
        self.events.push(Event {
            kind: EventKind::Put,
            kv,
            prev_kv: prev.clone(),
        });
        prev
    }

    /// Deletes the live keys of a range; returns their previous values.
    pub(crate) fn delete(
        &mut self,
        ks: &mut Keyspace,
        key: &[u8],
        range_end: &[u8],
    ) -> Vec<KeyValue> {
        let main = self.main;
        let live: Vec<Vec<u8>> = ks
            .keys_in(key, range_end)
            .filter(|(_, changes)| changes.last().is_some_and(|c| c.kv.is_some()))
            .map(|(k, _)| k.clone())
            .collect();
        let mut deleted = Vec::new();
        for k in live {
            let changes = ks.keys.entry(k.clone()).or_default();
            let prev = changes.last().and_then(|c| c.kv.clone());
            changes.push(Change {
                main,
                sub: self.sub,
                kv: None,
            });
            self.sub += 1;
            deleted.extend(prev.clone());
            self.events.push(Event {
                kind: EventKind::Delete,
                kv: KeyValue::tombstone(k, main),
                prev_kv: prev,
            });
        }
        deleted
    }
}

impl Keyspace {
    /// Bytes of every retained version (keys, values and a fixed overhead per
    /// version, as etcd's backend stores each revision): what the quota counts.
    pub fn retained_bytes(&self) -> u64 {
        self.keys
            .iter()
            .map(|(key, changes)| {
                changes
                    .iter()
                    .map(|c| {
                        (key.len()
                            + c.kv.as_ref().map_or(0, |kv| kv.value.len())
                            + VERSION_OVERHEAD) as u64
                    })
                    .sum::<u64>()
            })
            .sum()
    }
}

/// Bytes a stored version costs beyond its key and value (revision, create/mod
/// revision, version, lease), close to etcd's on-disk KeyValue.
pub const VERSION_OVERHEAD: usize = 48;
