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
    match std::fs::read_to_string(path) {
        Ok(text) => compile(&file_name, &text, overrides),
        Err(error) => Err(vec![Diagnostic {
            file: file_name,
            line: 1,
            column: 1,
            field: "file".to_string(),
            problem: format!("cannot read the file: {error}"),
            accepted: "a readable UTF-8 TOML file".to_string(),
        }]),
    }
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
