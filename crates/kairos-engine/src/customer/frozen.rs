//! A customer packed into one block of bytes, for customers who have gone
//! quiet (see `slots`).
//!
//! A customer in working form is a record and a handful of separately
//! allocated blocks (states, ladders, aggregates), each with its header and
//! pointers, sized for cheap updates. Most of a large population is idle at
//! any moment, and for them the same state packs into a fraction of that:
//! integers as LEB128 varints, instants as zig-zag varints relative to the
//! instant of packing (most lie within days of it), aggregate buckets as a
//! bit mask of the non-zero ones followed by those, and no pointers. Packing
//! and unpacking give back the same state, field for field: the engine's
//! decisions never depend on which form a customer was in.
//!
//! The format belongs to one build and pipeline (it holds trigger indexes,
//! tokens and time-zone numbers), so it has no version of its own: a
//! snapshot (see `snapshot`) carries packed customers to disk only for the
//! same build, pipeline and time-zone database, and checks their bytes
//! with its checksum. A block that does not decode is a bug, not bad
//! input. A change to the format must bump the snapshot format version.
//!
//! Two things are not kept: de-duplication entries older than twice the
//! look-back (see [`SeenMessages::entries_since`]), and the record's
//! `touched` instant (an unpacked customer counts as untouched until its
//! next event). A
//! customer with decisions waiting for delivery is not packed: those are
//! short-lived, and a [`crate::decision::Decision`] is a large structure.

use super::{
    Cart, CartLine, CountGroup, CountMemory, Customer, DeferredDecision, Held, KeyedState, Ladder,
    Lag, MaybeTime, MeasureMemory, Memory, MessageId, Occasional, PeriodMemory, Profile,
    Properties, Reasons, SeenMessages, SentRecord, NO_MEMORY,
};
use crate::attribution::{DecisionRecord, Touch};
use crate::customer::CapClass;
use crate::decision::{Decision, Suppression};
use crate::globals::RankBucket;
use crate::taste::Taste;
use chrono_tz::TZ_VARIANTS;
use compact_str::CompactString;
use kairos_model::{CartItem, Payload, PayloadValue, Span, Timestamp};
use std::sync::Arc;
use thin_vec::ThinVec;

/// Packs `customer` at instant `now` into `bytes` (replacing what they
/// held), forgetting de-duplication entries older than `now - 2 × lookback`
/// (no event less than `lookback` behind the clock can match them);
/// false when it holds something that is not packed (a decision waiting for
/// delivery).
pub fn freeze(customer: &Customer, now: Timestamp, lookback: Span, bytes: &mut Vec<u8>) -> bool {
    if !customer.deferred().is_empty() {
        return false;
    }
    bytes.clear();
    let mut out = Packer {
        bytes: std::mem::take(bytes),
        base: now,
    };
    out.i64(now.0);
    out.str(&customer.key);
    customer.profile.pack(&mut out);
    let seen = customer.seen.entries_since(Timestamp(
        now.0.saturating_sub(lookback.0.saturating_mul(2)),
    ));
    out.len(seen.len());
    for (hash, at) in seen {
        out.fixed(&hash.to_le_bytes());
        out.time(at);
    }
    out.list(&customer.carts);
    out.list(&customer.states);
    out.u64(customer.next_token.into());
    match &customer.occasional {
        None => out.u8(0),
        Some(occasional) => {
            out.u8(1);
            occasional.pack(&mut out);
        }
    }
    *bytes = out.bytes;
    true
}

/// Unpacks a customer packed by [`freeze`].
pub fn thaw(bytes: &[u8]) -> Customer {
    let mut input = Unpacker {
        bytes,
        at: 0,
        base: Timestamp(0),
    };
    input.base = Timestamp(input.i64());
    let key = input.str();
    let profile = Profile::unpack(&mut input);
    let seen: crate::seen::Inline = (0..input.len())
        .map(|_| {
            let hash = u64::from_le_bytes(input.fixed());
            (hash, input.time())
        })
        .collect();
    let customer = Customer {
        key,
        profile,
        seen: SeenMessages::from_entries(&seen),
        carts: input.list(),
        states: input.list(),
        next_token: input.u32(),
        touched: Timestamp::MIN,
        occasional: match input.u8() {
            0 => None,
            _ => Some(Box::new(Occasional::unpack(&mut input))),
        },
    };
    assert_eq!(
        input.at,
        input.bytes.len(),
        "a packed customer ends where it ends"
    );
    customer
}

/// Packs all of `customer` for a snapshot of the engine, instants relative
/// to `base`. Unlike [`freeze`] it keeps what the engine still acts on
/// and a packed customer leaves out: every de-duplication entry, in the
/// form held (a very late event's fate depends on which expired entries
/// are still held), the instant it was last touched (when the sweep packs
/// it), and its decisions waiting for delivery.
pub fn pack_whole(customer: &Customer, base: Timestamp, bytes: &mut Vec<u8>) {
    bytes.clear();
    let mut out = Packer {
        bytes: std::mem::take(bytes),
        base,
    };
    out.i64(base.0);
    out.str(&customer.key);
    customer.profile.pack(&mut out);
    customer.seen.pack(&mut out);
    out.list(&customer.carts);
    out.list(&customer.states);
    out.u64(customer.next_token.into());
    out.time(customer.touched);
    match &customer.occasional {
        None => out.u8(0),
        Some(occasional) => {
            out.u8(1);
            occasional.pack(&mut out);
            out.list(&occasional.deferred);
        }
    }
    *bytes = out.bytes;
}

/// Unpacks a customer packed by [`pack_whole`]. Like [`thaw`] it trusts
/// its input: a snapshot's checksum has vouched for it.
pub fn unpack_whole(bytes: &[u8]) -> Customer {
    let mut input = Unpacker {
        bytes,
        at: 0,
        base: Timestamp(0),
    };
    input.base = Timestamp(input.i64());
    let customer = Customer {
        key: input.str(),
        profile: Profile::unpack(&mut input),
        seen: SeenMessages::unpack(&mut input),
        carts: input.list(),
        states: input.list(),
        next_token: input.u32(),
        touched: input.time(),
        occasional: match input.u8() {
            0 => None,
            _ => {
                let mut occasional = Occasional::unpack(&mut input);
                occasional.deferred = input.list();
                Some(Box::new(occasional))
            }
        },
    };
    assert_eq!(
        input.at,
        input.bytes.len(),
        "a packed customer ends where it ends"
    );
    customer
}

/// Writes the format.
struct Packer {
    bytes: Vec<u8>,
    /// Instants are written relative to this.
    base: Timestamp,
}

impl Packer {
    fn u8(&mut self, value: u8) {
        self.bytes.push(value);
    }

    fn u64(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.bytes.push(value as u8 | 0x80);
            value >>= 7;
        }
        self.bytes.push(value as u8);
    }

    fn i64(&mut self, value: i64) {
        self.u64(((value << 1) ^ (value >> 63)) as u64);
    }

    fn len(&mut self, len: usize) {
        self.u64(len as u64);
    }

    fn fixed(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }

    fn str(&mut self, text: &str) {
        self.len(text.len());
        self.fixed(text.as_bytes());
    }

    /// An instant, relative to the base (wrapping, so that the extremes
    /// `MaybeTime` and schedules use come back exactly).
    fn time(&mut self, time: Timestamp) {
        self.i64(time.0.wrapping_sub(self.base.0));
    }

    fn list<T: Pack>(&mut self, items: &[T]) {
        self.len(items.len());
        for item in items {
            item.pack(self);
        }
    }

    /// Buckets: a mask of the non-zero ones, then those.
    fn buckets<T: Bucket>(&mut self, buckets: &[T], write: impl Fn(&mut Self, T)) {
        debug_assert!(buckets.len() <= 64, "a mask of 64 bits");
        let mask = buckets
            .iter()
            .enumerate()
            .filter(|(_, bucket)| !bucket.is_zero())
            .fold(0u64, |mask, (index, _)| mask | 1 << index);
        self.u64(mask);
        for bucket in buckets.iter().filter(|bucket| !bucket.is_zero()) {
            write(self, *bucket);
        }
    }
}

/// A bucket of a rolling aggregate, left out of the packed form when zero.
pub(crate) trait Bucket: Copy + Default {
    /// Whether it is exactly the default: a bucket left out comes back as
    /// that, bit for bit (so `-0.0` and NaN sums are written).
    fn is_zero(self) -> bool;
}

impl Bucket for u8 {
    fn is_zero(self) -> bool {
        self == 0
    }
}

impl Bucket for f32 {
    fn is_zero(self) -> bool {
        self.to_bits() == 0
    }
}

/// Reads the format. Out-of-range reads panic: blocks come only from
/// [`freeze`] or [`pack_whole`], in this process or in a snapshot whose
/// checksum held.
struct Unpacker<'a> {
    bytes: &'a [u8],
    at: usize,
    base: Timestamp,
}

impl Unpacker<'_> {
    fn u8(&mut self) -> u8 {
        let value = self.bytes[self.at];
        self.at += 1;
        value
    }

    /// Most numbers packed are small: one byte, read inline.
    #[inline]
    fn u64(&mut self) -> u64 {
        let first = self.u8();
        if first < 0x80 {
            return u64::from(first);
        }
        self.u64_continued(first)
    }

    fn u64_continued(&mut self, first: u8) -> u64 {
        let mut value = u64::from(first & 0x7f);
        let mut shift = 7;
        loop {
            let byte = self.u8();
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return value;
            }
            shift += 7;
        }
    }

    fn u32(&mut self) -> u32 {
        u32::try_from(self.u64()).expect("a packed u32")
    }

    fn u16(&mut self) -> u16 {
        u16::try_from(self.u64()).expect("a packed u16")
    }

    fn i64(&mut self) -> i64 {
        let raw = self.u64();
        (raw >> 1) as i64 ^ -((raw & 1) as i64)
    }

    fn len(&mut self) -> usize {
        usize::try_from(self.u64()).expect("a packed length")
    }

    fn fixed<const N: usize>(&mut self) -> [u8; N] {
        let bytes = self.bytes[self.at..self.at + N]
            .try_into()
            .expect("N bytes");
        self.at += N;
        bytes
    }

    fn str(&mut self) -> CompactString {
        let len = self.len();
        let text = std::str::from_utf8(&self.bytes[self.at..self.at + len]).expect("packed UTF-8");
        self.at += len;
        CompactString::from(text)
    }

    fn time(&mut self) -> Timestamp {
        Timestamp(self.base.0.wrapping_add(self.i64()))
    }

    fn list<T: Pack>(&mut self) -> ThinVec<T> {
        let len = self.len();
        let mut items = ThinVec::with_capacity(len);
        for _ in 0..len {
            items.push(T::unpack(self));
        }
        items
    }

    fn buckets<T: Copy + Default, const N: usize>(
        &mut self,
        read: impl Fn(&mut Self) -> T,
    ) -> [T; N] {
        let mask = self.u64();
        let mut buckets = [T::default(); N];
        for (index, bucket) in buckets.iter_mut().enumerate() {
            if mask & 1 << index != 0 {
                *bucket = read(self);
            }
        }
        buckets
    }
}

/// A part of a customer in the packed format.
trait Pack: Sized {
    fn pack(&self, out: &mut Packer);
    fn unpack(input: &mut Unpacker<'_>) -> Self;
}

impl Pack for Profile {
    fn pack(&self, out: &mut Packer) {
        // A zone as its number in this build's list (see the test below);
        // 0 for none.
        out.u64(self.timezone.map_or(0, |zone| zone as u64 + 1));
        match self.birthday {
            None => out.u8(0),
            Some((month, day)) => {
                out.u8(1);
                out.u8(month);
                out.u8(day);
            }
        }
        out.u64(u64::from(self.consent) | u64::from(self.consent_stated) << 16);
    }

    fn unpack(input: &mut Unpacker<'_>) -> Self {
        let timezone = match input.len() {
            0 => None,
            number => Some(TZ_VARIANTS[number - 1]),
        };
        let birthday = match input.u8() {
            0 => None,
            _ => Some((input.u8(), input.u8())),
        };
        let consent = input.u32();
        Profile {
            timezone,
            birthday,
            consent: consent as u16,
            consent_stated: (consent >> 16) as u16,
        }
    }
}

impl Pack for Cart {
    fn pack(&self, out: &mut Packer) {
        out.str(&self.id);
        out.list(&self.lines);
    }

    fn unpack(input: &mut Unpacker<'_>) -> Self {
        Cart {
            id: input.str(),
            lines: input.list(),
        }
    }
}

impl Pack for CartLine {
    fn pack(&self, out: &mut Packer) {
        out.str(&self.product_id);
        out.u64(self.quantity.into());
        out.fixed(&self.price.to_le_bytes());
    }

    fn unpack(input: &mut Unpacker<'_>) -> Self {
        CartLine {
            product_id: input.str(),
            quantity: input.u32(),
            price: f64::from_le_bytes(input.fixed()),
        }
    }
}

/// A keyed state's shape in one byte: how it is keyed (bits 0–1), whether
/// it has a ladder (bit 2), and its memory's kind (bits 3–7). One byte
/// instead of three tags: an idle retail customer has three states.
impl Pack for KeyedState {
    fn pack(&self, out: &mut Packer) {
        // The trigger index and, below it, whether the journey is held back.
        out.u64(u64::from(self.trigger) << 1 | u64::from(self.held_back));
        out.u64(self.token.into());
        let (keyed, memory) = match &self.held {
            Held::Customer(memory) => (0, memory),
            Held::Entity(_) => (1, &NO_MEMORY),
            Held::EntityAndMemory(both) => (2, &both.1),
        };
        out.u8(keyed | u8::from(self.ladder.is_some()) << 2 | memory.kind() << 3);
        match &self.held {
            Held::Customer(_) => {}
            Held::Entity(entity) => out.str(entity),
            Held::EntityAndMemory(both) => out.str(&both.0),
        }
        memory.pack_body(out);
        if let Some(ladder) = &self.ladder {
            ladder.pack(out);
        }
    }

    fn unpack(input: &mut Unpacker<'_>) -> Self {
        let trigger_and_held_back = input.u64();
        let token = input.u32();
        let shape = input.u8();
        let kind = shape >> 3;
        let held = match shape & 0b11 {
            0 => Held::Customer(Memory::unpack_body(kind, input)),
            1 => {
                let entity = input.str();
                debug_assert_eq!(kind, 0, "an entity state without memory");
                Held::Entity(Box::new(entity))
            }
            _ => {
                let entity = input.str();
                Held::EntityAndMemory(Box::new((entity, Memory::unpack_body(kind, input))))
            }
        };
        let ladder = (shape & 0b100 != 0).then(|| Box::new(Ladder::unpack(input)));
        KeyedState {
            trigger: (trigger_and_held_back >> 1) as u16,
            token,
            held,
            ladder,
            held_back: trigger_and_held_back & 1 != 0,
        }
    }
}

impl Memory {
    /// The kind, for a state's shape byte (below 32).
    fn kind(&self) -> u8 {
        match self {
            Memory::None => 0,
            Memory::History(_) => 1,
            Memory::Count(_) => 2,
            Memory::BlockedSession { .. } => 3,
            Memory::Sequence(_) => 4,
            Memory::Measure(_) => 5,
            Memory::MeasureTwoWindows(_) => 6,
            Memory::Tally(_) => 7,
            Memory::TallyTwoWindows(_) => 8,
            Memory::Periods(_) => 9,
            Memory::Yearly { .. } => 10,
        }
    }

    /// What follows the kind.
    fn pack_body(&self, out: &mut Packer) {
        match self {
            Memory::None => {}
            Memory::History(times) => out.list(times),
            Memory::Count(count) => count.pack(out),
            Memory::BlockedSession { close, lag } => {
                out.time(*close);
                lag.pack(out);
            }
            Memory::Sequence(first) => {
                out.time(first.0);
                first.1.pack(out);
            }
            Memory::Measure(measure) => {
                measure.pack_with(out, |out, sum| out.fixed(&sum.to_le_bytes()))
            }
            Memory::MeasureTwoWindows(measure) => {
                measure.pack_with(out, |out, sum| out.fixed(&sum.to_le_bytes()))
            }
            Memory::Tally(tally) => tally.pack_with(out, Packer::u8),
            Memory::TallyTwoWindows(tally) => tally.pack_with(out, Packer::u8),
            Memory::Periods(periods) => {
                out.i64(periods.first);
                out.i64(periods.period);
                out.len(periods.sums.len());
                for sum in &periods.sums {
                    out.fixed(&sum.to_le_bytes());
                }
            }
            Memory::Yearly { date: (month, day) } => {
                out.u8(*month);
                out.u8(*day);
            }
        }
    }

    fn unpack_body(kind: u8, input: &mut Unpacker<'_>) -> Self {
        fn f32s(input: &mut Unpacker<'_>) -> f32 {
            f32::from_le_bytes(input.fixed())
        }
        fn u8s(input: &mut Unpacker<'_>) -> u8 {
            input.u8()
        }
        match kind {
            0 => Memory::None,
            1 => Memory::History(input.list()),
            2 => Memory::Count(Box::new(CountMemory::unpack(input))),
            3 => Memory::BlockedSession {
                close: input.time(),
                lag: Lag::unpack(input),
            },
            4 => {
                let at = input.time();
                Memory::Sequence(Box::new((at, MessageId::unpack(input))))
            }
            5 => Memory::Measure(MeasureMemory::unpack_with(input, f32s)),
            6 => Memory::MeasureTwoWindows(MeasureMemory::unpack_with(input, f32s)),
            7 => Memory::Tally(MeasureMemory::unpack_with(input, u8s)),
            8 => Memory::TallyTwoWindows(MeasureMemory::unpack_with(input, u8s)),
            9 => {
                let first = input.i64();
                let period = input.i64();
                let sums = (0..input.len())
                    .map(|_| f64::from_le_bytes(input.fixed()))
                    .collect();
                Memory::Periods(Box::new(PeriodMemory {
                    first,
                    period,
                    sums,
                }))
            }
            _ => Memory::Yearly {
                date: (input.u8(), input.u8()),
            },
        }
    }
}

impl Pack for CountMemory {
    fn pack(&self, out: &mut Packer) {
        out.i64(self.window);
        self.last.pack(out);
        out.list(&self.groups);
        self.unless_at.pack(out);
        out.list(&self.events);
        self.properties.pack(out);
        self.window_close.pack(out);
    }

    fn unpack(input: &mut Unpacker<'_>) -> Self {
        CountMemory {
            window: input.i64(),
            last: MaybeTime::unpack(input),
            groups: input.list(),
            unless_at: MaybeTime::unpack(input),
            events: input.list(),
            properties: Properties::unpack(input),
            window_close: MaybeTime::unpack(input),
        }
    }
}

impl Pack for CountGroup {
    fn pack(&self, out: &mut Packer) {
        out.fixed(&self.hash.to_le_bytes());
        out.str(&self.value);
        out.u64(self.count.into());
        out.list(&self.recent);
        out.u8(self.fired.into());
    }

    fn unpack(input: &mut Unpacker<'_>) -> Self {
        CountGroup {
            hash: u64::from_le_bytes(input.fixed()),
            value: input.str(),
            count: input.u32(),
            recent: input.list(),
            fired: input.u8() != 0,
        }
    }
}

impl<T: Bucket, const N: usize> MeasureMemory<[T; N]> {
    fn pack_with(&self, out: &mut Packer, write: impl Fn(&mut Packer, T)) {
        out.i64(self.newest);
        out.u8(self.kept);
        out.u64(self.matched.map_or(0, |matched| u64::from(matched) + 1));
        out.u64(self.ranked.map_or(0, |ranked| ranked.raw().into()));
        out.buckets(&self.buckets, write);
    }

    fn unpack_with(input: &mut Unpacker<'_>, read: impl Fn(&mut Unpacker<'_>) -> T) -> Box<Self> {
        let newest = input.i64();
        let kept = input.u8();
        let matched = match input.u64() {
            0 => None,
            number => Some(u16::try_from(number - 1).expect("a packed band")),
        };
        let ranked = RankBucket::from_raw(input.u16());
        Box::new(MeasureMemory {
            newest,
            kept,
            matched,
            ranked,
            buckets: input.buckets::<T, N>(read),
        })
    }
}

/// A ladder starts with a byte of flags: its causing ids (bits 0–1: none,
/// one UUID, one other id, several), a lag (bit 2) and kept properties
/// (bit 3); what is absent takes no byte.
impl Pack for Ladder {
    fn pack(&self, out: &mut Packer) {
        let reasons = match &self.events {
            Reasons::None => 0,
            Reasons::One(MessageId::Uuid(_)) => 1,
            Reasons::One(MessageId::Text(_)) => 2,
            Reasons::Many(_) => 3,
        };
        let lag = self.timer_lag != Lag::ZERO;
        let properties = !self.properties.is_empty();
        out.u8(reasons | u8::from(lag) << 2 | u8::from(properties) << 3);
        out.time(self.anchor);
        out.u8(self.next_step);
        // The deadline relative to the anchor: usually a step's offset.
        out.i64(self.due.0.wrapping_sub(self.anchor.0));
        out.u8(self.variant);
        if lag {
            self.timer_lag.pack(out);
        }
        match &self.events {
            Reasons::None => {}
            Reasons::One(MessageId::Uuid(bytes)) => out.fixed(bytes),
            Reasons::One(MessageId::Text(text)) => out.str(text),
            Reasons::Many(events) => out.list(events),
        }
        if properties {
            self.properties.pack(out);
        }
    }

    fn unpack(input: &mut Unpacker<'_>) -> Self {
        let flags = input.u8();
        let anchor = input.time();
        let next_step = input.u8();
        let due = Timestamp(anchor.0.wrapping_add(input.i64()));
        let variant = input.u8();
        let timer_lag = match flags & 0b100 {
            0 => Lag::ZERO,
            _ => Lag::unpack(input),
        };
        let events = match flags & 0b11 {
            0 => Reasons::None,
            1 => Reasons::One(MessageId::Uuid(input.fixed())),
            2 => Reasons::One(MessageId::Text(input.str())),
            _ => Reasons::Many(input.list()),
        };
        let properties = match flags & 0b1000 {
            0 => ThinVec::new(),
            _ => Properties::unpack(input),
        };
        Ladder {
            anchor,
            next_step,
            due,
            timer_lag,
            variant,
            events,
            properties,
        }
    }
}

impl Pack for Lag {
    fn pack(&self, out: &mut Packer) {
        out.i64(self.span().0);
    }

    fn unpack(input: &mut Unpacker<'_>) -> Self {
        Lag::new(Span(input.i64())).expect("a packed lag is a lag")
    }
}

impl Pack for MessageId {
    fn pack(&self, out: &mut Packer) {
        match self {
            MessageId::Uuid(bytes) => {
                out.u8(0);
                out.fixed(bytes);
            }
            MessageId::Text(text) => {
                out.u8(1);
                out.str(text);
            }
        }
    }

    fn unpack(input: &mut Unpacker<'_>) -> Self {
        match input.u8() {
            0 => MessageId::Uuid(input.fixed()),
            _ => MessageId::Text(input.str()),
        }
    }
}

impl Pack for Timestamp {
    fn pack(&self, out: &mut Packer) {
        out.time(*self);
    }

    fn unpack(input: &mut Unpacker<'_>) -> Self {
        input.time()
    }
}

impl Pack for MaybeTime {
    fn pack(&self, out: &mut Packer) {
        out.time(Timestamp(self.0));
    }

    fn unpack(input: &mut Unpacker<'_>) -> Self {
        MaybeTime(input.time().0)
    }
}

impl Pack for Properties {
    /// Names as text, values as their JSON text (which `serde_json` reads
    /// back to the same value, floats included).
    fn pack(&self, out: &mut Packer) {
        out.len(self.len());
        for (name, value) in self {
            out.str(name);
            out.str(&value.to_string());
        }
    }

    fn unpack(input: &mut Unpacker<'_>) -> Self {
        let len = input.len();
        let mut properties = ThinVec::with_capacity(len);
        for _ in 0..len {
            let name = input.str().into_string();
            let value = serde_json::from_str(&input.str()).expect("packed JSON");
            properties.push((name, value));
        }
        properties
    }
}

impl Pack for CompactString {
    fn pack(&self, out: &mut Packer) {
        out.str(self);
    }

    fn unpack(input: &mut Unpacker<'_>) -> Self {
        input.str()
    }
}

impl Pack for SentRecord {
    fn pack(&self, out: &mut Packer) {
        out.time(self.at);
        out.u64(self.trigger.into());
        out.u8(self.channel);
        out.u8(match self.cap {
            CapClass::Targeted => 0,
            CapClass::Content => 1,
            CapClass::Uncapped => 2,
        });
        out.u8(self.priority);
    }

    fn unpack(input: &mut Unpacker<'_>) -> Self {
        SentRecord {
            at: input.time(),
            trigger: input.u16(),
            channel: input.u8(),
            cap: match input.u8() {
                0 => CapClass::Targeted,
                1 => CapClass::Content,
                _ => CapClass::Uncapped,
            },
            priority: input.u8(),
        }
    }
}

/// Exactly as held (see [`pack_whole`]): the form, and a table's size.
impl Pack for SeenMessages {
    fn pack(&self, out: &mut Packer) {
        match self {
            SeenMessages::Two {
                first,
                first_at,
                second,
                second_after,
            } => {
                out.u8(0);
                out.fixed(&first.to_le_bytes());
                out.time(*first_at);
                out.fixed(&second.to_le_bytes());
                out.i64((*second_after).into());
            }
            SeenMessages::Few(entries) => {
                out.u8(1);
                out.len(entries.len());
                for (hash, at) in entries {
                    out.fixed(&hash.to_le_bytes());
                    out.time(*at);
                }
            }
            SeenMessages::Many(_) => {
                out.u8(2);
                out.len(self.table_capacity().unwrap_or(0));
                let entries = self.entries_since(Timestamp::MIN);
                out.len(entries.len());
                for (hash, at) in entries {
                    out.fixed(&hash.to_le_bytes());
                    out.time(at);
                }
            }
        }
    }

    fn unpack(input: &mut Unpacker<'_>) -> Self {
        fn entry(input: &mut Unpacker<'_>) -> (u64, Timestamp) {
            let hash = u64::from_le_bytes(input.fixed());
            (hash, input.time())
        }
        match input.u8() {
            0 => SeenMessages::Two {
                first: u64::from_le_bytes(input.fixed()),
                first_at: input.time(),
                second: u64::from_le_bytes(input.fixed()),
                second_after: i32::try_from(input.i64()).expect("a packed i32"),
            },
            1 => SeenMessages::Few((0..input.len()).map(|_| entry(input)).collect()),
            _ => {
                let capacity = input.len();
                let entries: Vec<_> = (0..input.len()).map(|_| entry(input)).collect();
                SeenMessages::table_from_entries(capacity, &entries)
            }
        }
    }
}

impl Pack for DeferredDecision {
    fn pack(&self, out: &mut Packer) {
        out.u64(self.token.into());
        out.u64(self.trigger.into());
        match &self.entity {
            None => out.u8(0),
            Some(entity) => {
                out.u8(1);
                out.str(entity);
            }
        }
        out.time(self.due);
        out.u8(self.held_back.into());
        self.decision.pack(out);
    }

    fn unpack(input: &mut Unpacker<'_>) -> Self {
        DeferredDecision {
            token: input.u32(),
            trigger: input.u16(),
            entity: match input.u8() {
                0 => None,
                _ => Some(input.str()),
            },
            due: input.time(),
            held_back: input.u8() != 0,
            decision: Box::new(Decision::unpack(input)),
        }
    }
}

impl Pack for Decision {
    fn pack(&self, out: &mut Packer) {
        out.str(&self.action_id);
        out.str(&self.user_id);
        out.str(&self.trigger);
        out.u64(self.step.into());
        out.str(&self.channel);
        out.u64(self.priority.into());
        out.str(&self.variant);
        out.time(self.fired_at);
        out.time(self.decided_at);
        out.time(self.expires_at);
        out.u8(self.suppressed.map_or(0, |reason| reason as u8 + 1));
        out.str(&self.rule);
        out.list(&self.events);
        out.len(self.payload.fields().count());
        for (name, value) in self.payload.fields() {
            out.str(name);
            value.pack(out);
        }
    }

    fn unpack(input: &mut Unpacker<'_>) -> Self {
        let shared = |input: &mut Unpacker<'_>| Arc::<str>::from(input.str().as_str());
        let mut decision = Decision {
            action_id: input.str(),
            user_id: input.str(),
            trigger: shared(input),
            step: input.u32(),
            channel: shared(input),
            priority: input.u32(),
            variant: shared(input),
            fired_at: input.time(),
            decided_at: input.time(),
            expires_at: input.time(),
            suppressed: match input.u8() {
                0 => None,
                number => Some(Suppression::ALL[usize::from(number) - 1]),
            },
            rule: shared(input),
            events: input.list::<CompactString>().into_iter().collect(),
            payload: Payload::new(),
            // Asked only of decisions sent, never of one packed to wait.
            recommend: None,
        };
        for _ in 0..input.len() {
            let name = input.str();
            decision.payload.set(name, PayloadValue::unpack(input));
        }
        decision
    }
}

impl Pack for PayloadValue {
    fn pack(&self, out: &mut Packer) {
        match self {
            PayloadValue::Text(text) => {
                out.u8(0);
                out.str(text);
            }
            PayloadValue::Shared(text) => {
                out.u8(1);
                out.str(text);
            }
            PayloadValue::Number(number) => {
                out.u8(2);
                out.fixed(&number.to_le_bytes());
            }
            PayloadValue::Cart(items) => {
                out.u8(3);
                out.len(items.len());
                for item in items {
                    out.fixed(&item.price.to_le_bytes());
                    out.str(&item.product_id);
                    out.u64(item.quantity.into());
                }
            }
            PayloadValue::Json(value) => {
                out.u8(4);
                out.str(&value.to_string());
            }
        }
    }

    fn unpack(input: &mut Unpacker<'_>) -> Self {
        match input.u8() {
            0 => PayloadValue::Text(input.str()),
            1 => PayloadValue::Shared(Arc::from(input.str().as_str())),
            2 => PayloadValue::Number(f64::from_le_bytes(input.fixed())),
            3 => PayloadValue::Cart(
                (0..input.len())
                    .map(|_| CartItem {
                        price: f64::from_le_bytes(input.fixed()),
                        product_id: input.str(),
                        quantity: input.u32(),
                    })
                    .collect(),
            ),
            _ => PayloadValue::Json(serde_json::from_str(&input.str()).expect("packed JSON")),
        }
    }
}

impl Pack for Occasional {
    fn pack(&self, out: &mut Packer) {
        out.list(&self.aliases);
        out.list(&self.sent);
        match &self.engagement_hours {
            None => out.u8(0),
            Some(hours) => {
                out.u8(1);
                for count in hours {
                    out.u64((*count).into());
                }
            }
        }
        match &self.taste {
            None => out.u8(0),
            Some(taste) => {
                out.u8(1);
                taste.pack(out);
            }
        }
        match &self.last_touch {
            None => out.u8(0),
            Some(touch) => {
                out.u8(1 + u8::from(touch.held_out) + 2 * u8::from(touch.converted));
                out.time(touch.at);
                out.u64(touch.trigger.into());
                out.u8(touch.variant);
            }
        }
        out.list(&self.decisions);
    }

    fn unpack(input: &mut Unpacker<'_>) -> Self {
        Occasional {
            aliases: input.list(),
            sent: input.list(),
            deferred: ThinVec::new(),
            engagement_hours: match input.u8() {
                0 => None,
                _ => Some(std::array::from_fn(|_| input.u16())),
            },
            taste: match input.u8() {
                0 => None,
                _ => Some(Box::new(Taste::unpack(input))),
            },
            last_touch: match input.u8() {
                0 => None,
                flags => Some(Touch {
                    held_out: (flags - 1) & 1 != 0,
                    converted: (flags - 1) & 2 != 0,
                    at: input.time(),
                    trigger: input.u16(),
                    variant: input.u8(),
                }),
            },
            decisions: input.list(),
        }
    }
}

impl Pack for DecisionRecord {
    fn pack(&self, out: &mut Packer) {
        out.time(self.at);
        out.u64(self.trigger.into());
        out.u8(self.step);
        out.u8(self.variant);
        out.u8(self.suppressed.map_or(0, |reason| reason as u8 + 1));
    }

    fn unpack(input: &mut Unpacker<'_>) -> Self {
        DecisionRecord {
            at: input.time(),
            trigger: input.u16(),
            step: input.u8(),
            variant: input.u8(),
            suppressed: match input.u8() {
                0 => None,
                number => Some(Suppression::ALL[usize::from(number) - 1]),
            },
        }
    }
}

impl Pack for Taste {
    fn pack(&self, out: &mut Packer) {
        out.time(self.at);
        out.fixed(&self.weight.to_le_bytes());
        out.fixed(&self.scale.to_le_bytes());
        out.len(self.mean.len());
        out.fixed(&self.mean.iter().map(|&q| q as u8).collect::<Vec<u8>>());
        out.len(self.recent.len());
        for key in &self.recent {
            out.fixed(&key.to_le_bytes());
        }
        out.len(self.bought.len());
        for (key, time) in &self.bought {
            out.fixed(&key.to_le_bytes());
            out.time(*time);
        }
    }

    fn unpack(input: &mut Unpacker<'_>) -> Self {
        let at = input.time();
        let weight = f32::from_le_bytes(input.fixed());
        let scale = f32::from_le_bytes(input.fixed());
        let mean = (0..input.len()).map(|_| input.u8() as i8).collect();
        let recent = (0..input.len())
            .map(|_| u64::from_le_bytes(input.fixed()))
            .collect();
        let bought = (0..input.len())
            .map(|_| (u64::from_le_bytes(input.fixed()), input.time()))
            .collect();
        Taste {
            at,
            weight,
            scale,
            mean,
            recent,
            bought,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::json;
    use thin_vec::thin_vec;

    const NOW: Timestamp = Timestamp(1_795_000_000_000);

    fn ladder(events: Reasons, properties: Properties) -> Option<Box<Ladder>> {
        Some(Box::new(Ladder {
            anchor: NOW - Span::HOUR * 30,
            next_step: 2,
            due: NOW + Span::HOUR * 1400,
            timer_lag: Lag::new(Span::seconds(90)).expect("a lag"),
            variant: 1,
            events,
            properties,
        }))
    }

    /// A customer with something in every field and every kind of memory.
    fn every_part() -> Customer {
        let mut customer = Customer::new("user-1");
        customer.profile = Profile {
            timezone: Some(chrono_tz::Tz::Asia__Shanghai),
            birthday: Some((11, 20)),
            consent: 0b1011,
            consent_stated: 0b1_1011,
        };
        customer.seen = SeenMessages::from_entries(&[(7, NOW - Span::HOUR), (u64::MAX, NOW)]);
        customer.carts = thin_vec![Cart {
            id: "cart-1".into(),
            lines: thin_vec![CartLine {
                product_id: "p-1".into(),
                quantity: 2,
                price: 9.99,
            }],
        }];
        let uuid = MessageId::new("0b6f8a1e-2c3d-4e5f-8a9b-0c1d2e3f4a5b");
        let text = MessageId::new("a text id that is longer than twenty-four bytes");
        let properties: Properties = thin_vec![
            ("price".to_string(), json!(0.1 + 0.2)),
            ("tags".to_string(), json!({"b": [1, null, "x"], "a": true})),
        ];
        let mut tally = MeasureMemory::<[u8; 24]>::new();
        tally.newest = 7_000;
        tally.kept = 3;
        tally.matched = Some(0);
        tally.ranked = RankBucket::from_raw(12);
        tally.buckets[0] = 4;
        tally.buckets[23] = 255;
        let mut sums = MeasureMemory::<[f32; 12]>::new();
        sums.newest = -5;
        sums.buckets[5] = -0.5;
        sums.buckets[6] = -0.0;
        sums.buckets[7] = f32::NAN;
        let count = CountMemory {
            window: 42,
            last: MaybeTime::from(Some(NOW)),
            groups: thin_vec![CountGroup {
                hash: 0xdead_beef,
                value: "category=tea".into(),
                count: 3,
                recent: thin_vec![NOW - Span::seconds(5), NOW],
                fired: true,
            }],
            unless_at: MaybeTime::NONE,
            events: thin_vec![uuid.clone(), text.clone()],
            properties: properties.clone(),
            window_close: MaybeTime::from(Some(Timestamp::MAX)),
        };
        let memories = vec![
            Memory::None,
            Memory::History(thin_vec![NOW - Span::HOUR * 24 * 40, NOW]),
            Memory::Count(Box::new(count)),
            Memory::BlockedSession {
                close: NOW + Span::seconds(1800),
                lag: Lag::new(Span(12)).expect("a lag"),
            },
            Memory::Sequence(Box::new((NOW, text.clone()))),
            Memory::Measure(sums),
            Memory::MeasureTwoWindows(MeasureMemory::new()),
            Memory::Tally(MeasureMemory::new()),
            Memory::TallyTwoWindows(tally),
            Memory::Periods(Box::new(PeriodMemory {
                first: 100,
                period: 103,
                sums: vec![1.5, 0.0, f64::MAX],
            })),
            Memory::Yearly { date: (2, 29) },
        ];
        let mut states: ThinVec<KeyedState> = memories
            .into_iter()
            .enumerate()
            .map(|(index, memory)| KeyedState::new(index as u16, index as u32 + 1, None, memory))
            .collect();
        states.push(KeyedState::new(20, 30, Some("cart-1"), Memory::None));
        states.push(KeyedState::new(
            21,
            31,
            Some("k-9"),
            Memory::Yearly { date: (1, 1) },
        ));
        states[0].ladder = ladder(Reasons::None, ThinVec::new());
        states[11].ladder = ladder(Reasons::One(uuid.clone()), properties.clone());
        states[12].ladder = ladder(Reasons::Many(thin_vec![text, uuid]), ThinVec::new());
        states[12].held_back = true;
        customer.states = states;
        customer.next_token = 4_000_000;
        let occasional = customer.occasional_mut();
        occasional.aliases = thin_vec![
            "anon-1".into(),
            "an alias of more than twenty-four bytes".into()
        ];
        occasional.sent = thin_vec![SentRecord {
            at: NOW - Span::HOUR,
            trigger: 3,
            channel: 2,
            cap: CapClass::Content,
            priority: 70,
        }];
        occasional.engagement_hours = Some(std::array::from_fn(|hour| hour as u16 * 1000));
        occasional.taste = Some(Box::new(Taste {
            at: NOW - Span::HOUR * 3,
            weight: 4.75,
            scale: 0.0071,
            mean: smallvec::smallvec![127, -127, 0, 3, -60],
            recent: smallvec::smallvec![7, u64::MAX],
            bought: thin_vec![(42, NOW - Span::DAY * 20), (u64::MAX - 1, NOW)],
        }));
        occasional.last_touch = Some(Touch {
            at: NOW - Span::HOUR * 2,
            trigger: 300,
            variant: 2,
            held_out: true,
            converted: true,
        });
        occasional.decisions = thin_vec![
            DecisionRecord {
                at: NOW - Span::HOUR * 5,
                trigger: 3,
                step: 2,
                variant: 0,
                suppressed: None,
            },
            DecisionRecord {
                at: NOW - Span::HOUR * 2,
                trigger: 300,
                step: 1,
                variant: 2,
                suppressed: Some(Suppression::Holdout),
            },
        ];
        customer
    }

    #[test]
    fn a_customer_comes_back_field_for_field() {
        let customer = every_part();
        let mut frozen = Vec::new();
        assert!(freeze(&customer, NOW, Span::HOUR * 24, &mut frozen));
        let back = thaw(&frozen);
        assert_eq!(format!("{back:#?}"), format!("{customer:#?}"));
        let mut again = vec![1, 2, 3];
        assert!(freeze(&back, NOW, Span::HOUR * 24, &mut again));
        assert_eq!(again, frozen, "packing is deterministic");
    }

    #[test]
    fn packing_forgets_only_messages_older_than_twice_the_look_back() {
        let mut customer = every_part();
        customer.seen = SeenMessages::from_entries(&[
            (1, NOW - Span::HOUR * 49),
            (2, NOW - Span::HOUR * 48),
            (3, NOW),
        ]);
        let mut frozen = Vec::new();
        assert!(freeze(&customer, NOW, Span::HOUR * 24, &mut frozen));
        let back = thaw(&frozen);
        assert_eq!(
            back.seen.entries_since(Timestamp::MIN).as_slice(),
            [(2, NOW - Span::HOUR * 48), (3, NOW)]
        );
    }

    #[test]
    fn a_customer_with_a_decision_waiting_is_not_packed() {
        let mut customer = Customer::new("user-2");
        customer.occasional_mut().deferred.push(DeferredDecision {
            token: 1,
            trigger: 0,
            entity: None,
            due: NOW,
            held_back: false,
            decision: Box::new(crate::decision::Decision {
                action_id: "act_0".into(),
                user_id: "user-2".into(),
                trigger: "t".into(),
                step: 1,
                channel: "push".into(),
                priority: 1,
                variant: "control".into(),
                fired_at: NOW,
                decided_at: NOW,
                expires_at: NOW,
                suppressed: None,
                rule: "r".into(),
                events: Vec::new(),
                payload: Default::default(),
                recommend: None,
            }),
        });
        assert!(!freeze(&customer, NOW, Span::HOUR, &mut Vec::new()));
    }

    #[test]
    fn every_time_zone_is_its_number_in_the_list() {
        for (number, zone) in TZ_VARIANTS.iter().enumerate() {
            assert_eq!(*zone as usize, number, "{zone}");
        }
    }

    #[test]
    fn varints_and_instants_come_back() {
        let base = Timestamp(1_700_000_000_000);
        let mut out = Packer {
            bytes: Vec::new(),
            base,
        };
        let numbers = [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX];
        let signed = [0, -1, 1, i64::MIN, i64::MAX, -300];
        let times = [
            Timestamp::MIN,
            Timestamp::MAX,
            Timestamp(0),
            base,
            Timestamp(i64::MIN),
        ];
        numbers.iter().for_each(|n| out.u64(*n));
        signed.iter().for_each(|n| out.i64(*n));
        times.iter().for_each(|t| out.time(*t));
        let mut input = Unpacker {
            bytes: &out.bytes,
            at: 0,
            base,
        };
        assert_eq!(numbers.map(|_| input.u64()), numbers);
        assert_eq!(signed.map(|_| input.i64()), signed);
        assert_eq!(times.map(|_| input.time()), times);
        assert_eq!(input.at, out.bytes.len());
    }
}
