//! Attribution (issue #7): a conversion within the window after a
//! customer's latest sent action, or held-out decision, is that decision's
//! (last touch), with its revenue; each touch converts once; the holdout
//! group is tracked the same way, per trigger and variant.

mod support;
use kairos_engine::VariantStats;
use serde_json::json;
use support::{track, Harness};

fn pipeline(holdout_percent: u32, extra_settings: &str) -> String {
    format!(
        r#"
name = "attribution_test"
[settings]
{extra_settings}
[policy]
holdout_percent = {holdout_percent}
consent_required = []
quiet_hours = false
weekly_marketing_cap = 1000
daily_caps = {{ targeted = 1000, content = 1000 }}
arbitration_window = "0s"

[[trigger]]
id = "abandoned_cart"
kind = "absence"
key = "cart_id"
start = "Product Added"
cancel = ["Order Completed"]
after = "30m"
channel = "push"

[[trigger]]
id = "thank_you"
kind = "count"
event = "Order Completed"
min = 1
window = {{ tumbling = "1d" }}
channel = "email"
category = "transactional"

[[trigger]]
id = "browse"
kind = "count"
event = "Product Viewed"
min = 1
window = {{ tumbling = "1d" }}
channel = "push"

[[trigger.variants]]
name = "short"
weight = 1

[[trigger.variants]]
name = "long"
weight = 1
"#
    )
}

fn add(user: &str, time: &str, id: &str) -> serde_json::Value {
    track(
        user,
        "Product Added",
        time,
        id,
        json!({"cart_id": format!("cart-{user}"), "product_id": "p1", "price": 10}),
    )
}

fn order(user: &str, time: &str, id: &str, properties: serde_json::Value) -> serde_json::Value {
    track(user, "Order Completed", time, id, properties)
}

fn trigger<'a>(h: &'a Harness, id: &str) -> &'a kairos_engine::TriggerStats {
    h.engine
        .stats()
        .triggers
        .iter()
        .find(|trigger| trigger.id == id)
        .expect("the trigger")
}

#[test]
fn an_order_within_the_window_is_the_last_actions_and_counts_once() {
    let mut h = Harness::new(&pipeline(0, ""));
    // Both reminded at 12:30. u1 orders at 14:00 and 15:00 (both within
    // 24 h); u2 orders a day and a minute later: too late. (In time order:
    // an event far behind the clock would be late, and its reminder sent
    // when it arrived.)
    h.send(add("u1", "2026-11-23T12:00:00Z", "a1"));
    h.send(add("u2", "2026-11-23T12:00:00Z", "a2"));
    h.send(order(
        "u1",
        "2026-11-23T14:00:00Z",
        "o1",
        json!({"revenue": 25.5}),
    ));
    h.send(order(
        "u1",
        "2026-11-23T15:00:00Z",
        "o2",
        json!({"total": "10"}),
    ));
    h.send(order(
        "u2",
        "2026-11-24T12:31:00Z",
        "o3",
        json!({"revenue": 99}),
    ));
    h.finish();
    let cart = trigger(&h, "abandoned_cart").attribution();
    assert_eq!(
        (cart.sent, cart.conversions, cart.revenue),
        (2, 1, 25.5),
        "{cart:?}"
    );
    assert_eq!(cart.conversion_rate(), Some(0.5));
    // Nobody is held out: no holdout rate, no uplift.
    assert_eq!((cart.held_out, cart.holdout_conversion_rate()), (0, None));
    assert_eq!(cart.uplift(), None);
    // The thank-you each order causes is not credited with that order;
    // u1's second order is the thank-you's (u1's last touch by then).
    let thanks = trigger(&h, "thank_you").attribution();
    // One a day per customer (a tumbling window of a day).
    assert_eq!(thanks.sent, 2);
    assert_eq!(
        (thanks.conversions, thanks.revenue),
        (1, 10.0),
        "{thanks:?}"
    );
}

#[test]
fn the_holdout_groups_would_be_actions_convert_the_same_way_giving_the_uplift() {
    // Everyone held out: decisions are suppressed with `holdout` and
    // tracked as touches (the transactional thank-you is not held out).
    let mut h = Harness::new(&pipeline(100, ""));
    for (user, orders) in [("u1", true), ("u2", false), ("u3", false), ("u4", true)] {
        h.send(add(user, "2026-11-23T12:00:00Z", &format!("a-{user}")));
        if orders {
            let id = format!("o-{user}");
            h.send(order(
                user,
                "2026-11-23T13:00:00Z",
                &id,
                json!({"revenue": 5}),
            ));
        }
    }
    h.finish();
    let cart = trigger(&h, "abandoned_cart").attribution();
    assert_eq!(
        (
            cart.sent,
            cart.held_out,
            cart.holdout_conversions,
            cart.holdout_revenue
        ),
        (0, 4, 2, 10.0),
        "{cart:?}"
    );
    assert_eq!(cart.holdout_conversion_rate(), Some(0.5));
    assert_eq!(cart.conversion_rate(), None);

    // Half held out: the sent group's rate minus the holdout's.
    let by_hand = VariantStats {
        sent: 4,
        conversions: 3,
        held_out: 2,
        holdout_conversions: 1,
        ..VariantStats::default()
    };
    assert_eq!(by_hand.uplift(), Some(0.75 - 0.5));
}

#[test]
fn conversions_are_counted_per_variant_and_the_event_and_window_are_settings() {
    let settings = r#"conversion_event = "Checkout Finished"
attribution_window = "1h""#;
    let mut h = Harness::new(&pipeline(0, settings));
    for n in 0..40 {
        let user = format!("u{n}");
        h.send(track(
            &user,
            "Product Viewed",
            "2026-11-23T12:00:00Z",
            &format!("v{n}"),
            json!({"product_id": "p1"}),
        ));
        // Checkout Finished is the conversion (it would not be by
        // default): within the hour it counts, after two hours it does not.
        let time = if n % 2 == 0 {
            "2026-11-23T12:30:00Z"
        } else {
            "2026-11-23T14:30:00Z"
        };
        h.send(track(
            &user,
            "Checkout Finished",
            time,
            &format!("c{n}"),
            json!({"revenue": 3}),
        ));
    }
    h.finish();
    let browse = trigger(&h, "browse");
    let names: Vec<&str> = browse.variants.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["short", "long"]);
    for variant in &browse.variants {
        assert!(variant.sent > 0, "{browse:?}");
        assert!(
            variant.conversions > 0 && variant.conversions < variant.sent,
            "{browse:?}"
        );
        assert_eq!(variant.revenue, variant.conversions as f64 * 3.0);
    }
    let all = browse.attribution();
    assert_eq!(
        (all.name.as_str(), all.sent, all.conversions, all.revenue),
        ("all", 40, 20, 60.0)
    );
    let thanks = trigger(&h, "thank_you");
    assert_eq!(thanks.variants.len(), 1);
    assert_eq!(thanks.variants[0].name, "control");
}
