//! The HTTP side: authentication, limits, publishing, and answers an SDK
//! and a person can act on.

use crate::calls::{parse, Call, Endpoint, Refusal, MAX_BATCH_BYTES, PATHS};
use crate::keys::{Keys, Source};
use async_nats::jetstream;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use kairos_model::Timestamp;
use kairos_nats::partition::{event_subject, partition_of};
use serde_json::json;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

/// How long JetStream may take to store a request's events before the
/// client is told to retry (503).
const STORE_WITHIN: Duration = Duration::from_secs(5);

/// What the handlers share.
pub struct Collector {
    pub js: jetstream::Context,
    pub keys: Keys,
    pub partitions: u32,
}

/// Every path of Segment's Tracking API, with CORS for browsers.
pub fn router(collector: Arc<Collector>) -> Router {
    let mut router = Router::new();
    for &(path, endpoint) in PATHS {
        router = router.route(
            path,
            post(
                move |state: State<Arc<Collector>>, headers: HeaderMap, body: Bytes| {
                    handle(state, endpoint, headers, body)
                },
            )
            .options(|| async { with_cors(StatusCode::NO_CONTENT.into_response()) }),
        );
    }
    router
        .route("/v1/projects/{write_key}/settings", get(settings))
        .with_state(collector)
}

/// The settings Segment's CDN serves a source, as analytics.js and the
/// mobile SDKs fetch them at start (from `cdnURL` / `cdnHost`): they name
/// this collector as the API host, so those SDKs need no Segment account
/// and send nothing to Segment.
async fn settings(
    State(collector): State<Arc<Collector>>,
    Path(write_key): Path<String>,
    headers: HeaderMap,
) -> Response {
    if collector.keys.get(&write_key).is_none() {
        return refuse(refusal(
            404,
            "unknown_write_key",
            "no source has this write key; accepted: a write key from the keys file",
        ));
    }
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .unwrap_or("localhost");
    // Behind a TLS-terminating proxy the page spoke https; here it spoke
    // plain http.
    let protocol = headers
        .get("x-forwarded-proto")
        .and_then(|proto| proto.to_str().ok())
        .filter(|proto| matches!(*proto, "http" | "https"))
        .unwrap_or("http");
    let body = json!({
        "integrations": {
            "Segment.io": {
                "apiKey": write_key,
                "apiHost": format!("{host}/v1"),
                "protocol": protocol,
            }
        },
        "plan": {"track": {"__default": {"enabled": true, "integrations": {}}}},
        // No usage metrics to Segment's servers.
        "metrics": {"sampleRate": 0},
        "remotePlugins": [],
    });
    with_cors((StatusCode::OK, axum::Json(body)).into_response())
}

/// A browser page on any origin may send; SDKs send these headers
/// (analytics.js adds `X-Retry-Count` when it sends again).
fn with_cors(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Authorization, Content-Type, Content-Encoding, X-Retry-Count"),
    );
    // A page's script reads how long to wait after a 429.
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Retry-After"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    response
}

fn refuse(refusal: Refusal) -> Response {
    let status = StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::BAD_REQUEST);
    let body = json!({"success": false, "reason": refusal.reason, "error": refusal.message});
    with_cors((status, axum::Json(body)).into_response())
}

fn refusal(status: u16, reason: &str, message: &str) -> Refusal {
    Refusal {
        status,
        reason: reason.to_string(),
        message: message.to_string(),
    }
}

async fn handle(
    State(collector): State<Arc<Collector>>,
    endpoint: Endpoint,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = std::time::Instant::now();
    let response = match answer(&collector, endpoint, &headers, &body).await {
        Ok(response) => with_cors(response),
        Err(refused) => {
            metrics::counter!("kairos_collector_refused_total", "reason" => refused.reason.clone())
                .increment(1);
            refuse(refused)
        }
    };
    metrics::histogram!("kairos_collector_request_seconds").record(started.elapsed());
    response
}

async fn answer(
    collector: &Collector,
    endpoint: Endpoint,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, Refusal> {
    // A key in the header is checked before the body is read: a request
    // with a wrong one costs no decompressing or parsing.
    let header_key = basic_user(headers);
    if let Some(key) = &header_key {
        source_of(collector, key)?;
    }
    let body = decompress(headers, body)?;
    let parsed = parse(endpoint, &body, Timestamp::now())?;
    let write_key = header_key
        .or(parsed.body_write_key.clone())
        .ok_or_else(|| {
            refusal(401, "missing_write_key", "no write key; accepted: HTTP Basic with the write key as user name and an empty password, or \"writeKey\" in the body")
        })?;
    let source = source_of(collector, &write_key)?;
    if let Err(wait) = source.take(parsed.calls.len()) {
        metrics::counter!("kairos_collector_refused_total", "reason" => "rate_limited")
            .increment(1);
        let mut response = refuse(refusal(
            429,
            "rate_limited",
            &format!(
                "source {:?} sends faster than its rate_per_second; retry after {wait} s",
                source.name
            ),
        ));
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait));
        return Ok(response);
    }
    let mut acks = Vec::with_capacity(parsed.calls.len());
    let mut rejected = Vec::new();
    for call in parsed.calls {
        let (subject, id, payload) = match call {
            Call::Ready(ready) => (
                event_subject(partition_of(&ready.customer_key, collector.partitions)),
                ready.message_id,
                ready.payload,
            ),
            Call::Rejected {
                index,
                invalid,
                message_id,
                payload,
            } => {
                rejected.push(json!({"index": index, "reason": invalid.reason(), "error": invalid.to_string()}));
                // Through the events stream to the engine, which puts it in
                // the DLQ with the same reason: the collector publishes
                // events only.
                (event_subject(0), message_id, payload)
            }
        };
        let mut message_headers = async_nats::HeaderMap::new();
        message_headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
        let sent = collector
            .js
            .publish_with_headers(subject, message_headers, payload.into())
            .await;
        match sent {
            Ok(ack) => acks.push(ack),
            Err(_) => return Err(unavailable()),
        }
    }
    let accepted = acks.len() - rejected.len();
    let stored = tokio::time::timeout(
        STORE_WITHIN,
        futures::future::join_all(acks.into_iter().map(std::future::IntoFuture::into_future)),
    )
    .await;
    match stored {
        Ok(results) if results.iter().all(Result::is_ok) => {}
        _ => return Err(unavailable()),
    }
    metrics::counter!("kairos_collector_events_total", "source" => source.name.clone())
        .increment(accepted as u64);
    for entry in &rejected {
        let reason = entry["reason"].as_str().unwrap_or_default().to_string();
        metrics::counter!("kairos_collector_rejected_total", "reason" => reason).increment(1);
    }
    let body = if rejected.is_empty() {
        json!({"success": true})
    } else {
        json!({"success": true, "rejected": rejected})
    };
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

/// The source a write key is for; 401 for a key not in the keys file.
fn source_of<'a>(collector: &'a Collector, write_key: &str) -> Result<&'a Source, Refusal> {
    collector.keys.get(write_key).ok_or_else(|| {
        refusal(
            401,
            "unknown_write_key",
            "the write key is not one of --keys; accepted: a write key from the keys file",
        )
    })
}

fn unavailable() -> Refusal {
    refusal(503, "unavailable", "the events stream did not store the events; retry: sending again is safe, each event is stored once")
}

/// The user name of HTTP Basic authentication (the write key).
fn basic_user(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    // The scheme's name is case-insensitive (RFC 9110).
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let user = text.split(':').next()?.to_string();
    (!user.is_empty()).then_some(user)
}

/// The body, gunzipped when it says it is gzip; no more than a batch may
/// hold is ever inflated (a small body can unpack to gigabytes).
fn decompress(headers: &HeaderMap, body: &[u8]) -> Result<Vec<u8>, Refusal> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|value| value.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    let gzip = match encoding.as_deref() {
        None | Some("" | "identity") => false,
        Some("gzip" | "x-gzip") => true,
        Some(other) => {
            return Err(refusal(
                415,
                "unsupported_encoding",
                &format!("Content-Encoding {other:?} is not read; accepted: gzip, or none"),
            ))
        }
    };
    if !gzip {
        return Ok(body.to_vec());
    }
    let mut inflated = Vec::new();
    flate2::read::GzDecoder::new(body)
        .take(MAX_BATCH_BYTES as u64 + 1)
        .read_to_end(&mut inflated)
        .map_err(|error| refusal(400, "bad_gzip", &format!("the body is not gzip ({error}); accepted: gzip with Content-Encoding: gzip, or an uncompressed body")))?;
    Ok(inflated)
}
