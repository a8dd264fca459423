//! The end-of-run summary: a table for people, JSON for tools. The JSON shape
//! is a contract: `{"events":N,"seconds":S,"events_per_second":R,
//! "triggers":{"<id>":{"fired":N,"sent":N,"suppressed":{"<reason>":N},
//! "conversions":N,"revenue":X,"conversion_rate":R|null,
//! "holdout":{"decisions":N,"conversions":N,"revenue":X,"conversion_rate":R|null},
//! "uplift":R|null,"variants":{"<name>":{the same attribution fields}}}}}`
//! (attribution: see `kairos_engine::VariantStats`).

use kairos_engine::Stats;
use serde_json::{json, Map, Value};
use std::fmt::Write as _;

/// Summary JSON.
pub fn to_json(stats: &Stats, events: u64, rejected: u64, seconds: f64) -> Value {
    let mut triggers = Map::new();
    for trigger in &stats.triggers {
        triggers.insert(trigger.id.clone(), trigger.to_json());
    }
    json!({
        "events": events,
        "seconds": (seconds * 1000.0).round() / 1000.0,
        "events_per_second": if seconds > 0.0 { (events as f64 / seconds).round() } else { 0.0 },
        "rejected_lines": rejected,
        "duplicates": stats.duplicates,
        "late": stats.late,
        "triggers": triggers,
    })
}

/// A rate as a percentage for the table, `-` when undefined.
fn percent(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_string(), |rate| format!("{:.1}%", rate * 100.0))
}

/// An uplift in percentage points for the table, `-` when undefined.
fn points(value: Option<f64>) -> String {
    value.map_or_else(
        || "-".to_string(),
        |uplift| format!("{:+.1}pp", uplift * 100.0),
    )
}

/// The table.
pub fn to_table(stats: &Stats, events: u64, rejected: u64, seconds: f64) -> String {
    let mut out = String::new();
    let width = stats
        .triggers
        .iter()
        .map(|t| t.id.len())
        .max()
        .unwrap_or(7)
        .max(7);
    let _ = writeln!(
        out,
        "{:<width$}  {:>9}  {:>9}  {:>9}  {:>7}  {:>7}  {:>8}  suppressed",
        "trigger", "fired", "sent", "converted", "rate", "holdout", "uplift"
    );
    for trigger in &stats.triggers {
        let attribution = trigger.attribution();
        let suppressed: Vec<String> = trigger
            .suppressed
            .iter()
            .map(|(reason, n)| format!("{reason}={n}"))
            .collect();
        let _ = writeln!(
            out,
            "{:<width$}  {:>9}  {:>9}  {:>9}  {:>7}  {:>7}  {:>8}  {}",
            trigger.id,
            trigger.fired,
            trigger.sent,
            attribution.conversions,
            percent(attribution.conversion_rate()),
            percent(attribution.holdout_conversion_rate()),
            points(attribution.uplift()),
            if suppressed.is_empty() {
                "-".to_string()
            } else {
                suppressed.join(" ")
            }
        );
    }
    let rate = if seconds > 0.0 {
        events as f64 / seconds
    } else {
        0.0
    };
    let _ = writeln!(
        out,
        "{events} events ({rejected} rejected lines, {} duplicates, {} late) in {seconds:.3} s: {rate:.0} events/s",
        stats.duplicates, stats.late
    );
    out
}
