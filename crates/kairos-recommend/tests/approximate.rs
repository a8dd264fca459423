//! The approximate search: deterministic across directories, and close to
//! exact search.

mod common;

use common::{embedded, Clustered};
use kairos_recommend::{CatalogChange, IndexOptions, ItemIndex, Query};
use std::collections::HashSet;

/// Synthetic items, every third with stock tracked at one of two stores.
fn changes(data: &Clustered, items: usize) -> Vec<CatalogChange> {
    (0..items)
        .map(|n| {
            let mut item = embedded(&format!("item-{n:05}"), data.item(n));
            if n % 3 == 0 {
                let store = if n % 2 == 0 { "s1" } else { "s2" };
                item.stock = Some([(store.to_owned(), (n % 5) as u32)].into_iter().collect());
            }
            CatalogChange::Upsert(item)
        })
        .collect()
}

#[test]
fn the_same_catalog_gives_the_same_answers_in_two_directories() {
    let data = Clustered::new(20, 32, 7);
    let all = changes(&data, 2_000);
    // A deliberately narrow search, so that answers depend on the trees
    // (a wide one finds the exact top 10 whatever the trees look like).
    let narrow = IndexOptions {
        n_trees: 8,
        oversample: 1,
        search_k_factor: 1,
        // Small leaves: the answer depends on the trees' shape.
        leaf_size: 16,
    };
    let open_and_load = |dir: &tempfile::TempDir| {
        let index = ItemIndex::open_with(dir.path(), narrow).unwrap();
        // Several batches, so incremental builds are covered too.
        for batch in all.chunks(500) {
            index.apply(batch.to_vec()).unwrap();
        }
        index
            .apply([CatalogChange::Delete {
                id: "item-00007".into(),
            }])
            .unwrap();
        index
    };
    let (first_dir, second_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (first, second) = (open_and_load(&first_dir), open_and_load(&second_dir));
    assert_eq!(first.vectors().unwrap(), second.vectors().unwrap());
    for n in 0..200 {
        let vector = data.query(n);
        let store = [None, Some("s1"), Some("s2")][n % 3];
        let exclude = ["item-00001", "item-00002"];
        let query = Query {
            vector: &vector,
            k: 10,
            exclude: &exclude,
            store,
        };
        let answer = first.recommend(&query).unwrap();
        assert_eq!(answer.len(), 10);
        assert_eq!(answer, second.recommend(&query).unwrap(), "query {n}");
    }
}

#[test]
fn recall_against_exact_search_is_at_least_nine_tenths() {
    let data = Clustered::new(10, 64, 11);
    let index_dir = tempfile::tempdir().unwrap();
    let index = ItemIndex::open(index_dir.path()).unwrap();
    // Stock untracked: every item is a candidate, as for exact search.
    let items =
        (0..4_000).map(|n| CatalogChange::Upsert(embedded(&format!("item-{n:05}"), data.item(n))));
    index.apply(items).unwrap();
    let (mut hits, mut wanted) = (0, 0);
    for n in 0..200 {
        let vector = data.query(n);
        let exact: HashSet<String> = index
            .exact_nearest(&vector, 10)
            .unwrap()
            .into_iter()
            .map(|r| r.item_id)
            .collect();
        let found = index.recommend(&Query::new(&vector, 10)).unwrap();
        hits += found.iter().filter(|r| exact.contains(&r.item_id)).count();
        wanted += exact.len();
    }
    let recall = hits as f64 / wanted as f64;
    eprintln!("recall@10 {recall:.3}");
    assert!(recall >= 0.9, "recall@10 {recall:.3}");
}
