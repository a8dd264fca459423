//! Vector arithmetic shared by the index and its queries: one way to
//! normalise, one way to score, so that approximate and exact search agree
//! to the bit.

/// Scores are reported to 4 decimals; ranking uses the same rounded value,
/// so that two items the caller sees with equal scores are ordered by id.
const SCORE_SCALE: f64 = 10_000.0;

/// `vector` scaled to unit length, or `None` if it has no direction (all
/// zeros). Computed in f64 so that tiny and huge components alike survive.
pub(crate) fn normalised(vector: &[f32]) -> Option<Vec<f32>> {
    let norm = vector
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    if norm == 0.0 || !norm.is_finite() {
        return None;
    }
    Some(
        vector
            .iter()
            .map(|&x| (f64::from(x) / norm) as f32)
            .collect(),
    )
}

/// The cosine similarity of two unit vectors as a ranking key: the score
/// times 10,000, rounded. Summed in f64, in order, so it is reproducible.
pub(crate) fn score_key(a: &[f32], b: &[f32]) -> i32 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x) * f64::from(y))
        .sum();
    (dot.clamp(-1.0, 1.0) * SCORE_SCALE).round() as i32
}

/// The score a key stands for (4 decimals).
pub(crate) fn score(key: i32) -> f32 {
    (f64::from(key) / SCORE_SCALE) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalising_keeps_direction_and_refuses_zero() {
        let unit = normalised(&[3.0, 4.0]).unwrap_or_default();
        assert_eq!(unit, vec![0.6, 0.8]);
        assert_eq!(normalised(&[0.0, 0.0]), None);
        let tiny = normalised(&[1e-30, 0.0]).unwrap_or_default();
        assert_eq!(tiny, vec![1.0, 0.0]);
    }

    #[test]
    fn scores_round_to_four_decimals() {
        assert_eq!(score_key(&[1.0, 0.0], &[1.0, 0.0]), 10_000);
        assert_eq!(score_key(&[1.0, 0.0], &[0.6, 0.8]), 6_000);
        assert_eq!(score(8_300), 0.83);
    }
}
