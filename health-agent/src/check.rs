//! The conditions a probe checks: expected status codes, a latency bound and body conditions.

use std::fmt;
use std::time::Duration;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// Which condition a failed probe failed on. Written to the log as `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// No connection could be made (refused, unreachable, DNS, TLS handshake).
    Connect,
    /// No complete answer (headers and body) arrived within the target's timeout.
    Timeout,
    /// The request failed after connecting (reset, malformed answer, ...).
    Request,
    /// The status code is not one of the expected ones.
    Status,
    /// The body does not contain the expected text.
    BodyContains,
    /// The body does not match the expected regular expression.
    BodyRegex,
    /// The body is not JSON, the pointer does not resolve, or the value differs.
    Json,
    /// The answer came, but slower than the latency bound.
    Latency,
}

impl Condition {
    /// The name used in the log and the summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Connect => "connect",
            Condition::Timeout => "timeout",
            Condition::Request => "request",
            Condition::Status => "status",
            Condition::BodyContains => "body_contains",
            Condition::BodyRegex => "body_regex",
            Condition::Json => "json",
            Condition::Latency => "latency",
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a probe failed: the condition and a sentence for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The condition that failed.
    pub condition: Condition,
    /// What was seen, e.g. `status 503, expected 200-299`.
    pub message: String,
}

impl Failure {
    pub(crate) fn new(condition: Condition, message: impl Into<String>) -> Self {
        Failure { condition, message: message.into() }
    }
}

/// A set of acceptable status codes: single codes and inclusive ranges.
///
/// Parsed from `200`, `200-299`, `2xx` or a comma-separated list of those (`200,204,3xx`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSet {
    ranges: Vec<(u16, u16)>,
}

impl StatusSet {
    /// Every 2xx status: the default.
    pub fn success() -> Self {
        StatusSet { ranges: vec![(200, 299)] }
    }

    /// Exactly these codes.
    pub fn codes(codes: &[u16]) -> Self {
        StatusSet { ranges: codes.iter().map(|&c| (c, c)).collect() }
    }

    /// Whether `status` is acceptable.
    pub fn contains(&self, status: u16) -> bool {
        self.ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&status))
    }

    /// Parses one item list such as `200,204,3xx,500-503`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut ranges = Vec::new();
        for item in text.split(',').map(str::trim) {
            ranges.push(parse_status_item(item)?);
        }
        Ok(StatusSet { ranges })
    }

    /// Joins several sets (a TOML array of items).
    pub fn union(sets: impl IntoIterator<Item = StatusSet>) -> Result<Self, String> {
        let ranges: Vec<_> = sets.into_iter().flat_map(|s| s.ranges).collect();
        if ranges.is_empty() {
            return Err("an empty list of expected statuses accepts nothing".into());
        }
        Ok(StatusSet { ranges })
    }
}

fn parse_status_item(item: &str) -> Result<(u16, u16), String> {
    let code = |s: &str| -> Result<u16, String> {
        match s.trim().parse::<u16>() {
            Ok(c) if (100..=599).contains(&c) => Ok(c),
            _ => Err(format!("`{item}` is not a status code, a range like 200-299 or a class like 2xx")),
        }
    };
    if let Some(class) = item.strip_suffix("xx").or_else(|| item.strip_suffix("XX")) {
        let lo = code(&format!("{class}00"))?;
        return Ok((lo, lo + 99));
    }
    match item.split_once('-') {
        Some((lo, hi)) => {
            let (lo, hi) = (code(lo)?, code(hi)?);
            if lo > hi {
                return Err(format!("`{item}`: the range runs backwards"));
            }
            Ok((lo, hi))
        }
        None => code(item).map(|c| (c, c)),
    }
}

impl fmt::Display for StatusSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, &(lo, hi)) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if lo == hi {
                write!(f, "{lo}")?;
            } else if lo % 100 == 0 && hi == lo + 99 {
                write!(f, "{}xx", lo / 100)?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

/// A condition on the response body.
#[derive(Debug, Clone)]
pub enum BodyCheck {
    /// The body contains this text (compared as bytes, so any encoding works).
    Contains(String),
    /// The body, read as UTF-8 (invalid sequences replaced), matches this expression.
    Regex(Regex),
    /// The body is JSON, `pointer` (RFC 6901) resolves, and, if given, equals `expected`.
    Json {
        /// RFC 6901 pointer, e.g. `/status` or `/checks/0/ok`.
        pointer: String,
        /// The value it must equal; `None` only requires the pointer to resolve.
        expected: Option<serde_json::Value>,
    },
}

impl BodyCheck {
    /// Checks `body`; `truncated` says that only its first part was read.
    pub fn check(&self, body: &[u8], truncated: bool) -> Result<(), Failure> {
        let read = if truncated { " (in the part that was read)" } else { "" };
        match self {
            BodyCheck::Contains(needle) => {
                let found = needle.is_empty() || body.windows(needle.len()).any(|w| w == needle.as_bytes());
                if found {
                    Ok(())
                } else {
                    Err(Failure::new(Condition::BodyContains, format!("body does not contain {needle:?}{read}")))
                }
            }
            BodyCheck::Regex(re) => {
                if re.is_match(&String::from_utf8_lossy(body)) {
                    Ok(())
                } else {
                    Err(Failure::new(Condition::BodyRegex, format!("body does not match /{}/{read}", re.as_str())))
                }
            }
            BodyCheck::Json { pointer, expected } => {
                let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
                    let why = if truncated { format!("it is longer than {} bytes", body.len()) } else { e.to_string() };
                    Failure::new(Condition::Json, format!("body is not JSON: {why}"))
                })?;
                let Some(found) = value.pointer(pointer) else {
                    return Err(Failure::new(Condition::Json, format!("JSON pointer {pointer} is not in the body")));
                };
                match expected {
                    Some(want) if found != want => {
                        Err(Failure::new(Condition::Json, format!("JSON {pointer} is {found}, expected {want}")))
                    }
                    _ => Ok(()),
                }
            }
        }
    }
}

/// Checks a latency against an optional bound.
pub fn check_latency(latency: Duration, bound: Option<Duration>) -> Result<(), Failure> {
    match bound {
        Some(max) if latency > max => Err(Failure::new(
            Condition::Latency,
            format!("answered in {}, over the {} bound", fmt_duration(latency), fmt_duration(max)),
        )),
        _ => Ok(()),
    }
}

/// Milliseconds with one decimal below 10 s, whole seconds with one decimal above.
pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10_000.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{:.1} s", ms / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_sets_parse_codes_ranges_and_classes() {
        let s = StatusSet::parse("200, 204,3xx,500-503").unwrap();
        for ok in [200, 204, 300, 301, 399, 500, 503] {
            assert!(s.contains(ok), "{ok}");
        }
        for bad in [201, 299, 400, 499, 504] {
            assert!(!s.contains(bad), "{bad}");
        }
        assert_eq!(s.to_string(), "200,204,3xx,500-503");
        assert_eq!(StatusSet::success().to_string(), "2xx");
    }

    #[test]
    fn status_sets_refuse_nonsense() {
        for bad in ["", "abc", "99", "600", "299-200", "7xx", "2x", "200-", "-5"] {
            assert!(StatusSet::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(StatusSet::union([]).is_err());
    }

    #[test]
    fn body_contains_passes_and_fails() {
        let c = BodyCheck::Contains("ready".into());
        assert!(c.check(b"{\"status\":\"ready\"}", false).is_ok());
        let f = c.check(b"starting", false).unwrap_err();
        assert_eq!(f.condition, Condition::BodyContains);
        assert!(f.message.contains("\"ready\""), "{}", f.message);
    }

    #[test]
    fn body_regex_passes_and_fails() {
        let c = BodyCheck::Regex(Regex::new(r"^uptime \d+s$").unwrap());
        assert!(c.check(b"uptime 42s", false).is_ok());
        assert_eq!(c.check(b"uptime ?s", false).unwrap_err().condition, Condition::BodyRegex);
    }

    #[test]
    fn json_pointer_checks_presence_and_value() {
        let body = br#"{"status":"ready","checks":[{"ok":true}],"n":3}"#;
        let present = BodyCheck::Json { pointer: "/checks/0/ok".into(), expected: None };
        assert!(present.check(body, false).is_ok());
        let equal = BodyCheck::Json { pointer: "/n".into(), expected: Some(serde_json::json!(3)) };
        assert!(equal.check(body, false).is_ok());

        let missing = BodyCheck::Json { pointer: "/nope".into(), expected: None };
        assert!(missing.check(body, false).unwrap_err().message.contains("/nope"));
        let differs = BodyCheck::Json { pointer: "/status".into(), expected: Some(serde_json::json!("down")) };
        let f = differs.check(body, false).unwrap_err();
        assert_eq!(f.message, r#"JSON /status is "ready", expected "down""#);
        let not_json = BodyCheck::Json { pointer: "/status".into(), expected: None };
        assert!(not_json.check(b"<html>", false).unwrap_err().message.starts_with("body is not JSON"));
    }

    #[test]
    fn latency_bound_is_inclusive() {
        let bound = Some(Duration::from_millis(100));
        assert!(check_latency(Duration::from_millis(100), bound).is_ok());
        assert_eq!(check_latency(Duration::from_millis(101), bound).unwrap_err().condition, Condition::Latency);
        assert!(check_latency(Duration::from_secs(100), None).is_ok());
    }
}
