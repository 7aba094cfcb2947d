//! Splitting a byte stream into lines: `\n` ends a line (a trailing `\r` is dropped), a
//! partial last line is held until its newline arrives or a timeout passes, and a line
//! longer than the cap is truncated (its tail is skipped, never buffered), so memory per
//! file stays bounded by the cap.

use std::time::{Duration, Instant};

/// A complete line, borrowed from the chunk being split or from the held partial line.
#[derive(Debug, PartialEq, Eq)]
pub struct Line<'a> {
    /// The line's bytes, at most the cap, without `\n` or a trailing `\r`.
    pub bytes: &'a [u8],
    /// File offset just past the line's newline (or past its last byte when a partial line
    /// is flushed by timeout).
    pub end_offset: u64,
    /// The line was longer than the cap and has been cut.
    pub truncated: bool,
}

/// Holds the partial line of one file between reads.
#[derive(Debug)]
pub struct LineSplitter {
    max: usize,
    partial: Vec<u8>,
    /// When the held partial line started (None when nothing is held).
    since: Option<Instant>,
    /// The current line passed the cap: its remaining bytes are skipped.
    overflow: bool,
}

impl LineSplitter {
    /// A splitter cutting lines at `max` bytes.
    pub fn new(max: usize) -> LineSplitter {
        LineSplitter { max: max.max(1), partial: Vec::new(), since: None, overflow: false }
    }

    /// True while a partial line is held.
    pub fn has_partial(&self) -> bool {
        self.since.is_some()
    }

    /// Bytes held for the partial line.
    pub fn held(&self) -> usize {
        self.partial.len()
    }

    /// Feeds `chunk`, which starts at file offset `offset`, calling `out` for each
    /// complete line.
    pub fn push(&mut self, chunk: &[u8], offset: u64, mut out: impl FnMut(Line<'_>)) {
        let mut start = 0;
        while start < chunk.len() {
            let Some(nl) = memchr::memchr(b'\n', &chunk[start..]).map(|p| start + p) else {
                self.hold(&chunk[start..]);
                return;
            };
            let end_offset = offset + nl as u64 + 1;
            if self.since.is_some() {
                self.hold(&chunk[start..nl]);
                let truncated = self.overflow;
                out(Line { bytes: trim_cr(&self.partial), end_offset, truncated });
                self.reset();
            } else {
                let line = &chunk[start..nl];
                let truncated = line.len() > self.max;
                out(Line { bytes: trim_cr(&line[..line.len().min(self.max)]), end_offset, truncated });
            }
            start = nl + 1;
        }
    }

    /// Emits the held partial line if it has waited longer than `timeout` (the writer
    /// never finished it). `offset` is the file offset just past the held bytes.
    pub fn flush_if_stale(&mut self, timeout: Duration, offset: u64, out: impl FnOnce(Line<'_>)) {
        if self.since.is_some_and(|t| t.elapsed() >= timeout) {
            let truncated = self.overflow;
            out(Line { bytes: trim_cr(&self.partial), end_offset: offset, truncated });
            self.reset();
        }
    }

    /// Forgets any held partial line (the file was truncated under it).
    pub fn reset(&mut self) {
        self.partial.clear();
        if self.partial.capacity() > 64 * 1024 {
            self.partial = Vec::new();
        }
        self.since = None;
        self.overflow = false;
    }

    fn hold(&mut self, bytes: &[u8]) {
        if self.since.is_none() {
            self.since = Some(Instant::now());
        }
        let room = self.max - self.partial.len();
        if bytes.len() > room {
            self.overflow = true;
        }
        self.partial.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

fn trim_cr(b: &[u8]) -> &[u8] {
    b.strip_suffix(b"\r").unwrap_or(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &mut LineSplitter, chunk: &[u8], offset: u64) -> Vec<(String, u64, bool)> {
        let mut v = Vec::new();
        s.push(chunk, offset, |l| v.push((String::from_utf8_lossy(l.bytes).into_owned(), l.end_offset, l.truncated)));
        v
    }

    #[test]
    fn complete_lines_and_offsets() {
        let mut s = LineSplitter::new(100);
        assert_eq!(split(&mut s, b"a\nbb\r\n", 10), vec![("a".into(), 12, false), ("bb".into(), 16, false)]);
        assert!(!s.has_partial());
    }

    #[test]
    fn partial_line_is_held_until_completed() {
        let mut s = LineSplitter::new(100);
        assert_eq!(split(&mut s, b"x\nhel", 0), vec![("x".into(), 2, false)]);
        assert!(s.has_partial());
        assert_eq!(split(&mut s, b"lo\n", 5), vec![("hello".into(), 8, false)]);
        assert!(!s.has_partial());
    }

    #[test]
    fn stale_partial_line_is_flushed_after_the_timeout() {
        let mut s = LineSplitter::new(100);
        split(&mut s, b"unfinished", 0);
        let mut got = None;
        s.flush_if_stale(Duration::from_secs(3600), 10, |l| got = Some(l.end_offset));
        assert_eq!(got, None, "not stale yet");
        s.flush_if_stale(Duration::ZERO, 10, |l| got = Some(l.end_offset));
        assert_eq!(got, Some(10));
        assert!(!s.has_partial());
    }

    #[test]
    fn long_lines_are_truncated_without_buffering_the_tail() {
        let mut s = LineSplitter::new(4);
        assert_eq!(split(&mut s, b"abcdefgh\nxy\n", 0), vec![("abcd".into(), 9, true), ("xy".into(), 12, false)]);
        // Across chunks: the held part never grows past the cap.
        split(&mut s, b"0123", 12);
        split(&mut s, &[b'z'; 10_000], 16);
        assert_eq!(s.held(), 4);
        assert_eq!(split(&mut s, b"\n", 10_016), vec![("0123".into(), 10_017, true)]);
    }
}
