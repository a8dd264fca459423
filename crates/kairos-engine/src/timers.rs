//! The timer table: one place owns "what fires next".
//!
//! Millions of pending deadlines (abandoned carts, birthdays, points expiry)
//! live in one ordered set. A pending timer costs one entry and nothing per
//! second of runtime: nothing is scanned until its deadline is the earliest.
//! Cancelling or moving a timer is `O(log n)` because its owner remembers the
//! exact entry.

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
/// customer and token — both assigned in application order, so the order is
/// reproducible for the same input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerEntry {
    /// When it is due.
    pub due: Timestamp,
    /// The customer slot.
    pub customer: u32,
    /// The owner within the customer (a keyed state or a deferred decision).
    pub token: u32,
    /// Which of the owner's timers.
    pub purpose: TimerPurpose,
}

/// The deadline-ordered index of every pending timer.
#[derive(Debug, Default)]
pub struct TimerTable {
    entries: BTreeSet<TimerEntry>,
}

impl TimerTable {
    /// Adds a timer.
    pub fn insert(&mut self, entry: TimerEntry) {
        self.entries.insert(entry);
    }

    /// Removes a timer; removing one that already fired is harmless.
    pub fn remove(&mut self, entry: &TimerEntry) {
        self.entries.remove(entry);
    }

    /// The earliest deadline.
    pub fn next_due(&self) -> Option<Timestamp> {
        self.entries.first().map(|entry| entry.due)
    }

    /// Takes the earliest timer if it is due strictly before `watermark`.
    pub fn pop_before(&mut self, watermark: Timestamp) -> Option<TimerEntry> {
        if self.entries.first()?.due < watermark {
            self.entries.pop_first()
        } else {
            None
        }
    }

    /// Number of pending timers.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

impl TimerTable {
    /// Takes the earliest timer if it is due exactly at `due` for `customer`.
    pub fn pop_if_same(&mut self, due: Timestamp, customer: u32) -> Option<TimerEntry> {
        let first = self.entries.first()?;
        if first.due == due && first.customer == customer {
            self.entries.pop_first()
        } else {
            None
        }
    }
}
