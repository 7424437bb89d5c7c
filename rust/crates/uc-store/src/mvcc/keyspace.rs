use std::collections::BTreeMap;
use std::ops::Bound;

/// A key's value at some revision, as etcd's `mvccpb.KeyValue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: Vec<u8>,
    /// Revision of the put that created this generation of the key.
    pub create_revision: i64,
    /// Revision of the last change.
    pub mod_revision: i64,
    /// Puts since creation, starting at 1; a delete ends the generation.
    pub version: i64,
    pub value: Vec<u8>,
    /// Lease id, 0 for none.
    pub lease: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub kv: KeyValue,
    pub prev_kv: Option<KeyValue>,
}

/// Errors carry etcd's texts: clients match on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MvccError {
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted,
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRevision,
}

/// One write of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
        lease: i64,
    },
    /// etcd's range conventions (see `Keyspace::range`).
    Delete { key: Vec<u8>, range_end: Vec<u8> },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RangeOptions {
    /// 0: the current revision.
    pub revision: i64,
    /// 0: no limit.
    pub limit: usize,
    pub count_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
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
struct Change {
    main: i64,
    sub: i64,
    kv: Option<KeyValue>,
}

/// The key space and its history back to the compacted revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyspace {
    revision: i64,
    compacted: i64,
    keys: BTreeMap<Vec<u8>, Vec<Change>>,
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

    fn live(changes: &[Change], at: i64) -> Option<&KeyValue> {
        changes
            .iter()
            .rev()
            .find(|c| c.main <= at)
            .and_then(|c| c.kv.as_ref())
    }

    fn keys_in<'a>(
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

    /// Reads the range as a transaction in progress sees it.
    pub(crate) fn range_pending(
        &self,
        pending: &Pending,
        key: &[u8],
        range_end: &[u8],
        options: RangeOptions,
    ) -> Result<RangeResult, MvccError> {
        if options.revision > 0 {
            return self.range(key, range_end, options);
        }
        let mut result = self.range_at(pending.main, key, range_end, options);
        result.revision = self.revision;
        Ok(result)
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
        let live: Vec<&KeyValue> = self
            .keys_in(key, range_end)
            .filter_map(|(_, changes)| Self::live(changes, at))
            .collect();
        let count = live.len();
        let take = if options.count_only {
            0
        } else if options.limit > 0 {
            options.limit.min(count)
        } else {
            count
        };
        RangeResult {
            kvs: live.into_iter().take(take).cloned().collect(),
            count,
            more: options.limit > 0 && count > options.limit,
            revision: self.revision,
        }
    }

    /// Forgets history before `revision`; reads at `revision` and later keep
    /// working, earlier ones fail with `Compacted`.
    pub fn compact(&mut self, revision: i64) -> Result<(), MvccError> {
        if revision > self.revision {
            return Err(MvccError::FutureRevision);
        }
        if revision <= self.compacted {
            return Err(MvccError::Compacted);
        }
        self.keys.retain(|_, changes| {
            // The last change at or before `revision` is the state there: keep
            // it if it is a value, drop it if it is a delete.
            let keep_from = changes.iter().rposition(|c| c.main <= revision);
            if let Some(i) = keep_from {
                let deleted = changes[i].kv.is_none();
                changes.drain(..if deleted { i + 1 } else { i });
            }
            !changes.is_empty()
        });
        self.compacted = revision;
        Ok(())
    }

    /// Every event in the range at or after `start`, in revision order, with
    /// the previous value of each key: what a watch created at `start` replays.
    pub fn events_since(
        &self,
        key: &[u8],
        range_end: &[u8],
        start: i64,
    ) -> Result<Vec<Event>, MvccError> {
        if start > 0 && start < self.compacted {
            return Err(MvccError::Compacted);
        }
        let mut events: Vec<(i64, i64, Event)> = Vec::new();
        for (k, changes) in self.keys_in(key, range_end) {
            for (i, change) in changes.iter().enumerate() {
                if change.main < start {
                    continue;
                }
                let prev_kv = i.checked_sub(1).and_then(|p| changes[p].kv.clone());
                let event = match &change.kv {
                    Some(kv) => Event {
                        kind: EventKind::Put,
                        kv: kv.clone(),
                        prev_kv,
                    },
                    None => Event {
                        kind: EventKind::Delete,
                        kv: KeyValue::tombstone(k.clone(), change.main),
                        prev_kv,
                    },
                };
                events.push((change.main, change.sub, event));
            }
        }
        events.sort_by_key(|(main, sub, _)| (*main, *sub));
        Ok(events.into_iter().map(|(_, _, e)| e).collect())
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
