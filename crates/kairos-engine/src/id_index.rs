//! Every known id (userId or anonymousId) → the customer slot it resolves to.
//!
//! Keyed by a 96-bit hash of the id rather than the id itself: a lookup is
//! one probe with no string to fetch and compare (the id's bytes would be a
//! second cache miss on every event), and an id costs a 16-byte entry
//! instead of an entry plus a key allocation. 96 bits because a collision
//! would merge two people: among a billion ids the chance that any two share
//! a hash is about n² / 2⁹⁷ ≈ 6 · 10⁻¹² (64 bits would give 3 %). The hash
//! is seeded per process, so nobody can choose ids that pile up on one
//! place in the table; the seed changes where entries live, never what an
//! id resolves to.
//!
//! The table is open addressing with linear probing, written here rather
//! than taken from `hashbrown` for one reason: with a million customers the
//! probe is a cache miss on every event, and the engine hides it by
//! prefetching the entry while the event waits in the reorder buffer
//! ([`IdIndex::prefetch`]). That needs the address an id's entry lives at,
//! which no map library exposes. Four entries share a cache line, and the
//! prefetch covers the entry's line and the next: at a load of 1/2 (a
//! million customers) a lookup of a known id reads two lines 11 % of the
//! time, at the maximum load of 3/4 21 % of the time (an unknown id 59 %,
//! scanning ~8 entries), so beyond two lines a probe rarely goes.

use crate::lookahead::prefetch;
use crate::snapshot::{corrupt, Reader, SnapshotError, Writer};
use std::hash::{BuildHasher, RandomState};
use xxhash_rust::xxh3::xxh3_128_with_seed;

/// An id's hash, as the index stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdKey {
    /// The low 64 bits: where the entry lives, and most of the comparison.
    low: u64,
    /// 32 more bits, compared only.
    high: u32,
}

/// One entry; `slot == EMPTY` marks a free one.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(16))]
struct Entry {
    low: u64,
    high: u32,
    slot: u32,
}

/// The slot value of a free entry (customer slots stay below it).
const EMPTY: u32 = u32::MAX;

const FREE: Entry = Entry {
    low: 0,
    high: 0,
    slot: EMPTY,
};

/// Entries in a new table.
const INITIAL_CAPACITY: usize = 16;

/// The id index.
#[derive(Debug)]
pub struct IdIndex {
    /// A power of two long (or empty).
    entries: Vec<Entry>,
    len: usize,
    /// This process's hash seed.
    seed: u64,
}

impl Default for IdIndex {
    fn default() -> Self {
        IdIndex {
            entries: Vec::new(),
            len: 0,
            // The standard library's per-process random keys, without a
            // random-number crate.
            seed: RandomState::new().hash_one(0x6b61_6972_6f73_u64),
        }
    }
}

impl IdIndex {
    /// The key of `id` in this index.
    pub fn key(&self, id: &str) -> IdKey {
        let hash = xxh3_128_with_seed(id.as_bytes(), self.seed);
        IdKey {
            low: hash as u64,
            high: (hash >> 96) as u32,
        }
    }

    /// The slot `id` resolves to.
    pub fn get(&self, id: &str) -> Option<u32> {
        self.get_key(self.key(id))
    }

    /// The slot the id with this key resolves to.
    pub fn get_key(&self, key: IdKey) -> Option<u32> {
        self.find(key).map(|position| self.entries[position].slot)
    }

    /// Whether `id` is known.
    pub fn contains(&self, id: &str) -> bool {
        self.find(self.key(id)).is_some()
    }

    /// Asks the CPU to fetch the cache lines a lookup of `key` reads first:
    /// the home entry's and, when the run crosses into it, the next.
    pub fn prefetch(&self, key: IdKey) {
        if !self.entries.is_empty() {
            let home = self.home(key.low);
            let mask = self.entries.len() - 1;
            prefetch(&self.entries[home]);
            prefetch(&self.entries[(home + 3) & mask]);
        }
    }

    /// Points `id` at `slot`.
    pub fn insert(&mut self, id: &str, slot: u32) {
        self.insert_key(self.key(id), slot);
    }

    /// Points the id with this key at `slot`.
    pub fn insert_key(&mut self, key: IdKey, slot: u32) {
        assert!(slot != EMPTY, "customer slots stay below {EMPTY}");
        if let Some(position) = self.find(key) {
            self.entries[position].slot = slot;
            return;
        }
        if (self.len + 1) * 4 > self.entries.len() * 3 {
            self.grow();
        }
        self.place(Entry {
            low: key.low,
            high: key.high,
            slot,
        });
        self.len += 1;
    }

    /// Forgets `id`.
    pub fn remove(&mut self, id: &str) {
        let Some(mut hole) = self.find(self.key(id)) else {
            return;
        };
        // Backward-shift deletion: entries after the hole whose probe path
        // passes through it move into it, so lookups never need tombstones.
        let mask = self.entries.len() - 1;
        let mut next = hole;
        loop {
            next = (next + 1) & mask;
            let entry = self.entries[next];
            if entry.slot == EMPTY {
                break;
            }
            let home = self.home(entry.low);
            if (next.wrapping_sub(home) & mask) >= (next.wrapping_sub(hole) & mask) {
                self.entries[hole] = entry;
                hole = next;
            }
        }
        self.entries[hole] = FREE;
        self.len -= 1;
    }

    /// Writes the index as laid out, with its seed: ids are held only as
    /// their hashes, which the seed decides (a snapshot of the engine).
    pub(crate) fn save(&self, out: &mut Writer) {
        out.fixed(&self.seed.to_le_bytes());
        out.len(self.entries.len());
        out.len(self.len);
        let mut previous = 0;
        for (position, entry) in self.entries.iter().enumerate() {
            if entry.slot != EMPTY {
                out.len(position - previous);
                previous = position;
                out.fixed(&entry.low.to_le_bytes());
                out.fixed(&entry.high.to_le_bytes());
                out.u64(entry.slot.into());
            }
        }
    }

    /// Reads what [`IdIndex::save`] wrote: each entry where it was, so
    /// that every id resolves as before.
    pub(crate) fn load(input: &mut Reader<'_>) -> Result<IdIndex, SnapshotError> {
        let seed = u64::from_le_bytes(input.fixed()?);
        let capacity = usize::try_from(input.u64()?).unwrap_or(usize::MAX);
        let len = input.len(14)?;
        // A lookup stops at a free entry: there must be some.
        if (capacity != 0 && !capacity.is_power_of_two())
            || len.saturating_mul(4) > capacity.saturating_mul(3)
            || capacity > 1 << 40
        {
            return Err(corrupt("an id index of impossible size"));
        }
        let mut entries = vec![FREE; capacity];
        let mut position = 0usize;
        for index in 0..len {
            let gap = usize::try_from(input.u64()?).unwrap_or(usize::MAX);
            if index > 0 && gap == 0 {
                return Err(corrupt("two ids in one place"));
            }
            position = position.saturating_add(gap);
            let low = u64::from_le_bytes(input.fixed()?);
            let high = u32::from_le_bytes(input.fixed()?);
            let slot = input.u32()?;
            let place = entries
                .get_mut(position)
                .ok_or_else(|| corrupt("an id beyond the index"))?;
            if slot == EMPTY {
                return Err(corrupt("an id of no customer"));
            }
            *place = Entry { low, high, slot };
        }
        Ok(IdIndex { entries, len, seed })
    }

    fn home(&self, low: u64) -> usize {
        low as usize & (self.entries.len() - 1)
    }

    fn find(&self, key: IdKey) -> Option<usize> {
        if self.entries.is_empty() {
            return None;
        }
        let mask = self.entries.len() - 1;
        let mut position = self.home(key.low);
        loop {
            let entry = &self.entries[position];
            if entry.slot == EMPTY {
                return None;
            }
            if entry.low == key.low && entry.high == key.high {
                return Some(position);
            }
            position = (position + 1) & mask;
        }
    }

    /// Puts an entry whose key is not held yet at the end of its probe path.
    fn place(&mut self, entry: Entry) {
        let mask = self.entries.len() - 1;
        let mut position = self.home(entry.low);
        while self.entries[position].slot != EMPTY {
            position = (position + 1) & mask;
        }
        self.entries[position] = entry;
    }

    fn grow(&mut self) {
        let capacity = (self.entries.len() * 2).max(INITIAL_CAPACITY);
        let old = std::mem::replace(&mut self.entries, vec![FREE; capacity]);
        for entry in old.into_iter().filter(|entry| entry.slot != EMPTY) {
            self.place(entry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[test]
    fn ids_resolve_until_removed() {
        let mut index = IdIndex::default();
        assert_eq!(index.get("u1"), None);
        index.insert("u1", 7);
        index.insert("anon-1", 7);
        assert_eq!(index.get("u1"), Some(7));
        assert!(index.contains("anon-1"));
        index.remove("u1");
        assert_eq!(index.get("u1"), None);
        assert_eq!(index.get("anon-1"), Some(7));
        assert_eq!(index.len, 1);
    }

    #[test]
    fn an_entry_fills_a_quarter_of_a_cache_line() {
        assert_eq!(std::mem::size_of::<Entry>(), 16);
    }

    /// Ids whose home in a 16-entry table is `home`.
    fn ids_at(index: &IdIndex, home: u64, count: usize) -> Vec<String> {
        (0..100_000)
            .map(|n| format!("id-{n}"))
            .filter(|id| index.key(id).low & 15 == home)
            .take(count)
            .collect()
    }

    #[test]
    fn removal_keeps_colliding_entries_reachable() {
        // Keys that share a home position in a 16-entry table form one
        // probe run; removing from its middle must not cut the run.
        let mut index = IdIndex::default();
        let ids = ids_at(&index, 3, 6);
        for (slot, id) in ids.iter().enumerate() {
            index.insert(id, slot as u32);
        }
        index.remove(&ids[1]);
        for (slot, id) in ids.iter().enumerate() {
            let expected = (slot != 1).then_some(slot as u32);
            assert_eq!(index.get(id), expected, "{id}");
        }
    }

    #[test]
    fn runs_wrap_around_the_end_of_the_table() {
        // Homes 14, 14, 15, 0 and 1 in a 16-entry table: the run crosses
        // the end; removing each in turn leaves the others reachable.
        let mut index = IdIndex::default();
        let mut ids = ids_at(&index, 14, 2);
        for home in [15, 0, 1] {
            ids.extend(ids_at(&index, home, 1));
        }
        for (slot, id) in ids.iter().enumerate() {
            index.insert(id, slot as u32);
        }
        assert_eq!(
            index.entries.len(),
            16,
            "the test needs the table unchanged"
        );
        for removed in 0..ids.len() {
            let mut copy = IdIndex {
                entries: index.entries.clone(),
                len: index.len,
                seed: index.seed,
            };
            copy.remove(&ids[removed]);
            for (slot, id) in ids.iter().enumerate() {
                let expected = (slot != removed).then_some(slot as u32);
                assert_eq!(copy.get(id), expected, "removed {removed}, {id}");
            }
        }
    }

    #[test]
    fn the_seed_differs_between_indexes_but_not_the_answers() {
        let (mut first, mut second) = (IdIndex::default(), IdIndex::default());
        assert_ne!(first.key("u1"), second.key("u1"));
        first.insert("u1", 5);
        second.insert("u1", 5);
        assert_eq!(first.get("u1"), second.get("u1"));
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u16, u32),
        Remove(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..400u16, 0..1_000u32).prop_map(|(id, slot)| Op::Insert(id, slot)),
            (0..400u16).prop_map(Op::Remove),
        ]
    }

    proptest! {
        /// The index answers like a map from id to slot, whatever the order
        /// of inserts, updates and removals (growth and backward shifts
        /// included).
        #[test]
        fn behaves_like_a_map(ops in proptest::collection::vec(op(), 0..2_000)) {
            let mut index = IdIndex::default();
            let mut model: HashMap<String, u32> = HashMap::new();
            for op in ops {
                match op {
                    Op::Insert(id, slot) => {
                        index.insert(&format!("c{id}"), slot);
                        model.insert(format!("c{id}"), slot);
                    }
                    Op::Remove(id) => {
                        index.remove(&format!("c{id}"));
                        model.remove(&format!("c{id}"));
                    }
                }
                prop_assert_eq!(index.len, model.len());
            }
            for id in 0..400u16 {
                let id = format!("c{id}");
                prop_assert_eq!(index.get(&id), model.get(&id).copied());
            }
        }
    }
}
