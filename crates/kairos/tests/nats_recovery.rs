//! `kairos run` where recovery gets hard: an event as large as NATS takes,
//! a restart after JetStream's duplicate window has passed, a stream
//! re-created under a snapshot, a changed pipeline, and latency metrics
//! recorded as actions are stored. (Found by review; each failed before
//! its fix.)

mod nats;

use nats::{read_stream, Kairos, NatsServer, Stored};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const PIPELINE: &str = r#"
name = "live"

[policy]
holdout_percent = 0
consent_required = []
quiet_hours = false
weekly_marketing_cap = 100000
daily_caps = { targeted = 100000, content = 100000 }
arbitration_window = "0s"

[[trigger]]
id = "welcome"
kind = "count"
event = "Signed Up"
window = { tumbling = "1d" }
channel = "email"
"#;

fn now() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    kairos_model::Timestamp(ms).to_rfc3339()
}

fn sign_up(user: &str, message_id: &str) -> Value {
    json!({"type": "track", "event": "Signed Up", "userId": user, "messageId": message_id, "timestamp": now()})
}

fn write_pipeline(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("live.toml");
    std::fs::write(&path, text).unwrap();
    path
}

async fn client(server: &NatsServer) -> async_nats::Client {
    async_nats::connect(server.url()).await.expect("connect")
}

async fn publish_raw(client: &async_nats::Client, subject: &str, id: &str, payload: Vec<u8>) {
    let js = async_nats::jetstream::new(client.clone());
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", id);
    js.publish_with_headers(subject.to_string(), headers, payload.into())
        .await
        .expect("publish")
        .await
        .expect("stored");
}

async fn publish_call(client: &async_nats::Client, call: &Value) {
    let id = call["messageId"].as_str().unwrap();
    publish_raw(client, "kairos.events.0", id, call.to_string().into_bytes()).await;
}

async fn action_counts(client: &async_nats::Client) -> BTreeMap<String, usize> {
    let all = read_stream(
        client,
        "KAIROS_ACTIONS",
        "kairos.actions.>",
        Duration::from_secs(2),
        |_| false,
    )
    .await;
    let mut counts = BTreeMap::new();
    for action in &all {
        *counts
            .entry(action.json()["id"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    counts
}

fn last_lines(text: &str) -> String {
    text.lines().rev().take(8).collect::<Vec<_>>().join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_as_large_as_nats_takes_goes_to_the_dlq_truncated_and_the_stream_goes_on() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let pipeline = write_pipeline(dir.path(), PIPELINE);
    let kairos = Kairos::start(
        &server,
        &dir.path().join("data"),
        &dir.path().join("kairos.log"),
        &[
            "--pipeline",
            pipeline.to_str().unwrap(),
            "--snapshot-every",
            "1s",
        ],
    );
    let client = client(&server).await;
    // Just under NATS' 1 MiB: stored in the events stream; its DLQ copy,
    // with kairos' headers added, would not be.
    let big = format!(
        r#"{{"type":"track","event":"Signed Up","userId":"u2","messageId":"big","timestamp":"{}","properties":{{"pad":"{}"}}}}"#,
        now(),
        "x".repeat(1_048_576 - 300)
    );
    let size = big.len();
    publish_raw(&client, "kairos.events.0", "big", big.into_bytes()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    publish_call(&client, &sign_up("u1", "after-big")).await;
    let welcomes = read_stream(
        &client,
        "KAIROS_ACTIONS",
        "kairos.actions.email",
        Duration::from_secs(10),
        |read| !read.is_empty(),
    )
    .await;
    let dlq = read_stream(
        &client,
        "KAIROS_DLQ",
        "kairos.dlq.>",
        Duration::from_secs(5),
        |read| !read.is_empty(),
    )
    .await;
    assert_eq!(
        welcomes.len(),
        1,
        "the event after it was processed; log:\n{}",
        last_lines(&kairos.log_text())
    );
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].header("Kairos-Reason"), Some("too_large"));
    assert_eq!(
        dlq[0].header("Kairos-Truncated-From"),
        Some(size.to_string().as_str())
    );
    assert!(dlq[0].payload.starts_with(br#"{"type":"track""#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_after_jetstreams_duplicate_window_has_passed_publishes_nothing_twice() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let pipeline = write_pipeline(dir.path(), PIPELINE);
    let mut kairos = Kairos::start(
        &server,
        &dir.path().join("data"),
        &dir.path().join("kairos.log"),
        &[
            "--pipeline",
            pipeline.to_str().unwrap(),
            "--snapshot-every",
            "1500ms",
            "--duplicate-window",
            "2s",
        ],
    );
    let client = client(&server).await;
    publish_call(&client, &sign_up("u1", "m1")).await;
    let first = read_stream(
        &client,
        "KAIROS_ACTIONS",
        "kairos.actions.>",
        Duration::from_secs(5),
        |read| !read.is_empty(),
    )
    .await;
    assert_eq!(first.len(), 1);
    // Killed before its next snapshot, down for longer than the window:
    // JetStream no longer recognises the replayed action's id.
    tokio::task::block_in_place(|| kairos.kill9());
    tokio::time::sleep(Duration::from_secs(3)).await;
    tokio::task::block_in_place(|| kairos.kill_and_restart());
    publish_call(&client, &sign_up("u2", "m2")).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let counts = action_counts(&client).await;
    assert_eq!(counts.len(), 2, "{counts:?}");
    assert!(
        counts.values().all(|n| *n == 1),
        "an action id stored twice: {counts:?}; log:\n{}",
        kairos.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_is_recorded_when_the_action_is_stored_not_at_the_next_snapshot() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let pipeline = write_pipeline(dir.path(), PIPELINE);
    let kairos = Kairos::start(
        &server,
        &dir.path().join("data"),
        &dir.path().join("kairos.log"),
        &[
            "--pipeline",
            pipeline.to_str().unwrap(),
            "--snapshot-every",
            "5m",
        ],
    );
    let client = client(&server).await;
    publish_call(&client, &sign_up("u1", "m1")).await;
    let read: Vec<Stored> = read_stream(
        &client,
        "KAIROS_ACTIONS",
        "kairos.actions.email",
        Duration::from_secs(5),
        |read| !read.is_empty(),
    )
    .await;
    assert_eq!(read.len(), 1);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let metrics = kairos.metrics();
    assert!(
        metrics.contains("kairos_event_to_action_seconds_count 1"),
        "{metrics}"
    );
    assert!(metrics.contains("kairos_actions_in_flight 0"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_of_a_stream_since_re_created_is_refused_with_what_to_do() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let pipeline = write_pipeline(dir.path(), PIPELINE);
    let (data, log) = (dir.path().join("data"), dir.path().join("kairos.log"));
    let args = [
        "--pipeline",
        pipeline.to_str().unwrap(),
        "--snapshot-every",
        "5m",
    ];
    let mut kairos = Kairos::start(&server, &data, &log, &args);
    let client = client(&server).await;
    for n in 0..3 {
        publish_call(&client, &sign_up(&format!("u{n}"), &format!("m{n}"))).await;
    }
    read_stream(
        &client,
        "KAIROS_ACTIONS",
        "kairos.actions.email",
        Duration::from_secs(5),
        |read| read.len() >= 3,
    )
    .await;
    assert!(tokio::task::block_in_place(|| kairos.terminate()).success());
    let js = async_nats::jetstream::new(client.clone());
    js.delete_stream("KAIROS_EVENTS").await.expect("deleted");
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_kairos"))
            .args(["run", "--nats", &server.url(), "--data-dir"])
            .arg(&data)
            .args(args)
            .args(extra)
            .output()
            .unwrap()
    };
    let refused = tokio::task::block_in_place(|| run(&[]));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("not the stream the snapshot was taken from")
            && stderr.contains("--reset-state"),
        "{stderr}"
    );
    // As it says: --reset-state starts again, and new events are taken.
    let _again = tokio::task::block_in_place(|| {
        Kairos::start(
            &server,
            &data,
            &log,
            &[&args[..], &["--reset-state"]].concat(),
        )
    });
    publish_call(&client, &sign_up("v1", "v1")).await;
    let all = read_stream(
        &client,
        "KAIROS_ACTIONS",
        "kairos.actions.email",
        Duration::from_secs(5),
        |read| read.len() >= 4,
    )
    .await;
    assert_eq!(all.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_pipeline_is_refused_and_rebuild_state_replays_history_without_publishing_it() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let pipeline = write_pipeline(dir.path(), PIPELINE);
    let (data, log) = (dir.path().join("data"), dir.path().join("kairos.log"));
    let mut kairos = Kairos::start(
        &server,
        &data,
        &log,
        &["--pipeline", pipeline.to_str().unwrap()],
    );
    let client = client(&server).await;
    publish_call(&client, &sign_up("u1", "m1")).await;
    read_stream(
        &client,
        "KAIROS_ACTIONS",
        "kairos.actions.email",
        Duration::from_secs(5),
        |read| !read.is_empty(),
    )
    .await;
    assert!(tokio::task::block_in_place(|| kairos.terminate()).success());
    // The welcome now goes by push.
    let changed = write_pipeline(
        dir.path(),
        &PIPELINE.replace("channel = \"email\"", "channel = \"push\""),
    );
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_kairos"))
        .args([
            "run",
            "--nats",
            &server.url(),
            "--pipeline",
            changed.to_str().unwrap(),
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--rebuild-state"), "{stderr}");
    let _rebuilt = tokio::task::block_in_place(|| {
        Kairos::start(
            &server,
            &data,
            &log,
            &["--pipeline", changed.to_str().unwrap(), "--rebuild-state"],
        )
    });
    // u1's sign-up is history: in the state (a second sign-up the same day
    // does not welcome again), not published again.
    publish_call(&client, &sign_up("u1", "m1-again")).await;
    publish_call(&client, &sign_up("u2", "m2")).await;
    let push = read_stream(
        &client,
        "KAIROS_ACTIONS",
        "kairos.actions.push",
        Duration::from_secs(5),
        |read| !read.is_empty(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let counts = action_counts(&client).await;
    assert_eq!(push.len(), 1);
    assert_eq!(push[0].json()["subject"], "u2");
    assert_eq!(
        counts.len(),
        2,
        "u1's email welcome, u2's push welcome: {counts:?}"
    );
}
