//! Admin operations: the consistent snapshot stream backups are made of.

use rocket::http::{ContentType, Header};
use rocket::request::Request;
use rocket::response::stream::{One, ReaderStream};
use rocket::response::{self, Responder, Response};
use rocket::tokio::io::DuplexStream;
use rocket::{get, routes, Route, State};

use crate::auth::Admin;
use crate::error::ApiError;
use crate::AppState;

/// The admin routes.
pub fn routes() -> Vec<Route> {
    routes![snapshot]
}

/// The streamed snapshot response.
pub struct SnapshotStream(ReaderStream<One<DuplexStream>>);

impl<'r> Responder<'r, 'r> for SnapshotStream {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'r> {
        Response::build_from(self.0.respond_to(req)?)
            .header(ContentType::new("application", "x-ndjson"))
            .header(Header::new("Content-Disposition", "attachment; filename=\"helpdesk-snapshot.jsonl\""))
            .ok()
    }
}

/// A consistent point-in-time snapshot of the whole database (admin), streamed as the
/// engine's checksummed JSON-lines format. Writers keep running meanwhile. A stream cut
/// short (no `end` record) must be discarded; importing it fails.
#[utoipa::path(
    get, path = "/api/v1/admin/snapshot", tag = "admin",
    responses(
        (status = 200, description = "Snapshot stream (JSON lines)", body = String, content_type = "application/x-ndjson"),
        (status = 401, response = crate::api::openapi::Unauthorized),
        (status = 403, response = crate::api::openapi::Forbidden),
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/admin/snapshot")]
pub async fn snapshot(state: &State<AppState>, who: Result<Admin, ApiError>) -> Result<SnapshotStream, ApiError> {
    let Admin(who) = who?;
    let (reader, writer) = rocket::tokio::io::duplex(1 << 16);
    let desk = state.desk.clone();
    // The export is blocking; it writes into the pipe the response reads from. If it fails
    // half-way the pipe closes, the stream ends without its trailer, and importing it fails.
    let mut sink = tokio_util::io::SyncIoBridge::new(writer);
    rocket::tokio::task::spawn_blocking(move || match desk.export(&mut sink) {
        Ok(s) => {
            tracing::info!(admin = %who.name, tickets = s.tickets, events = s.events, bytes = s.bytes, "snapshot streamed")
        }
        Err(e) => tracing::error!(admin = %who.name, error = %e, "snapshot failed; the stream was cut short"),
    });
    Ok(SnapshotStream(ReaderStream::one(reader)))
}
