//! kairos' item catalog and nearest-neighbour index: given a customer's
//! taste vector, the top-k catalog items they are most likely to want.
//!
//! kairos enriches actions ("you left something in your cart") with
//! recommended items. The engine keeps each customer's taste vector and
//! asks a [`Query`]; this crate holds the catalog, in stock or not per
//! store, and answers it from an approximate-nearest-neighbour index
//! ([arroy](https://docs.rs/arroy) on LMDB), ranking the candidates exactly.
//!
//! - [`catalog`]: items and live changes as JSON ([`parse_item`],
//!   [`read_catalog`] for JSON-lines files, [`parse_change`] for the
//!   `kairos.catalog.upsert|delete|stock` subjects), validated with errors
//!   that name the field and line.
//! - [`features`]: vectors computed from category, brand, price and title,
//!   for catalogs without embeddings.
//! - [`ItemIndex`]: the persisted index. [`ItemIndex::apply`] changes it in
//!   one transaction; [`ItemIndex::recommend`] queries it concurrently and
//!   never waits for a rebuild; the same changes give the same answers in
//!   any directory (builds are seeded and single-threaded).
//!
//! ```
//! use kairos_recommend::{parse_item, CatalogChange, ItemIndex, Query};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let index = ItemIndex::open(dir.path())?;
//! let lines = [
//!     r#"{"id":"p31","title":"Yirgacheffe beans","category":"coffee/beans","brand":"Kairos Roasters","price":14.5}"#,
//!     r#"{"id":"p32","title":"Huila beans","category":"coffee/beans","brand":"Kairos Roasters","price":13.0,"stock":{"sh-xintiandi":0}}"#,
//!     r#"{"id":"p90","title":"Wool socks","category":"apparel/socks","brand":"Smartwool","price":19.0}"#,
//! ];
//! let items = lines.iter().map(|line| parse_item(line.as_bytes())).collect::<Result<Vec<_>, _>>()?;
//! let applied = index.apply(items.into_iter().map(CatalogChange::Upsert))?;
//! assert_eq!(applied.upserted, 3);
//!
//! // A customer who looked at p31: what else, in stock at sh-xintiandi?
//! let taste = index.item("p31")?.map(|item| kairos_recommend::computed_vector(&item)).unwrap_or_default();
//! let query = Query { vector: &taste, k: 2, exclude: &["p31"], store: Some("sh-xintiandi") };
//! let recommended = index.recommend(&query)?;
//! // p32 is out of stock there; the socks are all that is left.
//! assert_eq!(recommended[0].item_id, "p90");
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod catalog;
mod enrich;
pub mod features;
mod index;
mod vector;

pub use catalog::{
    parse_change, parse_item, read_catalog, CatalogChange, CatalogError, CatalogFileError, Item,
    LineError,
};
pub use enrich::{enrich, item_vectors, RECOMMENDATIONS};
pub use features::{computed_vector, COMPUTED_DIMENSIONS};
pub use index::{
    Applied, IndexError, IndexOptions, ItemIndex, Query, Recommendation, Refusal, RefusalReason,
    SourcePosition, VectorSource,
};
