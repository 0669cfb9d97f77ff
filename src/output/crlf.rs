//! Reading CRLF files (what Python's csv module writes by default) with
//! correct line numbers: the csv crate ends a record at the `\r` and counts
//! the `\n` towards the next record, so every line number after the first
//! CRLF would be one short. Turning `\r\n` into `\n` first avoids that.

use std::io::{self, Read};

/// A reader that yields its input with every `\r\n` replaced by `\n`
/// (a `\r` not followed by `\n` is kept). Buffers 8 KiB of input.
pub(crate) struct CrlfToLf<R> {
    inner: R,
    buf: Box<[u8]>,
    /// Unread input is `buf[start..end]`.
    start: usize,
    end: usize,
    eof: bool,
}

impl<R: Read> CrlfToLf<R> {
    pub(crate) fn new(inner: R) -> Self {
        CrlfToLf {
            inner,
            buf: vec![0u8; 8192].into_boxed_slice(),
            start: 0,
            end: 0,
            eof: false,
        }
    }
}

impl<R: Read> Read for CrlfToLf<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            // Keep two bytes in view so a `\r` can see what follows it.
            if self.end - self.start < 2 && !self.eof {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
                let n = self.inner.read(&mut self.buf[self.end..])?;
                if n == 0 {
                    self.eof = true;
                } else {
                    self.end += n;
                }
                continue;
            }
            if self.start == self.end {
                return Ok(0);
            }
            let mut written = 0;
            while written < out.len() && self.start < self.end {
                let b = self.buf[self.start];
                if b == b'\r' {
                    let last = self.start + 1 == self.end;
                    if last && !self.eof {
                        break; // wait for the next byte
                    }
                    if !last && self.buf[self.start + 1] == b'\n' {
                        self.start += 1;
                        continue;
                    }
                }
                out[written] = b;
                written += 1;
                self.start += 1;
            }
            if written > 0 {
                return Ok(written);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out its input a few bytes at a time.
    struct Chunked<'a>(&'a [u8], usize);

    impl Read for Chunked<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.1.min(buf.len()).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn converts_across_chunk_boundaries() {
        let input = b"a;b\r\nc\r\n\r\nd\re\r\r\nf\r";
        let want = b"a;b\nc\n\nd\re\r\nf\r";
        for chunk in 1..=input.len() {
            for buf_len in [1, 2, 3, 7, 64] {
                let mut r = CrlfToLf::new(Chunked(input, chunk));
                let mut out = Vec::new();
                let mut buf = vec![0u8; buf_len];
                loop {
                    let n = r.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    out.extend_from_slice(&buf[..n]);
                }
                assert_eq!(out, want, "chunk {chunk} buf {buf_len}");
            }
        }
    }
}
