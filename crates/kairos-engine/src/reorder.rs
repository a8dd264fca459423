//! The reorder buffer: events wait here until the watermark passes their
//! event time, then leave in (event time, arrival) order — so events with
//! equal times keep their arrival order.
//!
//! The heap orders small keys; the events themselves (a couple of hundred
//! bytes each) stay put in a slab instead of being moved at every level of
//! every sift.

use kairos_model::{Event, Timestamp};
use slab::Slab;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Events not yet behind the watermark, each with its message hash (taken
/// when it arrived, for the lookahead, and kept so it is not taken twice).
#[derive(Debug, Default)]
pub struct ReorderBuffer {
    /// (event time, arrival number, slab index), earliest first.
    order: BinaryHeap<Reverse<(Timestamp, u64, usize)>>,
    events: Slab<(Event, u64)>,
    arrivals: u64,
}

impl ReorderBuffer {
    /// Holds `event` until it is taken.
    pub fn push(&mut self, event: Event, message_hash: u64) {
        let time = event.time;
        let index = self.events.insert((event, message_hash));
        self.arrivals += 1;
        self.order.push(Reverse((time, self.arrivals, index)));
    }

    /// The earliest event time held.
    pub fn earliest(&self) -> Option<Timestamp> {
        self.order.peek().map(|Reverse((time, _, _))| *time)
    }

    /// Takes the earliest event (the first to arrive among equal times).
    pub fn pop(&mut self) -> Option<(Event, u64)> {
        let Reverse((_, _, index)) = self.order.pop()?;
        Some(self.events.remove(index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(time: i64, id: &str) -> Event {
        let line = format!(
            r#"{{"type":"track","event":"E","userId":"u","messageId":"{id}","timestamp":"{}"}}"#,
            Timestamp(time).to_rfc3339()
        );
        Event::from_json(line.as_bytes()).unwrap()
    }

    #[test]
    fn events_leave_by_time_then_arrival() {
        let mut buffer = ReorderBuffer::default();
        for (time, id) in [(3_000, "c"), (1_000, "a"), (3_000, "d"), (2_000, "b")] {
            buffer.push(event(time, id), 0);
        }
        assert_eq!(buffer.earliest(), Some(Timestamp(1_000)));
        let order: Vec<kairos_model::CompactString> = std::iter::from_fn(|| buffer.pop())
            .map(|(event, _)| event.message_id)
            .collect();
        assert_eq!(order, ["a", "b", "c", "d"]);
        assert_eq!(buffer.earliest(), None);
    }
}
