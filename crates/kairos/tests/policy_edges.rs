//! Policy and window edge cases a review found wrong (2026-12-06): ties and
//! same-instant arbitration, conversions cancelling decisions held for quiet
//! hours, local-day windows across daylight-saving changes, a birthday in a
//! zone learned later, caps of a decision deferred to the next day.
mod support;
use serde_json::json;
use support::{track, Harness, OPEN_POLICY};

fn with_policy(policy: &str, triggers: &str) -> String {
    format!("name = \"t\"\n{policy}\n{triggers}")
}

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

const CART: &str = r#"
[[trigger]]
id = "cart"
kind = "absence"
start = "Product Added"
cancel = ["Order Completed"]
after = "30m"
channel = "push"
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
    h.send(track(
        "u1",
        "Page Viewed",
        "2026-11-23T10:00:00Z",
        "m1",
        json!({}),
    ));
    h.send(track(
        "u1",
        "Signed Up",
        "2026-11-23T11:00:00Z",
        "m2",
        json!({}),
    ));
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
    h.send(track(
        "u1",
        "Signed Up",
        "2026-11-23T12:00:00Z",
        "m1",
        json!({}),
    ));
    h.send(track(
        "u1",
        "Product Viewed",
        "2026-11-23T12:00:00Z",
        "m2",
        json!({}),
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
    let with_second_step = format!("{CART}[[trigger.ladder]]\nat = \"24h\"\nchannel = \"email\"\n");
    for triggers in [CART.to_string(), with_second_step] {
        let mut h = Harness::new(&with_policy(QUIET_POLICY, &triggers));
        h.send(track(
            "u1",
            "Product Added",
            "2026-11-23T22:00:00Z",
            "a",
            json!({}),
        ));
        // Step 1 due 22:30 UTC (quiet): deferred to 08:00. The order comes at 02:00.
        h.send(track(
            "u1",
            "Order Completed",
            "2026-11-24T02:00:00Z",
            "o",
            json!({}),
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
        "{CART}[[trigger.ladder]]\nat = \"24h\"\nchannel = \"email\"\noffer = \"CART10\"\n"
    );
    let mut h = Harness::new(&with_policy(QUIET_POLICY, &triggers));
    h.send(track(
        "u1",
        "Product Added",
        "2026-11-23T22:30:00Z",
        "a",
        json!({}),
    ));
    // step 1 due 23:00 -> deferred, sent 08:00; step 2 due 11-24 22:30 -> deferred to 11-25 08:00
    h.send(track(
        "u1",
        "Order Completed",
        "2026-11-24T23:00:00Z",
        "o",
        json!({}),
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
    h.send(track(
        "u1",
        "Product Viewed",
        "2026-03-08T06:00:00Z",
        "a",
        json!({}),
    ));
    h.send(track(
        "u1",
        "Product Viewed",
        "2026-03-08T06:30:00Z",
        "b",
        json!({}),
    ));
    // Local 2026-03-09 00:30 and 00:40 EDT.
    h.send(track(
        "u1",
        "Product Viewed",
        "2026-03-09T04:30:00Z",
        "c",
        json!({}),
    ));
    h.send(track(
        "u1",
        "Product Viewed",
        "2026-03-09T04:40:00Z",
        "d",
        json!({}),
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
    h.send(track(
        "u1",
        "Product Viewed",
        "2026-11-01T04:30:00Z",
        "a",
        json!({}),
    ));
    h.send(track(
        "u1",
        "Product Viewed",
        "2026-11-02T04:30:00Z",
        "b",
        json!({}),
    ));
    h.finish();
    assert_eq!(
        h.summary(),
        ["u1 daily step1 2026-11-02T05:00:00.000Z sent"]
    );
}

/// A birthday moves to 09:00 in a zone learned after it was scheduled.
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
    let mut h = Harness::new(&toml);
    h.send(
        json!({"type":"identify","userId":"u1","timestamp":"2026-03-01T00:00:00Z","messageId":"m1",
        "traits":{"birthday":"1990-03-15"}}),
    );
    h.send(
        json!({"type":"identify","userId":"u1","timestamp":"2026-03-02T00:00:00Z","messageId":"m2",
        "context":{"timezone":"Asia/Shanghai"}}),
    );
    h.advance("2026-04-01T00:00:00Z");
    // 09:00 Asia/Shanghai = 01:00Z
    assert_eq!(
        h.summary(),
        ["u1 birthday step1 2026-03-15T01:00:00.000Z sent"]
    );
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
    h.send(track(
        "u1",
        "Coupon Applied",
        "2026-11-23T10:00:00Z",
        "a",
        json!({}),
    ));
    h.send(track(
        "u1",
        "Coupon Applied",
        "2026-11-23T23:00:00Z",
        "b",
        json!({}),
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
