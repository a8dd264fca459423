//! Replacing the pipeline of a running engine (issue #7, live reload): the
//! state of triggers that stay is kept, a scheduled step keeps its
//! deadline while new ones use the new offsets, removed triggers leave no
//! timer behind, a changed pattern starts afresh, counters carry over, and
//! a snapshot taken after the switch resumes under the new pipeline.

mod support;
use kairos_engine::{Engine, Reloaded};
use serde_json::json;
use support::{pipeline, track, Harness, OPEN_POLICY};

fn triggers(after: &str, channel: &str, window: &str, with_welcome: bool, ladder: bool) -> String {
    let welcome = if with_welcome {
        r#"
[[trigger]]
id = "welcome"
kind = "absence"
start = "Signed Up"
cancel = ["Order Completed"]
after = "1h"
channel = "email"
"#
    } else {
        ""
    };
    let second_step = if ladder {
        r#"
[[trigger.ladder]]
at = "24h"
channel = "email"
"#
    } else {
        ""
    };
    format!(
        r#"
name = "reload_test"
{OPEN_POLICY}
[[trigger]]
id = "abandoned_cart"
kind = "absence"
key = "cart_id"
start = "Product Added"
cancel = ["Order Completed"]
after = "{after}"
channel = "{channel}"
{second_step}
[[trigger]]
id = "browse"
kind = "count"
event = "Product Viewed"
min = 2
window = {{ sliding = "{window}" }}
channel = "push"
{welcome}"#
    )
}

fn add(user: &str, time: &str, id: &str) -> serde_json::Value {
    track(
        user,
        "Product Added",
        time,
        id,
        json!({"cart_id": format!("c-{user}"), "product_id": "p1", "price": 10}),
    )
}

fn view(user: &str, time: &str, id: &str) -> serde_json::Value {
    track(
        user,
        "Product Viewed",
        time,
        id,
        json!({"product_id": "p1"}),
    )
}

#[test]
fn pending_steps_move_to_the_new_offset_and_one_already_past_fires_at_once() {
    let mut h = Harness::new(&triggers("30m", "push", "1h", false, false));
    h.send(add("u1", "2026-11-23T12:00:00Z", "a1"));
    h.send(add("u3", "2026-11-23T12:12:00Z", "a3"));
    h.advance("2026-11-23T12:15:00Z");
    let reloaded = h
        .engine
        .replace_pipeline(pipeline(&triggers("10m", "sms", "1h", false, false)));
    assert_eq!(
        reloaded,
        Reloaded {
            kept: vec!["abandoned_cart".into(), "browse".into()],
            ..Reloaded::default()
        }
    );
    h.send(add("u2", "2026-11-23T12:16:00Z", "a2"));
    h.finish();
    // u1's cart was due at 12:10 under the new offset: it fires at once
    // (stamped 12:10); u3's and u2's carts wait ten minutes.
    assert_eq!(
        h.summary(),
        [
            "u1 abandoned_cart step1 2026-11-23T12:10:00.000Z sent",
            "u3 abandoned_cart step1 2026-11-23T12:22:00.000Z sent",
            "u2 abandoned_cart step1 2026-11-23T12:26:00.000Z sent",
        ]
    );
    // Decided after the switch: the new channel for all.
    assert!(h.decisions.iter().all(|d| &*d.channel == "sms"));
}

#[test]
fn a_removed_trigger_leaves_no_timer_and_an_added_one_starts_empty() {
    let mut h = Harness::new(&triggers("30m", "push", "1h", true, false));
    h.send(track(
        "u1",
        "Signed Up",
        "2026-11-23T12:00:00Z",
        "s1",
        json!({}),
    ));
    h.advance("2026-11-23T12:05:00Z");
    let reloaded = h
        .engine
        .replace_pipeline(pipeline(&triggers("30m", "push", "1h", false, false)));
    assert_eq!(reloaded.removed, ["welcome"]);
    h.advance("2026-11-23T12:30:00Z");
    // And back before the hour is up: the welcome trigger is new again,
    // with nothing pending from before.
    let reloaded = h
        .engine
        .replace_pipeline(pipeline(&triggers("30m", "push", "1h", true, false)));
    assert_eq!(reloaded.added, ["welcome"]);
    h.finish();
    assert!(h.decisions.is_empty(), "{:?}", h.summary());
}

#[test]
fn a_changed_window_starts_the_count_afresh_and_an_unchanged_one_keeps_it() {
    for (window, fires) in [("1h", true), ("2h", false)] {
        let mut h = Harness::new(&triggers("30m", "push", "1h", false, false));
        h.send(view("u1", "2026-11-23T12:00:00Z", "v1"));
        // Applied before the switch (not still in the reorder buffer).
        h.advance("2026-11-23T12:05:00Z");
        let reloaded = h
            .engine
            .replace_pipeline(pipeline(&triggers("30m", "sms", window, false, false)));
        let expected: &[&str] = if fires { &[] } else { &["browse"] };
        assert_eq!(reloaded.reset, expected);
        h.send(view("u1", "2026-11-23T12:10:00Z", "v2"));
        h.finish();
        let browses = h
            .decisions
            .iter()
            .filter(|d| &*d.trigger == "browse")
            .count();
        assert_eq!(
            browses,
            usize::from(fires),
            "window {window}: {:?}",
            h.summary()
        );
    }
}

#[test]
fn a_ladder_whose_next_step_is_gone_ends_and_counters_carry_over() {
    let mut h = Harness::new(&triggers("30m", "push", "1h", false, true));
    h.send(add("u1", "2026-11-23T12:00:00Z", "a1"));
    h.advance("2026-11-23T13:00:00Z");
    assert_eq!(h.decisions.len(), 1);
    h.engine
        .replace_pipeline(pipeline(&triggers("30m", "push", "1h", false, false)));
    h.finish();
    assert_eq!(h.decisions.len(), 1, "no step 2: {:?}", h.summary());
    let cart = &h.engine.stats().triggers[0];
    assert_eq!(
        (cart.id.as_str(), cart.fired, cart.sent),
        ("abandoned_cart", 1, 1)
    );
    assert_eq!(cart.variants[0].sent, 1);
}

#[test]
fn the_same_inputs_and_switch_give_the_same_decisions_and_a_snapshot_resumes_after_it() {
    let before = triggers("30m", "push", "1h", true, true);
    let after = triggers("10m", "sms", "2h", false, true);
    let first: Vec<serde_json::Value> = (0..30)
        .map(|n| match n % 3 {
            0 => add(
                &format!("u{}", n % 7),
                &format!("2026-11-23T12:{n:02}:00Z"),
                &format!("e{n}"),
            ),
            1 => view(
                &format!("u{}", n % 5),
                &format!("2026-11-23T12:{n:02}:00Z"),
                &format!("e{n}"),
            ),
            _ => track(
                &format!("u{}", n % 4),
                "Signed Up",
                &format!("2026-11-23T12:{n:02}:00Z"),
                &format!("e{n}"),
                json!({}),
            ),
        })
        .collect();
    let second: Vec<serde_json::Value> = (30..60)
        .map(|n| match n % 2 {
            0 => add(
                &format!("u{}", n % 9),
                &format!("2026-11-23T12:{n:02}:00Z"),
                &format!("e{n}"),
            ),
            _ => view(
                &format!("u{}", n % 5),
                &format!("2026-11-23T12:{n:02}:00Z"),
                &format!("e{n}"),
            ),
        })
        .collect();
    let run = |snapshot_after_switch: bool| {
        let mut h = Harness::new(&before);
        for call in &first {
            h.send(call.clone());
        }
        h.engine.replace_pipeline(pipeline(&after));
        if snapshot_after_switch {
            let mut bytes = Vec::new();
            h.engine.snapshot(&mut bytes).expect("a snapshot");
            h.engine =
                Engine::restore(pipeline(&after), &bytes).expect("restored with the new pipeline");
        }
        for call in &second {
            h.send(call.clone());
        }
        h.finish();
        (h.summary(), format!("{:?}", h.engine.stats()))
    };
    let once = run(false);
    assert!(once.0.len() > 5, "{:?}", once.0);
    assert_eq!(once, run(false));
    assert_eq!(once, run(true));
}

#[test]
fn switching_to_the_same_pipeline_changes_nothing() {
    let text = triggers("30m", "push", "1h", true, true);
    let calls: Vec<serde_json::Value> = (0..40)
        .map(|n| {
            let (user, time, id) = (
                format!("u{}", n % 6),
                format!("2026-11-23T12:{n:02}:00Z"),
                format!("e{n}"),
            );
            match n % 3 {
                0 => add(&user, &time, &id),
                1 => view(&user, &time, &id),
                _ => track(&user, "Signed Up", &time, &id, json!({})),
            }
        })
        .collect();
    let run = |switch: bool| {
        let mut h = Harness::new(&text);
        for (n, call) in calls.iter().enumerate() {
            if switch && n % 10 == 5 {
                let reloaded = h.engine.replace_pipeline(pipeline(&text));
                assert!(reloaded.reset.is_empty() && reloaded.removed.is_empty());
            }
            h.send(call.clone());
        }
        h.finish();
        (h.summary(), format!("{:?}", h.engine.stats()))
    };
    assert_eq!(run(false), run(true));
}

/// A cart reminder by `channel`, and a welcome by email, with consent
/// required for the channels in `consent` (in that order), triggers in the
/// order given.
fn consent_pipeline(consent: &str, cart_first: bool) -> String {
    let cart = r#"
[[trigger]]
id = "abandoned_cart"
kind = "absence"
key = "cart_id"
start = "Product Added"
cancel = ["Order Completed"]
after = "30m"
channel = "sms"
"#;
    let welcome = r#"
[[trigger]]
id = "welcome"
kind = "count"
event = "Signed Up"
min = 1
window = { tumbling = "1d" }
channel = "push"
"#;
    let (first, second) = if cart_first {
        (cart, welcome)
    } else {
        (welcome, cart)
    };
    format!(
        r#"
name = "reload_test"
[policy]
holdout_percent = 0
consent_required = {consent}
quiet_hours = false
weekly_marketing_cap = 1000
daily_caps = {{ targeted = 1000, content = 1000 }}
arbitration_window = "0s"
{first}{second}"#
    )
}

#[test]
fn reordered_triggers_and_channels_keep_each_customers_state_and_consent() {
    let before = consent_pipeline(r#"["push", "sms"]"#, true);
    let after = consent_pipeline(r#"["email", "sms", "push"]"#, false);
    let mut h = Harness::new(&before);
    // u1 may be texted, not pushed; u2 the other way round.
    for (user, sms) in [("u1", true), ("u2", false)] {
        h.send(track(
            user,
            "Consent Updated",
            "2026-11-23T11:00:00Z",
            &format!("c-{user}"),
            json!({"consent": {"sms": sms, "push": !sms}}),
        ));
        h.send(add(user, "2026-11-23T12:00:00Z", &format!("a-{user}")));
    }
    h.advance("2026-11-23T12:05:00Z");
    let reloaded = h.engine.replace_pipeline(pipeline(&after));
    assert_eq!(reloaded.kept, ["abandoned_cart", "welcome"]);
    // After the switch the cart trigger is second: its pending carts still
    // fire once each, and consent still means the same channels.
    h.send(track(
        "u1",
        "Signed Up",
        "2026-11-23T12:10:00Z",
        "s1",
        json!({}),
    ));
    h.send(track(
        "u2",
        "Signed Up",
        "2026-11-23T12:10:00Z",
        "s2",
        json!({}),
    ));
    h.finish();
    let mut summary = h.summary();
    summary.sort();
    assert_eq!(
        summary,
        [
            "u1 abandoned_cart step1 2026-11-23T12:30:00.000Z sent",
            "u1 welcome step1 2026-11-23T12:10:00.000Z consent",
            "u2 abandoned_cart step1 2026-11-23T12:30:00.000Z consent",
            "u2 welcome step1 2026-11-23T12:10:00.000Z sent",
        ]
    );
}

#[test]
fn a_customer_whose_sent_trigger_was_removed_can_still_be_inspected() {
    let mut h = Harness::new(&consent_pipeline("[]", true));
    h.send(add("u1", "2026-11-23T12:00:00Z", "a1"));
    h.advance("2026-11-23T13:00:00Z");
    assert_eq!(h.decisions.len(), 1);
    let without_cart =
        consent_pipeline("[]", true).replace("id = \"abandoned_cart\"", "id = \"cart_v2\"");
    let reloaded = h.engine.replace_pipeline(pipeline(&without_cart));
    assert_eq!(reloaded.removed, ["abandoned_cart"]);
    let view = serde_json::to_value(h.engine.inspect("u1").expect("known")).unwrap();
    let text = view.to_string();
    assert!(text.contains("(removed)"), "{text}");
}

/// A birthday with a reminder six days later, or without it.
fn birthday(with_reminder: bool) -> String {
    let reminder = if with_reminder {
        "[[trigger.ladder]]\nat = \"6d\"\n"
    } else {
        ""
    };
    format!(
        r#"
name = "reload_test"
{OPEN_POLICY}
[[trigger]]
id = "birthday"
kind = "schedule"
source = {{ trait = "birthday", at = "09:00" }}
channel = "push"
{reminder}"#
    )
}

#[test]
fn a_recurring_schedule_whose_next_step_is_gone_is_armed_for_next_year() {
    let mut h = Harness::new(&birthday(true));
    h.send(
        json!({"type": "identify", "userId": "u1", "timestamp": "2026-03-01T00:00:00Z",
        "messageId": "m1", "traits": {"birthday": "1990-03-15"}}),
    );
    // This year's greeting is sent; the reminder six days later is gone
    // from the pipeline by then.
    h.advance("2026-03-16T00:00:00Z");
    h.engine.replace_pipeline(pipeline(&birthday(false)));
    h.send(track(
        "u1",
        "Page Viewed",
        "2027-01-10T10:00:00Z",
        "m2",
        json!({}),
    ));
    h.advance("2027-04-01T00:00:00Z");
    assert_eq!(
        h.summary(),
        [
            "u1 birthday step1 2026-03-15T09:00:00.000Z sent",
            "u1 birthday step1 2027-03-15T09:00:00.000Z sent",
        ]
    );
}
