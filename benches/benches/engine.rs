//! Criterion benchmarks of the engine alone (no NATS, no I/O).
//!
//! - `engine/retail_1M_zipf`: `pipelines/retail.toml`, 1 M known customers
//!   (each identified once before measuring), Zipf-skewed retail traffic.
//!   Events are generated and parsed into `Event`s *outside* the timed part;
//!   the timed part is `handle_event` + draining `poll_decision`, on one
//!   thread, on an engine that keeps its state from chunk to chunk (so the
//!   simulated clock moves on and timers fire as they would in production).
//! - `engine/cart_only_200k`: `benches/cart-only.toml` on the abandoned-cart
//!   job's traffic (the Flink comparison), same method.
//! - `parse/*`: `Event::from_json` over pre-generated JSON lines, for
//!   reference (the backtest parses on a second thread).
//!
//! Sample sizes are small on purpose: `cargo bench -p kairos-benches` should
//! finish within a few minutes on a 2-core machine.

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use kairos_benches::{generate, parse, population, Config, Generator};
use kairos_engine::config::Pipeline;
use kairos_engine::Engine;
use kairos_model::Event;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

/// Same allocator as the `kairos` binary (see `benches/Cargo.toml`).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: kairos_alloc::Allocator = kairos_alloc::Allocator;

/// Customers of the retail benchmark.
const RETAIL_CUSTOMERS: u64 = 1_000_000;
/// Customers of the abandoned-cart job.
const CART_CUSTOMERS: u64 = 200_000;
/// Events per timed chunk (one criterion iteration).
const CHUNK: usize = 200_000;
/// Zipf events applied before criterion starts, so state is not empty.
const PRE_WARM_EVENTS: usize = 1_000_000;

fn load(relative: &str) -> Pipeline {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    kairos_pipeline::load(&path, &[]).unwrap_or_else(|diagnostics| {
        for diagnostic in diagnostics {
            eprintln!("{diagnostic}");
        }
        panic!("{} does not validate", path.display())
    })
}

/// An engine and the endless event stream that feeds it.
struct Feed {
    engine: Engine,
    stream: Generator,
    decisions: u64,
}

impl Feed {
    fn new(pipeline: Pipeline, config: Config, populate: bool) -> Feed {
        let mut feed = Feed {
            engine: Engine::new(pipeline),
            stream: generate(&config),
            decisions: 0,
        };
        if populate {
            // Every customer known before the traffic starts: an identify
            // (time zone, birthday, consent) and a page view, in the hour
            // that ends an hour before the stream's first event.
            let start = config.start_ms - 2 * 3_600_000;
            let lines = population(config.customers, config.seed, start, 3_600_000);
            let events: Vec<Event> = lines.map(|line| parse(&line)).collect();
            feed.apply(events);
        }
        for _ in 0..PRE_WARM_EVENTS / CHUNK {
            let chunk = feed.chunk();
            feed.apply(chunk);
        }
        feed
    }

    /// The next chunk of the stream, parsed (not timed).
    fn chunk(&mut self) -> Vec<Event> {
        self.stream
            .by_ref()
            .take(CHUNK)
            .map(|line| parse(&line))
            .collect()
    }

    /// Feeds events and drains decisions (the timed part).
    fn apply(&mut self, events: Vec<Event>) -> Duration {
        let started = Instant::now();
        for event in events {
            self.engine.handle_event(event);
            while let Some(decision) = self.engine.poll_decision() {
                black_box(&decision);
                self.decisions += 1;
            }
        }
        started.elapsed()
    }

    /// A criterion `iter_custom` routine: `iters` chunks, only feeding timed.
    fn run(&mut self, iters: u64) -> Duration {
        let mut timed = Duration::ZERO;
        for _ in 0..iters {
            let chunk = self.chunk();
            timed += self.apply(chunk);
        }
        timed
    }
}

fn engine_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Elements(CHUNK as u64));

    // Set up lazily, so that a filter that skips a benchmark skips its
    // set-up too (criterion calls the closure once per sample).
    let mut retail: Option<Feed> = None;
    group.bench_function("retail_1M_zipf", |b| {
        let feed = retail.get_or_insert_with(|| {
            let setup = Instant::now();
            let feed = Feed::new(
                load("../pipelines/retail.toml"),
                Config::retail(RETAIL_CUSTOMERS, u64::MAX),
                true,
            );
            eprintln!(
                "engine/retail_1M_zipf: set up in {:.1} s: {} customers, {} pending timers",
                setup.elapsed().as_secs_f64(),
                feed.engine.customer_count(),
                feed.engine.pending_timers()
            );
            feed
        });
        b.iter_custom(|iters| feed.run(iters))
    });
    if let Some(feed) = retail.take() {
        let stats = feed.engine.stats();
        eprintln!(
            "engine/retail_1M_zipf: after the run: {} events, {} customers, {} pending timers, {} decisions, {} late, {} duplicates",
            stats.events,
            feed.engine.customer_count(),
            feed.engine.pending_timers(),
            feed.decisions,
            stats.late,
            stats.duplicates
        );
    }

    let mut cart: Option<Feed> = None;
    group.bench_function("cart_only_200k", |b| {
        let feed = cart.get_or_insert_with(|| {
            Feed::new(
                load("cart-only.toml"),
                Config::cart(CART_CUSTOMERS, u64::MAX),
                false,
            )
        });
        b.iter_custom(|iters| feed.run(iters))
    });
    if let Some(feed) = cart.take() {
        eprintln!(
            "engine/cart_only_200k: after the run: {} events, {} customers, {} decisions",
            feed.engine.stats().events,
            feed.engine.customer_count(),
            feed.decisions
        );
    }
    group.finish();
}

fn parse_benches(c: &mut Criterion) {
    const LINES: u64 = 100_000;
    let mut group = c.benchmark_group("parse");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(LINES));
    for (name, config) in [
        ("retail", Config::retail(RETAIL_CUSTOMERS, LINES)),
        ("cart", Config::cart(CART_CUSTOMERS, LINES)),
    ] {
        let lines: Vec<String> = generate(&config).collect();
        let bytes: usize = lines.iter().map(String::len).sum();
        eprintln!(
            "parse/{name}: {LINES} lines, {:.0} bytes per line on average",
            bytes as f64 / LINES as f64
        );
        group.bench_function(name, |b| {
            b.iter(|| {
                for line in &lines {
                    black_box(Event::from_json(black_box(line.as_bytes())).is_ok());
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, parse_benches, engine_benches);
criterion_main!(benches);
