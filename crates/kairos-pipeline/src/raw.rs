//! The raw document: what the pipeline file (plus any `--set` overrides)
//! says, as a tree of TOML values that each remember where they came from.
//!
//! This is the first half of the Vector-style split: parse into a spanned,
//! unvalidated tree here, then [`crate::check`] and the modules built on it
//! validate that tree into the engine's `Pipeline`. Keeping our own small tree
//! (rather than `toml`'s borrowed `DeTable`) lets overrides, parsed from other
//! strings, be grafted in with an origin of their own.

use std::ops::Range;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// Where a value (or a key) was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// In the pipeline file, starting at this byte offset.
    File {
        /// Byte offset of the first character.
        offset: usize,
    },
    /// In the value of the `index`-th `--set` override; `suffix` is the path
    /// inside that value (`""` for the value itself, `.channel`, `[0]`).
    Override {
        /// Position in the override list.
        index: usize,
        /// Path below the override's own path.
        suffix: String,
    },
}

impl Origin {
    /// The same origin one level further down: `suffix` is `.key` or `[i]`.
    fn child(&self, step: &str, span: Range<usize>) -> Origin {
        match self {
            Origin::File { .. } => Origin::File { offset: span.start },
            Origin::Override { index, suffix } => Origin::Override {
                index: *index,
                suffix: format!("{suffix}{step}"),
            },
        }
    }
}

/// A value with its origin.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    /// The value.
    pub value: Value,
    /// Where it was written.
    pub origin: Origin,
}

/// A TOML value.
#[derive(Clone, Debug)]
pub(crate) enum Value {
    /// A string.
    String(String),
    /// An integer (TOML integers are 64-bit signed).
    Integer(i64),
    /// A float.
    Float(f64),
    /// `true` or `false`.
    Boolean(bool),
    /// A date, time or date-time, kept as written.
    Datetime(String),
    /// An array (including arrays of tables).
    Array(Vec<Node>),
    /// A table, entries in the order they appear in the file.
    Table(Vec<Entry>),
}

/// One `key = value` of a table.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    /// The key.
    pub key: String,
    /// Where the key was written (unknown-field errors point here).
    pub key_origin: Origin,
    /// The value.
    pub value: Node,
}

impl Node {
    /// The entries if this is a table.
    pub fn entries(&self) -> Option<&[Entry]> {
        match &self.value {
            Value::Table(entries) => Some(entries),
            _ => None,
        }
    }

    /// The entries if this is a table, for grafting overrides.
    pub fn entries_mut(&mut self) -> Option<&mut Vec<Entry>> {
        match &mut self.value {
            Value::Table(entries) => Some(entries),
            _ => None,
        }
    }

    /// The value of `key` if this is a table that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entries()?
            .iter()
            .find(|entry| entry.key == key)
            .map(|entry| &entry.value)
    }

    /// What the value is, for "expected X, found Y" messages: the type and,
    /// for scalars, the value itself (`integer 30`, `string "5 parsecs"`).
    pub fn describe(&self) -> String {
        match &self.value {
            Value::String(text) => {
                let shown: String = text.chars().take(40).collect();
                let ellipsis = if shown.len() < text.len() { "…" } else { "" };
                format!("string {:?}{ellipsis}", shown)
            }
            Value::Integer(number) => format!("integer {number}"),
            Value::Float(number) => format!("float {number}"),
            Value::Boolean(flag) => format!("boolean {flag}"),
            Value::Datetime(text) => format!("date-time {text}"),
            Value::Array(_) => "an array".to_string(),
            Value::Table(_) => "a table".to_string(),
        }
    }
}

/// A TOML syntax error: byte offset and message.
pub(crate) struct SyntaxError {
    /// Byte offset of the offending text.
    pub offset: usize,
    /// What the TOML parser said.
    pub message: String,
}

/// Parses a whole pipeline file. On syntax errors, returns every error the
/// TOML parser could recover from, not just the first.
pub(crate) fn parse_file(text: &str) -> Result<Node, Vec<SyntaxError>> {
    let (document, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        return Err(errors
            .iter()
            .map(|error| SyntaxError {
                offset: error.span().map_or(0, |span| span.start),
                message: error.message().to_string(),
            })
            .collect());
    }
    let root = Origin::File { offset: 0 };
    Ok(Node {
        value: convert_table(document.into_inner(), &root),
        origin: root,
    })
}

/// Parses the value of the `index`-th override: as a TOML value when it is
/// one (`3`, `true`, `["a"]`, `{ tumbling = "1d" }`, `"quoted"`), otherwise as
/// the bare string (`10m`, `push`). Date-times are kept as bare strings too,
/// so `policy.quiet_hours.start=22:00` means the text `22:00`.
pub(crate) fn parse_override_value(text: &str, index: usize) -> Node {
    let origin = Origin::Override {
        index,
        suffix: String::new(),
    };
    match DeValue::parse(text) {
        Ok(value) if !matches!(value.get_ref(), DeValue::Datetime(_)) => convert(value, &origin),
        _ => Node {
            value: Value::String(text.to_string()),
            origin,
        },
    }
}

/// Converts one parsed value; `origin` is the origin already computed for it.
fn convert(value: Spanned<DeValue<'_>>, origin: &Origin) -> Node {
    let value = match value.into_inner() {
        DeValue::String(text) => Value::String(text.into_owned()),
        DeValue::Integer(integer) => {
            // The parser has checked the digits; clamp the (rare) values
            // beyond 64 bits, even beyond 128, so range checks report them.
            let wide = i128::from_str_radix(integer.as_str(), integer.radix()).unwrap_or(
                if integer.as_str().starts_with('-') {
                    i128::MIN
                } else {
                    i128::MAX
                },
            );
            Value::Integer(wide.clamp(i64::MIN.into(), i64::MAX.into()) as i64)
        }
        DeValue::Float(float) => Value::Float(float.as_str().parse().unwrap_or(f64::NAN)),
        DeValue::Boolean(flag) => Value::Boolean(flag),
        DeValue::Datetime(datetime) => Value::Datetime(datetime.to_string()),
        DeValue::Array(array) => Value::Array(
            array
                .into_iter()
                .enumerate()
                .map(|(position, item)| {
                    let item_origin = origin.child(&format!("[{position}]"), item.span());
                    convert(item, &item_origin)
                })
                .collect(),
        ),
        DeValue::Table(table) => convert_table(table, origin),
    };
    Node {
        value,
        origin: origin.clone(),
    }
}

/// Converts a table, sorting its entries into file order (the TOML map may
/// keep them sorted by key instead).
fn convert_table(table: DeTable<'_>, origin: &Origin) -> Value {
    let mut entries: Vec<(usize, Entry)> = table
        .into_iter()
        .map(|(key, value)| {
            let key_span = key.span();
            let step = format!(".{}", key.get_ref());
            let key_origin = origin.child(&step, key_span.clone());
            let value_origin = origin.child(&step, value.span());
            let entry = Entry {
                key: key.into_inner().into_owned(),
                key_origin,
                value: convert(value, &value_origin),
            };
            (key_span.start, entry)
        })
        .collect();
    entries.sort_by_key(|(start, _)| *start);
    Value::Table(entries.into_iter().map(|(_, entry)| entry).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_file_order_and_offsets() {
        let text = "zeta = 1\nalpha = \"x\"\n[table]\nkey = [1, 2.5]\n";
        let Ok(root) = parse_file(text) else {
            panic!("should parse");
        };
        let keys: Vec<&str> = root
            .entries()
            .unwrap_or_default()
            .iter()
            .map(|entry| entry.key.as_str())
            .collect();
        assert_eq!(keys, ["zeta", "alpha", "table"]);
        let alpha = root.get("alpha").map(|node| node.origin.clone());
        assert_eq!(alpha, Some(Origin::File { offset: 17 }));
        let Some(Value::Array(items)) = root
            .get("table")
            .and_then(|t| t.get("key"))
            .map(|n| &n.value)
        else {
            panic!("array expected");
        };
        assert!(matches!(items[1].value, Value::Float(x) if x == 2.5));
    }

    #[test]
    fn integers_keep_sign_and_radix() {
        let Ok(root) = parse_file("a = -1_000\nb = 0x10\n") else {
            panic!("should parse");
        };
        assert!(matches!(
            root.get("a").map(|n| &n.value),
            Some(Value::Integer(-1000))
        ));
        assert!(matches!(
            root.get("b").map(|n| &n.value),
            Some(Value::Integer(16))
        ));
    }

    #[test]
    fn override_values_fall_back_to_bare_strings() {
        assert!(matches!(parse_override_value("10m", 0).value, Value::String(ref s) if s == "10m"));
        assert!(
            matches!(parse_override_value("22:00", 0).value, Value::String(ref s) if s == "22:00")
        );
        assert!(matches!(
            parse_override_value("3", 0).value,
            Value::Integer(3)
        ));
        assert!(
            matches!(parse_override_value("\"a b\"", 0).value, Value::String(ref s) if s == "a b")
        );
        let table = parse_override_value("{ tumbling = \"1d\" }", 2);
        let inner = table.get("tumbling").map(|n| n.origin.clone());
        assert_eq!(
            inner,
            Some(Origin::Override {
                index: 2,
                suffix: ".tumbling".to_string()
            })
        );
    }

    #[test]
    fn reports_every_syntax_error() {
        let Err(errors) = parse_file("a = \nb = \"x\"\nc = ]\n") else {
            panic!("should fail");
        };
        assert!(!errors.is_empty());
    }
}
