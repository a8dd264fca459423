//! Snapshots (`Engine::snapshot`, `Engine::restore`): a service that stops
//! anywhere, restores its snapshot into a new engine and goes on with the
//! same input makes the same decisions, byte for byte, and counts the
//! same, as one that never stopped. And a snapshot that is not this
//! engine's, or is damaged, is refused, never half-restored.

mod support;

use kairos_engine::{Engine, SnapshotError};
use kairos_model::{Event, Span, Timestamp};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::sync::OnceLock;

fn retail() -> kairos_engine::config::Pipeline {
    static RETAIL: OnceLock<kairos_engine::config::Pipeline> = OnceLock::new();
    RETAIL
        .get_or_init(|| {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../pipelines/retail.toml");
            kairos_pipeline::load(std::path::Path::new(path), &[])
                .unwrap_or_else(|errors| panic!("{errors:?}"))
        })
        .clone()
}

/// Rate, threshold (an amount and a rank) and absence triggers, a short
/// look-back and packing after an hour, quiet hours that defer.
const SMALL: &str = r#"
name = "small"

[settings]
allowed_lateness = "5s"
late_events = "apply"
dedup_lookback = "1h"
pack_idle_after = "1h"
erasure_event = "Erasure Requested"

[policy]
holdout_percent = 0
consent_required = []
quiet_hours = { start = "22:00", end = "08:00" }
weekly_marketing_cap = 1000
daily_caps = { targeted = 1000, content = 1000 }
arbitration_window = "5m"

[[trigger]]
id = "spike"
kind = "rate"
events = ["Complaint Filed"]
window = "20m"
baseline = "2h"
increase_percent = 30
min_count = 3
pause_marketing = "30m"

[[trigger]]
id = "big_spender"
kind = "threshold"
measure = { event = "Order Completed", property = "revenue", window = "1d" }
at_least = 1500
channel = "email"

[[trigger]]
id = "vip"
kind = "threshold"
measure = { event = "Order Completed", property = "revenue", window = "7d" }
top_percent = 30
channel = "service_desk"

[[trigger]]
id = "cart"
kind = "absence"
key = "cart_id"
start = "Product Added"
cancel = ["Order Completed"]
after = "20m"
channel = "push"

[[trigger.ladder]]
at = "3h"
channel = "email"
"#;

fn small() -> kairos_engine::config::Pipeline {
    static PIPELINE: OnceLock<kairos_engine::config::Pipeline> = OnceLock::new();
    PIPELINE.get_or_init(|| support::pipeline(SMALL)).clone()
}

const START: i64 = 1_795_000_000_000; // 2026-11-19T09:46:40Z

/// One input to the engine.
#[derive(Clone, Debug)]
enum Input {
    /// `handle_event`.
    Event(Value),
    /// `handle_live_event` with the clock at the given time.
    Live(Value, i64),
    /// `advance_to`.
    Advance(i64),
}

/// One generated step: (customer, kind, gap in ms, value, how it comes in).
#[derive(Clone, Debug)]
struct Step {
    customer: u8,
    kind: u8,
    gap_ms: u32,
    value: u16,
    mode: u8,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        (
            0u8..6,
            0u8..18,
            prop_oneof![3 => 1u32..20_000, 3 => 1u32..1_200_000, 1 => 1u32..6_000_000],
            0u16..2000,
            0u8..20,
        )
            .prop_map(|(customer, kind, gap_ms, value, mode)| Step {
                customer,
                kind,
                gap_ms,
                value,
                mode,
            }),
        1..140,
    )
}

/// Property values of every kind, for events that wait in the reorder
/// buffer across a snapshot.
fn odd_values(value: u16) -> Value {
    json!({
        "n": -i64::from(value) - 1,
        "big": u64::MAX - u64::from(value),
        "f": f64::from(value) / 7.0,
        "t": value.is_multiple_of(2),
        "none": null,
        "s": format!("s{value}"),
        "list": [1, "x", null, 2.5, [[]], {"k": {"deep": [value]}}],
    })
}

/// Renders steps as inputs: events mostly in order, some up to the
/// allowed lateness out of it, some late, some retried (the same message
/// id again), some live with a clock, some clock advances.
fn inputs(steps: &[Step]) -> Vec<Input> {
    let mut time = START;
    let mut inputs = Vec::new();
    for (index, step) in steps.iter().enumerate() {
        time += i64::from(step.gap_ms);
        let jitter = match step.mode {
            0..=3 => i64::from(step.value % 4_000),
            4 => 60_000 + i64::from(step.value) * 100, // late
            _ => 0,
        };
        let event_time = time - jitter;
        let user = format!("u{}", step.customer);
        let anonymous = format!("a{}", step.customer);
        let id = if step.mode == 5 && index > 0 {
            format!("m{}", index - 1 - usize::from(step.value) % index) // a retry
        } else {
            format!("m{index}")
        };
        let stamp = Timestamp(event_time).to_rfc3339();
        let cart = format!("c{}", step.value % 3);
        let product = format!("p{}", step.value % 5);
        let mut call = match step.kind {
            0 | 1 => {
                json!({"type": "track", "event": "Product Added", "properties": {"cart_id": cart, "product_id": product, "price": 10.5, "quantity": 1 + step.value % 3}})
            }
            2 => {
                json!({"type": "track", "event": "Product Removed", "properties": {"cart_id": cart, "product_id": product}})
            }
            3 => {
                json!({"type": "track", "event": "Order Completed", "properties": {"cart_id": cart, "order_id": id, "revenue": f64::from(step.value), "products": [{"product_id": product}]}})
            }
            4 => {
                json!({"type": "track", "event": "Product Viewed", "properties": {"product_id": product, "category": "tea"}})
            }
            5 | 6 => {
                json!({"type": "track", "event": "Complaint Filed", "properties": {"complaint_id": format!("k{}", step.value % 4), "severity": 1 + step.value % 3}})
            }
            7 => {
                json!({"type": "track", "event": "Complaint Resolved", "properties": {"complaint_id": format!("k{}", step.value % 4)}})
            }
            8 => json!({"type": "track", "event": "Message Opened", "properties": {}}),
            9 => json!({"type": "track", "event": "Signed Up", "properties": {}}),
            10 => {
                json!({"type": "track", "event": "Review Submitted", "properties": {"rating": step.value % 5 + 1}})
            }
            11 => {
                json!({"type": "track", "event": "Store Visited", "properties": {"store_id": "s1", "method": "qr"}})
            }
            12 => {
                json!({"type": "track", "event": "Points Earned", "properties": {"points": step.value}})
            }
            13 if step.value.is_multiple_of(5) => {
                json!({"type": "track", "event": "Erasure Requested", "properties": {}})
            }
            14 => json!({"type": "alias", "previousId": anonymous}),
            _ => json!({"type": "identify", "anonymousId": anonymous,
                        "traits": {"birthday": "1990-11-20", "consent": {"push": true, "email": true, "sms": step.value.is_multiple_of(2)}},
                        "context": {"timezone": if step.value.is_multiple_of(2) { "Asia/Shanghai" } else { "Europe/Berlin" }}}),
        };
        call["messageId"] = json!(id);
        call["timestamp"] = json!(stamp);
        // Some calls come from a device before the person is known.
        if step.value.is_multiple_of(7) && call["type"] == "track" {
            call["anonymousId"] = json!(anonymous);
        } else {
            call["userId"] = json!(user);
        }
        if call["type"] == "track" && step.value.is_multiple_of(3) {
            if let Some(properties) = call["properties"].as_object_mut() {
                properties.insert("extra".to_string(), odd_values(step.value));
            }
        }
        inputs.push(match step.mode {
            6..=8 => Input::Live(call, time + i64::from(step.value % 3) * 3_000 - 3_000),
            9 => Input::Advance(time - 1_000),
            _ => Input::Event(call),
        });
    }
    inputs
}

/// Feeds one input and appends what came out: decisions as their action
/// JSON lines, and a live event's refusal.
fn feed(engine: &mut Engine, input: &Input, out: &mut String) {
    let event = |call: &Value| Event::from_json(call.to_string().as_bytes()).expect("valid call");
    match input {
        Input::Event(call) => engine.handle_event(event(call)),
        Input::Live(call, clock) => {
            if let Err(refused) = engine.handle_live_event(event(call), Timestamp(*clock)) {
                writeln!(out, "refused: {refused}").expect("a string");
            }
        }
        Input::Advance(time) => engine.advance_to(Timestamp(*time)),
    }
    drain(engine, out);
}

fn drain(engine: &mut Engine, out: &mut String) {
    let name = engine.pipeline().name.clone();
    while let Some(decision) = engine.poll_decision() {
        let action = decision.to_action(&name);
        out.push_str(&serde_json::to_string(&action).expect("serialisable"));
        out.push('\n');
    }
}

/// Everything a run is judged by: its decisions, its counters and the
/// engine's own accounts of its state.
fn finish(mut engine: Engine, mut out: String) -> String {
    engine.advance_to(Timestamp::MAX);
    drain(&mut engine, &mut out);
    writeln!(
        out,
        "{:?}\npacking {:?}\ncustomers {}",
        engine.stats(),
        engine.packing(),
        engine.customer_count()
    )
    .expect("a string");
    out
}

fn uninterrupted(pipeline: kairos_engine::config::Pipeline, inputs: &[Input]) -> String {
    let mut engine = Engine::new(pipeline);
    let mut out = String::new();
    for input in inputs {
        feed(&mut engine, input, &mut out);
    }
    finish(engine, out)
}

/// Takes a snapshot, checks that restoring it and taking another gives
/// the same bytes, and returns a new engine restored from it (the old one
/// is dropped: nothing of it survives but the bytes).
fn restart(engine: Engine) -> Result<Engine, TestCaseError> {
    let pipeline = engine.pipeline().clone();
    let mut bytes = Vec::new();
    engine.snapshot(&mut bytes).expect("decisions were polled");
    let pending = (engine.poll_pending(), engine.pending_timers());
    drop(engine);
    let restored = Engine::restore(pipeline.clone(), &bytes).expect("a snapshot restores");
    prop_assert_eq!(
        (restored.poll_pending(), restored.pending_timers()),
        pending
    );
    let mut again = Vec::new();
    restored.snapshot(&mut again).expect("nothing to poll");
    prop_assert!(again == bytes, "snapshot -> restore -> snapshot differs");
    Ok(restored)
}

/// Runs `inputs`, restarting from a snapshot after each input whose index
/// is in `cuts`.
fn interrupted(
    pipeline: kairos_engine::config::Pipeline,
    inputs: &[Input],
    cuts: &[usize],
) -> Result<String, TestCaseError> {
    let mut engine = Engine::new(pipeline);
    let mut out = String::new();
    if cuts.contains(&0) {
        engine = restart(engine)?;
    }
    for (index, input) in inputs.iter().enumerate() {
        feed(&mut engine, input, &mut out);
        if cuts.contains(&(index + 1)) {
            engine = restart(engine)?;
        }
    }
    Ok(finish(engine, out))
}

fn cuts(len: usize, picks: &[usize]) -> Vec<usize> {
    picks.iter().map(|pick| pick % (len + 1)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Retail, packing customers idle for an hour or two: the run restarted
    /// from snapshots decides and counts as the run that never stopped.
    #[test]
    fn a_restored_engine_goes_on_as_if_never_stopped_retail(
        steps in steps(),
        picks in prop::collection::vec(any::<usize>(), 1..4),
        idle_hours in 1i64..3,
    ) {
        let inputs = inputs(&steps);
        let mut pipeline = retail();
        pipeline.settings.pack_idle_after = Span::HOUR * idle_hours;
        let expected = uninterrupted(pipeline.clone(), &inputs);
        let got = interrupted(pipeline, &inputs, &cuts(inputs.len(), &picks))?;
        prop_assert_eq!(got, expected);
    }

    /// The same on a small pipeline of rate, threshold and absence
    /// triggers, with a short look-back and quiet hours that defer.
    #[test]
    fn a_restored_engine_goes_on_as_if_never_stopped_small(
        steps in steps(),
        picks in prop::collection::vec(any::<usize>(), 1..4),
    ) {
        let inputs = inputs(&steps);
        let expected = uninterrupted(small(), &inputs);
        let got = interrupted(small(), &inputs, &cuts(inputs.len(), &picks))?;
        prop_assert_eq!(got, expected);
    }
}

/// Cart adds that stay in the reorder buffer (the watermark is 5 s behind
/// the newest), a decision deferred to the end of quiet hours, a packed
/// customer: all there when restored, and every one of these states
/// actually reached, so the property tests above do not pass vacuously.
#[test]
fn waiting_events_deferred_decisions_and_packed_customers_survive_a_restart() {
    let add = |user: &str, time: &str, id: &str| {
        support::track(
            user,
            "Product Added",
            time,
            id,
            json!({"cart_id": "c1", "product_id": "p1", "price": 10.0, "tags": {"a": [1, -2, 0.5, null, true]}}),
        )
    };
    let inputs = vec![
        Input::Event(add("u1", "2026-11-19T10:00:00Z", "m1")),
        // Due 20 min later: 21:20 is before quiet hours, 21:50 + 20 min is in them.
        Input::Event(add("u2", "2026-11-19T21:50:00Z", "m2")),
        Input::Event(add("u3", "2026-11-19T22:30:00Z", "m3")),
        Input::Event(add("u4", "2026-11-19T22:30:01Z", "m4")),
    ];
    let mut engine = Engine::new(small());
    let mut out = String::new();
    for input in &inputs {
        feed(&mut engine, input, &mut out);
    }
    assert!(
        engine.packing().cold_now >= 1,
        "u1 is packed after an hour idle"
    );
    assert!(
        engine.poll_pending() < engine.poll_timeout(),
        "u4's add waits in the reorder buffer"
    );
    let mut bytes = Vec::new();
    engine.snapshot(&mut bytes).expect("nothing to poll");
    let restored = Engine::restore(small(), &bytes).expect("restores");
    assert_eq!(restored.packing(), engine.packing());
    assert_eq!(restored.poll_pending(), engine.poll_pending());
    drop(engine);
    let expected = uninterrupted(small(), &inputs);
    let got = finish(restored, out);
    assert_eq!(got, expected);
    assert!(
        got.contains("\"decided_at\":\"2026-11-20T08:00:00.000Z\""),
        "u2's reminder was deferred to the end of quiet hours:\n{got}"
    );
}

#[test]
fn a_snapshot_is_refused_while_decisions_wait() {
    let mut engine = Engine::new(small());
    engine.handle_event(
        Event::from_json(
            support::track(
                "u1",
                "Order Completed",
                "2026-11-19T10:00:00Z",
                "m1",
                json!({"revenue": 2000}),
            )
            .to_string()
            .as_bytes(),
        )
        .expect("valid"),
    );
    engine.advance_to(Timestamp::MAX);
    assert!(matches!(
        engine.snapshot(&mut Vec::new()),
        Err(SnapshotError::DecisionsWaiting)
    ));
    while engine.poll_decision().is_some() {}
    assert!(engine.snapshot(&mut Vec::new()).is_ok());
}

/// A small snapshot with something in every part: customers packed and in
/// working form, waiting events, timers, aliases, rate memory.
fn small_snapshot() -> Vec<u8> {
    let steps: Vec<Step> = (0..60u16)
        .map(|n| Step {
            customer: (n % 5) as u8,
            kind: (n * 7 % 18) as u8,
            gap_ms: 60_000 + u32::from(n) * 37_000,
            value: n * 13,
            mode: (n % 4) as u8,
        })
        .collect();
    let mut engine = Engine::new(small());
    let mut out = String::new();
    for input in inputs(&steps) {
        feed(&mut engine, &input, &mut out);
    }
    let mut bytes = Vec::new();
    engine.snapshot(&mut bytes).expect("nothing to poll");
    assert!(engine.packing().cold_now > 0 && engine.pending_timers() > 0);
    bytes
}

#[test]
fn a_snapshot_for_another_pipeline_is_incompatible() {
    let bytes = small_snapshot();
    assert!(Engine::restore(small(), &bytes).is_ok());
    let mut changed = small();
    changed.settings.dedup_lookback = Span::HOUR * 2;
    match Engine::restore(changed, &bytes) {
        Err(SnapshotError::Incompatible { reason }) => {
            assert!(reason.contains("pipeline \"small\""), "{reason}")
        }
        other => panic!("{:?}", other.map(|_| "restored")),
    }
    assert!(matches!(
        Engine::restore(retail(), &bytes),
        Err(SnapshotError::Incompatible { .. })
    ));
}

#[test]
fn every_truncation_is_corrupt() {
    let bytes = small_snapshot();
    for len in 0..bytes.len() {
        match Engine::restore(small(), &bytes[..len]) {
            Err(SnapshotError::Corrupt { .. }) => {}
            other => panic!("cut at {len}: {:?}", other.map(|_| "restored")),
        }
    }
}

#[test]
fn any_flipped_byte_is_corrupt() {
    let bytes = small_snapshot();
    for at in 0..bytes.len() {
        let mut damaged = bytes.clone();
        damaged[at] ^= 1 << (at % 8);
        match Engine::restore(small(), &damaged) {
            Err(SnapshotError::Corrupt { .. }) => {}
            other => panic!("byte {at} flipped: {:?}", other.map(|_| "restored")),
        }
    }
}

/// A busy customer (hundreds of events within the look-back: their
/// message ids held in a table), retries and late events among them,
/// restarted from snapshots along the way.
#[test]
fn a_busy_customer_is_restored_as_held() {
    let steps: Vec<Step> = (0..400u16)
        .map(|n| Step {
            customer: (n % 40 / 39) as u8,
            kind: (n * 5 % 13) as u8,
            gap_ms: 2_000 + u32::from(n % 7) * 1_000,
            value: n.wrapping_mul(7919) % 2000,
            mode: [0, 0, 4, 5, 5, 0, 9, 0][usize::from(n % 8)],
        })
        .collect();
    let inputs = inputs(&steps);
    for pipeline in [small(), retail()] {
        let expected = uninterrupted(pipeline.clone(), &inputs);
        let got = interrupted(pipeline, &inputs, &[50, 120, 200, 333, 399])
            .unwrap_or_else(|failure| panic!("{failure}"));
        assert_eq!(got, expected);
    }
}
