//! Engine-only throughput without criterion, for profilers: parses a whole
//! workload into memory first, then times feeding it to one engine on one
//! thread (and, separately, the final drain of every pending timer).
//!
//! ```text
//! cargo run -p kairos-benches --release --bin engine-loop -- \
//!     --workload retail|cart --customers N --events M [--pipeline FILE] [--populate] [--seed S] [--hours H] [--no-drain] [--catalog FILE [--taste-only]]
//! perf record -g target/release/engine-loop --workload cart --customers 200000 --events 2000000 \
//!     --pipeline benches/cart-only.toml
//! ```
//!
//! `--populate` first applies an identify and a page view for every customer
//! (untimed), as the criterion benchmark does. `--hours H`: see
//! `Config::over_hours`. `--catalog FILE` loads a catalog (untimed): the
//! engine then keeps taste vectors, and each decision that asks for
//! recommendations is answered from the item index on the same thread, as
//! `kairos run`'s worker does, inside the timed part (`--taste-only`: the
//! taste vectors are kept and the requests left unanswered).

use kairos_recommend::{read_catalog, CatalogChange, ItemIndex};

use kairos_benches::{generate, parse, population, Config, Workload};
use kairos_engine::Engine;
use kairos_model::{Event, Timestamp};
use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

/// Same allocator as the `kairos` binary (see `benches/Cargo.toml`), with
/// a count of allocations (one relaxed atomic add each) so that the report
/// can say how many the engine makes per event.
#[cfg(not(feature = "system-allocator"))]
static INNER: kairos_alloc::Allocator = kairos_alloc::Allocator;
#[cfg(feature = "system-allocator")]
static INNER: std::alloc::System = std::alloc::System;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        unsafe { INNER.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        unsafe { INNER.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        unsafe { INNER.dealloc(pointer, layout) }
    }
    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        unsafe { INNER.realloc(pointer, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn main() {
    let mut workload = Workload::Retail;
    let (mut customers, mut events, mut seed, mut hours) = (1_000_000u64, 2_000_000u64, None, None);
    let mut pipeline_path = None;
    let mut populate = false;
    let mut drain = true;
    let mut catalog_path: Option<PathBuf> = None;
    let mut taste_only = false;
    let mut args = std::env::args().skip(1);
    let number = |text: Option<String>| -> u64 {
        text.unwrap_or_default()
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| usage())
    };
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--workload" => {
                workload = args
                    .next()
                    .unwrap_or_default()
                    .parse()
                    .unwrap_or_else(|_| usage())
            }
            "--customers" => customers = number(args.next()),
            "--events" => events = number(args.next()),
            "--seed" => seed = Some(number(args.next())),
            "--hours" => hours = Some(number(args.next())),
            "--pipeline" => pipeline_path = args.next().map(PathBuf::from),
            "--populate" => populate = true,
            "--no-drain" => drain = false,
            "--catalog" => catalog_path = args.next().map(PathBuf::from),
            "--taste-only" => taste_only = true,
            _ => usage(),
        }
    }
    let pipeline_path = pipeline_path.unwrap_or_else(|| {
        PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../pipelines/retail.toml"
        ))
    });
    let pipeline = kairos_pipeline::load(&pipeline_path, &[]).unwrap_or_else(|diagnostics| {
        for diagnostic in diagnostics {
            eprintln!("{diagnostic}");
        }
        std::process::exit(2)
    });
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
    let mut engine = Engine::new(pipeline);
    let mut decisions = 0u64;
    // Kept until the end: the index lives in it.
    let catalog_dir = tempfile::tempdir().expect("a temporary directory");
    let items = catalog_path.map(|path| {
        let started = Instant::now();
        let catalog = read_catalog(&path).unwrap_or_else(|error| {
            eprintln!("{error}");
            std::process::exit(2)
        });
        let index = ItemIndex::open(catalog_dir.path()).expect("an item index");
        index
            .apply(catalog.into_iter().map(CatalogChange::Upsert))
            .expect("the catalog applies");
        *engine.item_vectors_mut() = kairos_recommend::item_vectors(&index).expect("the vectors");
        eprintln!(
            "loaded {} catalog items in {:.2} s (untimed)",
            index.len(),
            started.elapsed().as_secs_f64()
        );
        index
    });
    if populate {
        let started = Instant::now();
        let start = config.start_ms - 2 * 3_600_000;
        for line in population(customers, config.seed, start, 3_600_000) {
            engine.handle_event(parse(&line));
            while engine.poll_decision().is_some() {}
        }
        eprintln!(
            "populated {} customers in {:.2} s",
            engine.customer_count(),
            started.elapsed().as_secs_f64()
        );
    }
    let started = Instant::now();
    let parsed: Vec<Event> = generate(&config).map(|line| parse(&line)).collect();
    eprintln!(
        "generated and parsed {} events in {:.2} s (untimed)",
        parsed.len(),
        started.elapsed().as_secs_f64()
    );
    let count = parsed.len();
    let allocations = ALLOCATIONS.load(Relaxed);
    let started = Instant::now();
    let answer_with = items.as_ref().filter(|_| !taste_only);
    let (fed, enriched, answering) = feed(&mut engine, parsed, answer_with);
    decisions += fed;
    let feed = started.elapsed().as_secs_f64();
    let allocations = ALLOCATIONS.load(Relaxed) - allocations;
    println!(
        "engine: {count} events in {feed:.3} s: {:.0} events/s ({:.2} us/event, {:.1} allocations/event); {} customers, {} pending timers, {} decisions so far",
        count as f64 / feed,
        feed * 1e6 / count as f64,
        allocations as f64 / count as f64,
        engine.customer_count(),
        engine.pending_timers(),
        decisions
    );
    let packing = engine.packing();
    if items.is_some() {
        println!(
            "decisions enriched with recommendations: {enriched}, answering them took {answering:.3} s of the {feed:.3} s"
        );
    }
    println!(
        "idle customers packed {} times, unpacked {} times; {} packed now",
        packing.packed, packing.unpacked, packing.cold_now
    );
    if !drain {
        // Skips the drain and the drop: quicker A/B runs of the timed part.
        std::process::exit(0);
    }
    let started = Instant::now();
    engine.advance_to(Timestamp::MAX);
    while let Some(decision) = engine.poll_decision() {
        black_box(&decision);
        decisions += 1;
    }
    println!(
        "drain to the end of time: {:.3} s, {} decisions in all",
        started.elapsed().as_secs_f64(),
        decisions
    );
    let started = Instant::now();
    drop(engine);
    println!("drop: {:.3} s", started.elapsed().as_secs_f64());
}

/// The timed part: every event in, every decision out. Not inlined, so that
/// `benches/scripts/instructions.sh` can count inside it alone (the
/// untimed `--populate` phase also calls `Engine::handle_event`).
#[inline(never)]
fn feed(engine: &mut Engine, events: Vec<Event>, items: Option<&ItemIndex>) -> (u64, u64, f64) {
    let (mut decisions, mut enriched, mut answering) = (0, 0, 0.0);
    for event in events {
        engine.handle_event(event);
        while let Some(mut decision) = engine.poll_decision() {
            if let (Some(request), Some(items)) = (decision.recommend.take(), items) {
                let started = Instant::now();
                kairos_recommend::enrich(items, &request, &mut decision.payload);
                answering += started.elapsed().as_secs_f64();
                enriched += 1;
            }
            black_box(&decision);
            decisions += 1;
        }
    }
    (decisions, enriched, answering)
}

fn usage() -> ! {
    eprintln!(
        "usage: engine-loop --workload retail|cart --customers N --events M [--pipeline FILE] [--populate] [--seed S] [--hours H] [--no-drain] [--catalog FILE [--taste-only]]"
    );
    std::process::exit(2)
}
