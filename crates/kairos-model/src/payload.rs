//! An action's payload: the offer, the cart, the entity key, properties
//! copied from the causing event, recommendations ...
//!
//! Typed rather than a `serde_json::Value` because the engine builds one per
//! decision: a cart as a JSON value is a map per line with a key string per
//! field, while here it is one vector. It serialises exactly as the
//! equivalent JSON object would — keys in sorted order, as serde_json's own
//! maps do — so the bytes consumers (and golden files) see do not depend on
//! how it was built.

use crate::json_out::{write_f64, write_str};
use compact_str::CompactString;
use serde::de::{Deserialize, Deserializer};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};
use std::sync::Arc;

/// Named values; setting a name again replaces its value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Payload {
    // Names as compact strings rather than `Cow<'static, str>`: a name
    // that is not a constant (a trigger's key property, `cart_id`) is then
    // held inline, where an owned `String` took an allocation per decision.
    fields: Vec<(CompactString, PayloadValue)>,
}

/// Fields a payload makes room for when its first is set: as many as the
/// first push into an empty vector would.
const FIRST_CAPACITY: usize = 4;

/// One payload value.
#[derive(Clone, Debug, PartialEq)]
pub enum PayloadValue {
    /// Text owned by this payload.
    Text(CompactString),
    /// Text shared with the pipeline (offers).
    Shared(Arc<str>),
    /// A number.
    Number(f64),
    /// Cart lines.
    Cart(Vec<CartItem>),
    /// Anything else, as JSON.
    Json(Value),
}

/// One cart line in a payload.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CartItem {
    // Declared in sorted order, the order a JSON map would give them.
    /// Unit price.
    pub price: f64,
    /// `product_id`.
    pub product_id: CompactString,
    /// Quantity.
    pub quantity: u32,
}

impl Payload {
    /// An empty payload.
    pub fn new() -> Payload {
        Payload::default()
    }

    /// Sets `name` to `value`, replacing an earlier value. (Inlined: the
    /// engine sets a few names per decision, mostly constants, which it
    /// makes with `CompactString::const_new` at compile time.)
    #[inline(always)]
    pub fn set(&mut self, name: impl Into<CompactString>, value: PayloadValue) {
        let name = name.into();
        match self.fields.iter_mut().find(|(known, _)| *known == name) {
            Some(field) => field.1 = value,
            None => {
                if self.fields.capacity() == 0 {
                    // Room for a typical payload (a cart's is three
                    // fields) allocated directly: the first push's
                    // general growth path cost twice as much.
                    self.fields = Vec::with_capacity(FIRST_CAPACITY);
                }
                self.fields.push((name, value))
            }
        }
    }

    /// The fields in the order they were first set (for an exact copy,
    /// such as an engine snapshot's).
    pub fn fields(&self) -> impl Iterator<Item = (&CompactString, &PayloadValue)> {
        self.fields.iter().map(|(name, value)| (name, value))
    }

    /// Appends the payload as compact JSON: byte for byte what its
    /// `Serialize` makes serde_json write (names in sorted order), without
    /// serde (see `json_out`).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        // Names are unique (see `set`) and few: their order is found by
        // sorting their positions, on the stack up to `ON_STACK` of them.
        // (Picking the next in order each time compared every pair: a
        // tenth of the writing thread's work on the cart job.)
        const ON_STACK: usize = 8;
        let count = self.fields.len();
        let mut on_stack = [0usize; ON_STACK];
        let mut on_heap = Vec::new();
        let order: &mut [usize] = if count <= ON_STACK {
            &mut on_stack[..count]
        } else {
            on_heap.resize(count, 0);
            &mut on_heap
        };
        for (index, place) in order.iter_mut().enumerate() {
            *place = index;
        }
        order.sort_unstable_by(|&a, &b| self.fields[a].0.cmp(&self.fields[b].0));
        out.push(b'{');
        for (written, &index) in order.iter().enumerate() {
            let (name, value) = &self.fields[index];
            if written > 0 {
                out.push(b',');
            }
            write_str(out, name);
            out.push(b':');
            value.write_json(out);
        }
        out.push(b'}');
    }

    /// The payload as a JSON value (for tests and tools; the hot path
    /// writes it directly).
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

impl PayloadValue {
    /// Appends the value as compact JSON, as its `Serialize` would.
    fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            PayloadValue::Text(text) => write_str(out, text),
            PayloadValue::Shared(text) => write_str(out, text),
            PayloadValue::Number(number) => write_f64(out, *number),
            PayloadValue::Cart(items) => {
                out.push(b'[');
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(b"{\"price\":");
                    write_f64(out, item.price);
                    out.extend_from_slice(b",\"product_id\":");
                    write_str(out, &item.product_id);
                    out.extend_from_slice(b",\"quantity\":");
                    out.extend_from_slice(itoa::Buffer::new().format(item.quantity).as_bytes());
                    out.push(b'}');
                }
                out.push(b']');
            }
            PayloadValue::Json(value) => serde_json::to_writer(&mut *out, value)
                .expect("a JSON value always serialises into a Vec"),
        }
    }
}

impl Serialize for PayloadValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            PayloadValue::Text(text) => serializer.serialize_str(text),
            PayloadValue::Shared(text) => serializer.serialize_str(text),
            // As `serde_json::Value` does: non-finite numbers become null.
            PayloadValue::Number(number) if number.is_finite() => serializer.serialize_f64(*number),
            PayloadValue::Number(_) => serializer.serialize_unit(),
            PayloadValue::Cart(items) => items.serialize(serializer),
            PayloadValue::Json(value) => value.serialize(serializer),
        }
    }
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut sorted: Vec<&(CompactString, PayloadValue)> = self.fields.iter().collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut map = serializer.serialize_map(Some(sorted.len()))?;
        for (name, value) in sorted {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Payload, D::Error> {
        let map = Map::<String, Value>::deserialize(deserializer)?;
        Ok(Payload {
            fields: map
                .into_iter()
                .map(|(name, value)| (CompactString::from(name), PayloadValue::Json(value)))
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn value() -> impl Strategy<Value = PayloadValue> {
        let number = prop_oneof![
            any::<f64>(),
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(-0.0),
            (-1_000_000i64..1_000_000).prop_map(|cents| cents as f64 / 100.0),
        ];
        prop_oneof![
            any::<String>().prop_map(|text| PayloadValue::Text(text.into())),
            any::<String>().prop_map(|text| PayloadValue::Shared(Arc::from(text))),
            number.clone().prop_map(PayloadValue::Number),
            proptest::collection::vec((number, any::<String>(), any::<u32>()), 0..3).prop_map(
                |items| PayloadValue::Cart(
                    items
                        .into_iter()
                        .map(|(price, product_id, quantity)| CartItem {
                            price,
                            product_id: product_id.into(),
                            quantity,
                        })
                        .collect()
                )
            ),
            (any::<String>(), any::<i64>()).prop_map(|(text, n)| PayloadValue::Json(
                json!({ "text": text, "n": n, "list": [n, null, true] })
            )),
        ]
    }

    proptest! {
        /// Written by hand exactly as serde_json writes it: names in sorted
        /// order whatever the order set, a name set twice once.
        #[test]
        fn writes_json_as_serde_json_does(fields in proptest::collection::vec(("[a-d]{0,2}|\\PC{0,6}", value()), 0..12)) {
            let mut payload = Payload::new();
            for (name, value) in fields {
                payload.set(name, value);
            }
            let mut fast = Vec::new();
            payload.write_json(&mut fast);
            prop_assert_eq!(String::from_utf8(fast).unwrap(), serde_json::to_string(&payload).unwrap());
        }
    }

    #[test]
    fn serialises_like_the_equivalent_json_object() {
        let mut payload = Payload::new();
        payload.set("offer", PayloadValue::Shared(Arc::from("CART10")));
        payload.set("cart_id", PayloadValue::Text("c1".into()));
        payload.set(
            "cart",
            PayloadValue::Cart(vec![CartItem {
                price: 12.5,
                product_id: "p1".into(),
                quantity: 2,
            }]),
        );
        payload.set("cart_value", PayloadValue::Number(25.0));
        payload.set("offer", PayloadValue::Json(json!({"code": "X"})));
        let expected = json!({
            "offer": {"code": "X"},
            "cart_id": "c1",
            "cart": [{"product_id": "p1", "quantity": 2, "price": 12.5}],
            "cart_value": 25.0,
        });
        assert_eq!(
            serde_json::to_string(&payload).unwrap(),
            serde_json::to_string(&expected).unwrap()
        );
        let back: Payload = serde_json::from_value(expected.clone()).unwrap();
        assert_eq!(back.to_value(), expected);
    }
}
