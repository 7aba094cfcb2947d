//! The log on the volume: appending under an advisory lock, size rotation with exact caps,
//! and a reader that tolerates torn lines.
//!
//! Layout: the active file `<log>`, rotated files `<log>.1` (newest) to `<log>.<max_files-1>`
//! (oldest), and an empty `<log>.lock` that is never renamed. Every writer (a CronJob pod,
//! a sidecar, two agents on one PVC) takes an exclusive `flock` on `<log>.lock` around each
//! append: checking the size, rotating, enforcing the total cap and writing happen as one
//! step, so two writers never interleave bytes and never both rotate the same file. Each
//! line is one `write` on an `O_APPEND` descriptor.
//!
//! Caps, all holding at every moment for files this writer manages: the active file holds
//! at most `max_bytes` (a line that would cross the cap goes to a fresh file), at most
//! `max_files` files exist, and all of them together hold at most `max_total_bytes` (the
//! oldest rotated files are deleted to make room).

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};

use crate::config::Rotation;
use crate::record::Record;

/// A failed operation on the log, naming the file and what was being done.
#[derive(Debug, thiserror::Error)]
#[error("cannot {op} {}: {source}{}", path.display(), hint(source))]
pub struct LogError {
    /// What was being done, e.g. `append to`.
    pub op: &'static str,
    /// The file concerned.
    pub path: PathBuf,
    /// The operating system's error.
    #[source]
    pub source: io::Error,
}

fn hint(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
            " (the volume is full: free space, or lower --max-total-bytes below the volume's size)"
        }
        io::ErrorKind::FileTooLarge => {
            " (a file-size limit is in force: raise it, or lower --max-bytes and --max-total-bytes below it)"
        }
        io::ErrorKind::ReadOnlyFilesystem => " (the volume is mounted read-only)",
        io::ErrorKind::PermissionDenied => " (check the volume's ownership and the pod's fsGroup)",
        _ => "",
    }
}

fn err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> LogError + 'a {
    move |source| LogError { op, path: path.to_path_buf(), source }
}

/// The path of rotated file `n` of `log`: `<log>.<n>`.
pub fn rotated_path(log: &Path, n: u32) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

fn lock_path(log: &Path) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

fn parent_dir(log: &Path) -> &Path {
    match log.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The rotation numbers present beside `log` (`<log>.3` gives 3), unsorted.
fn rotated_numbers(log: &Path) -> io::Result<Vec<u32>> {
    let Some(base) = log.file_name() else { return Ok(Vec::new()) };
    let mut prefix: OsString = base.to_owned();
    prefix.push(".");
    let prefix = prefix.as_encoded_bytes();
    let mut found = Vec::new();
    for entry in fs::read_dir(parent_dir(log))? {
        let name = entry?.file_name();
        let name = name.as_encoded_bytes();
        if let Some(digits) = name.strip_prefix(prefix) {
            let all_digits = !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) && digits[0] != b'0';
            if let Some(n) = all_digits.then(|| std::str::from_utf8(digits).ok()?.parse().ok()).flatten() {
                found.push(n);
            }
        }
    }
    Ok(found)
}

/// The files of a log, oldest first: rotated files by descending number, then the active one.
pub fn log_files(log: &Path) -> io::Result<Vec<PathBuf>> {
    let mut numbers = match rotated_numbers(log) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    numbers.sort_unstable_by(|a, b| b.cmp(a));
    let mut files: Vec<PathBuf> = numbers.into_iter().map(|n| rotated_path(log, n)).collect();
    if log.exists() {
        files.push(log.to_path_buf());
    }
    Ok(files)
}

struct Active {
    file: File,
    dev: u64,
    ino: u64,
}

/// Appends lines to a log, rotating it and keeping its caps; see the module docs.
pub struct LogWriter {
    lock: File,
    state: State,
}

/// Everything but the lock, so that the lock can be held while the state changes.
struct State {
    path: PathBuf,
    rotation: Rotation,
    active: Option<Active>,
    /// Bytes in rotated files as of the last check, valid while `active` is the file at
    /// `path` (only a rotation adds rotated bytes, and a rotation replaces the active file).
    /// Other writers may delete rotated files meanwhile, so it can only overestimate.
    rotated_bytes: Option<u64>,
    unsynced: u64,
    sync_every: Option<u64>,
    warnings: Vec<String>,
}

/// Holds the exclusive lock; released on drop (and by the kernel if the process dies).
struct Locked<'a>(&'a File);

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        let _ = flock(self.0, FlockOperation::Unlock);
    }
}

impl LogWriter {
    /// Prepares to append to `path` (creating `<path>.lock` beside it). The log file itself
    /// is created by the first append; the directory must exist.
    pub fn open(path: &Path, rotation: Rotation) -> Result<LogWriter, LogError> {
        let lock_path = lock_path(path);
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(err("create the lock file", &lock_path))?;
        let state = State {
            path: path.to_path_buf(),
            rotation,
            active: None,
            rotated_bytes: None,
            unsynced: 0,
            sync_every: None,
            warnings: Vec::new(),
        };
        Ok(LogWriter { lock, state })
    }

    /// Also fsync after every `n` lines (not only on [`sync`](Self::sync) and rotation).
    pub fn sync_every(mut self, n: u64) -> Self {
        self.state.sync_every = (n > 0).then_some(n);
        self
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.state.path
    }

    /// Warnings since the last call (torn lines of interrupted writers that were removed).
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.state.warnings)
    }

    /// Appends `line` (without its newline) as one `write`, rotating first if the line would
    /// not fit in the active file, and deleting the oldest rotated files if all files would
    /// exceed the total cap. On a failed or short write the file is cut back to its previous
    /// length, so no torn line is left behind.
    pub fn append(&mut self, line: &str) -> Result<(), LogError> {
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        let _locked = lock_exclusive(&self.lock).map_err(err("lock", &self.state.path))?;
        self.state.append_locked(&buf)
    }

    /// Flushes appended lines to disk (`fdatasync`).
    pub fn sync(&mut self) -> Result<(), LogError> {
        self.state.sync()
    }
}

impl State {
    fn append_locked(&mut self, buf: &[u8]) -> Result<(), LogError> {
        let len = buf.len() as u64;
        if len > self.rotation.max_bytes {
            let source = io::Error::new(io::ErrorKind::InvalidInput, format!("a {len}-byte line exceeds max_bytes"));
            return Err(LogError { op: "append to", path: self.path.clone(), source });
        }
        let mut size = self.ensure_active()?;
        if size > 0 && size + len > self.rotation.max_bytes {
            self.rotate()?;
            size = 0;
        }
        self.make_room(size + len)?;

        let path = &self.path;
        let active = self.active.as_mut().ok_or_else(|| err("open", path)(io::ErrorKind::NotFound.into()))?;
        if let Err(source) = active.file.write_all(buf) {
            // Nobody else writes while we hold the lock, so `size` is where our line began.
            let _ = active.file.set_len(size);
            return Err(LogError { op: "append to", path: self.path.clone(), source });
        }
        self.unsynced += 1;
        if self.sync_every.is_some_and(|n| self.unsynced >= n) {
            self.sync()?;
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), LogError> {
        if let Some(active) = &self.active {
            if self.unsynced > 0 {
                active.file.sync_data().map_err(err("fsync", &self.path))?;
            }
        }
        self.unsynced = 0;
        Ok(())
    }

    /// Opens the file now at `path` unless ours still is it; removes a torn last line left
    /// by an interrupted writer. Returns the active file's size.
    fn ensure_active(&mut self) -> Result<u64, LogError> {
        let current = match fs::metadata(&self.path) {
            Ok(m) => Some((m.dev(), m.ino())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(err("stat", &self.path)(e)),
        };
        let ours = self.active.as_ref().map(|a| (a.dev, a.ino));
        if current.is_none() || current != ours {
            // Another writer rotated (or an operator removed) the file: what we appended is
            // in a rotated file now, and the rotating writer synced it before renaming.
            self.active = Some(self.open_active(current.is_none())?);
            self.rotated_bytes = None;
            self.unsynced = 0;
        }
        let path = &self.path;
        let active = self.active.as_mut().ok_or_else(|| err("open", path)(io::ErrorKind::NotFound.into()))?;
        let size = active.file.metadata().map_err(err("stat", &self.path))?.len();
        let kept = last_line_end(&active.file, size).map_err(err("read", &self.path))?;
        if kept < size {
            active.file.set_len(kept).map_err(err("repair", &self.path))?;
            self.warnings.push(format!(
                "removed a torn last line ({} bytes) that an interrupted writer left in {}",
                size - kept,
                self.path.display()
            ));
        }
        Ok(kept)
    }

    fn open_active(&self, creating: bool) -> Result<Active, LogError> {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&self.path)
            .map_err(err("open", &self.path))?;
        if creating {
            sync_dir(&self.path)?;
        }
        let meta = file.metadata().map_err(err("stat", &self.path))?;
        Ok(Active { file, dev: meta.dev(), ino: meta.ino() })
    }

    /// Renames `<log>.n` to `<log>.n+1` from the oldest down, `<log>` to `<log>.1`, and opens
    /// a new `<log>`. The old active file is synced first, so a rotated file is complete.
    fn rotate(&mut self) -> Result<(), LogError> {
        if let Some(active) = self.active.take() {
            active.file.sync_data().map_err(err("fsync", &self.path))?;
        }
        let max = self.rotation.max_files;
        let stray = rotated_numbers(&self.path).map_err(err("list the directory of", &self.path))?;
        for n in stray.into_iter().filter(|&n| n >= max.saturating_sub(1).max(1)) {
            remove_if_present(&rotated_path(&self.path, n))?;
        }
        if max == 1 {
            remove_if_present(&self.path)?;
        } else {
            for n in (1..max - 1).rev() {
                let from = rotated_path(&self.path, n);
                match fs::rename(&from, rotated_path(&self.path, n + 1)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(err("rotate", &from)(e)),
                    _ => {}
                }
            }
            fs::rename(&self.path, rotated_path(&self.path, 1)).map_err(err("rotate", &self.path))?;
        }
        self.active = Some(self.open_active(true)?);
        self.rotated_bytes = None;
        self.unsynced = 0;
        Ok(())
    }

    /// Deletes the oldest rotated files until `active_bytes` plus the rotated files fit in
    /// `max_total_bytes`. The active file alone always fits: `max_total_bytes >= max_bytes`.
    fn make_room(&mut self, active_bytes: u64) -> Result<(), LogError> {
        if let Some(cached) = self.rotated_bytes {
            if active_bytes + cached <= self.rotation.max_total_bytes {
                return Ok(());
            }
        }
        let mut rotated = Vec::new();
        for n in rotated_numbers(&self.path).map_err(err("list the directory of", &self.path))? {
            let p = rotated_path(&self.path, n);
            match fs::metadata(&p) {
                Ok(m) => rotated.push((n, m.len())),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(err("stat", &p)(e)),
            }
        }
        rotated.sort_unstable();
        let mut total: u64 = rotated.iter().map(|&(_, len)| len).sum();
        let mut removed = false;
        while active_bytes + total > self.rotation.max_total_bytes {
            let Some((n, len)) = rotated.pop() else { break };
            remove_if_present(&rotated_path(&self.path, n))?;
            total -= len;
            removed = true;
        }
        if removed {
            sync_dir(&self.path)?;
        }
        self.rotated_bytes = Some(total);
        Ok(())
    }
}

fn lock_exclusive(file: &File) -> io::Result<Locked<'_>> {
    loop {
        match flock(file, FlockOperation::LockExclusive) {
            Ok(()) => return Ok(Locked(file)),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

fn remove_if_present(path: &Path) -> Result<(), LogError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(err("remove", path)(e)),
        _ => Ok(()),
    }
}

/// Makes a creation, rename or removal in the log's directory durable.
fn sync_dir(log: &Path) -> Result<(), LogError> {
    let dir = parent_dir(log);
    File::open(dir).and_then(|d| d.sync_all()).map_err(err("fsync the directory", dir))
}

/// The length of `file` up to and including its last newline (`size` if it ends in one).
fn last_line_end(file: &File, size: u64) -> io::Result<u64> {
    // The common case, checked first with one byte: the file ends on a whole line.
    let mut last = [0u8];
    if size == 0 || (file.read_exact_at(&mut last, size - 1).is_ok() && last[0] == b'\n') {
        return Ok(size);
    }
    let mut end = size;
    let mut buf = vec![0u8; 8192];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        file.read_exact_at(chunk, start)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// What reading a log found besides the records.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReadSummary {
    /// Files read.
    pub files: usize,
    /// Records parsed.
    pub records: u64,
    /// Complete lines that are not records (skipped).
    pub unreadable: u64,
    /// Files whose last line was cut short (a writer was interrupted mid-line; skipped).
    pub truncated: u64,
}

/// Reads every record of a log, oldest file first, calling `each` for each. Lines that are
/// not records are counted and skipped; so is a last line without its newline that does not
/// parse (a writer interrupted mid-write). A file rotated away between listing and opening
/// is skipped. A log with no file at all is `NotFound`.
pub fn read_log(log: &Path, mut each: impl FnMut(Record)) -> io::Result<ReadSummary> {
    let mut summary = ReadSummary::default();
    let mut line = Vec::new();
    let files = log_files(log)?;
    if files.is_empty() {
        return Err(io::Error::new(io::ErrorKind::NotFound, "there is no log there, nor any rotated file of one"));
    }
    for path in files {
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        summary.files += 1;
        let mut reader = BufReader::new(file);
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            let complete = line.last() == Some(&b'\n');
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<Record>(&line) {
                Ok(record) => {
                    summary.records += 1;
                    each(record);
                }
                Err(_) if !complete => summary.truncated += 1,
                Err(_) => summary.unreadable += 1,
            }
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_line_end_finds_the_last_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        for (content, want) in [("", 0), ("a\n", 2), ("a\nbc", 2), ("abc", 0), ("a\nb\n", 4)] {
            fs::write(&p, content).unwrap();
            let f = File::open(&p).unwrap();
            assert_eq!(last_line_end(&f, content.len() as u64).unwrap(), want, "{content:?}");
        }
        let long = format!("x\n{}", "y".repeat(20_000));
        fs::write(&p, &long).unwrap();
        assert_eq!(last_line_end(&File::open(&p).unwrap(), long.len() as u64).unwrap(), 2);
    }

    #[test]
    fn rotated_numbers_ignore_other_files() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("p.log");
        for name in ["p.log", "p.log.1", "p.log.12", "p.log.lock", "p.log.01", "p.log.x", "q.log.2", "p.log.3.gz"] {
            fs::write(dir.path().join(name), "").unwrap();
        }
        let mut n = rotated_numbers(&log).unwrap();
        n.sort_unstable();
        assert_eq!(n, [1, 12]);
        let files = log_files(&log).unwrap();
        assert_eq!(files, [rotated_path(&log, 12), rotated_path(&log, 1), log.clone()]);
    }
}
