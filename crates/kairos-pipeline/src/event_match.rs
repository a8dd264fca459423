//! Event matches: which events a pattern reacts to.
//!
//! Written either as a plain event name (`"Order Completed"`, `"*"` for any
//! event) or as a table:
//!
//! ```toml
//! start = { event = "Review Submitted", where = { rating = { lte = 2 } }, identified = true }
//! ```
//!
//! Each `where` entry is a property and a test: a scalar means "equals"; a
//! table holds exactly one operator (`lt`, `lte`, `gt`, `gte`, `in`,
//! `exists`, `near_store_km`).

use crate::check::{format_number, Checker};
use crate::raw::{Node, Value};
use kairos_engine::config::{EventMatch, FilterTest, PropertyFilter};

/// Accepted text for an event match.
pub(crate) const MATCH_FORMS: &str = "an event name (\"Order Completed\"), \"*\" for any event, or a table { event = \"...\", where = { property = value or { lt|lte|gt|gte|in|exists|near_store_km = ... } }, identified = true|false }";

/// Accepted text for a list of event matches.
pub(crate) const MATCH_LIST_FORMS: &str = "an array of event matches, each an event name, \"*\", or a table { event = \"...\", where = { ... }, identified = ... }";

/// Keys of an event-match table.
const MATCH_KEYS: &[&str] = &["event", "where", "identified"];

/// Operators of a `where` test table.
const OPERATORS: &[&str] = &["lt", "lte", "gt", "gte", "in", "exists", "near_store_km"];

/// Reads one event match.
pub(crate) fn event_match(checker: &mut Checker, node: &Node, field: &str) -> Option<EventMatch> {
    match &node.value {
        Value::String(_) => {
            let name = checker.text(node, field, MATCH_FORMS)?;
            Some(EventMatch::named(&name))
        }
        Value::Table(_) => {
            let fields = checker.table_of(node, field, MATCH_KEYS)?;
            let name = checker.required(&fields, "event", MATCH_FORMS, |c, n, f| {
                c.text(n, f, "an event name, or \"*\" for any event")
            });
            let filters = checker.optional(&fields, "where", Vec::new(), filters);
            let identified = checker.optional(&fields, "identified", None, |c, n, f| {
                c.boolean(n, f).map(Some)
            });
            Some(EventMatch {
                name: name?,
                filters: filters?,
                identified: identified?,
            })
        }
        _ => {
            checker.wrong_type(node, field, "an event name or a table", MATCH_FORMS);
            None
        }
    }
}

/// Reads an array of event matches.
pub(crate) fn event_matches(
    checker: &mut Checker,
    node: &Node,
    field: &str,
) -> Option<Vec<EventMatch>> {
    checker.list(node, field, MATCH_LIST_FORMS, event_match)
}

/// Reads a `where` table.
fn filters(checker: &mut Checker, node: &Node, field: &str) -> Option<Vec<PropertyFilter>> {
    let fields = checker.table(
        node,
        field,
        "a table of property = value, or property = { operator = value }",
    )?;
    let mut filters = Vec::new();
    let mut all_good = true;
    for entry in fields.entries {
        let field = fields.field(&entry.key);
        match test(checker, &entry.value, &field) {
            Some(test) => filters.push(PropertyFilter {
                property: entry.key.clone(),
                test,
            }),
            None => all_good = false,
        }
    }
    all_good.then_some(filters)
}

/// Reads the test for one property.
fn test(checker: &mut Checker, node: &Node, field: &str) -> Option<FilterTest> {
    const TEST_FORMS: &str = "a string, number or boolean (equals), or a table with exactly one of lt, lte, gt, gte (numbers), in (array), exists (true), near_store_km (km > 0)";
    if let Some(value) = scalar(node) {
        return Some(FilterTest::Equals(value));
    }
    let Some(entries) = node.entries() else {
        let hint = if matches!(node.value, Value::Array(_)) {
            "; write { in = [...] } for one of several values"
        } else {
            ""
        };
        checker.wrong_type(
            node,
            field,
            &format!("a scalar or an operator table{hint}"),
            TEST_FORMS,
        );
        return None;
    };
    let fields = checker.table_of(node, field, OPERATORS)?;
    let [entry] = entries else {
        let found: Vec<&str> = entries.iter().map(|e| e.key.as_str()).collect();
        let problem = if found.is_empty() {
            "empty test table".to_string()
        } else {
            format!("one operator per property, found {}", found.join(", "))
        };
        checker.report(&node.origin, field, problem, TEST_FORMS);
        return None;
    };
    if !OPERATORS.contains(&entry.key.as_str()) {
        // Already reported as an unknown field by `table_of`.
        return None;
    }
    let value = &entry.value;
    let field = fields.field(&entry.key);
    let any_number: fn(f64) -> bool = |_| true;
    match entry.key.as_str() {
        "lt" => checker
            .number(value, &field, "a number", any_number)
            .map(FilterTest::LessThan),
        "lte" => checker
            .number(value, &field, "a number", any_number)
            .map(FilterTest::AtMost),
        "gt" => checker
            .number(value, &field, "a number", any_number)
            .map(FilterTest::GreaterThan),
        "gte" => checker
            .number(value, &field, "a number", any_number)
            .map(FilterTest::AtLeast),
        "in" => checker
            .list(
                value,
                &field,
                "an array of strings, numbers or booleans",
                |c, n, f| {
                    let found = scalar(n);
                    if found.is_none() {
                        c.wrong_type(
                            n,
                            f,
                            "a string, number or boolean",
                            "a string, number or boolean",
                        );
                    }
                    found
                },
            )
            .map(FilterTest::OneOf),
        "exists" => match checker.boolean(value, &field)? {
            true => Some(FilterTest::Exists),
            false => {
                checker.report(
                    &value.origin,
                    &field,
                    "`exists = false` is not supported",
                    "exists = true",
                );
                None
            }
        },
        _ => {
            let km =
                checker.number(value, &field, "a radius in kilometres, more than 0", |km| {
                    km > 0.0
                })?;
            if checker.store_count == 0 {
                checker.report(
                    &value.origin,
                    &field,
                    "near_store_km needs store locations, but the pipeline has no [[stores]]",
                    "at least one [[stores]] table with id, lat and lon",
                );
                return None;
            }
            Some(FilterTest::NearStore { within_km: km })
        }
    }
}

/// A scalar as a JSON value, or `None` for arrays, tables and date-times.
fn scalar(node: &Node) -> Option<serde_json::Value> {
    match &node.value {
        Value::String(text) => Some(serde_json::Value::String(text.clone())),
        Value::Integer(number) => Some((*number).into()),
        Value::Float(number) => {
            serde_json::Number::from_f64(*number).map(serde_json::Value::Number)
        }
        Value::Boolean(flag) => Some(serde_json::Value::Bool(*flag)),
        _ => None,
    }
}

/// The match in words, for generated rule texts: `Store Visited where method
/// in [qr, wifi] (identified)`.
pub(crate) fn describe(event: &EventMatch) -> String {
    let mut text = if event.name == "*" {
        "any event".to_string()
    } else {
        event.name.clone()
    };
    let filters: Vec<String> = event.filters.iter().map(describe_filter).collect();
    if !filters.is_empty() {
        text.push_str(" where ");
        text.push_str(&filters.join(" and "));
    }
    match event.identified {
        Some(true) => text.push_str(" (identified)"),
        Some(false) => text.push_str(" (anonymous)"),
        None => {}
    }
    text
}

/// Several matches in words, joined with "or".
pub(crate) fn describe_any(events: &[EventMatch]) -> String {
    let texts: Vec<String> = events.iter().map(describe).collect();
    texts.join(" or ")
}

fn describe_filter(filter: &PropertyFilter) -> String {
    let property = &filter.property;
    match &filter.test {
        FilterTest::Equals(value) => format!("{property} = {}", plain(value)),
        FilterTest::OneOf(values) => {
            let values: Vec<String> = values.iter().map(plain).collect();
            format!("{property} in [{}]", values.join(", "))
        }
        FilterTest::LessThan(x) => format!("{property} < {}", format_number(*x)),
        FilterTest::AtMost(x) => format!("{property} ≤ {}", format_number(*x)),
        FilterTest::GreaterThan(x) => format!("{property} > {}", format_number(*x)),
        FilterTest::AtLeast(x) => format!("{property} ≥ {}", format_number(*x)),
        FilterTest::Exists => format!("{property} is set"),
        FilterTest::NearStore { within_km } => {
            format!("near a store (within {} km)", format_number(*within_km))
        }
    }
}

/// A JSON scalar without quotes.
fn plain(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}
