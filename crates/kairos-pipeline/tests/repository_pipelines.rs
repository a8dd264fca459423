//! Every `pipelines/*.toml` in the repository compiles: the shipped
//! examples must never rot. New files are picked up automatically.

use kairos_pipeline::load;
use std::path::Path;

#[test]
fn every_pipeline_in_the_repository_compiles() {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines");
    let entries = std::fs::read_dir(&directory)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", directory.display()));
    let mut files: Vec<_> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no pipelines found in {}",
        directory.display()
    );
    let mut failures = String::new();
    for file in &files {
        if let Err(errors) = load(file, &[]) {
            failures.push_str(&crate::support::render(&errors));
        }
    }
    assert!(
        failures.is_empty(),
        "pipelines that do not compile:\n{failures}"
    );
}

#[test]
fn shipped_examples_have_their_headline_triggers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines");
    let coffee = load(&root.join("coffee.toml"), &[])
        .unwrap_or_else(|e| panic!("{}", crate::support::render(&e)));
    for id in [
        "store_check_in",
        "nearby_store",
        "birthday",
        "reservation_reminder",
        "reservation_no_show",
    ] {
        crate::support::trigger(&coffee, id);
    }
    let tea = load(&root.join("tea.toml"), &[])
        .unwrap_or_else(|e| panic!("{}", crate::support::render(&e)));
    let dormant = crate::support::trigger(&tea, "dormant_wake_up");
    assert_eq!(
        dormant.steps.len(),
        3,
        "30d, then every 3d, three sends in all"
    );
    crate::support::trigger(&tea, "demotion_warning");
    crate::support::trigger(&tea, "referral_reward");
    assert_eq!(
        (
            tea.policy.daily_caps.targeted,
            tea.policy.daily_caps.content
        ),
        (1, 1)
    );
}

#[test]
fn unreadable_file_is_a_diagnostic() {
    let missing = Path::new("/definitely/not/here.toml");
    let errors = load(missing, &[]).err().unwrap_or_default();
    assert_eq!(errors.len(), 1);
    assert_eq!((errors[0].line, errors[0].column), (1, 1));
    assert!(errors[0].problem.starts_with("cannot read the file"));
}
