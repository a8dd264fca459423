//! `kairos-loadtest`: shopper traffic at a constant arrival rate (open
//! loop), each request's latency measured from the moment it was scheduled
//! to be sent, so a stall of the system under test shows as latency
//! instead of silently slowing the sender (no coordinated omission).
//!
//! It sends straight to JetStream (`--via nats`) or through `kairos
//! collect` (`--via http`), reads the decisions kairos publishes, and
//! reports event → action latency for immediate triggers and deadline →
//! action lateness for timers, throughput in and out, and the DLQ.

use clap::Parser;
use kairos_loadtest::{actions, measure, raw, report, traffic};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(name = "kairos-loadtest", version, about)]
struct Args {
    /// How events reach kairos: `nats`, straight to JetStream as publishers
    /// do; `http`, Segment batches through `kairos collect`.
    #[arg(long, default_value = "nats", value_parser = ["nats", "http"])]
    via: String,
    /// NATS, where events go (--via nats) and where actions are read.
    #[arg(long, value_name = "URL")]
    nats: Option<url::Url>,
    /// The collector's base URL, the SDKs' host (--via http).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    collector: url::Url,
    /// A write key of the collector's keys file (--via http).
    #[arg(long, default_value = "")]
    write_key: String,
    /// The pipeline kairos runs: which triggers are immediate and which
    /// are timers.
    #[arg(long, value_name = "FILE", default_value = "pipelines/retail.toml")]
    pipeline: PathBuf,
    /// The engine's /metrics (its --admin address), read at the end.
    #[arg(long, value_name = "URL")]
    metrics: Option<url::Url>,
    /// Number of partitions (as for `kairos publish`).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
    partitions: u32,
    /// Events a second, sent at a constant rate whatever the answers.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    rate: u32,
    /// Seconds of sending; then at most 30 s more for the last answers.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=86_400), required_unless_present = "populate")]
    duration: Option<u64>,
    /// The shoppers' event mix: NAME=WEIGHT,... changing the default
    /// weights (tenths of a percent: product_viewed=450, page=200,
    /// product_added=120, product_removed=30, cart_viewed=50,
    /// order_completed=50, store_visited=20, location_updated=30,
    /// points_earned=20, message_opened=10, complaint_filed=5,
    /// review_submitted=5, identify=10).
    #[arg(long, value_name = "NAME=WEIGHT,...", value_parser = kairos_benches::parse_mix)]
    mix: Option<[u16; 13]>,
    /// Instead of shoppers, send one identify and one page view for each of
    /// --customers (as long as that takes at --rate): the engine then holds
    /// them all, for its memory per customer.
    #[arg(long, conflicts_with_all = ["ramp", "duration"])]
    populate: bool,
    /// Seconds to keep reading actions after the last send (timers due).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=3_600))]
    linger: u64,
    /// Distinct customers (Zipf-skewed: a few are very active).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    customers: u64,
    /// Events per send (Segment's SDKs batch 10 to 100; default 100 over
    /// http, 10 over nats). A batch is sent when its last event is due.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=2_500))]
    batch: Option<u32>,
    /// Seed of the traffic: the same seed, rate and customers send the same
    /// events, message ids included, so a repeat within JetStream's
    /// duplicate window is dropped as a duplicate (default: new each run).
    #[arg(long)]
    seed: Option<u64>,
    /// Measure the broker alone: the same events published to a stream of
    /// the load test's own and read back by a pull consumer, without kairos
    /// (the ceiling kairos is compared with).
    #[arg(long)]
    raw: bool,
    /// Raise the rate step by step (each step --duration long) from --rate
    /// by --ramp-step until p99 or the backlog breaks its limit; report the
    /// knee, the highest rate sustained.
    #[arg(long)]
    ramp: bool,
    /// Events a second added at each step of --ramp (default: --rate).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    ramp_step: Option<u32>,
    /// The highest rate --ramp tries.
    #[arg(long, default_value_t = 1_000_000)]
    max_rate: u32,
    /// A step of --ramp is sustained while the p99 of event → action (or,
    /// with --raw, event → delivery) stays within this, in ms.
    #[arg(long, default_value_t = 10.0)]
    max_p99_ms: f64,
    /// ... and while the events stored but not yet taken when sending ends
    /// are at most this many seconds of the step's rate (read from the
    /// consumer on JetStream).
    #[arg(long, default_value_t = 1.0)]
    max_backlog_seconds: f64,
    /// The JSON of a --raw run (or ramp) on the same machine: the broker's
    /// ceiling, to which this run's throughput is reported as a ratio.
    #[arg(long, value_name = "FILE")]
    raw_baseline: Option<PathBuf>,
    /// Also write a report with plots here (one HTML file).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Also write the results as JSON here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Allow targets that are not loopback addresses.
    #[arg(long)]
    allow_remote: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut targets = vec![
        ("--nats", args.nats.as_ref()),
        ("--metrics", args.metrics.as_ref()),
    ];
    if args.via == "http" {
        targets.push(("--collector", Some(&args.collector)));
    }
    for (flag, url) in targets {
        if let Some(url) = url.filter(|url| !args.allow_remote && !is_loopback(url)) {
            return usage(&format!(
                "{flag} {url} is not a loopback address; accepted: localhost, 127.0.0.0/8 or [::1], or pass --allow-remote"
            ));
        }
    }
    if args.via == "nats" && args.nats.is_none() {
        return usage("--via nats needs --nats URL");
    }
    if args.raw && (args.via != "nats" || args.nats.is_none()) {
        return usage("--raw measures NATS alone: it needs --nats URL and --via nats");
    }
    if args.ramp && args.nats.is_none() {
        return usage(
            "--ramp needs --nats URL (the backlog on JetStream, and the decisions' latency, tell whether a step was sustained)",
        );
    }
    if args.via == "http" && args.write_key.is_empty() {
        return usage("--via http needs --write-key (one of the collector's keys file)");
    }
    let baseline = match args
        .raw_baseline
        .as_deref()
        .map(report::raw_ceiling)
        .transpose()
    {
        Ok(baseline) => baseline,
        Err(error) => return usage(&format!("{error:#}")),
    };
    let timings = match actions::timings(&args.pipeline) {
        Ok(timings) => timings,
        Err(error) => return usage(&format!("{error:#}")),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(&args, timings, baseline)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("kairos-loadtest: {error:#}");
            ExitCode::from(1)
        }
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("kairos-loadtest: {problem}");
    ExitCode::from(2)
}

async fn run(
    args: &Args,
    timings: std::collections::HashMap<String, actions::Timing>,
    baseline: Option<f64>,
) -> anyhow::Result<ExitCode> {
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |since| since.as_nanos() as u64)
    });
    let batch = args
        .batch
        .unwrap_or(if args.via == "http" { 100 } else { 10 });
    let plan = if args.populate {
        traffic::Plan::population(args.rate, args.customers, batch, seed)
    } else {
        traffic::Plan {
            mix: args.mix.unwrap_or(kairos_benches::RETAIL_MIX),
            ..traffic::Plan::shoppers(
                args.rate,
                Duration::from_secs(args.duration.unwrap_or(1)),
                args.customers,
                batch,
                seed,
            )
        }
    };
    let client = match &args.nats {
        Some(url) => Some(
            match args.allow_remote {
                true => async_nats::ConnectOptions::new(),
                // The servers a loopback server tells of (its cluster) are
                // not loopback ones: reconnect to the one given only.
                false => async_nats::ConnectOptions::new().ignore_discovered_servers(),
            }
            .name("kairos-loadtest")
            .connect(url.as_str())
            .await
            .map_err(|error| anyhow::anyhow!("cannot connect to --nats {url}: {error}"))?,
        ),
        None => None,
    };
    let js = client.clone().map(async_nats::jetstream::new);
    let (system, target) = match (&js, args.raw) {
        (Some(js), true) => {
            raw::prepare(js).await?;
            let target = traffic::Target::Nats {
                js: js.clone(),
                partitions: args.partitions,
                subject_prefix: raw::SUBJECT_PREFIX.to_string(),
            };
            (measure::System::Raw { js: js.clone() }, target)
        }
        _ => {
            let target = match &js {
                Some(js) if args.via == "nats" => traffic::Target::Nats {
                    js: js.clone(),
                    partitions: args.partitions,
                    subject_prefix: kairos_nats::partition::EVENTS_PREFIX.to_string(),
                },
                _ => {
                    traffic::Target::Http(traffic::Collector::at(&args.collector, &args.write_key))
                }
            };
            let system = measure::System::Kairos {
                client: client.clone(),
                timings,
                metrics: args.metrics.clone(),
            };
            (system, target)
        }
    };
    let outcome = if args.ramp {
        ramp(args, &system, &target, plan, baseline).await
    } else {
        single(args, &system, &target, plan, baseline).await
    };
    if let (Some(js), true) = (&js, args.raw) {
        raw::remove(js).await;
    }
    outcome
}

/// One rate for --duration.
async fn single(
    args: &Args,
    system: &measure::System,
    target: &traffic::Target,
    plan: traffic::Plan,
    baseline: Option<f64>,
) -> anyhow::Result<ExitCode> {
    let linger = Duration::from_secs(args.linger);
    let step = measure::step(system, target, plan, linger).await?;
    print!("{}", report::step_text(&step, &args.via, args.raw));
    let mut json = report::step_json(&step, &args.via, args.raw);
    if args.raw {
        json["mode"] = "raw".into();
    }
    report::compare_to_raw(&mut json, baseline);
    write_json(args, &json)?;
    write_report(args, || report::step_html(&step, &args.via, args.raw))?;
    Ok(ExitCode::SUCCESS)
}

/// Steps of --duration from --rate up by --ramp-step until one breaks a
/// limit (or --max-rate); the knee is the last step sustained.
async fn ramp(
    args: &Args,
    system: &measure::System,
    target: &traffic::Target,
    first: traffic::Plan,
    baseline: Option<f64>,
) -> anyhow::Result<ExitCode> {
    let limits = measure::Limits {
        p99_ms: args.max_p99_ms,
        backlog_seconds: args.max_backlog_seconds,
    };
    let step_by = args.ramp_step.unwrap_or(first.rate);
    // Timers of one step that come due in the next are measured there,
    // from their deadlines, like the next step's own.
    let linger = Duration::from_secs(2);
    let mut steps = Vec::new();
    for index in 0u64.. {
        let rate = first.rate as u64 + index * step_by as u64;
        if rate > args.max_rate as u64 {
            break;
        }
        let plan = traffic::Plan {
            rate: rate as u32,
            // Each step's message ids its own.
            seed: first.seed.wrapping_add(index),
            ..first.clone()
        };
        println!(
            "== step {}: {rate} events/s for {} s",
            index + 1,
            plan.duration.as_secs()
        );
        let step = measure::step(system, target, plan, linger).await?;
        let verdict = measure::sustained(&step, &limits);
        print!("{}", report::step_text(&step, &args.via, args.raw));
        match &verdict {
            Ok(()) => println!("sustained"),
            Err(why) => println!("not sustained: {why}"),
        }
        let broke = verdict.is_err();
        steps.push((step, verdict));
        if broke {
            break;
        }
    }
    let mut json = report::ramp_json(&steps, &args.via, args.raw);
    report::compare_to_raw(&mut json, baseline);
    match json["knee_rate"].as_u64() {
        Some(knee) => println!("\nknee: {knee} events/s (the highest rate sustained)"),
        None => println!("\nno step was sustained: start lower (--rate)"),
    }
    write_json(args, &json)?;
    write_report(args, || report::ramp_html(&steps, &args.via, args.raw))?;
    Ok(ExitCode::SUCCESS)
}

fn write_report(args: &Args, html: impl FnOnce() -> String) -> anyhow::Result<()> {
    if let Some(path) = &args.report {
        std::fs::write(path, html()).map_err(|error| {
            anyhow::anyhow!("cannot write --report {}: {error}", path.display())
        })?;
        println!("report: {}", path.display());
    }
    Ok(())
}

fn write_json(args: &Args, json: &serde_json::Value) -> anyhow::Result<()> {
    if let Some(path) = &args.json {
        std::fs::write(path, format!("{json:#}\n"))
            .map_err(|error| anyhow::anyhow!("cannot write --json {}: {error}", path.display()))?;
    }
    Ok(())
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        // nats:// is not a scheme the URL standard knows, so its host is
        // kept as text, addresses included.
        Some(url::Host::Domain(domain)) => {
            domain == "localhost"
                || domain
                    .trim_matches(|c| c == '[' || c == ']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|address| address.is_loopback())
        }
        Some(url::Host::Ipv4(address)) => address.is_loopback(),
        Some(url::Host::Ipv6(address)) => address.is_loopback(),
        None => false,
    }
}
