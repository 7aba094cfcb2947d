//! Reports of `verify` (fsck) and `repair`.

use serde::Serialize;

/// Most problems listed in a report; the rest are only counted.
pub const MAX_LISTED_PROBLEMS: usize = 1000;

/// What kind of disagreement `verify` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A stored value cannot be decoded. `repair` cannot fix this; restore a backup.
    CorruptValue,
    /// A ticket lacks an index entry it should have.
    MissingIndexEntry,
    /// An index entry that no ticket accounts for.
    StaleIndexEntry,
    /// A stored counter differs from the count over the tickets.
    CounterMismatch,
    /// A ticket at version `v` lacks one of its events `1..=v`. Not repairable.
    MissingEvent,
    /// An event that belongs to no ticket version.
    OrphanEvent,
    /// The id allocator would hand out an id already in use.
    IdAllocatorBehind,
}

/// One disagreement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// What kind.
    pub kind: ProblemKind,
    /// Where: tree and key (e.g. `ticket_id/42`, `meta/count/status/open`).
    pub key: String,
    /// What exactly is wrong.
    pub detail: String,
}

/// Result of a verification.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Tickets read.
    pub tickets: u64,
    /// Events read.
    pub events: u64,
    /// Index entries read.
    pub index_entries: u64,
    /// Problems found (at most [`MAX_LISTED_PROBLEMS`] listed).
    pub problems: Vec<Problem>,
    /// Problems found in all, listed or not.
    pub problem_count: u64,
}

impl VerifyReport {
    /// Whether no problem was found.
    pub fn is_clean(&self) -> bool {
        self.problem_count == 0
    }

    pub(crate) fn push(&mut self, kind: ProblemKind, key: impl Into<String>, detail: impl Into<String>) {
        self.problem_count += 1;
        if self.problems.len() < MAX_LISTED_PROBLEMS {
            self.problems.push(Problem { kind, key: key.into(), detail: detail.into() });
        }
    }

    /// How many listed problems are of `kind`.
    pub fn count(&self, kind: ProblemKind) -> usize {
        self.problems.iter().filter(|p| p.kind == kind).count()
    }
}

/// Result of a repair: what was rebuilt, and what a rebuild cannot fix.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RepairReport {
    /// Tickets the indexes and counters were rebuilt from.
    pub tickets: u64,
    /// Index entries written.
    pub index_entries: u64,
    /// Problems a rebuild cannot fix (corrupt tickets, missing events); restore a backup
    /// if this is not empty.
    pub unrepairable: Vec<Problem>,
}
