//! `kairos inspect` and `kairos forget` (issue #7) against a running
//! engine: a customer's pending reminder with its due time, their
//! decisions with the reason each was or was not sent, an unknown
//! customer, an erasure confirmed and still in force after a kill -9 and a
//! replay, and requests the engine cannot read.

mod nats;

use nats::UNCAPPED_POLICY;
use nats::{
    call, client, pipeline_text, publish_call, read_actions, write_file, Kairos, NatsServer,
};
use serde_json::{json, Value};
use std::process::{Command, Output};
use std::time::Duration;

/// A cart reminder 2 s after the last add unless an order comes, and no
/// second one within an hour.
const CART_WITH_COOLDOWN: &str = r#"
[[trigger]]
id = "cart"
kind = "absence"
key = "cart_id"
start = "Product Added"
cancel = ["Order Completed"]
after = "2s"
channel = "push"
cooldown = "1h"
"#;

/// Runs `kairos COMMAND ARGS... --nats URL`.
fn kairos(server: &NatsServer, command: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kairos"))
        .arg(command)
        .args(args)
        .args(["--nats", &server.url()])
        .output()
        .expect("running kairos")
}

/// `kairos inspect CUSTOMER --json`'s answer.
fn inspect_json(server: &NatsServer, customer: &str) -> Value {
    let output = kairos(server, "inspect", &[customer, "--json"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    serde_json::from_slice(&output.stdout).expect("JSON")
}

async fn add_to_cart(client: &async_nats::Client, user: &str, cart: &str) -> Value {
    let add = call(
        user,
        "Product Added",
        &format!("add-{user}-{cart}"),
        json!({"cart_id": cart, "product_id": "p9", "price": 12.5, "quantity": 2}),
    );
    publish_call(client, &add).await;
    add
}

/// Restarts `kairos run` with kill -9 and waits until it has replayed the
/// stream: until a new customer's event, published after the restart, is
/// applied (an engine answers requests from the moment it is ready, before
/// its replay).
async fn kill_restart_and_replay(
    server: &NatsServer,
    client: &async_nats::Client,
    kairos_run: &mut Kairos,
    marker: &str,
) {
    tokio::task::block_in_place(|| kairos_run.kill_and_restart());
    add_to_cart(client, marker, "c-marker").await;
    let answer = inspect_until(server, marker, |answer| answer["found"] == true).await;
    assert_eq!(answer["found"], true, "log:\n{}", kairos_run.log_text());
}

/// Waits (up to 10 s) until `customer`'s inspection satisfies `done`.
async fn inspect_until(
    server: &NatsServer,
    customer: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answer = tokio::task::block_in_place(|| inspect_json(server, customer));
        if done(&answer) || tokio::time::Instant::now() >= deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_shows_why_and_forget_erases_for_good() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let pipeline = write_file(
        dir.path(),
        "shop.toml",
        &pipeline_text("shop", UNCAPPED_POLICY, CART_WITH_COOLDOWN),
    );
    let mut kairos_run = Kairos::start_in(&server, dir.path(), &["--pipeline", &pipeline]);
    let client = client(&server).await;

    // A cart left: the reminder is pending, due 2 s after the add.
    let add = add_to_cart(&client, "u1", "c1").await;
    let answer = inspect_until(&server, "u1", |answer| answer["found"] == true).await;
    assert_eq!(answer["customer"], "u1");
    let state = &answer["state"];
    assert_eq!(state["carts"][0]["id"], "c1", "{answer:#}");
    assert_eq!(state["carts"][0]["value"], 25.0);
    let cart = &state["triggers"][0];
    assert_eq!(
        (&cart["trigger"], &cart["entity"]),
        (&json!("cart"), &json!("c1")),
        "{answer:#}"
    );
    let added_at =
        kairos_model::Timestamp::parse_rfc3339(add["timestamp"].as_str().unwrap()).unwrap();
    let due = (added_at + kairos_model::Span::seconds(2)).to_rfc3339();
    assert_eq!(cart["pending"]["due"], due, "{answer:#}");
    assert_eq!(cart["timers"][0], json!({"purpose": "step", "at": due}));
    assert_eq!(state["decisions"], json!([]));

    // The reminder goes out; a second cart's is held back by the cooldown.
    let sent = read_actions(&client, "kairos.actions.push", 1, Duration::from_secs(10)).await;
    assert_eq!(sent.len(), 1);
    add_to_cart(&client, "u1", "c2").await;
    let held = read_actions(
        &client,
        "kairos.actions.suppressed",
        1,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(held.len(), 1);
    let answer = inspect_until(&server, "u1", |answer| {
        answer["state"]["decisions"]
            .as_array()
            .is_some_and(|made| made.len() == 2)
    })
    .await;
    let outcomes: Vec<(&Value, &Value)> = answer["state"]["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|decision| (&decision["outcome"], &decision["meaning"]))
        .collect();
    assert_eq!(
        outcomes,
        [
            (&json!("sent"), &json!("sent")),
            (
                &json!("cooldown"),
                &json!("the same trigger was sent within its cooldown")
            ),
        ],
        "{answer:#}"
    );
    assert_eq!(answer["state"]["last_touch"]["trigger"], "cart");
    assert_eq!(answer["state"]["last_touch"]["group"], "sent");

    // The same as text.
    let output = kairos(&server, "inspect", &["u1"]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.starts_with("customer u1, as of "), "{text}");
    assert!(
        text.contains("cart step 1 (variant control): not sent: cooldown: the same trigger was sent within its cooldown"),
        "{text}"
    );

    // A restart replays the stream: u1 is back as they were.
    kill_restart_and_replay(&server, &client, &mut kairos_run, "u-marker-1").await;
    let replayed = inspect_json(&server, "u1");
    assert_eq!(replayed["state"]["decisions"], answer["state"]["decisions"]);

    // Somebody the engine never saw.
    let answer = inspect_json(&server, "u-never");
    assert_eq!(
        answer,
        json!({"customer": "u-never", "found": false, "state": null})
    );

    // Forgotten: confirmed, then gone, and still gone after a kill -9
    // (the restart replays the stream, erasure included).
    let output = kairos(&server, "forget", &["u1"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.starts_with("customer u1: erased (everything the engine held about them is gone)"),
        "{stdout}"
    );
    assert_eq!(inspect_json(&server, "u1")["found"], false);
    kill_restart_and_replay(&server, &client, &mut kairos_run, "u-marker-2").await;
    assert_eq!(
        inspect_json(&server, "u1")["found"],
        false,
        "log:\n{}",
        kairos_run.log_text()
    );

    // Forgetting somebody unknown is confirmed too, saying so.
    let answer = client
        .request(
            "kairos.admin.forget",
            json!({"customer": "u-never"}).to_string().into(),
        )
        .await
        .expect("an answer");
    let answer: Value = serde_json::from_slice(&answer.payload).unwrap();
    assert_eq!(
        (&answer["erased"], &answer["existed"]),
        (&json!(true), &json!(false)),
        "{answer}"
    );

    // Bodies the engine cannot read are refused, saying what is accepted.
    for (subject, body) in [
        ("kairos.admin.inspect", "not json"),
        ("kairos.admin.inspect", r#"{"user": "u1"}"#),
        ("kairos.admin.forget", r#"{"customer": 5}"#),
        ("kairos.admin.forget", r#"{"customer": ""}"#),
    ] {
        let answer = client
            .request(subject, body.into())
            .await
            .expect("an answer");
        let refused: Value = serde_json::from_slice(&answer.payload).unwrap();
        let error = refused["error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with(subject)
                && error.contains(r#"accepted: a JSON body {"customer": "ID"}"#),
            "{body}: {refused}"
        );
    }
    let output = kairos(&server, "forget", &[""]);
    assert_eq!(output.status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_running_engine_both_say_so() {
    let server = NatsServer::start();
    for command in ["inspect", "forget"] {
        let output = kairos(&server, command, &["u1", "--timeout", "1s"]);
        assert_eq!(output.status.code(), Some(1), "{command}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!(
                "no running `kairos run` answered on kairos.admin.{command}"
            )),
            "{stderr}"
        );
    }
}
