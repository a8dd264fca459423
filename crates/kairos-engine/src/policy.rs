//! The delivery policy: between "a trigger fired" and "an action is sent".
//!
//! Checks run in a fixed order, and the first that fails names the
//! suppression reason: rollout, consent, circuit breaker, expiry, cooldown,
//! arbitration, frequency caps, quiet hours (a decision both would hold
//! back is named for the caps), and last the holdout group (a
//! held-out decision is one that would have been sent, so its conversions
//! compare with the sent ones'). A decision that passes may still be
//! *deferred* (send-time optimisation, quiet hours); when its time comes the
//! time-dependent checks (breaker onwards) run again.

use crate::config::{Category, QuietHoursMode, Trigger};
use crate::customer::{CapClass, Customer, SentRecord};
use crate::decision::{Decision, Suppression};
use crate::local_time::{local_day, local_hour, local_minute_of_day, next_local_minute};
use crate::plan::Plan;
use chrono_tz::Tz;
use compact_str::CompactString;
use kairos_model::ids::basis_points;
use kairos_model::{Span, Timestamp};

/// A decision on its way through the policy.
#[derive(Debug)]
pub struct Candidate {
    /// Trigger index.
    pub trigger: u16,
    /// Entity key of the state it came from.
    pub entity: Option<CompactString>,
    /// Its journey's step 1 was held back by the cooldown.
    pub held_back: bool,
    /// Whether this is its first pass through the policy (a deferred
    /// decision coming due is not): see [`judge`]. Carried here rather
    /// than beside it in a pair, which was a copy of the whole candidate
    /// (a few hundred bytes) more per decision.
    pub first_pass: bool,
    /// The decision so far (`suppressed` is `None`).
    pub decision: Decision,
}

/// What the policy did with a candidate.
#[derive(Debug)]
pub enum Verdict {
    /// Final: sent or suppressed (as the candidate now says).
    Final,
    /// Hold until this time, then re-check.
    Defer(Timestamp),
}

/// Whether the customer is in the global holdout group.
pub fn in_holdout(plan: &Plan, customer_key: &str) -> bool {
    let percent = plan.pipeline.policy.holdout_percent;
    percent > 0.0
        && f64::from(basis_points(
            plan.pipeline.settings.seed,
            &[b"holdout", customer_key.as_bytes()],
        )) < percent * 100.0
}

/// Whether the trigger's grey release includes the customer.
pub fn in_rollout(plan: &Plan, trigger: &Trigger, customer_key: &str) -> bool {
    trigger.rollout_percent >= 100.0
        || f64::from(basis_points(
            plan.pipeline.settings.seed,
            &[b"rollout", trigger.id.as_bytes(), customer_key.as_bytes()],
        )) < trigger.rollout_percent * 100.0
}

/// The customer's time zone (or the pipeline default).
pub fn zone_of(plan: &Plan, customer: &Customer) -> Tz {
    customer
        .profile
        .timezone
        .unwrap_or(plan.pipeline.settings.default_timezone)
}

fn cap_class(category: Category) -> CapClass {
    match category {
        Category::Targeted => CapClass::Targeted,
        Category::Content => CapClass::Content,
        Category::Transactional | Category::Ops => CapClass::Uncapped,
    }
}

/// Runs the policy for `candidate` at `now`. `channel` is the number of its
/// channel ([`Plan::channel_index`], found once for this and
/// [`record_sent`]). The candidate's `first_pass` is false when a deferred
/// decision comes due (only the time-dependent checks run, and it is not
/// deferred again).
pub fn judge(
    plan: &Plan,
    customer: &Customer,
    breaker_until: Timestamp,
    candidate: &Candidate,
    channel: u8,
    now: Timestamp,
) -> Result<Option<Timestamp>, Suppression> {
    let trigger = plan.trigger(candidate.trigger);
    let policy = &plan.pipeline.policy;
    let decision = &candidate.decision;
    let marketing = trigger.category.is_marketing();
    if candidate.first_pass {
        if !in_rollout(plan, trigger, &customer.key) {
            return Err(Suppression::Rollout);
        }
        let bit = Plan::consent_bit(channel);
        if plan.consent_channels & bit != 0 && customer.profile.consent & bit == 0 {
            return Err(Suppression::Consent);
        }
    }
    if marketing && now < breaker_until {
        return Err(Suppression::CircuitBreaker);
    }
    if now > decision.expires_at {
        return Err(Suppression::Expired);
    }
    // The cooldown separates journeys (a second cart's reminder), not the
    // steps of one ladder: a new match (step 1) is held back by it, and so
    // are the later steps of a journey whose step 1 it held back.
    if trigger.cooldown > Span::ZERO
        && (decision.step == 1 || candidate.held_back)
        && customer
            .sent()
            .iter()
            .any(|sent| sent.trigger == candidate.trigger && now - sent.at < trigger.cooldown)
    {
        return Err(Suppression::Cooldown);
    }
    // Sends are never in the future (the clock does not go back), so with
    // no window (`0s`, "no arbitration") no send can be within it: the
    // search is skipped.
    if marketing
        && policy.arbitration_window > Span::ZERO
        && customer.sent().iter().any(|sent| {
            sent.cap != CapClass::Uncapped
                && u32::from(sent.priority) >= decision.priority
                && sent.trigger != candidate.trigger
                && now - sent.at < policy.arbitration_window
        })
    {
        return Err(Suppression::Arbitration);
    }
    let zone = zone_of(plan, customer);
    // Caps count the calendar day the message is sent on: a decision that
    // waits for tomorrow morning (quiet hours) or a later hour (send-time
    // optimisation) is not capped by today's sends. Its second pass checks
    // the caps when it comes due.
    let capped = over_frequency_cap(plan, customer, trigger.category, channel, now, zone);
    // The holdout group is judged last, when a decision would be sent: its
    // would-have-been actions are then like the sent ones (they passed
    // every other check), which is what makes their conversion rates
    // comparable (the uplift; see `attribution`).
    let held_out = || marketing && in_holdout(plan, &customer.key);
    if !candidate.first_pass {
        return if capped {
            Err(Suppression::FrequencyCap)
        } else if held_out() {
            Err(Suppression::Holdout)
        } else {
            Ok(None)
        };
    }
    let suppressed_now = |reason| match capped {
        true => Suppression::FrequencyCap,
        false => reason,
    };
    let quiet_mode = match trigger.category {
        Category::Transactional | Category::Ops => QuietHoursMode::Ignore,
        _ => trigger.quiet_hours,
    };
    let quiet = match quiet_mode {
        QuietHoursMode::Defer | QuietHoursMode::Drop => policy.quiet_hours,
        QuietHoursMode::Ignore => None,
    };
    let in_quiet_hours = |at: Timestamp| {
        quiet.is_some_and(|quiet| {
            let minute = local_minute_of_day(at, zone);
            if quiet.start_minute <= quiet.end_minute {
                minute >= quiet.start_minute && minute < quiet.end_minute
            } else {
                minute >= quiet.start_minute || minute < quiet.end_minute
            }
        })
    };
    let mut send_at = now;
    if trigger.deliver_within > Span::ZERO {
        if let Some(best_hour) = best_hour(customer, policy.send_time_min_feedback) {
            let minute = (best_hour * 60) as u16;
            if local_hour(now, zone) != best_hour {
                if let Some(at) = next_local_minute(now, minute, zone) {
                    // A better hour within the allowed delay, while the
                    // action is fresh, and not one quiet hours would hold
                    // back further or drop.
                    if at <= now + trigger.deliver_within
                        && at <= decision.expires_at
                        && !in_quiet_hours(at)
                    {
                        send_at = at;
                    }
                }
            }
        }
    }
    if let Some(quiet) = quiet {
        if in_quiet_hours(send_at) {
            if quiet_mode == QuietHoursMode::Drop {
                return Err(suppressed_now(Suppression::QuietHours));
            }
            match next_local_minute(send_at, quiet.end_minute, zone) {
                Some(morning) if morning <= decision.expires_at => send_at = morning,
                _ => return Err(suppressed_now(Suppression::QuietHours)),
            }
        }
    }
    match send_at > now {
        true => Ok(Some(send_at)),
        false if capped => Err(Suppression::FrequencyCap),
        false if held_out() => Err(Suppression::Holdout),
        false => Ok(None),
    }
}

/// Whether sending on `channel` at `at` would pass the daily cap of the
/// category's class (per calendar day in the customer's zone) or the weekly
/// marketing cap.
fn over_frequency_cap(
    plan: &Plan,
    customer: &Customer,
    category: Category,
    channel: u8,
    at: Timestamp,
    zone: Tz,
) -> bool {
    let policy = &plan.pipeline.policy;
    let class = cap_class(category);
    if class == CapClass::Uncapped {
        return false;
    }
    // Either count is at most the number of sends remembered: fewer of
    // them than both caps (the usual case, and always with caps left at
    // their maximum) is under both without a look at a calendar day.
    let daily_cap = match class {
        CapClass::Targeted => policy.daily_caps.targeted,
        _ => policy.daily_caps.content,
    };
    let remembered = customer.sent().len();
    if remembered < daily_cap as usize && remembered < policy.weekly_marketing_cap as usize {
        return false;
    }
    let today = local_day(at, zone);
    let same_day = customer
        .sent()
        .iter()
        .filter(|sent| {
            sent.cap == class && sent.channel == channel && local_day(sent.at, zone) == today
        })
        .count() as u32;
    let this_week = customer
        .sent()
        .iter()
        .filter(|sent| sent.cap != CapClass::Uncapped && at - sent.at < Span::DAY * 7)
        .count() as u32;
    same_day >= daily_cap || this_week >= policy.weekly_marketing_cap
}

/// The local hour with most opens/clicks, once there are enough of them.
pub fn best_hour(customer: &Customer, min_feedback: u32) -> Option<usize> {
    let hours = customer.engagement_hours()?;
    let total: u32 = hours.iter().map(|&count| u32::from(count)).sum();
    if total < min_feedback.max(1) {
        return None;
    }
    // Ties go to the earliest hour, so the choice is deterministic.
    let (hour, _) =
        hours.iter().enumerate().fold(
            (0, 0),
            |best, (hour, &count)| if count > best.1 { (hour, count) } else { best },
        );
    Some(hour)
}

/// Remembers a sent action (on channel number `channel`); forgets records
/// no check can need any more.
pub fn record_sent(
    plan: &Plan,
    customer: &mut Customer,
    candidate: &Candidate,
    channel: u8,
    now: Timestamp,
) {
    let trigger = plan.trigger(candidate.trigger);
    let sent = &mut customer.occasional_mut().sent;
    // Records are in time order (added as the clock goes, sorted when
    // merged): while the oldest is within the retention, none can go, and
    // the pass over them is skipped. An older record missed were they out
    // of order would only be dropped later: past every check's window, it
    // counts in none.
    let keep = plan.sent_retention;
    if sent.first().is_some_and(|oldest| now - oldest.at >= keep) {
        sent.retain(|sent| now - sent.at < keep);
    }
    sent.push(SentRecord {
        at: now,
        trigger: candidate.trigger,
        channel,
        cap: cap_class(trigger.category),
        priority: candidate.decision.priority.min(255) as u8,
    });
}
