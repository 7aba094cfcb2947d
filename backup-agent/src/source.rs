//! Where snapshots come from: a running server's admin endpoint (the normal case: sled lets
//! only one process open a database, so a live database can only be read through its
//! server), or a data directory that no server holds (offline mode).

use std::io::{BufWriter, Read};
use std::path::{Path, PathBuf};
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
    let base = base.trim_end_matches('/');
    let url = format!("{base}{SNAPSHOT_PATH}");
    let client = reqwest::blocking::Client::builder()
        .user_agent(concat!("backup-agent/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(connect_timeout)
        // The blocking client applies this to the wait for the response headers and to each
        // read of the body, not to the whole transfer: a snapshot of a large database may
        // take many minutes, but a stall longer than this fails the backup.
        .timeout(read_timeout)
        .build()
        .map_err(|e| Error::SourceUnreachable(format!("cannot set up the HTTP client: {}", chain(&e))))?;
    let response = client
        .get(&url)
        .bearer_auth(token)
        .send()
        .map_err(|e| Error::SourceUnreachable(format!("cannot reach the server at {url}: {}", chain(&e))))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.pointer("/error/message").and_then(|m| m.as_str()).map(str::to_owned))
            .unwrap_or_else(|| body.chars().take(200).collect());
        let hint = match status.as_u16() {
            401 => " (the token was not accepted: check --token-file)",
            403 => " (the token is valid but not an admin token)",
            404 => " (is --server the helpdesk server's base URL?)",
            _ => "",
        };
        return Err(Error::SourceUnreachable(format!("{url} answered {status}{hint}: {message}")));
    }
    Ok(OpenSource { reader: Box::new(response), info: SourceInfo::Server { url: base.to_owned() }, export: None })
}

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
    let desk =
        Helpdesk::open(&db, Config::default()).map_err(|e| Error::core(format!("cannot open {}", db.display()), e))?;
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
