//! The pipeline-wide tables: `name`, `[settings]`, `[policy]` and
//! `[[stores]]`. Every key is optional except `name`; absent keys take the
//! engine's defaults (`Settings::default()`, `Policy::default()`).

use crate::check::{Checker, Fields, SpanRule};
use crate::raw::{Node, Value};
use chrono_tz::Tz;
use kairos_engine::config::{DailyCaps, LateEvents, Policy, QuietHours, Settings, Store};

/// Keys of `[settings]`.
pub(crate) const SETTINGS_KEYS: &[&str] = &[
    "allowed_lateness",
    "late_events",
    "dedup_lookback",
    "pack_idle_after",
    "default_timezone",
    "erasure_event",
    "seed",
    "max_keys_per_trigger",
    "taste_half_life",
    "recently_bought",
    "conversion_event",
    "attribution_window",
];

/// Keys of `[policy]`.
pub(crate) const POLICY_KEYS: &[&str] = &[
    "holdout_percent",
    "consent_required",
    "daily_caps",
    "weekly_marketing_cap",
    "quiet_hours",
    "arbitration_window",
    "send_time_min_feedback",
    "feedback_events",
];

/// Keys of one `[[stores]]` table.
pub(crate) const STORE_KEYS: &[&str] = &["id", "lat", "lon"];

/// Reads the pipeline `name`.
pub(crate) fn name(checker: &mut Checker, root: &Fields<'_>) -> String {
    const ACCEPTED: &str = "lowercase letters, digits, `_` and `-` (e.g. \"retail\")";
    checker
        .required(root, "name", ACCEPTED, |c, n, f| {
            c.identifier(n, f, ACCEPTED, |ch| {
                ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_' || ch == '-'
            })
        })
        .unwrap_or_default()
}

/// Reads `[settings]` (absent: all defaults).
pub(crate) fn settings(checker: &mut Checker, node: Option<&Node>) -> Settings {
    let defaults = Settings::default();
    let Some(fields) = node.and_then(|node| checker.table_of(node, "settings", SETTINGS_KEYS))
    else {
        return defaults;
    };
    let allowed_lateness = checker.optional(
        &fields,
        "allowed_lateness",
        defaults.allowed_lateness,
        |c, n, f| c.span(n, f, SpanRule::NonNegative),
    );
    let late_events = checker.optional(&fields, "late_events", defaults.late_events, |c, n, f| {
        c.choice(
            n,
            f,
            &[("apply", LateEvents::Apply), ("drop", LateEvents::Drop)],
        )
    });
    let dedup_lookback = checker.optional(
        &fields,
        "dedup_lookback",
        defaults.dedup_lookback,
        |c, n, f| c.span(n, f, SpanRule::Positive),
    );
    let pack_idle_after = checker.optional(
        &fields,
        "pack_idle_after",
        defaults.pack_idle_after,
        // The sweep visits every customer once per quarter of it: shorter
        // would spend more on visiting than packing saves (a 10-day
        // backtest: +30-50 % of the time at 1h, 12x at 1m; see `slots`).
        |c, n, f| c.span(n, f, SpanRule::AtLeastAnHour),
    );
    let default_timezone = checker.optional(
        &fields,
        "default_timezone",
        defaults.default_timezone,
        time_zone,
    );
    let erasure_event = checker.optional(
        &fields,
        "erasure_event",
        defaults.erasure_event.clone(),
        |c, n, f| c.text(n, f, "a track event name, e.g. \"Erasure Requested\""),
    );
    let seed = checker.optional(&fields, "seed", defaults.seed, |c, n, f| {
        c.integer(n, f, 0, i64::MAX).map(|seed| seed as u64)
    });
    let max_keys_per_trigger = checker.optional(
        &fields,
        "max_keys_per_trigger",
        defaults.max_keys_per_trigger,
        |c, n, f| c.integer(n, f, 1, 1024).map(|max| max as usize),
    );
    let taste_half_life = checker.optional(
        &fields,
        "taste_half_life",
        defaults.taste_half_life,
        |c, n, f| c.span(n, f, SpanRule::Positive),
    );
    let recently_bought = checker.optional(
        &fields,
        "recently_bought",
        defaults.recently_bought,
        |c, n, f| c.span(n, f, SpanRule::NonNegative),
    );
    let conversion_event = checker.optional(
        &fields,
        "conversion_event",
        defaults.conversion_event.clone(),
        |c, n, f| c.text(n, f, "a track event name, e.g. \"Order Completed\""),
    );
    let attribution_window = checker.optional(
        &fields,
        "attribution_window",
        defaults.attribution_window,
        |c, n, f| c.span(n, f, SpanRule::Positive),
    );
    Settings {
        allowed_lateness: allowed_lateness.unwrap_or(defaults.allowed_lateness),
        late_events: late_events.unwrap_or(defaults.late_events),
        dedup_lookback: dedup_lookback.unwrap_or(defaults.dedup_lookback),
        pack_idle_after: pack_idle_after.unwrap_or(defaults.pack_idle_after),
        default_timezone: default_timezone.unwrap_or(defaults.default_timezone),
        erasure_event: erasure_event.unwrap_or(defaults.erasure_event),
        seed: seed.unwrap_or(defaults.seed),
        max_keys_per_trigger: max_keys_per_trigger.unwrap_or(defaults.max_keys_per_trigger),
        taste_half_life: taste_half_life.unwrap_or(defaults.taste_half_life),
        recently_bought: recently_bought.unwrap_or(defaults.recently_bought),
        conversion_event: conversion_event.unwrap_or(defaults.conversion_event),
        attribution_window: attribution_window.unwrap_or(defaults.attribution_window),
    }
}

/// An IANA time zone name.
fn time_zone(checker: &mut Checker, node: &Node, field: &str) -> Option<Tz> {
    const ACCEPTED: &str =
        "an IANA time zone name, e.g. \"UTC\", \"Asia/Shanghai\", \"Europe/Paris\"";
    let name = checker.string(node, field, ACCEPTED)?;
    match name.parse::<Tz>() {
        Ok(zone) => Some(zone),
        Err(_) => {
            checker.report(
                &node.origin,
                field,
                format!("unknown time zone {name:?}"),
                ACCEPTED,
            );
            None
        }
    }
}

/// Reads `[policy]` (absent: all defaults).
pub(crate) fn policy(checker: &mut Checker, node: Option<&Node>) -> Policy {
    let defaults = Policy::default();
    let Some(fields) = node.and_then(|node| checker.table_of(node, "policy", POLICY_KEYS)) else {
        return defaults;
    };
    let holdout_percent = checker.optional(
        &fields,
        "holdout_percent",
        defaults.holdout_percent,
        Checker::percent,
    );
    let consent_required = checker.optional(
        &fields,
        "consent_required",
        defaults.consent_required.clone(),
        |c, n, f| {
            let channels = c.list(n, f, "an array of channel names", Checker::channel)?;
            let mut distinct = channels.clone();
            distinct.sort_unstable();
            distinct.dedup();
            // Each needs a bit of its own in a customer's consent masks.
            if distinct.len() > 16 {
                c.report(
                    &n.origin,
                    f,
                    format!("{} channels need consent", distinct.len()),
                    "at most 16 channel names",
                );
                return None;
            }
            Some(channels)
        },
    );
    let daily_caps = checker.optional(&fields, "daily_caps", defaults.daily_caps, |c, n, f| {
        let caps = c.table_of(n, f, &["targeted", "content"])?;
        let targeted = c.optional(
            &caps,
            "targeted",
            defaults.daily_caps.targeted,
            |c, n, f| c.count(n, f, 0, u32::MAX),
        );
        let content = c.optional(&caps, "content", defaults.daily_caps.content, |c, n, f| {
            c.count(n, f, 0, u32::MAX)
        });
        Some(DailyCaps {
            targeted: targeted?,
            content: content?,
        })
    });
    let weekly_marketing_cap = checker.optional(
        &fields,
        "weekly_marketing_cap",
        defaults.weekly_marketing_cap,
        |c, n, f| c.count(n, f, 0, u32::MAX),
    );
    let quiet_hours = checker.optional(&fields, "quiet_hours", defaults.quiet_hours, quiet_hours);
    let arbitration_window = checker.optional(
        &fields,
        "arbitration_window",
        defaults.arbitration_window,
        |c, n, f| c.span(n, f, SpanRule::NonNegative),
    );
    let send_time_min_feedback = checker.optional(
        &fields,
        "send_time_min_feedback",
        defaults.send_time_min_feedback,
        |c, n, f| c.count(n, f, 0, u32::MAX),
    );
    let feedback_events = checker.optional(
        &fields,
        "feedback_events",
        defaults.feedback_events.clone(),
        |c, n, f| {
            c.list(n, f, "an array of event names", |c, n, f| {
                c.text(n, f, "an event name")
            })
        },
    );
    Policy {
        holdout_percent: holdout_percent.unwrap_or(defaults.holdout_percent),
        consent_required: consent_required.unwrap_or(defaults.consent_required),
        daily_caps: daily_caps.unwrap_or(defaults.daily_caps),
        weekly_marketing_cap: weekly_marketing_cap.unwrap_or(defaults.weekly_marketing_cap),
        quiet_hours: quiet_hours.unwrap_or(defaults.quiet_hours),
        arbitration_window: arbitration_window.unwrap_or(defaults.arbitration_window),
        send_time_min_feedback: send_time_min_feedback.unwrap_or(defaults.send_time_min_feedback),
        feedback_events: feedback_events.unwrap_or(defaults.feedback_events),
    }
}

/// `quiet_hours = { start = "22:00", end = "08:00" }` or `quiet_hours = false`.
fn quiet_hours(checker: &mut Checker, node: &Node, field: &str) -> Option<Option<QuietHours>> {
    const ACCEPTED: &str = "{ start = \"HH:MM\", end = \"HH:MM\" } (start after end wraps midnight), or false for no quiet hours";
    match node.value {
        Value::Boolean(false) => return Some(None),
        Value::Boolean(true) => {
            checker.report(&node.origin, field, "`true` does not say when", ACCEPTED);
            return None;
        }
        _ => {}
    }
    let fields = checker.table(node, field, ACCEPTED)?;
    fields.check_keys(checker, &["start", "end"]);
    let start = checker.required(&fields, "start", ACCEPTED, Checker::time_of_day);
    let end = checker.required(&fields, "end", ACCEPTED, Checker::time_of_day);
    let (start, end) = (start?, end?);
    if start == end {
        checker.report(
            &node.origin,
            field,
            "start and end are the same time",
            ACCEPTED,
        );
        return None;
    }
    Some(Some(QuietHours {
        start_minute: start,
        end_minute: end,
    }))
}

/// Reads `[[stores]]` (absent: none).
pub(crate) fn stores(checker: &mut Checker, node: Option<&Node>) -> Vec<Store> {
    const ACCEPTED: &str = "an array of tables with id, lat and lon ([[stores]])";
    let Some(items) = node.and_then(|node| checker.array(node, "stores", ACCEPTED)) else {
        return Vec::new();
    };
    let mut stores: Vec<Store> = Vec::new();
    for (position, item) in items.iter().enumerate() {
        let field = format!("stores[{position}]");
        let Some(fields) = checker.table_of(item, &field, STORE_KEYS) else {
            continue;
        };
        let id = checker.required(
            &fields,
            "id",
            "the store id events carry as store_id",
            |c, n, f| {
                let id = c.text(n, f, "a store id")?;
                if stores.iter().any(|store| store.id == id) {
                    c.report(
                        &n.origin,
                        f,
                        format!("duplicate store id {id:?}"),
                        "a store id used once",
                    );
                    return None;
                }
                Some(id)
            },
        );
        let lat = checker.required(&fields, "lat", "a latitude from -90 to 90", |c, n, f| {
            c.number(n, f, "a latitude from -90 to 90", |x| {
                (-90.0..=90.0).contains(&x)
            })
        });
        let lon = checker.required(&fields, "lon", "a longitude from -180 to 180", |c, n, f| {
            c.number(n, f, "a longitude from -180 to 180", |x| {
                (-180.0..=180.0).contains(&x)
            })
        });
        if let (Some(id), Some(lat), Some(lon)) = (id, lat, lon) {
            stores.push(Store { id, lat, lon });
        }
    }
    stores
}
