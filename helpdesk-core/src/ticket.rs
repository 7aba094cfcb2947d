//! The ticket domain: [`Ticket`], its enums, the inputs that create and change it
//! ([`NewTicket`], [`TicketUpdate`], [`NewComment`]), who acts ([`Actor`]) and the
//! validation rules. Nothing here knows about storage.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

use crate::clock::Timestamp;
use crate::error::{Error, Result, ValidationErrors};

/// Longest title, in characters as sent (surrounding whitespace, trimmed when stored, counts).
pub const TITLE_MAX: usize = 200;
/// Longest description, comment body or resolution note, in characters.
pub const TEXT_MAX: usize = 10_000;
/// Longest submitter name, assignee or actor name, in characters.
pub const NAME_MAX: usize = 100;
/// Most tags on one ticket.
pub const TAGS_MAX: usize = 10;
/// Longest tag, in characters.
pub const TAG_MAX: usize = 32;
/// Longest e-mail address (RFC 5321 path limit).
pub const EMAIL_MAX: usize = 254;

/// Regular expressions that the OpenAPI schema gives for validated strings. Together with
/// each field's length limit (counted in characters of the string *as sent*, like JSON
/// Schema's `maxLength`) they accept exactly what the checks below accept, so generated
/// clients and fuzzers agree with the server. Whitespace around a value is allowed and
/// trimmed; the classes are spelt out rather than written `\s`, whose meaning differs between
/// ECMA-262, Python and Rust, and the trailing whitespace class also absorbs the newline that
/// Python's `$` would otherwise let through. A unit test checks the equivalence.
pub mod patterns {
    /// Unicode `White_Space`: what `str::trim` removes (`char::is_whitespace`).
    macro_rules! ws {
        () => {
            "[\\t\\n\\u000b\\u000c\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
        };
    }
    /// Neither whitespace nor a control character.
    macro_rules! visible {
        () => {
            "[^\\u0000-\\u001f\\u007f-\\u009f \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
        };
    }

    /// One line: no control characters, at least one visible character.
    pub const LINE: &str =
        concat!("^", ws!(), "*", visible!(), "(?:[^\\u0000-\\u001f\\u007f-\\u009f]*", visible!(), ")?", ws!(), "*$");
    /// Text: no control characters but tab and line breaks, at least one visible character.
    pub const TEXT: &str = concat!(
        "^",
        ws!(),
        "*",
        visible!(),
        "(?:[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*",
        visible!(),
        ")?",
        ws!(),
        "*$"
    );
    /// An e-mail address as `check_email` accepts it.
    pub const EMAIL: &str = concat!(
        "^", ws!(), "*",
        "[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+",
        ws!(), "*$"
    );
    /// A tag (letters are lowercased when stored).
    pub const TAG: &str = concat!("^", ws!(), "*[A-Za-z0-9._-]+", ws!(), "*$");
}

/// Marker types giving the OpenAPI schema of each kind of validated string (used as
/// `value_type` on the fields), so every field of a kind documents the same rule.
#[cfg(feature = "openapi")]
pub mod schema {
    use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
    use utoipa::openapi::RefOr;

    macro_rules! string_schema {
        ($($(#[$m:meta])* $name:ident: $min:expr, $max:expr, $pattern:expr;)+) => {$(
            $(#[$m])*
            pub struct $name;

            impl utoipa::PartialSchema for $name {
                fn schema() -> RefOr<Schema> {
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .min_length($min)
                        .max_length(Some($max))
                        .pattern(Some($pattern))
                        .into()
                }
            }

            impl utoipa::ToSchema for $name {}
        )+};
    }

    string_schema! {
        /// A title.
        Title: Some(1), super::TITLE_MAX, super::patterns::LINE;
        /// A person's or agent's name.
        Name: Some(1), super::NAME_MAX, super::patterns::LINE;
        /// A description, comment or resolution note.
        Text: Some(1), super::TEXT_MAX, super::patterns::TEXT;
        /// An e-mail address.
        Email: None, super::EMAIL_MAX, super::patterns::EMAIL;
        /// A tag.
        Tag: Some(1), super::TAG_MAX, super::patterns::TAG;
    }
}

/// A ticket's id: monotonic, starting at 1, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TicketId(pub u64);

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for TicketId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(1))
            .description(Some("Ticket id"))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for TicketId {}

impl fmt::Display for TicketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for TicketId {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(TicketId)
    }
}

/// Declares a closed set of lowercase names stored as one byte, with `ALL`, `as_str`,
/// `Display`, `FromStr` and the byte codec used in index keys.
macro_rules! code_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident = $code:literal, $text:literal;)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The lowercase name used in JSON and query strings.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)+ }
            }

            pub(crate) const fn code(self) -> u8 {
                match self { $($name::$variant => $code,)+ }
            }

            // Decoding index keys back to values is only needed by tests so far.
            #[allow(dead_code)]
            pub(crate) fn from_code(code: u8) -> Option<Self> {
                match code { $($code => Some($name::$variant),)+ _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = Error;

            fn from_str(s: &str) -> Result<Self> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(ValidationErrors::single(
                        $what,
                        "invalid",
                        format!(
                            "unknown {} {:?}; expected one of: {}",
                            $what,
                            s,
                            [$($text),+].join(", ")
                        ),
                    )),
                }
            }
        }
    };
}

code_enum! {
    /// What kind of problem a ticket is about.
    Category, "category" {
        /// Wi-Fi, wired network, VPN.
        Network = 1, "network";
        /// Login and password problems.
        Account = 2, "account";
        /// Lab and personal computers, printers.
        Hardware = 3, "hardware";
        /// Installed software and licences.
        Software = 4, "software";
        /// Mail delivery and mailboxes.
        Email = 5, "email";
        /// Anything else.
        Other = 6, "other";
    }
}

code_enum! {
    /// How urgent a ticket is; drives its SLA targets.
    Priority, "priority" {
        /// Can wait.
        Low = 1, "low";
        /// The default.
        Medium = 2, "medium";
        /// Blocks someone's work.
        High = 3, "high";
        /// Blocks many people (an outage).
        Critical = 4, "critical";
    }
}

code_enum! {
    /// Where a ticket is in its workflow; see [`crate::workflow`] for the legal moves.
    Status, "status" {
        /// New, not yet being worked on.
        Open = 1, "open";
        /// An agent is working on it.
        InProgress = 2, "in_progress";
        /// Waiting on the requester.
        Waiting = 3, "waiting";
        /// Fixed; may be reopened.
        Resolved = 4, "resolved";
        /// Done for good; read-only.
        Closed = 5, "closed";
    }
}

// Not derived: the variants are declared through `code_enum!`, which has no `#[default]`.
#[allow(clippy::derivable_impls)]
impl Default for Priority {
    fn default() -> Self {
        Priority::Medium
    }
}

impl Status {
    /// Whether the ticket still needs work (counts toward the open backlog and its SLA).
    pub const fn is_unresolved(self) -> bool {
        matches!(self, Status::Open | Status::InProgress | Status::Waiting)
    }
}

/// Who performs an action; recorded on every event.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// Display name or login of the person or system.
    pub name: String,
    /// What they act as.
    pub kind: ActorKind,
}

/// The capacity in which an [`Actor`] acts.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// IT staff. An agent's first status change or public comment is the ticket's first
    /// response for SLA purposes.
    Agent,
    /// The person who reported a problem.
    Requester,
    /// An automated process (imports, integrations).
    System,
}

impl Actor {
    /// An IT agent.
    pub fn agent(name: impl Into<String>) -> Self {
        Actor { name: name.into(), kind: ActorKind::Agent }
    }

    /// A requester (the person who reports problems).
    pub fn requester(name: impl Into<String>) -> Self {
        Actor { name: name.into(), kind: ActorKind::Requester }
    }

    /// An automated process.
    pub fn system(name: impl Into<String>) -> Self {
        Actor { name: name.into(), kind: ActorKind::System }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let mut errors = ValidationErrors::default();
        check_name(&mut errors, "actor.name", &self.name);
        errors.into_result()
    }
}

/// A ticket as stored and returned.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// Unique, monotonic id.
    pub id: TicketId,
    /// One-line summary, 1–200 characters.
    pub title: String,
    /// Full description, 1–10 000 characters.
    pub description: String,
    /// What the problem is about.
    pub category: Category,
    /// Urgency; drives the SLA due times.
    pub priority: Priority,
    /// Workflow state.
    pub status: Status,
    /// Requester's e-mail address, lowercased domain.
    pub submitter_email: String,
    /// Requester's name.
    pub submitter_name: String,
    /// Agent working on it, if any.
    pub assigned_to: Option<String>,
    /// How it was resolved; required to resolve, cleared on reopen.
    pub resolution_notes: Option<String>,
    /// Free labels (lowercase `[a-z0-9._-]`, at most 10).
    pub tags: BTreeSet<String>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// When an agent first responded (status change or public comment).
    pub first_response_at: Option<Timestamp>,
    /// When it was (last) resolved.
    pub resolved_at: Option<Timestamp>,
    /// When it was closed.
    pub closed_at: Option<Timestamp>,
    /// SLA: first response due by.
    pub first_response_due: Timestamp,
    /// SLA: resolution due by.
    pub resolution_due: Timestamp,
    /// Incremented on every change; starts at 1.
    pub version: u64,
}

/// Which SLA targets a ticket has missed, as of some time.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct SlaBreaches {
    /// First response came (or is still missing) after its due time.
    pub first_response: bool,
    /// Resolution came (or is still missing) after its due time.
    pub resolution: bool,
}

impl SlaBreaches {
    /// Whether any target was missed.
    pub fn any(self) -> bool {
        self.first_response || self.resolution
    }
}

impl Ticket {
    /// The earliest SLA deadline still pending, or `None` once the ticket is resolved or
    /// closed. A ticket is breached exactly when this lies in the past.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        if !self.status.is_unresolved() {
            return None;
        }
        Some(match self.first_response_at {
            None => self.first_response_due.min(self.resolution_due),
            Some(_) => self.resolution_due,
        })
    }

    /// The SLA targets this ticket has missed as of `now`.
    pub fn sla_breaches(&self, now: Timestamp) -> SlaBreaches {
        SlaBreaches {
            first_response: self.first_response_at.unwrap_or(now) > self.first_response_due,
            resolution: self.resolved_at.filter(|_| !self.status.is_unresolved()).unwrap_or(now) > self.resolution_due,
        }
    }

    /// Time from creation to resolution, for resolved and closed tickets.
    pub fn time_to_resolve(&self) -> Option<std::time::Duration> {
        match self.status {
            Status::Resolved | Status::Closed => self.resolved_at.map(|r| r.saturating_since(self.created_at)),
            _ => None,
        }
    }
}

/// Input to create a ticket.
///
/// ```
/// use helpdesk_core::{Category, NewTicket};
/// let new = NewTicket::new("VPN drops every 5 minutes", "Since Monday, on eduroam too.",
///     Category::Network, "ada@campus.example", "Ada Lovelace");
/// assert_eq!(new.priority, None); // medium unless said otherwise
/// ```
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTicket {
    /// One-line summary.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::ticket::schema::Title))]
    pub title: String,
    /// Full description.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::ticket::schema::Text))]
    pub description: String,
    /// What the problem is about.
    pub category: Category,
    /// Urgency; `medium` when absent.
    #[serde(default)]
    pub priority: Option<Priority>,
    /// Requester's e-mail address.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::ticket::schema::Email))]
    pub submitter_email: String,
    /// Requester's name.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::ticket::schema::Name))]
    pub submitter_name: String,
    /// Agent to assign at once.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::ticket::schema::Name>))]
    pub assigned_to: Option<String>,
    /// Labels.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<crate::ticket::schema::Tag>, max_items = 10))]
    pub tags: Vec<String>,
}

impl NewTicket {
    /// A new ticket with the required fields and defaults for the rest.
    pub fn new(
        title: impl Into<String>,
        description: impl Into<String>,
        category: Category,
        submitter_email: impl Into<String>,
        submitter_name: impl Into<String>,
    ) -> Self {
        NewTicket {
            title: title.into(),
            description: description.into(),
            category,
            priority: None,
            submitter_email: submitter_email.into(),
            submitter_name: submitter_name.into(),
            assigned_to: None,
            tags: Vec::new(),
        }
    }

    /// Set the priority.
    pub fn priority(mut self, p: Priority) -> Self {
        self.priority = Some(p);
        self
    }

    /// Set the tags.
    pub fn tags<I: IntoIterator<Item = S>, S: Into<String>>(mut self, tags: I) -> Self {
        self.tags = tags.into_iter().map(Into::into).collect();
        self
    }

    /// Assign at creation.
    pub fn assigned_to(mut self, agent: impl Into<String>) -> Self {
        self.assigned_to = Some(agent.into());
        self
    }

    /// Validate and normalise (trim, lowercase tags and e-mail domain), naming every bad field.
    pub(crate) fn validate(self) -> Result<NewTicket> {
        let mut errors = ValidationErrors::default();
        let title = check_text(&mut errors, "title", &self.title, TITLE_MAX, true);
        let description = check_text(&mut errors, "description", &self.description, TEXT_MAX, false);
        let submitter_email = check_email(&mut errors, "submitter_email", &self.submitter_email);
        let submitter_name = check_name(&mut errors, "submitter_name", &self.submitter_name);
        let assigned_to = self.assigned_to.as_deref().map(|a| check_name(&mut errors, "assigned_to", a));
        let tags = check_tags(&mut errors, &self.tags);
        errors.into_result()?;
        Ok(NewTicket {
            title,
            description,
            category: self.category,
            priority: Some(self.priority.unwrap_or_default()),
            submitter_email,
            submitter_name,
            assigned_to,
            tags: tags.into_iter().collect(),
        })
    }
}

/// A change to a ticket: every `Some` field is set, `None` fields are left alone.
///
/// `assigned_to: Some(None)` unassigns. Setting `status` runs the workflow rules;
/// resolving needs `resolution_notes` (here or already on the ticket). When `version` is
/// given the change applies only if the ticket is still at that version (optimistic
/// concurrency); otherwise it fails with [`Error::VersionConflict`].
///
/// ```
/// use helpdesk_core::{Status, TicketUpdate};
/// let resolve = TicketUpdate {
///     status: Some(Status::Resolved),
///     resolution_notes: Some("Reset the password and unlocked the account.".into()),
///     version: Some(3),
///     ..TicketUpdate::default()
/// };
/// assert!(!resolve.is_empty());
/// ```
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketUpdate {
    /// New title.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::ticket::schema::Title>))]
    pub title: Option<String>,
    /// New description.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::ticket::schema::Text>))]
    pub description: Option<String>,
    /// New category.
    #[serde(default)]
    pub category: Option<Category>,
    /// New priority (the SLA due times are recomputed from the creation time).
    #[serde(default)]
    pub priority: Option<Priority>,
    /// New status (must be a legal transition).
    #[serde(default)]
    pub status: Option<Status>,
    /// `Some(Some(agent))` assigns, `Some(None)` (JSON `null`) unassigns.
    #[serde(default, deserialize_with = "present_or_null")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::ticket::schema::Name>))]
    pub assigned_to: Option<Option<String>>,
    /// Resolution notes.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::ticket::schema::Text>))]
    pub resolution_notes: Option<String>,
    /// Replaces the whole tag set.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<crate::ticket::schema::Tag>>, max_items = 10))]
    pub tags: Option<Vec<String>>,
    /// Expected current version (optimistic concurrency).
    #[serde(default, deserialize_with = "integral_version")]
    pub version: Option<u64>,
}

/// A version number; `3.0` is accepted as `3` (JSON does not distinguish them, and JSON
/// Schema calls both integers).
pub fn integral_version<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Option::<f64>::deserialize(d)? {
        None => Ok(None),
        Some(v) if v >= 0.0 && v.fract() == 0.0 && v <= u64::MAX as f64 => Ok(Some(v as u64)),
        Some(v) => Err(serde::de::Error::custom(format!("{v} is not a version number"))),
    }
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present_or_null<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

impl TicketUpdate {
    /// Whether the update would change no field.
    pub fn is_empty(&self) -> bool {
        self.title.is_none()
            && self.description.is_none()
            && self.category.is_none()
            && self.priority.is_none()
            && self.status.is_none()
            && self.assigned_to.is_none()
            && self.resolution_notes.is_none()
            && self.tags.is_none()
    }

    /// Validate and normalise every present field, naming every bad one.
    pub(crate) fn validate(self) -> Result<TicketUpdate> {
        let mut errors = ValidationErrors::default();
        if self.is_empty() {
            errors.add("", "required", "the update changes no field");
        }
        let title = self.title.map(|t| check_text(&mut errors, "title", &t, TITLE_MAX, true));
        let description = self.description.map(|d| check_text(&mut errors, "description", &d, TEXT_MAX, false));
        let assigned_to = self.assigned_to.map(|a| a.map(|a| check_name(&mut errors, "assigned_to", &a)));
        let resolution_notes =
            self.resolution_notes.map(|n| check_text(&mut errors, "resolution_notes", &n, TEXT_MAX, false));
        let tags = self.tags.map(|t| check_tags(&mut errors, &t).into_iter().collect());
        errors.into_result()?;
        Ok(TicketUpdate { title, description, assigned_to, resolution_notes, tags, ..self })
    }
}

/// Whether a comment is shown to the requester.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Everyone who can see the ticket.
    #[default]
    Public,
    /// IT staff only.
    Internal,
}

/// Input to add a comment.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewComment {
    /// The text, 1–10 000 characters.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::ticket::schema::Text))]
    pub body: String,
    /// Public (default) or internal.
    #[serde(default)]
    pub visibility: Visibility,
}

impl NewComment {
    /// A public comment.
    pub fn public(body: impl Into<String>) -> Self {
        NewComment { body: body.into(), visibility: Visibility::Public }
    }

    /// An internal (agents only) comment.
    pub fn internal(body: impl Into<String>) -> Self {
        NewComment { body: body.into(), visibility: Visibility::Internal }
    }

    pub(crate) fn validate(self) -> Result<NewComment> {
        let mut errors = ValidationErrors::default();
        let body = check_text(&mut errors, "body", &self.body, TEXT_MAX, false);
        errors.into_result()?;
        Ok(NewComment { body, ..self })
    }
}

/// Trims `value` and checks its length and characters. Single-line fields also refuse
/// line breaks; all refuse other control characters (they break logs and terminals).
fn check_text(errors: &mut ValidationErrors, field: &str, value: &str, max: usize, single_line: bool) -> String {
    let trimmed = value.trim();
    // The limit applies to the value as sent, as the published schema's `maxLength` does.
    let len = value.chars().count();
    if trimmed.is_empty() {
        errors.add(field, "required", format!("{field} must not be empty"));
    } else if len > max {
        errors.add(field, "too_long", format!("{field} is {len} characters; at most {max} allowed"));
    }
    let bad_char = trimmed.chars().any(|c| c.is_control() && (single_line || !matches!(c, '\n' | '\r' | '\t')));
    if bad_char {
        errors.add(field, "invalid", format!("{field} contains control characters"));
    }
    trimmed.to_owned()
}

fn check_name(errors: &mut ValidationErrors, field: &str, value: &str) -> String {
    check_text(errors, field, value, NAME_MAX, true)
}

/// A pragmatic address check: the HTML living standard's "valid e-mail address" rule
/// (what browsers accept in `<input type=email>`) plus a dot in the domain and RFC 5321's
/// length limits. The domain is lowercased; the local part is kept as given.
fn check_email(errors: &mut ValidationErrors, field: &str, raw: &str) -> String {
    let value = raw.trim();
    let fail = |errors: &mut ValidationErrors, why: &str| {
        errors.add(field, "invalid", format!("{field} is not a valid e-mail address: {why}"));
    };
    if value.is_empty() {
        errors.add(field, "required", format!("{field} must not be empty"));
        return String::new();
    }
    if raw.chars().count() > EMAIL_MAX {
        errors.add(field, "too_long", format!("{field} is longer than {EMAIL_MAX} characters"));
        return value.to_owned();
    }
    let Some((local, domain)) = value.rsplit_once('@') else {
        fail(errors, "missing '@'");
        return value.to_owned();
    };
    const LOCAL_SPECIALS: &str = ".!#$%&'*+/=?^_`{|}~-";
    if local.is_empty() || local.len() > 64 {
        fail(errors, "the part before '@' must be 1 to 64 characters");
    } else if !local.chars().all(|c| c.is_ascii_alphanumeric() || LOCAL_SPECIALS.contains(c)) {
        fail(errors, "the part before '@' has characters not allowed in an address");
    } else if !domain.contains('.') {
        fail(errors, "the domain needs a dot");
    } else if !domain.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    }) {
        fail(errors, "the domain is not a valid host name");
    }
    format!("{local}@{}", domain.to_ascii_lowercase())
}

fn check_tags(errors: &mut ValidationErrors, tags: &[String]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if tags.len() > TAGS_MAX {
        errors.add("tags", "too_many", format!("{} tags given; at most {TAGS_MAX} allowed", tags.len()));
    }
    for (i, raw) in tags.iter().enumerate() {
        let tag = raw.trim();
        let field = format!("tags[{i}]");
        if tag.is_empty() {
            errors.add(field, "required", "a tag must not be empty");
        } else if raw.chars().count() > TAG_MAX {
            errors.add(field, "too_long", format!("a tag is at most {TAG_MAX} characters"));
        } else if !tag.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
            // Checked before lowercasing: `to_lowercase` maps some non-ASCII letters (the
            // Kelvin sign) onto ASCII ones.
            errors.add(field, "invalid", "tags may only use a-z, 0-9, '-', '_' and '.'");
        } else {
            out.insert(tag.to_ascii_lowercase());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Which rule a published pattern stands for, with its length limits and the check.
    struct Kind {
        pattern: &'static str,
        max: usize,
        check: fn(&str) -> bool,
    }

    fn checked(f: impl FnOnce(&mut ValidationErrors)) -> bool {
        let mut errors = ValidationErrors::default();
        f(&mut errors);
        errors.0.is_empty()
    }

    const KINDS: [Kind; 5] = [
        Kind {
            pattern: patterns::LINE,
            max: TITLE_MAX,
            check: |s| checked(|e| _ = check_text(e, "f", s, TITLE_MAX, true)),
        },
        Kind { pattern: patterns::LINE, max: NAME_MAX, check: |s| checked(|e| _ = check_name(e, "f", s)) },
        Kind {
            pattern: patterns::TEXT,
            max: TEXT_MAX,
            check: |s| checked(|e| _ = check_text(e, "f", s, TEXT_MAX, false)),
        },
        Kind { pattern: patterns::EMAIL, max: EMAIL_MAX, check: |s| checked(|e| _ = check_email(e, "f", s)) },
        Kind { pattern: patterns::TAG, max: TAG_MAX, check: |s| checked(|e| _ = check_tags(e, &[s.to_owned()])) },
    ];

    /// What a JSON Schema validator decides from the published pattern and `maxLength`.
    /// (The `regex` crate's `$` matches only at the end, as ECMA-262's does.)
    fn schema_accepts(kind: &Kind, re: &regex::Regex, s: &str) -> bool {
        s.chars().count() <= kind.max && re.is_match(s)
    }

    #[test]
    fn whitespace_class_is_what_trim_removes() {
        let re = regex::Regex::new(patterns::TAG).unwrap();
        let tag_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32).filter(|&c| !tag_char(c)) {
            assert_eq!(re.is_match(&format!("{c}a")), c.is_whitespace(), "U+{:04X}", c as u32);
        }
    }

    /// Characters where the schema and the checks could plausibly disagree.
    const ALPHABET: &[char] = &[
        'a', 'Z', '0', '.', '-', '_', '@', '!', ' ', '\t', '\n', '\r', '\u{b}', '\u{c}', '\u{1}', '\u{1c}', '\u{7f}',
        '\u{85}', '\u{a0}', '\u{2003}', '\u{3000}', '\u{feff}', '\u{200b}', 'é', '\u{212a}', 'İ',
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn published_patterns_accept_exactly_what_validation_accepts(
            head in proptest::collection::vec(proptest::sample::select(ALPHABET), 0..8),
            middle in proptest::sample::select(&[0usize, 1, 2, 30, 31, 32, 33, 99, 100, 101, 199, 200, 201, 9_999, 10_000, 10_001][..]),
            tail in proptest::collection::vec(proptest::sample::select(ALPHABET), 0..8),
            at in proptest::bool::ANY,
        ) {
            // Long runs of a plain letter, with an '@' and a domain to make e-mail addresses.
            let mut s: String = head.into_iter().collect();
            s.push_str(&"a".repeat(middle.min(60)));
            if at { s.push_str("@x.example"); }
            s.extend(std::iter::repeat_n('a', middle.saturating_sub(60)));
            s.extend(tail);
            static COMPILED: std::sync::LazyLock<Vec<regex::Regex>> =
                std::sync::LazyLock::new(|| KINDS.iter().map(|k| regex::Regex::new(k.pattern).unwrap()).collect());
            for (kind, re) in KINDS.iter().zip(COMPILED.iter()) {
                prop_assert_eq!(schema_accepts(kind, re, &s), (kind.check)(&s), "{:?} against {}", s, kind.pattern);
            }
        }
    }

    fn email(value: &str) -> std::result::Result<String, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let out = check_email(&mut errors, "submitter_email", value);
        if errors.0.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }

    #[test]
    fn email_accepts_common_addresses_and_lowercases_domain() {
        assert_eq!(email(" Ada.Lovelace+it@Campus.Example ").unwrap(), "Ada.Lovelace+it@campus.example");
        assert!(email("x@a.b").is_ok());
    }

    #[test]
    fn email_rejects_malformed_addresses() {
        for bad in [
            "",
            "plain",
            "@campus.example",
            "a@",
            "a@localhost",
            "a b@campus.example",
            "a@campus..example",
            "a@-campus.example",
            "a@campus_x.example",
            "a\"b@campus.example",
        ] {
            let err = email(bad).expect_err(bad);
            assert!(err.has("submitter_email"), "{bad}: {err}");
        }
        let long = format!("{}@campus.example", "a".repeat(65));
        assert!(email(&long).is_err());
        let huge = format!("a@{}.example", "b".repeat(250));
        assert_eq!(email(&huge).unwrap_err().0[0].code, "too_long");
    }

    #[test]
    fn text_is_trimmed_and_bounded_in_characters_not_bytes() {
        let mut errors = ValidationErrors::default();
        assert_eq!(check_text(&mut errors, "title", "  hi  ", 200, true), "hi");
        let accented = "é".repeat(200);
        check_text(&mut errors, "title", &accented, 200, true);
        assert!(errors.0.is_empty());
        check_text(&mut errors, "title", &"é".repeat(201), 200, true);
        assert_eq!(errors.0[0].code, "too_long");
    }

    #[test]
    fn single_line_fields_refuse_newlines_but_descriptions_keep_them() {
        let mut errors = ValidationErrors::default();
        check_text(&mut errors, "description", "line one\nline two\ttab", TEXT_MAX, false);
        assert!(errors.0.is_empty());
        check_text(&mut errors, "title", "line one\nline two", TITLE_MAX, true);
        check_text(&mut errors, "description", "bell\u{7}", TEXT_MAX, false);
        assert_eq!(errors.0.len(), 2);
    }

    #[test]
    fn enum_names_round_trip_and_unknown_names_name_the_field() {
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>().unwrap(), *s);
            assert_eq!(Status::from_code(s.code()), Some(*s));
        }
        let Err(Error::Validation(e)) = "urgent".parse::<Priority>() else { panic!() };
        assert!(e.has("priority"));
        assert_eq!(Category::from_code(0), None);
    }
}
