//! The timer table: one place owns "what fires next".
//!
//! Millions of pending deadlines (abandoned carts, birthdays, points expiry)
//! wait here. A pending timer costs nothing per second of runtime: nothing
//! is looked at until its deadline comes up.
//!
//! Deadlines far ahead sit in buckets of [`BUCKET_MS`] (about a minute), each
//! an unsorted vector of 10-byte entries (the deadline as an offset within
//! its bucket): adding one is a push. The buckets are found by hashing
//! their number (deadlines cluster, so nearly every timer goes to a bucket
//! that exists), and their numbers are kept in order beside them, to tell
//! which comes next. Only the earliest bucket is sorted, into one vector,
//! when its time comes; the few timers set afterwards for a deadline inside
//! it go to a small ordered set beside it, and the two are merged as they
//! fire; cancelling a timer in that set removes it. (A timer due before
//! the sorted bucket puts it back among the others, if it holds only a few
//! timers, so that the timer's own bucket is sorted in instead: see
//! `TimerTable::put_back_for`.)
//! Cancelling one in the sorted vector or still in a bucket leaves it there:
//! removing it from the vector would shift up to a bucket's worth of
//! entries, and finding it in a bucket would mean searching the bucket,
//! which deadlines make large by clustering (a million customers identified
//! in one hour all have their dormancy timer in the same hour). Such a
//! timer comes up later as a *stale* entry, and the engine recognises it
//! before acting (`is_pending` in `engine`): its owner no longer has that
//! deadline. This is sound because an owner adds an entry whenever it sets
//! a deadline, so a stale entry that matches its owner's current deadline is
//! a copy of a live one, and copies merge when they come up (a timer added
//! twice is one timer). And an erased or merged customer's entries cannot
//! be taken for the next occupant of the slot: tokens are not reused in a
//! slot (the next occupant continues from where the last one stopped) until
//! they wrap after 2³⁰. So that cancelled
//! entries do not pile up (a customer evicting old points-expiry schedules
//! three years ahead would otherwise leave one per event), a bucket in which
//! more than half the entries may be cancelled is compacted: the engine drops
//! those it does not expect ([`TimerTable::compact`]).
//!
//! (The previous table, one ordered set of every timer, cost ~34 bytes per
//! timer in B-tree nodes and an `O(log n)` search of a tree too large for
//! the cache on every insert.)

use crate::snapshot::{corrupt, Reader, SnapshotError, Writer};
use hashbrown::hash_map::Entry;
use hashbrown::HashMap;
use kairos_model::Timestamp;
use std::collections::BTreeSet;

/// What a timer is for, within its owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimerPurpose {
    /// The next ladder step of a keyed state.
    Ladder,
    /// A count pattern's window closing.
    WindowClose,
    /// A deferred decision (quiet hours, send-time optimisation).
    Deferred,
}

/// One pending deadline. Ordering is the firing order: by deadline, then by
/// customer and token — both assigned in application order (a customer's
/// tokens wrap after 2³⁰ states), so the order is reproducible for the same
/// input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerEntry {
    /// When it is due.
    pub due: Timestamp,
    /// The customer slot.
    pub customer: u32,
    /// The owner within the customer (a keyed state or a deferred decision);
    /// below [`TOKEN_LIMIT`].
    pub token: u32,
    /// Which of the owner's timers.
    pub purpose: TimerPurpose,
}

/// Tokens stay below this, so that a token and a purpose pack into 32 bits
/// in the same order as the pair.
pub const TOKEN_LIMIT: u32 = 1 << 30;

/// Width of a bucket of deadlines, as a power of two: 2¹⁶ ms ≈ 65.5 s.
const BUCKET_BITS: u32 = 16;
/// Width of a bucket of deadlines in milliseconds.
pub const BUCKET_MS: i64 = 1 << BUCKET_BITS;

/// [`TimerEntry`] in 16 bytes; compares like it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Packed {
    due: i64,
    customer: u32,
    token_and_purpose: u32,
}

impl From<TimerEntry> for Packed {
    fn from(entry: TimerEntry) -> Packed {
        debug_assert!(entry.token < TOKEN_LIMIT);
        Packed {
            due: entry.due.0,
            customer: entry.customer,
            token_and_purpose: entry.token << 2 | entry.purpose as u32,
        }
    }
}

impl From<Packed> for TimerEntry {
    fn from(packed: Packed) -> TimerEntry {
        TimerEntry {
            due: Timestamp(packed.due),
            customer: packed.customer,
            token: packed.token_and_purpose >> 2,
            purpose: match packed.token_and_purpose & 3 {
                0 => TimerPurpose::Ladder,
                1 => TimerPurpose::WindowClose,
                _ => TimerPurpose::Deferred,
            },
        }
    }
}

/// A timer inside its bucket, in 10 bytes: the deadline is the bucket's
/// start plus `offset`.
#[derive(Clone, Copy, Debug)]
#[repr(C, packed(2))]
struct BucketEntry {
    offset: u16,
    customer: u32,
    token_and_purpose: u32,
}

fn bucket_of(due: i64) -> i64 {
    due >> BUCKET_BITS
}

impl BucketEntry {
    fn new(packed: Packed) -> BucketEntry {
        BucketEntry {
            offset: (packed.due & (BUCKET_MS - 1)) as u16,
            customer: packed.customer,
            token_and_purpose: packed.token_and_purpose,
        }
    }

    fn unpack(self, bucket: i64) -> Packed {
        Packed {
            due: (bucket << BUCKET_BITS) | i64::from(self.offset),
            customer: self.customer,
            token_and_purpose: self.token_and_purpose,
        }
    }
}

/// Puts the entries of bucket `index` into `sorted` (empty) latest first,
/// without duplicates. Deadlines within a bucket differ only in their 16-bit
/// offset, so they are put in order by two passes of a radix sort, 8 bits
/// each, which keeps equal deadlines in the order added; only those few
/// runs are then sorted by customer and token. (A comparison sort of the
/// whole bucket was a twentieth of the cart job's engine instructions.)
fn sort_bucket(mut entries: Vec<BucketEntry>, index: i64, sorted: &mut Vec<Packed>) {
    let Some(&any) = entries.first() else {
        return;
    };
    let mut starts = [[0usize; 256]; 2];
    for entry in &entries {
        let offset = usize::from(entry.offset);
        starts[0][offset & 0xff] += 1;
        starts[1][offset >> 8] += 1;
    }
    for counts in &mut starts {
        let mut start = 0;
        for count in counts.iter_mut() {
            (*count, start) = (start, start + *count);
        }
    }
    let mut by_low_byte = vec![any; entries.len()];
    for entry in &entries {
        let start = &mut starts[0][usize::from(entry.offset) & 0xff];
        by_low_byte[*start] = *entry;
        *start += 1;
    }
    for entry in &by_low_byte {
        let start = &mut starts[1][usize::from(entry.offset) >> 8];
        entries[*start] = *entry;
        *start += 1;
    }
    for run in entries.chunk_by_mut(|a, b| { a.offset } == { b.offset }) {
        if run.len() > 1 {
            run.sort_unstable_by_key(|entry| (entry.customer, entry.token_and_purpose));
        }
    }
    entries.dedup_by_key(|entry| (entry.offset, entry.customer, entry.token_and_purpose));
    sorted.extend(entries.iter().rev().map(|entry| entry.unpack(index)));
}

/// The deadline-ordered index of every pending timer.
///
/// Invariants: every entry in `sorted` and `added_soon` is due before
/// `horizon`, every entry in `later` at or after it; those two are empty
/// only when `later` is too, so the earliest timer is always the first of
/// one of them. `later_order` holds exactly the keys of `later`, and
/// `soon_first` is the first of `added_soon`.
#[derive(Debug)]
pub struct TimerTable {
    /// The earliest bucket, sorted latest first (it is taken off the end),
    /// without duplicates; may hold cancelled timers.
    sorted: Vec<Packed>,
    /// Timers added for a deadline before `horizon` after the bucket was
    /// sorted (deadlines within about a minute of now: few).
    added_soon: BTreeSet<Packed>,
    /// The first of `added_soon`, kept beside it (`None` exactly when it
    /// is empty): the engine asks for the earliest timer after every
    /// event, and finding the first of a tree walks down it, which cost
    /// retail ~1 % of its instructions while immediate matches waited.
    soon_first: Option<Packed>,
    /// Start of the first bucket still in `later`.
    horizon: i64,
    /// Later timers by bucket, unsorted; may hold cancelled timers and
    /// duplicates. Hashed, not ordered: deadlines cluster, so nearly every
    /// timer goes to a bucket that exists, found by one hash lookup rather
    /// than a search of a tree of every bucket (never iterated, so the
    /// hash seed changes nothing).
    later: HashMap<i64, Bucket>,
    /// The buckets of `later` in order: the first is the next sorted in.
    /// Only a new bucket searches it.
    later_order: BTreeSet<i64>,
    /// Entries in `later`.
    later_len: usize,
    /// Buckets in which more than half the entries may be cancelled: see
    /// [`TimerTable::compact`].
    to_compact: Vec<i64>,
}

/// Timers due within one [`BUCKET_MS`], in the order added.
#[derive(Debug, Default)]
struct Bucket {
    entries: Vec<BucketEntry>,
    /// Cancellations since the bucket was last compacted (an upper bound on
    /// the cancelled entries it holds).
    cancelled: u32,
    /// Whether it is in `to_compact`.
    queued: bool,
}

impl Default for TimerTable {
    fn default() -> Self {
        TimerTable {
            sorted: Vec::new(),
            added_soon: BTreeSet::new(),
            soon_first: None,
            horizon: i64::MIN,
            later: HashMap::new(),
            later_order: BTreeSet::new(),
            later_len: 0,
            to_compact: Vec::new(),
        }
    }
}

impl TimerTable {
    /// Adds a timer.
    pub fn insert(&mut self, entry: TimerEntry) {
        let packed = Packed::from(entry);
        if packed.due < self.horizon && !self.put_back_for(packed.due) {
            self.added_soon.insert(packed);
            self.soon_first = Some(self.soon_first.map_or(packed, |first| first.min(packed)));
        } else {
            self.add_later(packed);
            self.refill();
        }
    }

    /// Whether the earliest bucket was put back among the later ones for a
    /// timer due before it, to sort the bucket of that timer instead. When
    /// the earliest bucket is far ahead (a wake-up 60 days out, the only
    /// timer when the first events come), every timer set in the meantime
    /// would otherwise go to `added_soon`, which then holds thousands and
    /// costs a tree search for each. Only a bucket of a few timers is put
    /// back: one of many (a cluster of deadlines) would be sorted over and
    /// over, each time the timers before it ran out. (Out of line: most
    /// timers are due after the earliest bucket.)
    #[inline(never)]
    fn put_back_for(&mut self, due: i64) -> bool {
        const MOST_PUT_BACK: usize = 64;
        // (`horizon - 1` is in the sorted bucket, also when the horizon
        // stopped at `i64::MAX`.)
        if bucket_of(due) >= bucket_of(self.horizon.saturating_sub(1))
            || self.sorted.len() + self.added_soon.len() > MOST_PUT_BACK
        {
            return false;
        }
        let held = std::mem::take(&mut self.sorted);
        for packed in held.into_iter().chain(std::mem::take(&mut self.added_soon)) {
            self.add_later(packed);
        }
        self.soon_first = None;
        self.horizon = i64::MIN;
        true
    }

    /// Adds a timer to its bucket in `later` (inlined into `insert`: a
    /// call of its own cost the cart job ~0.3 % of its instructions).
    #[inline(always)]
    fn add_later(&mut self, packed: Packed) {
        let index = bucket_of(packed.due);
        let entries = &mut match self.later.entry(index) {
            Entry::Occupied(bucket) => bucket.into_mut(),
            Entry::Vacant(place) => {
                self.later_order.insert(index);
                place.insert(Bucket::default())
            }
        }
        .entries;
        if entries.len() == entries.capacity() {
            // Large buckets grow by a quarter, not double: buckets of
            // clustered deadlines hold millions, and doubling would
            // leave a third of them empty on average. (Still amortised
            // O(1); small ones double, to reallocate less often.)
            let len = entries.len();
            entries.reserve_exact(if len < 1024 { len.max(4) } else { len / 4 });
        }
        entries.push(BucketEntry::new(packed));
        self.later_len += 1;
    }

    /// Cancels a timer. One added after its bucket was sorted is removed;
    /// any other stays where it is, to come up as a stale entry that the
    /// engine ignores (see the module's documentation), unless
    /// [`Self::compact`] drops it first. Cancelling one that already fired
    /// is harmless.
    pub fn remove(&mut self, entry: &TimerEntry) {
        let due = entry.due.0;
        if due < self.horizon {
            let packed = Packed::from(*entry);
            if self.added_soon.remove(&packed) {
                if self.soon_first == Some(packed) {
                    self.soon_first = self.added_soon.first().copied();
                }
                self.refill();
            }
        } else if let Some(bucket) = self.later.get_mut(&bucket_of(due)) {
            bucket.cancelled = bucket.cancelled.saturating_add(1);
            if !bucket.queued && bucket.cancelled as usize * 2 > bucket.entries.len() {
                bucket.queued = true;
                self.to_compact.push(bucket_of(due));
            }
        }
    }

    /// Writes the table as laid out, cancelled entries and all (a
    /// snapshot of the engine: a cancelled entry coming up unpacks its
    /// customer, and which entries remain depends on what was sorted and
    /// compacted when).
    pub(crate) fn save(&self, out: &mut Writer) {
        let packed = |out: &mut Writer, entry: &Packed| {
            out.i64(entry.due);
            out.u64(entry.customer.into());
            out.u64(entry.token_and_purpose.into());
        };
        out.len(self.sorted.len());
        self.sorted.iter().for_each(|entry| packed(out, entry));
        out.len(self.added_soon.len());
        self.added_soon.iter().for_each(|entry| packed(out, entry));
        out.i64(self.horizon);
        out.len(self.later_order.len());
        for index in &self.later_order {
            let bucket = &self.later[index];
            out.i64(*index);
            out.u64(bucket.cancelled.into());
            out.bool(bucket.queued);
            out.len(bucket.entries.len());
            for entry in &bucket.entries {
                out.u64(entry.offset.into());
                out.u64(entry.customer.into());
                out.u64(entry.token_and_purpose.into());
            }
        }
        out.len(self.to_compact.len());
        self.to_compact.iter().for_each(|index| out.i64(*index));
    }

    /// Reads what [`TimerTable::save`] wrote.
    pub(crate) fn load(input: &mut Reader<'_>) -> Result<TimerTable, SnapshotError> {
        fn token_and_purpose(input: &mut Reader<'_>) -> Result<u32, SnapshotError> {
            let value = input.u32()?;
            if value & 3 == 3 {
                return Err(corrupt("a timer of unknown purpose"));
            }
            Ok(value)
        }
        fn packed(input: &mut Reader<'_>) -> Result<Packed, SnapshotError> {
            Ok(Packed {
                due: input.i64()?,
                customer: input.u32()?,
                token_and_purpose: token_and_purpose(input)?,
            })
        }
        let mut table = TimerTable::default();
        for _ in 0..input.len(3)? {
            table.sorted.push(packed(input)?);
        }
        for _ in 0..input.len(3)? {
            table.added_soon.insert(packed(input)?);
        }
        table.soon_first = table.added_soon.first().copied();
        table.horizon = input.i64()?;
        for _ in 0..input.len(4)? {
            let index = input.i64()?;
            let cancelled = input.u32()?;
            let queued = input.bool()?;
            let len = input.len(3)?;
            let mut entries = Vec::with_capacity(len);
            for _ in 0..len {
                entries.push(BucketEntry {
                    offset: input.u16()?,
                    customer: input.u32()?,
                    token_and_purpose: token_and_purpose(input)?,
                });
            }
            table.later_len += entries.len();
            let bucket = Bucket {
                entries,
                cancelled,
                queued,
            };
            if table.later.insert(index, bucket).is_some() {
                return Err(corrupt("a bucket of timers twice"));
            }
            table.later_order.insert(index);
        }
        for _ in 0..input.len(1)? {
            table.to_compact.push(input.i64()?);
        }
        Ok(table)
    }

    /// Whether [`Self::compact`] has work.
    pub fn wants_compaction(&self) -> bool {
        !self.to_compact.is_empty()
    }

    /// Drops the entries `is_pending` rejects from buckets in which more
    /// than half the entries may be cancelled. Without this, a pattern that
    /// cancels timers far ahead (a customer evicting old points-expiry
    /// schedules three years out) would leave entries behind in proportion
    /// to events, not to pending timers; with it, cancelled entries are at
    /// most about as many as live ones. The table cannot tell a cancelled
    /// entry from a live one; the engine can, and the cost, one check per
    /// entry, is spread over the cancellations that filled the bucket.
    pub fn compact(&mut self, mut is_pending: impl FnMut(&TimerEntry) -> bool) {
        for index in std::mem::take(&mut self.to_compact) {
            let Some(bucket) = self.later.get_mut(&index) else {
                continue; // sorted in since
            };
            let before = bucket.entries.len();
            bucket
                .entries
                .retain(|entry| is_pending(&entry.unpack(index).into()));
            if bucket.entries.capacity() > 2 * bucket.entries.len() {
                bucket.entries.shrink_to_fit();
            }
            bucket.cancelled = 0;
            bucket.queued = false;
            self.later_len -= before - bucket.entries.len();
            if bucket.entries.is_empty() {
                self.later.remove(&index);
                self.later_order.remove(&index);
            }
        }
        // Only `later` shrank: the sorted bucket and `added_soon` are as
        // they were, not both empty if anything is left.
    }

    /// The earliest deadline (possibly of a cancelled timer).
    pub fn next_due(&self) -> Option<Timestamp> {
        self.first().map(|entry| Timestamp(entry.due))
    }

    /// The earliest timer held before `horizon`.
    fn first(&self) -> Option<Packed> {
        // Usually nothing was added since the bucket was sorted; else the
        // first added is kept at hand (`soon_first`).
        let Some(added) = self.soon_first else {
            return self.sorted.last().copied();
        };
        match self.sorted.last() {
            Some(sorted) => Some(*sorted.min(&added)),
            None => Some(added),
        }
    }

    /// Takes the earliest timer if it is due strictly before `watermark`.
    pub fn pop_before(&mut self, watermark: Timestamp) -> Option<TimerEntry> {
        if self.first()?.due < watermark.0 {
            self.pop_first()
        } else {
            None
        }
    }

    /// Takes the earliest timer if it is due exactly at `due` for `customer`.
    pub fn pop_if_same(&mut self, due: Timestamp, customer: u32) -> Option<TimerEntry> {
        let first = self.first()?;
        if first.due == due.0 && first.customer == customer {
            self.pop_first()
        } else {
            None
        }
    }

    /// Takes the earliest timer, and any copy of it (one in each of the
    /// sorted bucket and `added_soon`).
    fn pop_first(&mut self) -> Option<TimerEntry> {
        let first = if self.soon_first.is_none() {
            // The usual case (see `first`): the sorted bucket's last.
            self.sorted.pop()?
        } else {
            let first = self.first()?;
            if self.sorted.last() == Some(&first) {
                self.sorted.pop();
            }
            if self.soon_first == Some(first) {
                self.added_soon.pop_first();
                self.soon_first = self.added_soon.first().copied();
            }
            first
        };
        self.refill();
        Some(first.into())
    }

    /// Sorts the next bucket in when the earliest has run dry. Only the
    /// check is inlined: it runs on every pop and on most inserts, and as a
    /// call of its own (saving and restoring the registers the sorting
    /// needs) it cost the cart job ~0.5 % of its instructions.
    #[inline(always)]
    fn refill(&mut self) {
        if self.sorted.is_empty() && self.soon_first.is_none() {
            self.sort_next_bucket();
        }
    }

    /// Sorts the first bucket of `later` in (both `sorted` and
    /// `added_soon` being empty), if there is one.
    #[inline(never)]
    fn sort_next_bucket(&mut self) {
        if let Some(index) = self.later_order.pop_first() {
            let bucket = self.later.remove(&index).unwrap_or_default();
            self.later_len -= bucket.entries.len();
            // The last bucket's end is past `i64::MAX`: the horizon stops
            // there (such deadlines lie beyond any watermark anyway).
            self.horizon = index
                .checked_add(1)
                .and_then(|next| next.checked_mul(BUCKET_MS))
                .unwrap_or(i64::MAX);
            sort_bucket(bucket.entries, index, &mut self.sorted);
        }
    }

    /// The customer of the timer that fires `n` timers from now (the next
    /// is 0), as far as the sorted bucket tells.
    pub fn customer_ahead(&self, n: usize) -> Option<u32> {
        self.sorted.iter().rev().nth(n).map(|entry| entry.customer)
    }

    /// Timers held, counting cancelled ones not yet dropped.
    pub fn len(&self) -> usize {
        self.sorted.len() + self.added_soon.len() + self.later_len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(TimerEntry),
        Remove(usize),
        PopBefore(i64),
        PopIfSame,
        Compact,
    }

    fn entry() -> impl Strategy<Value = TimerEntry> {
        (
            // Deadlines clustered (many equal times, few buckets), at a
            // handful of instants (ties broken by customer and token), spread
            // far apart (many buckets, negative times too), and at the ends
            // of time, where bucket arithmetic could overflow.
            prop_oneof![
                8 => 0i64..5_000_000,
                4 => (0i64..4).prop_map(|k| 1_000_000 + k * 7),
                8 => -3_000_000_000i64..3_000_000_000,
                1 => (i64::MAX - 200_000)..i64::MAX,
                1 => (i64::MIN / 4)..(i64::MIN / 4 + 200_000),
            ],
            0u32..6,
            0u32..50,
            0u8..3,
        )
            .prop_map(|(due, customer, token, purpose)| TimerEntry {
                due: Timestamp(due),
                customer,
                token,
                purpose: match purpose {
                    0 => TimerPurpose::Ladder,
                    1 => TimerPurpose::WindowClose,
                    _ => TimerPurpose::Deferred,
                },
            })
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => entry().prop_map(Op::Insert),
            2 => any::<usize>().prop_map(Op::Remove),
            2 => (-3_000_000_000i64..3_000_000_000).prop_map(Op::PopBefore),
            1 => Just(Op::PopIfSame),
            1 => Just(Op::Compact),
        ]
    }

    /// Pops the table's earliest timer before `watermark`, skipping
    /// cancelled ones (each must be a timer that was cancelled), as the engine
    /// does; checks it against the model's earliest.
    fn pop_live(
        table: &mut TimerTable,
        model: &mut BTreeSet<TimerEntry>,
        cancelled: &BTreeSet<TimerEntry>,
        watermark: i64,
    ) -> Result<Option<TimerEntry>, TestCaseError> {
        let expected = model
            .first()
            .filter(|first| first.due.0 < watermark)
            .copied();
        loop {
            let popped = table.pop_before(Timestamp(watermark));
            match popped {
                Some(entry) if !model.contains(&entry) => {
                    prop_assert!(cancelled.contains(&entry), "{entry:?} was never cancelled");
                    prop_assert!(expected.is_none_or(|first| entry <= first));
                }
                _ => {
                    prop_assert_eq!(popped, expected);
                    if let Some(first) = expected {
                        model.remove(&first);
                    }
                    return Ok(popped);
                }
            }
        }
    }

    proptest! {
        /// The table fires like an ordered set of the timers not cancelled,
        /// plus cancelled ones it could not remove (which the engine
        /// recognises and skips); a timer added twice fires once.
        #[test]
        fn fires_like_an_ordered_set(ops in proptest::collection::vec(op(), 1..400)) {
            let mut table = TimerTable::default();
            let mut model = BTreeSet::new();
            let mut inserted: Vec<TimerEntry> = Vec::new();
            let mut cancelled = BTreeSet::new();
            for op in ops {
                match op {
                    Op::Insert(entry) => {
                        model.insert(entry);
                        table.insert(entry);
                        inserted.push(entry);
                    }
                    Op::Remove(pick) if !inserted.is_empty() => {
                        let entry = inserted[pick % inserted.len()];
                        if model.remove(&entry) {
                            cancelled.insert(entry);
                        }
                        table.remove(&entry);
                    }
                    Op::Remove(_) => {}
                    Op::PopBefore(watermark) => {
                        pop_live(&mut table, &mut model, &cancelled, watermark)?;
                    }
                    Op::Compact => {
                        // As the engine does: a timer is pending while its
                        // owner expects it, which the model says.
                        let model = &model;
                        table.compact(|entry| model.contains(entry));
                    }
                    Op::PopIfSame => {
                        // The engine batches a customer's timers at one
                        // instant after popping the first.
                        if let Some(first) = pop_live(&mut table, &mut model, &cancelled, i64::MAX)? {
                            while let Some(next) = table.pop_if_same(first.due, first.customer) {
                                prop_assert_eq!((next.due, next.customer), (first.due, first.customer));
                                if !model.remove(&next) {
                                    prop_assert!(cancelled.contains(&next));
                                }
                            }
                            let batch_left = model.first().is_some_and(|rest| {
                                (rest.due, rest.customer) == (first.due, first.customer)
                            });
                            prop_assert!(!batch_left);
                        }
                    }
                }
                prop_assert!(table.len() >= model.len());
                match (table.next_due(), model.first()) {
                    (Some(due), Some(first)) => prop_assert!(due <= first.due),
                    (None, first) => prop_assert_eq!(first, None),
                    (Some(_), None) => {}
                }
            }
            while pop_live(&mut table, &mut model, &cancelled, i64::MAX)?.is_some() {}
            prop_assert!(model.is_empty());
            prop_assert_eq!(table.len(), 0);
        }
    }

    fn timer(due: i64, customer: u32) -> TimerEntry {
        TimerEntry {
            due: Timestamp(due),
            customer,
            token: 1,
            purpose: TimerPurpose::WindowClose,
        }
    }

    #[test]
    fn a_deadline_in_the_last_bucket_hides_nothing_earlier() {
        let mut table = TimerTable::default();
        table.insert(timer(i64::MAX, 0));
        table.insert(timer(1_000, 1));
        assert_eq!(table.next_due(), Some(Timestamp(1_000)));
        assert_eq!(table.pop_before(Timestamp::MAX), Some(timer(1_000, 1)));
        assert_eq!(table.pop_before(Timestamp::MAX), None);
    }

    #[test]
    fn compaction_keeps_cancelled_entries_fewer_than_live_ones() {
        let mut table = TimerTable::default();
        table.insert(timer(0, 0)); // keeps bucket 0 sorted in; the rest wait
        let mut live = BTreeSet::new();
        for customer in 1..=1_000 {
            let entry = timer(1_000_000_000 + i64::from(customer), customer);
            table.insert(entry);
            if customer % 10 == 0 {
                live.insert(entry);
            } else {
                table.remove(&entry);
            }
            if table.wants_compaction() {
                table.compact(|entry| live.contains(entry));
            }
            // Live entries, plus cancelled ones (at most as many, plus one).
            let cancelled = table.len() - 1 - live.len();
            assert!(
                cancelled <= live.len() + 1,
                "{cancelled} cancelled, {} live",
                live.len()
            );
        }
        let mut fired = Vec::new();
        while let Some(entry) = table.pop_before(Timestamp::MAX) {
            if live.contains(&entry) {
                fired.push(entry);
            }
        }
        assert_eq!(fired, live.into_iter().collect::<Vec<_>>());
    }

    #[test]
    fn a_bucket_entry_keeps_its_exact_deadline() {
        for due in [
            i64::MIN / 4,
            -BUCKET_MS - 1,
            -1,
            0,
            1,
            BUCKET_MS - 1,
            BUCKET_MS,
            i64::MAX / 4,
        ] {
            let packed = Packed {
                due,
                customer: 7,
                token_and_purpose: 9,
            };
            assert_eq!(BucketEntry::new(packed).unpack(bucket_of(due)), packed);
        }
        assert_eq!(std::mem::size_of::<BucketEntry>(), 10);
    }

    /// A timer moved back among the later buckets with the earliest one
    /// (for a timer due before it), then cancelled and set again for the
    /// same instant, fires once; so does every other timer, in order.
    #[test]
    fn a_timer_put_back_cancelled_and_set_again_fires_once() {
        let far = 100 * BUCKET_MS;
        let mut table = TimerTable::default();
        table.insert(timer(far, 1)); // sorted in
        table.insert(timer(far + 5, 2)); // after the sort: set aside
        table.insert(timer(far + 5, 2)); // twice: one timer
        table.insert(timer(10 * BUCKET_MS, 3)); // puts the earliest bucket back
        assert_eq!(table.next_due(), Some(Timestamp(10 * BUCKET_MS)));
        table.remove(&timer(far + 5, 2));
        table.insert(timer(far + 5, 2));
        let mut fired = Vec::new();
        while let Some(entry) = table.pop_before(Timestamp::MAX) {
            fired.push(entry);
        }
        assert_eq!(
            fired,
            [timer(10 * BUCKET_MS, 3), timer(far, 1), timer(far + 5, 2)]
        );
    }
}
