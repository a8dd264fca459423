//! De-duplication by `messageId`: the message hashes a customer sent within
//! the look-back.
//!
//! Most customers send a few events a day. Up to two hashes live in the
//! customer's record itself, which spares the many who send little a block
//! and the cache miss of reaching it; more sit in a short vector that is
//! scanned. A very active customer (a busy kiosk, a bot, the
//! head of a Zipf distribution) can send hundreds of thousands a day; their
//! hashes go into an open-addressing table instead. A probe into a table of
//! megabytes misses the cache, so the table can say where a hash would live
//! ([`SeenMessages::prefetch_slot`]): the lookahead knows an event's message hash
//! long before the event is applied, and fetches that line early. A map
//! library cannot offer that, because none exposes where an entry lives.

use crate::growth::reserve_one;
use crate::lookahead::{prefetch, prefetch_thin_vec};
use kairos_model::{Span, Timestamp};
use smallvec::SmallVec;
use std::hash::{BuildHasher, RandomState};
use std::sync::OnceLock;
use thin_vec::ThinVec;

/// Message hashes seen within the look-back, with when they were seen.
/// Stored hashes are never 0 ([`SeenTable::key`]), so 0 marks a free place.
#[derive(Debug)]
pub enum SeenMessages {
    /// Up to two entries, inline, in the order the list would hold them.
    /// The second's time is kept as its distance from the first's (an `i32`
    /// of milliseconds: ±24.8 days, beyond the usual look-back), which keeps
    /// this form, and the customer record, 8 bytes smaller; two entries
    /// further apart take the list.
    Two {
        /// The older hash, or 0.
        first: u64,
        /// When it was seen.
        first_at: Timestamp,
        /// The newer hash, or 0.
        second: u64,
        /// When it was seen, relative to `first_at` (either way: events
        /// arrive out of order).
        second_after: i32,
    },
    /// Up to [`SeenMessages::SMALL`] entries, scanned.
    Few(ThinVec<(u64, Timestamp)>),
    /// More, in a table.
    Many(Box<SeenTable>),
}

impl Default for SeenMessages {
    fn default() -> Self {
        SeenMessages::Two {
            first: 0,
            first_at: Timestamp(0),
            second: 0,
            second_after: 0,
        }
    }
}

/// The entries of the inline form, or of a list about to become one (or of
/// a customer being packed).
pub type Inline = SmallVec<[(u64, Timestamp); 3]>;

impl SeenMessages {
    const SMALL: usize = 32;

    /// The inline form of `entries`, if they fit in it.
    fn two(entries: &[(u64, Timestamp)]) -> Option<SeenMessages> {
        let (first, first_at, second, second_after) = match *entries {
            [] => (0, Timestamp(0), 0, 0),
            [(first, first_at)] => (first, first_at, 0, 0),
            [(first, first_at), (second, second_at)] => {
                let after = i32::try_from(second_at.0.checked_sub(first_at.0)?).ok()?;
                (first, first_at, second, after)
            }
            _ => return None,
        };
        Some(SeenMessages::Two {
            first,
            first_at,
            second,
            second_after,
        })
    }

    /// The entries of the inline form, in order.
    fn inline_entries(&self) -> Inline {
        let mut entries = Inline::new();
        if let SeenMessages::Two {
            first,
            first_at,
            second,
            second_after,
        } = *self
        {
            if first != 0 {
                entries.push((first, first_at));
            }
            if second != 0 {
                entries.push((second, first_at + Span(i64::from(second_after))));
            }
        }
        entries
    }

    /// Records `hash` at `time`; returns false when it was already seen within
    /// `lookback` of `time`. Entries older than the look-back are forgotten.
    pub fn first_sighting(&mut self, hash: u64, time: Timestamp, lookback: Span) -> bool {
        // 0 marks an empty table slot; the list stores what the table would.
        let hash = SeenTable::key(hash);
        let horizon = time - lookback;
        let fresh = |seen_at: Timestamp| seen_at >= horizon && seen_at <= time + lookback;
        match self {
            SeenMessages::Two {
                first,
                first_at,
                second,
                second_after,
            } => {
                // The common cases first, as the list's steps below would
                // take them: nothing held yet; a duplicate of the first; a
                // second hash while the first is fresh.
                if *first == 0 {
                    (*first, *first_at) = (hash, time);
                    return true;
                }
                if *first == hash && fresh(*first_at) {
                    return false;
                }
                if *second == 0 && *first != hash && *first_at >= horizon {
                    let after = time.0.checked_sub(first_at.0);
                    if let Some(after) = after.and_then(|after| i32::try_from(after).ok()) {
                        (*second, *second_after) = (hash, after);
                        return true;
                    }
                }
                // Otherwise the list's steps, on the inline entries.
                let mut entries = self.inline_entries();
                if let Some(entry) = entries.iter_mut().find(|(seen, _)| *seen == hash) {
                    if fresh(entry.1) {
                        return false;
                    }
                    entry.1 = time;
                } else {
                    if entries
                        .first()
                        .is_some_and(|(_, seen_at)| *seen_at < horizon)
                    {
                        entries.retain(|(_, seen_at)| *seen_at >= horizon);
                    }
                    entries.push((hash, time));
                }
                *self = Self::two(&entries)
                    .unwrap_or_else(|| SeenMessages::Few(entries.into_iter().collect()));
                true
            }
            SeenMessages::Few(entries) => {
                if let Some(entry) = entries.iter_mut().find(|(seen, _)| *seen == hash) {
                    if fresh(entry.1) {
                        return false;
                    }
                    entry.1 = time;
                    return true;
                }
                // Entries arrive in (nearly) time order: when the oldest is
                // still fresh there is nothing to forget.
                if entries
                    .first()
                    .is_some_and(|(_, seen_at)| *seen_at < horizon)
                {
                    entries.retain(|(_, seen_at)| *seen_at >= horizon);
                    if entries.len() < 2 {
                        // Few enough again to live inline.
                        let mut inline: Inline = entries.iter().copied().collect();
                        inline.push((hash, time));
                        if let Some(two) = Self::two(&inline) {
                            *self = two;
                            return true;
                        }
                    }
                }
                if entries.len() < Self::SMALL {
                    // Most customers are seen a handful of times a day.
                    reserve_one(entries, Self::SMALL);
                    entries.push((hash, time));
                } else {
                    let mut table = SeenTable::with_room_for(Self::SMALL * 2);
                    for (seen, seen_at) in entries.drain(..) {
                        table.set(seen, seen_at);
                    }
                    table.set(hash, time);
                    *self = SeenMessages::Many(Box::new(table));
                }
                true
            }
            SeenMessages::Many(table) => {
                if !table.set_unless(hash, time, fresh) {
                    return false;
                }
                table.forget_before(horizon);
                true
            }
        }
    }

    /// The entries seen at or after `horizon`, oldest first (for packing a
    /// customer at `horizon` + twice the look-back). Older ones can make no
    /// event a duplicate that is less than the look-back behind the clock:
    /// an entry is fresh for events within the look-back of it. Which stale
    /// entries a list keeps, and in what order, decides nothing for those
    /// events either.
    pub fn entries_since(&self, horizon: Timestamp) -> Inline {
        let mut entries: Inline = match self {
            SeenMessages::Two { .. } => self.inline_entries(),
            SeenMessages::Few(list) => list.iter().copied().collect(),
            SeenMessages::Many(table) => table.iter().collect(),
        };
        entries.retain(|(_, seen_at)| *seen_at >= horizon);
        entries.sort_by_key(|(hash, seen_at)| (*seen_at, *hash));
        entries
    }

    /// Holds `entries` (as [`Self::entries_since`] gave them), in the
    /// smallest form that fits.
    pub fn from_entries(entries: &[(u64, Timestamp)]) -> SeenMessages {
        if let Some(two) = Self::two(entries) {
            return two;
        }
        if entries.len() <= Self::SMALL {
            return SeenMessages::Few(entries.iter().copied().collect());
        }
        let mut table = SeenTable::with_room_for(entries.len());
        for (hash, seen_at) in entries {
            table.set(*hash, *seen_at);
        }
        SeenMessages::Many(Box::new(table))
    }

    /// The capacity of the table form (`None` for the others): with the
    /// entries, all a snapshot needs to hold it again as it was. Which
    /// expired entries a table still holds, and so what a very late event
    /// is taken for, depends on when it is next rebuilt, which its
    /// capacity decides.
    pub fn table_capacity(&self) -> Option<usize> {
        match self {
            SeenMessages::Many(table) => Some(table.slots.len()),
            _ => None,
        }
    }

    /// The table form with `capacity` slots (a power of two, as
    /// [`Self::table_capacity`] gave it) holding `entries` (fewer than
    /// three quarters of it, so none is rebuilt away while put back).
    pub fn table_from_entries(capacity: usize, entries: &[(u64, Timestamp)]) -> SeenMessages {
        let mut table = SeenTable {
            slots: vec![(0, Timestamp(0)); capacity].into_boxed_slice(),
            len: 0,
            shift: 64 - capacity.trailing_zeros(),
        };
        for (hash, seen_at) in entries {
            table.set(*hash, *seen_at);
        }
        SeenMessages::Many(Box::new(table))
    }

    /// Adds everything from `other` (identity merge). A message id both
    /// hold keeps the newer time: whichever copy either side had already
    /// forgotten (after its look-back, or when packed), the merged history
    /// is the same.
    pub fn absorb(&mut self, mut other: SeenMessages) {
        // The larger side takes the smaller one's entries: a busy person
        // linked to device after device (a kiosk, a shared account) must
        // not have a large table rebuilt at every link.
        if other.len() > self.len() {
            std::mem::swap(self, &mut other);
        }
        if let SeenMessages::Many(table) = self {
            for (hash, seen_at) in other.entries_since(Timestamp::MIN) {
                if table.get(hash).is_none_or(|held| held < seen_at) {
                    table.set(hash, seen_at);
                }
            }
            return;
        }
        let mut entries: Vec<(u64, Timestamp)> = self
            .entries_since(Timestamp::MIN)
            .into_iter()
            .chain(other.entries_since(Timestamp::MIN))
            .collect();
        entries.sort_unstable_by_key(|(hash, seen_at)| (*hash, std::cmp::Reverse(*seen_at)));
        entries.dedup_by_key(|(hash, _)| *hash);
        // Oldest first, as they would have arrived; a table is sized for
        // all of them at once, so inserting them does not pile them up.
        entries.sort_unstable_by_key(|(hash, seen_at)| (*seen_at, *hash));
        *self = Self::from_entries(&entries);
    }

    /// How many hashes are held (expired ones included until forgotten).
    fn len(&self) -> usize {
        match self {
            SeenMessages::Two { .. } => self.inline_entries().len(),
            SeenMessages::Few(entries) => entries.len(),
            SeenMessages::Many(table) => table.len,
        }
    }

    /// Lookahead, first step: the list, or the table's header (the inline
    /// form came with the record).
    pub fn prefetch_start(&self) {
        match self {
            SeenMessages::Two { .. } => {}
            SeenMessages::Few(entries) => prefetch_thin_vec(entries),
            SeenMessages::Many(table) => prefetch(&**table),
        }
    }

    /// Lookahead, second step (the header is in cache): where `hash` lives.
    pub fn prefetch_slot(&self, hash: u64) {
        if let SeenMessages::Many(table) = self {
            let slots = &table.slots;
            prefetch(slots.as_ptr().wrapping_add(table.home(hash)));
        }
    }
}

/// An open-addressing table of (hash, time) with linear probing, kept at
/// most 3/4 full. Hash 0 marks an empty slot (a message hash of 0 is stored
/// as 1: two ids in 2⁶⁴ become one). Expired entries are dropped in bulk,
/// by rebuilding, when the table fills up.
#[derive(Debug)]
pub struct SeenTable {
    slots: Box<[(u64, Timestamp)]>,
    /// Entries held.
    len: usize,
    /// `64 - log2(slots.len())`: a home slot is the top bits of the mixed hash.
    shift: u32,
}

/// Per-process seed, so that nobody can choose message ids that pile up in
/// one place of a table. It changes where entries live, never the answers.
fn seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| RandomState::new().hash_one(0x7365_656e_u64) | 1)
}

#[cfg(test)]
thread_local! {
    /// Slots stepped over past a home slot, for tests of clustering.
    static PROBE_STEPS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

#[inline(always)]
fn count_probe_step() {
    #[cfg(test)]
    PROBE_STEPS.with(|steps| steps.set(steps.get() + 1));
}

impl SeenTable {
    /// An empty table with room for `entries` before it grows.
    fn with_room_for(entries: usize) -> SeenTable {
        let capacity = (entries * 4 / 3 + 1).next_power_of_two().max(16);
        SeenTable {
            slots: vec![(0, Timestamp(0)); capacity].into_boxed_slice(),
            len: 0,
            shift: 64 - capacity.trailing_zeros(),
        }
    }

    fn key(hash: u64) -> u64 {
        hash.max(1)
    }

    fn home(&self, hash: u64) -> usize {
        let mixed = (Self::key(hash) ^ seed()).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (mixed >> self.shift) as usize
    }

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// When `hash` was seen, if it is held.
    fn get(&self, hash: u64) -> Option<Timestamp> {
        let key = Self::key(hash);
        let mut index = self.home(hash);
        loop {
            match self.slots[index] {
                (0, _) => return None,
                (held, seen_at) if held == key => return Some(seen_at),
                _ => {
                    count_probe_step();
                    index = (index + 1) & self.mask();
                }
            }
        }
    }

    /// Records `hash` as seen at `time` (replacing an earlier time).
    fn set(&mut self, hash: u64, time: Timestamp) {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.rebuild(None, self.len + 1);
        }
        let key = Self::key(hash);
        let mut index = self.home(hash);
        loop {
            match &mut self.slots[index] {
                (0, _) => {
                    self.slots[index] = (key, time);
                    self.len += 1;
                    return;
                }
                (held, seen_at) if *held == key => {
                    *seen_at = time;
                    return;
                }
                _ => {
                    count_probe_step();
                    index = (index + 1) & self.mask();
                }
            }
        }
    }

    /// [`SeenTable::set`] unless `hash` is held with a time `fresh`
    /// accepts; returns whether it set. As `get` then `set`, in one probe
    /// when the table has room.
    fn set_unless(
        &mut self,
        hash: u64,
        time: Timestamp,
        fresh: impl Fn(Timestamp) -> bool,
    ) -> bool {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            // No room (a merge filled the table): `set` grows it first,
            // also to update an entry, and what the table forgets next
            // depends on that (a late event's duplicate, seen just over
            // the look-back before the newest, is still caught).
            if self.get(hash).is_some_and(fresh) {
                return false;
            }
            self.set(hash, time);
            return true;
        }
        let key = Self::key(hash);
        let mut index = self.home(hash);
        loop {
            match &mut self.slots[index] {
                (0, _) => break,
                (held, seen_at) if *held == key => {
                    if fresh(*seen_at) {
                        return false;
                    }
                    *seen_at = time;
                    return true;
                }
                _ => {
                    count_probe_step();
                    index = (index + 1) & self.mask();
                }
            }
        }
        // Not held: it goes in the free slot the probe ended at (the table
        // has room, checked above).
        self.slots[index] = (key, time);
        self.len += 1;
        true
    }

    /// Drops entries seen before `horizon` once the table is 3/4 full,
    /// then sizes it for what is left (at most half full afterwards, so
    /// rebuilds cost O(1) per insert).
    fn forget_before(&mut self, horizon: Timestamp) {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.rebuild(Some(horizon), 0);
        }
    }

    /// Re-inserts the entries (those seen at or after `horizon`, if given)
    /// into a table with room for half as many again, and at least
    /// `at_least`: a full table that keeps everything doubles.
    fn rebuild(&mut self, horizon: Option<Timestamp>, at_least: usize) {
        let keep = |seen_at: &Timestamp| horizon.is_none_or(|horizon| *seen_at >= horizon);
        let kept = match horizon {
            Some(_) => self.iter().filter(|(_, seen_at)| keep(seen_at)).count(),
            None => self.len,
        };
        let old = std::mem::replace(
            self,
            SeenTable::with_room_for((kept + kept / 2).max(at_least)),
        );
        // Straight from the old slots: the keys are distinct and the new
        // table has room, so each goes in the first free slot from its home.
        for (key, time) in old.iter().filter(|(_, seen_at)| keep(seen_at)) {
            let mut index = self.home(key);
            while self.slots[index].0 != 0 {
                count_probe_step();
                index = (index + 1) & self.mask();
            }
            self.slots[index] = (key, time);
        }
        self.len = kept;
    }

    /// Every entry, in slot order.
    fn iter(&self) -> impl Iterator<Item = (u64, Timestamp)> + '_ {
        self.slots.iter().copied().filter(|(hash, _)| *hash != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    const DAY: Span = Span(86_400_000);

    /// Feeds `events` (hash, ms) in time order to a fresh `SeenMessages`
    /// and checks every answer against a map of hash → last time seen,
    /// with the look-back applied.
    fn answers_like_a_map(
        mut events: Vec<(u64, i64)>,
        lookback: Span,
    ) -> Result<(), TestCaseError> {
        let mut seen = SeenMessages::default();
        let mut model: HashMap<u64, Timestamp> = HashMap::new();
        events.sort_by_key(|(_, time)| *time);
        for (hash, time) in events {
            let time = Timestamp(time);
            let duplicate = model
                .get(&hash.max(1))
                .is_some_and(|at| *at >= time - lookback && *at <= time + lookback);
            if !duplicate {
                model.insert(hash.max(1), time);
            }
            prop_assert_eq!(seen.first_sighting(hash, time, lookback), !duplicate);
        }
        Ok(())
    }

    proptest! {
        /// Every form answers as a map of hash → last time seen would, with
        /// the look-back applied, whatever the hashes (0 and colliding homes
        /// included) and however many a customer sends.
        #[test]
        fn answers_like_a_map_with_a_look_back(
            events in proptest::collection::vec(
                (prop_oneof![0u64..40, any::<u64>()], 0i64..3 * 86_400_000),
                1..600,
            )
        ) {
            answers_like_a_map(events, DAY)?;
        }

        /// The same for the few events of a quiet customer spread over
        /// months (the inline form's two entries can lie too far apart
        /// for it), with a look-back longer than that form spans. (In time
        /// order, as above: an entry is forgotten a look-back behind the
        /// customer's newest event, so a duplicate later than that is not
        /// recognised, in every form.)
        #[test]
        fn a_quiet_customer_is_answered_like_a_map_over_months(
            events in proptest::collection::vec(
                (0u64..6, 0i64..120 * 86_400_000),
                1..12,
            ),
            lookback_days in prop_oneof![Just(1i64), Just(30), Just(90)],
        ) {
            answers_like_a_map(events, Span(lookback_days * DAY.0))?;
        }
    }

    #[test]
    fn two_entries_live_inline_and_a_third_or_a_far_one_takes_the_list() {
        let mut seen = SeenMessages::default();
        assert!(seen.first_sighting(11, Timestamp(0), DAY));
        assert!(seen.first_sighting(12, Timestamp(-5_000), DAY));
        assert!(matches!(seen, SeenMessages::Two { .. }));
        assert!(!seen.first_sighting(12, Timestamp(1_000), DAY));
        assert!(seen.first_sighting(13, Timestamp(2_000), DAY));
        assert!(matches!(seen, SeenMessages::Few(_)));
        // A day later the old entries are forgotten: inline again.
        assert!(seen.first_sighting(14, Timestamp(DAY.0 + 3_000), DAY));
        assert!(matches!(seen, SeenMessages::Two { .. }));
        assert_eq!(seen.len(), 1);
        // Two entries 30 days apart do not fit inline.
        let month = Span(30 * DAY.0);
        assert!(seen.first_sighting(15, Timestamp(DAY.0 + 3_000) + month, month));
        assert!(matches!(seen, SeenMessages::Few(_)));
        assert_eq!(seen.len(), 2);
        let mut merged = SeenMessages::default();
        merged.absorb(seen);
        assert!(!merged.first_sighting(14, Timestamp(DAY.0), month));
    }

    /// Spreads message numbers over the hash space.
    const SPREAD: u64 = 0x2545_f491_4f6c_dd1d;

    /// A customer who saw messages `0..count` (times 0, 1, 2 ... ms).
    fn busy(count: u64) -> SeenMessages {
        let mut seen = SeenMessages::default();
        for i in 0..count {
            seen.first_sighting(i.wrapping_mul(SPREAD), Timestamp(i as i64), DAY);
        }
        seen
    }

    #[test]
    fn merging_a_big_table_into_a_small_one_does_not_pile_up() {
        let busy = busy(50_000);
        let mut person = SeenMessages::default();
        person.first_sighting(7, Timestamp(0), DAY);
        PROBE_STEPS.with(|steps| steps.set(0));
        person.absorb(busy);
        assert_eq!(person.len(), 50_001);
        // A few steps per entry at load <= 3/4. Inserted in hash order into
        // a table still growing, the entries piled up in one run and the
        // merge stepped over slots quadratically often.
        let steps = PROBE_STEPS.with(|steps| steps.get());
        assert!(steps < 10 * 50_001, "{steps} probe steps");
        assert!(!person.first_sighting(49_999u64.wrapping_mul(SPREAD), Timestamp(50_000), DAY));
    }

    #[test]
    fn linking_device_after_device_to_a_busy_person_costs_little_each() {
        let mut person = busy(50_000);
        PROBE_STEPS.with(|steps| steps.set(0));
        for device in 0..1_000u64 {
            let mut seen = SeenMessages::default();
            seen.first_sighting(
                device.wrapping_mul(0x9e37_79b9) | 1 << 63,
                Timestamp(60_000),
                DAY,
            );
            // One of them saw a message the person saw earlier: the newer
            // sighting is kept.
            if device == 7 {
                seen.first_sighting(SPREAD, Timestamp(50_000), DAY);
            }
            person.absorb(seen);
        }
        assert_eq!(person.len(), 51_000);
        // Rebuilding the person's table at every link stepped over millions
        // of slots; adding to it, a few per device.
        let steps = PROBE_STEPS.with(|steps| steps.get());
        assert!(steps < 20 * 1_000, "{steps} probe steps");
        assert!(!person.first_sighting(SPREAD, Timestamp(50_000 + DAY.0), DAY));
    }

    #[test]
    fn a_busy_customer_moves_to_a_table_that_forgets_old_entries() {
        let mut seen = SeenMessages::default();
        let minute = 60_000;
        for i in 0..10_000u64 {
            let time = Timestamp(i as i64 * minute);
            assert!(seen.first_sighting(i.wrapping_mul(0x9e37_79b9), time, DAY));
        }
        assert!(matches!(seen, SeenMessages::Many(_)));
        // A day is 1,440 minutes: far fewer than 10,000 entries are held.
        assert!(seen.len() < 4 * 1_440, "{} held", seen.len());
        let now = Timestamp(10_000 * minute);
        assert!(!seen.first_sighting(9_999u64.wrapping_mul(0x9e37_79b9), now, DAY));
        assert!(seen.first_sighting(0u64.wrapping_mul(0x9e37_79b9), now, DAY));
        let mut merged = SeenMessages::default();
        merged.absorb(seen);
        assert!(!merged.first_sighting(9_999u64.wrapping_mul(0x9e37_79b9), now, DAY));
    }

    /// A merge can leave the table with no room; the next sighting, of a
    /// message seen over a look-back ago, then grows it as `set` would
    /// rather than forgetting what is just past the look-back: a late
    /// event's duplicate of one of those is still caught.
    #[test]
    fn a_resighting_in_a_table_a_merge_filled_forgets_nothing_yet() {
        let second = 1_000;
        let mut device = SeenMessages::default();
        for i in 0..90u64 {
            assert!(device.first_sighting(i + 1, Timestamp(i as i64 * second), DAY));
        }
        let mut person = SeenMessages::default();
        for i in 0..6u64 {
            assert!(person.first_sighting(1_000 + i, Timestamp((100 + i as i64) * second), DAY));
        }
        person.absorb(device);
        let SeenMessages::Many(table) = &person else {
            panic!("a table");
        };
        assert!((table.len + 1) * 4 > table.slots.len() * 3, "no room");
        // Message 1 again, over a day after it was first seen.
        assert!(person.first_sighting(1, Timestamp(DAY.0 + 50 * second), DAY));
        // Message 46 (seen at 45 s), again in an event 40 s past a day.
        assert!(!person.first_sighting(46, Timestamp(DAY.0 + 40 * second), DAY));
    }
}
