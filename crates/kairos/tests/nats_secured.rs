//! `kairos run` and `kairos publish` against the least-privilege accounts of
//! `deploy/nats/kairos.conf`, with their development passwords: the engine
//! can do its work with the engine user's permissions, a publisher can
//! publish events and nothing more, an action service can read actions.

mod nats;

use nats::{read_stream, Kairos, NatsServer};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

const PIPELINE: &str = r#"
name = "secured"
[policy]
holdout_percent = 0
consent_required = []
quiet_hours = false
arbitration_window = "0s"

[[trigger]]
id = "welcome"
kind = "count"
event = "Signed Up"
window = { tumbling = "1d" }
channel = "email"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_can_do_its_work_with_its_own_permissions_and_no_more() {
    let server = NatsServer::start_with_config(&repo().join("deploy/nats/kairos.conf"));
    let dir = tempfile::tempdir().unwrap();
    let pipeline = dir.path().join("secured.toml");
    std::fs::write(&pipeline, PIPELINE).unwrap();
    let mut kairos = Kairos::start(
        &server,
        &dir.path().join("data"),
        &dir.path().join("kairos.log"),
        &[
            "--pipeline",
            pipeline.to_str().unwrap(),
            "--user",
            "engine",
            "--password",
            "dev-engine-pw",
        ],
    );

    let events = dir.path().join("events.jsonl");
    std::fs::write(
        &events,
        r#"{"type":"track","event":"Signed Up","userId":"u1","messageId":"m1","timestamp":"2026-11-23T10:00:00Z"}
"#,
    )
    .unwrap();
    let published = Command::new(env!("CARGO_BIN_EXE_kairos"))
        .args([
            "publish",
            "--nats",
            &server.url(),
            "--user",
            "publisher",
            "--password",
            "dev-publisher-pw",
        ])
        .arg(&events)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&published.stderr);
    assert!(published.status.success(), "{stderr}");
    assert!(
        stderr.contains("published 1 events, skipped 0 lines"),
        "{stderr}"
    );

    let actions = async_nats::ConnectOptions::with_user_and_password(
        "actions".into(),
        "dev-actions-pw".into(),
    )
    .custom_inbox_prefix("_INBOX_actions")
    .connect(server.url())
    .await
    .unwrap();
    let read = read_stream(
        &actions,
        "KAIROS_ACTIONS",
        "kairos.actions.email",
        Duration::from_secs(10),
        |read| !read.is_empty(),
    )
    .await;
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].json()["data"]["trigger"], "welcome");

    // A restart reads back what it published since its snapshot (to leave
    // it out of the replay) and resumes, all with the engine's permissions.
    tokio::task::block_in_place(|| kairos.kill_and_restart());
    std::fs::write(
        &events,
        r#"{"type":"track","event":"Signed Up","userId":"u2","messageId":"m2","timestamp":"2026-11-23T10:01:00Z"}
"#,
    )
    .unwrap();
    let again = Command::new(env!("CARGO_BIN_EXE_kairos"))
        .args([
            "publish",
            "--nats",
            &server.url(),
            "--user",
            "publisher",
            "--password",
            "dev-publisher-pw",
        ])
        .arg(&events)
        .output()
        .unwrap();
    assert!(again.status.success());
    let read = read_stream(
        &actions,
        "KAIROS_ACTIONS",
        "kairos.actions.email",
        Duration::from_secs(10),
        |read| read.len() >= 2,
    )
    .await;
    assert_eq!(
        read.len(),
        2,
        "one welcome each, none twice; log:\n{}",
        kairos.log_text()
    );

    // A publisher may not move the engine's clock or forge actions.
    let publisher = async_nats::ConnectOptions::with_user_and_password(
        "publisher".into(),
        "dev-publisher-pw".into(),
    )
    .connect(server.url())
    .await
    .unwrap();
    let js = async_nats::jetstream::new(publisher);
    for subject in ["kairos.events.tick", "kairos.actions.push"] {
        let stored = async {
            js.publish(subject, "{}".into()).await?.await?;
            anyhow::Ok(())
        };
        let outcome = tokio::time::timeout(Duration::from_secs(3), stored).await;
        assert!(
            !matches!(outcome, Ok(Ok(()))),
            "the publisher could publish to {subject}"
        );
    }
}
