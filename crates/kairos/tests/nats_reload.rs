//! Live reload against a real nats-server (issue #7): `kairos pipeline
//! push` stores a version in the `kairos_pipelines` KV bucket and the
//! running `kairos run` switches to it between two events, losing none;
//! an invalid push is refused and the running version stays; history and
//! rollback; a restart after a switch resumes under the right version.

mod nats;

use nats::{
    call, client, pipeline_text, publish_call, read_all_actions, write_file, Kairos, NatsServer,
    UNCAPPED_POLICY,
};
use serde_json::json;
use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A cart reminder `after` the last add, on `channel`.
fn shop(after: &str, channel: &str) -> String {
    pipeline_text(
        "shop",
        UNCAPPED_POLICY,
        &format!(
            r#"
[[trigger]]
id = "cart"
kind = "absence"
key = "cart_id"
start = "Product Added"
cancel = ["Order Completed"]
after = "{after}"
channel = "{channel}"
"#
        ),
    )
}

fn kairos(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kairos"))
        .args(args)
        .output()
        .expect("running kairos")
}

fn pipeline_command(server: &NatsServer, command: &str, rest: &[&str]) -> Output {
    let url = server.url();
    let mut args = vec!["pipeline", command, "--nats", &url];
    args.extend(rest);
    kairos(&args)
}

fn succeeded(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn add(user: &str, message_id: &str) -> serde_json::Value {
    call(
        user,
        "Product Added",
        message_id,
        json!({"cart_id": format!("c-{user}"), "product_id": "p1", "price": 10}),
    )
}

/// Waits until the engine's metrics show it runs `revision`.
fn wait_for_revision(kairos: &Kairos, revision: u64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let line = format!("\nkairos_pipeline_revision {revision}\n");
    while !kairos.metrics().contains(&line) {
        assert!(
            Instant::now() < deadline,
            "no switch to revision {revision}; log:\n{}",
            kairos.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start(server: &NatsServer, dir: &Path) -> (Kairos, String) {
    let first = write_file(dir, "shop.toml", &shop("1h", "push"));
    let kairos = Kairos::start_in(server, dir, &["--pipeline", &first]);
    (kairos, first)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_under_load_switches_between_two_events_and_loses_none() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (kairos_run, _) = start(&server, dir.path());
    let second = write_file(dir.path(), "shop-2.toml", &shop("1s", "sms"));
    let client = client(&server).await;

    // 200 customers, 1,000 adds over about two seconds; the push lands in
    // the middle. Carts of the old version (1 h) move to the new offset.
    let publisher = {
        let client = client.clone();
        tokio::spawn(async move {
            for n in 0..1000 {
                let user = format!("u{}", n % 200);
                publish_call(&client, &add(&user, &format!("a{n}"))).await;
                if n % 50 == 49 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    let pushed = tokio::task::block_in_place(|| pipeline_command(&server, "push", &[&second]));
    let stdout = succeeded(&pushed);
    assert!(
        stdout.contains("pipeline shop: revision 2 stored (after revision 1)"),
        "{stdout}"
    );
    publisher.await.unwrap();
    tokio::task::block_in_place(|| wait_for_revision(&kairos_run, 2));

    let actions = read_all_actions(&client, Duration::from_secs(6)).await;
    let users: Vec<String> = actions
        .iter()
        .map(|action| {
            action.json()["data"]["user_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let distinct: HashSet<&String> = users.iter().collect();
    assert_eq!(distinct.len(), 200, "every cart reminded: {users:?}");
    assert_eq!(users.len(), 200, "each once");
    assert!(
        actions
            .iter()
            .all(|action| action.subject == "kairos.actions.sms"),
        "decided under the new version"
    );
    let metrics = kairos_run.metrics();
    assert!(
        metrics.contains("\nkairos_events_total{type=\"track\"} 1000\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("\nkairos_pipeline_reloads_total{outcome=\"applied\"} 1\n"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_push_is_refused_and_a_rollback_switches_back() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (kairos_run, first) = start(&server, dir.path());
    let client = client(&server).await;

    // Refused before anything is stored, with what is wrong.
    let broken = write_file(dir.path(), "broken.toml", &shop("soon", "push"));
    let refused = pipeline_command(&server, "push", &[&broken]);
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("broken.toml:") && stderr.contains("after"),
        "{stderr}"
    );
    assert!(
        stderr.contains("nothing was stored; the running version stays"),
        "{stderr}"
    );
    let refused = pipeline_command(&server, "push", &[&first, "--set", "cart.after=never"]);
    assert_eq!(refused.status.code(), Some(2));

    // A version put into the bucket by hand that does not compile is
    // refused by the engine, which keeps running the one it has.
    let js = async_nats::jetstream::new(client.clone());
    let bucket = js.get_key_value("kairos_pipelines").await.unwrap();
    let garbage =
        json!({"source": "name = \"shop\"\n[[trigger]]\nid = 3\n", "file": "by-hand.toml"});
    bucket
        .put("shop", garbage.to_string().into())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !kairos_run
        .metrics()
        .contains("\nkairos_pipeline_reloads_total{outcome=\"refused\"} 1\n")
    {
        assert!(Instant::now() < deadline, "{}", kairos_run.log_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(kairos_run
        .metrics()
        .contains("\nkairos_pipeline_revision 1\n"));

    // A good version, then back to the first.
    let second = write_file(dir.path(), "shop-2.toml", &shop("1s", "sms"));
    succeeded(&pipeline_command(&server, "push", &[&second]));
    tokio::task::block_in_place(|| wait_for_revision(&kairos_run, 3));
    let rolled = succeeded(&pipeline_command(
        &server,
        "rollback",
        &["shop", "--to", "1"],
    ));
    assert!(
        rolled.contains("revision 4 stored, the same as revision 1"),
        "{rolled}"
    );
    tokio::task::block_in_place(|| wait_for_revision(&kairos_run, 4));

    let history = succeeded(&pipeline_command(&server, "history", &["shop"]));
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(lines.len(), 5, "a header and four revisions:\n{history}");
    assert!(
        lines[1].contains("kairos run (first revision)"),
        "{history}"
    );
    assert!(
        lines[3].contains("shop-2.toml (kairos pipeline push)"),
        "{history}"
    );
    assert!(
        lines[4].contains("rollback to revision 1") && lines[4].contains("<- newest"),
        "{history}"
    );
    let unknown = pipeline_command(&server, "rollback", &["shop", "--to", "99"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("accepted: --to one of [1, 2, 3, 4]"));

    // Running the first version again: a cart waits an hour, not a second.
    publish_call(&client, &add("late", "l1")).await;
    let actions = read_all_actions(&client, Duration::from_secs(3)).await;
    assert!(
        actions.is_empty(),
        "{:?}",
        actions.iter().map(|a| a.json()).collect::<Vec<_>>()
    );

    // Bad newest revisions do not stop a restart either (one that does not
    // compile, one that is not even JSON): the newest that compiles runs.
    bucket
        .put("shop", garbage.to_string().into())
        .await
        .unwrap();
    bucket.put("shop", "not json".into()).await.unwrap();
    let mut kairos_run = kairos_run;
    tokio::task::block_in_place(|| kairos_run.kill_and_restart());
    tokio::task::block_in_place(|| wait_for_revision(&kairos_run, 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_after_a_switch_resumes_under_the_new_version_and_repeats_nothing() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (mut kairos_run, first) = start(&server, dir.path());
    let client = client(&server).await;
    for n in 0..20 {
        publish_call(&client, &add(&format!("u{n}"), &format!("a{n}"))).await;
    }
    let second = write_file(dir.path(), "shop-2.toml", &shop("1s", "sms"));
    succeeded(&pipeline_command(&server, "push", &[&second]));
    tokio::task::block_in_place(|| wait_for_revision(&kairos_run, 2));
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Killed, and started again with the first file: the stored version
    // is what runs (the file differs, and is not used).
    tokio::task::block_in_place(|| kairos_run.kill_and_restart());
    tokio::task::block_in_place(|| wait_for_revision(&kairos_run, 2));
    assert!(kairos_run
        .log_text()
        .contains("which differs from the file"));
    let _ = first;
    for n in 20..30 {
        publish_call(&client, &add(&format!("u{n}"), &format!("a{n}"))).await;
    }
    let actions = read_all_actions(&client, Duration::from_secs(5)).await;
    let ids: Vec<String> = actions
        .iter()
        .map(|action| action.json()["id"].as_str().unwrap().to_string())
        .collect();
    let distinct: HashSet<&String> = ids.iter().collect();
    assert_eq!(ids.len(), 30, "one reminder per cart: {ids:?}");
    assert_eq!(distinct.len(), 30, "none twice");
}
