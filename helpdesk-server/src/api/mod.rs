//! The HTTP API: one module per area, each exporting `routes()`. Shared extractors live
//! here: the JSON body guard, the ticket-id path parameter and header guards.

pub mod admin;
pub mod health;
pub mod metrics;
pub mod openapi;
pub mod tickets;

use helpdesk_core::TicketId;
use rocket::data::{self, Data, FromData, ToByteUnit};
use rocket::http::Status;
use rocket::request::{self, FromParam, FromRequest, Request};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::error::ApiError;

/// A JSON request body, parsed with errors that say what is wrong: 415 for another
/// content type, 413 past the `json` limit, 400 for malformed JSON, 422 naming the field
/// for well-formed JSON of the wrong shape.
pub struct JsonBody<T>(pub T);

#[rocket::async_trait]
impl<'r, T: DeserializeOwned> FromData<'r> for JsonBody<T> {
    type Error = ApiError;

    async fn from_data(req: &'r Request<'_>, data: Data<'r>) -> data::Outcome<'r, Self> {
        let fail = |e: ApiError| data::Outcome::Error((e.status, e));
        if let Some(ct) = req.content_type() {
            if !ct.is_json() {
                return fail(ApiError::new(
                    Status::UnsupportedMediaType,
                    "unsupported_media_type",
                    format!("the body must be application/json, not {ct}"),
                ));
            }
        }
        let limit = req.limits().get("json").unwrap_or(1.mebibytes());
        let bytes = match data.open(limit).into_bytes().await {
            Ok(b) if b.is_complete() => b.into_inner(),
            Ok(_) => {
                return fail(ApiError::new(
                    Status::PayloadTooLarge,
                    "payload_too_large",
                    format!("the body exceeds the limit of {limit}"),
                ))
            }
            Err(e) => return fail(ApiError::bad_request(format!("cannot read the body: {e}"))),
        };
        // Syntax first, so malformed JSON is always a 400 whatever its shape.
        if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&bytes) {
            return fail(ApiError::new(Status::BadRequest, "malformed_json", format!("malformed JSON: {e}")));
        }
        // serde would accept an array for a struct (fields by position): only objects here.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return fail(
                ApiError::new(Status::UnprocessableEntity, "validation_failed", "the body must be a JSON object")
                    .details(json!([{ "field": "body", "code": "invalid", "message": "expected a JSON object" }])),
            );
        }
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        match serde_path_to_error::deserialize(&mut de) {
            Ok(v) => match de.end() {
                Ok(()) => data::Outcome::Success(JsonBody(v)),
                Err(e) => fail(ApiError::new(Status::BadRequest, "malformed_json", format!("malformed JSON: {e}"))),
            },
            Err(e) => {
                let inner = e.inner();
                if inner.is_syntax() || inner.is_eof() {
                    return fail(ApiError::new(
                        Status::BadRequest,
                        "malformed_json",
                        format!("malformed JSON: {inner}"),
                    ));
                }
                let field = field_of(&e.path().to_string(), &inner.to_string());
                let message = strip_position(&inner.to_string());
                fail(
                    ApiError::new(Status::UnprocessableEntity, "validation_failed", format!("{field}: {message}"))
                        .details(json!([{ "field": field, "code": "invalid", "message": message }])),
                )
            }
        }
    }
}

/// The field a serde error is about: its path, or for "missing field `x`" / "unknown
/// field `x`" the name in backticks.
fn field_of(path: &str, message: &str) -> String {
    let named = message.split('`').nth(1).filter(|_| message.contains("field `"));
    match (path, named) {
        (".", Some(name)) => name.to_owned(),
        (p, Some(name)) if message.starts_with("missing field") => format!("{p}.{name}"),
        (".", None) => "body".to_owned(),
        (p, _) => p.to_owned(),
    }
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// A ticket id in a path; anything but a positive integer is a 404 (no such ticket).
pub struct IdParam(pub TicketId);

impl<'a> FromParam<'a> for IdParam {
    type Error = ApiError;

    fn from_param(param: &'a str) -> Result<Self, Self::Error> {
        match param.parse::<u64>() {
            Ok(id) if id > 0 => Ok(IdParam(TicketId(id))),
            _ => Err(ApiError::new(
                Status::NotFound,
                "not_found",
                format!("no ticket {param:?}: ticket ids are positive integers"),
            )),
        }
    }
}

/// The value of a request header, if present (never fails).
macro_rules! header_guard {
    ($name:ident, $header:literal) => {
        #[doc = concat!("The `", $header, "` header, if present.")]
        pub struct $name(pub Option<String>);

        #[rocket::async_trait]
        impl<'r> FromRequest<'r> for $name {
            type Error = std::convert::Infallible;

            async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, Self::Error> {
                request::Outcome::Success($name(req.headers().get_one($header).map(str::to_owned)))
            }
        }
    };
}

header_guard!(IdempotencyKey, "Idempotency-Key");
header_guard!(IfMatch, "If-Match");
header_guard!(IfNoneMatch, "If-None-Match");
