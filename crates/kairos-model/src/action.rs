//! Actions out: one CloudEvents 1.0 JSON envelope per decision. The field names
//! are a contract (product.md): tools outside the repository read them. Fields
//! may be added; none may be renamed.

use crate::json_out::{write_key, write_str, write_str_parts, TimeTexts};
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
            specversion: CompactString::const_new(SPECVERSION),
            id: data.action_id.clone(),
            source: format_compact!("{SOURCE_PREFIX}{pipeline}"),
            action_type: format_compact!("{TYPE_PREFIX}{}", data.trigger),
            subject: data.user_id.clone(),
            time: data.decided_at,
            datacontenttype: CompactString::const_new(DATACONTENTTYPE),
            data,
        }
    }
}

impl Action {
    /// Appends this action as compact JSON: byte for byte what
    /// `serde_json::to_writer` writes for it, in a fraction of the time
    /// (see `json_out`). The backtest writes one per decision, and on the
    /// cart job its writing thread took a quarter of the process's CPU.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        write_action(
            out,
            &Envelope {
                specversion: &self.specversion,
                id: &self.id,
                source: ["", &self.source],
                action_type: ["", &self.action_type],
                subject: &self.subject,
                time: self.time,
                datacontenttype: &self.datacontenttype,
            },
            &self.data,
        );
    }
}

impl ActionData {
    /// Appends, as compact JSON, the action `Action::new(pipeline, data)`
    /// makes of this data, without making it (its `source` and `type` are
    /// formatted strings).
    pub fn write_action_json(&self, pipeline: &str, out: &mut Vec<u8>) {
        write_action(
            out,
            &Envelope {
                specversion: SPECVERSION,
                id: &self.action_id,
                source: [SOURCE_PREFIX, pipeline],
                action_type: [TYPE_PREFIX, &self.trigger],
                subject: &self.user_id,
                time: self.decided_at,
                datacontenttype: DATACONTENTTYPE,
            },
            self,
        );
    }
}

const SPECVERSION: &str = "1.0";
const SOURCE_PREFIX: &str = "kairos/";
const TYPE_PREFIX: &str = "kairos.action.";
const DATACONTENTTYPE: &str = "application/json";

/// The envelope's fields as text; `source` and `type` in two parts.
struct Envelope<'a> {
    specversion: &'a str,
    id: &'a str,
    source: [&'a str; 2],
    action_type: [&'a str; 2],
    subject: &'a str,
    time: Timestamp,
    datacontenttype: &'a str,
}

/// An action as serde_json writes one: fields in declaration order.
/// Inlined into its two callers: the backtest's, from decision data, has
/// constants for `specversion`, `datacontenttype` and the prefixes of
/// `source` and `type`, whose checks for characters to escape then fold
/// away.
#[inline(always)]
fn write_action(out: &mut Vec<u8>, envelope: &Envelope, data: &ActionData) {
    out.extend_from_slice(b"{\"specversion\":");
    write_str(out, envelope.specversion);
    write_key(out, "id");
    write_str(out, envelope.id);
    write_key(out, "source");
    write_str_parts(out, &envelope.source);
    write_key(out, "type");
    write_str_parts(out, &envelope.action_type);
    write_key(out, "subject");
    write_str(out, envelope.subject);
    let mut times = TimeTexts::default();
    write_key(out, "time");
    times.write(out, envelope.time);
    write_key(out, "datacontenttype");
    write_str(out, envelope.datacontenttype);
    out.extend_from_slice(b",\"data\":{\"action_id\":");
    write_str(out, &data.action_id);
    for (name, value) in [("user_id", &*data.user_id), ("trigger", &data.trigger)] {
        write_key(out, name);
        write_str(out, value);
    }
    write_key(out, "step");
    out.extend_from_slice(itoa::Buffer::new().format(data.step).as_bytes());
    write_key(out, "channel");
    write_str(out, &data.channel);
    write_key(out, "priority");
    out.extend_from_slice(itoa::Buffer::new().format(data.priority).as_bytes());
    write_key(out, "variant");
    write_str(out, &data.variant);
    for (name, at) in [
        ("fired_at", data.fired_at),
        ("decided_at", data.decided_at),
        ("expires_at", data.expires_at),
    ] {
        write_key(out, name);
        times.write(out, at);
    }
    write_key(out, "suppressed");
    match &data.suppressed {
        Some(reason) => write_str(out, reason),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"reason\":{\"rule\":");
    write_str(out, &data.reason.rule);
    out.extend_from_slice(b",\"events\":[");
    for (index, event) in data.reason.events.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write_str(out, event);
    }
    out.extend_from_slice(b"]},\"payload\":");
    data.payload.write_json(out);
    out.extend_from_slice(b"}}");
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

    /// The action written by [`Action::write_json`], and by
    /// [`ActionData::write_action_json`] from its data (`action_with` names
    /// the pipeline `text`).
    fn written_both_ways(action: &Action, pipeline: &str) -> (String, String) {
        let (mut fast, mut from_data) = (Vec::new(), Vec::new());
        action.write_json(&mut fast);
        action.data.write_action_json(pipeline, &mut from_data);
        (
            String::from_utf8(fast).unwrap(),
            String::from_utf8(from_data).unwrap(),
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
                    let (fast, from_data) = written_both_ways(&action, text);
                    let serde = serde_json::to_string(&action).unwrap();
                    assert_eq!(fast, serde, "{text:?}");
                    assert_eq!(from_data, serde, "{text:?}");
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
            let (fast, from_data) = written_both_ways(&action, &text);
            let serde = serde_json::to_string(&action).unwrap();
            prop_assert_eq!(&fast, &serde);
            prop_assert_eq!(&from_data, &serde);
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
