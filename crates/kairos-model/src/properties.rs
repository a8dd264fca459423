//! [`Properties`]: an event's properties or traits.
//!
//! An event carries a handful of properties and the engine looks up a few of
//! them by name, several times per event. A JSON map (a B-tree) spends
//! several allocations per event on that, scatters the entries over as many
//! cache lines and compares names byte by byte at every step; here they are
//! one vector with names stored inline, each with a 64-bit fingerprint
//! (length and first seven bytes) so that a lookup compares integers, and
//! reads a name only when it is longer than that and almost certainly the
//! one sought. Nothing is sorted unless the list is long. Values are
//! [`PropertyValue`]s: text of up to 24 bytes (nearly every id, name and
//! category an event carries) is held inline, so that most events free one
//! block (the list) when they are dropped instead of one per text value.

use compact_str::CompactString;
use serde::de::value::{I128Deserializer, MapAccessDeserializer, U128Deserializer};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};
use std::fmt;

/// A property's JSON value, as read into [`serde_json::Value`] (the same
/// numbers, the same text), but with text held in a [`CompactString`]
/// (inline up to 24 bytes), and arrays and objects (an order's products)
/// boxed, their members held the same way. The variants are named as
/// `Value`'s. The variant is a byte of its own (`repr(u8)`): left to the
/// compiler it hides in the text's spare bits, and telling it cost several
/// instructions at every lookup and drop, for 8 bytes saved per property.
#[derive(Clone, Debug, Default, PartialEq)]
#[repr(u8)]
pub enum PropertyValue {
    /// `null`.
    #[default]
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as `serde_json` holds it.
    Number(Number),
    /// Text.
    String(CompactString),
    /// An array.
    Array(Box<[PropertyValue]>),
    /// An object: its members, each name once (the last one sent wins).
    Object(Box<Properties>),
}

impl PropertyValue {
    /// The text, if it is text.
    #[inline]
    pub fn as_str(&self) -> Option<&str> {
        match self {
            PropertyValue::String(text) => Some(text),
            _ => None,
        }
    }

    /// The flag, if it is `true` or `false`.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            PropertyValue::Bool(flag) => Some(*flag),
            _ => None,
        }
    }

    /// Whether it is `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, PropertyValue::Null)
    }

    /// Whether it is text.
    pub fn is_string(&self) -> bool {
        matches!(self, PropertyValue::String(_))
    }

    /// Whether it is a number.
    pub fn is_number(&self) -> bool {
        matches!(self, PropertyValue::Number(_))
    }

    /// Whether it is `true` or `false`.
    pub fn is_boolean(&self) -> bool {
        matches!(self, PropertyValue::Bool(_))
    }

    /// The member `name` of an object.
    pub fn get(&self, name: &str) -> Option<&PropertyValue> {
        match self {
            PropertyValue::Object(members) => members.get(name),
            _ => None,
        }
    }

    /// As a number, accepting numeric text (see
    /// [`crate::event::value_number`], which reads a JSON value the same way).
    #[inline]
    pub fn as_number(&self) -> Option<f64> {
        match self {
            PropertyValue::Number(number) => number.as_f64(),
            PropertyValue::String(text) => crate::event::number_in_text(text),
            _ => None,
        }
    }

    /// As text, for keys, grouping and ids: a string as it is, a number or
    /// a flag as JSON writes it (`"product_id": 42` is item `"42"`).
    /// Borrowed unless it has to be rendered.
    #[inline]
    pub fn as_text(&self) -> Option<std::borrow::Cow<'_, str>> {
        match self {
            PropertyValue::String(text) => Some(std::borrow::Cow::Borrowed(text)),
            PropertyValue::Number(number) => Some(std::borrow::Cow::Owned(number.to_string())),
            PropertyValue::Bool(flag) => Some(std::borrow::Cow::Borrowed(if *flag {
                "true"
            } else {
                "false"
            })),
            _ => None,
        }
    }

    /// The same value as JSON.
    pub fn to_json(&self) -> Value {
        match self {
            PropertyValue::Null => Value::Null,
            PropertyValue::Bool(flag) => Value::Bool(*flag),
            PropertyValue::Number(number) => Value::Number(number.clone()),
            PropertyValue::String(text) => Value::String(text.to_string()),
            PropertyValue::Array(items) => items.iter().map(PropertyValue::to_json).collect(),
            PropertyValue::Object(members) => Value::Object(
                members
                    .iter()
                    .map(|(name, value)| (name.to_string(), value.to_json()))
                    .collect(),
            ),
        }
    }
}

impl From<Value> for PropertyValue {
    fn from(value: Value) -> PropertyValue {
        match value {
            Value::Null => PropertyValue::Null,
            Value::Bool(flag) => PropertyValue::Bool(flag),
            Value::Number(number) => PropertyValue::Number(number),
            Value::String(text) => PropertyValue::String(text.into()),
            Value::Array(items) => {
                PropertyValue::Array(items.into_iter().map(PropertyValue::from).collect())
            }
            Value::Object(members) => {
                PropertyValue::Object(Box::new(members.into_iter().collect()))
            }
        }
    }
}

/// Equal when the JSON values are (as `Value`s compare).
impl PartialEq<Value> for PropertyValue {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (PropertyValue::Null, Value::Null) => true,
            (PropertyValue::Bool(a), Value::Bool(b)) => a == b,
            (PropertyValue::Number(a), Value::Number(b)) => a == b,
            (PropertyValue::String(a), Value::String(b)) => a == b,
            (PropertyValue::Array(a), Value::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(a, b)| a == b)
            }
            (PropertyValue::Object(a), Value::Object(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .all(|(name, a)| b.get(name).is_some_and(|b| a == b))
            }
            _ => false,
        }
    }
}

/// As JSON (the same text as the `Value`'s).
impl fmt::Display for PropertyValue {
    fn fmt(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        fmt::Display::fmt(&self.to_json(), formatter)
    }
}

impl<'de> Deserialize<'de> for PropertyValue {
    /// Reads what [`Value`] reads, the same way (its own reader for the
    /// largest integers).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AnyValue;

        impl<'de> Visitor<'de> for AnyValue {
            type Value = PropertyValue;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("any valid JSON value")
            }

            fn visit_bool<E>(self, flag: bool) -> Result<PropertyValue, E> {
                Ok(PropertyValue::Bool(flag))
            }

            fn visit_i64<E>(self, number: i64) -> Result<PropertyValue, E> {
                Ok(PropertyValue::Number(number.into()))
            }

            fn visit_u64<E>(self, number: u64) -> Result<PropertyValue, E> {
                Ok(PropertyValue::Number(number.into()))
            }

            fn visit_i128<E: serde::de::Error>(self, number: i128) -> Result<PropertyValue, E> {
                Value::deserialize(I128Deserializer::new(number)).map(PropertyValue::from)
            }

            fn visit_u128<E: serde::de::Error>(self, number: u128) -> Result<PropertyValue, E> {
                Value::deserialize(U128Deserializer::new(number)).map(PropertyValue::from)
            }

            fn visit_f64<E>(self, number: f64) -> Result<PropertyValue, E> {
                Ok(Number::from_f64(number).map_or(PropertyValue::Null, PropertyValue::Number))
            }

            fn visit_str<E>(self, text: &str) -> Result<PropertyValue, E> {
                Ok(PropertyValue::String(text.into()))
            }

            fn visit_string<E>(self, text: String) -> Result<PropertyValue, E> {
                Ok(PropertyValue::String(text.into()))
            }

            fn visit_none<E>(self) -> Result<PropertyValue, E> {
                Ok(PropertyValue::Null)
            }

            fn visit_some<D: Deserializer<'de>>(
                self,
                deserializer: D,
            ) -> Result<PropertyValue, D::Error> {
                PropertyValue::deserialize(deserializer)
            }

            fn visit_unit<E>(self) -> Result<PropertyValue, E> {
                Ok(PropertyValue::Null)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<PropertyValue, A::Error> {
                let mut read = Vec::new();
                while let Some(item) = items.next_element()? {
                    read.push(item);
                }
                Ok(PropertyValue::Array(read.into_boxed_slice()))
            }

            fn visit_map<A: MapAccess<'de>>(self, members: A) -> Result<PropertyValue, A::Error> {
                Properties::deserialize(MapAccessDeserializer::new(members))
                    .map(|members| PropertyValue::Object(Box::new(members)))
            }
        }

        deserializer.deserialize_any(AnyValue)
    }
}

/// Name → JSON value, each name once (the last one sent wins, as with a
/// JSON map). Up to 32 entries are kept in the order sent; a longer list
/// (as sent, before repeated names are dropped) is sorted by name.
#[derive(Clone, Debug, Default)]
pub struct Properties(Vec<Entry>);

/// Equal when they hold the same names with equal values, in any order (as
/// JSON maps compare).
impl PartialEq for Properties {
    fn eq(&self, other: &Properties) -> bool {
        self.len() == other.len()
            && self
                .0
                .iter()
                .all(|entry| other.get(&entry.name) == Some(&entry.value))
    }
}

#[derive(Clone, Debug, PartialEq)]
struct Entry {
    fingerprint: u64,
    name: CompactString,
    value: PropertyValue,
}

/// Up to this many entries a lookup scans fingerprints; beyond, it
/// binary-searches names.
const SCANNED: usize = 32;

impl Entry {
    fn new(name: CompactString, value: PropertyValue) -> Entry {
        Entry {
            fingerprint: fingerprint(&name),
            name,
            value,
        }
    }
}

/// A name's first seven bytes (zero-padded) and its length (capped at 255)
/// in the top byte: different fingerprints mean different names, and for
/// names of up to seven bytes (`cart_id`, `price`) equal fingerprints mean
/// equal names.
#[inline]
fn fingerprint(name: &str) -> u64 {
    let bytes = name.as_bytes();
    let read =
        |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    // Whole-word reads (two overlapping ones for four to seven bytes).
    let head = match bytes.len() {
        0 => 0,
        length @ 1..=3 => bytes[..length]
            .iter()
            .rev()
            .fold(0u64, |word, byte| word << 8 | u64::from(*byte)),
        length @ 4..=7 => u64::from(read(0)) | u64::from(read(length - 4)) << ((length - 4) * 8),
        _ => u64::from(read(0)) | u64::from(read(4)) << 32,
    };
    head & 0x00ff_ffff_ffff_ffff | (bytes.len().min(255) as u64) << 56
}

/// Whether names of equal fingerprints are equal without comparing them.
fn fingerprint_is_whole(name: &str) -> bool {
    name.len() <= 7
}

impl Properties {
    /// The value named `name`. Small enough to inline where it is called,
    /// so that a name known there (`cart_id`, `price`) has its fingerprint
    /// worked out when compiling; the rare long list is searched out of
    /// line, so that its registers do not weigh on every lookup.
    #[inline]
    pub fn get(&self, name: &str) -> Option<&PropertyValue> {
        if self.0.len() > SCANNED {
            return self.get_sorted(name);
        }
        let wanted = fingerprint(name);
        let entry = if fingerprint_is_whole(name) {
            self.0.iter().find(|entry| entry.fingerprint == wanted)
        } else {
            self.0
                .iter()
                .find(|entry| entry.fingerprint == wanted && entry.name == name)
        }?;
        Some(&entry.value)
    }

    /// [`Self::get`] in a long list (sorted by name).
    #[inline(never)]
    fn get_sorted(&self, name: &str) -> Option<&PropertyValue> {
        let index = self
            .0
            .binary_search_by(|entry| entry.name.as_str().cmp(name))
            .ok()?;
        Some(&self.0[index].value)
    }

    /// Name and value: in the order sent for a short list, in name order
    /// for a long one.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &PropertyValue)> {
        self.0
            .iter()
            .map(|entry| (entry.name.as_str(), &entry.value))
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds `value` under `name` unless the name is taken.
    pub fn insert_if_absent(&mut self, name: &str, value: impl Into<PropertyValue>) {
        if self.get(name).is_some() {
            return;
        }
        self.0.push(Entry::new(name.into(), value.into()));
        if self.0.len() == SCANNED + 1 {
            // From here on lookups bisect: sort once.
            self.0.sort_by(|a, b| a.name.cmp(&b.name));
        } else if self.0.len() > SCANNED + 1 {
            let mut index = self.0.len() - 1;
            while index > 0 && self.0[index - 1].name > self.0[index].name {
                self.0.swap(index - 1, index);
                index -= 1;
            }
        }
    }

    fn from_entries(entries: Vec<(CompactString, PropertyValue)>) -> Properties {
        Properties::from_unsorted(
            entries
                .into_iter()
                .map(|(name, value)| Entry::new(name, value))
                .collect(),
        )
    }

    /// Keeps the last of each name. A short list stays in the order sent
    /// (lookups scan it); a long one is sorted by name (lookups bisect it).
    fn from_unsorted(mut entries: Vec<Entry>) -> Properties {
        if entries.len() <= SCANNED {
            let mut index = 0;
            while index < entries.len() {
                let entry = &entries[index];
                let repeated = entries[index + 1..].iter().any(|later| {
                    later.fingerprint == entry.fingerprint && later.name == entry.name
                });
                if repeated {
                    entries.remove(index);
                } else {
                    index += 1;
                }
            }
        } else {
            // Stable: among equal names the last sent stays last.
            entries.sort_by(|a, b| a.name.cmp(&b.name));
            let mut kept = 0;
            for read in 0..entries.len() {
                if kept > 0 && entries[kept - 1].name == entries[read].name {
                    entries.swap(kept - 1, read);
                } else {
                    entries.swap(kept, read);
                    kept += 1;
                }
            }
            entries.truncate(kept);
        }
        Properties(entries)
    }
}

impl IntoIterator for Properties {
    type Item = (CompactString, PropertyValue);
    type IntoIter = IntoIter;

    fn into_iter(self) -> IntoIter {
        IntoIter(self.0.into_iter())
    }
}

/// Name and value pairs, taken out of [`Properties`].
pub struct IntoIter(std::vec::IntoIter<Entry>);

impl Iterator for IntoIter {
    type Item = (CompactString, PropertyValue);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|entry| (entry.name, entry.value))
    }
}

impl<K: Into<CompactString>, V: Into<PropertyValue>> FromIterator<(K, V)> for Properties {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Properties::from_entries(
            iter.into_iter()
                .map(|(key, value)| (key.into(), value.into()))
                .collect(),
        )
    }
}

impl<'de> Deserialize<'de> for Properties {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;

        impl<'de> Visitor<'de> for Entries {
            type Value = Properties;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Properties, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(4).min(64));
                while let Some((name, value)) = map.next_entry::<CompactString, PropertyValue>()? {
                    entries.push(Entry::new(name, value));
                }
                Ok(Properties::from_unsorted(entries))
            }
        }

        deserializer.deserialize_map(Entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Properties {
        serde_json::from_str(json).unwrap()
    }

    fn value(json: impl Into<Value>) -> PropertyValue {
        json.into().into()
    }

    #[test]
    fn finds_by_name() {
        let properties = parse(r#"{"price": 12.5, "cart_id": "c1", "b": null}"#);
        assert_eq!(properties.get("cart_id"), Some(&value("c1")));
        assert_eq!(properties.get("price"), Some(&value(12.5)));
        assert_eq!(properties.get("b"), Some(&PropertyValue::Null));
        assert_eq!(properties.get("missing"), None);
        let names: Vec<&str> = properties.iter().map(|(name, _)| name).collect();
        assert_eq!(names, ["price", "cart_id", "b"]);
    }

    #[test]
    fn the_last_of_repeated_names_wins_as_in_a_json_map() {
        let json = r#"{"a": 1, "z": 0, "a": 2, "a": 3}"#;
        let properties = parse(json);
        assert_eq!(properties.len(), 2);
        assert_eq!(properties.get("a"), Some(&value(3)));
        let map: serde_json::Map<String, Value> = serde_json::from_str(json).unwrap();
        assert_eq!(
            properties.get("a").map(PropertyValue::to_json).as_ref(),
            map.get("a")
        );
    }

    #[test]
    fn equal_like_json_maps_whatever_the_order() {
        assert_eq!(parse(r#"{"a": 1, "b": 2}"#), parse(r#"{"b": 2, "a": 1}"#));
        assert_ne!(parse(r#"{"a": 1, "b": 2}"#), parse(r#"{"a": 1, "b": 3}"#));
        assert_ne!(parse(r#"{"a": 1}"#), parse(r#"{"a": 1, "b": 2}"#));
    }

    #[test]
    fn insert_if_absent_keeps_what_is_there() {
        let mut traits = parse(r#"{"timezone": "UTC"}"#);
        traits.insert_if_absent("timezone", Value::from("Asia/Tokyo"));
        traits.insert_if_absent("birthday", Value::from("03-14"));
        assert_eq!(traits.get("timezone"), Some(&value("UTC")));
        assert_eq!(traits.get("birthday"), Some(&value("03-14")));
        assert_eq!(traits.len(), 2);
    }

    #[test]
    fn long_lists_are_searched_too() {
        let many: Properties = (0..100)
            .map(|i| (format!("p{i:03}"), Value::from(i)))
            .collect();
        assert_eq!(many.get("p042"), Some(&value(42)));
        assert_eq!(many.get("p100"), None);
        let few: Properties = [("abcd", Value::from(1)), ("abce", Value::from(2))]
            .into_iter()
            .collect();
        assert_eq!(few.get("abce"), Some(&value(2)));
        assert_eq!(few.get("abcf"), None);
        // Same fingerprint (length and first seven bytes), different names.
        let long: Properties = [
            ("product_id", Value::from(1)),
            ("product_ix", Value::from(2)),
        ]
        .into_iter()
        .collect();
        assert_eq!(long.get("product_ix"), Some(&value(2)));
        assert_eq!(long.get("product_id"), Some(&value(1)));
        assert_eq!(long.get("product_iz"), None);
        // Seven bytes or fewer: the fingerprint is the name (and its length:
        // a zero byte pads, it does not match a sent NUL).
        let short: Properties = [("a\0", Value::from(1)), ("price", Value::from(2))]
            .into_iter()
            .collect();
        assert_eq!(short.get("a"), None);
        assert_eq!(short.get("a\0"), Some(&value(1)));
        assert_eq!(short.get("price"), Some(&value(2)));
        assert_eq!(short.get("pric"), None);
        assert_eq!(short.get("prices"), None);
    }

    #[test]
    fn long_lists_repeat_no_name_and_stay_searchable_as_they_grow() {
        let mut json = String::from("{");
        for i in 0..40 {
            json.push_str(&format!("\"k{:02}\": {i}, ", 39 - i));
        }
        json.push_str("\"k05\": \"last\"}");
        let mut long = parse(&json);
        assert_eq!(long.len(), 40);
        assert_eq!(long.get("k05"), Some(&value("last")));
        assert_eq!(long.get("k39"), Some(&value(0)));
        let mut short = parse(r#"{"a": 1}"#);
        for i in 0..40 {
            let name = format!("n{i:02}");
            short.insert_if_absent(&name, Value::from(i));
            long.insert_if_absent(&name, Value::from(i));
            for properties in [&short, &long] {
                for j in 0..=i {
                    assert_eq!(properties.get(&format!("n{j:02}")), Some(&value(j)));
                }
            }
        }
        assert_eq!(short.get("a"), Some(&value(1)));
        assert_eq!(long.get("k05"), Some(&value("last")));
    }

    #[test]
    fn anything_but_an_object_is_refused() {
        assert!(serde_json::from_str::<Properties>("[1, 2]").is_err());
        assert!(serde_json::from_str::<Properties>("\"text\"").is_err());
    }
}

#[cfg(test)]
mod fingerprints {
    use super::*;

    fn value(json: impl Into<Value>) -> PropertyValue {
        json.into().into()
    }
    use proptest::prelude::*;

    proptest! {
        /// A lookup skips comparing names of up to seven bytes: that is only
        /// sound if their fingerprints differ whenever the names do.
        #[test]
        fn short_names_with_equal_fingerprints_are_equal(
            a in "[a-c_\\x00é]{0,8}",
            b in "[a-c_\\x00é]{0,8}",
        ) {
            if fingerprint(&a) == fingerprint(&b) && fingerprint_is_whole(&a) {
                prop_assert_eq!(&a, &b);
            }
            if a != b {
                let list: Properties = [(a.as_str(), Value::from(1))].into_iter().collect();
                prop_assert_eq!(list.get(&b), None);
                prop_assert_eq!(list.get(&a), Some(&value(1)));
            }
        }
    }
}

#[cfg(test)]
mod values {
    use super::*;
    use proptest::prelude::*;

    /// A JSON value of any shape, nested a little.
    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "\\PC{0,40}".prop_map(Value::from),
        ];
        leaf.prop_recursive(2, 8, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
                prop::collection::btree_map("[a-z]{0,3}", inner, 0..3)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// A property reads as the `Value` the same JSON reads as, with
        /// either decoder, and writes the same text.
        #[test]
        fn reads_as_json_values_read(value in json()) {
            let text = value.to_string();
            let expected: Value = serde_json::from_str(&text).unwrap();
            let read: PropertyValue = serde_json::from_str(&text).unwrap();
            let fast: PropertyValue = sonic_rs::from_str(&text).unwrap();
            prop_assert_eq!(&read, &expected);
            prop_assert_eq!(&fast, &expected);
            prop_assert_eq!(read.to_json(), expected.clone());
            prop_assert_eq!(read.to_string(), expected.to_string());
            prop_assert_eq!(PropertyValue::from(expected.clone()), read.clone());
            prop_assert_eq!(read.as_str(), expected.as_str());
            prop_assert_eq!(read.as_bool(), expected.as_bool());
            prop_assert_eq!(read.is_null(), expected.is_null());
            prop_assert_eq!(read.is_number(), expected.is_number());
            prop_assert_eq!(
                read.as_number().map(f64::to_bits),
                crate::event::value_number(&expected).map(f64::to_bits)
            );
        }
    }

    #[test]
    fn short_text_is_inline_and_big_numbers_read_as_json_reads_them() {
        let read: PropertyValue = serde_json::from_str(r#""cat-15""#).unwrap();
        assert!(matches!(&read, PropertyValue::String(text) if !text.is_heap_allocated()));
        // Read, or refused, as a `Value` is by the same decoder.
        for text in [
            "18446744073709551616",
            "-9223372036854775809",
            "1e400",
            "-0",
            "12.50",
        ] {
            let expected = serde_json::from_str::<Value>(text).map_err(|error| error.to_string());
            let read =
                serde_json::from_str::<PropertyValue>(text).map_err(|error| error.to_string());
            assert_eq!(read.map(|value| value.to_json()), expected, "{text}");
            let expected = sonic_rs::from_str::<Value>(text).map_err(|error| error.to_string());
            let read = sonic_rs::from_str::<PropertyValue>(text).map_err(|error| error.to_string());
            assert_eq!(read.map(|value| value.to_json()), expected, "{text}");
        }
    }
}
