//! Questions the running engine answers over NATS request/reply, so that
//! tools need the NATS connection they already have and no access to the
//! engine's host:
//!
//! - `kairos.admin.report` (empty body): every trigger's counts and
//!   attribution since the process started, in the shape of `kairos
//!   backtest --summary-json`'s `triggers` (`kairos report` prints it):
//!   `{"pipeline": NAME, "events": N, "triggers": {ID: {...}}}`. The counts
//!   are those of the engine's state, which snapshots carry: they cover
//!   every event it has applied since it started empty (`events`), across
//!   restarts, each once.
//!
//! A request the engine cannot answer gets `{"error": "..."}` naming what
//! was wrong and what is accepted. Requests are answered by the worker
//! between two events, so an answer reflects every event applied before
//! it. The engine subscribes in a queue group: one engine answers.

use async_nats::{Client, Message, Subscriber};
use bytes::Bytes;
use kairos_engine::Engine;
use serde_json::{json, Map, Value};

/// What requests are published under.
pub const REQUEST_PREFIX: &str = "kairos.admin";
/// The triggers' counts and attribution.
pub const REPORT_SUBJECT: &str = "kairos.admin.report";
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

/// The answer to `request`, from `engine`'s state.
pub fn answer(request: &Message, engine: &Engine) -> Value {
    match request.subject.as_str() {
        REPORT_SUBJECT => report(engine),
        other => json!({
            "error": format!("no such request {other:?}; accepted: {REPORT_SUBJECT}"),
        }),
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

fn report(engine: &Engine) -> Value {
    let triggers: Map<String, Value> = engine
        .stats()
        .triggers
        .iter()
        .map(|trigger| (trigger.id.clone(), trigger.to_json()))
        .collect();
    json!({
        "pipeline": &*engine.pipeline().name,
        "events": engine.stats().events,
        "triggers": triggers,
    })
}
