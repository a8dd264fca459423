//! `sweep.html`: one self-contained page (no script, no stylesheet or
//! font fetched from anywhere) with, per trigger, its conversion rate, its
//! holdout's and its sends plotted against the swept values as inline SVG,
//! then the whole table. Every piece of text from outside the program (ids,
//! paths, values) is escaped.

use super::chart::{chart, Axis, Series, YScale};
use super::report::{table_cells, SweepReport};
use std::fmt::Write as _;

/// The page.
pub fn to_html(report: &SweepReport) -> String {
    let axis = Axis::of(report);
    let paths: Vec<&str> = report.grid.params.iter().map(|p| p.path.as_str()).collect();
    let mut x_title = paths.join(";");
    if matches!(
        axis,
        Axis::Numeric {
            logarithmic: true,
            ..
        }
    ) {
        x_title.push_str(" (logarithmic scale)");
    }
    let mut page = String::new();
    let title = format!("kairos sweep: {}", report.pipeline_name);
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n",
        escape(&title),
        escape(&title)
    );
    page.push_str(&inputs_list(report));
    let mut quiet = Vec::new();
    for id in report.trigger_ids() {
        if !report.ever_fired(id) {
            quiet.push(id);
            continue;
        }
        let rows = report.rows_of(id);
        let labels: Vec<String> = rows.iter().map(|row| row.point.joined_values()).collect();
        let rates = [
            Series {
                name: "conversion rate",
                color: "#1f6fb4",
                values: rows.iter().map(|row| row.all.conversion_rate()).collect(),
            },
            Series {
                name: "holdout conversion rate",
                color: "#e8820c",
                values: rows
                    .iter()
                    .map(|row| row.all.holdout_conversion_rate())
                    .collect(),
            },
        ];
        let sent = [Series {
            name: "sent",
            color: "#2e9a3a",
            values: rows
                .iter()
                .map(|row| Some(row.trigger.sent as f64))
                .collect(),
        }];
        let _ = write!(
            page,
            "<section>\n<h2>{}</h2>\n<div class=\"charts\">\n{}{}</div>\n</section>\n",
            escape(id),
            chart(&x_title, &labels, &axis, &rates, YScale::Rate),
            chart(&x_title, &labels, &axis, &sent, YScale::Count),
        );
    }
    if !quiet.is_empty() {
        let _ = writeln!(
            page,
            "<p class=\"note\">Never fired at any grid point: {}.</p>",
            escape(&quiet.join(", "))
        );
    }
    page.push_str(&results_table(report));
    page.push_str("</body>\n</html>\n");
    page
}

/// Inline styles: the page must open with nothing else at hand.
const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
h2{margin-top:1.6em;font-size:1.15em}\
.charts{display:flex;flex-wrap:wrap;gap:1em}\
svg{background:#fcfcfc;border:1px solid #ddd}\
svg text{font-size:11px;fill:#333}svg text.axis{font-weight:600}\
table{border-collapse:collapse;font-size:13px;margin-top:1em}\
th,td{padding:2px 8px;border-bottom:1px solid #eee;white-space:nowrap}\
th{text-align:left;background:#f3f3f3}\
td.number{text-align:right;font-variant-numeric:tabular-nums}\
dt{font-weight:600}dd{margin:0 0 .4em 1em;font-family:monospace}\
.note{color:#666}";

/// What the sweep was run on.
fn inputs_list(report: &SweepReport) -> String {
    let mut items = vec![
        ("pipeline", report.pipeline_file.display().to_string()),
        (
            "events",
            format!(
                "{} ({} events replayed, {} lines skipped)",
                report.events_file.display(),
                report.events,
                report.rejected
            ),
        ),
    ];
    for param in &report.grid.params {
        items.push((
            "swept",
            format!("{} = {}", param.path, param.values.join(" | ")),
        ));
    }
    for item in report.set {
        items.push(("set", format!("{}={}", item.path, item.value)));
    }
    if let Some(until) = report.until {
        items.push(("until", until.to_rfc3339()));
    }
    items.push((
        "grid",
        format!(
            "{} points, replayed in {:.2} s on {} threads",
            report.grid.points.len(),
            report.seconds,
            report.workers
        ),
    ));
    let mut list = String::from("<dl>\n");
    for (term, description) in items {
        let _ = writeln!(
            list,
            "<dt>{}</dt><dd>{}</dd>",
            escape(term),
            escape(&description)
        );
    }
    list.push_str("</dl>\n");
    list
}

/// Every trigger that fired at some point, at every point, as on stdout.
fn results_table(report: &SweepReport) -> String {
    let (header, lines, _) = table_cells(report);
    let text_columns = 1 + report.grid.params.len();
    let mut table = String::from("<h2>All results</h2>\n<table>\n<tr>");
    for cell in &header {
        let _ = write!(table, "<th>{}</th>", escape(cell));
    }
    table.push_str("</tr>\n");
    for cells in &lines {
        table.push_str("<tr>");
        for (column, cell) in cells.iter().enumerate() {
            let class = if column >= text_columns && column + 1 < cells.len() {
                " class=\"number\""
            } else {
                ""
            };
            let _ = write!(table, "<td{class}>{}</td>", escape(cell));
        }
        table.push_str("</tr>\n");
    }
    table.push_str("</table>\n");
    table
}

/// Text made safe inside HTML elements and attribute values.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_text_is_escaped() {
        assert_eq!(
            escape(r#"<b a="1">'x' & y</b>"#),
            "&lt;b a=&quot;1&quot;&gt;&#39;x&#39; &amp; y&lt;/b&gt;"
        );
    }
}
