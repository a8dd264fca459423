//! The broker alone, for the ceiling kairos is compared with: the same
//! events (same sizes, same partitioned subjects, same Nats-Msg-Id) are
//! published to a JetStream stream of the load test's own, with the
//! settings of kairos' events stream, and read back by a durable pull
//! consumer that acknowledges in batches, as `kairos run` does, but does
//! nothing else with them. Each event's latency runs from its time (its
//! scheduled send) to its delivery.

use crate::actions::{add_in_second, record_in_second, Seen};
use crate::traffic::event_time;
use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// The baseline's stream and subjects, apart from kairos' own.
pub const STREAM: &str = "KAIROS_LOADTEST_RAW";
pub const SUBJECT_PREFIX: &str = "kairos.loadtest.raw";
pub const CONSUMER: &str = "kairos-loadtest-raw";
/// As `kairos run` acknowledges: at most this many at once (AckAll).
const ACK_EVERY: u64 = 128;
const MAX_ACK_PENDING: i64 = 4096;

/// Creates the baseline's stream afresh (as kairos' events stream: file
/// storage, de-duplication by Nats-Msg-Id; kept an hour), deleting one a
/// run before left.
pub async fn prepare(js: &jetstream::Context) -> anyhow::Result<()> {
    let _ = js.delete_stream(STREAM).await;
    // kairos' own events stream's settings (its duplicate window above
    // all: the ids the broker keeps to check each publish against), but
    // kept an hour.
    let [events, ..] = kairos_nats::streams::StreamSettings::default().configs();
    js.create_stream(stream::Config {
        name: STREAM.to_string(),
        subjects: vec![format!("{SUBJECT_PREFIX}.>")],
        max_age: Duration::from_secs(3600).max(events.duplicate_window),
        ..events
    })
    .await
    .map_err(|error| anyhow::anyhow!("cannot create the stream {STREAM}: {error}"))?;
    Ok(())
}

/// Deletes the baseline's stream.
pub async fn remove(js: &jetstream::Context) {
    let _ = js.delete_stream(STREAM).await;
}

/// Reads the stream until `stop` turns true; `consumed` counts as it goes.
pub async fn consume(
    js: jetstream::Context,
    consumed: Arc<AtomicU64>,
    since_ms: i64,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<Seen> {
    let mut stream = js.get_stream(STREAM).await?;
    // Each step reads its own events: a consumer of its own from the
    // stream's end, none of an earlier step's left unread or unacknowledged
    // (which would be counted, late, or redelivered here).
    let _ = stream.delete_consumer(CONSUMER).await;
    let next = stream.info().await?.state.last_sequence + 1;
    let consumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some(CONSUMER.to_string()),
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: next,
            },
            ack_policy: consumer::AckPolicy::All,
            max_ack_pending: MAX_ACK_PENDING,
            ..Default::default()
        })
        .await?;
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(ACK_EVERY as usize * 2)
        .messages()
        .await?;
    let mut seen = Seen::since(since_ms);
    let mut unacked = None;
    loop {
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else { break };
                let message = match message {
                    Ok(message) => message,
                    Err(error) => {
                        // As for the actions: the consumer goes on.
                        eprintln!("kairos-loadtest: reading the raw stream: {error}");
                        continue;
                    }
                };
                let read_at = SystemTime::now().duration_since(UNIX_EPOCH)?.as_micros() as i64;
                let second = ((read_at / 1000 - since_ms) / 1000).max(0) as usize;
                if let Some(time) = std::str::from_utf8(&message.payload).ok().and_then(event_time) {
                    let delay = (read_at - time.0 * 1000).max(1) as u64;
                    seen.immediate_us.saturating_record(delay);
                    record_in_second(&mut seen.immediate_per_second, second, delay);
                }
                add_in_second(&mut seen.per_second, second, 1);
                seen.sent += 1;
                seen.last_read_us = read_at;
                consumed.store(seen.sent, Ordering::Release);
                unacked = Some(message);
                if seen.sent.is_multiple_of(ACK_EVERY) {
                    if let Some(last) = unacked.take() {
                        last.ack().await.map_err(|error| anyhow::anyhow!("{error}"))?;
                    }
                }
            }
            // Quiet: acknowledge what is read.
            _ = tokio::time::sleep(Duration::from_millis(50)), if unacked.is_some() => {
                if let Some(last) = unacked.take() {
                    last.ack().await.map_err(|error| anyhow::anyhow!("{error}"))?;
                }
            }
            _ = stop.changed() => break,
        }
    }
    // What was read is acknowledged, as kairos does: none is left to be
    // redelivered.
    if let Some(last) = unacked.take() {
        last.ack()
            .await
            .map_err(|error| anyhow::anyhow!("{error}"))?;
    }
    Ok(seen)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_event_time_is_read_from_the_call() {
        let call = br#"{"type":"track","event":"A","userId":"u1","messageId":"m","timestamp":"2026-12-07T00:00:01.250Z","properties":{}}"#;
        assert_eq!(
            std::str::from_utf8(call)
                .ok()
                .and_then(crate::traffic::event_time)
                .map(|t| t.to_rfc3339())
                .as_deref(),
            Some("2026-12-07T00:00:01.250Z")
        );
        assert!(crate::traffic::event_time("{}").is_none());
    }
}
