//! `kairos report`: asks the running engine (`kairos.admin.report`, see
//! `kairos_nats::requests`) for its triggers' counts and attribution and
//! prints them: per trigger, and per variant where a trigger has several,
//! what was sent, what converted and at what rate, the holdout group's
//! rate and the uplift. The counts are the engine state's (kept in its
//! snapshots): every event since it started empty, each counted once.

use crate::ask::{ask, Asked};
use crate::cli::ReportArgs;
use kairos_nats::requests::REPORT_SUBJECT;
use serde_json::Value;
use std::fmt::Write as _;
use std::process::ExitCode;

pub fn run(args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let asked = ask(
        &args.connection,
        "kairos-report",
        REPORT_SUBJECT,
        String::new(),
        args.timeout,
    )?;
    let Asked::Answered(report) = asked else {
        return Ok(ExitCode::from(1));
    };
    if args.json {
        println!("{report:#}");
    } else {
        print!("{}", table(&report));
    }
    Ok(ExitCode::SUCCESS)
}

/// The report as a table: a line per trigger, and one per variant below
/// it when it has several.
fn table(report: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "pipeline {} (revision {}): {} events applied",
        report["pipeline"].as_str().unwrap_or("?"),
        report["pipeline_revision"].as_u64().unwrap_or(0),
        report["events"].as_u64().unwrap_or(0)
    );
    let empty = serde_json::Map::new();
    let triggers = report["triggers"].as_object().unwrap_or(&empty);
    let width = triggers
        .keys()
        .map(String::len)
        .max()
        .unwrap_or(0)
        .max("trigger".len())
        + 2;
    let _ = writeln!(
        out,
        "{:<width$}  {:>8}  {:>9}  {:>7}  {:>10}  {:>8}  {:>9}  {:>7}  {:>8}",
        "trigger",
        "sent",
        "converted",
        "rate",
        "revenue",
        "held out",
        "converted",
        "rate",
        "uplift"
    );
    for (id, trigger) in triggers {
        line(&mut out, id, trigger, width);
        let variants = trigger["variants"].as_object().unwrap_or(&empty);
        if variants.len() > 1 {
            for (name, variant) in variants {
                line(&mut out, &format!("  {name}"), variant, width);
            }
        }
    }
    out
}

fn line(out: &mut String, label: &str, stats: &Value, width: usize) {
    let count = |value: &Value| value.as_u64().unwrap_or(0);
    let percent = |value: &Value| {
        value
            .as_f64()
            .map_or_else(|| "-".to_string(), |rate| format!("{:.1}%", rate * 100.0))
    };
    let holdout = &stats["holdout"];
    let _ = writeln!(
        out,
        "{label:<width$}  {:>8}  {:>9}  {:>7}  {:>10.2}  {:>8}  {:>9}  {:>7}  {:>8}",
        count(&stats["sent"]),
        count(&stats["conversions"]),
        percent(&stats["conversion_rate"]),
        stats["revenue"].as_f64().unwrap_or(0.0),
        count(&holdout["decisions"]),
        count(&holdout["conversions"]),
        percent(&holdout["conversion_rate"]),
        stats["uplift"].as_f64().map_or_else(
            || "-".to_string(),
            |uplift| format!("{:+.1}pp", uplift * 100.0)
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn variants_get_lines_of_their_own_and_missing_rates_a_dash() {
        let stats = |sent: u64, rate: Value| {
            json!({"sent": sent, "conversions": 1, "revenue": 12.5, "conversion_rate": rate,
                   "holdout": {"decisions": 0, "conversions": 0, "revenue": 0.0, "conversion_rate": null},
                   "uplift": null})
        };
        let mut cart = stats(4, json!(0.25));
        cart["variants"] = json!({"short": stats(2, json!(0.5)), "long": stats(2, json!(0.0))});
        let mut welcome = stats(0, Value::Null);
        welcome["variants"] = json!({"control": stats(0, Value::Null)});
        let report = json!({"pipeline": "retail", "pipeline_revision": 3, "events": 1234,
                            "triggers": {"abandoned_cart": cart, "welcome": welcome}});
        let text = table(&report);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 6, "{text}");
        assert_eq!(
            lines[0],
            "pipeline retail (revision 3): 1234 events applied"
        );
        assert!(
            lines[2].starts_with("abandoned_cart") && lines[2].contains("25.0%"),
            "{text}"
        );
        assert!(
            lines[3].starts_with("  long") || lines[3].starts_with("  short"),
            "{text}"
        );
        assert!(
            lines[5].starts_with("welcome") && lines[5].contains(" -"),
            "{text}"
        );
    }
}
