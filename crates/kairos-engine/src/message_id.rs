//! Message ids as state keeps them (the causing events of a pending ladder or
//! an open window).
//!
//! Segment's SDKs send a random UUID as `messageId`: 36 characters, which as
//! text take a heap block of their own (48 bytes in the allocator's classes)
//! for every id a pending ladder remembers. A canonical UUID, lowercase and
//! hyphenated as the SDKs write it, is 16 bytes of information, so it is kept
//! as those 16 bytes, inside the 24 bytes the text's handle would take anyway,
//! and written back character for character when a decision names it. Every
//! other id is kept as text (inline up to 24 bytes).

use compact_str::CompactString;
use std::fmt;

/// A message id, as compact as its form allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageId {
    /// A lowercase hyphenated UUID (`8-4-4-4-12` hex digits), as its bytes.
    Uuid([u8; 16]),
    /// Any other id.
    Text(CompactString),
}

/// Where the hyphens of a canonical UUID are.
const HYPHENS: [usize; 4] = [8, 13, 18, 23];

impl MessageId {
    /// Keeps `id`, as 16 bytes when it is a canonical lowercase UUID.
    pub fn new(id: &str) -> MessageId {
        match parse_uuid(id.as_bytes()) {
            Some(bytes) => MessageId::Uuid(bytes),
            None => MessageId::Text(id.into()),
        }
    }

    /// Keeps the id an event carries: as [`MessageId::new`], but a short
    /// text id is copied as it is held (24 bytes) rather than rebuilt
    /// from its characters.
    pub fn from_event(id: &CompactString) -> MessageId {
        match parse_uuid(id.as_bytes()) {
            Some(bytes) => MessageId::Uuid(bytes),
            None => MessageId::Text(id.clone()),
        }
    }

    /// Makes this the id an event carries, in place: a busy customer
    /// restarts an inactivity ladder, and replaces its reason, on every
    /// event, so the id is not first kept on its own and then copied. A
    /// long text id reuses this one's buffer, as [`MessageId::assign`].
    pub fn assign_from_event(&mut self, id: &CompactString) {
        // The usual case first: an id held inline (24 bytes at most, so no
        // UUID) over one held inline is a copy, with nothing to parse or free.
        if let MessageId::Text(mine) = self {
            if !mine.is_heap_allocated() && !id.is_heap_allocated() {
                *mine = id.clone();
                return;
            }
        }
        match (parse_uuid(id.as_bytes()), &mut *self) {
            (Some(bytes), _) => *self = MessageId::Uuid(bytes),
            (None, MessageId::Text(mine)) if id.is_heap_allocated() => {
                mine.clear();
                mine.push_str(id);
            }
            (None, _) => *self = MessageId::Text(id.clone()),
        }
    }

    /// Makes this `other`, reusing a long text id's buffer (a busy customer
    /// restarts an inactivity ladder, and replaces its reason, on every
    /// event); a UUID or a short id is simply copied.
    pub fn assign(&mut self, other: &MessageId) {
        match (&mut *self, other) {
            (MessageId::Text(mine), MessageId::Text(theirs)) if theirs.is_heap_allocated() => {
                mine.clear();
                mine.push_str(theirs);
            }
            _ => *self = other.clone(),
        }
    }

    /// The id as it was received.
    pub fn to_text(&self) -> CompactString {
        match self {
            MessageId::Text(text) => text.clone(),
            MessageId::Uuid(_) => compact_str::format_compact!("{self}"),
        }
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageId::Text(text) => f.write_str(text),
            MessageId::Uuid(bytes) => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let mut text = [b'-'; 36];
                let digits = (0..36).filter(|position| !HYPHENS.contains(position));
                for (index, position) in digits.enumerate() {
                    let nibble = (bytes[index / 2] >> (4 * (1 - index % 2))) & 0xf;
                    text[position] = HEX[usize::from(nibble)];
                }
                f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
            }
        }
    }
}

/// The 16 bytes of a canonical UUID, or `None` for anything else (uppercase
/// digits included: they would not be written back the same).
fn parse_uuid(text: &[u8]) -> Option<[u8; 16]> {
    if text.len() != 36 || HYPHENS.iter().any(|&position| text[position] != b'-') {
        return None;
    }
    let nibble = |digit: u8| match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    };
    // The five groups of hex digits, two digits to a byte.
    let mut bytes = [0u8; 16];
    let mut byte = 0;
    for group in [0..8, 9..13, 14..18, 19..23, 24..36] {
        for pair in text[group].chunks_exact(2) {
            bytes[byte] = nibble(pair[0])? << 4 | nibble(pair[1])?;
            byte += 1;
        }
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_canonical_uuid_is_kept_as_bytes_and_written_back_the_same() {
        let text = "9f0c4a52-5b8e-4c1e-9d35-0b7c2f3e1a64";
        let id = MessageId::new(text);
        assert!(matches!(id, MessageId::Uuid(_)));
        assert_eq!(id.to_text(), text);
        assert_eq!(id, MessageId::new(text));
        assert_ne!(id, MessageId::new("9f0c4a52-5b8e-4c1e-9d35-0b7c2f3e1a65"));
    }

    #[test]
    fn other_ids_stay_text() {
        for text in [
            "",
            "m2a-12345",
            "9F0C4A52-5B8E-4C1E-9D35-0B7C2F3E1A64", // uppercase
            "9f0c4a52-5b8e-4c1e-9d35-0b7c2f3e1a6",  // short
            "9f0c4a525b8e4c1e9d350b7c2f3e1a64aaaa", // no hyphens
            "9f0c4a52-5b8e-4c1e-9d35-0b7c2f3e1a6g", // not hex
            "ajs-next-9f0c4a52-5b8e-4c1e-9d35-0b7c", // analytics.js prefix
            "9f0c4a52-5b8e-4c1e-9d35-0b7c2f3e1a6é",
        ] {
            let id = MessageId::new(text);
            assert_eq!(id, MessageId::Text(text.into()), "{text}");
            assert_eq!(id.to_text(), text);
        }
    }

    #[test]
    fn an_event_id_is_kept_and_assigned_as_new_keeps_it() {
        let long = "ajs-next-9f0c4a52-5b8e-4c1e-9d35-0b7c2f3e1a64";
        let texts = [
            "m2a-12345",
            "9f0c4a52-5b8e-4c1e-9d35-0b7c2f3e1a64",
            long,
            "",
        ];
        for text in texts {
            let id = CompactString::from(text);
            assert_eq!(MessageId::from_event(&id), MessageId::new(text), "{text}");
            for before in texts {
                let mut kept = MessageId::new(before);
                kept.assign_from_event(&id);
                assert_eq!(kept, MessageId::new(text), "{before} then {text}");
            }
        }
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn takes_no_more_room_than_text() {
        assert_eq!(std::mem::size_of::<MessageId>(), 24);
    }

    proptest! {
        /// Whatever the form, the id written back is the id received.
        #[test]
        fn round_trips(bytes in any::<[u8; 16]>(), text in "[0-9a-fA-F-]{30,40}|\\PC{0,40}") {
            let uuid = MessageId::Uuid(bytes).to_text();
            prop_assert_eq!(MessageId::new(&uuid), MessageId::Uuid(bytes));
            prop_assert_eq!(MessageId::new(&text).to_text(), text.as_str());
        }

        /// Almost-UUIDs (one character changed) are written back as sent.
        #[test]
        fn near_misses_round_trip(bytes in any::<[u8; 16]>(), position in 0usize..36, replacement in any::<char>()) {
            let mut text: Vec<char> = MessageId::Uuid(bytes).to_text().chars().collect();
            text[position] = replacement;
            let text: String = text.into_iter().collect();
            prop_assert_eq!(MessageId::new(&text).to_text(), text.as_str());
        }
    }
}
