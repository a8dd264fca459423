//! Recommendations in `kairos run` against a real nats-server (issue #5):
//! the item index loaded with `kairos catalog load`, kept current from
//! `kairos.catalog.>` without a restart, and asked for the items each
//! recommending action carries; bad catalog messages go to the DLQ.

mod nats;

use nats::{
    call, client, pipeline_text, publish_call, read_actions, read_stream, write_file, Kairos,
    NatsServer, UNCAPPED_POLICY,
};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// A cart reminder 1 s after the last add, carrying three recommendations;
/// a store check-in offer carrying two, in stock at the store.
const TRIGGERS: &str = r#"
[[trigger]]
id = "cart"
kind = "absence"
key = "cart_id"
start = "Product Added"
cancel = ["Order Completed"]
after = "1s"
channel = "push"
payload = { cart = true, recommendations = 3 }

[[trigger]]
id = "store_visit"
kind = "count"
event = "Store Visited"
window = { tumbling = "1d" }
channel = "pos"
payload = { properties = ["store_id"], recommendations = 2 }
"#;

/// Coffee, tea and socks; `decaf` is out of stock at the Xintiandi store.
const CATALOG: &str = r#"{"id":"beans","title":"Yirgacheffe coffee beans 250g","category":"coffee/beans","brand":"Kairos Roasters","price":14.5}
{"id":"decaf","title":"Decaf coffee beans 250g","category":"coffee/beans","brand":"Kairos Roasters","price":13.0,"stock":{"sh-xintiandi":0,"sh-nanjing-rd":5}}
{"id":"espresso","title":"Espresso coffee beans 1kg","category":"coffee/beans","brand":"Kairos Roasters","price":39.0}
{"id":"ground","title":"Ground coffee filter 500g","category":"coffee/ground","brand":"Kairos Roasters","price":11.0}
{"id":"oolong","title":"Tieguanyin oolong tea 100g","category":"tea/oolong","brand":"Mountain Leaf","price":9.9}
{"id":"jasmine","title":"Jasmine green tea 100g","category":"tea/green","brand":"Mountain Leaf","price":8.5}
{"id":"socks","title":"Merino wool socks","category":"apparel/socks","brand":"Smartwool","price":19.0}
"#;

fn kairos(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kairos"))
        .args(args)
        .output()
        .expect("running kairos")
}

fn setup(dir: &Path) -> (String, String) {
    let pipeline = write_file(
        dir,
        "shop.toml",
        &pipeline_text("shop", UNCAPPED_POLICY, TRIGGERS),
    );
    let catalog = write_file(dir, "catalog.jsonl", CATALOG);
    let data = dir.join("data");
    let loaded = kairos(&[
        "catalog",
        "load",
        &catalog,
        "--data-dir",
        &data.display().to_string(),
    ]);
    assert!(
        loaded.status.success(),
        "{}",
        String::from_utf8_lossy(&loaded.stderr)
    );
    (pipeline, catalog)
}

fn recommended(action: &Value) -> Vec<String> {
    action["data"]["payload"]["recommendations"]
        .as_array()
        .unwrap_or_else(|| panic!("no recommendations in {action}"))
        .iter()
        .map(|item| {
            let score = item["score"].as_f64().expect("a score");
            assert!((-1.0..=1.0).contains(&score), "{item}");
            item["item_id"].as_str().expect("an item id").to_string()
        })
        .collect()
}

fn add(user: &str, message_id: &str, product: &str) -> Value {
    call(
        user,
        "Product Added",
        message_id,
        json!({"cart_id": format!("cart-{user}"), "product_id": product, "price": 10}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_carry_recommendations_that_leave_out_the_cart_and_follow_catalog_changes_live() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (pipeline, catalog) = setup(dir.path());
    let kairos_run = Kairos::start_in(&server, dir.path(), &["--pipeline", &pipeline]);
    let client = client(&server).await;

    // The running engine holds its data directory: a load there is refused
    // (changes go through the catalog stream), and so is a second engine.
    let data = dir.path().join("data").display().to_string();
    let refused = kairos(&["catalog", "load", &catalog, "--data-dir", &data]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is in use by kairos run (pid"), "{stderr}");
    assert!(stderr.contains("nothing was loaded"), "{stderr}");
    let url = server.url();
    let second = kairos(&[
        "run",
        "--nats",
        &url,
        "--pipeline",
        &pipeline,
        "--data-dir",
        &data,
    ]);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is in use by kairos run (pid"), "{stderr}");

    // A coffee cart: the reminder recommends other coffee, not the beans.
    publish_call(&client, &add("u1", "a1", "beans")).await;
    let read = read_actions(&client, "kairos.actions.push", 1, Duration::from_secs(10)).await;
    let first = recommended(&read[0].json());
    assert_eq!(first.len(), 3, "{first:?}");
    assert!(!first.contains(&"beans".to_string()), "{first:?}");
    assert!(
        first[..2]
            .iter()
            .all(|id| ["decaf", "espresso", "ground"].contains(&id.as_str())),
        "coffee first: {first:?}"
    );

    // A new item just like the beans, published while kairos runs, is
    // recommended to the next coffee cart, without a restart.
    let twin = json!({"id":"beans-2","title":"Yirgacheffe coffee beans 250g","category":"coffee/beans","brand":"Kairos Roasters","price":14.5});
    js_publish(&client, "kairos.catalog.upsert", &twin).await;
    // Out of stock everywhere: espresso is never recommended again.
    let stock = json!({"id":"espresso","store":"sh-nanjing-rd","quantity":0});
    js_publish(&client, "kairos.catalog.stock", &stock).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    publish_call(&client, &add("u2", "a2", "beans")).await;
    let read = read_actions(&client, "kairos.actions.push", 2, Duration::from_secs(10)).await;
    let second = recommended(&read[1].json());
    assert_eq!(second[0], "beans-2", "{second:?}");
    assert!(!second.contains(&"espresso".to_string()), "{second:?}");

    // A coffee lover's store check-in recommends only what that store has:
    // decaf is out of stock at Xintiandi.
    let viewed = json!({"product_id": "ground"});
    publish_call(&client, &call("u3", "Product Viewed", "w3", viewed)).await;
    publish_call(
        &client,
        &call(
            "u3",
            "Store Visited",
            "v3",
            json!({"store_id": "sh-xintiandi"}),
        ),
    )
    .await;
    publish_call(&client, &add("u3", "a3", "decaf")).await;
    let visits = read_actions(&client, "kairos.actions.pos", 1, Duration::from_secs(10)).await;
    let at_the_store = recommended(&visits[0].json());
    assert_eq!(at_the_store.len(), 2, "{at_the_store:?}");
    assert!(
        !at_the_store.contains(&"decaf".to_string()),
        "{at_the_store:?}"
    );
    assert!(
        !at_the_store.contains(&"espresso".to_string()),
        "{at_the_store:?}"
    );
    let read = read_actions(&client, "kairos.actions.push", 3, Duration::from_secs(10)).await;
    let third = recommended(&read[2].json());
    assert!(!third.contains(&"decaf".to_string()), "{third:?}");

    // Bad catalog messages go to the DLQ with the reason; the good one
    // beside them is applied.
    let client2 = client.clone();
    let bad_kind = json!({"id": "x"});
    js_publish(&client2, "kairos.catalog.rename", &bad_kind).await;
    js_publish(
        &client2,
        "kairos.catalog.upsert",
        &json!({"id": "no-price"}),
    )
    .await;
    js_publish(
        &client2,
        "kairos.catalog.upsert",
        &json!({"id":"vector-item","price":1.0,"vector":[0.1,0.2]}),
    )
    .await;
    js_publish(&client2, "kairos.catalog.delete", &json!({"id": "socks"})).await;
    let dlq = read_stream(
        &client,
        "KAIROS_DLQ",
        "kairos.dlq.catalog_invalid",
        Duration::from_secs(10),
        |read| read.len() >= 3,
    )
    .await;
    assert_eq!(dlq.len(), 3);
    let errors: Vec<&str> = dlq
        .iter()
        .map(|entry| entry.header("Kairos-Error").unwrap_or_default())
        .collect();
    assert!(
        errors[0].contains("upsert"),
        "names the accepted kinds: {errors:?}"
    );
    assert!(errors[1].contains("price"), "{errors:?}");
    assert!(errors[2].contains("computed"), "{errors:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let metrics = kairos_run.metrics();
    for line in [
        "kairos_catalog_items 7",
        "kairos_catalog_following 1",
        "kairos_catalog_changes_total{kind=\"upsert\"} 1",
        "kairos_catalog_changes_total{kind=\"stock\"} 1",
        "kairos_catalog_changes_total{kind=\"delete\"} 1",
        "kairos_dlq_total{reason=\"catalog_invalid\"} 3",
        "kairos_recommend_seconds_count 4",
    ] {
        let whole = format!("\n{line}\n");
        assert!(metrics.contains(&whole), "no {line:?} in\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_changes_survive_a_kill_9_and_are_applied_once() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (pipeline, _) = setup(dir.path());
    let mut kairos_run = Kairos::start_in(&server, dir.path(), &["--pipeline", &pipeline]);
    let client = client(&server).await;
    let twin = json!({"id":"beans-2","title":"Yirgacheffe coffee beans 250g","category":"coffee/beans","brand":"Kairos Roasters","price":14.5});
    js_publish(&client, "kairos.catalog.upsert", &twin).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    kairos_run.kill9();
    // Published while kairos is down: applied when it is back.
    js_publish(&client, "kairos.catalog.delete", &json!({"id": "beans-2"})).await;
    let jasmine_twin = json!({"id":"jasmine-2","title":"Jasmine green tea 100g","category":"tea/green","brand":"Mountain Leaf","price":8.5});
    js_publish(&client, "kairos.catalog.upsert", &jasmine_twin).await;
    kairos_run.kill_and_restart();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let metrics = kairos_run.metrics();
    assert!(
        metrics.contains("\nkairos_catalog_items 8\n"),
        "7 loaded, beans-2 added and deleted, jasmine-2 added:\n{metrics}"
    );
    // Only what came after the index's recorded sequence was read again.
    assert!(
        metrics.contains("\nkairos_catalog_changes_total{kind=\"upsert\"} 1\n"),
        "{metrics}"
    );
    publish_call(&client, &add("u1", "a1", "jasmine")).await;
    let read = read_actions(&client, "kairos.actions.push", 1, Duration::from_secs(10)).await;
    let items = recommended(&read[0].json());
    assert_eq!(items[0], "jasmine-2", "{items:?}");
    assert!(!items.contains(&"beans-2".to_string()), "{items:?}");

    // The catalog stream deleted and made again while kairos is down, with
    // more changes than the index had read of the old one: its sequences
    // start over, and every change in it is read.
    kairos_run.kill9();
    let js = async_nats::jetstream::new(client.clone());
    let mut old = js.get_stream("KAIROS_CATALOG").await.unwrap();
    let config = old.info().await.unwrap().config.clone();
    js.delete_stream("KAIROS_CATALOG").await.unwrap();
    js.create_stream(config).await.unwrap();
    for id in ["mate-1", "mate-2", "mate-3", "mate-4"] {
        let mate = json!({"id": id, "title":"Yerba mate 500g","category":"tea/mate","brand":"Mountain Leaf","price":7.5});
        js_publish(&client, "kairos.catalog.upsert", &mate).await;
    }
    kairos_run.kill_and_restart();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let metrics = kairos_run.metrics();
    assert!(
        metrics.contains("\nkairos_catalog_items 12\n"),
        "8 before, and all four changes of the new stream:\n{metrics}"
    );
}

/// Publishes one catalog change to JetStream and waits for it to be stored.
async fn js_publish(client: &async_nats::Client, subject: &str, body: &Value) {
    let js = async_nats::jetstream::new(client.clone());
    js.publish(subject.to_string(), body.to_string().into())
        .await
        .expect("publish")
        .await
        .expect("stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_catalog_change_as_large_as_nats_takes_goes_to_the_dlq_cut_and_the_rest_follows() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (pipeline, _) = setup(dir.path());
    let kairos_run = Kairos::start_in(&server, dir.path(), &["--pipeline", &pipeline]);
    let client = client(&server).await;
    // Just under NATS' 1 MiB, and refused (no price): its DLQ copy, with
    // kairos' headers, would not fit whole.
    let big = json!({"id": "huge", "title": "x".repeat(1_048_576 - 300)}).to_string();
    let size = big.len();
    let js = async_nats::jetstream::new(client.clone());
    js.publish("kairos.catalog.upsert", big.into())
        .await
        .expect("publish")
        .await
        .expect("stored");
    let tea = json!({"id":"oolong-2","title":"Oolong tea 100g","category":"tea/oolong","brand":"Mountain Leaf","price":9.9});
    js_publish(&client, "kairos.catalog.upsert", &tea).await;
    let dlq = read_stream(
        &client,
        "KAIROS_DLQ",
        "kairos.dlq.catalog_invalid",
        Duration::from_secs(10),
        |read| !read.is_empty(),
    )
    .await;
    assert_eq!(dlq.len(), 1, "log:\n{}", kairos_run.log_text());
    assert_eq!(
        dlq[0].header("Kairos-Truncated-From"),
        Some(size.to_string().as_str())
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !kairos_run.metrics().contains("\nkairos_catalog_items 8\n") {
        assert!(
            std::time::Instant::now() < deadline,
            "the change after the big one was not applied; log:\n{}",
            kairos_run.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
