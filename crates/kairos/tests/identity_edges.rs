//! Identity at its edges, from a review of 2026-12-06: decisions held for
//! quiet hours follow an identify, merges that add up carts, keys and
//! consent, erasure along a chain of ids.
mod support;
use kairos_model::Span;
use serde_json::json;
use support::{plain_track, track, with_policy, Harness, OPEN_POLICY};

const WELCOME: &str = r#"
[[trigger]]
id = "welcome"
kind = "count"
event = "Signed Up"
window = { tumbling = "1d" }
channel = "push"
"#;

const CART: &str = r#"
[[trigger]]
id = "cart"
kind = "absence"
start = "Product Added"
cancel = ["Order Completed"]
after = "30m"
channel = "push"
payload = { cart = true }
"#;

const QUIET: &str = r#"
[policy]
holdout_percent = 0
consent_required = []
weekly_marketing_cap = 1000
daily_caps = { targeted = 1000, content = 1000 }
arbitration_window = "0s"
"#;

/// A decision held for quiet hours while the customer was anonymous goes out
/// under whichever id the person then has: merge path vs re-key path.
#[test]
fn deferred_decision_follows_identify_rekey() {
    let run = |user_known: bool| {
        let mut h = Harness::new(&with_policy(QUIET, WELCOME));
        if user_known {
            h.send(plain_track(
                "u1",
                "Page Viewed",
                "2026-11-23T20:00:00Z",
                "m0",
            ));
        }
        h.send(json!({"type":"track","event":"Signed Up","anonymousId":"dev","timestamp":"2026-11-23T23:00:00Z","messageId":"m1"}));
        h.send(json!({"type":"identify","userId":"u1","anonymousId":"dev","timestamp":"2026-11-23T23:10:00Z","messageId":"m2"}));
        h.finish();
        h.summary()
    };
    let merged = run(true);
    let rekeyed = run(false);
    assert_eq!(merged, rekeyed);
}

#[test]
fn merging_carts_with_huge_quantities_does_not_overflow() {
    let mut h = Harness::new(&with_policy(OPEN_POLICY, CART));
    h.send(json!({"type":"track","event":"Product Added","anonymousId":"dev","timestamp":"2026-11-23T10:00:00Z","messageId":"m1","properties":{"product_id":"p1","quantity":4294967295u64,"price":1.0}}));
    h.send(track(
        "u1",
        "Product Added",
        "2026-11-23T10:01:00Z",
        "m2",
        json!({"product_id":"p1","quantity":2,"price":1.0}),
    ));
    h.send(json!({"type":"identify","userId":"u1","anonymousId":"dev","timestamp":"2026-11-23T10:02:00Z","messageId":"m3"}));
    h.finish();
    // The two lines add up to as many as a quantity holds, no more.
    let payload = format!("{:?}", h.decisions[0].payload);
    assert!(payload.contains("quantity: 4294967295"), "{payload}");
}

/// u1 withdrew push consent after the device had granted it; linking the
/// device must not bring the withdrawn consent back.
#[test]
fn a_withdrawn_consent_is_not_revived_by_a_merge() {
    let policy = r#"
[policy]
holdout_percent = 0
consent_required = ["push"]
quiet_hours = false
weekly_marketing_cap = 1000
daily_caps = { targeted = 1000, content = 1000 }
arbitration_window = "0s"
"#;
    let mut h = Harness::new(&with_policy(policy, WELCOME));
    h.send(json!({"type":"identify","anonymousId":"dev","timestamp":"2026-11-23T10:00:00Z","messageId":"m1","traits":{"consent":{"push":true}}}));
    h.send(json!({"type":"identify","userId":"u1","timestamp":"2026-11-23T10:30:00Z","messageId":"m2","traits":{"consent":{"push":true}}}));
    h.send(json!({"type":"track","event":"Consent Updated","userId":"u1","timestamp":"2026-11-23T11:00:00Z","messageId":"m3","properties":{"channel":"push","granted":false}}));
    h.send(json!({"type":"identify","userId":"u1","anonymousId":"dev","timestamp":"2026-11-23T12:00:00Z","messageId":"m4"}));
    h.send(plain_track("u1", "Signed Up", "2026-11-23T12:30:00Z", "m5"));
    h.finish();
    assert_eq!(
        h.summary(),
        ["u1 welcome step1 2026-11-23T12:30:00.000Z consent"]
    );
}

/// Two pending reminders for one cart, the person's and a device's: each
/// add restarts T, so the reminder runs from the latest add of either id
/// and names both (README, identity).
#[test]
fn merged_cart_reminders_run_from_the_latest_add() {
    let mut h = Harness::new(&with_policy(OPEN_POLICY, CART));
    h.send(track(
        "u1",
        "Product Added",
        "2026-11-23T09:50:00Z",
        "m1",
        json!({"product_id":"p1","price":1.0}),
    ));
    h.send(json!({"type":"track","event":"Product Added","anonymousId":"dev","timestamp":"2026-11-23T10:00:00Z","messageId":"m2","properties":{"product_id":"p2","price":2.0}}));
    h.send(json!({"type":"identify","userId":"u1","anonymousId":"dev","timestamp":"2026-11-23T10:05:00Z","messageId":"m3"}));
    h.finish();
    assert_eq!(h.summary(), ["u1 cart step1 2026-11-23T10:30:00.000Z sent"]);
    assert_eq!(h.decisions[0].events, ["m1", "m2"]);
}

/// anon A -> U (identify), then alias U -> V; erase by A; every id is free
/// again and V starts fresh (an old message id is not a duplicate).
#[test]
fn erasure_by_the_first_device_id_of_a_chain() {
    for pack in [None, Some(Span::HOUR)] {
        let mut pipeline =
            support::pipeline(&with_policy(OPEN_POLICY, &format!("{WELCOME}{CART}")));
        if let Some(pack) = pack {
            pipeline.settings.pack_idle_after = pack;
        }
        let mut h = Harness::with_pipeline(pipeline);
        h.send(json!({"type":"track","event":"Product Added","anonymousId":"A","timestamp":"2026-11-23T10:00:00Z","messageId":"m1","properties":{"product_id":"p1"}}));
        h.send(json!({"type":"identify","userId":"U","anonymousId":"A","timestamp":"2026-11-23T10:01:00Z","messageId":"m2","traits":{"birthday":"1990-01-01"}}));
        h.send(json!({"type":"alias","previousId":"U","userId":"V","timestamp":"2026-11-23T10:02:00Z","messageId":"m3"}));
        h.send(json!({"type":"track","event":"Signed Up","userId":"V","timestamp":"2026-11-23T10:03:00Z","messageId":"m4"}));
        h.send(json!({"type":"track","event":"Page Viewed","userId":"Z","timestamp":"2026-11-24T10:03:00Z","messageId":"z1"}));
        h.send(json!({"type":"track","event":"Erasure Requested","anonymousId":"A","timestamp":"2026-11-24T12:00:00Z","messageId":"m5"}));
        h.advance("2026-11-24T12:00:10Z");
        for id in ["A", "U", "V"] {
            assert!(!h.engine.holds_anything_about(id), "{id} {pack:?}");
        }
        let before = h.decisions.len();
        h.send(json!({"type":"track","event":"Signed Up","userId":"V","timestamp":"2026-11-24T12:01:00Z","messageId":"m4"}));
        h.finish();
        assert_eq!(
            h.decisions.len(),
            before + 1,
            "V fresh: welcome again ({pack:?})"
        );
        assert_eq!(h.engine.stats().duplicates, 0);
    }
}

const CART_BY_ID: &str = r#"
[[trigger]]
id = "cart"
kind = "absence"
key = "cart_id"
start = "Product Added"
cancel = ["Order Completed"]
after = "30m"
channel = "push"
"#;

/// `max_keys_per_trigger`: entity keys kept per customer per trigger; the
/// oldest is dropped beyond it. A merge must not leave a customer above it.
#[test]
fn a_merge_keeps_at_most_max_keys_per_trigger() {
    let settings = "[settings]\nmax_keys_per_trigger = 2\n";
    let mut h = Harness::new(&with_policy(
        &format!("{OPEN_POLICY}\n{settings}"),
        CART_BY_ID,
    ));
    let add = |who: (&str, &str), cart: &str, time: &str, id: &str| {
        let mut call = json!({"type":"track","event":"Product Added","timestamp":time,"messageId":id,"properties":{"cart_id":cart,"product_id":"p"}});
        call[who.0] = who.1.into();
        call
    };
    h.send(add(
        ("anonymousId", "dev"),
        "c1",
        "2026-11-23T10:00:00Z",
        "m1",
    ));
    h.send(add(
        ("anonymousId", "dev"),
        "c2",
        "2026-11-23T10:01:00Z",
        "m2",
    ));
    h.send(add(("userId", "u1"), "c3", "2026-11-23T10:02:00Z", "m3"));
    h.send(add(("userId", "u1"), "c4", "2026-11-23T10:03:00Z", "m4"));
    h.send(json!({"type":"identify","userId":"u1","anonymousId":"dev","timestamp":"2026-11-23T10:04:00Z","messageId":"m5"}));
    h.send(add(("userId", "u1"), "c5", "2026-11-23T10:05:00Z", "m6"));
    h.finish();
    assert!(h.decisions.len() <= 2, "{:?}", h.summary());
}

/// The person's reminder went out; a device then adds to the cart and is
/// linked: the later add restarts the journey at step 1, as it would on one
/// id, instead of being lost behind the person's step 2.
#[test]
fn a_later_add_on_a_device_restarts_a_reminder_already_sent() {
    let ladder = format!("{CART}[[trigger.ladder]]\nat = \"24h\"\nchannel = \"email\"\n");
    let mut h = Harness::new(&with_policy(OPEN_POLICY, &ladder));
    h.send(track(
        "u1",
        "Product Added",
        "2026-11-23T09:00:00Z",
        "m1",
        json!({"product_id": "p1", "price": 1.0}),
    ));
    h.advance("2026-11-23T09:40:00Z");
    h.send(json!({"type": "track", "event": "Product Added", "anonymousId": "dev",
        "timestamp": "2026-11-23T10:00:00Z", "messageId": "m2", "properties": {"product_id": "p2", "price": 2.0}}));
    h.send(
        json!({"type": "identify", "userId": "u1", "anonymousId": "dev",
        "timestamp": "2026-11-23T10:05:00Z", "messageId": "m3"}),
    );
    h.finish();
    assert_eq!(
        h.summary(),
        [
            "u1 cart step1 2026-11-23T09:30:00.000Z sent",
            "u1 cart step1 2026-11-23T10:30:00.000Z sent",
            "u1 cart step2 2026-11-24T10:00:00.000Z sent",
        ]
    );
}

/// A merge that fills the person's de-dup table, by an identify that
/// repeats a message id seen over a day before, forgets nothing the
/// look-back still covers: a late duplicate of a message seen 23 h 59 m 55 s
/// before it is still skipped (as before the one-probe de-dup).
#[test]
fn a_late_duplicate_after_a_merge_that_fills_the_table_is_skipped() {
    let mut h = Harness::new(&with_policy(OPEN_POLICY, CART));
    let base = support::at("2026-11-23T08:00:00Z");
    let time = |seconds: i64| (base + Span(seconds * 1_000)).to_rfc3339();
    // 90 messages from the device, 6 from the person: 96 after the merge,
    // which leaves the table (of 128 places) no room.
    for i in 0..90 {
        let call = json!({"type":"track","event":"Browse","anonymousId":"dev","timestamp":time(i),"messageId":format!("d{i}")});
        h.send(call);
    }
    for i in 0..6 {
        h.send(track(
            "u1",
            "Browse",
            &time(100 + i),
            &format!("u{i}"),
            json!({}),
        ));
    }
    let day = 86_400;
    h.send(json!({"type":"identify","userId":"u1","anonymousId":"dev","timestamp":time(day + 50),"messageId":"d0"}));
    // Moves the watermark past the identify.
    h.send(track("x", "Browse", &time(day + 60), "x0", json!({})));
    // Late, and a duplicate of d45 (seen at 45 s, within a day of it).
    h.send(json!({"type":"track","event":"Product Added","anonymousId":"dev","timestamp":time(day + 40),"messageId":"d45","properties":{"product_id":"p1"}}));
    h.finish();
    assert_eq!(h.engine.stats().late, 1);
    assert_eq!(h.engine.stats().duplicates, 1);
    assert!(h.sent().is_empty(), "{:?}", h.summary());
}
