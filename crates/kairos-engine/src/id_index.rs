//! Every known id (userId or anonymousId) → the customer slot it resolves to.
//!
//! Keyed by a 64-bit hash of the id rather than the id itself: a lookup is
//! one probe with no string to fetch and compare (the id's bytes would be a
//! second cache miss on every event), and a million ids cost 16 bytes each
//! instead of a key allocation each. Two different ids share a hash with
//! probability about n² / 2⁶⁵ — for ten million ids, 3 in a million million.

use hashbrown::HashMap;
use kairos_model::ids::hash_str;
use std::hash::{BuildHasherDefault, Hasher};

/// The id index.
#[derive(Debug, Default)]
pub struct IdIndex {
    slots: HashMap<u64, u32, BuildHasherDefault<AlreadyHashed>>,
}

impl IdIndex {
    /// The slot `id` resolves to.
    pub fn get(&self, id: &str) -> Option<u32> {
        self.slots.get(&hash_str(id)).copied()
    }

    /// Whether `id` is known.
    pub fn contains(&self, id: &str) -> bool {
        self.slots.contains_key(&hash_str(id))
    }

    /// Points `id` at `slot`.
    pub fn insert(&mut self, id: &str, slot: u32) {
        self.slots.insert(hash_str(id), slot);
    }

    /// Forgets `id`.
    pub fn remove(&mut self, id: &str) {
        self.slots.remove(&hash_str(id));
    }
}

/// The keys are xxh3 hashes already: hashing them again buys nothing.
#[derive(Default)]
struct AlreadyHashed(u64);

impl Hasher for AlreadyHashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed here; fold anything else in anyway.
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
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
