//! [`Properties`]: an event's properties or traits.
//!
//! An event carries a handful of properties and the engine looks up a few of
//! them by name. A JSON map (a B-tree) spends several allocations per event
//! on that and scatters the entries over as many cache lines; here they are
//! one sorted vector with names stored inline, found by binary search.

use compact_str::CompactString;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use std::fmt;

/// Name → JSON value, sorted by name, each name once (the last one sent
/// wins, as with a JSON map).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Properties(Vec<(CompactString, Value)>);

impl Properties {
    /// The value named `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        let index = self
            .0
            .binary_search_by(|(key, _)| key.as_str().cmp(name))
            .ok()?;
        Some(&self.0[index].1)
    }

    /// Name and value, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(key, value)| (key.as_str(), value))
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
        if let Err(index) = self.0.binary_search_by(|(key, _)| key.as_str().cmp(name)) {
            self.0.insert(index, (name.into(), value));
        }
    }

    fn from_entries(mut entries: Vec<(CompactString, Value)>) -> Properties {
        // Stable: among equal names the last sent stays last, and is kept.
        entries.sort_by(|(a, _), (b, _)| a.cmp(b));
        let mut kept: Vec<(CompactString, Value)> = Vec::with_capacity(entries.len());
        for entry in entries {
            match kept.last_mut() {
                Some(last) if last.0 == entry.0 => *last = entry,
                _ => kept.push(entry),
            }
        }
        Properties(kept)
    }
}

impl IntoIterator for Properties {
    type Item = (CompactString, Value);
    type IntoIter = std::vec::IntoIter<(CompactString, Value)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
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
    fn anything_but_an_object_is_refused() {
        assert!(serde_json::from_str::<Properties>("[1, 2]").is_err());
        assert!(serde_json::from_str::<Properties>("\"text\"").is_err());
    }
}
