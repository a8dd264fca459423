//! Criterion benchmark of one recommendation query on a 100 k-item,
//! 64-dimension index (`kairos-recommend`, provided embeddings).
//!
//! ```text
//! cargo bench -p kairos-benches --bench recommend
//! ```
//!
//! The index is built once, before anything is timed, in a temporary
//! directory: the `ClusteredCatalog` of `recommend-bench` (200 Gaussian
//! clusters), 10 k items per `apply`, default `IndexOptions`. Each
//! iteration is one `recommend` call for the next of 1,000 taste-like
//! queries (k = 10):
//!
//! - `recommend/any_store`: no store, nothing excluded;
//! - `recommend/store_8_excluded`: one store's stock, 8 ids left out, as
//!   actions ask.
//!
//! Recall is not measured here (`recommend-bench` does); building takes
//! about a minute, sampling a few seconds per benchmark.

use criterion::{criterion_group, criterion_main, Criterion};
use kairos_benches::catalog::ClusteredCatalog;
use kairos_recommend::{CatalogChange, ItemIndex, Query};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Same allocator as the `kairos` binary (see `benches/Cargo.toml`).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: kairos_alloc::Allocator = kairos_alloc::Allocator;

const ITEMS: usize = 100_000;
const DIMENSIONS: usize = 64;
const CLUSTERS: usize = 200;
const SEED: u64 = 42;
const BATCH: usize = 10_000;
const QUERIES: usize = 1_000;
const K: usize = 10;

fn recommend(c: &mut Criterion) {
    let catalog = ClusteredCatalog::new(ITEMS, DIMENSIONS, CLUSTERS, SEED);
    let dir = tempfile::tempdir().expect("a temporary directory for the index");
    let index = ItemIndex::open(dir.path()).expect("open the index");
    let started = Instant::now();
    for start in (0..ITEMS).step_by(BATCH) {
        let changes =
            (start..(start + BATCH).min(ITEMS)).map(|n| CatalogChange::Upsert(catalog.item(n)));
        let applied = index.apply(changes).expect("apply a batch");
        assert!(applied.refused.is_empty(), "{:?}", applied.refused.first());
    }
    eprintln!(
        "recommend: built {ITEMS} × {DIMENSIONS} in {:.1?}",
        started.elapsed()
    );
    let tastes: Vec<_> = (0..QUERIES).map(|q| catalog.taste(q)).collect();
    let excluded: Vec<Vec<&str>> = tastes
        .iter()
        .map(|taste| taste.exclude.iter().map(String::as_str).collect())
        .collect();

    let mut group = c.benchmark_group("recommend");
    group
        .sample_size(50)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5));
    let mut next = 0;
    group.bench_function("any_store", |b| {
        b.iter(|| {
            let taste = &tastes[next % QUERIES];
            next += 1;
            black_box(
                index
                    .recommend(&Query::new(&taste.vector, K))
                    .expect("recommend"),
            )
        })
    });
    let mut next = 0;
    group.bench_function("store_8_excluded", |b| {
        b.iter(|| {
            let query = next % QUERIES;
            next += 1;
            let taste = &tastes[query];
            let query = Query {
                vector: &taste.vector,
                k: K,
                exclude: &excluded[query],
                store: Some(taste.store),
            };
            black_box(index.recommend(&query).expect("recommend"))
        })
    });
    group.finish();
}

criterion_group!(benches, recommend);
criterion_main!(benches);
