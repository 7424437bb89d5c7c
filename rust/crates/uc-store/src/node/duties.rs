//! What the leader does on its own: fresh lease TTLs when it is elected,
//! revoking expired leases, periodic compaction.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::ServerState;

use super::Node;
use crate::state::Command;

impl Node {
    /// The leader's duties: fresh lease TTLs on election, revoking expired
    /// leases, and periodic compaction. Runs until the process stops.
    pub async fn run_leader_duties(self: Arc<Self>, compaction_retention: Option<Duration>) {
        let mut metrics = self.raft.metrics();
        let mut led_term = None;
        let mut samples: VecDeque<(Instant, i64)> = VecDeque::new();
        let sample_every = compaction_retention
            .map(|r| (r / 10).max(Duration::from_secs(1)))
            .unwrap_or(Duration::from_secs(3600));
        let mut last_sample = Instant::now() - sample_every;
        loop {
            tokio::select! {
                changed = metrics.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
            let (state, term) = {
                let m = metrics.borrow();
                (m.state, m.current_term)
            };
            if state != ServerState::Leader {
                led_term = None;
                samples.clear();
                continue;
            }
            if led_term != Some(term) {
                led_term = Some(term);
                self.shared.refresh_leases();
                tracing::info!(term, "leading; leases get a fresh TTL");
            }
            for id in self.shared.expired() {
                tracing::info!(lease = id, "lease expired; revoking");
                if let Err(status) = self.propose(Command::LeaseRevoke { id }).await {
                    tracing::warn!(lease = id, %status, "revoking an expired lease failed");
                    break;
                }
            }
            if let Some(retention) = compaction_retention {
                let now = Instant::now();
                if now.duration_since(last_sample) >= sample_every {
                    last_sample = now;
                    samples.push_back((now, self.revision()));
                }
                let mut target = None;
                while let Some((at, revision)) = samples.front().copied() {
                    if now.duration_since(at) >= retention {
                        target = Some(revision);
                        samples.pop_front();
                    } else {
                        break;
                    }
                }
                let compacted = self.shared.read().state.keyspace.compacted_revision();
                if let Some(revision) = target.filter(|r| *r > compacted) {
                    match self.propose(Command::Compact { revision }).await {
                        Ok(_) => tracing::info!(revision, "auto-compaction"),
                        Err(status) => tracing::warn!(revision, %status, "auto-compaction failed"),
                    }
                }
            }
        }
    }
}
