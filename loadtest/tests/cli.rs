//! The command line refuses what it must not do, with exit code 2.

use std::process::Command;

fn loadtest(args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_kairos-loadtest"))
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

#[test]
fn only_loopback_targets_without_allow_remote_and_bad_numbers_are_named() {
    let (code, stderr) = loadtest(&[
        "--via",
        "http",
        "--collector",
        "http://10.1.2.3:8080",
        "--write-key",
        "k",
        "--rate",
        "10",
        "--duration",
        "1",
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("not a loopback address"), "{stderr}");
    assert!(stderr.contains("--allow-remote"), "{stderr}");
    let (code, stderr) = loadtest(&["--write-key", "k", "--rate", "0", "--duration", "1"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--rate"), "{stderr}");
    let (code, stderr) = loadtest(&["--rate", "10", "--duration", "1"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--via nats needs --nats"), "{stderr}");
}
