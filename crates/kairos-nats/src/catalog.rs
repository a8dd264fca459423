//! The item catalog on NATS: changes published to `kairos.catalog.<kind>`
//! (`upsert`, `delete`, `stock`; bodies as `kairos_recommend::parse_change`
//! reads them) are kept in the `KAIROS_CATALOG` stream, and `kairos run`
//! follows that stream into its item index (`DATA_DIR/catalog`).
//!
//! # Exactly once, across restarts
//!
//! The index records, in the same LMDB transaction as the changes, the
//! stream sequence they came from and the stream's creation time
//! ([`ItemIndex::applied_position`]). The follower reads on from the next
//! sequence with an ordered consumer, so a crash between a change and its
//! record is impossible, and a restart neither skips nor repeats a change.
//! A stream deleted and made again (its sequences start over) is read from
//! its start. (Changes are idempotent anyway: an
//! upsert replaces, a delete of what is absent does nothing.)
//!
//! # Queries never wait
//!
//! Changes are applied on a blocking thread; recommendation queries read
//! the index in their own LMDB read transactions meanwhile and see the
//! change once its transaction commits. The engine's copy of the item
//! vectors (for taste vectors) is updated by the worker between two events,
//! from the [`VectorChanges`] the follower sends it after each commit.
//!
//! Bad messages (unknown kind, invalid body, an item refused by the index)
//! go to the DLQ as `kairos.dlq.catalog_invalid` with the reason, and the
//! good ones beside them are applied.

use crate::streams::DLQ_PREFIX;
use anyhow::Context as _;
use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use kairos_engine::Engine;
use kairos_recommend::{parse_change, CatalogChange, ItemIndex, SourcePosition};
use metrics::{counter, gauge};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// The stream of catalog changes.
pub const CATALOG_STREAM: &str = "KAIROS_CATALOG";
/// Subject prefix of catalog changes: `kairos.catalog.upsert|delete|stock`.
pub const CATALOG_PREFIX: &str = "kairos.catalog";
/// The DLQ reason of a catalog change that could not be applied.
pub const CATALOG_DLQ_REASON: &str = "catalog_invalid";

/// Changes read and applied together, at most: one LMDB transaction and one
/// incremental tree build each.
const BATCH: usize = 512;
/// How long a batch waits for more changes once it has one.
const BATCH_WAIT: Duration = Duration::from_millis(20);

/// Item vectors a batch of changes set (`Some`) or removed (`None`), for
/// the engine's copy.
pub type VectorChanges = Vec<(String, Option<Vec<f32>>)>;

/// Loads every item vector of `index` into the engine (at start, and after
/// a snapshot is restored). Returns how many.
pub fn load_vectors(engine: &mut Engine, index: &ItemIndex) -> anyhow::Result<usize> {
    let table = kairos_recommend::item_vectors(index).context("reading the item index")?;
    let count = table.len();
    *engine.item_vectors_mut() = table;
    gauge!("kairos_catalog_items").set(count as f64);
    Ok(count)
}

/// Applies vector changes to the engine's copy.
pub fn apply_vectors(engine: &mut Engine, changes: VectorChanges) {
    let table = engine.item_vectors_mut();
    for (id, vector) in changes {
        let result = match vector {
            Some(vector) => table.insert(&id, &vector),
            None => {
                table.remove(&id);
                Ok(())
            }
        };
        if let Err(error) = result {
            // The index refuses such an item first; kept from the engine
            // all the same.
            tracing::warn!(%error, "an item vector the engine cannot use");
        }
    }
}

/// Follows the catalog stream into `index` until `stopping` turns true,
/// sending each committed batch's vector changes to `to_engine`. Errors
/// reading NATS are retried; an index that cannot be written stops it.
/// `max_payload`: the largest message the server takes (DLQ entries are
/// cut to fit).
pub async fn follow(
    js: jetstream::Context,
    max_payload: usize,
    index: Arc<ItemIndex>,
    to_engine: mpsc::Sender<VectorChanges>,
    mut stopping: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    loop {
        let outcome = tokio::select! {
            _ = stopping.changed() => return Ok(()),
            outcome = follow_once(&js, max_payload, &index, &to_engine) => outcome,
        };
        match outcome {
            Ok(()) => return Ok(()),
            Err(Failure::Index(error)) => return Err(error),
            Err(Failure::Nats(error)) => {
                tracing::warn!(error = %format!("{error:#}"), "following the catalog stream; retrying");
                tokio::select! {
                    _ = stopping.changed() => return Ok(()),
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}

/// Why following stopped.
enum Failure {
    /// NATS: worth another try.
    Nats(anyhow::Error),
    /// The index: not.
    Index(anyhow::Error),
}

/// One consumer's life: reads and applies until the consumer fails (or the
/// engine side hangs up, which ends it).
async fn follow_once(
    js: &jetstream::Context,
    max_payload: usize,
    index: &Arc<ItemIndex>,
    to_engine: &mpsc::Sender<VectorChanges>,
) -> Result<(), Failure> {
    let recorded = index
        .applied_position()
        .context("reading the item index")
        .map_err(Failure::Index)?;
    let mut stream = js
        .get_stream(CATALOG_STREAM)
        .await
        .map_err(|error| Failure::Nats(anyhow::anyhow!("{error}")))?;
    let info = stream
        .info()
        .await
        .map_err(|error| Failure::Nats(anyhow::anyhow!("{error}")))?
        .clone();
    let (state, source) = (info.state, info.created.unix_timestamp_nanos() as u64);
    let applied = recorded.map_or(0, |position| position.sequence);
    let mut start = applied + 1;
    if recorded.is_some_and(|position| position.source != source) {
        tracing::warn!(
            applied,
            "the catalog stream was made again since the item index last read it: reading it from its start"
        );
        start = 1;
    } else if state.last_sequence < applied {
        tracing::warn!(
            applied,
            last = state.last_sequence,
            "the catalog stream is behind the item index (deleted and made again?): reading it from its start"
        );
        start = 1;
    } else if state.messages > 0 && state.first_sequence > start {
        tracing::warn!(
            applied,
            first = state.first_sequence,
            "catalog changes expired from the stream before this index read them; `kairos catalog load` brings it up to date"
        );
    }
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: start.max(1),
            },
            ..Default::default()
        })
        .await
        .map_err(|error| Failure::Nats(anyhow::anyhow!("{error}")))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|error| Failure::Nats(anyhow::anyhow!("{error}")))?;
    loop {
        let Some(first) = messages.next().await else {
            return Err(Failure::Nats(anyhow::anyhow!("the catalog consumer ended")));
        };
        let mut batch = vec![first.map_err(|error| Failure::Nats(error.into()))?];
        while batch.len() < BATCH {
            match tokio::time::timeout(BATCH_WAIT, messages.next()).await {
                Ok(Some(Ok(message))) => batch.push(message),
                Ok(Some(Err(error))) => return Err(Failure::Nats(error.into())),
                Ok(None) | Err(_) => break,
            }
        }
        let changes = apply_batch(js, max_payload, index, source, batch).await?;
        if !changes.is_empty() && to_engine.send(changes).await.is_err() {
            // The worker is gone: nothing left to follow for.
            return Ok(());
        }
    }
}

/// Parses and applies one batch; sends what is bad to the DLQ.
async fn apply_batch(
    js: &jetstream::Context,
    max_payload: usize,
    index: &Arc<ItemIndex>,
    source: u64,
    batch: Vec<jetstream::Message>,
) -> Result<VectorChanges, Failure> {
    // The changes parsed, and beside them the message each came from.
    let mut changes = Vec::with_capacity(batch.len());
    let mut sources = Vec::with_capacity(batch.len());
    let mut bad = Vec::new();
    let mut last_sequence = 0;
    for message in &batch {
        let sequence = message.info().map(|info| info.stream_sequence).unwrap_or(0);
        last_sequence = last_sequence.max(sequence);
        match parse_change(message.subject.as_str(), &message.payload) {
            Ok(change) => {
                changes.push(change);
                sources.push(message);
            }
            Err(error) => bad.push((message, error.to_string())),
        }
    }
    // Into the DLQ before the batch is recorded as applied: a failure here
    // re-reads the batch (its entries keep one copy each, by id).
    bad.sort_by_key(|(message, _)| message.info().map_or(0, |info| info.stream_sequence));
    for (message, reason) in &bad {
        dead_letter(js, max_payload, message, reason).await?;
    }
    let touched: Vec<(String, bool)> = changes
        .iter()
        .filter_map(|change| match change {
            CatalogChange::Upsert(item) => Some((item.id.clone(), true)),
            CatalogChange::Delete { id } => Some((id.clone(), false)),
            CatalogChange::Stock { .. } => None,
        })
        .collect();
    let writer = Arc::clone(index);
    let (applied, vectors) = tokio::task::spawn_blocking(move || {
        let through = SourcePosition {
            source,
            sequence: last_sequence,
        };
        let applied = writer.apply_through(changes, through)?;
        // Read back after the commit: what the index holds now is what
        // queries see, computed vectors included.
        let mut vectors = VectorChanges::with_capacity(touched.len());
        for (id, upserted) in touched {
            let vector = match upserted {
                true => writer.vector(&id)?,
                false => None,
            };
            vectors.push((id, vector));
        }
        Ok::<_, kairos_recommend::IndexError>((applied, vectors))
    })
    .await
    .map_err(|error| Failure::Index(anyhow::anyhow!("the catalog writer panicked: {error}")))?
    .context("applying catalog changes to the item index")
    .map_err(Failure::Index)?;
    for (kind, count) in [
        ("upsert", applied.upserted),
        ("delete", applied.deleted + applied.already_absent),
        ("stock", applied.stock_changes),
    ] {
        counter!("kairos_catalog_changes_total", "kind" => kind).increment(count as u64);
    }
    gauge!("kairos_catalog_items").set(index.len() as f64);
    // Refused by the index, after the batch was recorded: retried until
    // stored, since the batch will not be read again.
    for refusal in &applied.refused {
        let Some(message) = sources.get(refusal.position) else {
            continue;
        };
        while let Err(Failure::Nats(error) | Failure::Index(error)) =
            dead_letter(js, max_payload, message, &refusal.to_string()).await
        {
            tracing::warn!(error = %format!("{error:#}"), "storing a refused catalog change in the DLQ; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    Ok(vectors)
}

/// Stores a bad catalog message in the DLQ, with the reason; the same
/// message read again (after a restart) keeps one entry.
async fn dead_letter(
    js: &jetstream::Context,
    max_payload: usize,
    message: &jetstream::Message,
    reason: &str,
) -> Result<(), Failure> {
    counter!("kairos_dlq_total", "reason" => CATALOG_DLQ_REASON).increment(1);
    tracing::warn!(subject = %message.subject, reason, "a catalog change was refused");
    let sequence = message.info().map(|info| info.stream_sequence).unwrap_or(0);
    let (headers, payload) = crate::worker::dlq_entry(
        max_payload,
        &format!("catalog-dlq-{sequence}"),
        CATALOG_DLQ_REASON,
        reason,
        message,
        sequence,
    );
    let subject = format!("{DLQ_PREFIX}.{CATALOG_DLQ_REASON}");
    js.publish_with_headers(subject, headers, payload)
        .await
        .map_err(|error| Failure::Nats(error.into()))?
        .await
        .map_err(|error| Failure::Nats(error.into()))?;
    Ok(())
}
