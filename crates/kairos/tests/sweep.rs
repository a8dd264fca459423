//! `kairos sweep`, run as a real process: the grid and its files, every
//! point agreeing with a `kairos backtest` of the same overrides, value
//! lists split at top-level commas only, and bad input refused with exit 2.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn retail() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines/retail.toml")
}

fn kairos(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kairos"))
        .args(args)
        .output()
        .expect("kairos runs")
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("exited, not killed")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[track_caller]
fn succeeded(output: &Output) {
    assert_eq!(code(output), 0, "stderr:\n{}", stderr(output));
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// `count` consenting shoppers, each adding to a cart at 10:00 (ten
/// seconds apart). Even ones order 15 minutes later, before a 30-minute
/// reminder and after a 10-minute one; one in four of the rest orders two
/// hours later, after any reminder: conversions to attribute.
fn shoppers(count: usize) -> String {
    let mut lines = Vec::new();
    let time = |seconds: usize| {
        let (hours, rest) = (seconds / 3600, seconds % 3600);
        format!(
            "2026-11-23T{:02}:{:02}:{:02}Z",
            9 + hours,
            rest / 60,
            rest % 60
        )
    };
    for shopper in 0..count {
        let user = format!("s{shopper}");
        lines.push(
            json!({"type": "identify", "userId": user, "messageId": format!("i{shopper}"),
            "timestamp": time(shopper), "traits": {"consent": {"push": true, "email": true}}}),
        );
        let added = 3600 + 10 * shopper;
        let cart = format!("cart{shopper}");
        lines.push(json!({"type": "track", "event": "Product Added", "userId": user,
            "messageId": format!("a{shopper}"), "timestamp": time(added),
            "properties": {"cart_id": cart, "product_id": format!("p{}", shopper % 5), "price": 10 + shopper}}));
        let ordered = match shopper % 4 {
            0 | 2 => Some(added + 15 * 60),
            1 => Some(added + 2 * 3600),
            _ => None,
        };
        if let Some(ordered) = ordered {
            lines.push(json!({"type": "track", "event": "Order Completed", "userId": user,
                "messageId": format!("o{shopper}"), "timestamp": time(ordered),
                "properties": {"cart_id": cart, "order_id": format!("o{shopper}"), "revenue": 20 + shopper}}));
        }
    }
    // The engine takes events in time order (within its allowed lateness).
    lines.sort_by_key(|line| line["timestamp"].as_str().map(str::to_string));
    let text: Vec<String> = lines.iter().map(Value::to_string).collect();
    text.join("\n") + "\n"
}

/// A temporary directory holding the shoppers' events.
struct Workspace {
    dir: tempfile::TempDir,
    events: PathBuf,
}

fn workspace(shopper_count: usize) -> Workspace {
    let dir = tempfile::tempdir().expect("temp dir");
    let events = dir.path().join("events.jsonl");
    std::fs::write(&events, shoppers(shopper_count)).expect("write events");
    Workspace { dir, events }
}

/// `kairos sweep` on the retail pipeline and the workspace's events, with
/// `extra` flags.
fn sweep(workspace: &Workspace, extra: &[&str]) -> Output {
    let pipeline = retail();
    let mut args = vec![
        "sweep",
        "--pipeline",
        path_str(&pipeline),
        "--events",
        path_str(&workspace.events),
    ];
    args.extend_from_slice(extra);
    kairos(&args)
}

/// Records of a CSV file (RFC 4180 quoting), as any CSV reader sees them.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let (mut record, mut field) = (Vec::new(), String::new());
    let mut characters = text.chars().peekable();
    let mut quoted = false;
    while let Some(character) = characters.next() {
        match (quoted, character) {
            (true, '"') if characters.peek() == Some(&'"') => {
                characters.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, other) => field.push(other),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, '\r') => {}
            (false, other) => field.push(other),
        }
    }
    assert!(
        !quoted && field.is_empty() && record.is_empty(),
        "the CSV ends mid-record"
    );
    records
}

/// The CSV's rows as maps from column name to cell.
fn csv_rows(dir: &Path) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(dir.join("sweep.csv")).expect("sweep.csv");
    let mut records = parse_csv(&text).into_iter();
    let header = records.next().expect("a header");
    records
        .map(|record| {
            assert_eq!(record.len(), header.len(), "{record:?}");
            header.iter().cloned().zip(record).collect()
        })
        .collect()
}

fn sweep_json(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("sweep.json")).expect("sweep.json");
    serde_json::from_str(&text).expect("sweep.json is JSON")
}

/// The CSV row of `trigger` at the point whose `;`-joined values are
/// `values`.
fn row<'r>(
    rows: &'r [BTreeMap<String, String>],
    trigger: &str,
    values: &str,
) -> &'r BTreeMap<String, String> {
    rows.iter()
        .find(|row| row["trigger"] == trigger && row["value"] == values)
        .unwrap_or_else(|| panic!("no row for {trigger} at {values}"))
}

fn number(row: &BTreeMap<String, String>, column: &str) -> u64 {
    row[column]
        .parse()
        .unwrap_or_else(|_| panic!("{column} = {:?}", row[column]))
}

const TRIGGERS_IN_RETAIL: usize = 20;

#[test]
fn a_two_by_three_grid_writes_a_row_per_trigger_and_point_and_all_three_files() {
    let workspace = workspace(40);
    let out = workspace.dir.path().join("report/nested");
    let output = sweep(
        &workspace,
        &[
            "--param",
            "abandoned_cart.after=10m,30m",
            "--param",
            "policy.holdout_percent=0,5,50",
            "--out",
            path_str(&out),
        ],
    );
    succeeded(&output);

    let csv = std::fs::read_to_string(out.join("sweep.csv")).expect("sweep.csv");
    assert!(
        csv.starts_with(
            "trigger,param,value,fired,sent,conversions,conversion_rate,holdout_conversion_rate,uplift"
        ),
        "{csv}"
    );
    let rows = csv_rows(&out);
    assert_eq!(rows.len(), TRIGGERS_IN_RETAIL * 6);
    let values: std::collections::BTreeSet<&str> =
        rows.iter().map(|row| row["value"].as_str()).collect();
    assert_eq!(
        values.into_iter().collect::<Vec<_>>(),
        ["10m;0", "10m;5", "10m;50", "30m;0", "30m;5", "30m;50"]
    );
    assert!(rows
        .iter()
        .all(|row| row["param"] == "abandoned_cart.after;policy.holdout_percent"));
    // Undefined rates are empty cells, not zeros: nothing was held out
    // with a holdout of 0 %.
    let unheld = row(&rows, "abandoned_cart", "10m;0");
    assert_eq!(unheld["holdout_conversion_rate"], "");
    assert_eq!(unheld["uplift"], "");

    let json = sweep_json(&out);
    let points = json["points"].as_array().expect("points");
    assert_eq!(points.len(), 6);
    assert_eq!(
        points[1]["overrides"],
        json!([{"path": "abandoned_cart.after", "value": "10m"},
               {"path": "policy.holdout_percent", "value": "5"}])
    );
    let cart = &points[0]["triggers"]["abandoned_cart"];
    for field in [
        "fired",
        "sent",
        "suppressed",
        "conversions",
        "holdout",
        "variants",
    ] {
        assert!(!cart[field].is_null(), "{field} missing: {cart}");
    }
    assert_eq!(json["events"], 40 * 2 + 30);

    let html = std::fs::read_to_string(out.join("sweep.html")).expect("sweep.html");
    assert!(html.contains("<svg"), "no plot");
    assert!(html.contains("abandoned_cart.after;policy.holdout_percent"));
    for external in ["<script", "http://", "https://", "<link"] {
        let outside_svg_namespace = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
        assert!(
            !outside_svg_namespace.contains(external),
            "the page fetches or runs something: {external}"
        );
    }

    let table = String::from_utf8_lossy(&output.stdout);
    let header = table.lines().next().expect("a table");
    for column in [
        "trigger",
        "abandoned_cart.after",
        "policy.holdout_percent",
        "sent",
        "conv. rate",
    ] {
        assert!(header.contains(column), "{header}");
    }
}

/// The summary JSON of `kairos backtest` with `sets` as `--set`s.
fn backtest_summary(workspace: &Workspace, sets: &[(&str, &str)], until: Option<&str>) -> Value {
    let summary = workspace.dir.path().join("summary.json");
    let pipeline = retail();
    let mut args = vec![
        "backtest".to_string(),
        "--pipeline".into(),
        path_str(&pipeline).into(),
        "--events".into(),
        path_str(&workspace.events).into(),
        "--summary-json".into(),
        path_str(&summary).into(),
        "--quiet".into(),
    ];
    for (path, value) in sets {
        args.extend(["--set".to_string(), format!("{path}={value}")]);
    }
    if let Some(until) = until {
        args.extend(["--until".to_string(), until.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    succeeded(&kairos(&args));
    let text = std::fs::read_to_string(&summary).expect("summary");
    serde_json::from_str(&text).expect("summary JSON")
}

/// The key property: a grid point is exactly a backtest with its values
/// as `--set`s, with and without `--until`.
#[test]
fn every_point_counts_what_a_backtest_with_the_same_sets_counts() {
    let workspace = workspace(60);
    for until in [None, Some("2026-11-23T10:40:00Z")] {
        let out = workspace.dir.path().join("out");
        let mut flags = vec![
            "--param",
            "abandoned_cart.after=10m,30m",
            "--param",
            "policy.holdout_percent=0,50",
            "--out",
            path_str(&out),
        ];
        if let Some(until) = until {
            flags.extend(["--until", until]);
        }
        succeeded(&sweep(&workspace, &flags));
        let json = sweep_json(&out);
        let points = json["points"].as_array().expect("points");
        assert_eq!(points.len(), 4);
        for point in points {
            let overrides = point["overrides"].as_array().expect("overrides");
            let sets: Vec<(&str, &str)> = overrides
                .iter()
                .map(|item| {
                    (
                        item["path"].as_str().expect("path"),
                        item["value"].as_str().expect("value"),
                    )
                })
                .collect();
            let summary = backtest_summary(&workspace, &sets, until);
            let expected = summary["triggers"].as_object().expect("triggers");
            let swept = point["triggers"].as_object().expect("triggers");
            assert_eq!(expected.len(), swept.len());
            for (trigger, counts) in expected {
                // Counters and attribution alike, field for field.
                assert_eq!(
                    &swept[trigger], counts,
                    "{trigger} at {sets:?}, until {until:?}"
                );
            }
        }
    }
}

#[test]
fn a_value_list_is_split_at_top_level_commas_only() {
    let workspace = workspace(4);
    let out = workspace.dir.path().join("out");
    let output = sweep(
        &workspace,
        &[
            "--param",
            r#"browse_abandonment.window={ session = "15s" },{ session = "30m" }"#,
            "--out",
            path_str(&out),
        ],
    );
    succeeded(&output);
    let rows = csv_rows(&out);
    assert_eq!(rows.len(), TRIGGERS_IN_RETAIL * 2);
    let cart = rows
        .iter()
        .filter(|row| row["trigger"] == "browse_abandonment");
    let values: Vec<&str> = cart.map(|row| row["value"].as_str()).collect();
    assert_eq!(values, [r#"{ session = "15s" }"#, r#"{ session = "30m" }"#]);
    let json = sweep_json(&out);
    assert_eq!(
        json["points"][1]["overrides"][0]["value"],
        r#"{ session = "30m" }"#
    );
}

#[test]
fn a_shorter_cart_timer_reminds_the_shoppers_who_order_in_between() {
    let workspace = workspace(40);
    let out = workspace.dir.path().join("out");
    succeeded(&sweep(
        &workspace,
        &[
            "--param",
            "abandoned_cart.after=10m,30m",
            "--out",
            path_str(&out),
        ],
    ));
    let rows = csv_rows(&out);
    let (short, long) = (
        row(&rows, "abandoned_cart", "10m"),
        row(&rows, "abandoned_cart", "30m"),
    );
    // Half the shoppers order after 15 minutes: only the 10-minute timer
    // reaches them.
    for column in ["fired", "sent"] {
        assert!(
            number(short, column) > number(long, column) + 10,
            "{column}: 10m: {short:?}\n30m: {long:?}"
        );
    }
}

#[test]
fn a_larger_holdout_holds_more_decisions_out() {
    let workspace = workspace(40);
    let out = workspace.dir.path().join("out");
    succeeded(&sweep(
        &workspace,
        &[
            "--param",
            "policy.holdout_percent=0,50",
            "--out",
            path_str(&out),
        ],
    ));
    let rows = csv_rows(&out);
    let (none, half) = (
        row(&rows, "abandoned_cart", "0"),
        row(&rows, "abandoned_cart", "50"),
    );
    assert_eq!(number(none, "held_out"), 0);
    assert_eq!(number(none, "suppressed_holdout"), 0);
    assert!(number(half, "held_out") >= 5, "{half:?}");
    assert!(number(half, "sent") < number(none, "sent"));
}

#[test]
fn an_unknown_trigger_or_a_bad_value_exits_2_naming_it() {
    let workspace = workspace(2);
    let out = workspace.dir.path().join("out");
    let output = sweep(
        &workspace,
        &[
            "--param",
            "no_such_trigger.after=10m",
            "--out",
            path_str(&out),
        ],
    );
    assert_eq!(code(&output), 2, "{}", stderr(&output));
    let message = stderr(&output);
    assert!(
        message.contains("--param no_such_trigger.after"),
        "{message}"
    );
    assert!(message.contains("no trigger has id"), "{message}");
    assert!(message.contains("accepted"), "{message}");

    let output = sweep(
        &workspace,
        &[
            "--param",
            "abandoned_cart.after=10m,soon",
            "--out",
            path_str(&out),
        ],
    );
    assert_eq!(code(&output), 2, "{}", stderr(&output));
    let message = stderr(&output);
    assert!(
        message.contains(r#"--param abandoned_cart.after: the value "soon""#),
        "{message}"
    );
    assert!(message.contains("is not a duration"), "{message}");
    assert!(
        !message.contains(r#""10m""#),
        "only the bad value: {message}"
    );
    assert!(!out.exists(), "nothing is written for a refused sweep");
}

#[test]
fn a_missing_or_malformed_param_exits_2_saying_what_is_accepted() {
    let workspace = workspace(2);
    let output = sweep(&workspace, &[]);
    assert_eq!(code(&output), 2);
    assert!(stderr(&output).contains("--param"), "{}", stderr(&output));

    for (param, expected) in [
        ("abandoned_cart.after", "no `=`"),
        ("abandoned_cart.after=10m,,30m", "empty"),
        (
            r#"browse_abandonment.window={ session = "15s" "#,
            "ends inside",
        ),
    ] {
        let output = sweep(&workspace, &["--param", param]);
        assert_eq!(code(&output), 2, "{param}: {}", stderr(&output));
        let message = stderr(&output);
        assert!(message.contains(expected), "{param}: {message}");
        assert!(message.contains("accepted"), "{param}: {message}");
    }

    let output = sweep(
        &workspace,
        &[
            "--param",
            "abandoned_cart.after=10m",
            "--param",
            "abandoned_cart.after=30m",
        ],
    );
    assert_eq!(code(&output), 2);
    assert!(
        stderr(&output).contains("given twice"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_grid_over_a_thousand_points_exits_2_before_replaying() {
    let workspace = workspace(2);
    let values: Vec<String> = (0..=100).map(|percent| percent.to_string()).collect();
    let holdout = format!("policy.holdout_percent={}", values.join(","));
    let rollout = format!("abandoned_cart.rollout_percent={}", values.join(","));
    let output = sweep(&workspace, &["--param", &holdout, "--param", &rollout]);
    assert_eq!(code(&output), 2);
    let message = stderr(&output);
    assert!(message.contains("101 × 101"), "{message}");
    assert!(message.contains("at most 1000"), "{message}");
}

#[test]
fn an_out_path_that_is_a_file_exits_2() {
    let workspace = workspace(2);
    let file = workspace.dir.path().join("a-file");
    std::fs::write(&file, "keep me").expect("write");
    let output = sweep(
        &workspace,
        &[
            "--param",
            "abandoned_cart.after=10m",
            "--out",
            path_str(&file),
        ],
    );
    assert_eq!(code(&output), 2);
    assert!(
        stderr(&output).contains("is not a directory"),
        "{}",
        stderr(&output)
    );
    assert_eq!(std::fs::read_to_string(&file).expect("read"), "keep me");
}
