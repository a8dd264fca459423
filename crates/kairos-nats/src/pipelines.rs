//! Pipelines in the NATS KV bucket `kairos_pipelines`: one key per
//! pipeline name, each value a [`StoredPipeline`] (the TOML text and its
//! `--set` overrides), each put a new revision; the bucket keeps the last
//! [`HISTORY`] of each.
//!
//! # How a running engine switches
//!
//! The worker watches its pipeline's key. A new revision that compiles is
//! not applied at once: the worker publishes a *switch marker* naming the
//! revision to the events stream ([`SWITCH_SUBJECT`]), and applies the
//! switch when the marker comes back through the stream, between the two
//! events it sits between (`Engine::replace_pipeline`). A replay after a
//! crash meets the marker at the same place, so it makes the same
//! decisions; snapshots record the revision they were taken under, which a
//! restart restores with. A revision that does not compile is refused
//! (logged, counted in `kairos_pipeline_reloads_total{outcome="refused"}`)
//! and the running one stays; `kairos pipeline push` refuses it before it
//! is stored.

use async_nats::jetstream::{self, kv};
use futures::StreamExt;
use kairos_engine::config::Pipeline;
use kairos_pipeline::{Diagnostic, Override};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The bucket.
pub const PIPELINES_BUCKET: &str = "kairos_pipelines";
/// Revisions kept per pipeline (the most JetStream allows per key).
pub const HISTORY: i64 = 64;
/// Where switch markers go: a subject of the events stream no partition
/// uses (partitions are numbers).
pub const SWITCH_SUBJECT: &str = "kairos.events.pipeline";

/// One revision's content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPipeline {
    /// The pipeline file's text.
    pub source: String,
    /// `--set` overrides, as typed (`abandoned_cart.after=10m`).
    #[serde(default)]
    pub overrides: Vec<String>,
    /// The file it came from (for diagnostics and history).
    #[serde(default)]
    pub file: String,
    /// What made it: `push`, `rollback to revision N`, `first run`.
    #[serde(default)]
    pub note: String,
}

impl StoredPipeline {
    /// The pipeline file at `path` with `overrides` (`--set`), as stored;
    /// `note` says what stored it. An error says why the file cannot be
    /// read.
    pub fn from_file(
        path: &Path,
        overrides: &[Override],
        note: &str,
    ) -> Result<StoredPipeline, String> {
        Ok(StoredPipeline {
            source: kairos_pipeline::read_text(path)?,
            overrides: overrides
                .iter()
                .map(|set| format!("{}={}", set.path, set.value))
                .collect(),
            file: path.display().to_string(),
            note: note.to_string(),
        })
    }

    /// Compiles it as pipeline `name` (the key it is stored under, the
    /// name engines run it as): the pipeline, or every problem, a `name`
    /// of its own among them.
    pub fn compile(&self, name: &str) -> Result<Pipeline, Vec<Diagnostic>> {
        let mut overrides = Vec::with_capacity(self.overrides.len());
        for text in &self.overrides {
            match text.parse::<Override>() {
                Ok(parsed) => overrides.push(parsed),
                Err(error) => {
                    return Err(vec![Diagnostic {
                        file: self.file.clone(),
                        line: 1,
                        column: 1,
                        field: "--set".to_string(),
                        problem: format!("{text:?}: {error}"),
                        accepted: "TRIGGER.PARAM=VALUE".to_string(),
                    }])
                }
            }
        }
        let pipeline = kairos_pipeline::compile(&self.file, &self.source, &overrides)?;
        if &*pipeline.name != name {
            return Err(vec![Diagnostic {
                file: self.file.clone(),
                line: 1,
                column: 1,
                field: "name".to_string(),
                problem: format!("is {:?}, stored as pipeline {name:?}", pipeline.name),
                accepted: format!("\"{name}\", the pipeline it is stored as"),
            }]);
        }
        Ok(pipeline)
    }

    /// Whether `other` is the same pipeline text with the same overrides
    /// (wherever it came from).
    pub fn same_content(&self, other: &StoredPipeline) -> bool {
        self.source == other.source && self.overrides == other.overrides
    }

    fn decode(entry: &kv::Entry) -> anyhow::Result<StoredPipeline> {
        serde_json::from_slice(&entry.value).map_err(|error| {
            anyhow::anyhow!(
                "{PIPELINES_BUCKET} revision {} of {:?} is not a stored pipeline: {error}",
                entry.revision,
                entry.key
            )
        })
    }
}

/// Compile problems on one line, for logs and error messages.
pub fn problems_text(problems: &[Diagnostic]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A revision read back.
#[derive(Clone, Debug)]
pub struct Revision {
    pub revision: u64,
    /// When it was stored (RFC 3339).
    pub stored_at: String,
    pub pipeline: StoredPipeline,
}

/// The bucket, created if missing. Its stream is made here, as a KV
/// bucket's is (`KV_<bucket>` on `$KV.<bucket>.>`, one message per key and
/// revision kept, direct gets): async-nats' `create_key_value` first asks
/// for the account's information, whose answer from nats-server 2.9 it
/// cannot read.
pub async fn bucket(js: &jetstream::Context) -> anyhow::Result<kv::Store> {
    if let Ok(store) = js.get_key_value(PIPELINES_BUCKET).await {
        return Ok(store);
    }
    let created = js
        .create_stream(jetstream::stream::Config {
            name: format!("KV_{PIPELINES_BUCKET}"),
            description: Some("kairos pipelines, one key per pipeline name".to_string()),
            subjects: vec![format!("$KV.{PIPELINES_BUCKET}.>")],
            max_messages_per_subject: HISTORY,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: jetstream::stream::DiscardPolicy::New,
            ..Default::default()
        })
        .await;
    if let Err(error) = created {
        // Another process may have made it meanwhile.
        if js.get_key_value(PIPELINES_BUCKET).await.is_err() {
            anyhow::bail!("creating the KV bucket {PIPELINES_BUCKET}: {error}");
        }
    }
    js.get_key_value(PIPELINES_BUCKET)
        .await
        .map_err(|error| anyhow::anyhow!("opening the KV bucket {PIPELINES_BUCKET}: {error}"))
}

/// Stores a new revision of pipeline `name`; returns its number.
pub async fn put(store: &kv::Store, name: &str, pipeline: &StoredPipeline) -> anyhow::Result<u64> {
    let body = serde_json::to_vec(pipeline)?;
    store.put(name, body.into()).await.map_err(|error| {
        anyhow::anyhow!("storing pipeline {name:?} in {PIPELINES_BUCKET}: {error}")
    })
}

/// The latest revision of `name`, if any (a deleted key has none).
pub async fn latest(store: &kv::Store, name: &str) -> anyhow::Result<Option<Revision>> {
    let entry = store.entry(name).await.map_err(|error| {
        anyhow::anyhow!("reading pipeline {name:?} from {PIPELINES_BUCKET}: {error}")
    })?;
    entry
        .filter(|entry| entry.operation == kv::Operation::Put)
        .map(|entry| revision_of(&entry))
        .transpose()
}

/// Revision `revision` of `name` (`None`: not in the bucket, or not of
/// that key).
pub async fn at_revision(
    store: &kv::Store,
    name: &str,
    revision: u64,
) -> anyhow::Result<Option<Revision>> {
    let entry = store
        .entry_for_revision(name, revision)
        .await
        .map_err(|error| {
            anyhow::anyhow!("reading revision {revision} of pipeline {name:?}: {error}")
        })?;
    entry
        .filter(|entry| entry.key == name && entry.operation == kv::Operation::Put)
        .map(|entry| revision_of(&entry))
        .transpose()
}

/// Every revision of `name` the bucket keeps, oldest first (none when the
/// key has never been stored, or was deleted). A value that is not a
/// stored pipeline (put by other means) is left out, with a warning:
/// it must not hide the good ones.
pub async fn history(store: &kv::Store, name: &str) -> anyhow::Result<Vec<Revision>> {
    // Without an entry, the history's consumer would wait for one.
    let newest = store.entry(name).await.map_err(|error| {
        anyhow::anyhow!("reading pipeline {name:?} from {PIPELINES_BUCKET}: {error}")
    })?;
    if newest.is_none_or(|entry| entry.operation != kv::Operation::Put) {
        return Ok(Vec::new());
    }
    let mut entries = store
        .history(name)
        .await
        .map_err(|error| anyhow::anyhow!("reading the history of pipeline {name:?}: {error}"))?;
    let mut revisions = Vec::new();
    while let Some(entry) = entries.next().await {
        let entry = entry.map_err(|error| anyhow::anyhow!("reading the history: {error}"))?;
        if entry.operation == kv::Operation::Put {
            match revision_of(&entry) {
                Ok(revision) => revisions.push(revision),
                Err(error) => tracing::warn!(error = %format!("{error:#}"), "left out"),
            }
        }
        if entry.delta == 0 {
            break;
        }
    }
    Ok(revisions)
}

fn revision_of(entry: &kv::Entry) -> anyhow::Result<Revision> {
    Ok(Revision {
        revision: entry.revision,
        stored_at: entry
            .created
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        pipeline: StoredPipeline::decode(entry)?,
    })
}

/// The body of a switch marker: the whole pipeline, so that a replay
/// switches to exactly what the first run did, whatever the bucket holds
/// by then (it keeps [`HISTORY`] revisions).
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchMarker {
    /// The pipeline's name (the key).
    pub pipeline: String,
    /// The revision to switch to.
    pub revision: u64,
    /// Its content.
    pub stored: StoredPipeline,
}

/// Publishes a switch marker for `revision` to the events stream (its
/// `Nats-Msg-Id` is the revision's, so markers published twice for one
/// revision are stored once within the duplicate window; one stored twice
/// all the same is applied once, as a revision is never switched to
/// again).
pub async fn publish_switch(
    js: &jetstream::Context,
    name: &str,
    revision: u64,
    stored: &StoredPipeline,
) -> anyhow::Result<()> {
    let marker = SwitchMarker {
        pipeline: name.to_string(),
        revision,
        stored: stored.clone(),
    };
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(
        async_nats::header::NATS_MESSAGE_ID,
        format!("pipeline-{name}-{revision}").as_str(),
    );
    js.publish_with_headers(SWITCH_SUBJECT, headers, serde_json::to_vec(&marker)?.into())
        .await?
        .await
        .map_err(|error| anyhow::anyhow!("storing the switch to revision {revision}: {error}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(source: &str, overrides: &[&str]) -> StoredPipeline {
        StoredPipeline {
            source: source.to_string(),
            overrides: overrides.iter().map(|text| text.to_string()).collect(),
            file: "shop.toml".to_string(),
            note: "push".to_string(),
        }
    }

    const SHOP: &str = r#"
name = "shop"
[[trigger]]
id = "cart"
kind = "absence"
key = "cart_id"
start = "Product Added"
cancel = ["Order Completed"]
after = "30m"
channel = "push"
"#;

    #[test]
    fn a_stored_pipeline_compiles_with_its_overrides_and_says_what_is_wrong() {
        let pipeline = stored(SHOP, &["cart.after=10m"]).compile("shop").unwrap();
        assert_eq!(&*pipeline.triggers[0].id, "cart");
        let problems = stored(SHOP, &["cart.after=soon"])
            .compile("shop")
            .unwrap_err();
        assert!(problems[0].to_string().contains("after"), "{problems:?}");
        let problems = stored(SHOP, &["no equals sign"])
            .compile("shop")
            .unwrap_err();
        assert!(problems[0].to_string().contains("TRIGGER.PARAM=VALUE"));
        let problems = stored(SHOP, &[]).compile("retail").unwrap_err();
        assert!(
            problems[0]
                .to_string()
                .contains("stored as pipeline \"retail\""),
            "{problems:?}"
        );
        assert!(stored(SHOP, &[]).same_content(&StoredPipeline {
            note: "rollback to revision 1".into(),
            ..stored(SHOP, &[])
        }));
    }
}
