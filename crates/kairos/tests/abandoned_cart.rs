//! The abandoned-cart semantics other implementations are checked against
//! (issue #2, item 8): per key, an add at t schedules a fire at t + T; a later
//! add moves it; an order (or the cart emptied) before the fire cancels it; an
//! order at exactly t + T still counts as in time; `fired_at` = last add + T;
//! later ladder steps are separate decisions with step 2, 3, ...

mod support;
use serde_json::json;
use support::{track, Harness, OPEN_POLICY};

fn cart_pipeline() -> String {
    format!(
        r#"
name = "cart_test"
{OPEN_POLICY}
[[trigger]]
id = "abandoned_cart"
kind = "absence"
key = "cart_id"
start = "Product Added"
cancel = ["Order Completed"]
cancel_when_cart_empty = true
after = "30m"
channel = "push"
payload = {{ cart = true }}

[[trigger.ladder]]
at = "24h"
channel = "email"
offer = "CART10"
"#
    )
}

fn add(user: &str, cart: &str, time: &str, id: &str) -> serde_json::Value {
    track(
        user,
        "Product Added",
        time,
        id,
        json!({"cart_id": cart, "product_id": "p9", "price": 12.5}),
    )
}

#[test]
fn fires_at_last_add_plus_t_with_a_ladder() {
    let mut h = Harness::new(&cart_pipeline());
    h.send(add("u1", "c1", "2026-11-23T12:00:00Z", "m1"));
    h.send(add("u1", "c1", "2026-11-23T12:10:00Z", "m2"));
    h.finish();
    assert_eq!(
        h.summary(),
        [
            "u1 abandoned_cart step1 2026-11-23T12:40:00.000Z sent",
            "u1 abandoned_cart step2 2026-11-24T12:10:00.000Z sent",
        ]
    );
    let first = &h.decisions[0];
    assert_eq!(first.events, ["m1", "m2"]);
    assert_eq!(first.payload.to_value()["cart_value"], json!(25.0));
    assert_eq!(first.payload.to_value()["cart"][0]["quantity"], json!(2));
    assert_eq!(&*h.decisions[1].channel, "email");
    assert_eq!(h.decisions[1].payload.to_value()["offer"], "CART10");
    assert_ne!(first.action_id, h.decisions[1].action_id);
}

#[test]
fn an_order_at_exactly_t_is_in_time_and_one_millisecond_later_is_not() {
    let mut in_time = Harness::new(&cart_pipeline());
    in_time.send(add("u1", "c1", "2026-11-23T12:00:00Z", "m1"));
    in_time.send(track(
        "u1",
        "Order Completed",
        "2026-11-23T12:30:00Z",
        "m2",
        json!({"cart_id": "c1"}),
    ));
    in_time.finish();
    assert!(in_time.decisions.is_empty(), "{:?}", in_time.summary());

    let mut late = Harness::new(&cart_pipeline());
    late.send(add("u1", "c1", "2026-11-23T12:00:00Z", "m1"));
    late.send(track(
        "u1",
        "Order Completed",
        "2026-11-23T12:30:00.001Z",
        "m2",
        json!({"cart_id": "c1"}),
    ));
    late.finish();
    // The push went out; the order then cancels the rest of the ladder.
    assert_eq!(
        late.summary(),
        ["u1 abandoned_cart step1 2026-11-23T12:30:00.000Z sent"]
    );
}

#[test]
fn checking_out_cart_b_does_not_silence_cart_a() {
    let mut h = Harness::new(&cart_pipeline());
    h.send(add("u1", "cartA", "2026-11-23T12:00:00Z", "m1"));
    h.send(add("u1", "cartB", "2026-11-23T12:01:00Z", "m2"));
    h.send(track(
        "u1",
        "Order Completed",
        "2026-11-23T12:05:00Z",
        "m3",
        json!({"cart_id": "cartB"}),
    ));
    h.advance("2026-11-23T13:00:00Z");
    assert_eq!(
        h.summary(),
        ["u1 abandoned_cart step1 2026-11-23T12:30:00.000Z sent"]
    );
    assert_eq!(h.decisions[0].payload.to_value()["cart_id"], "cartA");
}

#[test]
fn emptying_the_cart_cancels() {
    let mut h = Harness::new(&cart_pipeline());
    h.send(add("u1", "c1", "2026-11-23T12:00:00Z", "m1"));
    h.send(track(
        "u1",
        "Product Removed",
        "2026-11-23T12:05:00Z",
        "m2",
        json!({"cart_id": "c1", "product_id": "p9"}),
    ));
    h.finish();
    assert!(h.decisions.is_empty(), "{:?}", h.summary());
}

#[test]
fn timers_fire_without_further_events_when_the_clock_advances() {
    let mut h = Harness::new(&cart_pipeline());
    h.send(add("u1", "c1", "2026-11-23T12:00:00Z", "m1"));
    h.advance("2026-11-23T12:30:00Z");
    assert!(
        h.decisions.is_empty(),
        "not before the watermark passes the deadline"
    );
    h.advance("2026-11-23T12:30:00.001Z");
    assert_eq!(h.decisions.len(), 1);
    assert_eq!(
        h.engine.poll_timeout(),
        Some(support::at("2026-11-24T12:00:00Z"))
    );
}

#[test]
fn action_ids_are_deterministic() {
    let run = || {
        let mut h = Harness::new(&cart_pipeline());
        h.send(add("u1", "c1", "2026-11-23T12:00:00Z", "m1"));
        h.finish();
        h.decisions
            .iter()
            .map(|d| d.action_id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(run(), run());
    assert!(run()[0].starts_with("act_") && run()[0].len() == 20);
}
