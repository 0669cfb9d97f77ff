//! Reading back the stream of [`super::remote::run`] and
//! [`super::remote::follow`] (pure): a header (`pid`, the `cpu` lines of
//! `/proc/stat` at k6's start, `log`), k6's log bytes as they come, then,
//! after a per-run end marker, the trailer (exit status, log size, `cpu`
//! lines at k6's end, the summary).
//!
//! The log is k6's own output, so the marker is a value it cannot contain
//! by chance ([`marker`]); the few bytes that might be the start of the
//! marker are held back until the next chunk shows they are not.

use std::time::SystemTime;

/// A marker no k6 log contains by chance: the process id, the clock's
/// nanoseconds and a counter.
pub(super) fn marker() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "--lb-dfaas-end-{:x}-{nanos:x}-{:x}--",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// What the header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Header {
    pub pid: u32,
    /// The `cpu` lines of `/proc/stat` read just before k6 started.
    pub cpu_start: String,
}

/// k6's exit status as the trailer reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Exit {
    Code(i32),
    /// k6 is gone and left no exit status.
    None,
    /// k6 still runs (the log follower ended early).
    Running,
}

/// What the trailer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Trailer {
    pub exit: Exit,
    /// The `cpu` lines at k6's start, from the header (set by the reader
    /// of the stream that carried it; empty here).
    pub cpu_start: String,
    /// k6.log's size at the end: more than was streamed means bytes are
    /// missing.
    pub log_size: u64,
    /// k6's user and system CPU times as `times` prints them (empty when
    /// unknown).
    pub k6_times: String,
    /// The `cpu` lines of `/proc/stat` read when k6 ended.
    pub cpu_end: String,
    /// `summary.json`'s bytes, `None` when k6 wrote none.
    pub summary: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Header,
    Log,
    Trailer,
}

/// Parses one stream as its chunks arrive.
#[derive(Debug)]
pub(super) struct StreamReader {
    /// `\n<marker>\n`, as the remote program prints it.
    end: Vec<u8>,
    state: State,
    buffer: Vec<u8>,
}

/// What one chunk brought.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Chunk {
    pub header: Option<Header>,
    pub log: Vec<u8>,
}

impl StreamReader {
    pub(super) fn new(marker: &str) -> StreamReader {
        let mut end = b"\n".to_vec();
        end.extend_from_slice(marker.as_bytes());
        end.push(b'\n');
        StreamReader {
            end,
            state: State::Header,
            buffer: Vec::new(),
        }
    }

    /// Whether the header has been read.
    pub(super) fn header_seen(&self) -> bool {
        self.state != State::Header
    }

    /// Takes the next chunk. `Err` when the header is not one the remote
    /// programs print.
    pub(super) fn push(&mut self, bytes: &[u8]) -> Result<Chunk, String> {
        self.buffer.extend_from_slice(bytes);
        let mut chunk = Chunk::default();
        if self.state == State::Header {
            let Some(end) = find(&self.buffer, b"\nlog\n") else {
                return Ok(chunk);
            };
            let header: Vec<u8> = self.buffer.drain(..end + 5).collect();
            chunk.header = Some(parse_header(&header[..end + 1])?);
            self.state = State::Log;
        }
        if self.state == State::Log {
            if let Some(at) = find(&self.buffer, &self.end) {
                chunk.log = self.buffer.drain(..at).collect();
                self.buffer.drain(..self.end.len());
                self.state = State::Trailer;
            } else {
                // Bytes that may begin the marker wait for the next chunk.
                let keep = self.end.len() - 1;
                let safe = self.buffer.len().saturating_sub(keep);
                chunk.log = self.buffer.drain(..safe).collect();
            }
        }
        Ok(chunk)
    }

    /// The trailer, once the stream ended; `None` when it ended before
    /// the marker (a dropped connection, a killed follower); `Err` when
    /// the trailer is malformed.
    pub(super) fn finish(self) -> Result<Option<Trailer>, String> {
        if self.state != State::Trailer {
            return Ok(None);
        }
        parse_trailer(&self.buffer).map(Some)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse_header(bytes: &[u8]) -> Result<Header, String> {
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.lines();
    let pid = lines
        .next()
        .and_then(|l| l.strip_prefix("pid "))
        .and_then(|p| p.trim().parse().ok())
        .ok_or_else(|| format!("stream header without a pid: {:?}", excerpt(&text)))?;
    if lines.next() != Some("cpu-start") {
        return Err(format!(
            "stream header without cpu-start: {:?}",
            excerpt(&text)
        ));
    }
    let cpu_start: Vec<&str> = lines.collect();
    Ok(Header {
        pid,
        cpu_start: cpu_start.join("\n"),
    })
}

fn parse_trailer(bytes: &[u8]) -> Result<Trailer, String> {
    let bad = |what: &str| {
        format!(
            "stream trailer without {what}: {:?}",
            excerpt(&String::from_utf8_lossy(&bytes[..bytes.len().min(400)]))
        )
    };
    let mut rest = bytes;
    let mut next_line = || -> Option<String> {
        let end = rest.iter().position(|b| *b == b'\n')?;
        let line = String::from_utf8_lossy(&rest[..end]).into_owned();
        rest = &rest[end + 1..];
        Some(line)
    };
    let exit = match next_line().as_deref().and_then(|l| l.strip_prefix("exit ")) {
        Some("none") => Exit::None,
        Some("running") => Exit::Running,
        // An empty or torn exit_code file: no status.
        Some(code) => code.trim().parse().map_or(Exit::None, Exit::Code),
        None => return Err(bad("an exit line")),
    };
    let log_size = next_line()
        .as_deref()
        .and_then(|l| l.strip_prefix("log-size "))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| bad("the log size"))?;
    let mut line = next_line();
    let mut k6_times = String::new();
    if let Some(times) = line.as_deref().and_then(|l| l.strip_prefix("k6-times")) {
        k6_times = times.trim().to_string();
        line = next_line();
    }
    if line.as_deref() != Some("cpu-end") {
        return Err(bad("cpu-end"));
    }
    let mut cpu_end = Vec::new();
    let summary_len = loop {
        let line = next_line().ok_or_else(|| bad("a summary line"))?;
        match line.strip_prefix("summary ") {
            Some("none") => break None,
            Some(n) => {
                break Some(
                    n.trim()
                        .parse::<usize>()
                        .map_err(|_| bad("a summary size"))?,
                )
            }
            None => cpu_end.push(line),
        }
    };
    let summary = match summary_len {
        None => None,
        Some(n) if rest.len() == n => Some(rest.to_vec()),
        Some(n) => {
            return Err(format!(
                "summary.json came with {} of its {n} bytes",
                rest.len()
            ))
        }
    };
    Ok(Trailer {
        exit,
        cpu_start: String::new(),
        log_size,
        k6_times,
        cpu_end: cpu_end.join("\n"),
        summary,
    })
}

fn excerpt(text: &str) -> String {
    text.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARKER: &str = "--end-1--";

    fn stream(log: &str, trailer: &str) -> Vec<u8> {
        format!("pid 42\ncpu-start\ncpu  1 2 3 4\ncpu0 1 2 3 4\nlog\n{log}\n{MARKER}\n{trailer}")
            .into_bytes()
    }

    const TRAILER: &str =
        "exit 0\nlog-size 11\nk6-times 0m1.5s 0m0.25s\ncpu-end\ncpu  5 6 7 8\ncpu0 5 6 7 8\nsummary 9\n{\"a\": 1}\n";

    /// Feeds `bytes` in chunks of `size`, collecting header and log.
    fn feed(
        bytes: &[u8],
        size: usize,
    ) -> (Option<Header>, Vec<u8>, Result<Option<Trailer>, String>) {
        let mut reader = StreamReader::new(MARKER);
        let mut header = None;
        let mut log = Vec::new();
        for chunk in bytes.chunks(size) {
            let got = reader.push(chunk).unwrap();
            if got.header.is_some() {
                assert!(header.is_none(), "one header");
                header = got.header;
            }
            log.extend(got.log);
        }
        (header, log, reader.finish())
    }

    #[test]
    fn a_whole_stream_in_any_chunking() {
        let bytes = stream("line 1\nline", TRAILER);
        for size in [1, 2, 3, 7, 13, 1000] {
            let (header, log, trailer) = feed(&bytes, size);
            assert_eq!(
                header,
                Some(Header {
                    pid: 42,
                    cpu_start: "cpu  1 2 3 4\ncpu0 1 2 3 4".to_string()
                }),
                "chunks of {size}"
            );
            assert_eq!(log, b"line 1\nline", "chunks of {size}");
            assert_eq!(
                trailer.unwrap(),
                Some(Trailer {
                    exit: Exit::Code(0),
                    cpu_start: String::new(),
                    log_size: 11,
                    k6_times: "0m1.5s 0m0.25s".to_string(),
                    cpu_end: "cpu  5 6 7 8\ncpu0 5 6 7 8".to_string(),
                    summary: Some(b"{\"a\": 1}\n".to_vec()),
                }),
                "chunks of {size}"
            );
        }
    }

    #[test]
    fn a_log_that_looks_like_the_marker_is_still_log() {
        // The marker without its leading newline, or cut short, is log.
        let log = format!("{MARKER}\n--end-1-\nx");
        let (_, got, trailer) = feed(&stream(&log, TRAILER), 4);
        assert_eq!(got, log.as_bytes());
        assert!(trailer.unwrap().is_some());
    }

    #[test]
    fn trailer_variants() {
        for (exit_line, expected) in [
            ("exit none", Exit::None),
            ("exit running", Exit::Running),
            ("exit ", Exit::None),
            ("exit 107", Exit::Code(107)),
        ] {
            let trailer = format!("{exit_line}\nlog-size 0\ncpu-end\n\nsummary none\n");
            let (_, _, got) = feed(&stream("", &trailer), 5);
            let got = got.unwrap().unwrap();
            assert_eq!(got.exit, expected, "{exit_line}");
            assert_eq!(got.summary, None);
        }
    }

    #[test]
    fn a_stream_cut_short_has_no_trailer() {
        let bytes = stream("line 1\n", TRAILER);
        // Cut inside the log, and inside the header.
        for cut in [60, 10] {
            let (_, _, trailer) = feed(&bytes[..cut], 3);
            assert_eq!(trailer.unwrap(), None, "cut at {cut}");
        }
        // Cut inside the trailer: the summary is short.
        let (_, _, trailer) = feed(&bytes[..bytes.len() - 3], 3);
        assert!(trailer.unwrap_err().contains("of its 9 bytes"));
    }

    #[test]
    fn a_malformed_header_is_an_error() {
        let mut reader = StreamReader::new(MARKER);
        let error = reader.push(b"what\nlog\n").unwrap_err();
        assert!(error.contains("without a pid"), "{error}");
        let mut reader = StreamReader::new(MARKER);
        assert!(reader.push(b"pid 1\nnope\nlog\n").is_err());
    }

    #[test]
    fn markers_differ() {
        assert_ne!(marker(), marker());
        assert!(marker().starts_with("--lb-dfaas-end-"));
    }
}
