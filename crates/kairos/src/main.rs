//! `kairos`: the command line.
//!
//! Exit codes: 0 success; 1 a run failed part-way (input or output that
//! stops being readable or writable); 2 invalid invocation, invalid pipeline,
//! or input and output paths that cannot be opened (the message says what
//! was wrong and what is accepted).

mod ask;
mod backtest;
mod catalog;
mod cli;
mod data_dir;
mod demo;
mod events_file;
mod inspect;
mod nats;
mod pipeline_versions;
mod report;
mod summary;
mod sweep;

use clap::Parser;
use std::process::ExitCode;

/// mimalloc, for the many small blocks the engine allocates and frees per
/// event (see `kairos_alloc`).
#[global_allocator]
static ALLOCATOR: kairos_alloc::Allocator = kairos_alloc::Allocator;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() { 2 } else { 0 };
            let _ = error.print();
            return ExitCode::from(code);
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("kairos: {error:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: cli::Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        cli::Command::Validate(args) => Ok(validate(&args)),
        cli::Command::Backtest(args) => backtest::run(&args),
        cli::Command::Sweep(args) => sweep::run(&args),
        cli::Command::Run(args) => nats::run(&args),
        cli::Command::Publish(args) => nats::publish(&args),
        cli::Command::Demo(args) => demo::run(&args),
        cli::Command::Collect(args) => nats::collect(&args),
        cli::Command::Report(args) => report::run(&args),
        cli::Command::Inspect(args) => inspect::inspect(&args),
        cli::Command::Forget(args) => inspect::forget(&args),
        cli::Command::Pipeline(command) => pipeline_versions::run(&command),
        cli::Command::Catalog(cli::CatalogCommand::Load(args)) => catalog::load(&args),
        cli::Command::Catalog(cli::CatalogCommand::Publish(args)) => nats::publish_catalog(&args),
    }
}

/// `kairos validate`: every error, one per line on stderr, and their count
/// on stdout, exit 2; or a one-line OK on stdout. Every line on stderr is
/// a diagnostic (`FILE:LINE:COL: field: problem; accepted: ...`), so that
/// editors and scripts can read them all.
fn validate(args: &cli::ValidateArgs) -> ExitCode {
    match kairos_pipeline::load(&args.file, &args.set) {
        Ok(pipeline) => {
            let triggers = pipeline.triggers.len();
            println!(
                "{}: ok: pipeline {:?} with {triggers} trigger{}",
                args.file.display(),
                pipeline.name,
                if triggers == 1 { "" } else { "s" }
            );
            ExitCode::SUCCESS
        }
        Err(diagnostics) => {
            report_diagnostics(&diagnostics);
            println!("{}: {}", args.file.display(), errors_found(&diagnostics));
            ExitCode::from(2)
        }
    }
}

/// The pipeline of `--pipeline`, with its `--set` overrides, for a command
/// that runs it; or, once every diagnostic and a summary naming the file are
/// on stderr, exit code 2. Nothing goes to stdout: `backtest --out -` writes
/// its actions there.
pub fn load_pipeline(
    path: &std::path::Path,
    overrides: &[kairos_pipeline::Override],
) -> Result<kairos_engine::config::Pipeline, ExitCode> {
    kairos_pipeline::load(path, overrides).map_err(|diagnostics| {
        report_diagnostics(&diagnostics);
        eprintln!(
            "kairos: --pipeline {}: {}",
            path.display(),
            errors_found(&diagnostics)
        );
        ExitCode::from(2)
    })
}

/// Prints pipeline diagnostics to stderr, one per line.
pub fn report_diagnostics(diagnostics: &[kairos_pipeline::Diagnostic]) {
    for diagnostic in diagnostics {
        eprintln!("{diagnostic}");
    }
}

/// `N errors found`.
pub fn errors_found(diagnostics: &[kairos_pipeline::Diagnostic]) -> String {
    format!(
        "{} error{} found",
        diagnostics.len(),
        if diagnostics.len() == 1 { "" } else { "s" }
    )
}
