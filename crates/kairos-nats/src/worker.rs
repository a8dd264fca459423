//! The engine worker: events in from JetStream, decisions out to JetStream,
//! snapshots to disk.
//!
//! # Why replays give the same decisions
//!
//! The engine is deterministic, so recovery is "load the snapshot, replay
//! the stream after it" only if every input the engine saw is in the
//! stream, in the stream's order. Two inputs could escape it:
//!
//! - **The clock.** Each message is applied at the time the stream stored
//!   it (its JetStream timestamp), not at the wall time it happened to
//!   arrive. When nothing arrives but a timer is due, the worker publishes
//!   an empty *tick* to [`TICK_SUBJECT`]; the tick's own stored time moves
//!   the clock when it comes back through the stream. A replay sees the
//!   same ticks at the same places.
//! - **Order.** Messages are applied strictly in stream sequence. A
//!   redelivery of one already applied is acknowledged and skipped; a gap
//!   (a delivery lost while the connection was down) re-creates the
//!   consumer at the first missing sequence rather than applying out of
//!   order.
//!
//! Decisions then come out the same after a restart, with the same action
//! ids, and JetStream drops the republished ones by their `Nats-Msg-Id`
//! (within the actions stream's duplicate window, which must exceed the
//! snapshot interval). A snapshot is written only once every action decided
//! before it has been stored by JetStream, so nothing decided before a
//! snapshot can be lost after it.
//!
//! # Backpressure
//!
//! At most `max_ack_pending` events are delivered and not yet acknowledged,
//! and at most `max_publishes_in_flight` actions await JetStream's
//! acknowledgement; when either is full the worker stops taking events. A
//! slow action stream or an outage slows intake; memory does not grow.

use crate::partition::{EVENTS_PREFIX, TICK_SUBJECT};
use crate::snapshots::SnapshotStore;
use crate::streams::{ACTIONS_PREFIX, DLQ_PREFIX, EVENTS_STREAM};
use anyhow::Context as _;
use async_nats::jetstream::{self, consumer, context::PublishAckFuture};
use async_nats::HeaderMap;
use bytes::Bytes;
use futures::StreamExt;
use kairos_engine::{Decision, Engine};
use kairos_model::{Event, Timestamp};
use metrics::{counter, gauge, histogram};
use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The engine's durable consumer on the events stream.
pub const CONSUMER: &str = "kairos-engine";

/// What `kairos run` was asked for, beyond the connection and pipeline.
#[derive(Clone, Debug)]
pub struct WorkerSettings {
    /// How often the engine's state is written to the snapshot store.
    pub snapshot_every: Duration,
    /// Events delivered and not yet acknowledged, at most.
    pub max_ack_pending: i64,
    /// Actions published and not yet acknowledged by JetStream, at most.
    pub max_publishes_in_flight: usize,
    /// Largest event accepted, in bytes; larger ones go to the DLQ.
    /// Segment's API takes calls up to 32 KB, so its SDKs send no more.
    pub max_event_bytes: usize,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            snapshot_every: Duration::from_secs(30),
            max_ack_pending: 4096,
            max_publishes_in_flight: 4096,
            max_event_bytes: 32 * 1024,
        }
    }
}

/// Shared with the admin server.
#[derive(Default)]
pub struct Health {
    /// Streams present, snapshot loaded, consumer created.
    pub ready: AtomicBool,
}

/// An engine and where it resumes: what a start produces from the snapshot
/// store (or from nothing).
pub struct Resumed {
    /// The engine, restored or new.
    pub engine: Engine,
    /// The first stream sequence not yet applied to it.
    pub next_sequence: u64,
    /// When the snapshot it came from was taken (wall time), if it came
    /// from one.
    pub snapshot_taken_at: Option<Timestamp>,
}

/// Runs until `shutdown` completes, then stops taking events, publishes
/// what is in flight, writes a last snapshot and returns.
pub async fn run(
    client: async_nats::Client,
    resumed: Resumed,
    store: SnapshotStore,
    settings: WorkerSettings,
    health: Arc<Health>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let js = jetstream::new(client.clone());
    let pipeline = resumed.engine.pipeline().name.to_string();
    let mut worker = Worker {
        js: js.clone(),
        engine: resumed.engine,
        pipeline,
        next_sequence: resumed.next_sequence,
        publishes: VecDeque::new(),
        settings,
        store: Arc::new(store),
        saving: None,
        last_snapshot: Instant::now(),
        saved_at: resumed.snapshot_taken_at,
        tick_sent: None,
        exported: ExportedStats::default(),
        gap_reread: None,
        rendered: Vec::new(),
        snapshot_bytes: Vec::new(),
    };
    declare_metrics(worker.engine.pipeline());
    let mut messages = worker.subscribe().await?;
    health.ready.store(true, Ordering::Release);
    tracing::info!(next_sequence = worker.next_sequence, "taking events");
    tokio::pin!(shutdown);
    let mut housekeeping = tokio::time::interval(Duration::from_millis(250));
    housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let tick_at = worker.tick_wait();
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            _ = housekeeping.tick() => {
                if worker.saving.as_ref().is_some_and(|saving| saving.is_finished()) {
                    worker.finish_saving().await?;
                }
                worker.export_stats();
                if worker.last_snapshot.elapsed() >= worker.settings.snapshot_every {
                    worker.snapshot().await?;
                }
            }
            () = sleep_until(tick_at) => worker.send_tick().await,
            delivery = messages.next() => match delivery {
                Some(Ok(message)) => {
                    if let Err(gap) = worker.take(message).await? {
                        tracing::warn!(expected = gap.expected, got = gap.got, "sequence gap: re-reading from the first missing event");
                        messages = worker.subscribe().await?;
                    }
                }
                Some(Err(error)) => {
                    tracing::warn!(%error, "pulling events");
                    if is_fatal_pull_error(&error) {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        messages = worker.subscribe().await?;
                    }
                }
                None => {
                    tracing::warn!("the events consumer ended; re-creating it");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    messages = worker.subscribe().await?;
                }
            },
        }
    }
    health.ready.store(false, Ordering::Release);
    drop(messages);
    tracing::info!("stopping: publishing what is in flight, then a last snapshot");
    worker.snapshot().await?;
    worker.finish_saving().await?;
    worker.export_stats();
    Ok(())
}

/// Declares every metric with its help text and every series the pipeline
/// can produce at zero, so that dashboards and `rate()` see a series from
/// the start rather than from its first increment.
fn declare_metrics(pipeline: &kairos_engine::config::Pipeline) {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "kairos_events_total",
        "Events applied, by Segment call type"
    );
    describe_counter!(
        "kairos_events_late_total",
        "Events more than allowed_lateness behind the stream's clock"
    );
    describe_counter!(
        "kairos_events_duplicate_total",
        "Events dropped as repeats of a messageId"
    );
    describe_counter!("kairos_dlq_total", "Input sent to KAIROS_DLQ, by reason");
    describe_counter!("kairos_triggers_fired_total", "Pattern matches, by trigger");
    describe_counter!(
        "kairos_actions_sent_total",
        "Actions published, by trigger and channel"
    );
    describe_counter!(
        "kairos_actions_suppressed_total",
        "Decisions not sent, by trigger and reason"
    );
    describe_histogram!(
        "kairos_event_to_action_seconds",
        Unit::Seconds,
        "From taking the causing event or tick off the stream to JetStream storing the action"
    );
    describe_histogram!(
        "kairos_event_time_to_action_seconds",
        Unit::Seconds,
        "From the decision's fired_at to JetStream storing the action"
    );
    describe_gauge!("kairos_customers", "Customers held");
    describe_gauge!("kairos_timers_pending", "Timers held");
    describe_gauge!(
        "kairos_consumer_pending",
        "Events in the stream not yet delivered to kairos"
    );
    describe_gauge!(
        "kairos_actions_in_flight",
        "Actions awaiting JetStream's acknowledgement"
    );
    describe_histogram!(
        "kairos_snapshot_duration_seconds",
        Unit::Seconds,
        "Taking and writing a snapshot"
    );
    describe_gauge!(
        "kairos_snapshot_bytes",
        Unit::Bytes,
        "Size of the last snapshot"
    );
    describe_gauge!(
        "kairos_snapshot_sequence",
        "The stream sequence the last snapshot covers"
    );
    describe_gauge!(
        "kairos_snapshot_age_seconds",
        Unit::Seconds,
        "How old the state in the latest snapshot is"
    );

    counter!("kairos_events_late_total").increment(0);
    counter!("kairos_events_duplicate_total").increment(0);
    for event_type in kairos_model::EventType::ACCEPTED.split(", ") {
        counter!("kairos_events_total", "type" => event_type).increment(0);
    }
    for reason in kairos_model::InvalidEvent::REASONS
        .iter()
        .chain(&["timestamp_ahead_of_clock"])
    {
        counter!("kairos_dlq_total", "reason" => *reason).increment(0);
    }
    for trigger in &pipeline.triggers {
        let id = trigger.id.to_string();
        counter!("kairos_triggers_fired_total", "trigger" => id.clone()).increment(0);
        let channels = trigger.steps.iter().map(|step| &step.channel).chain(
            trigger
                .variants
                .iter()
                .filter_map(|variant| variant.channel.as_ref()),
        );
        for channel in channels {
            counter!("kairos_actions_sent_total", "trigger" => id.clone(), "channel" => channel.to_string())
                .increment(0);
        }
        for reason in kairos_engine::Suppression::ALL {
            counter!("kairos_actions_suppressed_total", "trigger" => id.clone(), "reason" => reason.as_str())
                .increment(0);
        }
    }
}

/// Errors after which the pull subscription cannot go on by itself.
fn is_fatal_pull_error(error: &consumer::pull::MessagesError) -> bool {
    use consumer::pull::MessagesErrorKind;
    matches!(
        error.kind(),
        MessagesErrorKind::ConsumerDeleted | MessagesErrorKind::NoResponders
    )
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A message further on than the next expected sequence.
struct Gap {
    expected: u64,
    got: u64,
}

/// An action or DLQ entry published and not yet acknowledged by JetStream.
struct Publishing {
    subject: String,
    headers: HeaderMap,
    payload: Bytes,
    ack: PublishAckFuture,
    /// When the event (or tick) that caused it was taken off the stream.
    received: Instant,
    /// The decision's `fired_at`, for actions.
    fired_at: Option<Timestamp>,
}

struct Worker {
    js: jetstream::Context,
    engine: Engine,
    pipeline: String,
    /// The first stream sequence not yet applied.
    next_sequence: u64,
    publishes: VecDeque<Publishing>,
    settings: WorkerSettings,
    store: Arc<SnapshotStore>,
    /// A snapshot being written on a blocking thread.
    saving: Option<tokio::task::JoinHandle<anyhow::Result<SavedSnapshot>>>,
    last_snapshot: Instant,
    /// When the state in the latest snapshot written was taken (wall time).
    saved_at: Option<Timestamp>,
    /// When the tick not yet seen back was published.
    tick_sent: Option<Instant>,
    exported: ExportedStats,
    /// The sequence a gap was last re-read from.
    gap_reread: Option<u64>,
    rendered: Vec<u8>,
    snapshot_bytes: Vec<u8>,
}

struct SavedSnapshot {
    taken_at: Timestamp,
    sequence: u64,
    bytes: usize,
    took: Duration,
}

/// The engine counters already exported, so each export adds the change.
#[derive(Default)]
struct ExportedStats {
    late: u64,
    duplicates: u64,
    fired: Vec<u64>,
}

impl Worker {
    /// (Re-)creates the durable consumer at the next sequence to apply and
    /// subscribes to it. The consumer is re-created rather than reused
    /// because its acknowledgements may run ahead of the snapshot: after a
    /// crash the engine resumes from the snapshot, not from the ack floor.
    async fn subscribe(&mut self) -> anyhow::Result<consumer::pull::Stream> {
        let mut attempt = 0u32;
        loop {
            match self.try_subscribe().await {
                Ok(stream) => return Ok(stream),
                Err(error) if attempt < 600 => {
                    attempt += 1;
                    tracing::warn!(error = %format!("{error:#}"), "creating the events consumer; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    async fn try_subscribe(&mut self) -> anyhow::Result<consumer::pull::Stream> {
        let mut stream = self
            .js
            .get_stream(EVENTS_STREAM)
            .await
            .context("finding the events stream")?;
        let first = stream.info().await?.state.first_sequence;
        if first > self.next_sequence {
            if self.next_sequence > 1 {
                tracing::error!(
                    lost = first - self.next_sequence,
                    "events after the snapshot are no longer in the stream (retention); resuming from the oldest kept"
                );
            }
            self.next_sequence = first;
        }
        let _ = stream.delete_consumer(CONSUMER).await;
        let deliver_policy = if self.next_sequence <= 1 {
            consumer::DeliverPolicy::All
        } else {
            consumer::DeliverPolicy::ByStartSequence {
                start_sequence: self.next_sequence,
            }
        };
        let consumer = stream
            .create_consumer(consumer::pull::Config {
                durable_name: Some(CONSUMER.to_string()),
                filter_subject: format!("{EVENTS_PREFIX}.>"),
                deliver_policy,
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                max_ack_pending: self.settings.max_ack_pending,
                ..Default::default()
            })
            .await
            .context("creating the events consumer")?;
        let batch = usize::try_from(self.settings.max_ack_pending / 4)
            .unwrap_or(1)
            .clamp(1, 512);
        let messages = consumer
            .stream()
            .max_messages_per_batch(batch)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await
            .context("pulling from the events consumer")?;
        Ok(messages)
    }

    /// Applies one delivered message, in stream order, then acknowledges it.
    async fn take(&mut self, message: jetstream::Message) -> anyhow::Result<Result<(), Gap>> {
        let received = Instant::now();
        let (sequence, clock, pending) = match message.info() {
            Ok(info) => (
                info.stream_sequence,
                Timestamp((info.published.unix_timestamp_nanos() / 1_000_000) as i64),
                info.pending,
            ),
            Err(error) => {
                tracing::warn!(%error, "a delivery without JetStream metadata; ignored");
                return Ok(Ok(()));
            }
        };
        if sequence < self.next_sequence {
            // A redelivery of one applied already.
            let _ = message.ack().await;
            return Ok(Ok(()));
        }
        if sequence > self.next_sequence {
            let gap = Gap {
                expected: self.next_sequence,
                got: sequence,
            };
            // Re-read once; a gap still there after that is a message
            // deleted from the stream, not a lost delivery.
            if self.gap_reread != Some(gap.expected) {
                self.gap_reread = Some(gap.expected);
                return Ok(Err(gap));
            }
            tracing::error!(
                expected = gap.expected,
                got = gap.got,
                "events deleted from the stream were skipped"
            );
        }
        gauge!("kairos_consumer_pending").set(pending as f64);
        if message.subject.as_str() == TICK_SUBJECT {
            self.tick_sent = None;
            self.engine.advance_to(clock);
        } else {
            self.apply_event(&message, sequence, clock, received)
                .await?;
        }
        self.next_sequence = sequence + 1;
        self.publish_decisions(received).await?;
        // Applied: the state change is in the engine. If the process dies
        // now, the snapshot and the stream bring it back.
        if let Err(error) = message.ack().await {
            tracing::debug!(%error, "acknowledging an event (it will be redelivered and skipped)");
        }
        Ok(Ok(()))
    }

    async fn apply_event(
        &mut self,
        message: &jetstream::Message,
        sequence: u64,
        clock: Timestamp,
        received: Instant,
    ) -> anyhow::Result<()> {
        let payload = &message.payload;
        let parsed = if payload.len() > self.settings.max_event_bytes {
            Err(Rejection {
                reason: "too_large",
                message: format!(
                    "message is {} bytes; accepted: at most {} bytes",
                    payload.len(),
                    self.settings.max_event_bytes
                ),
            })
        } else {
            Event::from_json(payload).map_err(|invalid| Rejection {
                reason: invalid.reason(),
                message: invalid.to_string(),
            })
        };
        let event = match parsed {
            Ok(event) => event,
            Err(rejection) => return self.reject(message, sequence, rejection, received).await,
        };
        let event_type = event.event_type.as_str();
        match self.engine.handle_live_event(event, clock) {
            Ok(()) => {
                counter!("kairos_events_total", "type" => event_type).increment(1);
                Ok(())
            }
            Err(ahead) => {
                let rejection = Rejection {
                    reason: "timestamp_ahead_of_clock",
                    message: ahead.to_string(),
                };
                self.reject(message, sequence, rejection, received).await
            }
        }
    }

    /// Sends a rejected message to the DLQ with the reason in its headers.
    async fn reject(
        &mut self,
        message: &jetstream::Message,
        sequence: u64,
        rejection: Rejection,
        received: Instant,
    ) -> anyhow::Result<()> {
        counter!("kairos_dlq_total", "reason" => rejection.reason).increment(1);
        let mut headers = HeaderMap::new();
        // The same id on a replay after a crash: the DLQ keeps one entry.
        headers.insert("Nats-Msg-Id", format!("dlq-{sequence}").as_str());
        headers.insert("Kairos-Reason", rejection.reason);
        headers.insert("Kairos-Error", rejection.message.as_str());
        headers.insert("Kairos-Subject", message.subject.as_str());
        headers.insert("Kairos-Sequence", sequence.to_string().as_str());
        let subject = format!("{DLQ_PREFIX}.{}", rejection.reason);
        self.publish(subject, headers, message.payload.clone(), received, None)
            .await
    }

    /// Publishes every decision the engine has made.
    async fn publish_decisions(&mut self, received: Instant) -> anyhow::Result<()> {
        while let Some(decision) = self.engine.poll_decision() {
            let subject = action_subject(&decision);
            match decision.suppressed {
                None => counter!(
                    "kairos_actions_sent_total",
                    "trigger" => decision.trigger.to_string(),
                    "channel" => decision.channel.to_string()
                )
                .increment(1),
                Some(reason) => counter!(
                    "kairos_actions_suppressed_total",
                    "trigger" => decision.trigger.to_string(),
                    "reason" => reason.as_str()
                )
                .increment(1),
            }
            let mut headers = HeaderMap::new();
            headers.insert("Nats-Msg-Id", decision.action_id.as_str());
            let fired_at = decision.fired_at;
            self.rendered.clear();
            decision
                .into_action_data()
                .write_action_json(&self.pipeline, &mut self.rendered);
            let payload = Bytes::copy_from_slice(&self.rendered);
            self.publish(subject, headers, payload, received, Some(fired_at))
                .await?;
        }
        Ok(())
    }

    /// Publishes one message, waiting first for the oldest in flight when
    /// `max_publishes_in_flight` are.
    async fn publish(
        &mut self,
        subject: String,
        headers: HeaderMap,
        payload: Bytes,
        received: Instant,
        fired_at: Option<Timestamp>,
    ) -> anyhow::Result<()> {
        while self.publishes.len() >= self.settings.max_publishes_in_flight {
            self.confirm_oldest().await;
        }
        let ack = self.send(&subject, &headers, &payload).await;
        self.publishes.push_back(Publishing {
            subject,
            headers,
            payload,
            ack,
            received,
            fired_at,
        });
        Ok(())
    }

    /// Hands a message to the client, retrying while NATS is away.
    async fn send(&self, subject: &str, headers: &HeaderMap, payload: &Bytes) -> PublishAckFuture {
        let mut delay = Duration::from_millis(50);
        loop {
            match self
                .js
                .publish_with_headers(subject.to_string(), headers.clone(), payload.clone())
                .await
            {
                Ok(ack) => return ack,
                Err(error) => {
                    tracing::warn!(%error, subject, "publishing; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    /// Waits until JetStream has stored the oldest message in flight,
    /// publishing it again (same `Nats-Msg-Id`, so never twice in the
    /// stream) for as long as that fails: an action must not be lost.
    async fn confirm_oldest(&mut self) {
        let Some(mut publishing) = self.publishes.pop_front() else {
            return;
        };
        loop {
            match publishing.ack.await {
                Ok(_) => break,
                Err(error) => {
                    tracing::warn!(%error, subject = %publishing.subject, "not stored; publishing again");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    publishing.ack = self
                        .send(
                            &publishing.subject,
                            &publishing.headers,
                            &publishing.payload,
                        )
                        .await;
                }
            }
        }
        if let Some(fired_at) = publishing.fired_at {
            histogram!("kairos_event_to_action_seconds")
                .record(publishing.received.elapsed().as_secs_f64());
            let late_ms = wall_clock().0.saturating_sub(fired_at.0).max(0);
            histogram!("kairos_event_time_to_action_seconds").record(late_ms as f64 / 1000.0);
        }
    }

    /// When to publish a tick: once the wall clock has passed the engine's
    /// next pending time, with no tick on its way already (one lost in an
    /// outage is sent again after a second).
    fn tick_wait(&self) -> Option<tokio::time::Instant> {
        let due = self.engine.poll_pending()?;
        if let Some(sent) = self.tick_sent {
            return Some(tokio::time::Instant::from_std(
                sent + Duration::from_secs(1),
            ));
        }
        // A tick stamped at `due` would not pass it: the clock must be
        // strictly later.
        let wait_ms = (due.0 + 1).saturating_sub(wall_clock().0).max(0) as u64;
        Some(tokio::time::Instant::now() + Duration::from_millis(wait_ms))
    }

    async fn send_tick(&mut self) {
        self.tick_sent = Some(Instant::now());
        if let Err(error) = self.js.publish(TICK_SUBJECT, Bytes::new()).await {
            tracing::warn!(%error, "publishing a clock tick");
        }
    }

    /// Writes a snapshot covering every message applied so far, once every
    /// action decided from them is stored. The write itself goes on on a
    /// blocking thread while events continue; one at a time.
    async fn snapshot(&mut self) -> anyhow::Result<()> {
        self.finish_saving().await?;
        while !self.publishes.is_empty() {
            self.confirm_oldest().await;
        }
        let started = Instant::now();
        self.engine
            .snapshot(&mut self.snapshot_bytes)
            .context("taking a snapshot")?;
        let bytes = std::mem::take(&mut self.snapshot_bytes);
        let sequence = self.next_sequence - 1;
        let store = Arc::clone(&self.store);
        let taken_at = wall_clock();
        self.saving = Some(tokio::task::spawn_blocking(move || {
            store.save(sequence, taken_at.0, &bytes)?;
            Ok(SavedSnapshot {
                taken_at,
                sequence,
                bytes: bytes.len(),
                took: started.elapsed(),
            })
        }));
        self.last_snapshot = Instant::now();
        Ok(())
    }

    async fn finish_saving(&mut self) -> anyhow::Result<()> {
        let Some(saving) = self.saving.take() else {
            return Ok(());
        };
        let saved = saving.await.context("the snapshot writer panicked")??;
        histogram!("kairos_snapshot_duration_seconds").record(saved.took.as_secs_f64());
        gauge!("kairos_snapshot_bytes").set(saved.bytes as f64);
        gauge!("kairos_snapshot_sequence").set(saved.sequence as f64);
        self.saved_at = Some(saved.taken_at);
        tracing::debug!(sequence = saved.sequence, bytes = saved.bytes, took = ?saved.took, "snapshot written");
        Ok(())
    }

    /// Brings the exported metrics up to date with the engine's counters.
    fn export_stats(&mut self) {
        let stats = self.engine.stats();
        counter!("kairos_events_late_total").increment(stats.late - self.exported.late);
        counter!("kairos_events_duplicate_total")
            .increment(stats.duplicates - self.exported.duplicates);
        self.exported.late = stats.late;
        self.exported.duplicates = stats.duplicates;
        self.exported.fired.resize(stats.triggers.len(), 0);
        for (trigger, exported) in stats.triggers.iter().zip(&mut self.exported.fired) {
            if trigger.fired > *exported {
                counter!("kairos_triggers_fired_total", "trigger" => trigger.id.clone())
                    .increment(trigger.fired - *exported);
                *exported = trigger.fired;
            }
        }
        gauge!("kairos_customers").set(self.engine.customer_count() as f64);
        gauge!("kairos_timers_pending").set(self.engine.pending_timers() as f64);
        gauge!("kairos_actions_in_flight").set(self.publishes.len() as f64);
        if let Some(saved_at) = self.saved_at {
            let age_ms = wall_clock().0.saturating_sub(saved_at.0).max(0);
            gauge!("kairos_snapshot_age_seconds").set(age_ms as f64 / 1000.0);
        }
    }
}

struct Rejection {
    reason: &'static str,
    message: String,
}

/// `kairos.actions.<channel>` for a sent decision, the audit subject
/// `kairos.actions.suppressed` for one that was not.
fn action_subject(decision: &Decision) -> String {
    match decision.suppressed {
        None => format!("{ACTIONS_PREFIX}.{}", decision.channel),
        Some(_) => format!("{ACTIONS_PREFIX}.suppressed"),
    }
}

/// The wall clock, in the engine's time.
pub fn wall_clock() -> Timestamp {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp(since_epoch.as_millis() as i64)
}
