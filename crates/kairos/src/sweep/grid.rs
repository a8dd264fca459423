//! The grid of a sweep: each `--param PATH=V1,V2,...` read into a path and
//! its values, and every combination of those values (the cartesian
//! product) as the `--set`-style overrides of one grid point.

use kairos_pipeline::Override;
use std::fmt;
use std::str::FromStr;

/// The most grid points a sweep runs. Each is a whole backtest: a thousand
/// of them over a day of traffic already take a long while, and a grid
/// larger than that is far more often a typo (a value list pasted twice)
/// than an intent.
pub const MAX_POINTS: usize = 1_000;

/// What a `--param` looks like, for messages.
const PARAM_FORM: &str =
    "TRIGGER.PARAM=V1,V2,... (or settings.X=..., policy.X=...), e.g. abandoned_cart.after=10m,30m";

/// One `--param`: a dotted path, as `--set` takes it, and the values to try.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SweptParam {
    /// `abandoned_cart.after`, `policy.holdout_percent`.
    pub path: String,
    /// Each value as typed (read as TOML, or as a bare string, exactly as
    /// a `--set` value is).
    pub values: Vec<String>,
}

impl FromStr for SweptParam {
    type Err = String;

    /// Splits `abandoned_cart.after=10m,30m` at the first `=`, then the
    /// values at the commas that are not inside `{}`, `[]` or quotes.
    fn from_str(text: &str) -> Result<SweptParam, String> {
        let (path, list) = text
            .split_once('=')
            .ok_or_else(|| format!("{text:?} has no `=`; accepted: {PARAM_FORM}"))?;
        let path = path.trim();
        if path.is_empty() {
            return Err(format!(
                "{text:?} has an empty path; accepted: {PARAM_FORM}"
            ));
        }
        let values = split_top_level(list)?;
        for (position, value) in values.iter().enumerate() {
            if value.is_empty() {
                return Err(format!(
                    "{path}: value {} of {} is empty; accepted: {PARAM_FORM}",
                    position + 1,
                    values.len()
                ));
            }
            if values[..position].contains(value) {
                return Err(format!(
                    "{path}: {value:?} is listed twice; accepted: each value once"
                ));
            }
        }
        Ok(SweptParam {
            path: path.to_string(),
            values,
        })
    }
}

/// Splits a value list at its top-level commas, trimming each value: a
/// comma inside `{ ... }`, `[ ... ]` or a quoted string is part of a TOML
/// value (`{ session = "15s" },{ session = "30m" }` is two values).
fn split_top_level(list: &str) -> Result<Vec<String>, String> {
    let mut values = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    // The quote a string was opened with, while inside one.
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for character in list.chars() {
        match quote {
            Some(open) => {
                // Only TOML's basic strings ("...") have escapes; in a
                // literal string ('...') a backslash is itself.
                if escaped {
                    escaped = false;
                } else if character == '\\' && open == '"' {
                    escaped = true;
                } else if character == open {
                    quote = None;
                }
            }
            None => match character {
                '"' | '\'' => quote = Some(character),
                '{' | '[' => depth += 1,
                '}' | ']' => depth = depth.saturating_sub(1),
                ',' if depth == 0 => {
                    values.push(current.trim().to_string());
                    current.clear();
                    continue;
                }
                _ => {}
            },
        }
        current.push(character);
    }
    if let Some(open) = quote {
        return Err(format!(
            "{list:?} ends inside a string opened with {open}; accepted: values with their quotes closed"
        ));
    }
    if depth > 0 {
        return Err(format!(
            "{list:?} ends inside {{ }} or [ ]; accepted: values with their braces and brackets closed"
        ));
    }
    values.push(current.trim().to_string());
    Ok(values)
}

/// Every combination of the swept values, in order: the first `--param`
/// varies slowest, as nested loops written in flag order would.
#[derive(Debug)]
pub struct Grid {
    /// The `--param`s, in command-line order.
    pub params: Vec<SweptParam>,
    /// Each point's overrides, one per param, in the same order.
    pub points: Vec<GridPoint>,
}

/// One combination: the value of every swept param.
#[derive(Clone, Debug)]
pub struct GridPoint {
    /// One override per `--param`, in command-line order.
    pub overrides: Vec<Override>,
}

impl GridPoint {
    /// The swept paths, joined by `;` (the CSV's `param` column).
    pub fn joined_paths(&self) -> String {
        self.joined(|item| &item.path)
    }

    /// The values, joined by `;` (the CSV's `value` column).
    pub fn joined_values(&self) -> String {
        self.joined(|item| &item.value)
    }

    fn joined(&self, part: impl Fn(&Override) -> &str) -> String {
        let parts: Vec<&str> = self.overrides.iter().map(part).collect();
        parts.join(";")
    }
}

impl fmt::Display for GridPoint {
    /// `abandoned_cart.after=10m, policy.holdout_percent=5`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, item) in self.overrides.iter().enumerate() {
            if position > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}={}", item.path, item.value)?;
        }
        Ok(())
    }
}

impl Grid {
    /// The grid of `params`, or why there is none: a path swept twice, or
    /// more than [`MAX_POINTS`] combinations.
    pub fn new(params: &[SweptParam]) -> Result<Grid, String> {
        for (position, param) in params.iter().enumerate() {
            if params[..position]
                .iter()
                .any(|earlier| earlier.path == param.path)
            {
                return Err(format!(
                    "--param {} is given twice; accepted: each path once, with all its values in one list",
                    param.path
                ));
            }
        }
        let sizes: Vec<usize> = params.iter().map(|param| param.values.len()).collect();
        let count = sizes
            .iter()
            .try_fold(1usize, |count, size| count.checked_mul(*size))
            .filter(|count| *count <= MAX_POINTS);
        let Some(count) = count else {
            let product: Vec<String> = sizes.iter().map(usize::to_string).collect();
            return Err(format!(
                "the grid has more than {MAX_POINTS} points ({} values); accepted: at most {MAX_POINTS} combinations",
                product.join(" × ")
            ));
        };
        let points = (0..count)
            .map(|index| {
                // The index in mixed radix, the last param's digit fastest.
                let mut rest = index;
                let mut overrides: Vec<Override> = params
                    .iter()
                    .rev()
                    .map(|param| {
                        let value = &param.values[rest % param.values.len()];
                        rest /= param.values.len();
                        Override {
                            path: param.path.clone(),
                            value: value.clone(),
                        }
                    })
                    .collect();
                overrides.reverse();
                GridPoint { overrides }
            })
            .collect();
        Ok(Grid {
            params: params.to_vec(),
            points,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str) -> Vec<String> {
        match text.parse::<SweptParam>() {
            Ok(param) => param.values,
            Err(error) => panic!("{text}: {error}"),
        }
    }

    #[test]
    fn values_split_at_top_level_commas_only() {
        assert_eq!(values("a.after=10m, 30m ,1h"), ["10m", "30m", "1h"]);
        assert_eq!(
            values(r#"b.window={ session = "15s" },{ session = "30m" }"#),
            [r#"{ session = "15s" }"#, r#"{ session = "30m" }"#]
        );
        assert_eq!(
            values(r#"c.cancel=["A", "B"],["C,D"]"#),
            [r#"["A", "B"]"#, r#"["C,D"]"#]
        );
        // Escapes count in basic strings only: a literal string's
        // backslash is itself (a Windows path), and closes nothing.
        assert_eq!(
            values(r#"d.rule="x, \"y, z\"",'C:\dir\',x"#),
            [r#""x, \"y, z\"""#, r#"'C:\dir\'"#, "x"]
        );
        assert_eq!(values("e.x=a=b,c"), ["a=b", "c"]);
    }

    #[test]
    fn malformed_lists_are_refused_saying_what_is_accepted() {
        for (text, expected) in [
            ("a.after", "no `=`"),
            ("=10m", "empty path"),
            ("a.after=10m,,30m", "value 2 of 3 is empty"),
            ("a.after=10m,", "value 2 of 2 is empty"),
            ("a.after=10m,10m", "listed twice"),
            (r#"a.window={ session = "15s" "#, "ends inside { }"),
            (r#"a.rule="open"#, "ends inside a string"),
        ] {
            let error = text.parse::<SweptParam>().expect_err(text);
            assert!(error.contains(expected), "{text}: {error}");
            assert!(error.contains("accepted"), "{text}: {error}");
        }
    }

    #[test]
    fn the_grid_is_every_combination_first_param_slowest() {
        let params: Vec<SweptParam> = ["a.after=1m,2m", "policy.holdout_percent=0,5,50"]
            .iter()
            .map(|text| text.parse().expect("well-formed"))
            .collect();
        let grid = Grid::new(&params).expect("small grid");
        let points: Vec<String> = grid.points.iter().map(GridPoint::joined_values).collect();
        assert_eq!(points, ["1m;0", "1m;5", "1m;50", "2m;0", "2m;5", "2m;50"]);
        assert_eq!(
            grid.points[0].joined_paths(),
            "a.after;policy.holdout_percent"
        );
        assert_eq!(
            grid.points[4].to_string(),
            "a.after=2m, policy.holdout_percent=5"
        );
    }

    #[test]
    fn a_grid_too_large_or_a_path_swept_twice_is_refused() {
        let many: String = (0..40).map(|n| format!("{n},")).collect();
        let param: SweptParam = format!("a.x={many}40").parse().expect("41 values");
        let error = Grid::new(&[param.clone(), param.clone()]).expect_err("twice");
        assert!(error.contains("given twice"), "{error}");
        let other = SweptParam {
            path: "b.y".into(),
            ..param.clone()
        };
        let error = Grid::new(&[param, other]).expect_err("41 × 41");
        assert!(error.contains("41 × 41"), "{error}");
        assert!(error.contains("at most 1000"), "{error}");
    }
}
