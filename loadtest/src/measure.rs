//! One measured step: traffic at one rate for a while, what kairos (or the
//! bare broker) made of it, and whether it kept up.

use crate::actions::{self, Seen, Timing};
use crate::raw;
use crate::report;
use crate::traffic::{self, Plan, Sent, Target};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What is measured.
pub enum System {
    /// kairos: decisions read from `kairos.actions.>` and timed; the
    /// engine's metrics read when given.
    Kairos {
        client: Option<async_nats::Client>,
        timings: HashMap<String, Timing>,
        metrics: Option<url::Url>,
    },
    /// The broker alone (`raw`): events read back from the baseline's stream.
    Raw { js: async_nats::jetstream::Context },
}

/// What one step measured.
pub struct Step {
    pub plan: Plan,
    pub sent: Sent,
    /// Decisions (kairos) or deliveries (raw); none without NATS.
    pub seen: Option<Seen>,
    /// Events stored but not yet taken by kairos (or the raw consumer) when
    /// sending ended; none when it cannot be known (kairos without --nats
    /// nor --metrics).
    pub backlog: Option<u64>,
    /// The engine's metrics at the end (kairos with --metrics).
    pub engine: Option<BTreeMap<String, f64>>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64)
}

/// Sends `plan` to `target` and measures `system` meanwhile, reading for
/// `linger` more after the last send (timers due; the raw consumer stops
/// as soon as it has read everything stored).
pub async fn step(
    system: &System,
    target: &Target,
    plan: Plan,
    linger: Duration,
) -> anyhow::Result<Step> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let since_ms = now_ms();
    match system {
        System::Kairos {
            client,
            timings,
            metrics,
        } => {
            let watcher = client.clone().map(|client| {
                tokio::spawn(actions::watch(client, timings.clone(), since_ms, stopped))
            });
            let sent = traffic::send(&plan, target.clone()).await?;
            let backlog = match client {
                Some(client) => engine_backlog(client).await.map_err(|error| {
                    eprintln!("kairos-loadtest: no backlog from JetStream: {error:#}");
                }),
                None => Err(()),
            };
            let backlog = match (backlog, metrics) {
                (Ok(backlog), _) => Some(backlog),
                // The engine's gauge: as of the last event it took (stale
                // while it takes none), without those delivered to it and
                // not yet applied.
                (Err(()), Some(url)) => report::scrape(url)
                    .await
                    .map_err(|error| eprintln!("kairos-loadtest: {error:#}"))
                    .ok()
                    .and_then(|metrics| metrics.get("kairos_consumer_pending").copied())
                    .map(|pending| pending as u64),
                (Err(()), None) => None,
            };
            let seen = match watcher {
                Some(watcher) => {
                    tokio::time::sleep(linger).await;
                    let _ = stop.send(true);
                    Some(watcher.await??)
                }
                None => None,
            };
            // The engine's counters are reported beside the measurements,
            // not needed for them: a failed read is said and left out.
            let engine = match metrics {
                Some(url) => report::scrape(url)
                    .await
                    .map_err(|error| eprintln!("kairos-loadtest: {error:#}"))
                    .ok(),
                None => None,
            };
            Ok(Step {
                plan,
                sent,
                seen,
                backlog,
                engine,
            })
        }
        System::Raw { js } => {
            let consumed = Arc::new(AtomicU64::new(0));
            let reader = tokio::spawn(raw::consume(
                js.clone(),
                Arc::clone(&consumed),
                since_ms,
                stopped,
            ));
            let sent = traffic::send(&plan, target.clone()).await?;
            let backlog = sent
                .events_accepted
                .saturating_sub(consumed.load(Ordering::Acquire));
            let deadline = Instant::now() + linger;
            while consumed.load(Ordering::Acquire) < sent.events_accepted
                && Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let _ = stop.send(true);
            let seen = reader.await??;
            Ok(Step {
                plan,
                sent,
                seen: Some(seen),
                backlog: Some(backlog),
                engine: None,
            })
        }
    }
}

/// Events stored and not yet applied by kairos, now, as JetStream counts
/// them for the engine's consumer: not yet delivered, and delivered but not
/// acknowledged (taken, maybe not applied yet). The engine's own
/// `kairos_consumer_pending` is the first only, as of the last event it
/// took: an engine that stopped taking events would keep showing the small
/// backlog it had then.
async fn engine_backlog(client: &async_nats::Client) -> anyhow::Result<u64> {
    let js = async_nats::jetstream::new(client.clone());
    let info = js
        .get_stream(kairos_nats::streams::EVENTS_STREAM)
        .await
        .map_err(|error| anyhow::anyhow!("the events stream: {error}"))?
        .consumer_info(kairos_nats::worker::CONSUMER)
        .await
        .map_err(|error| anyhow::anyhow!("the engine's consumer: {error}"))?;
    Ok(info.num_pending + info.num_ack_pending as u64)
}

/// Limits a ramp's step must keep to count as sustained.
pub struct Limits {
    /// p99 of event → action (kairos) or event → delivery (raw), ms.
    pub p99_ms: f64,
    /// Events stored but not taken when sending ended, in seconds of the
    /// step's rate.
    pub backlog_seconds: f64,
}

/// Whether `step` kept to `limits`; if not, why.
pub fn sustained(step: &Step, limits: &Limits) -> Result<(), String> {
    let refused: u64 = step
        .sent
        .statuses
        .iter()
        .filter(|(status, _)| **status != 200)
        .map(|(_, count)| count)
        .sum();
    if refused > 0 {
        return Err(format!("{refused} sends not stored"));
    }
    if let Some(backlog) = step.backlog {
        let allowed = limits.backlog_seconds * f64::from(step.plan.rate);
        if backlog as f64 > allowed {
            return Err(format!("backlog {backlog} events over {allowed:.0}"));
        }
    }
    if let Some(seen) = &step.seen {
        if !seen.immediate_us.is_empty() {
            let p99 = crate::actions::p99_ms(&seen.immediate_us);
            if p99 > limits.p99_ms {
                return Err(format!("p99 {p99:.1} ms over {} ms", limits.p99_ms));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::Histogram;

    fn step(rate: u32, statuses: &[(u16, u64)], backlog: Option<u64>, p99_us: u64) -> Step {
        let mut seen = Seen::default();
        for _ in 0..100 {
            seen.immediate_us.record(p99_us).unwrap();
        }
        Step {
            plan: Plan::shoppers(rate, Duration::from_secs(10), 100, 10, 1),
            sent: Sent {
                latency_us: Histogram::new(3).unwrap(),
                events_sent: 0,
                events_accepted: 0,
                statuses: statuses.iter().copied().collect(),
                elapsed: Duration::from_secs(10),
                start_ms: 0,
                accepted_per_second: Vec::new(),
                latency_per_second: Vec::new(),
            },
            seen: Some(seen),
            backlog,
            engine: None,
        }
    }

    #[test]
    fn a_step_is_sustained_within_its_limits_and_says_which_it_broke() {
        let limits = Limits {
            p99_ms: 10.0,
            backlog_seconds: 1.0,
        };
        assert_eq!(
            sustained(&step(1_000, &[(200, 100)], Some(999), 9_000), &limits),
            Ok(())
        );
        let verdicts = [
            sustained(
                &step(1_000, &[(200, 99), (503, 1)], Some(0), 1_000),
                &limits,
            ),
            sustained(&step(1_000, &[(200, 100)], Some(1_001), 1_000), &limits),
            sustained(&step(1_000, &[(200, 100)], None, 12_000), &limits),
        ];
        let says = [
            "1 sends not stored",
            "backlog 1001 events over 1000",
            "p99 12.0 ms over 10 ms",
        ];
        for (verdict, says) in verdicts.iter().zip(says) {
            assert!(verdict.as_ref().unwrap_err().contains(says), "{verdict:?}");
        }
    }
}
