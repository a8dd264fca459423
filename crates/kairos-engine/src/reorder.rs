//! The reorder buffer: events wait here until the watermark passes their
//! event time, then leave in (event time, arrival) order — so events with
//! equal times keep their arrival order.
//!
//! The order is mostly a queue of small keys kept sorted: events arrive
//! nearly in time order, so a new key almost always goes at the back, and a
//! slightly late one a few places before it. Sorted, the queue can say which
//! event leaves k-th from now, and the lookahead warms that event's customer
//! just in time rather than when it arrived (behind a deep buffer, long
//! enough before for the cache to have forgotten it: with 30 s of allowed
//! lateness this doubled the retail benchmark's speed). An event that would
//! land far from the back (very late, in a deep buffer) goes to a small heap
//! of stragglers instead, so no arrival moves more than a few dozen keys; the
//! two are merged when events leave. The events themselves (a couple of
//! hundred bytes each) stay put in a slab.

use crate::id_index::IdKey;
use kairos_model::{Event, Timestamp};
use slab::Slab;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// An event waiting, with what the engine took from it on arrival: its
/// message hash and its customer's id key (for the lookahead; `None` where
/// there is no lookahead).
#[derive(Debug)]
pub struct Waiting {
    /// The event.
    pub event: Event,
    /// [`Event::message_hash`].
    pub message_hash: u64,
    /// The customer's id key.
    pub customer: Option<IdKey>,
}

/// (event time, arrival number, slab index): ordered as events leave.
type Key = (Timestamp, u64, usize);

/// How far from the back of the queue an arrival may be placed; later ones
/// are stragglers.
const MAX_SHIFT: usize = 64;

/// Events not yet behind the watermark.
#[derive(Debug, Default)]
pub struct ReorderBuffer {
    /// Keys in leaving order.
    queue: VecDeque<Key>,
    /// Keys that arrived too far behind the queue's back.
    stragglers: BinaryHeap<Reverse<Key>>,
    events: Slab<Waiting>,
    arrivals: u64,
}

impl ReorderBuffer {
    /// Holds an event until it is taken.
    pub fn push(&mut self, waiting: Waiting) {
        let time = waiting.event.time;
        let key = (time, self.arrivals, self.events.insert(waiting));
        self.arrivals += 1;
        match self.queue.back() {
            Some((last, _, _)) if *last > time => {
                // After every key with the same or an earlier time.
                let position = self.queue.partition_point(|(t, _, _)| *t <= time);
                if self.queue.len() - position <= MAX_SHIFT {
                    self.queue.insert(position, key);
                } else {
                    self.stragglers.push(Reverse(key));
                }
            }
            _ => self.queue.push_back(key),
        }
    }

    /// The key that leaves next, and whether it is a straggler's.
    fn next(&self) -> Option<(Key, bool)> {
        match (self.queue.front(), self.stragglers.peek()) {
            (Some(front), Some(Reverse(straggler))) if straggler < front => {
                Some((*straggler, true))
            }
            (Some(front), _) => Some((*front, false)),
            (None, Some(Reverse(straggler))) => Some((*straggler, true)),
            (None, None) => None,
        }
    }

    /// The earliest event time held.
    pub fn earliest(&self) -> Option<Timestamp> {
        self.next().map(|((time, _, _), _)| time)
    }

    /// Takes the earliest event (the first to arrive among equal times).
    pub fn pop(&mut self) -> Option<Waiting> {
        let ((_, _, index), straggler) = self.next()?;
        if straggler {
            self.stragglers.pop();
        } else {
            self.queue.pop_front();
        }
        Some(self.events.remove(index))
    }

    /// The event that leaves about `n` events from now (the next is 0): exact
    /// unless stragglers or earlier arrivals come first. A hint for the
    /// lookahead.
    pub fn ahead(&self, n: usize) -> Option<&Waiting> {
        self.queue.get(n).map(|(_, _, index)| &self.events[*index])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An event at `time` ms after the epoch (earlier than events may be
    /// sent in JSON, which the buffer does not care about).
    fn event(time: i64, id: &str) -> Event {
        let line = format!(
            r#"{{"type":"track","event":"E","userId":"u","messageId":"{id}","timestamp":"2026-01-01T00:00:00Z"}}"#
        );
        let mut event = Event::from_json(line.as_bytes()).unwrap();
        event.time = Timestamp(time);
        event
    }

    #[test]
    fn events_leave_by_time_then_arrival() {
        let mut buffer = ReorderBuffer::default();
        for (time, id) in [(3_000, "c"), (1_000, "a"), (3_000, "d"), (2_000, "b")] {
            buffer.push(Waiting {
                event: event(time, id),
                message_hash: 0,
                customer: None,
            });
        }
        assert_eq!(buffer.earliest(), Some(Timestamp(1_000)));
        assert_eq!(
            buffer.ahead(1).map(|w| w.event.message_id.as_str()),
            Some("b")
        );
        let order: Vec<kairos_model::CompactString> = std::iter::from_fn(|| buffer.pop())
            .map(|waiting| waiting.event.message_id)
            .collect();
        assert_eq!(order, ["a", "b", "c", "d"]);
        assert_eq!(buffer.earliest(), None);
    }

    proptest::proptest! {
        /// Whatever the arrival order (stragglers included), events leave by
        /// time, then arrival.
        #[test]
        fn leaves_in_time_then_arrival_order(times in proptest::collection::vec(0i64..400, 0..600)) {
            let mut buffer = ReorderBuffer::default();
            for (arrival, time) in times.iter().enumerate() {
                buffer.push(Waiting {
                    event: event(*time * 1_000, &arrival.to_string()),
                    message_hash: 0,
                    customer: None,
                });
            }
            let mut expected: Vec<(i64, usize)> =
                times.iter().enumerate().map(|(arrival, time)| (*time * 1_000, arrival)).collect();
            expected.sort();
            let left: Vec<(i64, usize)> = std::iter::from_fn(|| buffer.pop())
                .map(|waiting| (waiting.event.time.0, waiting.event.message_id.parse().unwrap()))
                .collect();
            proptest::prop_assert_eq!(left, expected);
        }

        /// Pops between pushes (as the engine does whenever the watermark
        /// allows) leave in the same order as a sorted set of what is held.
        #[test]
        fn interleaved_pushes_and_pops_match_a_sorted_set(
            steps in proptest::collection::vec((0u8..3, 0i64..200, 0usize..4), 0..500),
        ) {
            let mut buffer = ReorderBuffer::default();
            let mut model = std::collections::BTreeSet::new();
            let mut base = 1_000i64;
            for (arrival, (kind, delta, pops)) in steps.into_iter().enumerate() {
                // Late by up to 200 places, on time, or moving forward.
                let time = match kind {
                    0 => base - delta,
                    1 => base,
                    _ => {
                        base += delta % 5;
                        base
                    }
                };
                buffer.push(Waiting {
                    event: event(time * 1_000, &arrival.to_string()),
                    message_hash: 0,
                    customer: None,
                });
                model.insert((time * 1_000, arrival));
                for _ in 0..pops {
                    let first = model.pop_first();
                    proptest::prop_assert_eq!(buffer.earliest().map(|t| t.0), first.map(|(t, _)| t));
                    let popped = buffer
                        .pop()
                        .map(|waiting| (waiting.event.time.0, waiting.event.message_id.parse().unwrap()));
                    proptest::prop_assert_eq!(popped, first);
                }
            }
        }
    }
}
