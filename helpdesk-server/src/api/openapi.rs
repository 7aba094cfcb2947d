//! The OpenAPI document, generated from the route attributes and the types, so it cannot
//! drift from the code; served at `/api/v1/openapi.json`.

use rocket::http::ContentType;
use rocket::{get, routes, Route, State};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::{ErrorBody, ErrorObject};
use crate::AppState;

/// The OpenAPI document route.
pub fn routes() -> Vec<Route> {
    routes![document]
}

macro_rules! error_responses {
    ($($name:ident => $desc:literal),+ $(,)?) => {$(
        #[doc = $desc]
        #[derive(utoipa::ToResponse)]
        #[response(description = $desc, content_type = "application/json")]
        pub struct $name(#[allow(dead_code)] ErrorBody);
    )+};
}

error_responses! {
    BadRequest => "Malformed request (bad JSON, bad cursor)",
    Unauthorized => "Missing, malformed or unknown bearer token",
    Forbidden => "The token's role does not allow this",
    NotFound => "No such ticket",
    Conflict => "Illegal transition, closed ticket, missing resolution notes, stale `version`, or an idempotency key reused for another request",
    PreconditionFailed => "`If-Match` does not match the current ETag",
    TooLarge => "Body larger than the configured limit",
    UnsupportedMediaType => "Body is not application/json",
    Unprocessable => "Validation failed; `details` names each bad field",
    Unavailable => "The database is not available",
}

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Helpdesk API", description = "IT helpdesk tickets: create, triage, resolve, report."),
    paths(
        crate::api::health::live,
        crate::api::health::ready,
        crate::api::tickets::create,
        crate::api::tickets::list,
        crate::api::tickets::get,
        crate::api::tickets::patch,
        crate::api::tickets::put,
        crate::api::tickets::add_comment,
        crate::api::tickets::history,
        crate::api::metrics::stats,
        crate::api::metrics::prometheus,
        crate::api::admin::snapshot,
        document,
    ),
    components(
        schemas(ErrorBody, ErrorObject),
        responses(BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PreconditionFailed, TooLarge,
                  UnsupportedMediaType, Unprocessable, Unavailable),
    ),
    modifiers(&Security),
    tags(
        (name = "tickets", description = "Tickets, comments and history"),
        (name = "metrics", description = "Statistics and Prometheus metrics"),
        (name = "health", description = "Liveness and readiness"),
        (name = "admin", description = "Backups"),
    )
)]
/// The API description, assembled from the route attributes.
pub struct ApiDoc;

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "health",
    responses((status = 200, description = "OpenAPI 3.1 document", body = Object)))]
#[get("/api/v1/openapi.json")]
pub fn document(state: &State<AppState>) -> (ContentType, String) {
    (ContentType::JSON, state.openapi.clone())
}
