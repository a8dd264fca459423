//! Questions the running engine answers over NATS request/reply, so that
//! tools need the NATS connection they already have and no access to the
//! engine's host:
//!
//! - `kairos.admin.report` (empty body): every trigger's counts and
//!   attribution since the process started, in the shape of `kairos
//!   backtest --summary-json`'s `triggers` (`kairos report` prints it):
//!   `{"pipeline": NAME, "pipeline_revision": R, "events": N, "triggers":
//!   {ID: {...}}}` (R: its revision in `kairos_pipelines`). The counts
//!   are those of the engine's state, which snapshots carry: they cover
//!   every event it has applied since it started empty (`events`), across
//!   restarts, each once.
//! - `kairos.admin.inspect` (`{"customer": "ID"}`): what the engine holds
//!   about that customer (`kairos inspect` prints it): `{"customer": ID,
//!   "found": bool, "state": {...}}`, the state as
//!   `kairos_engine::CustomerView` shows it (null when not found).
//! - `kairos.admin.forget` (`{"customer": "ID"}`): erases the customer
//!   through the events stream, so that the erasure survives crashes and
//!   replays, and answers once it is applied: `{"customer": ID, "erased":
//!   true, "existed": bool, "sequence": N}` (see `forget`).
//!
//! A request the engine cannot answer gets `{"error": "..."}` naming what
//! was wrong and what is accepted. Requests are answered by the worker
//! between two events, so an answer reflects every event applied before
//! it. The engine subscribes in a queue group: one engine answers.

use crate::forget::Erasures;
use async_nats::{Client, Message, Subscriber};
use bytes::Bytes;
use kairos_engine::Engine;
use serde_json::{json, Map, Value};

/// What requests are published under.
pub const REQUEST_PREFIX: &str = "kairos.admin";
/// The triggers' counts and attribution.
pub const REPORT_SUBJECT: &str = "kairos.admin.report";
/// What the engine holds about one customer.
pub const INSPECT_SUBJECT: &str = "kairos.admin.inspect";
/// Erase one customer, confirmed once done.
pub const FORGET_SUBJECT: &str = "kairos.admin.forget";
/// The requests answered, for error messages.
const ACCEPTED: &str = "kairos.admin.report, kairos.admin.inspect, kairos.admin.forget";
/// The queue group the engine answers in.
const QUEUE_GROUP: &str = "kairos-engine";

/// Subscribes to every request subject.
pub async fn subscribe(client: &Client) -> anyhow::Result<Subscriber> {
    let subscriber = client
        .queue_subscribe(format!("{REQUEST_PREFIX}.>"), QUEUE_GROUP.to_string())
        .await
        .map_err(|error| anyhow::anyhow!("subscribing to {REQUEST_PREFIX}.>: {error}"))?;
    Ok(subscriber)
}

/// Answers `request`: at once from `engine`'s state, or, for a forget,
/// once its erasure is applied (`erasures` keeps the request until then).
pub async fn handle(
    client: &Client,
    request: &Message,
    engine: &mut Engine,
    erasures: &mut Erasures,
    pipeline_revision: u64,
) {
    if request.subject.as_str() == FORGET_SUBJECT {
        if let Some(refused) = erasures.start(request, engine) {
            reply(client, request, &refused).await;
        }
        return;
    }
    let answer = answer(request, engine, pipeline_revision);
    reply(client, request, &answer).await;
}

/// The answer to `request`, from `engine`'s state (a forget's comes later:
/// see [`handle`]).
pub fn answer(request: &Message, engine: &mut Engine, pipeline_revision: u64) -> Value {
    match request.subject.as_str() {
        REPORT_SUBJECT => report(engine, pipeline_revision),
        INSPECT_SUBJECT => match asked_customer(request) {
            Ok(customer) => inspect(engine, &customer),
            Err(refused) => refused,
        },
        other => json!({
            "error": format!("no such request {other:?}; accepted: {ACCEPTED}"),
        }),
    }
}

/// The customer id a request's body names (`{"customer": "ID"}`), or the
/// error answer saying what is accepted.
pub(crate) fn asked_customer(request: &Message) -> Result<String, Value> {
    let refuse = |problem: String| {
        json!({
            "error": format!(
                "{}: {problem}; accepted: a JSON body {{\"customer\": \"ID\"}}, ID a userId or anonymousId",
                request.subject
            ),
        })
    };
    let body: Value = serde_json::from_slice(&request.payload)
        .map_err(|error| refuse(format!("the body is not JSON ({error})")))?;
    match body.get("customer") {
        Some(Value::String(customer)) if !customer.is_empty() => Ok(customer.clone()),
        Some(Value::String(_)) => Err(refuse("\"customer\" is empty".to_string())),
        Some(other) => Err(refuse(format!("\"customer\" is {other}, not a string"))),
        None => Err(refuse("no \"customer\"".to_string())),
    }
}

/// Sends `answer` to the request's reply subject (none: nothing to do).
pub async fn reply(client: &Client, request: &Message, answer: &Value) {
    let Some(reply) = &request.reply else {
        return;
    };
    let body = Bytes::from(answer.to_string());
    if let Err(error) = client.publish(reply.clone(), body).await {
        tracing::warn!(%error, subject = %request.subject, "answering a request");
    }
}

fn inspect(engine: &mut Engine, customer: &str) -> Value {
    let state = engine.inspect(customer);
    json!({
        "customer": customer,
        "found": state.is_some(),
        "state": state,
    })
}

fn report(engine: &Engine, pipeline_revision: u64) -> Value {
    let triggers: Map<String, Value> = engine
        .stats()
        .triggers
        .iter()
        .map(|trigger| (trigger.id.clone(), trigger.to_json()))
        .collect();
    json!({
        "pipeline": &*engine.pipeline().name,
        "pipeline_revision": pipeline_revision,
        "events": engine.stats().events,
        "triggers": triggers,
    })
}
