//! An embeddable IT helpdesk ticket engine, persisted in [sled](https://docs.rs/sled).
//!
//! Open a [`Helpdesk`] on a directory, then create, update, transition, assign, comment,
//! list and report on tickets. Every change is one atomic, durable transaction that also
//! updates the secondary indexes and statistics, and appends an [`Event`] to the
//! ticket's history.
//!
//! ```
//! use helpdesk_core::{Actor, Category, Config, Filter, Helpdesk, ListQuery, NewTicket, Priority, Status};
//!
//! let dir = tempfile::tempdir()?;
//! let desk = Helpdesk::open(dir.path().join("db"), Config::default())?;
//! let new = NewTicket::new("Lab PC 12 will not boot", "Stuck at the BIOS logo",
//!                          Category::Hardware, "student@campus.example", "Sam")
//!     .priority(Priority::High)
//!     .tags(["lab-b"]);
//! let t = desk.create(new, &Actor::requester("Sam"))?;
//!
//! let open_high = ListQuery::new(Filter {
//!     status: Some(Status::Open),
//!     priority: Some(Priority::High),
//!     ..Filter::default()
//! });
//! assert_eq!(desk.list(&open_high)?.tickets[0].id, t.id);
//! assert_eq!(desk.stats()?.open_backlog, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Modules
//!
//! * [`ticket`] — the ticket, its enums, inputs and validation.
//! * [`workflow`] — legal status transitions and how changes produce new versions.
//! * [`sla`] — SLA targets and due-time arithmetic.
//! * [`history`] — the event history.
//! * [`query`] — filters, pages and cursors.
//! * [`stats`] — statistics from counters kept in every transaction.
//! * [`snapshot`] — the portable export/import format.
//! * [`verify`] — fsck and repair reports.
//! * `store` (private) — sled persistence, key layouts, migrations, group commit.

pub mod clock;
pub mod config;
mod engine;
pub mod error;
pub mod history;
pub mod query;
pub mod sla;
pub mod snapshot;
pub mod stats;
mod store;
pub mod ticket;
pub mod verify;
pub mod workflow;

/// docs/embedding.md, compiled and run as doctests so the guide cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../docs/embedding.md")]
pub struct EmbeddingGuide;

pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use config::{Config, Durability, FlushObserver};
pub use engine::Helpdesk;
pub use error::{Error, FieldError, Result, ValidationErrors};
pub use history::{Comment, Event, EventKind, FieldChange};
pub use query::{Cursor, Filter, ListQuery, Page};
pub use sla::{SlaPolicy, SlaTarget};
pub use snapshot::SnapshotSummary;
pub use stats::Stats;
pub use store::migrate::SCHEMA_VERSION;
pub use ticket::{
    Actor, ActorKind, Category, NewComment, NewTicket, Priority, SlaBreaches, Status, Ticket, TicketId, TicketUpdate,
    Visibility,
};
pub use verify::{Problem, ProblemKind, RepairReport, VerifyReport};
