//! The positions file: per file, the offset **acknowledged by Loki**, keyed by device and
//! inode plus a fingerprint of the file's first bytes.
//!
//! Offsets only move when Loki has acknowledged (or definitively refused) every line before
//! them, and the file is rewritten after every acknowledged batch, before the next push, so
//! a restart re-reads at most the batch that was in flight. Every write replaces the file
//! atomically (temp file, rename); a *durable* write also fsyncs the temp file before the
//! rename and the directory after it. Durable writes happen on a timer
//! (`positions_sync_interval`, 1 s by default; 0 makes every write durable) and at start
//! and stop: a killed process loses nothing (the page cache survives it), and a power loss
//! rolls positions back by at most the interval — duplicates, never lost lines. (An fsync
//! costs ~12 ms on the project machine, more than pushing a 1 MiB batch.)
//!
//! A positions file that cannot be parsed is renamed aside (`<name>.corrupt-<unix
//! seconds>`) and reported, never a crash.
//!
//! Format (JSON, version 1):
//!
//! ```json
//! {"version":1,"files":[{"path":"/var/log/helpdesk/server.log","dev":64769,"ino":1837,
//!   "fingerprint":{"len":1024,"sha256":"9f86d081884c7d659a2feaa0c55ad015"},"offset":52144,
//!   "detached_at":null}]}
//! ```

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Bytes at the start of a file that identify it (fewer while the file is shorter).
pub const FINGERPRINT_MAX: usize = 1024;

/// Records of files that are gone are kept this long (to recognise a copy made by
/// copytruncate, or a file that comes back), then forgotten.
pub const DETACHED_RETENTION: Duration = Duration::from_secs(3600);

/// At most this many records of files that are gone are kept (oldest forgotten first).
pub const DETACHED_MAX: usize = 64;

const FORMAT_VERSION: u32 = 1;

/// Identifies a source (a file's content lineage) within one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceId(pub u64);

/// SHA-256 (first 16 bytes) of a file's first `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// How many leading bytes were hashed (1..=[`FINGERPRINT_MAX`]).
    pub len: u32,
    /// Hex of the first 16 bytes of the SHA-256.
    #[serde(with = "hex16")]
    pub sha256: [u8; 16],
}

impl Fingerprint {
    /// The fingerprint of `prefix` (the file's first bytes); `None` when empty.
    pub fn of(prefix: &[u8]) -> Option<Fingerprint> {
        if prefix.is_empty() {
            return None;
        }
        let d = Sha256::digest(prefix);
        let mut sha256 = [0u8; 16];
        sha256.copy_from_slice(&d[..16]);
        Some(Fingerprint { len: prefix.len() as u32, sha256 })
    }

    /// Reads up to `max` leading bytes of `file` (fewer when it is shorter).
    pub fn read_prefix(file: &File, max: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; max];
        let mut got = 0;
        while got < max {
            match file.read_at(&mut buf[got..], got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        buf.truncate(got);
        Ok(buf)
    }

    /// Whether a file whose first bytes are `prefix` has this fingerprint.
    pub fn matches(&self, prefix: &[u8]) -> bool {
        let n = self.len as usize;
        prefix.len() >= n && Fingerprint::of(&prefix[..n]).as_ref() == Some(self)
    }
}

mod hex16 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8; 16], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.iter().map(|b| format!("{b:02x}")).collect::<String>())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 16], D::Error> {
        let s = String::deserialize(d)?;
        let bad = || serde::de::Error::custom("sha256 must be 32 hex digits");
        if s.len() != 32 || !s.is_ascii() {
            return Err(bad());
        }
        let mut out = [0u8; 16];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(out)
    }
}

/// What is remembered of one source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Where the file was last seen.
    pub path: PathBuf,
    /// Device of the file.
    pub dev: u64,
    /// Inode of the file.
    pub ino: u64,
    /// `None` while the file was empty.
    pub fingerprint: Option<Fingerprint>,
    /// Bytes acknowledged by Loki: everything before this offset was delivered.
    pub offset: u64,
    /// Unix seconds when the file stopped being tailed (gone, or truncated under a copy);
    /// `None` while it is tailed.
    #[serde(default)]
    pub detached_at: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    version: u32,
    files: Vec<Record>,
}

/// How loading the positions file went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadState {
    /// No positions file: the first run.
    Fresh,
    /// Read back.
    Loaded,
    /// Unreadable; it was moved to `moved_to` (or could not be moved: `None`).
    Corrupt {
        /// What was wrong.
        reason: String,
        /// Where the bad file went.
        moved_to: Option<PathBuf>,
    },
}

/// Reads the positions file. A corrupt file is renamed aside and reported as
/// [`LoadState::Corrupt`]; only an I/O error reading an existing file is an error.
pub fn load(path: &Path) -> io::Result<(Vec<Record>, LoadState)> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), LoadState::Fresh)),
        Err(e) => return Err(e),
    };
    let parsed: Result<FileFormat, String> =
        serde_json::from_slice::<FileFormat>(&bytes).map_err(|e| e.to_string()).and_then(|f| {
            if f.version == FORMAT_VERSION {
                Ok(f)
            } else {
                Err(format!("unsupported positions format version {} (this build reads {FORMAT_VERSION})", f.version))
            }
        });
    match parsed {
        Ok(f) => Ok((f.files, LoadState::Loaded)),
        Err(reason) => {
            let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            let mut aside = path.as_os_str().to_owned();
            aside.push(format!(".corrupt-{secs}"));
            let aside = PathBuf::from(aside);
            let moved_to = match fs::rename(path, &aside) {
                Ok(()) => {
                    let _ = sync_dir(path);
                    Some(aside)
                }
                Err(_) => None,
            };
            Ok((Vec::new(), LoadState::Corrupt { reason, moved_to }))
        }
    }
}

/// Holds an exclusive advisory lock (`flock`) on `<positions>.lock` for as long as it
/// lives, so two shippers never share a positions file (each would re-send what the other
/// acknowledged).
pub struct PositionsLock {
    _file: File,
}

impl PositionsLock {
    /// Takes the lock, or fails with `WouldBlock` when another process holds it.
    pub fn acquire(positions: &Path) -> io::Result<PositionsLock> {
        let mut name = positions.as_os_str().to_owned();
        name.push(".lock");
        let file = fs::OpenOptions::new().create(true).truncate(false).write(true).open(PathBuf::from(name))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(|e| {
            if e == rustix::io::Errno::WOULDBLOCK {
                io::Error::new(io::ErrorKind::WouldBlock, "another log-shipper is using this positions file")
            } else {
                io::Error::from(e)
            }
        })?;
        Ok(PositionsLock { _file: file })
    }
}

/// Writes `bytes` to `path` atomically: a temp file in the same directory renamed over
/// `path`. With `durable`, the temp file is fsynced before the rename and the directory
/// after it, so the new content survives a power loss too.
pub fn write_atomic(path: &Path, bytes: &[u8], durable: bool) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    if durable {
        f.sync_all()?;
    }
    drop(f);
    fs::rename(&tmp, path)?;
    if durable {
        sync_dir(path)?;
    }
    Ok(())
}

fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

struct Inner {
    records: BTreeMap<SourceId, Record>,
    next_id: u64,
    /// Bumped on every change; `saved` is the generation last written, `synced` the one
    /// last written durably.
    generation: u64,
    saved: u64,
    synced: u64,
}

/// The shared table of records: the reader adds and describes sources, the sender moves
/// their acknowledged offsets, and either saves it.
pub struct Ledger {
    path: PathBuf,
    inner: Mutex<Inner>,
    /// Serialises writers of the file (one temp name).
    save_lock: Mutex<()>,
}

impl Ledger {
    /// A ledger over `path` holding `records` (as loaded).
    pub fn new(path: PathBuf, records: Vec<Record>) -> Ledger {
        let n = records.len() as u64;
        let records = records.into_iter().enumerate().map(|(i, r)| (SourceId(i as u64), r)).collect();
        Ledger {
            path,
            inner: Mutex::new(Inner { records, next_id: n, generation: 1, saved: 0, synced: 0 }),
            save_lock: Mutex::new(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a record half-updated (every update is
        // one assignment), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The records loaded at start, with their ids.
    pub fn snapshot(&self) -> Vec<(SourceId, Record)> {
        self.lock().records.iter().map(|(k, v)| (*k, v.clone())).collect()
    }

    /// Adds a record, returning its id.
    pub fn insert(&self, r: Record) -> SourceId {
        let mut g = self.lock();
        let id = SourceId(g.next_id);
        g.next_id += 1;
        g.records.insert(id, r);
        g.generation += 1;
        id
    }

    /// Changes a record's description (path, inode, fingerprint, detached), never its
    /// offset.
    pub fn describe(&self, id: SourceId, f: impl FnOnce(&mut Record)) {
        let mut g = self.lock();
        if let Some(r) = g.records.get_mut(&id) {
            let before = r.clone();
            f(r);
            r.offset = before.offset;
            if *r != before {
                g.generation += 1;
            }
        }
    }

    /// Moves acknowledged offsets forward (never back).
    pub fn ack(&self, offsets: &BTreeMap<SourceId, u64>) {
        let mut g = self.lock();
        let mut changed = false;
        for (id, off) in offsets {
            if let Some(r) = g.records.get_mut(id) {
                if *off > r.offset {
                    r.offset = *off;
                    changed = true;
                }
            }
        }
        if changed {
            g.generation += 1;
        }
    }

    /// The acknowledged offset of a source.
    pub fn acked(&self, id: SourceId) -> Option<u64> {
        self.lock().records.get(&id).map(|r| r.offset)
    }

    /// Forgets a source.
    pub fn remove(&self, id: SourceId) {
        let mut g = self.lock();
        if g.records.remove(&id).is_some() {
            g.generation += 1;
        }
    }

    /// Ids of detached records past retention (or beyond the cap), oldest first; the
    /// caller forgets them.
    pub fn expired(&self, now: SystemTime) -> Vec<SourceId> {
        let g = self.lock();
        let now = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let mut detached: Vec<(u64, SourceId)> =
            g.records.iter().filter_map(|(id, r)| r.detached_at.map(|t| (t, *id))).collect();
        detached.sort();
        let over = detached.len().saturating_sub(DETACHED_MAX);
        detached
            .iter()
            .enumerate()
            .filter(|(i, (t, _))| *i < over || now.saturating_sub(*t) > DETACHED_RETENTION.as_secs())
            .map(|(_, (_, id))| *id)
            .collect()
    }

    /// True when something changed since the last save (`durable`: since the last
    /// durable save).
    pub fn dirty(&self, durable: bool) -> bool {
        let g = self.lock();
        g.generation != if durable { g.synced } else { g.saved }
    }

    /// Writes the file if anything changed since the last save (`durable`: since the last
    /// durable save, and fsynced). Returns whether it wrote.
    pub fn save(&self, durable: bool) -> io::Result<bool> {
        let _writer = self.save_lock.lock().unwrap_or_else(|p| p.into_inner());
        let (bytes, generation) = {
            let g = self.lock();
            if g.generation == if durable { g.synced } else { g.saved } {
                return Ok(false);
            }
            let f = FileFormat { version: FORMAT_VERSION, files: g.records.values().cloned().collect() };
            (serde_json::to_vec(&f).map_err(io::Error::other)?, g.generation)
        };
        write_atomic(&self.path, &bytes, durable)?;
        let mut g = self.lock();
        g.saved = g.saved.max(generation);
        if durable {
            g.synced = g.synced.max(generation);
        }
        Ok(true)
    }
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(off: u64) -> Record {
        Record {
            path: "/var/log/a.log".into(),
            dev: 1,
            ino: 2,
            fingerprint: Fingerprint::of(b"first line\n"),
            offset: off,
            detached_at: None,
        }
    }

    #[test]
    fn save_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("positions.json");
        let ledger = Ledger::new(path.clone(), vec![]);
        let id = ledger.insert(record(0));
        ledger.ack(&BTreeMap::from([(id, 42)]));
        assert!(ledger.save(false).unwrap());
        assert!(!ledger.save(false).unwrap(), "nothing changed: no write");
        assert!(ledger.dirty(true), "written, but not durably yet");
        assert!(ledger.save(true).unwrap());
        assert!(!ledger.dirty(true) && !ledger.dirty(false));
        let (records, state) = load(&path).unwrap();
        assert_eq!(state, LoadState::Loaded);
        assert_eq!(records, vec![record(42)]);
        assert!(!dir.path().join("positions.json.tmp").exists());
    }

    #[test]
    fn acknowledged_offsets_never_move_back_and_describe_keeps_them() {
        let ledger = Ledger::new("unused".into(), vec![record(10)]);
        ledger.ack(&BTreeMap::from([(SourceId(0), 5)]));
        assert_eq!(ledger.acked(SourceId(0)), Some(10));
        ledger.describe(SourceId(0), |r| {
            r.offset = 0;
            r.path = "/var/log/a.log.1".into();
        });
        assert_eq!(ledger.acked(SourceId(0)), Some(10));
        assert_eq!(ledger.snapshot()[0].1.path, PathBuf::from("/var/log/a.log.1"));
    }

    #[test]
    fn corrupt_file_is_set_aside_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("positions.json");
        for garbage in
            [&b"{\"version\":1,\"files\":[{\"path\":"[..], b"\x00\xff garbage", b"{\"version\":99,\"files\":[]}"]
        {
            fs::write(&path, garbage).unwrap();
            let (records, state) = load(&path).unwrap();
            assert!(records.is_empty());
            let LoadState::Corrupt { moved_to: Some(aside), .. } = state else { panic!("not reported: {state:?}") };
            assert_eq!(fs::read(&aside).unwrap(), garbage, "the bad file is kept for inspection");
            assert!(!path.exists());
            fs::remove_file(aside).unwrap();
        }
    }

    #[test]
    fn fingerprints_match_on_their_own_length() {
        let fp = Fingerprint::of(b"hello").unwrap();
        assert!(fp.matches(b"hello world"));
        assert!(!fp.matches(b"hell"));
        assert!(!fp.matches(b"jello world"));
        assert_eq!(Fingerprint::of(b""), None);
    }

    #[test]
    fn detached_records_expire_by_age_and_by_count() {
        let now = SystemTime::now();
        let secs = unix_now();
        let mut recs = vec![Record { detached_at: Some(secs - 7200), ..record(0) }];
        for i in 0..DETACHED_MAX as u64 + 2 {
            recs.push(Record { detached_at: Some(secs - 100 + i), ..record(0) });
        }
        recs.push(record(0));
        let ledger = Ledger::new("unused".into(), recs);
        let expired = ledger.expired(now);
        // The one past retention, plus the oldest beyond the cap.
        assert_eq!(expired.len(), 3);
        assert!(expired.contains(&SourceId(0)));
        assert!(!expired.contains(&SourceId(DETACHED_MAX as u64 + 3)), "attached records never expire");
    }
}
