//! `--set PATH=VALUE` overrides, grafted onto the raw document before
//! validation so that an overridden value is checked exactly like one
//! written in the file.
//!
//! Paths:
//! - `TRIGGER_ID.PARAM[.SUB...]` sets a key inside the `[[trigger]]` with
//!   that id (`abandoned_cart.after=10m`, `abandoned_cart.payload.cart=true`,
//!   `abandoned_cart.ladder[0].channel=sms`);
//! - `settings.KEY` and `policy.KEY[.SUB]` set keys of those tables
//!   (`policy.quiet_hours.start=21:00`).
//!
//! Missing intermediate tables are created. The value is read as a TOML
//! value when it is one (`3`, `true`, `["a"]`, `{ session = "30m" }`,
//! `"quoted"`), otherwise taken as a bare string (`10m`, `sms`).

use crate::check::Checker;
use crate::raw::{parse_override_value, Entry, Node, Origin, Value};
use std::str::FromStr;

/// One `--set PATH=VALUE` from the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Override {
    /// Dotted path: `abandoned_cart.after`, `settings.seed`.
    pub path: String,
    /// The value as typed, before it is read as TOML.
    pub value: String,
}

/// Why an override could not even be split into path and value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OverrideError {
    /// No `=` at all.
    #[error("{0:?} has no `=`; expected PATH=VALUE, e.g. abandoned_cart.after=10m")]
    MissingEquals(String),
    /// Nothing before the `=`.
    #[error("{0:?} has an empty path; expected PATH=VALUE, e.g. abandoned_cart.after=10m")]
    EmptyPath(String),
}

impl FromStr for Override {
    type Err = OverrideError;

    /// Splits `abandoned_cart.after=10m` at the first `=`.
    fn from_str(text: &str) -> Result<Override, OverrideError> {
        let (path, value) = text
            .split_once('=')
            .ok_or_else(|| OverrideError::MissingEquals(text.to_string()))?;
        let path = path.trim();
        if path.is_empty() {
            return Err(OverrideError::EmptyPath(text.to_string()));
        }
        Ok(Override {
            path: path.to_string(),
            value: value.trim().to_string(),
        })
    }
}

/// Accepted override paths.
const PATH_FORMS: &str =
    "TRIGGER_ID.PARAM[.SUB...] (e.g. abandoned_cart.after, abandoned_cart.ladder[0].channel), settings.KEY or policy.KEY";

/// One part of a path: `after` or `ladder[0]`.
enum Segment<'p> {
    Key(&'p str),
    Item(&'p str, usize),
}

/// Grafts every override onto `root`, recording problems with the paths.
pub(crate) fn apply(root: &mut Node, overrides: &[Override], checker: &mut Checker) {
    for (index, item) in overrides.iter().enumerate() {
        if let Err((problem, accepted)) = apply_one(root, index, item) {
            let origin = Origin::Override {
                index,
                suffix: String::new(),
            };
            checker.report(&origin, &item.path, problem, accepted);
        }
    }
}

type Failure = (String, String);

fn apply_one(root: &mut Node, index: usize, item: &Override) -> Result<(), Failure> {
    let segments = parse_path(&item.path)?;
    let origin = Origin::Override {
        index,
        suffix: String::new(),
    };
    let Some((first, rest)) = segments.split_first() else {
        return Err(bad_path("empty path"));
    };
    let Some((last, middle)) = rest.split_last() else {
        return Err(bad_path("a path needs a table and a key"));
    };
    let root_entries = root
        .entries_mut()
        .ok_or_else(|| bad_path("the document is not a table"))?;
    let mut table = match first {
        Segment::Key(name @ ("settings" | "policy")) => child_table(root_entries, name, &origin)?,
        Segment::Key(id) => trigger_table(root_entries, id)?,
        Segment::Item(..) => {
            return Err(bad_path(
                "a path starts with a trigger id, settings or policy",
            ))
        }
    };
    for segment in middle {
        table = match segment {
            Segment::Key(key) => child_table(table, key, &origin)?,
            Segment::Item(key, position) => item_table(table, key, *position)?,
        };
    }
    let value = parse_override_value(&item.value, index);
    match last {
        Segment::Key(key) => match table.iter_mut().find(|entry| entry.key == *key) {
            Some(entry) => entry.value = value,
            None => table.push(Entry {
                key: key.to_string(),
                key_origin: origin,
                value,
            }),
        },
        Segment::Item(key, position) => *array_item(table, key, *position)? = value,
    }
    Ok(())
}

fn bad_path(problem: &str) -> Failure {
    (problem.to_string(), PATH_FORMS.to_string())
}

/// Splits `a.b[1].c` into segments.
fn parse_path(path: &str) -> Result<Vec<Segment<'_>>, Failure> {
    let word = |text: &str| {
        !text.is_empty()
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    path.split('.')
        .map(|part| {
            if let Some(open) = part.strip_suffix(']') {
                let (key, position) = open
                    .split_once('[')
                    .ok_or_else(|| bad_path(&format!("malformed path part {part:?}")))?;
                let position = position
                    .parse()
                    .map_err(|_| bad_path(&format!("malformed index in {part:?}")))?;
                if word(key) {
                    return Ok(Segment::Item(key, position));
                }
            } else if word(part) {
                return Ok(Segment::Key(part));
            }
            Err(bad_path(&format!("malformed path part {part:?}")))
        })
        .collect()
}

/// The table under `key`, created if absent.
fn child_table<'t>(
    entries: &'t mut Vec<Entry>,
    key: &str,
    origin: &Origin,
) -> Result<&'t mut Vec<Entry>, Failure> {
    let position = match entries.iter().position(|entry| entry.key == key) {
        Some(position) => position,
        None => {
            entries.push(Entry {
                key: key.to_string(),
                key_origin: origin.clone(),
                value: Node {
                    value: Value::Table(Vec::new()),
                    origin: origin.clone(),
                },
            });
            entries.len() - 1
        }
    };
    entries[position]
        .value
        .entries_mut()
        .ok_or_else(|| bad_path(&format!("`{key}` is not a table, so it has no keys to set")))
}

/// The `position`-th item of the array under `key`.
fn array_item<'t>(
    entries: &'t mut [Entry],
    key: &str,
    position: usize,
) -> Result<&'t mut Node, Failure> {
    let entry = entries
        .iter_mut()
        .find(|entry| entry.key == key)
        .ok_or_else(|| bad_path(&format!("there is no `{key}` to index")))?;
    match &mut entry.value.value {
        Value::Array(items) => {
            let length = items.len();
            items.get_mut(position).ok_or_else(|| {
                (
                    format!("`{key}` has {length} items, so there is no [{position}]"),
                    format!("an index from 0 to {}", length.saturating_sub(1)),
                )
            })
        }
        _ => Err(bad_path(&format!("`{key}` is not an array"))),
    }
}

/// The table that is the `position`-th item of the array under `key`.
fn item_table<'t>(
    entries: &'t mut [Entry],
    key: &str,
    position: usize,
) -> Result<&'t mut Vec<Entry>, Failure> {
    array_item(entries, key, position)?
        .entries_mut()
        .ok_or_else(|| bad_path(&format!("`{key}[{position}]` is not a table")))
}

/// The `[[trigger]]` table whose `id` is `id`.
fn trigger_table<'t>(root: &'t mut [Entry], id: &str) -> Result<&'t mut Vec<Entry>, Failure> {
    let triggers: &mut [Node] = match root.iter_mut().find(|entry| entry.key == "trigger") {
        Some(Entry {
            value:
                Node {
                    value: Value::Array(items),
                    ..
                },
            ..
        }) => items,
        _ => &mut [],
    };
    let id_of = |node: &Node| match node.get("id").map(|id| &id.value) {
        Some(Value::String(text)) => Some(text.clone()),
        _ => None,
    };
    let known: Vec<String> = triggers.iter().filter_map(id_of).collect();
    let Some(position) = triggers
        .iter()
        .position(|node| id_of(node).as_deref() == Some(id))
    else {
        let accepted = if known.is_empty() {
            "settings.KEY or policy.KEY (the pipeline has no triggers)".to_string()
        } else {
            format!(
                "a known trigger id: {}; or settings, policy",
                known.join(", ")
            )
        };
        return Err((format!("no trigger has id {id:?}"), accepted));
    };
    triggers[position]
        .entries_mut()
        .ok_or_else(|| bad_path("that trigger is not a table"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_the_first_equals() {
        let parsed: Result<Override, _> = "abandoned_cart.after=10m".parse();
        assert_eq!(
            parsed,
            Ok(Override {
                path: "abandoned_cart.after".into(),
                value: "10m".into()
            })
        );
        let with_equals: Result<Override, _> = "x.rule=a=b".parse();
        assert_eq!(with_equals.map(|o| o.value), Ok("a=b".to_string()));
    }

    #[test]
    fn rejects_missing_equals_and_empty_path() {
        assert!(matches!(
            "abandoned_cart.after".parse::<Override>(),
            Err(OverrideError::MissingEquals(_))
        ));
        assert!(matches!(
            "=10m".parse::<Override>(),
            Err(OverrideError::EmptyPath(_))
        ));
        let message = "nothing".parse::<Override>().err().map(|e| e.to_string());
        assert!(message.is_some_and(|m| m.contains("PATH=VALUE")));
    }
}
