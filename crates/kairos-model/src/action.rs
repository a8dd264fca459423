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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

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
