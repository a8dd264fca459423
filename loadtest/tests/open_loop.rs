//! The sender keeps its schedule whatever the server does: a server that
//! stalls shows as latency, not as a slower sender (no coordinated
//! omission). The server here is a plain HTTP endpoint standing in for
//! the collector's answer times; the collector itself is measured by
//! `loadtest/ingest.sh`.

use axum::routing::post;
use kairos_loadtest::traffic::{send, Collector, Plan, Target};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_server_shows_as_latency_and_every_event_is_counted() {
    let calls = Arc::new(AtomicU64::new(0));
    let stalled = Arc::new(AtomicBool::new(false));
    let app = {
        let (calls, stalled) = (Arc::clone(&calls), Arc::clone(&stalled));
        axum::Router::new().route(
            "/v1/batch",
            post(move |body: axum::body::Bytes| {
                let (calls, stalled) = (Arc::clone(&calls), Arc::clone(&stalled));
                async move {
                    assert!(body.starts_with(b"{\"batch\":["));
                    // The 11th request stalls every answer for 1 s: the
                    // ones already sent, and the ones scheduled meanwhile.
                    if calls.fetch_add(1, Ordering::SeqCst) == 10 {
                        stalled.store(true, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        stalled.store(false, Ordering::SeqCst);
                    }
                    while stalled.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    "{\"success\":true}"
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // 2,000 events a second in batches of 50: a request every 25 ms, 80
    // in all.
    let plan = Plan::shoppers(2_000, Duration::from_secs(2), 1_000, 50, 7);
    let collector = Collector {
        batch_url: format!("http://{address}/v1/batch").parse().unwrap(),
        write_key: "wk".into(),
    };
    let results = send(&plan, Target::Http(collector)).await.unwrap();
    assert_eq!(results.events_sent, 4_000);
    assert_eq!(results.events_accepted, 4_000);
    assert_eq!(results.statuses.get(&200), Some(&80));
    assert_eq!(calls.load(Ordering::SeqCst), 80);
    // The stalled request waited 1 s; so, nearly, did the ones scheduled
    // during the stall (about 40 of 80): the sender did not wait for the
    // answers before sending them.
    let max = results.latency_us.max();
    assert!((1_000_000..1_500_000).contains(&max), "max {max} µs");
    let median = results.latency_us.value_at_quantile(0.5);
    assert!(
        median < 100_000,
        "most requests are not stalled: p50 {median} µs"
    );
    let p90 = results.latency_us.value_at_quantile(0.9);
    assert!(p90 > 500_000, "the stall shows in the tail: p90 {p90} µs");
    assert!(
        results.elapsed < Duration::from_millis(3_200),
        "sending kept its schedule: {:?}",
        results.elapsed
    );
}

/// The newest event time (ms) of a batch body, read without a JSON parser.
fn newest_event_ms(body: &[u8]) -> i64 {
    let text = std::str::from_utf8(body).unwrap();
    text.match_indices("\"timestamp\":\"")
        .map(|(at, key)| {
            let start = at + key.len();
            let end = start + text[start..].find('"').unwrap();
            kairos_model::Timestamp::parse_rfc3339(&text[start..end])
                .unwrap()
                .0
        })
        .max()
        .unwrap()
}

/// A server answering at once that notes, for each batch, how long after
/// its newest event's time it arrived (ms, wall clock).
async fn timing_server() -> (std::net::SocketAddr, Arc<std::sync::Mutex<Vec<i64>>>) {
    let after = Arc::new(std::sync::Mutex::new(Vec::new()));
    let app = {
        let after = Arc::clone(&after);
        axum::Router::new().route(
            "/v1/batch",
            post(move |body: axum::body::Bytes| {
                let now_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis() as i64;
                after.lock().unwrap().push(now_ms - newest_event_ms(&body));
                async { "{\"success\":true}" }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (address, after)
}

fn collector(address: std::net::SocketAddr) -> Target {
    Target::Http(Collector {
        batch_url: format!("http://{address}/v1/batch").parse().unwrap(),
        write_key: "wk".into(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_sent_when_its_newest_event_is_due_not_later_nor_earlier() {
    let (address, after) = timing_server().await;
    // 200 events a second, one a send: a send every 5 ms, each due at its
    // event's time (which is what event → action latency is measured from).
    let plan = Plan::shoppers(200, Duration::from_secs(2), 100, 1, 3);
    let results = send(&plan, collector(address)).await.unwrap();
    assert_eq!(results.events_accepted, 400);
    let throughput = 400.0 / results.elapsed.as_secs_f64();
    assert!(
        (190.0..=200.0).contains(&throughput),
        "{throughput} events/s"
    );
    let mut after = after.lock().unwrap().clone();
    after.sort_unstable();
    assert!(after[0] >= 0, "sent before its event's time: {after:?}");
    let median = after[after.len() / 2];
    assert!(
        median <= 2,
        "sent {median} ms after its event's time (the interval is 5 ms)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_in_a_batch_of_ten_at_one_a_second_is_sent_at_once() {
    let (address, after) = timing_server().await;
    // One event in all: its send does not wait for nine that never come.
    let plan = Plan::shoppers(1, Duration::from_secs(1), 1, 10, 3);
    let started = std::time::Instant::now();
    let results = send(&plan, collector(address)).await.unwrap();
    assert_eq!((results.events_sent, results.events_accepted), (1, 1));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let max = results.latency_us.max();
    assert!(max < 500_000, "send latency {max} µs");
    // Offered over the second it was planned for, not in no time.
    assert_eq!(results.elapsed, Duration::from_secs(1));
    assert!(after.lock().unwrap()[0] < 100);
}
