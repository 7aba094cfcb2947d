//! The reader: finds files by glob, follows them through rotation, splits lines, turns
//! them into entries and hands full batches to the sender.
//!
//! It runs on its own thread (file reads block) and owns every open file. A *source* is one
//! lineage of bytes: a file identified by device and inode plus a fingerprint of its first
//! bytes. What happens to a source:
//!
//! - **rename rotation**: the inode shows up under another matched path (or under none);
//!   the open descriptor keeps being read to its end, so nothing written before the writer
//!   reopened is lost; the new file at the old path is a new source read from offset 0.
//! - **copytruncate**: the file shrinks below the read offset or its first bytes change.
//!   The old lineage becomes an *orphan* remembering how far it was read; the truncated
//!   file starts over at 0 as a new source. A file whose first bytes match an orphan's
//!   fingerprint (the copy) takes the orphan over and is read from where the orphan
//!   stopped, so lines not yet read when the file was truncated are not lost and lines
//!   already read are not sent twice.
//! - **deletion / leaving the globs**: drained to the end, then closed after
//!   `release_after` of idleness (the disk space is released).
//!
//! Records loaded from the positions file start as orphans and are matched the same way
//! (same inode and fingerprint first, then fingerprint alone), so a restart resumes every
//! file, including one rotated or copied while the shipper was down.
//!
//! Architecture Invariant: reading never runs ahead of the sender by more than the batch
//! queue: `blocking_send` on the bounded channel pauses reading while Loki is down.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use tokio::sync::mpsc;

use crate::batch::{Batch, Entry, Stream};
use crate::config::{valid_label_name, Config};
use crate::lines::{Line, LineSplitter};
use crate::metrics::Metrics;
use crate::parse::Fields;
use crate::positions::{unix_now, Fingerprint, Ledger, Record, SourceId, FINGERPRINT_MAX};

/// Bytes read from one file per turn (files take turns so one busy file cannot starve the
/// others).
const CHUNK: usize = 256 * 1024;
/// Rescans on inotify wake-ups happen at most this often (between the periodic polls).
const MIN_RESCAN: Duration = Duration::from_millis(100);
/// Label values longer than this are not used as labels (a sign of a high-cardinality
/// field).
const MAX_LABEL_VALUE: usize = 128;
/// Distinct label sets kept in the stream cache before it is reset.
const MAX_STREAMS: usize = 10_000;

/// Wakes the reader: set by inotify events and by shutdown.
#[derive(Default)]
pub struct Wake {
    flag: Mutex<bool>,
    cv: Condvar,
}

impl Wake {
    /// Wakes the reader if it waits.
    pub fn notify(&self) {
        *self.flag.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.cv.notify_one();
    }

    /// Waits for a wake-up or the timeout; returns whether woken.
    fn wait(&self, timeout: Duration) -> bool {
        let mut g = self.flag.lock().unwrap_or_else(|p| p.into_inner());
        if !*g {
            g = self.cv.wait_timeout(g, timeout).map(|(g, _)| g).unwrap_or_else(|p| p.into_inner().0);
        }
        std::mem::replace(&mut *g, false)
    }

    fn take(&self) -> bool {
        std::mem::replace(&mut *self.flag.lock().unwrap_or_else(|p| p.into_inner()), false)
    }
}

struct CompiledInput {
    matcher: GlobSet,
    exclude: GlobSet,
    /// Directories to walk and how deep (`None` = unlimited, for `**`).
    roots: Vec<(PathBuf, Option<usize>)>,
}

fn glob(p: &str) -> Result<globset::Glob, crate::Error> {
    GlobBuilder::new(p).literal_separator(true).build().map_err(|e| crate::Error::Config(format!("glob {p:?}: {e}")))
}

/// The literal directory a glob starts from, and how many components below it can match.
fn glob_root(pattern: &str) -> (PathBuf, Option<usize>) {
    let mut root = PathBuf::new();
    let comps: Vec<Component<'_>> = Path::new(pattern).components().collect();
    let mut i = 0;
    while i + 1 < comps.len() {
        let s = comps[i].as_os_str().to_string_lossy();
        if s.contains(['*', '?', '[', '{']) {
            break;
        }
        root.push(comps[i].as_os_str());
        i += 1;
    }
    let rest = &comps[i..];
    let deep = rest.iter().any(|c| c.as_os_str().to_string_lossy().contains("**"));
    if root.as_os_str().is_empty() {
        root.push(".");
    }
    (root, if deep { None } else { Some(rest.len()) })
}

impl CompiledInput {
    fn new(input: &crate::config::Input) -> Result<CompiledInput, crate::Error> {
        let mut m = GlobSetBuilder::new();
        let mut roots = Vec::new();
        for p in &input.paths {
            m.add(glob(p)?);
            roots.push(glob_root(p));
        }
        let mut x = GlobSetBuilder::new();
        for p in &input.exclude {
            x.add(glob(p)?);
            // A bare pattern like "*.gz" also matches by file name.
            if !p.contains('/') {
                x.add(glob(&format!("**/{p}"))?);
            }
        }
        let build = |b: GlobSetBuilder| b.build().map_err(|e| crate::Error::Config(format!("globs: {e}")));
        Ok(CompiledInput { matcher: build(m)?, exclude: build(x)?, roots })
    }

    fn walk(&self, dir: &Path, depth: Option<usize>, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            // Relative globs match relative paths: no "./" prefix.
            let path = if dir == Path::new(".") { PathBuf::from(e.file_name()) } else { e.path() };
            let Ok(ft) = e.file_type() else { continue };
            let is_dir = ft.is_dir() || (ft.is_symlink() && path.is_dir());
            if is_dir {
                match depth {
                    None => self.walk(&path, None, out),
                    Some(d) if d > 1 => self.walk(&path, Some(d - 1), out),
                    _ => {}
                }
            } else if self.matcher.is_match(&path) && !self.exclude.is_match(&path) {
                out.push(path);
            }
        }
    }
}

/// A file found by a scan.
struct Found {
    path: PathBuf,
    input: usize,
    len: u64,
}

struct Source {
    id: SourceId,
    input: usize,
    path: PathBuf,
    dev: u64,
    ino: u64,
    /// `None` for an orphan (no file open).
    file: Option<File>,
    fingerprint: Option<Fingerprint>,
    /// The first bytes (up to [`FINGERPRINT_MAX`]) as last seen in this run; empty for a
    /// record loaded from the positions file (its fingerprint is all that is known).
    prefix: Vec<u8>,
    /// Bytes consumed into the splitter.
    read_offset: u64,
    splitter: LineSplitter,
    /// No longer at a matched path: drained, then released.
    detached: bool,
    /// Last read returned nothing.
    at_eof: bool,
    last_data: Instant,
    /// File size at the last scan (for the lag gauge).
    size: u64,
}

/// Turns lines into entries and batches, and hands batches over.
struct Assembler {
    fields: Fields,
    label_names: Vec<String>,
    metadata_names: Vec<Arc<str>>,
    global_labels: BTreeMap<String, String>,
    input_labels: Vec<BTreeMap<String, String>>,
    streams: HashMap<Vec<u8>, Arc<Stream>>,
    next_stream: u32,
    key: Vec<u8>,
    batch: Batch,
    batch_bytes: usize,
    tx: mpsc::Sender<Batch>,
    metrics: Arc<Metrics>,
    /// The sender is gone (shutdown deadline passed).
    closed: bool,
    /// Lines that could not be handed over because the sender was gone.
    unsent_lines: u64,
}

impl Assembler {
    fn stream(&mut self, input: usize, values: &[Option<Cow<'_, str>>]) -> Arc<Stream> {
        self.key.clear();
        self.key.extend_from_slice(&(input as u32).to_le_bytes());
        for v in values {
            // 0xFF never occurs in UTF-8, so it separates values unambiguously.
            self.key.push(0xFF);
            match v {
                Some(v) if v.len() <= MAX_LABEL_VALUE && !v.is_empty() => self.key.extend_from_slice(v.as_bytes()),
                _ => self.key.push(0xFE),
            }
        }
        if let Some(s) = self.streams.get(self.key.as_slice()) {
            return s.clone();
        }
        if self.streams.len() >= MAX_STREAMS {
            tracing::warn!(streams = MAX_STREAMS, "label-set cache full; check that label fields are low-cardinality");
            self.streams.clear();
        }
        let mut labels = self.global_labels.clone();
        labels.extend(self.input_labels[input].iter().map(|(k, v)| (k.clone(), v.clone())));
        for (name, v) in self.label_names.iter().zip(values) {
            if let Some(v) = v.as_ref().filter(|v| v.len() <= MAX_LABEL_VALUE && !v.is_empty()) {
                let v = if name == "level" { v.to_ascii_lowercase() } else { v.to_string() };
                labels.insert(name.clone(), v);
            }
        }
        if labels.is_empty() {
            labels.insert("job".into(), "log-shipper".into());
        }
        self.next_stream = self.next_stream.wrapping_add(1);
        let s = Arc::new(Stream::new(self.next_stream, labels.into_iter().collect()));
        self.streams.insert(self.key.clone(), s.clone());
        s
    }

    fn add(&mut self, source: SourceId, input: usize, line: Line<'_>, read_ns: i64) {
        self.metrics.lines_read.inc();
        if line.truncated {
            self.metrics.lines_truncated.inc();
        }
        let bytes = line.bytes;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            self.batch.push(Entry {
                stream: None,
                ts_ns: 0,
                line: String::new(),
                metadata: Vec::new(),
                source,
                end_offset: line.end_offset,
            });
        } else {
            let text = match std::str::from_utf8(bytes) {
                Ok(s) => s.to_owned(),
                // A cut in the middle of a character at the truncation point.
                Err(e) if line.truncated && e.error_len().is_none() => {
                    String::from_utf8_lossy(&bytes[..e.valid_up_to()]).into_owned()
                }
                Err(_) => String::from_utf8_lossy(bytes).into_owned(),
            };
            let ex = self.fields.extract(bytes);
            let (ts_ns, stream, metadata) = match ex {
                Some(ex) => {
                    let stream = self.stream(input, &ex.labels);
                    let md = self
                        .metadata_names
                        .iter()
                        .zip(ex.metadata)
                        .filter_map(|(n, v)| v.filter(|v| !v.is_empty()).map(|v| (n.clone(), v.into_owned())))
                        .collect();
                    (ex.ts_ns.unwrap_or(read_ns), stream, md)
                }
                None => {
                    let none = vec![None; self.label_names.len()];
                    (read_ns, self.stream(input, &none), Vec::new())
                }
            };
            self.batch.push(Entry {
                stream: Some(stream),
                ts_ns,
                line: text,
                metadata,
                source,
                end_offset: line.end_offset,
            });
        }
        if self.batch.bytes >= self.batch_bytes {
            self.send();
        }
    }

    /// Hands the current batch to the sender, waiting while its queue is full.
    fn send(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let b = std::mem::take(&mut self.batch);
        if self.closed {
            self.unsent_lines += b.lines() as u64;
            return;
        }
        if let Err(e) = self.tx.blocking_send(b) {
            self.closed = true;
            self.unsent_lines += e.0.lines() as u64;
        }
    }
}

/// Everything the reader thread owns.
pub struct Tailer {
    inputs: Vec<CompiledInput>,
    sources: Vec<Source>,
    asm: Assembler,
    ledger: Arc<Ledger>,
    metrics: Arc<Metrics>,
    wake: Arc<Wake>,
    stop: Arc<AtomicBool>,
    start_at_end: bool,
    max_line: usize,
    batch_wait: Duration,
    partial_timeout: Duration,
    poll: Duration,
    release_after: Duration,
    buf: Vec<u8>,
    watcher: Option<notify::RecommendedWatcher>,
    watched: HashSet<PathBuf>,
    /// A read found a file changed under it: scan before reading again.
    rescan: bool,
}

impl Source {
    /// Whether a file starting with `prefix` starts with this source's bytes, or with the
    /// start of them (a copy taken when the file was shorter). The shared part must hold a
    /// whole line: a few common bytes such as `{"timestamp":"2026-` prove nothing.
    fn same_start(&self, prefix: &[u8]) -> bool {
        if self.prefix.is_empty() {
            return self.fingerprint.is_some_and(|fp| fp.matches(prefix));
        }
        let n = self.prefix.len().min(prefix.len());
        n > 0
            && self.prefix[..n] == prefix[..n]
            && (n == FINGERPRINT_MAX || memchr::memchr(b'\n', &prefix[..n]).is_some())
    }
}

fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

impl Tailer {
    /// Prepares the reader. `start_at_end`: files with no record found by the first scan
    /// start at their end.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: &Config,
        ledger: Arc<Ledger>,
        metrics: Arc<Metrics>,
        tx: mpsc::Sender<Batch>,
        wake: Arc<Wake>,
        stop: Arc<AtomicBool>,
        start_at_end: bool,
    ) -> Result<Tailer, crate::Error> {
        let inputs = cfg.inputs.iter().map(CompiledInput::new).collect::<Result<Vec<_>, _>>()?;
        let sources = ledger
            .snapshot()
            .into_iter()
            .map(|(id, r)| Source {
                id,
                input: 0,
                path: r.path,
                dev: r.dev,
                ino: r.ino,
                file: None,
                fingerprint: r.fingerprint,
                prefix: Vec::new(),
                read_offset: r.offset,
                splitter: LineSplitter::new(cfg.max_line_bytes),
                detached: true,
                at_eof: true,
                last_data: Instant::now(),
                size: 0,
            })
            .collect();
        let asm =
            Assembler {
                fields: Fields::new(&cfg.timestamp_fields, &cfg.label_fields, &cfg.metadata_fields),
                label_names: cfg
                    .label_fields
                    .iter()
                    .map(|f| {
                        if valid_label_name(f) {
                            f.clone()
                        } else {
                            f.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
                        }
                    })
                    .collect(),
                metadata_names: cfg.metadata_fields.iter().map(|f| Arc::from(f.as_str())).collect(),
                global_labels: cfg.labels.clone(),
                input_labels: cfg.inputs.iter().map(|i| i.labels.clone()).collect(),
                streams: HashMap::new(),
                next_stream: 0,
                key: Vec::new(),
                batch: Batch::default(),
                batch_bytes: cfg.batch_bytes,
                tx,
                metrics: metrics.clone(),
                closed: false,
                unsent_lines: 0,
            };
        let w = wake.clone();
        let watcher = match notify::recommended_watcher(move |_: notify::Result<notify::Event>| w.notify()) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "file notifications unavailable; relying on polling");
                None
            }
        };
        Ok(Tailer {
            inputs,
            sources,
            asm,
            ledger,
            metrics,
            wake,
            stop,
            start_at_end,
            max_line: cfg.max_line_bytes,
            batch_wait: cfg.batch_wait,
            partial_timeout: cfg.partial_line_timeout,
            poll: cfg.poll_interval,
            release_after: cfg.release_after,
            buf: vec![0; CHUNK],
            watcher,
            watched: HashSet::new(),
            rescan: false,
        })
    }

    /// Runs until stopped (or the sender is gone); returns lines read but never handed over.
    pub fn run(mut self) -> u64 {
        self.scan(true);
        // Every source found now (including those starting at their end) is on disk before
        // any line is shipped, so a crash right after start loses nothing.
        self.save_positions();
        let mut last_scan = Instant::now();
        while !self.stop.load(Ordering::Acquire) && !self.asm.closed {
            let woken = self.wake.take();
            if self.rescan || last_scan.elapsed() >= self.poll || (woken && last_scan.elapsed() >= MIN_RESCAN) {
                self.rescan = false;
                self.scan(false);
                last_scan = Instant::now();
            }
            let progressed = self.read_round();
            self.flush_stale_partials();
            self.release_idle();
            if self.asm.batch.started.is_some_and(|t| t.elapsed() >= self.batch_wait) {
                self.asm.send();
            }
            if !progressed {
                let mut timeout = self.poll.saturating_sub(last_scan.elapsed()).min(Duration::from_millis(250));
                if let Some(t) = self.asm.batch.started {
                    timeout = timeout.min(self.batch_wait.saturating_sub(t.elapsed()));
                }
                if self.wake.wait(timeout) {
                    // Keep the wake-up for the rescan check at the top of the loop.
                    self.wake.notify();
                }
            }
        }
        // What was read is handed over (the sender delivers it within the shutdown
        // deadline); partial lines stay unread and are picked up at the next start.
        self.asm.send();
        self.asm.unsent_lines
    }

    fn save_positions(&self) {
        match self.ledger.save(true) {
            Ok(true) => self.metrics.positions_saves.inc(),
            Ok(false) => {}
            Err(e) => {
                self.metrics.positions_errors.inc();
                tracing::error!(error = %e, "could not write the positions file");
            }
        }
    }

    fn discover(&mut self) -> HashMap<(u64, u64), Found> {
        let mut found: HashMap<(u64, u64), Found> = HashMap::new();
        let mut dirs = Vec::new();
        for (idx, input) in self.inputs.iter().enumerate() {
            let mut paths = Vec::new();
            for (root, depth) in &input.roots {
                dirs.push((root.clone(), depth.is_none()));
                input.walk(root, *depth, &mut paths);
            }
            for path in paths {
                let Ok(m) = std::fs::metadata(&path) else { continue };
                if !m.is_file() {
                    continue;
                }
                found.entry((m.dev(), m.ino())).or_insert(Found { path, input: idx, len: m.len() });
            }
        }
        if let Some(w) = self.watcher.as_mut() {
            use notify::Watcher;
            for (dir, recursive) in dirs {
                if self.watched.contains(&dir) || !dir.is_dir() {
                    continue;
                }
                let mode =
                    if recursive { notify::RecursiveMode::Recursive } else { notify::RecursiveMode::NonRecursive };
                match w.watch(&dir, mode) {
                    Ok(()) => {
                        self.watched.insert(dir);
                    }
                    Err(e) => tracing::debug!(dir = %dir.display(), error = %e, "cannot watch; polling it"),
                }
            }
        }
        found
    }

    /// Finds files, follows rotations and truncations, and attaches new files.
    fn scan(&mut self, initial: bool) {
        let mut found = self.discover();
        let now = unix_now();

        // 1. Check every open file: truncated? moved? grown past its fingerprint?
        let mut i = 0;
        while i < self.sources.len() {
            if self.sources[i].file.is_some() {
                self.check_open(i, &mut found, now);
            }
            i += 1;
        }

        // 2. Classify files not open yet.
        let mut keys: Vec<(u64, u64)> = found.keys().copied().collect();
        keys.sort_by(|a, b| found[a].path.cmp(&found[b].path));
        // Two passes: files known by inode first, so that a copy of a file can never take
        // over the record of the file itself.
        for same_inode_only in [true, false] {
            for key in &keys {
                if self.sources.iter().any(|s| s.file.is_some() && (s.dev, s.ino) == *key) {
                    continue;
                }
                let f = &found[key];
                let (path, input, len) = (f.path.clone(), f.input, f.len);
                self.classify(path, *key, input, len, initial, same_inode_only);
            }
        }

        // 3. Records from the positions file that matched nothing are marked as gone, so
        //    they expire; expired orphans are forgotten.
        for s in self.sources.iter_mut().filter(|s| s.file.is_none()) {
            self.ledger.describe(s.id, |r| {
                if r.detached_at.is_none() {
                    r.detached_at = Some(now);
                }
            });
        }
        for id in self.ledger.expired(SystemTime::now()) {
            if let Some(pos) = self.sources.iter().position(|s| s.id == id && s.file.is_none()) {
                self.sources.remove(pos);
                self.ledger.remove(id);
            }
        }
        self.metrics.files_open.set(self.sources.iter().filter(|s| s.file.is_some()).count() as i64);
    }

    fn check_open(&mut self, i: usize, found: &mut HashMap<(u64, u64), Found>, now: u64) {
        let s = &mut self.sources[i];
        let Some(file) = s.file.as_ref() else { return };
        let len = match file.metadata() {
            Ok(m) => m.len(),
            Err(e) => {
                tracing::warn!(path = %s.path.display(), error = %e, "cannot stat an open file");
                return;
            }
        };
        let prefix = match Fingerprint::read_prefix(file, FINGERPRINT_MAX) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(path = %s.path.display(), error = %e, "cannot read an open file");
                return;
            }
        };
        let changed = s.fingerprint.is_some_and(|fp| !fp.matches(&prefix));
        if len < s.read_offset || changed {
            // Truncated (copytruncate) or rewritten in place: the bytes read so far belong
            // to an orphan that a copy may take over; the file itself starts over at 0.
            let old = s.id;
            let file = s.file.take();
            let (path, dev, ino, input) = (s.path.clone(), s.dev, s.ino, s.input);
            tracing::info!(path = %path.display(), read_offset = s.read_offset, size = len, "file truncated; reading it again from the start");
            self.metrics.rotations.with_label_values(&["truncate"]).inc();
            self.metrics.file_lag.remove_label_values(&[&path.to_string_lossy()]).ok();
            self.ledger.describe(old, |r| r.detached_at = Some(now));
            let fingerprint = Fingerprint::of(&prefix);
            let id =
                self.ledger.insert(Record { path: path.clone(), dev, ino, fingerprint, offset: 0, detached_at: None });
            let src = self.new_source(id, input, path, dev, ino, file, prefix, 0, len);
            self.sources.push(src);
            found.remove(&(dev, ino));
            return;
        }
        // Extend the fingerprint while the file is shorter than the fingerprint size.
        if s.prefix.len() < prefix.len() {
            s.prefix.clone_from(&prefix);
        }
        if s.fingerprint.is_none_or(|fp| (fp.len as usize) < prefix.len()) {
            if let Some(fp) = Fingerprint::of(&prefix) {
                s.fingerprint = Some(fp);
                self.ledger.describe(s.id, |r| r.fingerprint = Some(fp));
            }
        }
        s.size = len;
        match found.remove(&(s.dev, s.ino)) {
            Some(f) => {
                if f.path != s.path {
                    tracing::info!(from = %s.path.display(), to = %f.path.display(), "file renamed (rotation); following it");
                    self.metrics.rotations.with_label_values(&["rename"]).inc();
                    self.metrics.file_lag.remove_label_values(&[&s.path.to_string_lossy()]).ok();
                    s.path = f.path.clone();
                    let p = f.path;
                    self.ledger.describe(s.id, |r| r.path = p);
                }
                s.detached = false;
            }
            None => {
                if !s.detached {
                    tracing::info!(path = %s.path.display(), "file left the globs (rotated away or deleted); draining it");
                    s.detached = true;
                }
            }
        }
        let acked = self.ledger.acked(s.id).unwrap_or(0);
        self.metrics.file_lag.with_label_values(&[&s.path.to_string_lossy()]).set(len.saturating_sub(acked) as i64);
    }

    #[allow(clippy::too_many_arguments)]
    fn new_source(
        &self,
        id: SourceId,
        input: usize,
        path: PathBuf,
        dev: u64,
        ino: u64,
        file: Option<File>,
        prefix: Vec<u8>,
        offset: u64,
        size: u64,
    ) -> Source {
        Source {
            id,
            input,
            path,
            dev,
            ino,
            file,
            fingerprint: Fingerprint::of(&prefix),
            prefix,
            read_offset: offset,
            splitter: LineSplitter::new(self.max_line),
            detached: false,
            at_eof: false,
            last_data: Instant::now(),
            size,
        }
    }

    fn classify(
        &mut self,
        path: PathBuf,
        (dev, ino): (u64, u64),
        input: usize,
        len: u64,
        initial: bool,
        same_inode_only: bool,
    ) {
        if same_inode_only && !self.sources.iter().any(|s| s.file.is_none() && (s.dev, s.ino) == (dev, ino)) {
            return;
        }
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "cannot open");
                return;
            }
        };
        // The inode at the path may have changed between the walk and the open.
        match file.metadata() {
            Ok(m) if (m.dev(), m.ino()) == (dev, ino) => {}
            _ => return,
        }
        let prefix = match Fingerprint::read_prefix(&file, FINGERPRINT_MAX) {
            Ok(p) => p,
            Err(_) => return,
        };
        // Same inode and same first bytes: the file we knew (restart, or back in the globs).
        let same = self.sources.iter().position(|s| {
            s.file.is_none() && (s.dev, s.ino) == (dev, ino) && s.fingerprint.is_none_or(|fp| fp.matches(&prefix))
        });
        if let Some(i) = same {
            if len >= self.sources[i].read_offset {
                self.attach(i, file, path, dev, ino, input, "resumed");
                return;
            }
        }
        if same_inode_only {
            return;
        }
        // Another inode with the first bytes of an orphan: a copy (copytruncate) or a move.
        let copy_of = self.sources.iter().position(|s| s.file.is_none() && s.same_start(&prefix));
        if let Some(i) = copy_of {
            if len >= self.sources[i].read_offset {
                self.metrics.rotations.with_label_values(&["copy"]).inc();
                self.attach(i, file, path, dev, ino, input, "copy of a truncated file; continuing where it stopped");
            }
            // Shorter: a copy still being written; look again at the next scan.
            return;
        }
        // The first bytes of a file still open: a copy made before the original is
        // truncated. Its lines come from the original; if the original is truncated, the
        // copy takes over (above) at the next scan.
        if self.sources.iter().any(|s| s.file.is_some() && s.same_start(&prefix)) {
            return;
        }
        let offset = if initial && self.start_at_end { len } else { 0 };
        let fingerprint = Fingerprint::of(&prefix);
        let id = self.ledger.insert(Record { path: path.clone(), dev, ino, fingerprint, offset, detached_at: None });
        tracing::info!(path = %path.display(), offset, "tailing new file");
        let src = self.new_source(id, input, path, dev, ino, Some(file), prefix, offset, len);
        self.sources.push(src);
    }

    #[allow(clippy::too_many_arguments)]
    fn attach(&mut self, i: usize, file: File, path: PathBuf, dev: u64, ino: u64, input: usize, why: &str) {
        let s = &mut self.sources[i];
        tracing::info!(path = %path.display(), offset = s.read_offset, "{why}");
        s.file = Some(file);
        s.path = path.clone();
        s.dev = dev;
        s.ino = ino;
        s.input = input;
        s.detached = false;
        s.at_eof = false;
        s.last_data = Instant::now();
        self.ledger.describe(s.id, |r| {
            r.path = path;
            r.dev = dev;
            r.ino = ino;
            r.detached_at = None;
        });
    }

    /// Reads one chunk from every open file; returns whether anything was read.
    fn read_round(&mut self) -> bool {
        let mut progressed = false;
        let Tailer { sources, asm, buf, metrics, stop, rescan, .. } = self;
        for s in sources.iter_mut() {
            if asm.closed || stop.load(Ordering::Relaxed) {
                break;
            }
            let Some(file) = s.file.as_ref() else { continue };
            let n = match read_at(file, buf, s.read_offset) {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(path = %s.path.display(), error = %e, "read failed; retrying at the next poll");
                    continue;
                }
            };
            s.at_eof = n == 0;
            if n == 0 {
                continue;
            }
            // Were these bytes read from the content we know? A copytruncate between two
            // scans followed by fresh writes past our offset would otherwise be read as a
            // continuation. Checked after the read, so the window is the read itself.
            if let Some(fp) = s.fingerprint {
                match Fingerprint::read_prefix(file, fp.len as usize) {
                    Ok(prefix) if fp.matches(&prefix) => {}
                    _ => {
                        *rescan = true;
                        continue;
                    }
                }
            }
            progressed = true;
            s.last_data = Instant::now();
            metrics.bytes_read.inc_by(n as u64);
            let read_ns = now_ns();
            let (id, input, start) = (s.id, s.input, s.read_offset);
            s.splitter.push(&buf[..n], start, |line| asm.add(id, input, line, read_ns));
            s.read_offset += n as u64;
        }
        progressed
    }

    fn flush_stale_partials(&mut self) {
        let Tailer { sources, asm, partial_timeout, .. } = self;
        for s in sources.iter_mut().filter(|s| s.splitter.has_partial()) {
            // Only once the file has nothing more to give: a line still being written is
            // waited for.
            if s.file.is_some() && !s.at_eof {
                continue;
            }
            let (id, input, off) = (s.id, s.input, s.read_offset);
            s.splitter.flush_if_stale(*partial_timeout, off, |line| asm.add(id, input, line, now_ns()));
        }
    }

    fn release_idle(&mut self) {
        let now = unix_now();
        for s in self.sources.iter_mut() {
            if s.file.is_some()
                && s.detached
                && s.at_eof
                && !s.splitter.has_partial()
                && s.last_data.elapsed() >= self.release_after
            {
                tracing::info!(path = %s.path.display(), offset = s.read_offset, "released a file that left the globs");
                s.file = None;
                self.metrics.file_lag.remove_label_values(&[&s.path.to_string_lossy()]).ok();
                self.ledger.describe(s.id, |r| r.detached_at = Some(now));
            }
        }
    }
}

fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    loop {
        match file.read_at(buf, offset) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_roots() {
        assert_eq!(glob_root("/var/log/app.log*"), (PathBuf::from("/var/log"), Some(1)));
        assert_eq!(glob_root("/var/log/*/x.log"), (PathBuf::from("/var/log"), Some(2)));
        assert_eq!(glob_root("/var/log/**/*.log"), (PathBuf::from("/var/log"), None));
        assert_eq!(glob_root("logs/a.log"), (PathBuf::from("logs"), Some(1)));
        assert_eq!(glob_root("*.log"), (PathBuf::from("."), Some(1)));
    }
}
