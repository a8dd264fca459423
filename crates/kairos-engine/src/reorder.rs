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
//! two are merged when events leave.
//!
//! The events themselves (a couple of hundred bytes each) stay put in
//! numbered places from arrival until they leave, and only their numbers
//! move: copying an event is a noticeable share of the work per event.
//! Within the queue, keys with equal times are in arrival order by
//! construction, so a queue key is just (time, place); the arrival number,
//! needed only to merge with the stragglers, stays with the event.

use crate::id_index::IdKey;
use kairos_model::{Event, Timestamp};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// An event waiting, with what the engine took from it on arrival: its
/// message hash and its customer's id key (for the lookahead, and to find
/// the customer when the event is applied without hashing the id again;
/// `None` where there is no lookahead).
#[derive(Debug)]
pub struct Waiting {
    /// The event.
    pub event: Event,
    /// [`Event::message_hash`].
    pub message_hash: u64,
    /// The customer's id key.
    pub customer: Option<IdKey>,
}

/// (event time, place): a queue key, ordered as events leave (ties stay
/// in arrival order).
type Key = (Timestamp, u32);

/// (event time, arrival number, place): a straggler's key, ordered as
/// events leave.
type StragglerKey = (Timestamp, u64, u32);

/// How far from the back of the queue an arrival may be placed; later ones
/// are stragglers.
const MAX_SHIFT: usize = 64;

/// Keys that have left the front of the queue before it is compacted (see
/// [`ReorderBuffer::pop`]).
const MIN_COMPACTION: usize = 64;

/// An event in its place, with its arrival number.
#[derive(Debug)]
struct Held {
    waiting: Waiting,
    arrival: u64,
}

/// The buffer's events, lent out (see [`ReorderBuffer::lend`]).
#[derive(Debug)]
pub struct Lent(Vec<Option<Held>>);

impl Lent {
    /// The event in `place` (one popped and not released yet).
    pub fn get(&self, place: u32) -> Option<&Waiting> {
        self.0[place as usize].as_ref().map(|held| &held.waiting)
    }
}

/// Events not yet behind the watermark.
#[derive(Debug, Default)]
pub struct ReorderBuffer {
    /// Keys in leaving order, from `head` on; those before `head` have
    /// left. Leaving only moves `head`, and the keys that left are dropped
    /// together once they are as many as those still held (and at least
    /// [`MIN_COMPACTION`]), which costs a key moved per key that left: a
    /// ring buffer would save that, but its insertion a few places before
    /// the back has to handle the wrap, which cost more.
    queue: Vec<Key>,
    /// Where the queue's held keys start.
    head: usize,
    /// Keys that arrived too far behind the queue's back.
    stragglers: BinaryHeap<Reverse<StragglerKey>>,
    /// The events, by place; `None`: a free place.
    places: Vec<Option<Held>>,
    /// Free places, reused last freed first (still in cache).
    free: Vec<u32>,
    arrivals: u64,
}

impl ReorderBuffer {
    /// Holds an event until it is taken. (Taking the parts rather than a
    /// [`Waiting`] saves copying the event once more.)
    pub fn push(&mut self, event: Event, message_hash: u64, customer: Option<IdKey>) {
        let time = event.time;
        let arrival = self.arrivals;
        self.arrivals += 1;
        let place = match self.free.pop() {
            Some(place) => place,
            None => {
                self.places.push(None);
                u32::try_from(self.places.len() - 1).expect("under 2^32 events held")
            }
        };
        self.places[place as usize] = Some(Held {
            waiting: Waiting {
                event,
                message_hash,
                customer,
            },
            arrival,
        });
        let len = self.queue.len();
        match self.queue.last() {
            Some((last, _)) if *last > time => {
                // After every key with the same or an earlier time, if that
                // is among the last MAX_SHIFT held.
                let tail = (len - MAX_SHIFT.min(len)).max(self.head);
                if tail > self.head && self.queue[tail - 1].0 > time {
                    self.stragglers.push(Reverse((time, arrival, place)));
                } else {
                    let position = tail + self.queue[tail..].partition_point(|(t, _)| *t <= time);
                    self.queue.insert(position, (time, place));
                }
            }
            _ => self.queue.push((time, place)),
        }
    }

    /// The arrival number of the event in `place`.
    fn arrival(&self, place: u32) -> u64 {
        self.places[place as usize]
            .as_ref()
            .map_or(0, |held| held.arrival)
    }

    /// The time and place of the event that leaves next, and whether it is
    /// a straggler.
    fn next(&self) -> Option<(Timestamp, u32, bool)> {
        let front = self.queue.get(self.head);
        match (front, self.stragglers.peek()) {
            (Some(&(time, place)), Some(&Reverse((straggler_time, arrival, straggler))))
                if straggler_time < time
                    || (straggler_time == time && arrival < self.arrival(place)) =>
            {
                Some((straggler_time, straggler, true))
            }
            (Some(&(time, place)), _) => Some((time, place, false)),
            (None, Some(&Reverse((time, _, place)))) => Some((time, place, true)),
            (None, None) => None,
        }
    }

    /// The earliest event time held.
    pub fn earliest(&self) -> Option<Timestamp> {
        self.next().map(|(time, _, _)| time)
    }

    /// Takes the earliest event (the first to arrive among equal times) out
    /// of the order and returns its place. The event stays there, to be
    /// read while lent (see [`ReorderBuffer::lend`]), until
    /// [`ReorderBuffer::release`].
    pub fn pop(&mut self) -> Option<u32> {
        let (_, place, straggler) = self.next()?;
        if straggler {
            self.stragglers.pop();
        } else {
            self.head += 1;
            let held = self.queue.len() - self.head;
            if self.head >= MIN_COMPACTION.max(held) {
                self.queue.drain(..self.head);
                self.head = 0;
            }
        }
        Some(place)
    }

    /// Lends the events out, so that the engine can apply one where it
    /// waits while changing everything but the buffer (copying the event
    /// out instead cost more than the rest of the buffer's work). Until
    /// they are given back with [`ReorderBuffer::release`] the buffer holds
    /// none: nothing may be pushed or popped meanwhile.
    #[must_use]
    pub fn lend(&mut self) -> Lent {
        Lent(std::mem::take(&mut self.places))
    }

    /// Takes back the events lent and frees `place` (one popped): returns
    /// its event when `keep`, else drops it where it is.
    pub fn release(&mut self, lent: Lent, place: u32, keep: bool) -> Option<Event> {
        self.places = lent.0;
        self.free.push(place);
        let held = &mut self.places[place as usize];
        if keep {
            held.take().map(|held| held.waiting.event)
        } else {
            *held = None;
            None
        }
    }

    /// The events held, in the order they leave (for a snapshot of the
    /// engine: pushed into an empty buffer in this order, they leave in it
    /// again, and before any pushed after them at the same time).
    pub fn waiting(&self) -> Vec<&Event> {
        let mut keys: Vec<StragglerKey> = self.queue[self.head..]
            .iter()
            .map(|&(time, place)| (time, self.arrival(place), place))
            .chain(self.stragglers.iter().map(|Reverse(key)| *key))
            .collect();
        keys.sort_unstable();
        keys.iter()
            .filter_map(|&(_, _, place)| self.places.get(place as usize)?.as_ref())
            .map(|held| &held.waiting.event)
            .collect()
    }

    /// The event that leaves about `n` events from now (the next is 0): exact
    /// unless stragglers or earlier arrivals come first. A hint for the
    /// lookahead.
    pub fn ahead(&self, n: usize) -> Option<&Waiting> {
        let (_, place) = self.queue.get(self.head + n)?;
        self.places[*place as usize]
            .as_ref()
            .map(|held| &held.waiting)
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

    /// Pops the earliest event and takes it, as the engine does when it
    /// hands events back.
    fn take(buffer: &mut ReorderBuffer) -> Option<Event> {
        let place = buffer.pop()?;
        let lent = buffer.lend();
        assert!(
            lent.get(place).is_some(),
            "a popped event stays until released"
        );
        buffer.release(lent, place, true)
    }

    #[test]
    fn events_leave_by_time_then_arrival() {
        let mut buffer = ReorderBuffer::default();
        for (time, id) in [(3_000, "c"), (1_000, "a"), (3_000, "d"), (2_000, "b")] {
            buffer.push(event(time, id), 0, None);
        }
        assert_eq!(buffer.earliest(), Some(Timestamp(1_000)));
        assert_eq!(
            buffer.ahead(1).map(|w| w.event.message_id.as_str()),
            Some("b")
        );
        let order: Vec<kairos_model::CompactString> = std::iter::from_fn(|| take(&mut buffer))
            .map(|event| event.message_id)
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
                buffer.push(event(*time * 1_000, &arrival.to_string()), 0, None);
            }
            let mut expected: Vec<(i64, usize)> =
                times.iter().enumerate().map(|(arrival, time)| (*time * 1_000, arrival)).collect();
            expected.sort();
            let left: Vec<(i64, usize)> = std::iter::from_fn(|| take(&mut buffer))
                .map(|event| (event.time.0, event.message_id.parse().unwrap()))
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
                buffer.push(event(time * 1_000, &arrival.to_string()), 0, None);
                model.insert((time * 1_000, arrival));
                for _ in 0..pops {
                    let first = model.pop_first();
                    proptest::prop_assert_eq!(buffer.earliest().map(|t| t.0), first.map(|(t, _)| t));
                    let popped = take(&mut buffer)
                        .map(|event| (event.time.0, event.message_id.parse().unwrap()));
                    proptest::prop_assert_eq!(popped, first);
                }
            }
        }
    }
}
