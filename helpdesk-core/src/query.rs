//! Listing tickets: [`Filter`], [`ListQuery`], the opaque [`Cursor`] and the [`Page`]
//! returned. Results are newest first (by creation time, then id).
//!
//! Every filter is served from an index whose keys end in the same
//! `(creation time, id)` suffix, so several filters are intersected by a merge join that
//! seeks, and a page costs O(page size x filters) index seeks, not O(tickets).

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::error::{Error, Result, ValidationErrors};
use crate::ticket::{Category, Priority, Status, Ticket, TicketId};

/// Largest page [`ListQuery::limit`] may ask for.
pub const MAX_LIMIT: usize = 1000;
/// Page size when none is given.
pub const DEFAULT_LIMIT: usize = 50;
/// Most index entries one page examines. Only the unindexed [`Filter::text`] condition can
/// reject entries the indexes selected, so only text searches ever reach this bound; they
/// then return a short (possibly empty) page with a cursor to continue.
pub const SCAN_BUDGET: usize = 10_000;
/// Longest [`Filter::text`], in characters.
pub const TEXT_QUERY_MAX: usize = 200;

/// Conditions a listed ticket must all meet. Empty means every ticket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Filter {
    /// Only this status.
    pub status: Option<Status>,
    /// Only this category.
    pub category: Option<Category>,
    /// Only this priority.
    pub priority: Option<Priority>,
    /// Only tickets assigned to this agent (exact name).
    pub assigned_to: Option<String>,
    /// Only unassigned tickets (with `assigned_to` as well, nothing matches).
    pub unassigned: bool,
    /// Only tickets from this submitter (case-insensitive).
    pub submitter_email: Option<String>,
    /// Only tickets carrying this tag.
    pub tag: Option<String>,
    /// Only tickets created at or after this time.
    pub created_from: Option<Timestamp>,
    /// Only tickets created strictly before this time.
    pub created_before: Option<Timestamp>,
    /// Only tickets whose title or description contains this text, ignoring case. Not
    /// indexed: combine it with indexed filters to keep searches short (see
    /// [`SCAN_BUDGET`]).
    pub text: Option<String>,
}

impl Filter {
    /// Whether `t` meets every condition.
    pub fn matches(&self, t: &Ticket) -> bool {
        self.status.is_none_or(|s| t.status == s)
            && self.category.is_none_or(|c| t.category == c)
            && self.priority.is_none_or(|p| t.priority == p)
            && self.assigned_to.as_deref().is_none_or(|a| t.assigned_to.as_deref() == Some(a))
            && (!self.unassigned || t.assigned_to.is_none())
            && self.submitter_email.as_deref().is_none_or(|e| t.submitter_email.eq_ignore_ascii_case(e.trim()))
            && self.tag.as_deref().is_none_or(|g| t.tags.contains(&g.trim().to_lowercase()))
            && self.created_from.is_none_or(|from| t.created_at >= from)
            && self.created_before.is_none_or(|before| t.created_at < before)
            && self.text.as_deref().is_none_or(|q| {
                let q = q.trim().to_lowercase();
                t.title.to_lowercase().contains(&q) || t.description.to_lowercase().contains(&q)
            })
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let mut errors = ValidationErrors::default();
        if self.text.as_deref().is_some_and(|q| q.chars().count() > TEXT_QUERY_MAX) {
            errors.add("text", "too_long", format!("text is at most {TEXT_QUERY_MAX} characters"));
        }
        for (field, value) in [
            ("assigned_to", &self.assigned_to),
            ("submitter_email", &self.submitter_email),
            ("tag", &self.tag),
            ("text", &self.text),
        ] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty() || v.contains('\0')) {
                errors.add(field, "invalid", format!("{field} must be a non-empty string"));
            }
        }
        errors.into_result()
    }
}

/// A page request: a filter, a page size and where to continue from.
///
/// ```
/// use helpdesk_core::{Filter, ListQuery, Status};
/// let q = ListQuery::new(Filter { status: Some(Status::Open), ..Filter::default() }).limit(20);
/// assert_eq!(q.limit, 20);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// Conditions.
    pub filter: Filter,
    /// Page size, 1..=[`MAX_LIMIT`].
    pub limit: usize,
    /// Continue after the last ticket of a previous page.
    pub cursor: Option<Cursor>,
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery::new(Filter::default())
    }
}

impl ListQuery {
    /// First page of `filter`, [`DEFAULT_LIMIT`] tickets.
    pub fn new(filter: Filter) -> Self {
        ListQuery { filter, limit: DEFAULT_LIMIT, cursor: None }
    }

    /// Set the page size.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Continue from a cursor.
    pub fn after(mut self, cursor: Option<Cursor>) -> Self {
        self.cursor = cursor;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        self.filter.validate()?;
        if self.limit == 0 || self.limit > MAX_LIMIT {
            return Err(ValidationErrors::single(
                "limit",
                "invalid",
                format!("limit must be between 1 and {MAX_LIMIT}"),
            ));
        }
        Ok(())
    }
}

/// One page of tickets, newest first.
///
/// A page holds `limit` tickets unless it is the last one — or, for a text search that hit
/// [`SCAN_BUDGET`], fewer (even none) with a `next_cursor` to continue. So page on while
/// `next_cursor` is present; do not stop at a short page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Page {
    /// The tickets.
    pub tickets: Vec<Ticket>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<Cursor>,
}

/// An opaque position in a listing: pass [`Page::next_cursor`] back to get the next page.
/// Its text form is URL-safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cursor {
    pub(crate) created: Timestamp,
    pub(crate) id: TicketId,
}

const CURSOR_VERSION: u8 = 1;

impl Cursor {
    pub(crate) fn after(t: &Ticket) -> Self {
        Cursor { created: t.created_at, id: t.id }
    }

    pub(crate) fn at(created: Timestamp, id: TicketId) -> Self {
        Cursor { created, id }
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut raw = [0u8; 17];
        raw[0] = CURSOR_VERSION;
        raw[1..9].copy_from_slice(&self.created.as_millis().to_be_bytes());
        raw[9..].copy_from_slice(&self.id.0.to_be_bytes());
        f.write_str(&URL_SAFE_NO_PAD.encode(raw))
    }
}

impl FromStr for Cursor {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::InvalidCursor(format!("{s:?} is not a cursor returned by a listing"));
        let raw = URL_SAFE_NO_PAD.decode(s.trim()).map_err(|_| bad())?;
        if raw.len() != 17 || raw[0] != CURSOR_VERSION {
            return Err(bad());
        }
        let created = u64::from_be_bytes(raw[1..9].try_into().map_err(|_| bad())?);
        let id = u64::from_be_bytes(raw[9..].try_into().map_err(|_| bad())?);
        Ok(Cursor { created: Timestamp::from_millis(created), id: TicketId(id) })
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Cursor {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new().schema_type(Type::String).description(Some("Opaque pagination cursor")).into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Cursor {}

impl Serialize for Cursor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cursor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = Cursor { created: Timestamp::from_millis(123_456), id: TicketId(42) };
        assert_eq!(c.to_string().parse::<Cursor>().unwrap(), c);
        for bad in ["", "abc", "!!!!", &URL_SAFE_NO_PAD.encode([2u8; 17]), &URL_SAFE_NO_PAD.encode([1u8; 16])] {
            assert!(matches!(bad.parse::<Cursor>(), Err(Error::InvalidCursor(_))), "{bad}");
        }
    }

    #[test]
    fn limit_and_filter_conflicts_are_validation_errors() {
        let Err(Error::Validation(e)) = ListQuery::default().limit(0).validate() else { panic!() };
        assert!(e.has("limit"));
        assert!(ListQuery::default().limit(MAX_LIMIT + 1).validate().is_err());
        let f = Filter { unassigned: true, assigned_to: Some("bob".into()), ..Filter::default() };
        assert!(ListQuery::new(f).validate().is_ok(), "an empty intersection is not an error");
        let f = Filter { tag: Some(" ".into()), ..Filter::default() };
        assert!(ListQuery::new(f).validate().is_err());
    }
}
