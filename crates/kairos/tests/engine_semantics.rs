//! Engine behaviour through real pipeline files: time and lateness, identity,
//! de-duplication, erasure, each pattern kind, and the delivery policy.

mod support;
use kairos_engine::config::{Offset, Pattern, Window};
use kairos_engine::Suppression;
use kairos_model::Span;
use serde_json::{json, Value};
use support::{at, plain_track, track, with_policy, Harness, OPEN_POLICY};

const NUDGE: &str = r#"
[[trigger]]
id = "nudge"
kind = "absence"
start = "Signed Up"
cancel = ["Order Completed"]
after = "1h"
channel = "push"
"#;

/// An immediate push on every sign-up: the simplest trigger that sends.
const WELCOME: &str = r#"
[[trigger]]
id = "welcome"
kind = "count"
event = "Signed Up"
window = { tumbling = "1d" }
channel = "push"
"#;

// ----- time -----------------------------------------------------------------

#[test]
fn late_events_beyond_the_lateness_are_counted_and_applied() {
    let mut h = Harness::new(&with_policy(OPEN_POLICY, NUDGE));
    h.send(plain_track("u1", "Signed Up", "2026-11-23T12:00:00Z", "m1"));
    h.send(track("u2", "Page", "2026-11-23T14:00:00Z", "m2", json!({})));
    // 1h59m late: the nudge already fired; the order is still applied.
    h.send(plain_track(
        "u1",
        "Order Completed",
        "2026-11-23T12:01:00Z",
        "m3",
    ));
    h.finish();
    assert_eq!(h.engine.stats().late, 1);
    assert_eq!(
        h.summary(),
        ["u1 nudge step1 2026-11-23T13:00:00.000Z sent"]
    );
}

#[test]
fn a_live_event_within_the_lateness_behind_the_clock_is_applied_at_once() {
    let mut h = Harness::new(&with_policy(OPEN_POLICY, WELCOME));
    // 2 s behind the clock (5 s allowed): applied now, not held 5 s.
    h.send_live(
        plain_track("u1", "Signed Up", "2026-11-23T12:00:00Z", "m1"),
        "2026-11-23T12:00:02Z",
    )
    .unwrap();
    assert_eq!(
        h.summary(),
        ["u1 welcome step1 2026-11-23T12:00:00.000Z sent"]
    );
    assert_eq!(h.engine.stats().late, 0);
}

#[test]
fn a_live_clock_fires_timers_before_the_event_that_comes_with_it() {
    let mut h = Harness::new(&with_policy(OPEN_POLICY, NUDGE));
    h.send_live(
        plain_track("u1", "Signed Up", "2026-11-23T12:00:00Z", "m1"),
        "2026-11-23T12:00:00.010Z",
    )
    .unwrap();
    assert_eq!(h.engine.poll_pending(), Some(at("2026-11-23T13:00:00Z")));
    // The order comes at 13:00:03, 3 s after the nudge was due: the clock
    // passed the deadline first, so the nudge went out, and the order,
    // within the lateness, is applied without being counted late.
    h.send_live(
        plain_track("u1", "Order Completed", "2026-11-23T13:00:00Z", "m2"),
        "2026-11-23T13:00:03Z",
    )
    .unwrap();
    assert_eq!(
        h.summary(),
        ["u1 nudge step1 2026-11-23T13:00:00.000Z sent"]
    );
    assert_eq!((h.engine.stats().events, h.engine.stats().late), (2, 0));
}

#[test]
fn a_live_event_further_behind_than_the_lateness_is_late() {
    let mut h = Harness::new(&with_policy(OPEN_POLICY, WELCOME));
    h.send_live(
        plain_track("u1", "Signed Up", "2026-11-23T12:00:00Z", "m1"),
        "2026-11-23T12:00:06Z",
    )
    .unwrap();
    assert_eq!(h.engine.stats().late, 1);
    // Applied all the same (`late_events = "apply"` by default).
    assert_eq!(h.summary().len(), 1);
}

#[test]
fn a_live_event_dated_ahead_of_the_clock_waits_for_it_and_one_too_far_ahead_is_refused() {
    let mut h = Harness::new(&with_policy(OPEN_POLICY, WELCOME));
    h.send_live(
        plain_track("u1", "Signed Up", "2026-11-23T12:00:04Z", "m1"),
        "2026-11-23T12:00:00Z",
    )
    .unwrap();
    assert!(h.summary().is_empty(), "waits for the clock");
    assert_eq!(h.engine.poll_pending(), Some(at("2026-11-23T12:00:04Z")));
    let refused = h
        .send_live(
            plain_track("u2", "Signed Up", "2026-11-23T12:00:05.001Z", "m2"),
            "2026-11-23T12:00:00Z",
        )
        .err()
        .expect("more than 5 s ahead");
    assert_eq!(
        refused.to_string(),
        "event time 2026-11-23T12:00:05.001Z is more than 5s ahead of the clock \
         (2026-11-23T12:00:00.000Z); accepted: up to the allowed lateness ahead"
    );
    assert_eq!(
        h.engine.stats().events,
        1,
        "the refused event was not counted"
    );
    h.engine.advance_to(at("2026-11-23T12:00:04.001Z"));
    while let Some(decision) = h.engine.poll_decision() {
        h.decisions.push(decision);
    }
    assert_eq!(
        h.summary(),
        ["u1 welcome step1 2026-11-23T12:00:04.000Z sent"]
    );
}

#[test]
fn dropped_late_events_never_reach_state() {
    let policy =
        format!("{OPEN_POLICY}\n[settings]\nlate_events = \"drop\"\nallowed_lateness = \"1s\"");
    let mut h = Harness::new(&with_policy(&policy, NUDGE));
    h.send(track("u2", "Page", "2026-11-23T14:00:00Z", "m2", json!({})));
    h.send(plain_track("u1", "Signed Up", "2026-11-23T12:00:00Z", "m1"));
    h.finish();
    assert_eq!(h.engine.stats().late_dropped, 1);
    assert!(h.decisions.is_empty());
}

#[test]
fn duplicates_within_the_lookback_are_skipped() {
    let mut h = Harness::new(&with_policy(OPEN_POLICY, NUDGE));
    h.send(plain_track(
        "u1",
        "Order Completed",
        "2026-11-23T11:00:00Z",
        "dup",
    ));
    h.send(plain_track("u1", "Signed Up", "2026-11-23T12:00:00Z", "m1"));
    // The same messageId retried hours later is ignored (it would cancel otherwise).
    h.send(plain_track(
        "u1",
        "Order Completed",
        "2026-11-23T12:10:00Z",
        "dup",
    ));
    h.finish();
    assert_eq!(h.engine.stats().duplicates, 1);
    assert_eq!(h.sent().len(), 1);
}

// ----- identity -------------------------------------------------------------

#[test]
fn anonymous_state_follows_the_person_after_identify() {
    let mut h = Harness::new(&with_policy(OPEN_POLICY, NUDGE));
    h.send(json!({"type":"track","event":"Signed Up","anonymousId":"device-1","timestamp":"2026-11-23T12:00:00Z","messageId":"m1"}));
    h.send(json!({"type":"identify","userId":"u1","anonymousId":"device-1","timestamp":"2026-11-23T12:05:00Z","messageId":"m2"}));
    h.finish();
    assert_eq!(
        h.summary(),
        ["u1 nudge step1 2026-11-23T13:00:00.000Z sent"]
    );
}

#[test]
fn two_devices_merge_into_one_person() {
    let mut h = Harness::new(&with_policy(OPEN_POLICY, NUDGE));
    h.send(json!({"type":"track","event":"Signed Up","anonymousId":"phone","timestamp":"2026-11-23T12:00:00Z","messageId":"m1"}));
    h.send(json!({"type":"identify","userId":"u1","timestamp":"2026-11-23T12:01:00Z","messageId":"m2"}));
    // The laptop's order, made before login, then linked by alias.
    h.send(json!({"type":"track","event":"Order Completed","anonymousId":"laptop","timestamp":"2026-11-23T12:02:00Z","messageId":"m3"}));
    h.send(json!({"type":"alias","previousId":"phone","userId":"u1","timestamp":"2026-11-23T12:03:00Z","messageId":"m4"}));
    h.send(json!({"type":"alias","previousId":"laptop","userId":"u1","timestamp":"2026-11-23T12:04:00Z","messageId":"m5"}));
    h.send(json!({"type":"track","event":"Order Completed","userId":"u1","timestamp":"2026-11-23T12:05:00Z","messageId":"m6"}));
    h.finish();
    assert!(h.decisions.is_empty(), "{:?}", h.summary());
    assert_eq!(h.engine.customer_count(), 1);
}

// ----- erasure --------------------------------------------------------------

#[test]
fn erasure_removes_every_trace() {
    let mut h = Harness::new(&with_policy(OPEN_POLICY, NUDGE));
    h.send(json!({"type":"track","event":"Signed Up","anonymousId":"device-9","timestamp":"2026-11-23T12:00:00Z","messageId":"m1"}));
    h.send(json!({"type":"identify","userId":"u9","anonymousId":"device-9","timestamp":"2026-11-23T12:01:00Z","messageId":"m2","traits":{"birthday":"1990-01-02"}}));
    h.advance("2026-11-23T12:01:30Z");
    assert!(h.engine.holds_anything_about("u9"));
    h.send(plain_track(
        "u9",
        "Erasure Requested",
        "2026-11-23T12:02:00Z",
        "m3",
    ));
    h.finish();
    assert!(!h.engine.holds_anything_about("u9"));
    assert!(!h.engine.holds_anything_about("device-9"));
    assert_eq!(h.engine.pending_timers(), 0);
    assert!(h.decisions.is_empty());
}

#[test]
fn a_new_customer_in_an_erased_customers_place_gets_only_its_own_reminders() {
    let mut h = Harness::new(&with_policy(OPEN_POLICY, NUDGE));
    let at = "2026-11-23T12:00:00Z";
    h.send(track("u1", "Signed Up", at, "m1", json!({})));
    h.send(track("u1", "Erasure Requested", at, "m2", json!({})));
    // Takes u1's place in the engine, with a reminder due at the same time.
    h.send(track("u2", "Signed Up", at, "m3", json!({})));
    h.finish();
    assert_eq!(
        h.summary(),
        ["u2 nudge step1 2026-11-23T13:00:00.000Z sent"]
    );
    assert_eq!(h.engine.pending_timers(), 0);
}

#[test]
fn a_cancelled_reminder_does_not_move_the_clock() {
    let triggers = format!("{WELCOME}{NUDGE}");
    let mut h = Harness::new(&with_policy(OPEN_POLICY, &triggers));
    // u0's nudge (10:30) is the next timer when u1's (11:00) is cancelled, so
    // u1's stays in the timer table, cancelled, and comes up at 11:00.
    h.send(plain_track("u0", "Signed Up", "2026-11-23T09:30:00Z", "m0"));
    h.send(plain_track("u1", "Signed Up", "2026-11-23T10:00:00Z", "m1"));
    h.send(plain_track(
        "u1",
        "Order Completed",
        "2026-11-23T10:05:00Z",
        "m2",
    ));
    h.advance("2026-11-23T11:30:00Z");
    // A late sign-up is decided at the engine's clock: 10:30, u0's nudge, the
    // last thing that happened (it was due at 10:10, its `fired_at`). The
    // cancelled 11:00 timer did not happen.
    h.send(plain_track("u2", "Signed Up", "2026-11-23T10:10:00Z", "m3"));
    h.finish();
    assert_eq!(
        h.summary(),
        [
            "u0 welcome step1 2026-11-23T09:30:00.000Z sent",
            "u1 welcome step1 2026-11-23T10:00:00.000Z sent",
            "u0 nudge step1 2026-11-23T10:30:00.000Z sent",
            "u2 welcome step1 2026-11-23T10:10:00.000Z sent",
            "u2 nudge step1 2026-11-23T11:10:00.000Z sent",
        ]
    );
    let late = h.decisions.iter().find(|d| d.user_id == "u2");
    let decided = late.expect("welcomed").decided_at.to_string();
    assert_eq!(decided, "2026-11-23T10:30:00.000Z");
}

#[test]
fn a_window_closing_at_the_end_of_time_holds_up_no_other_timer() {
    let triggers = format!(
        "{NUDGE}{}",
        r#"
[[trigger]]
id = "forever"
kind = "count"
event = "Tapped"
min = 2
window = { tumbling = "1d" }
fire = "on_close"
channel = "push"
"#
    );
    // Pipelines cap durations at 100y: a window of ~292 million years is
    // only reachable in code.
    let mut pipeline = support::pipeline(&with_policy(OPEN_POLICY, &triggers));
    let Pattern::Count { window, .. } = &mut pipeline.triggers[1].pattern else {
        panic!("a count");
    };
    *window = Window::Tumbling(Span(9_223_372_036_854_775_000));
    let mut h = Harness::with_pipeline(pipeline);
    h.send(plain_track("u1", "Tapped", "2026-11-23T10:00:00Z", "m1"));
    h.send(plain_track("u2", "Signed Up", "2026-11-23T10:00:00Z", "m2"));
    h.finish();
    assert_eq!(
        h.summary(),
        ["u2 nudge step1 2026-11-23T11:00:00.000Z sent"]
    );
}

#[test]
fn schedules_evicted_far_ahead_do_not_pile_up_in_the_timer_table() {
    let triggers = r#"
[[trigger]]
id = "expiry"
kind = "schedule"
source = { event = "Points Earned", property = "expires_at", default_after = "3y" }
offset = "-30d"
channel = "push"
"#;
    let mut h = Harness::new(&with_policy(OPEN_POLICY, triggers));
    // u0's reminder is the earliest timer, so u1's wait in later buckets,
    // where a cancelled timer is not removed at once.
    let soon = json!({"expires_at": "2027-01-01T00:00:00Z"});
    h.send(track(
        "u0",
        "Points Earned",
        "2026-11-23T10:00:00Z",
        "m0",
        soon,
    ));
    for second in 0..1000 {
        let time = format!("2026-11-23T11:{:02}:{:02}Z", second / 60, second % 60);
        h.send(track(
            "u1",
            "Points Earned",
            &time,
            &format!("m{second}"),
            json!({}),
        ));
    }
    h.advance("2026-11-23T12:00:00Z");
    // u1 keeps its newest 16 schedules (max_keys_per_trigger): 984 were
    // evicted, and their timers, three years ahead, are mostly dropped.
    let pending = h.engine.pending_timers();
    assert!(
        pending <= 1 + 2 * 16 + 16,
        "{pending} timers held for 17 pending"
    );
    h.finish();
    assert_eq!(h.decisions.len(), 17);
}

#[test]
fn reasons_name_the_causing_message_ids_exactly_as_sent() {
    // A canonical UUID is kept as 16 bytes and written back; other forms as
    // text.
    let ids = [
        "9f0c4a52-5b8e-4c1e-9d35-0b7c2f3e1a64",
        "9F0C4A52-5B8E-4C1E-9D35-0B7C2F3E1A64",
        "ajs-next-1764000000000-9f0c4a52-5b8e-4c1e-9d35",
    ];
    let mut h = Harness::new(&with_policy(OPEN_POLICY, NUDGE));
    for (user, id) in ids.iter().enumerate() {
        let user = format!("u{user}");
        h.send(track(
            &user,
            "Signed Up",
            "2026-11-23T12:00:00Z",
            id,
            json!({}),
        ));
    }
    h.finish();
    let mut reasons: Vec<&str> = h
        .decisions
        .iter()
        .flat_map(|decision| decision.events.iter().map(|id| id.as_str()))
        .collect();
    reasons.sort_unstable();
    let mut expected = ids.to_vec();
    expected.sort_unstable();
    assert_eq!(reasons, expected);
}

// ----- patterns -------------------------------------------------------------

#[test]
fn count_in_a_session_fires_when_the_session_ends_unless_added() {
    let toml = with_policy(
        OPEN_POLICY,
        r#"
[[trigger]]
id = "browse"
kind = "count"
event = "Product Viewed"
min = 3
window = { session = "30m" }
group_by = ["product_id"]
unless = ["Product Added"]
fire = "on_close"
channel = "email"
"#,
    );
    let view = |user: &str, minute: u32, id: &str| {
        track(
            user,
            "Product Viewed",
            &format!("2026-11-23T12:{minute:02}:00Z"),
            id,
            json!({"product_id": "p1"}),
        )
    };
    let mut h = Harness::new(&toml);
    for (minute, id) in [(0, "a"), (5, "b"), (10, "c")] {
        h.send(view("u1", minute, id));
        h.send(view("u2", minute, &format!("u2{id}")));
    }
    h.send(track(
        "u2",
        "Product Added",
        "2026-11-23T12:11:00Z",
        "u2add",
        json!({"product_id": "p1"}),
    ));
    h.finish();
    assert_eq!(
        h.summary(),
        ["u1 browse step1 2026-11-23T12:40:00.000Z sent"]
    );
    assert_eq!(h.decisions[0].payload.to_value()["group"], "product_id=p1");
}

/// A count of `Product Viewed` in sessions of `gap` that a `Product Added`
/// blocks, matching at `min` when the session closes (`on_close`) or as
/// soon as it is reached (`on_reach`).
fn browse_sessions(id: &str, min: u32, gap: &str, fire: &str) -> String {
    format!(
        "[[trigger]]\nid = \"{id}\"\nkind = \"count\"\nevent = \"Product Viewed\"\n\
         min = {min}\nwindow = {{ session = \"{gap}\" }}\nunless = [\"Product Added\"]\n\
         fire = \"{fire}\"\nchannel = \"email\"\n"
    )
}

#[test]
fn an_unless_blocks_its_whole_session_and_only_that_session() {
    // The engine keeps a blocked session as its end alone: these are the
    // cases where that end must move exactly as the session would.
    let toml = with_policy(
        OPEN_POLICY,
        &browse_sessions("browse", 3, "30m", "on_close"),
    );
    let call = |user: &str, name: &str, time: &str, id: &str| {
        track(user, name, &format!("2026-11-23T{time}:00Z"), id, json!({}))
    };
    let mut h = Harness::new(&toml);
    // u1 adds before viewing: the views in that session cannot match, views
    // 25 minutes later still belong to it, and only the next session (after
    // a 50-minute pause) matches.
    let u1 = [
        ("Product Added", "12:00"),
        ("Product Viewed", "12:05"),
        ("Product Viewed", "12:10"),
        ("Product Viewed", "12:15"),
        ("Product Viewed", "12:40"),
        ("Product Viewed", "13:30"),
        ("Product Viewed", "13:35"),
        ("Product Viewed", "13:40"),
    ];
    // u2 adds after two views; a page view (neither counted nor `unless`)
    // keeps the blocked session open past 12:30, so the views at 12:50-12:54
    // are still in it.
    let u2 = [
        ("Product Viewed", "11:58"),
        ("Product Viewed", "11:59"),
        ("Product Added", "12:00"),
        ("Page Viewed", "12:25"),
        ("Product Viewed", "12:50"),
        ("Product Viewed", "12:52"),
        ("Product Viewed", "12:54"),
    ];
    let mut calls: Vec<_> = (u1.iter().map(|c| ("u1", c)))
        .chain(u2.iter().map(|c| ("u2", c)))
        .enumerate()
        .map(|(n, (user, (name, time)))| (*time, call(user, name, time, &format!("m{n}"))))
        .collect();
    calls.sort_by_key(|(time, _)| *time);
    for (_, call) in calls {
        h.send(call);
    }
    h.advance("2026-11-23T14:30:00Z");
    assert_eq!(
        h.summary(),
        ["u1 browse step1 2026-11-23T14:10:00.000Z sent"]
    );
    // Every session has ended: nothing is left waiting.
    assert_eq!(h.engine.pending_timers(), 0);
}

#[test]
fn a_blocked_session_going_on_for_months_ends_on_time() {
    // A blocked session remembers where its close timer sits as a lag
    // behind its end; with 60-day gaps the lag outgrows 32 bits of ms.
    let toml = with_policy(
        OPEN_POLICY,
        &browse_sessions("slow_browse", 3, "60d", "on_close"),
    );
    let mut h = Harness::new(&toml);
    let day = |n: i64| (at("2026-01-01T00:00:00Z") + Span(n * 86_400_000)).to_string();
    let mut send = |name: &str, n: i64| {
        let call = track("u1", name, &day(n), &format!("m{n}"), json!({}));
        h.send(call);
    };
    send("Product Added", 0);
    for n in [59, 100, 110, 200, 201, 202] {
        send("Product Viewed", n);
    }
    h.finish();
    // Blocked from day 0 to day 170; the next session starts on day 200.
    let expected = format!("u1 slow_browse step1 {} sent", day(262));
    assert_eq!(h.summary(), [expected]);
    assert_eq!(h.engine.pending_timers(), 0);
}

/// A track call without properties at `time` (`hh:mm`) on 2026-11-23.
fn on_the_23rd(user: &str, name: &str, time: &str, message_id: &str) -> Value {
    let time = format!("2026-11-23T{time}:00Z");
    track(user, name, &time, message_id, json!({}))
}

#[test]
fn an_on_reach_session_blocked_by_unless_stays_blocked_for_late_events() {
    let browse = browse_sessions("browse", 2, "30m", "on_reach");
    let mut h = Harness::new(&with_policy(OPEN_POLICY, &browse));
    h.send(on_the_23rd("u1", "Product Added", "12:00", "m1"));
    h.send(on_the_23rd("u1", "Product Viewed", "12:05", "m2"));
    // Moves the watermark past the session's end; then two late views of
    // that same session arrive and are applied: still blocked.
    h.send(on_the_23rd("u2", "Page", "14:00", "m3"));
    h.send(on_the_23rd("u1", "Product Viewed", "12:10", "m4"));
    h.send(on_the_23rd("u1", "Product Viewed", "12:12", "m5"));
    h.finish();
    assert_eq!(h.summary(), Vec::<String>::new());
}

#[test]
fn an_on_reach_session_has_no_close_timer_to_move_the_clock() {
    let browse = browse_sessions("browse", 2, "30m", "on_reach");
    let triggers = format!("{WELCOME}{browse}");
    let mut h = Harness::new(&with_policy(OPEN_POLICY, &triggers));
    h.send(on_the_23rd("u1", "Product Added", "12:00", "m1"));
    h.send(on_the_23rd("u2", "Page", "14:00", "m2"));
    // A late sign-up is decided at the clock: the last thing that happened
    // was the add at 12:00, so it goes out at its own time.
    h.send(on_the_23rd("u3", "Signed Up", "12:10", "m3"));
    h.finish();
    assert_eq!(
        h.summary(),
        ["u3 welcome step1 2026-11-23T12:10:00.000Z sent"]
    );
}

/// When u3's late sign-up on day 55 or 57 is decided shows whether a timer
/// left behind at day 60 (by restarts pushing its deadline back by more than
/// 32 bits of ms) still fired there and moved the clock, as it always did.
fn welcome_day_of_a_late_sign_up(trigger: &str, u1: &[(&str, i64)], late_day: i64) -> String {
    let triggers = format!("{WELCOME}{trigger}");
    let mut h = Harness::new(&with_policy(OPEN_POLICY, &triggers));
    let day = |n: i64| (at("2026-01-01T00:00:00Z") + Span(n * 86_400_000)).to_string();
    for (n, (name, on)) in u1.iter().enumerate() {
        h.send(track("u1", name, &day(*on), &format!("u1-{n}"), json!({})));
    }
    h.send(track("u2", "Page", &day(70), "u2", json!({})));
    h.send(track("u3", "Signed Up", &day(late_day), "u3", json!({})));
    h.advance(&day(80));
    let welcome = h.decisions.iter().find(|d| d.user_id == "u3");
    welcome.expect("welcomed").decided_at.to_string()
}

#[test]
fn timers_left_behind_by_long_restarts_still_move_the_clock() {
    let nudge = "[[trigger]]\nid = \"nudge\"\nkind = \"absence\"\nstart = \"Signed Up\"\n\
                 cancel = [\"Order Completed\"]\nafter = \"60d\"\nchannel = \"push\"\n";
    let restarts = [("Signed Up", 0), ("Signed Up", 50)];
    assert_eq!(
        welcome_day_of_a_late_sign_up(nudge, &restarts, 55),
        "2026-03-02T00:00:00.000Z"
    );
    let slow_browse = browse_sessions("slow_browse", 3, "60d", "on_close");
    let views = [("Product Added", 0), ("Product Viewed", 55)];
    assert_eq!(
        welcome_day_of_a_late_sign_up(&slow_browse, &views, 57),
        "2026-03-02T00:00:00.000Z"
    );
}

#[test]
fn timers_pushed_back_by_millennia_move_at_once_and_still_fire() {
    // Beyond what a lag holds (~8,900 years) a restart moves the timer at
    // once; the deadline still comes out right. Pipelines cap durations at
    // 100y, so only a pipeline built in code gets here.
    let toml = with_policy(
        OPEN_POLICY,
        "[[trigger]]\nid = \"nudge\"\nkind = \"absence\"\nstart = \"Signed Up\"\n\
         after = \"1d\"\nchannel = \"push\"\n\
         [[trigger]]\nid = \"browse\"\nkind = \"count\"\nevent = \"Product Viewed\"\n\
         min = 3\nwindow = { session = \"1d\" }\nunless = [\"Product Added\"]\n\
         fire = \"on_close\"\nchannel = \"email\"\n",
    );
    let long = Span(3_300_000 * 86_400_000);
    let mut pipeline = support::pipeline(&toml);
    pipeline.triggers[0].steps[0].at = Offset::Fixed(long);
    let Pattern::Count { window, .. } = &mut pipeline.triggers[1].pattern else {
        panic!("a count");
    };
    *window = Window::Session(long);
    let mut h = Harness::with_pipeline(pipeline);
    let calls = [
        ("Signed Up", "0001-01-01T00:00:00Z"),
        ("Product Added", "0001-01-01T00:00:01Z"),
        ("Signed Up", "9000-01-01T00:00:00Z"),
        ("Product Viewed", "9000-01-01T00:00:01Z"),
    ];
    for (n, (name, time)) in calls.iter().enumerate() {
        h.send_at_any_time(track("u1", name, time, &format!("m{n}"), json!({})));
    }
    h.finish();
    let expected = format!("u1 nudge step1 {} sent", at("9000-01-01T00:00:00Z") + long);
    assert_eq!(h.summary(), [expected]);
    assert_eq!(h.engine.pending_timers(), 0);
}

#[test]
fn sessions_before_1970_count_and_block_like_any_other() {
    // The epoch once meant "no activity yet" to a session, and "not
    // paused" to the marketing breaker, so sessions at or before it never
    // grew and marketing before it was held back.
    let browse = |min| browse_sessions("browse", min, "30m", "on_close");
    let mut h = Harness::new(&with_policy(OPEN_POLICY, &browse(3)));
    let views = [
        ("1969-12-31T23:20:00Z", "v1"),
        ("1969-12-31T23:40:00Z", "v2"),
        ("1970-01-01T00:00:00.000Z", "v3"),
    ];
    for (time, id) in views {
        h.send_at_any_time(track("u1", "Product Viewed", time, id, json!({})));
    }
    h.finish();
    assert_eq!(
        h.summary(),
        ["u1 browse step1 1970-01-01T00:30:00.000Z sent"]
    );
    let mut h = Harness::new(&with_policy(OPEN_POLICY, &browse(1)));
    h.send_at_any_time(plain_track(
        "u1",
        "Product Added",
        "1969-12-31T23:00:00Z",
        "a",
    ));
    h.send_at_any_time(plain_track(
        "u1",
        "Product Viewed",
        "1969-12-31T23:05:00Z",
        "v",
    ));
    h.finish();
    assert_eq!(h.summary(), Vec::<String>::new());
}

/// A count trigger on `Tapped` that fires when its window closes.
fn taps_on_close(id: &str, window: &str, ladder: &str) -> String {
    let trigger = format!(
        "[[trigger]]\nid = \"{id}\"\nkind = \"count\"\nevent = \"Tapped\"\nmin = 2\n\
         window = {window}\nfire = \"on_close\"\nchannel = \"push\"\n{ladder}"
    );
    with_policy(OPEN_POLICY, &trigger)
}

/// Sends u1's `Tapped` events at these times of 2026-11-23, then finishes.
fn tap(h: &mut Harness, taps: &[(&str, &str)]) {
    for (time, id) in taps {
        let time = format!("2026-11-23T{time}Z");
        h.send(track("u1", "Tapped", &time, id, json!({})));
    }
    h.finish();
}

/// Each decision's causing message ids.
fn reason_ids(h: &Harness) -> Vec<Vec<&str>> {
    h.decisions
        .iter()
        .map(|d| d.events.iter().map(|id| id.as_str()).collect())
        .collect()
}

#[test]
fn an_event_at_a_tumbling_windows_end_counts_in_the_next_window() {
    // 11:00:00.000 opens the 11-12 window at the very instant the 10-11
    // window's close timer is due; events at an instant go before timers,
    // and neither window may be lost.
    let mut h = Harness::new(&taps_on_close("hourly", r#"{ tumbling = "1h" }"#, ""));
    let taps = [
        ("10:10:00", "t0"),
        ("10:20:00", "t1"),
        ("11:00:00.000", "t2"),
        ("11:30:00", "t3"),
    ];
    tap(&mut h, &taps);
    assert_eq!(
        h.summary(),
        [
            "u1 hourly step1 2026-11-23T11:00:00.000Z sent",
            "u1 hourly step1 2026-11-23T12:00:00.000Z sent",
        ]
    );
    assert_eq!(reason_ids(&h), [["t0", "t1"], ["t2", "t3"]]);
}

#[test]
fn a_session_after_a_match_counts_while_the_ladder_is_pending() {
    // The first session matches on close at 10:11 and its ladder's second
    // step is due at 10:41; the second session (10:20-10:21) counts
    // meanwhile, matches at 10:31 and restarts the ladder.
    let ladder = "[[trigger.ladder]]\nat = \"30m\"\n";
    let mut h = Harness::new(&taps_on_close("sessions", r#"{ session = "10m" }"#, ladder));
    let taps = [
        ("10:00:00", "t0"),
        ("10:01:00", "t1"),
        ("10:20:00", "t2"),
        ("10:21:00", "t3"),
    ];
    tap(&mut h, &taps);
    assert_eq!(
        h.summary(),
        [
            "u1 sessions step1 2026-11-23T10:11:00.000Z sent",
            "u1 sessions step1 2026-11-23T10:31:00.000Z sent",
            "u1 sessions step2 2026-11-23T11:01:00.000Z sent",
        ]
    );
    assert_eq!(reason_ids(&h), [["t0", "t1"], ["t2", "t3"], ["t2", "t3"]]);
}

#[test]
fn sliding_and_tumbling_counts_fire_on_reach() {
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

[[trigger]]
id = "daily"
kind = "count"
event = "Page"
min = 3
window = { tumbling = "1d" }
channel = "email"
"#,
    );
    let mut h = Harness::new(&toml);
    for (time, id) in [
        ("2026-11-23T10:00:00Z", "a"),
        ("2026-11-23T10:20:00Z", "b"),
        ("2026-11-23T10:25:00Z", "c"),
        ("2026-11-24T00:00:01Z", "d"),
    ] {
        h.send(track("u1", "Page", time, id, json!({})));
    }
    h.finish();
    assert_eq!(
        h.summary(),
        [
            "u1 burst step1 2026-11-23T10:25:00.000Z sent",
            "u1 daily step1 2026-11-23T10:25:00.000Z sent"
        ]
    );
}

#[test]
fn inactivity_uses_the_customers_own_cadence() {
    let toml = with_policy(
        OPEN_POLICY,
        r#"
[[trigger]]
id = "churn"
kind = "inactivity"
activity = "Order Completed"
after = { cadence = 2.0, floor = "1d", min_history = 3, sparse_floor = "30d" }
channel = "email"
"#,
    );
    let mut h = Harness::new(&toml);
    // Orders every 2 days: median gap 2d, so churn risk after 4 days of silence.
    for (day, id) in [(1, "a"), (3, "b"), (5, "c")] {
        h.send(track(
            "u1",
            "Order Completed",
            &format!("2026-11-{day:02}T10:00:00Z"),
            id,
            json!({}),
        ));
    }
    // A single order: the sparse floor applies.
    h.send(plain_track(
        "u2",
        "Order Completed",
        "2026-11-01T10:00:00Z",
        "z",
    ));
    h.finish();
    assert_eq!(
        h.summary(),
        [
            "u1 churn step1 2026-11-09T10:00:00.000Z sent",
            "u2 churn step1 2026-12-01T10:00:00.000Z sent"
        ]
    );
}

#[test]
fn a_reminder_pushed_back_for_months_still_fires_on_time() {
    // A restarted ladder leaves its timer where it was and remembers how far
    // behind the new deadline it sits. Daily activity for 100 days pushes a
    // 90-day reminder back by more than 32 bits of ms before its first timer
    // comes due.
    let toml = with_policy(
        OPEN_POLICY,
        r#"
[[trigger]]
id = "dormant"
kind = "inactivity"
activity = "*"
after = "90d"
channel = "push"
"#,
    );
    let mut h = Harness::new(&toml);
    let day = |n: i64| (at("2026-01-01T10:00:00Z") + Span(n * 86_400_000)).to_string();
    for n in 0..100 {
        h.send(track("u1", "Page", &day(n), &format!("m{n}"), json!({})));
    }
    h.finish();
    let expected = format!("u1 dormant step1 {} sent", day(99 + 90));
    assert_eq!(h.summary(), [expected]);
    assert_eq!(h.engine.pending_timers(), 0);
}

#[test]
fn applied_events_can_be_handed_back_and_change_nothing() {
    // The backtest frees events on its parsing thread: the engine hands
    // each back once applied, in the order applied, and decides the same.
    let toml = with_policy(OPEN_POLICY, NUDGE);
    let calls: Vec<_> = [("u1", "12:00:03", "b"), ("u2", "12:00:01", "a")]
        .iter()
        .map(|(user, time, id)| {
            track(
                user,
                "Signed Up",
                &format!("2026-11-23T{time}Z"),
                id,
                json!({}),
            )
        })
        .collect();
    let mut plain = Harness::new(&toml);
    let mut handing_back = Harness::new(&toml);
    handing_back.engine.hand_back_events();
    for call in &calls {
        plain.send(call.clone());
        handing_back.send(call.clone());
    }
    assert!(
        handing_back.engine.take_spent_events().is_empty(),
        "buffered"
    );
    plain.finish();
    handing_back.finish();
    assert_eq!(plain.summary(), handing_back.summary());
    assert!(!plain.summary().is_empty());
    let spent: Vec<_> = handing_back
        .engine
        .take_spent_events()
        .into_iter()
        .map(|event| event.message_id.to_string())
        .collect();
    assert_eq!(spent, ["a", "b"]);
    assert!(handing_back.engine.take_spent_events().is_empty());
    assert!(plain.engine.take_spent_events().is_empty());
}

#[test]
fn dormant_wakeups_repeat_at_most_three_times() {
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
    h.send(track("u1", "Page", "2026-01-01T10:00:00Z", "a", json!({})));
    h.finish();
    assert_eq!(
        h.summary(),
        [
            "u1 dormant step1 2026-01-31T10:00:00.000Z sent",
            "u1 dormant step2 2026-02-03T10:00:00.000Z sent",
            "u1 dormant step3 2026-02-06T10:00:00.000Z sent",
        ]
    );
}

#[test]
fn sequence_matches_b_after_a_within_t() {
    let toml = with_policy(
        OPEN_POLICY,
        r#"
[[trigger]]
id = "cart_then_store"
kind = "sequence"
first = "Product Added"
then = "Store Visited"
within = "7d"
channel = "pos"
"#,
    );
    let mut h = Harness::new(&toml);
    h.send(plain_track(
        "u1",
        "Product Added",
        "2026-11-01T10:00:00Z",
        "a",
    ));
    h.send(plain_track(
        "u1",
        "Store Visited",
        "2026-11-05T10:00:00Z",
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
        "2026-11-09T10:00:00Z",
        "d",
    ));
    h.finish();
    assert_eq!(
        h.summary(),
        ["u1 cart_then_store step1 2026-11-05T10:00:00.000Z sent"]
    );
    assert_eq!(h.decisions[0].events, ["a", "b"]);
}

#[test]
fn birthday_fires_at_nine_local_every_year() {
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
        "traits":{"birthday":"1990-03-15"},"context":{"timezone":"Asia/Shanghai"}}),
    );
    h.advance("2026-04-01T00:00:00Z");
    assert_eq!(
        h.engine.pending_timers(),
        1,
        "one timer per customer, whatever the runtime"
    );
    // Still in touch a year later: next year's birthday too.
    h.send(support::plain_track(
        "u1",
        "Page",
        "2027-01-01T00:00:00Z",
        "m2",
    ));
    h.advance("2027-04-01T00:00:00Z");
    assert_eq!(
        h.summary(),
        [
            "u1 birthday step1 2026-03-15T01:00:00.000Z sent",
            "u1 birthday step1 2027-03-15T01:00:00.000Z sent"
        ]
    );
}

#[test]
fn points_expiry_reminders_escalate() {
    let toml = with_policy(
        OPEN_POLICY,
        r#"
[[trigger]]
id = "points_expiry"
kind = "schedule"
source = { event = "Points Earned", property = "expires_at", default_after = "3y" }
offset = "-30d"
channel = "push"
[[trigger.ladder]]
at = "-7d"
channel = "sms"
[[trigger.ladder]]
at = "-1d"
channel = "service_desk"
"#,
    );
    let mut h = Harness::new(&toml);
    h.send(track(
        "u1",
        "Points Earned",
        "2026-01-01T00:00:00Z",
        "p1",
        json!({"points": 100, "expires_at": "2026-06-01T00:00:00Z"}),
    ));
    h.finish();
    let channels: Vec<(&str, String)> = h
        .decisions
        .iter()
        .map(|d| (&*d.channel, d.fired_at.to_string()))
        .collect();
    assert_eq!(
        channels,
        [
            ("push", "2026-05-02T00:00:00.000Z".to_string()),
            ("sms", "2026-05-25T00:00:00.000Z".to_string()),
            ("service_desk", "2026-05-31T00:00:00.000Z".to_string()),
        ]
    );
}

#[test]
fn complaint_sla_escalates_by_severity_unless_resolved() {
    let toml = with_policy(
        OPEN_POLICY,
        r#"
[[trigger]]
id = "complaint_sla"
kind = "absence"
key = "complaint_id"
start = "Complaint Filed"
cancel = ["Complaint Resolved"]
restart = false
after = "0s"
channel = "service_desk"
category = "transactional"
[[trigger.ladder]]
at = { by = "severity", values = { "1" = "2h", "2" = "12h" }, default = "48h" }
channel = "service_desk"
"#,
    );
    let mut h = Harness::new(&toml);
    h.send(track(
        "u1",
        "Complaint Filed",
        "2026-11-23T10:00:00Z",
        "a",
        json!({"complaint_id": "k1", "severity": 1}),
    ));
    h.send(track(
        "u1",
        "Complaint Filed",
        "2026-11-23T10:00:00Z",
        "b",
        json!({"complaint_id": "k2", "severity": 2}),
    ));
    h.send(track(
        "u1",
        "Complaint Resolved",
        "2026-11-23T11:00:00Z",
        "c",
        json!({"complaint_id": "k2"}),
    ));
    h.finish();
    assert_eq!(
        h.summary(),
        [
            "u1 complaint_sla step1 2026-11-23T10:00:00.000Z sent",
            "u1 complaint_sla step1 2026-11-23T10:00:00.000Z sent",
            "u1 complaint_sla step2 2026-11-23T12:00:00.000Z sent",
        ]
    );
}

#[test]
fn thresholds_near_next_tier_fire_once_per_tier() {
    let toml = with_policy(
        OPEN_POLICY,
        r#"
[[trigger]]
id = "tier_progress"
kind = "threshold"
measure = { event = "Order Completed", property = "revenue", window = "365d" }
near_next_tier = { tiers = [1000.0, 5000.0], within_percent = 10 }
channel = "push"
"#,
    );
    let mut h = Harness::new(&toml);
    for (day, revenue, id) in [
        (1, 850.0, "a"),
        (2, 60.0, "b"),
        (3, 10.0, "c"),
        (4, 4000.0, "d"),
    ] {
        h.send(track(
            "u1",
            "Order Completed",
            &format!("2026-11-{day:02}T10:00:00Z"),
            id,
            json!({"revenue": revenue}),
        ));
    }
    h.finish();
    assert_eq!(
        h.summary(),
        [
            "u1 tier_progress step1 2026-11-02T10:00:00.000Z sent",
            "u1 tier_progress step1 2026-11-04T10:00:00.000Z sent"
        ]
    );
}

#[test]
fn top_percent_recognises_the_biggest_spenders() {
    let toml = with_policy(
        OPEN_POLICY,
        r#"
[[trigger]]
id = "vip"
kind = "threshold"
measure = { event = "Order Completed", property = "revenue", window = "365d" }
top_percent = 5
channel = "service_desk"
"#,
    );
    let mut h = Harness::new(&toml);
    // Biggest first: nobody after the first few is in the top 5 % when they
    // arrive (ranks need 20 customers before anyone is recognised).
    for customer in (1..=100).rev() {
        let revenue = f64::from(customer) * 10.0;
        h.send(track(
            &format!("c{customer:03}"),
            "Order Completed",
            "2026-11-01T10:00:00Z",
            &format!("o{customer}"),
            json!({"revenue": revenue}),
        ));
    }
    h.send(track(
        "whale",
        "Order Completed",
        "2026-11-02T10:00:00Z",
        "w",
        json!({"revenue": 50000}),
    ));
    h.finish();
    let users: Vec<&str> = h.decisions.iter().map(|d| d.user_id.as_str()).collect();
    assert_eq!(users, ["whale"]);
}

#[test]
fn rate_spike_alerts_ops_and_pauses_marketing() {
    let toml = with_policy(
        OPEN_POLICY,
        &(r#"
[[trigger]]
id = "spike"
kind = "rate"
events = ["Complaint Filed"]
window = "1h"
baseline = "1d"
increase_percent = 30
min_count = 5
pause_marketing = "2h"
"#
        .to_string()
            + WELCOME),
    );
    let mut h = Harness::new(&toml);
    // A quiet baseline: 2 complaints an hour for a day.
    for hour in 0..26 {
        for n in 0..2 {
            let time = format!(
                "2026-11-{:02}T{:02}:{:02}:00Z",
                1 + hour / 24,
                hour % 24,
                n * 20
            );
            h.send(track(
                "someone",
                "Complaint Filed",
                &time,
                &format!("b{hour}-{n}"),
                json!({}),
            ));
        }
    }
    // Then 10 in ten minutes.
    for n in 0..10 {
        h.send(track(
            &format!("angry{n}"),
            "Complaint Filed",
            &format!("2026-11-02T02:{:02}:00Z", 40 + n),
            &format!("s{n}"),
            json!({}),
        ));
    }
    h.send(plain_track(
        "newbie",
        "Signed Up",
        "2026-11-02T03:00:00Z",
        "w1",
    ));
    h.finish();
    let spike: Vec<_> = h
        .decisions
        .iter()
        .filter(|d| &*d.trigger == "spike")
        .collect();
    assert_eq!(spike.len(), 1, "{:?}", h.summary());
    assert_eq!(&*spike[0].channel, "ops");
    let welcome = h
        .decisions
        .iter()
        .find(|d| &*d.trigger == "welcome")
        .expect("evaluated");
    assert_eq!(welcome.suppressed, Some(Suppression::CircuitBreaker));
}

// ----- delivery policy ------------------------------------------------------

const OFFERS: &str = r#"
[[trigger]]
id = "low"
kind = "count"
event = "Signed Up"
window = { tumbling = "1d" }
channel = "push"
priority = 10

[[trigger]]
id = "high"
kind = "count"
event = "Signed Up"
window = { tumbling = "1d" }
channel = "push"
priority = 90
"#;

#[test]
fn arbitration_sends_only_the_next_best_action() {
    let policy = "[policy]\nholdout_percent = 0\nconsent_required = []\nquiet_hours = false\ndaily_caps = { targeted = 5, content = 5 }";
    let mut h = Harness::new(&with_policy(policy, OFFERS));
    h.send(plain_track("u1", "Signed Up", "2026-11-23T12:00:00Z", "m1"));
    h.finish();
    let outcome: Vec<(&str, Option<Suppression>)> = h
        .decisions
        .iter()
        .map(|d| (&*d.trigger, d.suppressed))
        .collect();
    assert_eq!(
        outcome,
        [("high", None), ("low", Some(Suppression::Arbitration))]
    );
}

#[test]
fn consent_caps_and_quiet_hours() {
    let policy = r#"
[policy]
holdout_percent = 0
consent_required = ["push"]
daily_caps = { targeted = 1, content = 1 }
quiet_hours = { start = "22:00", end = "08:00" }
arbitration_window = "0s"
"#;
    let triggers = r#"
[[trigger]]
id = "offer"
kind = "count"
event = "Coupon Applied"
window = { sliding = "1m" }
channel = "push"
expires_after = "12h"
"#;
    let mut h = Harness::new(&with_policy(policy, triggers));
    // No consent yet.
    h.send(plain_track(
        "u1",
        "Coupon Applied",
        "2026-11-23T10:00:00Z",
        "a",
    ));
    h.send(json!({"type":"identify","userId":"u1","timestamp":"2026-11-23T10:01:00Z","messageId":"b","traits":{"consent":{"push":true}}}));
    h.send(plain_track(
        "u1",
        "Coupon Applied",
        "2026-11-23T10:02:00Z",
        "c",
    ));
    // Second targeted push the same local day: capped.
    h.send(plain_track(
        "u1",
        "Coupon Applied",
        "2026-11-23T11:00:00Z",
        "d",
    ));
    // At 23:00 the next day: deferred to 08:00.
    h.send(plain_track(
        "u1",
        "Coupon Applied",
        "2026-11-24T23:00:00Z",
        "e",
    ));
    h.finish();
    assert_eq!(
        h.summary(),
        [
            "u1 offer step1 2026-11-23T10:00:00.000Z consent",
            "u1 offer step1 2026-11-23T10:02:00.000Z sent",
            "u1 offer step1 2026-11-23T11:00:00.000Z frequency_cap",
            "u1 offer step1 2026-11-24T23:00:00.000Z sent",
        ]
    );
    assert_eq!(
        h.decisions[3].decided_at.to_string(),
        "2026-11-25T08:00:00.000Z"
    );
}

#[test]
fn holdout_is_deterministic_and_close_to_its_percentage() {
    let policy = "[policy]\nholdout_percent = 5\nconsent_required = []\nquiet_hours = false";
    let triggers = WELCOME;
    let run = || {
        let mut h = Harness::new(&with_policy(policy, triggers));
        h.sign_up_crowd(4000);
        h.finish();
        h.decisions
            .iter()
            .filter(|d| d.suppressed == Some(Suppression::Holdout))
            .map(|d| d.user_id.clone())
            .collect::<Vec<_>>()
    };
    let held = run();
    assert_eq!(held, run());
    assert!(
        (150..250).contains(&held.len()),
        "{} of 4000 held out",
        held.len()
    );
}

#[test]
fn cooldown_and_conversion_cancel_ladders() {
    let policy = OPEN_POLICY.to_string();
    let triggers = r#"
[[trigger]]
id = "cart"
kind = "absence"
start = "Product Added"
cancel = ["Order Completed"]
after = "30m"
channel = "push"
cooldown = "24h"
[[trigger.ladder]]
at = "24h"
channel = "email"
"#;
    let mut h = Harness::new(&with_policy(&policy, triggers));
    h.send(plain_track(
        "u1",
        "Product Added",
        "2026-11-23T10:00:00Z",
        "a",
    ));
    h.send(plain_track(
        "u1",
        "Product Added",
        "2026-11-23T11:00:00Z",
        "b",
    ));
    h.send(plain_track(
        "u1",
        "Order Completed",
        "2026-11-23T12:00:00Z",
        "c",
    ));
    h.finish();
    assert_eq!(
        h.summary(),
        [
            "u1 cart step1 2026-11-23T10:30:00.000Z sent",
            "u1 cart step1 2026-11-23T11:30:00.000Z cooldown"
        ]
    );
}

#[test]
fn variants_and_grey_release_are_deterministic() {
    let triggers = &(WELCOME.to_string()
        + r#"rollout_percent = 10
[[trigger.variants]]
name = "a"
weight = 1
[[trigger.variants]]
name = "b"
weight = 1
channel = "sms"
"#);
    let mut h = Harness::new(&with_policy(OPEN_POLICY, triggers));
    h.sign_up_crowd(1000);
    h.finish();
    let sent = h.sent();
    assert!(
        (60..140).contains(&sent.len()),
        "{} of 1000 in a 10% rollout",
        sent.len()
    );
    for decision in &sent {
        assert_eq!(
            &*decision.channel,
            if &*decision.variant == "b" {
                "sms"
            } else {
                "push"
            }
        );
    }
    let out_of_rollout = h
        .decisions
        .iter()
        .filter(|d| d.suppressed == Some(Suppression::Rollout))
        .count();
    assert_eq!(out_of_rollout + sent.len(), 1000);
}

#[test]
fn send_time_optimisation_waits_for_the_customers_best_hour() {
    let triggers = r#"
[[trigger]]
id = "digest"
kind = "count"
event = "Product Viewed"
window = { tumbling = "1d" }
channel = "email"
deliver_within = "12h"
"#;
    let policy = "[policy]\nholdout_percent = 0\nconsent_required = []\nquiet_hours = false\nsend_time_min_feedback = 3";
    let mut h = Harness::new(&with_policy(policy, triggers));
    for (day, id) in [(20, "o1"), (21, "o2"), (22, "o3")] {
        h.send(track(
            "u1",
            "Message Opened",
            &format!("2026-11-{day}T19:10:00Z"),
            id,
            json!({}),
        ));
    }
    h.send(plain_track(
        "u1",
        "Product Viewed",
        "2026-11-23T10:00:00Z",
        "v",
    ));
    h.finish();
    assert_eq!(
        h.decisions[0].fired_at.to_string(),
        "2026-11-23T10:00:00.000Z"
    );
    assert_eq!(
        h.decisions[0].decided_at.to_string(),
        "2026-11-23T19:00:00.000Z"
    );
}
