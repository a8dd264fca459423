//! The validation toolkit: a [`Checker`] that records every problem, and
//! readers that turn one raw value into one typed value or record why not.
//!
//! Readers return `None` when the value is unusable (the problem is already
//! recorded) so callers can keep going and find the next mistake. Callers
//! substitute a placeholder for a failed value only where nothing downstream
//! checks it: any recorded problem fails the whole compilation anyway.

use crate::diagnostic::Problem;
use crate::raw::{Entry, Node, Origin, Value};
use kairos_model::Span;

/// Accepted text for durations.
pub(crate) const DURATION_FORMS: &str =
    "a number followed by ms, s, m, h, d, w or y, possibly repeated (500ms, 30m, 24h, 3d, 2w, 3y, 23h30m)";

/// Which durations a field accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SpanRule {
    /// Any, including negative (`-30d`: "before").
    Any,
    /// Zero or more.
    NonNegative,
    /// More than zero.
    Positive,
    /// An hour or more.
    AtLeastAnHour,
}

impl SpanRule {
    /// Does `span` satisfy the rule?
    pub fn allows(self, span: Span) -> bool {
        match self {
            SpanRule::Any => true,
            SpanRule::NonNegative => span >= Span::ZERO,
            SpanRule::Positive => span > Span::ZERO,
            SpanRule::AtLeastAnHour => span >= Span::HOUR,
        }
    }

    /// The accepted text for this rule.
    pub fn accepted(self) -> String {
        match self {
            SpanRule::Any => {
                format!("a duration of at most 100y, `-` in front for \"before\": {DURATION_FORMS}")
            }
            SpanRule::NonNegative => {
                format!("a duration from 0s to 100y: {DURATION_FORMS}")
            }
            SpanRule::Positive => {
                format!("a duration of more than 0s, at most 100y: {DURATION_FORMS}")
            }
            SpanRule::AtLeastAnHour => {
                format!("a duration from 1h to 100y: {DURATION_FORMS}")
            }
        }
    }
}

/// Collects problems while the document is validated.
#[derive(Default)]
pub(crate) struct Checker {
    /// Every problem found so far.
    pub problems: Vec<Problem>,
    /// How many `[[stores]]` the pipeline has (for `near_store_km`).
    pub store_count: usize,
}

/// A table being read: its node (missing-field problems point at it), its
/// entries and its dotted path.
pub(crate) struct Fields<'n> {
    /// The table's node.
    pub node: &'n Node,
    /// The table's entries.
    pub entries: &'n [Entry],
    /// Dotted path of the table (`""` for the document root).
    pub path: String,
}

impl<'n> Fields<'n> {
    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|entry| entry.key == key)
            .map(|entry| &entry.value)
    }

    /// Is `key` present?
    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Dotted path of `key` in this table.
    pub fn field(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Reports every key not in `accepted` as an unknown field.
    pub fn check_keys(&self, checker: &mut Checker, accepted: &[&str]) {
        for entry in self.entries {
            if !accepted.contains(&entry.key.as_str()) {
                checker.report(
                    &entry.key_origin,
                    &self.field(&entry.key),
                    format!("unknown field `{}`", entry.key),
                    accepted.join(", "),
                );
            }
        }
    }
}

impl Checker {
    /// Records a problem.
    pub fn report(
        &mut self,
        origin: &Origin,
        field: &str,
        problem: impl Into<String>,
        accepted: impl Into<String>,
    ) {
        self.problems.push(Problem {
            origin: origin.clone(),
            field: field.to_string(),
            problem: problem.into(),
            accepted: accepted.into(),
        });
    }

    /// Records "expected X, found Y".
    pub fn wrong_type(&mut self, node: &Node, field: &str, expected: &str, accepted: &str) {
        let problem = format!("expected {expected}, found {}", node.describe());
        self.report(&node.origin, field, problem, accepted);
    }

    /// Records "missing required field" against the table.
    pub fn missing(&mut self, fields: &Fields<'_>, key: &str, accepted: &str) {
        self.report(
            &fields.node.origin,
            &fields.field(key),
            format!("missing required field `{key}`"),
            accepted,
        );
    }

    /// Reads `key` with `read` when present, else yields `default`.
    pub fn optional<T>(
        &mut self,
        fields: &Fields<'_>,
        key: &str,
        default: T,
        read: impl FnOnce(&mut Checker, &Node, &str) -> Option<T>,
    ) -> Option<T> {
        match fields.get(key) {
            Some(node) => read(self, node, &fields.field(key)),
            None => Some(default),
        }
    }

    /// Reads `key` with `read`, reporting it missing (accepted: `accepted`)
    /// when absent.
    pub fn required<T>(
        &mut self,
        fields: &Fields<'_>,
        key: &str,
        accepted: &str,
        read: impl FnOnce(&mut Checker, &Node, &str) -> Option<T>,
    ) -> Option<T> {
        match fields.get(key) {
            Some(node) => read(self, node, &fields.field(key)),
            None => {
                self.missing(fields, key, accepted);
                None
            }
        }
    }

    /// A table (inline or `[header]`), without checking its keys.
    pub fn table<'n>(&mut self, node: &'n Node, field: &str, accepted: &str) -> Option<Fields<'n>> {
        match node.entries() {
            Some(entries) => Some(Fields {
                node,
                entries,
                path: field.to_string(),
            }),
            None => {
                self.wrong_type(node, field, "a table", accepted);
                None
            }
        }
    }

    /// A table whose keys must all be in `keys`.
    pub fn table_of<'n>(
        &mut self,
        node: &'n Node,
        field: &str,
        keys: &[&str],
    ) -> Option<Fields<'n>> {
        let accepted = format!("a table with keys {}", keys.join(", "));
        let fields = self.table(node, field, &accepted)?;
        fields.check_keys(self, keys);
        Some(fields)
    }

    /// An array.
    pub fn array<'n>(&mut self, node: &'n Node, field: &str, accepted: &str) -> Option<&'n [Node]> {
        match &node.value {
            Value::Array(items) => Some(items),
            _ => {
                self.wrong_type(node, field, "an array", accepted);
                None
            }
        }
    }

    /// Whether `items`, the tables of array `field`, are at most `most`;
    /// if not, reports the first one too many, saying that `whose` has how
    /// many `what` and that at most `most` `[[tables]]` are accepted.
    pub fn at_most(
        &mut self,
        items: &[Node],
        field: &str,
        most: usize,
        (whose, what, tables): (&str, &str, &str),
    ) -> bool {
        let Some(extra) = items.get(most) else {
            return true;
        };
        self.report(
            &extra.origin,
            &format!("{field}[{most}]"),
            format!("{whose} has {} {what}", items.len()),
            format!("at most {most} [[{tables}]] tables"),
        );
        false
    }

    /// An array whose items are each read by `item` (field `field[i]`).
    /// Yields `None` if the array or any item is unusable.
    pub fn list<T>(
        &mut self,
        node: &Node,
        field: &str,
        accepted: &str,
        mut item: impl FnMut(&mut Checker, &Node, &str) -> Option<T>,
    ) -> Option<Vec<T>> {
        let items = self.array(node, field, accepted)?;
        let mut values = Vec::with_capacity(items.len());
        let mut all_good = true;
        for (position, node) in items.iter().enumerate() {
            match item(self, node, &format!("{field}[{position}]")) {
                Some(value) => values.push(value),
                None => all_good = false,
            }
        }
        all_good.then_some(values)
    }

    /// Any string.
    pub fn string<'n>(&mut self, node: &'n Node, field: &str, accepted: &str) -> Option<&'n str> {
        match &node.value {
            Value::String(text) => Some(text),
            _ => {
                self.wrong_type(node, field, "a string", accepted);
                None
            }
        }
    }

    /// A string that is not empty (event names, offers, property names).
    pub fn text(&mut self, node: &Node, field: &str, accepted: &str) -> Option<String> {
        let text = self.string(node, field, accepted)?;
        if text.trim().is_empty() {
            self.report(&node.origin, field, "must not be empty", accepted);
            return None;
        }
        Some(text.to_string())
    }

    /// A string made only of the characters `allowed` accepts (ids, names,
    /// channels), at least one of them.
    pub fn identifier(
        &mut self,
        node: &Node,
        field: &str,
        accepted: &str,
        allowed: fn(char) -> bool,
    ) -> Option<String> {
        let text = self.string(node, field, accepted)?;
        if text.is_empty() || !text.chars().all(allowed) {
            self.report(
                &node.origin,
                field,
                format!("{text:?} is not allowed"),
                accepted,
            );
            return None;
        }
        Some(text.to_string())
    }

    /// A channel name (`push`, `service_desk`).
    pub fn channel(&mut self, node: &Node, field: &str) -> Option<String> {
        self.identifier(
            node,
            field,
            "a channel name of lowercase letters and `_`, e.g. push, sms, email, wechat, pos, service_desk, ops",
            |c| c.is_ascii_lowercase() || c == '_',
        )
    }

    /// `true` or `false`.
    pub fn boolean(&mut self, node: &Node, field: &str) -> Option<bool> {
        match node.value {
            Value::Boolean(flag) => Some(flag),
            _ => {
                self.wrong_type(node, field, "a boolean", "true or false");
                None
            }
        }
    }

    /// An integer within `min..=max`.
    pub fn integer(&mut self, node: &Node, field: &str, min: i64, max: i64) -> Option<i64> {
        let accepted = if max == i64::MAX {
            format!("an integer of {min} or more")
        } else {
            format!("an integer from {min} to {max}")
        };
        match node.value {
            Value::Integer(number) if (min..=max).contains(&number) => Some(number),
            Value::Integer(number) => {
                // Values beyond 64 bits arrive clamped (see `raw`): do not
                // quote the clamp as if it had been written.
                let problem = if number == i64::MAX || number == i64::MIN {
                    "the integer is too large".to_string()
                } else {
                    format!("{number} is out of range")
                };
                self.report(&node.origin, field, problem, accepted);
                None
            }
            _ => {
                self.wrong_type(node, field, "an integer", &accepted);
                None
            }
        }
    }

    /// An integer within `min..=max` that fits a `u32`.
    pub fn count(&mut self, node: &Node, field: &str, min: u32, max: u32) -> Option<u32> {
        let number = self.integer(node, field, min.into(), max.into())?;
        u32::try_from(number).ok()
    }

    /// A number (integer or float) that `allowed` accepts; `accepted` says
    /// which ("a number from 0 to 100").
    pub fn number(
        &mut self,
        node: &Node,
        field: &str,
        accepted: &str,
        allowed: fn(f64) -> bool,
    ) -> Option<f64> {
        let number = match node.value {
            Value::Integer(number) => number as f64,
            Value::Float(number) => number,
            _ => {
                self.wrong_type(node, field, "a number", accepted);
                return None;
            }
        };
        if number.is_finite() && allowed(number) {
            Some(number)
        } else {
            self.report(
                &node.origin,
                field,
                format!("{number} is out of range"),
                accepted,
            );
            None
        }
    }

    /// A percentage from 0 to 100.
    pub fn percent(&mut self, node: &Node, field: &str) -> Option<f64> {
        self.number(node, field, "a number from 0 to 100", |p| {
            (0.0..=100.0).contains(&p)
        })
    }

    /// A duration string in `Span` notation that satisfies `rule`.
    pub fn span(&mut self, node: &Node, field: &str, rule: SpanRule) -> Option<Span> {
        let text = self.string(node, field, &rule.accepted())?;
        match Span::parse(text) {
            Ok(span) if span > Span::LONGEST || span < Span(-Span::LONGEST.0) => {
                let problem = format!("{text} is longer than 100y");
                self.report(&node.origin, field, problem, rule.accepted());
                None
            }
            Ok(span) if rule.allows(span) => Some(span),
            Ok(span) => {
                let problem = match rule {
                    SpanRule::Positive => format!("must be more than 0s, not {span}"),
                    SpanRule::AtLeastAnHour => format!("must be at least 1h, not {span}"),
                    _ => format!("{span} must not be negative"),
                };
                self.report(&node.origin, field, problem, rule.accepted());
                None
            }
            Err(_) => {
                let problem = format!("{text:?} is not a duration");
                self.report(&node.origin, field, problem, rule.accepted());
                None
            }
        }
    }

    /// One of a fixed set of words.
    pub fn choice<T: Copy>(
        &mut self,
        node: &Node,
        field: &str,
        options: &[(&str, T)],
    ) -> Option<T> {
        let names: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
        let accepted = names.join(", ");
        let text = self.string(node, field, &accepted)?;
        match options.iter().find(|(name, _)| *name == text) {
            Some((_, value)) => Some(*value),
            None => {
                self.report(
                    &node.origin,
                    field,
                    format!("unknown value {text:?}"),
                    accepted,
                );
                None
            }
        }
    }

    /// A local time of day `HH:MM` (24 h), as minutes after midnight. An
    /// unquoted TOML local time (`22:00`) is accepted too.
    pub fn time_of_day(&mut self, node: &Node, field: &str) -> Option<u16> {
        const ACCEPTED: &str = "a 24-hour local time \"HH:MM\", e.g. \"09:00\" or \"22:30\"";
        let text = match &node.value {
            Value::String(text) => text.as_str(),
            Value::Datetime(text) => text.strip_suffix(":00").unwrap_or(text),
            _ => {
                self.wrong_type(node, field, "a string", ACCEPTED);
                return None;
            }
        };
        let parsed = text.split_once(':').and_then(|(hours, minutes)| {
            let two_digits =
                |part: &str| part.len() == 2 && part.bytes().all(|b| b.is_ascii_digit());
            if !two_digits(hours) || !two_digits(minutes) {
                return None;
            }
            let hours: u16 = hours.parse().ok()?;
            let minutes: u16 = minutes.parse().ok()?;
            (hours < 24 && minutes < 60).then_some(hours * 60 + minutes)
        });
        if parsed.is_none() {
            self.report(
                &node.origin,
                field,
                format!("{text:?} is not a time of day"),
                ACCEPTED,
            );
        }
        parsed
    }
}

/// Ids of triggers and variants: lowercase letters, digits and `_`.
pub(crate) fn is_id_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'
}

/// Formats a number the way a person would write it (`2`, `2.5`).
pub(crate) fn format_number(number: f64) -> String {
    if number.fract() == 0.0 && number.abs() < 1e15 {
        format!("{}", number as i64)
    } else {
        format!("{number}")
    }
}
