//! One log line: the JSON record of one probe, and the run id that groups a run's records.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::check::Condition;
use crate::probe::ProbeResult;

/// This agent's version, written into every record.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Longest error text kept in a record (characters); longer texts are cut with `...`.
pub const MAX_ERROR_LEN: usize = 1024;

/// One probe's result as written to the log, one JSON object per line:
///
/// ```json
/// {"time":"2026-11-23T12:00:00.125Z","run_id":"20261123T120000.120Z-5f0c3a9e","target":"readiness",
///  "url":"http://127.0.0.1:8000/api/v1/health","method":"GET","ok":false,"status":503,
///  "latency_ms":2.311,"connect_ms":0.193,"attempts":1,"failed":"status",
///  "error":"status 503, expected 200","agent_version":"0.1.0"}
/// ```
///
/// Every field is always present (`null` when it does not apply), so the lines have one
/// shape for `jq` and LogQL alike.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// When the probe started, RFC 3339 UTC with milliseconds.
    #[serde(with = "rfc3339_ms")]
    pub time: DateTime<Utc>,
    /// The run this probe belongs to.
    pub run_id: String,
    /// The target's name.
    pub target: String,
    /// The URL probed.
    pub url: String,
    /// The HTTP method.
    pub method: String,
    /// Whether every condition held (on the last attempt).
    pub ok: bool,
    /// The status code of the last attempt, if an answer came.
    pub status: Option<u16>,
    /// Total time of the last attempt: connect, request and reading the answer, in ms.
    pub latency_ms: f64,
    /// Time to open the connection (DNS, TCP, TLS) in the last attempt, in ms, when measured.
    pub connect_ms: Option<f64>,
    /// Attempts made (1 + retries used).
    pub attempts: u32,
    /// The condition that failed, if any.
    pub failed: Option<Condition>,
    /// What went wrong, for a person.
    pub error: Option<String>,
    /// The agent's version.
    pub agent_version: String,
}

impl Record {
    /// The record of a probe result within run `run_id`.
    pub fn from_result(run_id: &str, r: &ProbeResult) -> Record {
        let ms = |d: std::time::Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
        Record {
            time: r.started,
            run_id: run_id.to_string(),
            target: r.target.clone(),
            url: r.url.clone(),
            method: r.method.clone(),
            ok: r.failure.is_none(),
            status: r.status,
            latency_ms: ms(r.latency),
            connect_ms: r.connect.map(ms),
            attempts: r.attempts,
            failed: r.failure.as_ref().map(|f| f.condition),
            error: r.failure.as_ref().map(|f| truncate(&f.message, MAX_ERROR_LEN)),
            agent_version: AGENT_VERSION.to_string(),
        }
    }

    /// The JSON line, without its newline.
    pub fn to_line(&self) -> String {
        // A struct of strings, numbers and options always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

/// A new run id: the start time (sortable) and 32 random bits (unique across agents).
pub fn new_run_id(now: DateTime<Utc>) -> String {
    format!("{}-{:08x}", now.format("%Y%m%dT%H%M%S%.3fZ"), rand::random::<u32>())
}

/// RFC 3339 UTC with milliseconds, the time format of the whole project.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

mod rfc3339_ms {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_time(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text).map(|t| t.with_timezone(&Utc)).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_their_line() {
        let r = Record {
            time: DateTime::parse_from_rfc3339("2026-11-23T12:00:00.125Z").unwrap().with_timezone(&Utc),
            run_id: "r".into(),
            target: "t".into(),
            url: "http://a/".into(),
            method: "GET".into(),
            ok: false,
            status: Some(503),
            latency_ms: 2.311,
            connect_ms: None,
            attempts: 2,
            failed: Some(Condition::Status),
            error: Some("status 503, expected 200".into()),
            agent_version: AGENT_VERSION.into(),
        };
        let line = r.to_line();
        assert!(line.starts_with(r#"{"time":"2026-11-23T12:00:00.125Z","run_id":"r","#), "{line}");
        assert!(line.contains(r#""connect_ms":null"#) && line.contains(r#""failed":"status""#), "{line}");
        assert_eq!(serde_json::from_str::<Record>(&line).unwrap(), r);
    }

    #[test]
    fn long_errors_are_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_ERROR_LEN + 5);
        let cut = truncate(&long, MAX_ERROR_LEN);
        assert_eq!(cut.chars().count(), MAX_ERROR_LEN + 3);
        assert!(cut.ends_with("é..."));
        assert_eq!(truncate("short", MAX_ERROR_LEN), "short");
    }

    #[test]
    fn run_ids_sort_by_time_and_differ() {
        let t = Utc::now();
        let (a, b) = (new_run_id(t), new_run_id(t));
        assert_ne!(a, b);
        assert!(a.len() == b.len() && a[..19] == b[..19]);
    }
}
