//! The operator assets in `deploy/` (Grafana dashboard, Prometheus rules and
//! scrape config) name only metrics the README documents, and the rules
//! file holds the alerts operators rely on. The README's metrics tables are
//! the source of truth for what is exported (`nats_run.rs` and
//! `nats_collect.rs` check each is).

mod nats;

use std::collections::BTreeSet;

use serde_json::Value;

fn repo_file(path: &str) -> String {
    let full = format!("{}/../../{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

/// Every `kairos_…` metric in the README's tables (lines starting
/// "| `kairos_"), engine's and collector's.
fn documented_metrics() -> BTreeSet<String> {
    let documented: BTreeSet<String> = nats::readme_metrics("kairos_").into_iter().collect();
    assert!(
        documented.len() >= 20,
        "the README's metrics tables: {documented:?}"
    );
    documented
}

/// Every `kairos_[a-z_]+` in `text` (not part of a longer identifier), less
/// a histogram's `_bucket`, `_sum` or `_count`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let bytes = text.as_bytes();
    let mut names = BTreeSet::new();
    let mut from = 0;
    while let Some(at) = text[from..].find("kairos_") {
        let start = from + at;
        let mut end = start + "kairos_".len();
        while end < bytes.len() && (bytes[end].is_ascii_lowercase() || bytes[end] == b'_') {
            end += 1;
        }
        from = end;
        let inside_word = start > 0 && {
            let before = bytes[start - 1];
            before.is_ascii_alphanumeric() || before == b'_'
        };
        let name = text[start..end].trim_end_matches('_');
        if inside_word || name == "kairos" {
            continue;
        }
        let name = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name);
        names.insert(name.to_string());
    }
    names
}

fn dashboard() -> Value {
    serde_json::from_str(&repo_file("deploy/grafana/kairos.json"))
        .expect("deploy/grafana/kairos.json is JSON")
}

/// Every panel, those inside collapsed rows included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        all.push(panel);
        if let Some(inner) = panel["panels"].as_array() {
            all.extend(inner);
        }
    }
    all
}

/// The PromQL of every panel's queries.
fn dashboard_exprs(dashboard: &Value) -> Vec<String> {
    panels(dashboard)
        .into_iter()
        .filter_map(|panel| panel["targets"].as_array())
        .flatten()
        .map(|target| {
            target["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("a target without expr: {target}"))
                .to_string()
        })
        .collect()
}

#[test]
fn dashboard_is_importable_and_templated() {
    let dashboard = dashboard();
    assert!(dashboard["schemaVersion"].as_u64().unwrap() >= 36);
    assert!(dashboard["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(dashboard["uid"].as_str().is_some_and(|u| !u.is_empty()));
    let inputs = dashboard["__inputs"].as_array().expect("__inputs");
    assert!(
        inputs
            .iter()
            .any(|input| input["name"] == "DS_PROMETHEUS" && input["pluginId"] == "prometheus"),
        "no DS_PROMETHEUS input: {inputs:?}"
    );
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("templating");
    let variable = |name: &str| {
        variables
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no ${name} variable"))
    };
    assert_eq!(variable("datasource")["type"], "datasource");
    assert_eq!(variable("datasource")["query"], "prometheus");
    assert_eq!(variable("instance")["type"], "query");

    let mut ids = BTreeSet::new();
    let mut titles = BTreeSet::new();
    for panel in panels(&dashboard) {
        let id = panel["id"].as_u64().expect("panel id");
        assert!(ids.insert(id), "panel id {id} twice");
        let grid = &panel["gridPos"];
        let (x, w) = (grid["x"].as_u64().unwrap(), grid["w"].as_u64().unwrap());
        assert!(x + w <= 24, "panel {id} is wider than the grid: {grid}");
        titles.insert(panel["title"].as_str().expect("title").to_string());
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "panel {id} does not use the datasource variable"
        );
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {id} has no queries");
        for target in targets {
            let expr = target["expr"].as_str().unwrap();
            assert!(
                !expr.contains("kairos_") || expr.contains("instance=~\"$instance\""),
                "panel {id} ignores $instance: {expr}"
            );
        }
    }
    for row in [
        "Throughput",
        "Latency",
        "Backlog",
        "State",
        "Collector",
        "Publish refused",
    ] {
        assert!(titles.contains(row), "no {row:?} row: {titles:?}");
    }
    let exprs = dashboard_exprs(&dashboard).join("\n");
    for quantile in ["0.5", "0.99", "0.999"] {
        for histogram in [
            "kairos_event_to_action_seconds_bucket",
            "kairos_event_time_to_action_seconds_bucket",
        ] {
            let wanted = format!("histogram_quantile({quantile}, sum by (le) (rate({histogram}");
            assert!(exprs.contains(&wanted), "no {wanted}… on the dashboard");
        }
    }
}

#[test]
fn dashboard_metrics_are_documented_and_all_shown() {
    let documented = documented_metrics();
    let dashboard = dashboard();
    let used = metric_names(&dashboard_exprs(&dashboard).join("\n"));
    // Descriptions and titles too: a name there is a promise as well.
    let everywhere = metric_names(&serde_json::to_string(&dashboard).unwrap());
    for name in &everywhere {
        assert!(
            documented.contains(name),
            "{name} is on the dashboard but not in the README's metrics tables"
        );
    }
    for name in &documented {
        assert!(
            used.contains(name),
            "{name} is in the README but on no dashboard panel"
        );
    }
}

const REQUIRED_ALERTS: [&str; 9] = [
    "KairosEngineDown",
    "KairosNotConsuming",
    "KairosConsumerLagGrowing",
    "KairosDLQRate",
    "KairosEventToActionSLO",
    "KairosTimerLateness",
    "KairosSnapshotTooOld",
    "KairosActionsRefused",
    "KairosCollectorUnavailable",
];

#[test]
fn alert_rules_name_documented_metrics_and_required_alerts() {
    let documented = documented_metrics();
    let rules = repo_file("deploy/prometheus/kairos-alerts.yml");
    let used = metric_names(&rules);
    assert!(used.len() >= 8, "metrics in the rules: {used:?}");
    for name in &used {
        assert!(
            documented.contains(name),
            "{name} is in kairos-alerts.yml but not in the README's metrics tables"
        );
    }

    // One block per `- alert:`; each with `for:`, a severity, a summary and
    // a description.
    let mut blocks: Vec<(String, String)> = Vec::new();
    for line in rules.lines() {
        if let Some(name) = line.trim_start().strip_prefix("- alert:") {
            blocks.push((name.trim().to_string(), String::new()));
        } else if line.trim_start().starts_with("- name:") {
            blocks.push((String::new(), String::new()));
        } else if let Some((_, body)) = blocks.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    blocks.retain(|(name, _)| !name.is_empty());
    let names: Vec<&str> = blocks.iter().map(|(name, _)| name.as_str()).collect();
    for required in REQUIRED_ALERTS {
        assert!(
            names.contains(&required),
            "no alert {required} in kairos-alerts.yml: {names:?}"
        );
    }
    let mut seen = BTreeSet::new();
    for (name, body) in &blocks {
        assert!(seen.insert(name), "alert {name} twice");
        for key in ["expr:", "for:", "severity:", "summary:", "description:"] {
            assert!(
                body.lines().any(|line| line.trim_start().starts_with(key)),
                "alert {name} has no {key}\n{body}"
            );
        }
        let severity = body
            .lines()
            .find_map(|line| line.trim_start().strip_prefix("severity:"))
            .unwrap()
            .trim();
        assert!(
            ["critical", "warning", "info"].contains(&severity),
            "alert {name}: severity {severity}"
        );
    }

    for (alert, needle) in [
        ("KairosEngineDown", "up{job=\"kairos\"} == 0"),
        (
            "KairosConsumerLagGrowing",
            "deriv(kairos_consumer_pending[5m]) > 0",
        ),
        ("KairosDLQRate", "rate(kairos_dlq_total[5m])"),
        (
            "KairosEventToActionSLO",
            "kairos_event_to_action_seconds_bucket",
        ),
        (
            "KairosTimerLateness",
            "kairos_event_time_to_action_seconds_bucket",
        ),
        ("KairosSnapshotTooOld", "kairos_snapshot_age_seconds > 300"),
        ("KairosActionsRefused", "kairos_publish_refused_total"),
        ("KairosCollectorUnavailable", "reason=\"unavailable\""),
    ] {
        let (_, body) = blocks.iter().find(|(name, _)| name == alert).unwrap();
        assert!(
            body.contains(needle),
            "alert {alert} lacks {needle}:\n{body}"
        );
    }
}

#[test]
fn scrape_config_scrapes_both_admin_ports_and_loads_the_rules() {
    let config = repo_file("deploy/prometheus/prometheus.yml");
    for needle in [
        "job_name: kairos\n",
        "job_name: kairos-collect\n",
        "127.0.0.1:9464",
        "127.0.0.1:9465",
        "- kairos-alerts.yml",
    ] {
        assert!(
            config.contains(needle),
            "prometheus.yml lacks {needle:?}:\n{config}"
        );
    }
}

#[test]
fn metric_names_are_extracted_whole() {
    let names = metric_names(
        "rate(kairos_x_seconds_bucket{le=\"1\"}[1m]) KAIROS_DLQ kairos.dlq my_kairos_y kairos_z_count kairos_",
    );
    let expected: BTreeSet<String> = ["kairos_x_seconds", "kairos_z"].map(String::from).into();
    assert_eq!(names, expected);
}
