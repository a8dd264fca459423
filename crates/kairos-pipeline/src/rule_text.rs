//! Generated rule texts: when a trigger has no `rule`, its `reason.rule`
//! is written from the pattern, e.g. "Product Added not followed by Order
//! Completed within 30m".

use crate::check::format_number;
use crate::event_match::{describe, describe_any};
use crate::offset;
use kairos_engine::config::{Bound, CountFire, Offset, Pattern, Period, ScheduleSource, Window};
use kairos_model::Span;

/// The rule in words for `pattern` whose step 1 is due at `first_at`.
pub(crate) fn rule_text(pattern: &Pattern, first_at: &Offset) -> String {
    match pattern {
        Pattern::Absence { start, cancel, .. } => {
            if cancel.is_empty() {
                format!(
                    "{}, then nothing for {}",
                    describe(start),
                    offset::describe(first_at)
                )
            } else {
                format!(
                    "{} not followed by {} within {}",
                    describe(start),
                    describe_any(cancel),
                    offset::describe(first_at)
                )
            }
        }
        Pattern::Count {
            event,
            min,
            window,
            group_by,
            unless,
            fire,
        } => {
            let mut text = format!("at least {min} {}", describe(event));
            if !group_by.is_empty() {
                text.push_str(&format!(" per {}", group_by.join("/")));
            }
            text.push_str(&match window {
                Window::Tumbling(span) => format!(" in a fixed {span} window"),
                Window::Sliding(span) => format!(" in any {span}"),
                Window::Session(span) => format!(" in a {span} session"),
            });
            if !unless.is_empty() {
                text.push_str(&format!(", unless {}", describe_any(unless)));
            }
            if *fire == CountFire::OnClose {
                text.push_str(", when the window closes");
            }
            text
        }
        Pattern::Inactivity { activity } => {
            let what = if activity.name == "*" && activity.filters.is_empty() {
                "activity".to_string()
            } else {
                describe(activity)
            };
            format!("no {what} for {}", offset::describe(first_at))
        }
        Pattern::Sequence {
            first,
            then,
            within,
        } => format!(
            "{} then {} within {within}",
            describe(first),
            describe(then)
        ),
        Pattern::Schedule { source } => {
            let mut text = match source {
                ScheduleSource::YearlyTrait {
                    name,
                    minute_of_day,
                } => format!(
                    "{name} at {:02}:{:02} local",
                    minute_of_day / 60,
                    minute_of_day % 60
                ),
                ScheduleSource::EventTime {
                    event, property, ..
                } => format!("the {property} time of {}", describe(event)),
                ScheduleSource::PeriodEnd { period, condition } => {
                    let period_name = match period {
                        Period::Month => "month",
                        Period::Quarter => "quarter",
                        Period::Year => "year",
                    };
                    let measure = match &condition.property {
                        Some(property) => format!("{property} of {}", describe(&condition.event)),
                        None => describe(&condition.event),
                    };
                    let run = if condition.periods == 1 {
                        String::new()
                    } else {
                        format!(" for {} {period_name}s in a row", condition.periods)
                    };
                    format!(
                        "end of each {period_name} with less than {} {measure}{run}",
                        format_number(condition.below)
                    )
                }
            };
            match first_at {
                Offset::Fixed(span) if *span < Span::ZERO => {
                    text = format!("{} before {text}", Span(-span.millis()));
                }
                Offset::Fixed(span) if *span > Span::ZERO => {
                    text = format!("{span} after {text}");
                }
                Offset::Fixed(_) => {}
                other => text = format!("{} after {text}", offset::describe(other)),
            }
            text
        }
        Pattern::Threshold { measure, bound } => {
            let aggregate = match &measure.property {
                Some(property) => format!("sum of {property}"),
                None => format!("count of {}", describe(&measure.event)),
            };
            let bound = match bound {
                Bound::AtLeast(value) => format!("reaches {}", format_number(*value)),
                Bound::NearNextTier {
                    tiers,
                    within_percent,
                } => {
                    let tiers: Vec<String> = tiers.iter().map(|t| format_number(*t)).collect();
                    format!(
                        "within {}% of the next tier ({})",
                        format_number(*within_percent),
                        tiers.join(", ")
                    )
                }
                Bound::TopPercent(percent) => format!("in the top {}%", format_number(*percent)),
                Bound::DropPercent(percent) => {
                    format!("down {}% on the window before", format_number(*percent))
                }
            };
            format!("{aggregate} over {} {bound}", measure.window)
        }
        Pattern::Rate {
            events,
            window,
            baseline,
            increase_percent,
            ..
        } => format!(
            "{} in {window} ≥ +{}% over the {baseline} baseline",
            describe_any(events),
            format_number(*increase_percent)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kairos_engine::config::{EventMatch, Measure};

    fn fixed(text: &str) -> Offset {
        Offset::Fixed(Span::parse(text).unwrap_or_default())
    }

    #[test]
    fn absence_reads_like_the_spec() {
        let pattern = Pattern::Absence {
            start: EventMatch::named("Product Added"),
            cancel: vec![EventMatch::named("Order Completed")],
            restart: true,
            cancel_when_cart_empty: false,
        };
        assert_eq!(
            rule_text(&pattern, &fixed("30m")),
            "Product Added not followed by Order Completed within 30m"
        );
    }

    #[test]
    fn count_names_groups_and_unless() {
        let pattern = Pattern::Count {
            event: EventMatch::named("Product Viewed"),
            min: 3,
            window: Window::Session(Span::MINUTE * 30),
            group_by: vec!["product_id".into(), "category".into()],
            unless: vec![EventMatch::named("Product Added")],
            fire: CountFire::OnReach,
        };
        assert_eq!(
            rule_text(&pattern, &fixed("0s")),
            "at least 3 Product Viewed per product_id/category in a 30m session, unless Product Added"
        );
    }

    #[test]
    fn inactivity_with_cadence() {
        let pattern = Pattern::Inactivity {
            activity: EventMatch::named("Order Completed"),
        };
        let cadence = Offset::Cadence {
            multiplier: 2.0,
            floor: Span::DAY * 14,
            min_history: 3,
            sparse_floor: None,
        };
        assert_eq!(
            rule_text(&pattern, &cadence),
            "no Order Completed for 2 × the customer's median gap (at least 14d)"
        );
    }

    #[test]
    fn schedule_threshold_rate_and_sequence() {
        let birthday = Pattern::Schedule {
            source: ScheduleSource::YearlyTrait {
                name: "birthday".into(),
                minute_of_day: 540,
            },
        };
        assert_eq!(
            rule_text(&birthday, &fixed("0s")),
            "birthday at 09:00 local"
        );
        let top = Pattern::Threshold {
            measure: Measure {
                event: EventMatch::named("Order Completed"),
                property: Some("revenue".into()),
                window: Span::DAY * 365,
            },
            bound: Bound::TopPercent(5.0),
        };
        assert_eq!(
            rule_text(&top, &fixed("0s")),
            "sum of revenue over 365d in the top 5%"
        );
        let rate = Pattern::Rate {
            events: vec![EventMatch::named("Complaint Filed")],
            window: Span::HOUR,
            baseline: Span::DAY * 7,
            increase_percent: 30.0,
            min_count: 5,
            pause_marketing: Span::ZERO,
        };
        assert_eq!(
            rule_text(&rate, &fixed("0s")),
            "Complaint Filed in 1h ≥ +30% over the 7d baseline"
        );
        let sequence = Pattern::Sequence {
            first: EventMatch::named("Product Added"),
            then: EventMatch::named("Store Visited"),
            within: Span::DAY * 7,
        };
        assert_eq!(
            rule_text(&sequence, &fixed("0s")),
            "Product Added then Store Visited within 7d"
        );
    }
}
