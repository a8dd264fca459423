//! Deterministic item catalogs for `kairos-recommend`.
//!
//! Two catalogs, each a pure function of its arguments (no clock, no
//! entropy), so that files and numbers from different runs agree:
//!
//! - [`retail_items`]: the demo catalog shipped as `pipelines/catalog.jsonl`
//!   (written by the `gen-catalog` binary). It describes the products the
//!   synthetic event generator ([`crate::generate`]) talks about — ids `p0` …
//!   `p4999` with the same prices — plus the five products of `kairos demo`.
//!   Its items carry no vector: kairos computes one from category, brand,
//!   price and title ([`kairos_recommend::computed_vector`]).
//! - [`ClusteredCatalog`]: a large catalog with provided embeddings in
//!   Gaussian clusters, and taste-like queries over it, for the
//!   `recommend-bench` binary and the `recommend` criterion benchmark.
//!
//! # Categories of events and of the catalog
//!
//! The event generator labels product `n` with `cat-NN` (`category_of`); the
//! catalog gives the same product the descriptive path `CATEGORIES[NN]`
//! (`coffee/beans`, `tea/oolong`, ...), so the two map one to one
//! ([`descriptive_category`] translates). The events keep their short labels
//! because the retail benchmarks' figures (bytes per event, state per
//! customer) were measured with them.

use crate::SplitMix64;
use kairos_recommend::Item;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The stores of `pipelines/retail.toml` (and the event generator's), in the
/// order stock is drawn for them.
pub const STORES: [&str; 3] = ["sh-nanjing-rd", "sh-xintiandi", "bj-sanlitun"];

/// The catalog's categories: `cat-NN` in the events is `CATEGORIES[NN]`.
pub const CATEGORIES: [&str; 40] = {
    let mut paths = [""; 40];
    let mut index = 0;
    while index < 40 {
        paths[index] = CATEGORY_SPECS[index].path;
        index += 1;
    }
    paths
};

/// A product of `kairos demo` (`crates/kairos/src/demo.rs`), which is not
/// among `p0` … `p4999`.
struct DemoProduct {
    id: &'static str,
    title: &'static str,
    category: &'static str,
    brand: &'static str,
    /// The demo's price for it.
    price: f64,
    /// Quantities at `sh-nanjing-rd` and `sh-xintiandi` (the demo's shopper
    /// is near Nanjing Road).
    shanghai_stock: [u32; 2],
}

/// The products of `kairos demo`.
const DEMO_PRODUCTS: [DemoProduct; 5] = [
    DemoProduct {
        id: "p-espresso-beans",
        title: "Espresso blend dark roast beans 1kg",
        category: "coffee/beans",
        brand: "Kairos Roasters",
        price: 14.5,
        shanghai_stock: [12, 7],
    },
    DemoProduct {
        id: "p-oolong",
        title: "Tieguanyin oolong 100g",
        category: "tea/oolong",
        brand: "Kairos Tea House",
        price: 9.9,
        shanghai_stock: [20, 15],
    },
    DemoProduct {
        id: "p-grinder",
        title: "Hand burr grinder",
        category: "coffee/equipment/grinders",
        brand: "Comandante",
        price: 89.0,
        shanghai_stock: [3, 2],
    },
    DemoProduct {
        id: "p-mug",
        title: "Ceramic mug 350ml",
        category: "homeware/mugs",
        brand: "Kinto",
        price: 12.0,
        shanghai_stock: [18, 9],
    },
    DemoProduct {
        id: "p-kettle",
        title: "Gooseneck kettle 1l",
        category: "tea/teaware/kettles",
        brand: "Fellow",
        price: 45.0,
        shanghai_stock: [4, 6],
    },
];

/// Seed of the retail catalog's titles, brands and stock ("catalog").
const RETAIL_SEED: u64 = 0x6361_7461_6c6f_6700;

/// The demo catalog, in file order: `p0` … `p4999`, then the `kairos demo`
/// products.
///
/// Product `n` has the event generator's price for it (to the cent) and the
/// category its `cat-NN` label stands for; its title, brand and stock are
/// drawn from a generator seeded by `n` alone, so one product does not
/// change when another does. About 10 % of the products have untracked
/// stock (`stock` absent: in stock everywhere); the others have a quantity
/// from 0 to 20 at each of [`STORES`], 0 about 15 % of the time.
pub fn retail_items() -> impl Iterator<Item = Item> {
    let products = (0..crate::PRODUCTS as u32).map(retail_item);
    let demo = DEMO_PRODUCTS.iter().map(|product| Item {
        id: product.id.to_owned(),
        title: product.title.to_owned(),
        category: product.category.to_owned(),
        brand: product.brand.to_owned(),
        price: product.price,
        stock: Some(BTreeMap::from([
            (STORES[0].to_owned(), product.shanghai_stock[0]),
            (STORES[1].to_owned(), product.shanghai_stock[1]),
        ])),
        vector: None,
    });
    products.chain(demo)
}

/// [`retail_items`] as the lines of `pipelines/catalog.jsonl` (without
/// their newlines).
pub fn retail_catalog_lines() -> impl Iterator<Item = String> {
    retail_items().map(|item| json_line(&item))
}

/// The descriptive category of a `cat-NN` label of the event generator,
/// `None` for anything else.
pub fn descriptive_category(event_category: &str) -> Option<&'static str> {
    let number = event_category.strip_prefix("cat-")?;
    if number.len() != 2 {
        return None;
    }
    CATEGORIES.get(number.parse::<usize>().ok()?).copied()
}

/// Product `n` of the demo catalog.
fn retail_item(product: u32) -> Item {
    let category = descriptive_category(&crate::category_of(product))
        .unwrap_or_else(|| unreachable!("category_of gives cat-00 .. cat-39"));
    let spec = CATEGORY_SPECS
        .iter()
        .find(|spec| spec.path == category)
        .unwrap_or_else(|| unreachable!("CATEGORIES is built from CATEGORY_SPECS"));
    let rng = &mut SplitMix64::new(RETAIL_SEED ^ u64::from(product));
    let pick = |rng: &mut SplitMix64, words: &[&'static str]| {
        words[rng.below(words.len() as u64) as usize]
    };

    let mut title = String::new();
    if rng.below(10) < 4 {
        title.push_str(pick(rng, &ADJECTIVES));
        title.push(' ');
    }
    title.push_str(pick(rng, spec.kinds));
    if spec.roasted {
        let _ = write!(title, " {} roast", pick(rng, &ROASTS));
    }
    for word in [spec.noun, pick(rng, spec.sizes)] {
        if !word.is_empty() {
            title.push(' ');
            title.push_str(word);
        }
    }
    // Titles start with a capital, whichever word came first.
    if let Some(first) = title.get(..1) {
        let capital = first.to_ascii_uppercase();
        title.replace_range(..1, &capital);
    }

    let brands = BRANDS
        .iter()
        .find(|(prefix, _)| category == *prefix || category.starts_with(&format!("{prefix}/")))
        .map(|(_, brands)| *brands)
        .unwrap_or_else(|| unreachable!("every top category has brands"));
    let brand = pick(rng, brands);

    Item {
        id: format!("p{product}"),
        title,
        category: category.to_owned(),
        brand: brand.to_owned(),
        // The events print the price with two decimals; this is the number
        // that text reads back as.
        price: (crate::price_of(product) * 100.0).round() / 100.0,
        stock: stock(rng),
        vector: None,
    }
}

/// Stock drawn from `rng`: untracked 10 % of the time, otherwise 0 to 20 at
/// each of [`STORES`], 0 with probability 15 %.
fn stock(rng: &mut SplitMix64) -> Option<BTreeMap<String, u32>> {
    if rng.below(10) == 0 {
        return None;
    }
    Some(
        STORES
            .iter()
            .map(|store| {
                let quantity = if rng.below(100) < 15 {
                    0
                } else {
                    1 + rng.below(20) as u32
                };
                ((*store).to_owned(), quantity)
            })
            .collect(),
    )
}

/// One item as a catalog line: `id`, `title`, `category`, `brand`, `price`,
/// `stock` (stores in id order), in the `kairos-recommend` item format.
fn json_line(item: &Item) -> String {
    let mut line = String::with_capacity(192);
    line.push_str(r#"{"id":"#);
    json_string(&mut line, &item.id);
    line.push_str(r#","title":"#);
    json_string(&mut line, &item.title);
    line.push_str(r#","category":"#);
    json_string(&mut line, &item.category);
    line.push_str(r#","brand":"#);
    json_string(&mut line, &item.brand);
    // `{}` of an f64 is the shortest text that reads back as the same
    // number (14.5, 89): what a catalog export would write.
    let _ = write!(line, r#","price":{}"#, item.price);
    if let Some(stock) = &item.stock {
        line.push_str(r#","stock":{"#);
        for (position, (store, quantity)) in stock.iter().enumerate() {
            if position > 0 {
                line.push(',');
            }
            json_string(&mut line, store);
            let _ = write!(line, ":{quantity}");
        }
        line.push('}');
    }
    line.push('}');
    line
}

/// Appends `text` as a JSON string.
fn json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

// ----- the demo catalog's words ---------------------------------------------

/// How the titles of one category are made: `[adjective] kind [roast]
/// noun [size]`.
struct CategorySpec {
    /// The category path.
    path: &'static str,
    /// The noun every title of the category ends with before the size
    /// (empty when the kinds name the product themselves).
    noun: &'static str,
    /// Origins, styles or materials.
    kinds: &'static [&'static str],
    /// Pack sizes (an empty string: no size).
    sizes: &'static [&'static str],
    /// Whether titles name a roast.
    roasted: bool,
}

const fn spec(
    path: &'static str,
    noun: &'static str,
    kinds: &'static [&'static str],
    sizes: &'static [&'static str],
    roasted: bool,
) -> CategorySpec {
    CategorySpec {
        path,
        noun,
        kinds,
        sizes,
        roasted,
    }
}

const ADJECTIVES: [&str; 8] = [
    "classic",
    "organic",
    "reserve",
    "signature",
    "everyday",
    "seasonal",
    "limited edition",
    "fair trade",
];

const ROASTS: [&str; 4] = ["light", "medium", "medium-dark", "dark"];

const COFFEE_ORIGINS: &[&str] = &[
    "Ethiopia Yirgacheffe",
    "Ethiopia Guji",
    "Kenya AA",
    "Colombia Huila",
    "Brazil Cerrado",
    "Guatemala Antigua",
    "Costa Rica Tarrazu",
    "Panama Geisha",
    "Sumatra Mandheling",
    "Yunnan Baoshan",
    "House blend",
    "Espresso blend",
];

const NO_SIZE: &[&str] = &[""];
const CLOTHING_SIZES: &[&str] = &["S", "M", "L", "XL"];

/// The 40 categories, in `cat-NN` order.
const CATEGORY_SPECS: [CategorySpec; 40] = [
    spec(
        "coffee/beans",
        "beans",
        COFFEE_ORIGINS,
        &["250g", "500g", "1kg"],
        true,
    ),
    spec(
        "coffee/ground",
        "ground coffee",
        COFFEE_ORIGINS,
        &["250g", "500g"],
        true,
    ),
    spec(
        "coffee/capsules",
        "capsules",
        COFFEE_ORIGINS,
        &["10 pack", "30 pack", "50 pack"],
        true,
    ),
    spec(
        "coffee/instant",
        "instant coffee",
        COFFEE_ORIGINS,
        &["12 sticks", "30 sticks", "100g jar"],
        true,
    ),
    spec(
        "coffee/cold-brew",
        "cold brew",
        &["black", "oat milk", "vanilla", "nitro", "coconut"],
        &["250ml", "330ml", "6 x 250ml"],
        false,
    ),
    spec(
        "coffee/drip-bags",
        "drip bags",
        COFFEE_ORIGINS,
        &["7 pack", "14 pack"],
        true,
    ),
    spec(
        "coffee/equipment/grinders",
        "grinder",
        &[
            "hand burr",
            "electric burr",
            "conical burr",
            "flat burr",
            "travel",
        ],
        NO_SIZE,
        false,
    ),
    spec(
        "coffee/equipment/brewers",
        "",
        &[
            "pour-over dripper",
            "French press",
            "AeroPress",
            "moka pot",
            "siphon brewer",
            "cold brew maker",
        ],
        &["1 cup", "2 cups", "4 cups"],
        false,
    ),
    spec(
        "coffee/equipment/espresso-machines",
        "espresso machine",
        &[
            "single boiler",
            "dual boiler",
            "lever",
            "compact",
            "semi-automatic",
        ],
        NO_SIZE,
        false,
    ),
    spec(
        "coffee/equipment/accessories",
        "",
        &[
            "coffee scale",
            "milk pitcher",
            "tamper",
            "knock box",
            "paper filters",
            "cleaning tablets",
        ],
        NO_SIZE,
        false,
    ),
    spec(
        "tea/green",
        "green tea",
        &[
            "Longjing",
            "Biluochun",
            "Huangshan Maofeng",
            "Taiping Houkui",
            "Sencha",
            "Gyokuro",
        ],
        &["50g", "100g", "20 bags"],
        false,
    ),
    spec(
        "tea/oolong",
        "oolong",
        &[
            "Tieguanyin",
            "Da Hong Pao",
            "Dong Ding",
            "Alishan",
            "Phoenix Dancong",
            "milk",
        ],
        &["50g", "100g", "150g"],
        false,
    ),
    spec(
        "tea/black",
        "black tea",
        &[
            "Keemun",
            "Dianhong",
            "Lapsang Souchong",
            "Assam",
            "Darjeeling",
            "Earl Grey",
        ],
        &["50g", "100g", "25 bags"],
        false,
    ),
    spec(
        "tea/white",
        "white tea",
        &["Silver Needle", "White Peony", "Shoumei", "Fuding"],
        &["50g", "100g", "357g cake"],
        false,
    ),
    spec(
        "tea/puer",
        "pu'er",
        &[
            "Menghai raw",
            "Menghai ripe",
            "Lincang raw",
            "Bulang ripe",
            "Yiwu raw",
        ],
        &["100g", "357g cake", "5 tuocha"],
        false,
    ),
    spec(
        "tea/herbal",
        "infusion",
        &[
            "chamomile",
            "peppermint",
            "rooibos",
            "chrysanthemum",
            "hibiscus",
            "lemongrass ginger",
        ],
        &["20 bags", "50g"],
        false,
    ),
    spec(
        "tea/matcha",
        "matcha",
        &["Uji ceremonial", "Uji culinary", "Nishio", "Yame"],
        &["30g", "100g"],
        false,
    ),
    spec(
        "tea/teaware/kettles",
        "kettle",
        &[
            "gooseneck",
            "electric",
            "cast iron",
            "glass",
            "variable temperature",
        ],
        &["0.8l", "1l", "1.2l"],
        false,
    ),
    spec(
        "tea/teaware/teapots",
        "teapot",
        &["Yixing clay", "glass", "porcelain", "cast iron", "celadon"],
        &["200ml", "400ml", "800ml"],
        false,
    ),
    spec(
        "tea/teaware/cups",
        "tea cups",
        &["porcelain", "celadon", "double-wall glass", "Jianzhan"],
        &["set of 2", "set of 4", "set of 6"],
        false,
    ),
    spec(
        "homeware/mugs",
        "mug",
        &["ceramic", "enamel", "stoneware", "logo", "speckled"],
        &["300ml", "350ml", "450ml"],
        false,
    ),
    spec(
        "homeware/tumblers",
        "tumbler",
        &["insulated", "travel", "glass", "bamboo lid"],
        &["350ml", "500ml", "750ml"],
        false,
    ),
    spec(
        "homeware/glassware",
        "glasses",
        &["cortado", "latte", "double-wall", "cold brew"],
        &["set of 2", "set of 4"],
        false,
    ),
    spec(
        "homeware/storage",
        "canister",
        &["airtight", "vacuum", "ceramic", "tin"],
        &["250g", "500g", "1kg"],
        false,
    ),
    spec(
        "homeware/gift-sets",
        "gift set",
        &["coffee lover's", "tea tasting", "brew at home", "holiday"],
        NO_SIZE,
        false,
    ),
    spec(
        "bakery/pastries",
        "",
        &[
            "butter croissant",
            "almond croissant",
            "pain au chocolat",
            "cinnamon roll",
            "egg tart",
            "Danish",
        ],
        &["single", "box of 4"],
        false,
    ),
    spec(
        "bakery/bread",
        "",
        &[
            "sourdough loaf",
            "baguette",
            "milk bread",
            "rye loaf",
            "focaccia",
        ],
        &["whole", "half"],
        false,
    ),
    spec(
        "bakery/cakes",
        "",
        &[
            "Basque cheesecake",
            "tiramisu",
            "carrot cake",
            "matcha roll cake",
            "chocolate fudge cake",
        ],
        &["slice", "whole 6in"],
        false,
    ),
    spec(
        "bakery/cookies",
        "cookie",
        &[
            "chocolate chip",
            "oatmeal raisin",
            "matcha white chocolate",
            "double chocolate",
            "almond",
        ],
        &["single", "pack of 6"],
        false,
    ),
    spec(
        "bakery/sandwiches",
        "sandwich",
        &[
            "ham and cheese",
            "chicken pesto",
            "egg salad",
            "tuna",
            "caprese",
        ],
        NO_SIZE,
        false,
    ),
    spec(
        "snacks/chocolate",
        "chocolate",
        &[
            "70% dark",
            "milk",
            "sea salt dark",
            "coffee-infused",
            "hazelnut",
        ],
        &["50g bar", "100g bar", "box of 12"],
        false,
    ),
    spec(
        "snacks/nuts",
        "",
        &[
            "roasted almonds",
            "cashews",
            "mixed nuts",
            "honey walnuts",
            "macadamias",
        ],
        &["100g", "250g"],
        false,
    ),
    spec(
        "snacks/biscuits",
        "",
        &[
            "butter biscuits",
            "almond biscotti",
            "speculoos",
            "shortbread",
            "digestive biscuits",
        ],
        &["150g", "300g tin"],
        false,
    ),
    spec(
        "snacks/dried-fruit",
        "",
        &[
            "dried mango",
            "dried figs",
            "goji berries",
            "dried apricots",
            "mixed berries",
        ],
        &["100g", "250g"],
        false,
    ),
    spec(
        "snacks/granola",
        "granola",
        &[
            "honey oat",
            "coffee cacao",
            "nut cluster",
            "berry",
            "matcha coconut",
        ],
        &["300g", "500g"],
        false,
    ),
    spec(
        "apparel/t-shirts",
        "t-shirt",
        &["logo", "pocket", "barista", "organic cotton"],
        CLOTHING_SIZES,
        false,
    ),
    spec(
        "apparel/hoodies",
        "hoodie",
        &["logo", "zip", "heavyweight", "fleece"],
        CLOTHING_SIZES,
        false,
    ),
    spec(
        "apparel/caps",
        "cap",
        &["logo", "dad", "trucker", "corduroy"],
        NO_SIZE,
        false,
    ),
    spec(
        "apparel/tote-bags",
        "tote bag",
        &["canvas", "logo", "market", "insulated"],
        NO_SIZE,
        false,
    ),
    spec(
        "apparel/aprons",
        "apron",
        &["barista", "denim", "canvas", "waxed"],
        NO_SIZE,
        false,
    ),
];

/// Brands by category prefix, most specific first (the first match wins).
const BRANDS: [(&str, &[&str]); 8] = [
    (
        "coffee/equipment",
        &[
            "Hario",
            "Comandante",
            "Baratza",
            "Fellow",
            "Bialetti",
            "De'Longhi",
            "Timemore",
            "Kalita",
        ],
    ),
    (
        "coffee",
        &[
            "Kairos Roasters",
            "Blue Bottle",
            "Seesaw",
            "Manner",
            "Lavazza",
            "Illy",
            "Metal Hands",
            "Nespresso",
        ],
    ),
    (
        "tea/teaware",
        &["Hario", "Kinto", "Bodum", "Iwachu", "Fellow"],
    ),
    (
        "tea",
        &[
            "Kairos Tea House",
            "Twinings",
            "Mariage Freres",
            "Ippodo",
            "Yunnan Tea Co",
            "Teavana",
        ],
    ),
    (
        "homeware",
        &["Kinto", "Stanley", "Hay", "Muji", "Kairos Home"],
    ),
    (
        "bakery",
        &["Kairos Bakery", "Paul", "Baker & Spice", "Wagas"],
    ),
    (
        "snacks",
        &[
            "Lindt",
            "Godiva",
            "Three Squirrels",
            "Be&Cheery",
            "Kairos Pantry",
        ],
    ),
    ("apparel", &["Kairos", "Uniqlo", "Carhartt", "Patagonia"]),
];

// ----- the clustered catalog -------------------------------------------------

/// A catalog of `items` items with provided embeddings of `dimensions`
/// dimensions, in Gaussian clusters, and taste-like queries over it.
///
/// Cluster centres are standard normal vectors; each cluster has its own
/// spread, from 0.5 to 0.8 per component, and item `n` belongs to a cluster
/// chosen by hashing `n` (so clusters hold about `items / clusters` items,
/// unevenly). Items are `e0`, `e1`, ...; their stock is drawn as in the demo
/// catalog (10 % untracked, 15 % of store quantities zero).
///
/// Queries imitate a customer's taste (`kairos-engine`'s `taste.rs`: the
/// time-decayed mean of the unit vectors of the items they touched): the
/// weighted mean of 1–8 items, three in four from one cluster and the rest
/// from a second, with weights halving over 0–3 half-lives.
pub struct ClusteredCatalog {
    items: usize,
    dimensions: usize,
    seed: u64,
    /// Each cluster's centre.
    centres: Vec<Vec<f32>>,
    /// Each cluster's spread (the noise's standard deviation per component).
    spreads: Vec<f32>,
    /// The items of each cluster, by number.
    members: Vec<Vec<u32>>,
}

/// A query of a [`ClusteredCatalog`].
pub struct Taste {
    /// The taste vector (not normalised: the index does that).
    pub vector: Vec<f32>,
    /// Ids of the items the taste was made of, then others of its main
    /// cluster: 8 in all, what an action leaves out (recently viewed or
    /// bought).
    pub exclude: Vec<String>,
    /// The store the recommendation is for.
    pub store: &'static str,
}

impl ClusteredCatalog {
    /// The catalog (centres and cluster membership only: vectors are
    /// computed when asked for).
    pub fn new(items: usize, dimensions: usize, clusters: usize, seed: u64) -> ClusteredCatalog {
        let clusters = clusters.clamp(1, items.max(1));
        let rng = &mut SplitMix64::new(seed);
        let centres = (0..clusters)
            .map(|_| (0..dimensions).map(|_| gaussian(rng)).collect())
            .collect();
        let spreads = (0..clusters)
            .map(|_| 0.5 + 0.3 * rng.unit() as f32)
            .collect();
        let mut catalog = ClusteredCatalog {
            items,
            dimensions,
            seed,
            centres,
            spreads,
            members: vec![Vec::new(); clusters],
        };
        for n in 0..items {
            let cluster = catalog.cluster_of(n);
            catalog.members[cluster].push(n as u32);
        }
        catalog
    }

    /// Items in the catalog.
    pub fn len(&self) -> usize {
        self.items
    }

    /// Whether the catalog has no items.
    pub fn is_empty(&self) -> bool {
        self.items == 0
    }

    /// The id of item `n`.
    pub fn id(n: usize) -> String {
        format!("e{n}")
    }

    /// Item `n`, with its vector and stock.
    pub fn item(&self, n: usize) -> Item {
        let rng = &mut self.item_rng(n);
        let cluster = self.cluster_of(n);
        let (centre, spread) = (&self.centres[cluster], self.spreads[cluster]);
        let vector = centre.iter().map(|c| c + spread * gaussian(rng)).collect();
        Item {
            id: ClusteredCatalog::id(n),
            title: String::new(),
            category: String::new(),
            brand: String::new(),
            price: 1.0,
            stock: stock(rng),
            vector: Some(vector),
        }
    }

    /// Query `q`.
    pub fn taste(&self, q: usize) -> Taste {
        let rng = &mut SplitMix64::new(self.seed ^ 0x7461_7374_6500_0000 ^ (q as u64));
        let clusters = self.members.len() as u64;
        let main = rng.below(clusters) as usize;
        let second = rng.below(clusters) as usize;
        let touched = 1 + rng.below(8) as usize;
        let mut vector = vec![0f32; self.dimensions];
        let mut exclude = Vec::with_capacity(8);
        let mut total_weight = 0f32;
        for _ in 0..touched {
            let cluster = if rng.below(4) < 3 { main } else { second };
            let Some(n) = self.member(cluster, rng) else {
                continue;
            };
            let weight = 0.5f32.powf(3.0 * rng.unit() as f32);
            let item_vector = self.item(n).vector.unwrap_or_default();
            let norm = item_vector.iter().map(|x| x * x).sum::<f32>().sqrt();
            if norm > 0.0 {
                for (sum, x) in vector.iter_mut().zip(&item_vector) {
                    *sum += weight * x / norm;
                }
                total_weight += weight;
            }
            let id = ClusteredCatalog::id(n);
            if !exclude.contains(&id) {
                exclude.push(id);
            }
        }
        if total_weight > 0.0 {
            vector.iter_mut().for_each(|x| *x /= total_weight);
        }
        // Pad to 8 with other items of the main cluster (bounded, in case
        // the cluster is tiny).
        for _ in 0..64 {
            if exclude.len() >= 8 {
                break;
            }
            if let Some(n) = self.member(main, rng) {
                let id = ClusteredCatalog::id(n);
                if !exclude.contains(&id) {
                    exclude.push(id);
                }
            }
        }
        Taste {
            vector,
            exclude,
            store: STORES[rng.below(STORES.len() as u64) as usize],
        }
    }

    fn cluster_of(&self, n: usize) -> usize {
        (crate::mix64(self.seed ^ 0x636c_7573_7465_7200 ^ n as u64) % self.members.len() as u64)
            as usize
    }

    fn item_rng(&self, n: usize) -> SplitMix64 {
        SplitMix64::new(crate::mix64(self.seed ^ 0x6974_656d_0000_0000 ^ n as u64))
    }

    fn member(&self, cluster: usize, rng: &mut SplitMix64) -> Option<usize> {
        let members = &self.members[cluster];
        (!members.is_empty()).then(|| members[rng.below(members.len() as u64) as usize] as usize)
    }
}

/// A standard normal sample (Box–Muller).
fn gaussian(rng: &mut SplitMix64) -> f32 {
    let u1 = 1.0 - rng.unit();
    let u2 = rng.unit();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use kairos_recommend::parse_item;
    use std::collections::BTreeSet;

    #[test]
    fn products_agree_with_the_event_generator() {
        let items: Vec<Item> = retail_items().collect();
        assert_eq!(items.len(), crate::PRODUCTS as usize + DEMO_PRODUCTS.len());
        for (n, item) in items.iter().take(crate::PRODUCTS as usize).enumerate() {
            let product = n as u32;
            assert_eq!(item.id, format!("p{n}"));
            // The text an event carries reads back as the catalog's price.
            let event_price: f64 = format!("{:.2}", crate::price_of(product)).parse().unwrap();
            assert_eq!(item.price, event_price, "{}", item.id);
            assert_eq!(
                descriptive_category(&crate::category_of(product)),
                Some(item.category.as_str())
            );
        }
        let used: BTreeSet<&str> = items.iter().map(|item| item.category.as_str()).collect();
        assert_eq!(used.len(), 40, "every category is used: {used:?}");
    }

    #[test]
    fn categories_are_distinct_and_labels_translate() {
        let distinct: BTreeSet<&str> = CATEGORIES.iter().copied().collect();
        assert_eq!(distinct.len(), CATEGORIES.len());
        assert_eq!(descriptive_category("cat-00"), Some("coffee/beans"));
        assert_eq!(descriptive_category("cat-39"), Some("apparel/aprons"));
        for other in ["cat-40", "cat-1", "cat-001", "coffee/beans", ""] {
            assert_eq!(descriptive_category(other), None, "{other}");
        }
    }

    #[test]
    fn stock_is_mostly_tracked_and_sometimes_zero() {
        let items: Vec<Item> = retail_items().take(crate::PRODUCTS as usize).collect();
        let untracked = items.iter().filter(|item| item.stock.is_none()).count();
        let quantities: Vec<u32> = items
            .iter()
            .filter_map(|item| item.stock.as_ref())
            .flat_map(|stock| {
                assert_eq!(stock.len(), STORES.len());
                stock.values().copied()
            })
            .collect();
        let zero = quantities.iter().filter(|&&quantity| quantity == 0).count();
        let share = |part: usize, whole: usize| part as f64 / whole as f64;
        assert!(
            (share(untracked, items.len()) - 0.10).abs() < 0.02,
            "{untracked}"
        );
        assert!(
            (share(zero, quantities.len()) - 0.15).abs() < 0.02,
            "{zero}"
        );
        assert!(quantities.iter().all(|&quantity| quantity <= 20));
    }

    #[test]
    fn lines_parse_back_to_the_items() {
        for (line, item) in retail_catalog_lines().zip(retail_items()) {
            assert_eq!(parse_item(line.as_bytes()), Ok(item), "{line}");
        }
    }

    #[test]
    fn clustered_catalog_is_deterministic_and_tastes_exclude_eight() {
        let catalog = ClusteredCatalog::new(2_000, 16, 20, 7);
        let again = ClusteredCatalog::new(2_000, 16, 20, 7);
        assert_eq!(catalog.item(1_234), again.item(1_234));
        assert_ne!(catalog.item(1_234).vector, catalog.item(1_235).vector);
        for q in 0..50 {
            let taste = catalog.taste(q);
            assert_eq!(taste.vector.len(), 16);
            assert!(taste.vector.iter().any(|&x| x != 0.0));
            assert_eq!(taste.exclude.len(), 8);
            assert_eq!(taste.vector, again.taste(q).vector);
        }
    }
}
