//! etcd's Maintenance service.

use std::sync::Arc;

use sha2::Digest;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use uc_proto::etcdserverpb as pb;
use uc_proto::etcdserverpb::alarm_request::AlarmAction as PbAlarmAction;
use uc_proto::etcdserverpb::maintenance_server::Maintenance;
use uc_proto::etcdserverpb::AlarmType;

use crate::errors;
use crate::ids::crc32;
use crate::node::Node;
use crate::state::{AlarmAction, Command};

/// The etcd API version uc-store answers (its protos are etcd 3.4's).
pub const ETCD_VERSION: &str = "3.4.23";

const SNAPSHOT_CHUNK: usize = 32 * 1024;

pub struct MaintenanceService {
    pub node: Arc<Node>,
}

impl MaintenanceService {
    /// Members with an active NOSPACE alarm, as this member has applied.
    fn alarmed(&self) -> Vec<u64> {
        self.node
            .shared
            .read()
            .state
            .nospace
            .iter()
            .copied()
            .collect()
    }

    fn alarms(&self, members: &[u64]) -> Vec<pb::AlarmMember> {
        members
            .iter()
            .map(|member| pb::AlarmMember {
                member_id: *member,
                alarm: AlarmType::Nospace as i32,
            })
            .collect()
    }

    fn db_size(&self) -> i64 {
        let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
        let file = |name| self.node.db_path.with_file_name(name);
        let snapshot = file(crate::raft::snapshot::SNAPSHOT_FILE);
        let state = file(crate::raft::state_db::STATE_FILE);
        (size(&self.node.db_path) + size(&snapshot) + size(&state)) as i64
    }
}

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(
        &self,
        request: Request<pb::AlarmRequest>,
    ) -> Result<Response<pb::AlarmResponse>, Status> {
        let request = request.into_inner();
        let action = match PbAlarmAction::try_from(request.action) {
            Ok(PbAlarmAction::Get) | Err(_) => None,
            Ok(PbAlarmAction::Activate) => Some(AlarmAction::Activate),
            Ok(PbAlarmAction::Deactivate) => Some(AlarmAction::Deactivate),
        };
        let nospace = request.alarm == AlarmType::Nospace as i32
            || (request.alarm == AlarmType::None as i32 && action == Some(AlarmAction::Deactivate));
        let members = match action {
            // Alarms uc-store does not raise (CORRUPT): nothing to change.
            Some(_) if !nospace => Vec::new(),
            Some(action) => {
                // `etcdctl alarm disarm` names no member: every alarmed one.
                let targets = if request.member_id == 0 && action == AlarmAction::Deactivate {
                    self.alarmed()
                } else {
                    vec![request.member_id]
                };
                let before = self.alarmed();
                for member in &targets {
                    self.node
                        .write(Command::Alarm {
                            action,
                            member: *member,
                        })
                        .await?;
                }
                // As etcd: the alarms this request raised, or disarmed.
                match action {
                    AlarmAction::Activate => targets,
                    AlarmAction::Deactivate => {
                        targets.into_iter().filter(|m| before.contains(m)).collect()
                    }
                }
            }
            None => self.alarmed(),
        };
        Ok(Response::new(pb::AlarmResponse {
            header: self.node.current_header(),
            alarms: self.alarms(&members),
        }))
    }

    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let metrics = self.node.raft.metrics().borrow().clone();
        let is_learner = metrics
            .membership_config
            .membership()
            .learner_ids()
            .any(|id| id == self.node.id);
        let (size, alarms) = {
            let machine = self.node.shared.read();
            (machine.state.size, machine.state.nospace.len())
        };
        let mut errors = Vec::new();
        if alarms > 0 {
            errors.push("memberID:0 alarm:NOSPACE ".to_string());
        }
        Ok(Response::new(pb::StatusResponse {
            header: self.node.current_header(),
            version: ETCD_VERSION.to_string(),
            db_size: self.db_size(),
            leader: metrics.current_leader.unwrap_or(0),
            raft_index: metrics.last_log_index.unwrap_or(0),
            raft_term: metrics.current_term,
            raft_applied_index: metrics.last_applied.map_or(0, |id| id.index),
            errors,
            db_size_in_use: size as i64,
            is_learner,
        }))
    }

    async fn defragment(
        &self,
        _request: Request<pb::DefragmentRequest>,
    ) -> Result<Response<pb::DefragmentResponse>, Status> {
        // The state database, where compactions free pages. The Raft log
        // needs none: purging behind snapshots keeps it small, and redb
        // reuses its freed pages.
        self.node
            .shared
            .defragment()
            .await
            .map_err(|e| errors::internal(format!("defragment: {e}")))?;
        Ok(Response::new(pb::DefragmentResponse {
            header: self.node.current_header(),
        }))
    }

    async fn hash(
        &self,
        _request: Request<pb::HashRequest>,
    ) -> Result<Response<pb::HashResponse>, Status> {
        let (hash, revision) = self.hash_kv_at(0)?;
        Ok(Response::new(pb::HashResponse {
            header: self.node.header(revision),
            hash,
        }))
    }

    async fn hash_kv(
        &self,
        request: Request<pb::HashKvRequest>,
    ) -> Result<Response<pb::HashKvResponse>, Status> {
        let (hash, revision) = self.hash_kv_at(request.into_inner().revision)?;
        let compacted = self.node.shared.read().state.keyspace.compacted_revision();
        Ok(Response::new(pb::HashKvResponse {
            header: self.node.header(revision),
            hash,
            compact_revision: compacted,
        }))
    }

    type SnapshotStream = ReceiverStream<Result<pb::SnapshotResponse, Status>>;

    async fn snapshot(
        &self,
        _request: Request<pb::SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        // Encoded from the state database (seconds for a large keyspace),
        // off the async workers and without holding up writes.
        let shared = self.node.shared.clone();
        let (bytes, revision) = tokio::task::spawn_blocking(move || {
            let (mut data, revision) = shared.snapshot_bytes()?;
            // As etcd's: a multiple of 512 bytes followed by its SHA-256, which
            // etcdctl checks for. The decoder ignores the padding.
            data.resize(data.len().div_ceil(512) * 512, 0);
            let digest = sha2::Sha256::digest(&data);
            data.extend_from_slice(&digest);
            Ok::<_, crate::raft::state_db::StateDbError>((data, revision))
        })
        .await
        .map_err(|e| errors::internal(e.to_string()))?
        .map_err(|e| errors::internal(e.to_string()))?;
        let header = self.node.header(revision);
        let (out, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let total = bytes.len();
            let mut sent = 0;
            for chunk in bytes.chunks(SNAPSHOT_CHUNK) {
                sent += chunk.len();
                let response = pb::SnapshotResponse {
                    header,
                    remaining_bytes: (total - sent) as u64,
                    blob: chunk.to_vec(),
                };
                if out.send(Ok(response)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn move_leader(
        &self,
        request: Request<pb::MoveLeaderRequest>,
    ) -> Result<Response<pb::MoveLeaderResponse>, Status> {
        let target = request.into_inner().target_id;
        // Its own task: a client that gives up must not leave the leader
        // quiet (heartbeats off) halfway through.
        let node = self.node.clone();
        tokio::spawn(async move { node.move_leader(target).await })
            .await
            .map_err(|e| errors::internal(e.to_string()))??;
        Ok(Response::new(pb::MoveLeaderResponse {
            header: self.node.current_header(),
        }))
    }
}

impl MaintenanceService {
    /// CRC-32 over every key's versions at or below `revision` (0: now),
    /// from the compacted revision on: equal on members with equal data.
    fn hash_kv_at(&self, revision: i64) -> Result<(u32, i64), Status> {
        let machine = self.node.shared.read();
        let keyspace = &machine.state.keyspace;
        let at = if revision <= 0 {
            keyspace.revision()
        } else {
            revision
        };
        if at > keyspace.revision() {
            return Err(errors::mvcc(&crate::mvcc::MvccError::FutureRevision));
        }
        if revision > 0 && revision < keyspace.compacted_revision() {
            return Err(errors::mvcc(&crate::mvcc::MvccError::Compacted));
        }
        let mut hash = 0;
        for record in keyspace.snapshot().records {
            if record.main > at {
                continue;
            }
            hash = crc32(hash, &record.main.to_be_bytes());
            hash = crc32(hash, &record.sub.to_be_bytes());
            hash = crc32(hash, &record.kv.key);
            hash = crc32(hash, &record.kv.value);
        }
        Ok((hash, keyspace.revision()))
    }
}
