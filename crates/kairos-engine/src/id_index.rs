//! Every known id (userId or anonymousId) → the customer slot it resolves to.
//!
//! Keyed by a 128-bit hash of the id rather than the id itself: a lookup is
//! one probe with no string to fetch and compare (the id's bytes would be a
//! second cache miss on every event), and an id costs a 24-byte entry
//! instead of an entry plus a key allocation. 128 bits because a collision
//! would merge two people: among a billion ids the chance that any two share
//! a hash is about n² / 2¹²⁹ ≈ 10⁻²¹ (64 bits would give 3 %).

use hashbrown::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use xxhash_rust::xxh3::xxh3_128;

/// The id index.
#[derive(Debug, Default)]
pub struct IdIndex {
    slots: HashMap<Key, u32, BuildHasherDefault<AlreadyHashed>>,
}

impl IdIndex {
    /// The slot `id` resolves to.
    pub fn get(&self, id: &str) -> Option<u32> {
        self.slots.get(&key(id)).copied()
    }

    /// Whether `id` is known.
    pub fn contains(&self, id: &str) -> bool {
        self.slots.contains_key(&key(id))
    }

    /// Points `id` at `slot`.
    pub fn insert(&mut self, id: &str, slot: u32) {
        self.slots.insert(key(id), slot);
    }

    /// Forgets `id`.
    pub fn remove(&mut self, id: &str) {
        self.slots.remove(&key(id));
    }
}

/// An id's 128-bit hash, as two halves: 8-byte alignment keeps an index
/// entry at 24 bytes (a `u128` would pad it to 32).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key(u64, u64);

fn key(id: &str) -> Key {
    let hash = xxh3_128(id.as_bytes());
    Key(hash as u64, (hash >> 64) as u64)
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Either half of a well-mixed hash is a well-mixed hash.
        state.write_u64(self.0);
    }
}

/// The keys are xxh3 hashes already: hashing them again buys nothing.
#[derive(Default)]
struct AlreadyHashed(u64);

impl Hasher for AlreadyHashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, _bytes: &[u8]) {
        unreachable!("only `Key`s are hashed here, with write_u64")
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_resolve_until_removed() {
        let mut index = IdIndex::default();
        index.insert("u1", 7);
        index.insert("anon-1", 7);
        assert_eq!(index.get("u1"), Some(7));
        assert!(index.contains("anon-1"));
        index.remove("u1");
        assert_eq!(index.get("u1"), None);
        assert_eq!(index.get("anon-1"), Some(7));
    }
}
