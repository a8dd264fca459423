//! Decisions: what the engine outputs. A [`Decision`] is either sent or
//! suppressed with a [`Suppression`] reason; both are kept so a data scientist
//! can see what would have happened. [`Decision::to_action`] renders the
//! CloudEvents envelope consumers receive.

use crate::taste::RecommendationRequest;
use kairos_model::{Action, ActionData, ActionReason, CompactString, Payload, Timestamp};
use std::fmt;
use std::sync::Arc;

/// Why a decision was not sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Suppression {
    /// The customer has not consented to the channel.
    Consent,
    /// Daily or weekly frequency cap reached.
    FrequencyCap,
    /// Fell in quiet hours and could not be deferred (or the trigger drops).
    QuietHours,
    /// The same trigger was sent to the customer within its cooldown.
    Cooldown,
    /// A higher-or-equal priority action was sent within the arbitration window.
    Arbitration,
    /// The customer is in the global control group.
    Holdout,
    /// Marketing is paused by an ops alert.
    CircuitBreaker,
    /// The trigger is in grey release and the customer is not in it yet.
    Rollout,
    /// Already past `expires_at` when it could have been sent.
    Expired,
}

impl Suppression {
    /// Every reason, in the order declared: a snapshot writes a reason as
    /// its place here.
    pub const ALL: [Suppression; 9] = [
        Suppression::Consent,
        Suppression::FrequencyCap,
        Suppression::QuietHours,
        Suppression::Cooldown,
        Suppression::Arbitration,
        Suppression::Holdout,
        Suppression::CircuitBreaker,
        Suppression::Rollout,
        Suppression::Expired,
    ];

    /// The reason as it appears in `data.suppressed` and in summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            Suppression::Consent => "consent",
            Suppression::FrequencyCap => "frequency_cap",
            Suppression::QuietHours => "quiet_hours",
            Suppression::Cooldown => "cooldown",
            Suppression::Arbitration => "arbitration",
            Suppression::Holdout => "holdout",
            Suppression::CircuitBreaker => "circuit_breaker",
            Suppression::Rollout => "rollout",
            Suppression::Expired => "expired",
        }
    }
}

impl fmt::Display for Suppression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One decision about one ladder step of one trigger for one customer.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// Deterministic id (`act_` + 16 hex digits).
    pub action_id: CompactString,
    /// The customer key (`userId`, else `anonymousId`).
    pub user_id: CompactString,
    /// Trigger id.
    pub trigger: Arc<str>,
    /// 1-based ladder step.
    pub step: u32,
    /// Channel.
    pub channel: Arc<str>,
    /// Priority.
    pub priority: u32,
    /// A/B variant (`control` without variants).
    pub variant: Arc<str>,
    /// When the step was due (event time).
    pub fired_at: Timestamp,
    /// When the engine decided (later than `fired_at` when deferred).
    pub decided_at: Timestamp,
    /// Stale after this.
    pub expires_at: Timestamp,
    /// `None`: sent.
    pub suppressed: Option<Suppression>,
    /// The rule in words.
    pub rule: Arc<str>,
    /// `messageId`s of the causing events.
    pub events: Vec<CompactString>,
    /// Payload (cart, offer, copied properties ...).
    pub payload: Payload,
    /// For a sent decision whose trigger recommends items, once a catalog
    /// is loaded: what to ask the item index. The service answers it into
    /// `payload.recommendations` before publishing (`kairos-recommend`).
    pub recommend: Option<Box<RecommendationRequest>>,
}

impl Decision {
    /// Whether it was sent.
    pub fn is_sent(&self) -> bool {
        self.suppressed.is_none()
    }

    /// Renders the CloudEvents action (`source = kairos/<pipeline>`).
    pub fn to_action(&self, pipeline: &str) -> Action {
        self.clone().into_action(pipeline)
    }

    /// Like [`Decision::to_action`], moving the fields instead of copying
    /// them (the payload can be a whole cart).
    pub fn into_action(self, pipeline: &str) -> Action {
        Action::new(pipeline, self.into_action_data())
    }

    /// The action's `data`, moved out of the decision: with
    /// [`ActionData::write_action_json`], the action written without
    /// being built.
    pub fn into_action_data(self) -> ActionData {
        ActionData {
            action_id: self.action_id,
            user_id: self.user_id,
            trigger: self.trigger,
            step: self.step,
            channel: self.channel,
            priority: self.priority,
            variant: self.variant,
            fired_at: self.fired_at,
            decided_at: self.decided_at,
            expires_at: self.expires_at,
            suppressed: self.suppressed.map(|reason| reason.as_str().to_string()),
            reason: ActionReason {
                rule: self.rule,
                events: self.events,
            },
            payload: self.payload,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Suppression;

    #[test]
    fn every_reason_is_in_its_place() {
        for (place, reason) in Suppression::ALL.iter().enumerate() {
            assert_eq!(*reason as usize, place, "{reason}");
        }
        assert_eq!(Suppression::Expired as usize + 1, Suppression::ALL.len());
    }
}
