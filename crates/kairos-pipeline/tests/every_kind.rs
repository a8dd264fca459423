//! A valid file with one trigger of every kind compiles to the expected
//! engine configuration.

use crate::support::{compile_ok, trigger};
use kairos_engine::config::{
    Bound, Category, CountFire, FilterTest, KeySpec, LateEvents, Offset, Pattern, Period,
    QuietHours, QuietHoursMode, ScheduleSource, Window,
};
use kairos_model::Span;

const EVERY_KIND: &str = include_str!("fixtures/every_kind.toml");

fn span(text: &str) -> Span {
    Span::parse(text).expect("test span")
}

fn fixed(text: &str) -> Offset {
    Offset::Fixed(span(text))
}

#[test]
fn settings_policy_and_stores() {
    let pipeline = compile_ok(EVERY_KIND, &[]);
    assert_eq!(pipeline.name, "every-kind");
    let settings = &pipeline.settings;
    assert_eq!(settings.allowed_lateness, span("10s"));
    assert_eq!(settings.late_events, LateEvents::Drop);
    assert_eq!(settings.default_timezone, chrono_tz::Asia::Shanghai);
    assert_eq!(settings.erasure_event, "Forget Me");
    assert_eq!((settings.seed, settings.max_keys_per_trigger), (42, 8));
    let policy = &pipeline.policy;
    assert_eq!(policy.holdout_percent, 2.5);
    assert_eq!(policy.consent_required, ["sms", "email"]);
    assert_eq!(
        (policy.daily_caps.targeted, policy.daily_caps.content),
        (2, 0)
    );
    assert_eq!(
        policy.quiet_hours,
        Some(QuietHours {
            start_minute: 21 * 60 + 30,
            end_minute: 7 * 60
        })
    );
    assert_eq!(policy.arbitration_window, span("15m"));
    assert_eq!(pipeline.stores.len(), 1);
    assert_eq!(pipeline.stores[0].id, "sh-001");
    assert_eq!(pipeline.triggers.len(), 12);
}

#[test]
fn defaults_apply_when_tables_are_absent() {
    let pipeline = compile_ok("name = \"bare\"\n", &[]);
    assert_eq!(pipeline.settings.dedup_lookback, Span::HOUR * 24);
    assert_eq!(pipeline.policy.weekly_marketing_cap, 3);
    assert!(pipeline.triggers.is_empty());
    let no_quiet = compile_ok("name = \"q\"\n[policy]\nquiet_hours = false\n", &[]);
    assert_eq!(no_quiet.policy.quiet_hours, None);
}

#[test]
fn absence_with_ladder_variants_and_payload() {
    let pipeline = compile_ok(EVERY_KIND, &[]);
    let cart = trigger(&pipeline, "abandoned_cart");
    let Pattern::Absence {
        start,
        cancel,
        restart,
        cancel_when_cart_empty,
    } = &cart.pattern
    else {
        panic!("absence expected, got {:?}", cart.pattern);
    };
    assert_eq!(start.name, "Product Added");
    assert_eq!(cancel.len(), 2);
    assert_eq!(cancel[1].identified, Some(true));
    assert!(!restart && *cancel_when_cart_empty);
    assert_eq!(cart.key, KeySpec::Property("cart_id".into()));
    assert_eq!(
        &*cart.rule,
        "Product Added not followed by Order Completed or Cart Viewed (identified) within 30m"
    );
    assert_eq!(cart.steps.len(), 2);
    assert_eq!(cart.steps[0].at, fixed("30m"));
    assert_eq!(cart.steps[0].offer.as_deref(), Some("CART10"));
    assert_eq!(
        (cart.steps[1].at.clone(), &*cart.steps[1].channel),
        (fixed("24h"), "email")
    );
    assert_eq!(cart.steps[1].offer, None);
    assert_eq!(cart.priority, 80);
    assert_eq!(cart.category, Category::Targeted);
    assert_eq!(cart.quiet_hours, QuietHoursMode::Defer);
    assert_eq!(cart.expires_after, Span::HOUR * 24);
    assert_eq!(cart.rollout_percent, 50.0);
    assert!(cart.payload.cart);
    assert_eq!(cart.payload.properties, ["store_id"]);
    assert_eq!(cart.variants.len(), 2);
    assert_eq!(cart.variants[0].first_step_at, Some(span("15m")));
    assert_eq!(cart.variants[0].channel.as_deref(), Some("sms"));
    assert_eq!(cart.variants[1].first_step_at, None);
}

#[test]
fn count_with_filters_and_window() {
    let pipeline = compile_ok(EVERY_KIND, &[]);
    let browse = trigger(&pipeline, "browse_abandon");
    let Pattern::Count {
        event,
        min,
        window,
        group_by,
        unless,
        fire,
    } = &browse.pattern
    else {
        panic!("count expected");
    };
    assert_eq!(*min, 3);
    assert_eq!(*window, Window::Session(span("30m")));
    assert_eq!(group_by, &["product_id", "category"]);
    assert_eq!(unless[0].name, "Product Added");
    assert_eq!(*fire, CountFire::OnClose);
    let tests: Vec<&FilterTest> = event.filters.iter().map(|f| &f.test).collect();
    assert_eq!(tests[0], &FilterTest::AtLeast(10.0));
    assert!(matches!(tests[1], FilterTest::OneOf(values) if values.len() == 2));
    assert_eq!(tests[2], &FilterTest::NearStore { within_km: 3.0 });
    assert_eq!(
        browse.key,
        KeySpec::ListItem {
            list: "products".into(),
            field: "product_id".into()
        }
    );
    assert_eq!(browse.steps[0].at, fixed("5m"));
    assert_eq!(browse.category, Category::Content);
}

#[test]
fn inactivity_with_cadence_and_with_repeat() {
    let pipeline = compile_ok(EVERY_KIND, &[]);
    let win_back = trigger(&pipeline, "win_back");
    assert!(matches!(
        win_back.steps[0].at,
        Offset::Cadence { multiplier, min_history: 3, sparse_floor: Some(_), .. } if multiplier == 2.0
    ));
    assert_eq!(
        &*win_back.rule,
        "no Order Completed for 2 × the customer's median gap (at least 14d)"
    );
    let dormant = trigger(&pipeline, "dormant");
    let ats: Vec<Offset> = dormant.steps.iter().map(|s| s.at.clone()).collect();
    assert_eq!(ats, [fixed("30d"), fixed("33d"), fixed("36d")]);
    assert!(dormant
        .steps
        .iter()
        .all(|s| &*s.channel == "push" && s.offer.as_deref() == Some("WAKE5")));
    assert_eq!(&*dormant.rule, "no activity for 30d");
}

#[test]
fn sequence_and_schedules() {
    let pipeline = compile_ok(EVERY_KIND, &[]);
    let visit = trigger(&pipeline, "cart_then_visit");
    assert!(matches!(&visit.pattern, Pattern::Sequence { within, .. } if *within == span("7d")));
    assert_eq!(
        &*visit.rule,
        "Product Added then Store Visited where method = qr within 7d"
    );

    let birthday = trigger(&pipeline, "birthday");
    assert!(matches!(
        &birthday.pattern,
        Pattern::Schedule {
            source: ScheduleSource::YearlyTrait {
                minute_of_day: 540,
                ..
            }
        }
    ));
    assert_eq!(&*birthday.rule, "birthday at 09:00 local");
    assert_eq!(birthday.quiet_hours, QuietHoursMode::Ignore);

    let expiry = trigger(&pipeline, "points_expiry");
    let ats: Vec<Offset> = expiry.steps.iter().map(|s| s.at.clone()).collect();
    assert_eq!(ats, [fixed("-30d"), fixed("-7d"), fixed("-1d")]);
    assert_eq!(
        &*expiry.steps[1].channel, "email",
        "ladder channel defaults to step 1's"
    );
    assert_eq!(
        expiry.quiet_hours,
        QuietHoursMode::Ignore,
        "transactional default"
    );
    assert!(matches!(
        &expiry.pattern,
        Pattern::Schedule { source: ScheduleSource::EventTime { default_after, .. } } if *default_after == span("3y")
    ));

    let slipping = trigger(&pipeline, "slipping_member");
    let Pattern::Schedule {
        source: ScheduleSource::PeriodEnd { period, condition },
    } = &slipping.pattern
    else {
        panic!("period end expected");
    };
    assert_eq!(*period, Period::Quarter);
    assert_eq!((condition.below, condition.periods), (1000.0, 2));
    assert_eq!(condition.property.as_deref(), Some("revenue"));
}

#[test]
fn thresholds_by_property_offsets_and_rate() {
    let pipeline = compile_ok(EVERY_KIND, &[]);
    let top = trigger(&pipeline, "top_spenders");
    assert!(
        matches!(&top.pattern, Pattern::Threshold { bound: Bound::TopPercent(p), .. } if *p == 5.0)
    );
    assert_eq!(&*top.rule, "sum of revenue over 365d in the top 5%");
    let tier = trigger(&pipeline, "near_tier");
    assert!(matches!(
        &tier.pattern,
        Pattern::Threshold { bound: Bound::NearNextTier { tiers, within_percent }, .. }
            if tiers == &[1000.0, 5000.0] && *within_percent == 10.0
    ));

    let sla = trigger(&pipeline, "complaint_sla");
    let Offset::ByProperty {
        property,
        values,
        default,
    } = &sla.steps[0].at
    else {
        panic!("by-property offset expected");
    };
    assert_eq!(property, "severity");
    assert_eq!(
        values,
        &[
            ("1".to_string(), span("2h")),
            ("2".to_string(), span("12h"))
        ]
    );
    assert_eq!(*default, span("48h"));
    assert_eq!(&*sla.steps[0].channel, "service_desk");

    let spike = trigger(&pipeline, "complaint_spike");
    assert!(matches!(
        &spike.pattern,
        Pattern::Rate { min_count: 5, increase_percent, pause_marketing, .. }
            if *increase_percent == 30.0 && *pause_marketing == span("2h")
    ));
    assert_eq!(spike.category, Category::Ops);
    assert_eq!(&*spike.steps[0].channel, "ops");
    assert_eq!(spike.quiet_hours, QuietHoursMode::Ignore);
    assert_eq!(
        &*spike.rule,
        "Complaint Filed in 1h ≥ +30% over the 7d baseline"
    );
}
