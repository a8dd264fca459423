//! `kairos run` where recovery gets hard: an event as large as NATS takes,
//! a restart after JetStream's duplicate window has passed, a stream
//! re-created under a snapshot, a changed pipeline, and latency metrics
//! recorded as actions are stored. (Found by review; each failed before
//! its fix.)

mod nats;

use nats::{
    client, count_action_ids, kairos_run_once, now_rfc3339, pipeline_text, publish_call_on,
    publish_raw, read_actions, read_all_actions, read_stream, sign_up, write_file, Kairos,
    NatsServer, Stored, UNCAPPED_POLICY, WELCOME_TRIGGER,
};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// Every event of these tests goes to one partition.
const EVENTS: &str = "kairos.events.0";

fn welcome_pipeline() -> String {
    pipeline_text("live", UNCAPPED_POLICY, WELCOME_TRIGGER)
}

fn write_pipeline(dir: &Path, text: &str) -> String {
    write_file(dir, "live.toml", text)
}

async fn action_counts(client: &async_nats::Client) -> BTreeMap<String, usize> {
    count_action_ids(&read_all_actions(client, Duration::from_secs(2)).await)
}

fn last_lines(text: &str) -> String {
    text.lines().rev().take(8).collect::<Vec<_>>().join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_as_large_as_nats_takes_goes_to_the_dlq_truncated_and_the_stream_goes_on() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let pipeline = write_pipeline(dir.path(), &welcome_pipeline());
    let kairos = Kairos::start_in(
        &server,
        dir.path(),
        &["--pipeline", &pipeline, "--snapshot-every", "1s"],
    );
    let client = client(&server).await;
    // Just under NATS' 1 MiB: stored in the events stream; its DLQ copy,
    // with kairos' headers added, would not be.
    let big = format!(
        r#"{{"type":"track","event":"Signed Up","userId":"u2","messageId":"big","timestamp":"{}","properties":{{"pad":"{}"}}}}"#,
        now_rfc3339(),
        "x".repeat(1_048_576 - 300)
    );
    let size = big.len();
    publish_raw(&client, EVENTS, "big", big.into_bytes()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    publish_call_on(&client, EVENTS, &sign_up("u1", "after-big")).await;
    let welcomes = read_actions(&client, "kairos.actions.email", 1, Duration::from_secs(10)).await;
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
    let pipeline = write_pipeline(dir.path(), &welcome_pipeline());
    let mut kairos = Kairos::start_in(
        &server,
        dir.path(),
        &[
            "--pipeline",
            &pipeline,
            "--snapshot-every",
            "1500ms",
            "--duplicate-window",
            "2s",
        ],
    );
    let client = client(&server).await;
    publish_call_on(&client, EVENTS, &sign_up("u1", "m1")).await;
    let first = read_actions(&client, "kairos.actions.>", 1, Duration::from_secs(5)).await;
    assert_eq!(first.len(), 1);
    // Killed before its next snapshot, down for longer than the window:
    // JetStream no longer recognises the replayed action's id.
    tokio::task::block_in_place(|| kairos.kill9());
    tokio::time::sleep(Duration::from_secs(3)).await;
    tokio::task::block_in_place(|| kairos.kill_and_restart());
    publish_call_on(&client, EVENTS, &sign_up("u2", "m2")).await;
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
    let pipeline = write_pipeline(dir.path(), &welcome_pipeline());
    let kairos = Kairos::start_in(
        &server,
        dir.path(),
        &["--pipeline", &pipeline, "--snapshot-every", "5m"],
    );
    let client = client(&server).await;
    publish_call_on(&client, EVENTS, &sign_up("u1", "m1")).await;
    let read: Vec<Stored> =
        read_actions(&client, "kairos.actions.email", 1, Duration::from_secs(5)).await;
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
    let pipeline = write_pipeline(dir.path(), &welcome_pipeline());
    let (data, log) = (dir.path().join("data"), dir.path().join("kairos.log"));
    let args = ["--pipeline", &pipeline, "--snapshot-every", "5m"];
    let mut kairos = Kairos::start(&server, &data, &log, &args);
    let client = client(&server).await;
    for n in 0..3 {
        publish_call_on(
            &client,
            EVENTS,
            &sign_up(&format!("u{n}"), &format!("m{n}")),
        )
        .await;
    }
    read_actions(&client, "kairos.actions.email", 3, Duration::from_secs(5)).await;
    assert!(tokio::task::block_in_place(|| kairos.terminate()).success());
    let js = async_nats::jetstream::new(client.clone());
    js.delete_stream("KAIROS_EVENTS").await.expect("deleted");
    let refused = tokio::task::block_in_place(|| kairos_run_once(&server.url(), &data, &args));
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
    publish_call_on(&client, EVENTS, &sign_up("v1", "v1")).await;
    let all = read_actions(&client, "kairos.actions.email", 4, Duration::from_secs(5)).await;
    assert_eq!(all.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_file_runs_once_pushed_and_rebuild_state_replays_history_without_publishing_it() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let pipeline = write_pipeline(dir.path(), &welcome_pipeline());
    let (data, log) = (dir.path().join("data"), dir.path().join("kairos.log"));
    let mut kairos = Kairos::start(&server, &data, &log, &["--pipeline", &pipeline]);
    let client = client(&server).await;
    publish_call_on(&client, EVENTS, &sign_up("u1", "m1")).await;
    read_actions(&client, "kairos.actions.email", 1, Duration::from_secs(5)).await;
    assert!(tokio::task::block_in_place(|| kairos.terminate()).success());
    // The welcome now goes by push: a restart with the changed file keeps
    // running the stored version (and says so) until the file is pushed.
    let changed = write_pipeline(
        dir.path(),
        &welcome_pipeline().replace("channel = \"email\"", "channel = \"push\""),
    );
    let mut kairos = tokio::task::block_in_place(|| {
        Kairos::start(&server, &data, &log, &["--pipeline", &changed])
    });
    assert!(kairos.log_text().contains("which differs from the file"));
    publish_call_on(&client, EVENTS, &sign_up("u2", "m2")).await;
    read_actions(&client, "kairos.actions.email", 2, Duration::from_secs(5)).await;
    let url = server.url();
    let pushed = std::process::Command::new(env!("CARGO_BIN_EXE_kairos"))
        .args(["pipeline", "push", "--nats", &url, &changed])
        .output()
        .unwrap();
    assert!(
        pushed.status.success(),
        "{}",
        String::from_utf8_lossy(&pushed.stderr)
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !kairos.metrics().contains("\nkairos_pipeline_revision 2\n") {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            kairos.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    publish_call_on(&client, EVENTS, &sign_up("u3", "m3")).await;
    read_actions(&client, "kairos.actions.push", 1, Duration::from_secs(5)).await;
    assert!(tokio::task::block_in_place(|| kairos.terminate()).success());

    let _rebuilt = tokio::task::block_in_place(|| {
        Kairos::start(
            &server,
            &data,
            &log,
            &["--pipeline", &changed, "--rebuild-state"],
        )
    });
    // u1's sign-up is history: in the state (a second sign-up the same day
    // does not welcome again), not published again.
    publish_call_on(&client, EVENTS, &sign_up("u1", "m1-again")).await;
    publish_call_on(&client, EVENTS, &sign_up("u4", "m4")).await;
    let push = read_actions(&client, "kairos.actions.push", 2, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let counts = action_counts(&client).await;
    assert_eq!(push.len(), 2);
    assert_eq!(push[1].json()["subject"], "u4");
    assert_eq!(
        counts.len(),
        4,
        "u1's and u2's email welcomes, u3's and u4's by push: {counts:?}"
    );
}
