//! `/api/v1/tickets`: create, list, get, update (PUT/PATCH), comments and history.

use std::collections::BTreeSet;
use std::io::Cursor as IoCursor;

use helpdesk_core::{
    Category, Cursor, Event, Filter, ListQuery, NewComment, NewTicket, Priority, Status as TicketStatus, Ticket,
    TicketId, TicketUpdate, Timestamp, Visibility,
};
use rocket::http::uri::Origin;
use rocket::http::{ContentType, Header, Status};
use rocket::request::Request;
use rocket::response::{self, Responder, Response};
use rocket::serde::json::Json;
use rocket::{get, patch, post, put, routes, FromForm, Route, State};
use serde::{Deserialize, Serialize};

use super::{IdParam, IdempotencyKey, IfMatch, IfNoneMatch, JsonBody};
use crate::auth::{Principal, Staff};
use crate::error::ApiError;
use crate::{blocking, AppState};

/// The ticket routes.
pub fn routes() -> Vec<Route> {
    routes![create, list, get, patch, put, add_comment, history]
}

/// The strong entity tag of a ticket version.
pub fn etag(t: &Ticket) -> String {
    format!("\"v{}\"", t.version)
}

/// A ticket with its `ETag`, and for creations its `Location`.
pub struct TicketResponse {
    status: Status,
    ticket: Option<Ticket>,
    etag: String,
    location: Option<String>,
    replayed: bool,
}

impl TicketResponse {
    fn ok(t: Ticket) -> Self {
        TicketResponse { status: Status::Ok, etag: etag(&t), ticket: Some(t), location: None, replayed: false }
    }
}

impl<'r> Responder<'r, 'static> for TicketResponse {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let mut res = Response::build();
        res.status(self.status).header(Header::new("ETag", self.etag));
        if let Some(t) = &self.ticket {
            let body = serde_json::to_string(t).map_err(|_| Status::InternalServerError)?;
            res.header(ContentType::JSON).sized_body(body.len(), IoCursor::new(body));
        }
        if let Some(loc) = self.location {
            res.header(Header::new("Location", loc));
        }
        if self.replayed {
            res.header(Header::new("Idempotent-Replayed", "true"));
        }
        res.ok()
    }
}

fn location(id: TicketId) -> String {
    format!("/api/v1/tickets/{id}")
}

/// Create a ticket. Reporters may only file tickets under their own e-mail address.
/// With `Idempotency-Key`, a repeated request returns the ticket the first one created.
#[utoipa::path(
    post, path = "/api/v1/tickets", tag = "tickets",
    request_body = NewTicket,
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$",
            description = "Makes retries safe: the same key and body create one ticket")),
    responses(
        (status = 201, description = "Created (or replayed)", body = Ticket,
         headers(("Location" = String, description = "URL of the ticket"), ("ETag" = String, description = "Version tag"))),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 401, response = crate::api::openapi::Unauthorized),
        (status = 403, response = crate::api::openapi::Forbidden),
        (status = 409, response = crate::api::openapi::Conflict),
        (status = 413, response = crate::api::openapi::TooLarge),
        (status = 415, response = crate::api::openapi::UnsupportedMediaType),
        (status = 422, response = crate::api::openapi::Unprocessable),
        (status = 503, response = crate::api::openapi::Unavailable),
    ),
    security(("bearer" = []))
)]
#[post("/api/v1/tickets", data = "<body>")]
pub async fn create(
    state: &State<AppState>,
    who: Result<Principal, ApiError>,
    key: IdempotencyKey,
    body: Result<JsonBody<NewTicket>, ApiError>,
) -> Result<TicketResponse, ApiError> {
    let who = who?;
    let JsonBody(new) = body?;
    if !who.may_see(&new.submitter_email) {
        return Err(ApiError::forbidden("reporters can only file tickets under their own e-mail address"));
    }
    let actor = who.actor();
    // The engine's async writes wait for the writer thread and the flush without holding a
    // thread of the blocking pool.
    let (ticket, created) = match key.0 {
        Some(k) => state.desk.create_idempotent_async(&k, new, &actor).await?,
        None => (state.desk.create_async(new, &actor).await?, true),
    };
    Ok(TicketResponse {
        status: Status::Created,
        etag: etag(&ticket),
        location: Some(location(ticket.id)),
        ticket: Some(ticket),
        replayed: !created,
    })
}

/// Query parameters of a listing. All are optional and combine with AND.
#[derive(Debug, Default, FromForm, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only this status.
    #[param(value_type = Option<TicketStatus>)]
    status: Option<String>,
    /// Only this category.
    #[param(value_type = Option<Category>)]
    category: Option<String>,
    /// Only this priority.
    #[param(value_type = Option<Priority>)]
    priority: Option<String>,
    /// Only tickets assigned to this agent.
    #[param(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    assigned_to: Option<String>,
    /// `true`: only unassigned tickets.
    #[param(value_type = Option<bool>)]
    unassigned: Option<String>,
    /// Only tickets from this submitter (case-insensitive). Reporters always see only their own.
    #[param(
        min_length = 1,
        max_length = 254,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    submitter_email: Option<String>,
    /// Only tickets with this tag.
    #[param(min_length = 1, max_length = 32, pattern = "^[A-Za-z0-9._-]{1,32}$")]
    tag: Option<String>,
    /// Text that the title or description must contain (case-insensitive).
    #[param(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    q: Option<String>,
    /// Only tickets created at or after this RFC 3339 time.
    #[param(value_type = Option<String>, format = DateTime)]
    created_from: Option<String>,
    /// Only tickets created before this RFC 3339 time.
    #[param(value_type = Option<String>, format = DateTime)]
    created_before: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^A[Q-Za-f][A-Za-z0-9_-]{20}[AEIMQUYcgkosw048]$")]
    cursor: Option<String>,
}

/// A page of tickets.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TicketPage {
    /// Tickets, newest first.
    pub tickets: Vec<Ticket>,
    /// Cursor of the next page; `null` on the last page.
    pub next_cursor: Option<String>,
    /// URL of the next page; `null` on the last page.
    pub next: Option<String>,
}

fn parse<T: std::str::FromStr>(field: &str, value: &Option<String>, what: &str) -> Result<Option<T>, ApiError> {
    match value.as_deref() {
        None => Ok(None),
        Some(v) => {
            v.trim().parse().map(Some).map_err(|_| ApiError::invalid_field(field, format!("{v:?} is not {what}")))
        }
    }
}

/// A one-line text parameter: not blank, no control characters, at most `max` characters.
fn check_line(field: &str, value: &Option<String>, max: usize) -> Result<(), ApiError> {
    let Some(v) = value else { return Ok(()) };
    if v.trim().is_empty() || v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(
            field,
            format!("must be 1 to {max} characters, not blank, without control characters"),
        ));
    }
    Ok(())
}

/// An RFC 3339 time; times before 1970 are clamped to the epoch.
fn parse_time(field: &str, value: &Option<String>) -> Result<Option<Timestamp>, ApiError> {
    value
        .as_deref()
        .map(|v| {
            Timestamp::parse_clamped(v)
                .map_err(|_| ApiError::invalid_field(field, format!("{v:?} is not an RFC 3339 time")))
        })
        .transpose()
}

/// A parameter given twice is ambiguous: refuse it rather than pick one.
fn reject_repeated(uri: &Origin<'_>) -> Result<(), ApiError> {
    let mut seen = BTreeSet::new();
    for pair in uri.query().map(|q| q.as_str()).unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        // Compare decoded names: `stat%75s` is `status`.
        let raw = pair.split('=').next().unwrap_or(pair);
        let name = rocket::http::RawStr::new(raw).url_decode_lossy().into_owned();
        if !seen.insert(name.clone()) {
            return Err(ApiError::invalid_field(&name, "given more than once"));
        }
    }
    Ok(())
}

fn parse_enum<T: std::str::FromStr<Err = helpdesk_core::Error>>(value: &Option<String>) -> Result<Option<T>, ApiError> {
    value.as_deref().map(|v| v.trim().parse::<T>().map_err(ApiError::from)).transpose()
}

impl ListParams {
    fn to_query(&self, who: &Principal) -> Result<ListQuery, ApiError> {
        let unassigned = match self.unassigned.as_deref().map(str::trim) {
            None | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(v) => return Err(ApiError::invalid_field("unassigned", format!("{v:?} is not true or false"))),
        };
        let mut submitter_email = self.submitter_email.clone();
        if !who.is_staff() {
            let own = who.email.clone().unwrap_or_default();
            match &submitter_email {
                Some(e) if !e.trim().eq_ignore_ascii_case(&own) => {
                    return Err(ApiError::forbidden("reporters can only list their own tickets"))
                }
                _ => submitter_email = Some(own),
            }
        }
        check_line("assigned_to", &self.assigned_to, 100)?;
        check_line("submitter_email", &self.submitter_email, 254)?;
        check_line("q", &self.q, helpdesk_core::query::TEXT_QUERY_MAX)?;
        if let Some(tag) = &self.tag {
            let ok = (1..=32).contains(&tag.len())
                && tag.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
            if !ok {
                return Err(ApiError::invalid_field("tag", "a tag is 1 to 32 of a-z, A-Z, 0-9, '.', '_', '-'"));
            }
        }
        let filter = Filter {
            status: parse_enum(&self.status)?,
            category: parse_enum(&self.category)?,
            priority: parse_enum(&self.priority)?,
            assigned_to: self.assigned_to.clone(),
            unassigned,
            submitter_email,
            tag: self.tag.clone(),
            text: self.q.clone(),
            created_from: parse_time("created_from", &self.created_from)?,
            created_before: parse_time("created_before", &self.created_before)?,
        };
        let limit = parse::<usize>("limit", &self.limit, "a page size")?.unwrap_or(helpdesk_core::query::DEFAULT_LIMIT);
        let cursor = self.cursor.as_deref().map(str::parse::<Cursor>).transpose()?;
        Ok(ListQuery::new(filter).limit(limit).after(cursor))
    }
}

/// The request's query with `cursor` replaced.
fn next_url(uri: &Origin<'_>, cursor: &str) -> String {
    let mut parts: Vec<String> = uri
        .query()
        .map(|q| {
            q.as_str().split('&').filter(|p| !p.is_empty() && !p.starts_with("cursor=")).map(str::to_owned).collect()
        })
        .unwrap_or_default();
    parts.push(format!("cursor={cursor}"));
    format!("{}?{}", uri.path(), parts.join("&"))
}

/// List tickets, newest first, with filters and cursor pagination. Keep paging while
/// `next_cursor` is present (a text search may return short pages).
#[utoipa::path(
    get, path = "/api/v1/tickets", tag = "tickets",
    params(ListParams),
    responses(
        (status = 200, description = "A page of tickets", body = TicketPage),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 401, response = crate::api::openapi::Unauthorized),
        (status = 403, response = crate::api::openapi::Forbidden),
        (status = 422, response = crate::api::openapi::Unprocessable),
        (status = 503, response = crate::api::openapi::Unavailable),
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/tickets?<params..>")]
pub async fn list(
    state: &State<AppState>,
    who: Result<Principal, ApiError>,
    uri: &Origin<'_>,
    params: ListParams,
) -> Result<Json<TicketPage>, ApiError> {
    let who = who?;
    reject_repeated(uri)?;
    let query = params.to_query(&who)?;
    let desk = state.desk.clone();
    // `q` is checked above with the same rules the engine applies to its text filter, so
    // engine errors never need renaming from `text` to `q`.
    let page = blocking(move || desk.list(&query)).await?;
    let next_cursor = page.next_cursor.map(|c| c.to_string());
    let next = next_cursor.as_deref().map(|c| next_url(uri, c));
    Ok(Json(TicketPage { tickets: page.tickets, next_cursor, next }))
}

/// Loads a ticket the caller may see: 404 if absent, 403 if it is someone else's.
///
/// The read runs on the async worker itself: it is one key lookup in sled's page cache
/// (microseconds), cheaper than the two thread hand-offs of the blocking pool. Reads that
/// scan (list, history, stats) still go to the blocking pool.
async fn visible(state: &AppState, who: &Principal, id: TicketId) -> Result<Ticket, ApiError> {
    let t = state.desk.get(id)?;
    if !who.may_see(&t.submitter_email) {
        return Err(ApiError::forbidden("reporters can only see their own tickets"));
    }
    Ok(t)
}

/// Get one ticket. `If-None-Match` with its current `ETag` gives 304 (conditional
/// request headers follow RFC 9110 and are not listed as parameters).
#[utoipa::path(
    get, path = "/api/v1/tickets/{id}", tag = "tickets",
    params(("id" = u64, Path, description = "Ticket id", minimum = 1)),
    responses(
        (status = 200, description = "The ticket", body = Ticket, headers(("ETag" = String, description = "Version tag"))),
        (status = 304, description = "Not modified since the given ETag"),
        (status = 401, response = crate::api::openapi::Unauthorized),
        (status = 403, response = crate::api::openapi::Forbidden),
        (status = 404, response = crate::api::openapi::NotFound),
        (status = 503, response = crate::api::openapi::Unavailable),
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/tickets/<id>")]
pub async fn get(
    state: &State<AppState>,
    who: Result<Principal, ApiError>,
    id: Result<IdParam, ApiError>,
    if_none_match: IfNoneMatch,
) -> Result<TicketResponse, ApiError> {
    let who = who?;
    let t = visible(state, &who, id?.0).await?;
    let tag = etag(&t);
    // If-None-Match uses weak comparison: W/"v3" matches "v3".
    let matches = |v: &str| {
        let v = v.trim();
        v == "*" || v.strip_prefix("W/").unwrap_or(v) == tag
    };
    if if_none_match.0.as_deref().is_some_and(|h| h.split(',').any(matches)) {
        return Ok(TicketResponse {
            status: Status::NotModified,
            ticket: None,
            etag: tag,
            location: None,
            replayed: false,
        });
    }
    Ok(TicketResponse::ok(t))
}

/// Versions an `If-Match` header accepts: `None` for `*`.
fn if_match_versions(header: &str) -> Option<BTreeSet<u64>> {
    let mut versions = BTreeSet::new();
    for tag in header.split(',').map(str::trim) {
        if tag == "*" {
            return None;
        }
        // Weak tags never match in If-Match (strong comparison).
        if let Some(v) = tag.strip_prefix("\"v").and_then(|t| t.strip_suffix('"')).and_then(|v| v.parse().ok()) {
            versions.insert(v);
        }
    }
    Some(versions)
}

async fn apply_update(
    state: &AppState,
    who: Principal,
    id: TicketId,
    if_match: IfMatch,
    mut update: TicketUpdate,
) -> Result<TicketResponse, ApiError> {
    let precondition = if_match.0.as_deref().and_then(if_match_versions);
    if update.is_empty() {
        // An empty merge patch changes nothing: answer with the ticket as it is.
        let current = visible(state, &who, id).await?;
        if precondition.as_ref().is_some_and(|accepted| !accepted.contains(&current.version)) {
            return Err(precondition_failed(current.version));
        }
        if update.version.is_some_and(|v| v != current.version) {
            return Err(helpdesk_core::Error::VersionConflict {
                id,
                expected: update.version.unwrap_or(0),
                actual: current.version,
            }
            .into());
        }
        return Ok(TicketResponse::ok(current));
    }
    if let Some(accepted) = &precondition {
        let current = visible(state, &who, id).await?;
        if !accepted.contains(&current.version) {
            return Err(precondition_failed(current.version));
        }
        // The engine re-checks atomically; a change in between is still a 412.
        update.version = Some(current.version);
    }
    let actor = who.actor();
    match state.desk.update_async(id, update, &actor).await {
        Ok(t) => Ok(TicketResponse::ok(t)),
        Err(helpdesk_core::Error::VersionConflict { actual, .. }) if precondition.is_some() => {
            Err(precondition_failed(actual))
        }
        Err(e) => Err(e.into()),
    }
}

fn precondition_failed(actual: u64) -> ApiError {
    ApiError::new(
        Status::PreconditionFailed,
        "precondition_failed",
        format!("If-Match does not match the ticket's current ETag \"v{actual}\""),
    )
    .details(serde_json::json!({ "actual_etag": format!("\"v{actual}\"") }))
}

/// Change some fields, the status or the assignment (agents and admins). Send `If-Match`
/// (412 on mismatch) or `version` (409 on mismatch) to avoid lost updates.
#[utoipa::path(
    patch, path = "/api/v1/tickets/{id}", tag = "tickets",
    request_body = TicketUpdate,
    params(("id" = u64, Path, description = "Ticket id", minimum = 1)),
    responses(
        (status = 200, description = "The updated ticket", body = Ticket, headers(("ETag" = String, description = "Version tag"))),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 401, response = crate::api::openapi::Unauthorized),
        (status = 403, response = crate::api::openapi::Forbidden),
        (status = 404, response = crate::api::openapi::NotFound),
        (status = 409, response = crate::api::openapi::Conflict),
        (status = 412, response = crate::api::openapi::PreconditionFailed),
        (status = 413, response = crate::api::openapi::TooLarge),
        (status = 415, response = crate::api::openapi::UnsupportedMediaType),
        (status = 422, response = crate::api::openapi::Unprocessable),
        (status = 503, response = crate::api::openapi::Unavailable),
    ),
    security(("bearer" = []))
)]
#[patch("/api/v1/tickets/<id>", data = "<body>")]
pub async fn patch(
    state: &State<AppState>,
    who: Result<Staff, ApiError>,
    id: Result<IdParam, ApiError>,
    if_match: IfMatch,
    body: Result<JsonBody<TicketUpdate>, ApiError>,
) -> Result<TicketResponse, ApiError> {
    let Staff(who) = who?;
    let id = id?.0;
    let JsonBody(update) = body?;
    apply_update(state, who, id, if_match, update).await
}

/// The full editable representation of a ticket, for PUT.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketReplace {
    /// One-line summary.
    #[schema(value_type = helpdesk_core::ticket::schema::Title)]
    pub title: String,
    /// Full description.
    #[schema(value_type = helpdesk_core::ticket::schema::Text)]
    pub description: String,
    /// Category.
    pub category: Category,
    /// Priority (due times are recomputed when it changes).
    pub priority: Priority,
    /// Status (a legal transition from the current one, or the same).
    pub status: TicketStatus,
    /// The whole tag set.
    #[schema(value_type = Vec<helpdesk_core::ticket::schema::Tag>, max_items = 10)]
    pub tags: Vec<String>,
    /// Agent, or `null` for unassigned.
    #[serde(default)]
    #[schema(value_type = Option<helpdesk_core::ticket::schema::Name>)]
    pub assigned_to: Option<String>,
    /// Notes; required when `status` becomes `resolved`.
    #[serde(default)]
    #[schema(value_type = Option<helpdesk_core::ticket::schema::Text>)]
    pub resolution_notes: Option<String>,
    /// Expected current version (409 on mismatch).
    #[serde(default, deserialize_with = "helpdesk_core::ticket::integral_version")]
    pub version: Option<u64>,
}

/// Replace the editable fields of a ticket (agents and admins).
#[utoipa::path(
    put, path = "/api/v1/tickets/{id}", tag = "tickets",
    request_body = TicketReplace,
    params(("id" = u64, Path, description = "Ticket id", minimum = 1)),
    responses(
        (status = 200, description = "The updated ticket", body = Ticket, headers(("ETag" = String, description = "Version tag"))),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 401, response = crate::api::openapi::Unauthorized),
        (status = 403, response = crate::api::openapi::Forbidden),
        (status = 404, response = crate::api::openapi::NotFound),
        (status = 409, response = crate::api::openapi::Conflict),
        (status = 412, response = crate::api::openapi::PreconditionFailed),
        (status = 413, response = crate::api::openapi::TooLarge),
        (status = 415, response = crate::api::openapi::UnsupportedMediaType),
        (status = 422, response = crate::api::openapi::Unprocessable),
        (status = 503, response = crate::api::openapi::Unavailable),
    ),
    security(("bearer" = []))
)]
#[put("/api/v1/tickets/<id>", data = "<body>")]
pub async fn put(
    state: &State<AppState>,
    who: Result<Staff, ApiError>,
    id: Result<IdParam, ApiError>,
    if_match: IfMatch,
    body: Result<JsonBody<TicketReplace>, ApiError>,
) -> Result<TicketResponse, ApiError> {
    let Staff(who) = who?;
    let id = id?.0;
    let JsonBody(r) = body?;
    let update = TicketUpdate {
        title: Some(r.title),
        description: Some(r.description),
        category: Some(r.category),
        priority: Some(r.priority),
        status: Some(r.status),
        tags: Some(r.tags),
        assigned_to: Some(r.assigned_to),
        resolution_notes: r.resolution_notes,
        version: r.version,
    };
    apply_update(state, who, id, if_match, update).await
}

/// Add a comment. Reporters may comment (publicly) on their own tickets only.
#[utoipa::path(
    post, path = "/api/v1/tickets/{id}/comments", tag = "tickets",
    request_body = NewComment,
    params(("id" = u64, Path, description = "Ticket id", minimum = 1)),
    responses(
        (status = 201, description = "The comment's event", body = Event,
         headers(("Location" = String, description = "URL of the ticket's history"))),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 401, response = crate::api::openapi::Unauthorized),
        (status = 403, response = crate::api::openapi::Forbidden),
        (status = 404, response = crate::api::openapi::NotFound),
        (status = 409, response = crate::api::openapi::Conflict),
        (status = 413, response = crate::api::openapi::TooLarge),
        (status = 415, response = crate::api::openapi::UnsupportedMediaType),
        (status = 422, response = crate::api::openapi::Unprocessable),
        (status = 503, response = crate::api::openapi::Unavailable),
    ),
    security(("bearer" = []))
)]
#[post("/api/v1/tickets/<id>/comments", data = "<body>")]
pub async fn add_comment(
    state: &State<AppState>,
    who: Result<Principal, ApiError>,
    id: Result<IdParam, ApiError>,
    body: Result<JsonBody<NewComment>, ApiError>,
) -> Result<CommentCreated, ApiError> {
    let who = who?;
    let id = id?.0;
    visible(state, &who, id).await?;
    let JsonBody(comment) = body?;
    if !who.is_staff() && comment.visibility == Visibility::Internal {
        return Err(ApiError::forbidden("internal comments are for agents"));
    }
    let actor = who.actor();
    let (_, event) = state.desk.comment_async(id, comment, &actor).await?;
    Ok(CommentCreated(event))
}

/// 201 with the comment's event.
pub struct CommentCreated(Event);

impl<'r> Responder<'r, 'static> for CommentCreated {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        let loc = format!("{}/history", location(self.0.ticket_id));
        Response::build_from(Json(self.0).respond_to(req)?)
            .status(Status::Created)
            .header(Header::new("Location", loc))
            .ok()
    }
}

/// The ticket's events, oldest first. Reporters do not see internal comments.
#[utoipa::path(
    get, path = "/api/v1/tickets/{id}/history", tag = "tickets",
    params(("id" = u64, Path, description = "Ticket id", minimum = 1)),
    responses(
        (status = 200, description = "Events, oldest first", body = [Event]),
        (status = 401, response = crate::api::openapi::Unauthorized),
        (status = 403, response = crate::api::openapi::Forbidden),
        (status = 404, response = crate::api::openapi::NotFound),
        (status = 503, response = crate::api::openapi::Unavailable),
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/tickets/<id>/history")]
pub async fn history(
    state: &State<AppState>,
    who: Result<Principal, ApiError>,
    id: Result<IdParam, ApiError>,
) -> Result<Json<Vec<Event>>, ApiError> {
    let who = who?;
    let id = id?.0;
    visible(state, &who, id).await?;
    let desk = state.desk.clone();
    let mut events = blocking(move || desk.history(id)).await?;
    if !who.is_staff() {
        events.retain(|e| !e.is_internal());
    }
    Ok(Json(events))
}
