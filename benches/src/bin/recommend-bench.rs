//! Recall and latency of `kairos-recommend`'s approximate index on a large
//! catalog with provided embeddings.
//!
//! ```text
//! cargo run --release -p kairos-benches --bin recommend-bench -- \
//!     [--items 100000] [--dimensions 64] [--clusters 200] [--queries 1000] [--k 10] \
//!     [--n-trees N] [--oversample N] [--search-k-factor N] [--leaf-size N] [--batch 10000] [--seed S] \
//!     [--sweep] [--json FILE]
//! ```
//!
//! 1. **Build**: a [`ClusteredCatalog`] (Gaussian clusters, seeded) goes into
//!    a fresh `ItemIndex` in a temporary directory, `--batch` items per
//!    `apply`, as a catalog import would; the time of the `apply` calls is
//!    the build time.
//! 2. **Reference**: for every query, `exact_nearest` (brute force) gives the
//!    true top k; for the filtered queries, the true top k among the items
//!    in stock at the query's store and not excluded.
//! 3. **Queries**: taste-like vectors (the decayed mean of 1–8 items, mostly
//!    of one cluster), k = 10, first with no store and no exclusions, then
//!    with a store and 8 excluded ids, as actions ask. One untimed warm-up
//!    pass, then one timed pass, one query at a time on one thread; each
//!    `recommend` call is timed into an HDR histogram.
//!
//! recall@k is the mean over queries of |approximate top k ∩ exact top k| / k.
//! The issue's target: recall@10 ≥ 0.9 with a query p99 ≤ 1 ms on 100 k items
//! of 64 dimensions. `--sweep` then reopens the same index with a grid of
//! `oversample` × `search_k_factor` (query-time options: the trees stay).
//!
//! Nothing here asserts a time; the numbers and the machine go to stdout
//! (and to `--json FILE`).

use hdrhistogram::Histogram;
use kairos_benches::catalog::{ClusteredCatalog, Taste, STORES};
use kairos_recommend::{CatalogChange, IndexOptions, ItemIndex, Query};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Same allocator as the `kairos` binary (see `benches/Cargo.toml`).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: kairos_alloc::Allocator = kairos_alloc::Allocator;

const USAGE: &str = "usage: recommend-bench [--items N] [--dimensions D] [--clusters C] \
[--queries Q] [--k K] [--n-trees N] [--oversample N] [--search-k-factor N] [--leaf-size N] [--batch B] \
[--seed S] [--sweep] [--json FILE]";

/// The issue's targets.
const TARGET_RECALL: f64 = 0.9;
const TARGET_P99: Duration = Duration::from_millis(1);
/// Items each filtered query leaves out.
const EXCLUDED: usize = 8;
/// The `--sweep` grid.
const SWEEP_OVERSAMPLE: [usize; 3] = [2, 4, 8];
const SWEEP_SEARCH_K_FACTOR: [usize; 6] = [10, 15, 20, 30, 40, 80];

/// What to measure (the flags, validated).
struct Settings {
    items: usize,
    dimensions: usize,
    clusters: usize,
    queries: usize,
    k: usize,
    batch: usize,
    seed: u64,
    options: IndexOptions,
    sweep: bool,
    json: Option<PathBuf>,
}

/// Exit codes: 0 done, 1 the measurement failed, 2 bad flags.
fn main() -> ExitCode {
    let settings = match parse(std::env::args().skip(1)) {
        Ok(Some(settings)) => settings,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("recommend-bench: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("recommend-bench: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Parses the flags; `None` for `--help`.
fn parse(mut args: impl Iterator<Item = String>) -> Result<Option<Settings>, String> {
    let mut settings = Settings {
        items: 100_000,
        dimensions: 64,
        clusters: 200,
        queries: 1_000,
        k: 10,
        batch: 10_000,
        seed: 42,
        options: IndexOptions::default(),
        sweep: false,
        json: None,
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |text: String| {
            text.replace('_', "")
                .parse::<usize>()
                .map_err(|_| format!("{flag} {text:?}: not a whole number"))
        };
        match flag.as_str() {
            "--items" => settings.items = number(value()?)?,
            "--dimensions" => settings.dimensions = number(value()?)?,
            "--clusters" => settings.clusters = number(value()?)?,
            "--queries" => settings.queries = number(value()?)?,
            "--k" => settings.k = number(value()?)?,
            "--n-trees" => settings.options.n_trees = number(value()?)?,
            "--oversample" => settings.options.oversample = number(value()?)?,
            "--search-k-factor" => settings.options.search_k_factor = number(value()?)?,
            "--leaf-size" => settings.options.leaf_size = number(value()?)?,
            "--batch" => settings.batch = number(value()?)?,
            "--seed" => settings.seed = number(value()?)? as u64,
            "--sweep" => settings.sweep = true,
            "--json" => settings.json = Some(value()?.into()),
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    for (name, value) in [
        ("--items", settings.items),
        ("--clusters", settings.clusters),
        ("--queries", settings.queries),
        ("--k", settings.k),
        ("--batch", settings.batch),
        ("--n-trees", settings.options.n_trees),
        ("--oversample", settings.options.oversample),
        ("--search-k-factor", settings.options.search_k_factor),
        ("--leaf-size", settings.options.leaf_size),
    ] {
        if value == 0 {
            return Err(format!("{name} must be at least 1"));
        }
    }
    if !(2..=4096).contains(&settings.dimensions) {
        return Err(format!(
            "--dimensions {}: must be from 2 to 4096",
            settings.dimensions
        ));
    }
    Ok(Some(settings))
}

/// One query with its true answers.
struct Case {
    taste: Taste,
    /// The exact top k, any store, nothing excluded.
    exact: Vec<String>,
    /// The exact top k in stock at `taste.store`, `taste.exclude` left out.
    exact_filtered: Vec<String>,
}

/// One pass of queries.
struct Pass {
    recall: f64,
    /// Answers with fewer than k items (there are always enough here).
    short_answers: usize,
    /// Nanoseconds per `recommend` call.
    latency: Histogram<u64>,
}

fn run(settings: &Settings) -> Result<(), String> {
    let k = settings.k;
    println!(
        "recommend-bench: {} items × {} dimensions in {} clusters, {} taste queries, k = {k}",
        settings.items, settings.dimensions, settings.clusters, settings.queries
    );
    println!("machine: {}", machine());
    let catalog = ClusteredCatalog::new(
        settings.items,
        settings.dimensions,
        settings.clusters,
        settings.seed,
    );
    let dir = tempfile::tempdir()
        .map_err(|error| format!("cannot make a temporary directory: {error}"))?;
    let index = open(dir.path(), settings.options)?;

    // Build, batch by batch; only `apply` is timed.
    let mut in_stock: Vec<[bool; STORES.len()]> = Vec::with_capacity(settings.items);
    let mut batch_times = Vec::new();
    for start in (0..settings.items).step_by(settings.batch) {
        let end = (start + settings.batch).min(settings.items);
        let items: Vec<_> = (start..end).map(|n| catalog.item(n)).collect();
        in_stock.extend(
            items
                .iter()
                .map(|item| STORES.map(|store| item.in_stock(Some(store)))),
        );
        let started = Instant::now();
        let applied = index
            .apply(items.into_iter().map(CatalogChange::Upsert))
            .map_err(|error| format!("apply: {error}"))?;
        batch_times.push(started.elapsed());
        if let Some(refusal) = applied.refused.first() {
            return Err(format!(
                "{} items refused, first: {refusal}",
                applied.refused.len()
            ));
        }
    }
    let build: Duration = batch_times.iter().sum();
    let first_batch = batch_times.first().copied().unwrap_or_default();
    let last_batch = batch_times.last().copied().unwrap_or_default();
    let disk = directory_bytes(dir.path());
    println!(
        "build: {} batches of ≤ {} in {:.1} s (first {:.2} s, last {:.2} s), {} trees, {:.1} MiB on disk",
        batch_times.len(),
        settings.batch,
        build.as_secs_f64(),
        first_batch.as_secs_f64(),
        last_batch.as_secs_f64(),
        settings.options.n_trees,
        disk as f64 / (1 << 20) as f64,
    );

    // The true answers.
    let started = Instant::now();
    let cases = (0..settings.queries)
        .map(|q| reference(&index, catalog.taste(q), k, &in_stock))
        .collect::<Result<Vec<Case>, String>>()?;
    let exact_per_query = started.elapsed() / settings.queries as u32;
    println!(
        "exact search (the reference): {:.1} ms per query",
        exact_per_query.as_secs_f64() * 1e3
    );

    let (plain, filtered) = measure(&index, &cases, k)?;
    println!("options: {}", describe(settings.options));
    println!(
        "{}",
        summary_line("any store, nothing excluded ", k, &plain)
    );
    println!(
        "{}",
        summary_line("one store, 8 ids excluded   ", k, &filtered)
    );
    let met = |pass: &Pass| {
        pass.recall >= TARGET_RECALL
            && pass.latency.value_at_quantile(0.99) <= TARGET_P99.as_nanos() as u64
    };
    println!(
        "target recall@{k} ≥ {TARGET_RECALL} and p99 ≤ {} µs: {}",
        TARGET_P99.as_micros(),
        match (met(&plain), met(&filtered)) {
            (true, true) => "met, with and without filters",
            (true, false) => "met without filters only",
            (false, true) => "met with filters only",
            (false, false) => "NOT met",
        }
    );

    let mut sweep = Vec::new();
    if settings.sweep {
        drop(index);
        println!("sweep (same trees; query options reopened):");
        for oversample in SWEEP_OVERSAMPLE {
            for search_k_factor in SWEEP_SEARCH_K_FACTOR {
                let options = IndexOptions {
                    oversample,
                    search_k_factor,
                    ..settings.options
                };
                let index = open(dir.path(), options)?;
                let (plain, filtered) = measure(&index, &cases, k)?;
                println!(
                    "  oversample {oversample:>2} search_k_factor {search_k_factor:>3}: {} | {}",
                    compact(k, &plain),
                    compact(k, &filtered)
                );
                sweep.push((options, plain, filtered));
            }
        }
    }

    if let Some(path) = &settings.json {
        let json = report_json(
            settings,
            build,
            &batch_times,
            disk,
            exact_per_query,
            &plain,
            &filtered,
            &sweep,
        );
        std::fs::write(path, json)
            .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
        println!("numbers written to {}", path.display());
    }
    Ok(())
}

fn open(dir: &Path, options: IndexOptions) -> Result<ItemIndex, String> {
    ItemIndex::open_with(dir, options).map_err(|error| format!("open the index: {error}"))
}

/// The true answers to a taste, from exact search deep enough to fill the
/// filtered top k too.
fn reference(
    index: &ItemIndex,
    taste: Taste,
    k: usize,
    in_stock: &[[bool; STORES.len()]],
) -> Result<Case, String> {
    let store = STORES
        .iter()
        .position(|store| *store == taste.store)
        .ok_or_else(|| format!("unknown store {}", taste.store))?;
    let mut depth = 4 * (k + EXCLUDED);
    loop {
        let nearest = index
            .exact_nearest(&taste.vector, depth)
            .map_err(|error| format!("exact_nearest: {error}"))?;
        let exact: Vec<String> = nearest
            .iter()
            .take(k)
            .map(|found| found.item_id.clone())
            .collect();
        let exact_filtered: Vec<String> = nearest
            .iter()
            .filter(|found| !taste.exclude.contains(&found.item_id))
            .filter(|found| {
                let number = found
                    .item_id
                    .strip_prefix('e')
                    .and_then(|n| n.parse::<usize>().ok());
                number.is_some_and(|n| in_stock.get(n).is_some_and(|stores| stores[store]))
            })
            .take(k)
            .map(|found| found.item_id.clone())
            .collect();
        // Too few in stock among the `depth` nearest: look deeper, unless
        // that was every item already.
        if exact_filtered.len() == k || nearest.len() < depth {
            return Ok(Case {
                taste,
                exact,
                exact_filtered,
            });
        }
        depth *= 4;
    }
}

/// A warm-up pass, then a timed pass of each kind of query.
fn measure(index: &ItemIndex, cases: &[Case], k: usize) -> Result<(Pass, Pass), String> {
    for case in cases {
        for filtered in [false, true] {
            with_query(case, k, filtered, |query| recommend(index, query))?;
        }
    }
    Ok((
        timed_pass(index, cases, k, false)?,
        timed_pass(index, cases, k, true)?,
    ))
}

/// Calls `ask` with the case's query: plain (any store, nothing excluded)
/// or filtered (its store, its 8 ids excluded).
fn with_query<T>(case: &Case, k: usize, filtered: bool, ask: impl FnOnce(&Query<'_>) -> T) -> T {
    let taste = &case.taste;
    if filtered {
        let exclude: Vec<&str> = taste.exclude.iter().map(String::as_str).collect();
        ask(&Query {
            vector: &taste.vector,
            k,
            exclude: &exclude,
            store: Some(taste.store),
        })
    } else {
        ask(&Query::new(&taste.vector, k))
    }
}

fn timed_pass(index: &ItemIndex, cases: &[Case], k: usize, filtered: bool) -> Result<Pass, String> {
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
        .map_err(|error| format!("histogram: {error}"))?;
    let mut recall_sum = 0.0;
    let mut short_answers = 0;
    for case in cases {
        // Only the call is timed, not building the query.
        let (found, elapsed) = with_query(case, k, filtered, |query| {
            let started = Instant::now();
            let found = recommend(index, query);
            (found, started.elapsed())
        });
        let found = found?;
        latency.saturating_record(elapsed.as_nanos() as u64);
        if found.len() < k {
            short_answers += 1;
        }
        let truth = if filtered {
            &case.exact_filtered
        } else {
            &case.exact
        };
        if !truth.is_empty() {
            let hits = found
                .iter()
                .filter(|found| truth.contains(&found.item_id))
                .count();
            recall_sum += hits as f64 / truth.len() as f64;
        }
    }
    Ok(Pass {
        recall: recall_sum / cases.len().max(1) as f64,
        short_answers,
        latency,
    })
}

fn recommend(
    index: &ItemIndex,
    query: &Query<'_>,
) -> Result<Vec<kairos_recommend::Recommendation>, String> {
    index
        .recommend(query)
        .map_err(|error| format!("recommend: {error}"))
}

fn micros(pass: &Pass, quantile: f64) -> f64 {
    pass.latency.value_at_quantile(quantile) as f64 / 1e3
}

fn summary_line(label: &str, k: usize, pass: &Pass) -> String {
    let mut line = format!(
        "{label} recall@{k} {:.3}  latency µs: p50 {:.0}  p90 {:.0}  p99 {:.0}  max {:.0}",
        pass.recall,
        micros(pass, 0.50),
        micros(pass, 0.90),
        micros(pass, 0.99),
        pass.latency.max() as f64 / 1e3,
    );
    if pass.short_answers > 0 {
        let _ = write!(line, "  ({} answers short of {k})", pass.short_answers);
    }
    line
}

fn compact(k: usize, pass: &Pass) -> String {
    format!(
        "recall@{k} {:.3} p50 {:>4.0} p99 {:>4.0} µs",
        pass.recall,
        micros(pass, 0.50),
        micros(pass, 0.99)
    )
}

fn describe(options: IndexOptions) -> String {
    let default = if options == IndexOptions::default() {
        " (the defaults)"
    } else {
        ""
    };
    format!(
        "n_trees {} oversample {} search_k_factor {} leaf_size {}{default}",
        options.n_trees, options.oversample, options.search_k_factor, options.leaf_size
    )
}

/// Bytes of the files in `dir` (LMDB's data file is sparse until written;
/// its length is what was written).
fn directory_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok()?.metadata().ok())
        .filter(|metadata| metadata.is_file())
        .map(|metadata| metadata.len())
        .sum()
}

/// Cores and CPU model, so that the numbers say where they were measured.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |cores| cores.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    format!("{cores} cores, {model}")
}

fn pass_json(pass: &Pass) -> String {
    format!(
        r#"{{"recall":{:.4},"short_answers":{},"p50_us":{:.1},"p90_us":{:.1},"p99_us":{:.1},"max_us":{:.1}}}"#,
        pass.recall,
        pass.short_answers,
        micros(pass, 0.50),
        micros(pass, 0.90),
        micros(pass, 0.99),
        pass.latency.max() as f64 / 1e3
    )
}

fn options_json(options: IndexOptions) -> String {
    format!(
        r#"{{"n_trees":{},"oversample":{},"search_k_factor":{}}}"#,
        options.n_trees, options.oversample, options.search_k_factor
    )
}

#[allow(clippy::too_many_arguments)]
fn report_json(
    settings: &Settings,
    build: Duration,
    batch_times: &[Duration],
    disk: u64,
    exact_per_query: Duration,
    plain: &Pass,
    filtered: &Pass,
    sweep: &[(IndexOptions, Pass, Pass)],
) -> String {
    let machine = machine().replace('\\', "\\\\").replace('"', "\\\"");
    let batches: Vec<String> = batch_times
        .iter()
        .map(|time| format!("{:.3}", time.as_secs_f64()))
        .collect();
    let sweep: Vec<String> = sweep
        .iter()
        .map(|(options, plain, filtered)| {
            format!(
                r#"{{"options":{},"any_store":{},"filtered":{}}}"#,
                options_json(*options),
                pass_json(plain),
                pass_json(filtered)
            )
        })
        .collect();
    format!(
        concat!(
            "{{\"machine\":\"{machine}\",\"items\":{items},\"dimensions\":{dimensions},",
            "\"clusters\":{clusters},\"queries\":{queries},\"k\":{k},\"seed\":{seed},",
            "\"options\":{options},\"build_s\":{build:.3},\"batch_s\":[{batches}],",
            "\"disk_bytes\":{disk},\"exact_ms_per_query\":{exact:.3},",
            "\"any_store\":{plain},\"filtered\":{filtered},\"sweep\":[{sweep}]}}\n"
        ),
        machine = machine,
        items = settings.items,
        dimensions = settings.dimensions,
        clusters = settings.clusters,
        queries = settings.queries,
        k = settings.k,
        seed = settings.seed,
        options = options_json(settings.options),
        build = build.as_secs_f64(),
        batches = batches.join(","),
        disk = disk,
        exact = exact_per_query.as_secs_f64() * 1e3,
        plain = pass_json(plain),
        filtered = pass_json(filtered),
        sweep = sweep.join(","),
    )
}
