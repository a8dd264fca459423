//! Turning an HTTP request body into the Segment calls to publish: which
//! calls, for which write key, and what was wrong with the others. No I/O.

use kairos_model::{Event, InvalidEvent, Timestamp};
use kairos_nats::partition::message_id_header;
use serde_json::{Map, Value};

/// Segment's limits, which its SDKs respect: an event up to 32 KB, a batch
/// up to 500 KB.
pub const MAX_EVENT_BYTES: usize = 32 * 1024;
pub const MAX_BATCH_BYTES: usize = 500 * 1024;
/// More events than this in one batch are refused.
pub const MAX_BATCH_EVENTS: usize = 2_500;

/// What an endpoint takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// One call of this type (`/v1/track`, or `/v1/t` ...).
    Single(&'static str),
    /// `{"batch":[...]}` (`/v1/batch`, `/v1/import`, `/v1/b`).
    Batch,
}

/// Every path served, with what it takes.
pub const PATHS: &[(&str, Endpoint)] = &[
    ("/v1/track", Endpoint::Single("track")),
    ("/v1/identify", Endpoint::Single("identify")),
    ("/v1/page", Endpoint::Single("page")),
    ("/v1/screen", Endpoint::Single("screen")),
    ("/v1/group", Endpoint::Single("group")),
    ("/v1/alias", Endpoint::Single("alias")),
    ("/v1/t", Endpoint::Single("track")),
    ("/v1/i", Endpoint::Single("identify")),
    ("/v1/p", Endpoint::Single("page")),
    ("/v1/s", Endpoint::Single("screen")),
    ("/v1/g", Endpoint::Single("group")),
    ("/v1/a", Endpoint::Single("alias")),
    ("/v1/batch", Endpoint::Batch),
    ("/v1/import", Endpoint::Batch),
    ("/v1/b", Endpoint::Batch),
];

/// A request refused whole, with the HTTP status that says why.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    /// Stable code: `bad_json`, `too_large`, `batch_too_large`, ...
    pub reason: String,
    /// What was wrong and what is accepted.
    pub message: String,
}

impl Refusal {
    fn new(status: u16, reason: &str, message: String) -> Refusal {
        Refusal {
            status,
            reason: reason.to_string(),
            message,
        }
    }
}

/// A call ready to publish: its customer key and message id (for the
/// subject and `Nats-Msg-Id`) and the JSON to send.
#[derive(Debug)]
pub struct Ready {
    pub customer_key: String,
    pub message_id: String,
    pub payload: Vec<u8>,
}

/// One call of a request: ready, or rejected with why (its JSON, as far as
/// it was JSON, still goes to the DLQ through the events stream).
#[derive(Debug)]
pub enum Call {
    Ready(Ready),
    Rejected {
        index: usize,
        invalid: InvalidEvent,
        /// Its `Nats-Msg-Id`: the same when the request is sent again.
        message_id: String,
        payload: Vec<u8>,
    },
}

/// A request's calls and the write key found in its body, if any.
#[derive(Debug)]
pub struct Parsed {
    pub calls: Vec<Call>,
    pub body_write_key: Option<String>,
}

/// Reads a (decompressed) request body for `endpoint`, received at
/// `received_at`. A batch keeps its good calls and reports the bad ones by
/// index; a single bad call refuses the request (400).
pub fn parse(endpoint: Endpoint, body: &[u8], received_at: Timestamp) -> Result<Parsed, Refusal> {
    let limit = match endpoint {
        Endpoint::Single(_) => MAX_EVENT_BYTES,
        Endpoint::Batch => MAX_BATCH_BYTES,
    };
    if body.len() > limit {
        let reason = match endpoint {
            Endpoint::Single(_) => "too_large",
            Endpoint::Batch => "batch_too_large",
        };
        return Err(Refusal::new(
            413,
            reason,
            format!(
                "the body is {} bytes; accepted: at most {limit} bytes",
                body.len()
            ),
        ));
    }
    let value: Value = serde_json::from_slice(body).map_err(|error| {
        Refusal::new(
            400,
            "bad_json",
            format!("the body is not JSON ({error}); accepted: a JSON object"),
        )
    })?;
    let Value::Object(mut object) = value else {
        return Err(Refusal::new(
            400,
            "bad_json",
            "the body is not a JSON object; accepted: a JSON object".into(),
        ));
    };
    let body_write_key = object
        .remove("writeKey")
        .and_then(|key| key.as_str().map(str::to_string));
    let received = Value::String(received_at.to_rfc3339());
    match endpoint {
        Endpoint::Single(call_type) => {
            object.entry("type").or_insert_with(|| call_type.into());
            match prepare(object, &received, None) {
                Ok(ready) => Ok(Parsed {
                    calls: vec![Call::Ready(ready)],
                    body_write_key,
                }),
                Err((invalid, _)) => {
                    let status = match invalid {
                        InvalidEvent::TooLarge { .. } => 413,
                        _ => 400,
                    };
                    Err(Refusal::new(status, invalid.reason(), invalid.to_string()))
                }
            }
        }
        Endpoint::Batch => {
            let sent_at = object.get("sentAt").cloned().filter(|at| !at.is_null());
            // The batch's sentAt times every call without its own: a bad one
            // would send them all to the DLQ.
            if let Some(at) = &sent_at {
                if at
                    .as_str()
                    .and_then(|text| Timestamp::parse_rfc3339(text).ok())
                    .is_none()
                {
                    return Err(Refusal::new(
                        400,
                        "bad_timestamp",
                        format!("sentAt {at} is not a time; accepted: RFC 3339, e.g. 2026-11-23T10:00:00Z"),
                    ));
                }
            }
            let Some(Value::Array(batch)) = object.remove("batch") else {
                return Err(Refusal::new(
                    400,
                    "bad_batch",
                    "no \"batch\" array; accepted: {\"batch\":[call, ...]}".into(),
                ));
            };
            if batch.len() > MAX_BATCH_EVENTS {
                return Err(Refusal::new(
                    413,
                    "batch_too_large",
                    format!(
                        "the batch holds {} events; accepted: at most {MAX_BATCH_EVENTS}",
                        batch.len()
                    ),
                ));
            }
            let calls = batch
                .into_iter()
                .enumerate()
                .map(|(index, call)| {
                    let rejected_id = |call: &Value| {
                        format!(
                            "rejected-{index}-{:016x}",
                            xxhash_rust::xxh3::xxh3_64(as_sent(call).as_bytes())
                        )
                    };
                    match call {
                        Value::Object(mut call) => {
                            // analytics.js puts its write key in every call
                            // of a batch: no key is stored.
                            call.remove("writeKey");
                            let message_id = rejected_id(&Value::Object(call.clone()));
                            match prepare(call, &received, sent_at.as_ref()) {
                                Ok(ready) => Call::Ready(ready),
                                Err((invalid, payload)) => Call::Rejected {
                                    index,
                                    invalid,
                                    message_id,
                                    payload,
                                },
                            }
                        }
                        other => Call::Rejected {
                            index,
                            invalid: InvalidEvent::NotJson(
                                "a batch entry is not a JSON object".into(),
                            ),
                            message_id: rejected_id(&other),
                            payload: other.to_string().into_bytes(),
                        },
                    }
                })
                .collect();
            Ok(Parsed {
                calls,
                body_write_key,
            })
        }
    }
}

/// Completes one call as the engine will read it: the server's
/// `receivedAt` (Segment's clock-skew correction needs it with `sentAt`),
/// the batch's `sentAt` where the call has none, and a `messageId` made
/// from the call as sent where it has none, so that an SDK's retry of the
/// same call is recognised.
fn prepare(
    mut call: Map<String, Value>,
    received: &Value,
    batch_sent_at: Option<&Value>,
) -> Result<Ready, (InvalidEvent, Vec<u8>)> {
    let has_id = match call.get("messageId") {
        None | Some(Value::Null) => false,
        Some(Value::String(id)) => !id.is_empty(),
        Some(_) => true,
    };
    if !has_id {
        call.remove("messageId");
        let as_sent = as_sent(&Value::Object(call.clone()));
        let id = format!(
            "gen-{:016x}",
            xxhash_rust::xxh3::xxh3_64(as_sent.as_bytes())
        );
        call.insert("messageId".into(), id.into());
    }
    if let Some(sent_at) = batch_sent_at {
        call.entry("sentAt").or_insert_with(|| sent_at.clone());
    }
    call.insert("receivedAt".into(), received.clone());
    let payload = Value::Object(call).to_string().into_bytes();
    if payload.len() > MAX_EVENT_BYTES {
        let invalid = InvalidEvent::TooLarge {
            size: payload.len(),
            limit: MAX_EVENT_BYTES,
        };
        return Err((invalid, payload));
    }
    match Event::from_json(&payload) {
        Ok(event) => Ok(Ready {
            customer_key: event.customer_key().to_string(),
            message_id: message_id_header(&event.message_id).into_owned(),
            payload,
        }),
        Err(invalid) => Err((invalid, payload)),
    }
}

/// A call as its sender made it, for an id that is the same each time it
/// is sent: without what a sender sets anew on each attempt (`sentAt`)
/// and what the collector sets (`receivedAt`, `writeKey` removed).
fn as_sent(call: &Value) -> String {
    match call {
        Value::Object(fields) => {
            let mut fields = fields.clone();
            for field in ["sentAt", "receivedAt", "writeKey"] {
                fields.remove(field);
            }
            Value::Object(fields).to_string()
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> Timestamp {
        Timestamp::parse_rfc3339("2026-11-23T10:00:05Z").unwrap()
    }

    #[test]
    fn a_single_call_takes_its_type_from_the_path_and_the_server_time() {
        let body = br#"{"event":"Signed Up","userId":"u1","timestamp":"2026-11-23T10:00:00Z","sentAt":"2026-11-23T10:00:01Z","writeKey":"wk"}"#;
        let parsed = parse(Endpoint::Single("track"), body, at()).unwrap();
        assert_eq!(parsed.body_write_key.as_deref(), Some("wk"));
        let [Call::Ready(ready)] = &parsed.calls[..] else {
            panic!("{parsed:?}")
        };
        assert_eq!(ready.customer_key, "u1");
        assert!(ready.message_id.starts_with("gen-"));
        let event = Event::from_json(&ready.payload).unwrap();
        // receivedAt - (sentAt - timestamp) = 10:00:05 - 1 s.
        assert_eq!(event.time.to_rfc3339(), "2026-11-23T10:00:04.000Z");
        assert!(!String::from_utf8_lossy(&ready.payload).contains("writeKey"));
    }

    #[test]
    fn the_same_call_sent_twice_gets_the_same_generated_id() {
        let body = br#"{"event":"Signed Up","userId":"u1","timestamp":"2026-11-23T10:00:00Z"}"#;
        let id = |received| match &parse(Endpoint::Single("track"), body, received)
            .unwrap()
            .calls[0]
        {
            Call::Ready(ready) => ready.message_id.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(id(at()), id(Timestamp(at().0 + 60_000)));
    }

    #[test]
    fn a_retry_with_a_new_sent_at_or_a_null_id_gets_the_same_generated_id() {
        let id = |body: &str, received| match &parse(
            Endpoint::Single("track"),
            body.as_bytes(),
            received,
        )
        .unwrap()
        .calls[0]
        {
            Call::Ready(ready) => ready.message_id.clone(),
            other => panic!("{other:?}"),
        };
        let call = |sent_at: &str, id: &str| {
            format!(
                r#"{{"event":"A","userId":"u1","timestamp":"2026-11-23T10:00:00Z","sentAt":"{sent_at}"{id}}}"#
            )
        };
        let first = id(&call("2026-11-23T10:00:01Z", ""), at());
        let later = Timestamp(at().0 + 60_000);
        assert_eq!(first, id(&call("2026-11-23T10:01:01Z", ""), later));
        for empty in [r#","messageId":null"#, r#","messageId":"""#] {
            assert_eq!(first, id(&call("2026-11-23T10:01:01Z", empty), later));
        }
    }

    #[test]
    fn a_message_id_with_a_line_break_is_no_header_and_no_write_key_is_kept() {
        let body = br#"{"writeKey":"wk","batch":[
            {"type":"track","event":"A","userId":"u1","messageId":"m1\r\nNats-Expected-Last-Sequence: 1","writeKey":"wk"},
            {"type":"track","event":"B","messageId":"m2","writeKey":"wk"}
        ]}"#;
        let rejected_id = |received| {
            let parsed = parse(Endpoint::Batch, body, received).unwrap();
            let Call::Ready(ready) = &parsed.calls[0] else {
                panic!("{parsed:?}")
            };
            assert!(ready.message_id.starts_with("msgid-"), "{ready:?}");
            let Call::Rejected {
                message_id,
                payload,
                ..
            } = &parsed.calls[1]
            else {
                panic!("{parsed:?}")
            };
            for payload in [&ready.payload, payload] {
                assert!(!String::from_utf8_lossy(payload).contains("wk"));
            }
            message_id.clone()
        };
        // The DLQ keeps one copy when the batch is sent again.
        assert_eq!(rejected_id(at()), rejected_id(Timestamp(at().0 + 60_000)));
    }

    #[test]
    fn a_batch_keeps_its_good_calls_and_names_the_bad_ones_by_index() {
        let body = br#"{"batch":[
            {"type":"track","event":"A","userId":"u1","messageId":"m1","timestamp":"2026-11-23T10:00:00Z"},
            {"type":"track","event":"B","messageId":"m2","timestamp":"2026-11-23T10:00:00Z"},
            7,
            {"type":"identify","userId":"u2","messageId":"m3"}
        ],"sentAt":"2026-11-23T10:00:05Z"}"#;
        let parsed = parse(Endpoint::Batch, body, at()).unwrap();
        let summary: Vec<String> = parsed
            .calls
            .iter()
            .map(|call| match call {
                Call::Ready(ready) => format!("ok {}", ready.message_id),
                Call::Rejected { index, invalid, .. } => format!("{index} {}", invalid.reason()),
            })
            .collect();
        assert_eq!(
            summary,
            ["ok m1", "1 missing_identity", "2 not_json", "ok m3"]
        );
    }

    #[test]
    fn a_batch_with_a_bad_sent_at_is_refused_whole() {
        let refused = parse(
            Endpoint::Batch,
            br#"{"sentAt":"yesterday","batch":[{"type":"track","event":"A","userId":"u1"}]}"#,
            at(),
        )
        .unwrap_err();
        assert_eq!(
            (refused.status, refused.reason.as_str()),
            (400, "bad_timestamp")
        );
        assert!(
            refused.message.contains("sentAt \"yesterday\""),
            "{}",
            refused.message
        );
    }

    #[test]
    fn refusals_say_what_is_accepted() {
        let refused = |endpoint, body: &[u8]| parse(endpoint, body, at()).unwrap_err();
        assert_eq!(refused(Endpoint::Single("track"), b"{nope").status, 400);
        let missing = refused(
            Endpoint::Single("track"),
            br#"{"userId":"u1","timestamp":"2026-11-23T10:00:00Z"}"#,
        );
        assert_eq!(
            (missing.status, missing.reason.as_str()),
            (400, "missing_event_name")
        );
        let big = format!(
            r#"{{"event":"A","userId":"u1","properties":{{"pad":"{}"}}}}"#,
            "x".repeat(MAX_EVENT_BYTES)
        );
        assert_eq!(
            refused(Endpoint::Single("track"), big.as_bytes()).status,
            413
        );
        let many = format!(
            r#"{{"batch":[{}]}}"#,
            vec!["{}"; MAX_BATCH_EVENTS + 1].join(",")
        );
        let too_many = refused(Endpoint::Batch, many.as_bytes());
        assert_eq!(
            (too_many.status, too_many.reason.as_str()),
            (413, "batch_too_large")
        );
        assert!(
            too_many.message.contains("accepted: at most 2500"),
            "{}",
            too_many.message
        );
    }
}
