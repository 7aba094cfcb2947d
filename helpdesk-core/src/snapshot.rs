//! The snapshot format: a portable, versioned, checksummed stream of the whole database.
//!
//! A snapshot is UTF-8 JSON lines:
//!
//! ```text
//! {"header":{"format":"helpdesk-snapshot","format_version":1,"schema_version":1,...}}
//! {"ticket":{...}}            one per ticket, ascending id,
//! {"event":{...}}             each followed by its events, versions 1..=ticket.version
//! ...
//! {"end":{"tickets":N,"events":M,"sha256":"<hex of every byte before this line>"}}
//! ```
//!
//! Indexes and counters are not in the stream: they are derived data, rebuilt on import.
//! The trailer makes truncation and corruption detectable; the header's versions make a
//! later release able to read (or clearly refuse) an older stream.

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::history::Event;
use crate::ticket::Ticket;

/// Value of the header's `format` field.
pub const SNAPSHOT_FORMAT: &str = "helpdesk-snapshot";
/// Version of the snapshot layout written by this release.
pub const SNAPSHOT_VERSION: u32 = 1;
/// Longest line accepted when reading (a ticket or event is far smaller).
const MAX_LINE: u64 = 1 << 20;

/// What a finished export or import processed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotSummary {
    /// When the snapshot was taken.
    pub created_at: Timestamp,
    /// Schema version of the database it came from.
    pub schema_version: u32,
    /// Tickets in it.
    pub tickets: u64,
    /// Events in it.
    pub events: u64,
    /// Stream length in bytes, trailer included.
    pub bytes: u64,
    /// SHA-256 (hex) of the stream before the trailer line.
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Header {
    pub format: String,
    pub format_version: u32,
    pub schema_version: u32,
    pub created_at: Timestamp,
    /// The id the next ticket will get; preserved so ids are never reused after a restore.
    pub next_ticket_id: u64,
    pub producer: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Trailer {
    pub tickets: u64,
    pub events: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum Record {
    Header(Header),
    Ticket(Ticket),
    Event(Event),
    End(Trailer),
}

/// The ticket and event records, serialised from borrowed values (the same JSON as
/// [`Record`], without cloning or building a `serde_json::Value` per line).
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum RecordRef<'a> {
    Ticket(&'a Ticket),
    Event(&'a Event),
}

/// Writes records, hashing everything before the trailer.
pub(crate) struct SnapshotWriter<W: Write> {
    out: W,
    hasher: Sha256,
    bytes: u64,
    tickets: u64,
    events: u64,
    header: Header,
    line: Vec<u8>,
}

impl<W: Write> SnapshotWriter<W> {
    pub(crate) fn new(out: W, header: Header) -> Result<Self> {
        let mut w = SnapshotWriter {
            out,
            hasher: Sha256::new(),
            bytes: 0,
            tickets: 0,
            events: 0,
            header: header.clone(),
            line: Vec::with_capacity(1024),
        };
        w.write_json(&Record::Header(header), true)?;
        Ok(w)
    }

    pub(crate) fn ticket(&mut self, t: &Ticket) -> Result<()> {
        self.tickets += 1;
        self.write_json(&RecordRef::Ticket(t), true)
    }

    pub(crate) fn event(&mut self, e: &Event) -> Result<()> {
        self.events += 1;
        self.write_json(&RecordRef::Event(e), true)
    }

    fn write_json<T: Serialize>(&mut self, v: &T, hashed: bool) -> Result<()> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, v).map_err(|e| Error::Io(e.into()))?;
        self.line.push(b'\n');
        if hashed {
            self.hasher.update(&self.line);
        }
        self.out.write_all(&self.line)?;
        self.bytes += self.line.len() as u64;
        Ok(())
    }

    pub(crate) fn finish(mut self) -> Result<SnapshotSummary> {
        let sha256 = hex(&self.hasher.clone().finalize());
        let trailer = Trailer { tickets: self.tickets, events: self.events, sha256: sha256.clone() };
        self.write_json(&Record::End(trailer), false)?;
        self.out.flush()?;
        Ok(SnapshotSummary {
            created_at: self.header.created_at,
            schema_version: self.header.schema_version,
            tickets: self.tickets,
            events: self.events,
            bytes: self.bytes,
            sha256,
        })
    }
}

/// Reads records, hashing everything before the trailer, and checks the trailer.
pub(crate) struct SnapshotReader<R: BufRead> {
    input: R,
    hasher: Sha256,
    bytes: u64,
    line_no: u64,
    buf: Vec<u8>,
}

impl<R: BufRead> SnapshotReader<R> {
    pub(crate) fn new(input: R) -> Self {
        SnapshotReader { input, hasher: Sha256::new(), bytes: 0, line_no: 0, buf: Vec::new() }
    }

    pub(crate) fn line_no(&self) -> u64 {
        self.line_no
    }

    /// The next record; `None` at end of input.
    pub(crate) fn next(&mut self) -> Result<Option<Record>> {
        self.buf.clear();
        let n = std::io::Read::take(&mut self.input, MAX_LINE + 1).read_until(b'\n', &mut self.buf)?;
        if n == 0 {
            return Ok(None);
        }
        self.line_no += 1;
        self.bytes += n as u64;
        if self.buf.last() != Some(&b'\n') {
            return Err(if n as u64 > MAX_LINE {
                invalid(self.line_no, "line too long")
            } else {
                invalid(self.line_no, "truncated (last line has no newline)")
            });
        }
        let record: Record = serde_json::from_slice(&self.buf).map_err(|e| invalid(self.line_no, e))?;
        if !matches!(record, Record::End(_)) {
            self.hasher.update(&self.buf);
        }
        Ok(Some(record))
    }

    /// The hex digest of everything read before the trailer.
    pub(crate) fn digest(&self) -> String {
        hex(&self.hasher.clone().finalize())
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }
}

pub(crate) fn invalid(line: u64, why: impl std::fmt::Display) -> Error {
    Error::InvalidSnapshot(format!("line {line}: {why}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
