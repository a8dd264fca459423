//! The results, as text for a person and JSON for a tool.

use crate::traffic::{Plan, Results};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::fmt::Write as _;

/// Latency percentiles in milliseconds.
fn percentiles(histogram: &Histogram<u64>) -> Value {
    let ms = |micros: u64| (micros as f64 / 1000.0 * 1000.0).round() / 1000.0;
    json!({
        "p50": ms(histogram.value_at_quantile(0.50)),
        "p90": ms(histogram.value_at_quantile(0.90)),
        "p99": ms(histogram.value_at_quantile(0.99)),
        "p999": ms(histogram.value_at_quantile(0.999)),
        "max": ms(histogram.max()),
    })
}

fn throughput_in(results: &Results) -> f64 {
    results.events_accepted as f64 / results.elapsed.as_secs_f64().max(1e-9)
}

pub fn json(plan: &Plan, results: &Results) -> Value {
    json!({
        "mode": "ingest",
        "via": "http",
        "rate_target": plan.rate,
        "duration_s": plan.duration.as_secs(),
        "batch": plan.batch,
        "customers": plan.customers,
        "events_sent": results.events_sent,
        "events_accepted": results.events_accepted,
        "throughput_in": throughput_in(results).round(),
        "request_latency_ms": percentiles(&results.latency_us),
        "statuses": results.statuses.iter().map(|(status, count)| (status.to_string(), json!(count))).collect::<serde_json::Map<_, _>>(),
        "accepted_per_second": results.accepted_per_second,
    })
}

pub fn text(plan: &Plan, results: &Results) -> String {
    let latency = percentiles(&results.latency_us);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nrate {} events/s for {} s, batches of {}, {} customers",
        plan.rate,
        plan.duration.as_secs(),
        plan.batch,
        plan.customers
    );
    let _ = writeln!(
        out,
        "events sent {}, accepted {} ({:.0} events/s over {:.1} s)",
        results.events_sent,
        results.events_accepted,
        throughput_in(results),
        results.elapsed.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "request latency from schedule, ms: p50 {} p90 {} p99 {} p99.9 {} max {}",
        latency["p50"], latency["p90"], latency["p99"], latency["p999"], latency["max"]
    );
    let statuses: Vec<String> = results
        .statuses
        .iter()
        .map(|(status, count)| match status {
            0 => format!("no answer: {count}"),
            status => format!("{status}: {count}"),
        })
        .collect();
    let _ = writeln!(out, "answers: {}", statuses.join(", "));
    out
}
