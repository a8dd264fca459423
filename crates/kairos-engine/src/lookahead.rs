//! Warming the cache for events before they are applied.
//!
//! With a million customers the engine is bound by memory latency: applying
//! an event chases pointers through a dozen separately allocated blocks of
//! one customer (record, states, ladders, carts, de-dup entries), and each is
//! a cache miss. But an on-time event waits in the reorder buffer until the
//! watermark passes its event time, so the engine knows which customers it
//! will need before it needs them.
//!
//! [`Lookahead`] walks a customer's blocks one level per stage, a few steps
//! apart, issuing prefetches that do not wait for memory: by the time a
//! stage reads a block, the previous stage's prefetch has brought it in. A
//! step is an event leaving the reorder buffer or a timer firing; at each,
//! the walk starts for the event that leaves [`EVENTS_AHEAD`] places later
//! (or the timer that fires [`TIMERS_AHEAD`] places later), so its blocks
//! arrive just before they are used, however deep the buffer. (Walking
//! events when they arrived instead fetched them hundreds or thousands of
//! events early, and behind a deep buffer the cache had dropped them again.)
//! The walk starts one level higher, at the id index: the event's id was
//! hashed on arrival, its index entry is prefetched, and only the next stage
//! looks it up. With almost no lateness the buffer is too short to look
//! ahead and nothing is walked. It is only a hint: nothing is written, and a
//! wrong guess (a customer erased or merged in the meantime, a late event
//! arriving in between) costs a wasted prefetch, never a wrong answer.
//! Without prefetch instructions (not x86-64) it does nothing.

use crate::id_index::IdKey;

/// Pushes between one stage and the next: enough for a prefetch to land.
const STAGE_DISTANCE: usize = 8;

/// Stages after the first.
const LATER_STAGES: usize = 3;

/// How far ahead in the timer queue to start walking a customer: past the
/// last stage, so the walk is done by the time the timer fires.
pub const TIMERS_AHEAD: usize = (LATER_STAGES + 1) * STAGE_DISTANCE;

/// The same for events, in the order they leave the reorder buffer.
pub const EVENTS_AHEAD: usize = TIMERS_AHEAD;

/// What a walk starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// An event: its customer id, not looked up yet, and its message hash.
    Event(IdKey, u64),
    /// A known customer slot (a timer's owner, or an event's customer once
    /// looked up, with the event's message hash).
    Slot(u32, Option<u64>),
}

/// Places in the ring of walks: room for the pushes a walk spans, rounded
/// up to a power of two so that a place is a mask away from a push number
/// (rather than a division).
const RING: usize = (LATER_STAGES * STAGE_DISTANCE).next_power_of_two();

/// Customers whose blocks are being walked, by push number.
#[derive(Debug)]
pub struct Lookahead {
    /// Push number `n` (modulo `RING`) → the walk it started.
    ring: [Option<Start>; RING],
    pushed: usize,
}

impl Default for Lookahead {
    fn default() -> Self {
        Lookahead {
            ring: [None; RING],
            pushed: 0,
        }
    }
}

/// What a stage can do.
pub trait Walk {
    /// Stage 0: prefetch the id index entry of an id.
    fn prefetch_index(&self, key: IdKey);
    /// Stage 1, first half: look the id up (its entry is in cache by now).
    fn resolve(&self, key: IdKey) -> Option<u32>;
    /// Stage 1: prefetch the customer's record.
    fn prefetch_record(&self, slot: u32);
    /// Stage 2: read the record, prefetch the blocks it points to.
    fn prefetch_parts(&self, slot: u32);
    /// Stage 3: read those blocks, prefetch what they point to (and, for an
    /// event, where its message hash lives in the customer's de-dup table).
    fn prefetch_details(&self, slot: u32, message: Option<u64>);
}

impl Lookahead {
    /// Whether this target has prefetch instructions; without them the
    /// callers skip the walk (and the hashing that feeds it).
    pub const ACTIVE: bool = cfg!(target_arch = "x86_64");

    /// Starts walking from `start` (the customer of the event just pushed,
    /// or of a timer coming up) and advances the walks started earlier.
    pub fn push<W: Walk + ?Sized>(&mut self, start: Option<Start>, walk: &W) {
        // The place of the walk started `n` stages ago.
        let stage = |n: usize| self.pushed.wrapping_sub(n * STAGE_DISTANCE) & (RING - 1);
        let first = stage(1);
        if let Some(started) = self.ring[first] {
            let walked = match started {
                Start::Event(key, message) => walk.resolve(key).map(|slot| (slot, Some(message))),
                Start::Slot(slot, message) => Some((slot, message)),
            };
            if let Some((slot, _)) = walked {
                walk.prefetch_record(slot);
            }
            self.ring[first] = walked.map(|(slot, message)| Start::Slot(slot, message));
        }
        if let Some(Start::Slot(slot, _)) = self.ring[stage(2)] {
            walk.prefetch_parts(slot);
        }
        // The oldest walk's last stage (its place is taken again later).
        if let Some(Start::Slot(slot, message)) = self.ring[stage(LATER_STAGES)] {
            walk.prefetch_details(slot, message);
        }
        if let Some(Start::Event(key, _)) = start {
            walk.prefetch_index(key);
        }
        self.ring[stage(0)] = start;
        self.pushed = self.pushed.wrapping_add(1);
    }
}

/// Asks the CPU to bring the cache line holding `address` closer. Never
/// faults, whatever the address.
#[inline(always)]
pub fn prefetch<T: ?Sized>(address: *const T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch is a hint; it reads nothing and cannot fault,
        // even for an invalid address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(address.cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

/// A thin vector's header (length, capacity) and first elements.
#[inline(always)]
pub fn prefetch_thin_vec<T>(list: &thin_vec::ThinVec<T>) {
    // The header sits just before the elements.
    prefetch(list.as_ptr().cast::<u8>().wrapping_sub(16));
    prefetch(list.as_ptr());
}

/// Prefetches every cache line of `value`.
#[inline(always)]
pub fn prefetch_lines<T>(value: *const T) {
    let start = value.cast::<u8>();
    let mut offset = 0;
    while offset < std::mem::size_of::<T>() {
        prefetch(start.wrapping_add(offset));
        offset += 64;
    }
    prefetch(start.wrapping_add(std::mem::size_of::<T>().saturating_sub(1)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id_index::IdIndex;
    use std::cell::{Cell, RefCell};

    /// Records (push number, stage, slot) for every call.
    struct Log {
        ids: IdIndex,
        push: Cell<usize>,
        calls: RefCell<Vec<(usize, char, u32)>>,
    }

    impl Log {
        fn record(&self, stage: char, slot: u32) {
            self.calls.borrow_mut().push((self.push.get(), stage, slot));
        }
    }

    impl Walk for Log {
        fn prefetch_index(&self, key: IdKey) {
            self.record('i', self.ids.get_key(key).unwrap_or(u32::MAX));
        }
        fn resolve(&self, key: IdKey) -> Option<u32> {
            self.ids.get_key(key)
        }
        fn prefetch_record(&self, slot: u32) {
            self.record('r', slot);
        }
        fn prefetch_parts(&self, slot: u32) {
            self.record('p', slot);
        }
        fn prefetch_details(&self, slot: u32, message: Option<u64>) {
            self.record('d', slot);
            assert_eq!(
                message,
                (slot == 7).then_some(70),
                "an event's hash travels along"
            );
        }
    }

    #[test]
    fn each_customer_is_walked_one_stage_per_distance() {
        let mut ids = IdIndex::default();
        ids.insert("c7", 7);
        let log = Log {
            push: Cell::new(0),
            calls: RefCell::default(),
            ids,
        };
        // Pushes 0, 3 and 5 overlap; "nobody" is not in the index, so its
        // walk ends after the lookup.
        let starts = [
            (0, Start::Event(log.ids.key("c7"), 70)),
            (3, Start::Slot(9, None)),
            (5, Start::Event(log.ids.key("nobody"), 50)),
        ];
        let mut lookahead = Lookahead::default();
        for push in 0..40 {
            log.push.set(push);
            let start = starts
                .iter()
                .find(|(at, _)| *at == push)
                .map(|(_, start)| *start);
            lookahead.push(start, &log);
        }
        let d = STAGE_DISTANCE;
        let mut expected = vec![
            (0, 'i', 7),
            (5, 'i', u32::MAX),
            (d, 'r', 7),
            (3 + d, 'r', 9),
            (2 * d, 'p', 7),
            (3 + 2 * d, 'p', 9),
            (3 * d, 'd', 7),
            (3 + 3 * d, 'd', 9),
        ];
        expected.sort();
        let mut calls = log.calls.borrow().clone();
        calls.sort();
        assert_eq!(calls, expected);
    }
}
