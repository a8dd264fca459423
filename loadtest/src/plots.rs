//! The report's plots, drawn as SVG (no font file needed: text is left to
//! the browser).

use hdrhistogram::Histogram;
use plotters::prelude::*;

/// One line of a chart: its name and its points.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

const COLOURS: [RGBColor; 5] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
];

/// A line chart of `series`; `x_label` formats the x axis' ticks.
pub fn line_chart(
    title: &str,
    x_name: &str,
    y_name: &str,
    series: &[Series],
    x_label: &dyn Fn(&f64) -> String,
) -> String {
    chart_with_ticks(title, x_name, y_name, series, x_label, 10)
}

fn chart_with_ticks(
    title: &str,
    x_name: &str,
    y_name: &str,
    series: &[Series],
    x_label: &dyn Fn(&f64) -> String,
    x_ticks: usize,
) -> String {
    let mut svg = String::new();
    let points = series.iter().flat_map(|line| line.points.iter());
    let (mut x_max, mut y_max) = (0.0f64, 0.0f64);
    let mut x_min = f64::MAX;
    for &(x, y) in points {
        x_min = x_min.min(x);
        x_max = x_max.max(x);
        y_max = y_max.max(y);
    }
    if x_min == f64::MAX {
        x_min = 0.0;
    }
    let x_max = if x_max > x_min { x_max } else { x_min + 1.0 };
    let y_max = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };
    {
        let root = SVGBackend::with_string(&mut svg, (860, 360)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(x_min..x_max, 0.0..y_max);
        if let Ok(mut chart) = chart {
            draw(&mut chart, x_name, y_name, series, x_label, x_ticks);
        }
        let _ = root.present();
    }
    svg
}

type Chart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

fn draw<'a>(
    chart: &mut Chart<'a, 'a>,
    x_name: &str,
    y_name: &str,
    series: &[Series],
    x_label: &dyn Fn(&f64) -> String,
    x_ticks: usize,
) {
    {
        let _ = chart
            .configure_mesh()
            .x_desc(x_name)
            .y_desc(y_name)
            .x_label_formatter(x_label)
            .x_labels(x_ticks)
            .draw();
        for (index, line) in series.iter().enumerate() {
            let colour = COLOURS[index % COLOURS.len()];
            if let Ok(drawn) = chart.draw_series(LineSeries::new(
                line.points.iter().copied(),
                colour.stroke_width(2),
            )) {
                drawn
                    .label(line.name.clone())
                    .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], colour));
            }
            if line.points.len() < 40 {
                let _ = chart.draw_series(
                    line.points
                        .iter()
                        .map(|&point| Circle::new(point, 3, colour.filled())),
                );
            }
        }
        let _ = chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw();
    }
}

/// The latency distribution: ms against the percentile, on a scale that
/// spreads the tail (50 %, 90 %, 99 %, 99.9 %, ... evenly).
pub fn percentile_chart(title: &str, histograms: &[(&str, &Histogram<u64>)]) -> String {
    let series: Vec<Series> = histograms
        .iter()
        .filter(|(_, histogram)| !histogram.is_empty())
        .map(|(name, histogram)| Series {
            name: name.to_string(),
            points: (0..=40)
                .map(|step| {
                    // 0 .. 4 nines, in tenths of a nine.
                    let nines = f64::from(step) / 10.0;
                    let quantile = 1.0 - 10f64.powf(-nines);
                    (nines, histogram.value_at_quantile(quantile) as f64 / 1000.0)
                })
                .collect(),
        })
        .collect();
    // A tick at each nine: 0 %, 90 %, 99 %, 99.9 %, 99.99 %.
    let label = |nines: &f64| {
        let percent = 100.0 * (1.0 - 10f64.powf(-nines));
        format!("{} %", (percent * 1000.0).round() / 1000.0)
    };
    chart_with_ticks(title, "percentile", "ms", &series, &label, 5)
}

/// Per-second p99 of each histogram, in ms.
pub fn p99_per_second(name: &str, histograms: &[Histogram<u64>]) -> Series {
    Series {
        name: name.to_string(),
        points: histograms
            .iter()
            .enumerate()
            .filter(|(_, histogram)| !histogram.is_empty())
            .map(|(second, histogram)| (second as f64, crate::actions::p99_ms(histogram)))
            .collect(),
    }
}

/// Counts per second as a series.
pub fn per_second(name: &str, counts: &[u64]) -> Series {
    Series {
        name: name.to_string(),
        points: counts
            .iter()
            .enumerate()
            .map(|(second, count)| (second as f64, *count as f64))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_svg_with_their_titles_and_labels() {
        let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        for micros in 1..=10_000u64 {
            histogram.record(micros * 10).unwrap();
        }
        let svg = percentile_chart("latency", &[("event → action", &histogram)]);
        assert!(svg.starts_with("<svg"), "{svg}");
        for text in ["latency", "event → action", "99.9 %"] {
            assert!(svg.contains(text), "{text} in {svg}");
        }
        let svg = line_chart(
            "throughput",
            "s",
            "events/s",
            &[per_second("in", &[5, 7, 6])],
            &|x| format!("{x}"),
        );
        assert!(
            svg.contains("throughput") && svg.contains("<polyline"),
            "{svg}"
        );
    }
}
