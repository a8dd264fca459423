//! What the compiler reports: a [`Diagnostic`] per mistake, located at
//! `file:line:column`, naming the field and what would have been accepted.
//!
//! Validation records [`Problem`]s against a byte offset (or an override);
//! they become diagnostics, with 1-based lines and columns, only at the end.

use crate::overrides::Override;
use crate::raw::Origin;
use std::fmt;

/// The file name used for mistakes in `--set` overrides.
pub const OVERRIDE_FILE: &str = "--set";

/// One mistake in a pipeline file or an override.
///
/// Displays as `FILE:LINE:COL: field: problem; accepted: accepted`, the shape
/// editors and CI logs turn into clickable locations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file name given to [`crate::compile`], or `--set` for overrides.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// Dotted path of the field (`trigger.abandoned_cart.ladder[0].channel`).
    pub field: String,
    /// What is wrong.
    pub problem: String,
    /// What would have been accepted instead.
    pub accepted: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}; accepted: {}",
            self.file, self.line, self.column, self.field, self.problem, self.accepted
        )
    }
}

impl std::error::Error for Diagnostic {}

/// A mistake found during validation, before it is given a line and column.
#[derive(Clone, Debug)]
pub(crate) struct Problem {
    /// Where the offending value or key was written.
    pub origin: Origin,
    /// Dotted path of the field.
    pub field: String,
    /// What is wrong.
    pub problem: String,
    /// What would have been accepted.
    pub accepted: String,
}

/// Turns problems into diagnostics, sorted by position (file first, then
/// overrides), keeping the order of problems at the same position.
pub(crate) fn locate(
    file_name: &str,
    text: &str,
    overrides: &[Override],
    problems: Vec<Problem>,
) -> Vec<Diagnostic> {
    let mut located: Vec<(bool, usize, Diagnostic)> = problems
        .into_iter()
        .map(|problem| match problem.origin {
            Origin::File { offset } => {
                let (line, column) = line_column(text, offset);
                let diagnostic = Diagnostic {
                    file: file_name.to_string(),
                    line,
                    column,
                    field: problem.field,
                    problem: problem.problem,
                    accepted: problem.accepted,
                };
                (false, offset, diagnostic)
            }
            Origin::Override { index, suffix } => {
                let path = overrides.get(index).map_or("", |o| o.path.as_str());
                let diagnostic = Diagnostic {
                    file: OVERRIDE_FILE.to_string(),
                    line: 1,
                    column: 1,
                    field: format!("{path}{suffix}"),
                    problem: problem.problem,
                    accepted: problem.accepted,
                };
                (true, index, diagnostic)
            }
        })
        .collect();
    located.sort_by_key(|(is_override, position, _)| (*is_override, *position));
    located.into_iter().map(|(_, _, d)| d).collect()
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let mut on_line = &before[line_start..];
    if line_start == 0 {
        // A byte order mark starts the file, not its first line: editors
        // do not count it as a column.
        on_line = on_line.strip_prefix('\u{feff}').unwrap_or(on_line);
    }
    let column = on_line.chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_are_one_based_characters() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 4), (1, 5));
        assert_eq!(line_column(text, 6), (2, 1));
        // "bé = " is 6 bytes but 5 characters.
        assert_eq!(line_column(text, 12), (2, 6));
        assert_eq!(line_column(text, 999), (3, 1));
    }

    #[test]
    fn a_byte_order_mark_is_not_a_column() {
        let text = "\u{feff}a = 1\nb = 2\n";
        // The mark is 3 bytes; `1` is at byte 7, the fifth character of line 1.
        assert_eq!(line_column(text, 7), (1, 5));
        assert_eq!(line_column(text, 3), (1, 1));
        assert_eq!(line_column(text, 13), (2, 5));
    }

    #[test]
    fn displays_in_the_documented_shape() {
        let diagnostic = Diagnostic {
            file: "p.toml".to_string(),
            line: 3,
            column: 9,
            field: "trigger.cart.after".to_string(),
            problem: "bad".to_string(),
            accepted: "good".to_string(),
        };
        assert_eq!(
            diagnostic.to_string(),
            "p.toml:3:9: trigger.cart.after: bad; accepted: good"
        );
    }
}
