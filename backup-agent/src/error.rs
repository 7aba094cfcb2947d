//! [`Error`], the one error type of the agent, and the documented process exit codes.

use std::io;
use std::path::Path;

/// Process exit codes. Each failure class has its own code so that a CronJob, a script or
/// an alert can tell "the server is down" from "the disk is full" without parsing logs.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// Any other failure (an unexpected I/O error, a bug): read the message.
    pub const FAILURE: u8 = 1;
    /// The command line or the request was wrong (bad flag, empty retention policy, a
    /// non-empty restore target without `--force`); nothing was changed.
    pub const USAGE: u8 = 2;
    /// The snapshot source could not be read: the server is unreachable, answered with an
    /// error or refused the token; or `--data-dir` holds no database.
    pub const SOURCE_UNREACHABLE: u8 = 3;
    /// A lock is held: another backup-agent run works on the backup directory, or a running
    /// server holds the database (`--data-dir` backup, restore target).
    pub const LOCK_HELD: u8 = 4;
    /// An archive failed verification (checksum, structure, snapshot or the core's `verify`),
    /// or a backup stream was incomplete; `restore` refused the archive.
    pub const VERIFICATION_FAILED: u8 = 5;
    /// The disk (or a quota or file-size limit) ran out of space; no partial archive is left
    /// under a final name.
    pub const OUT_OF_SPACE: u8 = 6;
    /// Stopped by SIGTERM or SIGINT before finishing (the daemon itself exits 0 on SIGTERM).
    pub const INTERRUPTED: u8 = 7;
}

/// Everything that can go wrong. Each variant maps to one exit code ([`Error::exit_code`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Wrong usage; nothing was changed.
    #[error("{0}")]
    Usage(String),

    /// The snapshot source cannot be read.
    #[error("source unavailable: {0}")]
    SourceUnreachable(String),

    /// Another run or a server holds a lock.
    #[error("{0}")]
    LockHeld(String),

    /// An archive or a snapshot stream is not what it must be.
    #[error("verification failed: {0}")]
    Verification(String),

    /// No space left (ENOSPC, EDQUOT or EFBIG).
    #[error("out of space ({what}): {source}; free space (or raise the limit) and run again")]
    OutOfSpace {
        /// What was being done, e.g. `writing /backups/.helpdesk-....partial`.
        what: String,
        /// The underlying error.
        source: io::Error,
    },

    /// Stopped by a signal.
    #[error("interrupted by a signal before finishing; nothing was left under a final name")]
    Interrupted,

    /// Another I/O failure.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: io::Error,
    },

    /// The ticket engine failed in a way none of the classes above describes.
    #[error("{context}: {source}")]
    Core {
        /// What was being done.
        context: String,
        /// The engine's error.
        source: helpdesk_core::Error,
    },
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The process exit code for this error (see [`exit`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => exit::USAGE,
            Error::SourceUnreachable(_) => exit::SOURCE_UNREACHABLE,
            Error::LockHeld(_) => exit::LOCK_HELD,
            Error::Verification(_) => exit::VERIFICATION_FAILED,
            Error::OutOfSpace { .. } => exit::OUT_OF_SPACE,
            Error::Interrupted => exit::INTERRUPTED,
            Error::Io { .. } | Error::Core { .. } => exit::FAILURE,
        }
    }

    /// A short machine-readable name of the class, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Usage(_) => "usage",
            Error::SourceUnreachable(_) => "source_unreachable",
            Error::LockHeld(_) => "lock_held",
            Error::Verification(_) => "verification_failed",
            Error::OutOfSpace { .. } => "out_of_space",
            Error::Interrupted => "interrupted",
            Error::Io { .. } | Error::Core { .. } => "failure",
        }
    }

    /// Wraps an I/O error that happened while writing `path`, classifying a full disk, an
    /// exceeded quota or file-size limit as [`Error::OutOfSpace`].
    pub fn write(path: &Path, source: io::Error) -> Error {
        if is_out_of_space(&source) {
            Error::OutOfSpace { what: format!("writing {}", path.display()), source }
        } else {
            Error::Io { context: format!("cannot write {}", path.display()), source }
        }
    }

    /// Wraps an I/O error with what was being done (a full disk still becomes
    /// [`Error::OutOfSpace`]).
    pub fn io(context: impl Into<String>, source: io::Error) -> Error {
        if is_out_of_space(&source) {
            return Error::OutOfSpace { what: context.into(), source };
        }
        Error::Io { context: context.into(), source }
    }

    /// Classifies an engine error: a locked database, an invalid snapshot and a full disk
    /// get their own classes.
    pub fn core(context: impl Into<String>, source: helpdesk_core::Error) -> Error {
        let context = context.into();
        match source {
            helpdesk_core::Error::Locked { path } => Error::LockHeld(format!(
                "{context}: the database at {} is locked by another process (is a helpdesk-server running on it? \
                 back up through the server with --server, or stop it first)",
                path.display()
            )),
            helpdesk_core::Error::InvalidSnapshot(why) => {
                Error::Verification(format!("{context}: invalid snapshot: {why}"))
            }
            helpdesk_core::Error::Io(e) if is_out_of_space(&e) => Error::OutOfSpace { what: context, source: e },
            helpdesk_core::Error::Storage(msg) if storage_out_of_space(&msg) => {
                Error::OutOfSpace { what: context, source: io::Error::other(msg) }
            }
            source => Error::Core { context, source },
        }
    }
}

/// Whether an I/O error means "no more room": a full file system, an exceeded quota, or a
/// file-size limit (`ulimit -f`, which we turn from SIGXFSZ into EFBIG).
pub fn is_out_of_space(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded | io::ErrorKind::FileTooLarge)
        || matches!(e.raw_os_error(), Some(28 | 122 | 27))
        || e.get_ref().and_then(|inner| inner.downcast_ref::<io::Error>()).is_some_and(is_out_of_space)
}

/// sled reports its I/O failures as text; recognise the out-of-space ones.
fn storage_out_of_space(msg: &str) -> bool {
    ["os error 28", "os error 122", "os error 27", "No space left", "File too large", "quota exceeded"]
        .iter()
        .any(|needle| msg.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_space_is_recognised_by_kind_and_errno() {
        assert!(is_out_of_space(&io::Error::from_raw_os_error(28)));
        assert!(is_out_of_space(&io::Error::from_raw_os_error(27)));
        assert!(is_out_of_space(&io::Error::from(io::ErrorKind::StorageFull)));
        assert!(!is_out_of_space(&io::Error::from_raw_os_error(2)));
        let wrapped = io::Error::other(io::Error::from_raw_os_error(28));
        assert!(is_out_of_space(&wrapped));
        assert_eq!(Error::write(Path::new("x"), io::Error::from_raw_os_error(28)).exit_code(), exit::OUT_OF_SPACE);
    }

    #[test]
    fn engine_errors_are_classified() {
        let locked = Error::core("open", helpdesk_core::Error::Locked { path: "db".into() });
        assert_eq!(locked.exit_code(), exit::LOCK_HELD);
        let invalid = Error::core("import", helpdesk_core::Error::InvalidSnapshot("line 3: bad".into()));
        assert_eq!(invalid.exit_code(), exit::VERIFICATION_FAILED);
        let full =
            Error::core("import", helpdesk_core::Error::Storage("Io(No space left on device (os error 28))".into()));
        assert_eq!(full.exit_code(), exit::OUT_OF_SPACE);
        let other = Error::core("import", helpdesk_core::Error::IncompleteImport);
        assert_eq!(other.exit_code(), exit::FAILURE);
    }
}
