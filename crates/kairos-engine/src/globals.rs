//! State that is not per customer: global rates (complaint spikes), the rank
//! distributions behind "top 5 %" bands, and the marketing circuit breaker.

use crate::snapshot::{corrupt, Reader, SnapshotError, Writer};
use kairos_model::{Span, Timestamp};
use std::collections::VecDeque;
use std::num::NonZeroU16;

/// Engine-wide state.
#[derive(Debug)]
pub struct Globals {
    /// Marketing is paused until this time (circuit breaker).
    pub breaker_until: Timestamp,
    /// Per trigger index: rate memory for `rate` triggers.
    pub rates: Vec<Option<RateMemory>>,
    /// Per trigger index: distribution of customer aggregates for `top_percent`.
    pub ranks: Vec<Option<RankHistogram>>,
}

impl Default for Globals {
    fn default() -> Self {
        Globals {
            // Not paused: not even before 1970 (the epoch is an instant
            // like any other, not "never").
            breaker_until: Timestamp::MIN,
            rates: Vec::new(),
            ranks: Vec::new(),
        }
    }
}

/// Event counts in fixed buckets, enough to cover the baseline plus the window.
#[derive(Debug)]
pub struct RateMemory {
    /// Bucket length (window / 6).
    pub bucket: Span,
    /// (bucket index, count), oldest first.
    pub buckets: VecDeque<(i64, u64)>,
    /// First event time ever counted (no alarm before a full baseline exists).
    pub first_seen: Timestamp,
    /// When it last matched (at most one match per window).
    pub last_match: Option<Timestamp>,
}

impl RateMemory {
    /// Buckets per window: finer buckets make the "last hour" closer to sliding.
    pub const BUCKETS_PER_WINDOW: i64 = 6;

    /// Empty memory for a window.
    pub fn new(window: Span, now: Timestamp) -> RateMemory {
        RateMemory {
            bucket: Span((window.0 / Self::BUCKETS_PER_WINDOW).max(1)),
            buckets: VecDeque::new(),
            first_seen: now,
            last_match: None,
        }
    }

    /// Counts one event and forgets buckets older than `keep`.
    pub fn count(&mut self, now: Timestamp, keep: Span) {
        let index = now.0.div_euclid(self.bucket.0);
        match self.buckets.back_mut() {
            Some((last, count)) if *last == index => *count += 1,
            _ => self.buckets.push_back((index, 1)),
        }
        let oldest = index - keep.0 / self.bucket.0 - 1;
        while self.buckets.front().is_some_and(|(i, _)| *i < oldest) {
            self.buckets.pop_front();
        }
    }

    /// (count in the current window, average count per window over the baseline before it).
    pub fn current_and_baseline(&self, now: Timestamp, window: Span, baseline: Span) -> (u64, f64) {
        let index = now.0.div_euclid(self.bucket.0);
        let window_buckets = Self::BUCKETS_PER_WINDOW;
        let baseline_buckets = baseline.0 / self.bucket.0;
        let current_start = index - window_buckets + 1;
        let baseline_start = current_start - baseline_buckets;
        let mut current = 0;
        let mut previous = 0;
        for (i, count) in &self.buckets {
            if *i >= current_start && *i <= index {
                current += count;
            } else if *i >= baseline_start && *i < current_start {
                previous += count;
            }
        }
        let windows_in_baseline = (baseline.0 as f64 / window.0 as f64).max(1.0);
        (current, previous as f64 / windows_in_baseline)
    }
}

/// Where a value sits in a [`RankHistogram`]: all a customer must remember
/// to take their value out again. Two bytes, also as an `Option` (the value
/// itself would take 8, 16 as an `Option`); holds the bucket index + 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RankBucket(NonZeroU16);

impl RankBucket {
    fn new(bucket: usize) -> RankBucket {
        let index = u16::try_from(bucket + 1).expect("fewer than 65,535 buckets");
        RankBucket(NonZeroU16::new(index).expect("index + 1 is not zero"))
    }

    fn index(self) -> usize {
        usize::from(self.0.get()) - 1
    }

    /// The bucket as a number that is never 0 (for packing customers).
    pub(crate) fn raw(self) -> u16 {
        self.0.get()
    }

    /// The bucket [`RankBucket::raw`] gave, or `None` for 0.
    pub(crate) fn from_raw(raw: u16) -> Option<RankBucket> {
        NonZeroU16::new(raw).map(RankBucket)
    }
}

/// A log-bucketed histogram of positive values, one entry per customer: the
/// "top p %" cut-off is read from it without sorting customers. Deterministic,
/// and a customer's entry moves when their aggregate changes. The bucket
/// counts are held as a Fenwick tree, so that the count above a bucket is
/// `O(log buckets)`: it is asked on every aggregate update of a rank trigger.
#[derive(Debug)]
pub struct RankHistogram {
    /// Fenwick tree over the bucket counts (1-based: `tree[i]` sums the
    /// `i & i.wrapping_neg()` buckets ending at bucket `i - 1`).
    tree: Vec<u32>,
    total: u64,
}

impl Default for RankHistogram {
    fn default() -> Self {
        RankHistogram {
            tree: vec![0; Self::BUCKETS + 1],
            total: 0,
        }
    }
}

impl RankHistogram {
    /// 0.05 % wide buckets from 0.01 up to ~10^12: aggregates that close
    /// tie, wider ones are told apart (5 % buckets made a hundred spends
    /// between 1,000 and 1,099 one tie, all "top 5 %"). The tree takes
    /// 260 KB per rank trigger; a bucket number still fits in a `u16`.
    const BUCKETS: usize = 65_000;
    const GROWTH: f64 = 1.0005;
    const SMALLEST: f64 = 0.01;

    fn bucket(value: f64) -> usize {
        if value <= Self::SMALLEST {
            return 0;
        }
        let index = (value / Self::SMALLEST).ln() / Self::GROWTH.ln();
        // `as` saturates: an infinite aggregate lands in the top bucket.
        (index as usize).saturating_add(1).min(Self::BUCKETS - 1)
    }

    /// Adds a customer's value; returns where it went, for [`Self::remove`].
    pub fn insert(&mut self, value: f64) -> RankBucket {
        let bucket = Self::bucket(value);
        self.add_to_tree(bucket, 1);
        self.total += 1;
        RankBucket::new(bucket)
    }

    /// Removes a value from its bucket (nothing when the bucket is empty).
    pub fn remove(&mut self, bucket: RankBucket) {
        let bucket = bucket.index();
        let in_bucket = self.count_up_to(bucket)
            - bucket
                .checked_sub(1)
                .map_or(0, |below| self.count_up_to(below));
        if in_bucket > 0 {
            self.add_to_tree(bucket, u32::MAX);
            self.total -= 1;
        }
    }

    /// Customers ranked.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Whether `value` is within the top `percent` of the ranked values: the
    /// number of values in strictly higher buckets is below `percent` of all.
    pub fn in_top(&self, value: f64, percent: f64) -> bool {
        let above = self.total - self.count_up_to(Self::bucket(value));
        (above as f64) < self.total as f64 * percent / 100.0
    }

    /// Adds `delta` (wrapping: `u32::MAX` subtracts one) to a bucket's sums.
    fn add_to_tree(&mut self, bucket: usize, delta: u32) {
        let mut i = bucket + 1;
        while i < self.tree.len() {
            self.tree[i] = self.tree[i].wrapping_add(delta);
            i += i & i.wrapping_neg();
        }
    }

    /// Values in buckets `0..=bucket`.
    fn count_up_to(&self, bucket: usize) -> u64 {
        let mut i = bucket + 1;
        let mut sum = 0;
        while i > 0 {
            sum += u64::from(self.tree[i]);
            i -= i & i.wrapping_neg();
        }
        sum
    }
}

impl Globals {
    /// Writes everything, for a snapshot of the engine.
    pub(crate) fn save(&self, out: &mut Writer) {
        out.time(self.breaker_until);
        out.len(self.rates.len());
        for rate in &self.rates {
            let Some(rate) = rate else {
                out.u8(0);
                continue;
            };
            out.u8(1);
            out.i64(rate.bucket.0);
            out.len(rate.buckets.len());
            for (index, count) in &rate.buckets {
                out.i64(*index);
                out.u64(*count);
            }
            out.time(rate.first_seen);
            out.i64(rate.last_match.map_or(i64::MIN, |at| at.0));
            out.bool(rate.last_match.is_some());
        }
        out.len(self.ranks.len());
        for rank in &self.ranks {
            let Some(rank) = rank else {
                out.u8(0);
                continue;
            };
            out.u8(1);
            // 65,001 sums, mostly zero: only the others, each after the
            // distance from the one before.
            out.len(rank.tree.iter().filter(|count| **count != 0).count());
            let mut previous = 0;
            for (index, count) in rank.tree.iter().enumerate() {
                if *count != 0 {
                    out.len(index - previous);
                    out.u64((*count).into());
                    previous = index;
                }
            }
            out.u64(rank.total);
        }
    }

    /// Reads what [`Globals::save`] wrote, for a pipeline of `triggers`
    /// triggers (rates and ranks are kept per trigger: more is corrupt, and
    /// a rank histogram is a quarter of a megabyte however few bytes name
    /// it).
    pub(crate) fn load(input: &mut Reader<'_>, triggers: usize) -> Result<Globals, SnapshotError> {
        let per_trigger = |input: &mut Reader<'_>| {
            let count = input.len(1)?;
            if count > triggers {
                return Err(corrupt(format!(
                    "{count} triggers' memories for a pipeline of {triggers}"
                )));
            }
            Ok(count)
        };
        let breaker_until = input.time()?;
        let mut rates = Vec::new();
        for _ in 0..per_trigger(input)? {
            if !input.bool()? {
                rates.push(None);
                continue;
            }
            let bucket = Span(input.i64()?);
            if bucket.0 <= 0 {
                return Err(corrupt("a rate bucket of no length"));
            }
            let mut buckets = VecDeque::new();
            for _ in 0..input.len(2)? {
                buckets.push_back((input.i64()?, input.u64()?));
            }
            let first_seen = input.time()?;
            let last_match = Timestamp(input.i64()?);
            let last_match = input.bool()?.then_some(last_match);
            rates.push(Some(RateMemory {
                bucket,
                buckets,
                first_seen,
                last_match,
            }));
        }
        let mut ranks = Vec::new();
        for _ in 0..per_trigger(input)? {
            if !input.bool()? {
                ranks.push(None);
                continue;
            }
            let mut rank = RankHistogram::default();
            let mut index = 0usize;
            for _ in 0..input.len(2)? {
                let gap = usize::try_from(input.u64()?).unwrap_or(usize::MAX);
                index = index.saturating_add(gap);
                *rank
                    .tree
                    .get_mut(index)
                    .ok_or_else(|| corrupt("a rank bucket beyond the last"))? = input.u32()?;
            }
            rank.total = input.u64()?;
            ranks.push(Some(rank));
        }
        Ok(Globals {
            breaker_until,
            rates,
            ranks,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_percent_of_a_hundred_customers() {
        let mut ranks = RankHistogram::default();
        for value in 1..=100 {
            ranks.insert(f64::from(value) * 10.0);
        }
        assert!(ranks.in_top(1000.0, 5.0));
        assert!(ranks.in_top(960.0, 5.0));
        assert!(!ranks.in_top(900.0, 5.0));
        let top = RankBucket::new(RankHistogram::bucket(1000.0));
        ranks.remove(top);
        assert_eq!(ranks.len(), 99);
    }

    use proptest::prop_assert_eq;

    proptest::proptest! {
        /// The tree answers as counting the values held would, through
        /// inserts and removals (of values held, and of values never held).
        #[test]
        fn counts_above_a_value_match_the_values_held(
            operations in proptest::collection::vec((0u8..3, 0.0..1e7f64), 1..300),
            probe in 0.0..1e7f64,
            percent in 0.0..100.0f64,
        ) {
            let mut ranks = RankHistogram::default();
            let mut held: Vec<f64> = Vec::new();
            for (operation, value) in operations {
                match operation {
                    0 if !held.is_empty() => {
                        let value = held.swap_remove(held.len() / 2);
                        ranks.remove(RankBucket::new(RankHistogram::bucket(value)));
                    }
                    1 => {
                        // Perhaps never held: only a value in its bucket goes.
                        let bucket = RankHistogram::bucket(value);
                        if let Some(position) =
                            held.iter().position(|held| RankHistogram::bucket(*held) == bucket)
                        {
                            held.swap_remove(position);
                        }
                        ranks.remove(RankBucket::new(bucket));
                    }
                    _ => {
                        let bucket = ranks.insert(value);
                        prop_assert_eq!(bucket, RankBucket::new(RankHistogram::bucket(value)));
                        held.push(value);
                    }
                }
            }
            let bucket = RankHistogram::bucket(probe);
            let above = held.iter().filter(|value| RankHistogram::bucket(**value) > bucket).count() as u64;
            proptest::prop_assert_eq!(ranks.total - ranks.count_up_to(bucket), above);
            proptest::prop_assert_eq!(ranks.len(), held.len() as u64);
            proptest::prop_assert_eq!(
                ranks.in_top(probe, percent),
                (above as f64) < ranks.len() as f64 * percent / 100.0
            );
        }
    }

    #[test]
    fn infinite_and_nan_aggregates_are_ranked_without_overflow() {
        let mut ranks = RankHistogram::default();
        for value in [f64::INFINITY, f64::NAN, f64::MAX, -1.0] {
            ranks.insert(value);
        }
        assert_eq!(ranks.len(), 4);
        assert!(ranks.in_top(f64::INFINITY, 50.0));
    }

    #[test]
    fn rate_compares_window_with_baseline_average() {
        let hour = Span::HOUR;
        let mut rate = RateMemory::new(hour, Timestamp(0));
        for h in 0..24 {
            for _ in 0..10 {
                rate.count(Timestamp(h * hour.0 + 1), hour * 30);
            }
        }
        let now = Timestamp(24 * hour.0 - 1);
        let (current, baseline) = rate.current_and_baseline(now, hour, hour * 10);
        assert_eq!(current, 10);
        assert!((baseline - 10.0).abs() < 1e-9);
    }
}
