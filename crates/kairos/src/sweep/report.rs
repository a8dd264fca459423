//! What a sweep found, per trigger and grid point: a table for people
//! (stdout), and `sweep.csv` and `sweep.json` for tools. The CSV's first
//! columns are a contract: `trigger,param,value,fired,sent,conversions,
//! conversion_rate,holdout_conversion_rate,uplift`; the columns after them
//! may grow.

use super::grid::{Grid, GridPoint};
use kairos_engine::{Stats, Suppression, TriggerStats, VariantStats};
use kairos_model::Timestamp;
use kairos_pipeline::Override;
use serde_json::{json, Map, Value};
use std::fmt::Write as _;
use std::path::Path;

/// A finished sweep: the grid, and each point's engine counters.
pub struct SweepReport<'a> {
    /// The `--pipeline` file.
    pub pipeline_file: &'a Path,
    /// Its `name`.
    pub pipeline_name: &'a str,
    /// The `--events` file.
    pub events_file: &'a Path,
    /// Events each point replayed.
    pub events: u64,
    /// Lines skipped as not being valid calls.
    pub rejected: u64,
    /// Where the clock stopped, if not at the end of time.
    pub until: Option<Timestamp>,
    /// `--set` overrides every point shares.
    pub set: &'a [Override],
    /// The swept params and their combinations.
    pub grid: &'a Grid,
    /// Each point's counters, in the grid's order.
    pub stats: Vec<Stats>,
    /// Wall-clock time of the replays.
    pub seconds: f64,
    /// Threads the replays ran on.
    pub workers: usize,
}

/// One trigger at one grid point.
pub struct Row<'a> {
    pub point: &'a GridPoint,
    pub trigger: &'a TriggerStats,
    /// The trigger's attribution summed over its variants.
    pub all: VariantStats,
}

impl SweepReport<'_> {
    /// Trigger ids in pipeline order (every point has the same triggers;
    /// an id missing from one would only miss its rows).
    pub fn trigger_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = Vec::new();
        for trigger in self.stats.iter().flat_map(|stats| &stats.triggers) {
            if !ids.contains(&trigger.id.as_str()) {
                ids.push(&trigger.id);
            }
        }
        ids
    }

    /// `trigger`'s rows, one per grid point, in the grid's order.
    pub fn rows_of(&self, trigger: &str) -> Vec<Row<'_>> {
        self.grid
            .points
            .iter()
            .zip(&self.stats)
            .filter_map(|(point, stats)| {
                let trigger = stats.triggers.iter().find(|t| t.id == trigger)?;
                Some(Row {
                    point,
                    trigger,
                    all: trigger.attribution(),
                })
            })
            .collect()
    }

    /// Whether `trigger` fired at any grid point: triggers that never did
    /// are left out of the table and the plots (not the CSV or JSON),
    /// which would otherwise drown the ones the sweep is about in zeros.
    pub fn ever_fired(&self, trigger: &str) -> bool {
        self.rows_of(trigger)
            .iter()
            .any(|row| row.trigger.fired > 0)
    }
}

/// A rate as a percentage (`12.5%`), `-` when undefined, as the
/// backtest's table writes it.
pub fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "-".to_string(), |rate| format!("{:.1}%", rate * 100.0))
}

/// A difference of rates in percentage points (`+1.2pp`), `-` when
/// undefined, as the backtest's table writes it.
pub fn points(uplift: Option<f64>) -> String {
    uplift.map_or_else(
        || "-".to_string(),
        |uplift| format!("{:+.1}pp", uplift * 100.0),
    )
}

/// Money as written in reports: two decimals, whatever the currency.
pub fn money(amount: f64) -> String {
    format!("{amount:.2}")
}

/// The suppression reasons of a row, `reason=N` each, or `-`.
fn suppressed_text(trigger: &TriggerStats) -> String {
    let reasons: Vec<String> = trigger
        .suppressed
        .iter()
        .map(|(reason, count)| format!("{reason}={count}"))
        .collect();
    if reasons.is_empty() {
        "-".to_string()
    } else {
        reasons.join(" ")
    }
}

/// The header and cells of the table (stdout and HTML alike), one line
/// per trigger that fired anywhere and grid point, and how many triggers
/// were left out for never firing.
pub fn table_cells(report: &SweepReport) -> (Vec<String>, Vec<Vec<String>>, usize) {
    let mut header = vec!["trigger".to_string()];
    header.extend(report.grid.params.iter().map(|param| param.path.clone()));
    header.extend(
        [
            "fired",
            "sent",
            "held out",
            "conversions",
            "revenue",
            "conv. rate",
            "holdout rate",
            "uplift",
            "suppressed",
        ]
        .map(str::to_string),
    );
    let (mut lines, mut quiet) = (Vec::new(), 0);
    for id in report.trigger_ids() {
        if !report.ever_fired(id) {
            quiet += 1;
            continue;
        }
        for row in report.rows_of(id) {
            let mut cells = vec![id.to_string()];
            cells.extend(row.point.overrides.iter().map(|item| item.value.clone()));
            cells.extend([
                row.trigger.fired.to_string(),
                row.trigger.sent.to_string(),
                row.all.held_out.to_string(),
                row.all.conversions.to_string(),
                money(row.all.revenue),
                percent(row.all.conversion_rate()),
                percent(row.all.holdout_conversion_rate()),
                points(row.all.uplift()),
                suppressed_text(row.trigger),
            ]);
            lines.push(cells);
        }
    }
    (header, lines, quiet)
}

/// The table for stdout: text columns (the trigger and the swept values)
/// aligned left, numbers right, and the suppression reasons last, as they
/// come.
pub fn to_table(report: &SweepReport) -> String {
    let (header, lines, quiet) = table_cells(report);
    let text_columns = 1 + report.grid.params.len();
    let last = header.len() - 1;
    let widths: Vec<usize> = (0..header.len())
        .map(|column| {
            std::iter::once(&header)
                .chain(&lines)
                .map(|cells| cells[column].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for cells in std::iter::once(&header).chain(&lines) {
        for (column, cell) in cells.iter().enumerate() {
            let width = widths[column];
            let _ = match column {
                _ if column == last => write!(out, "{cell}"),
                _ if column < text_columns => write!(out, "{cell:<width$}  "),
                _ => write!(out, "{cell:>width$}  "),
            };
        }
        out.push('\n');
    }
    if quiet > 0 {
        let _ = writeln!(
            out,
            "({quiet} trigger{} never fired at any grid point; the CSV and JSON list {} too)",
            if quiet == 1 { "" } else { "s" },
            if quiet == 1 { "it" } else { "them" },
        );
    }
    out
}

/// The CSV header: the contract's columns, then revenue and the holdout's
/// counts, then one `suppressed_<reason>` column for every reason the
/// engine knows (so that files from different sweeps line up).
fn csv_header() -> Vec<String> {
    let mut header: Vec<String> = [
        "trigger",
        "param",
        "value",
        "fired",
        "sent",
        "conversions",
        "conversion_rate",
        "holdout_conversion_rate",
        "uplift",
        "revenue",
        "held_out",
        "holdout_conversions",
        "holdout_revenue",
    ]
    .map(str::to_string)
    .to_vec();
    header.extend(
        Suppression::ALL
            .iter()
            .map(|reason| format!("suppressed_{}", reason.as_str())),
    );
    header
}

/// `sweep.csv`: one row per trigger and grid point, every trigger; rates
/// as fractions (0.125), empty where undefined; several swept params
/// joined by `;` in `param` and `value`.
pub fn to_csv(report: &SweepReport) -> String {
    let mut out = String::new();
    write_csv_record(&mut out, &csv_header());
    let rate = |rate: Option<f64>| rate.map_or_else(String::new, |rate| rate.to_string());
    for id in report.trigger_ids() {
        for row in report.rows_of(id) {
            let mut record = vec![
                id.to_string(),
                row.point.joined_paths(),
                row.point.joined_values(),
                row.trigger.fired.to_string(),
                row.trigger.sent.to_string(),
                row.all.conversions.to_string(),
                rate(row.all.conversion_rate()),
                rate(row.all.holdout_conversion_rate()),
                rate(row.all.uplift()),
                money(row.all.revenue),
                row.all.held_out.to_string(),
                row.all.holdout_conversions.to_string(),
                money(row.all.holdout_revenue),
            ];
            record.extend(Suppression::ALL.iter().map(|reason| {
                let count = row.trigger.suppressed.get(reason.as_str());
                count.copied().unwrap_or(0).to_string()
            }));
            write_csv_record(&mut out, &record);
        }
    }
    out
}

/// One CSV record (RFC 4180, lines ending in `\n`): a field holding a comma, a quote or a line
/// break is quoted, its quotes doubled; swept values are TOML and often
/// hold all three.
fn write_csv_record(out: &mut String, fields: &[String]) {
    for (position, field) in fields.iter().enumerate() {
        if position > 0 {
            out.push(',');
        }
        if field.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&field.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(field);
        }
    }
    out.push('\n');
}

/// `sweep.json`: the sweep's inputs, then each grid point with its
/// overrides and, per trigger, the counters and attribution (summed, and
/// per variant) in the shape of the backtest's summary.
pub fn to_json(report: &SweepReport) -> Value {
    let points: Vec<Value> = report
        .grid
        .points
        .iter()
        .zip(&report.stats)
        .map(|(point, stats)| {
            // Each trigger exactly as `kairos backtest --summary-json`
            // gives it, so that the two can be compared field by field.
            let triggers: Map<String, Value> = stats
                .triggers
                .iter()
                .map(|trigger| (trigger.id.clone(), trigger.to_json()))
                .collect();
            json!({
                "overrides": overrides_json(&point.overrides),
                "duplicates": stats.duplicates,
                "late": stats.late,
                "triggers": triggers,
            })
        })
        .collect();
    let params: Vec<Value> = report
        .grid
        .params
        .iter()
        .map(|param| json!({"path": param.path, "values": param.values}))
        .collect();
    json!({
        "pipeline": report.pipeline_name,
        "pipeline_file": report.pipeline_file.display().to_string(),
        "events_file": report.events_file.display().to_string(),
        "events": report.events,
        "rejected_lines": report.rejected,
        "until": report.until.map(Timestamp::to_rfc3339),
        "set": overrides_json(report.set),
        "params": params,
        "workers": report.workers,
        "seconds": (report.seconds * 1000.0).round() / 1000.0,
        "points": points,
    })
}

fn overrides_json(overrides: &[Override]) -> Value {
    overrides
        .iter()
        .map(|item| json!({"path": item.path, "value": item.value}))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_with_commas_quotes_or_line_breaks_are_quoted() {
        let mut out = String::new();
        let fields = ["plain", r#"{ session = "30m" }"#, "a,b", "two\nlines"].map(str::to_string);
        write_csv_record(&mut out, &fields);
        assert_eq!(
            out,
            "plain,\"{ session = \"\"30m\"\" }\",\"a,b\",\"two\nlines\"\n"
        );
    }

    #[test]
    fn rates_read_as_percentages_and_uplift_in_points() {
        assert_eq!(percent(Some(0.125)), "12.5%");
        assert_eq!(percent(None), "-");
        assert_eq!(points(Some(0.0123)), "+1.2pp");
        assert_eq!(points(Some(-0.02)), "-2.0pp");
    }
}
