//! The archive format: a standard `tar.gz` written in one streaming pass, and the reader
//! that checks every byte of it.
//!
//! A tar header carries its member's size, but a snapshot streamed from the server has an
//! unknown size until it ends. Rather than spooling the whole snapshot to disk first, the
//! archive is three concatenated gzip members (RFC 1952 allows this; GNU tar, gzip, Python
//! and flate2's `MultiGzDecoder` read it as one stream):
//!
//! ```text
//! offset 0            member A  stored (level 0), fixed length [`head_len`]: the 512-byte tar
//!                               header of `snapshot.jsonl`. Its gzip header carries an extra
//!                               field "HB" = (offset of member C, compression level).
//! offset head_len     member B  deflate: the snapshot bytes and their tar padding, streamed.
//! offset C            member C  deflate: `logs/*` members, `manifest.json`, end of archive.
//! ```
//!
//! Member A's space is reserved first and written last, once the size is known; it is
//! stored, not compressed, so its length does not depend on its content. The extra field
//! lets `list` jump straight to the manifest without decompressing the snapshot.
//!
//! Every byte is covered by a check: the gzip headers must be exactly the ones this module
//! writes, each member's CRC-32 and length are checked by the decoder, tar headers carry
//! their checksums, every member's SHA-256 is in the manifest, the snapshot carries its own
//! SHA-256 trailer, and the offset in the extra field is repeated inside the manifest.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use flate2::read::{GzDecoder, MultiGzDecoder};
use flate2::{Compression, GzBuilder};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::snapshot::{hex, SnapshotInfo, SnapshotScanner};

/// `manifest.format`.
pub const ARCHIVE_FORMAT: &str = "helpdesk-backup";
/// Version of the archive layout written (and the highest read) by this release.
pub const ARCHIVE_FORMAT_VERSION: u32 = 1;
/// Name of the snapshot member.
pub const SNAPSHOT_MEMBER: &str = "snapshot.jsonl";
/// Name of the manifest member (the last member).
pub const MANIFEST_MEMBER: &str = "manifest.json";
/// Directory prefix of included log files.
pub const LOGS_PREFIX: &str = "logs/";
/// Largest manifest accepted when reading.
const MAX_MANIFEST: u64 = 4 << 20;
/// Subfield id of the gzip extra field in member A.
const EXTRA_ID: [u8; 2] = *b"HB";
/// Subfield payload: member C offset (u64 LE) + compression level (u8).
const EXTRA_PAYLOAD: usize = 9;
/// Length of a plain gzip member header (no optional fields).
const GZ_HEADER: usize = 10;
/// Bytes of member A before the offset: gzip header, XLEN, subfield id and length.
const HEAD_PREFIX: usize = GZ_HEADER + 2 + 4;

/// What `manifest.json` says about the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`ARCHIVE_FORMAT`].
    pub format: String,
    /// Layout version, [`ARCHIVE_FORMAT_VERSION`].
    pub format_version: u32,
    /// `backup-agent`.
    pub tool: String,
    /// Version of the agent that wrote it.
    pub tool_version: String,
    /// When the backup was made (RFC 3339 UTC, the agent's clock).
    pub created_at: String,
    /// Where the snapshot came from.
    pub source: SourceInfo,
    /// Tickets in the snapshot.
    pub ticket_count: u64,
    /// What the snapshot's header and trailer say (checked on write).
    pub snapshot: SnapshotInfo,
    /// gzip level of the compressed members.
    pub compression_level: u32,
    /// Byte offset of the gzip member holding the logs and this manifest.
    pub trailer_member_offset: u64,
    /// Every member except this manifest, in archive order.
    pub members: Vec<MemberInfo>,
}

/// Where a snapshot came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceInfo {
    /// A running server's admin snapshot endpoint.
    Server {
        /// The server's base URL (never the token).
        url: String,
    },
    /// A database opened directly (no server held it).
    DataDir {
        /// The data directory.
        path: String,
    },
}

impl std::fmt::Display for SourceInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceInfo::Server { url } => write!(f, "server {url}"),
            SourceInfo::DataDir { path } => write!(f, "data dir {path}"),
        }
    }
}

/// One member's name, size and SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// Path inside the archive.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content (hex).
    pub sha256: String,
}

fn builder() -> GzBuilder {
    GzBuilder::new().mtime(0).operating_system(255)
}

fn level_of(level: u32) -> Result<Compression> {
    if level > 9 {
        return Err(Error::Usage(format!("compression level {level} is not in 0..=9")));
    }
    Ok(Compression::new(level))
}

fn extra_field(offset: u64, level: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity(4 + EXTRA_PAYLOAD);
    v.extend_from_slice(&EXTRA_ID);
    v.extend_from_slice(&(EXTRA_PAYLOAD as u16).to_le_bytes());
    v.extend_from_slice(&offset.to_le_bytes());
    v.push(level as u8);
    v
}

/// Member A: the tar header of the snapshot, gzip-stored with the extra field.
fn head_member(snapshot_size: u64, mtime: u64, offset: u64, level: u32) -> io::Result<Vec<u8>> {
    let mut header = tar::Header::new_gnu();
    header.set_path(SNAPSHOT_MEMBER)?;
    header.set_size(snapshot_size);
    header.set_mode(0o600);
    header.set_mtime(mtime);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut gz = builder().extra(extra_field(offset, level)).write(Vec::with_capacity(600), Compression::none());
    gz.write_all(header.as_bytes())?;
    gz.finish()
}

/// Length of member A. It is stored (not compressed), so it does not depend on the content;
/// [`ArchiveWriter::finish`] checks that anyway.
pub fn head_len() -> u64 {
    head_member(0, 0, 0, 6).map(|v| v.len() as u64).unwrap_or(0)
}

/// The exact gzip header this module writes for a compressed member at `level`.
fn member_header(level: u32) -> Vec<u8> {
    let mut h = builder().write(Vec::new(), Compression::new(level)).finish().unwrap_or_default();
    h.truncate(GZ_HEADER);
    h
}

/// The first [`HEAD_PREFIX`] bytes of member A (everything before the offset).
fn head_prefix() -> Vec<u8> {
    let mut h = head_member(0, 0, 0, 6).unwrap_or_default();
    h.truncate(HEAD_PREFIX);
    h
}

/// A writer that hashes and counts what passes through.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Streams one archive into a file opened for writing (normally a temporary file, see
/// [`crate::backup`]). Usage: [`ArchiveWriter::new`], [`ArchiveWriter::snapshot`] for every
/// chunk of the snapshot, [`ArchiveWriter::add_log`] for each log file, then
/// [`ArchiveWriter::finish`].
pub struct ArchiveWriter<W: Write + Seek> {
    state: WriterState<W>,
    level: u32,
    head_len: u64,
}

enum WriterState<W: Write + Seek> {
    Snapshot(Hashing<flate2::write::GzEncoder<W>>),
    Trailer { tar: tar::Builder<flate2::write::GzEncoder<W>>, snapshot: MemberInfo, offset: u64 },
    Done,
}

impl<W: Write + Seek> ArchiveWriter<W> {
    /// Reserves member A and starts member B at `level` (0..=9).
    pub fn new(mut out: W, level: u32) -> Result<Self, ArchiveWriteError> {
        let compression = level_of(level).map_err(|e| ArchiveWriteError::Usage(e.to_string()))?;
        let head_len = head_len();
        out.write_all(&vec![0u8; head_len as usize])?;
        let gz = builder().write(out, compression);
        Ok(ArchiveWriter {
            state: WriterState::Snapshot(Hashing { inner: gz, hasher: Sha256::new(), bytes: 0 }),
            level,
            head_len,
        })
    }

    /// Appends snapshot bytes.
    pub fn snapshot(&mut self, data: &[u8]) -> io::Result<()> {
        match &mut self.state {
            WriterState::Snapshot(w) => w.write_all(data),
            _ => Err(io::Error::other("snapshot data after the snapshot member was closed")),
        }
    }

    /// Snapshot bytes written so far.
    pub fn snapshot_bytes(&self) -> u64 {
        match &self.state {
            WriterState::Snapshot(w) => w.bytes,
            WriterState::Trailer { snapshot, .. } => snapshot.size,
            WriterState::Done => 0,
        }
    }

    fn close_snapshot(&mut self) -> io::Result<()> {
        if !matches!(self.state, WriterState::Snapshot(_)) {
            return Ok(());
        }
        let WriterState::Snapshot(mut w) = std::mem::replace(&mut self.state, WriterState::Done) else {
            return Ok(());
        };
        let size = w.bytes;
        let padding = (512 - size % 512) % 512;
        w.inner.write_all(&vec![0u8; padding as usize])?;
        let sha256 = hex(&w.hasher.finalize());
        let mut out = w.inner.finish()?;
        let offset = out.stream_position()?;
        let gz = builder().write(out, Compression::new(self.level));
        let mut tar = tar::Builder::new(gz);
        tar.mode(tar::HeaderMode::Deterministic);
        self.state =
            WriterState::Trailer { tar, snapshot: MemberInfo { name: SNAPSHOT_MEMBER.into(), size, sha256 }, offset };
        Ok(())
    }

    /// Offset where member C starts (closes the snapshot member if still open).
    pub fn trailer_offset(&mut self) -> io::Result<u64> {
        self.close_snapshot()?;
        match &self.state {
            WriterState::Trailer { offset, .. } => Ok(*offset),
            _ => Err(io::Error::other("archive already finished")),
        }
    }

    /// Adds `len` bytes of `reader` as `logs/<name>` and returns its member info. Fails if
    /// the reader yields fewer bytes (a log truncated while being read).
    pub fn add_log(&mut self, name: &str, len: u64, mtime: u64, reader: impl Read) -> io::Result<MemberInfo> {
        self.close_snapshot()?;
        let WriterState::Trailer { tar, .. } = &mut self.state else {
            return Err(io::Error::other("archive already finished"));
        };
        let path = format!("{LOGS_PREFIX}{name}");
        let mut header = tar::Header::new_gnu();
        header.set_size(len);
        header.set_mode(0o600);
        header.set_mtime(mtime);
        header.set_entry_type(tar::EntryType::Regular);
        let mut exact = ExactReader { inner: reader.take(len), left: len, hasher: Sha256::new(), name: path.clone() };
        tar.append_data(&mut header, &path, &mut exact)?;
        Ok(MemberInfo { name: path, size: len, sha256: hex(&exact.hasher.finalize()) })
    }

    /// The snapshot member's info (closes the snapshot member if still open).
    pub fn snapshot_member(&mut self) -> io::Result<MemberInfo> {
        self.close_snapshot()?;
        match &self.state {
            WriterState::Trailer { snapshot, .. } => Ok(snapshot.clone()),
            _ => Err(io::Error::other("archive already finished")),
        }
    }

    /// Writes the manifest and the end of the archive, then member A at the start.
    /// Returns the output (positioned at its end) for the caller to fsync.
    pub fn finish(mut self, manifest: &Manifest, mtime: u64) -> Result<W, ArchiveWriteError> {
        self.close_snapshot()?;
        let WriterState::Trailer { mut tar, snapshot, offset } = std::mem::replace(&mut self.state, WriterState::Done)
        else {
            return Err(io::Error::other("archive already finished").into());
        };
        let body = serde_json::to_vec_pretty(manifest).map_err(io::Error::other)?;
        let mut header = tar::Header::new_gnu();
        header.set_size(body.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(mtime);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, MANIFEST_MEMBER, body.as_slice())?;
        let gz = tar.into_inner()?;
        let mut out = gz.finish()?;
        let end = out.stream_position()?;
        let head = head_member(snapshot.size, mtime, offset, self.level)?;
        if head.len() as u64 != self.head_len {
            return Err(io::Error::other(format!(
                "internal error: the stored header member is {} bytes, {} were reserved",
                head.len(),
                self.head_len
            ))
            .into());
        }
        out.seek(SeekFrom::Start(0))?;
        out.write_all(&head)?;
        out.seek(SeekFrom::Start(end))?;
        out.flush()?;
        Ok(out)
    }
}

/// Failure of [`ArchiveWriter`]: a bad level, or the output failed.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveWriteError {
    /// Bad argument.
    #[error("{0}")]
    Usage(String),
    /// Writing failed (or a log file shrank while being read).
    #[error(transparent)]
    Io(#[from] io::Error),
}

struct ExactReader<R> {
    inner: R,
    left: u64,
    hasher: Sha256,
    name: String,
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} shrank while it was being archived ({} bytes missing)", self.name, self.left),
            ));
        }
        self.hasher.update(&buf[..n]);
        self.left -= n as u64;
        Ok(n)
    }
}

// ---------------------------------------------------------------------------------------
// Reading

/// What a full check of an archive found.
#[derive(Debug, Clone)]
pub struct Checked<T> {
    /// The manifest (already compared with the content).
    pub manifest: Manifest,
    /// The snapshot's facts as recomputed from its bytes.
    pub snapshot: SnapshotInfo,
    /// What the snapshot consumer returned.
    pub consumed: T,
}

/// Records the first failure of the file itself, so that a damaged archive (a verification
/// failure) is told apart from a failing disk (an I/O error).
struct FileReader<R> {
    inner: R,
    failed: Arc<Mutex<Option<String>>>,
}

impl<R: Read> Read for FileReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            if let Ok(mut f) = self.failed.lock() {
                f.get_or_insert_with(|| e.to_string());
            }
        })
    }
}

/// Hashes, counts and scans the snapshot member while its consumer reads it; remembers a
/// failure of the layers below (decompression, tar) so that it can be reported as the cause.
struct SnapshotReader<'a, R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
    scanner: SnapshotScanner,
    scan_error: Option<String>,
    stream_error: &'a mut Option<String>,
}

impl<R: Read> Read for SnapshotReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.hasher.update(&buf[..n]);
                self.bytes += n as u64;
                if self.scan_error.is_none() {
                    if let Err(e) = self.scanner.feed(&buf[..n]) {
                        self.scan_error = Some(e);
                    }
                }
                Ok(n)
            }
            Err(e) => {
                self.stream_error.get_or_insert_with(|| e.to_string());
                Err(e)
            }
        }
    }
}

fn damaged(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::Verification(format!("{}: {what}", path.display()))
}

/// Reads member A's header: returns (offset of member C, level). Checks that the bytes are
/// exactly what [`ArchiveWriter`] writes.
fn read_head(path: &Path, file: &mut File, len: u64) -> Result<(u64, u32)> {
    let head_len = head_len();
    if len < head_len + GZ_HEADER as u64 {
        return Err(damaged(path, format!("truncated: {len} bytes is too short for a backup archive")));
    }
    let mut prefix = vec![0u8; HEAD_PREFIX + EXTRA_PAYLOAD];
    file.read_exact(&mut prefix).map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    if prefix[..2] != [0x1f, 0x8b] {
        return Err(damaged(path, "not a gzip file (bad magic bytes at offset 0)"));
    }
    if prefix[..HEAD_PREFIX] != head_prefix()[..] {
        return Err(damaged(path, "the first gzip header (offset 0) is not the one backup-agent writes: damaged, or not a backup-agent archive"));
    }
    let mut off = [0u8; 8];
    off.copy_from_slice(&prefix[HEAD_PREFIX..HEAD_PREFIX + 8]);
    let offset = u64::from_le_bytes(off);
    let level = u32::from(prefix[HEAD_PREFIX + 8]);
    if level > 9 {
        return Err(damaged(path, format!("the header's compression level {level} is invalid")));
    }
    if offset < head_len + GZ_HEADER as u64 || offset.saturating_add(GZ_HEADER as u64) > len {
        return Err(damaged(
            path,
            format!("the manifest member offset {offset} in the first header lies outside the file ({len} bytes): truncated or damaged"),
        ));
    }
    let expected = member_header(level);
    for (at, what) in [(head_len, "snapshot"), (offset, "manifest")] {
        let mut h = [0u8; GZ_HEADER];
        file.seek(SeekFrom::Start(at))
            .and_then(|_| file.read_exact(&mut h))
            .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
        if h[..] != expected[..] {
            return Err(damaged(path, format!("the gzip header of the {what} member at offset {at} is damaged")));
        }
    }
    Ok((offset, level))
}

/// Reads the manifest only, without decompressing the snapshot (for `list`).
pub fn read_manifest(path: &Path) -> Result<Manifest> {
    let mut file = File::open(path).map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
    let len = file.metadata().map_err(|e| Error::io(format!("cannot stat {}", path.display()), e))?.len();
    let (offset, _) = read_head(path, &mut file, len)?;
    file.seek(SeekFrom::Start(offset)).map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    let mut archive = tar::Archive::new(GzDecoder::new(BufReader::new(file)));
    let entries = archive.entries().map_err(|e| damaged(path, format!("manifest member: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| damaged(path, format!("manifest member: {e}")))?;
        let name = entry.path().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
        if name == MANIFEST_MEMBER {
            return parse_manifest(path, &mut entry);
        }
    }
    Err(damaged(path, "no manifest.json in the last member"))
}

fn parse_manifest(path: &Path, entry: &mut impl Read) -> Result<Manifest> {
    let mut body = Vec::new();
    entry
        .take(MAX_MANIFEST + 1)
        .read_to_end(&mut body)
        .map_err(|e| damaged(path, format!("manifest.json cannot be read: {e}")))?;
    if body.len() as u64 > MAX_MANIFEST {
        return Err(damaged(path, "manifest.json is implausibly large"));
    }
    let manifest: Manifest =
        serde_json::from_slice(&body).map_err(|e| damaged(path, format!("manifest.json is not valid: {e}")))?;
    if manifest.format != ARCHIVE_FORMAT {
        return Err(damaged(path, format!("manifest format {:?} is not {ARCHIVE_FORMAT:?}", manifest.format)));
    }
    if manifest.format_version > ARCHIVE_FORMAT_VERSION {
        return Err(Error::Verification(format!(
            "{}: archive format version {} is newer than this agent reads ({ARCHIVE_FORMAT_VERSION}); use a newer backup-agent",
            path.display(),
            manifest.format_version
        )));
    }
    Ok(manifest)
}

/// Reads the whole archive and checks every byte (see the module docs). `consume` is given
/// the snapshot member as it is decompressed (a restore imports it; a checksum-only pass
/// drains it); its error is reported unless the archive itself turned out to be damaged,
/// which takes precedence. `progress` is told compressed bytes as they are read.
pub fn check<T>(
    path: &Path,
    progress: &indicatif::ProgressBar,
    consume: impl FnOnce(&mut dyn Read) -> Result<T>,
) -> Result<Checked<T>> {
    let mut file = File::open(path).map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
    let len = file.metadata().map_err(|e| Error::io(format!("cannot stat {}", path.display()), e))?.len();
    let (offset, level) = read_head(path, &mut file, len)?;
    file.seek(SeekFrom::Start(0)).map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    progress.set_length(len);

    let file_failed = Arc::new(Mutex::new(None));
    let reader =
        FileReader { inner: progress.wrap_read(BufReader::with_capacity(1 << 20, file)), failed: file_failed.clone() };
    let mut archive = tar::Archive::new(MultiGzDecoder::new(reader));
    let io_or_damage = |e: io::Error, what: &str| -> Error {
        match file_failed.lock().ok().and_then(|f| f.clone()) {
            Some(read_error) => {
                Error::Io { context: format!("cannot read {}", path.display()), source: io::Error::other(read_error) }
            }
            None => damaged(path, format!("{what}: {e}")),
        }
    };

    let mut members = Vec::new();
    let mut manifest = None;
    let mut snapshot = None;
    let mut consume = Some(consume);
    let mut consumed = None;
    {
        let entries = archive.entries().map_err(|e| io_or_damage(e, "cannot read the archive"))?;
        for (index, entry) in entries.enumerate() {
            let mut entry = entry.map_err(|e| io_or_damage(e, &format!("member {} is damaged", index + 1)))?;
            let name = entry.path().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
            if manifest.is_some() {
                return Err(damaged(path, format!("member {name:?} follows the manifest")));
            }
            if index == 0 {
                if name != SNAPSHOT_MEMBER {
                    return Err(damaged(path, format!("the first member is {name:?}, not {SNAPSHOT_MEMBER}")));
                }
                let mut stream_error = None;
                let mut reader = SnapshotReader {
                    inner: &mut entry,
                    hasher: Sha256::new(),
                    bytes: 0,
                    scanner: SnapshotScanner::new(),
                    scan_error: None,
                    stream_error: &mut stream_error,
                };
                let result = match consume.take() {
                    Some(f) => f(&mut reader),
                    None => return Err(damaged(path, "two snapshot members")),
                };
                // Whatever the consumer left unread still counts for the checksum.
                let drained = io::copy(&mut reader, &mut io::sink());
                let SnapshotReader { hasher, bytes, scanner, scan_error, .. } = reader;
                if let Some(e) = stream_error {
                    return Err(io_or_damage(io::Error::other(e), "the snapshot member is damaged"));
                }
                if let Err(e) = drained {
                    return Err(io_or_damage(e, "the snapshot member is damaged"));
                }
                let info = match scan_error {
                    Some(e) => Err(e),
                    None => scanner.finish(),
                }
                .map_err(|e| damaged(path, format!("the snapshot inside is invalid: {e}")))?;
                consumed = Some(result?);
                snapshot = Some(info);
                members.push(MemberInfo { name, size: bytes, sha256: hex(&hasher.finalize()) });
            } else if name == MANIFEST_MEMBER {
                manifest = Some(parse_manifest(path, &mut entry)?);
            } else if name.starts_with(LOGS_PREFIX) {
                let mut hashing = Hashing { inner: io::sink(), hasher: Sha256::new(), bytes: 0 };
                io::copy(&mut entry, &mut hashing)
                    .map_err(|e| io_or_damage(e, &format!("member {name:?} is damaged")))?;
                members.push(MemberInfo { name, size: hashing.bytes, sha256: hex(&hashing.hasher.finalize()) });
            } else {
                return Err(damaged(path, format!("unexpected member {name:?}")));
            }
        }
    }
    // After the end-of-archive blocks only zero padding may follow, then the end of the
    // last gzip member; anything else is damage the tar reader would not have looked at.
    let mut rest = archive.into_inner();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = rest.read(&mut buf).map_err(|e| io_or_damage(e, "the end of the archive is damaged"))?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|&b| b != 0) {
            return Err(damaged(path, "unexpected data after the end of the tar archive"));
        }
    }

    let Some(manifest) = manifest else {
        return Err(damaged(path, "no manifest.json: the archive is truncated or was not finished"));
    };
    let (Some(snapshot), Some(consumed)) = (snapshot, consumed) else {
        return Err(damaged(path, "no snapshot member"));
    };
    if manifest.trailer_member_offset != offset {
        return Err(damaged(
            path,
            format!(
                "the first header points to offset {offset} but the manifest says {}",
                manifest.trailer_member_offset
            ),
        ));
    }
    if manifest.compression_level != level {
        return Err(damaged(
            path,
            format!("the first header says level {level}, the manifest {}", manifest.compression_level),
        ));
    }
    if manifest.members.len() != members.len() {
        return Err(damaged(
            path,
            format!("the manifest lists {} members, the archive holds {}", manifest.members.len(), members.len()),
        ));
    }
    for (listed, found) in manifest.members.iter().zip(&members) {
        if listed.name != found.name {
            return Err(damaged(
                path,
                format!("member {:?} is listed in the manifest as {:?}", found.name, listed.name),
            ));
        }
        if listed.size != found.size {
            return Err(damaged(
                path,
                format!("member {}: size {} differs from the manifest's {}", found.name, found.size, listed.size),
            ));
        }
        if listed.sha256 != found.sha256 {
            return Err(damaged(
                path,
                format!("member {}: sha256 {} differs from the manifest's {}", found.name, found.sha256, listed.sha256),
            ));
        }
    }
    if manifest.snapshot != snapshot || manifest.ticket_count != snapshot.tickets {
        return Err(damaged(path, "the manifest's snapshot facts (counts, checksum, header) differ from the snapshot"));
    }
    Ok(Checked { manifest, snapshot, consumed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_head_member_has_a_fixed_length() {
        let a = head_member(0, 0, 0, 0).unwrap();
        let b = head_member(u64::MAX / 3, 1_800_000_000, 1 << 40, 9).unwrap();
        assert_eq!(a.len(), b.len());
        assert_eq!(a.len() as u64, head_len());
        assert_eq!(&a[..HEAD_PREFIX], &b[..HEAD_PREFIX]);
    }

    #[test]
    fn member_headers_differ_only_by_level_flag() {
        assert_eq!(member_header(6).len(), GZ_HEADER);
        assert_ne!(member_header(1), member_header(6));
    }
}
