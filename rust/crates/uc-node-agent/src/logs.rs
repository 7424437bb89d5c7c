//! Per-instance log files: the instance's stdout and stderr are appended to
//! `<stateDir>/logs/<instance>.log` directly (not through the agent, so an
//! agent restart loses no line). Rotation copies and truncates, which an
//! O_APPEND writer survives.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

pub fn log_path(state_dir: &Path, instance: &str) -> PathBuf {
    state_dir.join("logs").join(format!("{instance}.log"))
}

pub fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// If `path` is larger than `max_bytes`: `.1` becomes `.2` … up to `keep`
/// files, the log is copied to `.1` and truncated. True when it rotated.
pub fn rotate_if_large(path: &Path, max_bytes: u64, keep: u32) -> io::Result<bool> {
    let size = match std::fs::metadata(path) {
        Ok(meta) => meta.len(),
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(err) => return Err(err),
    };
    if size <= max_bytes {
        return Ok(false);
    }
    let numbered = |n: u32| PathBuf::from(format!("{}.{n}", path.display()));
    for n in (1..keep.max(1)).rev() {
        if numbered(n).exists() {
            std::fs::rename(numbered(n), numbered(n + 1))?;
        }
    }
    std::fs::copy(path, numbered(1))?;
    OpenOptions::new().write(true).open(path)?.set_len(0)?;
    Ok(true)
}

/// The last `lines` lines of the log (and of `.1` when the current file
/// holds fewer), at most 4 MiB of text.
pub fn tail(path: &Path, lines: usize) -> io::Result<String> {
    const MAX: u64 = 4 << 20;
    let mut text = read_end(path, MAX)?;
    if text.lines().count() < lines {
        let previous = PathBuf::from(format!("{}.1", path.display()));
        if let Ok(older) = read_end(&previous, MAX) {
            text = older + &text;
        }
    }
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    let mut out = all[start..].join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    Ok(out)
}

fn read_end(path: &Path, max: u64) -> io::Result<String> {
    let mut file = File::open(path)?;
    let size = file.metadata()?.len();
    file.seek(SeekFrom::Start(size.saturating_sub(max)))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::io::Write;

    #[test]
    fn rotation_keeps_the_writer_and_the_tail_spans_files() {
        let dir = std::env::temp_dir().join(format!("uc-node-agent-logs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("web-0.log");
        let mut writer = open_append(&path).unwrap();
        for i in 0..100 {
            writeln!(writer, "line {i}").unwrap();
        }
        assert!(!rotate_if_large(&path, 10_000, 2).unwrap());
        assert!(rotate_if_large(&path, 100, 2).unwrap());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        // The open writer appends at the new end, not at its old offset.
        writeln!(writer, "after rotation").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "after rotation\n");
        assert_eq!(
            tail(&path, 3).unwrap(),
            "line 98\nline 99\nafter rotation\n"
        );
        assert!(rotate_if_large(&path, 1, 2).unwrap());
        assert!(PathBuf::from(format!("{}.2", path.display())).exists());
        assert!(!PathBuf::from(format!("{}.3", path.display())).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
