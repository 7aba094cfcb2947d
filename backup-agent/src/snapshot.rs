//! [`SnapshotScanner`]: checks a helpdesk snapshot stream as it flows past, without holding
//! it in memory.
//!
//! The core's snapshot is JSON lines: a header, tickets each followed by their events, and an
//! `end` trailer carrying the counts and the SHA-256 of every byte before it (see
//! `helpdesk_core::snapshot`). A backup must never store a stream that was cut short or
//! damaged in transit, so the agent recomputes the digest and the counts on the fly and
//! compares them with the trailer before the archive gets its final name. Memory use is one
//! partial line (a line longer than [`MAX_LINE`] is refused).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Longest line accepted; the core refuses longer lines on import too.
pub const MAX_LINE: usize = 1 << 20;

/// The facts a backup records about the snapshot it stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// `header.format` (always `helpdesk-snapshot`).
    pub format: String,
    /// `header.format_version`.
    pub format_version: u32,
    /// Schema version of the database the snapshot came from.
    pub schema_version: u32,
    /// When the snapshot was taken (RFC 3339, the server's clock).
    pub created_at: String,
    /// Who wrote it (`helpdesk-core x.y.z`).
    pub producer: String,
    /// Tickets in it.
    pub tickets: u64,
    /// Events in it.
    pub events: u64,
    /// SHA-256 (hex) from the trailer, checked against the bytes.
    pub sha256: String,
}

#[derive(Deserialize)]
struct HeaderLine {
    header: Header,
}

#[derive(Deserialize)]
struct Header {
    format: String,
    format_version: u32,
    schema_version: u32,
    created_at: String,
    #[serde(default)]
    producer: String,
}

#[derive(Deserialize)]
struct EndLine {
    end: Trailer,
}

#[derive(Deserialize)]
struct Trailer {
    tickets: u64,
    events: u64,
    sha256: String,
}

/// Incremental checker of a snapshot stream. Feed it every byte in order, then call
/// [`SnapshotScanner::finish`].
pub struct SnapshotScanner {
    partial: Vec<u8>,
    hasher: Sha256,
    line_no: u64,
    header: Option<Header>,
    tickets: u64,
    events: u64,
    trailer: Option<Trailer>,
    error: Option<String>,
}

impl Default for SnapshotScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl SnapshotScanner {
    /// A scanner at the start of a stream.
    pub fn new() -> Self {
        SnapshotScanner {
            partial: Vec::new(),
            hasher: Sha256::new(),
            line_no: 0,
            header: None,
            tickets: 0,
            events: 0,
            trailer: None,
            error: None,
        }
    }

    /// Tickets seen so far.
    pub fn tickets(&self) -> u64 {
        self.tickets
    }

    /// Checks the next bytes of the stream. After the first problem every later call
    /// returns the same error.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), String> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        while !data.is_empty() {
            match memchr::memchr(b'\n', data) {
                Some(i) => {
                    let (line, rest) = data.split_at(i + 1);
                    data = rest;
                    let result = if self.partial.is_empty() {
                        self.line(line)
                    } else {
                        self.push_partial(line)?;
                        let whole = std::mem::take(&mut self.partial);
                        let r = self.line(&whole);
                        self.partial = whole;
                        self.partial.clear();
                        r
                    };
                    if let Err(e) = result {
                        self.error = Some(e.clone());
                        return Err(e);
                    }
                }
                None => {
                    self.push_partial(data)?;
                    break;
                }
            }
        }
        Ok(())
    }

    fn push_partial(&mut self, piece: &[u8]) -> Result<(), String> {
        if self.partial.len() + piece.len() > MAX_LINE {
            let e = format!("line {}: longer than {MAX_LINE} bytes", self.line_no + 1);
            self.error = Some(e.clone());
            return Err(e);
        }
        self.partial.extend_from_slice(piece);
        Ok(())
    }

    fn line(&mut self, line: &[u8]) -> Result<(), String> {
        self.line_no += 1;
        let n = self.line_no;
        if self.trailer.is_some() {
            return Err(format!("line {n}: data after the end record"));
        }
        if line.len() > MAX_LINE {
            return Err(format!("line {n}: longer than {MAX_LINE} bytes"));
        }
        if n == 1 {
            let h: HeaderLine =
                serde_json::from_slice(line).map_err(|e| format!("line 1: not a snapshot header: {e}"))?;
            if h.header.format != "helpdesk-snapshot" {
                return Err(format!("line 1: format {:?} is not \"helpdesk-snapshot\"", h.header.format));
            }
            self.header = Some(h.header);
        } else if line.starts_with(b"{\"ticket\":") {
            self.tickets += 1;
        } else if line.starts_with(b"{\"event\":") {
            self.events += 1;
        } else if line.starts_with(b"{\"end\":") {
            let t: EndLine =
                serde_json::from_slice(line).map_err(|e| format!("line {n}: malformed end record: {e}"))?;
            self.trailer = Some(t.end);
            // The trailer is not part of the digest.
            return Ok(());
        } else {
            let shown = String::from_utf8_lossy(&line[..line.len().min(40)]).into_owned();
            return Err(format!("line {n}: not a snapshot record: {shown:?}"));
        }
        self.hasher.update(line);
        Ok(())
    }

    /// Ends the stream: it must have ended with a complete trailer whose counts and digest
    /// match what was seen.
    pub fn finish(self) -> Result<SnapshotInfo, String> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if !self.partial.is_empty() {
            return Err(format!("truncated: line {} has no end (the stream was cut short)", self.line_no + 1));
        }
        let Some(header) = self.header else {
            return Err("empty snapshot stream".into());
        };
        let Some(trailer) = self.trailer else {
            return Err(format!(
                "truncated: the stream ends after line {} without its end record (the export was cut short)",
                self.line_no
            ));
        };
        let digest = hex(&self.hasher.finalize());
        if trailer.sha256 != digest {
            return Err(format!(
                "checksum mismatch: the end record says sha256 {}, the content is {digest}",
                trailer.sha256
            ));
        }
        if trailer.tickets != self.tickets || trailer.events != self.events {
            return Err(format!(
                "count mismatch: the end record says {} tickets and {} events, the stream holds {} and {}",
                trailer.tickets, trailer.events, self.tickets, self.events
            ));
        }
        Ok(SnapshotInfo {
            format: header.format,
            format_version: header.format_version,
            schema_version: header.schema_version,
            created_at: header.created_at,
            producer: header.producer,
            tickets: self.tickets,
            events: self.events,
            sha256: digest,
        })
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use helpdesk_core::{Actor, Category, Config, Helpdesk, NewTicket, Status};

    fn export(n: usize) -> Vec<u8> {
        let desk = Helpdesk::temporary(Config::default()).unwrap();
        let actor = Actor::agent("bob");
        for i in 0..n {
            let t = desk
                .create(NewTicket::new(format!("t{i}"), "d", Category::Network, "a@b.example", "A"), &actor)
                .unwrap();
            desk.transition(t.id, Status::InProgress, None, &actor).unwrap();
        }
        let mut out = Vec::new();
        desk.export(&mut out).unwrap();
        out
    }

    #[test]
    fn a_real_export_checks_out_in_any_chunking() {
        let bytes = export(5);
        for chunk in [1, 7, 64, 4096, bytes.len()] {
            let mut s = SnapshotScanner::new();
            for piece in bytes.chunks(chunk) {
                s.feed(piece).unwrap();
            }
            let info = s.finish().unwrap();
            assert_eq!((info.tickets, info.events), (5, 10));
            assert_eq!(info.format, "helpdesk-snapshot");
        }
    }

    #[test]
    fn a_cut_short_stream_is_refused() {
        let bytes = export(3);
        // Without the trailer (cut at a line boundary) and cut mid-line.
        let last_line_start = bytes[..bytes.len() - 1].iter().rposition(|&b| b == b'\n').unwrap() + 1;
        for cut in [last_line_start, bytes.len() - 5, 10] {
            let mut s = SnapshotScanner::new();
            s.feed(&bytes[..cut]).unwrap();
            let err = s.finish().unwrap_err();
            assert!(err.contains("truncated"), "{err}");
        }
    }

    #[test]
    fn a_changed_byte_is_a_checksum_mismatch() {
        let mut bytes = export(3);
        let pos = bytes.windows(4).position(|w| w == b"\"t1\"").unwrap();
        bytes[pos + 2] = b'X';
        let mut s = SnapshotScanner::new();
        s.feed(&bytes).unwrap();
        assert!(s.finish().unwrap_err().contains("checksum mismatch"));
    }

    #[test]
    fn data_after_the_trailer_is_refused() {
        let mut bytes = export(1);
        bytes.extend_from_slice(b"{\"ticket\":{}}\n");
        let mut s = SnapshotScanner::new();
        assert!(s.feed(&bytes).unwrap_err().contains("after the end record"));
    }

    #[test]
    fn garbage_is_refused_with_the_line_number() {
        let mut s = SnapshotScanner::new();
        let err = s.feed(b"<html>oops</html>\n").unwrap_err();
        assert!(err.starts_with("line 1"), "{err}");
    }
}
