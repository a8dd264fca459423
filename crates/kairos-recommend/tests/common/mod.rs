//! Helpers shared by the integration tests: items, and synthetic clustered
//! vectors for recall and determinism.
#![allow(dead_code)]

use kairos_recommend::{CatalogChange, Item};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::collections::BTreeMap;

/// An item with a computed vector (no `vector`), stock untracked.
pub fn item(id: &str, title: &str, category: &str, brand: &str, price: f64) -> Item {
    Item {
        id: id.into(),
        title: title.into(),
        category: category.into(),
        brand: brand.into(),
        price,
        stock: None,
        vector: None,
    }
}

/// `item` with stock tracked at the given stores.
pub fn stocked(mut item: Item, stock: &[(&str, u32)]) -> Item {
    item.stock = Some(
        stock
            .iter()
            .map(|&(store, quantity)| (store.to_owned(), quantity))
            .collect::<BTreeMap<_, _>>(),
    );
    item
}

/// An item carrying an embedding.
pub fn embedded(id: &str, vector: Vec<f32>) -> Item {
    Item {
        vector: Some(vector),
        ..item(id, "", "", "", 1.0)
    }
}

pub fn upserts(items: impl IntoIterator<Item = Item>) -> Vec<CatalogChange> {
    items.into_iter().map(CatalogChange::Upsert).collect()
}

/// A small shop: coffee beans of two brands, equipment, tea, socks.
pub fn shop() -> Vec<Item> {
    vec![
        item(
            "p31",
            "Ethiopia Yirgacheffe beans 250g",
            "coffee/beans",
            "Kairos Roasters",
            14.5,
        ),
        item(
            "p32",
            "Colombia Huila beans 250g",
            "coffee/beans",
            "Kairos Roasters",
            13.0,
        ),
        item(
            "p33",
            "Kenya AA beans 250g",
            "coffee/beans",
            "Kairos Roasters",
            15.0,
        ),
        item(
            "p34",
            "House blend beans 1kg",
            "coffee/beans",
            "Blue Bottle",
            32.0,
        ),
        item("p40", "Burr grinder", "coffee/equipment", "Hario", 49.0),
        item("p41", "Pour-over kettle", "coffee/equipment", "Hario", 39.0),
        item("p50", "Sencha green tea", "tea/green", "Ippodo", 18.0),
        item("p90", "Wool socks", "apparel/socks", "Smartwool", 19.0),
        item("p91", "Running socks", "apparel/socks", "Smartwool", 16.0),
    ]
}

/// Gaussian clusters: items are a cluster centre plus noise; queries too.
pub struct Clustered {
    centres: Vec<Vec<f32>>,
    dimensions: usize,
    seed: u64,
}

impl Clustered {
    pub fn new(clusters: usize, dimensions: usize, seed: u64) -> Clustered {
        let mut rng = StdRng::seed_from_u64(seed);
        let centres = (0..clusters)
            .map(|_| (0..dimensions).map(|_| gaussian(&mut rng)).collect())
            .collect();
        Clustered {
            centres,
            dimensions,
            seed,
        }
    }

    fn around(&self, mut rng: StdRng) -> Vec<f32> {
        let centre = &self.centres[rng.random_range(0..self.centres.len())];
        (0..self.dimensions)
            .map(|d| centre[d] + 0.6 * gaussian(&mut rng))
            .collect()
    }

    pub fn item(&self, n: usize) -> Vec<f32> {
        self.around(StdRng::seed_from_u64(self.seed ^ ((n as u64) << 1)))
    }

    pub fn query(&self, n: usize) -> Vec<f32> {
        self.around(StdRng::seed_from_u64(self.seed ^ ((n as u64) << 1 | 1)))
    }
}

/// A standard normal sample (Box–Muller).
fn gaussian(rng: &mut StdRng) -> f32 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}
