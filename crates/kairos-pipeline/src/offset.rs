//! Offsets: how long after a trigger's anchor a step is due.
//!
//! ```toml
//! after = "30m"                                                      # Fixed
//! after = { by = "severity", values = { "1" = "2h" }, default = "48h" } # ByProperty
//! after = { cadence = 2.0, floor = "14d", min_history = 3 }          # Cadence (inactivity only)
//! ```

use crate::check::{format_number, Checker, SpanRule, DURATION_FORMS};
use crate::raw::{Node, Value};
use kairos_engine::config::Offset;
use kairos_model::Span;

/// What a particular offset field allows.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OffsetRules {
    /// `{ cadence = ... }` is allowed (inactivity `after` only).
    pub cadence: bool,
    /// Durations may be negative (schedules: "1h before").
    pub negative: bool,
}

impl OffsetRules {
    fn span_rule(self) -> SpanRule {
        if self.negative {
            SpanRule::Any
        } else {
            SpanRule::NonNegative
        }
    }

    /// Accepted text for such an offset.
    pub fn accepted(self) -> String {
        let mut forms = format!(
            "a duration ({DURATION_FORMS}{}), or {{ by = \"property\", values = {{ \"value\" = \"duration\", ... }}, default = \"duration\" }}",
            if self.negative { "; may be negative" } else { "" }
        );
        if self.cadence {
            forms.push_str(
                ", or { cadence = multiplier, floor = \"duration\", min_history = n, sparse_floor = \"duration\" (optional) }",
            );
        }
        forms
    }
}

/// Reads an offset.
pub(crate) fn offset(
    checker: &mut Checker,
    node: &Node,
    field: &str,
    rules: OffsetRules,
) -> Option<Offset> {
    match &node.value {
        Value::String(_) => checker
            .span(node, field, rules.span_rule())
            .map(Offset::Fixed),
        Value::Table(_) if node.get("cadence").is_some() => {
            if !rules.cadence {
                let problem =
                    "`cadence` offsets are only allowed for an inactivity trigger's `after`";
                checker.report(&node.origin, field, problem, rules.accepted());
                return None;
            }
            cadence(checker, node, field)
        }
        Value::Table(_) => by_property(checker, node, field, rules),
        _ => {
            checker.wrong_type(
                node,
                field,
                "a duration string or a table",
                &rules.accepted(),
            );
            None
        }
    }
}

/// `{ by = "severity", values = { "1" = "2h" }, default = "48h" }`.
fn by_property(
    checker: &mut Checker,
    node: &Node,
    field: &str,
    rules: OffsetRules,
) -> Option<Offset> {
    let fields = checker.table_of(node, field, &["by", "values", "default"])?;
    let span_rule = rules.span_rule();
    let property = checker.required(&fields, "by", "the name of an event property", |c, n, f| {
        c.text(n, f, "the name of an event property")
    });
    let values = checker.required(
        &fields,
        "values",
        "a table of property value = duration",
        |c, n, f| {
            let table = c.table(n, f, "a table of property value = duration")?;
            let mut values = Vec::new();
            let mut all_good = true;
            for entry in table.entries {
                match c.span(&entry.value, &table.field(&entry.key), span_rule) {
                    Some(span) => values.push((entry.key.clone(), span)),
                    None => all_good = false,
                }
            }
            all_good.then_some(values)
        },
    );
    let default = checker.required(&fields, "default", &span_rule.accepted(), |c, n, f| {
        c.span(n, f, span_rule)
    });
    Some(Offset::ByProperty {
        property: property?,
        values: values?,
        default: default?,
    })
}

/// `{ cadence = 2.0, floor = "14d", min_history = 3, sparse_floor = "30d" }`.
fn cadence(checker: &mut Checker, node: &Node, field: &str) -> Option<Offset> {
    let fields = checker.table_of(
        node,
        field,
        &["cadence", "floor", "min_history", "sparse_floor"],
    )?;
    const MULTIPLIER: &str = "a multiplier of the customer's median gap, more than 0 (e.g. 2.0)";
    let multiplier = checker.required(&fields, "cadence", MULTIPLIER, |c, n, f| {
        c.number(n, f, MULTIPLIER, |k| k > 0.0)
    });
    let floor_rule = SpanRule::NonNegative;
    let floor = checker.required(&fields, "floor", &floor_rule.accepted(), |c, n, f| {
        c.span(n, f, floor_rule)
    });
    let min_history = checker.required(
        &fields,
        "min_history",
        "an integer of 1 or more",
        |c, n, f| c.count(n, f, 1, u32::MAX),
    );
    let sparse_floor = checker.optional(&fields, "sparse_floor", None, |c, n, f| {
        c.span(n, f, SpanRule::Positive).map(Some)
    });
    Some(Offset::Cadence {
        multiplier: multiplier?,
        floor: floor?,
        min_history: min_history?,
        sparse_floor: sparse_floor?,
    })
}

/// The fixed span, if the offset is fixed.
pub(crate) fn fixed(offset: &Offset) -> Option<Span> {
    match offset {
        Offset::Fixed(span) => Some(*span),
        _ => None,
    }
}

/// The offset in words, for generated rule texts.
pub(crate) fn describe(offset: &Offset) -> String {
    match offset {
        Offset::Fixed(span) => span.to_string(),
        Offset::ByProperty {
            property, default, ..
        } => format!("a time set by {property} (default {default})"),
        Offset::Cadence {
            multiplier, floor, ..
        } => format!(
            "{} × the customer's median gap (at least {floor})",
            format_number(*multiplier)
        ),
    }
}
