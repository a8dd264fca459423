//! Command-line flags. Parsing only validates; the work happens elsewhere.

use clap::{Args, Parser, Subcommand};
use kairos_model::{Span, Timestamp};
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
    /// Backtest every combination of parameter values on one read of the
    /// events, on every core, and compare what each would have done.
    Sweep(SweepArgs),
    /// Run the engine as a service: events in from NATS JetStream, actions out.
    Run(RunArgs),
    /// Publish Segment calls (JSON lines) to the events stream, partitioned.
    Publish(PublishArgs),
    /// Send synthetic shoppers to a running `kairos run` and print its decisions live.
    Demo(DemoArgs),
    /// Serve Segment's HTTP Tracking API: SDKs send here, events go to the events stream.
    Collect(CollectArgs),
    /// Ask the running engine for its triggers' counts and attribution
    /// (sent, conversions, conversion rate, holdout, uplift) and print them.
    Report(ReportArgs),
    /// Ask the running engine what it holds about one customer: profile,
    /// carts, what each trigger waits for, recent decisions and why.
    Inspect(InspectArgs),
    /// Erase one customer through the running engine (an erasure event in
    /// the events stream, so it survives restarts) and confirm it.
    Forget(ForgetArgs),
    /// The item catalog behind recommendations: load it into a data
    /// directory's index, or publish changes to a running kairos.
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// Pipelines in the kairos_pipelines KV bucket, which running engines
    /// follow without a restart: push a new version, list the versions,
    /// roll back.
    #[command(subcommand)]
    Pipeline(PipelineCommand),
}

#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Load items (JSON lines) into the item index of a data directory,
    /// while no `kairos run` uses it; every line is checked first and a bad
    /// file changes nothing.
    Load(CatalogLoadArgs),
    /// Publish items (JSON lines) as upserts to kairos.catalog.upsert: a
    /// running kairos applies them without a restart.
    Publish(Box<CatalogPublishArgs>),
}

#[derive(Debug, Subcommand)]
pub enum PipelineCommand {
    /// Validate a pipeline file (with --set overrides) and store it as the
    /// new version of its pipeline; running engines switch to it. An
    /// invalid file is refused with every error, and nothing changes.
    Push(PipelinePushArgs),
    /// The stored versions of a pipeline, oldest first.
    History(PipelineNameArgs),
    /// Store an earlier version again as the newest (by default the one
    /// before the newest); running engines switch to it.
    Rollback(PipelineRollbackArgs),
}

#[derive(Debug, Args)]
pub struct PipelinePushArgs {
    #[command(flatten)]
    pub connection: NatsArgs,
    /// The pipeline file (TOML); its `name` is the pipeline pushed.
    pub file: PathBuf,
    /// Override a parameter: TRIGGER.PARAM=VALUE (or settings.X=V, policy.X=V).
    #[arg(long = "set", value_name = "TRIGGER.PARAM=VALUE")]
    pub set: Vec<Override>,
}

#[derive(Debug, Args)]
pub struct PipelineNameArgs {
    #[command(flatten)]
    pub connection: NatsArgs,
    /// The pipeline's name (its file's `name`).
    pub name: String,
}

#[derive(Debug, Args)]
pub struct PipelineRollbackArgs {
    #[command(flatten)]
    pub connection: NatsArgs,
    /// The pipeline's name (its file's `name`).
    pub name: String,
    /// The revision to go back to (see `kairos pipeline history`); by
    /// default the one before the newest.
    #[arg(long, value_name = "REVISION")]
    pub to: Option<u64>,
}

#[derive(Debug, Args)]
pub struct CatalogLoadArgs {
    /// Items as JSON lines ({"id","title","category","brand","price","stock","vector"}); gzip (by content) is decompressed.
    pub file: PathBuf,
    /// The data directory of `kairos run` (the index is DIR/catalog).
    #[arg(long, value_name = "DIR", default_value = "kairos-data")]
    pub data_dir: PathBuf,
    /// Also delete the items the file does not list (the file is the whole catalog).
    #[arg(long)]
    pub replace: bool,
}

#[derive(Debug, Args)]
pub struct CatalogPublishArgs {
    #[command(flatten)]
    pub connection: NatsArgs,
    /// Items as JSON lines; gzip (by content) is decompressed. Every line is
    /// checked before any is published.
    pub file: PathBuf,
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
    /// Items as JSON lines: actions whose trigger asks for recommendations
    /// carry them, as `kairos run` with this catalog would.
    #[arg(long, value_name = "FILE")]
    pub catalog: Option<PathBuf>,
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

#[derive(Debug, Args)]
pub struct SweepArgs {
    /// The pipeline file (TOML).
    #[arg(long)]
    pub pipeline: PathBuf,
    /// Segment calls as JSON lines; `-` for stdin; gzip (by content) is
    /// decompressed. Read once, into memory.
    #[arg(long)]
    pub events: PathBuf,
    /// A parameter to sweep and its values, comma-separated (commas inside
    /// {}, [] or quotes belong to the value): e.g. abandoned_cart.after=10m,30m
    /// or settings.X=..., policy.X=...; repeat it to sweep every combination.
    #[arg(
        long = "param",
        value_name = "TRIGGER.PARAM=V1,V2,...",
        required = true
    )]
    pub params: Vec<crate::sweep::SweptParam>,
    /// Override a parameter at every grid point: TRIGGER.PARAM=VALUE (or
    /// settings.X=V, policy.X=V).
    #[arg(long = "set", value_name = "TRIGGER.PARAM=VALUE")]
    pub set: Vec<Override>,
    /// Also write sweep.csv, sweep.json and sweep.html here (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Stop the clock here (RFC 3339) instead of firing every pending timer;
    /// events at or after it are not replayed.
    #[arg(long, value_parser = parse_time)]
    pub until: Option<Timestamp>,
}

/// Where NATS is and how to log in (at most one of user/password, token,
/// NKey and creds).
#[derive(Debug, Args)]
pub struct NatsArgs {
    /// NATS server URL(s), comma-separated for a cluster.
    #[arg(long, value_name = "URL", default_value = "nats://127.0.0.1:4222")]
    pub nats: String,
    /// User name (with --password).
    #[arg(long, requires = "password", conflicts_with_all = ["token", "nkey", "creds"])]
    pub user: Option<String>,
    /// Password (with --user).
    #[arg(long, requires = "user")]
    pub password: Option<String>,
    /// Authentication token.
    #[arg(long, conflicts_with_all = ["nkey", "creds"])]
    pub token: Option<String>,
    /// File holding an NKey seed (SU...).
    #[arg(long, value_name = "SEED_FILE", conflicts_with = "creds")]
    pub nkey: Option<PathBuf>,
    /// Credentials file (.creds, operator/JWT mode).
    #[arg(long, value_name = "FILE")]
    pub creds: Option<PathBuf>,
    /// CA certificate to trust (PEM); turns TLS on.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM), for servers that verify clients (with --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Client certificate's key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Prefix of this client's reply subjects (run: _INBOX_engine, which
    /// deploy/nats lets only the engine read; others: _INBOX).
    #[arg(long, value_name = "PREFIX")]
    pub inbox_prefix: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub connection: NatsArgs,
    /// Print the engine's answer as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// How long to wait for the engine's answer (e.g. 5s).
    #[arg(long, value_name = "SPAN", default_value = "5s", value_parser = parse_positive_span)]
    pub timeout: Span,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    #[command(flatten)]
    pub connection: NatsArgs,
    /// The customer: a userId or anonymousId.
    pub customer: String,
    /// Print the engine's answer as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// How long to wait for the engine's answer (e.g. 5s).
    #[arg(long, value_name = "SPAN", default_value = "5s", value_parser = parse_positive_span)]
    pub timeout: Span,
}

#[derive(Debug, Args)]
pub struct ForgetArgs {
    #[command(flatten)]
    pub connection: NatsArgs,
    /// The customer: a userId or anonymousId.
    pub customer: String,
    /// How long to wait for the engine to confirm the erasure (e.g. 10s).
    #[arg(long, value_name = "SPAN", default_value = "10s", value_parser = parse_positive_span)]
    pub timeout: Span,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub connection: NatsArgs,
    /// The pipeline file (TOML).
    #[arg(long)]
    pub pipeline: PathBuf,
    /// Override a parameter: TRIGGER.PARAM=VALUE (or settings.X=V, policy.X=V).
    #[arg(long = "set", value_name = "TRIGGER.PARAM=VALUE")]
    pub set: Vec<Override>,
    /// Where snapshots of the engine's state are kept (LMDB).
    #[arg(long, value_name = "DIR", default_value = "kairos-data")]
    pub data_dir: PathBuf,
    /// Serve /healthz, /readyz and /metrics here (e.g. 127.0.0.1:9464).
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<std::net::SocketAddr>,
    /// How often to snapshot the engine's state (e.g. 30s, 5m).
    #[arg(long, value_name = "SPAN", default_value = "30s", value_parser = parse_positive_span)]
    pub snapshot_every: Span,
    /// Discard the snapshot and start with empty state, from the first event
    /// the last run did not handle (the newest, without a snapshot).
    #[arg(long, conflicts_with = "rebuild_state")]
    pub reset_state: bool,
    /// Discard the snapshot and rebuild the state by replaying every event
    /// the stream still holds, publishing nothing for those the last run
    /// handled: for a changed pipeline or a new kairos build.
    #[arg(long)]
    pub rebuild_state: bool,
    /// How long the events stream keeps events: the furthest back a restart
    /// can replay from.
    #[arg(long, value_name = "SPAN", default_value = "7d", value_parser = parse_positive_span)]
    pub events_max_age: Span,
    /// Bytes of events the stream keeps (0: no limit).
    #[arg(long, value_name = "BYTES", default_value_t = 0)]
    pub events_max_bytes: u64,
    /// How long the actions stream keeps actions.
    #[arg(long, value_name = "SPAN", default_value = "7d", value_parser = parse_positive_span)]
    pub actions_max_age: Span,
    /// How long the DLQ keeps rejected input.
    #[arg(long, value_name = "SPAN", default_value = "30d", value_parser = parse_positive_span)]
    pub dlq_max_age: Span,
    /// Window in which JetStream drops a repeated Nats-Msg-Id; must exceed
    /// --snapshot-every, so that actions republished after a crash are dropped.
    #[arg(long, value_name = "SPAN", default_value = "10m", value_parser = parse_positive_span)]
    pub duplicate_window: Span,
    /// Stream replicas: 1, or 3 on a 3-node cluster.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub replicas: u8,
    /// Events delivered and not yet acknowledged, at most.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_ack_pending: u32,
    /// Actions published and not yet stored by JetStream, at most.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_in_flight: u32,
    /// Largest event accepted, in bytes (Segment's limit is 32 KB); larger
    /// ones go to the DLQ.
    #[arg(long, value_name = "BYTES", default_value_t = 32 * 1024, value_parser = clap::value_parser!(u32).range(256..=1_048_576))]
    pub max_event_bytes: u32,
    /// Logs as JSON lines instead of text.
    #[arg(long)]
    pub log_json: bool,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    #[command(flatten)]
    pub connection: NatsArgs,
    /// Segment calls as JSON lines; `-` for stdin; gzip (by content) is
    /// decompressed.
    pub events: PathBuf,
    /// Number of partitions (the subject is kairos.events.<partition>).
    #[arg(long, default_value_t = kairos_nats::partition::DEFAULT_PARTITIONS, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub partitions: u32,
    /// Publishes awaiting JetStream's acknowledgement, at most.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub window: u32,
}

#[derive(Debug, Args)]
pub struct CollectArgs {
    #[command(flatten)]
    pub connection: NatsArgs,
    /// Listen here for HTTP (e.g. 0.0.0.0:8080).
    #[arg(long, value_name = "ADDR")]
    pub listen: std::net::SocketAddr,
    /// Write keys, TOML: [[key]] write_key = "..." source = "..." rate_per_second = N (optional).
    #[arg(long, value_name = "FILE")]
    pub keys: PathBuf,
    /// Number of partitions (the subject is kairos.events.<partition>).
    #[arg(long, default_value_t = kairos_nats::partition::DEFAULT_PARTITIONS, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub partitions: u32,
    /// Serve /healthz, /readyz and /metrics here (e.g. 127.0.0.1:9465).
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<std::net::SocketAddr>,
    /// Logs as JSON lines instead of text.
    #[arg(long)]
    pub log_json: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub connection: NatsArgs,
    /// New shoppers a second, each on one short journey.
    #[arg(long, default_value_t = 2.0, value_parser = parse_positive_rate)]
    pub shoppers_per_second: f64,
    /// Stop after this many shoppers (default: until Ctrl-C).
    #[arg(long)]
    pub shoppers: Option<u64>,
    /// With --shoppers: how long to keep printing decisions after the last call.
    #[arg(long, default_value_t = 10)]
    pub linger_seconds: u64,
    /// Number of partitions (as for `kairos publish`).
    #[arg(long, default_value_t = kairos_nats::partition::DEFAULT_PARTITIONS, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub partitions: u32,
}

fn parse_positive_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate > 0.0 && rate <= 10_000.0 => Ok(rate),
        _ => Err(format!(
            "{text:?} is not a rate; accepted: a number above 0 and at most 10000"
        )),
    }
}

fn parse_positive_span(text: &str) -> Result<Span, String> {
    match Span::parse(text) {
        Ok(span) if span.millis() > 0 => Ok(span),
        Ok(_) => Err("must be more than zero; accepted: e.g. 500ms, 30s, 5m, 7d".to_string()),
        Err(error) => Err(format!("{error}")),
    }
}

fn parse_time(text: &str) -> Result<Timestamp, String> {
    Timestamp::parse_rfc3339(text)
        .map_err(|error| format!("{error}; accepted: RFC 3339, e.g. 2026-11-23T10:00:00Z"))
}
