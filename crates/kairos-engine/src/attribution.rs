//! Attribution: which action a conversion is owed to, and the decisions a
//! customer's `inspect` shows.
//!
//! Last touch: a conversion event (`settings.conversion_event`) is
//! attributed to the customer's latest decision that was sent, or that was
//! held back only because they are in the holdout group, if it was made
//! within `settings.attribution_window` before the conversion. The holdout
//! group's would-have-fired decisions are tracked exactly like sent
//! actions, so the two groups' conversion rates compare like for like and
//! their difference is what sending did (the uplift). The conversion is
//! looked at before the triggers see the event, so an action the
//! conversion itself causes (a thank-you) is not credited with it.
//!
//! Per customer this costs one [`Touch`] (16 bytes) and the last
//! [`RECENT_DECISIONS`] decisions (16 bytes each), held with the rest of
//! the customer's state: snapshots carry them, merges keep the later
//! touch, and an erasure removes them.

use crate::decision::Suppression;
use crate::stats::TriggerStats;
use kairos_model::{Event, PropertyValue, Span, Timestamp};
use thin_vec::ThinVec;

/// Decisions a customer's record keeps, newest last.
pub const RECENT_DECISIONS: usize = 4;

/// The latest decision a conversion can be attributed to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Touch {
    /// When it was decided.
    pub at: Timestamp,
    /// Trigger index.
    pub trigger: u16,
    /// Variant index among the trigger's (0: `control` without variants).
    pub variant: u8,
    /// Held back because the customer is in the holdout group (else sent).
    pub held_out: bool,
    /// A conversion was attributed to it already (it counts once).
    pub converted: bool,
}

/// One decision as a customer's record keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecisionRecord {
    /// When it was decided.
    pub at: Timestamp,
    /// Trigger index.
    pub trigger: u16,
    /// Ladder step (1-based).
    pub step: u8,
    /// Variant index among the trigger's.
    pub variant: u8,
    /// `None`: sent.
    pub suppressed: Option<Suppression>,
}

/// Records a final decision in the customer's parts: in their recent
/// decisions, and as their last touch if it was sent or held out.
pub(crate) fn record_decision(
    decisions: &mut ThinVec<DecisionRecord>,
    last_touch: &mut Option<Touch>,
    record: DecisionRecord,
) {
    if decisions.len() >= RECENT_DECISIONS {
        decisions.remove(0);
    }
    decisions.push(record);
    let held_out = match record.suppressed {
        None => false,
        Some(Suppression::Holdout) => true,
        Some(_) => return,
    };
    *last_touch = Some(Touch {
        at: record.at,
        trigger: record.trigger,
        variant: record.variant,
        held_out,
        converted: false,
    });
}

/// Attributes a conversion at `time` worth `revenue` to `touch` if it is
/// within `window` of it, counting it in `triggers`' statistics.
pub(crate) fn attribute(
    touch: &mut Touch,
    time: Timestamp,
    revenue: f64,
    window: Span,
    triggers: &mut [TriggerStats],
) {
    if time < touch.at || time - touch.at > window {
        return;
    }
    let Some(variant) = triggers
        .get_mut(usize::from(touch.trigger))
        .and_then(|trigger| trigger.variants.get_mut(usize::from(touch.variant)))
    else {
        return;
    };
    let first = !touch.converted;
    touch.converted = true;
    match touch.held_out {
        false => {
            variant.conversions += u64::from(first);
            variant.revenue += revenue;
        }
        true => {
            variant.holdout_conversions += u64::from(first);
            variant.holdout_revenue += revenue;
        }
    }
}

/// A conversion event's revenue: `properties.revenue`, else `total` (as
/// Segment's `Order Completed` carries them), else 0. Negative or
/// non-finite amounts count as 0.
pub(crate) fn revenue(event: &Event) -> f64 {
    ["revenue", "total"]
        .into_iter()
        .find_map(|name| match event.properties.get(name)? {
            PropertyValue::Number(number) => number.as_f64(),
            PropertyValue::String(text) => text.trim().parse::<f64>().ok(),
            _ => None,
        })
        .filter(|amount| amount.is_finite() && *amount > 0.0)
        .unwrap_or(0.0)
}

/// Pools a merged identity's record into the surviving one: the later of
/// the two touches, and the latest decisions of both.
pub(crate) fn merge(
    (decisions, last_touch): (&mut ThinVec<DecisionRecord>, &mut Option<Touch>),
    (their_decisions, their_touch): (ThinVec<DecisionRecord>, Option<Touch>),
) {
    decisions.extend(their_decisions);
    decisions.sort_by_key(|record| record.at);
    let surplus = decisions.len().saturating_sub(RECENT_DECISIONS);
    decisions.drain(..surplus);
    if let Some(theirs) = their_touch {
        if last_touch.is_none_or(|mine| theirs.at > mine.at) {
            *last_touch = Some(theirs);
        }
    }
}
