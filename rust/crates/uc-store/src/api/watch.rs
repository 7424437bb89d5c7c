//! etcd's Watch service: one task per stream holds its watchers; each new
//! revision applied on this member is fanned out to them, and a watcher that
//! starts in the past (or fell behind) is caught up from the keyspace's
//! history, so no revision is skipped or sent twice.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use uc_proto::etcdserverpb as pb;
use uc_proto::etcdserverpb::watch_create_request::FilterType;
use uc_proto::etcdserverpb::watch_request::RequestUnion;
use uc_proto::etcdserverpb::watch_server::Watch;

use super::convert;
use crate::mvcc::{Event, MvccError, WatchFilter};
use crate::node::Node;
use crate::state::Changes;

/// etcd's progressReportInterval.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(600);

/// Events per response when catching up (etcd sends a batch per revision;
/// large catch-ups are split so no message exceeds the client's limit).
const CATCH_UP_BATCH: usize = 1000;

pub struct WatchService {
    pub node: Arc<Node>,
    pub progress_interval: Duration,
}

struct Watcher {
    filter: WatchFilter,
    /// The next revision this watcher has not seen.
    next: i64,
    progress_notify: bool,
}

struct Stream {
    node: Arc<Node>,
    out: mpsc::Sender<Result<pb::WatchResponse, Status>>,
    watchers: BTreeMap<i64, Watcher>,
    next_id: i64,
}

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = ReceiverStream<Result<pb::WatchResponse, Status>>;

    async fn watch(
        &self,
        request: Request<Streaming<pb::WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let inbound = request.into_inner();
        let (out, rx) = mpsc::channel(256);
        let stream = Stream {
            node: self.node.clone(),
            out,
            watchers: BTreeMap::new(),
            next_id: 0,
        };
        tokio::spawn(stream.run(inbound, self.progress_interval));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

impl Stream {
    async fn run(mut self, mut inbound: Streaming<pb::WatchRequest>, progress: Duration) {
        let mut changes = self.node.shared.events.subscribe();
        let mut ticker = tokio::time::interval(progress);
        ticker.tick().await;
        loop {
            let open = tokio::select! {
                request = inbound.message() => match request {
                    Ok(Some(request)) => self.handle(request).await,
                    Ok(None) | Err(_) => false,
                },
                change = changes.recv() => match change {
                    Ok(change) => self.fan_out(&change).await,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, "watch stream fell behind; catching up from history");
                        self.catch_up_all().await
                    }
                    Err(broadcast::error::RecvError::Closed) => false,
                },
                _ = ticker.tick() => self.progress().await,
                _ = self.out.closed() => false,
            };
            if !open {
                return;
            }
        }
    }

    async fn send(&self, response: pb::WatchResponse) -> bool {
        self.out.send(Ok(response)).await.is_ok()
    }

    async fn handle(&mut self, request: pb::WatchRequest) -> bool {
        match request.request_union {
            Some(RequestUnion::CreateRequest(create)) => self.create(create).await,
            Some(RequestUnion::CancelRequest(cancel)) => {
                let existed = self.watchers.remove(&cancel.watch_id).is_some();
                if !existed {
                    return true;
                }
                self.send(pb::WatchResponse {
                    header: self.node.current_header(),
                    watch_id: cancel.watch_id,
                    canceled: true,
                    ..Default::default()
                })
                .await
            }
            Some(RequestUnion::ProgressRequest(_)) => {
                self.send(pb::WatchResponse {
                    header: self.node.current_header(),
                    watch_id: -1,
                    ..Default::default()
                })
                .await
            }
            None => true,
        }
    }

    async fn create(&mut self, create: pb::WatchCreateRequest) -> bool {
        let id = if create.watch_id != 0 {
            create.watch_id
        } else {
            while self.watchers.contains_key(&self.next_id) {
                self.next_id += 1;
            }
            self.next_id
        };
        if self.watchers.contains_key(&id) || id < 0 {
            // etcd answers a create it cannot honour this way.
            return self
                .send(pb::WatchResponse {
                    header: self.node.current_header(),
                    watch_id: -1,
                    created: true,
                    canceled: true,
                    ..Default::default()
                })
                .await;
        }
        let filter = WatchFilter {
            key: create.key,
            range_end: create.range_end,
            prev_kv: create.prev_kv,
            no_put: create.filters.contains(&(FilterType::Noput as i32)),
            no_delete: create.filters.contains(&(FilterType::Nodelete as i32)),
        };
        let current = self.node.revision();
        let next = if create.start_revision > 0 {
            create.start_revision
        } else {
            current + 1
        };
        self.watchers.insert(
            id,
            Watcher {
                filter,
                next,
                progress_notify: create.progress_notify,
            },
        );
        let created = self
            .send(pb::WatchResponse {
                header: self.node.header(current),
                watch_id: id,
                created: true,
                ..Default::default()
            })
            .await;
        created && (next > current || self.catch_up(id).await)
    }

    /// Sends a watcher everything from its next revision up to now.
    async fn catch_up(&mut self, id: i64) -> bool {
        let Some(watcher) = self.watchers.get(&id) else {
            return true;
        };
        let (result, revision, compacted) = {
            let machine = self.node.shared.read();
            let keyspace = &machine.state.keyspace;
            (
                keyspace.replay(&watcher.filter, watcher.next.max(1)),
                keyspace.revision(),
                keyspace.compacted_revision(),
            )
        };
        match result {
            Err(MvccError::Compacted) => {
                self.watchers.remove(&id);
                self.send(pb::WatchResponse {
                    header: self.node.header(revision),
                    watch_id: id,
                    canceled: true,
                    compact_revision: compacted,
                    cancel_reason: MvccError::Compacted.to_string(),
                    ..Default::default()
                })
                .await
            }
            Err(MvccError::FutureRevision) => true,
            Ok(events) => {
                let prev_kv = watcher.filter.prev_kv;
                if let Some(watcher) = self.watchers.get_mut(&id) {
                    watcher.next = watcher.next.max(revision + 1);
                }
                self.send_events(id, revision, &events, prev_kv).await
            }
        }
    }

    async fn send_events(&self, id: i64, revision: i64, events: &[Event], prev_kv: bool) -> bool {
        for chunk in events.chunks(CATCH_UP_BATCH) {
            let response = pb::WatchResponse {
                header: self.node.header(revision),
                watch_id: id,
                events: chunk.iter().map(|e| convert::event(e, prev_kv)).collect(),
                ..Default::default()
            };
            if !self.send(response).await {
                return false;
            }
        }
        true
    }

    async fn fan_out(&mut self, change: &Arc<Changes>) -> bool {
        if change.reset {
            return self.catch_up_all().await;
        }
        let ids: Vec<i64> = self.watchers.keys().copied().collect();
        for id in ids {
            let Some(watcher) = self.watchers.get_mut(&id) else {
                continue;
            };
            if change.revision < watcher.next {
                continue;
            }
            if change.revision > watcher.next {
                // A gap (this stream missed a revision): read it from history.
                if !self.catch_up(id).await {
                    return false;
                }
                continue;
            }
            watcher.next = change.revision + 1;
            let events = watcher.filter.select(&change.events);
            let prev_kv = watcher.filter.prev_kv;
            if !events.is_empty()
                && !self
                    .send_events(id, change.revision, &events, prev_kv)
                    .await
            {
                return false;
            }
        }
        true
    }

    async fn catch_up_all(&mut self) -> bool {
        let ids: Vec<i64> = self.watchers.keys().copied().collect();
        for id in ids {
            if !self.catch_up(id).await {
                return false;
            }
        }
        true
    }

    async fn progress(&mut self) -> bool {
        let header = self.node.current_header();
        let ids: Vec<i64> = self
            .watchers
            .iter()
            .filter(|(_, w)| w.progress_notify)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let sent = self
                .send(pb::WatchResponse {
                    header,
                    watch_id: id,
                    ..Default::default()
                })
                .await;
            if !sent {
                return false;
            }
        }
        true
    }
}
