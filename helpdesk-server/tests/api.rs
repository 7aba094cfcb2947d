//! The HTTP API through Rocket's local client: every route, every error status, the auth
//! matrix, and the OpenAPI document against the mounted routes. Each test has its own
//! temporary data directory and tokens, so they run in parallel.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use helpdesk_server::auth::hash_token;
use rocket::figment::Figment;
use rocket::http::{ContentType, Header, Status};
use rocket::local::asynchronous::{Client, LocalResponse};
use serde_json::{json, Value};

const ADMIN: &str = "admin-token-0123456789";
const AGENT: &str = "agent-token-0123456789";
const ADA: &str = "ada-token-0123456789";
const BOB: &str = "bob-token-0123456789";

struct Env {
    client: Client,
    _dir: tempfile::TempDir,
    data_dir: PathBuf,
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.toml");
    let entry = |name: &str, role: &str, email: Option<&str>, token: &str| {
        let email = email.map(|e| format!("email = \"{e}\"\n")).unwrap_or_default();
        format!("[[token]]\nname = \"{name}\"\nrole = \"{role}\"\n{email}sha256 = \"{}\"\n\n", hash_token(token))
    };
    std::fs::write(
        &tokens,
        [
            entry("root", "admin", None, ADMIN),
            entry("grace", "agent", None, AGENT),
            entry("ada", "reporter", Some("ada@campus.example"), ADA),
            entry("bob", "reporter", Some("bob@campus.example"), BOB),
        ]
        .concat(),
    )
    .unwrap();
    let data_dir = dir.path().join("data");
    let figment = Figment::from(rocket::Config::debug_default())
        .merge(("log_level", rocket::config::LogLevel::Off))
        .merge(("limits", rocket::data::Limits::default().limit("json", rocket::data::ToByteUnit::kibibytes(32))))
        .merge(("data_dir", &data_dir))
        .merge(("tokens_file", &tokens))
        .merge(("durability", "relaxed"));
    let client = Client::tracked(helpdesk_server::build(figment)).await.unwrap();
    Env { client, _dir: dir, data_dir }
}

fn bearer(token: &str) -> Header<'static> {
    Header::new("Authorization", format!("Bearer {token}"))
}

fn ticket_body(email: &str) -> Value {
    json!({
        "title": "Wi-Fi drops in library",
        "description": "Every few minutes since Monday",
        "category": "network",
        "priority": "high",
        "submitter_email": email,
        "submitter_name": "Someone",
        "tags": ["wifi"]
    })
}

async fn json_of(res: LocalResponse<'_>) -> Value {
    let text = res.into_string().await.unwrap_or_default();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Checks the one error shape and returns the body.
async fn error_of(res: LocalResponse<'_>, status: Status, code: &str) -> Value {
    assert_eq!(res.status(), status);
    assert_eq!(res.content_type(), Some(ContentType::JSON));
    let body = json_of(res).await;
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(body["error"].get("details").is_some());
    body
}

impl Env {
    async fn create(&self, token: &str, email: &str) -> Value {
        let res = self.client.post("/api/v1/tickets").header(bearer(token)).json(&ticket_body(email)).dispatch().await;
        assert_eq!(res.status(), Status::Created);
        json_of(res).await
    }
}

#[rocket::async_test]
async fn create_returns_201_with_location_and_etag() {
    let env = env().await;
    let res = env
        .client
        .post("/api/v1/tickets")
        .header(bearer(ADA))
        .json(&ticket_body("ada@campus.example"))
        .dispatch()
        .await;
    assert_eq!(res.status(), Status::Created);
    assert_eq!(res.headers().get_one("Location"), Some("/api/v1/tickets/1"));
    assert_eq!(res.headers().get_one("ETag"), Some("\"v1\""));
    assert!(res.headers().get_one("X-Request-Id").is_some());
    let t = json_of(res).await;
    assert_eq!((t["id"].as_u64(), t["status"].as_str(), t["version"].as_u64()), (Some(1), Some("open"), Some(1)));
    assert_eq!(t["priority"], "high");
    let got = env.client.get("/api/v1/tickets/1").header(bearer(ADA)).dispatch().await;
    assert_eq!(got.status(), Status::Ok);
    assert_eq!(json_of(got).await, t);
}

#[rocket::async_test]
async fn idempotency_key_replays_the_first_result() {
    let env = env().await;
    let send = |body: Value| {
        env.client
            .post("/api/v1/tickets")
            .header(bearer(AGENT))
            .header(Header::new("Idempotency-Key", "retry-42"))
            .json(&body)
            .dispatch()
    };
    let first = send(ticket_body("ada@campus.example")).await;
    assert_eq!(first.status(), Status::Created);
    assert!(first.headers().get_one("Idempotent-Replayed").is_none());
    let first = json_of(first).await;
    let again = send(ticket_body("ada@campus.example")).await;
    assert_eq!(again.status(), Status::Created);
    assert_eq!(again.headers().get_one("Idempotent-Replayed"), Some("true"));
    assert_eq!(json_of(again).await["id"], first["id"]);
    let other = send(ticket_body("bob@campus.example")).await;
    error_of(other, Status::Conflict, "idempotency_key_reused").await;
    let bad_key = env
        .client
        .post("/api/v1/tickets")
        .header(bearer(AGENT))
        .header(Header::new("Idempotency-Key", "has space"))
        .json(&ticket_body("ada@campus.example"))
        .dispatch()
        .await;
    let body = error_of(bad_key, Status::UnprocessableEntity, "validation_failed").await;
    assert_eq!(body["error"]["details"][0]["field"], "idempotency_key");
}

#[rocket::async_test]
async fn bad_bodies_get_400_413_415_and_422_naming_fields() {
    let env = env().await;
    let post = |body: &str, ct: ContentType| {
        env.client.post("/api/v1/tickets").header(bearer(AGENT)).header(ct).body(body).dispatch()
    };
    error_of(post("{\"title\":", ContentType::JSON).await, Status::BadRequest, "malformed_json").await;
    error_of(post("{} trailing", ContentType::JSON).await, Status::BadRequest, "malformed_json").await;
    error_of(post("title=x", ContentType::Form).await, Status::UnsupportedMediaType, "unsupported_media_type").await;
    let huge = json!({ "title": "x", "description": "y".repeat(40_000) }).to_string();
    error_of(post(&huge, ContentType::JSON).await, Status::PayloadTooLarge, "payload_too_large").await;

    // Shape errors name the field.
    let mut missing = ticket_body("ada@campus.example");
    missing.as_object_mut().unwrap().remove("title");
    let body =
        error_of(post(&missing.to_string(), ContentType::JSON).await, Status::UnprocessableEntity, "validation_failed")
            .await;
    assert_eq!(body["error"]["details"][0]["field"], "title");
    let mut unknown = ticket_body("ada@campus.example");
    unknown["colour"] = json!("red");
    let body =
        error_of(post(&unknown.to_string(), ContentType::JSON).await, Status::UnprocessableEntity, "validation_failed")
            .await;
    assert_eq!(body["error"]["details"][0]["field"], "colour");
    let mut wrong_type = ticket_body("ada@campus.example");
    wrong_type["tags"] = json!([1]);
    let body = error_of(
        post(&wrong_type.to_string(), ContentType::JSON).await,
        Status::UnprocessableEntity,
        "validation_failed",
    )
    .await;
    assert_eq!(body["error"]["details"][0]["field"], "tags[0]");

    // Domain validation names every bad field at once.
    let mut bad = ticket_body("not-an-address");
    bad["title"] = json!("   ");
    let body =
        error_of(post(&bad.to_string(), ContentType::JSON).await, Status::UnprocessableEntity, "validation_failed")
            .await;
    let fields: Vec<&str> =
        body["error"]["details"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["title", "submitter_email"]);
    // Limits count the value as sent, as the published `maxLength` does, even where the
    // stored value is trimmed; and what the schema's pattern refuses is refused.
    let mut padded = ticket_body("a@campus.example");
    padded["title"] = json!(format!(" {}", "t".repeat(200)));
    padded["tags"] = json!(["\u{212a}elvin"]);
    let body =
        error_of(post(&padded.to_string(), ContentType::JSON).await, Status::UnprocessableEntity, "validation_failed")
            .await;
    let fields: Vec<&str> =
        body["error"]["details"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["title", "tags[0]"]);
    // Nothing was created by any of these.
    let stats = json_of(env.client.get("/api/v1/metrics").header(bearer(AGENT)).dispatch().await).await;
    assert_eq!(stats["total"], 0);
}

#[rocket::async_test]
async fn unknown_routes_methods_and_ids_are_json_errors() {
    let env = env().await;
    error_of(env.client.get("/nope").dispatch().await, Status::NotFound, "not_found").await;
    let res = env.client.delete("/api/v1/tickets/1").header(bearer(ADMIN)).dispatch().await;
    assert_eq!(res.headers().get_one("Allow"), Some("GET, PATCH, PUT"));
    error_of(res, Status::MethodNotAllowed, "method_not_allowed").await;
    error_of(
        env.client.get("/api/v1/tickets/999").header(bearer(AGENT)).dispatch().await,
        Status::NotFound,
        "not_found",
    )
    .await;
    for bad in ["abc", "0", "-1", "99999999999999999999999"] {
        let res = env.client.get(format!("/api/v1/tickets/{bad}")).header(bearer(AGENT)).dispatch().await;
        error_of(res, Status::NotFound, "not_found").await;
    }
}

#[rocket::async_test]
async fn updates_enforce_workflow_and_optimistic_concurrency() {
    let env = env().await;
    env.create(AGENT, "ada@campus.example").await;
    let patch = |body: Value, if_match: Option<&'static str>| {
        let mut req = env.client.patch("/api/v1/tickets/1").header(bearer(AGENT)).json(&body);
        if let Some(m) = if_match {
            req = req.header(Header::new("If-Match", m));
        }
        req.dispatch()
    };
    // Illegal transition: 409 naming it.
    let body = error_of(patch(json!({"status": "waiting"}), None).await, Status::Conflict, "invalid_transition").await;
    assert_eq!(body["error"]["details"]["from"], "open");
    // Resolving without notes: a conflict with the ticket's state, naming resolution_notes.
    let body =
        error_of(patch(json!({"status": "resolved"}), None).await, Status::Conflict, "resolution_notes_required").await;
    assert_eq!(body["error"]["details"][0]["field"], "resolution_notes");
    // If-Match: right tag applies, stale tag is 412 with the current tag.
    let ok = patch(json!({"status": "in_progress"}), Some("\"v1\"")).await;
    assert_eq!(ok.status(), Status::Ok);
    assert_eq!(ok.headers().get_one("ETag"), Some("\"v2\""));
    let body =
        error_of(patch(json!({"title": "x"}), Some("\"v1\"")).await, Status::PreconditionFailed, "precondition_failed")
            .await;
    assert_eq!(body["error"]["details"]["actual_etag"], "\"v2\"");
    error_of(patch(json!({"title": "x"}), Some("W/\"v2\"")).await, Status::PreconditionFailed, "precondition_failed")
        .await;
    assert_eq!(patch(json!({"title": "y"}), Some("*")).await.status(), Status::Ok);
    // Body version: 409 on mismatch.
    let body =
        error_of(patch(json!({"title": "z", "version": 1}), None).await, Status::Conflict, "version_conflict").await;
    assert_eq!(body["error"]["details"]["actual"], 3);
    // An empty merge patch changes nothing (200, same version); a JSON array is no object.
    let same = patch(json!({}), None).await;
    assert_eq!((same.status(), same.headers().get_one("ETag")), (Status::Ok, Some("\"v3\"")));
    let body =
        error_of(patch(json!(["Positional title"]), None).await, Status::UnprocessableEntity, "validation_failed")
            .await;
    assert_eq!(body["error"]["details"][0]["field"], "body");
    // PUT replaces the editable fields.
    let put = env
        .client
        .put("/api/v1/tickets/1")
        .header(bearer(AGENT))
        .json(&json!({"title": "Replaced", "description": "D", "category": "email", "priority": "low",
                      "status": "resolved", "tags": [], "assigned_to": "grace", "resolution_notes": "Fixed"}))
        .dispatch()
        .await;
    assert_eq!(put.status(), Status::Ok);
    let t = json_of(put).await;
    assert_eq!(
        (t["title"].as_str(), t["status"].as_str(), t["assigned_to"].as_str()),
        (Some("Replaced"), Some("resolved"), Some("grace"))
    );
    let incomplete =
        env.client.put("/api/v1/tickets/1").header(bearer(AGENT)).json(&json!({"title": "only"})).dispatch().await;
    error_of(incomplete, Status::UnprocessableEntity, "validation_failed").await;
    // Closed tickets are read-only: 409.
    assert_eq!(patch(json!({"status": "closed"}), None).await.status(), Status::Ok);
    error_of(patch(json!({"title": "again"}), None).await, Status::Conflict, "ticket_closed").await;
    // If-None-Match gives 304, with weak comparison.
    for tag in ["\"v5\"", "W/\"v5\""] {
        let cached = env
            .client
            .get("/api/v1/tickets/1")
            .header(bearer(AGENT))
            .header(Header::new("If-None-Match", tag))
            .dispatch()
            .await;
        assert_eq!(cached.status(), Status::NotModified, "{tag}");
    }
}

#[rocket::async_test]
async fn listing_filters_pages_and_scopes_reporters() {
    let env = env().await;
    for i in 0..7 {
        let email = if i % 2 == 0 { "ada@campus.example" } else { "bob@campus.example" };
        env.create(AGENT, email).await;
    }
    // Pages of 3 with a next link that works as given.
    let mut url = "/api/v1/tickets?category=network&limit=3".to_string();
    let mut ids = Vec::new();
    loop {
        let page = json_of(env.client.get(url.clone()).header(bearer(AGENT)).dispatch().await).await;
        ids.extend(page["tickets"].as_array().unwrap().iter().map(|t| t["id"].as_u64().unwrap()));
        match page["next"].as_str() {
            Some(next) => {
                assert!(next.contains("category=network") && next.contains("cursor="));
                url = next.to_owned();
            }
            None => break,
        }
    }
    assert_eq!(ids, [7, 6, 5, 4, 3, 2, 1]);
    // Reporters see only their own, and cannot ask for someone else's.
    let page = json_of(env.client.get("/api/v1/tickets").header(bearer(ADA)).dispatch().await).await;
    let mine: Vec<u64> = page["tickets"].as_array().unwrap().iter().map(|t| t["id"].as_u64().unwrap()).collect();
    assert_eq!(mine, [7, 5, 3, 1]);
    let res = env.client.get("/api/v1/tickets?submitter_email=bob@campus.example").header(bearer(ADA)).dispatch().await;
    error_of(res, Status::Forbidden, "forbidden").await;
    // Bad parameters.
    let res = env.client.get("/api/v1/tickets?status=urgent").header(bearer(AGENT)).dispatch().await;
    let body = error_of(res, Status::UnprocessableEntity, "validation_failed").await;
    assert_eq!(body["error"]["details"][0]["field"], "status");
    for (q, field) in [
        ("limit=0", "limit"),
        ("limit=x", "limit"),
        ("created_from=yesterday", "created_from"),
        ("unassigned=maybe", "unassigned"),
        ("unassigned=", "unassigned"),
    ] {
        let res = env.client.get(format!("/api/v1/tickets?{q}")).header(bearer(AGENT)).dispatch().await;
        let body = error_of(res, Status::UnprocessableEntity, "validation_failed").await;
        assert_eq!(body["error"]["details"][0]["field"], field, "{q}");
    }
    error_of(
        env.client.get("/api/v1/tickets?cursor=zzz").header(bearer(AGENT)).dispatch().await,
        Status::BadRequest,
        "invalid_cursor",
    )
    .await;
    // A repeated parameter is ambiguous; q errors name q.
    let res = env.client.get("/api/v1/tickets?status=open&stat%75s=closed").header(bearer(AGENT)).dispatch().await;
    assert_eq!(
        error_of(res, Status::UnprocessableEntity, "validation_failed").await["error"]["details"][0]["field"],
        "status"
    );
    let res = env.client.get(format!("/api/v1/tickets?q={}", "x".repeat(201))).header(bearer(AGENT)).dispatch().await;
    assert_eq!(
        error_of(res, Status::UnprocessableEntity, "validation_failed").await["error"]["details"][0]["field"],
        "q"
    );
    // Times before 1970 are clamped, not refused.
    let old = json_of(
        env.client.get("/api/v1/tickets?created_from=1900-01-01T00:00:00Z").header(bearer(AGENT)).dispatch().await,
    )
    .await;
    assert_eq!(old["tickets"].as_array().unwrap().len(), 7);
    // Text search and time filters.
    let page = json_of(
        env.client
            .get("/api/v1/tickets?q=LIBRARY&created_from=2000-01-01T00:00:00Z")
            .header(bearer(AGENT))
            .dispatch()
            .await,
    )
    .await;
    assert_eq!(page["tickets"].as_array().unwrap().len(), 7);
}

#[rocket::async_test]
async fn comments_and_history_hide_internal_notes_from_reporters() {
    let env = env().await;
    env.create(ADA, "ada@campus.example").await;
    let comment = |token: &str, body: Value| {
        env.client.post("/api/v1/tickets/1/comments").header(bearer(token)).json(&body).dispatch()
    };
    let res = comment(AGENT, json!({"body": "Checking the AP", "visibility": "internal"})).await;
    assert_eq!(res.status(), Status::Created);
    assert_eq!(res.headers().get_one("Location"), Some("/api/v1/tickets/1/history"));
    assert_eq!(comment(ADA, json!({"body": "Still broken"})).await.status(), Status::Created);
    error_of(comment(ADA, json!({"body": "sneaky", "visibility": "internal"})).await, Status::Forbidden, "forbidden")
        .await;
    error_of(comment(BOB, json!({"body": "not mine"})).await, Status::Forbidden, "forbidden").await;
    error_of(comment(AGENT, json!({"body": ""})).await, Status::UnprocessableEntity, "validation_failed").await;
    error_of(
        env.client
            .post("/api/v1/tickets/9/comments")
            .header(bearer(AGENT))
            .json(&json!({"body": "x"}))
            .dispatch()
            .await,
        Status::NotFound,
        "not_found",
    )
    .await;
    let staff = json_of(env.client.get("/api/v1/tickets/1/history").header(bearer(AGENT)).dispatch().await).await;
    assert_eq!(staff.as_array().unwrap().len(), 3);
    let ada = json_of(env.client.get("/api/v1/tickets/1/history").header(bearer(ADA)).dispatch().await).await;
    let kinds: Vec<&str> = ada.as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["created", "commented"]);
    assert_eq!(ada[1]["comment"]["body"], "Still broken");
}

#[rocket::async_test]
async fn statistics_health_and_prometheus() {
    let env = env().await;
    env.create(AGENT, "ada@campus.example").await;
    let stats = json_of(env.client.get("/api/v1/metrics").header(bearer(AGENT)).dispatch().await).await;
    for key in ["total", "by_status", "by_category", "by_priority", "open_backlog", "mttr_seconds", "sla_breached"] {
        assert!(stats.get(key).is_some(), "{key} missing from {stats}");
    }
    assert_eq!((stats["total"].as_u64(), stats["by_status"]["open"].as_u64()), (Some(1), Some(1)));

    assert_eq!(json_of(env.client.get("/health").dispatch().await).await["status"], "ok");
    let ready = json_of(env.client.get("/api/v1/health").dispatch().await).await;
    assert_eq!((ready["status"].as_str(), ready["schema_version"].as_u64()), (Some("ready"), Some(1)));

    env.client.get("/api/v1/tickets/77").header(bearer(AGENT)).dispatch().await;
    let res = env.client.get("/metrics").dispatch().await;
    assert_eq!(res.status(), Status::Ok);
    assert!(res.content_type().unwrap().to_string().starts_with("text/plain"));
    let text = res.into_string().await.unwrap();
    for needle in [
        "http_server_requests_total{method=\"POST\",route=\"/api/v1/tickets\",status=\"201\"} 1",
        "http_server_requests_total{method=\"GET\",route=\"/api/v1/tickets/<id>\",status=\"404\"} 1",
        "http_server_request_duration_seconds_bucket{",
        "helpdesk_tickets{status=\"open\"} 1",
        "helpdesk_tickets{category=\"network\"} 1",
        "helpdesk_tickets_open_backlog 1",
        "helpdesk_db_size_bytes ",
        "helpdesk_sla_breached 0",
    ] {
        assert!(text.contains(needle), "{needle} missing from\n{text}");
    }
}

#[rocket::async_test]
async fn snapshot_streams_a_consistent_importable_export() {
    let env = env().await;
    for _ in 0..5 {
        env.create(AGENT, "ada@campus.example").await;
    }
    let res = env.client.get("/api/v1/admin/snapshot").header(bearer(ADMIN)).dispatch().await;
    assert_eq!(res.status(), Status::Ok);
    assert_eq!(res.content_type(), Some(ContentType::new("application", "x-ndjson")));
    let bytes = res.into_bytes().await.unwrap();
    let restored = helpdesk_core::Helpdesk::temporary(helpdesk_core::Config::default()).unwrap();
    let summary = restored.import(&bytes[..]).unwrap();
    assert_eq!(summary.tickets, 5);
    assert!(restored.verify().unwrap().is_clean());
    assert!(env.data_dir.join("db").exists());
}

#[rocket::async_test]
async fn openapi_documents_every_mounted_route() {
    let env = env().await;
    let doc = json_of(env.client.get("/api/v1/openapi.json").dispatch().await).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for route in env.client.rocket().routes() {
        let path = route.uri.path().replace('<', "{").replace('>', "}");
        let method = route.method.as_str().to_lowercase();
        assert!(paths.get(&path).and_then(|p| p.get(&method)).is_some(), "{method} {path} is not documented");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc["components"]["schemas"]["Ticket"].is_object());
}

/// Every authenticated endpoint against every kind of caller. Ticket 1 belongs to Ada.
#[rocket::async_test]
async fn auth_matrix() {
    let env = env().await;
    env.create(ADA, "ada@campus.example").await;
    let callers: [(&str, Option<String>); 7] = [
        ("none", None),
        ("malformed", Some(format!("Token {ADMIN}"))),
        ("unknown", Some("Bearer not-a-real-token".into())),
        ("reporter", Some(format!("Bearer {ADA}"))),
        ("other reporter", Some(format!("Bearer {BOB}"))),
        ("agent", Some(format!("Bearer {AGENT}"))),
        ("admin", Some(format!("Bearer {ADMIN}"))),
    ];
    let put_body = json!({"title": "T", "description": "D", "category": "network", "priority": "high",
                          "status": "open", "tags": ["x"]});
    // (method, path, body, expected status per caller in the order above)
    let cases: Vec<(&str, &str, Option<Value>, [u16; 7])> = vec![
        ("POST", "/api/v1/tickets", Some(ticket_body("ada@campus.example")), [401, 401, 401, 201, 403, 201, 201]),
        ("GET", "/api/v1/tickets", None, [401, 401, 401, 200, 200, 200, 200]),
        ("GET", "/api/v1/tickets/1", None, [401, 401, 401, 200, 403, 200, 200]),
        ("PATCH", "/api/v1/tickets/1", Some(json!({"tags": ["y"]})), [401, 401, 401, 403, 403, 200, 200]),
        ("PUT", "/api/v1/tickets/1", Some(put_body), [401, 401, 401, 403, 403, 200, 200]),
        ("POST", "/api/v1/tickets/1/comments", Some(json!({"body": "hi"})), [401, 401, 401, 201, 403, 201, 201]),
        ("GET", "/api/v1/tickets/1/history", None, [401, 401, 401, 200, 403, 200, 200]),
        ("GET", "/api/v1/metrics", None, [401, 401, 401, 403, 403, 200, 200]),
        ("GET", "/api/v1/admin/snapshot", None, [401, 401, 401, 403, 403, 403, 200]),
        ("GET", "/health", None, [200; 7]),
        ("GET", "/api/v1/health", None, [200; 7]),
        ("GET", "/metrics", None, [200; 7]),
        ("GET", "/api/v1/openapi.json", None, [200; 7]),
    ];
    for (method, path, body, expected) in cases {
        for ((who, auth), want) in callers.iter().zip(expected) {
            let mut req = match method {
                "GET" => env.client.get(path),
                "POST" => env.client.post(path),
                "PATCH" => env.client.patch(path),
                "PUT" => env.client.put(path),
                _ => unreachable!(),
            };
            if let Some(a) = auth {
                req = req.header(Header::new("Authorization", a.clone()));
            }
            if let Some(b) = &body {
                req = req.json(b);
            }
            let res = req.dispatch().await;
            let status = res.status().code;
            if status == 401 {
                assert_eq!(res.headers().get_one("WWW-Authenticate"), Some("Bearer realm=\"helpdesk\""));
            }
            if status >= 400 {
                let code = if status == 401 { "unauthorized" } else { "forbidden" };
                error_of(res, Status::from_code(status).unwrap(), code).await;
            }
            assert_eq!(status, want, "{method} {path} as {who}");
        }
    }
}
