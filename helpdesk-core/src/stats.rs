//! Statistics: the counters kept incrementally with every write ([`Counters`]) and the
//! [`Stats`] report built from them in O(1).
//!
//! A ticket *contributes* to a fixed set of counters (total, its status, category and
//! priority, and — once resolved — the resolved count and its time to resolve). Every
//! write adds the new version's contributions and subtracts the old one's, in the same
//! transaction as the ticket, so the counters always equal what a full scan would give;
//! `verify` checks exactly that.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::clock::Timestamp;
use crate::ticket::{Category, Priority, Status, Ticket};

/// One maintained counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Counter {
    Total,
    Status(Status),
    Category(Category),
    Priority(Priority),
    /// Tickets resolved or closed.
    Resolved,
    /// Sum over resolved/closed tickets of (resolved_at - created_at), in milliseconds.
    ResolveMillis,
}

impl Counter {
    /// Stable name, used as its storage key and in verify reports.
    pub(crate) fn name(self) -> String {
        match self {
            Counter::Total => "total".into(),
            Counter::Status(s) => format!("status/{s}"),
            Counter::Category(c) => format!("category/{c}"),
            Counter::Priority(p) => format!("priority/{p}"),
            Counter::Resolved => "resolved".into(),
            Counter::ResolveMillis => "resolve_ms".into(),
        }
    }

    pub(crate) fn all() -> impl Iterator<Item = Counter> {
        [Counter::Total, Counter::Resolved, Counter::ResolveMillis]
            .into_iter()
            .chain(Status::ALL.iter().map(|s| Counter::Status(*s)))
            .chain(Category::ALL.iter().map(|c| Counter::Category(*c)))
            .chain(Priority::ALL.iter().map(|p| Counter::Priority(*p)))
    }

    pub(crate) fn from_name(name: &str) -> Option<Counter> {
        Counter::all().find(|c| c.name() == name)
    }
}

/// What one ticket adds to the counters.
fn contributions(t: &Ticket) -> impl Iterator<Item = (Counter, u64)> {
    let resolve = t.time_to_resolve().map(|d| d.as_millis() as u64);
    [
        Some((Counter::Total, 1)),
        Some((Counter::Status(t.status), 1)),
        Some((Counter::Category(t.category), 1)),
        Some((Counter::Priority(t.priority), 1)),
        resolve.map(|_| (Counter::Resolved, 1)),
        resolve.map(|ms| (Counter::ResolveMillis, ms)),
    ]
    .into_iter()
    .flatten()
}

/// The counter values. A counter that was never written reads as zero.
#[derive(Debug, Clone, Default)]
pub(crate) struct Counters(BTreeMap<Counter, u64>);

/// Equal when every counter reads the same (an absent counter equals a zero one).
impl PartialEq for Counters {
    fn eq(&self, other: &Self) -> bool {
        Counter::all().all(|c| self.get(c) == other.get(c))
    }
}

impl Counters {
    pub(crate) fn get(&self, c: Counter) -> u64 {
        self.0.get(&c).copied().unwrap_or(0)
    }

    pub(crate) fn set(&mut self, c: Counter, v: u64) {
        self.0.insert(c, v);
    }

    pub(crate) fn add(&mut self, t: &Ticket) {
        for (c, v) in contributions(t) {
            *self.0.entry(c).or_default() += v;
        }
    }

    fn sub(&mut self, t: &Ticket) {
        for (c, v) in contributions(t) {
            let e = self.0.entry(c).or_default();
            *e = e.saturating_sub(v);
        }
    }

    /// Replaces `old`'s contributions by `new`'s.
    pub(crate) fn replace(&mut self, old: Option<&Ticket>, new: &Ticket) {
        if let Some(old) = old {
            self.sub(old);
        }
        self.add(new);
    }

    /// Counters whose values differ between `self` (stored) and `expected`:
    /// `(name, stored, expected)`.
    pub(crate) fn differences(&self, expected: &Counters) -> Vec<(String, u64, u64)> {
        Counter::all()
            .filter(|c| self.get(*c) != expected.get(*c))
            .map(|c| (c.name(), self.get(c), expected.get(c)))
            .collect()
    }

    pub(crate) fn report(&self, sla_breached: u64, as_of: Timestamp) -> Stats {
        let by_status: BTreeMap<_, _> = Status::ALL.iter().map(|s| (*s, self.get(Counter::Status(*s)))).collect();
        let resolved = self.get(Counter::Resolved);
        Stats {
            total: self.get(Counter::Total),
            open_backlog: Status::ALL.iter().filter(|s| s.is_unresolved()).map(|s| by_status[s]).sum(),
            by_status,
            by_category: Category::ALL.iter().map(|c| (*c, self.get(Counter::Category(*c)))).collect(),
            by_priority: Priority::ALL.iter().map(|p| (*p, self.get(Counter::Priority(*p)))).collect(),
            resolved,
            mttr_seconds: (resolved > 0).then(|| self.get(Counter::ResolveMillis) as f64 / 1000.0 / resolved as f64),
            sla_breached,
            as_of,
        }
    }
}

/// Ticket statistics, read in O(1) from maintained counters.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    /// All tickets.
    pub total: u64,
    /// Tickets per status (every status present, zero included).
    pub by_status: BTreeMap<Status, u64>,
    /// Tickets per category.
    pub by_category: BTreeMap<Category, u64>,
    /// Tickets per priority.
    pub by_priority: BTreeMap<Priority, u64>,
    /// Unresolved tickets: open + in_progress + waiting.
    pub open_backlog: u64,
    /// Resolved or closed tickets.
    pub resolved: u64,
    /// Mean time from creation to resolution over resolved and closed tickets, in
    /// seconds; `None` before the first resolution.
    pub mttr_seconds: Option<f64>,
    /// Unresolved tickets past an SLA deadline (first response or resolution) right now.
    pub sla_breached: u64,
    /// When these figures were taken.
    pub as_of: Timestamp,
}
