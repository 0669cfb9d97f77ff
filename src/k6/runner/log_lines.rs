//! Framing of k6's streamed log (pure): k6.log arrives in chunks cut
//! anywhere (a stream picked up again reads on from the last offset), and
//! leaves here as whole lines, handed to a callback as they complete, with
//! the last few kept for error messages.
//!
//! Lines end at `\n` (a `\r` before it is dropped); blank lines are
//! skipped; bytes that are not UTF-8 are replaced, never refused. Nothing
//! here reads or prints: the runner feeds bytes in, the caller's callback
//! decides where lines go.

use std::collections::VecDeque;

/// Lines of k6's log kept for error messages.
const LOG_TAIL_LINES: usize = 30;

/// Splits streamed log bytes into lines and keeps the last few.
#[derive(Debug, Default)]
pub(super) struct LogLines {
    /// Bytes of k6.log consumed so far: where a stream picked up again reads on.
    offset: u64,
    partial: Vec<u8>,
    tail: VecDeque<String>,
}

impl LogLines {
    /// Bytes of k6.log consumed so far.
    pub(super) fn offset(&self) -> u64 {
        self.offset
    }

    /// Takes the next chunk of k6.log, emitting every line it completes.
    pub(super) fn push(&mut self, bytes: &[u8], on_line: &mut (dyn FnMut(&str) + Send)) {
        self.offset += bytes.len() as u64;
        self.partial.extend_from_slice(bytes);
        while let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            self.line(&line[..end], on_line);
        }
    }

    /// Emits a last line without a newline.
    pub(super) fn finish(&mut self, on_line: &mut (dyn FnMut(&str) + Send)) {
        let rest = std::mem::take(&mut self.partial);
        self.line(&rest, on_line);
    }

    fn line(&mut self, raw: &[u8], on_line: &mut (dyn FnMut(&str) + Send)) {
        let text = String::from_utf8_lossy(raw);
        let text = text.trim_end_matches('\r');
        if text.trim().is_empty() {
            return;
        }
        on_line(text);
        if self.tail.len() == LOG_TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(text.to_string());
    }

    /// The last [`LOG_TAIL_LINES`] lines, joined with `\n`.
    pub(super) fn tail(&self) -> String {
        self.tail
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_across_chunks() {
        let mut seen = Vec::new();
        let mut on_line = |l: &str| seen.push(l.to_string());
        let mut log = LogLines::default();
        log.push(b"first li", &mut on_line);
        log.push(b"ne\r\n\nsecond\nthi", &mut on_line);
        log.push(b"rd", &mut on_line);
        log.finish(&mut on_line);
        assert_eq!(seen, ["first line", "second", "third"]);
        assert_eq!(log.offset, 25);
        assert_eq!(log.tail(), "first line\nsecond\nthird");

        let mut many = LogLines::default();
        let mut ignore = |_: &str| {};
        for i in 0..100 {
            many.push(format!("l{i}\n").as_bytes(), &mut ignore);
        }
        let tail = many.tail();
        assert_eq!(tail.lines().count(), LOG_TAIL_LINES);
        assert!(tail.ends_with("l99"));
    }
}
