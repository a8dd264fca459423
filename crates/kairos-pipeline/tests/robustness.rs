//! Mangled input never panics: every line of the every-kind fixture is
//! deleted, or has its value replaced by each TOML type, in turn; each
//! variant must compile or come back as diagnostics with sane positions.

use kairos_pipeline::compile;

const EVERY_KIND: &str = include_str!("fixtures/every_kind.toml");

#[test]
fn mangled_lines_give_diagnostics_not_panics() {
    let lines: Vec<&str> = EVERY_KIND.lines().collect();
    let replacements = [
        "1",
        "-1",
        "2.5",
        "\"x\"",
        "\"\"",
        "true",
        "[]",
        "[1, \"a\"]",
        "{}",
        "{ x = 1 }",
        "1979-05-27",
    ];
    let mut variants = 0;
    for (index, line) in lines.iter().enumerate() {
        let mut texts = vec![without(&lines, index, None)];
        if let Some((key, _)) = line.split_once(" = ") {
            for value in replacements {
                texts.push(without(&lines, index, Some(&format!("{key} = {value}"))));
            }
        }
        for text in texts {
            variants += 1;
            if let Err(errors) = compile("mangled.toml", &text, &[]) {
                assert!(!errors.is_empty());
                let line_count = text.lines().count() + 1;
                for error in errors {
                    assert!(error.line >= 1 && error.line <= line_count, "{error}");
                    assert!(error.column >= 1, "{error}");
                    assert!(
                        !error.problem.is_empty() && !error.accepted.is_empty(),
                        "{error}"
                    );
                }
            }
        }
    }
    assert!(variants > 500);
}

/// `lines` with line `index` removed, or replaced by `replacement`.
fn without(lines: &[&str], index: usize, replacement: Option<&str>) -> String {
    let mut text = String::new();
    for (position, line) in lines.iter().enumerate() {
        let line = if position == index {
            replacement
        } else {
            Some(*line)
        };
        if let Some(line) = line {
            text.push_str(line);
            text.push('\n');
        }
    }
    text
}
