//! Golden tests: one scenario per trigger of `pipelines/retail.toml`.
//!
//! Each directory `pipelines/golden/<name>/` holds
//! - `events.jsonl`: Segment calls in event-time order (distinct timestamps,
//!   so that arrival order never breaks a tie);
//! - `until` (optional): an RFC 3339 time, as for `kairos backtest --until`;
//! - `expected.jsonl`: every decision (sent and suppressed), exactly what
//!   `kairos backtest --pipeline pipelines/retail.toml --events events.jsonl
//!   --all-decisions --out - [--until $(cat until)]` writes;
//! - `KNOWN_BUG` (optional): the directory shows an engine bug. Its
//!   `expected.jsonl` is written by hand and says what *should* come out; the
//!   comparison is skipped (and reported) until the bug is fixed and the file
//!   removed.
//!
//! The directory named after a trigger id is that trigger's scenario; every
//! trigger must have one. Other directories (`<trigger>.<case>`) are extra
//! cases.
//!
//! `KAIROS_BLESS=1 cargo test -p kairos --test golden` rewrites the expected
//! files (except `KNOWN_BUG` ones) from the engine's current output; read
//! every changed decision before committing it.

use kairos_engine::config::Pipeline;
use kairos_engine::{Engine, Packing};
use kairos_model::{Event, Span, Timestamp};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn pipelines_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines")
}

fn retail() -> Pipeline {
    let path = pipelines_dir().join("retail.toml");
    kairos_pipeline::load(&path, &[]).unwrap_or_else(|errors| {
        panic!(
            "{} does not compile:\n{}",
            path.display(),
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

/// One golden directory, read and parsed.
struct Case {
    name: String,
    dir: PathBuf,
    events: Vec<Event>,
    until: Option<Timestamp>,
    known_bug: Option<String>,
}

fn cases() -> Vec<Case> {
    let root = pipelines_dir().join("golden");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", root.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.is_dir())
        .collect();
    dirs.sort();
    assert!(
        !dirs.is_empty(),
        "no golden directories in {}",
        root.display()
    );
    dirs.into_iter().map(|dir| read_case(&dir)).collect()
}

fn read_case(dir: &Path) -> Case {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .expect("utf-8 directory name")
        .to_string();
    let events_path = dir.join("events.jsonl");
    let text = std::fs::read_to_string(&events_path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", events_path.display()));
    let events: Vec<Event> = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            Event::from_json(line.as_bytes()).unwrap_or_else(|e| {
                panic!(
                    "{}:{}: invalid event: {e}",
                    events_path.display(),
                    index + 1
                )
            })
        })
        .collect();
    let until = std::fs::read_to_string(dir.join("until")).ok().map(|text| {
        Timestamp::parse_rfc3339(text.trim())
            .unwrap_or_else(|e| panic!("{}/until: {text:?} is not RFC 3339: {e}", dir.display()))
    });
    let known_bug = std::fs::read_to_string(dir.join("KNOWN_BUG")).ok();
    Case {
        name,
        dir: dir.to_path_buf(),
        events,
        until,
        known_bug,
    }
}

/// Output of a replay: the action lines, how many events arrived late, and
/// how often idle customers were packed and unpacked.
struct Replay {
    lines: Vec<String>,
    late: u64,
    packing: Packing,
}

/// The backtest loop of `kairos backtest --all-decisions`: every event in
/// the given arrival order, decisions drained after each, then the clock
/// runs to `until` (the end of time without it).
fn replay<'a>(
    pipeline: &Pipeline,
    events: impl IntoIterator<Item = &'a Event>,
    until: Option<Timestamp>,
) -> Replay {
    let until = until.unwrap_or(Timestamp::MAX);
    let mut engine = Engine::new(pipeline.clone());
    let mut lines = Vec::new();
    let name = pipeline.name.clone();
    let mut drain = |engine: &mut Engine| {
        while let Some(decision) = engine.poll_decision() {
            lines.push(
                serde_json::to_string(&decision.to_action(&name)).expect("actions serialise"),
            );
        }
    };
    for event in events {
        if event.time >= until {
            continue;
        }
        engine.handle_event(event.clone());
        drain(&mut engine);
    }
    engine.advance_to(until);
    drain(&mut engine);
    Replay {
        lines,
        late: engine.stats().late,
        packing: engine.packing(),
    }
}

fn read_expected(case: &Case) -> Vec<String> {
    let path = case.dir.join("expected.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}\n(run with KAIROS_BLESS=1 to create it, then check every line)",
            path.display()
        )
    });
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// "user trigger#step channel fired_at suppressed": one decision at a glance.
fn brief(line: &str) -> String {
    let Ok(action) = serde_json::from_str::<serde_json::Value>(line) else {
        return format!("(not JSON) {line}");
    };
    let data = &action["data"];
    let text = |value: &serde_json::Value| match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "sent".to_string(),
        other => other.to_string(),
    };
    format!(
        "{} {}#{} {} fired {} decided {} {}",
        text(&data["user_id"]),
        text(&data["trigger"]),
        text(&data["step"]),
        text(&data["channel"]),
        text(&data["fired_at"]),
        text(&data["decided_at"]),
        text(&data["suppressed"]),
    )
}

/// A line diff (longest common subsequence; the files are small), with
/// one-line summaries and then the full text of the changed lines.
fn diff(expected: &[String], actual: &[String]) -> String {
    let (n, m) = (expected.len(), actual.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if expected[i] == actual[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut summary = String::new();
    let mut details = String::new();
    while i < n || j < m {
        if i < n && j < m && expected[i] == actual[j] {
            let _ = writeln!(summary, "    {}", brief(&expected[i]));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            let _ = writeln!(summary, "  + {}", brief(&actual[j]));
            let _ = writeln!(details, "+ actual line {}: {}", j + 1, actual[j]);
            j += 1;
        } else {
            let _ = writeln!(summary, "  - {}", brief(&expected[i]));
            let _ = writeln!(details, "- expected line {}: {}", i + 1, expected[i]);
            i += 1;
        }
    }
    format!("{summary}\n{details}")
}

fn blessing() -> bool {
    std::env::var_os("KAIROS_BLESS").is_some_and(|v| v != "0" && !v.is_empty())
}

#[test]
fn every_golden_scenario_gives_its_expected_decisions() {
    let pipeline = retail();
    let mut failures = Vec::new();
    for case in cases() {
        let actual = replay(&pipeline, &case.events, case.until).lines;
        let expected_path = case.dir.join("expected.jsonl");
        if let Some(bug) = &case.known_bug {
            let still = if expected_path.exists() && read_expected(&case) == actual {
                "now matches: remove KNOWN_BUG"
            } else {
                "still differs"
            };
            eprintln!(
                "golden/{}: skipped, KNOWN_BUG ({still}): {}",
                case.name,
                bug.lines().next().unwrap_or_default()
            );
            continue;
        }
        if blessing() {
            let mut text = actual.join("\n");
            if !text.is_empty() {
                text.push('\n');
            }
            std::fs::write(&expected_path, text)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", expected_path.display()));
            eprintln!("golden/{}: blessed {} decisions", case.name, actual.len());
            continue;
        }
        let expected = read_expected(&case);
        if expected != actual {
            failures.push(format!(
                "golden/{} differs ({} expected, {} actual decisions; - expected, + actual):\n{}",
                case.name,
                expected.len(),
                actual.len(),
                diff(&expected, &actual)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\nIf the change is intended, rerun with KAIROS_BLESS=1 and review every changed decision.",
        failures.join("\n")
    );
}

#[test]
fn every_trigger_in_the_retail_pipeline_has_a_golden_scenario() {
    let root = pipelines_dir().join("golden");
    let missing: Vec<String> = retail()
        .triggers
        .iter()
        .map(|trigger| trigger.id.to_string())
        .filter(|id| {
            let dir = root.join(&**id);
            !(dir.join("events.jsonl").is_file() && dir.join("expected.jsonl").is_file())
        })
        .collect();
    assert!(
        missing.is_empty(),
        "triggers without pipelines/golden/<id>/{{events,expected}}.jsonl: {missing:?}"
    );
}

#[test]
fn golden_events_are_in_time_order_with_distinct_timestamps() {
    for case in cases() {
        for pair in case.events.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            assert!(
                a.time < b.time || (a.time == b.time && a.message_id == b.message_id),
                "golden/{}: {} ({}) then {} ({}): events must be in strictly increasing \
                 time order (a tie would be broken by arrival order, which the lateness \
                 test perturbs)",
                case.name,
                a.message_id,
                a.time,
                b.message_id,
                b.time
            );
        }
    }
}

/// SplitMix64: a deterministic jitter without a random-number crate.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[test]
fn arrival_within_the_allowed_lateness_changes_nothing() {
    let pipeline = retail();
    let lateness = pipeline.settings.allowed_lateness.millis();
    // Each event arrives up to 4 s after its event time: displaced by less
    // than the 5 s allowed lateness, so never late.
    let max_jitter = 4_000.min(lateness - 1);
    let mut reordered = 0usize;
    for case in cases() {
        let in_order = replay(&pipeline, &case.events, case.until);
        assert_eq!(in_order.late, 0, "golden/{}: late events", case.name);
        for seed in 0..8u64 {
            let mut arrival: Vec<(i64, usize)> = case
                .events
                .iter()
                .enumerate()
                .map(|(index, event)| {
                    let jitter = mix(seed << 32 | index as u64) % (max_jitter as u64 + 1);
                    (event.time.millis() + jitter as i64, index)
                })
                .collect();
            arrival.sort_unstable();
            reordered += arrival
                .windows(2)
                .filter(|pair| pair[0].1 > pair[1].1)
                .count();
            let shuffled = replay(
                &pipeline,
                arrival.iter().map(|&(_, index)| &case.events[index]),
                case.until,
            );
            assert_eq!(
                shuffled.late, 0,
                "golden/{} seed {seed}: an event arrived late",
                case.name
            );
            assert!(
                shuffled.lines == in_order.lines,
                "golden/{} seed {seed}: arrival order changed the output (- in order, + shuffled):\n{}",
                case.name,
                diff(&in_order.lines, &shuffled.lines)
            );
        }
    }
    // Fixtures put some events a few seconds apart, so that the jitter
    // really changes the arrival order.
    assert!(
        reordered >= 100,
        "only {reordered} events arrived out of order: the test shuffles too little"
    );
}

#[test]
fn packing_idle_customers_changes_nothing() {
    let pipeline = retail();
    let (mut packed, mut unpacked) = (0, 0);
    // From packing a customer the moment it goes quiet to the default.
    for idle_after in [Span(1), Span::seconds(1), Span::seconds(600), Span::HOUR] {
        let mut packing = pipeline.clone();
        packing.settings.pack_idle_after = idle_after;
        for case in cases() {
            let expected = replay(&pipeline, &case.events, case.until);
            let actual = replay(&packing, &case.events, case.until);
            assert!(
                actual.lines == expected.lines,
                "golden/{}, packed after {idle_after}: packing changed the output (- never packed, + packed):\n{}",
                case.name,
                diff(&expected.lines, &actual.lines)
            );
            packed += actual.packing.packed;
            unpacked += actual.packing.unpacked;
        }
    }
    // Customers really were packed, and came back for events and timers.
    assert!(
        packed >= 100 && unpacked >= 100,
        "packed {packed} times, unpacked {unpacked}: the test packs too little"
    );
}
