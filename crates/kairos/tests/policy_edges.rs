//! Edge cases a review found wrong (2026-12-06): ties and same-instant
//! arbitration, conversions cancelling decisions held for quiet hours,
//! local-day windows across daylight-saving changes, a birthday in a zone
//! learned later, caps of a decision deferred to the next day, a customer
//! called `_ops`, a late erasure.
mod support;
use serde_json::json;
use support::{plain_track, track, with_policy, Harness, CART_REMINDER, OPEN_POLICY};

const ARB_POLICY: &str = "[policy]\nholdout_percent = 0\nconsent_required = []\nquiet_hours = false\ndaily_caps = { targeted = 5, content = 5 }\narbitration_window = \"10m\"";

const QUIET_POLICY: &str = r#"
[policy]
holdout_percent = 0
consent_required = []
quiet_hours = { start = "22:00", end = "08:00" }
weekly_marketing_cap = 1000
daily_caps = { targeted = 1000, content = 1000 }
arbitration_window = "0s"
"#;

/// Equal priority, same instant: the earlier trigger in the file wins.
#[test]
fn an_arbitration_tie_goes_to_the_earlier_trigger_in_the_file() {
    let triggers = r#"
[[trigger]]
id = "first_in_file"
kind = "absence"
start = "Signed Up"
after = "1h"
channel = "push"
priority = 50

[[trigger]]
id = "second_in_file"
kind = "absence"
start = "Page Viewed"
after = "2h"
channel = "email"
priority = 50
"#;
    let mut h = Harness::new(&with_policy(ARB_POLICY, triggers));
    // second_in_file's state is created first (smaller token); both due at 12:00.
    h.send(plain_track(
        "u1",
        "Page Viewed",
        "2026-11-23T10:00:00Z",
        "m1",
    ));
    h.send(plain_track("u1", "Signed Up", "2026-11-23T11:00:00Z", "m2"));
    h.finish();
    assert_eq!(
        h.summary(),
        [
            "u1 first_in_file step1 2026-11-23T12:00:00.000Z sent",
            "u1 second_in_file step1 2026-11-23T12:00:00.000Z arbitration",
        ]
    );
}

/// Same instant, the higher priority from a window close: only it is sent
/// (both were, when the window's ladder fired after the first batch).
#[test]
fn a_window_closing_at_the_same_instant_is_arbitrated() {
    let triggers = r#"
[[trigger]]
id = "low"
kind = "absence"
start = "Signed Up"
after = "30m"
channel = "push"
priority = 10

[[trigger]]
id = "browse"
kind = "count"
event = "Product Viewed"
min = 1
window = { session = "30m" }
fire = "on_close"
channel = "email"
priority = 90
"#;
    let mut h = Harness::new(&with_policy(ARB_POLICY, triggers));
    h.send(plain_track("u1", "Signed Up", "2026-11-23T12:00:00Z", "m1"));
    h.send(plain_track(
        "u1",
        "Product Viewed",
        "2026-11-23T12:00:00Z",
        "m2",
    ));
    h.finish();
    assert_eq!(
        h.summary(),
        [
            "u1 browse step1 2026-11-23T12:30:00.000Z sent",
            "u1 low step1 2026-11-23T12:30:00.000Z arbitration",
        ]
    );
}

/// A step held for quiet hours is cancelled by the purchase, whether it is
/// the ladder's last step or more are to come.
#[test]
fn a_purchase_cancels_a_deferred_step() {
    let with_second_step =
        format!("{CART_REMINDER}[[trigger.ladder]]\nat = \"24h\"\nchannel = \"email\"\n");
    for triggers in [CART_REMINDER.to_string(), with_second_step] {
        let mut h = Harness::new(&with_policy(QUIET_POLICY, &triggers));
        h.send(plain_track(
            "u1",
            "Product Added",
            "2026-11-23T22:00:00Z",
            "a",
        ));
        // Step 1 due 22:30 UTC (quiet): deferred to 08:00. The order comes at 02:00.
        h.send(plain_track(
            "u1",
            "Order Completed",
            "2026-11-24T02:00:00Z",
            "o",
        ));
        h.finish();
        assert_eq!(h.summary(), Vec::<String>::new(), "{triggers}");
    }
}

/// Retail's shape: the 24 h email with a coupon, held for quiet hours, is
/// not sent once the customer has bought.
#[test]
fn a_purchase_cancels_the_deferred_cart_email() {
    let triggers = format!(
        "{CART_REMINDER}[[trigger.ladder]]\nat = \"24h\"\nchannel = \"email\"\noffer = \"CART10\"\n"
    );
    let mut h = Harness::new(&with_policy(QUIET_POLICY, &triggers));
    h.send(plain_track(
        "u1",
        "Product Added",
        "2026-11-23T22:30:00Z",
        "a",
    ));
    // step 1 due 23:00 -> deferred, sent 08:00; step 2 due 11-24 22:30 -> deferred to 11-25 08:00
    h.send(plain_track(
        "u1",
        "Order Completed",
        "2026-11-24T23:00:00Z",
        "o",
    ));
    h.finish();
    assert_eq!(h.summary(), ["u1 cart step1 2026-11-23T23:00:00.000Z sent"]);
}

fn daily_on_close_new_york() -> String {
    with_policy(
        &format!("{OPEN_POLICY}\n[settings]\ndefault_timezone = \"America/New_York\""),
        r#"
[[trigger]]
id = "daily"
kind = "count"
event = "Product Viewed"
min = 2
window = { tumbling = "1d" }
fire = "on_close"
channel = "push"
"#,
    )
}

/// A one-day tumbling window, on close, on a spring-forward day.
#[test]
fn a_local_day_window_closes_at_midnight_across_spring_forward() {
    let mut h = Harness::new(&daily_on_close_new_york());
    // Local 2026-03-08 01:00 and 01:30 EST (before the 02:00 jump).
    h.send(plain_track(
        "u1",
        "Product Viewed",
        "2026-03-08T06:00:00Z",
        "a",
    ));
    h.send(plain_track(
        "u1",
        "Product Viewed",
        "2026-03-08T06:30:00Z",
        "b",
    ));
    // Local 2026-03-09 00:30 and 00:40 EDT.
    h.send(plain_track(
        "u1",
        "Product Viewed",
        "2026-03-09T04:30:00Z",
        "c",
    ));
    h.send(plain_track(
        "u1",
        "Product Viewed",
        "2026-03-09T04:40:00Z",
        "d",
    ));
    h.finish();
    assert_eq!(
        h.summary(),
        [
            "u1 daily step1 2026-03-09T04:00:00.000Z sent", // 03-08 window (a, b)
            "u1 daily step1 2026-03-10T04:00:00.000Z sent", // 03-09 window (c, d)
        ]
    );
}

/// A one-day tumbling window, on close, on a fall-back day (25 hours).
#[test]
fn a_local_day_window_lasts_25_hours_on_fall_back() {
    let mut h = Harness::new(&daily_on_close_new_york());
    // 00:30 EDT and 23:30 EST, both local 2026-11-01, which ends at 05:00Z.
    h.send(plain_track(
        "u1",
        "Product Viewed",
        "2026-11-01T04:30:00Z",
        "a",
    ));
    h.send(plain_track(
        "u1",
        "Product Viewed",
        "2026-11-02T04:30:00Z",
        "b",
    ));
    h.finish();
    assert_eq!(
        h.summary(),
        ["u1 daily step1 2026-11-02T05:00:00.000Z sent"]
    );
}

/// A birthday moves to 09:00 in a zone learned after it was scheduled,
/// from an identify call or from any other call's `context.timezone`.
#[test]
fn a_birthday_moves_to_a_time_zone_learned_later() {
    let toml = with_policy(
        OPEN_POLICY,
        r#"
[[trigger]]
id = "birthday"
kind = "schedule"
source = { trait = "birthday", at = "09:00" }
channel = "push"
"#,
    );
    let zone_from = [
        json!({"type": "identify", "userId": "u1", "timestamp": "2026-03-02T00:00:00Z",
            "messageId": "m2", "context": {"timezone": "Asia/Shanghai"}}),
        json!({"type": "track", "event": "Page Viewed", "userId": "u1", "timestamp": "2026-03-02T00:00:00Z",
            "messageId": "m2", "context": {"timezone": "Asia/Shanghai"}}),
    ];
    for call in zone_from {
        let mut h = Harness::new(&toml);
        h.send(
            json!({"type": "identify", "userId": "u1", "timestamp": "2026-03-01T00:00:00Z",
            "messageId": "m1", "traits": {"birthday": "1990-03-15"}}),
        );
        h.send(call.clone());
        h.advance("2026-04-01T00:00:00Z");
        // 09:00 in Shanghai is 01:00Z.
        assert_eq!(
            h.summary(),
            ["u1 birthday step1 2026-03-15T01:00:00.000Z sent"],
            "{call}"
        );
    }
}

/// A decision held by quiet hours until tomorrow is capped by tomorrow's
/// sends, not today's.
#[test]
fn a_decision_deferred_to_tomorrow_is_capped_by_tomorrows_sends() {
    let policy = r#"
[policy]
holdout_percent = 0
consent_required = []
quiet_hours = { start = "22:00", end = "08:00" }
daily_caps = { targeted = 1, content = 1 }
arbitration_window = "0s"
"#;
    let triggers = r#"
[[trigger]]
id = "offer"
kind = "count"
event = "Coupon Applied"
window = { sliding = "1m" }
channel = "push"
"#;
    let mut h = Harness::new(&with_policy(policy, triggers));
    h.send(plain_track(
        "u1",
        "Coupon Applied",
        "2026-11-23T10:00:00Z",
        "a",
    ));
    h.send(plain_track(
        "u1",
        "Coupon Applied",
        "2026-11-23T23:00:00Z",
        "b",
    ));
    h.finish();
    assert_eq!(
        h.summary(),
        [
            "u1 offer step1 2026-11-23T10:00:00.000Z sent",
            "u1 offer step1 2026-11-23T23:00:00.000Z sent", // delivered 11-24 08:00
        ]
    );
}

/// The ops pseudo-customer that rate triggers act for is no customer's: a
/// customer whose id is `_ops` keeps a state of their own, and erasing them
/// leaves the ops alerts alone.
#[test]
fn a_customer_called_ops_is_not_the_ops_pseudo_customer() {
    let triggers = r#"
[[trigger]]
id = "spike"
kind = "rate"
events = ["Complaint Filed"]
window = "1h"
baseline = "1d"
increase_percent = 30
min_count = 5
pause_marketing = "0s"
"#;
    let mut h = Harness::new(&with_policy(OPEN_POLICY, triggers));
    let complaint = |n: usize, time: String| {
        track(
            "someone",
            "Complaint Filed",
            &time,
            &format!("c{n}"),
            json!({}),
        )
    };
    // Two complaints an hour for a day, then ten in ten minutes.
    for n in 0..52 {
        h.send(complaint(
            n,
            format!(
                "2026-11-{:02}T{:02}:{:02}:00Z",
                1 + n / 48,
                n / 2 % 24,
                n % 2 * 20
            ),
        ));
    }
    h.send(plain_track(
        "_ops",
        "Signed Up",
        "2026-11-02T02:30:00Z",
        "ops-signup",
    ));
    for n in 0..10 {
        h.send(complaint(
            100 + n,
            format!("2026-11-02T02:{:02}:00Z", 40 + n),
        ));
    }
    h.send(plain_track(
        "_ops",
        "Erasure Requested",
        "2026-11-02T03:00:00Z",
        "ops-erase",
    ));
    h.finish();
    let alerts: Vec<_> = h
        .decisions
        .iter()
        .filter(|d| &*d.trigger == "spike")
        .collect();
    assert_eq!(alerts.len(), 1, "{:?}", h.summary());
    assert_eq!(&*alerts[0].user_id, "_ops");
    assert_eq!(h.engine.stats().erasures, 1);
    // "someone" and the ops pseudo-customer remain; the customer called
    // `_ops` is gone (sharing a slot, the erasure took the ops state too).
    assert_eq!(h.engine.customer_count(), 2);
}

/// With `late_events = "drop"`, an erasure arriving late is still carried
/// out: dropping it would keep what the customer asked to have removed.
#[test]
fn a_late_erasure_is_carried_out_when_late_events_are_dropped() {
    let mut h = Harness::new(&with_policy(
        &format!("{OPEN_POLICY}\n[settings]\nlate_events = \"drop\""),
        CART_REMINDER,
    ));
    h.send(plain_track(
        "u1",
        "Product Added",
        "2026-11-23T10:00:00Z",
        "a",
    ));
    h.send(plain_track(
        "u2",
        "Product Added",
        "2026-11-23T12:00:00Z",
        "b",
    ));
    // An hour behind the clock, far past the 5 s of lateness allowed.
    h.send(plain_track(
        "u1",
        "Erasure Requested",
        "2026-11-23T11:00:00Z",
        "e",
    ));
    h.send(plain_track(
        "u2",
        "Order Completed",
        "2026-11-23T11:59:00Z",
        "late",
    ));
    h.finish();
    assert_eq!(h.engine.stats().late_dropped, 1);
    assert_eq!(h.engine.stats().erasures, 1);
    assert!(!h.engine.holds_anything_about("u1"));
    assert!(h.engine.holds_anything_about("u2"));
}
