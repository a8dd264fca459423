//! `kairos sweep`: "what if the cart timer were 10 minutes instead of 30?"
//! answered on real history. Every combination of the `--param` values (the
//! grid) is a backtest of its own, with the values applied as `--set`
//! overrides; the events file is parsed once, into memory, and the grid
//! points are replayed in parallel, a thread per core, each through a
//! production engine of its own, exactly as `kairos backtest` replays. What
//! each trigger did at each point (fired, sent, suppressed, and the
//! conversions and uplift attributed to it) is printed as a table and, with
//! `--out`, written as CSV, JSON and an HTML page of plots.
//!
//! Every grid point's pipeline is validated before anything is replayed:
//! a sweep that would fail at its last point fails at once instead.

mod chart;
mod grid;
mod html;
mod replay;
mod report;

pub use grid::SweptParam;

use crate::cli::SweepArgs;
use anyhow::Context;
use grid::{Grid, GridPoint};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kairos_engine::config::Pipeline;
use kairos_model::Timestamp;
use kairos_pipeline::Override;
use report::SweepReport;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// The files `--out DIR` receives.
const OUTPUT_FILES: [&str; 3] = ["sweep.csv", "sweep.json", "sweep.html"];

pub fn run(args: &SweepArgs) -> anyhow::Result<ExitCode> {
    // The file and the `--set`s on their own first, so that a mistake in
    // them is reported once rather than at every grid point.
    let base = match crate::load_pipeline(&args.pipeline, &args.set) {
        Ok(pipeline) => pipeline,
        Err(code) => return Ok(code),
    };
    let grid = match Grid::new(&args.params) {
        Ok(grid) => grid,
        Err(problem) => return Ok(usage_error(&problem)),
    };
    let pipelines = match grid_pipelines(args, &grid) {
        Ok(pipelines) => pipelines,
        Err(code) => return Ok(code),
    };
    let outputs = match args.out.as_deref().map(|dir| output_paths(args, dir)) {
        Some(Ok(paths)) => Some(paths),
        Some(Err(problem)) => return Ok(usage_error(&problem)),
        None => None,
    };
    let until = args.until.unwrap_or(Timestamp::MAX);
    let history = match replay::read_history(&args.events, until) {
        Ok(history) => history,
        Err(error) => {
            return Ok(usage_error(&format!(
                "--events: {error:#}; accepted: a file of Segment calls as JSON lines, a .gz of one, or - for stdin"
            )))
        }
    };
    // The directory is made once the input has been read, so that a
    // mistake there leaves no empty directory behind, and before the
    // replays, so that one that cannot be made fails now, not at the end.
    if let Some(dir) = &args.out {
        if let Err(error) = std::fs::create_dir_all(dir) {
            return Ok(usage_error(&format!(
                "--out {}: {error}; accepted: a directory that exists or can be created",
                dir.display()
            )));
        }
    }
    let workers = replay::workers_for(pipelines.len());
    let progress = progress_bar(pipelines.len());
    let started = Instant::now();
    let stats = replay::replay_all(&pipelines, &history.events, until, workers, &progress);
    let seconds = started.elapsed().as_secs_f64();
    progress.finish_and_clear();
    let report = SweepReport {
        pipeline_file: &args.pipeline,
        pipeline_name: &base.name,
        events_file: &args.events,
        events: history.events.len() as u64,
        rejected: history.rejected,
        until: args.until,
        set: &args.set,
        grid: &grid,
        stats,
        seconds,
        workers,
    };
    print!("{}", report::to_table(&report));
    eprintln!(
        "{} grid points × {} events in {seconds:.3} s on {workers} thread{}",
        grid.points.len(),
        report.events,
        if workers == 1 { "" } else { "s" }
    );
    if let Some(paths) = outputs {
        write_outputs(&report, &paths)?;
    }
    Ok(match history.read_error {
        Some(error) => {
            eprintln!(
                "kairos: cannot read {} past {error}; the results above cover everything before it",
                args.events.display()
            );
            ExitCode::from(1)
        }
        None => ExitCode::SUCCESS,
    })
}

/// `kairos: PROBLEM` on stderr, and exit code 2.
fn usage_error(problem: &str) -> ExitCode {
    eprintln!("kairos: {problem}");
    ExitCode::from(2)
}

/// Every grid point's pipeline: the file with the `--set`s, then the
/// point's values. Each value is checked alone first, so that a bad one is
/// named with its param rather than as some combination that failed; then
/// each combination, since values may clash only together. Every mistake
/// is reported before exiting 2.
fn grid_pipelines(args: &SweepArgs, grid: &Grid) -> Result<Vec<Pipeline>, ExitCode> {
    let with_set = |overrides: &[Override]| -> Vec<Override> {
        args.set.iter().chain(overrides).cloned().collect()
    };
    let mut failed = false;
    for param in &grid.params {
        for value in &param.values {
            let alone = Override {
                path: param.path.clone(),
                value: value.clone(),
            };
            if let Err(diagnostics) = kairos_pipeline::load(&args.pipeline, &with_set(&[alone])) {
                eprintln!(
                    "kairos: --param {}: the value {value:?} is refused ({}):",
                    param.path,
                    crate::errors_found(&diagnostics)
                );
                crate::report_diagnostics(&diagnostics);
                failed = true;
            }
        }
    }
    if failed {
        return Err(ExitCode::from(2));
    }
    let mut pipelines = Vec::with_capacity(grid.points.len());
    for point in &grid.points {
        match kairos_pipeline::load(&args.pipeline, &with_set(&point.overrides)) {
            Ok(pipeline) => pipelines.push(pipeline),
            Err(diagnostics) => {
                report_clash(point, &diagnostics);
                failed = true;
            }
        }
    }
    if failed {
        return Err(ExitCode::from(2));
    }
    Ok(pipelines)
}

/// A grid point whose values are each valid but not together.
fn report_clash(point: &GridPoint, diagnostics: &[kairos_pipeline::Diagnostic]) {
    eprintln!(
        "kairos: the grid point {point} is refused ({}):",
        crate::errors_found(diagnostics)
    );
    crate::report_diagnostics(diagnostics);
}

/// The files `--out DIR` will receive, or why not: DIR is something other
/// than a directory, or one of its files is an input, which writing would
/// destroy (`--events DIR/sweep.csv`).
fn output_paths(args: &SweepArgs, dir: &Path) -> Result<[PathBuf; 3], String> {
    if dir.exists() && !dir.is_dir() {
        return Err(format!(
            "--out {} is not a directory; accepted: a directory (created if missing)",
            dir.display()
        ));
    }
    let paths = OUTPUT_FILES.map(|name| dir.join(name));
    for path in &paths {
        for (flag, input) in [("--events", &args.events), ("--pipeline", &args.pipeline)] {
            if same_file::is_same_file(path, input).unwrap_or(false) {
                return Err(format!(
                    "--out {} would write {}, which is the {flag} file; accepted: another directory",
                    dir.display(),
                    path.display()
                ));
            }
        }
    }
    Ok(paths)
}

/// `sweep.csv`, `sweep.json` and `sweep.html`, in `OUTPUT_FILES` order.
fn write_outputs(report: &SweepReport, paths: &[PathBuf; 3]) -> anyhow::Result<()> {
    let [csv, json, html] = paths;
    let write = |path: &Path, text: String| {
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
    };
    write(csv, report::to_csv(report))?;
    write(json, format!("{:#}\n", report::to_json(report)))?;
    write(html, html::to_html(report))?;
    Ok(())
}

/// Grid points done, on a terminal; nothing otherwise.
fn progress_bar(points: usize) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(points as u64).with_style(
        ProgressStyle::with_template("{spinner} grid points {pos}/{len} [{bar:30}] eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(4));
    bar
}
