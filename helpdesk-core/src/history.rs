//! The event history: one [`Event`] per change of a ticket, recording who, when, and each
//! field's old and new value. Events are append-only and keyed by the ticket version they
//! produced, so a ticket at version `v` has exactly the events `1..=v`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::Timestamp;
use crate::ticket::{Actor, TicketId, Visibility};

/// One change to a ticket.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The ticket changed.
    pub ticket_id: TicketId,
    /// The ticket version this change produced (1 for the creation).
    pub version: u64,
    /// When.
    pub at: Timestamp,
    /// Who.
    pub actor: Actor,
    /// What sort of change.
    pub kind: EventKind,
    /// Each field that changed, with old and new values (JSON). For a creation, every
    /// initial field with `old: null`.
    pub changes: Vec<FieldChange>,
    /// The comment, for [`EventKind::Commented`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<Comment>,
}

impl Event {
    /// Whether requesters must not see this event (an internal comment).
    pub fn is_internal(&self) -> bool {
        self.comment.as_ref().is_some_and(|c| c.visibility == Visibility::Internal)
    }

    /// The change to `field`, if this event changed it.
    pub fn change(&self, field: &str) -> Option<&FieldChange> {
        self.changes.iter().find(|c| c.field == field)
    }
}

/// The sort of change an [`Event`] records.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The ticket was created.
    Created,
    /// Fields changed (including status and assignment).
    Updated,
    /// A comment was added.
    Commented,
}

/// One field's old and new value.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    /// Field name as in [`crate::Ticket`].
    pub field: String,
    /// Value before (`null` when unset or on creation).
    pub old: Value,
    /// Value after.
    pub new: Value,
}

/// A comment on a ticket.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comment {
    /// The text.
    pub body: String,
    /// Public or internal.
    pub visibility: Visibility,
}
