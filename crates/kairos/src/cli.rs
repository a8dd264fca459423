//! Command-line flags. Parsing only validates; the work happens elsewhere.

use clap::{Args, Parser, Subcommand};
use kairos_model::Timestamp;
use kairos_pipeline::Override;
use std::path::PathBuf;

/// kairos: a real-time behaviour-trigger engine.
#[derive(Debug, Parser)]
#[command(name = "kairos", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a pipeline file; report every error as FILE:LINE:COL: field: problem; accepted: ...
    Validate(ValidateArgs),
    /// Replay a file of Segment events through a pipeline, offline.
    Backtest(BacktestArgs),
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The pipeline file (TOML).
    pub file: PathBuf,
    /// Override a parameter: TRIGGER.PARAM=VALUE (or settings.X=V, policy.X=V).
    #[arg(long = "set", value_name = "TRIGGER.PARAM=VALUE")]
    pub set: Vec<Override>,
}

#[derive(Debug, Args)]
pub struct BacktestArgs {
    /// The pipeline file (TOML).
    #[arg(long)]
    pub pipeline: PathBuf,
    /// Segment calls as JSON lines; `-` for stdin; gzip (by content) is
    /// decompressed.
    #[arg(long)]
    pub events: PathBuf,
    /// Write actions as JSON lines (CloudEvents) here; `-` for stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also write suppressed decisions (with data.suppressed set) to --out,
    /// which it needs.
    #[arg(long, requires = "out")]
    pub all_decisions: bool,
    /// Override a parameter: TRIGGER.PARAM=VALUE (or settings.X=V, policy.X=V).
    #[arg(long = "set", value_name = "TRIGGER.PARAM=VALUE")]
    pub set: Vec<Override>,
    /// Stop the clock here (RFC 3339) instead of firing every pending timer;
    /// events at or after it are not replayed.
    #[arg(long, value_parser = parse_time)]
    pub until: Option<Timestamp>,
    /// Write the summary as JSON here.
    #[arg(long)]
    pub summary_json: Option<PathBuf>,
    /// Write every skipped line here, one JSON object per line:
    /// {"line":N,"reason":"<code>","message":"..."} (stderr shows the
    /// first 100).
    #[arg(long)]
    pub rejected: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

fn parse_time(text: &str) -> Result<Timestamp, String> {
    Timestamp::parse_rfc3339(text)
        .map_err(|error| format!("{error}; accepted: RFC 3339, e.g. 2026-11-23T10:00:00Z"))
}
