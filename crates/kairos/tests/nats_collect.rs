//! `kairos collect`: Segment's HTTP Tracking API in front of the events
//! stream, against a real nats-server and a real `kairos run`.

mod nats;

use nats::*;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const KEYS: &str = "[[key]]\nwrite_key = \"wk_web\"\nsource = \"web\"\n\n[[key]]\nwrite_key = \"wk_slow\"\nsource = \"kiosk\"\nrate_per_second = 2\n";

/// `kairos collect` on a free port, its admin endpoints on another; killed
/// on drop.
struct Collect {
    child: Child,
    port: u16,
    admin_port: u16,
}

impl Collect {
    fn start(server: &NatsServer, dir: &std::path::Path) -> Collect {
        let keys = write_file(dir, "keys.toml", KEYS);
        let (port, admin_port) = (free_port(), free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_kairos"))
            .args([
                "collect",
                "--nats",
                &server.url(),
                "--keys",
                &keys,
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--admin",
                &format!("127.0.0.1:{admin_port}"),
            ])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("collect.log")).unwrap())
            .spawn()
            .unwrap();
        assert!(
            port_open_within(port, Duration::from_secs(15)),
            "kairos collect is not listening"
        );
        Collect {
            child,
            port,
            admin_port,
        }
    }

    /// A request without a body (`GET`, `OPTIONS`).
    fn post_like(&self, method: &str, path: &str) -> (u16, String, serde_json::Value) {
        let (status, head, body) = http_request(self.port, method, path, &[], b"");
        let json = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
        (status, head, json)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn post(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String, serde_json::Value) {
        let (status, head, body) = http_request(self.port, "POST", path, headers, body);
        let json = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
        (status, head, json)
    }
}

impl Drop for Collect {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A nats-server, `kairos run` welcoming each sign-up by email, and `kairos
/// collect` in front of it.
fn welcome_setup() -> (NatsServer, tempfile::TempDir, Kairos, Collect) {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let pipeline = write_file(
        dir.path(),
        "p.toml",
        &pipeline_text("collect", UNCAPPED_POLICY, WELCOME_TRIGGER),
    );
    let kairos = Kairos::start_in(&server, dir.path(), &["--pipeline", &pipeline]);
    let collect = tokio::task::block_in_place(|| Collect::start(&server, dir.path()));
    (server, dir, kairos, collect)
}

/// `wk_web:` as HTTP Basic.
const WEB: (&str, &str) = ("Authorization", "Basic d2tfd2ViOg==");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_calls_become_events_and_actions_and_mistakes_get_answers_an_sdk_can_act_on() {
    let (server, dir, _kairos, collect) = welcome_setup();
    let client = client(&server).await;

    // One call, the key as Basic user name; the type from the path.
    let track =
        serde_json::json!({"event": "Signed Up", "userId": "u1", "timestamp": now_rfc3339()})
            .to_string();
    let (status, head, body) = collect.post(
        "/v1/track",
        &[WEB, ("Content-Type", "application/json")],
        track.as_bytes(),
    );
    assert_eq!(
        (status, &body),
        (200, &serde_json::json!({"success": true}))
    );
    assert!(
        head.to_lowercase()
            .contains("access-control-allow-origin: *"),
        "{head}"
    );
    // A gzip batch with the key in the body (as browser libraries send it):
    // the good calls are taken, the bad one named by its index.
    let batch = serde_json::json!({"writeKey": "wk_web", "sentAt": now_rfc3339(), "batch": [
        {"type": "track", "event": "Signed Up", "userId": "u2", "messageId": "b1", "timestamp": now_rfc3339()},
        {"type": "track", "event": "Signed Up", "messageId": "b2", "timestamp": now_rfc3339()},
        {"type": "track", "event": "Signed Up", "anonymousId": "d3", "messageId": "b3", "timestamp": now_rfc3339()}
    ]})
    .to_string();
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzip.write_all(batch.as_bytes()).unwrap();
    let gzipped = gzip.finish().unwrap();
    let (status, _, body) = collect.post("/v1/b", &[("Content-Encoding", "gzip")], &gzipped);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rejected"][0]["index"], 1, "{body}");
    assert_eq!(body["rejected"][0]["reason"], "missing_identity");
    let welcomes = read_actions(&client, "kairos.actions.email", 3, Duration::from_secs(10)).await;
    let mut users: Vec<String> = welcomes
        .iter()
        .map(|a| a.json()["subject"].as_str().unwrap().to_string())
        .collect();
    users.sort();
    assert_eq!(users, ["d3", "u1", "u2"]);
    // The bad call reached the DLQ through the engine, with its reason.
    let dlq = read_stream(
        &client,
        "KAIROS_DLQ",
        "kairos.dlq.>",
        Duration::from_secs(10),
        |read| !read.is_empty(),
    )
    .await;
    assert_eq!(dlq[0].header("Kairos-Reason"), Some("missing_identity"));

    // The scheme's name in any case.
    let (status, _, body) = collect.post(
        "/v1/track",
        &[("Authorization", "basic d2tfd2ViOg==")],
        track.as_bytes(),
    );
    assert_eq!(status, 200, "{body}");
    // What an SDK and a person are told.
    let answers = [
        (
            collect.post("/v1/track", &[], track.as_bytes()),
            401,
            "missing_write_key",
        ),
        (
            collect.post(
                "/v1/track",
                &[("Authorization", "Basic bm9wZTo=")],
                track.as_bytes(),
            ),
            401,
            "unknown_write_key",
        ),
        (
            collect.post("/v1/track", &[WEB], b"{not json"),
            400,
            "bad_json",
        ),
        (
            collect.post(
                "/v1/track",
                &[WEB, ("Content-Encoding", "br")],
                track.as_bytes(),
            ),
            415,
            "unsupported_encoding",
        ),
        (
            collect.post("/v1/track", &[WEB], br#"{"userId":"u1"}"#),
            400,
            "missing_event_name",
        ),
        (
            collect.post(
                "/v1/track",
                &[WEB],
                format!(
                    r#"{{"event":"A","userId":"u1","properties":{{"pad":"{}"}}}}"#,
                    "x".repeat(40_000)
                )
                .as_bytes(),
            ),
            413,
            "too_large",
        ),
    ];
    for ((status, _, body), expected_status, reason) in answers {
        assert_eq!(
            (status, body["reason"].as_str()),
            (expected_status, Some(reason)),
            "{body}"
        );
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("accepted")),
            "{body}"
        );
    }
    // A key's rate: two a second for the kiosk.
    let kiosk = ("Authorization", "Basic d2tfc2xvdzo=");
    let three = serde_json::json!({"batch": [
        {"type": "track", "event": "A", "userId": "k1"}, {"type": "track", "event": "A", "userId": "k2"}, {"type": "track", "event": "A", "userId": "k3"}
    ]})
    .to_string();
    // Three at once pass a full bucket and leave a debt: the next call
    // waits it off.
    let (status, _, body) = collect.post("/v1/batch", &[kiosk], three.as_bytes());
    assert_eq!(status, 200, "{body}");
    let (status, head, body) = collect.post("/v1/batch", &[kiosk], three.as_bytes());
    assert_eq!(
        (status, body["reason"].as_str()),
        (429, Some("rate_limited")),
        "{body}"
    );
    let head = head.to_lowercase();
    assert!(
        head.contains("retry-after: 2") || head.contains("retry-after: 1"),
        "{head}"
    );
    // The settings analytics.js and the mobile SDKs fetch at start name
    // this collector as their API host.
    let (status, _, settings) = collect.post_like("GET", "/v1/projects/wk_web/settings");
    assert_eq!(status, 200, "{settings}");
    assert_eq!(
        settings["integrations"]["Segment.io"],
        serde_json::json!({"apiKey": "wk_web", "apiHost": "127.0.0.1/v1", "protocol": "http"})
    );
    let (status, _, unknown) = collect.post_like("GET", "/v1/projects/nope/settings");
    assert_eq!(
        (status, unknown["reason"].as_str()),
        (404, Some("unknown_write_key"))
    );
    // Every collector metric the README names is exported, and no write
    // key is in the metrics or the log.
    let metrics = http_get(collect.admin_port, "/metrics")
        .expect("/metrics")
        .1;
    let documented = readme_metrics("kairos_collector_");
    assert!(documented.len() >= 4, "{documented:?}");
    assert_exported(&documented, &metrics);
    let log = std::fs::read_to_string(dir.path().join("collect.log")).unwrap();
    for text in [&metrics, &log] {
        assert!(
            !text.contains("wk_web") && !text.contains("wk_slow"),
            "{text}"
        );
    }
    // A browser's preflight, for analytics.js sending again (it adds
    // X-Retry-Count then).
    let (status, head, _) = http_request(
        collect.port,
        "OPTIONS",
        "/v1/t",
        &[
            ("Origin", "https://shop.example"),
            ("Access-Control-Request-Method", "POST"),
            (
                "Access-Control-Request-Headers",
                "authorization,content-type,x-retry-count",
            ),
        ],
        b"",
    );
    assert_eq!(status, 204);
    let head = head.to_lowercase();
    assert!(
        head.contains(
            "access-control-allow-headers: authorization, content-type, content-encoding, x-retry-count"
        ),
        "{head}"
    );
    // A 429's Retry-After is readable by the page's script.
    assert!(
        head.contains("access-control-expose-headers: retry-after"),
        "{head}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_nats_away_calls_get_503_and_a_retry_once_it_is_back_is_stored_once() {
    let (mut server, _dir, _kairos, collect) = welcome_setup();
    let call = serde_json::json!({"event": "Signed Up", "userId": "u9", "messageId": "m9", "timestamp": now_rfc3339()}).to_string();
    tokio::task::block_in_place(|| server.stop());
    let (status, _, body) =
        tokio::task::block_in_place(|| collect.post("/v1/track", &[WEB], call.as_bytes()));
    assert_eq!(
        (status, body["reason"].as_str()),
        (503, Some("unavailable")),
        "{body}"
    );
    tokio::task::block_in_place(|| server.start_again());
    // The SDK retries until it is answered 200.
    let mut answered = 0;
    for _ in 0..40 {
        let (status, _, _) =
            tokio::task::block_in_place(|| collect.post("/v1/track", &[WEB], call.as_bytes()));
        answered = status;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(answered, 200);
    let client = client(&server).await;
    let welcomes = read_actions(&client, "kairos.actions.email", 2, Duration::from_secs(10)).await;
    assert_eq!(welcomes.len(), 1, "one welcome: the event is stored once");
}

/// The events (not ticks) the events stream holds, read until `expected`
/// are read and a second more has brought no others.
async fn stored_events(client: &async_nats::Client, expected: usize) -> Vec<Stored> {
    let mut events = read_stream(
        client,
        "KAIROS_EVENTS",
        "kairos.events.>",
        Duration::from_secs(20),
        |read| {
            read.iter()
                .filter(|m| m.subject != "kairos.events.tick")
                .count()
                >= expected
        },
    )
    .await;
    events.extend(
        read_stream(
            client,
            "KAIROS_EVENTS",
            "kairos.events.>",
            Duration::from_secs(1),
            |_| false,
        )
        .await
        .into_iter()
        .skip(events.len()),
    );
    events.retain(|m| m.subject != "kairos.events.tick");
    events
}

/// `count` sign-ups of distinct users `{prefix}{n}` as one batch body.
fn sign_up_batch(prefix: &str, count: usize, pad: usize) -> String {
    let calls: Vec<serde_json::Value> = (0..count)
        .map(|n| {
            serde_json::json!({"type": "track", "event": "Signed Up", "userId": format!("{prefix}{n}"),
                "messageId": format!("{prefix}-m{n}"), "timestamp": now_rfc3339(),
                "properties": {"pad": "x".repeat(pad)}})
        })
        .collect();
    serde_json::json!({"batch": calls}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_batches_and_many_concurrent_clients_are_stored_once_each_and_oversize_ones_refused() {
    let (server, _dir, _kairos, collect) = welcome_setup();

    // The largest batch accepted: 2,500 events.
    let full = sign_up_batch("full", 2_500, 0);
    assert!(full.len() < 500 * 1024);
    let (status, _, body) =
        tokio::task::block_in_place(|| collect.post("/v1/batch", &[WEB], full.as_bytes()));
    assert_eq!(
        (status, &body),
        (200, &serde_json::json!({"success": true}))
    );
    // One more event, or 500 KB, is too much.
    for (batch, says) in [
        (sign_up_batch("over", 2_501, 0), "2501 events"),
        (sign_up_batch("heavy", 2_000, 300), "bytes"),
    ] {
        let (status, _, body) =
            tokio::task::block_in_place(|| collect.post("/v1/batch", &[WEB], batch.as_bytes()));
        assert_eq!(
            (status, body["reason"].as_str()),
            (413, Some("batch_too_large")),
            "{body}"
        );
        assert!(body["error"].as_str().unwrap().contains(says), "{body}");
    }

    // 24 clients at once, 10 batches of 25 each; every batch is sent twice
    // (an SDK retrying after a lost answer), and every answer is 200.
    const CLIENTS: usize = 24;
    const BATCHES: usize = 10;
    const EVENTS: usize = 25;
    let port = collect.port;
    let answers: Vec<u16> = tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let senders: Vec<_> = (0..CLIENTS)
                .map(|client| {
                    scope.spawn(move || {
                        let mut statuses = Vec::new();
                        for batch in 0..BATCHES {
                            let body = sign_up_batch(&format!("c{client}b{batch}u"), EVENTS, 0);
                            for _attempt in 0..2 {
                                let (status, _, _) = http_request(
                                    port,
                                    "POST",
                                    "/v1/batch",
                                    &[WEB],
                                    body.as_bytes(),
                                );
                                statuses.push(status);
                            }
                        }
                        statuses
                    })
                })
                .collect();
            senders
                .into_iter()
                .flat_map(|sender| sender.join().unwrap())
                .collect()
        })
    });
    assert!(answers.iter().all(|&status| status == 200), "{answers:?}");

    let client = client(&server).await;
    let expected = 2_500 + CLIENTS * BATCHES * EVENTS;
    let events = stored_events(&client, expected).await;
    let mut ids: Vec<String> = events
        .iter()
        .map(|event| event.json()["messageId"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        (events.len(), ids.len()),
        (expected, expected),
        "every event stored, once"
    );
}

// ----- Segment's own SDKs ------------------------------------------------------

/// Installs `package` from its registry with `installer` (the test's
/// network use: PyPI and npm), panicking with the installer's output if it
/// fails.
fn install(installer: &mut Command, package: &str) {
    let output = installer.output().unwrap_or_else(|error| {
        panic!("cannot run the installer for {package}: {error} (deploy/test.sh installs python3-pip and npm)")
    });
    assert!(
        output.status.success(),
        "installing {package} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs an SDK script to the end; panics with what it printed if it fails.
fn run_sdk(script: &mut Command, sdk: &str) {
    let output = script.output().unwrap();
    assert!(
        output.status.success(),
        "the {sdk} script failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The users actions on `subject` are for, sorted.
fn subjects_of(actions: &[Stored]) -> Vec<String> {
    let mut users: Vec<String> = actions
        .iter()
        .map(|action| action.json()["subject"].as_str().unwrap().to_string())
        .collect();
    users.sort();
    users
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_python_and_node_sdks_send_unchanged_and_their_events_become_actions() {
    const USERS: usize = 12;
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let pipeline = write_file(
        dir.path(),
        "p.toml",
        &pipeline_text(
            "sdks",
            UNCAPPED_POLICY,
            &format!("{WELCOME_TRIGGER}{CART_TRIGGER}"),
        ),
    );
    let _kairos = Kairos::start_in(&server, dir.path(), &["--pipeline", &pipeline]);
    let collect = tokio::task::block_in_place(|| Collect::start(&server, dir.path()));
    let sdk_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk");
    let users = USERS.to_string();

    tokio::task::block_in_place(|| {
        let python_packages = dir.path().join("python");
        install(
            Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                ])
                .arg("--target")
                .arg(&python_packages)
                .arg("segment-analytics-python>=2,<3")
                // Into the test's own directory, never the system's.
                .env("PIP_BREAK_SYSTEM_PACKAGES", "1"),
            "segment-analytics-python",
        );
        run_sdk(
            Command::new("python3")
                .arg(format!("{sdk_dir}/send_python.py"))
                .args([&collect.url(), "wk_web", "py", &users])
                .env("PYTHONPATH", &python_packages),
            "Python",
        );
        let node_project = dir.path().join("node");
        std::fs::create_dir_all(&node_project).unwrap();
        install(
            Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
                .arg(&node_project)
                .arg("@segment/analytics-node@^3"),
            "@segment/analytics-node",
        );
        // ES modules resolve packages beside the script.
        let script = node_project.join("send_node.mjs");
        std::fs::copy(format!("{sdk_dir}/send_node.mjs"), &script).unwrap();
        run_sdk(
            Command::new("node")
                .arg(&script)
                .args([&collect.url(), "wk_web", "node", &users]),
            "Node",
        );
    });

    let client = client(&server).await;
    let welcomes = read_actions(
        &client,
        "kairos.actions.email",
        2 * USERS,
        Duration::from_secs(20),
    )
    .await;
    let mut expected: Vec<String> = (0..USERS)
        .flat_map(|n| [format!("py{n}"), format!("node{n}")])
        .collect();
    expected.sort();
    assert_eq!(subjects_of(&welcomes), expected, "a welcome for everyone");
    // The Node shoppers left their carts; the Python ones ordered. A
    // reminder comes 2 s after the add: read until Node's are all in (a
    // busy machine may tick late), then 3 s more for any extra.
    let mut reminders = read_actions(
        &client,
        "kairos.actions.push",
        USERS,
        Duration::from_secs(30),
    )
    .await;
    let extra = read_stream(
        &client,
        "KAIROS_ACTIONS",
        "kairos.actions.push",
        Duration::from_secs(3),
        |_| false,
    )
    .await;
    reminders.extend(extra.into_iter().skip(reminders.len()));
    let mut node_users: Vec<String> = (0..USERS).map(|n| format!("node{n}")).collect();
    node_users.sort();
    let described: Vec<String> = reminders
        .iter()
        .map(|action| action.json()["data"].to_string())
        .collect();
    assert_eq!(
        subjects_of(&reminders),
        node_users,
        "reminders for Node's carts only: {described:#?}"
    );

    let metrics = http_get(collect.admin_port, "/metrics")
        .expect("the collector's /metrics")
        .1;
    let accepted = metrics
        .lines()
        .find(|line| line.starts_with("kairos_collector_events_total{source=\"web\"}"))
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(
        accepted.ends_with(&format!(" {}", 7 * USERS)),
        "4 calls per Python user, 3 per Node user: {accepted}"
    );
}

// ----- Review: odd input and retries --------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_message_ids_keys_in_batch_entries_and_raw_retries_are_stored_once_without_the_key() {
    let (server, _dir, _kairos, collect) = welcome_setup();

    // analytics.js (analytics-next) batches its events with the write key
    // in every one of them; a messageId may hold a line break.
    let batch = serde_json::json!({"writeKey": "wk_web", "sentAt": now_rfc3339(), "batch": [
        {"type": "track", "event": "Signed Up", "userId": "o1", "messageId": "o1\r\nNats-Expected-Last-Sequence: 1", "timestamp": now_rfc3339(), "writeKey": "wk_web"},
        {"type": "track", "event": "Signed Up", "userId": "o2", "messageId": "o2", "timestamp": now_rfc3339(), "writeKey": "wk_web"},
        {"type": "track", "event": "Signed Up", "messageId": "o3", "timestamp": now_rfc3339(), "writeKey": "wk_web"}
    ]})
    .to_string();
    let (status, _, body) =
        tokio::task::block_in_place(|| collect.post("/v1/b", &[], batch.as_bytes()));
    assert_eq!(status, 200, "{body}");
    // A raw client without messageIds retries a call with a new sentAt,
    // or with a null messageId.
    for (user, message_id) in [("r1", None), ("r2", Some(serde_json::Value::Null))] {
        for attempt in 0..2 {
            let mut call = serde_json::json!({"event": "Signed Up", "userId": user,
                "timestamp": "2026-01-01T00:00:00Z", "sentAt": format!("2026-01-01T00:00:0{attempt}Z")});
            if let Some(id) = &message_id {
                call["messageId"] = id.clone();
            }
            let (status, _, body) = tokio::task::block_in_place(|| {
                collect.post("/v1/track", &[WEB], call.to_string().as_bytes())
            });
            assert_eq!(status, 200, "{body}");
        }
    }
    let client = client(&server).await;
    let events = stored_events(&client, 5).await;
    let users: Vec<String> = events
        .iter()
        .map(|event| {
            let json = event.json();
            json["userId"].as_str().unwrap_or("-").to_string()
        })
        .collect();
    assert_eq!(users, ["o1", "o2", "-", "r1", "r2"], "each call once");
    for event in &events {
        let text = String::from_utf8_lossy(&event.payload);
        assert!(!text.contains("wk_web"), "{text}");
        assert!(
            event.header("Nats-Expected-Last-Sequence").is_none(),
            "{:?}",
            event.headers
        );
    }
}
