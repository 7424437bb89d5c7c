//! redb's file backend, except that the file grows by writing zeros instead
//! of by `set_len`. A hole (or a fallocated, unwritten extent) costs the
//! filesystem an allocation or an extent conversion in every fdatasync that
//! first writes into it; the log's commits mostly write pages the file just
//! grew by. Measured here (ext4 on a VM disk): fdatasync after writing a
//! 4 KiB page into a hole 0.29 ms, into a zero-written page 0.175 ms.
//! Only the first ZERO_FILL_MAX bytes of a growth are written, though: redb
//! doubles the file, and the zeros are flushed by the commit that grew it:
//! growing a 137 MB log to 273 MB made followers' commits take 140 ms, and
//! the leader's AppendEntries (100 ms timeout) failed behind them. A commit
//! that grows the file by 136 MB took 69–89 ms with all of it zero-written
//! and 9–12 ms with 16 MB; by 1 GB, 520–620 ms against 11–12 ms.

use std::fs::File;
use std::ops::Bound;

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

// redb 4 without experimental-api-5: backend I/O errors are io::Error.
type BackendIoError = std::io::Error;

/// Zeros written per call when the file grows.
const CHUNK: usize = 1 << 20;
/// At most this much of one growth is zero-written; the rest is left to
/// `set_len` (a hole), which costs later commits a little, not this one a lot.
const ZERO_FILL_MAX: u64 = 16 << 20;

#[derive(Debug)]
pub struct ZeroFilledFile {
    inner: FileBackend,
}

impl ZeroFilledFile {
    pub fn new(file: File) -> Result<ZeroFilledFile, redb::DatabaseError> {
        Ok(ZeroFilledFile {
            inner: FileBackend::new(file)?,
        })
    }
}

impl StorageBackend for ZeroFilledFile {
    fn len(&self) -> Result<u64, BackendIoError> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), BackendIoError> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), BackendIoError> {
        let mut at = self.inner.len()?;
        if len <= at {
            return self.inner.set_len(len);
        }
        let zeros = vec![0u8; CHUNK];
        let filled = len.min(at.saturating_add(ZERO_FILL_MAX));
        while at < filled {
            let n = usize::try_from(filled - at).map_or(CHUNK, |left| left.min(CHUNK));
            self.inner.write(at, &zeros[..n])?;
            at += n as u64;
        }
        if at < len {
            self.inner.set_len(len)?;
        }
        Ok(())
    }

    fn sync_data(&self) -> Result<(), BackendIoError> {
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), BackendIoError> {
        self.inner.write(offset, data)
    }

    fn close(&self) -> Result<(), BackendIoError> {
        self.inner.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(start, end)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// A small growth is written as zeros; of a large one only the first
    /// ZERO_FILL_MAX bytes are, the rest is a hole. Both read as zeros.
    #[test]
    fn growth_is_zero_written_up_to_a_bound() {
        let dir = uc_testkit::TestDir::new("zero-filled-growth");
        let path = dir.join("grow");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let backend = ZeroFilledFile::new(file).unwrap();
        let allocated = || std::fs::metadata(&path).unwrap().blocks() * 512;

        backend.set_len(3 << 20).unwrap();
        assert_eq!(backend.len().unwrap(), 3 << 20);
        assert!(
            allocated() >= 3 << 20,
            "small growth written: {}",
            allocated()
        );

        let large = (3 << 20) + 4 * ZERO_FILL_MAX;
        backend.set_len(large).unwrap();
        assert_eq!(backend.len().unwrap(), large);
        let written = allocated();
        assert!(written >= (3 << 20) + ZERO_FILL_MAX, "{written}");
        assert!(written < (3 << 20) + 2 * ZERO_FILL_MAX, "{written}");

        let mut tail = vec![1u8; 4096];
        backend.read(large - 4096, &mut tail).unwrap();
        assert!(tail.iter().all(|b| *b == 0));
    }
}
