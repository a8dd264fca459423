//! The streams kairos works with, created or brought up to date on
//! start, so that `kairos run` needs nothing set up beforehand.

use async_nats::jetstream::{self, stream};
use std::time::Duration;

/// Segment calls in, on `kairos.events.<partition>`, plus the engine's ticks.
pub const EVENTS_STREAM: &str = "KAIROS_EVENTS";
/// Actions out, on `kairos.actions.<channel>` and `kairos.actions.suppressed`.
pub const ACTIONS_STREAM: &str = "KAIROS_ACTIONS";
/// Rejected input, on `kairos.dlq.<reason>`, with the original payload.
pub const DLQ_STREAM: &str = "KAIROS_DLQ";

/// Catalog changes (`kairos.catalog.<kind>`), followed into each worker's
/// item index (see `catalog`).
pub use crate::catalog::CATALOG_STREAM;

/// Subject prefix of actions.
pub const ACTIONS_PREFIX: &str = "kairos.actions";
/// Subject prefix of rejected input.
pub const DLQ_PREFIX: &str = "kairos.dlq";

/// How long and how much each stream keeps, and how many copies.
#[derive(Clone, Debug)]
pub struct StreamSettings {
    /// How long events are kept: the furthest back a restart can replay
    /// from, so at least several snapshot intervals.
    pub events_max_age: Duration,
    /// Bytes of events kept (-1: no limit).
    pub events_max_bytes: i64,
    /// How long actions are kept for their consumers.
    pub actions_max_age: Duration,
    /// How long rejected input is kept.
    pub dlq_max_age: Duration,
    /// How long catalog changes are kept: a worker down for longer misses
    /// the older ones (`kairos catalog load` brings its index up to date).
    pub catalog_max_age: Duration,
    /// Replicas of each stream: 1, or 3 on a 3-node cluster.
    pub replicas: usize,
    /// The window in which a repeated `Nats-Msg-Id` is dropped: a replay
    /// after a crash republishes up to a snapshot interval of actions,
    /// which must all fall inside it.
    pub duplicate_window: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            events_max_age: Duration::from_secs(7 * 86_400),
            events_max_bytes: -1,
            actions_max_age: Duration::from_secs(7 * 86_400),
            dlq_max_age: Duration::from_secs(30 * 86_400),
            catalog_max_age: Duration::from_secs(30 * 86_400),
            replicas: 1,
            duplicate_window: Duration::from_secs(10 * 60),
        }
    }
}

impl StreamSettings {
    /// The configuration of each stream, as kairos wants it.
    pub fn configs(&self) -> [stream::Config; 4] {
        let base = |name: &str, subject: &str, max_age: Duration| stream::Config {
            name: name.to_string(),
            subjects: vec![format!("{subject}.>")],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            max_age,
            // What the server reports for "no limit": asking for 0 would
            // read back as -1 and look like a change on every start.
            max_bytes: -1,
            num_replicas: self.replicas,
            duplicate_window: self.duplicate_window.min(max_age),
            ..Default::default()
        };
        [
            stream::Config {
                max_bytes: self.events_max_bytes,
                ..base(
                    EVENTS_STREAM,
                    crate::partition::EVENTS_PREFIX,
                    self.events_max_age,
                )
            },
            base(ACTIONS_STREAM, ACTIONS_PREFIX, self.actions_max_age),
            base(DLQ_STREAM, DLQ_PREFIX, self.dlq_max_age),
            base(
                CATALOG_STREAM,
                crate::catalog::CATALOG_PREFIX,
                self.catalog_max_age,
            ),
        ]
    }
}

/// Creates each stream, or updates one whose limits differ from `settings`
/// (an operator's change of flags takes effect on the next start). Running
/// it again changes nothing.
pub async fn ensure_streams(
    js: &jetstream::Context,
    settings: &StreamSettings,
) -> anyhow::Result<()> {
    for wanted in settings.configs() {
        match js.get_stream(&wanted.name).await {
            Ok(mut existing) => {
                let info = existing.info().await?;
                let have = &info.config;
                let differs = have.subjects != wanted.subjects
                    || have.max_age != wanted.max_age
                    || have.max_bytes != wanted.max_bytes
                    || have.num_replicas != wanted.num_replicas
                    || have.duplicate_window != wanted.duplicate_window;
                if differs {
                    // Only what kairos' flags manage changes; whatever else
                    // an operator set on the stream stays.
                    let mut updated = have.clone();
                    updated.subjects = wanted.subjects.clone();
                    updated.max_age = wanted.max_age;
                    updated.max_bytes = wanted.max_bytes;
                    updated.num_replicas = wanted.num_replicas;
                    updated.duplicate_window = wanted.duplicate_window;
                    tracing::info!(stream = %wanted.name, "updating stream limits");
                    js.update_stream(updated).await.map_err(|error| {
                        anyhow::anyhow!("updating stream {}: {error}", wanted.name)
                    })?;
                }
            }
            Err(_) => {
                tracing::info!(stream = %wanted.name, "creating stream");
                js.create_stream(wanted.clone())
                    .await
                    .map_err(|error| anyhow::anyhow!("creating stream {}: {error}", wanted.name))?;
            }
        }
    }
    Ok(())
}
