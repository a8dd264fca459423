//! Taste vectors: what each customer has shown interest in, as a point in
//! the catalog's vector space, and the query a recommending action asks.
//!
//! A customer's taste is the time-decayed mean of the vectors of the items
//! they viewed (weight [`VIEWED_WEIGHT`]), added to a cart
//! ([`ADDED_WEIGHT`]) and bought ([`BOUGHT_WEIGHT`]): an interaction
//! `settings.taste_half_life` old counts half as much as one now. It is
//! updated as each event is applied, at a cost of one pass over the
//! vector per item, and lives with the rest of the customer's state, so
//! that snapshots carry it, merged identities pool it and an erasure
//! removes it.
//!
//! Memory is bounded: the mean is held as one byte per dimension with one
//! scale ([`Taste::mean`]), beside the last [`RECENT_LIMIT`] items viewed or
//! added and the last [`BOUGHT_LIMIT`] bought (8-byte keys), so a taste
//! costs at most `dimensions + 8 × 8 + 16 × 16 + ~60` bytes (about 450 for
//! the 64 dimensions of computed vectors, in one allocation of ~170 bytes
//! and, for customers who bought, a second for their purchases), and only
//! customers who touched a catalog item have one. The mean (up to
//! [`INLINE_DIMENSIONS`]) and the recent items live inside the taste, so
//! learning from an event reads and writes one allocation.
//!
//! The engine's table of item vectors ([`ItemVectors`]) holds them in
//! bytes too, with a scale each: a quarter of the memory of `f32`s, and an
//! item's vector in one cache line beside its entry, which is what an
//! event touching it costs to read. The item index keeps the exact vectors
//! and scores recommendations with them.
//! A taste whose decayed weight falls below [`FORGOTTEN_WEIGHT`] (about
//! seven half-lives without an interaction) is started afresh by the next.
//!
//! The engine does no nearest-neighbour search: a decision whose trigger
//! asks for recommendations leaves it with a [`RecommendationRequest`]
//! (query vector, items to leave out, store), which the service answers
//! from its item index before publishing (`kairos-recommend`).

use crate::customer::Customer;
use compact_str::CompactString;
use kairos_model::{Payload, PayloadValue, Span, Timestamp};
use smallvec::SmallVec;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use thin_vec::ThinVec;
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// How much viewing an item moves the taste, relative to the others.
pub const VIEWED_WEIGHT: f32 = 1.0;
/// How much adding an item to a cart moves it.
pub const ADDED_WEIGHT: f32 = 2.0;
/// How much buying an item moves it.
pub const BOUGHT_WEIGHT: f32 = 3.0;
/// Items viewed or added that a taste remembers, as seeds for "similar to
/// what you looked at".
pub const RECENT_LIMIT: usize = 8;
/// Purchases a taste remembers, to leave recently bought items out.
pub const BOUGHT_LIMIT: usize = 16;
/// Below this decayed weight a taste says nothing any more.
pub const FORGOTTEN_WEIGHT: f32 = 0.01;
/// The most weight the mean gives its past: each interaction moves it at
/// least 1/(1 + 32) of the way to the item (a third of the way for a
/// purchase), so a customer whose interest moves on is followed however
/// long their history (and the mean, kept in bytes, never stops moving
/// for being rounded).
pub const MAX_WEIGHT: f32 = 32.0;

/// Dimensions held inside a taste and an item entry; larger vectors (a
/// catalog's own embeddings) take an allocation of their own.
pub const INLINE_DIMENSIONS: usize = 64;

/// A vector in bytes: component `i` is `values[i] as f32 * scale`.
pub type ByteVector = SmallVec<[i8; INLINE_DIMENSIONS]>;

/// Seed for item keys (any fixed value: keys are stored in snapshots).
const ITEM_KEY_SEED: u64 = 0x6974_656d_6b65_7973;

/// The 8-byte key a taste remembers an item by.
pub fn item_key(id: &str) -> u64 {
    xxh3_64_with_seed(id.as_bytes(), ITEM_KEY_SEED)
}

/// How an event touched an item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interaction {
    /// `Product Viewed`, `Product Clicked`.
    Viewed,
    /// `Product Added`.
    Added,
    /// `Order Completed` (its `products[]`).
    Bought,
}

impl Interaction {
    /// Its weight in the mean.
    fn weight(self) -> f32 {
        match self {
            Interaction::Viewed => VIEWED_WEIGHT,
            Interaction::Added => ADDED_WEIGHT,
            Interaction::Bought => BOUGHT_WEIGHT,
        }
    }
}

/// A catalog item's vector was of the wrong size.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("item {id:?} has {got} dimensions; the catalog's vectors have {expected}")]
pub struct DimensionMismatch {
    /// The item.
    pub id: String,
    /// Its vector's length.
    pub got: usize,
    /// The table's.
    pub expected: usize,
}

/// The catalog's item vectors, L2-normalised, by item key: what the engine
/// reads to update tastes and build queries. Kept current by the service
/// (a catalog change is applied between two events).
#[derive(Clone, Debug, Default)]
pub struct ItemVectors {
    dimensions: usize,
    items: HashMap<u64, ItemVector, BuildHasherDefault<KeyHasher>>,
}

/// Item keys are hashes already (xxh3): hashing them again for the table
/// would only cost time.
#[derive(Clone, Copy, Debug, Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, key: u64) {
        self.0 = key;
    }
}

/// One item's id and unit vector, in bytes.
#[derive(Clone, Debug)]
struct ItemVector {
    id: CompactString,
    scale: f32,
    vector: ByteVector,
}

impl ItemVector {
    /// The vector, from its bytes.
    fn components(&self) -> impl Iterator<Item = f32> + Clone + '_ {
        self.vector.iter().map(|&q| f32::from(q) * self.scale)
    }
}

impl ItemVectors {
    /// An empty table: no tastes are kept and no queries made.
    pub fn new() -> ItemVectors {
        ItemVectors::default()
    }

    /// Whether it holds no item.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// How many items it holds.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// The vectors' dimension (`None` while empty).
    pub fn dimensions(&self) -> Option<usize> {
        (!self.items.is_empty()).then_some(self.dimensions)
    }

    /// Sets an item's vector (normalised here). A vector of another size
    /// than the table's is refused, as is a zero or non-finite one (it has
    /// no direction), which removes the item instead.
    pub fn insert(&mut self, id: &str, vector: &[f32]) -> Result<(), DimensionMismatch> {
        if !self.items.is_empty() && vector.len() != self.dimensions {
            return Err(DimensionMismatch {
                id: id.to_string(),
                got: vector.len(),
                expected: self.dimensions,
            });
        }
        let Some(unit) = normalised(vector.iter().copied()) else {
            self.remove(id);
            return Ok(());
        };
        self.dimensions = vector.len();
        let (scale, vector) = quantised(&unit);
        self.items.insert(
            item_key(id),
            ItemVector {
                id: id.into(),
                scale,
                vector,
            },
        );
        Ok(())
    }

    /// Removes an item (a deleted one is neither learnt from nor queried).
    pub fn remove(&mut self, id: &str) {
        self.items.remove(&item_key(id));
    }

    /// An item's unit vector (as kept: to within 1/254 of its largest
    /// component).
    pub fn get(&self, id: &str) -> Option<Vec<f32>> {
        let item = self.items.get(&item_key(id))?;
        Some(item.components().collect())
    }

    fn by_key(&self, key: u64) -> Option<&ItemVector> {
        self.items.get(&key)
    }
}

/// What a recommending action asks the item index: the `k` items nearest
/// `vector` (unit length, empty when nothing is known of the customer),
/// leaving out `exclude` (what is in the cart, what the action is about,
/// what was bought recently) and, with a `store`, what that store does not
/// stock.
#[derive(Clone, Debug, PartialEq)]
pub struct RecommendationRequest {
    /// How many items.
    pub k: usize,
    /// The query direction; empty: no basis for a recommendation.
    pub vector: Vec<f32>,
    /// Item ids never to recommend, in a fixed order.
    pub exclude: Vec<CompactString>,
    /// Only items in stock at this store (the action's `store_id`).
    pub store: Option<CompactString>,
}

/// One customer's taste (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct Taste {
    /// The time `weight` and `mean` are decayed to.
    pub at: Timestamp,
    /// The decayed sum of the weights averaged.
    pub weight: f32,
    /// Component `i` of the mean is `mean[i] as f32 * scale`.
    pub scale: f32,
    /// The decayed mean of the item vectors, quantised to a byte each.
    pub mean: ByteVector,
    /// Keys of the items last viewed or added, newest last, each once.
    pub recent: SmallVec<[u64; RECENT_LIMIT]>,
    /// Keys of the items last bought and when, newest last, each once.
    pub bought: ThinVec<(u64, Timestamp)>,
}

impl Taste {
    fn new(dimensions: usize, at: Timestamp) -> Taste {
        Taste {
            at,
            weight: 0.0,
            scale: 0.0,
            mean: smallvec::smallvec![0; dimensions],
            recent: SmallVec::new(),
            bought: ThinVec::new(),
        }
    }

    /// The mean, dequantised.
    fn mean(&self) -> impl Iterator<Item = f32> + Clone + '_ {
        self.mean.iter().map(|&q| f32::from(q) * self.scale)
    }

    /// Sets the mean from `values`, quantised.
    fn set_mean(&mut self, values: &[f32]) {
        (self.scale, self.mean) = quantised(values);
    }

    /// The weight `self.weight` decays to by `time`.
    fn weight_at(&self, time: Timestamp, half_life: Span) -> f32 {
        self.weight * decay(time - self.at, half_life)
    }

    /// Adds `weight` of `item`'s vector at `time`.
    fn learn(&mut self, item: &ItemVector, weight: f32, time: Timestamp, half_life: Span) {
        // An interaction older than the taste's time counts as much less as
        // it is older, and leaves the time alone: replays in another
        // order within the allowed lateness differ only in rounding.
        let (old, new) = match time > self.at {
            true => (self.weight_at(time, half_life), weight),
            false => (self.weight, weight * decay(self.at - time, half_life)),
        };
        let old = if old < FORGOTTEN_WEIGHT {
            0.0
        } else {
            old.min(MAX_WEIGHT)
        };
        let total = old + new;
        if total <= 0.0 {
            return;
        }
        // The new mean on the stack (up to INLINE_DIMENSIONS): this runs
        // for every item event, and an allocation each cost more than the
        // arithmetic.
        let (old, new) = (self.scale * old / total, item.scale * new / total);
        let blended: SmallVec<[f32; INLINE_DIMENSIONS]> = self
            .mean
            .iter()
            .zip(&item.vector)
            .map(|(&q, &v)| f32::from(q) * old + f32::from(v) * new)
            .collect();
        let (scale, inverse) = scale_of(&blended);
        for (q, v) in self.mean.iter_mut().zip(blended) {
            *q = quantise(v * inverse);
        }
        self.scale = scale;
        self.weight = total;
        self.at = self.at.max(time);
    }

    fn remember_recent(&mut self, key: u64) {
        self.recent.retain(|known| *known != key);
        if self.recent.len() >= RECENT_LIMIT {
            self.recent.remove(0);
        }
        self.recent.push(key);
    }

    fn remember_bought(&mut self, key: u64, time: Timestamp) {
        self.bought.retain(|(known, _)| *known != key);
        if self.bought.len() >= BOUGHT_LIMIT {
            self.bought.remove(0);
        }
        self.bought.push((key, time));
    }

    /// Pools another taste of the same person into this one (identities
    /// merged): a weighted mean at the later of the two times.
    pub fn absorb(&mut self, other: Taste, half_life: Span) {
        for &key in &other.recent {
            self.remember_recent(key);
        }
        let mut bought: Vec<(u64, Timestamp)> = self
            .bought
            .drain(..)
            .chain(other.bought.iter().copied())
            .collect();
        bought.sort_by_key(|(_, time)| *time);
        for (key, time) in bought {
            self.remember_bought(key, time);
        }
        if other.mean.len() != self.mean.len() {
            // Learnt in another space (the catalog changed): only the lists
            // carry over.
            return;
        }
        let at = self.at.max(other.at);
        let (mine, theirs) = (
            self.weight_at(at, half_life),
            other.weight_at(at, half_life),
        );
        let total = mine + theirs;
        if total > 0.0 {
            let values: Vec<f32> = self
                .mean()
                .zip(other.mean())
                .map(|(a, b)| (a * mine + b * theirs) / total)
                .collect();
            self.set_mean(&values);
        }
        self.weight = total.min(MAX_WEIGHT);
        self.at = at;
    }
}

/// `values` in bytes, with their scale.
fn quantised(values: &[f32]) -> (f32, ByteVector) {
    let (scale, inverse) = scale_of(values);
    (
        scale,
        values.iter().map(|v| quantise(v * inverse)).collect(),
    )
}

/// The scale that puts the largest `|v|` at 127, and its inverse (0 and 0
/// for a zero vector).
fn scale_of(values: &[f32]) -> (f32, f32) {
    // Eight lanes: one running maximum is a chain the compiler may not
    // reorder (floats), a step per component.
    let mut lanes = [0f32; 8];
    let chunks = values.chunks_exact(8);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (lane, v) in lanes.iter_mut().zip(chunk) {
            *lane = lane.max(v.abs());
        }
    }
    for (lane, v) in lanes.iter_mut().zip(rest) {
        *lane = lane.max(v.abs());
    }
    let largest = lanes.into_iter().fold(0f32, f32::max);
    match largest > 0.0 {
        true => (largest / 127.0, 127.0 / largest),
        false => (0.0, 0.0),
    }
}

/// `x` (within ±127) rounded half away from zero to a byte. Not
/// `f32::round`: without SSE4.1 in the target that is a library call per
/// component, most of the cost of learning from an event.
fn quantise(x: f32) -> i8 {
    // `as` truncates toward zero and saturates.
    ((x + 0.5f32.copysign(x)) as i8).max(-127)
}

/// `0.5^(age / half_life)`; 1 for no age.
fn decay(age: Span, half_life: Span) -> f32 {
    if age.0 <= 0 || half_life.0 <= 0 {
        return 1.0;
    }
    0.5f64.powf(age.0 as f64 / half_life.0 as f64) as f32
}

/// `values` scaled to unit length; `None` for a zero or non-finite vector.
fn normalised(values: impl Iterator<Item = f32> + Clone) -> Option<Vec<f32>> {
    let norm = values.clone().map(|v| v * v).sum::<f32>().sqrt();
    (norm.is_finite() && norm > 0.0).then(|| values.map(|v| v / norm).collect())
}

/// Learns from the items `ids` an event touched `how`, at `time`. Items the
/// catalog has no vector for are not learnt from (nor remembered).
pub(crate) fn observe<'a>(
    customer: &mut Customer,
    items: &ItemVectors,
    ids: impl Iterator<Item = &'a str>,
    how: Interaction,
    time: Timestamp,
    half_life: Span,
) {
    let Some(dimensions) = items.dimensions() else {
        return;
    };
    for id in ids {
        let key = item_key(id);
        let Some(item) = items.by_key(key) else {
            continue;
        };
        let taste = customer
            .occasional_mut()
            .taste
            .get_or_insert_with(|| Box::new(Taste::new(dimensions, time)));
        if taste.mean.len() != dimensions {
            // The catalog changed dimension: what was learnt is in another
            // space.
            **taste = Taste::new(dimensions, time);
        }
        taste.learn(item, how.weight(), time, half_life);
        match how {
            Interaction::Bought => taste.remember_bought(key, time),
            Interaction::Viewed | Interaction::Added => taste.remember_recent(key),
        }
    }
}

/// Payload names a recommendation query reads.
const CART: &str = "cart";
const PRODUCT_ID: &str = "product_id";
const STORE_ID: &str = "store_id";

/// The query for a decision's recommendations: the direction halfway
/// between the customer's taste and the mean of the items the action is
/// about (its cart's items, its `product_id`) and those they last viewed or
/// added; leaving out those items of the action and what was bought within
/// `bought_within` of `now`.
pub(crate) fn request(
    taste: Option<&Taste>,
    items: &ItemVectors,
    payload: &Payload,
    k: usize,
    now: Timestamp,
    bought_within: Span,
    half_life: Span,
) -> RecommendationRequest {
    let mut about: Vec<CompactString> = Vec::new();
    let mut store = None;
    for (name, value) in payload.fields() {
        // A trigger's key comes as text, a copied property as JSON (a
        // number too, as item and store ids may be).
        let text: Option<CompactString> = match value {
            PayloadValue::Text(text) => Some(text.clone()),
            PayloadValue::Json(serde_json::Value::String(text)) => Some(text.into()),
            PayloadValue::Json(serde_json::Value::Number(number)) => {
                Some(number.to_string().into())
            }
            _ => None,
        };
        match (name.as_str(), value, text) {
            (CART, PayloadValue::Cart(lines), _) => {
                about.extend(lines.iter().map(|line| line.product_id.clone()))
            }
            (PRODUCT_ID, _, Some(id)) => about.push(id),
            (STORE_ID, _, Some(id)) => store = Some(id),
            _ => {}
        }
    }
    let dimensions = items.dimensions().unwrap_or(0);
    let mut seeds = vec![0f32; dimensions];
    let mut seen_any = false;
    let recent = taste.map_or(&[][..], |taste| &taste.recent[..]);
    let seed_vectors = about
        .iter()
        .filter_map(|id| items.by_key(item_key(id)))
        .chain(recent.iter().filter_map(|&key| items.by_key(key)));
    for item in seed_vectors {
        seen_any = true;
        for (sum, v) in seeds.iter_mut().zip(item.components()) {
            *sum += v;
        }
    }
    let mut query = vec![0f32; dimensions];
    if seen_any {
        if let Some(unit) = normalised(seeds.into_iter()) {
            query.iter_mut().zip(unit).for_each(|(q, s)| *q += s);
        }
    }
    let live_taste = taste.filter(|taste| {
        taste.mean.len() == dimensions && taste.weight_at(now, half_life) >= FORGOTTEN_WEIGHT
    });
    if let Some(unit) = live_taste.and_then(|taste| normalised(taste.mean())) {
        query.iter_mut().zip(unit).for_each(|(q, t)| *q += t);
    }
    let vector = normalised(query.into_iter()).unwrap_or_default();
    let mut exclude = about;
    if let Some(taste) = taste {
        exclude.extend(
            taste
                .bought
                .iter()
                .filter(|(_, at)| now - *at <= bought_within)
                .filter_map(|(key, _)| Some(items.by_key(*key)?.id.clone())),
        );
    }
    exclude.sort_unstable();
    exclude.dedup();
    RecommendationRequest {
        k,
        vector,
        exclude,
        store,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kairos_model::CartItem;

    const NOW: Timestamp = Timestamp(1_795_000_000_000);

    fn catalog() -> ItemVectors {
        let mut items = ItemVectors::new();
        items.insert("beans", &[1.0, 0.0, 0.0]).unwrap();
        items.insert("grinder", &[0.8, 0.6, 0.0]).unwrap();
        items.insert("tea", &[0.0, 0.0, 2.0]).unwrap();
        items
    }

    fn taste_of(customer: &mut Customer) -> &Taste {
        customer.occasional_mut().taste.as_deref().unwrap()
    }

    #[test]
    fn a_taste_is_one_allocation_of_the_size_the_docs_give() {
        // The module docs and the README say ~170 bytes with the mean and
        // the recent items inside.
        assert!(
            std::mem::size_of::<Taste>() <= 176,
            "{}",
            std::mem::size_of::<Taste>()
        );
        let mut taste = Taste::new(INLINE_DIMENSIONS, NOW);
        for key in 0..RECENT_LIMIT as u64 {
            taste.remember_recent(key);
        }
        assert!(!taste.mean.spilled() && !taste.recent.spilled());
    }

    #[test]
    fn a_vector_of_another_size_is_refused_and_a_zero_one_removes_the_item() {
        let mut items = catalog();
        assert_eq!(
            items.insert("kettle", &[1.0, 0.0]),
            Err(DimensionMismatch {
                id: "kettle".into(),
                got: 2,
                expected: 3
            })
        );
        items.insert("tea", &[0.0, 0.0, 0.0]).unwrap();
        assert_eq!(items.get("tea"), None);
        assert_eq!(items.get("beans"), Some(vec![1.0, 0.0, 0.0]));
    }

    #[test]
    fn the_taste_is_a_decayed_weighted_mean() {
        let items = catalog();
        let mut customer = Customer::new("u1");
        let half_life = Span::DAY * 14;
        let old = NOW - half_life;
        observe(
            &mut customer,
            &items,
            ["tea"].into_iter(),
            Interaction::Viewed,
            old,
            half_life,
        );
        observe(
            &mut customer,
            &items,
            ["beans"].into_iter(),
            Interaction::Viewed,
            NOW,
            half_life,
        );
        let taste = taste_of(&mut customer);
        // The tea view, a half-life old, weighs 0.5 against the beans' 1.
        let mean: Vec<f32> = taste.mean().collect();
        assert!((mean[0] - 1.0 / 1.5).abs() < 0.01, "{mean:?}");
        assert!((mean[2] - 0.5 / 1.5).abs() < 0.01, "{mean:?}");
        assert!((taste.weight - 1.5).abs() < 1e-4);
        assert_eq!(taste.recent[..], [item_key("tea"), item_key("beans")]);
    }

    #[test]
    fn a_long_history_does_not_freeze_the_taste() {
        let items = catalog();
        let mut customer = Customer::new("u1");
        let half_life = Span::DAY * 14;
        let mut at = NOW;
        // A month of beans, 40 views a day, then a month of tea.
        for (id, views) in [("beans", 1200), ("tea", 1200)] {
            for _ in 0..views {
                at = at + Span::seconds(36 * 60);
                let one = std::iter::once(id);
                observe(
                    &mut customer,
                    &items,
                    one,
                    Interaction::Viewed,
                    at,
                    half_life,
                );
            }
        }
        let mean: Vec<f32> = taste_of(&mut customer).mean().collect();
        let unit = normalised(mean.iter().copied()).unwrap();
        assert!(unit[2] > 0.99, "follows the move to tea: {unit:?}");
    }

    #[test]
    fn numbers_are_ids_too() {
        let mut items = catalog();
        items.insert("42", &[0.0, 1.0, 0.0]).unwrap();
        let mut payload = Payload::new();
        payload.set("product_id", PayloadValue::Json(42.into()));
        payload.set("store_id", PayloadValue::Json(7.into()));
        let span = Span::DAY;
        let asked = request(None, &items, &payload, 4, NOW, span, span);
        assert_eq!(asked.exclude, ["42"]);
        assert_eq!(asked.store.as_deref(), Some("7"));
        assert!(asked.vector[1] > 0.99, "{:?}", asked.vector);
    }

    #[test]
    fn unknown_items_teach_nothing_and_hold_no_memory() {
        let items = catalog();
        let mut customer = Customer::new("u1");
        let span = Span::DAY;
        observe(
            &mut customer,
            &items,
            ["nope"].into_iter(),
            Interaction::Bought,
            NOW,
            span,
        );
        assert!(customer.occasional_if_any().is_none());
    }

    #[test]
    fn recent_and_bought_are_bounded() {
        let mut items = ItemVectors::new();
        let ids: Vec<String> = (0..40).map(|n| format!("p{n}")).collect();
        for (n, id) in ids.iter().enumerate() {
            items.insert(id, &[1.0, n as f32, 0.5]).unwrap();
        }
        let mut customer = Customer::new("u1");
        for (n, id) in ids.iter().enumerate() {
            let at = NOW + Span::seconds(n as i64);
            let span = Span::DAY;
            observe(
                &mut customer,
                &items,
                [id.as_str()].into_iter(),
                Interaction::Viewed,
                at,
                span,
            );
            observe(
                &mut customer,
                &items,
                [id.as_str()].into_iter(),
                Interaction::Bought,
                at,
                span,
            );
        }
        let taste = taste_of(&mut customer);
        assert_eq!(taste.recent.len(), RECENT_LIMIT);
        assert_eq!(taste.bought.len(), BOUGHT_LIMIT);
        assert_eq!(*taste.recent.last().unwrap(), item_key("p39"));
    }

    #[test]
    fn a_request_leaves_out_the_cart_and_recent_purchases_and_names_the_store() {
        let items = catalog();
        let mut customer = Customer::new("u1");
        let (week, half_life) = (Span::DAY * 7, Span::DAY * 14);
        let bought = ["tea"].into_iter();
        observe(
            &mut customer,
            &items,
            bought,
            Interaction::Bought,
            NOW - week,
            half_life,
        );
        let mut payload = Payload::new();
        payload.set(
            "cart",
            PayloadValue::Cart(vec![CartItem {
                price: 10.0,
                product_id: "beans".into(),
                quantity: 1,
            }]),
        );
        payload.set("store_id", PayloadValue::Json("sh-xintiandi".into()));
        let taste = customer.occasional_mut().taste.as_deref();
        let asked = request(taste, &items, &payload, 4, NOW, Span::DAY * 30, half_life);
        assert_eq!(asked.exclude, ["beans", "tea"]);
        assert_eq!(asked.store.as_deref(), Some("sh-xintiandi"));
        assert_eq!(asked.k, 4);
        let norm: f32 = asked.vector.iter().map(|v| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-4);
        // Halfway between the cart (beans) and the taste (tea).
        assert!(
            (asked.vector[0] - asked.vector[2]).abs() < 0.02,
            "{:?}",
            asked.vector
        );
        // A purchase older than the window is no longer left out.
        let later = NOW + Span::DAY * 30;
        let asked = request(taste, &items, &payload, 4, later, Span::DAY * 30, half_life);
        assert_eq!(asked.exclude, ["beans"]);
    }

    #[test]
    fn nothing_known_gives_an_empty_query() {
        let items = catalog();
        let span = Span::DAY;
        let asked = request(None, &items, &Payload::new(), 4, NOW, span, span);
        assert!(asked.vector.is_empty());
        assert!(asked.exclude.is_empty());
    }

    #[test]
    fn merged_tastes_pool_their_weights() {
        let items = catalog();
        let half_life = Span::DAY * 14;
        let (mut a, mut b) = (Customer::new("a"), Customer::new("b"));
        observe(
            &mut a,
            &items,
            ["beans"].into_iter(),
            Interaction::Viewed,
            NOW,
            half_life,
        );
        observe(
            &mut b,
            &items,
            ["tea"].into_iter(),
            Interaction::Bought,
            NOW,
            half_life,
        );
        let theirs = *b.occasional_mut().taste.take().unwrap();
        let mine = a.occasional_mut().taste.as_deref_mut().unwrap();
        mine.absorb(theirs, half_life);
        assert!((mine.weight - 4.0).abs() < 1e-4);
        let mean: Vec<f32> = mine.mean().collect();
        assert!(
            (mean[0] - 0.25).abs() < 0.01 && (mean[2] - 0.75).abs() < 0.01,
            "{mean:?}"
        );
        assert_eq!(mine.bought.len(), 1);
        assert_eq!(mine.recent.len(), 1);
    }
}
