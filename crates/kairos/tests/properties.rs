//! Engine invariants under generated input (proptest), on the default
//! pipeline `pipelines/retail.toml`:
//! - the same input twice gives byte-identical output;
//! - shuffling events within the allowed lateness changes nothing;
//! - packing idle customers, however soon, changes nothing;
//! - after erasure nothing about the customer remains.

use kairos_engine::Engine;
use kairos_model::{Event, Span, Timestamp};
use proptest::prelude::*;
use serde_json::{json, Value};

fn retail() -> kairos_engine::config::Pipeline {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../pipelines/retail.toml");
    kairos_pipeline::load(std::path::Path::new(path), &[])
        .unwrap_or_else(|errors| panic!("{errors:?}"))
}

const START: i64 = 1_795_000_000_000; // 2026-11-19

/// One generated call: (customer, kind, gap in ms since the previous event, value).
#[derive(Clone, Debug)]
struct Step {
    customer: u8,
    kind: u8,
    gap_ms: u32,
    value: u16,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        (0u8..6, 0u8..14, 1u32..4_000_000, 0u16..2000).prop_map(
            |(customer, kind, gap_ms, value)| Step {
                customer,
                kind,
                gap_ms,
                value,
            },
        ),
        1..120,
    )
}

/// Renders steps as Segment calls with strictly increasing timestamps.
fn calls(steps: &[Step]) -> Vec<Value> {
    let mut time = START;
    steps
        .iter()
        .enumerate()
        .map(|(index, step)| {
            time += i64::from(step.gap_ms);
            let stamp = Timestamp(time).to_rfc3339();
            let user = format!("u{}", step.customer);
            let id = format!("m{index}");
            let cart = format!("c{}", step.value % 3);
            let product = format!("p{}", step.value % 5);
            let (name, properties) = match step.kind {
                0 => ("Product Added", json!({"cart_id": cart, "product_id": product, "price": 10.0})),
                1 => ("Product Removed", json!({"cart_id": cart, "product_id": product})),
                2 => ("Order Completed", json!({"cart_id": cart, "order_id": id, "revenue": f64::from(step.value), "products": [{"product_id": product}]})),
                3 => ("Product Viewed", json!({"product_id": product, "category": "tea"})),
                4 => ("Store Visited", json!({"store_id": "s1", "method": "qr"})),
                5 => ("Location Updated", json!({"lat": 31.2352, "lon": 121.4747})),
                6 => ("Points Earned", json!({"points": step.value})),
                7 => ("Complaint Filed", json!({"complaint_id": format!("k{}", step.value % 4), "severity": 1 + step.value % 3})),
                8 => ("Complaint Resolved", json!({"complaint_id": format!("k{}", step.value % 4)})),
                9 => ("Message Opened", json!({})),
                10 => ("Signed Up", json!({})),
                11 => ("Review Submitted", json!({"rating": step.value % 5 + 1})),
                _ => ("identify", json!({})),
            };
            if name == "identify" {
                json!({"type": "identify", "userId": user, "anonymousId": format!("a{}", step.customer), "messageId": id, "timestamp": stamp,
                       "traits": {"birthday": "1990-11-20", "consent": {"push": true, "email": true, "sms": step.value % 2 == 0}},
                       "context": {"timezone": if step.value % 2 == 0 { "Asia/Shanghai" } else { "Europe/Berlin" }}})
            } else if step.value % 7 == 0 {
                json!({"type": "track", "event": name, "anonymousId": format!("a{}", step.customer), "messageId": id, "timestamp": stamp, "properties": properties})
            } else {
                json!({"type": "track", "event": name, "userId": user, "messageId": id, "timestamp": stamp, "properties": properties})
            }
        })
        .collect()
}

/// Runs calls (in the given arrival order) and renders every decision as its
/// action JSON line.
fn replay(calls: &[Value]) -> String {
    replay_on(retail(), calls)
}

/// [`replay`] on another pipeline.
fn replay_on(pipeline: kairos_engine::config::Pipeline, calls: &[Value]) -> String {
    let mut engine = Engine::new(pipeline);
    let mut out = String::new();
    let mut drain = |engine: &mut Engine| {
        while let Some(decision) = engine.poll_decision() {
            out.push_str(
                &serde_json::to_string(&decision.to_action("retail")).expect("serialisable"),
            );
            out.push('\n');
        }
    };
    for call in calls {
        engine.handle_event(
            Event::from_json(call.to_string().as_bytes()).expect("generated calls are valid"),
        );
        drain(&mut engine);
    }
    engine.advance_to(Timestamp::MAX);
    drain(&mut engine);
    out
}

/// Appends SDK-style retries: for each (index, shift), call `index` again
/// with its timestamp moved `shift` later, arriving after everything else.
/// Only retries less than the de-dup look-back (24 h) behind the newest
/// event when they arrive are kept: packing may forget older ids
/// (`pack_idle_after`). The newest includes retries sent before, which may
/// be later than every original.
fn with_retries(calls: &mut Vec<Value>, retries: &[(usize, i64)]) {
    let time = |call: &Value| {
        Timestamp::parse_rfc3339(call["timestamp"].as_str().unwrap_or_default()).map_or(0, |t| t.0)
    };
    let mut newest = calls.iter().map(time).max().unwrap_or(START);
    for &(index, shift) in retries {
        let Some(original) = calls.get(index % calls.len().max(1)) else {
            continue;
        };
        let retried = time(original) + shift;
        if newest - retried < 86_400_000 {
            let mut retry = original.clone();
            retry["timestamp"] = Value::String(Timestamp(retried).to_rfc3339());
            calls.push(retry);
            newest = newest.max(retried);
        }
    }
}

/// Runs `calls` through `retail.toml`, packing idle customers after
/// `idle_after`, and the clock to the end of time; the decisions wait in
/// the engine.
fn run_packing_after(idle_after: Span, calls: &[Value]) -> Engine {
    let mut pipeline = retail();
    pipeline.settings.pack_idle_after = idle_after;
    let mut engine = Engine::new(pipeline);
    for call in calls {
        engine.handle_event(Event::from_json(call.to_string().as_bytes()).expect("valid"));
    }
    engine.advance_to(Timestamp::MAX);
    engine
}

#[test]
fn a_late_retry_within_the_look_back_is_a_duplicate_packed_or_not() {
    // u1 adds to a cart; u2 browses for 31 h, moving the clock; then u1's
    // SDK retries the add with a timestamp 23 h 59 min after the original,
    // 7 h behind the clock (so, late): within the 24 h look-back of the
    // original, a duplicate, whether u1 was packed in between or not.
    let start = START;
    let add = |time: i64| {
        json!({"type": "track", "event": "Product Added", "userId": "u1", "messageId": "m1",
        "timestamp": Timestamp(time).to_rfc3339(), "properties": {"cart_id": "c1", "product_id": "p1", "price": 10.0}})
    };
    let mut calls = vec![add(start)];
    for step in 0..186 {
        calls.push(json!({"type": "track", "event": "Product Viewed", "userId": "u2", "messageId": format!("x{step}"),
            "timestamp": Timestamp(start + 3_600_000 + step * 600_000).to_rfc3339(), "properties": {"product_id": "p2"}}));
    }
    calls.push(add(start + 86_340_000));
    let run = |idle_after: Span| {
        let mut engine = run_packing_after(idle_after, &calls);
        let mut decisions = Vec::new();
        while let Some(decision) = engine.poll_decision() {
            decisions
                .push(serde_json::to_string(&decision.to_action("retail")).expect("serialisable"));
        }
        (
            engine.stats().duplicates,
            engine.stats().late,
            engine.packing().packed > 0,
            decisions,
        )
    };
    let never = run(Span::DAY * 36_500);
    assert_eq!(
        (never.0, never.1, never.2),
        (1, 1, false),
        "one late duplicate, nobody packed"
    );
    for idle_after in [Span(1), Span::HOUR, Span::DAY, Span::DAY * 2] {
        let packed = run(idle_after);
        assert!(
            packed.2 || idle_after > Span::DAY,
            "packed after {idle_after}"
        );
        assert_eq!(
            packed.0, 1,
            "packed after {idle_after}: the retry is a duplicate"
        );
        assert_eq!(packed.3, never.3, "packed after {idle_after}");
    }
}

#[test]
fn after_the_input_is_closed_nobody_is_packed() {
    let call = |user: &str, day: i64| {
        json!({"type": "track", "event": "Product Viewed", "userId": user, "messageId": format!("{user}-{day}"),
        "timestamp": Timestamp(START + day * 86_400_000).to_rfc3339(), "properties": {}})
    };
    let run = |close: bool| {
        let mut pipeline = retail();
        pipeline.settings.pack_idle_after = Span::HOUR;
        let mut engine = Engine::new(pipeline);
        for (user, day) in [("u1", 0), ("u2", 0), ("u1", 2), ("u3", 3)] {
            engine.handle_event(
                Event::from_json(call(user, day).to_string().as_bytes()).expect("valid"),
            );
        }
        let packed_before = engine.packing().packed;
        if close {
            engine.close_input();
        }
        // As the backtest runs its clock after the input: deadline by deadline.
        let mut decisions = Vec::new();
        while let Some(due) = engine.poll_timeout() {
            engine.advance_to(due + Span(1));
            while let Some(decision) = engine.poll_decision() {
                decisions.push(
                    serde_json::to_string(&decision.to_action("retail")).expect("serialisable"),
                );
            }
        }
        (packed_before, engine.packing().packed, decisions)
    };
    let (open, closed) = (run(false), run(true));
    assert!(open.0 > 0, "u2 was packed while u1's events came");
    assert!(
        open.1 > open.0,
        "left open, the run to the end keeps packing"
    );
    assert_eq!(closed.1, closed.0, "closed, nobody more is packed");
    assert_eq!(closed.2, open.2, "and the decisions are the same");
}

#[test]
fn merging_identities_keeps_the_newer_sighting_packed_or_not() {
    // u1 saw "dup" four days before its device a1 did; the device is then
    // linked to u1, and "dup" comes again at once: a duplicate of the
    // device's sighting, whether u1's old one was forgotten (packed) or not.
    let at =
        |day: i64, minute: i64| Timestamp(START + day * 86_400_000 + minute * 60_000).to_rfc3339();
    let calls = [
        json!({"type": "track", "event": "Product Viewed", "userId": "u1", "messageId": "dup", "timestamp": at(0, 0), "properties": {}}),
        json!({"type": "track", "event": "Product Viewed", "anonymousId": "a1", "messageId": "dup", "timestamp": at(4, 0), "properties": {}}),
        json!({"type": "identify", "userId": "u1", "anonymousId": "a1", "messageId": "id1", "timestamp": at(4, 1), "traits": {}}),
        json!({"type": "track", "event": "Product Viewed", "userId": "u1", "messageId": "dup", "timestamp": at(4, 2), "properties": {}}),
    ];
    for idle_after in [Span::MINUTE, Span::DAY * 2, Span::DAY * 36_500] {
        let engine = run_packing_after(idle_after, &calls);
        assert_eq!(engine.stats().duplicates, 1, "packed after {idle_after}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn the_same_input_gives_byte_identical_output(steps in steps()) {
        let calls = calls(&steps);
        prop_assert_eq!(replay(&calls), replay(&calls));
    }

    #[test]
    fn shuffling_within_the_allowed_lateness_changes_nothing(steps in steps(), jitters in prop::collection::vec(0i64..4_900, 120)) {
        let calls = calls(&steps);
        let in_order = replay(&calls);
        // Arrival order: by event time plus a jitter below the 5 s lateness,
        // so an event is never overtaken by one more than 5 s newer.
        let mut arrival: Vec<(i64, usize)> = calls
            .iter()
            .enumerate()
            .map(|(index, call)| {
                let time = Timestamp::parse_rfc3339(call["timestamp"].as_str().unwrap_or_default()).map(|t| t.0).unwrap_or(0);
                (time + jitters[index % jitters.len()], index)
            })
            .collect();
        arrival.sort();
        let shuffled: Vec<Value> = arrival.iter().map(|(_, index)| calls[*index].clone()).collect();
        prop_assert_eq!(in_order, replay(&shuffled));
    }

    #[test]
    fn packing_idle_customers_changes_nothing(
        steps in steps(),
        idle_after_ms in 1i64..7_200_000,
        retries in prop::collection::vec((0usize..120, 0i64..86_400_000), 0..6),
    ) {
        let mut calls = calls(&steps);
        with_retries(&mut calls, &retries);
        let mut packing = retail();
        packing.settings.pack_idle_after = Span(idle_after_ms);
        prop_assert_eq!(replay(&calls), replay_on(packing, &calls));
    }

    #[test]
    fn after_erasure_nothing_about_the_customer_remains(steps in steps(), victim in 0u8..6, idle_after_ms in 1i64..7_200_000) {
        let mut calls = calls(&steps);
        let last = calls.last().and_then(|c| c["timestamp"].as_str()).map(|t| Timestamp::parse_rfc3339(t).map(|t| t.0).unwrap_or(START)).unwrap_or(START);
        let user = format!("u{victim}");
        let device = format!("a{victim}");
        // Link the device to the person, then erase the person.
        calls.push(json!({"type": "identify", "userId": user, "anonymousId": device, "messageId": "link", "timestamp": Timestamp(last + 1).to_rfc3339()}));
        calls.push(json!({"type": "track", "event": "Erasure Requested", "userId": user, "messageId": "erase", "timestamp": Timestamp(last + 2).to_rfc3339()}));
        // Customers may be packed when erased, or hold packed traces.
        let mut pipeline = retail();
        pipeline.settings.pack_idle_after = Span(idle_after_ms);
        let mut engine = Engine::new(pipeline);
        for call in &calls {
            engine.handle_event(Event::from_json(call.to_string().as_bytes()).expect("valid"));
            while engine.poll_decision().is_some() {}
        }
        // Decisions made before the erasure took effect are history, not state.
        engine.advance_to(Timestamp(last + 10_000));
        while engine.poll_decision().is_some() {}
        let mut later = Vec::new();
        engine.advance_to(Timestamp::MAX);
        while let Some(decision) = engine.poll_decision() {
            later.push(decision);
        }
        prop_assert!(!engine.holds_anything_about(&user));
        prop_assert!(!engine.holds_anything_about(&device));
        prop_assert!(later.iter().all(|d| d.user_id != user && d.user_id != device));
    }
}

/// A value of any JSON type, for properties that senders get wrong.
fn wild_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-z0-9 -]{0,12}".prop_map(Value::from),
        Just(json!([{"product_id": 1}, "x", null])),
        Just(json!({"nested": {"deeper": [1, 2]}})),
        Just(json!("2026-11-24T10:00:00Z")),
        Just(json!("9999-12-31T23:59:59Z")),
    ]
}

/// Calls with valid envelopes but arbitrary property types and extreme times.
fn wild_calls() -> impl Strategy<Value = Vec<Value>> {
    let names = prop::sample::select(vec![
        "Product Added",
        "Product Removed",
        "Order Completed",
        "Product Viewed",
        "Store Visited",
        "Location Updated",
        "Points Earned",
        "Complaint Filed",
        "Complaint Resolved",
        "Message Opened",
        "Signed Up",
        "Review Submitted",
        "Referral Converted",
        "Consent Updated",
        "Erasure Requested",
    ]);
    let times = prop_oneof![
        Just("0001-01-01T00:00:00Z".to_string()),
        Just("9999-12-31T23:59:59.999Z".to_string()),
        (0i64..4_000_000_000_000).prop_map(|ms| Timestamp(ms).to_rfc3339()),
    ];
    let keys = prop::sample::select(vec![
        "cart_id",
        "product_id",
        "price",
        "quantity",
        "revenue",
        "products",
        "severity",
        "complaint_id",
        "points",
        "expires_at",
        "lat",
        "lon",
        "rating",
        "order_id",
        "referee_id",
        "channel",
        "granted",
        "consent",
    ]);
    prop::collection::vec(
        (names, times, 0u8..4, prop::collection::vec((keys, wild_value()), 0..6), wild_value()),
        1..60,
    )
    .prop_map(|calls| {
        calls
            .into_iter()
            .enumerate()
            .map(|(index, (name, time, user, properties, trait_value))| {
                let properties: serde_json::Map<String, Value> =
                    properties.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                if index % 5 == 4 {
                    json!({"type": "identify", "userId": format!("u{user}"), "anonymousId": format!("a{user}"),
                           "messageId": format!("m{index}"), "timestamp": time,
                           "traits": {"birthday": trait_value, "consent": trait_value, "timezone": trait_value}})
                } else {
                    json!({"type": "track", "event": name, "userId": format!("u{user}"), "messageId": format!("m{index}"),
                           "timestamp": time, "properties": properties, "context": {"timezone": trait_value}})
                }
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Whatever types senders put in properties and traits, and however far
    /// apart the event times, the engine never panics and time runs out.
    #[test]
    fn odd_properties_and_extreme_times_never_panic(calls in wild_calls()) {
        let mut engine = Engine::new(retail());
        for call in &calls {
            if let Ok(event) = Event::from_json(call.to_string().as_bytes()) {
                engine.handle_event(event);
            }
            while engine.poll_decision().is_some() {}
        }
        // Step through the remaining deadlines like the backtest does, the
        // input closed.
        engine.close_input();
        let mut steps = 0;
        while let Some(due) = engine.poll_timeout() {
            engine.advance_to(due + kairos_model::Span(1));
            while engine.poll_decision().is_some() {}
            steps += 1;
            prop_assert!(steps < 100_000, "the clock never ran out of deadlines");
        }
    }
}
