//! The crate's error type and the process exit codes it maps to.

use std::path::PathBuf;

/// Exit code: stopped on SIGTERM/SIGINT with every line read delivered.
pub const EXIT_OK: i32 = 0;
/// Exit code: a runtime failure (positions file not writable, metrics address taken, ...).
pub const EXIT_RUNTIME: i32 = 1;
/// Exit code: bad command line or configuration; nothing was started.
pub const EXIT_CONFIG: i32 = 2;
/// Exit code: the shutdown deadline passed with lines not yet delivered. The positions
/// file holds the acknowledged offsets, so the next start sends them.
pub const EXIT_UNDELIVERED: i32 = 3;

/// Everything that can stop the shipper.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid: what is wrong and how to fix it.
    #[error("configuration: {0}")]
    Config(String),
    /// The positions file could not be read or written.
    #[error("positions file {}: {source} (check that its directory exists and is writable)", path.display())]
    Positions {
        /// The positions file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The metrics listener could not be bound.
    #[error("metrics listener on {addr}: {source}")]
    Metrics {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The HTTP client could not be built (bad CA file, ...).
    #[error("HTTP client: {0}")]
    Client(String),
    /// A worker thread or the runtime failed.
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) | Error::Client(_) => EXIT_CONFIG,
            _ => EXIT_RUNTIME,
        }
    }
}
