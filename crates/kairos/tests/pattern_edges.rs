//! Pattern kinds at their edges, from a review of 2026-12-06 (its finds
//! fixed, and what it probed that held): variants, rank bands, thresholds
//! re-armed, count groups in sliding, tumbling and session windows, rate
//! triggers on any event, late events and restarts, sequences, ladders,
//! cooldowns across a journey.
mod support;
use serde_json::json;
use support::{plain_track, track, with_policy, Harness, OPEN_POLICY};

// ---------------------------------------------------------------- variants

/// Weights are relative, "integer from 1 to 1,000,000": 500000/500000 is 50/50.
#[test]
fn large_variant_weights_split_like_small_ones() {
    let triggers = r#"
[[trigger]]
id = "welcome"
kind = "count"
event = "Signed Up"
window = { tumbling = "1d" }
channel = "push"
[[trigger.variants]]
name = "a"
weight = 500000
[[trigger.variants]]
name = "b"
weight = 500000
"#;
    let mut h = Harness::new(&with_policy(OPEN_POLICY, triggers));
    h.sign_up_crowd(1000);
    h.finish();
    let b = h.decisions.iter().filter(|d| &*d.variant == "b").count();
    assert!(
        (400..600).contains(&b),
        "variant b got {b} of 1000 at 50/50 weights"
    );
}

// ---------------------------------------------------------------- threshold

const VIP: &str = r#"
[[trigger]]
id = "vip"
kind = "threshold"
measure = { event = "Order Completed", property = "revenue", window = "365d" }
top_percent = 5
channel = "service_desk"
"#;

/// 100 customers with distinct spends 1099 down to 1000, biggest first: when
/// each arrives it is the smallest of those ranked, never in the top 5 %.
#[test]
fn top_percent_close_values_are_not_all_top() {
    let mut h = Harness::new(&with_policy(OPEN_POLICY, VIP));
    for n in 0..100 {
        let revenue = 1099.0 - f64::from(n);
        h.send(track(
            &format!("c{n:03}"),
            "Order Completed",
            "2026-11-01T10:00:00Z",
            &format!("o{n}"),
            json!({"revenue": revenue}),
        ));
    }
    h.finish();
    let users: Vec<&str> = h.decisions.iter().map(|d| d.user_id.as_str()).collect();
    assert!(
        users.is_empty(),
        "{} recognised as top 5 %: {users:?}",
        users.len()
    );
}

/// "top p % of customers with a non-zero aggregate ... nobody is ranked
/// before 20 customers have one": a zero-revenue order is no such aggregate.
#[test]
fn top_percent_zero_aggregates_do_not_count_as_ranked_customers() {
    let mut h = Harness::new(&with_policy(OPEN_POLICY, VIP));
    for n in 1..=18 {
        h.send(track(
            &format!("c{n:03}"),
            "Order Completed",
            "2026-11-01T10:00:00Z",
            &format!("o{n}"),
            json!({"revenue": f64::from(n) * 100.0}),
        ));
    }
    h.send(track(
        "zero",
        "Order Completed",
        "2026-11-01T10:00:00Z",
        "z",
        json!({"revenue": 0}),
    ));
    // The 19th customer with a non-zero aggregate.
    h.send(track(
        "whale",
        "Order Completed",
        "2026-11-01T11:00:00Z",
        "w",
        json!({"revenue": 50000}),
    ));
    h.finish();
    assert_eq!(h.summary(), Vec::<String>::new());
}

/// at_least re-arms "when it falls below": spend rolls out of the window,
/// the aggregate fell to 0, a new crossing matches again.
#[test]
fn at_least_rearms_when_the_aggregate_rolled_below() {
    let toml = with_policy(
        OPEN_POLICY,
        r#"
[[trigger]]
id = "big"
kind = "threshold"
measure = { event = "Order Completed", property = "revenue", window = "30d" }
at_least = 100
channel = "push"
"#,
    );
    let mut h = Harness::new(&toml);
    h.send(track(
        "u1",
        "Order Completed",
        "2026-01-01T10:00:00Z",
        "a",
        json!({"revenue": 150}),
    ));
    h.send(track(
        "u1",
        "Order Completed",
        "2026-03-01T10:00:00Z",
        "b",
        json!({"revenue": 150}),
    ));
    h.finish();
    assert_eq!(
        h.summary(),
        [
            "u1 big step1 2026-01-01T10:00:00.000Z sent",
            "u1 big step1 2026-03-01T10:00:00.000Z sent"
        ]
    );
}

// ---------------------------------------------------------------- count

/// "group_by: count separately per value": two orders ready at the same
/// instant are two matches (tea's order_ready).
#[test]
fn two_groups_matching_at_one_instant_both_fire() {
    let toml = with_policy(
        OPEN_POLICY,
        r#"
[[trigger]]
id = "order_ready"
kind = "count"
event = "Order Ready"
min = 1
window = { tumbling = "1d" }
group_by = ["order_id"]
channel = "push"
category = "transactional"
payload = { properties = ["order_id"] }
"#,
    );
    let mut h = Harness::new(&toml);
    h.send(track(
        "u1",
        "Order Ready",
        "2026-11-23T10:00:00Z",
        "a",
        json!({"order_id": "o1"}),
    ));
    h.send(track(
        "u1",
        "Order Ready",
        "2026-11-23T10:00:00Z",
        "b",
        json!({"order_id": "o2"}),
    ));
    h.finish();
    let orders: Vec<String> = h
        .decisions
        .iter()
        .map(|d| format!("{:?}", d.payload))
        .collect();
    assert_eq!(h.decisions.len(), 2, "{orders:?}");
}

/// Same, with a delay: the second group's match must not erase the first's.
#[test]
fn two_groups_matching_with_a_delay_both_fire() {
    let toml = with_policy(
        OPEN_POLICY,
        r#"
[[trigger]]
id = "reward"
kind = "count"
event = "Referral Converted"
min = 1
window = { tumbling = "1d" }
group_by = ["referee_id"]
channel = "push"
delay = "1h"
"#,
    );
    let mut h = Harness::new(&toml);
    h.send(track(
        "u1",
        "Referral Converted",
        "2026-11-23T10:00:00Z",
        "a",
        json!({"referee_id": "f1"}),
    ));
    h.send(track(
        "u1",
        "Referral Converted",
        "2026-11-23T10:10:00Z",
        "b",
        json!({"referee_id": "f2"}),
    ));
    h.finish();
    assert_eq!(h.decisions.len(), 2, "{:?}", h.summary());
}

/// A sliding window's groups are those of the window: products viewed on
/// earlier days do not stop a new product from ever matching.
#[test]
fn sliding_groups_from_long_ago_do_not_block_new_ones() {
    let toml = with_policy(
        OPEN_POLICY,
        r#"
[[trigger]]
id = "burst"
kind = "count"
event = "Product Viewed"
min = 2
window = { sliding = "1h" }
group_by = ["product_id"]
channel = "push"
"#,
    );
    let mut h = Harness::new(&toml);
    for n in 0..40 {
        let time = format!("2026-10-{:02}T10:00:00Z", 1 + n % 28);
        let time = if n < 28 {
            time
        } else {
            format!("2026-11-{:02}T10:00:00Z", n - 27)
        };
        h.send(track(
            "u1",
            "Product Viewed",
            &time,
            &format!("v{n}"),
            json!({"product_id": format!("p{n}")}),
        ));
    }
    h.send(track(
        "u1",
        "Product Viewed",
        "2026-11-23T10:00:00Z",
        "x1",
        json!({"product_id": "new"}),
    ));
    h.send(track(
        "u1",
        "Product Viewed",
        "2026-11-23T10:01:00Z",
        "x2",
        json!({"product_id": "new"}),
    ));
    h.finish();
    assert_eq!(
        h.summary(),
        ["u1 burst step1 2026-11-23T10:01:00.000Z sent"]
    );
}

/// The reason of a sliding match names the events of that match.
#[test]
fn sliding_reasons_name_this_matchs_events() {
    let toml = with_policy(
        OPEN_POLICY,
        r#"
[[trigger]]
id = "burst"
kind = "count"
event = "Page"
min = 2
window = { sliding = "10m" }
channel = "push"
"#,
    );
    let mut h = Harness::new(&toml);
    for (time, id) in [
        ("2026-11-23T10:00:00Z", "a"),
        ("2026-11-23T10:01:00Z", "b"),
        ("2026-11-24T10:00:00Z", "c"),
        ("2026-11-24T10:01:00Z", "d"),
    ] {
        h.send(track("u1", "Page", time, id, json!({})));
    }
    h.finish();
    let reasons: Vec<Vec<&str>> = h
        .decisions
        .iter()
        .map(|d| d.events.iter().map(|e| e.as_str()).collect())
        .collect();
    assert_eq!(reasons, [vec!["a", "b"], vec!["c", "d"]]);
}

/// A sliding window with fire = "on_close" is accepted: it must fire or be refused.
#[test]
fn sliding_on_close_fires_or_is_refused() {
    let toml = with_policy(
        OPEN_POLICY,
        r#"
[[trigger]]
id = "burst"
kind = "count"
event = "Page"
min = 2
window = { sliding = "10m" }
fire = "on_close"
channel = "push"
"#,
    );
    let compiled = kairos_pipeline::compile("t.toml", &toml, &[]);
    if compiled.is_err() {
        return;
    }
    let mut h = Harness::new(&toml);
    for (time, id) in [("2026-11-23T10:00:00Z", "a"), ("2026-11-23T10:01:00Z", "b")] {
        h.send(track("u1", "Page", time, id, json!({})));
    }
    h.finish();
    assert_eq!(h.decisions.len(), 1, "{:?}", h.summary());
}

// ---------------------------------------------------------------- rate

/// `"*"` is an event match for any event, and `events` takes event matches:
/// a spike of page views is seen through `"*"` as through `"Page"`.
#[test]
fn rate_of_any_event_counts_events() {
    for events in ["*", "Page"] {
        let toml = with_policy(
            OPEN_POLICY,
            &format!(
                "[[trigger]]\nid = \"spike\"\nkind = \"rate\"\nevents = [\"{events}\"]\n\
                 window = \"1h\"\nbaseline = \"1d\"\nincrease_percent = 30\nmin_count = 5\n"
            ),
        );
        let mut h = Harness::new(&toml);
        // One page an hour for a day, then ten in ten minutes.
        for hour in 0..26 {
            let time = format!("2026-11-{:02}T{:02}:00:00Z", 1 + hour / 24, hour % 24);
            h.send(track(
                "someone",
                "Page",
                &time,
                &format!("b{hour}"),
                json!({}),
            ));
        }
        for n in 0..10 {
            let time = format!("2026-11-02T02:{:02}:00Z", 40 + n);
            h.send(track(
                &format!("x{n}"),
                "Page",
                &time,
                &format!("s{n}"),
                json!({}),
            ));
        }
        h.finish();
        assert_eq!(h.decisions.len(), 1, "{events}: {:?}", h.summary());
    }
}

// ---------------------------------------------------------------- absence

/// A late add (beyond the lateness) older than the latest add must not pull
/// the deadline before latest add + T.
#[test]
fn late_start_does_not_pull_the_deadline_back() {
    let toml = with_policy(
        OPEN_POLICY,
        r#"
[[trigger]]
id = "cart"
kind = "absence"
start = "Product Added"
cancel = ["Order Completed"]
after = "30m"
channel = "push"
"#,
    );
    let mut h = Harness::new(&toml);
    h.send(plain_track(
        "u1",
        "Product Added",
        "2026-11-23T10:00:00Z",
        "a",
    ));
    h.send(plain_track(
        "u1",
        "Product Added",
        "2026-11-23T10:20:00Z",
        "b",
    ));
    h.advance("2026-11-23T10:21:00Z");
    // Late: behind the watermark, applied at once.
    h.send(plain_track(
        "u1",
        "Product Added",
        "2026-11-23T10:05:00Z",
        "c",
    ));
    h.finish();
    assert_eq!(h.summary(), ["u1 cart step1 2026-11-23T10:50:00.000Z sent"]);
}

/// Keyed by cart: emptying cart A cancels A's reminder only.
#[test]
fn emptying_one_cart_cancels_only_that_carts_reminder() {
    let toml = with_policy(
        OPEN_POLICY,
        r#"
[[trigger]]
id = "cart"
kind = "absence"
key = "cart_id"
start = "Product Added"
cancel = ["Order Completed"]
cancel_when_cart_empty = true
after = "30m"
channel = "push"
"#,
    );
    let mut h = Harness::new(&toml);
    h.send(track(
        "u1",
        "Product Added",
        "2026-11-23T10:00:00Z",
        "a",
        json!({"cart_id": "A", "product_id": "p1"}),
    ));
    h.send(track(
        "u1",
        "Product Added",
        "2026-11-23T10:01:00Z",
        "b",
        json!({"cart_id": "B", "product_id": "p2"}),
    ));
    h.send(track(
        "u1",
        "Product Removed",
        "2026-11-23T10:02:00Z",
        "c",
        json!({"cart_id": "A", "product_id": "p1"}),
    ));
    h.send(track(
        "u1",
        "Order Completed",
        "2026-11-23T10:03:00Z",
        "d",
        json!({"cart_id": "C"}),
    ));
    h.finish();
    assert_eq!(h.summary(), ["u1 cart step1 2026-11-23T10:31:00.000Z sent"]);
}

/// restart = false: a later start while pending is ignored.
#[test]
fn restart_false_keeps_the_first_deadline() {
    let toml = with_policy(
        OPEN_POLICY,
        r#"
[[trigger]]
id = "cart"
kind = "absence"
start = "Product Added"
restart = false
after = "30m"
channel = "push"
[[trigger.ladder]]
at = "24h"
channel = "email"
offer = "CART10"
"#,
    );
    let mut h = Harness::new(&toml);
    h.send(plain_track(
        "u1",
        "Product Added",
        "2026-11-23T10:00:00Z",
        "a",
    ));
    h.send(plain_track(
        "u1",
        "Product Added",
        "2026-11-23T10:20:00Z",
        "b",
    ));
    h.finish();
    assert_eq!(
        h.summary(),
        [
            "u1 cart step1 2026-11-23T10:30:00.000Z sent",
            "u1 cart step2 2026-11-24T10:00:00.000Z sent"
        ]
    );
    assert_eq!(&*h.decisions[1].channel, "email");
}

// ---------------------------------------------------------------- sequence

const SEQ: &str = r#"
[[trigger]]
id = "o2o"
kind = "sequence"
first = "Product Added"
then = "Store Visited"
within = "7d"
channel = "pos"
"#;

#[test]
fn sequence_at_exactly_within_matches_and_after_does_not() {
    let mut h = Harness::new(&with_policy(OPEN_POLICY, SEQ));
    h.send(plain_track(
        "u1",
        "Product Added",
        "2026-11-01T10:00:00Z",
        "a",
    ));
    h.send(plain_track(
        "u1",
        "Store Visited",
        "2026-11-08T10:00:00Z",
        "b",
    ));
    h.send(plain_track(
        "u2",
        "Product Added",
        "2026-11-01T10:00:00Z",
        "c",
    ));
    h.send(plain_track(
        "u2",
        "Store Visited",
        "2026-11-08T10:00:00.001Z",
        "d",
    ));
    h.finish();
    assert_eq!(h.summary(), ["u1 o2o step1 2026-11-08T10:00:00.000Z sent"]);
}

/// Out-of-order within the lateness: B arriving before A (same event times
/// as in order) gives the same result.
#[test]
fn sequence_out_of_order_within_lateness() {
    let mut a = Harness::new(&with_policy(OPEN_POLICY, SEQ));
    a.send(plain_track(
        "u1",
        "Product Added",
        "2026-11-01T10:00:00Z",
        "a",
    ));
    a.send(plain_track(
        "u1",
        "Store Visited",
        "2026-11-01T10:00:03Z",
        "b",
    ));
    a.finish();
    let mut b = Harness::new(&with_policy(OPEN_POLICY, SEQ));
    b.send(plain_track(
        "u1",
        "Store Visited",
        "2026-11-01T10:00:03Z",
        "b",
    ));
    b.send(plain_track(
        "u1",
        "Product Added",
        "2026-11-01T10:00:00Z",
        "a",
    ));
    b.finish();
    assert_eq!(a.summary(), b.summary());
    assert_eq!(a.summary().len(), 1);
}

/// on_close with group_by: the payload's product and its group agree.
#[test]
fn on_close_payload_properties_belong_to_the_matched_group() {
    let toml = with_policy(
        OPEN_POLICY,
        r#"
[[trigger]]
id = "browse"
kind = "count"
event = "Product Viewed"
min = 2
window = { session = "30m" }
group_by = ["product_id"]
fire = "on_close"
channel = "email"
payload = { properties = ["product_id"] }
"#,
    );
    let mut h = Harness::new(&toml);
    for (time, id, product) in [
        ("10:00", "a", "p1"),
        ("10:01", "b", "p2"),
        ("10:02", "c", "p2"),
        ("10:03", "d", "p1"),
    ] {
        h.send(track(
            "u1",
            "Product Viewed",
            &format!("2026-11-23T{time}:00Z"),
            id,
            json!({"product_id": product}),
        ));
    }
    h.finish();
    assert_eq!(h.decisions.len(), 1);
    let payload = format!("{:?}", h.decisions[0].payload);
    let group_p1 = payload.contains("product_id=p1");
    let product_p1 = payload.contains("String(\"p1\")");
    assert_eq!(group_p1, product_p1, "{payload}");
}

/// on_reach sessions: once per session and group; a new session fires again.
#[test]
fn on_reach_session_once_per_session() {
    let toml = with_policy(
        OPEN_POLICY,
        r#"
[[trigger]]
id = "browse"
kind = "count"
event = "Product Viewed"
min = 2
window = { session = "30m" }
channel = "email"
"#,
    );
    let mut h = Harness::new(&toml);
    for (time, id) in [
        ("10:00", "a"),
        ("10:10", "b"),
        ("10:20", "c"),
        ("10:45", "x"),
        ("11:20", "d"),
        ("11:21", "e"),
    ] {
        let name = if id == "x" { "Page" } else { "Product Viewed" };
        h.send(track(
            "u1",
            name,
            &format!("2026-11-23T{time}:00Z"),
            id,
            json!({}),
        ));
    }
    h.finish();
    // 10:45 (any event) keeps the first session open until 11:15; 11:20 starts a new one.
    assert_eq!(
        h.summary(),
        [
            "u1 browse step1 2026-11-23T10:10:00.000Z sent",
            "u1 browse step1 2026-11-23T11:21:00.000Z sent"
        ]
    );
}

/// max_keys_per_trigger = 2: a third cart drops the oldest cart's reminder.
#[test]
fn max_keys_drops_the_oldest_cart() {
    let toml = format!(
        "name = \"t\"\n[settings]\nmax_keys_per_trigger = 2\n{OPEN_POLICY}\n{}",
        r#"
[[trigger]]
id = "cart"
kind = "absence"
key = "cart_id"
start = "Product Added"
after = "30m"
channel = "push"
"#
    );
    let mut h = Harness::new(&toml);
    for (time, id, cart) in [
        ("10:00", "a", "A"),
        ("10:01", "b", "B"),
        ("10:02", "c", "C"),
    ] {
        h.send(track(
            "u1",
            "Product Added",
            &format!("2026-11-23T{time}:00Z"),
            id,
            json!({"cart_id": cart}),
        ));
    }
    h.finish();
    assert_eq!(
        h.summary(),
        [
            "u1 cart step1 2026-11-23T10:31:00.000Z sent",
            "u1 cart step1 2026-11-23T10:32:00.000Z sent"
        ]
    );
}

/// Erasure withdraws rank contributions: 19 customers, one erased, a whale
/// is the 19th with an aggregate: not ranked yet.
#[test]
fn erasure_removes_rank_contribution() {
    let mut h = Harness::new(&with_policy(OPEN_POLICY, VIP));
    for n in 1..=19 {
        h.send(track(
            &format!("c{n:03}"),
            "Order Completed",
            "2026-11-01T10:00:00Z",
            &format!("o{n}"),
            json!({"revenue": f64::from(n) * 100.0}),
        ));
    }
    h.send(plain_track(
        "c001",
        "Erasure Requested",
        "2026-11-01T10:30:00Z",
        "e",
    ));
    h.send(track(
        "whale",
        "Order Completed",
        "2026-11-01T11:00:00Z",
        "w",
        json!({"revenue": 50000}),
    ));
    h.finish();
    assert_eq!(h.summary(), Vec::<String>::new());
}

/// Packing keeps rank contributions, and a packed customer's re-rank moves
/// their entry rather than adding one.
#[test]
fn packed_customers_rerank_without_duplicates() {
    let mut h = Harness::new(&with_policy(OPEN_POLICY, VIP));
    for n in 1..=10 {
        h.send(track(
            &format!("c{n:03}"),
            "Order Completed",
            "2026-11-01T10:00:00Z",
            &format!("o{n}"),
            json!({"revenue": f64::from(n) * 100.0}),
        ));
    }
    // Idle for days: packed. Then each orders again.
    for n in 1..=10 {
        h.send(track(
            &format!("c{n:03}"),
            "Order Completed",
            "2026-11-08T10:00:00Z",
            &format!("p{n}"),
            json!({"revenue": 1}),
        ));
    }
    // 11th..19th customers: 19 ranked in all, nobody recognised.
    for n in 11..=19 {
        h.send(track(
            &format!("c{n:03}"),
            "Order Completed",
            "2026-11-08T11:00:00Z",
            &format!("o{n}"),
            json!({"revenue": f64::from(n)}),
        ));
    }
    h.send(track(
        "whale",
        "Order Completed",
        "2026-11-08T12:00:00Z",
        "w",
        json!({"revenue": 50000}),
    ));
    h.finish();
    // whale is the 20th: recognised. Nobody else.
    assert_eq!(
        h.summary(),
        ["whale vip step1 2026-11-08T12:00:00.000Z sent"]
    );
}

/// drop_percent: activity in the last 30 d fell ≥ 50 % versus the 30 d before.
#[test]
fn drop_percent_fires_on_a_drop() {
    let toml = with_policy(
        OPEN_POLICY,
        r#"
[[trigger]]
id = "drop"
kind = "threshold"
measure = { event = "Order Completed", window = "30d" }
drop_percent = 50
channel = "email"
"#,
    );
    let mut h = Harness::new(&toml);
    for day in 1..=10 {
        h.send(track(
            "u1",
            "Order Completed",
            &format!("2026-10-{:02}T10:00:00Z", day * 2),
            &format!("o{day}"),
            json!({}),
        ));
    }
    h.send(plain_track(
        "u1",
        "Order Completed",
        "2026-11-25T10:00:00Z",
        "late",
    ));
    h.finish();
    assert_eq!(h.summary(), ["u1 drop step1 2026-11-25T10:00:00.000Z sent"]);
}

/// Tumbling on_reach with group_by: once per window and group.
#[test]
fn tumbling_on_reach_once_per_window_and_group() {
    let toml = with_policy(
        OPEN_POLICY,
        r#"
[[trigger]]
id = "daily"
kind = "count"
event = "Product Viewed"
min = 1
window = { tumbling = "1d" }
group_by = ["product_id"]
channel = "email"
"#,
    );
    let mut h = Harness::new(&toml);
    for (time, id, p) in [
        ("2026-11-23T10:00:00Z", "a", "p1"),
        ("2026-11-23T11:00:00Z", "b", "p1"),
        ("2026-11-23T12:00:00Z", "c", "p2"),
        ("2026-11-24T10:00:00Z", "d", "p1"),
    ] {
        h.send(track(
            "u1",
            "Product Viewed",
            time,
            id,
            json!({"product_id": p}),
        ));
    }
    h.finish();
    assert_eq!(
        h.summary(),
        [
            "u1 daily step1 2026-11-23T10:00:00.000Z sent",
            "u1 daily step1 2026-11-23T12:00:00.000Z sent",
            "u1 daily step1 2026-11-24T10:00:00.000Z sent"
        ]
    );
}

/// Ladder: offer and channel per step; variant offer replaces every step's.
#[test]
fn ladder_steps_channels_offers_and_variant_offer() {
    let toml = with_policy(
        OPEN_POLICY,
        r#"
[[trigger]]
id = "cart"
kind = "absence"
start = "Product Added"
after = "30m"
channel = "push"
[[trigger.ladder]]
at = "24h"
channel = "email"
offer = "CART10"
"#,
    );
    let mut h = Harness::new(&toml);
    h.send(plain_track(
        "u1",
        "Product Added",
        "2026-11-23T10:00:00Z",
        "a",
    ));
    h.finish();
    let d = &h.decisions;
    assert_eq!(d.len(), 2);
    assert_eq!((&*d[0].channel, &*d[1].channel), ("push", "email"));
    let p0 = format!("{:?}", d[0].payload);
    let p1 = format!("{:?}", d[1].payload);
    assert!(!p0.contains("CART10"), "{p0}");
    assert!(p1.contains("CART10"), "{p1}");
}

/// Inactivity cadence: fewer than min_history activities and no sparse_floor: no match.
#[test]
fn cadence_without_sparse_floor_waits_for_history() {
    let toml = with_policy(
        OPEN_POLICY,
        r#"
[[trigger]]
id = "churn"
kind = "inactivity"
activity = "Order Completed"
after = { cadence = 2.0, floor = "1d", min_history = 3 }
channel = "email"
"#,
    );
    let mut h = Harness::new(&toml);
    h.send(plain_track(
        "u1",
        "Order Completed",
        "2026-11-01T10:00:00Z",
        "a",
    ));
    h.send(plain_track(
        "u1",
        "Order Completed",
        "2026-11-03T10:00:00Z",
        "b",
    ));
    h.advance("2026-12-30T00:00:00Z");
    assert_eq!(h.summary(), Vec::<String>::new());
    h.send(plain_track(
        "u1",
        "Order Completed",
        "2026-12-30T10:00:00Z",
        "c",
    ));
    h.finish();
    // gaps 2d and 57d: median of two = 29.5d, x2 = 59d.
    assert_eq!(
        h.summary(),
        ["u1 churn step1 2027-02-27T10:00:00.000Z sent"]
    );
}

/// tea's dormant wake-up: "Once woken, not again for two months" (cooldown
/// 60d). A second dormant spell 34 days after the last wake-up: its step 1
/// is held back by the cooldown, and so must its repeats be ("no second
/// sent action of this trigger to a customer within it").
#[test]
fn repeats_of_a_journey_held_back_by_cooldown_are_not_sent() {
    let toml = with_policy(
        OPEN_POLICY,
        r#"
[[trigger]]
id = "dormant"
kind = "inactivity"
activity = "*"
after = "30d"
repeat = { every = "3d", times = 3 }
channel = "push"
cooldown = "60d"
expires_after = "12h"
"#,
    );
    let mut h = Harness::new(&toml);
    h.send(track("u1", "Page", "2026-01-01T10:00:00Z", "a", json!({})));
    // woken on Jan 31, Feb 3, Feb 6; active again Feb 10.
    h.send(track("u1", "Page", "2026-02-10T10:00:00Z", "b", json!({})));
    h.finish();
    let sent: Vec<String> = h
        .sent()
        .iter()
        .map(|d| format!("step{} {}", d.step, d.fired_at))
        .collect();
    assert_eq!(
        sent,
        [
            "step1 2026-01-31T10:00:00.000Z",
            "step2 2026-02-03T10:00:00.000Z",
            "step3 2026-02-06T10:00:00.000Z"
        ],
        "{:?}",
        h.summary()
    );
}

/// Sequence keyed by cart: a cart's add then that cart's checkout.
#[test]
fn sequence_per_entity_key() {
    let toml = with_policy(
        OPEN_POLICY,
        r#"
[[trigger]]
id = "seq"
kind = "sequence"
key = "cart_id"
first = "Product Added"
then = "Checkout Started"
within = "1h"
channel = "push"
"#,
    );
    let mut h = Harness::new(&toml);
    h.send(track(
        "u1",
        "Product Added",
        "2026-11-23T10:00:00Z",
        "a",
        json!({"cart_id": "A"}),
    ));
    h.send(track(
        "u1",
        "Checkout Started",
        "2026-11-23T10:10:00Z",
        "b",
        json!({"cart_id": "B"}),
    ));
    h.send(track(
        "u1",
        "Checkout Started",
        "2026-11-23T10:20:00Z",
        "c",
        json!({"cart_id": "A"}),
    ));
    h.finish();
    assert_eq!(h.summary(), ["u1 seq step1 2026-11-23T10:20:00.000Z sent"]);
    let payload = format!("{:?}", h.decisions[0].payload);
    assert!(
        payload.contains("cart_id") && payload.contains("\"A\""),
        "{payload}"
    );
}

/// A late activity older than the ladder's anchor, arriving after step 1
/// was sent: no second step 1 (decisions already made are never repeated).
#[test]
fn late_old_activity_does_not_repeat_a_sent_step() {
    let toml = with_policy(
        OPEN_POLICY,
        r#"
[[trigger]]
id = "dormant"
kind = "inactivity"
activity = "*"
after = "1h"
repeat = { every = "1h", times = 3 }
channel = "push"
"#,
    );
    let mut h = Harness::new(&toml);
    h.send(track("u1", "Page", "2026-11-23T10:00:00Z", "a", json!({})));
    h.advance("2026-11-23T11:10:00Z");
    // Late: older than the anchor.
    h.send(plain_track("u1", "Page", "2026-11-23T09:50:00Z", "late"));
    h.finish();
    assert_eq!(
        h.summary(),
        [
            "u1 dormant step1 2026-11-23T11:00:00.000Z sent",
            "u1 dormant step2 2026-11-23T12:00:00.000Z sent",
            "u1 dormant step3 2026-11-23T13:00:00.000Z sent"
        ]
    );
}

/// Past the limit of `group_by` values in a window (twice
/// `max_keys_per_trigger`), the oldest value makes room for a new one.
#[test]
fn a_new_group_value_past_the_limit_drops_the_oldest() {
    let toml = with_policy(
        &format!("{OPEN_POLICY}\n[settings]\nmax_keys_per_trigger = 1"),
        r#"
[[trigger]]
id = "browse"
kind = "count"
event = "Product Viewed"
min = 2
window = { session = "30m" }
group_by = ["product_id"]
channel = "push"
"#,
    );
    let mut h = Harness::new(&toml);
    for (minute, product) in [(0, "p1"), (1, "p2"), (2, "p3"), (3, "p3")] {
        let time = format!("2026-11-23T10:0{minute}:00Z");
        let id = format!("v{minute}");
        h.send(track(
            "u1",
            "Product Viewed",
            &time,
            &id,
            json!({"product_id": product}),
        ));
    }
    h.finish();
    assert_eq!(
        h.summary(),
        ["u1 browse step1 2026-11-23T10:03:00.000Z sent"]
    );
}

/// "No activity of any kind" is the customer's activity: the channel's
/// receipt for the wake-up itself (`Message Delivered`) does not cancel the
/// wake-ups still to come; an open does.
#[test]
fn a_wake_ups_own_delivery_receipt_is_not_activity() {
    let toml = with_policy(
        OPEN_POLICY,
        r#"
[[trigger]]
id = "dormant"
kind = "inactivity"
activity = "*"
after = "30d"
repeat = { every = "3d", times = 3 }
channel = "push"
"#,
    );
    let mut h = Harness::new(&toml);
    h.send(plain_track(
        "u1",
        "Order Completed",
        "2026-01-01T10:00:00Z",
        "o",
    ));
    h.send(plain_track(
        "u1",
        "Message Delivered",
        "2026-01-31T10:00:05Z",
        "d",
    ));
    h.finish();
    let steps: Vec<u32> = h.decisions.iter().map(|d| d.step).collect();
    assert_eq!(steps, [1, 2, 3], "{:?}", h.summary());
}

/// A channel's delivery receipt does not keep a browsing session open: the
/// session closes 30 minutes after the customer's last view.
#[test]
fn a_delivery_receipt_does_not_keep_a_session_open() {
    let toml = with_policy(
        OPEN_POLICY,
        r#"
[[trigger]]
id = "browse"
kind = "count"
event = "Product Viewed"
min = 1
window = { session = "30m" }
fire = "on_close"
channel = "email"
"#,
    );
    let mut h = Harness::new(&toml);
    h.send(plain_track(
        "u1",
        "Product Viewed",
        "2026-11-23T10:00:00Z",
        "v",
    ));
    h.send(plain_track(
        "u1",
        "Message Delivered",
        "2026-11-23T10:20:00Z",
        "d",
    ));
    h.finish();
    assert_eq!(
        h.summary(),
        ["u1 browse step1 2026-11-23T10:30:00.000Z sent"]
    );
}
