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

use crate::actions::ActionWriter;
use crate::catalog::{self, VectorChanges};
use crate::forget::Erasures;
use crate::outbox::{ids_stored_after, room_for_payload, Outbox, Outgoing, Pushed, Stored};
use crate::partition::{DEFAULT_PARTITIONS, EVENTS_PREFIX, TICK_SUBJECT};
use crate::pipelines::{self, SwitchMarker, SWITCH_SUBJECT};
use crate::requests;
use crate::snapshots::{SnapshotMeta, SnapshotStore};
use crate::streams::{ACTIONS_STREAM, DLQ_PREFIX, DLQ_STREAM, EVENTS_STREAM};
use anyhow::Context as _;
use async_nats::jetstream::{self, consumer};
use async_nats::HeaderMap;
use bytes::Bytes;
use futures::StreamExt;
use kairos_engine::{Engine, VariantStats};
use kairos_model::{Event, EventType, Timestamp};
use kairos_recommend::ItemIndex;
use metrics::{counter, gauge, histogram};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The engine's durable consumer on the events stream.
pub const CONSUMER: &str = "kairos-engine";

/// Applied events acknowledged together, at most (half of
/// `max_ack_pending` when that is smaller, so that the bound never waits
/// for the housekeeping round), and whatever was applied at least every
/// round.
const ACK_EVERY: u32 = 128;

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
    /// The snapshot it came from, if it came from one.
    pub snapshot: Option<SnapshotMeta>,
    /// The latest snapshot of the run before (the one restored, or the one
    /// a reset or rebuild set aside): what that run published after it is
    /// read back and not published again.
    pub read_back: Option<SnapshotMeta>,
    /// Decisions from events up to this sequence were published by the
    /// run the state comes from, or belong to history replayed to rebuild
    /// state: they are made again and not published (0: none).
    pub mute_through: u64,
    /// The revision of the engine's pipeline in `kairos_pipelines`, and
    /// its content.
    pub pipeline_revision: u64,
    pub pipeline_stored: pipelines::StoredPipeline,
}

/// Runs until `stopping` turns true (SIGTERM, SIGINT), then stops taking
/// events, publishes what is in flight, writes a last snapshot and returns.
/// `items`: the item index, followed from the catalog stream and asked for
/// the recommendations of actions (see `catalog`).
pub async fn run(
    client: async_nats::Client,
    mut resumed: Resumed,
    store: SnapshotStore,
    settings: WorkerSettings,
    items: Arc<ItemIndex>,
    health: Arc<Health>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let js = jetstream::new(client.clone());
    let pipeline = resumed.engine.pipeline().name.to_string();
    let loaded = catalog::load_vectors(&mut resumed.engine, &items)?;
    tracing::info!(items = loaded, "item vectors loaded");
    let (vectors_out, mut vector_changes) = tokio::sync::mpsc::channel::<VectorChanges>(16);
    let follow = catalog::follow(
        js.clone(),
        client.server_info().max_payload,
        Arc::clone(&items),
        vectors_out,
        stopping.clone(),
    );
    gauge!("kairos_catalog_following").set(1.0);
    let follower = tokio::spawn(async move {
        if let Err(error) = follow.await {
            gauge!("kairos_catalog_following").set(0.0);
            // The index cannot be written (disk full, say): actions are
            // still decided and enriched from the catalog as it stands.
            tracing::error!(error = %format!("{error:#}"), "following the catalog stopped");
        }
    });
    let pipelines = pipelines::bucket(&js).await?;
    let (revisions_out, mut new_revisions) = tokio::sync::mpsc::channel::<u64>(16);
    let watcher = tokio::spawn(watch_revisions(
        pipelines.clone(),
        pipeline.clone(),
        revisions_out,
        stopping.clone(),
    ));
    let actions = ActionWriter::start(pipeline.clone(), items)
        .context("starting the thread writing actions")?;
    let mut worker = Worker {
        js: js.clone(),
        engine: resumed.engine,
        actions,
        pipelines,
        pipeline_name: pipeline,
        pipeline_revision: resumed.pipeline_revision,
        pipeline_stored: resumed.pipeline_stored,
        next_sequence: resumed.next_sequence,
        mute_through: resumed.mute_through,
        outbox: Outbox::new(client.clone()),
        settings,
        store: Arc::new(store),
        saving: None,
        last_snapshot: Instant::now(),
        saved_at: resumed.snapshot.map(|meta| Timestamp(meta.taken_at_ms)),
        events: None,
        events_created_ns: 0,
        replay_until: 0,
        output_floor: None,
        tick: TickState::default(),
        exported: ExportedStats::default(),
        applied: [0; EventType::ALL.len()],
        consumer_pending: 0,
        to_ack: None,
        applied_since_ack: 0,
        snapshot_bytes: Vec::new(),
        // `kairos run` consumes every partition in stream order, so the
        // count only decides which subject an erasure event goes to.
        erasures: Erasures::new(client.clone(), DEFAULT_PARTITIONS),
    };
    declare_metrics(worker.engine.pipeline());
    gauge!("kairos_pipeline_revision").set(worker.pipeline_revision as f64);
    for outcome in ["applied", "refused"] {
        counter!("kairos_pipeline_reloads_total", "outcome" => outcome).increment(0);
    }
    worker.check_resume_point(resumed.snapshot.as_ref()).await?;
    if let Some(meta) = &resumed.read_back {
        // What the run before published after its snapshot is made again
        // by the replay; it must not be published twice, however long ago
        // that was (JetStream's duplicate window may have passed).
        let mut stored = ids_stored_after(&js, ACTIONS_STREAM, meta.actions_sequence).await?;
        stored.extend(ids_stored_after(&js, DLQ_STREAM, meta.dlq_sequence).await?);
        if !stored.is_empty() {
            tracing::info!(
                count = stored.len(),
                "messages published after the snapshot will not be published again"
            );
            // Until the replay has made them all, a snapshot must still
            // say they come after it.
            worker.output_floor = Some((meta.actions_sequence, meta.dlq_sequence));
        }
        worker.outbox.skip_stored(stored);
    }
    if resumed.snapshot.is_none() {
        // A first snapshot, on disk before any event is taken: a crash
        // before the first periodic one then resumes knowing where the
        // output streams stood (and, after a reset or rebuild, what not to
        // publish), like any other restart.
        let mut attempts = 0;
        loop {
            worker.snapshot(Duration::ZERO).await?;
            if worker.finish_saving().await {
                break;
            }
            attempts += 1;
            anyhow::ensure!(
                attempts < 120,
                "no first snapshot after {attempts} attempts in a minute: the warnings above say why (NATS unreachable, or the data directory not writable)"
            );
            tokio::select! {
                _ = stopping.changed() => return Ok(()),
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }
    let Some(mut messages) = worker.subscribe(&mut stopping).await? else {
        return Ok(());
    };
    let mut asked = requests::subscribe(&client).await?;
    // A revision stored while no engine ran (or whose switch was not
    // published before a crash) is switched to now.
    match pipelines::latest(&worker.pipelines, &worker.pipeline_name).await {
        Ok(Some(latest)) => worker.on_new_revision(latest.revision).await,
        Ok(None) => {}
        Err(error) => {
            tracing::warn!(error = %format!("{error:#}"), "reading the latest pipeline revision")
        }
    }
    health.ready.store(true, Ordering::Release);
    tracing::info!(next_sequence = worker.next_sequence, "taking events");
    let mut housekeeping = tokio::time::interval(Duration::from_millis(250));
    housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let tick_at = worker.tick_wait();
        let outbox_full = worker.outbox.len() + worker.actions.in_flight()
            >= worker.settings.max_publishes_in_flight;
        tokio::select! {
            biased;
            _ = stopping.changed() => break,
            _ = housekeeping.tick() => {
                if worker.saving.as_ref().is_some_and(|saving| saving.is_finished()) {
                    worker.finish_saving().await;
                }
                worker.ack_applied().await;
                worker.erasures.expire().await;
                worker.export_stats();
                if worker.last_snapshot.elapsed() >= worker.settings.snapshot_every {
                    worker.snapshot(Duration::from_secs(5)).await?;
                }
            }
            Some(stored) = worker.outbox.next_stored(), if !worker.outbox.is_empty() => {
                record_latency(&stored);
            }
            written = worker.actions.next(), if worker.actions.in_flight() > 0 => {
                worker.publish(written?).await;
            }
            () = sleep_until(tick_at) => worker.send_tick().await,
            Some(changes) = vector_changes.recv() => {
                catalog::apply_vectors(&mut worker.engine, changes);
            }
            Some(revision) = new_revisions.recv() => worker.on_new_revision(revision).await,
            Some(request) = asked.next() => {
                let revision = worker.pipeline_revision;
                requests::handle(&client, &request, &mut worker.engine, &mut worker.erasures, revision).await;
            }
            Some(stored) = worker.erasures.next_stored() => {
                worker.erasures.stored(stored, &worker.engine, worker.next_sequence).await;
            }
            delivery = messages.next(), if !outbox_full => match delivery {
                Some(Ok(message)) => {
                    if let Some(gap) = worker.take(message).await? {
                        if worker.still_in_stream(&gap).await {
                            tracing::warn!(expected = gap.expected, got = gap.got, "a delivery was lost: re-reading from the first missing event");
                            let Some(again) = worker.subscribe(&mut stopping).await? else { break };
                            messages = again;
                        } else {
                            tracing::error!(expected = gap.expected, got = gap.got, "events deleted from the stream were skipped");
                            worker.next_sequence = gap.got;
                            if let Some(again) = worker.take(gap.message).await? {
                                tracing::error!(expected = again.expected, got = again.got, "a skipped event could not be taken");
                            }
                        }
                    }
                }
                Some(Err(error)) => {
                    tracing::warn!(%error, "pulling events");
                    if is_fatal_pull_error(&error) {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        let Some(again) = worker.subscribe(&mut stopping).await? else { break };
                        messages = again;
                    }
                }
                None => {
                    tracing::warn!("the events consumer ended; re-creating it");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let Some(again) = worker.subscribe(&mut stopping).await? else { break };
                    messages = again;
                }
            },
        }
    }
    health.ready.store(false, Ordering::Release);
    worker.ack_applied().await;
    drop(messages);
    tracing::info!("stopping: publishing what is in flight, then a last snapshot");
    worker.snapshot(Duration::from_secs(30)).await?;
    worker.finish_saving().await;
    worker.export_stats();
    drop(vector_changes);
    let _ = follower.await;
    drop(new_revisions);
    let _ = watcher.await;
    Ok(())
}

/// Sends every revision stored for `name` from now on to the worker,
/// until `stopping` turns true or the worker hangs up. A broken watch is
/// made again (a revision missed meanwhile is caught by the next start,
/// or by the next revision, which is newer).
async fn watch_revisions(
    store: async_nats::jetstream::kv::Store,
    name: String,
    to_worker: tokio::sync::mpsc::Sender<u64>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let watch = tokio::select! {
            _ = stopping.changed() => return,
            watch = store.watch(&name) => watch,
        };
        let mut watch = match watch {
            Ok(watch) => watch,
            Err(error) => {
                tracing::warn!(%error, "watching the pipeline's revisions; retrying");
                tokio::select! {
                    _ = stopping.changed() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        loop {
            let entry = tokio::select! {
                _ = stopping.changed() => return,
                entry = watch.next() => entry,
            };
            match entry {
                Some(Ok(entry)) if entry.operation == async_nats::jetstream::kv::Operation::Put => {
                    if to_worker.send(entry.revision).await.is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    tracing::warn!(%error, "watching the pipeline's revisions");
                    break;
                }
                None => break,
            }
        }
    }
}

/// Logs and counts a revision that does not compile.
fn refuse_revision(revision: u64, problems: &[kairos_pipeline::Diagnostic]) {
    counter!("kairos_pipeline_reloads_total", "outcome" => "refused").increment(1);
    tracing::error!(
        revision,
        problems = %pipelines::problems_text(problems),
        "a pipeline revision that does not compile was refused; the running one stays"
    );
}

fn record_latency(stored: &Stored) {
    if let Some(fired_at) = stored.fired_at {
        histogram!("kairos_event_to_action_seconds")
            .record(stored.received.elapsed().as_secs_f64());
        let late_ms = Timestamp::now().0.saturating_sub(fired_at.0).max(0);
        histogram!("kairos_event_time_to_action_seconds").record(late_ms as f64 / 1000.0);
    }
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
        "kairos_pipeline_reloads_total",
        "Pipeline revisions switched to (outcome=applied) or refused because they do not compile (outcome=refused; the running one stays)"
    );
    describe_gauge!(
        "kairos_pipeline_revision",
        "The revision (in the kairos_pipelines KV bucket) of the pipeline the engine runs"
    );
    describe_counter!(
        "kairos_attributable_decisions_total",
        "Decisions a conversion can be attributed to, by trigger, variant and group: sent actions (group=sent) and decisions held back because the customer is in the holdout group (group=holdout)"
    );
    describe_counter!(
        "kairos_conversions_total",
        "Those decisions followed by a conversion event within the attribution window (last touch; each counts once), by trigger, variant and group"
    );
    describe_counter!(
        "kairos_conversion_revenue_cents_total",
        "Revenue of the conversions attributed to them, in cents, by trigger, variant and group"
    );
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
    describe_histogram!(
        "kairos_snapshot_pause_seconds",
        Unit::Seconds,
        "How long a snapshot kept the engine from taking events"
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

    describe_counter!(
        "kairos_publish_refused_total",
        "Messages larger than the server accepts, not published"
    );
    describe_gauge!("kairos_catalog_items", "Items in the item index");
    describe_gauge!(
        "kairos_catalog_following",
        "1 while the catalog stream is followed into the item index; 0 once following stopped (the index cannot be written: see the log)"
    );
    describe_counter!(
        "kairos_catalog_changes_total",
        "Catalog changes applied to the item index, by kind"
    );
    describe_histogram!(
        "kairos_recommend_seconds",
        Unit::Seconds,
        "Answering one action's recommendations from the item index"
    );
    for kind in ["upsert", "delete", "stock"] {
        counter!("kairos_catalog_changes_total", "kind" => kind).increment(0);
    }
    counter!("kairos_publish_refused_total", "reason" => "too_large").increment(0);
    counter!("kairos_events_late_total").increment(0);
    counter!("kairos_events_duplicate_total").increment(0);
    for event_type in kairos_model::EventType::ALL {
        counter!("kairos_events_total", "type" => event_type.as_str()).increment(0);
    }
    for reason in kairos_model::InvalidEvent::REASONS
        .iter()
        .chain(&["timestamp_ahead_of_clock", catalog::CATALOG_DLQ_REASON])
    {
        counter!("kairos_dlq_total", "reason" => *reason).increment(0);
    }
    for trigger in &pipeline.triggers {
        let id = trigger.id.to_string();
        counter!("kairos_triggers_fired_total", "trigger" => id.clone()).increment(0);
        for variant in trigger.variant_names() {
            for group in ["sent", "holdout"] {
                let labels = [
                    ("trigger", id.clone()),
                    ("variant", variant.to_string()),
                    ("group", group.to_string()),
                ];
                counter!("kairos_attributable_decisions_total", &labels).increment(0);
                counter!("kairos_conversions_total", &labels).increment(0);
                counter!("kairos_conversion_revenue_cents_total", &labels).increment(0);
            }
        }
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

/// A message further on than the next expected sequence, not applied.
struct Gap {
    expected: u64,
    got: u64,
    message: jetstream::Message,
}

/// The clock ticks the worker publishes (see the module docs).
#[derive(Default)]
struct TickState {
    /// When the tick not yet seen back was published (local instant and
    /// wall time).
    sent: Option<(Instant, Timestamp)>,
    /// The NATS server's clock minus ours, as the last tick showed it
    /// (stored time minus the wall time it was sent at): ticks are timed
    /// by the server's clock, which stamps them.
    server_ahead_ms: i64,
    /// No tick before this: one that came back without passing the
    /// deadline (the server's clock behind) is not followed at once.
    not_before: Option<Instant>,
    /// The last message taken left nothing pending in the stream: while a
    /// backlog is replayed, its own times move the clock, and a tick would
    /// only land behind it.
    caught_up: bool,
}

struct Worker {
    js: jetstream::Context,
    engine: Engine,
    /// Answers decisions' recommendation requests and writes their
    /// messages, off this loop.
    actions: ActionWriter,
    /// The bucket the pipeline's revisions are in (see `pipelines`).
    pipelines: async_nats::jetstream::kv::Store,
    pipeline_name: String,
    /// The revision the engine runs, and its content (saved with each
    /// snapshot).
    pipeline_revision: u64,
    pipeline_stored: pipelines::StoredPipeline,
    /// The first stream sequence not yet applied.
    next_sequence: u64,
    /// See [`Resumed::mute_through`].
    mute_through: u64,
    outbox: Outbox,
    settings: WorkerSettings,
    store: Arc<SnapshotStore>,
    /// A snapshot being written on a blocking thread.
    saving: Option<tokio::task::JoinHandle<anyhow::Result<SavedSnapshot>>>,
    last_snapshot: Instant,
    /// When the state in the latest snapshot written was taken (wall time).
    saved_at: Option<Timestamp>,
    /// The events stream, once found.
    events: Option<jetstream::stream::Stream>,
    /// When it was created (ns since the epoch).
    events_created_ns: i64,
    /// The last sequence in the events stream at start: the replay of what
    /// came before is over once past it.
    replay_until: u64,
    /// While the replay has not yet made every message read back, the
    /// output streams' ends of the snapshot it resumed from (see
    /// [`Resumed::read_back`]).
    output_floor: Option<(u64, u64)>,
    tick: TickState,
    exported: ExportedStats,
    /// Events applied, by type (exported by `export_stats`).
    applied: [u64; EventType::ALL.len()],
    /// The consumer's pending count at the last event taken.
    consumer_pending: u64,
    /// The last message applied and not yet acknowledged.
    to_ack: Option<jetstream::Message>,
    applied_since_ack: u32,
    snapshot_bytes: Vec<u8>,
    /// Forget requests waiting for their erasure event to be applied.
    erasures: Erasures,
}

struct SavedSnapshot {
    meta: SnapshotMeta,
    bytes: usize,
    took: Duration,
}

/// The engine counters already exported, so each export adds the change.
#[derive(Default)]
struct ExportedStats {
    late: u64,
    duplicates: u64,
    fired: Vec<u64>,
    applied: [u64; EventType::ALL.len()],
    /// Per trigger, per variant.
    attribution: Vec<Vec<VariantStats>>,
}

impl ExportedStats {
    /// After a pipeline switch (exported just before it): the counters
    /// carried over are exported already, in their new places; a new
    /// trigger's start from nothing.
    fn follow(&mut self, stats: &kairos_engine::Stats) {
        self.fired = stats.triggers.iter().map(|trigger| trigger.fired).collect();
        self.attribution = stats
            .triggers
            .iter()
            .map(|trigger| trigger.variants.clone())
            .collect();
    }
}

impl Worker {
    /// Refuses to resume from a snapshot of another events stream (one
    /// deleted and created again, a server whose storage was lost): its
    /// sequence numbers mean other events, and resuming would silently
    /// skip or repeat them.
    async fn check_resume_point(&mut self, snapshot: Option<&SnapshotMeta>) -> anyhow::Result<()> {
        let mut stream = self
            .js
            .get_stream(EVENTS_STREAM)
            .await
            .context("finding the events stream")?;
        let info = stream
            .info()
            .await
            .context("reading the events stream's state")?
            .clone();
        self.events_created_ns = info.created.unix_timestamp_nanos() as i64;
        self.replay_until = info.state.last_sequence;
        self.events = Some(stream);
        let Some(meta) = snapshot else {
            return Ok(());
        };
        let recreated = meta.events_created_ns != self.events_created_ns;
        let behind = meta.covers_sequence > info.state.last_sequence;
        if recreated || behind {
            anyhow::bail!(
                "the snapshot covers events up to sequence {} of an events stream created at {} ns, but {} was created at {} ns and ends at sequence {}: it is not the stream the snapshot was taken from, and resuming would skip or repeat events; accepted: the same stream, or --reset-state (or --rebuild-state) to start again",
                meta.covers_sequence,
                meta.events_created_ns,
                EVENTS_STREAM,
                self.events_created_ns,
                info.state.last_sequence
            );
        }
        Ok(())
    }

    /// Whether a message the gap skipped is still in the stream (a lost
    /// delivery, to read again) rather than deleted. When that cannot be
    /// told (NATS away), it is taken as there: reading again loses nothing.
    async fn still_in_stream(&self, gap: &Gap) -> bool {
        let Some(stream) = &self.events else {
            return true;
        };
        // One request, however wide the gap (retention may have removed
        // millions): the first message at or after the first missing one.
        match stream
            .get_first_raw_message_by_subject(format!("{EVENTS_PREFIX}.>"), gap.expected)
            .await
        {
            Ok(first) => first.sequence < gap.got,
            Err(error)
                if error.kind() == jetstream::stream::LastRawMessageErrorKind::NoMessageFound =>
            {
                false
            }
            Err(_) => true,
        }
    }

    /// (Re-)creates the durable consumer at the next sequence to apply and
    /// subscribes to it, retrying while NATS is away; `None` when told to
    /// stop meanwhile. The consumer is re-created rather than reused
    /// because its acknowledgements may run ahead of the snapshot: after a
    /// crash the engine resumes from the snapshot, not from the ack floor.
    async fn subscribe(
        &mut self,
        stopping: &mut tokio::sync::watch::Receiver<bool>,
    ) -> anyhow::Result<Option<consumer::pull::Stream>> {
        loop {
            match self.try_subscribe().await {
                Ok(stream) => return Ok(Some(stream)),
                Err(error) => {
                    tracing::warn!(error = %format!("{error:#}"), "creating the events consumer; retrying");
                    tokio::select! {
                        _ = stopping.changed() => return Ok(None),
                        () = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
            }
        }
    }

    async fn try_subscribe(&mut self) -> anyhow::Result<consumer::pull::Stream> {
        let mut stream = self
            .js
            .get_stream(EVENTS_STREAM)
            .await
            .context("finding the events stream")?;
        let state = stream.info().await?.state.clone();
        let first = state.first_sequence;
        self.events = Some(stream.clone());
        if first > self.next_sequence {
            if self.next_sequence > 1 {
                tracing::error!(
                    lost = first - self.next_sequence,
                    "events after the snapshot are no longer in the stream (retention); resuming from the oldest kept"
                );
            }
            self.next_sequence = first;
        }
        // Nothing left to replay (or what was is gone): ticks move the clock.
        self.tick.caught_up = self.next_sequence > state.last_sequence;
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
                ack_policy: consumer::AckPolicy::All,
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
    /// Applies one delivered message, in stream order, and acknowledges it
    /// (in batches); a message beyond the next expected one is handed back
    /// unapplied.
    async fn take(&mut self, message: jetstream::Message) -> anyhow::Result<Option<Gap>> {
        let received = Instant::now();
        let (sequence, clock, pending) = match message.info() {
            Ok(info) => (
                info.stream_sequence,
                Timestamp((info.published.unix_timestamp_nanos() / 1_000_000) as i64),
                info.pending,
            ),
            Err(error) => {
                tracing::warn!(%error, "a delivery without JetStream metadata; ignored");
                return Ok(None);
            }
        };
        if sequence < self.next_sequence {
            // A redelivery of one applied already.
            let _ = message.ack().await;
            return Ok(None);
        }
        if sequence > self.next_sequence {
            return Ok(Some(Gap {
                expected: self.next_sequence,
                got: sequence,
                message,
            }));
        }
        self.consumer_pending = pending;
        self.tick.caught_up = pending == 0;
        if message.subject.as_str() == SWITCH_SUBJECT {
            self.engine.advance_to(clock);
            self.switch_pipeline(&message.payload);
        } else if message.subject.as_str() == TICK_SUBJECT {
            if let Some((_, sent_wall)) = self.tick.sent.take() {
                self.tick.server_ahead_ms = clock.0 - sent_wall.0;
            }
            self.engine.advance_to(clock);
            if self.engine.poll_pending().is_some_and(|due| due < clock) {
                // Still due: the server's clock was behind ours.
                self.tick.not_before = Some(Instant::now() + Duration::from_millis(5));
            }
        } else {
            self.apply_event(&message, sequence, clock, received)
                .await?;
        }
        self.next_sequence = sequence + 1;
        self.erasures.applied_through(sequence, &self.engine).await;
        if sequence > self.replay_until {
            self.outbox.replay_done();
        }
        self.publish_decisions(received, sequence <= self.mute_through);
        // Applied: the state change is in the engine. If the process dies
        // now, the snapshot and the stream bring it back. Acknowledged in
        // batches (the consumer acknowledges everything up to a message):
        // one acknowledgement per event cost more than applying it.
        self.to_ack = Some(message);
        self.applied_since_ack += 1;
        let batch =
            ACK_EVERY.min(u32::try_from(self.settings.max_ack_pending / 2).unwrap_or(u32::MAX));
        if self.applied_since_ack >= batch.max(1) {
            self.ack_applied().await;
        }
        Ok(None)
    }

    /// Acknowledges every message applied so far.
    async fn ack_applied(&mut self) {
        self.applied_since_ack = 0;
        if let Some(message) = self.to_ack.take() {
            if let Err(error) = message.ack().await {
                tracing::debug!(%error, "acknowledging events (they will be redelivered and skipped)");
            }
        }
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
        // Counted here, exported with the engine's counters: a metric
        // lookup per event cost more than keeping the count.
        let event_type = event.event_type as usize;
        match self.engine.handle_live_event(event, clock) {
            Ok(()) => {
                self.applied[event_type] += 1;
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
        let (headers, payload) = dlq_entry(
            self.outbox.max_payload(),
            &format!("dlq-{sequence}"),
            rejection.reason,
            &rejection.message,
            message,
            sequence,
        );
        let subject = format!("{DLQ_PREFIX}.{}", rejection.reason);
        self.publish(Outgoing {
            subject,
            headers,
            payload,
            received,
            fired_at: None,
        })
        .await;
        Ok(())
    }

    /// A revision of the pipeline was stored: if it is newer than the one
    /// running and compiles, its switch marker goes to the events stream
    /// (see `pipelines`); if it does not compile, it is refused and the
    /// running one stays.
    async fn on_new_revision(&mut self, revision: u64) {
        if revision <= self.pipeline_revision {
            return;
        }
        let found = pipelines::at_revision(&self.pipelines, &self.pipeline_name, revision).await;
        let stored = match found {
            Ok(Some(stored)) => stored,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), revision, "reading a new pipeline revision");
                return;
            }
        };
        if let Err(problems) = stored.pipeline.compile(&self.pipeline_name) {
            refuse_revision(revision, &problems);
            return;
        }
        let published =
            pipelines::publish_switch(&self.js, &self.pipeline_name, revision, &stored.pipeline);
        if let Err(error) = published.await {
            // The next start (or the next revision) publishes it again.
            tracing::warn!(error = %format!("{error:#}"), revision, "publishing a pipeline switch");
        }
    }

    /// Applies a switch marker taken from the stream: from here on, the
    /// engine runs the pipeline it carries. A marker for another pipeline,
    /// or for a revision not newer than the running one, changes nothing.
    /// The marker holds the whole pipeline, so a replay switches exactly
    /// as the first run did, whatever the bucket still holds.
    fn switch_pipeline(&mut self, body: &[u8]) {
        let Ok(marker) = serde_json::from_slice::<SwitchMarker>(body) else {
            tracing::warn!("a switch marker that cannot be read; ignored");
            return;
        };
        if marker.pipeline != self.pipeline_name || marker.revision <= self.pipeline_revision {
            return;
        }
        let pipeline = match marker.stored.compile(&self.pipeline_name) {
            Ok(pipeline) => pipeline,
            Err(problems) => {
                refuse_revision(marker.revision, &problems);
                return;
            }
        };
        // What was counted under the old pipeline is exported first: the
        // counters' places follow the new pipeline's triggers after this.
        self.export_stats();
        declare_metrics(&pipeline);
        let reloaded = self.engine.replace_pipeline(pipeline);
        self.exported.follow(self.engine.stats());
        self.pipeline_revision = marker.revision;
        self.pipeline_stored = marker.stored;
        counter!("kairos_pipeline_reloads_total", "outcome" => "applied").increment(1);
        gauge!("kairos_pipeline_revision").set(marker.revision as f64);
        tracing::info!(
            revision = marker.revision,
            kept = ?reloaded.kept,
            reset = ?reloaded.reset,
            added = ?reloaded.added,
            removed = ?reloaded.removed,
            "pipeline switched"
        );
    }

    /// Hands every decision the engine has made to the action writer;
    /// with `mute`, drops them instead (see [`Resumed::mute_through`]).
    fn publish_decisions(&mut self, received: Instant, mute: bool) {
        while let Some(decision) = self.engine.poll_decision() {
            if mute {
                continue;
            }
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
            // Checked here, in the order decisions are made: the outbox
            // forgets these ids once the replay is past them, which may be
            // before the writer hands this one back.
            if self.outbox.stored_before(&decision.action_id) {
                continue;
            }
            // No waiting for room in the outbox: one input's decisions (a
            // tick can fire many timers) are taken whole, and the loop
            // takes no further event while the outbox and the writer hold
            // more than the bound. Waiting here would stop the loop itself,
            // its metrics and its response to SIGTERM, for as long as NATS
            // is away.
            self.actions.write(decision, received);
        }
    }

    /// Publishes every message the action writer still holds.
    async fn publish_written(&mut self) -> anyhow::Result<()> {
        while self.actions.in_flight() > 0 {
            let outgoing = self.actions.next().await?;
            self.publish(outgoing).await;
        }
        Ok(())
    }

    /// Hands one message to the outbox.
    async fn publish(&mut self, outgoing: Outgoing) {
        let subject = outgoing.subject.clone();
        if self.outbox.push(outgoing).await == Pushed::TooLarge {
            counter!("kairos_publish_refused_total", "reason" => "too_large").increment(1);
            tracing::error!(%subject, "a message larger than the server accepts was not published");
        }
    }

    /// When to publish a tick: once the wall clock has passed the engine's
    /// next pending time, with no tick on its way already (one lost in an
    /// outage is sent again after a second).
    fn tick_wait(&self) -> Option<tokio::time::Instant> {
        let due = self.engine.poll_pending()?;
        if !self.tick.caught_up {
            return None;
        }
        if let Some((sent, _)) = self.tick.sent {
            return Some(tokio::time::Instant::from_std(
                sent + Duration::from_secs(1),
            ));
        }
        // The tick's stored time must pass `due`: the server stamps it, by
        // its clock.
        let server_now = Timestamp::now().0 + self.tick.server_ahead_ms;
        let wait_ms = (due.0 + 1).saturating_sub(server_now).max(0) as u64;
        let at = Instant::now() + Duration::from_millis(wait_ms);
        let at = self
            .tick
            .not_before
            .map_or(at, |not_before| at.max(not_before));
        Some(tokio::time::Instant::from_std(at))
    }

    async fn send_tick(&mut self) {
        self.tick.sent = Some((Instant::now(), Timestamp::now()));
        self.tick.not_before = None;
        if let Err(error) = self.js.publish(TICK_SUBJECT, Bytes::new()).await {
            tracing::warn!(%error, "publishing a clock tick");
        }
    }

    /// Writes a snapshot covering every message applied so far, once every
    /// action decided from them is stored; the write itself goes on on a
    /// blocking thread while events continue, one at a time. A snapshot
    /// that cannot be taken now (NATS away) is tried again at the next
    /// round; only a failure of the engine itself is an error.
    async fn snapshot(&mut self, drain_within: Duration) -> anyhow::Result<()> {
        let paused = Instant::now();
        let outcome = self.take_snapshot(drain_within).await;
        histogram!("kairos_snapshot_pause_seconds").record(paused.elapsed().as_secs_f64());
        outcome
    }

    /// [`Worker::snapshot`]'s work: the time it takes is the time no event
    /// is taken.
    async fn take_snapshot(&mut self, drain_within: Duration) -> anyhow::Result<()> {
        self.finish_saving().await;
        self.last_snapshot = Instant::now();
        // Not under the time limit: a message taken from the writer and cut
        // off half-pushed would be lost. Pushing waits only for room in
        // the client's buffer, as the loop's own publishes do, not for
        // JetStream's acknowledgement (which the limit below is for).
        self.publish_written().await?;
        let drained = tokio::time::timeout(drain_within, async {
            while let Some(stored) = self.outbox.next_stored().await {
                record_latency(&stored);
            }
        })
        .await;
        if drained.is_err() {
            // Nothing is lost by skipping it: the next start replays from
            // the one before, and makes these actions again.
            tracing::warn!(
                in_flight = self.outbox.len(),
                "no snapshot this round: JetStream did not store the actions in flight within {drain_within:?}"
            );
            return Ok(());
        }
        if !self.outbox.replaying() {
            self.output_floor = None;
        }
        let ends = match self.output_floor {
            Some(floor) => Ok(floor),
            None => self.output_ends().await,
        };
        let (actions_sequence, dlq_sequence) = match ends {
            Ok(ends) => ends,
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "no snapshot this round");
                return Ok(());
            }
        };
        let started = Instant::now();
        self.engine
            .snapshot(&mut self.snapshot_bytes)
            .context("taking a snapshot")?;
        tracing::debug!(
            serialised_in = ?started.elapsed(),
            bytes = self.snapshot_bytes.len(),
            "snapshot taken"
        );
        let bytes = std::mem::take(&mut self.snapshot_bytes);
        let meta = SnapshotMeta {
            covers_sequence: self.next_sequence - 1,
            taken_at_ms: Timestamp::now().0,
            actions_sequence,
            dlq_sequence,
            events_created_ns: self.events_created_ns,
            mute_through: self.mute_through,
            pipeline_revision: self.pipeline_revision,
        };
        let store = Arc::clone(&self.store);
        let pipeline = serde_json::to_vec(&self.pipeline_stored)?;
        self.saving = Some(tokio::task::spawn_blocking(move || {
            store.save(&meta, &bytes, &pipeline)?;
            Ok(SavedSnapshot {
                meta,
                bytes: bytes.len(),
                took: started.elapsed(),
            })
        }));
        Ok(())
    }

    /// The last sequences of the actions and DLQ streams.
    async fn output_ends(&self) -> anyhow::Result<(u64, u64)> {
        let mut ends = [0; 2];
        for (end, name) in ends.iter_mut().zip([ACTIONS_STREAM, DLQ_STREAM]) {
            let mut stream = self.js.get_stream(name).await?;
            *end = stream.info().await?.state.last_sequence;
        }
        Ok((ends[0], ends[1]))
    }

    /// Waits for the snapshot being written, if any, and records it. A
    /// failed write (a full disk) is logged: the previous snapshot stays,
    /// and the next round tries again.
    /// Whether a snapshot was written (false: none was being written, or
    /// the write failed).
    async fn finish_saving(&mut self) -> bool {
        let Some(saving) = self.saving.take() else {
            return false;
        };
        let saved = match saving.await {
            Ok(Ok(saved)) => saved,
            Ok(Err(error)) => {
                tracing::error!(error = %format!("{error:#}"), "writing a snapshot");
                return false;
            }
            Err(error) => {
                tracing::error!(%error, "the snapshot writer failed");
                return false;
            }
        };
        histogram!("kairos_snapshot_duration_seconds").record(saved.took.as_secs_f64());
        gauge!("kairos_snapshot_bytes").set(saved.bytes as f64);
        gauge!("kairos_snapshot_sequence").set(saved.meta.covers_sequence as f64);
        self.saved_at = Some(Timestamp(saved.meta.taken_at_ms));
        tracing::debug!(sequence = saved.meta.covers_sequence, bytes = saved.bytes, took = ?saved.took, "snapshot written");
        true
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
        self.exported
            .attribution
            .resize_with(stats.triggers.len(), Vec::new);
        for (trigger, exported) in stats.triggers.iter().zip(&mut self.exported.attribution) {
            exported.resize_with(trigger.variants.len(), VariantStats::default);
            for (now, before) in trigger.variants.iter().zip(exported.iter_mut()) {
                export_attribution(&trigger.id, now, before);
                *before = now.clone();
            }
        }
        for ((event_type, applied), exported) in EventType::ALL
            .iter()
            .zip(self.applied)
            .zip(&mut self.exported.applied)
        {
            if applied > *exported {
                counter!("kairos_events_total", "type" => event_type.as_str())
                    .increment(applied - *exported);
                *exported = applied;
            }
        }
        gauge!("kairos_consumer_pending").set(self.consumer_pending as f64);
        gauge!("kairos_customers").set(self.engine.customer_count() as f64);
        gauge!("kairos_timers_pending").set(self.engine.pending_timers() as f64);
        // Decisions with the action writer count: intake stops on the sum.
        gauge!("kairos_actions_in_flight")
            .set((self.outbox.len() + self.actions.in_flight()) as f64);
        if let Some(saved_at) = self.saved_at {
            let age_ms = Timestamp::now().0.saturating_sub(saved_at.0).max(0);
            gauge!("kairos_snapshot_age_seconds").set(age_ms as f64 / 1000.0);
        }
    }
}

/// The attribution counters of one trigger's variant: what changed since
/// `before` (see `kairos_engine::VariantStats`).
fn export_attribution(trigger: &str, now: &VariantStats, before: &VariantStats) {
    let groups = [
        (
            "sent",
            now.sent,
            before.sent,
            now.conversions,
            before.conversions,
            now.revenue,
            before.revenue,
        ),
        (
            "holdout",
            now.held_out,
            before.held_out,
            now.holdout_conversions,
            before.holdout_conversions,
            now.holdout_revenue,
            before.holdout_revenue,
        ),
    ];
    for (
        group,
        decisions,
        decisions_before,
        conversions,
        conversions_before,
        revenue,
        revenue_before,
    ) in groups
    {
        let labels = [
            ("trigger", trigger.to_string()),
            ("variant", now.name.clone()),
            ("group", group.to_string()),
        ];
        counter!("kairos_attributable_decisions_total", &labels)
            .increment(decisions.saturating_sub(decisions_before));
        counter!("kairos_conversions_total", &labels)
            .increment(conversions.saturating_sub(conversions_before));
        // In cents: counters count whole numbers.
        let cents = |amount: f64| (amount * 100.0).round() as u64;
        counter!("kairos_conversion_revenue_cents_total", &labels)
            .increment(cents(revenue).saturating_sub(cents(revenue_before)));
    }
}

/// The longest `Kairos-Error` header, in bytes.
const MAX_ERROR_HEADER: usize = 1024;

/// A DLQ entry for the stream message `message` (see [`dlq_headers`]),
/// fitting a server that takes messages of up to `max_payload` bytes: the
/// original and the headers must fit in one message, so an oversized
/// payload is cut, keeping its start, which is what a person needs to see
/// (and `Kairos-Truncated-From` says how long it was).
pub(crate) fn dlq_entry(
    max_payload: usize,
    id: &str,
    reason: &str,
    error: &str,
    message: &jetstream::Message,
    sequence: u64,
) -> (HeaderMap, Bytes) {
    let mut headers = dlq_headers(id, reason, error, message, sequence);
    let mut payload = message.payload.clone();
    if payload.len() > room_for_payload(max_payload, &headers).saturating_sub(64) {
        headers.insert("Kairos-Truncated-From", payload.len().to_string().as_str());
        payload.truncate(room_for_payload(max_payload, &headers).saturating_sub(64));
    }
    (headers, payload)
}

/// The headers of a DLQ entry for the stream message `message`: `id` (the
/// same on a replay after a crash, so the DLQ keeps one entry), the
/// reason's code, what was wrong, and where the message was.
fn dlq_headers(
    id: &str,
    reason: &str,
    error: &str,
    message: &jetstream::Message,
    sequence: u64,
) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(async_nats::header::NATS_MESSAGE_ID, id);
    headers.insert("Kairos-Reason", reason);
    // The error quotes the sender's text: cut, so that the headers always
    // leave room for the payload.
    headers.insert("Kairos-Error", cut_at(error, MAX_ERROR_HEADER));
    headers.insert("Kairos-Subject", message.subject.as_str());
    headers.insert("Kairos-Sequence", sequence.to_string().as_str());
    headers
}

/// The longest start of `text` within `max` bytes (on a character's
/// boundary).
fn cut_at(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let end = (0..=max)
        .rev()
        .find(|&end| text.is_char_boundary(end))
        .unwrap_or(0);
    &text[..end]
}

struct Rejection {
    reason: &'static str,
    message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_header_is_cut_on_a_character_boundary() {
        assert_eq!(cut_at("short", 10), "short");
        assert_eq!(
            cut_at("ééé", 3),
            "é",
            "2-byte characters: one fits in 3 bytes"
        );
        assert_eq!(
            cut_at(&"x".repeat(5000), MAX_ERROR_HEADER).len(),
            MAX_ERROR_HEADER
        );
    }

    #[test]
    fn every_event_type_counts_in_its_own_place() {
        for (place, event_type) in EventType::ALL.iter().enumerate() {
            assert_eq!(*event_type as usize, place, "{event_type:?}");
        }
        assert_eq!(
            EventType::ALL.map(EventType::as_str).join(", "),
            EventType::ACCEPTED
        );
    }
}
