//! Actions out: one CloudEvents 1.0 JSON envelope per decision. The field names
//! are a contract (product.md): tools outside the repository read them. Fields
//! may be added; none may be renamed.

use crate::payload::Payload;
use crate::time::Timestamp;
use compact_str::{format_compact, CompactString};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The CloudEvents envelope.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Action {
    /// Always `"1.0"`.
    pub specversion: CompactString,
    /// Equal to `data.action_id`.
    pub id: CompactString,
    /// `kairos/<pipeline name>`.
    pub source: CompactString,
    /// `kairos.action.<trigger>`.
    #[serde(rename = "type")]
    pub action_type: CompactString,
    /// The customer (`data.user_id`).
    pub subject: CompactString,
    /// When the decision was made (`data.decided_at`).
    pub time: Timestamp,
    /// Always `"application/json"`.
    pub datacontenttype: CompactString,
    /// The decision itself.
    pub data: ActionData,
}

/// The decision carried by an [`Action`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActionData {
    /// Deterministic: the same decision always gets the same id.
    pub action_id: CompactString,
    /// The customer: `userId`, or `anonymousId` before login.
    pub user_id: CompactString,
    /// The trigger id from the pipeline.
    pub trigger: Arc<str>,
    /// Ladder step, 1-based.
    pub step: u32,
    /// `push`, `sms`, `email`, `wechat`, `pos`, `service_desk`, `ops` ...
    pub channel: Arc<str>,
    /// Higher wins arbitration.
    pub priority: u32,
    /// A/B variant name (`control` when the trigger has none).
    pub variant: Arc<str>,
    /// Event time at which the trigger fired (a timer's deadline).
    pub fired_at: Timestamp,
    /// When the decision was made.
    pub decided_at: Timestamp,
    /// After this the action is stale and must not be delivered.
    pub expires_at: Timestamp,
    /// `null` when sent; otherwise why not (`consent`, `frequency_cap`, ...).
    pub suppressed: Option<String>,
    /// Which rule and which events caused it.
    pub reason: ActionReason,
    /// Cart items and value, offer, recommendations, ...
    pub payload: Payload,
}

/// Why an action fired.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActionReason {
    /// The rule in words, e.g. "Product Added not followed by Order Completed within 30m".
    pub rule: Arc<str>,
    /// `messageId`s of the events that caused it.
    pub events: Vec<CompactString>,
}

/// The envelope fields consumers may rely on (product.md): more may be added,
/// none of these renamed.
pub const ENVELOPE_FIELDS: [&str; 8] = [
    "specversion",
    "id",
    "source",
    "type",
    "subject",
    "time",
    "datacontenttype",
    "data",
];

/// The `data` fields consumers may rely on (product.md).
pub const DATA_FIELDS: [&str; 13] = [
    "action_id",
    "user_id",
    "trigger",
    "step",
    "channel",
    "priority",
    "variant",
    "fired_at",
    "decided_at",
    "expires_at",
    "suppressed",
    "reason",
    "payload",
];

impl Action {
    /// Wraps decision data in the envelope.
    pub fn new(pipeline: &str, data: ActionData) -> Action {
        Action {
            specversion: CompactString::const_new("1.0"),
            id: data.action_id.clone(),
            source: format_compact!("kairos/{pipeline}"),
            action_type: format_compact!("kairos.action.{}", data.trigger),
            subject: data.user_id.clone(),
            time: data.decided_at,
            datacontenttype: CompactString::const_new("application/json"),
            data,
        }
    }
}

impl Action {
    /// Appends this action as compact JSON: byte for byte what
    /// `serde_json::to_writer` writes for it, in about half the time. The
    /// backtest writes one per decision, and on the cart job its writing
    /// thread took a quarter of the process's CPU, mostly serde escaping
    /// field names one byte at a time. Field names here are literals; values
    /// go through [`write_json_str`]; the payload keeps its `Serialize`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let data = &self.data;
        out.extend_from_slice(b"{\"specversion\":");
        write_json_str(out, &self.specversion);
        for (name, value) in [
            ("id", &*self.id),
            ("source", &self.source),
            ("type", &self.action_type),
            ("subject", &self.subject),
        ] {
            write_json_key(out, name);
            write_json_str(out, value);
        }
        write_json_key(out, "time");
        write_json_time(out, self.time);
        write_json_key(out, "datacontenttype");
        write_json_str(out, &self.datacontenttype);
        out.extend_from_slice(b",\"data\":{\"action_id\":");
        write_json_str(out, &data.action_id);
        for (name, value) in [("user_id", &*data.user_id), ("trigger", &data.trigger)] {
            write_json_key(out, name);
            write_json_str(out, value);
        }
        write_json_key(out, "step");
        out.extend_from_slice(itoa::Buffer::new().format(data.step).as_bytes());
        write_json_key(out, "channel");
        write_json_str(out, &data.channel);
        write_json_key(out, "priority");
        out.extend_from_slice(itoa::Buffer::new().format(data.priority).as_bytes());
        write_json_key(out, "variant");
        write_json_str(out, &data.variant);
        for (name, at) in [
            ("fired_at", data.fired_at),
            ("decided_at", data.decided_at),
            ("expires_at", data.expires_at),
        ] {
            write_json_key(out, name);
            write_json_time(out, at);
        }
        write_json_key(out, "suppressed");
        match &data.suppressed {
            Some(reason) => write_json_str(out, reason),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"reason\":{\"rule\":");
        write_json_str(out, &data.reason.rule);
        out.extend_from_slice(b",\"events\":[");
        for (index, event) in data.reason.events.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            write_json_str(out, event);
        }
        out.extend_from_slice(b"]},\"payload\":");
        serde_json::to_writer(&mut *out, &data.payload)
            .expect("a payload always serialises into a Vec");
        out.extend_from_slice(b"}}");
    }
}

/// `,"name":` for a field after the first (names here need no escaping).
fn write_json_key(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

/// A JSON string, escaped exactly as serde_json escapes it (only `"`, `\`
/// and control characters; everything else as UTF-8): most values need no
/// escaping, and a scan that finds none copies them whole.
fn write_json_str(out: &mut Vec<u8>, text: &str) {
    if text
        .bytes()
        .all(|byte| byte >= 0x20 && byte != b'"' && byte != b'\\')
    {
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(&mut *out, text).expect("a string always serialises into a Vec");
    }
}

fn write_json_time(out: &mut Vec<u8>, at: Timestamp) {
    at.with_rfc3339(|text| write_json_str(out, text));
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    fn action_with(
        text: &str,
        events: Vec<CompactString>,
        suppressed: Option<String>,
        at: Timestamp,
    ) -> Action {
        let mut payload = Payload::new();
        payload.set("offer", crate::PayloadValue::Text(text.into()));
        payload.set("cart_value", crate::PayloadValue::Number(12.5));
        Action::new(
            text,
            ActionData {
                action_id: format!("act_{text}").into(),
                user_id: text.into(),
                trigger: text.into(),
                step: 2,
                channel: "push".into(),
                priority: 4_000_000_000,
                variant: text.into(),
                fired_at: at,
                decided_at: Timestamp(at.0.saturating_add(12)),
                expires_at: Timestamp::MAX,
                suppressed,
                reason: ActionReason {
                    rule: text.into(),
                    events,
                },
                payload,
            },
        )
    }

    #[test]
    fn writes_json_as_serde_json_does_for_awkward_text() {
        for text in [
            "",
            "plain",
            "quote \" and \\ slash",
            "tab\tnew\nline\u{1}",
            "\u{7f} é 漢 🎉",
            "</script>",
        ] {
            for (events, suppressed) in [
                (vec![], None),
                (vec![text.into()], Some("frequency_cap".to_string())),
                (
                    vec!["m-1".into(), text.into(), "m-3".into()],
                    Some(text.to_string()),
                ),
            ] {
                for at in [
                    Timestamp(1_795_420_267_012),
                    Timestamp(-1),
                    Timestamp::MIN,
                    Timestamp::MAX,
                ] {
                    let action = action_with(text, events.clone(), suppressed.clone(), at);
                    let mut fast = Vec::new();
                    action.write_json(&mut fast);
                    assert_eq!(
                        String::from_utf8(fast).unwrap(),
                        serde_json::to_string(&action).unwrap(),
                        "{text:?}"
                    );
                }
            }
        }
    }

    proptest! {
        #[test]
        fn writes_json_as_serde_json_does(
            text in any::<String>(),
            events in proptest::collection::vec(any::<String>(), 0..4),
            suppressed in proptest::option::of(any::<String>()),
            millis in any::<i64>(),
        ) {
            let events = events.into_iter().map(CompactString::from).collect();
            let action = action_with(&text, events, suppressed, Timestamp(millis / 4));
            let mut fast = Vec::new();
            action.write_json(&mut fast);
            prop_assert_eq!(String::from_utf8(fast).unwrap(), serde_json::to_string(&action).unwrap());
        }
    }

    #[test]
    fn serialises_with_the_contract_field_names() {
        let at = Timestamp::parse_rfc3339("2026-11-23T10:31:07Z").unwrap();
        let action = Action::new(
            "retail",
            ActionData {
                action_id: "act_9f2c41d07be3a5e1".into(),
                user_id: "u123".into(),
                trigger: "abandoned_cart".into(),
                step: 1,
                channel: "push".into(),
                priority: 80,
                variant: "control".into(),
                fired_at: at,
                decided_at: at,
                expires_at: at,
                suppressed: None,
                reason: ActionReason {
                    rule: "r".into(),
                    events: vec!["msg-71".into()],
                },
                payload: Payload::new(),
            },
        );
        let value = serde_json::to_value(&action).unwrap();
        for field in ENVELOPE_FIELDS {
            assert!(value.get(field).is_some(), "{field}");
        }
        for field in DATA_FIELDS {
            assert!(value["data"].get(field).is_some(), "data.{field}");
        }
        assert_eq!(value["type"], "kairos.action.abandoned_cart");
        assert_eq!(value["data"]["suppressed"], Value::Null);
        assert_eq!(value["data"]["fired_at"], "2026-11-23T10:31:07.000Z");
    }
}
