//! JSON written by hand for the two documents written once per decision,
//! the action envelope and its payload: byte for byte what serde_json
//! writes for them (the tests in `action` and `payload` compare the two),
//! at a fraction of the cost. serde_json checks every byte of every string
//! against an escape table one at a time; here eight bytes are checked at
//! once, and runs that need no escaping are copied whole.

use crate::time::Timestamp;

/// A JSON string holding `text`.
pub(crate) fn write_str(out: &mut Vec<u8>, text: &str) {
    write_str_parts(out, &[text]);
}

/// A JSON string holding `parts` one after the other (escaping is per
/// character, so escaping each part is escaping the whole).
pub(crate) fn write_str_parts(out: &mut Vec<u8>, parts: &[&str]) {
    out.reserve(parts.iter().map(|part| part.len()).sum::<usize>() + 2);
    out.push(b'"');
    for part in parts {
        if needs_escaping(part.as_bytes()) {
            write_escaped(out, part);
        } else {
            out.extend_from_slice(part.as_bytes());
        }
    }
    out.push(b'"');
}

/// `,"name":` before a field after the first (`name` needs no escaping).
pub(crate) fn write_key(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

/// An instant as its RFC 3339 string.
pub(crate) fn write_time(out: &mut Vec<u8>, at: Timestamp) {
    match at.rfc3339_bytes() {
        Some(text) => {
            out.push(b'"');
            out.extend_from_slice(&text);
            out.push(b'"');
        }
        None => at.with_rfc3339(|text| write_str(out, text)),
    }
}

/// A number as serde_json writes an `f64` (`null` when not finite).
pub(crate) fn write_f64(out: &mut Vec<u8>, number: f64) {
    serde_json::to_writer(&mut *out, &number).expect("a number always serialises into a Vec");
}

/// `text` escaped as serde_json escapes it: `"` and `\` with a backslash,
/// control characters as `\b`, `\f`, `\n`, `\r`, `\t` or `\u00xx`, every
/// other character as its UTF-8 bytes.
fn write_escaped(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    let (mut copied, mut at) = (0, 0);
    while at < bytes.len() {
        if let Some(word) = bytes.get(at..at + 8) {
            let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
            if !has_byte_to_escape(word) {
                at += 8;
                continue;
            }
        }
        let byte = bytes[at];
        let unicode;
        let escaped: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x0c => b"\\f",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                unicode = [
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(byte >> 4)],
                    HEX[usize::from(byte & 0xf)],
                ];
                &unicode
            }
            _ => {
                at += 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[copied..at]);
        out.extend_from_slice(escaped);
        at += 1;
        copied = at;
    }
    out.extend_from_slice(&bytes[copied..]);
}

/// Whether any byte of `bytes` needs escaping, eight at a time (the last
/// few padded with spaces, which need none).
fn needs_escaping(bytes: &[u8]) -> bool {
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        if has_byte_to_escape(u64::from_le_bytes(word.try_into().expect("eight bytes"))) {
            return true;
        }
    }
    let mut last = u64::from_le_bytes([b' '; 8]);
    for (index, byte) in words.remainder().iter().enumerate() {
        let shift = 8 * index;
        last = last & !(0xff << shift) | u64::from(*byte) << shift;
    }
    has_byte_to_escape(last)
}

/// Whether any of the eight bytes of `word` is below 0x20, `"` or `\`
/// (the classic "has a zero byte" and "has a byte less than n" tests,
/// which are exact about whether, though not about where).
fn has_byte_to_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word;
    let quote = has_zero(word ^ (ONES * u64::from(b'"')));
    let backslash = has_zero(word ^ (ONES * u64::from(b'\\')));
    (below_space | quote | backslash) & HIGHS != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn written(text: &str) -> String {
        let mut out = Vec::new();
        write_str(&mut out, text);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escapes_as_serde_json_does_at_every_position() {
        // Each byte that needs escaping (and a few that do not) at every
        // position of a run longer than a word.
        for special in (0u8..0x20).chain([b'"', b'\\', b' ', b'!', 0x7f]) {
            for position in 0..20 {
                let mut text = vec![b'a'; 20];
                text[position] = special;
                let text = String::from_utf8(text).unwrap();
                assert_eq!(written(&text), serde_json::to_string(&text).unwrap());
            }
        }
    }

    proptest! {
        #[test]
        fn writes_strings_as_serde_json_does(text in any::<String>(), ascii in "[ -~\\t\\n\"\\\\]{0,40}") {
            prop_assert_eq!(written(&text), serde_json::to_string(&text).unwrap());
            prop_assert_eq!(written(&ascii), serde_json::to_string(&ascii).unwrap());
        }
    }
}
