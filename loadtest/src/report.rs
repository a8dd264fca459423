//! The results, as text for a person and JSON for a tool.

use crate::measure::Step;
use crate::plots;
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

/// Decisions (or deliveries) read a second, from the first event's time
/// to the last read: the span throughput in is measured over, plus the
/// last ones' latency (not whole seconds counted from before the first
/// send).
fn throughput_out(sent: &Sent, seen: &crate::actions::Seen) -> f64 {
    let read = (seen.sent + seen.suppressed) as f64;
    let span_us = seen.last_read_us - sent.start_ms * 1000;
    if read == 0.0 || span_us <= 0 {
        return 0.0;
    }
    read / (span_us as f64 / 1e6)
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
        if raw {
            object.insert("events_delivered".into(), json!(read));
            object.insert(
                "throughput_out".into(),
                json!(throughput_out(sent, seen).round()),
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
                json!(throughput_out(sent, seen).round()),
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

/// The broker's ceiling from the JSON a --raw run wrote: a ramp's knee, or
/// a single run's throughput out.
pub fn raw_ceiling(path: &std::path::Path) -> anyhow::Result<f64> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| anyhow::anyhow!("--raw-baseline {}: {error}", path.display()))?;
    let json: Value = serde_json::from_str(&text)
        .map_err(|error| anyhow::anyhow!("--raw-baseline {}: not JSON: {error}", path.display()))?;
    let ceiling = match (json["mode"].as_str(), json["system"].as_str()) {
        (Some("ramp"), Some("raw")) => json["knee_rate"].as_f64(),
        (Some("raw"), _) => json["throughput_out"].as_f64(),
        _ => None,
    };
    ceiling.filter(|ceiling| *ceiling > 0.0).ok_or_else(|| {
        anyhow::anyhow!(
            "--raw-baseline {}: not the JSON of a --raw run with a throughput; accepted: the --json of `kairos-loadtest --raw` or `--raw --ramp`",
            path.display()
        )
    })
}

/// Adds the broker's ceiling and this run's ratio to it (a ramp's knee, or
/// a run's throughput in) to `json`, and says it.
pub fn compare_to_raw(json: &mut Value, ceiling: Option<f64>) {
    let Some(ceiling) = ceiling else { return };
    let ours = json["knee_rate"]
        .as_f64()
        .or_else(|| json["throughput_in"].as_f64())
        .unwrap_or(0.0);
    let ratio = ours / ceiling;
    json["raw_ceiling"] = json!(ceiling);
    json["ratio_to_raw"] = json!((ratio * 1000.0).round() / 1000.0);
    println!(
        "against the broker alone: {ours:.0} of its {ceiling:.0} events/s = {:.0} %",
        ratio * 100.0
    );
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

/// The report page: the summary and the plots, one self-contained HTML
/// file.
fn page(title: &str, summary: &str, charts: &[String]) -> String {
    let escape = |text: &str| {
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let mut html = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{}</title>\n<style>body{{font-family:sans-serif;margin:2em}}pre{{background:#f6f6f6;padding:1em}}</style></head><body>\n<h1>{}</h1>\n<pre>{}</pre>\n",
        escape(title),
        escape(title),
        escape(summary.trim())
    );
    for chart in charts {
        html.push_str("<div>");
        html.push_str(chart);
        html.push_str("</div>\n");
    }
    html.push_str("</body></html>\n");
    html
}

/// One step's report: latency over time, its distribution, throughput in
/// and out over time.
pub fn step_html(step: &Step, via: &str, raw: bool) -> String {
    let seconds = |x: &f64| format!("{x:.0} s");
    let mut over_time = vec![plots::p99_per_second(
        "send (scheduled → stored)",
        &step.sent.latency_per_second,
    )];
    let mut distributions = vec![("send (scheduled → stored)", &step.sent.latency_us)];
    let mut throughput = vec![plots::per_second(
        "in: events stored",
        &step.sent.accepted_per_second,
    )];
    // The decisions' series count from when reading began, the sends'
    // from the schedule's start: both drawn against the schedule.
    let aligned = |mut series: plots::Series, seen: &crate::actions::Seen| {
        let shift = (seen.since_ms - step.sent.start_ms) as f64 / 1000.0;
        for point in &mut series.points {
            point.0 += shift;
        }
        series
    };
    if let Some(seen) = &step.seen {
        if raw {
            over_time.push(aligned(
                plots::p99_per_second("event → delivery", &seen.immediate_per_second),
                seen,
            ));
            distributions.push(("event → delivery", &seen.immediate_us));
            throughput.push(aligned(
                plots::per_second("out: events delivered", &seen.per_second),
                seen,
            ));
        } else {
            over_time.push(aligned(
                plots::p99_per_second("event → action (immediate)", &seen.immediate_per_second),
                seen,
            ));
            over_time.push(aligned(
                plots::p99_per_second("deadline → action (timers)", &seen.timer_per_second),
                seen,
            ));
            distributions.push(("event → action (immediate)", &seen.immediate_us));
            distributions.push(("deadline → action (timers)", &seen.timer_us));
            throughput.push(aligned(
                plots::per_second("out: decisions", &seen.per_second),
                seen,
            ));
        }
    }
    let charts = [
        plots::line_chart(
            "Latency over time (p99 of each second)",
            "time",
            "ms",
            &over_time,
            &seconds,
        ),
        plots::percentile_chart("Latency distribution", &distributions),
        plots::line_chart(
            "Throughput over time",
            "time",
            "per second",
            &throughput,
            &seconds,
        ),
    ];
    let title = format!(
        "kairos-loadtest: {} events/s via {via}{}",
        step.plan.rate,
        if raw { ", the broker alone" } else { "" }
    );
    page(&title, &step_text(step, via, raw), &charts)
}

/// A ramp's report: p99 and throughput against the rate, the knee marked
/// in the summary.
pub fn ramp_html(steps: &[(Step, Result<(), String>)], via: &str, raw: bool) -> String {
    let rate = |x: &f64| format!("{x:.0}");
    let p99 = crate::actions::p99_ms;
    let mut latency = vec![plots::Series {
        name: "send p99".into(),
        points: steps
            .iter()
            .map(|(step, _)| (f64::from(step.plan.rate), p99(&step.sent.latency_us)))
            .collect(),
    }];
    let mut throughput = vec![plots::Series {
        name: "in: events stored per second".into(),
        points: steps
            .iter()
            .map(|(step, _)| (f64::from(step.plan.rate), per_second(&step.sent)))
            .collect(),
    }];
    let name = if raw {
        "event → delivery p99"
    } else {
        "event → action p99 (immediate)"
    };
    latency.push(plots::Series {
        name: name.into(),
        points: steps
            .iter()
            .filter_map(|(step, _)| {
                Some((
                    f64::from(step.plan.rate),
                    p99(&step.seen.as_ref()?.immediate_us),
                ))
            })
            .collect(),
    });
    throughput.push(plots::Series {
        name: if raw {
            "out: delivered per second"
        } else {
            "out: decisions per second"
        }
        .into(),
        points: steps
            .iter()
            .filter_map(|(step, _)| {
                let seen = step.seen.as_ref()?;
                Some((f64::from(step.plan.rate), throughput_out(&step.sent, seen)))
            })
            .collect(),
    });
    let json = ramp_json(steps, via, raw);
    let mut summary = match json["knee_rate"].as_u64() {
        Some(knee) => format!("knee: {knee} events/s (the highest rate sustained)\n"),
        None => "no step was sustained\n".to_string(),
    };
    for (step, verdict) in steps {
        summary.push_str(&step_text(step, via, raw));
        match verdict {
            Ok(()) => summary.push_str("sustained\n"),
            Err(why) => summary.push_str(&format!("not sustained: {why}\n")),
        }
    }
    let charts = [
        plots::line_chart(
            "p99 latency against the rate",
            "events/s sent",
            "ms",
            &latency,
            &rate,
        ),
        plots::line_chart(
            "Throughput against the rate",
            "events/s sent",
            "per second",
            &throughput,
            &rate,
        ),
    ];
    let title = format!(
        "kairos-loadtest ramp via {via}{}",
        if raw { ", the broker alone" } else { "" }
    );
    page(&title, &summary, &charts)
}

#[cfg(test)]
mod tests {
    #[test]
    fn throughput_out_is_over_the_span_of_the_sends_and_reads() {
        use crate::actions::Seen;
        use crate::measure::Step;
        use crate::traffic::{Plan, Sent};
        use std::time::Duration;
        let start_ms = 1_800_000_000_000;
        // 10,000 read in the 10 s from the first event's time to the last
        // read (the reader started 0.5 s before the first send).
        let seen = Seen {
            sent: 10_000,
            per_second: vec![1_000; 11],
            last_read_us: (start_ms + 10_000) * 1000,
            ..Seen::default()
        };
        let step = Step {
            plan: Plan::shoppers(1_000, Duration::from_secs(10), 100, 10, 1),
            sent: Sent {
                latency_us: hdrhistogram::Histogram::new(3).unwrap(),
                events_sent: 10_000,
                events_accepted: 10_000,
                statuses: [(200, 1_000)].into_iter().collect(),
                elapsed: Duration::from_secs(10),
                start_ms,
                accepted_per_second: Vec::new(),
                latency_per_second: Vec::new(),
            },
            seen: Some(seen),
            backlog: Some(0),
            engine: None,
        };
        for raw in [false, true] {
            let json = super::step_json(&step, "nats", raw);
            assert_eq!(json["throughput_in"], 1_000.0);
            assert_eq!(json["throughput_out"], 1_000.0, "raw {raw}");
        }
    }

    #[test]
    fn a_raw_baseline_gives_the_ceiling_and_the_ratio() {
        let dir = std::env::temp_dir().join(format!("kairos-raw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ramp = dir.join("ramp.json");
        std::fs::write(&ramp, r#"{"mode":"ramp","system":"raw","knee_rate":80000}"#).unwrap();
        let ceiling = super::raw_ceiling(&ramp).unwrap();
        assert_eq!(ceiling, 80_000.0);
        let mut ours = serde_json::json!({"mode": "ramp", "knee_rate": 60000});
        super::compare_to_raw(&mut ours, Some(ceiling));
        assert_eq!(ours["ratio_to_raw"], 0.75);
        let kairos = dir.join("kairos.json");
        std::fs::write(
            &kairos,
            r#"{"mode":"ramp","system":"kairos","knee_rate":60000}"#,
        )
        .unwrap();
        let refused = super::raw_ceiling(&kairos).unwrap_err().to_string();
        assert!(refused.contains("accepted: the --json of"), "{refused}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

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
