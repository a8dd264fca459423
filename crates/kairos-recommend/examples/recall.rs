//! Measures the item index on synthetic clustered vectors: build time,
//! recall@k against exact search, and query latency. Used to choose the
//! [`IndexOptions`] defaults; nothing here asserts a time.
//!
//! ```text
//! cargo run -p kairos-recommend --release --example recall -- \
//!     items=100000 dimensions=64 queries=1000 k=10 n_trees=32 oversample=4 search_k_factor=40
//! ```
//!
//! On a shared machine, `repeat=5` times each query five times and keeps
//! the fastest. Several `n_trees` builds are slow; `sweep=1` keeps the index and tries a
//! grid of `oversample` × `search_k_factor` at query time (the trees do not
//! depend on them).

use kairos_recommend::{CatalogChange, IndexOptions, Item, ItemIndex, Query};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::collections::HashSet;
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut items = 100_000usize;
    let mut dimensions = 64usize;
    let mut queries = 1_000usize;
    let mut k = 10usize;
    let mut sweep = false;
    let mut measure_recall = true;
    let mut repeat = 1usize;
    let mut options = IndexOptions::default();
    for argument in std::env::args().skip(1) {
        let (name, value) = argument.split_once('=').ok_or("arguments are name=value")?;
        let value: usize = value.parse()?;
        match name {
            "items" => items = value,
            "dimensions" => dimensions = value,
            "queries" => queries = value,
            "k" => k = value,
            "n_trees" => options.n_trees = value,
            "oversample" => options.oversample = value,
            "search_k_factor" => options.search_k_factor = value,
            "sweep" => sweep = value != 0,
            // exact=0: latency only (for profiling the query path).
            "exact" => measure_recall = value != 0,
            // repeat=5: time each query 5 times and keep the fastest, to see
            // past other processes on a busy machine.
            "repeat" => repeat = value.max(1),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }

    let data = Clustered::new(items, dimensions, 0x5eed);
    let dir = tempfile::tempdir()?;
    let index = ItemIndex::open_with(dir.path(), options)?;
    let started = Instant::now();
    let changes = (0..items).map(|n| {
        CatalogChange::Upsert(Item {
            id: format!("item-{n:06}"),
            title: String::new(),
            category: String::new(),
            brand: String::new(),
            price: 1.0,
            stock: None,
            vector: Some(data.item(n)),
        })
    });
    index.apply(changes)?;
    println!(
        "built {items} items × {dimensions} dims, {} trees in {:.1?}",
        options.n_trees,
        started.elapsed()
    );

    let query_vectors: Vec<Vec<f32>> = (0..queries).map(|n| data.query(n)).collect();
    let exact: Vec<HashSet<String>> = query_vectors
        .iter()
        .filter(|_| measure_recall)
        .map(|vector| {
            let found = index.exact_nearest(vector, k)?;
            Ok(found.into_iter().map(|r| r.item_id).collect())
        })
        .collect::<Result<_, kairos_recommend::IndexError>>()?;

    let grid: Vec<(usize, usize)> = if sweep {
        let mut grid = Vec::new();
        for oversample in [2, 4] {
            for factor in [8, 12, 16, 20, 24, 32, 40] {
                grid.push((oversample, factor));
            }
        }
        grid
    } else {
        vec![(options.oversample, options.search_k_factor)]
    };
    drop(index);
    for (oversample, search_k_factor) in grid {
        let options = IndexOptions {
            oversample,
            search_k_factor,
            ..options
        };
        let index = ItemIndex::open_with(dir.path(), options)?;
        let mut latencies = Vec::with_capacity(queries);
        let mut hits = 0usize;
        // One warm-up pass, so the page cache holds the index as in service.
        for vector in &query_vectors {
            index.recommend(&Query::new(vector, k))?;
        }
        for (n, vector) in query_vectors.iter().enumerate() {
            let mut fastest = Duration::MAX;
            let mut found = Vec::new();
            for _ in 0..repeat {
                let started = Instant::now();
                found = index.recommend(&Query::new(vector, k))?;
                fastest = fastest.min(started.elapsed());
            }
            latencies.push(fastest);
            if let Some(exact) = exact.get(n) {
                hits += found.iter().filter(|r| exact.contains(&r.item_id)).count();
            }
        }
        latencies.sort();
        let at =
            |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
        println!(
            "oversample {oversample:>2} search_k_factor {search_k_factor:>3}: recall@{k} {:.3}  p50 {:>8.1?}  p99 {:>8.1?}  max {:>8.1?}",
            hits as f64 / (queries * k) as f64,
            at(0.50),
            at(0.99),
            latencies.last().copied().unwrap_or(Duration::ZERO),
        );
    }
    Ok(())
}

/// Gaussian clusters: items are a cluster centre plus noise, queries too
/// (a taste near some of the items).
struct Clustered {
    centres: Vec<Vec<f32>>,
    dimensions: usize,
    seed: u64,
}

impl Clustered {
    fn new(items: usize, dimensions: usize, seed: u64) -> Clustered {
        let mut rng = StdRng::seed_from_u64(seed);
        let clusters = (items / 500).max(10);
        let centres = (0..clusters)
            .map(|_| (0..dimensions).map(|_| gaussian(&mut rng)).collect())
            .collect();
        Clustered {
            centres,
            dimensions,
            seed,
        }
    }

    fn around(&self, rng: &mut StdRng) -> Vec<f32> {
        let centre = &self.centres[rng.random_range(0..self.centres.len())];
        (0..self.dimensions)
            .map(|d| centre[d] + 0.6 * gaussian(rng))
            .collect()
    }

    fn item(&self, n: usize) -> Vec<f32> {
        self.around(&mut StdRng::seed_from_u64(self.seed ^ ((n as u64) << 1)))
    }

    fn query(&self, n: usize) -> Vec<f32> {
        self.around(&mut StdRng::seed_from_u64(
            self.seed ^ ((n as u64) << 1 | 1),
        ))
    }
}

/// A standard normal sample (Box–Muller).
fn gaussian(rng: &mut StdRng) -> f32 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}
