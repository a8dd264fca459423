//! `--set` overrides: applied before validation, validated like the file,
//! and reported against `--set` when wrong.

use crate::support::{compile_err, compile_ok, render, set, trigger};
use kairos_engine::config::{Offset, Window};
use kairos_model::Span;
use kairos_pipeline::OVERRIDE_FILE;

const PIPELINE: &str = r#"name = "t"

[[trigger]]
id = "abandoned_cart"
kind = "absence"
start = "Product Added"
cancel = ["Order Completed"]
after = "30m"
channel = "push"
[[trigger.ladder]]
at = "24h"
channel = "email"

[[trigger]]
id = "browse"
kind = "count"
event = "Product Viewed"
min = 3
window = { session = "30m" }
channel = "push"
"#;

#[test]
fn override_changes_the_value() {
    let pipeline = compile_ok(PIPELINE, &[set("abandoned_cart.after=10m")]);
    let cart = trigger(&pipeline, "abandoned_cart");
    assert_eq!(cart.steps[0].at, Offset::Fixed(Span::MINUTE * 10));
    assert_eq!(
        &*cart.rule,
        "Product Added not followed by Order Completed within 10m"
    );
}

#[test]
fn overrides_take_toml_values_nested_paths_and_settings() {
    let overrides = [
        set("browse.min=5"),
        set("browse.window={ tumbling = \"1d\" }"),
        set("abandoned_cart.ladder[0].channel=sms"),
        set("abandoned_cart.payload.cart=true"),
        set("abandoned_cart.offer=\"SAVE 10\""),
        set("settings.seed=7"),
        set("policy.quiet_hours.start=21:00"),
        set("policy.quiet_hours.end=07:00"),
    ];
    let pipeline = compile_ok(PIPELINE, &overrides);
    let browse = trigger(&pipeline, "browse");
    assert!(matches!(
        browse.pattern,
        kairos_engine::config::Pattern::Count { min: 5, window: Window::Tumbling(span), .. } if span == Span::DAY
    ));
    let cart = trigger(&pipeline, "abandoned_cart");
    assert_eq!(&*cart.steps[1].channel, "sms");
    assert!(cart.payload.cart);
    assert_eq!(cart.steps[0].offer.as_deref(), Some("SAVE 10"));
    assert_eq!(pipeline.settings.seed, 7);
    let quiet = pipeline.policy.quiet_hours.expect("quiet hours");
    assert_eq!((quiet.start_minute, quiet.end_minute), (21 * 60, 7 * 60));
}

#[test]
fn invalid_override_value_is_reported_against_set() {
    let errors = compile_err(PIPELINE, &[set("abandoned_cart.after=soon")]);
    assert_eq!(errors.len(), 1, "{}", render(&errors));
    let error = &errors[0];
    assert_eq!(
        (error.file.as_str(), error.line, error.column),
        (OVERRIDE_FILE, 1, 1)
    );
    assert_eq!(error.field, "abandoned_cart.after");
    assert_eq!(error.problem, "\"soon\" is not a duration");
    assert!(error
        .to_string()
        .starts_with("--set:1:1: abandoned_cart.after: "));

    let nested = compile_err(PIPELINE, &[set("browse.window={ weekly = \"1w\" }")]);
    let fields: Vec<&str> = nested.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["browse.window.weekly"], "{}", render(&nested));
}

#[test]
fn unknown_trigger_lists_the_known_ids() {
    let errors = compile_err(PIPELINE, &[set("abandoned_kart.after=10m")]);
    assert_eq!(errors.len(), 1, "{}", render(&errors));
    assert_eq!(
        errors[0].to_string(),
        "--set:1:1: abandoned_kart.after: no trigger has id \"abandoned_kart\"; accepted: a known trigger id: abandoned_cart, browse; or settings, policy"
    );
}

#[test]
fn bad_override_paths() {
    for path in [
        "abandoned_cart",
        "abandoned_cart..after",
        "abandoned_cart.ladder[x].at",
        "abandoned_cart.after.value",
    ] {
        let errors = compile_err(PIPELINE, &[set(&format!("{path}=1"))]);
        assert_eq!(errors.len(), 1, "{path}: {}", render(&errors));
        assert_eq!(
            (errors[0].file.as_str(), errors[0].field.as_str()),
            (OVERRIDE_FILE, path)
        );
    }
    let errors = compile_err(PIPELINE, &[set("abandoned_cart.ladder[3].at=1d")]);
    assert_eq!(
        errors[0].problem,
        "`ladder` has 1 items, so there is no [3]"
    );
    let errors = compile_err(PIPELINE, &[set("abandoned_cart.aftr=10m")]);
    assert_eq!(errors[0].problem, "unknown field `aftr`");
    assert_eq!(errors[0].field, "abandoned_cart.aftr");
}

#[test]
fn malformed_overrides_do_not_parse() {
    assert!("abandoned_cart.after"
        .parse::<kairos_pipeline::Override>()
        .is_err());
    assert!("=10m".parse::<kairos_pipeline::Override>().is_err());
}
