//! The snapshot format: `<data-dir>/snapshot.bin`, what is sent to a member
//! that is behind, and what Maintenance.Snapshot streams. A magic header,
//! then postcard, meta first; versions before it wrote JSON
//! (`snapshot.json`), which is still read. The state database encodes the
//! same bytes from its tables (`state_db::encode_snapshot`).

// openraft's StorageError is large; the file helpers return it.
#![allow(clippy::result_large_err)]

use std::io::Write as _;
use std::path::{Path, PathBuf};

use openraft::SnapshotMeta;
use serde::{Deserialize, Serialize};

use super::{write_error, Member, NodeId, StorageError};
use crate::state::StateSnapshot;

/// What `snapshot.bin` holds, what is sent to a member that is behind, and
/// what Maintenance.Snapshot streams.
#[derive(Serialize, Deserialize)]
pub struct SnapshotFile {
    pub meta: SnapshotMeta<NodeId, Member>,
    pub state: StateSnapshot,
}

/// Why a snapshot file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotFileError {
    #[error("{0}")]
    Binary(#[from] postcard::Error),
    /// The JSON of versions before the binary format.
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("not a uc-store snapshot (no known header)")]
    UnknownFormat,
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub const SNAPSHOT_FILE: &str = "snapshot.bin";
/// Where versions before the binary format kept their snapshot (JSON).
pub(crate) const LEGACY_SNAPSHOT_FILE: &str = "snapshot.json";
/// Starts every snapshot; what follows is the postcard encoding of a
/// `SnapshotFile`, meta first so it can be read without decoding the state.
/// JSON took twice the space (keys and values as arrays of numbers) and
/// several times the time.
pub(crate) const SNAPSHOT_MAGIC: &[u8; 8] = b"ucsnap\x00\x01";

impl SnapshotFile {
    pub fn encode(&self) -> Result<Vec<u8>, postcard::Error> {
        postcard::to_extend(self, SNAPSHOT_MAGIC.to_vec())
    }

    /// Reads a snapshot in the binary format or in the JSON of older versions.
    pub fn decode(bytes: &[u8]) -> Result<SnapshotFile, SnapshotFileError> {
        match bytes.strip_prefix(SNAPSHOT_MAGIC) {
            Some(rest) => Ok(postcard::from_bytes(rest)?),
            None if bytes.first() == Some(&b'{') => Ok(serde_json::from_slice(bytes)?),
            None => Err(SnapshotFileError::UnknownFormat),
        }
    }

    /// The meta alone: cheap for the binary format.
    pub(crate) fn decode_meta(
        bytes: &[u8],
    ) -> Result<SnapshotMeta<NodeId, Member>, SnapshotFileError> {
        match bytes.strip_prefix(SNAPSHOT_MAGIC) {
            Some(rest) => Ok(postcard::take_from_bytes(rest).map(|(meta, _)| meta)?),
            None => SnapshotFile::decode(bytes).map(|file| file.meta),
        }
    }
}

/// Writes `snapshot.bin`; the JSON file of older versions is then stale.
pub(crate) fn save_blocking(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    write_atomically(path, bytes).map_err(write_error)?;
    let legacy = path.with_file_name(LEGACY_SNAPSHOT_FILE);
    match std::fs::remove_file(&legacy) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(write_error(err)),
        _ => Ok(()),
    }
}

/// The snapshot file's path and bytes: the binary one, else the JSON one an
/// older version wrote, else none.
pub(crate) fn read_snapshot(path: &Path) -> Result<Option<(PathBuf, Vec<u8>)>, SnapshotFileError> {
    for path in [
        path.to_path_buf(),
        path.with_file_name(LEGACY_SNAPSHOT_FILE),
    ] {
        match std::fs::read(&path) {
            Ok(bytes) => return Ok(Some((path, bytes))),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(SnapshotFileError::Read { path, source }),
        }
    }
    Ok(None)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::mvcc::PutRequest;
    use crate::state::{Command, State};
    use openraft::{LogId, StoredMembership};

    /// A state with a few keys and a lease, as a snapshot with its meta.
    pub(crate) fn sample() -> SnapshotFile {
        let mut state = State::default();
        for (i, key) in ["a", "b", "c"].iter().enumerate() {
            let put = Command::Put(PutRequest {
                key: key.as_bytes().to_vec(),
                value: vec![i as u8, 0, 255],
                ..Default::default()
            });
            state.apply(i as u64 + 1, &put);
        }
        SnapshotFile {
            meta: SnapshotMeta {
                last_log_id: Some(LogId::new(openraft::CommittedLeaderId::new(2, 7), 3)),
                last_membership: StoredMembership::default(),
                snapshot_id: "2-7-3-0".to_string(),
            },
            state: state.snapshot(),
        }
    }

    #[test]
    fn snapshots_round_trip_and_their_meta_reads_alone() {
        let file = sample();
        let bytes = file.encode().unwrap();
        assert!(bytes.starts_with(SNAPSHOT_MAGIC));
        let back = SnapshotFile::decode(&bytes).unwrap();
        assert_eq!(back.state, file.state);
        assert_eq!(back.meta, file.meta);
        assert_eq!(SnapshotFile::decode_meta(&bytes).unwrap(), file.meta);
        // Maintenance.Snapshot pads to 512 bytes: still the same snapshot.
        let mut padded = bytes.clone();
        padded.resize(bytes.len().div_ceil(512) * 512, 0);
        assert_eq!(SnapshotFile::decode(&padded).unwrap().state, file.state);
        // Half the size of the JSON that older versions wrote, or less.
        let json = serde_json::to_vec(&file).unwrap();
        assert!(
            bytes.len() * 2 <= json.len(),
            "{} vs {}",
            bytes.len(),
            json.len()
        );
    }

    #[test]
    fn a_snapshot_that_is_neither_format_is_refused_by_name() {
        let err = SnapshotFile::decode(b"PK\x03\x04 not ours")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("not a uc-store snapshot"), "{err}");
        let mut cut = sample().encode().unwrap();
        cut.truncate(cut.len() / 2);
        assert!(SnapshotFile::decode(&cut).is_err());
    }
}
