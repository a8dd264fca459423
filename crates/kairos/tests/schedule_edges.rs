//! Schedules and delivery policy at their edges, from a review of
//! 2026-12-06: period ends judged at and after their end, cancels of
//! recurring schedules, yearly traits other than a birthday, consent with many
//! channels, send-time optimisation against quiet hours and expiry, period
//! ends in a zone learned later.
mod support;
use serde_json::json;
use support::{plain_track, track, with_policy, Harness, CART_REMINDER, OPEN_POLICY};

fn identify(
    user: &str,
    time: &str,
    id: &str,
    traits: serde_json::Value,
    zone: &str,
) -> serde_json::Value {
    json!({"type": "identify", "userId": user, "timestamp": time, "messageId": id,
        "traits": traits, "context": {"timezone": zone}})
}

/// "end of each month with less than 1 Order Completed", at the default
/// offset (0s, due as April begins) and at -1h (due as March ends): either
/// way March is judged, and a customer who ordered in March is not below
/// target.
#[test]
fn period_end_judges_the_period_that_ends_whatever_the_offset() {
    for offset in ["0s", "-1h"] {
        let toml = with_policy(
            OPEN_POLICY,
            &format!(
                "[[trigger]]\nid = \"monthly\"\nkind = \"schedule\"\n\
                 source = {{ period = \"month\", event = \"Order Completed\", below = 1 }}\n\
                 offset = \"{offset}\"\nchannel = \"push\"\n"
            ),
        );
        let mut h = Harness::new(&toml);
        h.send(plain_track(
            "u1",
            "Order Completed",
            "2026-03-10T12:00:00Z",
            "m1",
        ));
        h.send(plain_track(
            "u1",
            "Page Viewed",
            "2026-04-10T12:00:00Z",
            "m2",
        ));
        h.advance("2026-04-20T00:00:00Z");
        assert_eq!(h.summary(), Vec::<String>::new(), "offset {offset}");
    }
}

/// Coffee's birthday: a voucher used (Order Completed with the coupon)
/// cancels the day-6 reminder (`cancel_on`).
#[test]
fn yearly_schedule_cancel_on_cancels_the_reminder() {
    let toml = with_policy(
        OPEN_POLICY,
        r#"
[[trigger]]
id = "birthday"
kind = "schedule"
source = { trait = "birthday", at = "09:00" }
channel = "push"
cancel_on = [{ event = "Order Completed", where = { coupon = "BDAY" } }]
[[trigger.ladder]]
at = "6d"
"#,
    );
    let mut h = Harness::new(&toml);
    h.send(identify(
        "u1",
        "2026-03-01T00:00:00Z",
        "m1",
        json!({"birthday": "1990-03-15"}),
        "UTC",
    ));
    h.send(track(
        "u1",
        "Order Completed",
        "2026-03-16T10:00:00Z",
        "m2",
        json!({"coupon": "BDAY"}),
    ));
    h.advance("2026-03-30T00:00:00Z");
    assert_eq!(
        h.summary(),
        ["u1 birthday step1 2026-03-15T09:00:00.000Z sent"]
    );
}

/// A yearly schedule of another trait than `birthday` uses that trait.
#[test]
fn yearly_schedule_reads_its_own_trait() {
    let toml = with_policy(
        OPEN_POLICY,
        r#"
[[trigger]]
id = "anniversary"
kind = "schedule"
source = { trait = "member_since", at = "09:00" }
channel = "push"
"#,
    );
    let mut h = Harness::new(&toml);
    h.send(identify(
        "u1",
        "2026-03-01T00:00:00Z",
        "m1",
        json!({"birthday": "1990-03-15", "member_since": "2020-05-01"}),
        "UTC",
    ));
    h.advance("2026-06-01T00:00:00Z");
    assert_eq!(
        h.summary(),
        ["u1 anniversary step1 2026-05-01T09:00:00.000Z sent"]
    );
}

/// Consent to one channel is never consent to another, however many
/// channels a pipeline names.
#[test]
fn consent_to_sms_is_not_consent_to_push_with_many_channels() {
    let mut triggers = String::new();
    for n in 0..15 {
        let name = format!("ch_{}", (b'a' + n as u8) as char);
        triggers += &format!(
            "[[trigger]]\nid = \"t{n}\"\nkind = \"count\"\nevent = \"E{n}\"\nwindow = {{ tumbling = \"1h\" }}\nchannel = \"{name}\"\n"
        );
    }
    triggers += "[[trigger]]\nid = \"promo\"\nkind = \"count\"\nevent = \"Signed Up\"\nwindow = { tumbling = \"1h\" }\nchannel = \"push\"\n";
    let policy = r#"
[policy]
holdout_percent = 0
consent_required = ["push", "sms"]
quiet_hours = false
arbitration_window = "0s"
"#;
    let mut h = Harness::new(&with_policy(policy, &triggers));
    h.send(identify(
        "u1",
        "2026-03-01T00:00:00Z",
        "m1",
        json!({"consent": {"sms": true, "push": false}}),
        "UTC",
    ));
    h.send(plain_track("u1", "Signed Up", "2026-03-01T01:00:00Z", "m2"));
    h.finish();
    assert_eq!(
        h.summary(),
        ["u1 promo step1 2026-03-01T01:00:00.000Z consent"]
    );
}

const STO_POLICY: &str = r#"
[policy]
holdout_percent = 0
consent_required = []
quiet_hours = { start = "22:00", end = "08:00" }
weekly_marketing_cap = 1000
daily_caps = { targeted = 1000, content = 1000 }
arbitration_window = "0s"
send_time_min_feedback = 3
"#;

fn opens_at(h: &mut Harness, hour_minute: &str) {
    for (n, day) in ["20", "21", "22"].iter().enumerate() {
        let time = format!("2026-02-{day}T{hour_minute}:00Z");
        h.send(track(
            "u1",
            "Message Opened",
            &time,
            &format!("o{n}"),
            json!({"action_id": "x"}),
        ));
    }
}

/// Send-time optimisation delays an action within `deliver_within`; it
/// must not turn an action that could be sent now into a dropped one: a
/// best hour inside quiet hours is no better time.
#[test]
fn send_time_optimisation_does_not_drop_into_quiet_hours() {
    let trigger = r#"
[[trigger]]
id = "nearby"
kind = "count"
event = "Location Updated"
window = { tumbling = "1h" }
channel = "push"
quiet_hours = "drop"
deliver_within = "14h"
"#;
    let mut h = Harness::new(&with_policy(STO_POLICY, trigger));
    opens_at(&mut h, "23:10"); // most responsive at 23:00 UTC
    h.send(plain_track(
        "u1",
        "Location Updated",
        "2026-03-01T10:00:00Z",
        "m1",
    ));
    h.finish();
    assert_eq!(
        h.summary(),
        ["u1 nearby step1 2026-03-01T10:00:00.000Z sent"]
    );
}

/// ... nor defer it past its own expiry.
#[test]
fn send_time_optimisation_does_not_defer_past_expiry() {
    let trigger = r#"
[[trigger]]
id = "promo"
kind = "count"
event = "Signed Up"
window = { tumbling = "1h" }
channel = "push"
deliver_within = "12h"
expires_after = "4h"
"#;
    let mut h = Harness::new(&with_policy(STO_POLICY, trigger));
    opens_at(&mut h, "20:10");
    h.send(plain_track("u1", "Signed Up", "2026-03-01T10:00:00Z", "m1"));
    h.finish();
    assert_eq!(
        h.summary(),
        ["u1 promo step1 2026-03-01T10:00:00.000Z sent"]
    );
}

/// A period end moves to the customer's zone once it is learned (as a
/// birthday does): the March warning is due an hour before midnight in
/// Shanghai, and judges March.
#[test]
fn period_end_moves_to_a_zone_learned_later() {
    let toml = with_policy(
        OPEN_POLICY,
        r#"
[[trigger]]
id = "monthly"
kind = "schedule"
source = { period = "month", event = "Order Completed", below = 5 }
offset = "-1h"
channel = "push"
"#,
    );
    let mut h = Harness::new(&toml);
    h.send(plain_track(
        "u1",
        "Order Completed",
        "2026-03-10T12:00:00Z",
        "m1",
    ));
    h.send(identify(
        "u1",
        "2026-03-11T00:00:00Z",
        "m2",
        json!({}),
        "Asia/Shanghai",
    ));
    h.advance("2026-05-20T00:00:00Z");
    assert_eq!(
        h.summary(),
        [
            "u1 monthly step1 2026-03-31T15:00:00.000Z sent",
            "u1 monthly step1 2026-04-30T15:00:00.000Z sent"
        ]
    );
}

/// A second use of the birthday voucher does not cancel next year's
/// birthday: a cancel reaches the occurrence under way.
#[test]
fn yearly_cancel_reaches_this_years_occurrence_only() {
    let toml = with_policy(
        OPEN_POLICY,
        r#"
[[trigger]]
id = "birthday"
kind = "schedule"
source = { trait = "birthday", at = "09:00" }
channel = "push"
cancel_on = [{ event = "Order Completed", where = { coupon = "BDAY" } }]
[[trigger.ladder]]
at = "6d"
"#,
    );
    let mut h = Harness::new(&toml);
    h.send(identify(
        "u1",
        "2026-03-01T00:00:00Z",
        "m1",
        json!({"birthday": "1990-03-15"}),
        "UTC",
    ));
    h.send(track(
        "u1",
        "Order Completed",
        "2026-03-16T10:00:00Z",
        "m2",
        json!({"coupon": "BDAY"}),
    ));
    h.send(track(
        "u1",
        "Order Completed",
        "2026-03-17T10:00:00Z",
        "m3",
        json!({"coupon": "BDAY"}),
    ));
    h.send(plain_track(
        "u1",
        "Page Viewed",
        "2027-01-10T10:00:00Z",
        "m4",
    ));
    h.advance("2027-04-01T00:00:00Z");
    assert_eq!(
        h.summary(),
        [
            "u1 birthday step1 2026-03-15T09:00:00.000Z sent",
            "u1 birthday step1 2027-03-15T09:00:00.000Z sent",
            "u1 birthday step2 2027-03-21T09:00:00.000Z sent"
        ]
    );
}

/// A period end cancelled by another event than the one it sums goes on
/// with the next period.
#[test]
fn period_end_cancelled_goes_on_next_period() {
    let toml = with_policy(
        OPEN_POLICY,
        r#"
[[trigger]]
id = "monthly"
kind = "schedule"
source = { period = "month", event = "Order Completed", below = 5 }
offset = "-1d"
channel = "push"
cancel_on = ["Snoozed"]
"#,
    );
    let mut h = Harness::new(&toml);
    h.send(plain_track(
        "u1",
        "Order Completed",
        "2026-03-10T12:00:00Z",
        "m1",
    ));
    h.send(plain_track("u1", "Snoozed", "2026-03-12T12:00:00Z", "m2"));
    // A second snooze in March does not reach April's.
    h.send(plain_track("u1", "Snoozed", "2026-03-13T12:00:00Z", "m3"));
    h.advance("2026-05-20T00:00:00Z");
    assert_eq!(
        h.summary(),
        ["u1 monthly step1 2026-04-30T00:00:00.000Z sent"]
    );
}

/// A step already past its deadline when it is set up (points expiring in
/// ten days, with a "30 days before" reminder) was due then: `fired_at` is
/// its deadline, and it is stale `expires_after` later, so it is not sent.
#[test]
fn a_step_set_up_past_its_deadline_is_stale() {
    let toml = with_policy(
        OPEN_POLICY,
        r#"
[[trigger]]
id = "points_expiry"
kind = "schedule"
source = { event = "Points Earned", property = "expires_at", default_after = "3y" }
offset = "-30d"
channel = "push"
expires_after = "1d"
[[trigger.ladder]]
at = "-7d"
channel = "sms"
"#,
    );
    let mut h = Harness::new(&toml);
    h.send(track(
        "u1",
        "Points Earned",
        "2026-05-22T00:00:00Z",
        "p1",
        json!({"points": 100, "expires_at": "2026-06-01T00:00:00Z"}),
    ));
    h.finish();
    assert_eq!(
        h.summary(),
        [
            "u1 points_expiry step1 2026-05-02T00:00:00.000Z expired",
            "u1 points_expiry step2 2026-05-25T00:00:00.000Z sent",
        ]
    );
}

/// An add arriving after its reminder's deadline (later than the allowed
/// lateness, applied at once) fires at once, with `fired_at` = add + T as
/// the abandoned-cart semantics require.
#[test]
fn a_late_add_past_its_deadline_fires_at_once_dated_add_plus_t() {
    let toml = with_policy(OPEN_POLICY, CART_REMINDER);
    let mut h = Harness::new(&toml);
    // The clock at 10:59, when the add of 10:20 comes in.
    h.send(plain_track(
        "u2",
        "Page Viewed",
        "2026-11-23T10:59:00Z",
        "p",
    ));
    h.advance("2026-11-23T11:00:00Z");
    h.send(plain_track(
        "u1",
        "Product Added",
        "2026-11-23T10:20:00Z",
        "a",
    ));
    h.finish();
    assert_eq!(h.summary(), ["u1 cart step1 2026-11-23T10:50:00.000Z sent"]);
    assert_eq!(
        h.decisions[0].decided_at.to_rfc3339(),
        "2026-11-23T10:59:00.000Z"
    );
}

/// A date property outside the years event times may take (a mistyped
/// year) counts as absent: `default_after` applies.
#[test]
fn an_expiry_in_the_year_9999_is_read_as_absent() {
    let toml = with_policy(
        OPEN_POLICY,
        r#"
[[trigger]]
id = "points_expiry"
kind = "schedule"
source = { event = "Points Earned", property = "expires_at", default_after = "30d" }
offset = "-1d"
channel = "push"
"#,
    );
    let mut h = Harness::new(&toml);
    h.send(track(
        "u1",
        "Points Earned",
        "2026-05-01T00:00:00Z",
        "p1",
        json!({"points": 100, "expires_at": "9999-12-31T23:59:59Z"}),
    ));
    h.finish();
    assert_eq!(
        h.summary(),
        ["u1 points_expiry step1 2026-05-30T00:00:00.000Z sent"]
    );
}

// ----- time zones learned after a schedule was armed, later steps (review of the day's changes)

fn identify_in(
    user: &str,
    time: &str,
    id: &str,
    traits: serde_json::Value,
    zone: &str,
) -> serde_json::Value {
    json!({"type": "identify", "userId": user, "timestamp": time, "messageId": id,
        "traits": traits, "context": {"timezone": zone}})
}
fn track_tz(user: &str, name: &str, time: &str, id: &str, zone: &str) -> serde_json::Value {
    json!({"type": "track", "event": name, "userId": user, "timestamp": time, "messageId": id,
        "properties": {}, "context": {"timezone": zone}})
}

/// A zone learned (westwards) an hour after today's birthday went out
/// moves next year's, and does not arm today's again.
#[test]
fn a_birthday_is_not_sent_twice_when_the_zone_moves_west_after_it() {
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
    h.send(identify_in(
        "u1",
        "2026-03-01T00:00:00Z",
        "m1",
        json!({"birthday": "1990-03-15"}),
        "UTC",
    ));
    h.send(plain_track(
        "u1",
        "Page Viewed",
        "2026-03-15T10:00:00Z",
        "m2",
    ));
    h.send(track_tz(
        "u1",
        "Page Viewed",
        "2026-03-15T10:30:00Z",
        "m3",
        "America/Los_Angeles",
    ));
    h.advance("2026-04-01T00:00:00Z");
    assert_eq!(
        h.summary(),
        ["u1 birthday step1 2026-03-15T09:00:00.000Z sent"]
    );
}

/// A period end cancelled (Snoozed) comes back when the zone changes later
/// in the same period: on_zone_change moves the armed April end to March's.
#[test]
fn a_cancelled_period_end_stays_cancelled_across_a_zone_change() {
    let toml = with_policy(
        OPEN_POLICY,
        r#"
[[trigger]]
id = "monthly"
kind = "schedule"
source = { period = "month", event = "Order Completed", below = 5 }
offset = "-1d"
channel = "push"
cancel_on = ["Snoozed"]
"#,
    );
    let mut h = Harness::new(&toml);
    h.send(plain_track(
        "u1",
        "Order Completed",
        "2026-03-10T12:00:00Z",
        "m1",
    ));
    h.send(plain_track("u1", "Snoozed", "2026-03-12T12:00:00Z", "m2"));
    h.send(track_tz(
        "u1",
        "Page Viewed",
        "2026-03-14T12:00:00Z",
        "m3",
        "Europe/Berlin",
    ));
    h.advance("2026-05-20T00:00:00Z");
    assert_eq!(
        h.summary(),
        ["u1 monthly step1 2026-04-29T22:00:00.000Z sent"]
    );
}

/// March's end went out at midnight UTC; a zone west of UTC learned an hour
/// later puts "now" back in March there, and March is judged again.
#[test]
fn a_period_end_is_not_judged_twice_when_the_zone_moves_west_after_it() {
    let toml = with_policy(
        OPEN_POLICY,
        r#"
[[trigger]]
id = "monthly"
kind = "schedule"
source = { period = "month", event = "Order Completed", below = 5 }
channel = "push"
"#,
    );
    let mut h = Harness::new(&toml);
    h.send(plain_track(
        "u1",
        "Order Completed",
        "2026-03-10T12:00:00Z",
        "m1",
    ));
    h.send(plain_track(
        "u1",
        "Page Viewed",
        "2026-04-01T00:30:00Z",
        "m2",
    ));
    h.send(track_tz(
        "u1",
        "Page Viewed",
        "2026-04-01T01:00:00Z",
        "m3",
        "America/Los_Angeles",
    ));
    h.advance("2026-04-20T00:00:00Z");
    assert_eq!(
        h.summary(),
        ["u1 monthly step1 2026-04-01T00:00:00.000Z sent"]
    );
}

/// A period end's later step due more than one period after the end: the
/// judged period has been rolled out of the sums and the step never holds.
#[test]
fn a_period_end_step_past_the_end_still_judges_its_period() {
    let toml = with_policy(
        OPEN_POLICY,
        r#"
[[trigger]]
id = "monthly"
kind = "schedule"
source = { period = "month", event = "Order Completed", below = 5 }
channel = "push"
[[trigger.ladder]]
at = "35d"
"#,
    );
    let mut h = Harness::new(&toml);
    h.send(plain_track(
        "u1",
        "Order Completed",
        "2026-03-10T12:00:00Z",
        "m1",
    ));
    h.advance("2026-05-20T00:00:00Z");
    let steps: Vec<String> = h.summary();
    assert!(steps.iter().any(|s| s.contains("step2")), "{steps:?}");
}

/// A birthday step a day after the date (`offset = "1d"`) goes out once a
/// year: the next occurrence is next year's, not this one again.
#[test]
fn a_birthday_step_after_the_date_goes_out_once_a_year() {
    let toml = with_policy(
        OPEN_POLICY,
        r#"
[[trigger]]
id = "birthday"
kind = "schedule"
source = { trait = "birthday", at = "09:00" }
offset = "1d"
channel = "push"
"#,
    );
    let mut h = Harness::new(&toml);
    h.send(
        json!({"type": "identify", "userId": "u1", "timestamp": "2026-03-01T00:00:00Z",
        "messageId": "i1", "traits": {"birthday": "1990-03-15"}}),
    );
    h.advance("2027-04-01T00:00:00Z");
    assert_eq!(
        h.summary(),
        [
            "u1 birthday step1 2026-03-16T09:00:00.000Z sent",
            "u1 birthday step1 2027-03-16T09:00:00.000Z sent",
        ]
    );
}
