//! `kairos run` and `kairos publish` against the least-privilege accounts of
//! `deploy/nats/kairos.conf`, with their development passwords: the engine
//! can do its work with the engine user's permissions, a publisher can
//! publish events and nothing more, an action service can read actions.

mod nats;

use nats::{
    kairos_publish, pipeline_text, read_actions, write_file, Kairos, NatsServer,
    DEFAULT_CAPS_POLICY, WELCOME_TRIGGER,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The publisher's login in `deploy/nats/kairos.conf`.
const PUBLISHER: [&str; 4] = ["--user", "publisher", "--password", "dev-publisher-pw"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_can_do_its_work_with_its_own_permissions_and_no_more() {
    let server = NatsServer::start_with_config(&repo().join("deploy/nats/kairos.conf"));
    let dir = tempfile::tempdir().unwrap();
    let pipeline = write_file(
        dir.path(),
        "secured.toml",
        &pipeline_text("secured", DEFAULT_CAPS_POLICY, WELCOME_TRIGGER),
    );
    let mut kairos = Kairos::start_in(
        &server,
        dir.path(),
        &[
            "--pipeline",
            &pipeline,
            "--user",
            "engine",
            "--password",
            "dev-engine-pw",
        ],
    );

    let published = kairos_publish(
        dir.path(),
        &server.url(),
        &PUBLISHER,
        r#"{"type":"track","event":"Signed Up","userId":"u1","messageId":"m1","timestamp":"2026-11-23T10:00:00Z"}
"#,
    );
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
    let read = read_actions(&actions, "kairos.actions.email", 1, Duration::from_secs(10)).await;
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].json()["data"]["trigger"], "welcome");

    // A restart reads back what it published since its snapshot (to leave
    // it out of the replay) and resumes, all with the engine's permissions.
    tokio::task::block_in_place(|| kairos.kill_and_restart());
    let again = kairos_publish(
        dir.path(),
        &server.url(),
        &PUBLISHER,
        r#"{"type":"track","event":"Signed Up","userId":"u2","messageId":"m2","timestamp":"2026-11-23T10:01:00Z"}
"#,
    );
    assert!(again.status.success());
    let read = read_actions(&actions, "kairos.actions.email", 2, Duration::from_secs(10)).await;
    assert_eq!(
        read.len(),
        2,
        "one welcome each, none twice; log:\n{}",
        kairos.log_text()
    );

    // The publisher sends catalog changes; the engine follows them into its
    // item index with its own permissions.
    let catalog = write_file(
        dir.path(),
        "catalog.jsonl",
        "{\"id\":\"p1\",\"title\":\"Oolong tea\",\"category\":\"tea/oolong\",\"price\":9.9}\n",
    );
    let url = server.url();
    let mut args = vec!["catalog", "publish", "--nats", &url];
    args.extend(PUBLISHER);
    args.push(&catalog);
    let published = std::process::Command::new(env!("CARGO_BIN_EXE_kairos"))
        .args(&args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&published.stderr);
    assert!(published.status.success(), "{stderr}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !kairos.metrics().contains("kairos_catalog_items 1") {
        assert!(
            std::time::Instant::now() < deadline,
            "the catalog change was not applied; log:\n{}",
            kairos.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // An operator asks the engine for its report; the engine answers on
    // the operator's inbox (a reply to a request it received).
    let mut args = vec!["report", "--json", "--nats", &url];
    args.extend(["--user", "admin", "--password", "dev-admin-pw"]);
    let reported = std::process::Command::new(env!("CARGO_BIN_EXE_kairos"))
        .args(&args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&reported.stderr);
    assert!(reported.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&reported.stdout).unwrap();
    // Counted once each across the restart (the counts are in snapshots).
    assert_eq!(report["triggers"]["welcome"]["sent"], 2, "{report}");

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

/// The operator's login in `deploy/nats/kairos.conf`.
const ADMIN: [&str; 4] = ["--user", "admin", "--password", "dev-admin-pw"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_inspects_and_forgets_a_customer_with_the_engines_permissions() {
    let server = NatsServer::start_with_config(&repo().join("deploy/nats/kairos.conf"));
    let dir = tempfile::tempdir().unwrap();
    let pipeline = write_file(
        dir.path(),
        "secured.toml",
        &pipeline_text("secured", DEFAULT_CAPS_POLICY, WELCOME_TRIGGER),
    );
    let _kairos = Kairos::start_in(
        &server,
        dir.path(),
        &[
            "--pipeline",
            &pipeline,
            "--user",
            "engine",
            "--password",
            "dev-engine-pw",
        ],
    );
    let stamp = nats::now_rfc3339();
    let published = kairos_publish(
        dir.path(),
        &server.url(),
        &PUBLISHER,
        &format!(
            "{{\"type\":\"track\",\"event\":\"Signed Up\",\"userId\":\"u1\",\"messageId\":\"m1\",\"timestamp\":\"{stamp}\"}}\n"
        ),
    );
    assert!(published.status.success());
    let url = server.url();
    let kairos = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_kairos"))
            .args(args)
            .args(["--nats", &url])
            .args(ADMIN)
            .output()
            .unwrap()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let inspected = kairos(&["inspect", "u1", "--json"]);
        let stderr = String::from_utf8_lossy(&inspected.stderr);
        assert!(inspected.status.success(), "{stderr}");
        let answer: serde_json::Value = serde_json::from_slice(&inspected.stdout).unwrap();
        if answer["found"] == true {
            assert_eq!(
                answer["state"]["decisions"][0]["outcome"], "sent",
                "{answer}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "u1 never known: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The engine publishes the erasure event to u1's partition itself.
    let forgotten = kairos(&["forget", "u1"]);
    let stderr = String::from_utf8_lossy(&forgotten.stderr);
    assert!(forgotten.status.success(), "{stderr}");
    let inspected = kairos(&["inspect", "u1", "--json"]);
    let answer: serde_json::Value = serde_json::from_slice(&inspected.stdout).unwrap();
    assert_eq!(answer["found"], false, "{answer}");
}
