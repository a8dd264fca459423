//! `kairos-loadtest`'s measuring parts against a real nats-server and a
//! real `kairos run`: every event sent is stored and applied, and the
//! decisions it causes are read back and timed, immediate triggers and
//! timers apart.

mod nats;

use kairos_loadtest::actions::{self, Timing};
use kairos_loadtest::traffic::{send, Plan, Target};
use nats::*;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_traffic_is_all_applied_and_its_decisions_are_timed() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let retail = concat!(env!("CARGO_MANIFEST_DIR"), "/../../pipelines/retail.toml");
    let kairos = Kairos::start_in(
        &server,
        dir.path(),
        &[
            "--pipeline",
            retail,
            "--set",
            "abandoned_cart.after=2s",
            "--set",
            "browse_abandonment.window={ session = \"3s\" }",
        ],
    );
    let timings = actions::timings(std::path::Path::new(retail)).unwrap();
    assert_eq!(timings.get("abandoned_cart"), Some(&Timing::Timer));
    assert_eq!(
        timings.get("browse_abandonment"),
        Some(&Timing::Timer),
        "fires on the session's close"
    );
    assert_eq!(timings.get("store_visit_offer"), Some(&Timing::Immediate));

    let client = client(&server).await;
    let since_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let watcher = tokio::spawn(actions::watch(
        client.clone(),
        timings.clone(),
        since_ms,
        stopped,
    ));
    let plan = Plan::shoppers(2_000, Duration::from_secs(3), 2_000, 10, 11);
    let target = Target::Nats {
        js: async_nats::jetstream::new(client.clone()),
        partitions: 16,
        subject_prefix: "kairos.events".into(),
    };
    let sent = send(&plan, target).await.unwrap();
    assert_eq!((sent.events_sent, sent.events_accepted), (6_000, 6_000));
    // Past the 2 s carts and 3 s sessions of the last events.
    tokio::time::sleep(Duration::from_secs(6)).await;
    stop.send(true).unwrap();
    let seen = watcher.await.unwrap().unwrap();

    let metrics = tokio::task::block_in_place(|| kairos.metrics());
    let applied: f64 = metrics
        .lines()
        .filter(|line| line.starts_with("kairos_events_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(applied, 6_000.0, "every event applied once:\n{metrics}");
    let decided: f64 = [
        "kairos_actions_sent_total{",
        "kairos_actions_suppressed_total{",
    ]
    .iter()
    .flat_map(|prefix| metrics.lines().filter(move |line| line.starts_with(prefix)))
    .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
    .sum();
    assert_eq!(
        (seen.sent + seen.suppressed + seen.earlier) as f64,
        decided,
        "every decision read"
    );
    assert_eq!(seen.earlier, 0);
    assert!(
        !seen.immediate_us.is_empty(),
        "store visits, welcomes ... were timed"
    );
    assert!(!seen.timer_us.is_empty(), "abandoned carts were timed");
    // Every first step of an immediate trigger decided on its event (not
    // deferred to a later hour) is timed as event → action, including the
    // events applied just after a newer one, which the engine decides at
    // that one's time.
    let time = |action: &serde_json::Value, field: &str| {
        kairos_model::Timestamp::parse_rfc3339(action["data"][field].as_str().unwrap())
            .unwrap()
            .0
    };
    // The same decisions, read back whole from the actions stream: which of
    // them are immediate.
    let kept: Vec<serde_json::Value> = read_all_actions(&client, Duration::from_secs(2))
        .await
        .iter()
        .map(Stored::json)
        .collect();
    let immediate: Vec<_> = kept
        .iter()
        .filter(|action| {
            timings.get(action["data"]["trigger"].as_str().unwrap()) == Some(&Timing::Immediate)
                && action["data"]["step"] == 1
                && time(action, "decided_at") <= time(action, "fired_at") + 1_000
        })
        .collect();
    let reordered = immediate
        .iter()
        .filter(|action| time(action, "decided_at") > time(action, "fired_at"))
        .count();
    eprintln!(
        "{} immediate decisions, {reordered} decided after their event's time",
        immediate.len()
    );
    assert_eq!(seen.immediate_us.len(), immediate.len() as u64);
    assert_eq!(seen.dlq, 0);
    // Timed from the right moment: well under the 2 s a cart waits (a
    // reminder timed from its add would be 2 s late), on a busy CI machine.
    assert!(
        seen.timer_us.value_at_quantile(0.5) < 1_000_000,
        "timer lateness p50 {} µs",
        seen.timer_us.value_at_quantile(0.5)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_raw_baseline_reads_back_every_event_without_kairos() {
    use kairos_loadtest::measure::{self, Limits, System};
    use kairos_loadtest::raw;
    let server = NatsServer::start();
    let client = client(&server).await;
    let js = async_nats::jetstream::new(client);
    raw::prepare(&js).await.unwrap();
    // The settings of kairos' events stream: the same work for each publish.
    let [events, ..] = kairos_nats::streams::StreamSettings::default().configs();
    let mut stream = js.get_stream(raw::STREAM).await.unwrap();
    let config = &stream.info().await.unwrap().config;
    assert_eq!(
        (config.duplicate_window, config.storage, config.num_replicas),
        (events.duplicate_window, events.storage, events.num_replicas)
    );
    let target = Target::Nats {
        js: js.clone(),
        partitions: 16,
        subject_prefix: raw::SUBJECT_PREFIX.into(),
    };
    let plan = Plan::shoppers(2_000, Duration::from_secs(2), 1_000, 10, 5);
    let system = System::Raw { js: js.clone() };
    let step = measure::step(&system, &target, plan, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(step.sent.events_accepted, 4_000);
    let delivered = step.seen.as_ref().unwrap();
    assert_eq!(delivered.sent, 4_000, "every event read back");
    assert_eq!(delivered.immediate_us.len(), 4_000, "and timed");
    // Generous limits: the step is judged sustained on a busy machine.
    let limits = Limits {
        p99_ms: 1_000.0,
        backlog_seconds: 1.0,
    };
    assert_eq!(measure::sustained(&step, &limits), Ok(()));
    // Everything read was acknowledged: nothing of this step is redelivered
    // into the next (4,000 is not a multiple of the acknowledgement batch).
    let consumer = js
        .get_stream(raw::STREAM)
        .await
        .unwrap()
        .consumer_info(raw::CONSUMER)
        .await
        .unwrap();
    assert_eq!(consumer.num_ack_pending, 0);
    assert_eq!(consumer.ack_floor.stream_sequence, 4_000);
    // The same seed again: JetStream drops every event as a duplicate, and
    // the step says so instead of counting them as load.
    let again = Plan::shoppers(2_000, Duration::from_secs(1), 1_000, 10, 5);
    let repeat = measure::step(&system, &target, again, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(repeat.sent.events_accepted, 0);
    assert_eq!(
        repeat
            .sent
            .statuses
            .get(&kairos_loadtest::traffic::DUPLICATE),
        Some(&200)
    );
    assert!(measure::sustained(&repeat, &limits).is_err());
    raw::remove(&js).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_that_takes_nothing_shows_its_whole_backlog() {
    use kairos_loadtest::measure::{self, System};
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let retail = concat!(env!("CARGO_MANIFEST_DIR"), "/../../pipelines/retail.toml");
    // The engine makes its streams and consumer, then takes nothing more.
    let mut kairos = Kairos::start_in(&server, dir.path(), &["--pipeline", retail]);
    kairos.kill9();
    let client = client(&server).await;
    let system = System::Kairos {
        client: Some(client.clone()),
        timings: actions::timings(std::path::Path::new(retail)).unwrap(),
        metrics: None,
    };
    let target = Target::Nats {
        js: async_nats::jetstream::new(client),
        partitions: 16,
        subject_prefix: "kairos.events".into(),
    };
    let plan = Plan::shoppers(1_000, Duration::from_secs(1), 100, 10, 17);
    let step = measure::step(&system, &target, plan, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(step.sent.events_accepted, 1_000);
    assert_eq!(step.backlog, Some(1_000), "every event waits");
    let limits = measure::Limits {
        p99_ms: 10.0,
        backlog_seconds: 1.0,
    };
    assert!(measure::sustained(&step, &limits).is_ok());
    let limits = measure::Limits {
        p99_ms: 10.0,
        backlog_seconds: 0.5,
    };
    assert!(measure::sustained(&step, &limits)
        .unwrap_err()
        .contains("backlog 1000"));
}
