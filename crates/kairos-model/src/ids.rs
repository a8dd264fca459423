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
            copy_short(&mut joined[end..end + part.len()], part);
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

/// Copies `from` into `to` (of the same length). Parts are mostly a few
/// bytes (names, keys, integers): up to 16 are copied as two overlapping
/// words or halves, not by a call of `memcpy` each (six per action id).
fn copy_short(to: &mut [u8], from: &[u8]) {
    let len = from.len();
    match len {
        8..=16 => {
            to[..8].copy_from_slice(&from[..8]);
            to[len - 8..].copy_from_slice(&from[len - 8..]);
        }
        4..=7 => {
            to[..4].copy_from_slice(&from[..4]);
            to[len - 4..].copy_from_slice(&from[len - 4..]);
        }
        _ => to.copy_from_slice(from),
    }
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
    let mut text = *b"act_0000000000000000";
    text[4..12].copy_from_slice(&hex_digits((hash >> 32) as u32));
    text[12..].copy_from_slice(&hex_digits(hash as u32));
    CompactString::from_utf8(text).expect("ASCII digits")
}

/// `value` as 8 lower-case hex digits, most significant first, computed
/// eight at a time in one word (a table lookup per digit was a third of
/// the cost of an action id).
fn hex_digits(value: u32) -> [u8; 8] {
    const ONES: u64 = 0x0101_0101_0101_0101;
    // Each nibble to a byte of its own, the most significant nibble in the
    // most significant byte: halves, then quarters, then nibbles.
    let spread = u64::from(value);
    let spread = (spread | spread << 16) & 0x0000_ffff_0000_ffff;
    let spread = (spread | spread << 8) & 0x00ff_00ff_00ff_00ff;
    let spread = (spread | spread << 4) & 0x0f0f_0f0f_0f0f_0f0f;
    // 1 in the bytes holding 10 or more (adding 6 carries them into the
    // high nibble; no byte exceeds 21, so nothing carries between bytes).
    let letters = ((spread + ONES * 6) >> 4) & ONES;
    // '0' + digit, and letters on from 'a' ('a' - '0' - 10 = 39).
    let ascii = spread + ONES * u64::from(b'0') + letters * 39;
    ascii.to_be_bytes()
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
    fn parts_of_every_short_length_are_joined_whole() {
        let bytes: Vec<u8> = (1..=40).collect();
        for len in 0..=bytes.len() {
            let part = &bytes[..len];
            let parts = [&b"ab"[..], part, b"c"];
            let mut joined = Vec::new();
            for part in parts {
                joined.extend_from_slice(part);
                joined.push(0x1f);
            }
            assert_eq!(stable_hash(3, &parts), xxh3_64_with_seed(&joined, 3));
        }
    }

    #[test]
    fn action_ids_read_like_formatted_hex() {
        for hash in [0, 1, 0xabc, 0x9f2c_41d0_7be3_a5e1, u64::MAX] {
            assert_eq!(action_id(hash), format!("act_{hash:016x}"));
        }
        // Every digit at every position.
        for digit in 0..16u64 {
            for position in 0..16 {
                let others = 0x0123_4567_89ab_cdef & !(0xf << (4 * position));
                let hash = (digit << (4 * position)) | others;
                assert_eq!(action_id(hash), format!("act_{hash:016x}"));
            }
        }
    }
}
