//! Helpers shared by the integration tests.

use kairos_engine::config::{Pipeline, Trigger};
use kairos_pipeline::{compile, Diagnostic, Override};

/// Compiles `text`, failing the test with every diagnostic if it is invalid.
pub fn compile_ok(text: &str, overrides: &[Override]) -> Pipeline {
    match compile("test.toml", text, overrides) {
        Ok(pipeline) => pipeline,
        Err(errors) => panic!("expected a valid pipeline, got:\n{}", render(&errors)),
    }
}

/// Compiles `text`, expecting it to fail; returns the diagnostics.
pub fn compile_err(text: &str, overrides: &[Override]) -> Vec<Diagnostic> {
    match compile("test.toml", text, overrides) {
        Ok(_) => panic!("expected diagnostics, the pipeline compiled"),
        Err(errors) => errors,
    }
}

/// Compiles `text`, expecting exactly one diagnostic.
pub fn only_error(text: &str) -> Diagnostic {
    let errors = compile_err(text, &[]);
    assert_eq!(
        errors.len(),
        1,
        "expected one diagnostic, got:\n{}",
        render(&errors)
    );
    errors.into_iter().next().expect("one diagnostic")
}

/// One diagnostic per line, for failure messages.
pub fn render(errors: &[Diagnostic]) -> String {
    errors.iter().map(|e| format!("{e}\n")).collect()
}

/// The trigger with `id`.
pub fn trigger<'p>(pipeline: &'p Pipeline, id: &str) -> &'p Trigger {
    pipeline
        .triggers
        .iter()
        .find(|t| &*t.id == id)
        .unwrap_or_else(|| panic!("no trigger {id}"))
}

/// Parses `PATH=VALUE`.
pub fn set(text: &str) -> Override {
    text.parse()
        .unwrap_or_else(|e| panic!("bad override in test: {e}"))
}
