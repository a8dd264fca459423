//! Second review of `kairos run` recovery: cases the fixes of 1ed615d..4f6483f
//! left open (each failed on 4f6483f and passes since 303cce2). The doc
//! comment of each test describes the defect as it was.

mod nats;

use nats::{
    client, count_action_ids, pipeline_text, publish_call_on, read_actions, read_all_actions,
    sign_up, write_file, Kairos, NatsServer, CART_TRIGGER, UNCAPPED_POLICY, WELCOME_TRIGGER,
};
use std::time::Duration;

const EVENTS: &str = "kairos.events.0";

/// The pipeline of these tests: a welcome on every sign-up.
fn welcome_pipeline(dir: &std::path::Path) -> String {
    write_file(
        dir,
        "live.toml",
        &pipeline_text("live", UNCAPPED_POLICY, WELCOME_TRIGGER),
    )
}

/// Run 1: `kairos run` with `args` welcomes `u1`; returns it and a client.
async fn first_run_welcomes_u1(
    server: &NatsServer,
    dir: &std::path::Path,
    args: &[&str],
) -> (Kairos, async_nats::Client) {
    let run1 = Kairos::start_in(server, dir, args);
    let client = client(server).await;
    publish_call_on(&client, EVENTS, &sign_up("u1", "m1")).await;
    let first = read_actions(&client, "kairos.actions.>", 1, Duration::from_secs(10)).await;
    assert_eq!(first.len(), 1);
    (run1, client)
}

/// Run 1 publishes actions after its last snapshot and is killed. Run 2
/// starts after the duplicate window has passed, reads those ids back into
/// its skip set, and, still replaying (intake throttled to ~4 events/s by
/// `--max-ack-pending 1`, acknowledged every 250 ms), writes a snapshot
/// (here its SIGTERM snapshot; a periodic one does the same) whose
/// `actions_sequence` is the actions stream's end: past run 1's ids it has
/// not replayed yet. Run 3 resumes from that snapshot with an empty skip
/// set and publishes them a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_taken_during_the_replay_forgets_ids_not_yet_replayed() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let pipeline = welcome_pipeline(dir.path());
    const N: usize = 40;
    // Run 1: no periodic snapshot during the test (only the first one,
    // before any event).
    let mut run1 = Kairos::start_in(
        &server,
        dir.path(),
        &[
            "--pipeline",
            &pipeline,
            "--snapshot-every",
            "5m",
            "--duplicate-window",
            "10m",
        ],
    );
    let client = client(&server).await;
    for i in 0..N {
        publish_call_on(
            &client,
            EVENTS,
            &sign_up(&format!("u{i}"), &format!("m{i}")),
        )
        .await;
    }
    let first = read_actions(&client, "kairos.actions.>", N, Duration::from_secs(20)).await;
    assert_eq!(first.len(), N);
    tokio::task::block_in_place(|| run1.kill9());
    drop(run1);

    // Run 2: the window shrinks to 2 s (the server purges older ids at
    // once), and run 1's ids are older than that.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let log2 = dir.path().join("kairos2.log");
    let mut run2 = Kairos::start(
        &server,
        &dir.path().join("data"),
        &log2,
        &[
            "--pipeline",
            &pipeline,
            "--snapshot-every",
            "1s",
            "--duplicate-window",
            "2s",
            "--max-ack-pending",
            "1",
        ],
    );
    // Early in the replay (a few of N events applied).
    tokio::time::sleep(Duration::from_millis(600)).await;
    let status = tokio::task::block_in_place(|| run2.terminate());
    assert!(status.success(), "{}", run2.log_text());

    // Run 3: resumes from run 2's snapshot.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let log3 = dir.path().join("kairos3.log");
    let _run3 = Kairos::start(
        &server,
        &dir.path().join("data"),
        &log3,
        &[
            "--pipeline",
            &pipeline,
            "--snapshot-every",
            "1s",
            "--duplicate-window",
            "2s",
        ],
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let counts = count_action_ids(&read_all_actions(&client, Duration::from_secs(2)).await);
    assert_eq!(counts.len(), N, "{counts:?}");
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "{} action ids stored twice: {twice:?}\nrun 2 log:\n{}\nrun 3 log:\n{}",
        twice.len(),
        std::fs::read_to_string(&log2).unwrap_or_default(),
        std::fs::read_to_string(&log3).unwrap_or_default()
    );
}

/// The actions stream is purged (or its messages expire by
/// `--actions-max-age`) while kairos is down after a crash: the read-back
/// of the ids stored after the snapshot waits for messages that are no
/// longer there (`last_sequence` is kept by a purge), fails after 10 s,
/// and `kairos run` exits, on every start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purged_actions_stream_after_a_crash_does_not_stop_the_start() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let pipeline = welcome_pipeline(dir.path());
    let args = ["--pipeline", pipeline.as_str(), "--snapshot-every", "5m"];
    let (mut run1, client) = first_run_welcomes_u1(&server, dir.path(), &args).await;
    tokio::task::block_in_place(|| run1.kill9());
    drop(run1);
    let js = async_nats::jetstream::new(client.clone());
    js.get_stream("KAIROS_ACTIONS")
        .await
        .unwrap()
        .purge()
        .await
        .unwrap();
    // Kairos::start panicked here ("exited ... before it was ready").
    let _run2 = tokio::task::block_in_place(|| {
        Kairos::start(
            &server,
            &dir.path().join("data"),
            &dir.path().join("kairos2.log"),
            &args,
        )
    });
}

/// The documented upgrade flow: kairos is stopped (SIGTERM, a final
/// snapshot covering everything), producers go on publishing, and the new
/// build is started with `--rebuild-state`. `mute_through` is the events
/// stream's end at that start, so the decisions of the events published
/// while kairos was down are muted: never published by anyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_state_publishes_the_actions_of_events_the_previous_run_never_saw() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let pipeline = welcome_pipeline(dir.path());
    let args = ["--pipeline", pipeline.as_str(), "--snapshot-every", "5m"];
    let (mut run1, client) = first_run_welcomes_u1(&server, dir.path(), &args).await;
    assert!(tokio::task::block_in_place(|| run1.terminate()).success());
    drop(run1);
    // While kairos is down.
    publish_call_on(&client, EVENTS, &sign_up("u2", "m2")).await;
    let mut rebuild: Vec<&str> = args.to_vec();
    rebuild.push("--rebuild-state");
    let _run2 = tokio::task::block_in_place(|| {
        Kairos::start(
            &server,
            &dir.path().join("data"),
            &dir.path().join("kairos2.log"),
            &rebuild,
        )
    });
    let actions = read_actions(&client, "kairos.actions.>", 2, Duration::from_secs(5)).await;
    assert_eq!(
        actions.len(),
        2,
        "u2 signed up while kairos was down; its welcome was never published"
    );
}

/// The snapshot holds a pending timer; the events after it are no longer
/// in the stream at the next start (purged here; expiry by
/// `--events-max-age` during an outage, or `rmm` of the tail, do the
/// same). `tick.caught_up` is computed before the subscription moves
/// `next_sequence` past them (`next_sequence > replay_until` is false)
/// and only a delivered message can set it: with no traffic, no tick is
/// sent and the reminder never fires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_fire_after_a_start_whose_backlog_is_no_longer_in_the_stream() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let pipeline = write_file(
        dir.path(),
        "live.toml",
        &pipeline_text(
            "live",
            UNCAPPED_POLICY,
            &format!("{WELCOME_TRIGGER}{CART_TRIGGER}"),
        ),
    );
    let args = ["--pipeline", pipeline.as_str(), "--snapshot-every", "5m"];
    let mut run1 = Kairos::start_in(&server, dir.path(), &args);
    let client = client(&server).await;
    let added = nats::call(
        "u1",
        "Product Added",
        "m1",
        serde_json::json!({"cart_id": "c1", "product_id": "p1", "price": 10}),
    );
    publish_call_on(&client, EVENTS, &added).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The final snapshot holds the reminder's timer (due in ~1.7 s).
    assert!(tokio::task::block_in_place(|| run1.terminate()).success());
    drop(run1);
    // While down: one more event, then the stream is purged.
    publish_call_on(&client, EVENTS, &sign_up("u2", "m2")).await;
    let js = async_nats::jetstream::new(client.clone());
    js.get_stream("KAIROS_EVENTS")
        .await
        .unwrap()
        .purge()
        .await
        .unwrap();
    let log2 = dir.path().join("kairos2.log");
    let _run2 = tokio::task::block_in_place(|| {
        Kairos::start(&server, &dir.path().join("data"), &log2, &args)
    });
    let reminders = read_actions(&client, "kairos.actions.push", 1, Duration::from_secs(6)).await;
    assert_eq!(
        reminders.len(),
        1,
        "the reminder due ~2 s after the add did not fire within 6 s of the restart; log:\n{}",
        std::fs::read_to_string(&log2).unwrap_or_default()
    );
}
