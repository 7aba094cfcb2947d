//! Batches: the unit that is pushed, retried, split and acknowledged.
//!
//! A batch keeps its entries in the order they were read, across files and streams. That
//! order is what makes acknowledgement safe: when a batch (or, after a 413, a *prefix* of
//! it) is acknowledged, every line read before its last line of a given file has been
//! acknowledged too, so the file's acknowledged offset can move to the largest end offset
//! the batch holds for that file.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use crate::positions::SourceId;

/// Bytes counted per entry on top of its line and metadata (timestamp, framing).
pub const ENTRY_OVERHEAD: usize = 32;

/// A label set, rendered once in Loki's `{name="value", ...}` notation.
#[derive(Debug, PartialEq, Eq)]
pub struct Stream {
    /// Unique per distinct label set while it is cached; used to group entries.
    pub id: u32,
    /// Sorted by name.
    pub labels: Vec<(String, String)>,
    /// `{a="x", b="y"}` with values escaped as Go string literals (what Loki parses).
    pub rendered: String,
}

impl Stream {
    /// Builds a stream from labels (sorted here).
    pub fn new(id: u32, mut labels: Vec<(String, String)>) -> Stream {
        labels.sort();
        let mut rendered = String::from("{");
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                rendered.push_str(", ");
            }
            rendered.push_str(k);
            rendered.push_str("=\"");
            for c in v.chars() {
                match c {
                    '"' => rendered.push_str("\\\""),
                    '\\' => rendered.push_str("\\\\"),
                    '\n' => rendered.push_str("\\n"),
                    c => rendered.push(c),
                }
            }
            rendered.push('"');
        }
        rendered.push('}');
        Stream { id, labels, rendered }
    }
}

/// One line read from a file, or a position-only marker for a line that is not shipped
/// (a blank line), so that its bytes are still acknowledged in order.
#[derive(Debug)]
pub struct Entry {
    /// `None` for a marker.
    pub stream: Option<Arc<Stream>>,
    /// Nanoseconds since the epoch.
    pub ts_ns: i64,
    /// The line without its newline (empty for a marker).
    pub line: String,
    /// Structured metadata (name, value).
    pub metadata: Vec<(Arc<str>, String)>,
    /// The file it came from.
    pub source: SourceId,
    /// Offset just past the line's newline: acknowledging the entry moves the file's
    /// position here.
    pub end_offset: u64,
}

impl Entry {
    /// Bytes this entry counts for against the batch size.
    pub fn size(&self) -> usize {
        if self.stream.is_none() {
            return 0;
        }
        self.line.len() + self.metadata.iter().map(|(n, v)| n.len() + v.len()).sum::<usize>() + ENTRY_OVERHEAD
    }
}

/// Entries in read order.
#[derive(Debug, Default)]
pub struct Batch {
    /// In read order.
    pub entries: Vec<Entry>,
    /// Sum of [`Entry::size`].
    pub bytes: usize,
    /// When the first entry was added.
    pub started: Option<Instant>,
    /// The push body, when the reader encoded it ahead of the sender (dropped on split).
    pub body: Option<bytes::Bytes>,
}

impl Batch {
    /// Appends an entry.
    pub fn push(&mut self, e: Entry) {
        if self.started.is_none() {
            self.started = Some(Instant::now());
        }
        self.bytes += e.size();
        self.entries.push(e);
    }

    /// Lines to ship (markers excluded).
    pub fn lines(&self) -> usize {
        self.entries.iter().filter(|e| e.stream.is_some()).count()
    }

    /// Bytes of line text.
    pub fn line_bytes(&self) -> usize {
        self.entries.iter().map(|e| e.line.len()).sum()
    }

    /// True when nothing at all was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The acknowledgement this batch carries: per file, the largest end offset.
    pub fn offsets(&self) -> BTreeMap<SourceId, u64> {
        let mut m = BTreeMap::new();
        for e in &self.entries {
            let o = m.entry(e.source).or_insert(0);
            *o = e.end_offset.max(*o);
        }
        m
    }

    /// Splits into two halves by read order (each half non-empty when there are ≥ 2 lines).
    /// The first half must be delivered before the second so acknowledgements stay ordered.
    pub fn split(mut self) -> (Batch, Batch) {
        let lines = self.lines();
        let mut seen = 0;
        let cut = self
            .entries
            .iter()
            .position(|e| {
                if e.stream.is_some() {
                    seen += 1;
                }
                seen > lines / 2
            })
            .unwrap_or(self.entries.len());
        let tail: Vec<Entry> = self.entries.split_off(cut);
        let mk = |entries: Vec<Entry>| {
            let bytes = entries.iter().map(Entry::size).sum();
            Batch { entries, bytes, started: self.started, body: None }
        };
        (mk(std::mem::take(&mut self.entries)), mk(tail))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(stream: &Arc<Stream>, source: u64, end: u64) -> Entry {
        Entry {
            stream: Some(stream.clone()),
            ts_ns: 0,
            line: format!("line ending at {end}"),
            metadata: vec![],
            source: SourceId(source),
            end_offset: end,
        }
    }

    #[test]
    fn labels_render_sorted_and_escaped() {
        let s = Stream::new(1, vec![("z".into(), "a\"b\\c".into()), ("a".into(), "x".into())]);
        assert_eq!(s.rendered, r#"{a="x", z="a\"b\\c"}"#);
    }

    #[test]
    fn split_keeps_read_order_so_prefix_acks_are_safe() {
        let info = Arc::new(Stream::new(1, vec![("level".into(), "info".into())]));
        let error = Arc::new(Stream::new(2, vec![("level".into(), "error".into())]));
        let mut b = Batch::default();
        b.push(entry(&info, 1, 10));
        b.push(entry(&error, 1, 20));
        b.push(entry(&info, 1, 30));
        b.push(entry(&error, 1, 40));
        let (a, c) = b.split();
        assert_eq!(a.offsets()[&SourceId(1)], 20, "the first half ends at the second line read");
        assert_eq!(c.offsets()[&SourceId(1)], 40);
        assert_eq!(a.lines() + c.lines(), 4);
        assert_eq!(a.bytes + c.bytes, a.entries.iter().chain(&c.entries).map(Entry::size).sum::<usize>());
    }

    #[test]
    fn markers_count_no_bytes_and_no_lines() {
        let mut b = Batch::default();
        b.push(Entry {
            stream: None,
            ts_ns: 0,
            line: String::new(),
            metadata: vec![],
            source: SourceId(3),
            end_offset: 7,
        });
        assert_eq!((b.lines(), b.bytes), (0, 0));
        assert_eq!(b.offsets()[&SourceId(3)], 7);
    }
}
