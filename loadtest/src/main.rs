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
use kairos_loadtest::{actions, report, traffic};
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
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    duration: u64,
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
    /// Seed of the traffic: the same seed, rate and customers send the same events.
    #[arg(long, default_value_t = 42)]
    seed: u64,
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
    if args.via == "http" && args.write_key.is_empty() {
        return usage("--via http needs --write-key (one of the collector's keys file)");
    }
    let timings = match actions::timings(&args.pipeline) {
        Ok(timings) => timings,
        Err(error) => return usage(&format!("{error:#}")),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(&args, timings)) {
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
) -> anyhow::Result<ExitCode> {
    let plan = traffic::Plan {
        rate: args.rate,
        duration: Duration::from_secs(args.duration),
        customers: args.customers,
        batch: args
            .batch
            .unwrap_or(if args.via == "http" { 100 } else { 10 }),
        seed: args.seed,
    };
    let client = match &args.nats {
        Some(url) => Some(
            async_nats::ConnectOptions::new()
                .name("kairos-loadtest")
                .connect(url.as_str())
                .await
                .map_err(|error| anyhow::anyhow!("cannot connect to --nats {url}: {error}"))?,
        ),
        None => None,
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let since_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let watcher = client
        .clone()
        .map(|client| tokio::spawn(actions::watch(client, timings, since_ms, stopped)));
    let target = match (&args.via[..], &client) {
        ("nats", Some(client)) => traffic::Target::Nats {
            js: async_nats::jetstream::new(client.clone()),
            partitions: args.partitions,
        },
        _ => traffic::Target::Http(traffic::Collector {
            batch_url: args.collector.join("v1/batch")?,
            write_key: args.write_key.clone(),
        }),
    };
    let sent = traffic::send(&plan, target).await?;
    let seen = match watcher {
        Some(watcher) => {
            println!("reading actions for {} s more (timers due)", args.linger);
            tokio::time::sleep(Duration::from_secs(args.linger)).await;
            let _ = stop.send(true);
            Some(watcher.await??)
        }
        None => None,
    };
    let engine = match &args.metrics {
        Some(url) => Some(report::scrape(url).await?),
        None => None,
    };
    let results = report::Results {
        sent,
        seen,
        engine,
        via: args.via.clone(),
    };
    print!("{}", report::text(&plan, &results));
    if let Some(path) = &args.json {
        let json = report::json(&plan, &results);
        std::fs::write(path, format!("{json:#}\n"))
            .map_err(|error| anyhow::anyhow!("cannot write --json {}: {error}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
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
