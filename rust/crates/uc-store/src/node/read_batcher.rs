//! Concurrent linearizable reads share read-index rounds: a read waits for
//! a round that started after it arrived, and one round answers every read
//! that arrived before it started (as etcd's linearizable read loop).

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Mutex;
use tonic::Status;

/// Coalesces concurrent read-index rounds (see `Node::batched_read_index`).
pub struct ReadBatcher {
    /// Reads that asked so far (tickets).
    arrived: AtomicU64,
    /// Held while a round runs; waiting for it is waiting for the round.
    round: Mutex<()>,
    /// The last finished round: the tickets it covers and its answer.
    last: std::sync::Mutex<(u64, Result<Option<u64>, Status>)>,
}

impl Default for ReadBatcher {
    fn default() -> Self {
        ReadBatcher {
            arrived: AtomicU64::new(0),
            round: Mutex::new(()),
            last: std::sync::Mutex::new((0, Ok(None))),
        }
    }
}

impl ReadBatcher {
    /// The answer of a `round` that started after this call: a finished one
    /// if it covers this read, else one this read runs for every read that
    /// arrived until then. Whoever runs a round holds `round`, so a read
    /// waiting for it wakes when it ends, cancelled or not.
    pub async fn read_index<F, R>(&self, round: F) -> Result<Option<u64>, Status>
    where
        F: FnOnce() -> R,
        R: std::future::Future<Output = Result<Option<u64>, Status>>,
    {
        let ticket = self.arrived.fetch_add(1, Ordering::SeqCst) + 1;
        let _round = self.round.lock().await;
        {
            let last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            if last.0 >= ticket {
                return last.1.clone();
            }
        }
        let covers = self.arrived.load(Ordering::SeqCst);
        let result = round().await;
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = (covers, result.clone());
        result
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use std::time::Duration;

    /// A read that arrives while a round runs gets the next round's answer
    /// (the running one may predate its write), and the reads waiting
    /// together share that one round.
    #[tokio::test]
    async fn reads_share_rounds_that_start_after_them() {
        let batcher = Arc::new(ReadBatcher::default());
        let rounds = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(tokio::sync::Notify::new());
        let read = |batcher: Arc<ReadBatcher>| {
            let (rounds, release) = (rounds.clone(), release.clone());
            tokio::spawn(async move {
                batcher
                    .read_index(|| async move {
                        let n = rounds.fetch_add(1, Ordering::SeqCst) + 1;
                        release.notified().await;
                        Ok(Some(n as u64))
                    })
                    .await
            })
        };
        let first = read(batcher.clone());
        while rounds.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let later: Vec<_> = (0..8).map(|_| read(batcher.clone())).collect();
        tokio::task::yield_now().await;
        release.notify_one();
        assert_eq!(first.await.unwrap().unwrap(), Some(1));
        while rounds.load(Ordering::SeqCst) == 1 {
            tokio::task::yield_now().await;
        }
        release.notify_one();
        for read in later {
            assert_eq!(read.await.unwrap().unwrap(), Some(2));
        }
        assert_eq!(rounds.load(Ordering::SeqCst), 2);
    }

    /// The read running a round can be dropped (its client gave up): the
    /// reads waiting for that round go on with a round of their own.
    #[tokio::test]
    async fn a_dropped_round_does_not_strand_the_reads_waiting_for_it() {
        let batcher = Arc::new(ReadBatcher::default());
        let started = Arc::new(tokio::sync::Notify::new());
        let stuck = {
            let (batcher, started) = (batcher.clone(), started.clone());
            tokio::spawn(async move {
                batcher
                    .read_index(|| async move {
                        started.notify_one();
                        std::future::pending().await
                    })
                    .await
            })
        };
        started.notified().await;
        let waiting = {
            let batcher = batcher.clone();
            tokio::spawn(async move { batcher.read_index(|| async { Ok(Some(7)) }).await })
        };
        tokio::task::yield_now().await;
        stuck.abort();
        let answer = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the waiting read hung after the round it waited for was dropped");
        assert_eq!(answer.unwrap().unwrap(), Some(7));
    }

    /// Many readers in bursts, each round ending at once: every read is
    /// answered (a lost wake-up left one waiting until the next read came).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bursts_of_reads_all_finish() {
        let batcher = Arc::new(ReadBatcher::default());
        for _ in 0..300 {
            let reads: Vec<_> = (0..16)
                .map(|_| {
                    let batcher = batcher.clone();
                    tokio::spawn(async move {
                        batcher
                            .read_index(|| async {
                                tokio::task::yield_now().await;
                                Ok(Some(1))
                            })
                            .await
                    })
                })
                .collect();
            for read in reads {
                let answer = tokio::time::timeout(Duration::from_secs(5), read)
                    .await
                    .expect("a read hung");
                assert_eq!(answer.unwrap().unwrap(), Some(1));
            }
        }
    }
}
