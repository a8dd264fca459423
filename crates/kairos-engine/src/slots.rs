//! Every customer, by slot: in working form while active, packed once idle.
//!
//! Most of a large population is idle at any moment: known, with a
//! birthday to wish and an inactivity timer running, but sending nothing.
//! In working form a customer is a record and a handful of blocks sized for
//! cheap updates (an idle retail customer: ~440 bytes with its share of the
//! indexes); packed (see `customer::frozen`) the same state is ~100 bytes,
//! which fit in the slot itself, so an idle customer holds no block at all
//! (~180 bytes in all). A sweep that moves with the engine's clock packs
//! customers with no event for `settings.pack_idle_after` (default 48 h);
//! the next event or timer for one unpacks it. Either form gives the same
//! decisions (see `customer::frozen` for the one exception).
//!
//! The sweep visits every slot once per quarter of `pack_idle_after` of
//! clock time, in steps of 1/4096 of that (the retail workload, 10 M events
//! a day for a million customers: ~250 slots every ~1,200 events), so its
//! cost is spread thin and a customer is packed between 1 and 1.25 ×
//! `pack_idle_after` after its last event. A jump of the clock by a whole
//! quarter or more visits every slot at once.

use crate::customer::{freeze, pack_whole, thaw, unpack_whole, Customer};
use crate::snapshot::{corrupt, Reader, SnapshotError, Writer};
use crate::stats::Packing;
use kairos_model::{Span, Timestamp};
use thin_vec::ThinVec;

/// Bytes a packed customer may take in the slot itself: the slot is as
/// large as a customer's record anyway, and most idle customers pack into
/// fewer (an idle retail customer: 97 on average).
pub const INLINE: usize = 110;

/// A customer read by [`Slots::peek`]: the one in working form, or a copy
/// of a packed one.
pub enum Peeked<'a> {
    Hot(&'a Customer),
    Thawed(Box<Customer>),
}

impl std::ops::Deref for Peeked<'_> {
    type Target = Customer;

    fn deref(&self) -> &Customer {
        match self {
            Peeked::Hot(customer) => customer,
            Peeked::Thawed(customer) => customer,
        }
    }
}

/// One customer slot: 112 bytes, in a vector indexed by slot number.
#[derive(Debug)]
pub enum Slot {
    /// Free (after erasure or merging; see `Engine::free_slots`).
    Vacant,
    /// In working form. Held in the slot, not boxed: one pointer less to
    /// chase for every event (boxing cost ~8 % of the engine's speed with
    /// a million customers).
    Hot(Customer),
    /// Packed, in the slot itself.
    Packed(Inline),
    /// Packed, in a block of its own (more than [`INLINE`] bytes).
    PackedBlock(ThinVec<u8>),
}

/// A packed customer of at most [`INLINE`] bytes.
#[derive(Debug)]
pub struct Inline {
    len: u8,
    bytes: [u8; INLINE],
}

impl Slot {
    /// The packed bytes, if the customer is packed.
    fn packed(&self) -> Option<&[u8]> {
        match self {
            Slot::Packed(inline) => Some(&inline.bytes[..usize::from(inline.len)]),
            Slot::PackedBlock(block) => Some(block),
            Slot::Vacant | Slot::Hot(_) => None,
        }
    }
}

/// The slots, and the sweep that packs idle customers.
#[derive(Debug)]
pub struct Slots {
    slots: Vec<Slot>,
    /// The next slot the sweep visits.
    cursor: usize,
    /// Where the sweep packs a customer before placing it; zeroed after
    /// each, so that it holds no copy of a customer who may be erased
    /// next. (Like every freed block in the engine, the smaller buffers it
    /// outgrew are not scrubbed: erasure removes state, not bytes in the
    /// allocator's free lists.)
    scratch: Vec<u8>,
    /// Clock time of the sweep's last step (`MIN` before the first).
    swept_at: Timestamp,
    /// No step before this: the sweep moves in steps of 1/4096 of its
    /// period, so that most calls (one per event) cost one comparison.
    next_step_at: Timestamp,
    /// Visits owed, in slot-milliseconds (the remainder of a division).
    owed: u128,
    /// Customers packed now, their bytes, and the counts so far.
    packing: Packing,
}

impl Default for Slots {
    fn default() -> Self {
        Slots {
            slots: Vec::new(),
            scratch: Vec::new(),
            cursor: 0,
            swept_at: Timestamp::MIN,
            next_step_at: Timestamp::MIN,
            owed: 0,
            packing: Packing::default(),
        }
    }
}

impl Slots {
    /// Slots, vacant ones included.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Customers packed now, their bytes, and how often customers were
    /// packed and unpacked.
    pub fn packing(&self) -> Packing {
        self.packing
    }

    /// A new slot holding `customer`.
    pub fn push(&mut self, customer: Customer) -> u32 {
        self.slots.push(Slot::Hot(customer));
        u32::try_from(self.slots.len() - 1).expect("fewer than 2³² customer slots")
    }

    /// Puts `customer` in a vacant slot.
    pub fn put(&mut self, slot: u32, customer: Customer) {
        let place = &mut self.slots[slot as usize];
        debug_assert!(matches!(place, Slot::Vacant), "slot {slot} is taken");
        *place = Slot::Hot(customer);
    }

    /// The slot as it is (for looking without unpacking).
    #[inline]
    pub fn slot(&self, slot: u32) -> Option<&Slot> {
        self.slots.get(slot as usize)
    }

    /// The customer in `slot`, unpacked if it was packed.
    #[inline]
    pub fn get_mut(&mut self, slot: u32) -> Option<&mut Customer> {
        if let Slot::Packed(_) | Slot::PackedBlock(_) = self.slots.get(slot as usize)? {
            self.unpack(slot as usize);
        }
        match self.slots.get_mut(slot as usize)? {
            Slot::Hot(customer) => Some(customer),
            _ => None,
        }
    }

    /// Unpacks the packed customer in `index`.
    #[inline(never)]
    fn unpack(&mut self, index: usize) {
        let place = &mut self.slots[index];
        if let Some(bytes) = place.packed() {
            self.packing.cold_bytes -= bytes.len();
            *place = Slot::Hot(thaw(bytes));
            self.packing.cold_now -= 1;
            self.packing.unpacked += 1;
        }
    }

    /// Takes the customer out of `slot`, leaving it vacant.
    pub fn take(&mut self, slot: u32) -> Option<Customer> {
        self.get_mut(slot)?;
        match std::mem::replace(&mut self.slots[slot as usize], Slot::Vacant) {
            Slot::Hot(customer) => Some(customer),
            _ => None,
        }
    }

    /// The customer in `slot` to read, in whichever form: a packed one is
    /// unpacked into a copy and stays packed (reading it changes nothing a
    /// replay would not change too).
    pub fn peek(&self, slot: u32) -> Option<Peeked<'_>> {
        match self.slots.get(slot as usize)? {
            Slot::Hot(customer) => Some(Peeked::Hot(customer)),
            packed => packed
                .packed()
                .map(|bytes| Peeked::Thawed(Box::new(thaw(bytes)))),
        }
    }

    /// Whether any customer, in whichever form, satisfies `test` (packed
    /// ones are unpacked into a copy for it).
    pub fn any(&self, test: impl Fn(&Customer) -> bool) -> bool {
        self.slots.iter().any(|place| match place {
            Slot::Hot(customer) => test(customer),
            packed => packed.packed().is_some_and(|bytes| test(&thaw(bytes))),
        })
    }

    /// Writes every slot as it is, and where the sweep stands (a snapshot
    /// of the engine: when a customer is packed decides which of its old
    /// de-duplication entries it forgets). Packed customers go as their
    /// bytes; customers in working form whole (see
    /// `customer::frozen::pack_whole`), instants relative to `base`.
    pub(crate) fn save(&self, out: &mut Writer, base: Timestamp) {
        out.len(self.cursor);
        out.time(self.swept_at);
        out.time(self.next_step_at);
        out.fixed(&self.owed.to_le_bytes());
        out.u64(self.packing.packed);
        out.u64(self.packing.unpacked);
        out.len(self.slots.len());
        let mut whole = Vec::new();
        for place in &self.slots {
            match place {
                Slot::Vacant => out.u8(0),
                Slot::Hot(customer) => {
                    out.u8(1);
                    pack_whole(customer, base, &mut whole);
                    out.bytes(&whole);
                }
                Slot::Packed(_) | Slot::PackedBlock(_) => {
                    out.u8(2);
                    out.bytes(place.packed().unwrap_or_default());
                }
            }
        }
    }

    /// Reads what [`Slots::save`] wrote. Packed customers stay packed:
    /// copied, not decoded, which is what makes restoring a million of
    /// them quick.
    pub(crate) fn load(input: &mut Reader<'_>) -> Result<Slots, SnapshotError> {
        let cursor = input.len(0)?;
        let swept_at = input.time()?;
        let next_step_at = input.time()?;
        let owed = u128::from_le_bytes(input.fixed()?);
        let mut packing = Packing {
            packed: input.u64()?,
            unpacked: input.u64()?,
            ..Packing::default()
        };
        let len = input.len(1)?;
        let mut slots = Vec::with_capacity(len);
        for _ in 0..len {
            let place = match input.u8()? {
                0 => Slot::Vacant,
                1 => Slot::Hot(unpack_whole(input.bytes()?)),
                2 => {
                    let bytes = input.bytes()?;
                    packing.cold_now += 1;
                    packing.cold_bytes += bytes.len();
                    match u8::try_from(bytes.len()) {
                        Ok(len) if usize::from(len) <= INLINE => {
                            let mut inline = Inline {
                                len,
                                bytes: [0; INLINE],
                            };
                            inline.bytes[..bytes.len()].copy_from_slice(bytes);
                            Slot::Packed(inline)
                        }
                        _ => Slot::PackedBlock(ThinVec::from(bytes)),
                    }
                }
                _ => return Err(corrupt("a customer slot of unknown kind")),
            };
            slots.push(place);
        }
        if cursor > len {
            return Err(corrupt("the sweep beyond the last slot"));
        }
        Ok(Slots {
            slots,
            cursor,
            scratch: Vec::new(),
            swept_at,
            next_step_at,
            owed,
            packing,
        })
    }

    /// Moves the sweep on to clock time `now`: packs the customers it
    /// visits that have had no event for `idle_after`, forgetting their
    /// de-duplication entries older than `lookback`.
    #[inline]
    pub fn sweep(&mut self, now: Timestamp, idle_after: Span, lookback: Span) {
        if now >= self.next_step_at {
            self.sweep_step(now, idle_after, lookback);
        }
    }

    fn sweep_step(&mut self, now: Timestamp, idle_after: Span, lookback: Span) {
        let len = self.slots.len();
        let period = u64::try_from(idle_after.0 / 4).unwrap_or(0).max(1);
        self.next_step_at = now + Span(((period / 4096).max(1)) as i64);
        if self.swept_at == Timestamp::MIN || len == 0 {
            self.swept_at = now;
            return;
        }
        let Ok(elapsed) = u64::try_from(now.0.saturating_sub(self.swept_at.0)) else {
            return;
        };
        if elapsed == 0 {
            return;
        }
        self.swept_at = now;
        let visits = if elapsed >= period {
            self.owed = 0;
            len
        } else {
            self.owed += len as u128 * u128::from(elapsed);
            let visits = self.owed / u128::from(period);
            self.owed %= u128::from(period);
            visits as usize
        };
        for _ in 0..visits {
            if self.cursor >= len {
                self.cursor = 0;
            }
            let place = &mut self.slots[self.cursor];
            self.cursor += 1;
            let Slot::Hot(customer) = place else {
                continue;
            };
            if customer.touched.0.saturating_add(idle_after.0) > now.0 {
                continue;
            }
            if !freeze(customer, now, lookback, &mut self.scratch) {
                continue;
            }
            *place = match u8::try_from(self.scratch.len()) {
                Ok(len) if usize::from(len) <= INLINE => {
                    let mut inline = Inline {
                        len,
                        bytes: [0; INLINE],
                    };
                    inline.bytes[..self.scratch.len()].copy_from_slice(&self.scratch);
                    Slot::Packed(inline)
                }
                _ => Slot::PackedBlock(ThinVec::from(self.scratch.as_slice())),
            };
            self.packing.cold_bytes += self.scratch.len();
            self.scratch.fill(0);
            self.packing.cold_now += 1;
            self.packing.packed += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Span = Span(86_400_000);
    const START: Timestamp = Timestamp(1_795_000_000_000);

    /// `count` customers whose last event was at `START`.
    fn slots(count: usize) -> Slots {
        let mut slots = Slots::default();
        for index in 0..count {
            let mut customer = Customer::new(&format!("u{index}"));
            customer.touched = START;
            slots.push(customer);
        }
        slots.sweep(START, DAY, DAY);
        slots
    }

    /// Moves the clock from `START` to `until` in steps of `step`.
    fn run(slots: &mut Slots, until: Timestamp, step: Span) {
        let mut now = START;
        while now < until {
            now = (now + step).min(until);
            slots.sweep(now, DAY, DAY);
        }
    }

    #[test]
    fn customers_are_packed_within_a_quarter_period_after_going_idle() {
        let mut slots = slots(1000);
        run(&mut slots, START + DAY - Span(1), Span::seconds(60));
        assert_eq!(
            slots.packing().cold_now,
            0,
            "nobody is packed before a day of quiet"
        );
        run(&mut slots, START + DAY + Span(DAY.0 / 4), Span::seconds(60));
        assert_eq!(
            slots.packing().cold_now,
            1000,
            "everybody within a quarter of a day more"
        );
    }

    #[test]
    fn a_jump_of_the_clock_visits_every_slot() {
        let mut slots = slots(1000);
        slots.sweep(START + DAY * 2, DAY, DAY);
        assert_eq!(slots.packing().cold_now, 1000);
        // Nothing of the last customer packed lingers outside its slot
        // (it might be erased next).
        assert!(slots.scratch.iter().all(|byte| *byte == 0));
    }

    #[test]
    fn an_event_unpacks_and_restarts_the_wait() {
        let mut slots = slots(10);
        slots.sweep(START + DAY, DAY, DAY);
        assert_eq!(slots.packing().cold_now, 10);
        let customer = slots.get_mut(3).expect("a customer");
        assert_eq!(&*customer.key, "u3");
        customer.touched = START + DAY;
        let packing = slots.packing();
        assert_eq!(
            (packing.cold_now, packing.packed, packing.unpacked),
            (9, 10, 1)
        );
        slots.sweep(START + DAY * 2 - Span(1), DAY, DAY);
        assert!(
            matches!(slots.slot(3), Some(Slot::Hot(_))),
            "touched a day ago less 1 ms"
        );
        slots.sweep(START + DAY * 3, DAY, DAY);
        assert_eq!(slots.packing().cold_now, 10);
        assert_eq!(
            slots.take(3).map(|customer| customer.key),
            Some("u3".into())
        );
        assert!(matches!(slots.slot(3), Some(Slot::Vacant)));
        assert_eq!(slots.packing().cold_now, 9);
        // Ten alike customers, packed alike: the bytes count nine now.
        let each = slots.slots.iter().find_map(Slot::packed).map(<[u8]>::len);
        assert_eq!(Some(slots.packing().cold_bytes), each.map(|each| each * 9));
    }
}
