//! JSON written by hand for the two documents written once per decision,
//! the action envelope and its payload: byte for byte what serde_json
//! writes for them (the tests in `action` and `payload` compare the two),
//! at a fraction of the cost. serde_json checks every byte of every string
//! against an escape table one at a time; here eight bytes are checked at
//! once, and runs that need no escaping are copied whole.

use crate::time::Timestamp;

/// A JSON string holding `text`. Inlined, the usual case (nothing to
/// escape) is a check and a copy: an action writes some twenty strings,
/// and as calls of the general [`write_str_parts`] they were a third of
/// the writing thread's work on the cart job.
#[inline(always)]
pub(crate) fn write_str(out: &mut Vec<u8>, text: &str) {
    if needs_escaping(text.as_bytes()) {
        return write_str_parts(out, &[text]);
    }
    out.reserve(text.len() + 2);
    out.push(b'"');
    out.extend_from_slice(text.as_bytes());
    out.push(b'"');
}

/// A JSON string holding `parts` one after the other (escaping is per
/// character, so escaping each part is escaping the whole). Inlined: the
/// parts are mostly a constant prefix and a name, and the prefix's check
/// then folds away.
#[inline(always)]
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
/// Inlined: with the name a constant, its three pieces are copied as
/// constants, not by three calls of `memcpy` (an action writes sixteen).
#[inline(always)]
pub(crate) fn write_key(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

/// Writes instants as RFC 3339 strings, remembering the texts of the last
/// two: an action writes its decision time twice (the envelope's `time`
/// and `decided_at`), and its firing time is mostly the same instant, so
/// of its four times two are formatted rather than four.
#[derive(Default)]
pub(crate) struct TimeTexts {
    /// Instants formatted, with their texts; the latest first.
    recent: [Option<(Timestamp, [u8; 24])>; 2],
}

impl TimeTexts {
    /// Appends `at` as a JSON string.
    pub(crate) fn write(&mut self, out: &mut Vec<u8>, at: Timestamp) {
        let known = self.recent.iter().flatten().find(|(time, _)| *time == at);
        let text = match known {
            Some((_, text)) => *text,
            None => match at.rfc3339_bytes() {
                Some(text) => {
                    self.recent = [Some((at, text)), self.recent[0]];
                    text
                }
                None => return at.with_rfc3339(|text| write_str(out, text)),
            },
        };
        // Quoted in place and copied whole: one copy, not three.
        let mut quoted = [b'"'; 26];
        quoted[1..25].copy_from_slice(&text);
        out.extend_from_slice(&quoted);
    }
}

/// A number as serde_json writes an `f64` (`null` when not finite).
pub(crate) fn write_f64(out: &mut Vec<u8>, number: f64) {
    if !write_cents(out, number) {
        serde_json::to_writer(&mut *out, &number).expect("a number always serialises into a Vec");
    }
}

/// Writes `number` if it is the double nearest some whole number of
/// hundredths, not zero, below 10¹³ in size (prices and cart values, a
/// fifth of the writing thread's work on the cart job when formatted in
/// general), and says whether it did. serde_json writes the shortest
/// decimal that reads back as the same double, in plain notation in this
/// range, with at least one digit after the point. No two decimals of 15
/// significant digits or fewer read back as the same double, so for such a
/// number that decimal is the hundredths themselves, trailing zeros
/// dropped: `12.5`, `0.05`, `25.0`.
fn write_cents(out: &mut Vec<u8>, number: f64) -> bool {
    // Rounded half away from zero by the conversion, which truncates
    // (`f64::round` is a library call here). Whatever the rounding, the
    // check that follows is what makes it the number's hundredths: the
    // division is exact to the nearest double, as reading the decimal is.
    let scaled = number * 100.0;
    if number == 0.0 || scaled.is_nan() || scaled.abs() >= 1e15 {
        return false;
    }
    let cents = (scaled + 0.5_f64.copysign(scaled)) as i64;
    if cents as f64 / 100.0 != number {
        return false;
    }
    if cents < 0 {
        out.push(b'-');
    }
    let (whole, hundredths) = (cents.unsigned_abs() / 100, cents.unsigned_abs() % 100);
    out.extend_from_slice(itoa::Buffer::new().format(whole).as_bytes());
    out.push(b'.');
    out.push(b'0' + (hundredths / 10) as u8);
    if hundredths % 10 != 0 {
        out.push(b'0' + (hundredths % 10) as u8);
    }
    true
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

/// Whether any byte of `bytes` needs escaping, eight at a time. Words may
/// overlap (the answer is whether, not where): the last few bytes of a
/// long text are checked as its last eight, and a short text as its first
/// and last four, or (under four) its first, middle and last bytes padded
/// with spaces, which need none. (Assembling the last few bytes one at a
/// time was an eighth of the writing thread's work on the cart job.)
#[inline(always)]
fn needs_escaping(bytes: &[u8]) -> bool {
    let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("eight bytes"));
    let half = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("four bytes"));
    let len = bytes.len();
    match len {
        0 => false,
        1..=3 => {
            let (first, middle, last) = (bytes[0], bytes[len / 2], bytes[len - 1]);
            has_byte_to_escape(u64::from_le_bytes([
                first, middle, last, b' ', b' ', b' ', b' ', b' ',
            ]))
        }
        4..=7 => has_byte_to_escape(u64::from(half(0)) | u64::from(half(len - 4)) << 32),
        _ => {
            (0..len / 8).any(|index| has_byte_to_escape(word(8 * index)))
                || (!len.is_multiple_of(8) && has_byte_to_escape(word(len - 8)))
        }
    }
}

/// Whether any of the eight bytes of `word` is below 0x20, `"` or `\`
/// (the classic "has a zero byte" and "has a byte less than n" tests,
/// which are exact about whether, though not about where). Flipping bit 1
/// of every byte maps `"` (0x22) to 0x20 and the bytes below 0x20 onto
/// themselves (in another order), and nothing else below 0x21: one "less
/// than 0x21" test finds both, with a quarter fewer operations per word.
fn has_byte_to_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_less_than = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x;
    let flipped = word ^ (ONES * 0x02);
    let control_or_quote = has_less_than(flipped, 0x21);
    let backslash = has_less_than(word ^ (ONES * u64::from(b'\\')), 1);
    (control_or_quote | backslash) & HIGHS != 0
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
    fn escapes_short_texts_as_serde_json_does_at_every_position() {
        // Short texts are checked in overlapping pieces: every length up
        // to two words and a bit, every position.
        for special in [0u8, 0x1f, b'"', b'\\', b' ', 0x7f] {
            for len in 1..20 {
                for position in 0..len {
                    let mut text = vec![b'a'; len];
                    text[position] = special;
                    let text = String::from_utf8(text).unwrap();
                    assert_eq!(written(&text), serde_json::to_string(&text).unwrap());
                }
            }
        }
    }

    #[test]
    fn every_byte_is_found_to_need_escaping_exactly_when_it_does() {
        for byte in 0..=255u8 {
            let expected = byte < 0x20 || byte == b'"' || byte == b'\\';
            for position in 0..8 {
                let mut word = [b'a'; 8];
                word[position] = byte;
                assert_eq!(
                    has_byte_to_escape(u64::from_le_bytes(word)),
                    expected,
                    "byte {byte:#04x} at {position}"
                );
            }
        }
    }

    #[test]
    fn remembered_times_are_written_as_formatted() {
        let mut times = TimeTexts::default();
        let (mut remembered, mut fresh) = (Vec::new(), Vec::new());
        for at in [5, 9, 5, 9, 7, 5, i64::MAX, 7].map(Timestamp) {
            times.write(&mut remembered, at);
            TimeTexts::default().write(&mut fresh, at);
        }
        assert_eq!(remembered, fresh);
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

    fn number_written(number: f64) -> String {
        let mut out = Vec::new();
        write_f64(&mut out, number);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn writes_hundredths_as_serde_json_does() {
        for number in [
            0.01,
            0.05,
            0.1,
            0.5,
            1.0,
            9.99,
            12.5,
            25.0,
            29.99,
            100.0,
            1234.56,
            -0.01,
            -12.5,
            0.3,
            1e12,
            9999999999999.99,
            1e13,
            0.0,
            -0.0,
            0.001,
            1e-7,
            1e16,
            0.1 + 0.2,
        ] {
            assert_eq!(
                number_written(number),
                serde_json::to_string(&number).unwrap()
            );
        }
    }

    proptest! {
        #[test]
        fn writes_numbers_as_serde_json_does(
            cents in -1_000_000_000_000_000i64..1_000_000_000_000_000,
            small in -100_000i64..100_000,
            any in any::<f64>(),
        ) {
            for number in [cents as f64 / 100.0, small as f64 / 100.0, small as f64 / 1000.0, any] {
                prop_assert_eq!(number_written(number), serde_json::to_string(&number).unwrap());
            }
        }

        #[test]
        fn writes_strings_as_serde_json_does(text in any::<String>(), ascii in "[ -~\\t\\n\"\\\\]{0,40}") {
            prop_assert_eq!(written(&text), serde_json::to_string(&text).unwrap());
            prop_assert_eq!(written(&ascii), serde_json::to_string(&ascii).unwrap());
        }
    }
}
