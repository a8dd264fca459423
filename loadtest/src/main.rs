//! `kairos-loadtest`: shopper traffic at a constant arrival rate (open
//! loop), each request's latency measured from the moment it was scheduled
//! to be sent, so a stall of the system under test shows as latency
//! instead of silently slowing the sender (no coordinated omission).
//!
//! This first part sends through `kairos collect` (`--via http`) and
//! measures ingest: events stored a second and per-request latency.

use clap::Parser;
use kairos_loadtest::{report, traffic};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(name = "kairos-loadtest", version, about)]
struct Args {
    /// How events reach kairos: `http`, Segment batches to `kairos collect`.
    #[arg(long, default_value = "http", value_parser = ["http"])]
    via: String,
    /// The collector's base URL (the SDKs' host).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    collector: url::Url,
    /// A write key of the collector's keys file.
    #[arg(long)]
    write_key: String,
    /// Events a second, sent at a constant rate whatever the answers.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    rate: u32,
    /// Seconds of sending; then at most 30 s more for the last answers.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    duration: u64,
    /// Distinct customers (Zipf-skewed: a few are very active).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    customers: u64,
    /// Events per request (Segment's SDKs send batches of 10 to 100).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=2_500))]
    batch: u32,
    /// Seed of the traffic: the same seed, rate and customers send the same events.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Also write the results as JSON here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Allow a target that is not a loopback address.
    #[arg(long)]
    allow_remote: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !args.allow_remote && !is_loopback(&args.collector) {
        eprintln!(
            "kairos-loadtest: --collector {} is not a loopback address; accepted: localhost, 127.0.0.0/8 or [::1], or pass --allow-remote",
            args.collector
        );
        return ExitCode::from(2);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let plan = traffic::Plan {
        rate: args.rate,
        duration: Duration::from_secs(args.duration),
        customers: args.customers,
        batch: args.batch,
        seed: args.seed,
    };
    let target = traffic::Collector {
        batch_url: args.collector.join("v1/batch").expect("a base URL"),
        write_key: args.write_key.clone(),
    };
    let results = match runtime.block_on(traffic::send(&plan, &target)) {
        Ok(results) => results,
        Err(error) => {
            eprintln!("kairos-loadtest: {error:#}");
            return ExitCode::from(1);
        }
    };
    print!("{}", report::text(&plan, &results));
    if let Some(path) = &args.json {
        let json = report::json(&plan, &results);
        if let Err(error) = std::fs::write(path, format!("{json:#}\n")) {
            eprintln!(
                "kairos-loadtest: cannot write --json {}: {error}",
                path.display()
            );
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain == "localhost",
        Some(url::Host::Ipv4(address)) => address.is_loopback(),
        Some(url::Host::Ipv6(address)) => address.is_loopback(),
        None => false,
    }
}
