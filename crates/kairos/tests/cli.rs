//! The `kairos` command line, run as a real process: exit codes, error
//! messages, input forms (file, stdin, gzip), overrides, `--until`, the
//! summary JSON and the action contract of product.md.

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn retail() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines/retail.toml")
}

/// Runs `kairos` with `args`, feeding `stdin` (empty when `None`).
fn kairos(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kairos"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kairos starts");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(bytes) = stdin {
        // A process that exits early (bad flags) never reads its input.
        let _ = input.write_all(bytes);
    }
    drop(input);
    child.wait_with_output().expect("kairos finishes")
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("exited, not killed")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The action lines on stdout, parsed.
fn actions(output: &Output) -> Vec<Value> {
    String::from_utf8(output.stdout.clone())
        .expect("utf-8 stdout")
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

/// (user, trigger, step, fired_at, suppressed) of each action.
fn brief(actions: &[Value]) -> Vec<(String, String, u64, String, Option<String>)> {
    actions
        .iter()
        .map(|action| {
            let data = &action["data"];
            (
                data["user_id"].as_str().unwrap_or_default().to_string(),
                data["trigger"].as_str().unwrap_or_default().to_string(),
                data["step"].as_u64().unwrap_or_default(),
                data["fired_at"].as_str().unwrap_or_default().to_string(),
                data["suppressed"].as_str().map(str::to_string),
            )
        })
        .collect()
}

/// A consenting customer `u1` abandons cart c1 at 10:00; `u2`, who never
/// consented, abandons c2 at 10:01.
const CARTS: &str = r#"{"type":"identify","userId":"u1","messageId":"m1","timestamp":"2026-11-23T09:00:00Z","traits":{"consent":{"push":true,"email":true}}}
{"type":"track","event":"Product Added","userId":"u1","messageId":"m2","timestamp":"2026-11-23T10:00:00Z","properties":{"cart_id":"c1","product_id":"p9","price":12.5}}
{"type":"track","event":"Product Added","userId":"u2","messageId":"m3","timestamp":"2026-11-23T10:01:00Z","properties":{"cart_id":"c2","product_id":"p1","price":30}}
"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write temp file");
    path
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// `kairos backtest` on the retail pipeline with `--out -` and `extra` flags.
fn backtest(events: &str, extra: &[&str], stdin: Option<&[u8]>) -> Output {
    let pipeline = retail();
    let mut args = vec![
        "backtest",
        "--pipeline",
        path_str(&pipeline),
        "--events",
        events,
        "--out",
        "-",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    kairos(&args, stdin)
}

/// Asserts that `text` is in the command's stderr, showing stderr if not.
#[track_caller]
fn assert_stderr_has(output: &Output, text: &str) {
    let stderr = stderr(output);
    assert!(stderr.contains(text), "{stderr}");
}

fn succeeded(output: &Output) {
    assert_eq!(code(output), 0, "stderr:\n{}", stderr(output));
}

// ----- validate ---------------------------------------------------------------

#[test]
fn validate_accepts_the_retail_pipeline() {
    let output = kairos(&["validate", path_str(&retail())], None);
    succeeded(&output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("ok"), "{stdout}");
    assert!(stdout.contains("20 triggers"), "{stdout}");
}

#[test]
fn validate_counts_a_lone_trigger_in_the_singular() {
    let lone = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../benches/never-matches.toml");
    let output = kairos(&["validate", path_str(&lone)], None);
    succeeded(&output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.ends_with("with 1 trigger\n"), "{stdout}");
}

/// `FILE:LINE:COL: field: problem; accepted: what is`, parsed.
fn diagnostic(line: &str, file: &str) -> Option<(u32, u32, String)> {
    let rest = line.strip_prefix(file)?.strip_prefix(':')?;
    let (line_number, rest) = rest.split_once(':')?;
    let (column, rest) = rest.split_once(": ")?;
    let (field, rest) = rest.split_once(": ")?;
    let (problem, accepted) = rest.split_once("; accepted: ")?;
    (!field.is_empty()
        && !field.contains(' ')
        && !problem.trim().is_empty()
        && !accepted.trim().is_empty())
    .then_some(())?;
    Some((
        line_number.parse().ok()?,
        column.parse().ok()?,
        field.to_string(),
    ))
}

#[test]
fn validate_reports_every_mistake_with_its_place_and_what_is_accepted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broken = write(
        dir.path(),
        "broken.toml",
        r#"name = "broken"

[policy]
holdout_percent = 150

[[trigger]]
id = "cart"
kind = "absense"
start = "Product Added"
channel = "push"

[[trigger]]
id = "welcome"
kind = "count"
event = "Signed Up"
window = { tumbling = "soon" }
channel = "email"
"#,
    );
    let output = kairos(&["validate", path_str(&broken)], None);
    assert_eq!(code(&output), 2, "stderr:\n{}", stderr(&output));
    let text = stderr(&output);
    let found: Vec<(u32, u32, String)> = text
        .lines()
        .filter_map(|line| diagnostic(line, path_str(&broken)))
        .collect();
    assert_eq!(
        found.len(),
        3,
        "three FILE:LINE:COL diagnostics in:\n{text}"
    );
    let places: Vec<(u32, &str)> = found
        .iter()
        .map(|(line, _, field)| (*line, field.as_str()))
        .collect();
    assert_eq!(
        places,
        [
            (4, "policy.holdout_percent"),
            (8, "trigger.cart.kind"),
            (16, "trigger.welcome.window.tumbling"),
        ],
        "{text}"
    );
    assert!(found.iter().all(|(_, column, _)| *column > 1), "{text}");
    assert!(
        text.contains("absence"),
        "the accepted kinds are listed:\n{text}"
    );
}

#[test]
fn validate_writes_only_diagnostics_on_stderr_and_the_count_on_stdout() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broken = write(dir.path(), "broken.toml", "name = 1\nnmae = \"x\"\n");
    let output = kairos(&["validate", path_str(&broken)], None);
    assert_eq!(code(&output), 2, "stderr:\n{}", stderr(&output));
    let text = stderr(&output);
    assert_eq!(text.lines().count(), 2, "{text}");
    for line in text.lines() {
        assert!(
            diagnostic(line, path_str(&broken)).is_some(),
            "not FILE:LINE:COL: field: problem; accepted: ...: {line}"
        );
    }
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("{}: 2 errors found\n", path_str(&broken))
    );
}

#[test]
fn a_pipeline_file_over_16_mib_exits_2_unread() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut text = String::from("name = \"huge\"\n");
    text.push_str(&"# padding\n".repeat((16 << 20) / 10 + 1));
    let huge = write(dir.path(), "huge.toml", &text);
    let mut pipelines = vec![path_str(&huge).to_string()];
    if cfg!(unix) {
        // Without end: read up to the limit only.
        pipelines.push("/dev/zero".to_string());
    }
    for pipeline in &pipelines {
        let output = kairos(&["validate", pipeline], None);
        assert_eq!(code(&output), 2, "{}", stderr(&output));
        assert_stderr_has(&output, &format!(
                "{pipeline}:1:1: file: the file is larger than 16 MiB; accepted: a readable UTF-8 TOML file of at most 16 MiB"
            ));
        let output = kairos(
            &["backtest", "--pipeline", pipeline, "--events", "-"],
            Some(CARTS.as_bytes()),
        );
        assert_eq!(code(&output), 2, "{}", stderr(&output));
        assert_stderr_has(&output, "larger than 16 MiB");
    }
}

#[test]
fn validate_of_a_missing_file_exits_2() {
    let output = kairos(&["validate", "/nonexistent/kairos/pipeline.toml"], None);
    assert_eq!(code(&output), 2);
    assert_stderr_has(&output, "/nonexistent/kairos/pipeline.toml:1:1:");
}

// ----- backtest input ---------------------------------------------------------

#[test]
fn bad_lines_are_named_and_skipped_and_good_lines_still_act() {
    let dir = tempfile::tempdir().expect("temp dir");
    let events = write(
        dir.path(),
        "events.jsonl",
        r#"{"type":"identify","userId":"u1","messageId":"m1","timestamp":"2026-11-23T09:00:00Z","traits":{"consent":{"push":true}}}
this is not json
{"type":"track","event":"Product Added","messageId":"m2","timestamp":"2026-11-23T09:30:00Z","properties":{"cart_id":"c9"}}
{"type":"track","event":"Product Added","userId":"u1","messageId":"m3","timestamp":"2026-11-23T10:00:00Z","properties":{"cart_id":"c1","product_id":"p9","price":12.5}}
"#,
    );
    let output = backtest(
        path_str(&events),
        &["--until", "2026-11-23T11:00:00Z"],
        None,
    );
    succeeded(&output);
    let text = stderr(&output);
    let name = path_str(&events);
    let line_2 = format!("{name}:2: skipped:");
    let line_3 = format!("{name}:3: skipped:");
    assert!(text.contains(&line_2), "line 2 named in:\n{text}");
    assert!(text.contains(&line_3), "line 3 named in:\n{text}");
    assert!(text.contains("userId"), "says what is missing:\n{text}");
    assert!(!text.contains(&format!("{name}:1:")), "{text}");
    assert!(!text.contains(&format!("{name}:4:")), "{text}");
    assert_eq!(
        brief(&actions(&output)),
        [(
            "u1".to_string(),
            "abandoned_cart".to_string(),
            1,
            "2026-11-23T10:30:00.000Z".to_string(),
            None
        )]
    );
}

#[test]
fn a_line_that_is_a_json_array_is_skipped_not_read_as_a_call() {
    // The fields of a Segment call in the decoder's declaration order: serde
    // reads a struct from such an array unless told not to.
    let array = r#"["track","Product Added","u1",null,null,"mx","2026-11-23T10:05:00Z",null,null,null,{"cart_id":"c9","product_id":"p1","price":5},null,null,null,null]"#;
    let events = format!("{CARTS}{array}\n");
    let output = backtest(
        "-",
        &["--until", "2026-11-23T12:00:00Z"],
        Some(events.as_bytes()),
    );
    succeeded(&output);
    let text = stderr(&output);
    assert!(text.contains("-:4: skipped: "), "line 4 named in:\n{text}");
    assert!(text.contains("array"), "says what it is:\n{text}");
    let carts: Vec<String> = actions(&output)
        .iter()
        .map(|action| action["data"]["payload"]["cart_id"].to_string())
        .collect();
    assert_eq!(carts, ["\"c1\""], "only u1's own cart:\n{text}");
}

#[test]
fn a_byte_order_mark_does_not_cost_the_first_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let plain = write(dir.path(), "events.jsonl", CARTS);
    let marked = write(dir.path(), "marked.jsonl", &format!("\u{feff}{CARTS}"));
    let until = ["--until", "2026-11-23T12:00:00Z", "--all-decisions"];
    let from_marked = backtest(path_str(&marked), &until, None);
    succeeded(&from_marked);
    assert!(
        !stderr(&from_marked).contains("skipped"),
        "{}",
        stderr(&from_marked)
    );
    assert_eq!(
        from_marked.stdout,
        backtest(path_str(&plain), &until, None).stdout
    );
}

#[test]
fn a_missing_type_or_a_field_of_the_wrong_type_is_named_and_skipped() {
    let lines = [
        r#"{"event":"Product Added","userId":"u9","timestamp":"2026-11-23T10:00:00Z"}"#,
        r#"{"type":"track","event":"Product Added","userId":"u9","messageId":5,"timestamp":"2026-11-23T10:00:00Z"}"#,
        r#"{"type":"track","event":"Product Added","userId":true,"timestamp":"2026-11-23T10:00:00Z"}"#,
        r#"{"type":"track","event":"Product Added","userId":"u9","timestamp":"2026-11-23T10:00:00Z","properties":"x"}"#,
    ];
    let dir = tempfile::tempdir().expect("temp dir");
    let rejected = dir.path().join("rejected.jsonl");
    let events = format!("{}\n{CARTS}", lines.join("\n"));
    let output = backtest(
        "-",
        &[
            "--until",
            "2026-11-23T12:00:00Z",
            "--rejected",
            path_str(&rejected),
        ],
        Some(events.as_bytes()),
    );
    succeeded(&output);
    let text = stderr(&output);
    for expected in [
        "-:1: skipped: call without \"type\"; accepted: a type, one of track, identify, page, screen, group, alias",
        "-:2: skipped: messageId: integer 5; accepted: a string",
        "-:3: skipped: userId: boolean true; accepted: a string or a number",
        "-:4: skipped: properties: string \"x\"; accepted: a JSON object",
    ] {
        assert!(text.contains(expected), "{expected}\nnot in:\n{text}");
    }
    assert!(!text.contains("type \"\""), "{text}");
    assert!(!text.contains("not a JSON object"), "{text}");
    let reasons: Vec<String> = std::fs::read_to_string(&rejected)
        .expect("rejected file")
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("JSON")["reason"].to_string())
        .collect();
    assert_eq!(
        reasons,
        [
            "\"unknown_type\"",
            "\"wrong_type\"",
            "\"wrong_type\"",
            "\"wrong_type\""
        ]
    );
    assert_eq!(actions(&output).len(), 1, "the good lines still act");
}

#[test]
fn a_crlf_line_of_exactly_the_largest_call_is_read() {
    let head = r#"{"type":"track","event":"Product Added","userId":"u1","messageId":"big","timestamp":"2026-11-23T10:00:00Z","properties":{"cart_id":"c1","product_id":"p9","price":12.5,"pad":""#;
    let tail = r#""}}"#;
    let largest = format!(
        "{head}{}{tail}",
        "x".repeat(1_048_576 - head.len() - tail.len())
    );
    assert_eq!(largest.len(), 1_048_576, "Event::MAX_BYTES");
    let identify = CARTS.lines().next().expect("a line");
    let events = format!("{identify}\r\n{largest}\r\n{largest}x\r\n");
    let output = backtest(
        "-",
        &["--until", "2026-11-23T12:00:00Z"],
        Some(events.as_bytes()),
    );
    succeeded(&output);
    let text = stderr(&output);
    assert!(!text.contains("-:2:"), "line 2 read:\n{text}");
    assert!(
        text.contains("-:3: skipped: message is 1048577 bytes; accepted: at most 1048576 bytes"),
        "one byte more is too large:\n{text}"
    );
    assert_eq!(actions(&output).len(), 1, "{text}");
}

#[test]
fn events_can_come_from_stdin() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = write(dir.path(), "events.jsonl", CARTS);
    let until = ["--until", "2026-11-23T12:00:00Z", "--all-decisions"];
    let from_file = backtest(path_str(&file), &until, None);
    let from_stdin = backtest("-", &until, Some(CARTS.as_bytes()));
    succeeded(&from_file);
    succeeded(&from_stdin);
    assert_eq!(actions(&from_stdin).len(), 2);
    assert_eq!(from_stdin.stdout, from_file.stdout);
}

#[test]
fn gzip_files_are_decompressed() {
    use flate2::{write::GzEncoder, Compression};
    let dir = tempfile::tempdir().expect("temp dir");
    let plain = write(dir.path(), "events.jsonl", CARTS);
    let gz = dir.path().join("events.jsonl.gz");
    let mut encoder = GzEncoder::new(
        std::fs::File::create(&gz).expect("create .gz"),
        Compression::default(),
    );
    encoder.write_all(CARTS.as_bytes()).expect("compress");
    encoder.finish().expect("finish .gz");
    let until = ["--until", "2026-11-23T12:00:00Z", "--all-decisions"];
    let from_gz = backtest(path_str(&gz), &until, None);
    let from_plain = backtest(path_str(&plain), &until, None);
    succeeded(&from_gz);
    assert_eq!(actions(&from_gz).len(), 2);
    assert_eq!(from_gz.stdout, from_plain.stdout);
    // Recognised by content: piped to stdin, or under any name.
    let compressed = std::fs::read(&gz).expect("read .gz");
    let from_stdin = backtest("-", &until, Some(&compressed));
    succeeded(&from_stdin);
    assert_eq!(from_stdin.stdout, from_plain.stdout);
    let unnamed = dir.path().join("events.bin");
    std::fs::write(&unnamed, &compressed).expect("write");
    assert_eq!(
        backtest(path_str(&unnamed), &until, None).stdout,
        from_plain.stdout
    );
}

#[test]
fn zero_padding_after_the_last_gzip_member_is_ignored_as_gzip_does() {
    use flate2::{write::GzEncoder, Compression};
    let dir = tempfile::tempdir().expect("temp dir");
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(CARTS.as_bytes()).expect("compress");
    let mut padded = encoder.finish().expect("finish .gz");
    padded.extend([0; 4096]);
    let path = dir.path().join("padded.jsonl.gz");
    std::fs::write(&path, &padded).expect("write .gz");
    let until = ["--until", "2026-11-23T12:00:00Z", "--all-decisions"];
    let output = backtest(path_str(&path), &until, None);
    succeeded(&output);
    let plain = write(dir.path(), "carts.jsonl", CARTS);
    assert_eq!(
        output.stdout,
        backtest(path_str(&plain), &until, None).stdout
    );
    // Anything else after the last member is still damage: exit 1.
    padded.extend_from_slice(b"junk");
    std::fs::write(&path, &padded).expect("write .gz");
    let output = backtest(path_str(&path), &until, None);
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    assert_stderr_has(&output, "neither another member nor zero padding");
}

#[test]
fn a_file_compressed_other_than_by_gzip_exits_2_and_says_what_it_is() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("actions.jsonl");
    // Magic numbers followed by bytes that are no text.
    for (name, magic, format) in [
        (
            "events.jsonl.zst",
            &b"\x28\xb5\x2f\xfd"[..],
            "zstd-compressed",
        ),
        ("events.jsonl.xz", b"\xfd7zXZ\x00", "xz-compressed"),
        ("events.jsonl.bz2", b"BZh91AY&SY", "bzip2-compressed"),
    ] {
        let mut bytes = magic.to_vec();
        bytes.extend((0..=255u8).cycle().take(4000));
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).expect("write");
        let pipeline = retail();
        let output = kairos(
            &[
                "backtest",
                "--pipeline",
                path_str(&pipeline),
                "--events",
                path_str(&path),
                "--out",
                path_str(&out),
            ],
            None,
        );
        assert_eq!(code(&output), 2, "{}", stderr(&output));
        let text = stderr(&output);
        assert!(
            text.contains(&format!("{} is {format}; accepted: ", path_str(&path))),
            "{text}"
        );
        assert!(text.contains("JSON lines"), "{text}");
        assert!(!text.contains("skipped"), "{text}");
        assert!(!out.exists(), "no output for a run that never ran");
        let output = backtest("-", &[], Some(&bytes));
        assert_eq!(code(&output), 2, "{}", stderr(&output));
        assert_stderr_has(&output, &format!("stdin is {format}"));
    }
}

#[test]
fn a_missing_events_file_or_a_directory_exits_2() {
    let dir = tempfile::tempdir().expect("temp dir");
    for events in ["/nonexistent/kairos/events.jsonl", path_str(dir.path())] {
        let output = backtest(events, &[], None);
        assert_eq!(code(&output), 2, "stderr:\n{}", stderr(&output));
        assert_stderr_has(&output, events);
        assert_stderr_has(&output, "accepted:");
    }
}

#[test]
fn outputs_that_would_overwrite_an_input_exit_2_and_leave_it_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let events = write(dir.path(), "events.jsonl", CARTS);
    let pipeline = retail();
    for (flag, target) in [
        ("--out", path_str(&events)),
        ("--summary-json", path_str(&events)),
        ("--out", path_str(&pipeline)),
    ] {
        let output = kairos(
            &[
                "backtest",
                "--pipeline",
                path_str(&pipeline),
                "--events",
                path_str(&events),
                flag,
                target,
                "--quiet",
            ],
            None,
        );
        assert_eq!(code(&output), 2, "{flag} {target}: {}", stderr(&output));
        assert_stderr_has(&output, "accepted: a different path");
    }
    // By any name: a hard link, a symlink, a path spelled differently.
    let hard = dir.path().join("hard.jsonl");
    std::fs::hard_link(&events, &hard).expect("hard link");
    let soft = dir.path().join("soft.jsonl");
    std::os::unix::fs::symlink(&events, &soft).expect("symlink");
    let spelled = dir.path().join(".").join("events.jsonl");
    for target in [&hard, &soft, &spelled] {
        let output = backtest(
            path_str(&events),
            &["--summary-json", path_str(target)],
            None,
        );
        assert_eq!(
            code(&output),
            2,
            "{}: {}",
            target.display(),
            stderr(&output)
        );
    }
    assert_eq!(std::fs::read_to_string(&events).expect("events"), CARTS);
    let output = backtest(
        path_str(&events),
        &[
            "--summary-json",
            path_str(&dir.path().join("no/such/dir/s.json")),
        ],
        None,
    );
    assert_eq!(code(&output), 2, "{}", stderr(&output));
    assert!(output.stdout.is_empty(), "fails before the run");
}

#[test]
fn two_outputs_may_not_share_a_file_but_may_share_a_device() {
    let dir = tempfile::tempdir().expect("temp dir");
    let events = write(dir.path(), "events.jsonl", CARTS);
    let pipeline = retail();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "backtest",
            "--pipeline",
            path_str(&pipeline),
            "--events",
            path_str(&events),
            "--quiet",
        ];
        args.extend_from_slice(extra);
        kairos(&args, None)
    };
    let fresh = dir.path().join("x.out");
    let fresh = path_str(&fresh);
    for pair in [
        ["--out", "--rejected"],
        ["--out", "--summary-json"],
        ["--summary-json", "--rejected"],
    ] {
        let output = run(&[pair[0], fresh, pair[1], fresh]);
        assert_eq!(code(&output), 2, "{pair:?}: {}", stderr(&output));
        assert!(!Path::new(fresh).exists(), "nothing created");
    }
    for flag in ["--summary-json", "--rejected"] {
        let output = run(&[flag, "-"]);
        assert_eq!(code(&output), 2, "{flag} -: {}", stderr(&output));
        assert_stderr_has(&output, "stdout is for --out");
    }
    let null = "/dev/null";
    succeeded(&run(&[
        "--out",
        null,
        "--summary-json",
        null,
        "--rejected",
        null,
    ]));
    let from_null = kairos(
        &[
            "backtest",
            "--pipeline",
            path_str(&pipeline),
            "--events",
            null,
            "--out",
            null,
        ],
        None,
    );
    succeeded(&from_null);
}

#[test]
fn an_input_mistake_leaves_existing_output_files_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let kept = write(dir.path(), "kept.json", "{\"old\":1}\n");
    let output = backtest(
        "/nonexistent/kairos/events.jsonl",
        &["--summary-json", path_str(&kept)],
        None,
    );
    assert_eq!(code(&output), 2, "{}", stderr(&output));
    assert_eq!(
        std::fs::read_to_string(&kept).expect("kept"),
        "{\"old\":1}\n"
    );
}

/// `/dev/full` takes the file open and refuses every write, as a disk that
/// fills up during the run would.
#[test]
fn an_output_that_stops_being_writable_fails_the_run_and_leaves_no_summary() {
    let dir = tempfile::tempdir().expect("temp dir");
    let events = write(dir.path(), "events.jsonl", CARTS);
    let summary = dir.path().join("summary.json");
    let pipeline = retail();
    let output = kairos(
        &[
            "backtest",
            "--pipeline",
            path_str(&pipeline),
            "--events",
            path_str(&events),
            "--all-decisions",
            "--out",
            "/dev/full",
            "--summary-json",
            path_str(&summary),
            "--quiet",
        ],
        None,
    );
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    assert_stderr_has(&output, "cannot write actions");
    assert!(!summary.exists(), "an empty summary file was left behind");
}

#[test]
fn an_output_path_mistake_leaves_the_other_outputs_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let kept = write(dir.path(), "kept.json", "{\"old\":1}\n");
    let fresh = dir.path().join("rejected.jsonl");
    let pipeline = retail();
    let output = kairos(
        &[
            "backtest",
            "--pipeline",
            path_str(&pipeline),
            "--events",
            "-",
            "--summary-json",
            path_str(&kept),
            "--rejected",
            path_str(&fresh),
            "--out",
            "/nonexistent/kairos/actions.jsonl",
        ],
        Some(CARTS.as_bytes()),
    );
    assert_eq!(code(&output), 2, "{}", stderr(&output));
    assert_stderr_has(&output, "--out /nonexistent/kairos/actions.jsonl");
    assert_eq!(
        std::fs::read_to_string(&kept).expect("kept"),
        "{\"old\":1}\n"
    );
    assert!(
        !fresh.exists(),
        "no file left behind by a run that never ran"
    );
}

#[test]
fn a_truncated_gzip_file_still_replays_what_precedes_the_damage() {
    use flate2::{write::GzEncoder, Compression};
    let dir = tempfile::tempdir().expect("temp dir");
    // Enough lines that the damage falls well after the first ones, and
    // fewer than one batch of the parsing thread, so what precedes the
    // damage was never sent on before it.
    let mut text = String::from(CARTS);
    for n in 0..3_000 {
        text.push_str(&format!(
            "{{\"type\":\"page\",\"userId\":\"p{n}\",\"messageId\":\"pg{n}\",\"timestamp\":\"2026-11-23T10:02:00Z\"}}\n"
        ));
    }
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(text.as_bytes()).expect("compress");
    let whole = encoder.finish().expect("finish .gz");
    let truncated = dir.path().join("events.jsonl.gz");
    std::fs::write(&truncated, &whole[..whole.len() / 2]).expect("write .gz");
    let until = ["--until", "2026-11-23T12:00:00Z", "--all-decisions"];
    let output = backtest(path_str(&truncated), &until, None);
    assert_eq!(code(&output), 1, "cut short: {}", stderr(&output));
    assert_stderr_has(&output, "past line ");
    // The two carts come first, so both decisions are still made.
    let plain = write(dir.path(), "carts.jsonl", CARTS);
    assert_eq!(
        brief(&actions(&output)),
        brief(&actions(&backtest(path_str(&plain), &until, None)))
    );
}

// ----- overrides and the clock ------------------------------------------------

#[test]
fn set_overrides_a_trigger_parameter() {
    let until = ["--until", "2026-11-23T12:00:00Z"];
    let default = backtest("-", &until, Some(CARTS.as_bytes()));
    let mut with_set = until.to_vec();
    with_set.extend(["--set", "abandoned_cart.after=10m"]);
    let shorter = backtest("-", &with_set, Some(CARTS.as_bytes()));
    succeeded(&default);
    succeeded(&shorter);
    let fired = |output: &Output| -> Vec<String> {
        brief(&actions(output))
            .into_iter()
            .map(|(_, _, _, fired_at, _)| fired_at)
            .collect()
    };
    assert_eq!(fired(&default), ["2026-11-23T10:30:00.000Z"]);
    assert_eq!(fired(&shorter), ["2026-11-23T10:10:00.000Z"]);
}

#[test]
fn an_invalid_set_value_exits_2_and_says_what_is_accepted() {
    let output = backtest(
        "-",
        &["--set", "abandoned_cart.after=soon"],
        Some(CARTS.as_bytes()),
    );
    assert_eq!(code(&output), 2);
    let text = stderr(&output);
    assert!(text.contains("abandoned_cart.after"), "{text}");
    assert!(text.contains("soon"), "{text}");
    assert!(text.contains("accepted:"), "{text}");
    assert!(output.stdout.is_empty(), "no actions from an invalid run");
}

#[test]
fn a_malformed_set_flag_exits_2() {
    let output = backtest("-", &["--set", "no-equals-sign"], Some(CARTS.as_bytes()));
    assert_eq!(code(&output), 2, "stderr:\n{}", stderr(&output));
}

#[test]
fn until_stops_the_clock_before_later_deadlines() {
    // The cart reminders are due at 10:30 and 10:31.
    let before = backtest(
        "-",
        &["--until", "2026-11-23T10:20:00Z", "--all-decisions"],
        Some(CARTS.as_bytes()),
    );
    succeeded(&before);
    assert!(actions(&before).is_empty(), "nothing is due before 10:20");
    let between = backtest(
        "-",
        &["--until", "2026-11-23T10:30:30Z", "--all-decisions"],
        Some(CARTS.as_bytes()),
    );
    succeeded(&between);
    assert_eq!(
        brief(&actions(&between)),
        [(
            "u1".to_string(),
            "abandoned_cart".to_string(),
            1,
            "2026-11-23T10:30:00.000Z".to_string(),
            None
        )],
        "u2's deadline (10:31) is after --until"
    );
    // Events at or after --until are not replayed, and the run says so.
    let early = backtest(
        "-",
        &["--until", "2026-11-23T10:00:30Z"],
        Some(CARTS.as_bytes()),
    );
    succeeded(&early);
    assert!(actions(&early).is_empty());
    assert_stderr_has(&early, "1 events at or after --until");
}

#[test]
fn an_invalid_until_exits_2() {
    let output = backtest("-", &["--until", "tomorrow"], Some(CARTS.as_bytes()));
    assert_eq!(code(&output), 2);
    assert_stderr_has(&output, "RFC 3339");
}

#[test]
fn without_until_every_pending_timer_fires() {
    // No order, so no schedule recurs forever: the run ends by itself, with
    // both ladder steps of both carts and the dormancy wake-ups.
    let output = backtest("-", &["--all-decisions"], Some(CARTS.as_bytes()));
    succeeded(&output);
    let all = brief(&actions(&output));
    let steps = |trigger: &str| {
        all.iter()
            .filter(|(_, t, _, _, _)| t == trigger)
            .map(|(user, _, step, _, _)| format!("{user}#{step}"))
            .collect::<Vec<_>>()
    };
    assert_eq!(steps("abandoned_cart"), ["u1#1", "u2#1", "u1#2", "u2#2"]);
    assert_eq!(
        steps("dormant_wakeup"),
        ["u1#1", "u2#1", "u1#2", "u2#2", "u1#3", "u2#3"]
    );
}

// ----- output -----------------------------------------------------------------

#[test]
fn all_decisions_adds_the_suppressed_ones() {
    let until = ["--until", "2026-11-23T12:00:00Z"];
    let sent_only = backtest("-", &until, Some(CARTS.as_bytes()));
    let mut all_flags = until.to_vec();
    all_flags.push("--all-decisions");
    let all = backtest("-", &all_flags, Some(CARTS.as_bytes()));
    succeeded(&sent_only);
    succeeded(&all);
    let sent_only = actions(&sent_only);
    let all = actions(&all);
    assert!(sent_only.iter().all(|a| a["data"]["suppressed"].is_null()));
    assert_eq!(sent_only.len(), 1);
    assert_eq!(all.len(), 2);
    let suppressed: Vec<&Value> = all
        .iter()
        .filter(|a| !a["data"]["suppressed"].is_null())
        .collect();
    assert_eq!(suppressed.len(), 1);
    assert_eq!(suppressed[0]["data"]["user_id"], "u2");
    assert_eq!(suppressed[0]["data"]["suppressed"], "consent");
    let sent_in_all: Vec<&Value> = all
        .iter()
        .filter(|a| a["data"]["suppressed"].is_null())
        .collect();
    assert_eq!(sent_in_all, sent_only.iter().collect::<Vec<_>>());
}

#[test]
fn all_decisions_without_out_is_a_usage_error() {
    let output = kairos(
        &[
            "backtest",
            "--pipeline",
            path_str(&retail()),
            "--events",
            "-",
            "--all-decisions",
        ],
        Some(CARTS.as_bytes()),
    );
    assert_eq!(code(&output), 2, "{}", stderr(&output));
    assert_stderr_has(&output, "--out");
    assert!(output.stdout.is_empty());
}

#[test]
fn every_action_carries_the_contract_fields() {
    let output = backtest("-", &["--all-decisions"], Some(CARTS.as_bytes()));
    succeeded(&output);
    let actions = actions(&output);
    assert!(actions.len() >= 4, "{actions:?}");
    let time = |value: &Value, what: &str| {
        let text = value
            .as_str()
            .unwrap_or_else(|| panic!("{what} is a string"));
        kairos_model::Timestamp::parse_rfc3339(text)
            .unwrap_or_else(|e| panic!("{what} {text:?} is not RFC 3339: {e}"))
    };
    for action in &actions {
        let data = &action["data"];
        for field in kairos_model::action::ENVELOPE_FIELDS {
            assert!(action.get(field).is_some(), "{field} missing: {action}");
        }
        for field in kairos_model::action::DATA_FIELDS {
            assert!(data.get(field).is_some(), "data.{field} missing: {action}");
        }
        assert_eq!(action["specversion"], "1.0");
        assert_eq!(action["id"], data["action_id"]);
        assert!(data["action_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("act_")));
        assert_eq!(action["source"], "kairos/retail");
        assert_eq!(
            action["type"].as_str(),
            Some(
                format!(
                    "kairos.action.{}",
                    data["trigger"].as_str().unwrap_or_default()
                )
                .as_str()
            )
        );
        assert_eq!(action["subject"], data["user_id"]);
        assert_eq!(action["time"], data["decided_at"]);
        assert_eq!(action["datacontenttype"], "application/json");
        assert!(data["step"].as_u64().is_some_and(|s| s >= 1), "{action}");
        assert!(data["priority"].is_u64(), "{action}");
        assert!(data["channel"].is_string() && data["variant"].is_string());
        let fired = time(&data["fired_at"], "fired_at");
        let decided = time(&data["decided_at"], "decided_at");
        let expires = time(&data["expires_at"], "expires_at");
        time(&action["time"], "time");
        assert!(fired <= decided && decided <= expires, "{action}");
        assert!(data["suppressed"].is_null() || data["suppressed"].is_string());
        assert!(data["reason"]["rule"].is_string(), "{action}");
        assert!(
            data["reason"]["events"]
                .as_array()
                .is_some_and(|events| events.iter().all(Value::is_string)),
            "{action}"
        );
        assert!(data["payload"].is_object(), "{action}");
    }
    let first = &actions[0]["data"];
    assert_eq!(first["trigger"], "abandoned_cart");
    assert_eq!(first["reason"]["events"], serde_json::json!(["m2"]));
    assert_eq!(first["payload"]["cart_value"], 12.5);
}

#[test]
fn the_same_input_gives_the_same_action_ids() {
    let first = backtest("-", &["--all-decisions"], Some(CARTS.as_bytes()));
    let second = backtest("-", &["--all-decisions"], Some(CARTS.as_bytes()));
    succeeded(&first);
    assert_eq!(first.stdout, second.stdout);
}

#[test]
fn summary_json_has_the_documented_shape() {
    let dir = tempfile::tempdir().expect("temp dir");
    let summary = dir.path().join("summary.json");
    let output = backtest(
        "-",
        &[
            "--until",
            "2026-11-23T12:00:00Z",
            "--summary-json",
            path_str(&summary),
        ],
        Some(format!("{CARTS}not json\n").as_bytes()),
    );
    succeeded(&output);
    let text = std::fs::read_to_string(&summary).expect("summary written");
    let json: Value = serde_json::from_str(&text).expect("summary is JSON");
    assert_eq!(json["events"], 3, "good events replayed: {json}");
    assert!(json["seconds"].as_f64().is_some_and(|s| s >= 0.0), "{json}");
    assert!(
        json["events_per_second"].as_f64().is_some_and(|r| r >= 0.0),
        "{json}"
    );
    let triggers = json["triggers"].as_object().expect("triggers object");
    let pipeline = kairos_pipeline::load(&retail(), &[]).expect("retail compiles");
    for trigger in &pipeline.triggers {
        let entry = &triggers[&*trigger.id];
        assert!(entry["fired"].is_u64(), "{}: {entry}", trigger.id);
        assert!(entry["sent"].is_u64(), "{}: {entry}", trigger.id);
        let suppressed = entry["suppressed"]
            .as_object()
            .unwrap_or_else(|| panic!("{}: suppressed is an object: {entry}", trigger.id));
        assert!(suppressed.values().all(Value::is_u64), "{entry}");
    }
    assert_eq!(triggers.len(), pipeline.triggers.len());
    // No order follows the reminder: nothing converted.
    let no_holdout = serde_json::json!({"decisions": 0, "conversions": 0, "revenue": 0.0, "conversion_rate": null});
    assert_eq!(
        triggers["abandoned_cart"],
        serde_json::json!({
            "fired": 2, "sent": 1, "suppressed": {"consent": 1},
            "conversions": 0, "revenue": 0.0, "conversion_rate": 0.0,
            "holdout": no_holdout, "uplift": null,
            "variants": {"control": {
                "sent": 1, "conversions": 0, "revenue": 0.0, "conversion_rate": 0.0,
                "holdout": no_holdout, "uplift": null,
            }},
        })
    );
    assert_eq!(triggers["welcome"]["fired"], 0);
    assert_eq!(triggers["welcome"]["sent"], 0);
    assert_eq!(triggers["welcome"]["suppressed"], serde_json::json!({}));
    assert_eq!(triggers["welcome"]["conversion_rate"], Value::Null);
}

#[test]
fn the_binary_writes_exactly_the_golden_files() {
    // crates/kairos/tests/golden.rs checks the golden files with the engine
    // in-process; this checks that `kairos backtest` writes the same bytes.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines/golden");
    let mut checked = 0;
    for entry in std::fs::read_dir(&root).expect("golden directory") {
        let dir = entry.expect("entry").path();
        if !dir.is_dir() || dir.join("KNOWN_BUG").exists() {
            continue;
        }
        let until = std::fs::read_to_string(dir.join("until")).ok();
        let mut flags = vec!["--all-decisions"];
        if let Some(until) = &until {
            flags.extend(["--until", until.trim()]);
        }
        let output = backtest(path_str(&dir.join("events.jsonl")), &flags, None);
        succeeded(&output);
        let expected = std::fs::read(dir.join("expected.jsonl")).expect("expected.jsonl");
        assert!(
            output.stdout == expected,
            "kairos backtest output differs from {}",
            dir.join("expected.jsonl").display()
        );
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} golden directories checked");
}

// ----- invocation mistakes ----------------------------------------------------

#[test]
fn an_unknown_flag_exits_2() {
    let output = backtest("-", &["--bogus"], Some(CARTS.as_bytes()));
    assert_eq!(code(&output), 2);
    assert_stderr_has(&output, "--bogus");
}

#[test]
fn a_missing_required_flag_exits_2() {
    let output = kairos(&["backtest", "--events", "-"], Some(CARTS.as_bytes()));
    assert_eq!(code(&output), 2);
    assert_stderr_has(&output, "--pipeline");
    let output = kairos(
        &["backtest", "--pipeline", path_str(&retail())],
        Some(CARTS.as_bytes()),
    );
    assert_eq!(code(&output), 2);
    assert_stderr_has(&output, "--events");
}

#[test]
fn an_unknown_subcommand_or_none_exits_2() {
    assert_eq!(code(&kairos(&["frobnicate"], None)), 2);
    assert_eq!(code(&kairos(&[], None)), 2);
    assert_eq!(code(&kairos(&["validate"], None)), 2);
}

#[test]
fn help_and_version_exit_0() {
    let help = kairos(&["--help"], None);
    assert_eq!(code(&help), 0);
    assert!(String::from_utf8_lossy(&help.stdout).contains("backtest"));
    assert_eq!(code(&kairos(&["--version"], None)), 0);
}

#[test]
fn rejected_keeps_every_skipped_line_beyond_the_hundred_on_stderr() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bad: String = (0..150).map(|n| format!("not json {n}\n")).collect();
    let events = write(dir.path(), "events.jsonl", &format!("{bad}{CARTS}{{}}\n"));
    let rejected = dir.path().join("rejected.jsonl");
    let until = ["--until", "2026-11-23T12:00:00Z", "--all-decisions"];
    let output = backtest(
        path_str(&events),
        &[&until[..], &["--rejected", path_str(&rejected)]].concat(),
        None,
    );
    succeeded(&output);
    assert_eq!(actions(&output).len(), 2, "the good lines still act");
    let shown = stderr(&output).matches(": skipped: ").count();
    assert_eq!(shown, 100, "{}", stderr(&output));
    assert_stderr_has(&output, "151 lines skipped in all");
    let entries: Vec<Value> = std::fs::read_to_string(&rejected)
        .expect("rejected file")
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON line"))
        .collect();
    assert_eq!(entries.len(), 151);
    assert_eq!(entries[0]["line"], 1);
    assert_eq!(entries[0]["reason"], "not_json");
    assert_eq!(entries[150]["line"], 154, "after the three good lines");
    assert_eq!(entries[150]["reason"], "unknown_type");
    assert!(entries[150]["message"]
        .as_str()
        .unwrap()
        .contains("accepted"));
}

/// A customer in UTC (quiet 22:00–08:00): a big order at 23:00 fires
/// `tier_progress`, deferred to 08:00; a cart left at 07:00 fires
/// `abandoned_cart` at 07:30, deferred too. At 08:00 the cart wins
/// arbitration.
const DEFERRED_THEN_SUPPRESSED: &str = r#"{"type":"identify","userId":"u1","messageId":"i1","timestamp":"2026-11-23T22:00:00.000Z","traits":{"consent":{"push":true,"email":true}},"context":{"timezone":"UTC"}}
{"type":"track","event":"Order Completed","userId":"u1","messageId":"o1","timestamp":"2026-11-23T23:00:00.000Z","properties":{"order_id":"o1","cart_id":"c0","revenue":950,"products":[{"product_id":"p1","price":950,"quantity":1}]}}
{"type":"track","event":"Product Added","userId":"u1","messageId":"a1","timestamp":"2026-11-24T07:00:00.000Z","properties":{"cart_id":"c1","product_id":"p2","price":10,"quantity":1}}
{"type":"page","userId":"u2","messageId":"z1","timestamp":"2026-11-24T12:00:00.000Z"}
"#;

#[test]
fn a_deferred_decision_suppressed_on_release_is_decided_then() {
    let dir = tempfile::tempdir().expect("temp dir");
    let events = write(dir.path(), "events.jsonl", DEFERRED_THEN_SUPPRESSED);
    let full = backtest(path_str(&events), &["--all-decisions"], None);
    succeeded(&full);
    let decisions = actions(&full);
    let tier = decisions
        .iter()
        .map(|action| &action["data"])
        .find(|data| data["trigger"] == "tier_progress")
        .expect("tier_progress decided");
    assert_eq!(tier["suppressed"], "arbitration");
    assert_eq!(tier["fired_at"], "2026-11-23T23:00:00.000Z");
    assert_eq!(tier["decided_at"], "2026-11-24T08:00:00.000Z");
    // --until keeps exactly the decisions made before it.
    for until in [
        "2026-11-24T01:00:00Z",
        "2026-11-24T08:00:00Z",
        "2026-11-24T08:00:00.001Z",
    ] {
        let cut = backtest(
            path_str(&events),
            &["--all-decisions", "--until", until],
            None,
        );
        succeeded(&cut);
        let time = |text: &str| kairos_model::Timestamp::parse_rfc3339(text).expect("a time");
        let before: Vec<&Value> = decisions
            .iter()
            .filter(|action| time(action["data"]["decided_at"].as_str().unwrap()) < time(until))
            .collect();
        assert_eq!(
            actions(&cut).iter().collect::<Vec<_>>(),
            before,
            "--until {until}"
        );
    }
}

#[test]
fn an_oversized_line_is_skipped_by_number_and_the_next_lines_still_act() {
    let dir = tempfile::tempdir().expect("temp dir");
    let huge = format!(
        "{{\"type\":\"page\",\"userId\":\"u9\",\"messageId\":\"big\",\"timestamp\":\"2026-11-23T09:30:00Z\",\"properties\":{{\"pad\":\"{}\"}}}}\n",
        "x".repeat(3 << 20)
    );
    let (first, rest) = CARTS.split_once('\n').expect("lines");
    let events = write(
        dir.path(),
        "events.jsonl",
        &format!("{first}\n{huge}{rest}"),
    );
    let until = ["--until", "2026-11-23T12:00:00Z", "--all-decisions"];
    let output = backtest(path_str(&events), &until, None);
    succeeded(&output);
    assert_stderr_has(&output, "events.jsonl:2: skipped: message is 3145");
    assert_stderr_has(&output, "accepted: at most 1048576 bytes");
    let plain = write(dir.path(), "carts.jsonl", CARTS);
    assert_eq!(
        brief(&actions(&output)),
        brief(&actions(&backtest(path_str(&plain), &until, None)))
    );
}
