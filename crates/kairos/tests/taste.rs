//! Taste vectors and recommendation requests (issue #5): what the engine
//! learns from e-commerce events once a catalog's vectors are loaded, and
//! what a recommending action asks the item index.

mod support;
use kairos_engine::taste::RecommendationRequest;
use kairos_engine::Engine;
use serde_json::json;
use support::{plain_track, track, Harness, OPEN_POLICY};

fn pipeline() -> String {
    format!(
        r#"
name = "taste_test"
{OPEN_POLICY}
[[trigger]]
id = "abandoned_cart"
kind = "absence"
key = "cart_id"
start = "Product Added"
cancel = ["Order Completed"]
after = "30m"
channel = "push"
payload = {{ cart = true, recommendations = 3 }}

[[trigger]]
id = "welcome"
kind = "count"
event = "Signed Up"
min = 1
window = {{ tumbling = "1d" }}
channel = "email"
"#
    )
}

/// Three directions: coffee, tea, equipment.
fn load_catalog(engine: &mut Engine) {
    let items = engine.item_vectors_mut();
    for (id, vector) in [
        ("beans", [1.0, 0.0, 0.0]),
        ("decaf", [0.9, 0.1, 0.0]),
        ("oolong", [0.0, 1.0, 0.0]),
        ("grinder", [0.2, 0.0, 1.0]),
    ] {
        items.insert(id, &vector).expect("three dimensions");
    }
}

fn shopper(harness: &mut Harness) {
    harness
        .send(track(
            "u1",
            "Product Viewed",
            "2026-03-01T10:00:00Z",
            "v1",
            json!({"product_id": "oolong"}),
        ))
        .send(track(
            "u1",
            "Order Completed",
            "2026-03-01T10:05:00Z",
            "o1",
            json!({"products": [{"product_id": "grinder", "price": 80, "quantity": 1}]}),
        ))
        .send(track(
            "u1",
            "Product Added",
            "2026-03-01T10:10:00Z",
            "a1",
            json!({"cart_id": "c1", "product_id": "beans", "price": 12.5}),
        ));
}

fn request_of(harness: &Harness, trigger: &str) -> Option<RecommendationRequest> {
    let decision = harness
        .decisions
        .iter()
        .find(|decision| &*decision.trigger == trigger)
        .unwrap_or_else(|| panic!("no {trigger} decision"));
    decision.recommend.as_deref().cloned()
}

#[test]
fn a_recommending_action_asks_for_its_items_leaving_out_the_cart_and_what_was_bought() {
    let mut harness = Harness::new(&pipeline());
    load_catalog(&mut harness.engine);
    shopper(&mut harness);
    harness.advance("2026-03-01T11:00:00Z");
    let request = request_of(&harness, "abandoned_cart").expect("asked");
    assert_eq!(request.k, 3);
    assert_eq!(request.exclude, ["beans", "grinder"]);
    assert_eq!(request.store, None);
    // Between the cart's beans, the oolong viewed and the grinder bought,
    // leaning to what the action is about.
    let [coffee, tea, equipment] = request.vector[..] else {
        panic!("{:?}", request.vector)
    };
    assert!(
        coffee > tea && tea > 0.0 && equipment > 0.0,
        "{:?}",
        request.vector
    );
}

#[test]
fn triggers_that_do_not_ask_and_engines_without_a_catalog_ask_nothing() {
    let mut harness = Harness::new(&pipeline());
    harness.send(plain_track("u2", "Signed Up", "2026-03-01T10:00:00Z", "s1"));
    shopper(&mut harness);
    harness.advance("2026-03-01T11:00:00Z");
    assert_eq!(request_of(&harness, "abandoned_cart"), None);
    let mut harness = Harness::new(&pipeline());
    load_catalog(&mut harness.engine);
    harness.send(plain_track("u2", "Signed Up", "2026-03-01T10:00:00Z", "s1"));
    harness.advance("2026-03-01T11:00:00Z");
    assert_eq!(request_of(&harness, "welcome"), None);
}

#[test]
fn erasure_removes_the_taste_vector() {
    let mut harness = Harness::new(&pipeline());
    load_catalog(&mut harness.engine);
    shopper(&mut harness);
    harness.send(plain_track(
        "u1",
        "Erasure Requested",
        "2026-03-01T10:11:00Z",
        "e1",
    ));
    harness.advance("2026-03-01T10:11:30Z");
    assert!(!harness.engine.holds_anything_about("u1"));
    // Back again: only the new cart is known, nothing of the grinder or the
    // oolong.
    harness.send(track(
        "u1",
        "Product Added",
        "2026-03-01T10:12:00Z",
        "a2",
        json!({"cart_id": "c2", "product_id": "decaf", "price": 11}),
    ));
    harness.advance("2026-03-01T11:00:00Z");
    let request = request_of(&harness, "abandoned_cart").expect("asked");
    assert_eq!(request.exclude, ["decaf"]);
    let [coffee, tea, equipment] = request.vector[..] else {
        panic!("{:?}", request.vector)
    };
    assert!(
        coffee > 0.9 && tea > 0.0 && equipment == 0.0,
        "{:?}",
        request.vector
    );
}

#[test]
fn a_snapshot_keeps_the_taste() {
    let mut harness = Harness::new(&pipeline());
    load_catalog(&mut harness.engine);
    shopper(&mut harness);
    let mut bytes = Vec::new();
    harness.engine.snapshot(&mut bytes).expect("snapshot");
    let mut restored = Harness::with_pipeline(support::pipeline(&pipeline()));
    restored.engine = Engine::restore(support::pipeline(&pipeline()), &bytes).expect("restore");
    load_catalog(&mut restored.engine);
    harness.advance("2026-03-01T11:00:00Z");
    restored.advance("2026-03-01T11:00:00Z");
    let asked = request_of(&harness, "abandoned_cart");
    assert!(asked.is_some());
    assert_eq!(request_of(&restored, "abandoned_cart"), asked);
}

#[test]
fn a_merged_identity_pools_tastes() {
    let mut harness = Harness::new(&pipeline());
    load_catalog(&mut harness.engine);
    harness.send(
        json!({"type": "track", "event": "Order Completed", "anonymousId": "anon-9",
        "timestamp": "2026-03-01T09:00:00Z", "messageId": "o9",
        "properties": {"products": [{"product_id": "oolong"}]}}),
    );
    harness.send(
        json!({"type": "identify", "userId": "u9", "anonymousId": "anon-9",
        "timestamp": "2026-03-01T09:30:00Z", "messageId": "i9"}),
    );
    harness.send(track(
        "u9",
        "Product Added",
        "2026-03-01T10:00:00Z",
        "a9",
        json!({"cart_id": "c9", "product_id": "beans", "price": 12.5}),
    ));
    harness.advance("2026-03-01T11:00:00Z");
    let request = request_of(&harness, "abandoned_cart").expect("asked");
    assert_eq!(request.exclude, ["beans", "oolong"]);
}
