//! `[[trigger]]` tables: the fields every trigger has (id, channel, ladder,
//! variants ...), combined with the kind-specific pattern from
//! [`crate::pattern`] into an engine [`Trigger`].

use crate::check::{is_id_char, Checker, Fields, SpanRule};
use crate::event_match::event_matches;
use crate::offset::{self, offset, OffsetRules};
use crate::pattern::{kind_parts, Kind};
use crate::raw::{Node, Origin, Value};
use crate::rule_text::rule_text;
use kairos_engine::config::{
    Category, KeySpec, Offset, PayloadSpec, QuietHoursMode, Step, Trigger, Variant,
};
use kairos_model::Span;

/// Fields every trigger may have, whatever its kind.
pub(crate) const COMMON_KEYS: &[&str] = &[
    "id",
    "kind",
    "rule",
    "key",
    "priority",
    "category",
    "channel",
    "offer",
    "cooldown",
    "expires_after",
    "quiet_hours",
    "deliver_within",
    "cancel_on",
    "rollout_percent",
    "payload",
    "ladder",
    "variants",
];

/// Keys of one `[[trigger.ladder]]` step.
pub(crate) const LADDER_KEYS: &[&str] = &["at", "channel", "offer"];

/// Keys of one `[[trigger.variants]]` table.
pub(crate) const VARIANT_KEYS: &[&str] = &["name", "weight", "after", "channel", "offer"];

/// Keys of `payload`.
pub(crate) const PAYLOAD_KEYS: &[&str] = &["cart", "properties", "recommendations"];

const ID_FORMS: &str =
    "lowercase letters, digits and `_` (e.g. \"abandoned_cart\"), unique in the pipeline";
const KEY_FORMS: &str =
    "\"customer\", an event property (\"cart_id\"), or list[].field (\"products[].product_id\")";
const OFFER_FORMS: &str = "an offer code, e.g. \"CART10\"";

/// Steps in one trigger's ladder (step 1, `repeat` and `[[trigger.ladder]]`
/// together): the engine numbers steps in a byte, and no journey needs more.
pub const MAX_STEPS: usize = 100;

/// Triggers in one pipeline: the engine numbers them in 16 bits, and a
/// pipeline is a file people read.
pub const MAX_TRIGGERS: usize = 1000;

/// Variants of one trigger: the engine numbers them in a byte.
pub const MAX_VARIANTS: usize = 100;

/// The largest variant weight: with at most [`MAX_VARIANTS`] variants, the
/// weights add up without overflow.
pub const MAX_WEIGHT: u32 = 1_000_000;

/// Reads every `[[trigger]]`, in file order.
pub(crate) fn triggers(checker: &mut Checker, node: Option<&Node>) -> Vec<Trigger> {
    let Some(node) = node else {
        return Vec::new();
    };
    let Some(items) = checker.array(node, "trigger", "[[trigger]] tables") else {
        return Vec::new();
    };
    let limit = ("the pipeline", "triggers", "trigger");
    if !checker.at_most(items, "trigger", MAX_TRIGGERS, limit) {
        return Vec::new();
    }
    let mut ids: Vec<String> = Vec::new();
    items
        .iter()
        .enumerate()
        .filter_map(|(position, item)| trigger(checker, item, position, &mut ids))
        .collect()
}

/// One step's offset with where it was written, for the ordering check.
struct PlacedStep {
    step: Step,
    origin: Origin,
    field: String,
}

/// Reads one trigger. `ids` holds the ids seen so far (duplicates are errors).
fn trigger(
    checker: &mut Checker,
    node: &Node,
    position: usize,
    ids: &mut Vec<String>,
) -> Option<Trigger> {
    let mut fields = checker.table(node, &format!("trigger[{position}]"), "a [[trigger]] table")?;

    // The id names the trigger in every later diagnostic, so read it first.
    let id = checker.required(&fields, "id", ID_FORMS, |c, n, f| {
        c.identifier(n, f, ID_FORMS, is_id_char)
    });
    if let (Some(id), Some(id_node)) = (&id, fields.get("id")) {
        fields.path = format!("trigger.{id}");
        if ids.contains(id) {
            checker.report(
                &id_node.origin,
                &fields.field("id"),
                format!("another trigger already has id {id:?}"),
                ID_FORMS,
            );
        }
        ids.push(id.clone());
    }

    let kind = checker.required(&fields, "kind", &kind_names(), |c, n, f| {
        c.choice(n, f, &Kind::choices())
    });
    check_keys(checker, &fields, kind);

    let rule = checker.optional(&fields, "rule", None, |c, n, f| {
        c.text(n, f, "a description of the rule in words").map(Some)
    });
    let key = checker.optional(&fields, "key", KeySpec::Customer, key_spec);
    if let (Some(Kind::Rate), Some(key), Some(node)) = (kind, &key, fields.get("key")) {
        if *key != KeySpec::Customer {
            checker.report(
                &node.origin,
                &fields.field("key"),
                "rate triggers count events across all customers and cannot be keyed",
                "\"customer\" (or leave key out)",
            );
        }
    }
    let priority = checker.optional(&fields, "priority", 50, |c, n, f| c.count(n, f, 0, 100));
    let default_category = if kind == Some(Kind::Rate) {
        Category::Ops
    } else {
        Category::Targeted
    };
    let category = checker.optional(&fields, "category", default_category, |c, n, f| {
        c.choice(
            n,
            f,
            &[
                ("targeted", Category::Targeted),
                ("content", Category::Content),
                ("transactional", Category::Transactional),
                ("ops", Category::Ops),
            ],
        )
    });
    let channel = if kind == Some(Kind::Rate) {
        checker.optional(&fields, "channel", "ops".to_string(), Checker::channel)
    } else {
        checker.required(
            &fields,
            "channel",
            "the channel of step 1, e.g. push, sms, email, wechat",
            Checker::channel,
        )
    };
    let offer = checker.optional(&fields, "offer", None, |c, n, f| {
        c.text(n, f, OFFER_FORMS).map(Some)
    });
    let cooldown = checker.optional(&fields, "cooldown", Span::ZERO, |c, n, f| {
        c.span(n, f, SpanRule::NonNegative)
    });
    let expires_after = checker.optional(&fields, "expires_after", Span::HOUR * 24, |c, n, f| {
        c.span(n, f, SpanRule::Positive)
    });
    let quiet_default = match category.unwrap_or(default_category) {
        Category::Targeted | Category::Content => QuietHoursMode::Defer,
        Category::Transactional | Category::Ops => QuietHoursMode::Ignore,
    };
    let quiet_hours = checker.optional(&fields, "quiet_hours", quiet_default, |c, n, f| {
        let mode = c.choice(
            n,
            f,
            &[
                ("defer", QuietHoursMode::Defer),
                ("drop", QuietHoursMode::Drop),
                ("ignore", QuietHoursMode::Ignore),
            ],
        )?;
        // The policy sends transactional and ops messages at any hour; a
        // mode that says otherwise would be silently ignored.
        if quiet_default == QuietHoursMode::Ignore && mode != QuietHoursMode::Ignore {
            c.report(
                &n.origin,
                f,
                "transactional and ops triggers are sent at any hour".to_string(),
                "\"ignore\", or leave it out".to_string(),
            );
            return None;
        }
        Some(mode)
    });
    let deliver_within = checker.optional(&fields, "deliver_within", Span::ZERO, |c, n, f| {
        c.span(n, f, SpanRule::NonNegative)
    });
    let cancel_on = checker.optional(&fields, "cancel_on", Vec::new(), event_matches);
    let rollout_percent = checker.optional(&fields, "rollout_percent", 100.0, Checker::percent);
    let payload = checker.optional(&fields, "payload", PayloadSpec::default(), payload);

    // The kind-specific fields, then the ladder built on step 1.
    let kind = kind?;
    let parts = kind_parts(checker, &fields, kind);
    let first_step = (|| {
        Some(Step {
            at: parts.first_at.clone()?,
            channel: channel.clone()?.into(),
            offer: offer.clone()?.map(Into::into),
        })
    })();
    let steps = steps(checker, &fields, kind, first_step, &parts.repeat_at);
    let variants = variants(checker, &fields, kind, steps.as_deref());

    let pattern = parts.pattern?;
    let first_at = parts.first_at?;
    let rule = match rule? {
        Some(rule) => rule,
        None => rule_text(&pattern, &first_at),
    };
    Some(Trigger {
        id: id?.into(),
        rule: rule.into(),
        key: key?,
        pattern,
        steps: steps?,
        priority: priority?,
        category: category?,
        cooldown: cooldown?,
        expires_after: expires_after?,
        quiet_hours: quiet_hours?,
        deliver_within: deliver_within?,
        cancel_on: cancel_on?,
        variants: variants?,
        rollout_percent: rollout_percent?,
        payload: payload?,
    })
}

/// The accepted kinds, as a list.
fn kind_names() -> String {
    let names: Vec<&str> = Kind::ALL.iter().map(|kind| kind.name()).collect();
    names.join(", ")
}

/// Reports fields that are neither common nor of the trigger's kind; a
/// field of another kind says so.
fn check_keys(checker: &mut Checker, fields: &Fields<'_>, kind: Option<Kind>) {
    for entry in fields.entries {
        let key = entry.key.as_str();
        if COMMON_KEYS.contains(&key) {
            continue;
        }
        let owners: Vec<&str> = Kind::ALL
            .iter()
            .filter(|other| other.fields().contains(&key))
            .map(|other| other.name())
            .collect();
        let (problem, accepted) = match kind {
            Some(kind) if kind.fields().contains(&key) => continue,
            // An unknown kind is reported already; don't pile on.
            None if !owners.is_empty() => continue,
            Some(kind) => {
                let problem = if owners.is_empty() {
                    format!("unknown field `{key}`")
                } else {
                    format!(
                        "`{key}` is a field of {} triggers, not of {} triggers",
                        owners.join("/"),
                        kind.name()
                    )
                };
                let accepted = format!(
                    "for {} triggers: {}; for every trigger: {}",
                    kind.name(),
                    kind.fields().join(", "),
                    COMMON_KEYS.join(", ")
                );
                (problem, accepted)
            }
            None => (
                format!("unknown field `{key}`"),
                format!(
                    "{} and the fields of the trigger's kind",
                    COMMON_KEYS.join(", ")
                ),
            ),
        };
        checker.report(&entry.key_origin, &fields.field(key), problem, accepted);
    }
}

/// `"customer"`, `"cart_id"`, `"products[].product_id"`.
fn key_spec(checker: &mut Checker, node: &Node, field: &str) -> Option<KeySpec> {
    let text = checker.text(node, field, KEY_FORMS)?;
    let plain = |part: &str| !part.is_empty() && !part.contains(['[', ']', ' ', '\t']);
    if text == "customer" {
        return Some(KeySpec::Customer);
    }
    if let Some((list, item_field)) = text.split_once("[].") {
        if plain(list) && plain(item_field) {
            return Some(KeySpec::ListItem {
                list: list.to_string(),
                field: item_field.to_string(),
            });
        }
    } else if plain(&text) {
        return Some(KeySpec::Property(text));
    }
    checker.report(
        &node.origin,
        field,
        format!("{text:?} is not a key"),
        KEY_FORMS,
    );
    None
}

/// `payload = { cart = true, properties = ["store_id"] }`.
fn payload(checker: &mut Checker, node: &Node, field: &str) -> Option<PayloadSpec> {
    let fields = checker.table_of(node, field, PAYLOAD_KEYS)?;
    let cart = checker.optional(&fields, "cart", false, Checker::boolean);
    let properties = checker.optional(&fields, "properties", Vec::new(), |c, n, f| {
        c.list(n, f, "an array of event property names", |c, n, f| {
            c.text(n, f, "a property name")
        })
    });
    let recommendations = checker.optional(&fields, "recommendations", 0, recommendations);
    Some(PayloadSpec {
        cart: cart?,
        properties: properties?,
        recommendations: recommendations?,
    })
}

/// How many items an action recommends when asked with `true`.
const DEFAULT_RECOMMENDATIONS: usize = 4;
/// The most an action may carry.
const MAX_RECOMMENDATIONS: i64 = 50;

/// `recommendations = true` (4 items), `false`, or a count.
fn recommendations(checker: &mut Checker, node: &Node, field: &str) -> Option<usize> {
    match node.value {
        Value::Boolean(true) => Some(DEFAULT_RECOMMENDATIONS),
        Value::Boolean(false) => Some(0),
        Value::Integer(_) => checker
            .integer(node, field, 0, MAX_RECOMMENDATIONS)
            .map(|count| count as usize),
        _ => {
            let accepted = format!(
                "true (top {DEFAULT_RECOMMENDATIONS}), false, or a count from 0 to {MAX_RECOMMENDATIONS}"
            );
            checker.wrong_type(node, field, "a boolean or an integer", &accepted);
            None
        }
    }
}

/// Builds the ladder: step 1 (`None` if its fields were invalid), the steps
/// `repeat` adds, then `[[trigger.ladder]]`. Fixed offsets must increase.
fn steps(
    checker: &mut Checker,
    fields: &Fields<'_>,
    kind: Kind,
    first: Option<Step>,
    repeat_at: &[Span],
) -> Option<Vec<Step>> {
    let first_key = match kind {
        Kind::Absence | Kind::Inactivity => "after",
        Kind::Schedule => "offset",
        _ => "delay",
    };
    let mut all_good = first.is_some();
    let mut placed: Vec<PlacedStep> = Vec::new();
    if let Some(first) = first {
        let repeat = fields.get("repeat").unwrap_or(fields.node);
        for at in repeat_at {
            placed.push(PlacedStep {
                step: Step {
                    at: Offset::Fixed(*at),
                    ..first.clone()
                },
                origin: repeat.origin.clone(),
                field: fields.field("repeat"),
            });
        }
        placed.insert(
            0,
            PlacedStep {
                step: first,
                origin: fields.get(first_key).unwrap_or(fields.node).origin.clone(),
                field: fields.field(first_key),
            },
        );
    }
    // Ladder steps default to step 1's channel (a placeholder when step 1
    // is invalid: the trigger fails anyway).
    let first_channel = placed
        .first()
        .map(|p| p.step.channel.to_string())
        .unwrap_or_default();

    if let Some(node) = fields.get("ladder") {
        let rules = OffsetRules {
            cadence: false,
            negative: kind == Kind::Schedule,
        };
        let ladder_field = fields.field("ladder");
        let items = checker.array(
            node,
            &ladder_field,
            "[[trigger.ladder]] tables with at, channel and offer",
        );
        for (position, item) in items.unwrap_or_default().iter().enumerate() {
            let field = format!("{ladder_field}[{position}]");
            let Some(step) = checker.table_of(item, &field, LADDER_KEYS) else {
                all_good = false;
                continue;
            };
            let at = checker.required(&step, "at", &rules.accepted(), |c, n, f| {
                offset(c, n, f, rules)
            });
            let channel = checker
                .optional(&step, "channel", first_channel.clone(), Checker::channel)
                .map(Into::into);
            let offer = checker.optional(&step, "offer", None, |c, n, f| {
                c.text(n, f, OFFER_FORMS).map(Some)
            });
            match (at, channel, offer) {
                (Some(at), Some(channel), Some(offer)) => placed.push(PlacedStep {
                    step: Step {
                        at,
                        channel,
                        offer: offer.map(Into::into),
                    },
                    origin: step.get("at").unwrap_or(item).origin.clone(),
                    field: step.field("at"),
                }),
                _ => all_good = false,
            }
        }
        all_good &= items.is_some();
    }

    if placed.len() > MAX_STEPS {
        let last = &placed[MAX_STEPS];
        checker.report(
            &last.origin,
            &last.field,
            format!("the ladder has {} steps", placed.len()),
            format!("at most {MAX_STEPS} steps in all (step 1, the sends `repeat` adds and [[trigger.ladder]] together)"),
        );
        all_good = false;
    }
    // Every step's `at` counts from the anchor, so fixed ones must grow, and
    // stay within the bound every duration has (a `repeat` adds its steps
    // up, so each can be in range while the last is not).
    let mut previous: Option<Span> = None;
    for step in &placed {
        let Some(at) = offset::fixed(&step.step.at) else {
            continue;
        };
        if at > Span::LONGEST {
            checker.report(
                &step.origin,
                &step.field,
                format!("a step falls {at} after the anchor"),
                format!("steps at most {} after the anchor", Span::LONGEST),
            );
            all_good = false;
            break;
        }
        if let Some(before) = previous {
            if at <= before {
                checker.report(
                    &step.origin,
                    &step.field,
                    format!("at {at} is not later than the step before it ({before})"),
                    format!("a time after {before}: every step's at counts from the trigger's anchor, like step 1's"),
                );
                all_good = false;
            }
        }
        previous = Some(at);
    }
    all_good.then(|| placed.into_iter().map(|placed| placed.step).collect())
}

/// Reads `[[trigger.variants]]`; `steps` (if valid) for checking `after`.
fn variants(
    checker: &mut Checker,
    fields: &Fields<'_>,
    kind: Kind,
    steps: Option<&[Step]>,
) -> Option<Vec<Variant>> {
    let Some(node) = fields.get("variants") else {
        return Some(Vec::new());
    };
    let variants_field = fields.field("variants");
    let items = checker.array(
        node,
        &variants_field,
        "[[trigger.variants]] tables with name and weight",
    )?;
    let limit = ("the trigger", "variants", "trigger.variants");
    if !checker.at_most(items, &variants_field, MAX_VARIANTS, limit) {
        return None;
    }
    let after_rule = if kind == Kind::Schedule {
        SpanRule::Any
    } else {
        SpanRule::NonNegative
    };
    let second_at = steps
        .and_then(|steps| steps.get(1))
        .and_then(|step| offset::fixed(&step.at));
    let mut variants: Vec<Variant> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut all_good = true;
    for (position, item) in items.iter().enumerate() {
        let field = format!("{variants_field}[{position}]");
        let Some(variant) = checker.table_of(item, &field, VARIANT_KEYS) else {
            all_good = false;
            continue;
        };
        const NAME_FORMS: &str = "lowercase letters, digits and `_` (e.g. \"control\", \"coupon10\"), unique in the trigger";
        let name = checker.required(&variant, "name", NAME_FORMS, |c, n, f| {
            let name = c.identifier(n, f, NAME_FORMS, is_id_char)?;
            if names.contains(&name) {
                c.report(
                    &n.origin,
                    f,
                    format!("another variant is already named {name:?}"),
                    NAME_FORMS,
                );
                return None;
            }
            names.push(name.clone());
            Some(name)
        });
        let weight = checker.required(
            &variant,
            "weight",
            &format!("an integer from 1 to {MAX_WEIGHT}"),
            |c, n, f| c.count(n, f, 1, MAX_WEIGHT),
        );
        let after = checker.optional(&variant, "after", None, |c, n, f| {
            let after = c.span(n, f, after_rule)?;
            if let Some(second) = second_at.filter(|second| after >= *second) {
                c.report(
                    &n.origin,
                    f,
                    format!("after {after} is not before step 2 ({second})"),
                    format!("a duration less than {second}"),
                );
                return None;
            }
            Some(Some(after))
        });
        let channel = checker.optional(&variant, "channel", None, |c, n, f| {
            c.channel(n, f).map(Some)
        });
        let offer = checker.optional(&variant, "offer", None, |c, n, f| {
            c.text(n, f, OFFER_FORMS).map(Some)
        });
        match (name, weight, after, channel, offer) {
            (Some(name), Some(weight), Some(first_step_at), Some(channel), Some(offer)) => variants
                .push(Variant {
                    name: name.into(),
                    weight,
                    first_step_at,
                    channel: channel.map(Into::into),
                    offer: offer.map(Into::into),
                }),
            _ => all_good = false,
        }
    }
    all_good.then_some(variants)
}
