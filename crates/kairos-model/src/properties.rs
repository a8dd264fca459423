//! [`Properties`]: an event's properties or traits.
//!
//! An event carries a handful of properties and the engine looks up a few of
//! them by name, several times per event. A JSON map (a B-tree) spends
//! several allocations per event on that, scatters the entries over as many
//! cache lines and compares names byte by byte at every step; here they are
//! one sorted vector with names stored inline, each with a 32-bit
//! fingerprint (length and first bytes) so that a lookup compares integers
//! and reads a name only when it is almost certainly the one sought.

use compact_str::CompactString;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use std::fmt;

/// Name → JSON value, sorted by name, each name once (the last one sent
/// wins, as with a JSON map).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Properties(Vec<Entry>);

#[derive(Clone, Debug, PartialEq)]
struct Entry {
    fingerprint: u32,
    name: CompactString,
    value: Value,
}

/// Up to this many entries a lookup scans fingerprints; beyond, it
/// binary-searches names.
const SCANNED: usize = 32;

/// A name's length and first three bytes: different fingerprints mean
/// different names.
fn fingerprint(name: &str) -> u32 {
    let bytes = name.as_bytes();
    let byte = |i: usize| u32::from(bytes.get(i).copied().unwrap_or(0));
    (name.len().min(255) as u32) << 24 | byte(0) << 16 | byte(1) << 8 | byte(2)
}

impl Properties {
    /// The value named `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        let index = if self.0.len() <= SCANNED {
            let wanted = fingerprint(name);
            self.0
                .iter()
                .position(|entry| entry.fingerprint == wanted && entry.name == name)?
        } else {
            self.0
                .binary_search_by(|entry| entry.name.as_str().cmp(name))
                .ok()?
        };
        Some(&self.0[index].value)
    }

    /// Name and value, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
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
    pub fn insert_if_absent(&mut self, name: &str, value: Value) {
        if let Err(index) = self
            .0
            .binary_search_by(|entry| entry.name.as_str().cmp(name))
        {
            self.0.insert(
                index,
                Entry {
                    fingerprint: fingerprint(name),
                    name: name.into(),
                    value,
                },
            );
        }
    }

    fn from_entries(mut entries: Vec<(CompactString, Value)>) -> Properties {
        // Stable: among equal names the last sent stays last, and is kept.
        entries.sort_by(|(a, _), (b, _)| a.cmp(b));
        let mut kept: Vec<Entry> = Vec::with_capacity(entries.len());
        for (name, value) in entries {
            match kept.last_mut() {
                Some(last) if last.name == name => last.value = value,
                _ => kept.push(Entry {
                    fingerprint: fingerprint(&name),
                    name,
                    value,
                }),
            }
        }
        Properties(kept)
    }
}

impl IntoIterator for Properties {
    type Item = (CompactString, Value);
    type IntoIter = std::vec::IntoIter<(CompactString, Value)>;

    fn into_iter(self) -> Self::IntoIter {
        // Rare (merging context traits): a second vector is fine here.
        let pairs: Vec<_> = self
            .0
            .into_iter()
            .map(|entry| (entry.name, entry.value))
            .collect();
        pairs.into_iter()
    }
}

impl<K: Into<CompactString>> FromIterator<(K, Value)> for Properties {
    fn from_iter<I: IntoIterator<Item = (K, Value)>>(iter: I) -> Self {
        Properties::from_entries(
            iter.into_iter()
                .map(|(key, value)| (key.into(), value))
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
                while let Some(entry) = map.next_entry::<CompactString, Value>()? {
                    entries.push(entry);
                }
                Ok(Properties::from_entries(entries))
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

    #[test]
    fn finds_by_name_and_iterates_in_name_order() {
        let properties = parse(r#"{"price": 12.5, "cart_id": "c1", "b": null}"#);
        assert_eq!(properties.get("cart_id"), Some(&Value::from("c1")));
        assert_eq!(properties.get("price"), Some(&Value::from(12.5)));
        assert_eq!(properties.get("missing"), None);
        let names: Vec<&str> = properties.iter().map(|(name, _)| name).collect();
        assert_eq!(names, ["b", "cart_id", "price"]);
    }

    #[test]
    fn the_last_of_repeated_names_wins_as_in_a_json_map() {
        let json = r#"{"a": 1, "z": 0, "a": 2, "a": 3}"#;
        let properties = parse(json);
        assert_eq!(properties.len(), 2);
        assert_eq!(properties.get("a"), Some(&Value::from(3)));
        let map: serde_json::Map<String, Value> = serde_json::from_str(json).unwrap();
        assert_eq!(properties.get("a"), map.get("a"));
    }

    #[test]
    fn insert_if_absent_keeps_what_is_there() {
        let mut traits = parse(r#"{"timezone": "UTC"}"#);
        traits.insert_if_absent("timezone", Value::from("Asia/Tokyo"));
        traits.insert_if_absent("birthday", Value::from("03-14"));
        assert_eq!(traits.get("timezone"), Some(&Value::from("UTC")));
        assert_eq!(traits.get("birthday"), Some(&Value::from("03-14")));
        assert_eq!(traits.len(), 2);
    }

    #[test]
    fn long_lists_are_searched_too() {
        let many: Properties = (0..100)
            .map(|i| (format!("p{i:03}"), Value::from(i)))
            .collect();
        assert_eq!(many.get("p042"), Some(&Value::from(42)));
        assert_eq!(many.get("p100"), None);
        let few: Properties = [("abcd", Value::from(1)), ("abce", Value::from(2))]
            .into_iter()
            .collect();
        // Same fingerprint (length and first three bytes), different names.
        assert_eq!(few.get("abce"), Some(&Value::from(2)));
        assert_eq!(few.get("abcf"), None);
    }

    #[test]
    fn anything_but_an_object_is_refused() {
        assert!(serde_json::from_str::<Properties>("[1, 2]").is_err());
        assert!(serde_json::from_str::<Properties>("\"text\"").is_err());
    }
}
