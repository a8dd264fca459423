//! Engine invariants under generated input (proptest), on the default
//! pipeline `pipelines/retail.toml`:
//! - the same input twice gives byte-identical output;
//! - shuffling events within the allowed lateness changes nothing;
//! - after erasure nothing about the customer remains.

use kairos_engine::Engine;
use kairos_model::{Event, Timestamp};
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
    let mut engine = Engine::new(retail());
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
    fn after_erasure_nothing_about_the_customer_remains(steps in steps(), victim in 0u8..6) {
        let mut calls = calls(&steps);
        let last = calls.last().and_then(|c| c["timestamp"].as_str()).map(|t| Timestamp::parse_rfc3339(t).map(|t| t.0).unwrap_or(START)).unwrap_or(START);
        let user = format!("u{victim}");
        let device = format!("a{victim}");
        // Link the device to the person, then erase the person.
        calls.push(json!({"type": "identify", "userId": user, "anonymousId": device, "messageId": "link", "timestamp": Timestamp(last + 1).to_rfc3339()}));
        calls.push(json!({"type": "track", "event": "Erasure Requested", "userId": user, "messageId": "erase", "timestamp": Timestamp(last + 2).to_rfc3339()}));
        let mut engine = Engine::new(retail());
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
