//! `kairos demo`: synthetic shoppers for a running `kairos run`, and a live
//! view of the decisions it makes.
//!
//! Shoppers arrive at a steady rate and each follows one short journey with
//! human timing: sign up, browse, fill a cart and either check out or walk
//! away; walk into a store; pass near one; file a complaint. Every call is
//! published the way any publisher must (`kairos_nats::publisher`), with the
//! wall clock as its time. Decisions are read from `kairos.actions.>` as
//! they are published and printed one per line: time, channel, customer,
//! trigger, and the rule or the reason it was not sent.

use crate::cli::DemoArgs;
use futures::StreamExt;
use kairos_model::Timestamp;
use kairos_nats::publisher::Publisher;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

/// Time zones of the shoppers: most where it is daytime in Europe's or
/// Asia's afternoon, so that quiet hours show up now and then, not always.
const TIMEZONES: &[&str] = &["Asia/Shanghai", "Europe/Berlin", "America/New_York", "UTC"];
const PRODUCTS: &[(&str, &str, f64)] = &[
    ("p-espresso-beans", "coffee", 14.5),
    ("p-oolong", "tea", 9.9),
    ("p-grinder", "equipment", 89.0),
    ("p-mug", "homeware", 12.0),
    ("p-kettle", "equipment", 45.0),
];
/// Near the retail pipeline's Nanjing Road store.
const NEAR_STORE: (f64, f64) = (31.2400, 121.4800);

/// Calls by the wall time (ms) they are due, then the order they were planned.
type Plan = BTreeMap<(i64, u64), Value>;

pub fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let runtime = crate::nats::runtime()?;
    runtime.block_on(async {
        let client = kairos_nats::connect::connect(
            &crate::nats::connect_settings(&args.connection, "kairos-demo"),
            Duration::from_secs(10),
        )
        .await?;
        let mut decisions = client.subscribe("kairos.actions.>").await?;
        println!("time          channel       customer      trigger                 step  outcome");
        let printer = tokio::spawn(async move {
            while let Some(message) = decisions.next().await {
                if let Ok(action) = serde_json::from_slice::<Value>(&message.payload) {
                    print_decision(&action);
                }
            }
        });
        let mut publisher = Publisher::new(client.clone(), args.partitions, 256);
        let mut plan = Plan::new();
        let mut order = 0u64;
        let mut shopper = 0u64;
        let gap_ms = (1000.0 / args.shoppers_per_second).max(1.0) as i64;
        let mut next_shopper = Timestamp::now().0;
        // In every message id: a second demo against the same server sends
        // new events, not repeats JetStream and the engine would drop.
        let run = format!("{next_shopper:x}");
        let stop = tokio::signal::ctrl_c();
        tokio::pin!(stop);
        loop {
            let now = Timestamp::now().0;
            if now >= next_shopper && args.shoppers.is_none_or(|limit| shopper < limit) {
                for (at, call) in journey(shopper, now, &run) {
                    order += 1;
                    plan.insert((at, order), call);
                }
                shopper += 1;
                next_shopper += gap_ms;
            }
            while plan
                .first_key_value()
                .is_some_and(|((at, _), _)| *at <= now)
            {
                let ((at, _), mut call) = plan.pop_first().expect("a first entry");
                call["timestamp"] = Timestamp(at.max(now)).to_rfc3339().into();
                if let Err(invalid) = publisher.publish(call.to_string().as_bytes()).await? {
                    anyhow::bail!("the demo made an invalid call ({invalid}): {call}");
                }
            }
            let finished = args.shoppers.is_some_and(|limit| shopper >= limit) && plan.is_empty();
            if finished {
                publisher.flush().await?;
                // Decisions of the last journeys (a cart reminder) come later.
                tokio::time::sleep(Duration::from_secs(args.linger_seconds)).await;
                break;
            }
            let wake = plan
                .first_key_value()
                .map(|((at, _), _)| *at)
                .unwrap_or(i64::MAX)
                .min(next_shopper);
            let wait = Duration::from_millis((wake - Timestamp::now().0).clamp(1, 250) as u64);
            tokio::select! {
                _ = &mut stop => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
        publisher.flush().await?;
        printer.abort();
        eprintln!("demo: {shopper} shoppers");
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// One shopper's calls, each at its wall time (ms), starting at `start`;
/// their message ids carry `run`.
fn journey(shopper: u64, start: i64, run: &str) -> Vec<(i64, Value)> {
    let user = format!("shopper-{shopper}");
    let mut rng = kairos_model::ids::stable_hash(7, &[user.as_bytes()]);
    let mut pick = |n: u64| {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (rng >> 33) % n
    };
    let timezone = TIMEZONES[pick(TIMEZONES.len() as u64) as usize];
    let (product, category, price) = PRODUCTS[pick(PRODUCTS.len() as u64) as usize];
    let mut calls = vec![(
        start,
        json!({"type": "identify", "userId": user, "messageId": format!("{user}-{run}-id"),
               "traits": {"timezone": timezone, "birthday": "1990-06-15",
                          "consent": {"push": true, "email": true, "sms": true, "wechat": false}}}),
    )];
    let mut at = start;
    let mut next = |name: &str, after_ms: i64, properties: Value, calls: &mut Vec<(i64, Value)>| {
        at += after_ms;
        let id = format!("{user}-{run}-{}", calls.len());
        calls.push((
            at,
            json!({"type": "track", "event": name, "userId": user, "messageId": id, "properties": properties}),
        ));
    };
    next("Signed Up", 300, json!({}), &mut calls);
    let cart = format!("{user}-{run}-cart");
    match pick(10) {
        // Browses one product three times and leaves: browse abandonment.
        0..=1 => {
            for _ in 0..3 {
                next(
                    "Product Viewed",
                    2_000,
                    json!({"product_id": product, "category": category}),
                    &mut calls,
                );
            }
        }
        // Fills a cart and walks away: the cart reminder.
        2..=4 => {
            next(
                "Product Viewed",
                1_500,
                json!({"product_id": product, "category": category}),
                &mut calls,
            );
            next(
                "Product Added",
                2_000,
                json!({"cart_id": cart, "product_id": product, "price": price, "quantity": 1}),
                &mut calls,
            );
        }
        // Fills a cart and checks out: no reminder; a review request later.
        5..=6 => {
            next(
                "Product Added",
                1_500,
                json!({"cart_id": cart, "product_id": product, "price": price, "quantity": 1}),
                &mut calls,
            );
            next(
                "Order Completed",
                4_000,
                json!({"cart_id": cart, "order_id": format!("{user}-{run}-order"), "total": price,
                                                  "products": [{"product_id": product, "price": price, "quantity": 1}]}),
                &mut calls,
            );
        }
        // Walks into a store and checks in: an offer at the till.
        7 => {
            next(
                "Store Visited",
                2_000,
                json!({"store_id": "sh-nanjing-rd", "method": "qr"}),
                &mut calls,
            );
        }
        // Passes near a store: a nearby offer.
        8 => {
            next(
                "Location Updated",
                2_000,
                json!({"lat": NEAR_STORE.0, "lon": NEAR_STORE.1}),
                &mut calls,
            );
        }
        // Files a complaint: a ticket at once, escalated if unresolved.
        _ => {
            next(
                "Complaint Filed",
                2_000,
                json!({"complaint_id": format!("{user}-{run}-c1"), "severity": "1"}),
                &mut calls,
            );
        }
    }
    calls
}

fn print_decision(action: &Value) {
    let data = &action["data"];
    let text = |value: &Value| value.as_str().unwrap_or("").to_string();
    let time = text(&data["decided_at"]);
    let time = time.get(11..23).unwrap_or(&time).to_string();
    let mut outcome = match data["suppressed"].as_str() {
        None => format!("sent: {}", text(&data["reason"]["rule"])),
        Some(reason) => format!("not sent: {reason}"),
    };
    if let Some(items) = data["payload"]["recommendations"].as_array() {
        let ids: Vec<String> = items.iter().map(|item| text(&item["item_id"])).collect();
        if !ids.is_empty() {
            outcome.push_str(&format!(" [recommends {}]", ids.join(", ")));
        }
    }
    let line = format!(
        "{time}  {:<12}  {:<12}  {:<22}  {:>4}  {outcome}",
        text(&data["channel"]),
        text(&data["user_id"]),
        text(&data["trigger"]),
        data["step"],
    );
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}
