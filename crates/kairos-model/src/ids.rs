//! Stable hashing. Every id and every "random" assignment in kairos (action ids,
//! holdout membership, A/B variants, partitions) is a hash of its inputs, so the
//! same input always gives the same output on every machine and every run.
//! xxh3 is specified and portable, unlike `std`'s `DefaultHasher`.

use compact_str::CompactString;
use xxhash_rust::xxh3::{xxh3_64_with_seed, Xxh3};

/// 64-bit stable hash of `parts`, each followed by a unit separator so that
/// `("ab", "c")` and `("a", "bc")` differ. Streams the parts: no allocation.
pub fn stable_hash(seed: u64, parts: &[&[u8]]) -> u64 {
    // Short inputs (action ids, buckets) are joined on the stack and hashed
    // in one call: the streaming state is ~600 bytes to set up and copy.
    // Both give the same hash for the same bytes.
    const SHORT: usize = 192;
    let length: usize = parts.iter().map(|part| part.len() + 1).sum();
    if length <= SHORT {
        let mut joined = [0u8; SHORT];
        let mut end = 0;
        for part in parts {
            joined[end..end + part.len()].copy_from_slice(part);
            joined[end + part.len()] = 0x1f;
            end += part.len() + 1;
        }
        return xxh3_64_with_seed(&joined[..end], seed);
    }
    let mut hasher = Xxh3::with_seed(seed);
    for part in parts {
        hasher.update(part);
        hasher.update(&[0x1f]);
    }
    hasher.digest()
}

/// Hash of a single string (message ids, customer keys).
pub fn hash_str(text: &str) -> u64 {
    xxh3_64_with_seed(text.as_bytes(), 0)
}

/// A value in `0..10_000` (basis points) derived from `parts`: used for holdout,
/// grey-release and variant buckets, where "5 %" means bucket < 500.
pub fn basis_points(seed: u64, parts: &[&[u8]]) -> u32 {
    (stable_hash(seed, parts) % 10_000) as u32
}

/// An action id: `act_` and `hash` as 16 lower-case hex digits, the same
/// text as `format!("act_{hash:016x}")` without the formatting machinery
/// (one id per decision, and a backtest makes millions), stored inline.
pub fn action_id(hash: u64) -> CompactString {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = *b"act_0000000000000000";
    for (index, digit) in text[4..].iter_mut().enumerate() {
        *digit = DIGITS[(hash >> (60 - 4 * index)) as usize & 15];
    }
    CompactString::from_utf8(text).expect("ASCII digits")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_keep_parts_apart() {
        assert_ne!(
            stable_hash(0, &[b"ab", b"c"]),
            stable_hash(0, &[b"a", b"bc"])
        );
    }

    #[test]
    fn hashes_are_stable_across_builds() {
        // Pinned: changing the hash would re-bucket every customer's holdout and
        // variant and change every action id in flight.
        assert_eq!(hash_str("u123"), xxh3_64_with_seed(b"u123", 0));
        assert!(basis_points(7, &[b"u123"]) < 10_000);
    }

    #[test]
    fn short_and_long_inputs_hash_like_the_stream() {
        let long = [b'x'; 300];
        for parts in [
            &[&b"retail"[..], b"abandoned_cart", b"u1"][..],
            &[&long[..], b"u1"],
        ] {
            let mut stream = Xxh3::with_seed(9);
            for part in parts {
                stream.update(part);
                stream.update(&[0x1f]);
            }
            assert_eq!(stable_hash(9, parts), stream.digest());
        }
    }

    #[test]
    fn action_ids_read_like_formatted_hex() {
        for hash in [0, 1, 0xabc, 0x9f2c_41d0_7be3_a5e1, u64::MAX] {
            assert_eq!(action_id(hash), format!("act_{hash:016x}"));
        }
    }
}
