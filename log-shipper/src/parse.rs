//! Reading the few fields the shipper needs out of a JSON log line — the timestamp, the
//! low-cardinality label fields and the structured-metadata fields — in one pass that
//! skips every other value without building it.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};

/// What a wanted top-level field is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A timestamp candidate; earlier candidates win.
    Timestamp(u8),
    /// The n-th label field.
    Label(u8),
    /// The n-th structured-metadata field.
    Metadata(u8),
}

/// The top-level fields to look for.
#[derive(Debug, Clone)]
pub struct Fields {
    wanted: Vec<(String, Role)>,
    /// Number of label fields.
    pub labels: usize,
    /// Number of metadata fields.
    pub metadata: usize,
}

/// Values found in one line (borrowed from it unless they held escapes).
#[derive(Debug, Default, PartialEq)]
pub struct Extracted<'a> {
    /// Nanoseconds since the epoch, from the best timestamp candidate that parsed.
    pub ts_ns: Option<i64>,
    /// Which timestamp candidate gave `ts_ns` (lower is better).
    ts_rank: u8,
    /// Values of the label fields, by position.
    pub labels: Vec<Option<Cow<'a, str>>>,
    /// Values of the metadata fields, by position.
    pub metadata: Vec<Option<Cow<'a, str>>>,
}

impl Fields {
    /// Fields in priority order for timestamps.
    pub fn new(timestamps: &[String], labels: &[String], metadata: &[String]) -> Fields {
        let mut wanted = Vec::new();
        for (i, f) in timestamps.iter().enumerate().take(255) {
            wanted.push((f.clone(), Role::Timestamp(i as u8)));
        }
        for (i, f) in labels.iter().enumerate().take(255) {
            wanted.push((f.clone(), Role::Label(i as u8)));
        }
        for (i, f) in metadata.iter().enumerate().take(255) {
            wanted.push((f.clone(), Role::Metadata(i as u8)));
        }
        Fields { wanted, labels: labels.len().min(255), metadata: metadata.len().min(255) }
    }

    /// Parses `line` if it is a JSON object; `None` for anything else (plain text lines are
    /// shipped as they are, stamped with the time they were read).
    pub fn extract<'a>(&self, line: &'a [u8]) -> Option<Extracted<'a>> {
        let first = line.iter().find(|b| !b.is_ascii_whitespace())?;
        if *first != b'{' || self.wanted.is_empty() {
            return None;
        }
        let mut out = Extracted {
            ts_ns: None,
            ts_rank: u8::MAX,
            labels: vec![None; self.labels],
            metadata: vec![None; self.metadata],
        };
        let mut de = serde_json::Deserializer::from_slice(line);
        de::Deserializer::deserialize_map(&mut de, TopLevel { fields: self, out: &mut out }).ok()?;
        Some(out)
    }
}

struct TopLevel<'a, 'de> {
    fields: &'a Fields,
    out: &'a mut Extracted<'de>,
}

impl<'de> Visitor<'de> for TopLevel<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(role) = map.next_key_seed(Key(self.fields))? {
            let Some(role) = role else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let value: Scalar<'de> = map.next_value()?;
            match role {
                Role::Timestamp(rank) if rank < self.out.ts_rank => {
                    if let Some(ns) = value.timestamp_ns() {
                        self.out.ts_ns = Some(ns);
                        self.out.ts_rank = rank;
                    }
                }
                Role::Timestamp(_) => {}
                Role::Label(i) => self.out.labels[i as usize] = value.into_cow(),
                Role::Metadata(i) => self.out.metadata[i as usize] = value.into_cow(),
            }
        }
        Ok(())
    }
}

/// Deserializes a key to the role it plays, without allocating.
struct Key<'a>(&'a Fields);

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = Option<Role>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = Option<Role>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.wanted.iter().find(|(n, _)| n == v).map(|(_, r)| *r))
    }
}

/// A field value we keep: strings, numbers and booleans; objects, arrays and null are
/// ignored.
enum Scalar<'de> {
    Str(Cow<'de, str>),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
    Other,
}

impl<'de> de::Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Owned(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Scalar::I64(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Scalar::U64(v))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Scalar::F64(v))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Scalar<'de> {
    fn into_cow(self) -> Option<Cow<'de, str>> {
        match self {
            Scalar::Str(s) => Some(s),
            Scalar::I64(n) => Some(Cow::Owned(n.to_string())),
            Scalar::U64(n) => Some(Cow::Owned(n.to_string())),
            Scalar::F64(n) => Some(Cow::Owned(n.to_string())),
            Scalar::Bool(b) => Some(Cow::Owned(b.to_string())),
            Scalar::Other => None,
        }
    }

    fn timestamp_ns(&self) -> Option<i64> {
        match self {
            Scalar::Str(s) => parse_rfc3339_ns(s),
            Scalar::I64(n) => epoch_ns(*n as f64),
            Scalar::U64(n) => epoch_ns(*n as f64),
            Scalar::F64(n) => epoch_ns(*n),
            _ => None,
        }
    }
}

/// Parses an RFC 3339 time (`2025-11-23T12:00:00.123456Z`, any offset) to nanoseconds.
pub fn parse_rfc3339_ns(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s).ok()?.timestamp_nanos_opt()
}

/// A Unix epoch number in seconds, milliseconds, microseconds or nanoseconds, told apart by
/// magnitude (seconds until the year 5138, and so on).
fn epoch_ns(n: f64) -> Option<i64> {
    if !n.is_finite() || n <= 0.0 {
        return None;
    }
    let ns = if n < 1e11 {
        n * 1e9
    } else if n < 1e14 {
        n * 1e6
    } else if n < 1e17 {
        n * 1e3
    } else {
        n
    };
    (ns < i64::MAX as f64).then_some(ns as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> Fields {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Fields::new(&s(&["timestamp", "time"]), &s(&["level", "target"]), &s(&["request_id"]))
    }

    #[test]
    fn server_access_line() {
        let line = br#"{"timestamp":"2025-11-23T12:00:00.123456Z","level":"INFO","message":"request","target":"helpdesk_server::access","request_id":"ab12","method":"GET","route":"/api/v1/tickets/<id>","status":404,"duration_ms":1.5,"span":{"x":[1,2]}}"#;
        let e = fields().extract(line).expect("a JSON object");
        assert_eq!(e.ts_ns, Some(1_763_899_200_123_456_000));
        assert_eq!(e.labels, vec![Some("INFO".into()), Some("helpdesk_server::access".into())]);
        assert_eq!(e.metadata, vec![Some("ab12".into())]);
    }

    #[test]
    fn health_agent_line_uses_time() {
        let line = br#"{"time":"2025-11-23T12:00:01+01:00","target":"health","ok":true,"status":200}"#;
        let e = fields().extract(line).expect("a JSON object");
        assert_eq!(e.ts_ns, Some(1_763_895_601_000_000_000));
        assert_eq!(e.labels, vec![None, Some("health".into())]);
    }

    #[test]
    fn first_listed_timestamp_field_wins_whatever_the_key_order() {
        let line = br#"{"time":"2025-01-01T00:00:00Z","timestamp":"2025-01-02T00:00:00Z"}"#;
        assert_eq!(fields().extract(line).and_then(|e| e.ts_ns), parse_rfc3339_ns("2025-01-02T00:00:00Z"));
        let bad_first = br#"{"timestamp":"yesterday","time":"2025-01-01T00:00:00Z"}"#;
        assert_eq!(fields().extract(bad_first).and_then(|e| e.ts_ns), parse_rfc3339_ns("2025-01-01T00:00:00Z"));
    }

    #[test]
    fn escaped_strings_and_numbers() {
        let line = br#"{"level":"WA\"RN","request_id":42,"ts":1}"#;
        let e = fields().extract(line).expect("object");
        assert_eq!(e.labels[0].as_deref(), Some("WA\"RN"));
        assert_eq!(e.metadata[0].as_deref(), Some("42"));
    }

    #[test]
    fn epoch_numbers_by_magnitude() {
        assert_eq!(epoch_ns(1_700_000_000.5), Some(1_700_000_000_500_000_000));
        assert_eq!(epoch_ns(1_700_000_000_000.0), Some(1_700_000_000_000_000_000));
        assert_eq!(epoch_ns(1_700_000_000_000_000_000.0), Some(1_700_000_000_000_000_000));
        assert_eq!(epoch_ns(-5.0), None);
    }

    #[test]
    fn non_json_and_broken_json_are_not_parsed() {
        assert_eq!(fields().extract(b"plain text line"), None);
        assert_eq!(fields().extract(br#"{"level":"info""#), None);
        assert_eq!(fields().extract(b""), None);
    }
}
