//! Writes a synthetic workload as Segment JSON lines on stdout.
//!
//! ```text
//! cargo run -p kairos-benches --release --bin gen-events -- \
//!     --workload retail|cart --customers N --events M [--seed S] [--hours H] > events.jsonl
//! ```

use kairos_benches::{generate, Config, Workload};
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

const USAGE: &str =
    "usage: gen-events --workload retail|cart --customers N --events M [--seed S] [--hours H]";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("gen-events: {message}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let mut workload = None;
    let (mut customers, mut events, mut seed, mut hours) = (None, None, None, None);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        let number = |text: String| {
            text.replace('_', "")
                .parse::<u64>()
                .map_err(|_| format!("{text:?} is not a whole number"))
        };
        match flag.as_str() {
            "--workload" => workload = Some(value()?.parse::<Workload>()?),
            "--customers" => customers = Some(number(value()?)?),
            "--events" => events = Some(number(value()?)?),
            "--seed" => seed = Some(number(value()?)?),
            "--hours" => hours = Some(number(value()?)?),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let workload = workload.ok_or("--workload is required")?;
    let customers = customers.ok_or("--customers is required")?;
    let events = events.ok_or("--events is required")?;
    if customers == 0 {
        return Err("--customers must be at least 1".into());
    }
    let mut config = match workload {
        Workload::Retail => Config::retail(customers, events),
        Workload::Cart => Config::cart(customers, events),
    };
    if let Some(seed) = seed {
        config = config.with_seed(seed);
    }
    if let Some(hours) = hours {
        config = config.over_hours(hours);
    }
    let stdout = io::stdout().lock();
    let mut out = BufWriter::with_capacity(1 << 20, stdout);
    let write_error = |error: io::Error| format!("cannot write: {error}");
    for line in generate(&config) {
        out.write_all(line.as_bytes()).map_err(write_error)?;
        out.write_all(b"\n").map_err(write_error)?;
    }
    out.flush().map_err(write_error)
}
