//! The job log: a bounded in-memory ring of entries (progress events and
//! k6 output lines) read with a `since` cursor, and the same entries as
//! JSON lines in size-rotated files of the state directory.
//!
//! Entries are numbered from 1 without gaps for the server's lifetime; a
//! reader asks for everything after the last number it saw and learns
//! whether entries it never read were already dropped from the ring. The
//! files are written by a thread of their own through a bounded queue, so
//! a slow disk never holds up the campaign; lines the queue could not take
//! are counted and reported in the file itself.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

use serde::Serialize;

use crate::events::Level;

/// Entries the ring keeps.
pub(crate) const RING_CAPACITY: usize = 5000;
/// A longer message is cut (k6 can print very long lines).
pub(crate) const MAX_MESSAGE_CHARS: usize = 4000;
/// The most entries one `GET logs` returns.
pub(crate) const MAX_PAGE: usize = 2000;
/// A log file is rotated when it reaches this size.
pub(crate) const FILE_MAX_BYTES: u64 = 4 * 1024 * 1024;
/// Rotated files kept besides the current one (`serve.log.1` ..).
pub(crate) const FILES_KEPT: usize = 4;
/// Lines waiting for the file writer.
const FILE_QUEUE: usize = 8192;

/// One log entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Entry {
    /// 1, 2, ... for the server's lifetime.
    pub seq: u64,
    /// Seconds since the Unix epoch.
    pub time: f64,
    pub level: Level,
    /// What happened: an `LB_EVENT` type (`config_started`, `log`, ...),
    /// `k6` for k6's own lines, or the suite's and server's own kinds.
    pub event: String,
    /// The job it belongs to, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    pub message: String,
}

/// A page of the ring.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Page {
    pub entries: Vec<Entry>,
    /// The cursor for the next call (`since=`): the last entry returned,
    /// or `since` when there was nothing newer.
    pub next: u64,
    /// The oldest entry the ring still holds (0 when empty).
    pub oldest: u64,
    /// Entries after `since` were dropped from the ring before this call.
    pub missed: bool,
    /// `since` was beyond the newest entry — a cursor from before the
    /// server restarted: the page starts from the oldest entry instead.
    pub reset: bool,
}

/// The bounded ring.
#[derive(Debug, Default)]
pub(crate) struct Ring {
    entries: VecDeque<Entry>,
    next_seq: u64,
}

impl Ring {
    /// Appends an entry, numbering it and cutting its message; returns it.
    pub(crate) fn push(
        &mut self,
        time: f64,
        level: Level,
        event: &str,
        job_id: Option<&str>,
        message: &str,
    ) -> Entry {
        self.next_seq += 1;
        let entry = Entry {
            seq: self.next_seq,
            time,
            level,
            event: event.to_string(),
            job_id: job_id.map(str::to_string),
            message: cut(message),
        };
        if self.entries.len() == RING_CAPACITY {
            self.entries.pop_front();
        }
        self.entries.push_back(entry.clone());
        entry
    }

    /// Entries numbered after `since`, at most `limit` (≤ [`MAX_PAGE`]).
    pub(crate) fn page(&self, since: u64, limit: usize) -> Page {
        let limit = limit.clamp(1, MAX_PAGE);
        let reset = since > self.next_seq;
        let since = if reset { 0 } else { since };
        let oldest = self.entries.front().map_or(0, |e| e.seq);
        let entries: Vec<Entry> = self
            .entries
            .iter()
            .filter(|e| e.seq > since)
            .take(limit)
            .cloned()
            .collect();
        Page {
            next: entries.last().map_or(since, |e| e.seq),
            missed: oldest > since.saturating_add(1),
            oldest,
            entries,
            reset,
        }
    }
}

fn cut(message: &str) -> String {
    match message.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((at, _)) => format!("{}… (cut)", &message[..at]),
        None => message.to_string(),
    }
}

/// The rotated log files: `serve.log`, `serve.log.1` .. `serve.log.N`.
pub(crate) struct LogFiles {
    queue: Option<SyncSender<String>>,
    dropped: Arc<AtomicU64>,
    writer: Option<JoinHandle<()>>,
}

impl LogFiles {
    /// Starts the writer for `dir/serve.log`; the directory must exist.
    pub(crate) fn start(dir: &Path) -> std::io::Result<Self> {
        let path = dir.join("serve.log");
        // Opened here so that an unwritable directory fails the start.
        let file = open_append(&path)?;
        let (tx, rx) = sync_channel(FILE_QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let writer_dropped = Arc::clone(&dropped);
        let writer = std::thread::Builder::new()
            .name("serve-log".into())
            .spawn(move || write_lines(&path, file, &rx, &writer_dropped))?;
        Ok(LogFiles {
            queue: Some(tx),
            dropped,
            writer: Some(writer),
        })
    }

    /// Queues one entry as a JSON line; never blocks.
    pub(crate) fn write(&self, entry: &Entry) {
        let Some(queue) = &self.queue else { return };
        let Ok(mut line) = serde_json::to_string(entry) else {
            return;
        };
        line.push('\n');
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = queue.try_send(line) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Writes what is queued and stops the writer.
    pub(crate) fn close(&mut self) {
        self.queue.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl Drop for LogFiles {
    fn drop(&mut self) {
        self.close();
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// The writer thread: appends lines, rotating by size. A write that fails
/// (a full disk) is reported on stderr once per failure streak and the
/// lines are counted as dropped; the ring and the WebSocket go on.
fn write_lines(path: &Path, mut file: File, rx: &Receiver<String>, dropped: &AtomicU64) {
    let mut size = file.metadata().map_or(0, |m| m.len());
    let mut failing = false;
    while let Ok(line) = rx.recv() {
        let missed = dropped.swap(0, Ordering::Relaxed);
        let mut text = String::new();
        if missed > 0 {
            text.push_str(&format!(
                "{{\"event\":\"log_dropped\",\"message\":\"{missed} log line(s) were not written: the writer fell behind or the disk failed\"}}\n"
            ));
        }
        text.push_str(&line);
        if size + text.len() as u64 > FILE_MAX_BYTES && size > 0 {
            match rotate(path) {
                Ok(fresh) => {
                    file = fresh;
                    size = 0;
                }
                Err(e) => {
                    if !failing {
                        tracing::error!("cannot rotate {}: {e}", path.display());
                    }
                    failing = true;
                }
            }
        }
        match file.write_all(text.as_bytes()) {
            Ok(()) => {
                size += text.len() as u64;
                failing = false;
            }
            Err(e) => {
                dropped.fetch_add(1, Ordering::Relaxed);
                if !failing {
                    tracing::error!("cannot write {}: {e}", path.display());
                }
                failing = true;
            }
        }
    }
    let _ = file.flush();
}

/// `serve.log.{N-1}` → `.N`, …, `serve.log` → `.1`; a new `serve.log`.
fn rotate(path: &Path) -> std::io::Result<File> {
    let numbered = |n: usize| PathBuf::from(format!("{}.{n}", path.display()));
    let _ = std::fs::remove_file(numbered(FILES_KEPT));
    for n in (1..FILES_KEPT).rev() {
        let from = numbered(n);
        if from.exists() {
            std::fs::rename(&from, numbered(n + 1))?;
        }
    }
    std::fs::rename(path, numbered(1))?;
    open_append(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(ring: &mut Ring, message: &str) -> Entry {
        ring.push(1.0, Level::Info, "log", Some("job"), message)
    }

    #[test]
    fn pages_follow_the_cursor() {
        let mut ring = Ring::default();
        for i in 1..=5 {
            push(&mut ring, &format!("line {i}"));
        }
        let page = ring.page(0, 2);
        assert_eq!(
            page.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!((page.next, page.oldest, page.missed), (2, 1, false));
        let page = ring.page(page.next, 100);
        assert_eq!(
            page.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [3, 4, 5]
        );
        let page = ring.page(5, 100);
        assert!(page.entries.is_empty());
        assert_eq!(page.next, 5);
        assert!(!page.reset);
        // A cursor from an earlier server: start again.
        let page = ring.page(900, 2);
        assert!(page.reset);
        assert_eq!(
            page.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [1, 2]
        );
    }

    #[test]
    fn the_ring_is_bounded_and_says_what_was_missed() {
        let mut ring = Ring::default();
        for i in 0..RING_CAPACITY + 10 {
            push(&mut ring, &i.to_string());
        }
        let page = ring.page(0, MAX_PAGE);
        assert_eq!(page.oldest, 11);
        assert!(page.missed);
        assert_eq!(page.entries.len(), MAX_PAGE);
        assert!(!ring.page(10, 1).missed);
    }

    #[test]
    fn long_messages_are_cut() {
        let mut ring = Ring::default();
        let entry = push(&mut ring, &"é".repeat(MAX_MESSAGE_CHARS + 5));
        assert!(entry.message.ends_with("… (cut)"));
        assert_eq!(
            entry.message.chars().count(),
            MAX_MESSAGE_CHARS + "… (cut)".chars().count()
        );
    }

    #[test]
    fn files_rotate_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = LogFiles::start(dir.path()).unwrap();
        let mut ring = Ring::default();
        let big = "x".repeat(MAX_MESSAGE_CHARS - 10);
        let entries = (FILE_MAX_BYTES as usize / big.len()) * 2 + 10;
        for _ in 0..entries {
            let entry = push(&mut ring, &big);
            files.write(&entry);
        }
        files.close();
        let current = dir.path().join("serve.log");
        assert!(current.metadata().unwrap().len() <= FILE_MAX_BYTES);
        assert!(dir.path().join("serve.log.1").is_file());
        assert!(dir.path().join("serve.log.2").is_file());
        let mut lines = 0;
        for name in ["serve.log", "serve.log.1", "serve.log.2"] {
            let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
            for line in text.lines() {
                let value: serde_json::Value = serde_json::from_str(line).unwrap();
                assert_eq!(value["event"], "log");
                lines += 1;
            }
        }
        assert_eq!(lines, entries);
    }
}
