//! Size and speed of engine snapshots (`Engine::snapshot`,
//! `Engine::restore`), the recovery path of a service.
//!
//! ```text
//! cargo run -p kairos-benches --release --bin snapshot-size -- [--customers N] [--pipeline FILE]
//! ```
//!
//! Builds a population as `state-size` does (an identify and a page view
//! per customer over one simulated hour, on `pipelines/retail.toml` by
//! default), then times a snapshot and a restore, and checks that the
//! restored engine snapshots to the same bytes, in two states:
//!
//! 1. **working form**: right after those events, every customer unpacked;
//! 2. **packed**: the clock moved 49 h on, so that every customer has been
//!    idle longer than `pack_idle_after` (48 h) and is held packed, as most
//!    of a large population is at any moment.
//!
//! The snapshot is written to and read back from a file in the system's
//! temporary directory, so "load" is what a restarting service does: read
//! the file, then restore.

use kairos_benches::{population, DEFAULT_START_MS};
use kairos_engine::Engine;
use kairos_model::Timestamp;
use std::path::PathBuf;
use std::time::Instant;

#[global_allocator]
static ALLOCATOR: kairos_alloc::Allocator = kairos_alloc::Allocator;

fn main() {
    let mut customers: u64 = 1_000_000;
    let mut pipeline_path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../pipelines/retail.toml"
    ));
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match (flag.as_str(), args.next()) {
            ("--customers", Some(value)) => {
                customers = value.replace('_', "").parse().expect("--customers N")
            }
            ("--pipeline", Some(value)) => pipeline_path = PathBuf::from(value),
            _ => {
                eprintln!("usage: snapshot-size [--customers N] [--pipeline FILE]");
                std::process::exit(2);
            }
        }
    }
    let pipeline = kairos_benches::load_pipeline_for(&pipeline_path, customers);
    let mut engine = Engine::new(pipeline);
    let hour = 3_600_000;
    let mut last = DEFAULT_START_MS;
    for line in population(customers, 1, DEFAULT_START_MS, hour) {
        let event = kairos_benches::parse(&line);
        last = last.max(event.time.0);
        engine.handle_event(event);
        while engine.poll_decision().is_some() {}
    }
    engine.advance_to(Timestamp(last + 1));
    while engine.poll_decision().is_some() {}
    engine = measure("1 working form", engine, customers);

    engine.advance_to(Timestamp(last + 49 * hour));
    while engine.poll_decision().is_some() {}
    measure("2 packed (+49 h idle)", engine, customers);
}

/// Snapshots `engine` to a file, restores it from the file, reports, and
/// returns the restored engine.
fn measure(name: &str, engine: Engine, customers: u64) -> Engine {
    let packing = engine.packing();
    let pipeline = engine.pipeline().clone();
    let path = std::env::temp_dir().join(format!("kairos-snapshot-{}.bin", std::process::id()));

    let started = Instant::now();
    let mut bytes = Vec::new();
    engine.snapshot(&mut bytes).expect("decisions were polled");
    let snapshot_ms = started.elapsed().as_secs_f64() * 1e3;
    std::fs::write(&path, &bytes).expect("the snapshot file is written");
    let write_ms = started.elapsed().as_secs_f64() * 1e3 - snapshot_ms;
    let timers = engine.pending_timers();
    drop(engine);
    drop(bytes);

    let started = Instant::now();
    let bytes = std::fs::read(&path).expect("the snapshot file is read");
    let read_ms = started.elapsed().as_secs_f64() * 1e3;
    let restored = Engine::restore(pipeline, &bytes).expect("the snapshot restores");
    let restore_ms = started.elapsed().as_secs_f64() * 1e3 - read_ms;
    let _ = std::fs::remove_file(&path);

    let mut again = Vec::new();
    restored.snapshot(&mut again).expect("nothing to poll");
    println!(
        "{name}: {} customers ({} packed), {timers} pending timers",
        restored.customer_count(),
        packing.cold_now
    );
    println!(
        "    snapshot {:.1} MiB ({:.0} B per customer): snapshot {snapshot_ms:.0} ms, write {write_ms:.0} ms; read {read_ms:.0} ms, restore {restore_ms:.0} ms (load + restore {:.0} ms); restored snapshots to the same bytes: {}",
        bytes.len() as f64 / 1048576.0,
        bytes.len() as f64 / customers as f64,
        read_ms + restore_ms,
        if again == bytes { "yes" } else { "NO" }
    );
    restored
}
