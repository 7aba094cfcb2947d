//! Liveness (`/health`, no database access) and readiness (`/api/v1/health`).

use rocket::http::Status;
use rocket::serde::json::Json;
use rocket::{get, routes, Route, State};
use serde::Serialize;

use crate::error::ApiError;
use crate::{blocking, AppState};

/// The health routes.
pub fn routes() -> Vec<Route> {
    routes![live, ready]
}

/// Liveness answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Live {
    /// Always `ok`.
    pub status: &'static str,
}

/// Readiness answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Ready {
    /// `ready`.
    pub status: &'static str,
    /// Server version.
    pub version: &'static str,
    /// Database schema version.
    pub schema_version: u32,
    /// Seconds since the server started.
    pub uptime_seconds: u64,
    /// `durable` or `relaxed`.
    #[schema(value_type = String)]
    pub durability: helpdesk_core::Durability,
}

/// Liveness: the process answers. Touches nothing else.
#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, description = "Alive", body = Live)))]
#[get("/health")]
pub fn live() -> Json<Live> {
    Json(Live { status: "ok" })
}

/// Readiness: the database is open and takes a durable write right now.
#[utoipa::path(
    get, path = "/api/v1/health", tag = "health",
    responses(
        (status = 200, description = "Ready", body = Ready),
        (status = 503, response = crate::api::openapi::Unavailable),
    )
)]
#[get("/api/v1/health")]
pub async fn ready(state: &State<AppState>) -> Result<Json<Ready>, ApiError> {
    let desk = state.desk.clone();
    blocking(move || desk.check_writable()).await.map_err(|e| {
        tracing::warn!(error = %e.message, "readiness check failed");
        ApiError::new(Status::ServiceUnavailable, "not_ready", "the database does not accept writes")
    })?;
    Ok(Json(Ready {
        status: "ready",
        version: env!("CARGO_PKG_VERSION"),
        schema_version: state.desk.schema_version(),
        uptime_seconds: state.started.elapsed().as_secs(),
        durability: state.desk.config().durability,
    }))
}
