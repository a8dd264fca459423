//! Reading the decisions kairos publishes while the load runs, and how
//! long after their cause each came.

use futures::StreamExt;
use hdrhistogram::Histogram;
use kairos_model::Timestamp;
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// How a trigger fires, which says what its delay measures (see
/// [`classify`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timing {
    /// On an event (count, sequence, threshold, rate, not on a window's
    /// close nor delayed): `fired_at` is the event's time, which the load
    /// generator sets to its send time, so the delay from it is event →
    /// action latency.
    Immediate,
    /// On a deadline (absence, inactivity, schedule, a window's close, or a
    /// decision deferred to a later hour): `decided_at` is the deadline, so
    /// the delay is how late the timer's action came.
    Timer,
}

/// The timing of each trigger of a pipeline file.
pub fn timings(pipeline: &std::path::Path) -> anyhow::Result<HashMap<String, Timing>> {
    let text = std::fs::read_to_string(pipeline)
        .map_err(|error| anyhow::anyhow!("--pipeline {}: {error}", pipeline.display()))?;
    let file: toml::Value = toml::from_str(&text)
        .map_err(|error| anyhow::anyhow!("--pipeline {}: {error}", pipeline.display()))?;
    let mut timings = HashMap::new();
    for trigger in file
        .get("trigger")
        .and_then(toml::Value::as_array)
        .into_iter()
        .flatten()
    {
        let (Some(id), Some(kind)) = (
            trigger.get("id").and_then(toml::Value::as_str),
            trigger.get("kind").and_then(toml::Value::as_str),
        ) else {
            continue;
        };
        let on_close = trigger.get("fire").and_then(toml::Value::as_str) == Some("on_close");
        // A `delay` other than zero puts step 1 at a deadline after the event.
        let delayed = trigger
            .get("delay")
            .and_then(toml::Value::as_str)
            .is_some_and(|delay| delay.chars().any(|c| c.is_ascii_digit() && c != '0'));
        let timing = match kind {
            "absence" | "inactivity" | "schedule" => Timing::Timer,
            _ if on_close || delayed => Timing::Timer,
            _ => Timing::Immediate,
        };
        timings.insert(id.to_string(), timing);
    }
    Ok(timings)
}

/// What was read.
pub struct Seen {
    /// Microseconds from an immediate trigger's event to its decision.
    pub immediate_us: Histogram<u64>,
    /// Microseconds from a timer's deadline to its decision.
    pub timer_us: Histogram<u64>,
    /// Decisions sent (on a channel's subject) and suppressed.
    pub sent: u64,
    pub suppressed: u64,
    /// Decisions caused by traffic from before this run, not measured.
    pub earlier: u64,
    /// Entries put in the DLQ.
    pub dlq: u64,
    /// Decisions read in each second after `since_ms`.
    pub per_second: Vec<u64>,
    /// Where `per_second` and the per-second histograms start (ms since
    /// the epoch).
    pub since_ms: i64,
    /// When the last one counted was read, wall clock (µs since the
    /// epoch); 0 before the first.
    pub last_read_us: i64,
    /// The delays of each second, immediate and timers.
    pub immediate_per_second: Vec<Histogram<u64>>,
    pub timer_per_second: Vec<Histogram<u64>>,
}

impl Seen {
    /// Nothing seen yet, counting seconds from `since_ms`.
    pub fn since(since_ms: i64) -> Seen {
        let histogram = || Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds");
        Seen {
            immediate_us: histogram(),
            timer_us: histogram(),
            sent: 0,
            suppressed: 0,
            earlier: 0,
            dlq: 0,
            per_second: Vec::new(),
            since_ms,
            last_read_us: 0,
            immediate_per_second: Vec::new(),
            timer_per_second: Vec::new(),
        }
    }
}

impl Default for Seen {
    fn default() -> Seen {
        Seen::since(0)
    }
}

/// Adds `count` to the counter of `second`, making the counters up to it.
pub fn add_in_second(counters: &mut Vec<u64>, second: usize, count: u64) {
    if counters.len() <= second {
        counters.resize(second + 1, 0);
    }
    counters[second] += count;
}

/// The 99th percentile of `histogram` (µs) in ms.
pub fn p99_ms(histogram: &Histogram<u64>) -> f64 {
    histogram.value_at_quantile(0.99) as f64 / 1000.0
}

/// Records `micros` in the histogram of `second`, making the histograms
/// up to it (two significant digits: enough for a plot over time).
pub fn record_in_second(histograms: &mut Vec<Histogram<u64>>, second: usize, micros: u64) {
    while histograms.len() <= second {
        histograms.push(Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("valid bounds"));
    }
    histograms[second].saturating_record(micros);
}

/// How much later than its `fired_at` an immediate trigger's decision may
/// be decided and still be the event's own (the engine decides at its
/// clock, the newest event time it has applied: an event applied just
/// after a later one is decided at that one's time); later, it is a send
/// deferred to a later time (quiet hours, a frequency cap), a deadline.
pub const DEFERRED_AFTER_MS: i64 = 1_000;

/// Whether a decision is timed as an immediate trigger's or a timer's, and
/// from which moment (ms): an immediate trigger's first step from its
/// `fired_at`, the causing event's time (its send time); a timer's, a
/// ladder's later step's or a deferred send's from its `decided_at`, the
/// deadline.
pub fn classify(
    timing: Option<Timing>,
    step: u64,
    fired_ms: i64,
    decided_ms: i64,
) -> (Timing, i64) {
    if timing == Some(Timing::Timer) || step > 1 || decided_ms > fired_ms + DEFERRED_AFTER_MS {
        (Timing::Timer, decided_ms)
    } else {
        (Timing::Immediate, fired_ms)
    }
}

/// The messages `stream` stores from now on under `subject`, in order.
async fn read_from_now(
    js: &async_nats::jetstream::Context,
    stream: &str,
    subject: &str,
) -> anyhow::Result<async_nats::jetstream::consumer::pull::Ordered> {
    let stream = js
        .get_stream(stream)
        .await
        .map_err(|error| anyhow::anyhow!("no stream {stream} (is kairos run up?): {error}"))?;
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
            filter_subject: subject.to_string(),
            deliver_policy: async_nats::jetstream::consumer::DeliverPolicy::New,
            ..Default::default()
        })
        .await?;
    Ok(consumer.messages().await?)
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_micros() as i64)
}

/// Reads `kairos.actions.>` and `kairos.dlq.>` until `stop` turns true;
/// decisions fired before `since_ms` (earlier traffic) are counted apart.
pub async fn watch(
    client: async_nats::Client,
    timings: HashMap<String, Timing>,
    since_ms: i64,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<Seen> {
    // Ordered consumers from now on, flow-controlled by JetStream: a core
    // subscription would drop what a busy reader falls behind on.
    let js = async_nats::jetstream::new(client);
    let mut actions = read_from_now(&js, "KAIROS_ACTIONS", "kairos.actions.>").await?;
    let mut dlq = read_from_now(&js, "KAIROS_DLQ", "kairos.dlq.>").await?;
    let mut seen = Seen::since(since_ms);
    // A live line every 2 s (the sender prints its own beside it).
    let mut progress = tokio::time::interval_at(
        tokio::time::Instant::now() + std::time::Duration::from_secs(2),
        std::time::Duration::from_secs(2),
    );
    let mut window = (Seen::default(), 0u64);
    loop {
        tokio::select! {
            _ = progress.tick() => {
                let (recent, read) = &mut window;
                let p99 = |histogram: &Histogram<u64>| {
                    if histogram.is_empty() {
                        "-".to_string()
                    } else {
                        format!("{:.1} ms", p99_ms(histogram))
                    }
                };
                println!(
                    "        decisions read {} (+{read} in 2 s)  p99 event → action {}  deadline → action {}  DLQ {}",
                    seen.sent + seen.suppressed,
                    p99(&recent.immediate_us),
                    p99(&recent.timer_us),
                    seen.dlq,
                );
                *recent = Seen::default();
                *read = 0;
            }
            Some(message) = actions.next() => {
                let read_at = now_us();
                let message = match message {
                    Ok(message) => message,
                    Err(error) => {
                        // The ordered consumer recreates itself and goes on
                        // from where it was.
                        eprintln!("kairos-loadtest: reading actions: {error}");
                        continue;
                    }
                };
                let Ok(action) = serde_json::from_slice::<serde_json::Value>(&message.payload) else {
                    continue;
                };
                let data = &action["data"];
                let time = |field: &str| {
                    data[field]
                        .as_str()
                        .and_then(|text| Timestamp::parse_rfc3339(text).ok())
                };
                let (Some(fired), Some(decided)) = (time("fired_at"), time("decided_at")) else {
                    continue;
                };
                if fired.0 < since_ms {
                    seen.earlier += 1;
                    continue;
                }
                seen.last_read_us = read_at;
                if data["suppressed"].is_null() {
                    seen.sent += 1;
                } else {
                    seen.suppressed += 1;
                }
                let timing = data["trigger"].as_str().and_then(|id| timings.get(id)).copied();
                let step = data["step"].as_u64().unwrap_or(1);
                let (timing, from_ms) = classify(timing, step, fired.0, decided.0);
                let delay = (read_at - from_ms * 1000).max(1) as u64;
                let second = ((read_at / 1000 - since_ms) / 1000).max(0) as usize;
                window.1 += 1;
                if timing == Timing::Timer {
                    seen.timer_us.saturating_record(delay);
                    window.0.timer_us.saturating_record(delay);
                    record_in_second(&mut seen.timer_per_second, second, delay);
                } else {
                    seen.immediate_us.saturating_record(delay);
                    window.0.immediate_us.saturating_record(delay);
                    record_in_second(&mut seen.immediate_per_second, second, delay);
                }
                add_in_second(&mut seen.per_second, second, 1);
            }
            Some(entry) = dlq.next() => {
                if entry.is_ok() {
                    seen.dlq += 1;
                }
            }
            _ = stop.changed() => break,
        }
    }
    Ok(seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_decided_at_a_later_events_time_is_still_immediate() {
        let (fired, ms) = (1_000_000, 1);
        // Applied just after an event 1 ms newer: decided at its time.
        assert_eq!(
            classify(Some(Timing::Immediate), 1, fired, fired + ms),
            (Timing::Immediate, fired)
        );
        assert_eq!(
            classify(Some(Timing::Immediate), 1, fired, fired),
            (Timing::Immediate, fired)
        );
        // Deferred to the end of quiet hours: the deadline's lateness.
        let morning = fired + 6 * 3_600_000;
        assert_eq!(
            classify(Some(Timing::Immediate), 1, fired, morning),
            (Timing::Timer, morning)
        );
        // A ladder's second step, and a timer, from their deadline.
        assert_eq!(
            classify(Some(Timing::Immediate), 2, fired, fired),
            (Timing::Timer, fired)
        );
        assert_eq!(
            classify(Some(Timing::Timer), 1, fired - 10, fired),
            (Timing::Timer, fired)
        );
    }

    #[test]
    fn a_delayed_trigger_is_a_timer() {
        let dir = std::env::temp_dir().join(format!("kairos-timings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.toml");
        std::fs::write(
            &path,
            "[[trigger]]\nid = \"later\"\nkind = \"count\"\ndelay = \"10m\"\n\n[[trigger]]\nid = \"now\"\nkind = \"count\"\ndelay = \"0s\"\n\n[[trigger]]\nid = \"plain\"\nkind = \"rate\"\n",
        )
        .unwrap();
        let timings = timings(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(timings.get("later"), Some(&Timing::Timer));
        assert_eq!(timings.get("now"), Some(&Timing::Immediate));
        assert_eq!(timings.get("plain"), Some(&Timing::Immediate));
    }
}
