//! `kairos.admin.forget`: a customer's erasure, performed through the
//! running engine and confirmed once done.
//!
//! Erasing the engine's copy alone would not last: a crash would restore
//! the customer from the snapshot and replay the stream after it without
//! the erasure. So the engine publishes the pipeline's erasure event
//! (`settings.erasure_event`) for the customer to the events stream, on
//! their partition's subject, as any publisher would, and answers when it
//! has applied that event in stream order. From then on the erasure is
//! part of the input: a replay applies it again, and snapshots taken after
//! it hold nothing about the customer.
//!
//! The request's reply subject waits, keyed by the stream sequence of the
//! event's PubAck, until the worker has applied that sequence and no
//! longer knows the id (an event stamped ahead of its stored time waits in
//! the engine's reorder buffer until the next tick, which comes within a
//! second). At most [`MAX_WAITING`] requests wait; one not confirmed
//! within [`CONFIRM_WITHIN`] is answered with an error.

use crate::partition::{event_subject, partition_of};
use crate::requests::{asked_customer, FORGET_SUBJECT};
use async_nats::jetstream;
use async_nats::{Client, Message, Subject};
use bytes::Bytes;
use kairos_engine::Engine;
use kairos_model::{Event, Timestamp};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Requests waiting for their erasure (being published, or published and
/// not yet applied), at most: each holds a reply subject and a customer id.
pub const MAX_WAITING: usize = 1024;

/// How long a request waits for its erasure to be applied before it is
/// answered with an error. The event stays in the stream and is applied
/// when the engine reaches it.
pub const CONFIRM_WITHIN: Duration = Duration::from_secs(30);

/// The forget requests in progress.
pub struct Erasures {
    client: Client,
    js: jetstream::Context,
    /// The partitions publishers spread customers over (see `partition`).
    partitions: u32,
    /// Publishes hand their outcome back here, to the worker's loop.
    stored_out: mpsc::UnboundedSender<Stored>,
    stored_in: mpsc::UnboundedReceiver<Stored>,
    /// Erasure events published and not yet acknowledged by JetStream.
    publishing: usize,
    /// Requests whose erasure is stored, by its stream sequence.
    waiting: BTreeMap<u64, Waiting>,
    /// Makes each erasure event's `messageId` unique within the process.
    published: u64,
}

/// A request whose answer waits for its erasure.
struct Waiting {
    customer: String,
    /// Where the answer goes (none: nobody asked for one).
    reply: Option<Subject>,
    /// The engine knew the id when asked.
    existed: bool,
    asked_at: Instant,
}

/// A published erasure event, stored (its stream sequence) or not.
pub struct Stored {
    waiting: Waiting,
    outcome: Result<u64, String>,
}

impl Erasures {
    /// No requests yet; erasure events go to `kairos.events.<partition>`
    /// among `partitions`.
    pub fn new(client: Client, partitions: u32) -> Erasures {
        let (stored_out, stored_in) = mpsc::unbounded_channel();
        Erasures {
            js: jetstream::new(client.clone()),
            client,
            partitions,
            stored_out,
            stored_in,
            publishing: 0,
            waiting: BTreeMap::new(),
            published: 0,
        }
    }

    /// Starts the erasure `request` asks for: publishes the erasure event
    /// (off the worker's loop) and leaves the answer for later. Returns
    /// the answer to send now instead when the request is refused.
    pub fn start(&mut self, request: &Message, engine: &Engine) -> Option<Value> {
        let customer = match asked_customer(request) {
            Ok(customer) => customer,
            Err(refused) => return Some(refused),
        };
        if self.publishing + self.waiting.len() >= MAX_WAITING {
            return Some(json!({
                "customer": customer,
                "error": format!("{MAX_WAITING} erasures are waiting to be applied already; accepted: the same request again shortly"),
            }));
        }
        self.published += 1;
        let message_id = format!(
            "kairos-forget-{}-{}-{}",
            std::process::id(),
            Timestamp::now().0,
            self.published
        );
        let event = erasure_event(
            &engine.pipeline().settings.erasure_event,
            &customer,
            &message_id,
        );
        // Checked as the engine will read it: an id it would refuse (too
        // long, say) must be refused here, not end up in the DLQ.
        if let Err(invalid) = Event::from_json(event.as_bytes()) {
            return Some(json!({
                "customer": customer,
                "error": format!("{FORGET_SUBJECT}: no erasure event can be made for this id: {invalid}"),
            }));
        }
        let waiting = Waiting {
            existed: engine.knows_customer(&customer),
            reply: request.reply.clone(),
            asked_at: Instant::now(),
            customer,
        };
        let subject = event_subject(partition_of(&waiting.customer, self.partitions));
        let (js, done) = (self.js.clone(), self.stored_out.clone());
        self.publishing += 1;
        tokio::spawn(async move {
            let outcome = publish(&js, subject, &message_id, event).await;
            let _ = done.send(Stored { waiting, outcome });
        });
        None
    }

    /// The next erasure event JetStream stored (or refused). Waits forever
    /// while none is being published.
    pub async fn next_stored(&mut self) -> Option<Stored> {
        self.stored_in.recv().await
    }

    /// Takes note of a stored erasure event; `next_sequence` is the first
    /// sequence the engine has not applied yet (it may be past this one
    /// already).
    pub async fn stored(&mut self, stored: Stored, engine: &Engine, next_sequence: u64) {
        self.publishing = self.publishing.saturating_sub(1);
        match stored.outcome {
            Ok(sequence) => {
                self.waiting.insert(sequence, stored.waiting);
                if sequence < next_sequence {
                    self.applied_through(next_sequence - 1, engine).await;
                }
            }
            Err(error) => {
                let answer = json!({
                    "customer": stored.waiting.customer,
                    "error": format!("the erasure event was not confirmed stored ({error}), so most likely nothing was erased; `kairos inspect` tells"),
                });
                self.answer(stored.waiting.reply.as_ref(), &answer).await;
            }
        }
    }

    /// The engine has applied every message up to `sequence`: the requests
    /// waiting for those whose customer is gone are answered. Called for
    /// every message, so it returns at once when none can be.
    pub async fn applied_through(&mut self, sequence: u64, engine: &Engine) {
        if self
            .waiting
            .first_key_value()
            .is_none_or(|(first, _)| *first > sequence)
        {
            return;
        }
        let done: Vec<u64> = self
            .waiting
            .range(..=sequence)
            .filter(|(_, waiting)| !engine.knows_customer(&waiting.customer))
            .map(|(sequence, _)| *sequence)
            .collect();
        for sequence in done {
            if let Some(waiting) = self.waiting.remove(&sequence) {
                let answer = json!({
                    "customer": waiting.customer,
                    "erased": true,
                    "existed": waiting.existed,
                    "sequence": sequence,
                });
                self.answer(waiting.reply.as_ref(), &answer).await;
            }
        }
    }

    /// Answers the requests waiting longer than [`CONFIRM_WITHIN`] with an
    /// error.
    pub async fn expire(&mut self) {
        let expired: Vec<u64> = self
            .waiting
            .iter()
            .filter(|(_, waiting)| waiting.asked_at.elapsed() >= CONFIRM_WITHIN)
            .map(|(sequence, _)| *sequence)
            .collect();
        for sequence in expired {
            if let Some(waiting) = self.waiting.remove(&sequence) {
                let answer = json!({
                    "customer": waiting.customer,
                    "error": format!(
                        "the erasure event is stored (events stream sequence {sequence}) but was not applied within {CONFIRM_WITHIN:?} (a backlog, or the event went to the DLQ: see its kairos.dlq.> entry); it is applied when the engine reaches it"
                    ),
                });
                self.answer(waiting.reply.as_ref(), &answer).await;
            }
        }
    }

    async fn answer(&self, reply: Option<&Subject>, answer: &Value) {
        let Some(reply) = reply else {
            return;
        };
        let body = Bytes::from(answer.to_string());
        if let Err(error) = self.client.publish(reply.clone(), body).await {
            tracing::warn!(%error, "answering a forget request");
        }
    }
}

/// The erasure event for `customer`, as a Segment track call timed now.
fn erasure_event(name: &str, customer: &str, message_id: &str) -> String {
    json!({
        "type": "track",
        "event": name,
        "userId": customer,
        "messageId": message_id,
        "timestamp": Timestamp::now().to_rfc3339(),
        "properties": {"requested_through": FORGET_SUBJECT},
    })
    .to_string()
}

/// Publishes `event` to `subject` with its `messageId` as `Nats-Msg-Id`;
/// the stream sequence JetStream stored it at.
async fn publish(
    js: &jetstream::Context,
    subject: String,
    message_id: &str,
    event: String,
) -> Result<u64, String> {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(async_nats::header::NATS_MESSAGE_ID, message_id);
    let ack = js
        .publish_with_headers(subject, headers, Bytes::from(event))
        .await
        .map_err(|error| error.to_string())?;
    let stored = ack.await.map_err(|error| error.to_string())?;
    Ok(stored.sequence)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_erasure_event_is_a_call_the_engine_reads_as_one() {
        let text = erasure_event("Erasure Requested", "u1", "kairos-forget-1-2-3");
        let event = Event::from_json(text.as_bytes()).expect("a valid call");
        assert_eq!(&*event.name, "Erasure Requested");
        assert_eq!(event.user_id.as_deref(), Some("u1"));
        assert_eq!(&*event.message_id, "kairos-forget-1-2-3");
    }
}
