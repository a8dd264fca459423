//! Where snapshots of the engine are kept: an LMDB environment (heed) in the
//! data directory.
//!
//! One record, replaced whole in one write transaction: LMDB commits it
//! atomically and durably (fsync on commit), so a kill -9 at any moment
//! leaves either the previous snapshot or the new one, never half of one.
//! The record is the stream sequence the snapshot covers (every message up
//! to and including it was applied), when it was taken, and the engine's
//! bytes (`Engine::snapshot`, which carry their own checksum).

use anyhow::Context as _;
use heed::types::{Bytes, Str};
use heed::{Database, Env, EnvOpenOptions};
use std::path::Path;

const LATEST: &str = "latest";
/// Address space reserved for the environment. LMDB grows its file as
/// records need it; this is only the ceiling (a 1 M-customer snapshot is
/// a few hundred MB, and a replacement needs room beside the old record
/// until it commits).
const MAP_SIZE: usize = 256 << 30;

/// A snapshot read back.
pub struct Snapshot {
    /// Every stream message up to and including this sequence is in it.
    pub covers_sequence: u64,
    /// Wall time it was taken, in ms since the Unix epoch.
    pub taken_at_ms: i64,
    /// `Engine::snapshot`'s bytes.
    pub engine: Vec<u8>,
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
            record.len() >= 16,
            "the snapshot record is {} bytes, shorter than its header",
            record.len()
        );
        let (header, engine) = record.split_at(16);
        Ok(Some(Snapshot {
            covers_sequence: u64::from_le_bytes(header[..8].try_into().expect("8 bytes")),
            taken_at_ms: i64::from_le_bytes(header[8..].try_into().expect("8 bytes")),
            engine: engine.to_vec(),
        }))
    }

    /// Replaces the snapshot, durably: it has reached the disk when this
    /// returns.
    pub fn save(
        &self,
        covers_sequence: u64,
        taken_at_ms: i64,
        engine: &[u8],
    ) -> anyhow::Result<()> {
        let mut record = Vec::with_capacity(16 + engine.len());
        record.extend_from_slice(&covers_sequence.to_le_bytes());
        record.extend_from_slice(&taken_at_ms.to_le_bytes());
        record.extend_from_slice(engine);
        let mut txn = self.env.write_txn()?;
        self.db.put(&mut txn, LATEST, &record)?;
        txn.commit()?;
        Ok(())
    }

    /// Forgets the snapshot (`kairos run --reset-state`).
    pub fn clear(&self) -> anyhow::Result<()> {
        let mut txn = self.env.write_txn()?;
        self.db.delete(&mut txn, LATEST)?;
        txn.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_snapshot_is_read_back_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SnapshotStore::open(dir.path()).unwrap();
            assert!(store.latest().unwrap().is_none());
            store.save(41, 1_700_000_000_000, b"first").unwrap();
            store.save(42, 1_700_000_001_000, b"second").unwrap();
        }
        let store = SnapshotStore::open(dir.path()).unwrap();
        let snapshot = store.latest().unwrap().expect("saved");
        assert_eq!(snapshot.covers_sequence, 42);
        assert_eq!(snapshot.taken_at_ms, 1_700_000_001_000);
        assert_eq!(snapshot.engine, b"second");
        store.clear().unwrap();
        assert!(store.latest().unwrap().is_none());
    }
}
