//! The kind-specific half of a `[[trigger]]`: which fields each `kind`
//! takes, and how they become a [`Pattern`] plus step 1's offset.
//!
//! | kind       | step 1 `at` comes from |
//! |------------|------------------------|
//! | absence    | `after`                |
//! | inactivity | `after`                |
//! | schedule   | `offset`               |
//! | count, sequence, threshold, rate | `delay` (default `0s`) |

use crate::check::{Checker, Fields, SpanRule};
use crate::event_match::{event_match, event_matches, MATCH_FORMS, MATCH_LIST_FORMS};
use crate::offset::{offset, OffsetRules};
use crate::raw::Node;
use kairos_engine::config::{
    Bound, CountFire, EventMatch, Measure, Offset, Pattern, Period, PeriodCondition,
    ScheduleSource, Window,
};
use kairos_model::Span;

/// The trigger kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `start` then no `cancel`.
    Absence,
    /// At least `min` events in a window.
    Count,
    /// No `activity` for a while.
    Inactivity,
    /// `first` then `then`.
    Sequence,
    /// A calendar time.
    Schedule,
    /// A rolling aggregate crosses a bound.
    Threshold,
    /// A global rate versus its baseline.
    Rate,
}

impl Kind {
    /// Every kind, in documentation order.
    pub const ALL: [Kind; 7] = [
        Kind::Absence,
        Kind::Count,
        Kind::Inactivity,
        Kind::Sequence,
        Kind::Schedule,
        Kind::Threshold,
        Kind::Rate,
    ];

    /// The `kind = "..."` word.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Absence => "absence",
            Kind::Count => "count",
            Kind::Inactivity => "inactivity",
            Kind::Sequence => "sequence",
            Kind::Schedule => "schedule",
            Kind::Threshold => "threshold",
            Kind::Rate => "rate",
        }
    }

    /// The fields only this kind takes.
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            Kind::Absence => &[
                "start",
                "cancel",
                "restart",
                "cancel_when_cart_empty",
                "after",
            ],
            Kind::Count => &[
                "event", "min", "window", "group_by", "unless", "fire", "delay",
            ],
            Kind::Inactivity => &["activity", "after", "repeat"],
            Kind::Sequence => &["first", "then", "within", "delay"],
            Kind::Schedule => &["source", "offset"],
            Kind::Threshold => &[
                "measure",
                "at_least",
                "near_next_tier",
                "top_percent",
                "drop_percent",
                "delay",
            ],
            Kind::Rate => &[
                "events",
                "window",
                "baseline",
                "increase_percent",
                "min_count",
                "pause_marketing",
                "delay",
            ],
        }
    }

    /// The `(word, kind)` pairs for [`Checker::choice`].
    pub fn choices() -> Vec<(&'static str, Kind)> {
        Kind::ALL.iter().map(|kind| (kind.name(), *kind)).collect()
    }
}

/// What the kind-specific fields compile to.
pub(crate) struct KindParts {
    /// The pattern, if every field was valid.
    pub pattern: Option<Pattern>,
    /// Step 1's offset, if valid.
    pub first_at: Option<Offset>,
    /// Extra steps' offsets from inactivity `repeat` (same channel and offer
    /// as step 1).
    pub repeat_at: Vec<Span>,
}

/// Reads the kind-specific fields of a trigger whose kind is `kind`.
pub(crate) fn kind_parts(checker: &mut Checker, fields: &Fields<'_>, kind: Kind) -> KindParts {
    let mut repeat_at = Vec::new();
    let (pattern, first_at) = match kind {
        Kind::Absence => absence(checker, fields),
        Kind::Count => count(checker, fields),
        Kind::Inactivity => inactivity(checker, fields, &mut repeat_at),
        Kind::Sequence => sequence(checker, fields),
        Kind::Schedule => schedule(checker, fields),
        Kind::Threshold => threshold(checker, fields),
        Kind::Rate => rate(checker, fields),
    };
    KindParts {
        pattern,
        first_at,
        repeat_at,
    }
}

/// Rules for `after` (absence) and `delay` (every kind that has one).
const WAIT: OffsetRules = OffsetRules {
    cadence: false,
    negative: false,
};

/// Reads the optional `delay` (default `0s`).
fn delay(checker: &mut Checker, fields: &Fields<'_>) -> Option<Offset> {
    checker.optional(fields, "delay", Offset::Fixed(Span::ZERO), |c, n, f| {
        offset(c, n, f, WAIT)
    })
}

/// Reads an optional list of event matches (default: none).
fn match_list(checker: &mut Checker, fields: &Fields<'_>, key: &str) -> Option<Vec<EventMatch>> {
    checker.optional(fields, key, Vec::new(), event_matches)
}

/// A required duration.
fn required_span(
    checker: &mut Checker,
    fields: &Fields<'_>,
    key: &str,
    rule: SpanRule,
) -> Option<Span> {
    checker.required(fields, key, &rule.accepted(), |c, n, f| c.span(n, f, rule))
}

fn absence(checker: &mut Checker, fields: &Fields<'_>) -> (Option<Pattern>, Option<Offset>) {
    let start = checker.required(fields, "start", MATCH_FORMS, event_match);
    let cancel = match_list(checker, fields, "cancel");
    let restart = checker.optional(fields, "restart", true, Checker::boolean);
    let cancel_when_cart_empty =
        checker.optional(fields, "cancel_when_cart_empty", false, Checker::boolean);
    let after = checker.required(fields, "after", &WAIT.accepted(), |c, n, f| {
        offset(c, n, f, WAIT)
    });
    let pattern = (|| {
        Some(Pattern::Absence {
            start: start?,
            cancel: cancel?,
            restart: restart?,
            cancel_when_cart_empty: cancel_when_cart_empty?,
        })
    })();
    (pattern, after)
}

fn count(checker: &mut Checker, fields: &Fields<'_>) -> (Option<Pattern>, Option<Offset>) {
    let event = checker.required(fields, "event", MATCH_FORMS, event_match);
    let min = checker.optional(fields, "min", 1, |c, n, f| c.count(n, f, 1, u32::MAX));
    let window = checker.required(fields, "window", WINDOW_FORMS, window);
    let group_by = checker.optional(fields, "group_by", Vec::new(), |c, n, f| {
        c.list(n, f, "an array of property names", |c, n, f| {
            c.text(n, f, "a property name")
        })
    });
    let unless = match_list(checker, fields, "unless");
    let fire = checker.optional(fields, "fire", CountFire::OnReach, |c, n, f| {
        c.choice(
            n,
            f,
            &[
                ("on_reach", CountFire::OnReach),
                ("on_close", CountFire::OnClose),
            ],
        )
    });
    if let (Some(Window::Sliding(_)), Some(CountFire::OnClose), Some(node)) =
        (&window, &fire, fields.get("fire"))
    {
        checker.report(
            &node.origin,
            &fields.field("fire"),
            "a sliding window never closes, so it cannot fire on close",
            "\"on_reach\" with a sliding window, or a tumbling or session window",
        );
    }
    let delay = delay(checker, fields);
    let pattern = (|| {
        Some(Pattern::Count {
            event: event?,
            min: min?,
            window: window?,
            group_by: group_by?,
            unless: unless?,
            fire: fire?,
        })
    })();
    (pattern, delay)
}

/// Accepted text for count windows.
const WINDOW_FORMS: &str =
    "a table with exactly one of tumbling, sliding or session = a duration, e.g. { session = \"30m\" }";

/// `{ tumbling = "1d" }`, `{ sliding = "1h" }` or `{ session = "30m" }`.
fn window(checker: &mut Checker, node: &Node, field: &str) -> Option<Window> {
    let fields = checker.table_of(node, field, &["tumbling", "sliding", "session"])?;
    let [entry] = fields.entries else {
        checker.report(
            &node.origin,
            field,
            "needs exactly one window shape",
            WINDOW_FORMS,
        );
        return None;
    };
    let shape: fn(Span) -> Window = match entry.key.as_str() {
        "tumbling" => Window::Tumbling,
        "sliding" => Window::Sliding,
        "session" => Window::Session,
        _ => return None, // reported as an unknown field
    };
    checker
        .span(&entry.value, &fields.field(&entry.key), SpanRule::Positive)
        .map(shape)
}

fn inactivity(
    checker: &mut Checker,
    fields: &Fields<'_>,
    repeat_at: &mut Vec<Span>,
) -> (Option<Pattern>, Option<Offset>) {
    const AFTER: OffsetRules = OffsetRules {
        cadence: true,
        negative: false,
    };
    let activity = checker.required(fields, "activity", MATCH_FORMS, event_match);
    let after = checker.required(fields, "after", &AFTER.accepted(), |c, n, f| {
        offset(c, n, f, AFTER)
    });
    if let Some(node) = fields.get("repeat") {
        let field = fields.field("repeat");
        if let Some((every, times)) = repeat(checker, node, &field) {
            match &after {
                Some(Offset::Fixed(first)) => {
                    repeat_at.extend((1..i64::from(times)).map(|i| *first + every * i));
                }
                Some(_) => checker.report(
                    &node.origin,
                    &field,
                    "repeat needs a fixed after",
                    "a fixed duration for `after` (e.g. after = \"30d\"), or [[trigger.ladder]] steps instead of repeat",
                ),
                None => {}
            }
        }
    }
    let pattern = activity.map(|activity| Pattern::Inactivity { activity });
    (pattern, after)
}

/// `{ every = "3d", times = 3 }`: `times` counts the first send.
fn repeat(checker: &mut Checker, node: &Node, field: &str) -> Option<(Span, u32)> {
    let fields = checker.table_of(node, field, &["every", "times"])?;
    let every = required_span(checker, &fields, "every", SpanRule::Positive);
    let times = checker.required(
        &fields,
        "times",
        "how many sends in all, counting the first: an integer from 1 to 100",
        |c, n, f| c.count(n, f, 1, 100),
    );
    Some((every?, times?))
}

fn sequence(checker: &mut Checker, fields: &Fields<'_>) -> (Option<Pattern>, Option<Offset>) {
    let first = checker.required(fields, "first", MATCH_FORMS, event_match);
    let then = checker.required(fields, "then", MATCH_FORMS, event_match);
    let within = required_span(checker, fields, "within", SpanRule::Positive);
    let delay = delay(checker, fields);
    let pattern = (|| {
        Some(Pattern::Sequence {
            first: first?,
            then: then?,
            within: within?,
        })
    })();
    (pattern, delay)
}

fn schedule(checker: &mut Checker, fields: &Fields<'_>) -> (Option<Pattern>, Option<Offset>) {
    const OFFSET: OffsetRules = OffsetRules {
        cadence: false,
        negative: true,
    };
    let source = checker.required(fields, "source", SOURCE_FORMS, schedule_source);
    let offset = checker.optional(fields, "offset", Offset::Fixed(Span::ZERO), |c, n, f| {
        offset(c, n, f, OFFSET)
    });
    (source.map(|source| Pattern::Schedule { source }), offset)
}

/// Accepted text for schedule sources.
const SOURCE_FORMS: &str = "{ trait = \"birthday\", at = \"09:00\" }, { event = <event match>, property = \"expires_at\", default_after = \"3y\" }, or { period = \"month\"|\"quarter\"|\"year\", event = <event match>, property = \"revenue\" (optional), below = 1000, periods = 1 }";

fn schedule_source(checker: &mut Checker, node: &Node, field: &str) -> Option<ScheduleSource> {
    let fields = checker.table(node, field, SOURCE_FORMS)?;
    if fields.has("trait") {
        fields.check_keys(checker, &["trait", "at"]);
        let name = checker.required(&fields, "trait", "an identify trait name", |c, n, f| {
            c.text(
                n,
                f,
                "an identify trait holding YYYY-MM-DD or MM-DD, e.g. \"birthday\"",
            )
        });
        let minute = checker.required(
            &fields,
            "at",
            "a local time \"HH:MM\"",
            Checker::time_of_day,
        );
        Some(ScheduleSource::YearlyTrait {
            name: name?,
            minute_of_day: minute?,
        })
    } else if fields.has("period") {
        fields.check_keys(
            checker,
            &["period", "event", "property", "below", "periods"],
        );
        let period = checker.required(&fields, "period", "month, quarter or year", |c, n, f| {
            c.choice(
                n,
                f,
                &[
                    ("month", Period::Month),
                    ("quarter", Period::Quarter),
                    ("year", Period::Year),
                ],
            )
        });
        let event = checker.required(&fields, "event", MATCH_FORMS, event_match);
        let property = optional_property(checker, &fields);
        let below = checker.required(
            &fields,
            "below",
            "a number: the target per period",
            |c, n, f| c.number(n, f, "a number: the target per period", |_| true),
        );
        let periods = checker.optional(&fields, "periods", 1, |c, n, f| c.count(n, f, 1, 1000));
        Some(ScheduleSource::PeriodEnd {
            period: period?,
            condition: PeriodCondition {
                event: event?,
                property: property?,
                below: below?,
                periods: periods?,
            },
        })
    } else if fields.has("event") {
        fields.check_keys(checker, &["event", "property", "default_after"]);
        let event = checker.required(&fields, "event", MATCH_FORMS, event_match);
        let property = checker.required(
            &fields,
            "property",
            "an event property holding an RFC 3339 time",
            |c, n, f| c.text(n, f, "an event property holding an RFC 3339 time"),
        );
        let default_after = required_span(checker, &fields, "default_after", SpanRule::NonNegative);
        Some(ScheduleSource::EventTime {
            event: event?,
            property: property?,
            default_after: default_after?,
        })
    } else {
        checker.report(
            &node.origin,
            field,
            "a schedule source needs `trait`, `event` or `period`",
            SOURCE_FORMS,
        );
        None
    }
}

/// The optional numeric `property` of measures and period conditions
/// (absent: count events).
fn optional_property(checker: &mut Checker, fields: &Fields<'_>) -> Option<Option<String>> {
    checker.optional(fields, "property", None, |c, n, f| {
        c.text(n, f, "a numeric event property to sum, e.g. \"revenue\"")
            .map(Some)
    })
}

fn threshold(checker: &mut Checker, fields: &Fields<'_>) -> (Option<Pattern>, Option<Offset>) {
    const MEASURE_FORMS: &str =
        "{ event = <event match>, property = \"revenue\" (optional: absent counts events), window = \"365d\" }";
    let measure = checker.required(fields, "measure", MEASURE_FORMS, |c, n, f| {
        let measure = c.table_of(n, f, &["event", "property", "window"])?;
        let event = c.required(&measure, "event", MATCH_FORMS, event_match);
        let property = optional_property(c, &measure);
        let window = required_span(c, &measure, "window", SpanRule::Positive);
        Some(Measure {
            event: event?,
            property: property?,
            window: window?,
        })
    });
    let bound = bound(checker, fields);
    let delay = delay(checker, fields);
    let pattern = (|| {
        Some(Pattern::Threshold {
            measure: measure?,
            bound: bound?,
        })
    })();
    (pattern, delay)
}

/// Exactly one of `at_least`, `near_next_tier`, `top_percent`, `drop_percent`.
fn bound(checker: &mut Checker, fields: &Fields<'_>) -> Option<Bound> {
    const BOUNDS: [&str; 4] = ["at_least", "near_next_tier", "top_percent", "drop_percent"];
    const BOUND_FORMS: &str = "exactly one of at_least = n, near_next_tier = { tiers = [...], within_percent = p }, top_percent = p (0 < p < 100), drop_percent = p (0 < p <= 100)";
    let present: Vec<&str> = BOUNDS.into_iter().filter(|key| fields.has(key)).collect();
    let [key] = present[..] else {
        if present.is_empty() {
            checker.report(
                &fields.node.origin,
                &fields.field("at_least"),
                "a threshold trigger needs a bound",
                BOUND_FORMS,
            );
        } else {
            let problem = format!("only one bound allowed, found {}", present.join(", "));
            for key in &present[1..] {
                if let Some(node) = fields.get(key) {
                    checker.report(
                        &node.origin,
                        &fields.field(key),
                        problem.clone(),
                        BOUND_FORMS,
                    );
                }
            }
        }
        return None;
    };
    let node = fields.get(key)?;
    let field = fields.field(key);
    match key {
        "at_least" => checker
            .number(node, &field, "a number", |_| true)
            .map(Bound::AtLeast),
        "top_percent" => checker
            .number(
                node,
                &field,
                "a percentage more than 0 and less than 100",
                |p| p > 0.0 && p < 100.0,
            )
            .map(Bound::TopPercent),
        "drop_percent" => checker
            .number(node, &field, "a percentage more than 0, at most 100", |p| {
                p > 0.0 && p <= 100.0
            })
            .map(Bound::DropPercent),
        _ => near_next_tier(checker, node, &field),
    }
}

/// `{ tiers = [1000, 5000], within_percent = 10 }`.
fn near_next_tier(checker: &mut Checker, node: &Node, field: &str) -> Option<Bound> {
    const TIERS: &str =
        "an array of positive numbers in strictly ascending order, e.g. [1000, 5000]";
    let fields = checker.table_of(node, field, &["tiers", "within_percent"])?;
    let tiers = checker.required(&fields, "tiers", TIERS, |c, n, f| {
        let tiers = c.list(n, f, TIERS, |c, n, f| c.number(n, f, TIERS, |x| x > 0.0))?;
        let ascending = tiers.windows(2).all(|pair| pair[0] < pair[1]);
        if tiers.is_empty() || !ascending {
            let problem = if tiers.is_empty() {
                "no tiers"
            } else {
                "tiers are not in strictly ascending order"
            };
            c.report(&n.origin, f, problem, TIERS);
            return None;
        }
        Some(tiers)
    });
    const WITHIN: &str =
        "a percentage more than 0, at most 100 (10 means \"at 90 % of the next tier\")";
    let within_percent = checker.required(&fields, "within_percent", WITHIN, |c, n, f| {
        c.number(n, f, WITHIN, |p| p > 0.0 && p <= 100.0)
    });
    Some(Bound::NearNextTier {
        tiers: tiers?,
        within_percent: within_percent?,
    })
}

fn rate(checker: &mut Checker, fields: &Fields<'_>) -> (Option<Pattern>, Option<Offset>) {
    let events = checker.required(fields, "events", MATCH_LIST_FORMS, |c, n, f| {
        let events = event_matches(c, n, f)?;
        if events.is_empty() {
            c.report(&n.origin, f, "no events to count", MATCH_LIST_FORMS);
            return None;
        }
        Some(events)
    });
    let window = required_span(checker, fields, "window", SpanRule::Positive);
    let baseline = required_span(checker, fields, "baseline", SpanRule::Positive);
    if let (Some(window), Some(baseline), Some(node)) = (window, baseline, fields.get("baseline")) {
        if baseline <= window {
            checker.report(
                &node.origin,
                &fields.field("baseline"),
                format!("baseline {baseline} is not longer than the window {window}"),
                format!("a duration longer than the window ({window}), e.g. 7d for a 1h window"),
            );
        }
    }
    const INCREASE: &str = "a percentage more than 0 (30 means \"30 % above the baseline\")";
    let increase_percent = checker.required(fields, "increase_percent", INCREASE, |c, n, f| {
        c.number(n, f, INCREASE, |p| p > 0.0)
    });
    let min_count = checker.optional(fields, "min_count", 1, |c, n, f| c.count(n, f, 1, u32::MAX));
    let pause_marketing = checker.optional(fields, "pause_marketing", Span::ZERO, |c, n, f| {
        c.span(n, f, SpanRule::NonNegative)
    });
    let delay = delay(checker, fields);
    let pattern = (|| {
        Some(Pattern::Rate {
            events: events?,
            window: window?,
            baseline: baseline?,
            increase_percent: increase_percent?,
            min_count: min_count?,
            pause_marketing: pause_marketing?,
        })
    })();
    (pattern, delay)
}
