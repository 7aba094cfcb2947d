//! The crate's one error type, [`Error`], and the validation error list it carries.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use crate::ticket::{Status, TicketId};

/// Result alias used by every fallible function of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the ticket engine.
///
/// Variants fall into three groups, and callers usually treat each group alike:
///
/// * **Caller mistakes** — [`Error::Validation`], [`Error::NotFound`],
///   [`Error::InvalidTransition`], [`Error::TicketClosed`], [`Error::VersionConflict`],
///   [`Error::IdempotencyConflict`], [`Error::ResolutionNotesRequired`],
///   [`Error::InvalidCursor`], [`Error::NotEmpty`], [`Error::InvalidSnapshot`]: the request
///   was wrong and nothing was changed. Fix the input and retry.
/// * **Database state** — [`Error::Locked`], [`Error::UnsupportedSchema`],
///   [`Error::IncompleteImport`], [`Error::Corrupt`]: the database cannot be used as it is;
///   the message says what an operator should do.
/// * **Environment** — [`Error::Storage`], [`Error::Io`]: the disk or the stream failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// One or more fields were invalid; every bad field is listed.
    #[error("invalid input: {0}")]
    Validation(ValidationErrors),

    /// No ticket has this id.
    #[error("ticket {0} not found")]
    NotFound(TicketId),

    /// The status workflow does not allow this transition.
    #[error("ticket {id}: transition {from} -> {to} is not allowed (allowed from {from}: {allowed})")]
    InvalidTransition {
        /// The ticket.
        id: TicketId,
        /// Its current status.
        from: Status,
        /// The status that was asked for.
        to: Status,
        /// The statuses reachable from `from`, comma separated (empty for `closed`).
        allowed: String,
    },

    /// Resolving needs resolution notes, and neither the change nor the ticket has them.
    #[error("ticket {0} cannot be resolved without resolution_notes")]
    ResolutionNotesRequired(TicketId),

    /// The ticket is closed; closed tickets are read-only.
    #[error("ticket {0} is closed and can no longer be changed")]
    TicketClosed(TicketId),

    /// Optimistic concurrency: the caller's version is not the ticket's current version.
    #[error("ticket {id} is at version {actual}, not {expected}: reload it and retry")]
    VersionConflict {
        /// The ticket.
        id: TicketId,
        /// The version the caller based its change on.
        expected: u64,
        /// The version the ticket has now.
        actual: u64,
    },

    /// An idempotency key was reused for a different request.
    #[error("idempotency key {key:?} was already used for a different request")]
    IdempotencyConflict {
        /// The key.
        key: String,
    },

    /// A pagination cursor that this engine did not produce (or that was altered).
    #[error("invalid cursor: {0}")]
    InvalidCursor(String),

    /// An import was asked of a database that already holds tickets.
    #[error("the database is not empty ({tickets} tickets): import needs an empty database")]
    NotEmpty {
        /// How many tickets it holds.
        tickets: u64,
    },

    /// A snapshot stream that is malformed, truncated, of an unknown version, or whose
    /// checksum does not match. Nothing was imported.
    #[error("invalid snapshot: {0}")]
    InvalidSnapshot(String),

    /// Another process holds the database open (sled takes an exclusive lock).
    #[error("database at {path} is locked by another process (is a server running on it?)")]
    Locked {
        /// The database directory.
        path: PathBuf,
    },

    /// The database was written by a newer (or unknown) release.
    #[error(
        "database schema version {found} is not supported by this release (supports up to {supported}); \
         upgrade helpdesk or restore a backup made by this release"
    )]
    UnsupportedSchema {
        /// Schema version recorded in the database.
        found: u32,
        /// Highest schema version this release understands.
        supported: u32,
    },

    /// A previous import was interrupted; the database holds part of a snapshot.
    #[error("an import into this database was interrupted; delete the database directory and import again")]
    IncompleteImport,

    /// A stored value could not be decoded. The key says where.
    #[error("corrupt value at {key}: {reason}")]
    Corrupt {
        /// Tree and key of the bad value, e.g. `ticket_id/42`.
        key: String,
        /// What was wrong with it.
        reason: String,
    },

    /// The storage engine failed (disk full, I/O error, ...).
    #[error("storage error: {0}")]
    Storage(String),

    /// Reading or writing a snapshot stream failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// Whether the error is the caller's fault (bad input, missing ticket, conflict) rather
    /// than a failure of the database or the environment.
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            Error::Validation(_)
                | Error::NotFound(_)
                | Error::InvalidTransition { .. }
                | Error::TicketClosed(_)
                | Error::ResolutionNotesRequired(_)
                | Error::VersionConflict { .. }
                | Error::IdempotencyConflict { .. }
                | Error::InvalidCursor(_)
                | Error::NotEmpty { .. }
                | Error::InvalidSnapshot(_)
        )
    }

    pub(crate) fn corrupt(key: impl Into<String>, reason: impl fmt::Display) -> Self {
        Error::Corrupt { key: key.into(), reason: reason.to_string() }
    }
}

impl From<sled::Error> for Error {
    fn from(e: sled::Error) -> Self {
        match e {
            sled::Error::Io(io) => Error::Storage(io.to_string()),
            sled::Error::Corruption { at, .. } => {
                Error::corrupt(format!("sled log offset {at:?}"), "storage engine corruption")
            }
            other => Error::Storage(other.to_string()),
        }
    }
}

/// One invalid field: its name (e.g. `title`, `tags[2]`), a stable machine-readable code,
/// and a human message.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Name of the field as it appears in the input.
    pub field: String,
    /// Stable code: `required`, `too_long`, `too_short`, `invalid`, `too_many`, `conflict`.
    pub code: &'static str,
    /// What is wrong, for people.
    pub message: String,
}

/// All the invalid fields of one request; never empty when returned in an error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    pub(crate) fn add(&mut self, field: impl Into<String>, code: &'static str, message: impl Into<String>) {
        self.0.push(FieldError { field: field.into(), code, message: message.into() });
    }

    /// The invalid fields.
    pub fn fields(&self) -> &[FieldError] {
        &self.0
    }

    /// Whether the named field is among the invalid ones.
    pub fn has(&self, field: &str) -> bool {
        self.0.iter().any(|e| e.field == field)
    }

    /// `Ok(())` when no field was invalid, else [`Error::Validation`].
    pub(crate) fn into_result(self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::Validation(self))
        }
    }

    pub(crate) fn single(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> Error {
        let mut errors = Self::default();
        errors.add(field, code, message);
        Error::Validation(errors)
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.field, e.message)?;
        }
        Ok(())
    }
}
