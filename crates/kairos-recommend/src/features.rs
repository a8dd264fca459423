//! Computed vectors: for catalogs that come without embeddings, each item
//! gets a vector computed from its category, brand, price and title.
//!
//! # Method
//!
//! The item is described by a set of features, each a short string with a
//! weight:
//!
//! - `category:<path prefix>` for every prefix of the `/`-separated
//!   category path, lowercased (`coffee/beans` gives `category:coffee` and
//!   `category:coffee/beans`), weight 3.0 each: items in the same
//!   sub-category share every level, items in sibling sub-categories share
//!   the upper ones;
//! - `brand:<brand, lowercased>`, weight 2.0 (none when the brand is empty);
//! - `price_band:<⌊log₂(price + 1)⌋>`, weight 1.0: prices within a factor of
//!   two of each other tend to share a band;
//! - `title:<token>` for each distinct lowercase alphanumeric word of the
//!   title, weight 1/√n for n distinct words, so that a title counts as
//!   much as one price band however long it is.
//!
//! The features are folded into [`COMPUTED_DIMENSIONS`] numbers with the
//! hashing trick: each feature's xxh3 hash (with a fixed seed) picks a
//! component (its low bits) and a sign (its top bit), and the feature's
//! weight is added to that component with that sign. Random signs make
//! collisions cancel out on average instead of piling up. The result is
//! scaled to unit length (L2-normalised), so that the cosine similarity of
//! two items is about the weighted share of their features: same category
//! and brand score high, unrelated items near zero.
//!
//! The computation is deterministic: the same item gives the same vector
//! on every machine and in every run (no randomness, no hash-map order).
//! Changing the seed, the weights or the features changes every vector, so
//! an index built with one version is rebuilt when they change.

use crate::catalog::Item;
use std::collections::BTreeSet;
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// The number of dimensions of computed vectors.
pub const COMPUTED_DIMENSIONS: usize = 64;

/// Seed of the feature hash (any fixed value: it decides every vector).
const FEATURE_SEED: u64 = 0x6b61_6972_6f73_6674;
const CATEGORY_WEIGHT: f64 = 3.0;
const BRAND_WEIGHT: f64 = 2.0;
const PRICE_BAND_WEIGHT: f64 = 1.0;

/// The item's computed vector: [`COMPUTED_DIMENSIONS`] components, unit
/// length (see the module docs for the method). The item's own `vector`,
/// if any, is not consulted.
pub fn computed_vector(item: &Item) -> Vec<f32> {
    let mut sums = [0f64; COMPUTED_DIMENSIONS];
    let mut add = |feature: &str, weight: f64| {
        let hash = xxh3_64_with_seed(feature.as_bytes(), FEATURE_SEED);
        let component = (hash % COMPUTED_DIMENSIONS as u64) as usize;
        let sign = if hash >> 63 == 0 { 1.0 } else { -1.0 };
        sums[component] += sign * weight;
    };

    let mut path = String::new();
    for level in item
        .category
        .split('/')
        .map(str::trim)
        .filter(|level| !level.is_empty())
    {
        if !path.is_empty() {
            path.push('/');
        }
        path.push_str(&level.to_lowercase());
        add(&format!("category:{path}"), CATEGORY_WEIGHT);
    }

    let brand = item.brand.trim().to_lowercase();
    if !brand.is_empty() {
        add(&format!("brand:{brand}"), BRAND_WEIGHT);
    }

    // Prices are validated finite and ≥ 0, so the band is a small integer.
    let band = (item.price + 1.0).log2().floor() as i64;
    add(&format!("price_band:{band}"), PRICE_BAND_WEIGHT);

    // A BTreeSet: distinct words, in an order that does not depend on a
    // hasher (floating-point sums depend on the order of their terms).
    let words: BTreeSet<String> = item
        .title
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
        .collect();
    let word_weight = 1.0 / (words.len().max(1) as f64).sqrt();
    for word in &words {
        add(&format!("title:{word}"), word_weight);
    }

    let norm = sums.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm == 0.0 {
        // Every feature cancelled out in the collisions (possible, if
        // vanishingly rare): fall back on a direction of the item's own,
        // since cosine similarity needs a non-zero vector.
        let hash = xxh3_64_with_seed(item.id.as_bytes(), FEATURE_SEED);
        let mut vector = vec![0f32; COMPUTED_DIMENSIONS];
        vector[(hash % COMPUTED_DIMENSIONS as u64) as usize] = 1.0;
        return vector;
    }
    sums.iter().map(|x| (x / norm) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, title: &str, category: &str, brand: &str, price: f64) -> Item {
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

    fn cosine(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum()
    }

    #[test]
    fn computed_vectors_are_deterministic_and_unit_length() {
        let beans = item(
            "p31",
            "Ethiopia Yirgacheffe beans 250g",
            "coffee/beans",
            "Kairos Roasters",
            14.5,
        );
        let first = computed_vector(&beans);
        assert_eq!(first, computed_vector(&beans.clone()));
        assert_eq!(first.len(), COMPUTED_DIMENSIONS);
        assert!((cosine(&first, &first) - 1.0).abs() < 1e-6);
        // The id plays no part: two listings of one product look alike.
        let relisted = Item {
            id: "p99".into(),
            ..beans
        };
        assert_eq!(first, computed_vector(&relisted));
    }

    #[test]
    fn case_and_spacing_do_not_matter() {
        let a = item(
            "a",
            "Kenya AA Beans",
            "Coffee/Beans",
            "Kairos Roasters",
            12.0,
        );
        let b = item(
            "b",
            "kenya aa beans",
            "coffee / beans",
            " kairos roasters ",
            12.0,
        );
        assert_eq!(computed_vector(&a), computed_vector(&b));
    }

    #[test]
    fn same_category_and_brand_score_higher_than_unrelated_items() {
        let beans = item(
            "p31",
            "Ethiopia Yirgacheffe beans 250g",
            "coffee/beans",
            "Kairos Roasters",
            14.5,
        );
        let other_beans = item(
            "p32",
            "Colombia Huila beans 250g",
            "coffee/beans",
            "Kairos Roasters",
            13.0,
        );
        let socks = item("p90", "Wool socks", "apparel/socks", "Smartwool", 19.0);
        let beans = computed_vector(&beans);
        assert!(cosine(&beans, &computed_vector(&other_beans)) > 0.9);
        assert!(cosine(&beans, &computed_vector(&socks)) < 0.3);

        // Over many items: single pairs can collide (64 components), so the
        // claim is about every similar pair and the typical unrelated one.
        let catalog: Vec<(usize, usize, Vec<f32>)> = (0..240)
            .map(|n| {
                let (department, brand) = (n % 6, n % 8);
                let generated = item(
                    &format!("p{n}"),
                    &format!("item {n} model {}", n % 7),
                    &format!("department{department}/aisle{}", n % 12),
                    &format!("Brand {brand}"),
                    (n % 50) as f64 * 3.0,
                );
                (n % 12, brand, computed_vector(&generated))
            })
            .collect();
        let (mut similar, mut unrelated) = (Vec::new(), Vec::new());
        for (i, (aisle, brand, vector)) in catalog.iter().enumerate() {
            for (other_aisle, other_brand, other) in &catalog[i + 1..] {
                let score = cosine(vector, other);
                if aisle == other_aisle && brand == other_brand {
                    similar.push(score);
                } else if aisle % 6 != other_aisle % 6 && brand != other_brand {
                    unrelated.push(score);
                }
            }
        }
        let mean = |scores: &[f64]| scores.iter().sum::<f64>() / scores.len() as f64;
        let weakest_similar = similar.iter().copied().fold(f64::INFINITY, f64::min);
        assert!(
            weakest_similar > 0.5,
            "weakest similar pair {weakest_similar:.3}"
        );
        assert!(
            mean(&similar) > mean(&unrelated) + 0.5,
            "{:.3} vs {:.3}",
            mean(&similar),
            mean(&unrelated)
        );
        let mut sorted = unrelated.clone();
        sorted.sort_by(f64::total_cmp);
        let unrelated_p95 = sorted[sorted.len() * 95 / 100];
        assert!(
            weakest_similar > unrelated_p95,
            "{weakest_similar:.3} vs p95 {unrelated_p95:.3}"
        );
    }

    #[test]
    fn items_without_title_brand_or_category_still_get_a_direction() {
        let bare = item("x", "", "", "", 0.0);
        let vector = computed_vector(&bare);
        assert!((cosine(&vector, &vector) - 1.0).abs() < 1e-6);
    }
}
