//! `kairos inspect CUSTOMER` and `kairos forget CUSTOMER`: questions about
//! one customer, put to the running engine over NATS request/reply (see
//! `kairos_nats::requests`).
//!
//! `inspect` prints what the engine holds about the customer, as text (a
//! few sections: profile, carts, what each trigger waits for, decisions
//! with their reasons, the last touch, sends, taste) or, with `--json`,
//! as the engine answered it. An unknown customer is an answer too (exit
//! 0, "not known"). `forget` asks the engine to erase the customer, which
//! it does through the events stream so that the erasure survives restarts,
//! and prints its confirmation. Both exit 1 when no engine answers in time
//! or the engine refuses.

use crate::ask::{ask, Asked};
use crate::cli::{ForgetArgs, InspectArgs};
use kairos_nats::requests::{FORGET_SUBJECT, INSPECT_SUBJECT};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::process::ExitCode;

pub fn inspect(args: &InspectArgs) -> anyhow::Result<ExitCode> {
    let asked = ask(
        &args.connection,
        "kairos-inspect",
        INSPECT_SUBJECT,
        customer_body(&args.customer),
        args.timeout,
    )?;
    let Asked::Answered(answer) = asked else {
        return Ok(ExitCode::from(1));
    };
    if args.json {
        println!("{answer:#}");
    } else {
        print!("{}", printable(&text(&answer)));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn forget(args: &ForgetArgs) -> anyhow::Result<ExitCode> {
    let asked = ask(
        &args.connection,
        "kairos-forget",
        FORGET_SUBJECT,
        customer_body(&args.customer),
        args.timeout,
    )?;
    let answer = match asked {
        Asked::Answered(answer) => answer,
        Asked::Refused => return Ok(ExitCode::from(1)),
        Asked::Unanswered => {
            eprintln!(
                "kairos: the erasure may still be applied if an engine received the request: `kairos inspect {}` tells",
                args.customer
            );
            return Ok(ExitCode::from(1));
        }
    };
    if answer["erased"] != true {
        eprintln!("kairos: the engine did not confirm the erasure: {answer}");
        return Ok(ExitCode::from(1));
    }
    let held = match answer["existed"].as_bool() {
        Some(true) => "everything the engine held about them is gone",
        _ => "the engine held nothing about them",
    };
    println!(
        "customer {}: erased ({held}); the erasure event is in the events stream at sequence {}, so restarts and replays keep it erased",
        args.customer, answer["sequence"]
    );
    Ok(ExitCode::SUCCESS)
}

/// The body both requests take.
fn customer_body(customer: &str) -> String {
    json!({ "customer": customer }).to_string()
}

/// An inspect answer as text: a few sections, the decisions with reasons.
fn text(answer: &Value) -> String {
    let mut out = String::new();
    let customer = answer["customer"].as_str().unwrap_or("?");
    if answer["found"] != true {
        let _ = writeln!(
            out,
            "customer {customer}: not known to the engine (never seen, merged away, or erased)"
        );
        return out;
    }
    let state = &answer["state"];
    let aliases = strings(&state["aliases"]);
    let _ = write!(out, "customer {}", text_of(&state["customer"]));
    if !aliases.is_empty() {
        let _ = write!(out, " (also {})", aliases.join(", "));
    }
    let packed = if state["was_packed"] == true {
        "; idle, held packed"
    } else {
        ""
    };
    let _ = writeln!(out, ", as of {}{packed}", text_of(&state["as_of"]));
    profile(&mut out, &state["profile"]);
    carts(&mut out, &state["carts"]);
    waiting(&mut out, &state["triggers"], &state["deferred"]);
    decisions(&mut out, &state["decisions"]);
    let _ = writeln!(out, "last touch:");
    match state["last_touch"]["meaning"].as_str() {
        Some(meaning) => {
            let _ = writeln!(out, "  {meaning}");
        }
        None => {
            let _ = writeln!(out, "  none: a conversion now is attributed to no decision");
        }
    }
    sends(&mut out, &state["sent"]);
    let taste = &state["taste"];
    let _ = writeln!(out, "taste:");
    if taste["present"] == true {
        let _ = writeln!(
            out,
            "  {} items recently viewed or added, {} recently bought",
            taste["recent_items"], taste["bought_items"]
        );
    } else {
        let _ = writeln!(out, "  none");
    }
    out
}

fn profile(out: &mut String, profile: &Value) {
    let _ = writeln!(out, "profile:");
    let zone = match profile["timezone"].as_str() {
        Some(zone) => zone.to_string(),
        None => format!("not told ({} used)", text_of(&profile["timezone_used"])),
    };
    let _ = writeln!(out, "  time zone: {zone}");
    if let Some(birthday) = profile["birthday"].as_str() {
        let _ = writeln!(out, "  birthday: {birthday}");
    }
    let consent: Vec<String> = items(&profile["consent"])
        .map(|channel| {
            let required = if channel["required"] == true {
                ""
            } else {
                " (not required)"
            };
            format!(
                "{} {}{required}",
                text_of(&channel["channel"]),
                text_of(&channel["state"])
            )
        })
        .collect();
    if !consent.is_empty() {
        let _ = writeln!(out, "  consent: {}", consent.join(", "));
    }
}

fn carts(out: &mut String, carts: &Value) {
    let _ = writeln!(out, "carts:");
    let mut any = false;
    for cart in items(carts) {
        any = true;
        let lines: Vec<String> = items(&cart["items"])
            .map(|item| {
                format!(
                    "{} x {} at {:.2}",
                    item["quantity"],
                    text_of(&item["product_id"]),
                    item["price"].as_f64().unwrap_or(0.0)
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "  {}: {} (value {:.2})",
            text_of(&cart["id"]),
            lines.join(", "),
            cart["value"].as_f64().unwrap_or(0.0)
        );
    }
    if !any {
        let _ = writeln!(out, "  none");
    }
}

fn waiting(out: &mut String, triggers: &Value, deferred: &Value) {
    let _ = writeln!(out, "waiting:");
    let mut any = false;
    for state in items(triggers) {
        let label = match state["entity"].as_str() {
            Some(entity) => format!("{} [{entity}]", text_of(&state["trigger"])),
            None => text_of(&state["trigger"]).to_string(),
        };
        let mut what: Vec<String> = Vec::new();
        if let Some(pending) = state["pending"]["waiting_for"].as_str() {
            let variant = text_of(&state["pending"]["variant"]);
            what.push(format!("{pending} (variant {variant})"));
        }
        if let Some(memory) = state["memory"].as_str() {
            what.push(memory.to_string());
        }
        for timer in items(&state["timers"]).filter(|timer| timer["purpose"] != "step") {
            what.push(format!(
                "{} at {}",
                text_of(&timer["purpose"]),
                text_of(&timer["at"])
            ));
        }
        if what.is_empty() {
            continue;
        }
        any = true;
        let _ = writeln!(out, "  {label}: {}", what.join("; "));
    }
    for decision in items(deferred) {
        any = true;
        let _ = writeln!(
            out,
            "  {} step {} ({}), decided and deferred: delivered at {}",
            text_of(&decision["trigger"]),
            decision["step"],
            text_of(&decision["channel"]),
            text_of(&decision["deliver_at"])
        );
    }
    if !any {
        let _ = writeln!(out, "  nothing");
    }
}

fn decisions(out: &mut String, decisions: &Value) {
    let _ = writeln!(out, "recent decisions (oldest first):");
    let mut any = false;
    for decision in items(decisions) {
        any = true;
        let outcome = text_of(&decision["outcome"]);
        let why = match outcome {
            "sent" => "sent".to_string(),
            reason => format!("not sent: {reason}: {}", text_of(&decision["meaning"])),
        };
        let _ = writeln!(
            out,
            "  {}  {} step {} (variant {}): {why}",
            text_of(&decision["at"]),
            text_of(&decision["trigger"]),
            decision["step"],
            text_of(&decision["variant"])
        );
    }
    if !any {
        let _ = writeln!(out, "  none");
    }
}

fn sends(out: &mut String, sent: &Value) {
    let _ = writeln!(out, "sends counted by caps and cooldowns:");
    let recent: Vec<String> = items(&sent["recent"])
        .map(|record| {
            format!(
                "{} {} on {}",
                text_of(&record["at"]),
                text_of(&record["trigger"]),
                text_of(&record["channel"])
            )
        })
        .collect();
    if recent.is_empty() {
        let _ = writeln!(out, "  none");
        return;
    }
    for line in &recent {
        let _ = writeln!(out, "  {line}");
    }
    let caps = &sent["daily_caps"];
    if let Some(today) = sent["today"].as_object() {
        for (channel, counts) in today {
            let _ = writeln!(
                out,
                "  today on {channel}: {} of {} targeted, {} of {} content",
                counts["targeted"], caps["targeted"], counts["content"], caps["content"]
            );
        }
    }
    let _ = writeln!(
        out,
        "  marketing in the last 7 days: {} of {}",
        sent["last_7_days_marketing"], sent["weekly_marketing_cap"]
    );
}

/// The elements of a JSON array (none for anything else).
fn items(value: &Value) -> impl Iterator<Item = &Value> {
    value.as_array().into_iter().flatten()
}

fn strings(value: &Value) -> Vec<&str> {
    items(value).filter_map(Value::as_str).collect()
}

/// `text` safe for a terminal: ids and properties come from events, and
/// control characters among them (an escape sequence) are shown escaped
/// rather than obeyed; line breaks between sections stay.
fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|character| match character {
            '\n' => vec![character],
            character if character.is_control() => character.escape_default().collect(),
            character => vec![character],
        })
        .collect()
}

/// A JSON string's text, `?` for anything else.
fn text_of(value: &Value) -> &str {
    value.as_str().unwrap_or("?")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_from_events_are_shown_escaped() {
        assert_eq!(
            printable("cart c-1\u{1b}[2J\nnext line\t"),
            "cart c-1\\u{1b}[2J\nnext line\\t"
        );
    }

    #[test]
    fn an_unknown_customer_is_said_to_be_unknown() {
        let answer = json!({"customer": "u9", "found": false, "state": null});
        assert_eq!(
            text(&answer),
            "customer u9: not known to the engine (never seen, merged away, or erased)\n"
        );
    }

    #[test]
    fn the_text_has_its_sections_and_the_decisions_with_reasons() {
        let answer = json!({"customer": "anon-1", "found": true, "state": {
            "customer": "u1", "aliases": ["anon-1"], "as_of": "2026-11-23T13:00:00.000Z",
            "was_packed": false,
            "profile": {"timezone": null, "timezone_used": "UTC", "birthday": null,
                        "consent": [{"channel": "push", "required": true, "state": "granted"}]},
            "carts": [{"id": "c2", "items": [{"product_id": "p9", "quantity": 2, "price": 12.5}], "value": 25.0}],
            "triggers": [{"trigger": "abandoned_cart", "rule": "...", "entity": "c2",
                          "pending": {"step": 1, "of": 1, "due": "2026-11-23T13:10:00.000Z", "channel": "push",
                                      "variant": "control", "since": "2026-11-23T12:40:00.000Z",
                                      "held_back_by_cooldown": false,
                                      "waiting_for": "step 1 of 1 (push) at 2026-11-23T13:10:00.000Z, unless Order Completed"},
                          "memory": null, "timers": [{"purpose": "step", "at": "2026-11-23T13:10:00.000Z"}]}],
            "deferred": [],
            "decisions": [
                {"at": "2026-11-23T12:31:00.000Z", "trigger": "abandoned_cart", "step": 1, "variant": "control",
                 "outcome": "sent", "meaning": "sent"},
                {"at": "2026-11-23T12:50:00.000Z", "trigger": "abandoned_cart", "step": 1, "variant": "control",
                 "outcome": "cooldown", "meaning": "the same trigger was sent within its cooldown"}],
            "last_touch": {"meaning": "a conversion (Order Completed) until 2026-11-24T12:31:00.000Z is attributed to abandoned_cart (variant control, sent group)"},
            "sent": {"recent": [{"at": "2026-11-23T12:31:00.000Z", "trigger": "abandoned_cart", "channel": "push",
                                 "counts_against": "targeted"}],
                     "today": {"push": {"targeted": 1, "content": 0}}, "last_7_days_marketing": 1,
                     "daily_caps": {"targeted": 1, "content": 1}, "weekly_marketing_cap": 3},
            "taste": {"present": false, "recent_items": 0, "bought_items": 0}}});
        let text = text(&answer);
        for expected in [
            "customer u1 (also anon-1), as of 2026-11-23T13:00:00.000Z\n",
            "  time zone: not told (UTC used)\n",
            "  consent: push granted\n",
            "  c2: 2 x p9 at 12.50 (value 25.00)\n",
            "  abandoned_cart [c2]: step 1 of 1 (push) at 2026-11-23T13:10:00.000Z, unless Order Completed (variant control)\n",
            "  2026-11-23T12:31:00.000Z  abandoned_cart step 1 (variant control): sent\n",
            "  2026-11-23T12:50:00.000Z  abandoned_cart step 1 (variant control): not sent: cooldown: the same trigger was sent within its cooldown\n",
            "  today on push: 1 of 1 targeted, 0 of 1 content\n",
            "  marketing in the last 7 days: 1 of 3\n",
            "taste:\n  none\n",
        ] {
            assert!(text.contains(expected), "{expected:?} in:\n{text}");
        }
    }
}
