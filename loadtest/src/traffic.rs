//! Generating the shoppers' events and sending them on schedule.

use crate::actions::{add_in_second, p99_ms, record_in_second};
use hdrhistogram::Histogram;
use kairos_model::Timestamp;
use kairos_nats::partition::{message_id_header, partition_of};
use std::collections::BTreeMap;
use std::future::IntoFuture;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// What to send.
#[derive(Clone, Debug)]
pub struct Plan {
    pub rate: u32,
    pub duration: Duration,
    pub customers: u64,
    pub batch: u32,
    pub seed: u64,
    pub traffic: Traffic,
    /// The shoppers' event mix (`kairos_benches::MIX_NAMES`' weights).
    pub mix: [u16; 13],
}

/// Which events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Traffic {
    /// Shoppers of the retail workload, for `duration`.
    Shoppers,
    /// One identify and one page view for every customer, in customer
    /// order: a population of known customers for the engine to hold (its
    /// memory per customer), however long that takes at the rate.
    Population,
}

impl Plan {
    /// Shoppers of the default mix at `rate` for `duration`.
    pub fn shoppers(rate: u32, duration: Duration, customers: u64, batch: u32, seed: u64) -> Plan {
        Plan {
            rate,
            duration,
            customers,
            batch,
            seed,
            traffic: Traffic::Shoppers,
            mix: kairos_benches::RETAIL_MIX,
        }
    }

    /// The population of `customers` at `rate`: as long as it takes.
    pub fn population(rate: u32, customers: u64, batch: u32, seed: u64) -> Plan {
        Plan {
            rate,
            duration: Duration::from_secs((2 * customers).div_ceil(u64::from(rate))),
            customers,
            batch,
            seed,
            traffic: Traffic::Population,
            mix: kairos_benches::RETAIL_MIX,
        }
    }

    fn events(&self) -> u64 {
        match self.traffic {
            Traffic::Shoppers => u64::from(self.rate) * self.duration.as_secs(),
            Traffic::Population => 2 * self.customers,
        }
    }

    /// Time between two requests.
    fn interval(&self) -> Duration {
        Duration::from_secs_f64(f64::from(self.batch) / f64::from(self.rate))
    }
}

/// A generated call's customer key and message id, read without parsing
/// the whole call (the load generator shares the machine it measures);
/// through the model's parser when the quick read finds no `userId`.
fn ids(line: &str) -> Option<(String, String)> {
    let field = |name: &str| {
        let key = format!("\"{name}\":\"");
        let start = line.find(&key)? + key.len();
        let end = start + line[start..].find('"')?;
        Some(line[start..end].to_string())
    };
    if let (Some(user), Some(id)) = (field("userId"), field("messageId")) {
        if !user.contains('\\') && !id.contains('\\') {
            return Some((user, id));
        }
    }
    let event = kairos_model::Event::from_json(line.as_bytes()).ok()?;
    Some((
        event.customer_key().to_string(),
        event.message_id.to_string(),
    ))
}

/// Where batches go.
#[derive(Clone)]
pub struct Collector {
    pub batch_url: url::Url,
    pub write_key: String,
}

impl Collector {
    /// The collector reached at `base` (its SDKs' host, with or without a
    /// path prefix; `/v1/batch` is added after it).
    pub fn at(base: &url::Url, write_key: &str) -> Collector {
        let mut base = base.clone();
        if !base.path().ends_with('/') {
            // A relative join would replace the last segment instead.
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        Collector {
            batch_url: base
                .join("v1/batch")
                .expect("a relative path joins any http URL"),
            write_key: write_key.to_string(),
        }
    }
}

/// How events reach kairos.
#[derive(Clone)]
pub enum Target {
    /// Segment batches to `kairos collect`; a batch's latency ends with its answer.
    Http(Collector),
    /// Straight to JetStream, each event on its customer's partition with
    /// its messageId as Nats-Msg-Id; a batch's latency ends when JetStream
    /// has acknowledged all of it.
    Nats {
        js: async_nats::jetstream::Context,
        partitions: u32,
        /// `kairos.events`, or the raw baseline's own subjects.
        subject_prefix: String,
    },
}

/// A send JetStream stored, but of events it had already stored (the same
/// Nats-Msg-Id within its duplicate window): not new load.
pub const DUPLICATE: u16 = 208;

impl Target {
    /// Sends one batch; the HTTP status, or 200 when JetStream stored it
    /// all (0: no answer, 503: JetStream refused or timed out).
    async fn send(&self, client: &reqwest::Client, lines: Vec<String>) -> u16 {
        match self {
            Target::Http(collector) => {
                let mut body =
                    Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum::<usize>() + 12);
                body.extend_from_slice(b"{\"batch\":[");
                for (index, line) in lines.iter().enumerate() {
                    if index > 0 {
                        body.push(b',');
                    }
                    body.extend_from_slice(line.as_bytes());
                }
                body.extend_from_slice(b"]}");
                match client
                    .post(collector.batch_url.clone())
                    .basic_auth(&collector.write_key, Some(""))
                    .header("Content-Type", "application/json")
                    .body(body)
                    .send()
                    .await
                {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        // The answer is read whole: its end is the latency's.
                        let _ = response.bytes().await;
                        status
                    }
                    Err(_) => 0,
                }
            }
            Target::Nats {
                js,
                partitions,
                subject_prefix,
            } => {
                let mut acks = Vec::with_capacity(lines.len());
                for line in lines {
                    let Some((customer, message_id)) = ids(&line) else {
                        return 400;
                    };
                    let partition = partition_of(&customer, *partitions);
                    let subject = format!("{subject_prefix}.{partition}");
                    let mut headers = async_nats::HeaderMap::new();
                    headers.insert(
                        async_nats::header::NATS_MESSAGE_ID,
                        message_id_header(&message_id).as_ref(),
                    );
                    match js.publish_with_headers(subject, headers, line.into()).await {
                        Ok(ack) => acks.push(ack.into_future()),
                        Err(_) => return 503,
                    }
                }
                let stored = futures::future::join_all(acks).await;
                if !stored.iter().all(Result::is_ok) {
                    503
                } else if stored.iter().flatten().any(|ack| ack.duplicate) {
                    DUPLICATE
                } else {
                    200
                }
            }
        }
    }
}

/// What came back from sending.
pub struct Sent {
    /// Microseconds from each request's scheduled send to its answer.
    pub latency_us: Histogram<u64>,
    /// Events in requests sent.
    pub events_sent: u64,
    /// Events in requests answered 200.
    pub events_accepted: u64,
    /// Requests by HTTP status (0: no answer).
    pub statuses: BTreeMap<u16, u64>,
    /// From the first scheduled send to the last answer, or the schedule's
    /// span (events / rate) if longer.
    pub elapsed: Duration,
    /// When the schedule started, wall clock (ms since the epoch): the
    /// time of the first event.
    pub start_ms: i64,
    /// Events accepted in each second after the start.
    pub accepted_per_second: Vec<u64>,
    /// Send latencies by the second they were scheduled in.
    pub latency_per_second: Vec<Histogram<u64>>,
}

/// One request's outcome.
struct Answer {
    scheduled: Instant,
    answered: Instant,
    status: u16,
    events: u64,
}

/// How far ahead of its schedule a batch is generated.
const GENERATE_AHEAD: Duration = Duration::from_secs(2);
/// How long after the last send the last answers are awaited.
const DRAIN_WITHIN: Duration = Duration::from_secs(30);
/// How often a line of progress is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// Sends the plan's events to `target` at its rate; returns what came
/// back.
pub async fn send(plan: &Plan, target: Target) -> anyhow::Result<Sent> {
    let client = reqwest::Client::builder()
        .timeout(DRAIN_WITHIN)
        .pool_max_idle_per_host(usize::MAX)
        // A redirect is an answer (not 200), not a way to another host.
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let interval = plan.interval();
    let requests = plan.events().div_ceil(u64::from(plan.batch));
    // Event times are the times they are sent: the schedule starts a
    // moment from now, once the first batches are generated, on a whole
    // millisecond of the wall clock (event times are whole milliseconds),
    // so that `start` and `start_ms` are the same instant.
    let (now, wall_us) = (
        Instant::now(),
        SystemTime::now().duration_since(UNIX_EPOCH)?.as_micros() as i64,
    );
    let start_ms = wall_us / 1000 + 501;
    let start = now + Duration::from_micros((start_ms * 1000 - wall_us) as u64);
    let batches = generate(plan, start_ms, interval);

    let (answers, mut answered) = mpsc::unbounded_channel::<Answer>();
    let target = std::sync::Arc::new(target);
    let sender = {
        let client = client.clone();
        let mut batches = batches;
        tokio::spawn(async move {
            let mut sent = 0u64;
            for _ in 0..requests {
                let Some(Batch { due_ms, lines }) = batches.recv().await else {
                    break;
                };
                // When its newest event is due (its time, whole ms): a batch
                // waits to be full, as an SDK's does, and that wait counts;
                // so the latency of its newest event starts at that event's
                // time, as event → action latency does.
                let scheduled = start + Duration::from_millis((due_ms - start_ms).max(0) as u64);
                tokio::time::sleep_until(scheduled.into()).await;
                let events = lines.len() as u64;
                sent += events;
                let (client, target, answers) = (client.clone(), target.clone(), answers.clone());
                tokio::spawn(async move {
                    let status = target.send(&client, lines).await;
                    let _ = answers.send(Answer {
                        scheduled,
                        answered: Instant::now(),
                        status,
                        events,
                    });
                });
            }
            sent
        })
    };

    let mut results = Sent {
        latency_us: Histogram::new_with_bounds(1, 120_000_000, 3)?,
        events_sent: 0,
        events_accepted: 0,
        statuses: BTreeMap::new(),
        elapsed: Duration::ZERO,
        start_ms,
        accepted_per_second: Vec::new(),
        latency_per_second: Vec::new(),
    };
    let mut received = 0u64;
    let mut last_answer = start;
    let mut progress = tokio::time::interval_at((start + PROGRESS_EVERY).into(), PROGRESS_EVERY);
    let mut window = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3)?;
    let send_end = start + plan.duration;
    loop {
        tokio::select! {
            answer = answered.recv() => {
                let Some(answer) = answer else { break };
                received += 1;
                let latency = answer.answered.saturating_duration_since(answer.scheduled);
                let micros = (latency.as_micros() as u64).clamp(1, 120_000_000);
                results.latency_us.saturating_record(micros);
                let scheduled_second = answer.scheduled.saturating_duration_since(start).as_secs() as usize;
                record_in_second(&mut results.latency_per_second, scheduled_second, micros);
                window.saturating_record(micros);
                *results.statuses.entry(answer.status).or_default() += 1;
                if answer.status == 200 {
                    results.events_accepted += answer.events;
                    let second = answer.answered.saturating_duration_since(start).as_secs() as usize;
                    add_in_second(&mut results.accepted_per_second, second, answer.events);
                }
                last_answer = last_answer.max(answer.answered);
                if received == requests {
                    break;
                }
            }
            _ = progress.tick() => {
                let at = start.elapsed().as_secs_f64();
                println!(
                    "{at:6.1}s  requests {received}/{requests}  events accepted {}  p99 {:.1} ms  max {:.1} ms (last {} s)",
                    results.events_accepted,
                    p99_ms(&window),
                    window.max() as f64 / 1000.0,
                    PROGRESS_EVERY.as_secs(),
                );
                window.reset();
                if Instant::now() > send_end + DRAIN_WITHIN {
                    eprintln!("kairos-loadtest: {} requests unanswered {} s after the last send", requests - received, DRAIN_WITHIN.as_secs());
                    break;
                }
            }
        }
    }
    results.events_sent = sender.await?;
    // At least the schedule's span: the events were offered over it,
    // however few (one event is not sent in no time).
    let span = Duration::from_secs_f64(plan.events() as f64 / f64::from(plan.rate));
    results.elapsed = last_answer.saturating_duration_since(start).max(span);
    let unanswered = requests - received;
    if unanswered > 0 {
        *results.statuses.entry(0).or_default() += unanswered;
    }
    Ok(results)
}

/// One send: its events and when the newest of them is due (ms).
struct Batch {
    due_ms: i64,
    lines: Vec<String>,
}

/// The event time (ms) a generated call carries (`"timestamp":"..."`).
pub(crate) fn event_time(line: &str) -> Option<Timestamp> {
    let start = line.find("\"timestamp\":\"")? + "\"timestamp\":\"".len();
    let end = start + line[start..].find('"')?;
    Timestamp::parse_rfc3339(&line[start..end]).ok()
}

/// Batches of the retail workload, generated on a thread of their own just
/// ahead of their schedule; each event is timed at its scheduled send time
/// (no jitter), so an action's `fired_at` tells when its cause was sent.
fn generate(plan: &Plan, start_ms: i64, interval: Duration) -> mpsc::Receiver<Batch> {
    let ahead = (GENERATE_AHEAD.as_secs_f64() / interval.as_secs_f64()).ceil() as usize;
    let (batches, receiver) = mpsc::channel(ahead.max(2));
    let lines: Box<dyn Iterator<Item = String> + Send> = match plan.traffic {
        Traffic::Shoppers => {
            let mut config =
                kairos_benches::Config::retail(plan.customers, plan.events()).with_seed(plan.seed);
            config.start_ms = start_ms;
            config.ms_per_event = 1000.0 / f64::from(plan.rate);
            config.max_jitter_ms = 0;
            config.mix = plan.mix;
            Box::new(kairos_benches::generate(&config))
        }
        Traffic::Population => {
            let span_ms = (plan.events() as f64 * 1000.0 / f64::from(plan.rate)) as i64;
            Box::new(kairos_benches::population(
                plan.customers,
                plan.seed,
                start_ms,
                span_ms,
            ))
        }
    };
    let batch = plan.batch as usize;
    let ms_per_event = 1000.0 / f64::from(plan.rate);
    std::thread::spawn(move || {
        let mut lines = lines.peekable();
        let mut sent = 0u64;
        while lines.peek().is_some() {
            let lines: Vec<String> = lines.by_ref().take(batch).collect();
            sent += lines.len() as u64;
            // Its newest event's time; the schedule's should a time be
            // unreadable.
            let due_ms = lines
                .iter()
                .filter_map(|line| event_time(line))
                .map(|time| time.0)
                .max()
                .unwrap_or(start_ms + ((sent - 1) as f64 * ms_per_event) as i64);
            if batches.blocking_send(Batch { due_ms, lines }).is_err() {
                return;
            }
        }
    });
    receiver
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_batch_path_follows_the_collectors_own() {
        for (base, batch) in [
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080/v1/batch"),
            ("http://127.0.0.1:8080/", "http://127.0.0.1:8080/v1/batch"),
            (
                "http://127.0.0.1:8080/kairos",
                "http://127.0.0.1:8080/kairos/v1/batch",
            ),
        ] {
            let collector = super::Collector::at(&base.parse().unwrap(), "k");
            assert_eq!(collector.batch_url.as_str(), batch);
        }
    }

    #[test]
    fn ids_are_read_quickly_and_otherwise_parsed() {
        let quick = r#"{"type":"track","event":"A","userId":"u7","messageId":"m1-2","timestamp":"2026-12-07T00:00:00Z"}"#;
        assert_eq!(super::ids(quick), Some(("u7".into(), "m1-2".into())));
        let anonymous = r#"{"type":"page","anonymousId":"a9","messageId":"m3","timestamp":"2026-12-07T00:00:00Z"}"#;
        assert_eq!(super::ids(anonymous), Some(("a9".into(), "m3".into())));
        assert_eq!(super::ids("not json"), None);
    }
}
