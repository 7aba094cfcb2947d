//! Loki's push wire formats: the `logproto` protobuf messages (snappy *block* compressed)
//! and the JSON body (optionally gzip compressed).
//!
//! The messages mirror `pkg/push/push.proto` of Grafana Loki, field numbers included:
//!
//! ```text
//! message PushRequest      { repeated StreamAdapter streams = 1; }
//! message StreamAdapter    { string labels = 1; repeated EntryAdapter entries = 2; uint64 hash = 3; }
//! message LabelPairAdapter { string name = 1; string value = 2; }
//! message EntryAdapter     { google.protobuf.Timestamp timestamp = 1; string line = 2;
//!                            repeated LabelPairAdapter structuredMetadata = 3;
//!                            repeated LabelPairAdapter parsed = 4; // query responses only }
//! ```
//!
//! They are written by hand with `#[derive(prost::Message)]`, so no `protoc` is needed to
//! build. Loki decodes the body with snappy's *raw block* format (`snappy.Decode` in Go);
//! the framed (streaming) format is rejected with `400 snappy: corrupt input`, which is why
//! [`encode_protobuf`] uses [`snap::raw::Encoder`].

use std::collections::BTreeMap;
use std::io::Write;

use crate::batch::{Batch, Stream};

/// `google.protobuf.Timestamp`: seconds and nanoseconds since the Unix epoch.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Timestamp {
    /// Whole seconds since 1970-01-01T00:00:00Z.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Non-negative nanoseconds within the second.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// `logproto.PushRequest`: the body of `POST /loki/api/v1/push`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PushRequest {
    /// One entry per label set.
    #[prost(message, repeated, tag = "1")]
    pub streams: Vec<StreamAdapter>,
}

/// `logproto.StreamAdapter`: a label set in Prometheus notation and its entries.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamAdapter {
    /// `{name="value", ...}`.
    #[prost(string, tag = "1")]
    pub labels: String,
    /// The stream's entries, in the order they were read.
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<EntryAdapter>,
    /// Loki computes this itself; clients leave it 0.
    #[prost(uint64, tag = "3")]
    pub hash: u64,
}

/// `logproto.LabelPairAdapter`: one structured-metadata pair.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct LabelPairAdapter {
    /// Metadata name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Metadata value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `logproto.EntryAdapter`: one log line.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EntryAdapter {
    /// When the line was logged (from the line's JSON, else when it was read).
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<Timestamp>,
    /// The line, without its newline.
    #[prost(string, tag = "2")]
    pub line: String,
    /// High-cardinality fields (request ids): stored per entry, never as labels.
    #[prost(message, repeated, tag = "3")]
    pub structured_metadata: Vec<LabelPairAdapter>,
    /// Filled by Loki in query responses only; never sent.
    #[prost(message, repeated, tag = "4")]
    pub parsed: Vec<LabelPairAdapter>,
}

/// Splits nanoseconds since the epoch into a protobuf timestamp.
pub fn timestamp(ns: i64) -> Timestamp {
    Timestamp { seconds: ns.div_euclid(1_000_000_000), nanos: ns.rem_euclid(1_000_000_000) as i32 }
}

/// Groups the batch's lines by stream, keeping read order inside each stream.
fn grouped(batch: &Batch) -> BTreeMap<u32, (&Stream, Vec<usize>)> {
    let mut by_stream: BTreeMap<u32, (&Stream, Vec<usize>)> = BTreeMap::new();
    for (i, e) in batch.entries.iter().enumerate() {
        if let Some(s) = &e.stream {
            by_stream.entry(s.id).or_insert_with(|| (s, Vec::new())).1.push(i);
        }
    }
    by_stream
}

/// Builds the protobuf message for a batch, *moving* the lines and metadata values into it
/// (no copy of a megabyte of text per push), and the grouping used, to give them back.
fn take_push_request(batch: &mut Batch) -> (PushRequest, Vec<Vec<usize>>) {
    let groups: Vec<(String, Vec<usize>)> =
        grouped(batch).into_values().map(|(stream, idx)| (stream.rendered.clone(), idx)).collect();
    let mut streams = Vec::with_capacity(groups.len());
    let mut order = Vec::with_capacity(groups.len());
    for (labels, idx) in groups {
        let entries = idx
            .iter()
            .map(|&i| {
                let e = &mut batch.entries[i];
                EntryAdapter {
                    timestamp: Some(timestamp(e.ts_ns)),
                    line: std::mem::take(&mut e.line),
                    structured_metadata: e
                        .metadata
                        .iter_mut()
                        .map(|(n, v)| LabelPairAdapter { name: n.to_string(), value: std::mem::take(v) })
                        .collect(),
                    parsed: Vec::new(),
                }
            })
            .collect();
        streams.push(StreamAdapter { labels, entries, hash: 0 });
        order.push(idx);
    }
    (PushRequest { streams }, order)
}

/// Puts back what [`take_push_request`] moved out.
fn give_back(batch: &mut Batch, req: PushRequest, order: Vec<Vec<usize>>) {
    for (idx, stream) in order.into_iter().zip(req.streams) {
        for (i, entry) in idx.into_iter().zip(stream.entries) {
            let e = &mut batch.entries[i];
            e.line = entry.line;
            for ((_, v), md) in e.metadata.iter_mut().zip(entry.structured_metadata) {
                *v = md.value;
            }
        }
    }
}

/// The body for `encoding`.
pub fn encode(batch: &mut Batch, encoding: crate::config::Encoding) -> std::io::Result<bytes::Bytes> {
    use crate::config::Encoding;
    let body = match encoding {
        Encoding::Protobuf => encode_protobuf(batch).map_err(std::io::Error::other)?,
        Encoding::JsonGzip => encode_json(batch, true)?,
        Encoding::Json => encode_json(batch, false)?,
    };
    Ok(bytes::Bytes::from(body))
}

/// The protobuf body, snappy raw-block compressed (`Content-Type: application/x-protobuf`).
/// The batch is left as it was (its lines are lent to the message and given back, because
/// a batch refused with 413 is split and encoded again).
pub fn encode_protobuf(batch: &mut Batch) -> Result<Vec<u8>, snap::Error> {
    let (req, order) = take_push_request(batch);
    let raw = prost::Message::encode_to_vec(&req);
    give_back(batch, req, order);
    snap::raw::Encoder::new().compress_vec(&raw)
}

/// The JSON body (`Content-Type: application/json`), gzip compressed when `gzip` is set
/// (sent with `Content-Encoding: gzip`):
///
/// ```json
/// {"streams":[{"stream":{"job":"helpdesk"},"values":[["1700000000000000000","line",{"request_id":"42"}]]}]}
/// ```
pub fn encode_json(batch: &Batch, gzip: bool) -> std::io::Result<Vec<u8>> {
    use serde_json::{json, Map, Value};
    let streams: Vec<Value> = grouped(batch)
        .into_values()
        .map(|(stream, idx)| {
            let labels: Map<String, Value> =
                stream.labels.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
            let values: Vec<Value> = idx
                .into_iter()
                .map(|i| {
                    let e = &batch.entries[i];
                    if e.metadata.is_empty() {
                        json!([e.ts_ns.to_string(), e.line])
                    } else {
                        let md: Map<String, Value> =
                            e.metadata.iter().map(|(n, v)| (n.to_string(), Value::String(v.clone()))).collect();
                        json!([e.ts_ns.to_string(), e.line, md])
                    }
                })
                .collect();
            json!({ "stream": labels, "values": values })
        })
        .collect();
    let bytes = serde_json::to_vec(&json!({ "streams": streams })).map_err(std::io::Error::other)?;
    if !gzip {
        return Ok(bytes);
    }
    let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(bytes.len() / 4), flate2::Compression::fast());
    enc.write_all(&bytes)?;
    enc.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn field_numbers_match_push_proto_byte_for_byte() {
        // Hand-assembled from push.proto: EntryAdapter{timestamp=1{seconds=1,nanos=2}, line=2 "hi",
        // structuredMetadata=3 {name=1 "k", value=2 "v"}} inside StreamAdapter{labels=1, entries=2}.
        let req = PushRequest {
            streams: vec![StreamAdapter {
                labels: "{a=\"b\"}".into(),
                entries: vec![EntryAdapter {
                    timestamp: Some(Timestamp { seconds: 1, nanos: 2 }),
                    line: "hi".into(),
                    structured_metadata: vec![LabelPairAdapter { name: "k".into(), value: "v".into() }],
                    parsed: vec![],
                }],
                hash: 0,
            }],
        };
        let entry: Vec<u8> = vec![
            0x0a, 4, 0x08, 1, 0x10, 2, // timestamp (field 1, LEN) {seconds=1, nanos=2}
            0x12, 2, b'h', b'i', // line (field 2, LEN)
            0x1a, 6, 0x0a, 1, b'k', 0x12, 1, b'v', // structuredMetadata (field 3, LEN)
        ];
        let mut stream = vec![0x0a, 7];
        stream.extend_from_slice(b"{a=\"b\"}");
        stream.push(0x12);
        stream.push(entry.len() as u8);
        stream.extend_from_slice(&entry);
        let mut want = vec![0x0a, stream.len() as u8];
        want.extend_from_slice(&stream);
        assert_eq!(req.encode_to_vec(), want);
    }

    #[test]
    fn encoding_leaves_the_batch_as_it_was() {
        use crate::batch::{Entry, Stream};
        use crate::positions::SourceId;
        use std::sync::Arc;
        let a = Arc::new(Stream::new(1, vec![("level".into(), "info".into())]));
        let b = Arc::new(Stream::new(2, vec![("level".into(), "error".into())]));
        let mut batch = Batch::default();
        for (i, s) in [&a, &b, &a].into_iter().enumerate() {
            batch.push(Entry {
                stream: Some(s.clone()),
                ts_ns: i as i64,
                line: format!("line {i}"),
                metadata: vec![(Arc::from("request_id"), format!("r{i}"))],
                source: SourceId(0),
                end_offset: i as u64,
            });
        }
        let body = encode_protobuf(&mut batch).unwrap();
        let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
        let req = PushRequest::decode(raw.as_slice()).unwrap();
        assert_eq!(req.streams.len(), 2);
        assert_eq!(req.streams[0].entries.iter().map(|e| e.line.as_str()).collect::<Vec<_>>(), ["line 0", "line 2"]);
        assert_eq!(req.streams[1].entries[0].structured_metadata[0].value, "r1");
        for (i, e) in batch.entries.iter().enumerate() {
            assert_eq!(e.line, format!("line {i}"));
            assert_eq!(e.metadata[0].1, format!("r{i}"));
        }
    }

    #[test]
    fn timestamps_split_into_seconds_and_nanos() {
        assert_eq!(timestamp(1_700_000_000_123_456_789), Timestamp { seconds: 1_700_000_000, nanos: 123_456_789 });
        assert_eq!(timestamp(-1), Timestamp { seconds: -1, nanos: 999_999_999 });
    }
}
