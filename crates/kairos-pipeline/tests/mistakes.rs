//! One test per kind of mistake: each is reported at the right
//! `file:line:column`, names the field, and says what is accepted.

use crate::support::{compile_err, only_error, render};

/// A valid pipeline; tests break it in one place.
/// Lines: 1 name, 3 `[[trigger]]`, 4 id, 5 kind, 6 start, 7 after, 8 channel.
const BASE: &str = r#"name = "t"

[[trigger]]
id = "cart"
kind = "absence"
start = "Product Added"
after = "30m"
channel = "push"
"#;

/// `BASE` with `from` replaced by `to` (which must occur).
fn edit(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "{from:?} not in BASE");
    BASE.replacen(from, to, 1)
}

/// `BASE` with `lines` appended to the trigger.
fn with(lines: &str) -> String {
    format!("{BASE}{lines}")
}

#[test]
fn base_is_valid() {
    crate::support::compile_ok(BASE, &[]);
}

#[test]
fn toml_syntax_error_has_line_and_column() {
    let error = only_error("name = \"t\"\n\n[[trigger]\nid = \"x\"\n");
    assert_eq!(
        (error.file.as_str(), error.line),
        ("test.toml", 3),
        "{error}"
    );
    assert_eq!(error.column, 11, "{error}");
    assert_eq!(error.problem, "unclosed array table, expected `]`");
    assert_eq!(error.field, "syntax");
    assert!(error.accepted.contains("TOML"));
    let error = only_error("name = \"t\nseed = 1\n");
    assert_eq!((error.line, error.column), (1, 10), "{error}");
}

#[test]
fn toml_syntax_errors_come_in_file_order() {
    let errors = compile_err(
        "name = \"t\"\nname = \"u\"\n[settings]\n[settings]\nx = \ny = ]\n",
        &[],
    );
    let lines: Vec<usize> = errors.iter().map(|error| error.line).collect();
    assert!(lines.len() >= 3, "{}", render(&errors));
    assert!(
        lines.windows(2).all(|pair| pair[0] <= pair[1]),
        "{}",
        render(&errors)
    );
}

#[test]
fn unknown_top_level_key() {
    let error = only_error(&format!("nmae = \"typo\"\n{BASE}"));
    assert_eq!(
        error.to_string(),
        "test.toml:1:1: nmae: unknown field `nmae`; accepted: name, settings, policy, stores, trigger"
    );
}

#[test]
fn unknown_trigger_field_lists_the_accepted_ones() {
    let error = only_error(&with("afterr = \"1h\"\n"));
    assert_eq!((error.line, error.column), (9, 1));
    assert_eq!(error.field, "trigger.cart.afterr");
    assert_eq!(error.problem, "unknown field `afterr`");
    assert!(
        error.accepted.starts_with("for absence triggers: start, cancel, restart, cancel_when_cart_empty, after; for every trigger: id, kind,"),
        "{error}"
    );
}

#[test]
fn field_of_another_kind_names_its_kinds() {
    let error = only_error(&with("window = { session = \"30m\" }\n"));
    assert_eq!(error.field, "trigger.cart.window");
    assert_eq!(
        error.problem,
        "`window` is a field of count/rate triggers, not of absence triggers"
    );
    assert!(
        error
            .accepted
            .contains("for absence triggers: start, cancel"),
        "{error}"
    );
}

#[test]
fn wrong_type_says_what_was_found() {
    let error = only_error(&with("priority = \"high\"\n"));
    assert_eq!((error.line, error.column), (9, 12));
    assert_eq!(error.field, "trigger.cart.priority");
    assert_eq!(error.problem, "expected an integer, found string \"high\"");
    assert_eq!(error.accepted, "an integer from 0 to 100");
    let error = only_error(&edit("start = \"Product Added\"", "start = 7"));
    assert_eq!(
        error.problem,
        "expected an event name or a table, found integer 7"
    );
}

#[test]
fn bad_duration() {
    let error = only_error(&edit("after = \"30m\"", "after = \"5 parsecs\""));
    assert_eq!((error.line, error.column), (7, 9));
    assert_eq!(error.field, "trigger.cart.after");
    assert_eq!(error.problem, "\"5 parsecs\" is not a duration");
    assert!(error.accepted.contains("30m, 24h"), "{error}");
    let negative = only_error(&edit("after = \"30m\"", "after = \"-30m\""));
    assert_eq!(negative.problem, "-30m must not be negative");
    // Durations are bounded (the engine's timers rely on it), by-property
    // offsets included.
    let long = only_error(&edit("after = \"30m\"", "after = \"9000y\""));
    assert_eq!(long.problem, "9000y is longer than 100y");
    assert!(long.accepted.contains("to 100y"), "{long}");
    let by_property =
        r#"after = { by = "severity", values = { "1" = "60d", "2" = "101y" }, default = "60d" }"#;
    let long = only_error(&edit("after = \"30m\"", by_property));
    assert_eq!(long.problem, "101y is longer than 100y");
    crate::support::compile_ok(&edit("after = \"30m\"", "after = \"100y\""), &[]);
}

#[test]
fn bad_time_zone() {
    let error = only_error(&format!(
        "{BASE}\n[settings]\ndefault_timezone = \"Mars/Olympus\"\n"
    ));
    assert_eq!((error.line, error.column), (11, 20));
    assert_eq!(error.field, "settings.default_timezone");
    assert_eq!(error.problem, "unknown time zone \"Mars/Olympus\"");
    assert!(error.accepted.contains("IANA"));
}

#[test]
fn packing_idle_customers_waits_at_least_an_hour() {
    let error = only_error(&format!("{BASE}\n[settings]\npack_idle_after = \"30m\"\n"));
    assert_eq!(error.field, "settings.pack_idle_after");
    assert_eq!(error.problem, "must be at least 1h, not 30m");
    assert!(error.accepted.starts_with("a duration from 1h to 100y"));
}

#[test]
fn out_of_range_numbers() {
    let error = only_error(&format!(
        "{BASE}\n[settings]\nmax_keys_per_trigger = 2000\n"
    ));
    assert_eq!(error.field, "settings.max_keys_per_trigger");
    assert_eq!(error.problem, "2000 is out of range");
    assert_eq!(error.accepted, "an integer from 1 to 1024");
    let error = only_error(&format!("{BASE}\n[policy]\nholdout_percent = 100.5\n"));
    assert_eq!(error.field, "policy.holdout_percent");
    assert_eq!(error.accepted, "a number from 0 to 100");
    let error = only_error(&format!(
        "{BASE}[[stores]]\nid = \"a\"\nlat = 91\nlon = 0\n"
    ));
    assert_eq!(error.field, "stores[0].lat");
}

#[test]
fn duplicate_trigger_id() {
    let second = BASE.replacen("name = \"t\"\n", "", 1);
    let error = only_error(&format!("{BASE}{second}"));
    assert_eq!((error.line, error.column), (11, 6));
    assert_eq!(error.field, "trigger.cart.id");
    assert_eq!(error.problem, "another trigger already has id \"cart\"");
}

#[test]
fn missing_required_field_points_at_the_table() {
    let error = only_error(&edit("after = \"30m\"\n", ""));
    assert_eq!((error.line, error.column), (3, 1));
    assert_eq!(error.field, "trigger.cart.after");
    assert_eq!(error.problem, "missing required field `after`");
    let error = only_error(&format!("{BASE}[[trigger]]\nkind = \"absence\"\nstart = \"A\"\nafter = \"1h\"\nchannel = \"push\"\n"));
    assert_eq!(error.field, "trigger[1].id", "{error}");
    let error = only_error("[settings]\nseed = 1\n");
    assert_eq!(
        (error.line, error.column, error.field.as_str()),
        (1, 1, "name")
    );
}

#[test]
fn bad_where_operator() {
    let error = only_error(&edit(
        "start = \"Product Added\"",
        "start = { event = \"Review Submitted\", where = { rating = { le = 2 } } }",
    ));
    assert_eq!(error.field, "trigger.cart.start.where.rating.le");
    assert_eq!(error.problem, "unknown field `le`");
    assert_eq!(
        error.accepted,
        "lt, lte, gt, gte, in, exists, near_store_km"
    );
    assert_eq!((error.line, error.column), (6, 60));
    let two = only_error(&edit(
        "start = \"Product Added\"",
        "start = { event = \"A\", where = { rating = { lt = 2, gt = 0 } } }",
    ));
    assert_eq!(two.problem, "one operator per property, found lt, gt");
}

#[test]
fn near_store_without_stores() {
    let text = edit(
        "start = \"Product Added\"",
        "start = { event = \"App Opened\", where = { location = { near_store_km = 3 } } }",
    );
    let error = only_error(&text);
    assert_eq!(
        error.field,
        "trigger.cart.start.where.location.near_store_km"
    );
    assert!(error.problem.contains("no [[stores]]"), "{error}");
    let with_store = format!("{text}\n[[stores]]\nid = \"s1\"\nlat = 1.5\nlon = 2\n");
    crate::support::compile_ok(&with_store, &[]);
}

#[test]
fn repeat_needs_a_fixed_after() {
    let text = r#"name = "t"
[[trigger]]
id = "dormant"
kind = "inactivity"
activity = "*"
after = { cadence = 2, floor = "14d", min_history = 3 }
repeat = { every = "3d", times = 3 }
channel = "push"
"#;
    let error = only_error(text);
    assert_eq!((error.line, error.column), (7, 10));
    assert_eq!(error.field, "trigger.dormant.repeat");
    assert_eq!(error.problem, "repeat needs a fixed after");
}

#[test]
fn cadence_only_for_inactivity() {
    let error = only_error(&edit(
        "after = \"30m\"",
        "after = { cadence = 2, floor = \"1d\", min_history = 3 }",
    ));
    assert_eq!(error.field, "trigger.cart.after");
    assert!(
        error.problem.contains("only allowed for an inactivity"),
        "{error}"
    );
}

#[test]
fn ladder_must_move_forward() {
    let error = only_error(&with(
        "[[trigger.ladder]]\nat = \"24h\"\n[[trigger.ladder]]\nat = \"12h\"\n",
    ));
    assert_eq!((error.line, error.column), (12, 6));
    assert_eq!(error.field, "trigger.cart.ladder[1].at");
    assert_eq!(
        error.problem,
        "at 12h is not later than the step before it (1d)"
    );
    let error = only_error(&with(
        "[[trigger.ladder]]\nat = \"10m\"\nchannel = \"email\"\n",
    ));
    assert_eq!(
        error.problem,
        "at 10m is not later than the step before it (30m)"
    );
}

#[test]
fn variants_need_positive_weights_and_unique_names() {
    let errors = compile_err(
        &with("[[trigger.variants]]\nname = \"a\"\nweight = 0\n[[trigger.variants]]\nname = \"a\"\nweight = 1\n"),
        &[],
    );
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "trigger.cart.variants[0].weight",
            "trigger.cart.variants[1].name"
        ],
        "{}",
        render(&errors)
    );
}

#[test]
fn kind_specific_consistency_checks() {
    let rate = r#"name = "t"
[[trigger]]
id = "spike"
kind = "rate"
key = "cart_id"
events = []
window = "1d"
baseline = "1h"
increase_percent = 30
"#;
    let errors = compile_err(rate, &[]);
    let problems: Vec<&str> = errors.iter().map(|e| e.problem.as_str()).collect();
    assert_eq!(
        problems,
        [
            "rate triggers count events across all customers and cannot be keyed",
            "no events to count",
            "baseline 1h is not longer than the window 1d",
        ],
        "{}",
        render(&errors)
    );
    let threshold = r#"name = "t"
[[trigger]]
id = "big"
kind = "threshold"
measure = { event = "Order Completed", window = "30d" }
at_least = 3
top_percent = 100
channel = "push"
"#;
    let error = only_error(threshold);
    assert_eq!(error.field, "trigger.big.top_percent");
    assert_eq!(
        error.problem,
        "only one bound allowed, found at_least, top_percent"
    );
}

#[test]
fn unknown_kind_is_reported_once() {
    let error = only_error(&edit("kind = \"absence\"", "kind = \"absense\""));
    assert_eq!(error.field, "trigger.cart.kind");
    assert_eq!(error.problem, "unknown value \"absense\"");
    assert_eq!(
        error.accepted,
        "absence, count, inactivity, sequence, schedule, threshold, rate"
    );
}

#[test]
fn three_mistakes_three_diagnostics() {
    let text = r#"name = "Bad Name"

[settings]
late_events = "later"

[[trigger]]
id = "cart"
kind = "absence"
start = "Product Added"
after = "30 minutes"
channel = "push"
"#;
    let errors = compile_err(text, &[]);
    let located: Vec<(usize, usize, &str)> = errors
        .iter()
        .map(|e| (e.line, e.column, e.field.as_str()))
        .collect();
    assert_eq!(
        located,
        [
            (1, 8, "name"),
            (4, 15, "settings.late_events"),
            (10, 9, "trigger.cart.after"),
        ],
        "{}",
        render(&errors)
    );
    assert_eq!(
        errors[1].to_string(),
        "test.toml:4:15: settings.late_events: unknown value \"later\"; accepted: apply, drop"
    );
}

#[test]
fn ladders_have_at_most_a_hundred_steps_within_a_hundred_years() {
    // 1 + 100 steps: one too many (the engine numbers steps in a byte).
    let ladder: String = (1..=100)
        .map(|hour| format!("[[trigger.ladder]]\nat = \"{hour}h\"\n"))
        .collect();
    let error = only_error(&with(&ladder));
    assert_eq!(error.field, "trigger.cart.ladder[99].at");
    assert_eq!(error.problem, "the ladder has 101 steps");
    assert!(error.accepted.contains("at most 100 steps"), "{error}");
    crate::support::compile_ok(
        &with(&ladder.replace("[[trigger.ladder]]\nat = \"1h\"\n", "")),
        &[],
    );

    // Each repeat is in range, their sum is not.
    let text = r#"name = "t"
[[trigger]]
id = "dormant"
kind = "inactivity"
activity = "*"
after = "60d"
repeat = { every = "100y", times = 3 }
channel = "push"
"#;
    let error = only_error(text);
    assert_eq!(error.field, "trigger.dormant.repeat");
    assert!(error.problem.starts_with("a step falls"), "{error}");
    assert_eq!(error.accepted, "steps at most 36500d after the anchor");
}

#[test]
fn variant_weights_and_counts_are_bounded() {
    let error = only_error(&with(
        "[[trigger.variants]]\nname = \"a\"\nweight = 2147483648\n[[trigger.variants]]\nname = \"b\"\nweight = 2147483648\n",
    ).replacen("weight = 2147483648", "weight = 1", 1));
    assert_eq!(error.field, "trigger.cart.variants[1].weight");
    assert_eq!(error.problem, "2147483648 is out of range");
    assert_eq!(error.accepted, "an integer from 1 to 1000000");

    let variants: String = (0..101)
        .map(|n| format!("[[trigger.variants]]\nname = \"v{n}\"\nweight = 1\n"))
        .collect();
    let error = only_error(&with(&variants));
    assert_eq!(error.field, "trigger.cart.variants[100]");
    assert_eq!(error.problem, "the trigger has 101 variants");
}

#[test]
fn integers_beyond_any_width_are_out_of_range_not_zero() {
    for huge in [
        "99999999999999999999999999999999999999999",
        "-99999999999999999999999999999999999999999",
        "99999999999999999999",
    ] {
        let error = only_error(&format!(
            "{BASE}\n[settings]\nmax_keys_per_trigger = {huge}\n"
        ));
        assert_eq!(error.field, "settings.max_keys_per_trigger");
        assert_eq!(error.problem, "the integer is too large", "{huge}");
        assert_eq!(error.accepted, "an integer from 1 to 1024");
    }
}

#[test]
fn at_most_a_thousand_triggers() {
    let one = BASE.replacen("name = \"t\"\n", "", 1);
    let text: String = std::iter::once("name = \"t\"\n".to_string())
        .chain((0..1001).map(|n| one.replace("id = \"cart\"", &format!("id = \"t{n}\""))))
        .collect();
    let error = only_error(&text);
    assert_eq!(error.field, "trigger[1000]");
    assert_eq!(error.problem, "the pipeline has 1001 triggers");
    assert_eq!(error.accepted, "at most 1000 [[trigger]] tables");
}

#[test]
fn transactional_triggers_take_no_quiet_hours_mode() {
    // Lines 9 and 10 follow BASE's eight.
    let error = only_error(&with(
        "category = \"transactional\"\nquiet_hours = \"defer\"\n",
    ));
    assert_eq!((error.line, error.column), (10, 15), "{error}");
    assert_eq!(error.field, "trigger.cart.quiet_hours");
    assert_eq!(
        error.problem,
        "transactional and ops triggers are sent at any hour"
    );
    assert_eq!(error.accepted, "\"ignore\", or leave it out");
    crate::support::compile_ok(
        &with("category = \"transactional\"\nquiet_hours = \"ignore\"\n"),
        &[],
    );
}
