//! The results, as text for a person and JSON for a tool.

use crate::measure::Step;
use crate::traffic::Sent;
use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Reads a Prometheus text page; each metric's samples summed over their
/// labels (histograms as their `_sum` and `_count`).
pub async fn scrape(url: &url::Url) -> anyhow::Result<BTreeMap<String, f64>> {
    let text = reqwest::get(url.clone())
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|error| anyhow::anyhow!("cannot read --metrics {url}: {error}"))?
        .text()
        .await?;
    Ok(parse_metrics(&text))
}

fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    let mut sums = BTreeMap::new();
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let name = series.split('{').next().unwrap_or(series);
        if name.ends_with("_bucket") || name.is_empty() {
            continue;
        }
        if let Ok(value) = value.parse::<f64>() {
            *sums.entry(name.to_string()).or_insert(0.0) += value;
        }
    }
    sums
}

/// Percentiles in milliseconds, from microseconds.
fn percentiles(histogram: &Histogram<u64>) -> Value {
    let ms = |micros: u64| (micros as f64).round() / 1000.0;
    if histogram.is_empty() {
        return json!({"count": 0});
    }
    json!({
        "count": histogram.len(),
        "p50": ms(histogram.value_at_quantile(0.50)),
        "p90": ms(histogram.value_at_quantile(0.90)),
        "p99": ms(histogram.value_at_quantile(0.99)),
        "p999": ms(histogram.value_at_quantile(0.999)),
        "max": ms(histogram.max()),
    })
}

fn per_second(results: &Sent) -> f64 {
    results.events_accepted as f64 / results.elapsed.as_secs_f64().max(1e-9)
}

/// One step as JSON. `raw`: the broker alone, whose deliveries are timed
/// like immediate decisions.
pub fn step_json(step: &Step, via: &str, raw: bool) -> Value {
    let (plan, sent) = (&step.plan, &step.sent);
    let mut out = json!({
        "via": via,
        "rate_target": plan.rate,
        "duration_s": plan.duration.as_secs(),
        "batch": plan.batch,
        "customers": plan.customers,
        "seed": plan.seed,
        "events_sent": sent.events_sent,
        "events_accepted": sent.events_accepted,
        "throughput_in": per_second(sent).round(),
        "send_latency_ms": percentiles(&sent.latency_us),
        "statuses": sent.statuses.iter().map(|(status, count)| (status.to_string(), json!(count))).collect::<Map<_, _>>(),
        "accepted_per_second": sent.accepted_per_second,
    });
    let object = out.as_object_mut().expect("an object");
    if let Some(backlog) = step.backlog {
        object.insert("backlog_at_end".into(), json!(backlog));
    }
    if let Some(seen) = &step.seen {
        let read = seen.sent + seen.suppressed;
        let seconds = seen.per_second.len().max(1) as f64;
        if raw {
            object.insert("events_delivered".into(), json!(read));
            object.insert(
                "throughput_out".into(),
                json!((read as f64 / seconds).round()),
            );
            object.insert(
                "delivery_latency_ms".into(),
                percentiles(&seen.immediate_us),
            );
            object.insert("delivered_per_second".into(), json!(seen.per_second));
        } else {
            object.insert("actions_received".into(), json!(read));
            object.insert("actions_sent".into(), json!(seen.sent));
            object.insert("actions_suppressed".into(), json!(seen.suppressed));
            object.insert(
                "throughput_out".into(),
                json!((read as f64 / seconds).round()),
            );
            object.insert("dlq".into(), json!(seen.dlq));
            object.insert(
                "immediate_latency_ms".into(),
                percentiles(&seen.immediate_us),
            );
            object.insert("timer_lateness_ms".into(), percentiles(&seen.timer_us));
            object.insert("actions_per_second".into(), json!(seen.per_second));
        }
    }
    if let Some(engine) = &step.engine {
        object.insert("engine".into(), json!(engine));
    }
    out
}

/// One step for a person.
pub fn step_text(step: &Step, via: &str, raw: bool) -> String {
    let (plan, sent) = (&step.plan, &step.sent);
    let mut out = String::new();
    let line = |out: &mut String, label: &str, value: &Value| {
        if value["count"] == 0 {
            let _ = writeln!(out, "{label}: none");
        } else {
            let _ = writeln!(
                out,
                "{label}, ms: p50 {} p90 {} p99 {} p99.9 {} max {} ({} measured)",
                value["p50"],
                value["p90"],
                value["p99"],
                value["p999"],
                value["max"],
                value["count"]
            );
        }
    };
    let _ = writeln!(
        out,
        "\n{} events/s for {} s via {}{}, sends of {}, {} customers, seed {}",
        plan.rate,
        plan.duration.as_secs(),
        via,
        if raw { " (the broker alone)" } else { "" },
        plan.batch,
        plan.customers,
        plan.seed
    );
    let _ = writeln!(
        out,
        "events sent {}, stored {} ({:.0} events/s over {:.1} s)",
        sent.events_sent,
        sent.events_accepted,
        per_second(sent),
        sent.elapsed.as_secs_f64()
    );
    line(
        &mut out,
        "send latency from schedule",
        &percentiles(&sent.latency_us),
    );
    let statuses: Vec<String> = sent
        .statuses
        .iter()
        .map(|(status, count)| match status {
            0 => format!("no answer: {count}"),
            &crate::traffic::DUPLICATE => {
                format!("stored before (duplicate message ids, not new load; use another --seed): {count}")
            }
            status => format!("{status}: {count}"),
        })
        .collect();
    let _ = writeln!(out, "answers: {}", statuses.join(", "));
    if let Some(backlog) = step.backlog {
        let _ = writeln!(out, "backlog when sending ended: {backlog} events");
    }
    if let Some(seen) = &step.seen {
        if raw {
            let _ = writeln!(out, "delivered {}", seen.sent);
            line(
                &mut out,
                "event → delivery",
                &percentiles(&seen.immediate_us),
            );
        } else {
            let _ = writeln!(
                out,
                "decisions read {} (sent {}, suppressed {}; {} from earlier traffic not measured), DLQ {}",
                seen.sent + seen.suppressed,
                seen.sent,
                seen.suppressed,
                seen.earlier,
                seen.dlq
            );
            line(
                &mut out,
                "immediate triggers, event → action",
                &percentiles(&seen.immediate_us),
            );
            line(
                &mut out,
                "timers, deadline → action",
                &percentiles(&seen.timer_us),
            );
        }
    }
    if let Some(engine) = &step.engine {
        let pick = |name: &str| engine.get(name).copied().unwrap_or(0.0);
        let _ = writeln!(
            out,
            "engine: events {}, DLQ {}, actions sent {}, customers {}, consumer pending {}",
            pick("kairos_events_total"),
            pick("kairos_dlq_total"),
            pick("kairos_actions_sent_total"),
            pick("kairos_customers"),
            pick("kairos_consumer_pending")
        );
    }
    out
}

/// A ramp: each step with its verdict, and the knee (the highest rate
/// sustained).
pub fn ramp_json(steps: &[(Step, Result<(), String>)], via: &str, raw: bool) -> Value {
    let knee = steps
        .iter()
        .take_while(|(_, verdict)| verdict.is_ok())
        .last();
    let mut out = json!({
        "mode": "ramp",
        "system": if raw { "raw" } else { "kairos" },
        "knee_rate": knee.map(|(step, _)| step.plan.rate),
        "steps": steps.iter().map(|(step, verdict)| {
            let mut json = step_json(step, via, raw);
            json["sustained"] = json!(verdict.is_ok());
            if let Err(why) = verdict {
                json["broke"] = json!(why);
            }
            json
        }).collect::<Vec<_>>(),
    });
    if let Some((step, _)) = knee {
        let at_knee = step_json(step, via, raw);
        let key = if raw {
            "delivery_latency_ms"
        } else {
            "immediate_latency_ms"
        };
        out["throughput_in"] = at_knee["throughput_in"].clone();
        out[key] = at_knee[key].clone();
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn metrics_are_summed_over_labels_and_buckets_left_out() {
        let sums = super::parse_metrics(
            "# TYPE kairos_events_total counter\nkairos_events_total{type=\"track\"} 10\nkairos_events_total{type=\"page\"} 5\nkairos_customers 3\nkairos_x_seconds_bucket{le=\"0.1\"} 9\nkairos_x_seconds_sum 0.5\n",
        );
        assert_eq!(sums.get("kairos_events_total"), Some(&15.0));
        assert_eq!(sums.get("kairos_customers"), Some(&3.0));
        assert_eq!(sums.get("kairos_x_seconds_sum"), Some(&0.5));
        assert!(!sums.contains_key("kairos_x_seconds_bucket"));
    }
}
