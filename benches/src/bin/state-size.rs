//! Bytes of engine state per customer, measured with a counting allocator.
//!
//! ```text
//! cargo run -p kairos-benches --release --bin state-size -- [--customers N] [--pipeline FILE] [--uuid-message-ids]
//! ```
//!
//! Builds an engine with the pipeline (default `pipelines/retail.toml`), then:
//!
//! 1. **idle**: every customer gets an identify (time zone, birthday,
//!    consent) and a page view, spread over one simulated hour; measured
//!    right after they are applied;
//! 2. **idle, +49 h**: the clock is advanced 49 h without events (timers due
//!    in that time fire). Every customer has now been idle for longer than
//!    `settings.pack_idle_after` (48 h), so the engine holds them packed,
//!    without their de-duplication entries (older than twice the 24 h
//!    look-back);
//! 3. **idle, after one more page view each**: unpacked again, in working
//!    form;
//! 4. **active cart**: every customer adds 1-3 products to one cart;
//! 5. **after an order**: every customer checks that cart out (an order
//!    with revenue and one product), which gives them revenue measures, a
//!    purchase history and a pending review request.
//!
//! The message ids are short (`add-17-0`). With `--uuid-message-ids` each is
//! replaced by a lowercase UUID derived from it, as Segment's SDKs send.
//!
//! Live bytes are what the program asked the allocator for and has not
//! freed (allocator overhead and fragmentation are not included; the
//! resident set size is printed beside it for that). Event parsing happens
//! before the engine sees an event, and the reorder buffer is flushed before
//! each measurement, so only the engine's own state is counted.

use kairos_benches::{population, rfc3339, SplitMix64, DEFAULT_START_MS};
use kairos_engine::Engine;
use kairos_model::Event;
use kairos_model::Timestamp;
use std::alloc::{GlobalAlloc, Layout};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

/// The allocator underneath: mimalloc as in the `kairos` binary, or the
/// platform's malloc with `--features system-allocator`. Live bytes do not
/// depend on it; the resident set size does.
#[cfg(not(feature = "system-allocator"))]
static INNER: kairos_alloc::Allocator = kairos_alloc::Allocator;
#[cfg(feature = "system-allocator")]
static INNER: std::alloc::System = std::alloc::System;

/// Wraps the allocator and counts live bytes and blocks, in total and by
/// size class (powers of two), so that the state's shape is visible.
struct Counting;

static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);
static LIVE_BLOCKS: AtomicI64 = AtomicI64::new(0);
static PEAK_BYTES: AtomicI64 = AtomicI64::new(0);
static CALLS: AtomicU64 = AtomicU64::new(0);
const CLASSES: usize = 40;
static CLASS_BYTES: [AtomicI64; CLASSES] = [const { AtomicI64::new(0) }; CLASSES];
static CLASS_BLOCKS: [AtomicI64; CLASSES] = [const { AtomicI64::new(0) }; CLASSES];

fn class(size: usize) -> usize {
    (usize::BITS - size.max(1).saturating_sub(1).leading_zeros()) as usize
}

fn count(size: usize, sign: i64) {
    let bytes = size as i64 * sign;
    let live = LIVE_BYTES.fetch_add(bytes, Relaxed) + bytes;
    if sign > 0 {
        PEAK_BYTES.fetch_max(live, Relaxed);
        CALLS.fetch_add(1, Relaxed);
    }
    LIVE_BLOCKS.fetch_add(sign, Relaxed);
    let class = class(size).min(CLASSES - 1);
    CLASS_BYTES[class].fetch_add(bytes, Relaxed);
    CLASS_BLOCKS[class].fetch_add(sign, Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let pointer = unsafe { INNER.alloc(layout) };
        if !pointer.is_null() {
            count(layout.size(), 1);
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let pointer = unsafe { INNER.alloc_zeroed(layout) };
        if !pointer.is_null() {
            count(layout.size(), 1);
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        unsafe { INNER.dealloc(pointer, layout) };
        count(layout.size(), -1);
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let moved = unsafe { INNER.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            count(layout.size(), -1);
            count(new_size, 1);
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// A snapshot of the counters.
#[derive(Clone, Copy)]
struct Snapshot {
    bytes: i64,
    blocks: i64,
    classes: [(i64, i64); CLASSES],
    rss: i64,
}

fn snapshot() -> Snapshot {
    let mut classes = [(0, 0); CLASSES];
    for (index, slot) in classes.iter_mut().enumerate() {
        *slot = (
            CLASS_BYTES[index].load(Relaxed),
            CLASS_BLOCKS[index].load(Relaxed),
        );
    }
    Snapshot {
        bytes: LIVE_BYTES.load(Relaxed),
        blocks: LIVE_BLOCKS.load(Relaxed),
        classes,
        rss: resident_bytes(),
    }
}

fn resident_bytes() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1)?.parse::<i64>().ok())
        })
        .map(|kib| kib * 1024)
        .unwrap_or(-1)
}

/// Prints a phase: per customer since `base`, and the size classes of what
/// was added since `previous`.
fn report(name: &str, customers: u64, base: &Snapshot, previous: &Snapshot, now: &Snapshot) {
    let n = customers as f64;
    println!(
        "{name:<34} {:>9.1} B/customer  {:>6.2} blocks/customer  (live {:>8.1} MiB, +{:>7.1} B/customer vs previous phase; RSS {:>7.1} MiB)",
        (now.bytes - base.bytes) as f64 / n,
        (now.blocks - base.blocks) as f64 / n,
        now.bytes as f64 / 1048576.0,
        (now.bytes - previous.bytes) as f64 / n,
        now.rss as f64 / 1048576.0,
    );
    let mut line = String::new();
    for (index, ((bytes, blocks), (old_bytes, old_blocks))) in
        now.classes.iter().zip(previous.classes.iter()).enumerate()
    {
        let (bytes, blocks) = (bytes - old_bytes, blocks - old_blocks);
        if bytes.abs() as f64 / n >= 0.5 {
            let upper = 1u64 << index;
            let lower = if index == 0 { 0 } else { (upper >> 1) + 1 };
            let _ = write!(
                line,
                " [{lower}-{upper} B: {:+.2} blocks, {:+.1} B]",
                blocks as f64 / n,
                bytes as f64 / n
            );
        }
    }
    println!("    by block size, per customer, vs previous phase:{line}");
}

fn main() {
    let mut customers: u64 = 1_000_000;
    let mut stop_after = 5;
    let mut pipeline_path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../pipelines/retail.toml"
    ));
    let mut uuids = false;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--uuid-message-ids" {
            uuids = true;
            continue;
        }
        match (flag.as_str(), args.next()) {
            ("--customers", Some(value)) => {
                customers = value.replace('_', "").parse().expect("--customers N")
            }
            ("--pipeline", Some(value)) => pipeline_path = PathBuf::from(value),
            ("--stop-after", Some(value)) => stop_after = value.parse().expect("--stop-after 1-5"),
            _ => {
                eprintln!(
                    "usage: state-size [--customers N] [--pipeline FILE] [--stop-after PHASE] [--uuid-message-ids]"
                );
                std::process::exit(2);
            }
        }
    }
    let pipeline = kairos_benches::load_pipeline_for(&pipeline_path, customers);
    let parse = |line: &str| -> Event {
        let mut event = kairos_benches::parse(line);
        if uuids {
            event.message_id = uuid_from(&event.message_id).into();
        }
        event
    };
    let mut engine = Engine::new(pipeline);
    let mut decisions = 0u64;
    let mut drain = |engine: &mut Engine| {
        while engine.poll_decision().is_some() {
            decisions += 1;
        }
    };
    let base = snapshot();
    // Ends a phase: moves the clock to `until`, then measures and reports.
    let end_phase = |engine: &mut Engine,
                     drain: &mut dyn FnMut(&mut Engine),
                     until: i64,
                     name: &str,
                     previous: &Snapshot| {
        engine.advance_to(Timestamp(until));
        drain(engine);
        let now = snapshot();
        report(name, customers, &base, previous, &now);
        let packing = engine.packing();
        println!(
            "    pending timers: {}, customers packed: {} ({:.1} bytes each on average)",
            engine.pending_timers(),
            packing.cold_now,
            packing.cold_bytes as f64 / packing.cold_now.max(1) as f64
        );
        now
    };

    // 1. idle: identify + page, over one hour.
    let hour = 3_600_000;
    let start = DEFAULT_START_MS;
    let mut last = start;
    // Generated and parsed in slices so the parsed events are not counted
    // while held (the engine owns each event once handed over).
    let mut lines = population(customers, 1, start, hour);
    loop {
        let slice: Vec<_> = lines.by_ref().take(100_000).map(|l| parse(&l)).collect();
        if slice.is_empty() {
            break;
        }
        for event in slice {
            last = last.max(event.time.0);
            engine.handle_event(event);
            drain(&mut engine);
        }
    }
    // Flush the reorder buffer without moving the clock further than needed.
    let name = "1 idle (identify + page)";
    let idle = end_phase(&mut engine, &mut drain, last + 1, name, &base);
    if stop_after == 1 {
        return;
    }

    // 2. +49 h, no events.
    let later = last + 49 * hour;
    let name = "2 idle, clock +49 h (packed)";
    let aged = end_phase(&mut engine, &mut drain, later, name, &idle);
    if stop_after == 2 {
        return;
    }

    // 3. one more page view each: the old de-dup entries are pruned.
    let mut rng = SplitMix64::new(7);
    let step = hour as f64 / customers as f64;
    let mut time = later;
    for customer in 0..customers {
        time = later + (customer as f64 * step) as i64;
        let line = format!(
            r#"{{"type":"page","name":"Home","userId":"u{customer}","messageId":"again-{customer}","timestamp":"{}","properties":{{"path":"/"}}}}"#,
            rfc3339(time)
        );
        engine.handle_event(parse(&line));
        drain(&mut engine);
    }
    let name = "3 +1 page each after 49 h (unpacked)";
    let pruned = end_phase(&mut engine, &mut drain, time + 1, name, &aged);
    if stop_after == 3 {
        return;
    }

    // 4. an active cart: 1-3 Product Added to one cart each.
    // Spread over 20 min, so no 30 min reminder comes due while adding.
    let cart_start = time + 60_000;
    let cart_step = (20 * 60_000) as f64 / customers as f64;
    let mut cart_last = cart_start;
    let mut added = 0u64;
    let mut events = Vec::with_capacity(3);
    for customer in 0..customers {
        let time = cart_start + (customer as f64 * cart_step) as i64;
        cart_last = time + 3;
        let products = 1 + rng.below(3);
        for line in 0..products {
            let product = rng.below(5000);
            let price = 5.0 + rng.below(50_000) as f64 / 100.0;
            events.push(parse(&format!(
                r#"{{"type":"track","event":"Product Added","userId":"u{customer}","messageId":"add-{customer}-{line}","timestamp":"{}","properties":{{"cart_id":"c{customer}-0","product_id":"p{product}","price":{price:.2},"quantity":1}}}}"#,
                rfc3339(time + line as i64)
            )));
        }
        added += products;
        for event in events.drain(..) {
            engine.handle_event(event);
            drain(&mut engine);
        }
    }
    // Apply everything, but stop before the first 30 min reminder.
    let name = "4 active cart (1-3 products)";
    let carts = end_phase(&mut engine, &mut drain, cart_last + 1, name, &pruned);

    // 5. the cart checked out: an order each (revenue measures, purchase
    // history, a review request), before the first reminder is due.
    if stop_after >= 5 {
        let order_start = cart_last + 1_000;
        let order_step = (5 * 60_000) as f64 / customers as f64;
        let mut order_last = order_start;
        for customer in 0..customers {
            order_last = order_start + (customer as f64 * order_step) as i64;
            let product = rng.below(5000);
            let revenue = 20.0 + rng.below(100_000) as f64 / 100.0;
            engine.handle_event(parse(&format!(
                r#"{{"type":"track","event":"Order Completed","userId":"u{customer}","messageId":"order-{customer}","timestamp":"{}","properties":{{"order_id":"o{customer}","cart_id":"c{customer}-0","revenue":{revenue:.2},"products":[{{"product_id":"p{product}","quantity":1}}]}}}}"#,
                rfc3339(order_last)
            )));
            drain(&mut engine);
        }
        let name = "5 after an order (cart checked out)";
        end_phase(&mut engine, &mut drain, order_last + 1, name, &carts);
    }

    let stats = engine.stats();
    println!(
        "engine: {} customers, {} pending timers, {} events ({} Product Added), {} decisions, {} duplicates",
        engine.customer_count(),
        engine.pending_timers(),
        stats.events,
        added,
        decisions,
        stats.duplicates
    );
    println!(
        "peak live {:.1} MiB, {} allocations in all",
        PEAK_BYTES.load(Relaxed) as f64 / 1048576.0,
        CALLS.load(Relaxed)
    );
    let per = |snapshot: &Snapshot| (snapshot.bytes - base.bytes) as f64 / customers as f64;
    let verdict = |value: f64, target: f64| if value <= target { "met" } else { "NOT met" };
    println!(
        "target idle <= 256 B/customer: {:.0} B once idle for two days, packed ({}); in working form {:.0} B right after an event, {:.0} B after the next",
        per(&aged),
        verdict(per(&aged), 256.0),
        per(&idle),
        per(&pruned),
    );
    println!(
        "target with a cart <= 1024 B/customer: {:.0} B ({})",
        per(&carts),
        verdict(per(&carts), 1024.0)
    );
}

/// A lowercase hyphenated UUID derived from `text`, the same every run.
fn uuid_from(text: &str) -> String {
    let high = kairos_model::ids::stable_hash(1, &[text.as_bytes()]);
    let low = kairos_model::ids::stable_hash(2, &[text.as_bytes()]);
    let hex = format!("{high:016x}{low:016x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}
