//! Attribution at runtime (issue #7): `kairos run` attributes conversions
//! the same way `kairos backtest` does, exports them as metrics, and
//! answers `kairos report` (NATS request/reply) with them; a request it
//! does not know gets an error naming what it accepts.

mod nats;

use nats::{
    call, client, pipeline_text, publish_call, read_actions, write_file, Kairos, NatsServer,
    UNCAPPED_POLICY,
};
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

/// A cart reminder 1 s after the last add, in two variants; half the
/// customers held out.
const TRIGGERS: &str = r#"
[[trigger]]
id = "cart"
kind = "absence"
key = "cart_id"
start = "Product Added"
cancel = ["Order Completed"]
after = "1s"
channel = "push"

[[trigger.variants]]
name = "plain"
weight = 1

[[trigger.variants]]
name = "coupon"
weight = 1
offer = "CART10"
"#;

/// The uncapped policy with half the customers held out.
fn half_held_out() -> String {
    UNCAPPED_POLICY.replace("holdout_percent = 0", "holdout_percent = 50")
}

fn report(server: &NatsServer, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kairos"))
        .args(["report", "--nats", &server.url()])
        .args(extra)
        .output()
        .expect("running kairos report")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversions_after_actions_are_attributed_reported_and_exported() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let pipeline = write_file(
        dir.path(),
        "shop.toml",
        &pipeline_text("shop", &half_held_out(), TRIGGERS),
    );
    let kairos_run = Kairos::start_in(&server, dir.path(), &["--pipeline", &pipeline]);
    let client = client(&server).await;

    // 20 carts left; every decision made (sent or held out), then every
    // even customer orders.
    let users: Vec<String> = (0..20).map(|n| format!("u{n}")).collect();
    for (n, user) in users.iter().enumerate() {
        let add = json!({"cart_id": format!("c-{user}"), "product_id": "p1", "price": 10});
        publish_call(&client, &call(user, "Product Added", &format!("a{n}"), add)).await;
    }
    let all = read_actions(&client, "kairos.actions.>", 20, Duration::from_secs(15)).await;
    let decisions: Vec<Value> = all.iter().map(|message| message.json()).collect();
    let held_out: Vec<&str> = decisions
        .iter()
        .filter(|action| action["data"]["suppressed"] == "holdout")
        .map(|action| action["data"]["user_id"].as_str().unwrap())
        .collect();
    assert!(!held_out.is_empty() && held_out.len() < 20, "{decisions:?}");
    for (n, user) in users.iter().enumerate().filter(|(n, _)| n % 2 == 0) {
        let order = json!({"order_id": format!("o{n}"), "revenue": 20.5});
        publish_call(
            &client,
            &call(user, "Order Completed", &format!("o{n}"), order),
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;

    let output = report(&server, &["--json"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let answer: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(answer["pipeline"], "shop");
    let cart = &answer["triggers"]["cart"];
    let sent = cart["sent"].as_u64().unwrap();
    let holdout = &cart["holdout"];
    assert_eq!(sent + holdout["decisions"].as_u64().unwrap(), 20, "{cart}");
    let ordered = |user: &&&str| user[1..].parse::<usize>().unwrap() % 2 == 0;
    let held_out_orders = held_out.iter().filter(ordered).count() as u64;
    assert_eq!(holdout["conversions"], held_out_orders, "{cart}");
    assert_eq!(cart["conversions"], 10 - held_out_orders, "{cart}");
    assert_eq!(cart["revenue"], json!((10 - held_out_orders) as f64 * 20.5));
    let variants = cart["variants"].as_object().unwrap();
    assert_eq!(
        variants.keys().collect::<Vec<_>>(),
        ["coupon", "plain"],
        "{cart}"
    );
    let variant_sum: u64 = variants
        .values()
        .map(|v| v["conversions"].as_u64().unwrap())
        .sum();
    assert_eq!(variant_sum, 10 - held_out_orders);

    // The table.
    let output = report(&server, &[]);
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    assert!(table.starts_with("pipeline shop (revision 1): "), "{table}");
    assert!(
        table.lines().any(|line| line.starts_with("cart ")),
        "{table}"
    );
    assert!(
        table.lines().any(|line| line.starts_with("  coupon")),
        "{table}"
    );

    // The same numbers as metrics.
    let metrics = kairos_run.metrics();
    let total = |name: &str, group: &str| -> u64 {
        metrics
            .lines()
            .filter(|line| line.starts_with(name) && line.contains(&format!("group=\"{group}\"")))
            .map(|line| line.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum()
    };
    assert_eq!(
        total("kairos_conversions_total", "sent"),
        10 - held_out_orders,
        "{metrics}"
    );
    assert_eq!(
        total("kairos_conversions_total", "holdout"),
        held_out_orders
    );
    assert_eq!(total("kairos_attributable_decisions_total", "sent"), sent);
    assert_eq!(
        total("kairos_conversion_revenue_cents_total", "sent"),
        (10 - held_out_orders) * 2050
    );

    // An unknown request is answered with what is accepted.
    let answer = client
        .request("kairos.admin.nonsense", "".into())
        .await
        .expect("an answer");
    let refused: Value = serde_json::from_slice(&answer.payload).unwrap();
    let error = refused["error"].as_str().unwrap();
    assert!(error.contains("kairos.admin.report"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_without_a_running_engine_says_so() {
    let server = NatsServer::start();
    let output = report(&server, &["--timeout", "1s"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no running `kairos run` answered on kairos.admin.report"),
        "{stderr}"
    );
}
