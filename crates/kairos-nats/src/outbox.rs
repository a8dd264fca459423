//! What the worker publishes (actions, DLQ entries), each held until
//! JetStream has stored it.
//!
//! Every message carries a `Nats-Msg-Id`, so publishing one again after an
//! error or a timeout can never store it twice: a message is retried until
//! it is stored, however long NATS is away. Confirmations are taken as they
//! come (not in order), so the latency metrics and the in-flight gauge are
//! current, and a slow or absent NATS fills the outbox, which stops the
//! worker taking events (backpressure).

use async_nats::jetstream::{self, publish::PublishAck};
use async_nats::HeaderMap;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use kairos_model::Timestamp;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// One message to publish.
pub struct Outgoing {
    pub subject: String,
    pub headers: HeaderMap,
    pub payload: Bytes,
    /// When the event (or tick) that caused it was taken off the stream.
    pub received: Instant,
    /// The decision's `fired_at`, for actions.
    pub fired_at: Option<Timestamp>,
}

/// A message JetStream has stored.
pub struct Stored {
    pub received: Instant,
    pub fired_at: Option<Timestamp>,
}

/// What became of a message handed to [`Outbox::push`].
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Being published.
    Queued,
    /// Stored already before a restart (see [`Outbox::skip_stored`]).
    StoredBefore,
    /// Larger than the server accepts, with its headers: it can never be
    /// stored, and retrying it would cost the connection each time.
    TooLarge,
}

type Confirmation = BoxFuture<'static, (Outgoing, Result<PublishAck, String>)>;

/// Messages published and not yet stored.
pub struct Outbox {
    js: jetstream::Context,
    client: async_nats::Client,
    pending: FuturesUnordered<Confirmation>,
    /// Ids stored by an earlier run after its last snapshot: the replay
    /// makes them again, and they must not be published a second time
    /// (JetStream's duplicate window may have passed since).
    stored_before: HashSet<String>,
}

impl Outbox {
    pub fn new(client: async_nats::Client) -> Outbox {
        Outbox {
            js: jetstream::new(client.clone()),
            client,
            pending: FuturesUnordered::new(),
            stored_before: HashSet::new(),
        }
    }

    /// Messages not yet stored.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Ids already in the output streams, to leave out when they come again.
    pub fn skip_stored(&mut self, ids: HashSet<String>) {
        self.stored_before = ids;
    }

    /// Whether ids of [`Outbox::skip_stored`] are still to come.
    pub fn replaying(&self) -> bool {
        !self.stored_before.is_empty()
    }

    /// Whether `id` is one of [`Outbox::skip_stored`]'s, not to publish
    /// again (it is forgotten: each comes back once).
    pub fn stored_before(&mut self, id: &str) -> bool {
        !self.stored_before.is_empty() && self.stored_before.remove(id)
    }

    /// Forgets the ids of [`Outbox::skip_stored`] once the replay is past
    /// them.
    pub fn replay_done(&mut self) {
        self.stored_before = HashSet::new();
    }

    /// The largest payload a message with `headers` may carry on this
    /// connection.
    /// The largest message the server takes, headers included.
    pub fn max_payload(&self) -> usize {
        self.client.server_info().max_payload
    }

    pub fn room_for_payload(&self, headers: &HeaderMap) -> usize {
        room_for_payload(self.client.server_info().max_payload, headers)
    }

    /// Publishes `outgoing` (see [`Pushed`]).
    pub async fn push(&mut self, outgoing: Outgoing) -> Pushed {
        // Only while a replay re-makes what was stored before the crash.
        if let Some(id) = outgoing.headers.get(async_nats::header::NATS_MESSAGE_ID) {
            if self.stored_before(id.as_str()) {
                return Pushed::StoredBefore;
            }
        }
        if outgoing.payload.len() > self.room_for_payload(&outgoing.headers) {
            return Pushed::TooLarge;
        }
        // Handed to the client now, in the order made; only the wait for
        // JetStream's answer is left to the set.
        let sent = self
            .js
            .publish_with_headers(
                outgoing.subject.clone(),
                outgoing.headers.clone(),
                outgoing.payload.clone(),
            )
            .await;
        let confirmation: Confirmation = match sent {
            Ok(ack) => Box::pin(async move {
                let result = ack.await.map_err(|error| error.to_string());
                (outgoing, result)
            }),
            Err(error) => Box::pin(async move { (outgoing, Err(error.to_string())) }),
        };
        self.pending.push(confirmation);
        Pushed::Queued
    }

    /// The next message JetStream stores; a failed one is published again
    /// (after a pause) and waited for with the rest. `None` when empty.
    pub async fn next_stored(&mut self) -> Option<Stored> {
        loop {
            let (outgoing, result) = self.pending.next().await?;
            match result {
                Ok(_) => {
                    return Some(Stored {
                        received: outgoing.received,
                        fired_at: outgoing.fired_at,
                    })
                }
                Err(error) => {
                    tracing::warn!(%error, subject = %outgoing.subject, "not stored; publishing again");
                    self.pending.push(confirm(
                        self.js.clone(),
                        outgoing,
                        Duration::from_millis(200),
                    ));
                }
            }
        }
    }
}

/// The largest payload a message with `headers` may carry on a connection
/// whose server takes messages of up to `max_payload` bytes.
pub fn room_for_payload(max_payload: usize, headers: &HeaderMap) -> usize {
    // NATS/1.0 line, "Name: value\r\n" per header, the closing CRLF.
    let header_bytes: usize = 12
        + headers
            .iter()
            .flat_map(|(name, values)| values.iter().map(move |value| (name, value)))
            .map(|(name, value)| AsRef::<str>::as_ref(name).len() + value.as_str().len() + 4)
            .sum::<usize>()
        + 2;
    max_payload.saturating_sub(header_bytes)
}

/// Publishes `outgoing` after `delay` and waits for JetStream's answer.
fn confirm(js: jetstream::Context, outgoing: Outgoing, delay: Duration) -> Confirmation {
    Box::pin(async move {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let sent = js
            .publish_with_headers(
                outgoing.subject.clone(),
                outgoing.headers.clone(),
                outgoing.payload.clone(),
            )
            .await;
        let result = match sent {
            Ok(ack) => ack.await.map_err(|error| error.to_string()),
            Err(error) => Err(error.to_string()),
        };
        (outgoing, result)
    })
}

/// The `Nats-Msg-Id`s of the messages of `stream` after sequence `after`:
/// what an earlier run published after its last snapshot. Messages the
/// stream no longer holds (purged, expired) are not waited for.
pub async fn ids_stored_after(
    js: &jetstream::Context,
    stream: &str,
    after: u64,
) -> anyhow::Result<HashSet<String>> {
    let mut ids = HashSet::new();
    let mut handle = js.get_stream(stream).await?;
    let state = handle.info().await?.state.clone();
    let start = (after + 1).max(state.first_sequence);
    if state.messages == 0 || start > state.last_sequence {
        return Ok(ids);
    }
    let consumer = handle
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence {
                start_sequence: start,
            },
            headers_only: true,
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    while let Some(message) = tokio::time::timeout(Duration::from_secs(10), messages.next())
        .await
        .map_err(|_| anyhow::anyhow!("reading {stream}: no message within 10 s"))?
    {
        let message = message?;
        if let Some(id) = message
            .headers
            .as_ref()
            .and_then(|headers| headers.get(async_nats::header::NATS_MESSAGE_ID))
        {
            ids.insert(id.to_string());
        }
        let info = message.info().map_err(|error| anyhow::anyhow!("{error}"))?;
        if info.pending == 0 || info.stream_sequence >= state.last_sequence {
            break;
        }
    }
    Ok(ids)
}
