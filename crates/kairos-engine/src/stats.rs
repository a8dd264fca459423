//! Counters the engine keeps about itself: what came in, what was rejected or
//! late, and per trigger what fired, was sent and was suppressed (by reason),
//! and per trigger and variant what converted (see [`VariantStats`]).

use crate::decision::Suppression;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Engine-wide counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Events handed to the engine.
    pub events: u64,
    /// Events skipped as duplicates (same `messageId` within the look-back).
    pub duplicates: u64,
    /// Events that arrived behind the watermark.
    pub late: u64,
    /// Late events discarded (`late_events = "drop"`).
    pub late_dropped: u64,
    /// Customers erased.
    pub erasures: u64,
    /// Per trigger, in pipeline order.
    pub triggers: Vec<TriggerStats>,
}

/// Idle customers' packing (see `settings.pack_idle_after`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Packing {
    /// Customers packed now.
    pub cold_now: usize,
    /// Their packed bytes (held in their slots, or in blocks of their own
    /// beyond 110 bytes).
    pub cold_bytes: usize,
    /// Times a customer was packed.
    pub packed: u64,
    /// Times a customer was unpacked (an event or timer for them).
    pub unpacked: u64,
}

/// Per-trigger counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TriggerStats {
    /// Trigger id.
    pub id: String,
    /// Times the pattern matched (a ladder's later steps are not counted).
    pub fired: u64,
    /// Actions sent (every step).
    pub sent: u64,
    /// Decisions suppressed, by reason.
    pub suppressed: BTreeMap<&'static str, u64>,
    /// Attribution per variant, in the trigger's order (one, `control`,
    /// for a trigger without variants).
    pub variants: Vec<VariantStats>,
}

/// What a trigger's actions (or, for the holdout group, the actions it
/// would have sent) were followed by, last touch: a conversion event
/// (`settings.conversion_event`) within `settings.attribution_window` of
/// the customer's latest action or held-out decision is that decision's.
///
/// - `conversions`: sent actions followed by at least one conversion (each
///   counts once, however many orders follow it);
/// - `revenue`: the revenue of every conversion attributed to them;
/// - the same for the holdout group's would-have-fired decisions
///   (`held_out`, the decisions suppressed with reason `holdout`).
///
/// The conversion rate is `conversions / sent`, the holdout's
/// `holdout_conversions / held_out`, and the uplift their difference: what
/// sending did beyond what these customers did anyway.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VariantStats {
    /// Variant name (`control` without variants; `all` for a trigger's sum).
    pub name: String,
    /// Actions sent.
    pub sent: u64,
    /// Sent actions a conversion was attributed to.
    pub conversions: u64,
    /// Revenue of the conversions attributed to sent actions.
    pub revenue: f64,
    /// Decisions suppressed because the customer is in the holdout group.
    pub held_out: u64,
    /// Held-out decisions a conversion was attributed to.
    pub holdout_conversions: u64,
    /// Revenue of the conversions attributed to held-out decisions.
    pub holdout_revenue: f64,
}

impl VariantStats {
    /// `conversions / sent` (`None` with nothing sent).
    pub fn conversion_rate(&self) -> Option<f64> {
        (self.sent > 0).then(|| self.conversions as f64 / self.sent as f64)
    }

    /// `holdout_conversions / held_out` (`None` with nothing held out).
    pub fn holdout_conversion_rate(&self) -> Option<f64> {
        (self.held_out > 0).then(|| self.holdout_conversions as f64 / self.held_out as f64)
    }

    /// The conversion rate minus the holdout's (`None` unless both are
    /// known).
    pub fn uplift(&self) -> Option<f64> {
        Some(self.conversion_rate()? - self.holdout_conversion_rate()?)
    }

    fn add(&mut self, other: &VariantStats) {
        self.sent += other.sent;
        self.conversions += other.conversions;
        self.revenue += other.revenue;
        self.held_out += other.held_out;
        self.holdout_conversions += other.holdout_conversions;
        self.holdout_revenue += other.holdout_revenue;
    }
}

impl TriggerStats {
    /// As `kairos backtest --summary-json` and `kairos report` give it:
    /// `{"fired","sent","suppressed":{reason:N}}`, the attribution fields
    /// of the sum over variants, and `"variants":{name:{"sent", the
    /// attribution fields}}`; rates to 4 decimals (`null` when undefined),
    /// money to cents.
    pub fn to_json(&self) -> Value {
        let mut fields = Map::new();
        fields.insert("fired".into(), self.fired.into());
        fields.insert("sent".into(), self.sent.into());
        fields.insert("suppressed".into(), json!(self.suppressed));
        fields.extend(attribution_json(&self.attribution()));
        let variants: Map<String, Value> = self
            .variants
            .iter()
            .map(|variant| {
                let mut fields = Map::new();
                fields.insert("sent".into(), variant.sent.into());
                fields.extend(attribution_json(variant));
                (variant.name.clone(), Value::Object(fields))
            })
            .collect();
        fields.insert("variants".into(), Value::Object(variants));
        Value::Object(fields)
    }

    /// The sum over its variants (named `all`).
    pub fn attribution(&self) -> VariantStats {
        let mut all = VariantStats {
            name: "all".to_string(),
            ..VariantStats::default()
        };
        for variant in &self.variants {
            all.add(variant);
        }
        all
    }

    pub(crate) fn record(&mut self, step: u32, suppressed: Option<Suppression>) {
        if step == 1 {
            self.fired += 1;
        }
        match suppressed {
            None => self.sent += 1,
            Some(reason) => *self.suppressed.entry(reason.as_str()).or_default() += 1,
        }
    }
}

/// A rate rounded to 4 decimals, `null` when undefined.
fn rate(value: Option<f64>) -> Value {
    value.map_or(Value::Null, |rate| json!((rate * 1e4).round() / 1e4))
}

/// Money rounded to cents.
fn money(amount: f64) -> Value {
    json!((amount * 100.0).round() / 100.0)
}

/// The attribution fields of a trigger or variant.
fn attribution_json(stats: &VariantStats) -> Map<String, Value> {
    let fields = json!({
        "conversions": stats.conversions,
        "revenue": money(stats.revenue),
        "conversion_rate": rate(stats.conversion_rate()),
        "holdout": {
            "decisions": stats.held_out,
            "conversions": stats.holdout_conversions,
            "revenue": money(stats.holdout_revenue),
            "conversion_rate": rate(stats.holdout_conversion_rate()),
        },
        "uplift": rate(stats.uplift()),
    });
    match fields {
        Value::Object(fields) => fields,
        _ => unreachable!("a JSON object"),
    }
}
