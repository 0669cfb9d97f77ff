//! Finding (and cutting off) an unfinished last line left by a kill.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;

/// How much of a dropped line a warning quotes.
const QUOTED_BYTES: usize = 120;

/// A last line without its `\n`: a write interrupted by a kill. It was
/// never acknowledged, so it is not data: readers ignore it and
/// [`crate::output::Dataset::open`] truncates the file before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornLine {
    pub path: PathBuf,
    /// Length of the unfinished line in bytes.
    pub bytes: u64,
    /// Its start, lossily decoded, at most 120 bytes.
    pub text: String,
    /// `true` when the file was truncated, `false` when only ignored.
    pub removed: bool,
}

impl fmt::Display for TornLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.removed { "removed" } else { "ignored" };
        write!(
            f,
            "{}: {verb} an unfinished last line ({} bytes, left by an interrupted write): {:?}",
            self.path.display(),
            self.bytes,
            self.text
        )
    }
}

/// Length of `file` up to and including its last `\n` (0 when it has none),
/// and its total length. Reads backwards from the end, so a long file with
/// a complete last line costs one byte of reading.
pub(crate) fn complete_len(file: &mut File) -> io::Result<(u64, u64)> {
    const CHUNK: u64 = 8192;
    let total = file.seek(SeekFrom::End(0))?;
    let mut end = total;
    let mut buf = vec![0u8; CHUNK as usize];
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        let chunk = &mut buf[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(pos) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok((start + pos as u64 + 1, total));
        }
        end = start;
    }
    Ok((0, total))
}

/// Describes the bytes `complete..total` of `file`.
pub(crate) fn describe(
    file: &mut File,
    path: PathBuf,
    complete: u64,
    total: u64,
    removed: bool,
) -> io::Result<TornLine> {
    let mut quoted = Vec::new();
    file.seek(SeekFrom::Start(complete))?;
    file.by_ref()
        .take(QUOTED_BYTES as u64)
        .read_to_end(&mut quoted)?;
    Ok(TornLine {
        path,
        bytes: total - complete,
        text: String::from_utf8_lossy(&quoted).into_owned(),
        removed,
    })
}

/// A file opened for reading up to its last complete line.
pub(crate) struct CompleteLines {
    /// Positioned at the start; read at most `complete` bytes of it.
    pub file: File,
    pub complete: u64,
    /// The unfinished last line, if any (left in the file).
    pub torn: Option<TornLine>,
}

/// Opens `path` for reading its complete lines; `None` when it does not
/// exist, an error when it is not a regular file (a FIFO would block, a
/// link would read another file). The file is not modified.
pub(crate) fn open_complete(
    path: &std::path::Path,
) -> Result<Option<CompleteLines>, super::OutputError> {
    use std::io::{Seek, SeekFrom};
    let Some(mut file) = super::location::open_existing(path)? else {
        return Ok(None);
    };
    let read_err = |e| super::OutputError::io("read", path, e);
    let (complete, total) = complete_len(&mut file).map_err(read_err)?;
    let torn = if complete < total {
        Some(describe(&mut file, path.to_path_buf(), complete, total, false).map_err(read_err)?)
    } else {
        None
    };
    file.seek(SeekFrom::Start(0)).map_err(read_err)?;
    Ok(Some(CompleteLines {
        file,
        complete,
        torn,
    }))
}
