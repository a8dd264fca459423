//! `kairos backtest --catalog` (issue #5): offline replays carry the
//! recommendations `kairos run` would send, the same on every run, with
//! the cart, recent purchases and out-of-stock items left out; and
//! `kairos catalog load` refuses a bad file, naming its lines.

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
        .display()
        .to_string()
}

fn kairos(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kairos"))
        .args(args)
        .output()
        .expect("kairos runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Two shoppers on one morning: u1 views oolong, buys a mug, then leaves
/// espresso beans in a cart; u2 views a grinder and checks in at the
/// Xintiandi store.
fn history() -> String {
    let identify = |user: &str, at: &str| {
        json!({"type": "identify", "userId": user, "messageId": format!("{user}-id"), "timestamp": at,
               "traits": {"consent": {"push": true, "email": true, "sms": true, "wechat": true}}})
    };
    let track = |user: &str, event: &str, id: &str, at: &str, properties: Value| {
        json!({"type": "track", "event": event, "userId": user, "messageId": id, "timestamp": at,
               "properties": properties})
    };
    [
        identify("u1", "2026-03-02T09:00:00Z"),
        track("u1", "Product Viewed", "v1", "2026-03-02T09:01:00Z",
              json!({"product_id": "p-oolong", "category": "tea/oolong"})),
        track("u1", "Order Completed", "o1", "2026-03-02T09:02:00Z",
              json!({"order_id": "o1", "products": [{"product_id": "p-mug", "price": 12, "quantity": 1}]})),
        track("u1", "Product Added", "a1", "2026-03-02T09:03:00Z",
              json!({"cart_id": "c1", "product_id": "p-espresso-beans", "price": 14.5, "quantity": 1})),
        identify("u2", "2026-03-02T09:00:00Z"),
        track("u2", "Product Viewed", "v2", "2026-03-02T09:01:00Z",
              json!({"product_id": "p-grinder", "category": "coffee/equipment/grinders"})),
        track("u2", "Store Visited", "s2", "2026-03-02T09:05:00Z",
              json!({"store_id": "sh-xintiandi", "method": "qr"})),
    ]
    .iter()
    .map(|call| format!("{call}\n"))
    .collect()
}

fn backtest(dir: &Path, events: &str, out: &str, catalog: Option<&str>) -> Vec<Value> {
    let out_path = dir.join(out).display().to_string();
    let pipeline = repo("pipelines/retail.toml");
    let mut args = vec![
        "backtest",
        "--pipeline",
        &pipeline,
        "--events",
        events,
        "--out",
        &out_path,
        "--set",
        "policy.holdout_percent=0",
        "--until",
        "2026-03-03T00:00:00Z",
        "--quiet",
    ];
    if let Some(catalog) = catalog {
        args.extend(["--catalog", catalog]);
    }
    let output = kairos(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    std::fs::read_to_string(&out_path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn action<'a>(actions: &'a [Value], trigger: &str) -> &'a Value {
    actions
        .iter()
        .find(|action| action["data"]["trigger"] == trigger)
        .unwrap_or_else(|| panic!("no {trigger} action in {actions:#?}"))
}

fn recommended(action: &Value) -> Vec<String> {
    action["data"]["payload"]["recommendations"]
        .as_array()
        .unwrap_or_else(|| panic!("no recommendations in {action}"))
        .iter()
        .map(|item| item["item_id"].as_str().unwrap().to_string())
        .collect()
}

/// Each catalog item's stock at each store (untracked: absent).
fn stock(catalog: &str) -> BTreeMap<String, Option<BTreeMap<String, u64>>> {
    std::fs::read_to_string(catalog)
        .unwrap()
        .lines()
        .map(|line| {
            let item: Value = serde_json::from_str(line).unwrap();
            let stock = item["stock"].as_object().map(|stores| {
                stores
                    .iter()
                    .map(|(store, quantity)| (store.clone(), quantity.as_u64().unwrap()))
                    .collect()
            });
            (item["id"].as_str().unwrap().to_string(), stock)
        })
        .collect()
}

#[test]
fn a_backtest_with_a_catalog_recommends_the_same_items_every_time_with_the_exclusions() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl").display().to_string();
    std::fs::write(&events, history()).unwrap();
    let catalog = repo("pipelines/catalog.jsonl");
    let first = backtest(dir.path(), &events, "a.jsonl", Some(&catalog));
    let again = backtest(dir.path(), &events, "b.jsonl", Some(&catalog));
    assert_eq!(first, again, "deterministic for a fixed catalog and input");

    let cart = recommended(action(&first, "abandoned_cart"));
    assert_eq!(cart.len(), 4, "the default top 4: {cart:?}");
    let unique: BTreeSet<&String> = cart.iter().collect();
    assert_eq!(unique.len(), 4, "{cart:?}");
    for left_out in ["p-espresso-beans", "p-mug"] {
        assert!(
            !cart.contains(&left_out.to_string()),
            "{left_out} in {cart:?}"
        );
    }
    let scores: Vec<f64> = action(&first, "abandoned_cart")["data"]["payload"]["recommendations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["score"].as_f64().unwrap())
        .collect();
    assert!(
        scores.windows(2).all(|pair| pair[0] >= pair[1]),
        "best first: {scores:?}"
    );

    let stocks = stock(&catalog);
    let at_store = recommended(action(&first, "store_visit_offer"));
    assert_eq!(at_store.len(), 4, "{at_store:?}");
    for id in &at_store {
        let in_stock = match &stocks[id] {
            None => true,
            Some(stores) => stores.get("sh-xintiandi").is_some_and(|q| *q > 0),
        };
        assert!(in_stock, "{id} is not in stock at sh-xintiandi");
    }

    // Without a catalog, the same decisions and no recommendations.
    let plain = backtest(dir.path(), &events, "c.jsonl", None);
    assert_eq!(plain.len(), first.len());
    assert!(plain
        .iter()
        .all(|action| action["data"]["payload"].get("recommendations").is_none()));
}

#[test]
fn a_bad_catalog_is_refused_with_its_line_numbers_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let catalog: PathBuf = dir.path().join("catalog.jsonl");
    std::fs::write(
        &catalog,
        "{\"id\":\"p1\",\"price\":3}\n{\"id\":\"p2\",\"price\":-1}\nnot json\n",
    )
    .unwrap();
    let data = dir.path().join("data").display().to_string();
    let catalog = catalog.display().to_string();
    let loaded = kairos(&["catalog", "load", &catalog, "--data-dir", &data]);
    assert_eq!(loaded.status.code(), Some(2), "{}", stderr(&loaded));
    let message = stderr(&loaded);
    assert!(message.contains("catalog.jsonl:2: price"), "{message}");
    assert!(message.contains("catalog.jsonl:3:"), "{message}");
    assert!(message.contains("nothing was loaded"), "{message}");

    let events = dir.path().join("events.jsonl").display().to_string();
    std::fs::write(&events, history()).unwrap();
    let pipeline = repo("pipelines/retail.toml");
    let output = kairos(&[
        "backtest",
        "--pipeline",
        &pipeline,
        "--events",
        &events,
        "--catalog",
        &catalog,
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("--catalog"), "{}", stderr(&output));

    // The good file loads; loading it again with --replace drops what it
    // no longer lists.
    std::fs::write(
        &catalog,
        "{\"id\":\"p1\",\"price\":3}\n{\"id\":\"p2\",\"price\":4}\n",
    )
    .unwrap();
    let loaded = kairos(&["catalog", "load", &catalog, "--data-dir", &data]);
    assert!(loaded.status.success(), "{}", stderr(&loaded));
    assert!(
        stderr(&loaded).contains("the index holds 2"),
        "{}",
        stderr(&loaded)
    );
    std::fs::write(&catalog, "{\"id\":\"p2\",\"price\":4}\n").unwrap();
    let loaded = kairos(&[
        "catalog",
        "load",
        &catalog,
        "--data-dir",
        &data,
        "--replace",
    ]);
    assert!(stderr(&loaded).contains("1 deleted"), "{}", stderr(&loaded));
    assert!(
        stderr(&loaded).contains("the index holds 1"),
        "{}",
        stderr(&loaded)
    );

    // Vectors in some items only, or of another kind than the index's:
    // refused before anything is written.
    std::fs::write(
        &catalog,
        "{\"id\":\"p3\",\"price\":4}\n{\"id\":\"p4\",\"price\":4,\"vector\":[1,0]}\n",
    )
    .unwrap();
    let loaded = kairos(&["catalog", "load", &catalog, "--data-dir", &data]);
    assert_eq!(loaded.status.code(), Some(2), "{}", stderr(&loaded));
    assert!(
        stderr(&loaded).contains("nothing was loaded"),
        "{}",
        stderr(&loaded)
    );
    std::fs::write(&catalog, "{\"id\":\"p4\",\"price\":4,\"vector\":[1,0]}\n").unwrap();
    let loaded = kairos(&["catalog", "load", &catalog, "--data-dir", &data]);
    assert_eq!(loaded.status.code(), Some(2), "{}", stderr(&loaded));
    assert!(stderr(&loaded).contains("--replace"), "{}", stderr(&loaded));
    let replaced = kairos(&[
        "catalog",
        "load",
        &catalog,
        "--data-dir",
        &data,
        "--replace",
    ]);
    assert!(replaced.status.success(), "{}", stderr(&replaced));
    assert!(
        stderr(&replaced).contains("the index holds 1"),
        "{}",
        stderr(&replaced)
    );
}
