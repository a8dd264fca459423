//! The item index: live changes, stock and exclusion rules, persistence,
//! vector kinds and dimensions.

mod common;

use common::{embedded, item, shop, stocked, upserts};
use kairos_recommend::{
    computed_vector, CatalogChange, IndexError, IndexOptions, ItemIndex, Query, RefusalReason,
    SourcePosition, VectorSource, COMPUTED_DIMENSIONS,
};
use std::sync::Arc;

fn ids(index: &ItemIndex, query: &Query<'_>) -> Vec<String> {
    index
        .recommend(query)
        .unwrap()
        .into_iter()
        .map(|r| r.item_id)
        .collect()
}

fn taste_of(index: &ItemIndex, id: &str) -> Vec<f32> {
    computed_vector(&index.item(id).unwrap().unwrap())
}

fn shop_index(dir: &tempfile::TempDir) -> ItemIndex {
    let index = ItemIndex::open(dir.path()).unwrap();
    let applied = index.apply(upserts(shop())).unwrap();
    assert_eq!((applied.upserted, applied.refused.len()), (9, 0));
    index
}

#[test]
fn similar_items_come_first() {
    let dir = tempfile::tempdir().unwrap();
    let index = shop_index(&dir);
    let taste = taste_of(&index, "p31");
    let found = index
        .recommend(&Query {
            vector: &taste,
            k: 3,
            exclude: &["p31"],
            store: None,
        })
        .unwrap();
    let found_ids: Vec<&str> = found.iter().map(|r| r.item_id.as_str()).collect();
    assert_eq!(
        found_ids[..2]
            .iter()
            .filter(|id| ["p32", "p33"].contains(id))
            .count(),
        2,
        "{found:?}"
    );
    assert!(found.windows(2).all(|pair| pair[0].score >= pair[1].score));
    let four_decimals = |score: f32| ((f64::from(score) * 10_000.0).round() / 10_000.0) as f32;
    assert!(
        found.iter().all(|r| r.score == four_decimals(r.score)),
        "{found:?}"
    );
}

#[test]
fn upsert_stock_and_delete_are_visible_to_the_next_query() {
    let dir = tempfile::tempdir().unwrap();
    let index = shop_index(&dir);
    let taste = taste_of(&index, "p31");
    let query = Query {
        vector: &taste,
        k: 20,
        exclude: &[],
        store: Some("sh-xintiandi"),
    };
    assert!(!ids(&index, &query).contains(&"p35".to_owned()));

    let newcomer = item(
        "p35",
        "Rwanda beans 250g",
        "coffee/beans",
        "Kairos Roasters",
        14.0,
    );
    index.apply([CatalogChange::Upsert(newcomer)]).unwrap();
    assert!(ids(&index, &query).contains(&"p35".to_owned()));

    // Untracked until now: tracking starts with that one store, at 0.
    let sold_out = CatalogChange::Stock {
        id: "p35".into(),
        store: "sh-xintiandi".into(),
        quantity: 0,
    };
    assert_eq!(index.apply([sold_out]).unwrap().stock_changes, 1);
    assert!(!ids(&index, &query).contains(&"p35".to_owned()));
    assert!(!ids(
        &index,
        &Query {
            store: None,
            ..query
        }
    )
    .contains(&"p35".to_owned()));
    let stock = index.item("p35").unwrap().unwrap().stock.unwrap();
    assert_eq!(
        stock.into_iter().collect::<Vec<_>>(),
        [("sh-xintiandi".to_owned(), 0)]
    );

    let restocked = CatalogChange::Stock {
        id: "p35".into(),
        store: "sh-xintiandi".into(),
        quantity: 5,
    };
    index.apply([restocked]).unwrap();
    assert!(ids(&index, &query).contains(&"p35".to_owned()));

    let applied = index
        .apply([CatalogChange::Delete { id: "p35".into() }])
        .unwrap();
    assert_eq!(applied.deleted, 1);
    assert!(!ids(&index, &query).contains(&"p35".to_owned()));
    assert_eq!(index.item("p35").unwrap(), None);
    assert_eq!(index.len(), 9);
}

#[test]
fn stock_rules_with_and_without_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let index = ItemIndex::open(dir.path()).unwrap();
    let base = |id: &str| item(id, "beans", "coffee/beans", "Kairos Roasters", 10.0);
    index
        .apply(upserts([
            base("untracked"),
            stocked(base("s1-only"), &[("s1", 2), ("s2", 0)]),
            stocked(base("none-left"), &[("s1", 0)]),
            stocked(base("no-stores"), &[]),
            stocked(base("both"), &[("s1", 1), ("s2", 1)]),
        ]))
        .unwrap();
    let taste = taste_of(&index, "untracked");
    let at = |store: Option<&str>| {
        let mut found = ids(
            &index,
            &Query {
                vector: &taste,
                k: 10,
                exclude: &[],
                store,
            },
        );
        found.sort();
        found
    };
    assert_eq!(at(Some("s1")), ["both", "s1-only", "untracked"]);
    assert_eq!(at(Some("s2")), ["both", "untracked"]);
    assert_eq!(at(Some("s3")), ["untracked"]);
    assert_eq!(at(Some(&"x".repeat(500))), ["untracked"]);
    assert_eq!(at(None), ["both", "s1-only", "untracked"]);

    // Replacing an item replaces its stock entirely.
    index
        .apply(upserts([stocked(base("both"), &[("s2", 3)])]))
        .unwrap();
    assert_eq!(at(Some("s1")), ["s1-only", "untracked"]);
    assert_eq!(at(Some("s2")), ["both", "untracked"]);
    index.apply(upserts([base("none-left")])).unwrap();
    assert_eq!(at(Some("s3")), ["none-left", "untracked"]);
}

#[test]
fn excluded_items_are_never_recommended() {
    let dir = tempfile::tempdir().unwrap();
    let index = shop_index(&dir);
    let taste = taste_of(&index, "p31");
    let long = "y".repeat(300);
    let exclude = ["p31", "p32", "not-in-catalog", long.as_str()];
    let found = ids(
        &index,
        &Query {
            vector: &taste,
            k: 20,
            exclude: &exclude,
            store: None,
        },
    );
    assert_eq!(found.len(), 7);
    assert!(!found.iter().any(|id| id == "p31" || id == "p32"));
}

#[test]
fn ties_are_ordered_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let index = ItemIndex::open(dir.path()).unwrap();
    // The same fields give the same computed vector, hence equal scores.
    let twin = |id: &str| {
        item(
            id,
            "Kenya AA beans",
            "coffee/beans",
            "Kairos Roasters",
            15.0,
        )
    };
    index
        .apply(upserts([twin("c"), twin("a"), twin("d"), twin("b")]))
        .unwrap();
    let taste = taste_of(&index, "a");
    let found = index.recommend(&Query::new(&taste, 3)).unwrap();
    assert_eq!(
        found.iter().map(|r| r.item_id.as_str()).collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
    assert!(found.iter().all(|r| r.score == 1.0));
    assert_eq!(index.exact_nearest(&taste, 3).unwrap(), found);
}

#[test]
fn reopening_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let (vectors, results, p31) = {
        let index = shop_index(&dir);
        index
            .apply([CatalogChange::Stock {
                id: "p32".into(),
                store: "s1".into(),
                quantity: 0,
            }])
            .unwrap();
        index
            .apply([CatalogChange::Delete { id: "p90".into() }])
            .unwrap();
        let taste = taste_of(&index, "p31");
        let results = index
            .recommend(&Query {
                vector: &taste,
                k: 5,
                exclude: &["p31"],
                store: Some("s1"),
            })
            .unwrap();
        (
            index.vectors().unwrap(),
            results,
            index.item("p31").unwrap(),
        )
    };
    let index = ItemIndex::open(dir.path()).unwrap();
    assert_eq!(index.len(), 8);
    assert_eq!(index.dimensions(), Some(COMPUTED_DIMENSIONS));
    assert_eq!(index.vector_source(), Some(VectorSource::Computed));
    assert_eq!(index.vectors().unwrap(), vectors);
    assert_eq!(index.item("p31").unwrap(), p31);
    assert_eq!(index.item("p90").unwrap(), None);
    let taste = taste_of(&index, "p31");
    let again = index
        .recommend(&Query {
            vector: &taste,
            k: 5,
            exclude: &["p31"],
            store: Some("s1"),
        })
        .unwrap();
    assert_eq!(again, results);
    assert!(!again.iter().any(|r| r.item_id == "p32"));
}

#[test]
fn vectors_are_sorted_by_id_and_unit_length() {
    let dir = tempfile::tempdir().unwrap();
    let index = ItemIndex::open(dir.path()).unwrap();
    index
        .apply(upserts([
            embedded("b", vec![3.0, 4.0]),
            embedded("a", vec![0.0, 2.0]),
        ]))
        .unwrap();
    let vectors = index.vectors().unwrap();
    assert_eq!(
        vectors,
        [
            ("a".to_owned(), vec![0.0, 1.0]),
            ("b".to_owned(), vec![0.6, 0.8])
        ]
    );
    // An item's vector is the vector as indexed.
    assert_eq!(
        index.item("b").unwrap().unwrap().vector,
        Some(vec![0.6, 0.8])
    );
}

#[test]
fn an_embeddings_catalog_refuses_other_dimensions_and_missing_vectors() {
    let dir = tempfile::tempdir().unwrap();
    let index = ItemIndex::open(dir.path()).unwrap();
    let applied = index
        .apply(upserts([
            embedded("a", vec![1.0, 0.0, 0.0]),
            embedded("b", vec![1.0, 0.0, 0.0, 0.0]),
            item("c", "no vector", "x", "y", 1.0),
            embedded("d", vec![0.0, 1.0, 0.0]),
        ]))
        .unwrap();
    assert_eq!(applied.upserted, 2);
    assert_eq!(applied.refused.len(), 2);
    assert_eq!(applied.refused[0].id, "b");
    assert_eq!(
        applied.refused[0].reason,
        RefusalReason::WrongDimensions {
            expected: 3,
            got: 4
        }
    );
    assert_eq!(
        applied.refused[0].to_string(),
        r#"item "b": its vector has 4 dimensions; the catalog's embeddings have 3"#
    );
    assert_eq!(
        applied.refused[1].reason,
        RefusalReason::MissingVector { expected: 3 }
    );
    assert_eq!(index.dimensions(), Some(3));
    assert_eq!(
        index.vector_source(),
        Some(VectorSource::Provided { dimensions: 3 })
    );

    let wrong = index.recommend(&Query::new(&[1.0, 0.0], 2)).unwrap_err();
    assert!(
        matches!(
            wrong,
            IndexError::QueryDimensions {
                expected: 3,
                got: 2
            }
        ),
        "{wrong}"
    );
    let not_finite = index
        .recommend(&Query::new(&[1.0, f32::NAN, 0.0], 2))
        .unwrap_err();
    assert!(matches!(
        not_finite,
        IndexError::QueryNotFinite { index: 1, .. }
    ));
    assert_eq!(
        index.recommend(&Query::new(&[0.0, 0.0, 0.0], 2)).unwrap(),
        []
    );
    assert_eq!(
        index.recommend(&Query::new(&[], 2)).unwrap(),
        [],
        "no taste yet"
    );
    assert_eq!(
        index.recommend(&Query::new(&[1.0, 0.0, 0.0], 0)).unwrap(),
        []
    );
    assert_eq!(ids(&index, &Query::new(&[2.0, 0.5, 0.0], 1)), ["a"]);
}

#[test]
fn a_computed_catalog_refuses_vectors_until_emptied() {
    let dir = tempfile::tempdir().unwrap();
    let index = shop_index(&dir);
    let applied = index
        .apply(upserts([embedded("e1", vec![1.0, 2.0])]))
        .unwrap();
    assert_eq!(
        applied.refused[0].reason,
        RefusalReason::UnexpectedVector { got: 2 }
    );

    // Emptied, the catalog takes either kind again.
    let deletions = shop()
        .into_iter()
        .map(|item| CatalogChange::Delete { id: item.id });
    assert_eq!(index.apply(deletions).unwrap().deleted, 9);
    assert_eq!((index.len(), index.dimensions()), (0, None));
    assert_eq!(index.recommend(&Query::new(&[1.0; 64], 3)).unwrap(), []);
    let applied = index
        .apply(upserts([
            embedded("e1", vec![1.0, 2.0]),
            embedded("e2", vec![2.0, 1.0]),
        ]))
        .unwrap();
    assert_eq!(applied.upserted, 2);
    assert_eq!(index.dimensions(), Some(2));
    assert_eq!(ids(&index, &Query::new(&[1.0, 0.0], 1)), ["e2"]);

    // In one batch too: delete everything, then bring another kind.
    let mut switch = vec![
        CatalogChange::Delete { id: "e1".into() },
        CatalogChange::Delete { id: "e2".into() },
    ];
    switch.extend(upserts(shop()));
    let applied = index.apply(switch).unwrap();
    assert_eq!(
        (applied.deleted, applied.upserted, applied.refused.len()),
        (2, 9, 0)
    );
    assert_eq!(index.dimensions(), Some(COMPUTED_DIMENSIONS));
    let taste = taste_of(&index, "p90");
    assert_eq!(ids(&index, &Query::new(&taste, 1)), ["p90"]);
}

#[test]
fn bad_changes_are_refused_and_the_rest_applied() {
    let dir = tempfile::tempdir().unwrap();
    let index = ItemIndex::open(dir.path()).unwrap();
    let mut negative = item("neg", "", "", "", 1.0);
    negative.price = -1.0;
    let applied = index
        .apply([
            CatalogChange::Upsert(negative),
            CatalogChange::Upsert(item("ok", "", "", "", 1.0)),
            CatalogChange::Stock {
                id: "ghost".into(),
                store: "s1".into(),
                quantity: 1,
            },
            CatalogChange::Stock {
                id: "ok".into(),
                store: "".into(),
                quantity: 1,
            },
            CatalogChange::Delete { id: "ghost".into() },
        ])
        .unwrap();
    assert_eq!(
        (
            applied.upserted,
            applied.already_absent,
            applied.stock_changes
        ),
        (1, 1, 0)
    );
    let reasons: Vec<String> = applied.refused.iter().map(ToString::to_string).collect();
    assert_eq!(reasons.len(), 3);
    assert_eq!(
        reasons[0],
        r#"item "neg": price: must be a finite number ≥ 0, got -1"#
    );
    assert_eq!(applied.refused[1].reason, RefusalReason::UnknownItem);
    assert!(
        reasons[2].starts_with(r#"item "ok": store: must not be empty"#),
        "{}",
        reasons[2]
    );
    assert_eq!(index.len(), 1);
}

#[test]
fn a_price_change_updates_the_item_not_its_neighbours() {
    let dir = tempfile::tempdir().unwrap();
    let index = shop_index(&dir);
    let taste = taste_of(&index, "p40");
    let before = index.recommend(&Query::new(&taste, 4)).unwrap();
    let mut cheaper = index.item("p41").unwrap().unwrap();
    cheaper.price = 38.0; // same price band: same vector
    index.apply([CatalogChange::Upsert(cheaper)]).unwrap();
    assert_eq!(index.item("p41").unwrap().unwrap().price, 38.0);
    assert_eq!(index.recommend(&Query::new(&taste, 4)).unwrap(), before);
}

#[test]
fn an_empty_index_answers_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let index = ItemIndex::open(&dir.path().join("created/on/open")).unwrap();
    assert!(index.is_empty());
    assert_eq!(index.dimensions(), None);
    assert_eq!(index.recommend(&Query::new(&[1.0, 2.0], 5)).unwrap(), []);
    assert_eq!(index.exact_nearest(&[1.0, 2.0], 5).unwrap(), []);
    assert_eq!(index.vectors().unwrap(), []);
    assert_eq!(index.item("p1").unwrap(), None);
}

#[test]
fn options_out_of_range_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let options = IndexOptions {
        n_trees: 0,
        ..IndexOptions::default()
    };
    let error = ItemIndex::open_with(dir.path(), options).unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid item index option: n_trees must be at least 1, got 0"
    );
}

#[test]
fn the_index_is_shared_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<ItemIndex>();

    let dir = tempfile::tempdir().unwrap();
    let index = Arc::new(shop_index(&dir));
    let taste = taste_of(&index, "p31");
    let reader = {
        let index = Arc::clone(&index);
        std::thread::spawn(move || {
            for _ in 0..200 {
                let found = index.recommend(&Query::new(&taste, 5)).unwrap();
                assert!(found.iter().any(|r| r.item_id == "p31"));
            }
        })
    };
    for round in 0..20 {
        let id = format!("extra-{round}");
        index
            .apply(upserts([item(
                &id,
                "socks",
                "apparel/socks",
                "Smartwool",
                12.0,
            )]))
            .unwrap();
        index.apply([CatalogChange::Delete { id }]).unwrap();
    }
    reader.join().unwrap();
    assert_eq!(index.len(), 9);
}

#[test]
fn the_source_position_is_recorded_with_the_changes_and_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let position = SourcePosition {
        source: 1_795_000_000_000_000_000,
        sequence: 41,
    };
    {
        let index = ItemIndex::open(dir.path()).unwrap();
        assert_eq!(index.applied_position().unwrap(), None);
        index.apply_through(upserts(shop()), position).unwrap();
        assert_eq!(index.applied_position().unwrap(), Some(position));
        // A plain apply (a file load) leaves the stream position alone.
        index
            .apply([CatalogChange::Delete { id: "p31".into() }])
            .unwrap();
        assert_eq!(index.applied_position().unwrap(), Some(position));
    }
    let index = ItemIndex::open(dir.path()).unwrap();
    assert_eq!(index.applied_position().unwrap(), Some(position));
    let vector = index.vector("p32").unwrap().expect("p32's vector");
    let norm: f32 = vector.iter().map(|v| v * v).sum();
    assert!((norm - 1.0).abs() < 1e-4);
    assert_eq!(
        index.vector("p32").unwrap(),
        index
            .vectors()
            .unwrap()
            .into_iter()
            .find(|(id, _)| id == "p32")
            .map(|(_, v)| v)
    );
    assert_eq!(index.vector("p31").unwrap(), None);
}

#[test]
fn a_refusal_names_the_position_of_its_change() {
    let dir = tempfile::tempdir().unwrap();
    let index = ItemIndex::open(dir.path()).unwrap();
    let applied = index
        .apply([
            CatalogChange::Upsert(item("a", "Sencha", "tea/green", "Leaf", 3.0)),
            CatalogChange::Stock {
                id: "nope".into(),
                store: "s".into(),
                quantity: 1,
            },
            CatalogChange::Upsert(item("b", "Gyokuro", "tea/green", "Leaf", 4.0)),
        ])
        .unwrap();
    assert_eq!(applied.upserted, 2);
    assert_eq!(applied.refused.len(), 1);
    assert_eq!(applied.refused[0].position, 1);
    assert_eq!(applied.refused[0].reason, RefusalReason::UnknownItem);
}
