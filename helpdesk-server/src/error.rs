//! [`ApiError`]: the one JSON error shape, and the one place that maps failures (engine
//! errors, bad requests, auth) to HTTP statuses. Rocket's own failures reach it through
//! the catchers at the bottom.

use std::io::Cursor;

use helpdesk_core::Error as CoreError;
use rocket::http::{ContentType, Header, Status};
use rocket::request::Request;
use rocket::response::{self, Responder, Response};
use serde::Serialize;
use serde_json::{json, Value};

/// An error response: `{"error": {"code", "message", "details"}}` with a status.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: Status,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human message (never internal details).
    pub message: String,
    /// Structured details (e.g. the bad fields), or null.
    pub details: Value,
    /// Methods allowed on the path (for 405).
    pub allow: Option<String>,
}

/// The error document (for OpenAPI).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorObject,
}

/// The error object: a stable machine code, a human message and optional details (for
/// validation errors: the list of bad fields).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorObject {
    /// Stable machine-readable code, e.g. `validation_failed`, `not_found`.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
    /// Extra structured information (for validation errors, a list of
    /// `{field, code, message}`), or `null`.
    #[schema(value_type = Value)]
    pub details: Value,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: Status, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), details: Value::Null, allow: None }
    }

    /// Adds structured details.
    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    /// A 400 for a malformed request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(Status::BadRequest, "bad_request", message)
    }

    /// A 401: no valid credentials.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(Status::Unauthorized, "unauthorized", message)
    }

    /// A 403: valid credentials, insufficient role.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(Status::Forbidden, "forbidden", message)
    }

    /// A 422 naming one bad field.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::new(Status::UnprocessableEntity, "validation_failed", format!("{field}: {message}"))
            .details(json!([{ "field": field, "code": "invalid", "message": message }]))
    }

    /// Something failed on our side: the details go to the log, not to the client.
    pub fn internal(what: impl std::fmt::Display) -> Self {
        tracing::error!(error = %what, "internal error");
        Self::new(Status::InternalServerError, "internal", "internal server error; see the server log")
    }

    fn body(&self) -> String {
        json!({ "error": { "code": self.code, "message": self.message, "details": self.details } }).to_string()
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        let message = e.to_string();
        match e {
            CoreError::Validation(fields) => {
                Self::new(Status::UnprocessableEntity, "validation_failed", message).details(json!(fields))
            }
            CoreError::NotFound(_) => Self::new(Status::NotFound, "not_found", message),
            CoreError::InvalidTransition { from, to, allowed, .. } => {
                Self::new(Status::Conflict, "invalid_transition", message)
                    .details(json!({ "from": from, "to": to, "allowed": allowed }))
            }
            CoreError::TicketClosed(_) => Self::new(Status::Conflict, "ticket_closed", message),
            // State-dependent (the ticket may already carry notes), so a conflict, not a 422.
            CoreError::ResolutionNotesRequired(_) => Self::new(Status::Conflict, "resolution_notes_required", message)
                .details(
                    json!([{ "field": "resolution_notes", "code": "required", "message": "required to resolve" }]),
                ),
            CoreError::VersionConflict { expected, actual, .. } => {
                Self::new(Status::Conflict, "version_conflict", message)
                    .details(json!({ "expected": expected, "actual": actual }))
            }
            // The key is bound to another request: a conflict with stored state.
            CoreError::IdempotencyConflict { .. } => Self::new(Status::Conflict, "idempotency_key_reused", message),
            CoreError::InvalidCursor(_) => Self::new(Status::BadRequest, "invalid_cursor", message),
            CoreError::Storage(_) | CoreError::Locked { .. } => {
                tracing::error!(error = %message, "storage unavailable");
                Self::new(Status::ServiceUnavailable, "unavailable", "the database is unavailable; retry later")
            }
            other => Self::internal(other),
        }
    }
}

impl<'r, 'o: 'r> Responder<'r, 'o> for ApiError {
    fn respond_to(self, _req: &'r Request<'_>) -> response::Result<'o> {
        let body = self.body();
        let mut res = Response::build();
        res.status(self.status).header(ContentType::JSON).sized_body(body.len(), Cursor::new(body));
        if self.status == Status::Unauthorized {
            res.header(Header::new("WWW-Authenticate", "Bearer realm=\"helpdesk\""));
        }
        if let Some(allow) = self.allow {
            res.header(Header::new("Allow", allow));
        }
        res.ok()
    }
}

pub mod catchers {
    //! JSON for every error Rocket raises itself: unknown routes, wrong methods, bodies
    //! too large. (Guard failures never get here: handlers take their guards as `Result`
    //! and return the guard's own `ApiError`.)

    use rocket::http::{Method, Status};
    use rocket::{catch, catchers, Catcher, Request};

    use super::ApiError;

    /// Every catcher, to register at `/`.
    pub fn all() -> Vec<Catcher> {
        catchers![not_found, default]
    }

    /// Unknown path, or a known path with another method (405 with `Allow`).
    #[catch(404)]
    fn not_found(req: &Request<'_>) -> ApiError {
        let allowed = allowed_methods(req);
        if !allowed.is_empty() && !allowed.contains(&req.method()) {
            let allow: Vec<String> = allowed.iter().map(|m| m.as_str().to_owned()).collect();
            let mut e = ApiError::new(
                Status::MethodNotAllowed,
                "method_not_allowed",
                format!("{} is not allowed on {}; allowed: {}", req.method(), req.uri().path(), allow.join(", ")),
            );
            e.allow = Some(allow.join(", "));
            return e;
        }
        ApiError::new(Status::NotFound, "not_found", format!("no route for {} {}", req.method(), req.uri().path()))
    }

    #[catch(default)]
    fn default(status: Status, _req: &Request<'_>) -> ApiError {
        let (code, message) = match status.code {
            400 => ("bad_request", "the request is malformed"),
            401 => ("unauthorized", "a valid bearer token is required"),
            403 => ("forbidden", "not allowed"),
            413 => ("payload_too_large", "the request body is too large"),
            415 => ("unsupported_media_type", "the body must be application/json"),
            422 => ("validation_failed", "the request could not be processed"),
            503 => ("unavailable", "the service is not ready"),
            s if s >= 500 => ("internal", "internal server error; see the server log"),
            _ => ("error", status.reason().unwrap_or("error")),
        };
        ApiError::new(status, code, message)
    }

    /// Methods of the routes whose path pattern matches this request's path.
    fn allowed_methods(req: &Request<'_>) -> Vec<Method> {
        let path: Vec<&str> = req.uri().path().segments().collect();
        let mut methods: Vec<Method> = req
            .rocket()
            .routes()
            .filter(|r| {
                let pattern: Vec<&str> = r.uri.path().split('/').filter(|s| !s.is_empty()).collect::<Vec<_>>();
                pattern.len() == path.len()
                    && pattern.iter().zip(&path).all(|(p, s)| (p.starts_with('<') && p.ends_with('>')) || p == s)
            })
            .map(|r| r.method)
            .collect();
        methods.sort_by_key(|m| m.as_str());
        methods.dedup();
        methods
    }
}
