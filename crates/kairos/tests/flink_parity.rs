//! kairos' abandoned-cart decisions on the corner cases of
//! `benches/flink/edge-cases.jsonl` are the ones Apache Flink's DataStream
//! job (`benches/flink/AbandonedCart.java`) makes on the same input: an order
//! at exactly +30 min and at +30 min 1 ms, an order older than the add before
//! it, restarts, equal times, missing and numeric cart ids, an anonymous
//! shopper, clock skew, the per-customer cart limit.
//!
//! Flink's output is checked in (`edge-cases.flink.jsonl`, made with
//! `benches/flink/run.sh`), so this runs without a JVM.

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// (user_id, cart_id, fired_at) of each line, taking the fields from
/// `data` (and `data.payload`) of an action or from the top level of one of
/// Flink's decisions.
fn decisions(text: &str) -> BTreeSet<(String, String, String)> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let value: Value = serde_json::from_str(line).expect("a JSON line");
            let data = value.get("data").unwrap_or(&value);
            let cart = data.get("payload").unwrap_or(data)["cart_id"].clone();
            let text = |v: &Value| v.as_str().map(str::to_string).unwrap_or(v.to_string());
            (text(&data["user_id"]), text(&cart), text(&data["fired_at"]))
        })
        .collect()
}

#[test]
fn abandoned_cart_decisions_match_flinks() {
    let out = tempfile::NamedTempFile::new().expect("a temporary file");
    let status = Command::new(env!("CARGO_BIN_EXE_kairos"))
        .arg("backtest")
        .arg("--pipeline")
        .arg(repo().join("benches/cart-only.toml"))
        .arg("--events")
        .arg(repo().join("benches/flink/edge-cases.jsonl"))
        .arg("--out")
        .arg(out.path())
        .arg("--quiet")
        .status()
        .expect("kairos runs");
    assert!(status.success());
    let ours = decisions(&std::fs::read_to_string(out.path()).expect("actions written"));
    let flinks = decisions(
        &std::fs::read_to_string(repo().join("benches/flink/edge-cases.flink.jsonl"))
            .expect("Flink's decisions are checked in"),
    );
    assert!(!ours.is_empty());
    let only_ours: Vec<_> = ours.difference(&flinks).collect();
    let only_flinks: Vec<_> = flinks.difference(&ours).collect();
    assert!(
        only_ours.is_empty() && only_flinks.is_empty(),
        "only kairos: {only_ours:?}\nonly Flink: {only_flinks:?}"
    );
}
