//! Where snapshots come from: a running server's admin endpoint (the normal case: sled lets
//! only one process open a database, so a live database can only be read through its
//! server), or a data directory that no server holds (offline mode).

use std::io::{self, BufWriter, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};
use std::thread::JoinHandle;
use std::time::Duration;

use helpdesk_core::{Config, Helpdesk, SnapshotSummary};

use crate::archive::SourceInfo;
use crate::error::{Error, Result};

/// The snapshot endpoint, relative to the server's base URL.
pub const SNAPSHOT_PATH: &str = "/api/v1/admin/snapshot";

/// How to reach the snapshot.
#[derive(Debug, Clone)]
pub enum SourceSpec {
    /// A running server.
    Server {
        /// Base URL, e.g. `http://helpdesk:8000`.
        url: String,
        /// Admin bearer token.
        token: String,
        /// Give up when the server sends nothing for this long.
        read_timeout: Duration,
        /// Give up connecting after this long.
        connect_timeout: Duration,
    },
    /// A server's data directory (holding `db/`), opened directly.
    DataDir(PathBuf),
}

/// An open snapshot stream.
pub struct OpenSource {
    /// The snapshot bytes.
    pub reader: Box<dyn Read + Send>,
    /// What to record in the manifest.
    pub info: SourceInfo,
    export: Option<JoinHandle<helpdesk_core::Result<SnapshotSummary>>>,
}

impl std::fmt::Debug for OpenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenSource").field("info", &self.info).finish_non_exhaustive()
    }
}

impl OpenSource {
    /// After the stream ended or failed: the error of an in-process export, if it failed
    /// (it explains a stream that was cut short better than the stream itself can).
    pub fn finish(self) -> Result<()> {
        drop(self.reader);
        if let Some(handle) = self.export {
            match handle.join() {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(Error::core("export from the data directory failed", e)),
                Err(_) => return Err(Error::SourceUnreachable("the export thread panicked".into())),
            }
        }
        Ok(())
    }
}

/// The message of an error and all its sources, `a: b: c`.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        let text = inner.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = inner.source();
    }
    s
}

/// Opens the snapshot stream. Nothing is written anywhere yet.
pub fn open(spec: &SourceSpec) -> Result<OpenSource> {
    match spec {
        SourceSpec::Server { url, token, read_timeout, connect_timeout } => {
            open_server(url, token, *read_timeout, *connect_timeout)
        }
        SourceSpec::DataDir(dir) => open_data_dir(dir),
    }
}

fn open_server(base: &str, token: &str, read_timeout: Duration, connect_timeout: Duration) -> Result<OpenSource> {
    let base = base.trim_end_matches('/').to_owned();
    let url = format!("{base}{SNAPSHOT_PATH}");
    let client = reqwest::Client::builder()
        .user_agent(concat!("backup-agent/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(connect_timeout)
        // No overall deadline (a large database takes many minutes), but a stall longer than
        // this, waiting for the headers or between two reads of the body, fails the backup.
        .read_timeout(read_timeout)
        .build()
        .map_err(|e| Error::SourceUnreachable(format!("cannot set up the HTTP client: {}", chain(&e))))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("cannot start the HTTP runtime", e))?;
    // The download runs on its own thread and reads ahead into a bounded queue, so the
    // network and the server's export keep going while this thread checks and compresses
    // (memory: at most QUEUE chunks).
    let (head_tx, head_rx) = sync_channel::<Result<()>>(1);
    let (tx, rx) = sync_channel(QUEUE);
    let token = token.to_owned();
    let download_url = url.clone();
    std::thread::Builder::new()
        .name("download".into())
        .spawn(move || {
            runtime.block_on(async move {
                let response = match client.get(&download_url).bearer_auth(&token).send().await {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = head_tx.send(Err(Error::SourceUnreachable(format!(
                            "cannot reach the server at {download_url}: {}",
                            chain(&e)
                        ))));
                        return;
                    }
                };
                let status = response.status();
                if !status.is_success() {
                    let body = response.text().await.unwrap_or_default();
                    let _ = head_tx.send(Err(http_error(&download_url, status, &body)));
                    return;
                }
                if head_tx.send(Ok(())).is_err() {
                    return;
                }
                let mut response = response;
                // The server sends many small chunks; handing each one to the reader thread
                // costs a wake-up, so they are gathered into batches first.
                let mut batch: Vec<u8> = Vec::with_capacity(BATCH);
                loop {
                    let item = match response.chunk().await {
                        Ok(Some(chunk)) => {
                            batch.extend_from_slice(&chunk);
                            if batch.len() < BATCH {
                                continue;
                            }
                            Ok(Some(std::mem::replace(&mut batch, Vec::with_capacity(BATCH))))
                        }
                        Ok(None) if !batch.is_empty() => {
                            if tx.send(Ok(Some(std::mem::take(&mut batch)))).is_err() {
                                return;
                            }
                            Ok(None)
                        }
                        Ok(None) => Ok(None),
                        Err(e) => Err(io::Error::other(chain(&e))),
                    };
                    let last = !matches!(item, Ok(Some(_)));
                    // A closed queue means the reader gave up: stop downloading.
                    if tx.send(item).is_err() || last {
                        return;
                    }
                }
            });
        })
        .map_err(|e| Error::io("cannot start the download thread", e))?;
    match head_rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err(Error::SourceUnreachable(format!("the download of {url} stopped before it started"))),
    }
    Ok(OpenSource {
        reader: Box::new(QueueReader { rx, current: None, offset: 0, ended: false }),
        info: SourceInfo::Server { url: base },
        export: None,
    })
}

/// Batches queued ahead of the reader by the download thread (memory: QUEUE × BATCH).
const QUEUE: usize = 16;
/// Bytes gathered from the body before a batch is handed over.
const BATCH: usize = 256 << 10;

fn http_error(url: &str, status: reqwest::StatusCode, body: &str) -> Error {
    let message = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.pointer("/error/message").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(200).collect());
    let hint = match status.as_u16() {
        401 => " (the token was not accepted: check --token-file)",
        403 => " (the token is valid but not an admin token)",
        404 => " (is --server the helpdesk server's base URL?)",
        _ => "",
    };
    Error::SourceUnreachable(format!("{url} answered {status}{hint}: {message}"))
}

/// `Read` over the download queue. The stream must end with an explicit end marker: a
/// download thread that vanished is an error, not the end of the snapshot.
struct QueueReader<C> {
    rx: Receiver<io::Result<Option<C>>>,
    current: Option<C>,
    offset: usize,
    ended: bool,
}

impl<C: AsRef<[u8]>> Read for QueueReader<C> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(chunk) = &self.current {
                let rest = &chunk.as_ref()[self.offset..];
                if !rest.is_empty() {
                    let n = rest.len().min(buf.len());
                    buf[..n].copy_from_slice(&rest[..n]);
                    self.offset += n;
                    return Ok(n);
                }
                self.current = None;
            }
            if self.ended {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(Some(chunk))) => {
                    self.current = Some(chunk);
                    self.offset = 0;
                }
                Ok(Ok(None)) => self.ended = true,
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(io::Error::other("the download thread stopped without finishing")),
            }
        }
    }
}

/// sled page cache for an offline export: the export reads every ticket once, so a large
/// cache only costs memory.
const OFFLINE_CACHE: u64 = 16 << 20;

/// The database directory inside a server data directory.
pub fn db_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("db")
}

fn open_data_dir(dir: &Path) -> Result<OpenSource> {
    let db = db_dir(dir);
    let populated = std::fs::read_dir(&db).map(|mut d| d.next().is_some()).unwrap_or(false);
    if !populated {
        return Err(Error::SourceUnreachable(format!(
            "no database at {}: --data-dir must be a helpdesk-server data directory (the one holding db/)",
            db.display()
        )));
    }
    let desk = Helpdesk::open(&db, Config { cache_capacity: OFFLINE_CACHE, ..Config::default() })
        .map_err(|e| Error::core(format!("cannot open {}", db.display()), e))?;
    let (reader, writer) = std::io::pipe().map_err(|e| Error::io("cannot create a pipe", e))?;
    // The export runs on its own thread so that reading the database and compressing the
    // stream use both cores; the pipe bounds the memory in between.
    let export = std::thread::Builder::new()
        .name("export".into())
        .spawn(move || {
            let mut out = BufWriter::with_capacity(1 << 16, writer);
            let result = desk.export(&mut out);
            drop(out);
            drop(desk);
            result
        })
        .map_err(|e| Error::io("cannot start the export thread", e))?;
    Ok(OpenSource {
        reader: Box::new(reader),
        info: SourceInfo::DataDir { path: dir.display().to_string() },
        export: Some(export),
    })
}
