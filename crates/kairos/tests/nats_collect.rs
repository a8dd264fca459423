//! `kairos collect`: Segment's HTTP Tracking API in front of the events
//! stream, against a real nats-server and a real `kairos run`.

mod nats;

use nats::*;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const KEYS: &str = "[[key]]\nwrite_key = \"wk_web\"\nsource = \"web\"\n\n[[key]]\nwrite_key = \"wk_slow\"\nsource = \"kiosk\"\nrate_per_second = 2\n";

/// `kairos collect` on a free port; killed on drop.
struct Collect {
    child: Child,
    port: u16,
}

impl Collect {
    fn start(server: &NatsServer, dir: &std::path::Path) -> Collect {
        let keys = write_file(dir, "keys.toml", KEYS);
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_kairos"))
            .args([
                "collect",
                "--nats",
                &server.url(),
                "--keys",
                &keys,
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("collect.log")).unwrap())
            .spawn()
            .unwrap();
        assert!(
            port_open_within(port, Duration::from_secs(15)),
            "kairos collect is not listening"
        );
        Collect { child, port }
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

/// `wk_web:` as HTTP Basic.
const WEB: (&str, &str) = ("Authorization", "Basic d2tfd2ViOg==");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_calls_become_events_and_actions_and_mistakes_get_answers_an_sdk_can_act_on() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let pipeline = write_file(
        dir.path(),
        "p.toml",
        &pipeline_text("collect", UNCAPPED_POLICY, WELCOME_TRIGGER),
    );
    let _kairos = Kairos::start_in(&server, dir.path(), &["--pipeline", &pipeline]);
    let collect = tokio::task::block_in_place(|| Collect::start(&server, dir.path()));
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
    // A browser's preflight.
    let (status, head, _) = http_request(
        collect.port,
        "OPTIONS",
        "/v1/t",
        &[
            ("Origin", "https://shop.example"),
            ("Access-Control-Request-Method", "POST"),
        ],
        b"",
    );
    assert_eq!(status, 204);
    assert!(
        head.to_lowercase().contains(
            "access-control-allow-headers: authorization, content-type, content-encoding"
        ),
        "{head}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_nats_away_calls_get_503_and_a_retry_once_it_is_back_is_stored_once() {
    let mut server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let pipeline = write_file(
        dir.path(),
        "p.toml",
        &pipeline_text("collect", UNCAPPED_POLICY, WELCOME_TRIGGER),
    );
    let _kairos = Kairos::start_in(&server, dir.path(), &["--pipeline", &pipeline]);
    let collect = tokio::task::block_in_place(|| Collect::start(&server, dir.path()));
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
