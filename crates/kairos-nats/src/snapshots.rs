//! Where snapshots of the engine are kept: an LMDB environment (heed) in the
//! data directory.
//!
//! One record, replaced whole in one write transaction: LMDB commits it
//! atomically and durably (fsync on commit), so a kill -9 at any moment
//! leaves either the previous snapshot or the new one, never half of one.
//! The record is a [`SnapshotMeta`] (the stream sequence the snapshot
//! covers, and where the output streams ended when it was taken) followed
//! by the engine's bytes (`Engine::snapshot`, which carry their own
//! checksum).

use anyhow::Context as _;
use heed::types::{Bytes, Str};
use heed::{Database, Env, EnvOpenOptions};
use std::path::Path;

const LATEST: &str = "latest";
/// The pipeline the latest snapshot's state runs under (JSON of a
/// `pipelines::StoredPipeline`), written in the same transaction: a restart
/// restores with it, whatever the KV bucket still holds.
const PIPELINE: &str = "pipeline";
/// Address space reserved for the environment. LMDB grows its file as
/// records need it; this is only the ceiling (a 1 M-customer snapshot is
/// a few hundred MB, and a replacement needs room beside the old record
/// until it commits).
const MAP_SIZE: usize = 256 << 30;

/// What a snapshot covers and where the streams stood when it was taken.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotMeta {
    /// Every events-stream message up to and including this sequence is in it.
    pub covers_sequence: u64,
    /// Wall time it was taken, in ms since the Unix epoch.
    pub taken_at_ms: i64,
    /// The last sequence of `KAIROS_ACTIONS` then: every action decided
    /// before the snapshot is at or before it, so what follows it was
    /// published after the snapshot.
    pub actions_sequence: u64,
    /// The same for `KAIROS_DLQ`.
    pub dlq_sequence: u64,
    /// When the events stream was created (ns since the Unix epoch): a
    /// stream created since has other sequence numbers.
    pub events_created_ns: i64,
    /// Decisions from events up to this sequence are not published (a
    /// rebuild of state from history in progress; 0: none).
    pub mute_through: u64,
    /// The revision of the pipeline (in `kairos_pipelines`) the state runs
    /// under: a restart restores it with that revision.
    pub pipeline_revision: u64,
}

const META_BYTES: usize = 56;

impl SnapshotMeta {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.covers_sequence.to_le_bytes());
        out.extend_from_slice(&self.taken_at_ms.to_le_bytes());
        out.extend_from_slice(&self.actions_sequence.to_le_bytes());
        out.extend_from_slice(&self.dlq_sequence.to_le_bytes());
        out.extend_from_slice(&self.events_created_ns.to_le_bytes());
        out.extend_from_slice(&self.mute_through.to_le_bytes());
        out.extend_from_slice(&self.pipeline_revision.to_le_bytes());
    }

    fn read(bytes: &[u8]) -> SnapshotMeta {
        let word = |at: usize| <[u8; 8]>::try_from(&bytes[at..at + 8]).expect("8 bytes");
        SnapshotMeta {
            covers_sequence: u64::from_le_bytes(word(0)),
            taken_at_ms: i64::from_le_bytes(word(8)),
            actions_sequence: u64::from_le_bytes(word(16)),
            dlq_sequence: u64::from_le_bytes(word(24)),
            events_created_ns: i64::from_le_bytes(word(32)),
            mute_through: u64::from_le_bytes(word(40)),
            pipeline_revision: u64::from_le_bytes(word(48)),
        }
    }
}

/// A snapshot read back.
pub struct Snapshot {
    pub meta: SnapshotMeta,
    /// `Engine::snapshot`'s bytes.
    pub engine: Vec<u8>,
    /// The pipeline it runs under, as saved (see [`SnapshotStore::save`]).
    pub pipeline: Option<Vec<u8>>,
}

/// The snapshot store of one data directory.
pub struct SnapshotStore {
    env: Env,
    db: Database<Str, Bytes>,
}

impl SnapshotStore {
    /// Opens (creating) the store in `dir`.
    pub fn open(dir: &Path) -> anyhow::Result<SnapshotStore> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating data directory {}", dir.display()))?;
        // SAFETY (heed's requirement for `open`): the environment must not
        // be opened twice in one process, and its file must not be changed
        // by anything but LMDB. kairos opens it once per `run`, and the
        // data directory is its own.
        let env = unsafe {
            EnvOpenOptions::new()
                .map_size(MAP_SIZE)
                .max_dbs(1)
                .open(dir)
        }
        .with_context(|| format!("opening the snapshot store in {}", dir.display()))?;
        let mut txn = env.write_txn()?;
        let db = env.create_database(&mut txn, Some("snapshots"))?;
        txn.commit()?;
        Ok(SnapshotStore { env, db })
    }

    /// The latest snapshot, if one was written.
    pub fn latest(&self) -> anyhow::Result<Option<Snapshot>> {
        let txn = self.env.read_txn()?;
        let Some(record) = self.db.get(&txn, LATEST)? else {
            return Ok(None);
        };
        anyhow::ensure!(
            record.len() >= META_BYTES,
            "the snapshot record is {} bytes, shorter than its header",
            record.len()
        );
        let (header, engine) = record.split_at(META_BYTES);
        Ok(Some(Snapshot {
            meta: SnapshotMeta::read(header),
            engine: engine.to_vec(),
            pipeline: self.db.get(&txn, PIPELINE)?.map(<[u8]>::to_vec),
        }))
    }

    /// Replaces the snapshot and the pipeline it runs under, together and
    /// durably: they have reached the disk when this returns.
    pub fn save(&self, meta: &SnapshotMeta, engine: &[u8], pipeline: &[u8]) -> anyhow::Result<()> {
        let mut record = Vec::with_capacity(META_BYTES + engine.len());
        meta.write(&mut record);
        record.extend_from_slice(engine);
        let mut txn = self.env.write_txn()?;
        self.db.put(&mut txn, LATEST, &record)?;
        self.db.put(&mut txn, PIPELINE, pipeline)?;
        txn.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn second() -> SnapshotMeta {
        SnapshotMeta {
            covers_sequence: 42,
            taken_at_ms: 1_700_000_001_000,
            actions_sequence: 7,
            dlq_sequence: 3,
            events_created_ns: -5,
            mute_through: 9,
            pipeline_revision: 12,
        }
    }

    #[test]
    fn a_saved_snapshot_is_read_back_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SnapshotStore::open(dir.path()).unwrap();
            assert!(store.latest().unwrap().is_none());
            let first = SnapshotMeta {
                covers_sequence: 41,
                ..SnapshotMeta::default()
            };
            store.save(&first, b"first", b"{}").unwrap();
            store
                .save(&second(), b"second", b"{\"source\":\"\"}")
                .unwrap();
        }
        let store = SnapshotStore::open(dir.path()).unwrap();
        let snapshot = store.latest().unwrap().expect("saved");
        assert_eq!(snapshot.meta, second());
        assert_eq!(snapshot.engine, b"second");
        assert_eq!(
            snapshot.pipeline.as_deref(),
            Some(&b"{\"source\":\"\"}"[..])
        );
    }
}
