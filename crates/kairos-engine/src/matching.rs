//! Evaluating the pipeline's small expressions against one event: event
//! matches and their property filters, entity keys, and offsets.

use crate::config::{EventMatch, FilterTest, KeySpec, Offset, Store};
use kairos_model::event::value_number;
use kairos_model::{Event, PropertyValue, Span};
use serde_json::Value;
use smallvec::SmallVec;
use std::borrow::Cow;

/// The receipt a channel sends when it has delivered one of kairos' own
/// actions (product.md's feedback events). It is not the customer doing
/// anything: `"*"` does not match it, or a wake-up's own delivery would
/// count as the activity that cancels the next wake-up. (Opens and clicks
/// are the customer's doing, and match.)
pub const DELIVERY_RECEIPT: &str = "Message Delivered";

/// Whether `event` satisfies `pattern`. Every trigger an event reaches asks
/// this once or more, and most answers are no by the name alone: that test
/// is inlined where it is asked, the rest is not.
#[inline]
pub fn matches(pattern: &EventMatch, event: &Event, stores: &[Store]) -> bool {
    let named = match pattern.name.as_str() {
        "*" => event.name != DELIVERY_RECEIPT,
        name => name == event.name,
    };
    named
        && (pattern.identified.is_none() && pattern.filters.is_empty()
            || qualifies(pattern, event, stores))
}

/// Whether an event of the name `pattern` wants is of the kind it wants:
/// identified (or not) as asked, and passing its property filters.
#[inline(never)]
fn qualifies(pattern: &EventMatch, event: &Event, stores: &[Store]) -> bool {
    if let Some(identified) = pattern.identified {
        if event.user_id.is_some() != identified {
            return false;
        }
    }
    pattern.filters.iter().all(|filter| {
        passes(
            &filter.test,
            event.properties.get(&filter.property),
            event,
            stores,
        )
    })
}

/// Whether any of `patterns` matches. Most lists asked (a trigger's
/// `cancel_on`, a count's `unless`) are empty, and most others hold one
/// pattern (`browse_abandonment`'s `unless`, asked on every event): both
/// are told where they are asked, as the call cost some 16 instructions,
/// five times an event on retail, and the loop as many again.
#[inline(always)]
pub fn matches_any(patterns: &[EventMatch], event: &Event, stores: &[Store]) -> bool {
    match patterns {
        [] => false,
        [pattern] => matches(pattern, event, stores),
        _ => any_matches(patterns, event, stores),
    }
}

/// [`matches_any`] for a list that is not empty.
fn any_matches(patterns: &[EventMatch], event: &Event, stores: &[Store]) -> bool {
    patterns
        .iter()
        .any(|pattern| matches(pattern, event, stores))
}

fn passes(
    test: &FilterTest,
    value: Option<&PropertyValue>,
    event: &Event,
    stores: &[Store],
) -> bool {
    let number = || value.and_then(PropertyValue::as_number);
    match test {
        FilterTest::Exists => value.is_some_and(|v| !v.is_null()),
        FilterTest::Equals(expected) => value.is_some_and(|v| property_loosely_equal(v, expected)),
        FilterTest::OneOf(options) => value.is_some_and(|v| {
            options
                .iter()
                .any(|option| property_loosely_equal(v, option))
        }),
        FilterTest::LessThan(bound) => number().is_some_and(|n| n < *bound),
        FilterTest::AtMost(bound) => number().is_some_and(|n| n <= *bound),
        FilterTest::GreaterThan(bound) => number().is_some_and(|n| n > *bound),
        FilterTest::AtLeast(bound) => number().is_some_and(|n| n >= *bound),
        FilterTest::NearStore { within_km } => {
            nearest_store(event, stores).is_some_and(|(_, distance)| distance <= *within_km)
        }
    }
}

/// `"1"` equals `1`: SDKs are loose about number encoding.
fn loosely_equal(actual: &Value, expected: &Value) -> bool {
    if actual == expected {
        return true;
    }
    match (value_number(actual), value_number(expected)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// [`loosely_equal`] for an event's property.
fn property_loosely_equal(actual: &PropertyValue, expected: &Value) -> bool {
    if actual == expected {
        return true;
    }
    match (actual.as_number(), value_number(expected)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// The closest store to the event's `lat`/`lon` and its distance in km.
pub fn nearest_store<'a>(event: &Event, stores: &'a [Store]) -> Option<(&'a Store, f64)> {
    let lat = event.property_number("lat")?;
    let lon = event.property_number("lon")?;
    stores
        .iter()
        .map(|store| (store, haversine_km(lat, lon, store.lat, store.lon)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
}

/// Great-circle distance.
fn haversine_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    const EARTH_RADIUS_KM: f64 = 6371.0;
    let (phi1, phi2) = (lat1.to_radians(), lat2.to_radians());
    let d_phi = (lat2 - lat1).to_radians();
    let d_lambda = (lon2 - lon1).to_radians();
    let a = (d_phi / 2.0).sin().powi(2) + phi1.cos() * phi2.cos() * (d_lambda / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * a.sqrt().asin()
}

/// The entity keys an event addresses under a trigger's [`KeySpec`].
#[derive(Debug, PartialEq, Eq)]
pub enum EventKeys<'e> {
    /// Keyed by customer: the one customer-level state.
    Customer,
    /// These entity keys (borrowed from the event where they are text).
    Entities(SmallVec<[Cow<'e, str>; 1]>),
    /// The event does not carry the key property.
    Missing,
}

/// The key name used for entity-keyed events that lack the property.
pub const DEFAULT_ENTITY: &str = "default";

/// Extracts keys. Most triggers are keyed by the customer, which needs no
/// look at the event: that is answered where it is asked, without a call.
#[inline(always)]
pub fn event_keys<'e>(spec: &KeySpec, event: &'e Event) -> EventKeys<'e> {
    match spec {
        KeySpec::Customer => EventKeys::Customer,
        _ => entity_keys(spec, event),
    }
}

/// [`event_keys`] for a trigger keyed by a property or a list's items.
fn entity_keys<'e>(spec: &KeySpec, event: &'e Event) -> EventKeys<'e> {
    match spec {
        KeySpec::Customer => EventKeys::Customer,
        KeySpec::Property(name) => match event.property_text(name) {
            // (Made in place: `smallvec!` pushes, checking for room.)
            Some(key) => EventKeys::Entities(SmallVec::from_buf([key])),
            None => EventKeys::Missing,
        },
        KeySpec::ListItem { list, field } => {
            let keys: SmallVec<[Cow<'e, str>; 1]> = match event.properties.get(list) {
                Some(PropertyValue::Array(items)) => items
                    .iter()
                    .filter_map(|item| match item.get(field)? {
                        PropertyValue::String(text) => Some(Cow::Borrowed(text.as_str())),
                        PropertyValue::Number(number) => Some(Cow::Owned(number.to_string())),
                        _ => None,
                    })
                    .collect(),
                _ => SmallVec::new(),
            };
            if keys.is_empty() {
                EventKeys::Missing
            } else {
                EventKeys::Entities(keys)
            }
        }
    }
}

/// A fixed or property-dependent offset; `None` for cadence offsets, which
/// need the key's history (see `patterns::cadence_offset`).
pub fn resolve_offset(offset: &Offset, anchor_properties: &[(String, Value)]) -> Option<Span> {
    match offset {
        Offset::Fixed(span) => Some(*span),
        Offset::ByProperty {
            property,
            values,
            default,
        } => {
            let actual = anchor_properties
                .iter()
                .find(|(name, _)| name == property)
                .map(|(_, value)| value);
            let found = actual.and_then(|actual| {
                values
                    .iter()
                    .find(|(text, _)| loosely_equal(actual, &Value::String(text.clone())))
            });
            Some(found.map(|(_, span)| *span).unwrap_or(*default))
        }
        Offset::Cadence { .. } => None,
    }
}

/// Properties an offset or payload needs from the anchor event.
pub fn offset_property(offset: &Offset) -> Option<&str> {
    match offset {
        Offset::ByProperty { property, .. } => Some(property),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PropertyFilter;
    use serde_json::json;
    use smallvec::smallvec;

    fn event(properties: Value) -> Event {
        let mut line = json!({"type":"track","event":"Review Submitted","userId":"u","timestamp":"2026-01-01T00:00:00Z"});
        line["properties"] = properties;
        Event::from_json(line.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn filters_compare_loosely_and_numerically() {
        let review = event(json!({"rating": "2", "lat": 31.2304, "lon": 121.4737}));
        let low_rating = EventMatch {
            name: "Review Submitted".into(),
            filters: vec![PropertyFilter {
                property: "rating".into(),
                test: FilterTest::AtMost(2.0),
            }],
            identified: Some(true),
        };
        assert!(matches(&low_rating, &review, &[]));
        let store = Store {
            id: "s".into(),
            lat: 31.24,
            lon: 121.48,
        };
        let near = EventMatch {
            name: "*".into(),
            filters: vec![PropertyFilter {
                property: "location".into(),
                test: FilterTest::NearStore { within_km: 3.0 },
            }],
            identified: None,
        };
        assert!(matches(&near, &review, std::slice::from_ref(&store)));
        let far = Store { lat: 40.0, ..store };
        assert!(!matches(&near, &review, &[far]));
    }

    #[test]
    fn list_keys_explode_items() {
        let order = event(json!({"products": [{"product_id": "p1"}, {"product_id": 7}]}));
        let spec = KeySpec::ListItem {
            list: "products".into(),
            field: "product_id".into(),
        };
        assert_eq!(
            event_keys(&spec, &order),
            EventKeys::Entities(smallvec!["p1".into(), "7".into()])
        );
        assert_eq!(
            event_keys(&KeySpec::Property("cart_id".into()), &order),
            EventKeys::Missing
        );
    }

    #[test]
    fn offsets_by_property_fall_back_to_default() {
        let offset = Offset::ByProperty {
            property: "severity".into(),
            values: vec![("1".into(), Span::HOUR * 2)],
            default: Span::HOUR * 48,
        };
        assert_eq!(
            resolve_offset(&offset, &[("severity".into(), json!(1))]),
            Some(Span::HOUR * 2)
        );
        assert_eq!(resolve_offset(&offset, &[]), Some(Span::HOUR * 48));
    }
}
