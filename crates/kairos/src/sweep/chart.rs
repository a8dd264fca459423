//! The plots of `sweep.html`, as inline SVG: a trigger's values at each
//! grid point, as lines over a numeric axis (a single swept number or
//! duration) or as grouped bars (anything else), with gridlines at round
//! values and a tooltip on every point.

use super::html::escape;
use super::report::{money, percent, SweepReport};
use kairos_model::Span;
use std::fmt::Write as _;

/// How grid points are laid out along the x axis.
pub enum Axis {
    /// A single swept param whose every value is a number or a duration:
    /// each point at its value (milliseconds for durations), joined by
    /// lines.
    Numeric {
        positions: Vec<f64>,
        /// Spaced by ratio rather than difference: timers are swept over
        /// orders of magnitude (5m, 30m, 2h, 1d), which a linear axis
        /// would crowd into one corner.
        logarithmic: bool,
    },
    /// Anything else (several params, inline tables, words): one group of
    /// bars per grid point, in the grid's order.
    Categories,
}

impl Axis {
    /// The layout that suits `report`'s grid.
    pub fn of(report: &SweepReport) -> Axis {
        let [param] = report.grid.params.as_slice() else {
            return Axis::Categories;
        };
        // A value may be quoted (`"10m"`): TOML reads it as the same string.
        let unquoted = |value: &str| value.trim_matches(|c| c == '"' || c == '\'').to_string();
        let values: Vec<String> = param.values.iter().map(|v| unquoted(v)).collect();
        let numbers: Option<Vec<f64>> = values
            .iter()
            .map(|value| value.parse::<f64>().ok().filter(|n| n.is_finite()))
            .collect();
        let durations: Option<Vec<f64>> = values
            .iter()
            .map(|value| Span::parse(value).ok().map(|span| span.millis() as f64))
            .collect();
        match numbers.or(durations) {
            Some(positions) if positions.len() > 1 => {
                let low = positions.iter().copied().fold(f64::INFINITY, f64::min);
                let high = positions.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                Axis::Numeric {
                    logarithmic: low > 0.0 && high / low >= LOGARITHMIC_RATIO,
                    positions,
                }
            }
            _ => Axis::Categories,
        }
    }
}

/// One line or set of bars.
pub struct Series<'a> {
    /// Shown in the legend and tooltips.
    pub name: &'a str,
    /// A CSS colour (`#1f6fb4`).
    pub color: &'a str,
    /// One per grid point; `None` where undefined (a rate of nothing sent).
    pub values: Vec<Option<f64>>,
}

/// What the y axis shows.
#[derive(Clone, Copy)]
pub enum YScale {
    /// Fractions, labelled as percentages.
    Rate,
    /// Counts.
    Count,
}

impl YScale {
    fn label(self, value: f64) -> String {
        match self {
            YScale::Rate => format!("{}%", trim_number(value * 100.0)),
            YScale::Count => trim_number(value),
        }
    }

    fn value_text(self, value: f64) -> String {
        match self {
            YScale::Rate => percent(Some(value)),
            YScale::Count => {
                if value.fract() == 0.0 {
                    format!("{value:.0}")
                } else {
                    money(value)
                }
            }
        }
    }
}

const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 300.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 36.0;
const BOTTOM: f64 = 70.0;
/// Horizontal gridlines (and y labels) above zero.
const Y_STEPS: usize = 4;
/// Roughly the width of a character and the height of a line of the
/// 11 px labels, for spacing them.
const CHARACTER_WIDTH: f64 = 6.5;
const LINE_HEIGHT: f64 = 13.0;
/// Swept values whose largest is this many times the smallest are placed
/// on a logarithmic axis.
const LOGARITHMIC_RATIO: f64 = 20.0;

/// One plot as an SVG element: lines over a numeric axis, grouped bars
/// over categories.
pub fn chart(
    x_title: &str,
    labels: &[String],
    axis: &Axis,
    series: &[Series],
    scale: YScale,
) -> String {
    let plot_width = WIDTH - LEFT - RIGHT;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let largest = series
        .iter()
        .flat_map(|series| series.values.iter().flatten())
        .fold(0.0f64, |largest, value| largest.max(*value));
    let step = nice_step(largest / Y_STEPS as f64);
    let top = step * Y_STEPS as f64;
    let y = |value: f64| TOP + plot_height * (1.0 - value / top);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\">"
    );
    // What x is, under its labels.
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" class=\"axis\">{}</text>",
        LEFT + plot_width / 2.0,
        HEIGHT - 6.0,
        escape(x_title)
    );
    // Legend, across the top.
    let mut legend_x = LEFT;
    for item in series {
        let _ = writeln!(
            svg,
            "<rect x=\"{legend_x}\" y=\"10\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{}\" y=\"20\">{}</text>",
            item.color,
            legend_x + 16.0,
            escape(item.name)
        );
        legend_x += 28.0 + CHARACTER_WIDTH * item.name.len() as f64;
    }
    // Gridlines and y labels.
    for index in 0..=Y_STEPS {
        let value = step * index as f64;
        let height = y(value);
        let _ = writeln!(
            svg,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{height:.1}\" y2=\"{height:.1}\" stroke=\"#e4e4e4\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT + plot_width,
            LEFT - 6.0,
            height + 4.0,
            escape(&scale.label(value))
        );
    }
    let count = labels.len().max(1);
    let band = plot_width / count as f64;
    // The centre of each grid point along x.
    let centres: Vec<f64> = match axis {
        Axis::Numeric {
            positions,
            logarithmic,
        } => {
            let scaled: Vec<f64> = positions
                .iter()
                .map(|position| {
                    if *logarithmic {
                        position.ln()
                    } else {
                        *position
                    }
                })
                .collect();
            let low = scaled.iter().copied().fold(f64::INFINITY, f64::min);
            let high = scaled.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let inset = plot_width * 0.06;
            scaled
                .iter()
                .map(|position| {
                    if high > low {
                        LEFT + inset + (plot_width - 2.0 * inset) * (position - low) / (high - low)
                    } else {
                        LEFT + plot_width / 2.0
                    }
                })
                .collect()
        }
        Axis::Categories => (0..labels.len())
            .map(|index| LEFT + band * (index as f64 + 0.5))
            .collect(),
    };
    // X labels, slanted when many or long so they do not run together;
    // one that would still overlap the one before it is left out (its
    // points' tooltips and the table still give it).
    let slanted = labels.len() > 6 || labels.iter().any(|label| label.chars().count() > 8);
    let mut in_x_order: Vec<(&String, f64)> = labels.iter().zip(centres.iter().copied()).collect();
    in_x_order.sort_by(|one, other| one.1.total_cmp(&other.1));
    let mut free_from = f64::NEG_INFINITY;
    for (label, centre) in in_x_order {
        let half_width = if slanted {
            LINE_HEIGHT / 2.0
        } else {
            CHARACTER_WIDTH * label.chars().count() as f64 / 2.0
        };
        if centre - half_width < free_from {
            continue;
        }
        free_from = centre + half_width + 4.0;
        let baseline = TOP + plot_height + 16.0;
        let placement = if slanted {
            format!("text-anchor=\"end\" transform=\"rotate(-35 {centre:.1} {baseline:.1})\"")
        } else {
            "text-anchor=\"middle\"".to_string()
        };
        let _ = writeln!(
            svg,
            "<text x=\"{centre:.1}\" y=\"{baseline:.1}\" {placement}>{}</text>",
            escape(label)
        );
    }
    match axis {
        Axis::Numeric { .. } => draw_lines(&mut svg, labels, &centres, series, scale, &y),
        Axis::Categories => draw_bars(&mut svg, labels, &centres, band, series, scale, &y),
    }
    // The axes themselves, over the gridlines.
    let _ = writeln!(
        svg,
        "<line x1=\"{LEFT}\" x2=\"{LEFT}\" y1=\"{TOP}\" y2=\"{:.1}\" stroke=\"#888\"/><line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#888\"/>",
        TOP + plot_height,
        LEFT + plot_width,
        TOP + plot_height,
        TOP + plot_height
    );
    svg.push_str("</svg>\n");
    svg
}

/// Each series as a line through its defined points (broken where a value
/// is undefined), with a dot per point whose tooltip gives the value.
fn draw_lines(
    svg: &mut String,
    labels: &[String],
    centres: &[f64],
    series: &[Series],
    scale: YScale,
    y: &dyn Fn(f64) -> f64,
) {
    for item in series {
        // Points in x order, so that a line never doubles back when the
        // values were listed out of order.
        let mut points: Vec<(f64, Option<f64>, &String)> = centres
            .iter()
            .zip(&item.values)
            .zip(labels)
            .map(|((x, value), label)| (*x, *value, label))
            .collect();
        points.sort_by(|one, other| one.0.total_cmp(&other.0));
        let mut path = String::new();
        let mut pen_down = false;
        for (x, value, _) in &points {
            match value {
                Some(value) => {
                    let _ = write!(
                        path,
                        "{}{x:.1},{:.1} ",
                        if pen_down { "L" } else { "M" },
                        y(*value)
                    );
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        if !path.is_empty() {
            let _ = writeln!(
                svg,
                "<path d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"/>",
                path.trim_end(),
                item.color
            );
        }
        for (x, value, label) in &points {
            if let Some(value) = value {
                let _ = writeln!(
                    svg,
                    "<circle cx=\"{x:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"{}\"><title>{}</title></circle>",
                    y(*value),
                    item.color,
                    escape(&format!("{} at {label}: {}", item.name, scale.value_text(*value)))
                );
            }
        }
    }
}

/// One group of bars per grid point, a bar per series; an undefined value
/// has no bar.
fn draw_bars(
    svg: &mut String,
    labels: &[String],
    centres: &[f64],
    band: f64,
    series: &[Series],
    scale: YScale,
    y: &dyn Fn(f64) -> f64,
) {
    let bar = band * 0.8 / series.len().max(1) as f64;
    let floor = y(0.0);
    for (index, (label, centre)) in labels.iter().zip(centres).enumerate() {
        let group_start = centre - bar * series.len() as f64 / 2.0;
        for (position, item) in series.iter().enumerate() {
            let Some(value) = item.values.get(index).copied().flatten() else {
                continue;
            };
            let top = y(value);
            let _ = writeln!(
                svg,
                "<rect x=\"{:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{}</title></rect>",
                group_start + bar * position as f64,
                bar.max(1.0),
                floor - top,
                item.color,
                escape(&format!("{} at {label}: {}", item.name, scale.value_text(value)))
            );
        }
    }
}

/// A round step (1, 2, 2.5 or 5 times a power of ten) of at least `raw`:
/// gridlines at round values.
fn nice_step(raw: f64) -> f64 {
    if raw.is_nan() || raw <= 0.0 {
        // Nothing above zero to show: a scale of 0..1 (0..100 % for rates).
        return 0.25;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|multiple| multiple * magnitude)
        .find(|step| *step >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * magnitude)
}

/// A number without trailing zeros (`2.5`, `10`, `0.125`).
fn trim_number(value: f64) -> String {
    let text = format!("{value:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_string()
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gridlines_fall_on_round_values() {
        assert_eq!(nice_step(0.03), 0.05);
        assert_eq!(nice_step(0.02), 0.02);
        assert_eq!(nice_step(2.2), 2.5);
        assert_eq!(nice_step(7.0), 10.0);
        assert_eq!(nice_step(0.0), 0.25);
        assert_eq!(trim_number(2.5), "2.5");
        assert_eq!(trim_number(10.0), "10");
    }
}
