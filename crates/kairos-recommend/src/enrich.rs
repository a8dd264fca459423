//! Answers an engine decision's [`RecommendationRequest`] into its payload:
//! `payload.recommendations`, a list of `{"item_id", "score"}`, best first.
//! The same in `kairos run` and `kairos backtest`, so offline replays show
//! what production would have sent (for the same catalog).

use crate::{IndexError, ItemIndex, Query};
use kairos_engine::taste::{ItemVectors, RecommendationRequest};
use kairos_model::{Payload, PayloadValue};
use serde_json::{json, Value};

/// The engine's table of item vectors, filled from the index: what it
/// learns tastes from (at start, after a snapshot is restored, for a
/// backtest's catalog).
pub fn item_vectors(index: &ItemIndex) -> Result<ItemVectors, IndexError> {
    let mut table = ItemVectors::new();
    for (id, vector) in index.vectors()? {
        // The index holds one dimension: another one here means damage.
        table
            .insert(&id, &vector)
            .map_err(|mismatch| IndexError::Damaged(mismatch.to_string()))?;
    }
    Ok(table)
}

/// The payload field recommendations go in.
pub const RECOMMENDATIONS: &str = "recommendations";

/// Sets `payload.recommendations` to the items the index finds for
/// `request`: an empty list when there is no basis for any (nothing known
/// of the customer) or the index cannot be read (logged), so consumers can
/// always rely on the field for triggers that ask for it.
pub fn enrich(index: &ItemIndex, request: &RecommendationRequest, payload: &mut Payload) {
    let exclude: Vec<&str> = request.exclude.iter().map(|id| id.as_str()).collect();
    let query = Query {
        vector: &request.vector,
        k: request.k,
        exclude: &exclude,
        store: request.store.as_deref(),
    };
    let found = match index.recommend(&query) {
        Ok(found) => found,
        Err(error) => {
            tracing::warn!(%error, "recommendations left empty: the item index cannot be read");
            Vec::new()
        }
    };
    let items = found
        .into_iter()
        .map(|recommendation| {
            // Through f64 with the rounding redone, so 0.83 is written
            // "0.83", not the nearest f32's 0.8299999833106995.
            let score = (f64::from(recommendation.score) * 1e4).round() / 1e4;
            json!({"item_id": recommendation.item_id, "score": score})
        })
        .collect();
    payload.set(RECOMMENDATIONS, PayloadValue::Json(Value::Array(items)));
}
