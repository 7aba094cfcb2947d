//! Statistics as JSON (`/api/v1/metrics`) and the Prometheus exposition (`/metrics`).

use helpdesk_core::Stats;
use rocket::http::ContentType;
use rocket::serde::json::Json;
use rocket::{get, routes, Route, State};

use crate::auth::Staff;
use crate::error::ApiError;
use crate::{blocking, AppState};

/// The metrics routes.
pub fn routes() -> Vec<Route> {
    routes![stats, prometheus]
}

/// Ticket statistics (agents and admins): totals, per status/category/priority, open
/// backlog, mean time to resolve and current SLA breaches. O(1).
#[utoipa::path(
    get, path = "/api/v1/metrics", tag = "metrics",
    responses(
        (status = 200, description = "Statistics", body = Stats),
        (status = 401, response = crate::api::openapi::Unauthorized),
        (status = 403, response = crate::api::openapi::Forbidden),
        (status = 503, response = crate::api::openapi::Unavailable),
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/metrics")]
pub async fn stats(state: &State<AppState>, who: Result<Staff, ApiError>) -> Result<Json<Stats>, ApiError> {
    who?;
    let desk = state.desk.clone();
    Ok(Json(blocking(move || desk.stats()).await?))
}

/// Prometheus text exposition: request counts and latency by route and status, ticket
/// gauges, database size and flush latency.
#[utoipa::path(
    get, path = "/metrics", tag = "metrics",
    responses((status = 200, description = "Prometheus text format 0.0.4", body = String, content_type = "text/plain"))
)]
#[get("/metrics")]
pub async fn prometheus(state: &State<AppState>) -> Result<(ContentType, String), ApiError> {
    let metrics = state.metrics.clone();
    let text = rocket::tokio::task::spawn_blocking(move || metrics.render())
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    Ok((ContentType::new("text", "plain").with_params([("version", "0.0.4"), ("charset", "utf-8")]), text))
}
