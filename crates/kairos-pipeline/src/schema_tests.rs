//! Keeps `pipelines/pipeline.schema.json` (for editors) in step with the
//! keys this crate accepts: adding a field here without adding it there (or
//! the reverse) fails this test.

use crate::pattern::Kind;
use crate::settings::{POLICY_KEYS, SETTINGS_KEYS, STORE_KEYS};
use crate::trigger::{COMMON_KEYS, LADDER_KEYS, PAYLOAD_KEYS, VARIANT_KEYS};
use crate::TOP_KEYS;
use serde_json::Value;
use std::collections::BTreeSet;

fn schema() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../pipelines/pipeline.schema.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} is not JSON: {e}"))
}

/// The keys of `properties` at `pointer`, leaving out those set to `false`
/// (forbidden for that kind).
fn keys(schema: &Value, pointer: &str) -> BTreeSet<String> {
    let properties = schema
        .pointer(pointer)
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("no properties at {pointer}"));
    properties
        .iter()
        .filter(|(_, value)| **value != Value::Bool(false))
        .map(|(key, _)| key.clone())
        .collect()
}

fn set(keys: &[&str]) -> BTreeSet<String> {
    keys.iter().map(|key| key.to_string()).collect()
}

#[test]
fn schema_declares_draft_2020_12() {
    assert_eq!(
        schema()["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
}

#[test]
fn tables_have_the_same_keys_as_the_parser() {
    let schema = schema();
    assert_eq!(keys(&schema, "/properties"), set(TOP_KEYS));
    assert_eq!(
        keys(&schema, "/properties/settings/properties"),
        set(SETTINGS_KEYS)
    );
    assert_eq!(
        keys(&schema, "/properties/policy/properties"),
        set(POLICY_KEYS)
    );
    assert_eq!(
        keys(&schema, "/properties/stores/items/properties"),
        set(STORE_KEYS)
    );
    assert_eq!(
        keys(&schema, "/$defs/ladderStep/properties"),
        set(LADDER_KEYS)
    );
    assert_eq!(
        keys(&schema, "/$defs/variant/properties"),
        set(VARIANT_KEYS)
    );
    assert_eq!(
        keys(&schema, "/$defs/trigger/properties/payload/properties"),
        set(PAYLOAD_KEYS)
    );
}

#[test]
fn trigger_keys_match_per_kind() {
    let schema = schema();
    let mut every = set(COMMON_KEYS);
    for kind in Kind::ALL {
        every.extend(set(kind.fields()));
    }
    assert_eq!(keys(&schema, "/$defs/trigger/properties"), every);
    let branches = schema
        .pointer("/$defs/trigger/allOf")
        .and_then(Value::as_array)
        .expect("trigger allOf");
    for kind in Kind::ALL {
        let branch = branches
            .iter()
            .find(|branch| {
                branch.pointer("/if/properties/kind/const") == Some(&Value::from(kind.name()))
                    && branch.pointer("/then/properties").is_some()
            })
            .unwrap_or_else(|| panic!("no schema branch for {}", kind.name()));
        let mut kind_keys = keys(branch, "/then/properties");
        kind_keys.remove("key"); // rate pins `key`, a common field
        assert_eq!(kind_keys, set(kind.fields()), "{}", kind.name());
    }
}
