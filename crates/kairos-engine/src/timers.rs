//! The timer table: one place owns "what fires next".
//!
//! Millions of pending deadlines (abandoned carts, birthdays, points expiry)
//! live in one ordered set, 16 bytes an entry. A pending timer costs nothing
//! per second of runtime: nothing is looked at until its deadline is the
//! earliest. Cancelling or moving a timer is `O(log n)` because its owner
//! remembers the exact entry.
//!
//! (Buckets of due time, sorted when they come up, were tried: cheaper
//! inserts, but deadlines cluster — a million customers identified in one
//! hour all have their birthday timer in the same bucket — and cancelling
//! one then means searching the cluster.)

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

/// The deadline-ordered index of every pending timer.
#[derive(Debug, Default)]
pub struct TimerTable {
    entries: BTreeSet<Packed>,
}

impl TimerTable {
    /// Adds a timer.
    pub fn insert(&mut self, entry: TimerEntry) {
        self.entries.insert(entry.into());
    }

    /// Removes a timer; removing one that already fired is harmless.
    pub fn remove(&mut self, entry: &TimerEntry) {
        self.entries.remove(&Packed::from(*entry));
    }

    /// The earliest deadline.
    pub fn next_due(&self) -> Option<Timestamp> {
        self.entries.first().map(|entry| Timestamp(entry.due))
    }

    /// Takes the earliest timer if it is due strictly before `watermark`.
    pub fn pop_before(&mut self, watermark: Timestamp) -> Option<TimerEntry> {
        if self.entries.first()?.due < watermark.0 {
            self.entries.pop_first().map(Into::into)
        } else {
            None
        }
    }

    /// Takes the earliest timer if it is due exactly at `due` for `customer`.
    pub fn pop_if_same(&mut self, due: Timestamp, customer: u32) -> Option<TimerEntry> {
        let first = self.entries.first()?;
        if first.due == due.0 && first.customer == customer {
            self.entries.pop_first().map(Into::into)
        } else {
            None
        }
    }

    /// The customer of the timer that fires `n` timers from now (the next
    /// is 0), as far as it is known now.
    pub fn customer_ahead(&self, n: usize) -> Option<u32> {
        self.entries.iter().nth(n).map(|entry| entry.customer)
    }

    /// Number of pending timers.
    pub fn len(&self) -> usize {
        self.entries.len()
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
    }

    fn entry() -> impl Strategy<Value = TimerEntry> {
        (
            // Deadlines clustered (many equal times) and spread far apart.
            prop_oneof![0i64..5_000_000, -3_000_000_000i64..3_000_000_000],
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
        ]
    }

    proptest! {
        /// Packing changes nothing: the table behaves like an ordered set of
        /// entries.
        #[test]
        fn behaves_like_an_ordered_set(ops in proptest::collection::vec(op(), 1..400)) {
            let mut table = TimerTable::default();
            let mut model = BTreeSet::new();
            let mut inserted: Vec<TimerEntry> = Vec::new();
            for op in ops {
                match op {
                    Op::Insert(entry) => {
                        model.insert(entry);
                        table.insert(entry);
                        inserted.push(entry);
                    }
                    Op::Remove(pick) if !inserted.is_empty() => {
                        let entry = inserted[pick % inserted.len()];
                        model.remove(&entry);
                        table.remove(&entry);
                    }
                    Op::Remove(_) => {}
                    Op::PopBefore(watermark) => {
                        let expected = model
                            .first()
                            .filter(|first| first.due.0 < watermark)
                            .copied();
                        if let Some(first) = expected {
                            model.remove(&first);
                        }
                        prop_assert_eq!(table.pop_before(Timestamp(watermark)), expected);
                    }
                    Op::PopIfSame => {
                        if let Some(first) = model.first().copied() {
                            prop_assert_eq!(table.pop_if_same(first.due, first.customer), Some(first));
                            model.remove(&first);
                        }
                    }
                }
                prop_assert_eq!(table.len(), model.len());
                prop_assert_eq!(table.next_due(), model.first().map(|first| first.due));
            }
        }
    }
}
