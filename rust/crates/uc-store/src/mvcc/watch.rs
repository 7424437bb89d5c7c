//! What a watch needs from the keyspace: replaying the events of a key range
//! from a start revision, and etcd's watch filters for fanning out the events
//! of each new write. The streams themselves belong to the gRPC layer.

use super::keyspace::{in_range, Event, EventKind, KeyValue, Keyspace, MvccError};

/// The part of etcd's `WatchCreateRequest` that selects events.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WatchFilter {
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// etcd's range conventions (see `Keyspace::range`).
    #[serde(with = "serde_bytes")]
    pub range_end: Vec<u8>,
    /// Keep each event's previous value; otherwise it is dropped.
    pub prev_kv: bool,
    /// etcd's `NOPUT` filter.
    pub no_put: bool,
    /// etcd's `NODELETE` filter.
    pub no_delete: bool,
}

impl WatchFilter {
    pub fn matches(&self, event: &Event) -> bool {
        let wanted = match event.kind {
            EventKind::Put => !self.no_put,
            EventKind::Delete => !self.no_delete,
        };
        wanted && in_range(&event.kv.key, &self.key, &self.range_end)
    }

    /// The events this watch sends, in order, as it sends them.
    pub fn select(&self, events: &[Event]) -> Vec<Event> {
        events
            .iter()
            .filter(|e| self.matches(e))
            .map(|e| Event {
                prev_kv: if self.prev_kv {
                    e.prev_kv.clone()
                } else {
                    None
                },
                ..e.clone()
            })
            .collect()
    }
}

impl Keyspace {
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

    /// What a watch created at `start` (0: only new events) receives first.
    pub fn replay(&self, filter: &WatchFilter, start: i64) -> Result<Vec<Event>, MvccError> {
        if start <= 0 {
            return Ok(Vec::new());
        }
        let events = self.events_since(&filter.key, &filter.range_end, start)?;
        Ok(filter.select(&events))
    }
}
