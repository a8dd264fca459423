//! Warming the cache for events before they are applied.
//!
//! With a million customers the engine is bound by memory latency: applying
//! an event chases pointers through a dozen separately allocated blocks of
//! one customer (record, states, ladders, carts, de-dup entries), and each is
//! a cache miss. But an on-time event waits in the reorder buffer until the
//! watermark passes it — behind allowed lateness × event rate others, a few
//! hundred in the benchmarks — so the engine knows which customers it will
//! need before it needs them.
//!
//! [`Lookahead`] walks each pushed customer's blocks one level per stage,
//! a few pushes apart, issuing prefetches that do not wait for memory: by
//! the time a stage reads a block, the previous stage's prefetch has brought
//! it in. Timers are walked the same way, a few places ahead in the deadline
//! queue. How much this buys depends on the buffer's depth: with hundreds of
//! events the blocks are in cache when the event is applied; with almost no
//! lateness the walk has not finished, and with a buffer of millions the
//! lines are evicted again, and then it is wasted work (an id lookup and a
//! few loads per event). It is only a hint: nothing is written, and a wrong
//! guess (a customer erased or merged in the meantime) costs a wasted
//! prefetch, never a wrong answer. Without prefetch instructions (not
//! x86-64) it does nothing.

/// Pushes between one stage and the next: enough for a prefetch to land.
const STAGE_DISTANCE: usize = 8;

/// How far ahead in the timer queue to start walking a customer: past the
/// last stage, so the walk is done by the time the timer fires.
pub const TIMERS_AHEAD: usize = 3 * STAGE_DISTANCE;

/// Customers whose blocks are being walked, by push number.
#[derive(Debug)]
pub struct Lookahead {
    ring: [Option<u32>; 2 * STAGE_DISTANCE],
    pushed: usize,
}

impl Default for Lookahead {
    fn default() -> Self {
        Lookahead {
            ring: [None; 2 * STAGE_DISTANCE],
            pushed: 0,
        }
    }
}

/// What a stage can do with a customer slot.
pub trait Walk {
    /// Stage 1: prefetch the customer's record.
    fn prefetch_record(&self, slot: u32);
    /// Stage 2: read the record, prefetch the blocks it points to.
    fn prefetch_parts(&self, slot: u32);
    /// Stage 3: read those blocks, prefetch what they point to.
    fn prefetch_details(&self, slot: u32);
}

impl Lookahead {
    /// Whether this target has prefetch instructions; without them the
    /// callers skip the walk (and the lookups that feed it).
    pub const ACTIVE: bool = cfg!(target_arch = "x86_64");

    /// Starts walking `slot` (the customer of the event just pushed, if
    /// known) and advances the walks started earlier.
    pub fn push<W: Walk + ?Sized>(&mut self, slot: Option<u32>, walk: &W) {
        let len = self.ring.len();
        let here = self.pushed % len;
        if let Some(slot) = self.ring[(here + len - STAGE_DISTANCE) % len] {
            walk.prefetch_parts(slot);
        }
        // The oldest entry leaves the ring here, one stage later still.
        if let Some(slot) = self.ring[here] {
            walk.prefetch_details(slot);
        }
        if let Some(slot) = slot {
            walk.prefetch_record(slot);
        }
        self.ring[here] = slot;
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
    use std::cell::RefCell;

    #[derive(Default)]
    struct Log(RefCell<Vec<(char, u32)>>);

    impl Walk for Log {
        fn prefetch_record(&self, slot: u32) {
            self.0.borrow_mut().push(('r', slot));
        }
        fn prefetch_parts(&self, slot: u32) {
            self.0.borrow_mut().push(('p', slot));
        }
        fn prefetch_details(&self, slot: u32) {
            self.0.borrow_mut().push(('d', slot));
        }
    }

    #[test]
    fn each_customer_is_walked_one_stage_per_distance() {
        let log = Log::default();
        let mut lookahead = Lookahead::default();
        lookahead.push(Some(7), &log);
        for _ in 0..(2 * STAGE_DISTANCE) {
            lookahead.push(None, &log);
        }
        assert_eq!(*log.0.borrow(), [('r', 7), ('p', 7), ('d', 7)]);
    }
}
