//! Pipeline files → validated engine configuration.
//!
//! A pipeline file is TOML (the format is documented field by field in
//! `docs/pipeline-format.md`; `pipelines/pipeline.schema.json` gives editors
//! completion and checking). Compiling one is two steps, as in Vector's
//! config compiler:
//!
//! 1. parse the text into a raw document whose every value remembers where
//!    it was written, and graft the `--set` [`Override`]s onto it;
//! 2. validate that document into a [`kairos_engine::config::Pipeline`],
//!    collecting **every** mistake as a [`Diagnostic`] with
//!    `file:line:column`, rather than stopping at the first.
//!
//! ```
//! let text = r#"
//! name = "demo"
//!
//! [[trigger]]
//! id = "abandoned_cart"
//! kind = "absence"
//! start = "Product Added"
//! cancel = ["Order Completed"]
//! after = "30m"
//! channel = "push"
//! "#;
//! let overrides = ["abandoned_cart.after=10m".parse().expect("well-formed")];
//! let pipeline = kairos_pipeline::compile("demo.toml", text, &overrides).expect("valid");
//! assert_eq!(&*pipeline.triggers[0].rule, "Product Added not followed by Order Completed within 10m");
//!
//! let errors = kairos_pipeline::compile("demo.toml", "name = 1\nnmae = \"x\"\n", &[]).unwrap_err();
//! assert_eq!(errors.len(), 2);
//! assert_eq!(
//!     errors[1].to_string(),
//!     "demo.toml:2:1: nmae: unknown field `nmae`; accepted: name, settings, policy, stores, trigger"
//! );
//! ```
#![deny(missing_docs)]

mod check;
mod diagnostic;
mod event_match;
mod offset;
mod overrides;
mod pattern;
mod raw;
mod rule_text;
mod settings;
mod trigger;

pub use diagnostic::{Diagnostic, OVERRIDE_FILE};
pub use overrides::{Override, OverrideError};

use check::{Checker, Fields};
use kairos_engine::config::Pipeline;
use raw::{Node, Value};
use std::io::Read;
use std::path::Path;

/// Keys of the document root.
const TOP_KEYS: &[&str] = &["name", "settings", "policy", "stores", "trigger"];

/// Compiles pipeline `text` (named `file_name` in diagnostics) with
/// `overrides` applied, or returns every mistake found, in file order
/// (override mistakes last).
pub fn compile(
    file_name: &str,
    text: &str,
    overrides: &[Override],
) -> Result<Pipeline, Vec<Diagnostic>> {
    let mut root = match raw::parse_file(text) {
        Ok(root) => root,
        Err(mut errors) => {
            // The TOML parser reports some kinds of mistake in a later pass.
            errors.sort_by_key(|error| error.offset);
            return Err(errors
                .into_iter()
                .map(|error| {
                    let (line, column) = diagnostic::line_column(text, error.offset);
                    Diagnostic {
                        file: file_name.to_string(),
                        line,
                        column,
                        field: "syntax".to_string(),
                        problem: error.message,
                        accepted: "valid TOML (https://toml.io)".to_string(),
                    }
                })
                .collect());
        }
    };
    let mut checker = Checker::default();
    overrides::apply(&mut root, overrides, &mut checker);
    let pipeline = pipeline(&mut checker, &root);
    if checker.problems.is_empty() {
        Ok(pipeline)
    } else {
        Err(diagnostic::locate(
            file_name,
            text,
            overrides,
            checker.problems,
        ))
    }
}

/// Reads and compiles the pipeline file at `path`. A file that cannot be
/// read is reported as a diagnostic at line 1, column 1.
pub fn load(path: &Path, overrides: &[Override]) -> Result<Pipeline, Vec<Diagnostic>> {
    let file_name = path.display().to_string();
    match read_file(path) {
        Ok(text) => compile(&file_name, &text, overrides),
        Err(problem) => Err(vec![Diagnostic {
            file: file_name,
            line: 1,
            column: 1,
            field: "file".to_string(),
            problem,
            accepted: format!(
                "a readable UTF-8 TOML file of at most {} MiB",
                MAX_FILE_BYTES >> 20
            ),
        }]),
    }
}

/// The largest pipeline file read. The shipped ones are a few tens of
/// KiB; the limit is there so that a wrong path (`/dev/zero`, a data file)
/// is refused rather than read into memory without end.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// The text of the file at `path`, at most [`MAX_FILE_BYTES`] of it, or
/// what is wrong with it.
/// The text of the pipeline file at `path` (what [`load`] compiles), or
/// why it cannot be read.
pub fn read_text(path: &Path) -> Result<String, String> {
    read_file(path)
}

fn read_file(path: &Path) -> Result<String, String> {
    let cannot_read = |error: std::io::Error| format!("cannot read the file: {error}");
    let file = std::fs::File::open(path).map_err(cannot_read)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot_read)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "the file is larger than {} MiB",
            MAX_FILE_BYTES >> 20
        ));
    }
    String::from_utf8(bytes)
        .map_err(|_| "cannot read the file: stream did not contain valid UTF-8".to_string())
}

/// Validates the whole document. The result is meaningful only when no
/// problem was recorded.
fn pipeline(checker: &mut Checker, root: &Node) -> Pipeline {
    let root = Fields {
        node: root,
        entries: root.entries().unwrap_or_default(),
        path: String::new(),
    };
    root.check_keys(checker, TOP_KEYS);
    // `near_store_km` filters need stores; count the entries even if some
    // are invalid, so one bad store does not also fail every filter.
    checker.store_count = match root.get("stores").map(|stores| &stores.value) {
        Some(Value::Array(items)) => items.len(),
        _ => 0,
    };
    Pipeline {
        name: settings::name(checker, &root),
        settings: settings::settings(checker, root.get("settings")),
        policy: settings::policy(checker, root.get("policy")),
        stores: settings::stores(checker, root.get("stores")),
        triggers: trigger::triggers(checker, root.get("trigger")),
    }
}

#[cfg(test)]
mod schema_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_file_without_end_is_refused_at_the_limit() {
        let errors = load(Path::new("/dev/zero"), &[]).unwrap_err();
        assert_eq!(
            errors[0].to_string(),
            "/dev/zero:1:1: file: the file is larger than 16 MiB; accepted: a readable UTF-8 TOML file of at most 16 MiB"
        );
    }

    #[test]
    fn a_file_that_cannot_be_read_says_why() {
        let errors = load(Path::new("/nonexistent/kairos/p.toml"), &[]).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].problem.starts_with("cannot read the file: "),
            "{}",
            errors[0]
        );
    }
}
