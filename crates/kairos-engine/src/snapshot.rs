//! Snapshots: the whole engine as bytes, and back.
//!
//! A live service cannot replay its input from the beginning after a
//! crash: it saves the engine now and then with the stream position the
//! snapshot covers, and on start restores it and replays from there. The
//! engine is deterministic, so that gives the decisions, and the action
//! ids, of a run that never stopped; but only if the restored engine is the
//! one saved in everything a later decision or counter depends on. So a
//! snapshot keeps more than a customer's meaning: which customers are
//! packed and when the sweep comes to the rest (a packed customer forgets
//! old de-duplication entries), which expired de-duplication entries a
//! customer still holds (a very late event's fate depends on them), the
//! timer table as laid out (cancelled entries and all: when one comes up
//! it unpacks its customer), slot tokens, the id index with its hash seed.
//! Only what no decision depends on is left out: the lookahead's
//! prefetches and events kept for the caller to free.
//!
//! The format: a magic, the format version, then (after the checksum is
//! checked) the build, the time-zone database and a fingerprint of the
//! pipeline, so that a snapshot is only restored into the engine that
//! wrote it; then the state; then an xxh3 checksum of everything before it. The checksum is what guards the
//! customers: their blocks are decoded as this build packed them, without
//! checks of their own (`customer::frozen` trusts its input, and a packed
//! customer stays packed, unread, until needed: that is what brings a
//! million customers back in well under a second). Everything else is read
//! with every length checked against the bytes left, and the per-trigger
//! memories against the pipeline's triggers, so a snapshot cut short, or
//! damaged past what the checksum can tell, gives [`SnapshotError::Corrupt`]
//! rather than a panic. Snapshots are trusted as kairos' own, written to its
//! data directory: bytes made to pass the checksum on purpose can still
//! make a packed customer panic when unpacked, or the id index (whose
//! capacity is its peak, not its length) allocate up to its cap.

use crate::config::Pipeline;
use crate::engine::Engine;
use crate::lookahead::Lookahead;
use crate::stats::Stats;
use crate::Suppression;
use kairos_model::{CompactString, Event, EventType, Properties, PropertyValue, Timestamp};
use serde_json::Number;
use xxhash_rust::xxh3::xxh3_64;

/// The first bytes of every snapshot.
const MAGIC: &[u8; 8] = b"KAIROSSN";

/// The version of the format; a snapshot of another is refused. Bump it
/// with any change to what is written, here or in the modules' `save`
/// (`customer::frozen` included).
const FORMAT_VERSION: u32 = 3;

/// The build, which also decides the format of packed customers (trigger
/// indexes, time-zone numbers).
const BUILD: &str = env!("CARGO_PKG_VERSION");

/// Property values nested deeper than this are refused when read: the
/// event decoders refuse anything near it (serde_json stops at 128), and
/// reading is recursive.
const MAX_DEPTH: usize = 512;

/// Why a snapshot could not be taken or restored.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Decisions made were not all polled: a snapshot does not keep them,
    /// and a restart would lose them.
    #[error("decisions are waiting to be polled; poll them all before taking a snapshot")]
    DecisionsWaiting,
    /// Written by another build, format or pipeline.
    #[error("the snapshot does not fit this engine: {reason}")]
    Incompatible {
        /// What differs.
        reason: String,
    },
    /// Cut short or damaged.
    #[error("the snapshot is corrupt: {reason}")]
    Corrupt {
        /// What was found wrong.
        reason: String,
    },
}

/// A [`SnapshotError::Corrupt`] saying `reason`.
pub(crate) fn corrupt(reason: impl Into<String>) -> SnapshotError {
    SnapshotError::Corrupt {
        reason: reason.into(),
    }
}

/// The fingerprint of a pipeline: of its whole configuration, as its
/// `Debug` text shows it (every field; no maps whose order could vary).
fn fingerprint(pipeline: &Pipeline) -> u64 {
    xxh3_64(format!("{FORMAT_VERSION} {BUILD} {pipeline:?}").as_bytes())
}

/// The fingerprint of the time-zone database: packed customers hold a
/// zone as its number in it, which an update of `chrono-tz` may change
/// without the engine's version changing.
fn zones_fingerprint() -> u64 {
    let names: Vec<&str> = chrono_tz::TZ_VARIANTS
        .iter()
        .map(|zone| zone.name())
        .collect();
    xxh3_64(names.join(" ").as_bytes())
}

impl Engine {
    /// Writes the engine's whole state into `out` (cleared first), for
    /// [`Engine::restore`]. Decisions must have been polled
    /// ([`SnapshotError::DecisionsWaiting`] otherwise). It takes a few
    /// hundred milliseconds for a million customers: for a service, every
    /// so often, not per event.
    pub fn snapshot(&self, out: &mut Vec<u8>) -> Result<(), SnapshotError> {
        if !self.output.is_empty() {
            return Err(SnapshotError::DecisionsWaiting);
        }
        out.clear();
        // About the size it will take (most customers need 100-200 bytes, a
        // timer a few), reserved at once: growing a vector of a hundred
        // megabytes by doubling, copying and faulting in its pages as it
        // goes, cost more than writing the snapshot.
        out.reserve(self.customers.len() * 192 + self.timers.len() * 8 + (1 << 16));
        let mut writer = Writer {
            bytes: std::mem::take(out),
        };
        writer.fixed(MAGIC);
        writer.fixed(&FORMAT_VERSION.to_le_bytes());
        writer.fixed(&fingerprint(&self.plan.pipeline).to_le_bytes());
        writer.str(BUILD);
        writer.fixed(&zones_fingerprint().to_le_bytes());
        writer.str(&self.plan.pipeline.name);

        writer.time(self.watermark);
        writer.time(self.newest_event);
        writer.time(self.now);
        writer.bool(self.input_closed);
        writer.u64(self.ops_slot.map_or(0, |slot| u64::from(slot) + 1));
        write_stats(&mut writer, &self.stats);
        self.globals.save(&mut writer);
        self.ids.save(&mut writer);
        self.customers.save(&mut writer, self.now);
        writer.len(self.free_slots.len());
        for (slot, token) in &self.free_slots {
            writer.u64((*slot).into());
            writer.u64((*token).into());
        }
        self.timers.save(&mut writer);
        let waiting = self.buffer.waiting();
        writer.len(waiting.len());
        for event in waiting {
            write_event(&mut writer, event);
        }

        let checksum = xxh3_64(&writer.bytes);
        writer.fixed(&checksum.to_le_bytes());
        *out = writer.bytes;
        Ok(())
    }

    /// An engine in exactly the state [`Engine::snapshot`] saw, for the same
    /// pipeline (and build): fed the same inputs from there, it makes the
    /// same decisions, byte for byte, as the engine that was saved.
    pub fn restore(pipeline: Pipeline, bytes: &[u8]) -> Result<Engine, SnapshotError> {
        let header = MAGIC.len() + 4;
        if bytes.len() < header + 8 || &bytes[..MAGIC.len()] != MAGIC {
            return Err(corrupt("not a kairos snapshot (no magic)"));
        }
        let (body, checksum) = bytes.split_at(bytes.len() - 8);
        let mut expected = [0; 8];
        expected.copy_from_slice(checksum);
        if xxh3_64(body) != u64::from_le_bytes(expected) {
            return Err(corrupt("checksum mismatch (cut short or damaged)"));
        }
        let mut version = [0; 4];
        version.copy_from_slice(&body[MAGIC.len()..header]);
        let version = u32::from_le_bytes(version);
        if version != FORMAT_VERSION {
            return Err(SnapshotError::Incompatible {
                reason: format!(
                    "snapshot format version {version}; this build reads version {FORMAT_VERSION}"
                ),
            });
        }
        let mut input = Reader {
            bytes: body,
            at: header,
        };
        let written_for = u64::from_le_bytes(input.fixed()?);
        let build = input.str()?;
        if build != BUILD {
            return Err(SnapshotError::Incompatible {
                reason: format!("written by kairos-engine {build}; this is {BUILD}"),
            });
        }
        if u64::from_le_bytes(input.fixed()?) != zones_fingerprint() {
            return Err(SnapshotError::Incompatible {
                reason: "written with another time-zone database (chrono-tz)".to_string(),
            });
        }
        let name = input.str()?;
        if written_for != fingerprint(&pipeline) {
            return Err(SnapshotError::Incompatible {
                reason: format!(
                    "written for pipeline {name:?} as configured then; pipeline {:?} as \
                     configured now differs (triggers, settings or policy changed)",
                    pipeline.name
                ),
            });
        }

        let mut engine = Engine::new(pipeline);
        engine.watermark = input.time()?;
        engine.newest_event = input.time()?;
        engine.now = input.time()?;
        engine.input_closed = input.bool()?;
        engine.ops_slot = match input.u64()? {
            0 => None,
            slot => Some(u32::try_from(slot - 1).map_err(|_| corrupt("ops slot"))?),
        };
        read_stats(&mut input, &mut engine.stats)?;
        engine.globals =
            crate::globals::Globals::load(&mut input, engine.plan.pipeline.triggers.len())?;
        engine.ids = crate::id_index::IdIndex::load(&mut input)?;
        engine.customers = crate::slots::Slots::load(&mut input)?;
        let slots = engine.customers.len();
        let in_range = |slot: u32| (slot as usize) < slots;
        if engine.ops_slot.is_some_and(|slot| !in_range(slot)) {
            return Err(corrupt("ops slot beyond the customers"));
        }
        let free = input.len(2)?;
        engine.free_slots = Vec::with_capacity(free);
        for _ in 0..free {
            let slot = input.u32()?;
            let token = input.u32()?;
            if !in_range(slot) {
                return Err(corrupt("free slot beyond the customers"));
            }
            engine.free_slots.push((slot, token));
        }
        engine.timers = crate::timers::TimerTable::load(&mut input)?;
        for _ in 0..input.len(1)? {
            let event = read_event(&mut input)?;
            let message_hash = event.message_hash();
            let customer = Lookahead::ACTIVE.then(|| engine.ids.key(event.customer_key()));
            engine.buffer.push(event, message_hash, customer);
        }
        if input.at != body.len() {
            return Err(corrupt("bytes left over after the state"));
        }
        Ok(engine)
    }
}

fn write_stats(out: &mut Writer, stats: &Stats) {
    for count in [
        stats.events,
        stats.duplicates,
        stats.late,
        stats.late_dropped,
        stats.erasures,
    ] {
        out.u64(count);
    }
    out.len(stats.triggers.len());
    for trigger in &stats.triggers {
        out.u64(trigger.fired);
        out.u64(trigger.sent);
        out.len(trigger.suppressed.len());
        for (reason, count) in &trigger.suppressed {
            let place = Suppression::ALL
                .iter()
                .position(|known| known.as_str() == *reason)
                // Every key is a Suppression's name: a break fails here,
                // when writing, not at the next restart.
                .expect("a suppression reason of Suppression::ALL");
            out.u64(place as u64);
            out.u64(*count);
        }
        out.len(trigger.variants.len());
        for variant in &trigger.variants {
            out.u64(variant.sent);
            out.u64(variant.conversions);
            out.u64(variant.revenue.to_bits());
            out.u64(variant.held_out);
            out.u64(variant.holdout_conversions);
            out.u64(variant.holdout_revenue.to_bits());
        }
    }
}

/// Reads counters into `stats`, which holds the pipeline's triggers.
fn read_stats(input: &mut Reader<'_>, stats: &mut Stats) -> Result<(), SnapshotError> {
    stats.events = input.u64()?;
    stats.duplicates = input.u64()?;
    stats.late = input.u64()?;
    stats.late_dropped = input.u64()?;
    stats.erasures = input.u64()?;
    if input.len(2)? != stats.triggers.len() {
        return Err(corrupt("counters for another number of triggers"));
    }
    for trigger in &mut stats.triggers {
        trigger.fired = input.u64()?;
        trigger.sent = input.u64()?;
        for _ in 0..input.len(2)? {
            let reason = usize::try_from(input.u64()?).unwrap_or(usize::MAX);
            let reason = Suppression::ALL
                .get(reason)
                .ok_or_else(|| corrupt("unknown suppression reason"))?;
            trigger.suppressed.insert(reason.as_str(), input.u64()?);
        }
        if input.len(6)? != trigger.variants.len() {
            return Err(corrupt("counters for another number of variants"));
        }
        for variant in &mut trigger.variants {
            variant.sent = input.u64()?;
            variant.conversions = input.u64()?;
            variant.revenue = f64::from_bits(input.u64()?);
            variant.held_out = input.u64()?;
            variant.holdout_conversions = input.u64()?;
            variant.holdout_revenue = f64::from_bits(input.u64()?);
        }
    }
    Ok(())
}

/// Writes an event, every field exactly (property values of every kind,
/// numbers in the kind they were read as).
fn write_event(out: &mut Writer, event: &Event) {
    out.u8(match event.event_type {
        EventType::Track => 0,
        EventType::Identify => 1,
        EventType::Page => 2,
        EventType::Screen => 3,
        EventType::Group => 4,
        EventType::Alias => 5,
    });
    out.str(&event.name);
    for id in [&event.user_id, &event.anonymous_id, &event.previous_id] {
        out.optional_str(id.as_deref());
    }
    out.str(&event.message_id);
    out.time(event.time);
    out.optional_str(event.timezone.as_deref());
    write_properties(out, &event.properties);
    write_properties(out, &event.traits);
}

fn read_event(input: &mut Reader<'_>) -> Result<Event, SnapshotError> {
    let event_type = match input.u8()? {
        0 => EventType::Track,
        1 => EventType::Identify,
        2 => EventType::Page,
        3 => EventType::Screen,
        4 => EventType::Group,
        5 => EventType::Alias,
        _ => return Err(corrupt("unknown event type")),
    };
    Ok(Event {
        event_type,
        name: input.compact_str()?,
        user_id: input.optional_str()?,
        anonymous_id: input.optional_str()?,
        previous_id: input.optional_str()?,
        message_id: input.compact_str()?,
        time: input.time()?,
        timezone: input.optional_str()?,
        properties: read_properties(input, 0)?,
        traits: read_properties(input, 0)?,
    })
}

/// In the order held: a long list is held sorted by name, and collecting
/// it again keeps that order.
fn write_properties(out: &mut Writer, properties: &Properties) {
    out.len(properties.len());
    for (name, value) in properties.iter() {
        out.str(name);
        write_value(out, value);
    }
}

fn read_properties(input: &mut Reader<'_>, depth: usize) -> Result<Properties, SnapshotError> {
    if depth > MAX_DEPTH {
        return Err(corrupt("property values nested too deep"));
    }
    let len = input.len(2)?;
    let mut entries = Vec::with_capacity(len);
    for _ in 0..len {
        let name = input.compact_str()?;
        entries.push((name, read_value(input, depth + 1)?));
    }
    Ok(entries.into_iter().collect())
}

fn write_value(out: &mut Writer, value: &PropertyValue) {
    match value {
        PropertyValue::Null => out.u8(0),
        PropertyValue::Bool(false) => out.u8(1),
        PropertyValue::Bool(true) => out.u8(2),
        PropertyValue::Number(number) => {
            if let Some(unsigned) = number.as_u64() {
                out.u8(3);
                out.u64(unsigned);
            } else if let Some(signed) = number.as_i64() {
                out.u8(4);
                out.i64(signed);
            } else {
                out.u8(5);
                out.fixed(&number.as_f64().unwrap_or(0.0).to_le_bytes());
            }
        }
        PropertyValue::String(text) => {
            out.u8(6);
            out.str(text);
        }
        PropertyValue::Array(items) => {
            out.u8(7);
            out.len(items.len());
            for item in items.iter() {
                write_value(out, item);
            }
        }
        PropertyValue::Object(members) => {
            out.u8(8);
            write_properties(out, members);
        }
    }
}

fn read_value(input: &mut Reader<'_>, depth: usize) -> Result<PropertyValue, SnapshotError> {
    if depth > MAX_DEPTH {
        return Err(corrupt("property values nested too deep"));
    }
    Ok(match input.u8()? {
        0 => PropertyValue::Null,
        1 => PropertyValue::Bool(false),
        2 => PropertyValue::Bool(true),
        3 => PropertyValue::Number(input.u64()?.into()),
        4 => PropertyValue::Number(input.i64()?.into()),
        5 => {
            let number = f64::from_le_bytes(input.fixed()?);
            PropertyValue::Number(
                Number::from_f64(number).ok_or_else(|| corrupt("a number that is not finite"))?,
            )
        }
        6 => PropertyValue::String(input.compact_str()?),
        7 => {
            let len = input.len(1)?;
            let mut items = Vec::with_capacity(len);
            for _ in 0..len {
                items.push(read_value(input, depth + 1)?);
            }
            PropertyValue::Array(items.into_boxed_slice())
        }
        8 => PropertyValue::Object(Box::new(read_properties(input, depth + 1)?)),
        _ => return Err(corrupt("unknown kind of property value")),
    })
}

/// Writes the snapshot format: integers as LEB128 varints (signed ones
/// zig-zagged), the rest as length-prefixed bytes.
pub(crate) struct Writer {
    bytes: Vec<u8>,
}

impl Writer {
    pub(crate) fn u8(&mut self, value: u8) {
        self.bytes.push(value);
    }

    pub(crate) fn bool(&mut self, value: bool) {
        self.u8(value.into());
    }

    pub(crate) fn u64(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.bytes.push(value as u8 | 0x80);
            value >>= 7;
        }
        self.bytes.push(value as u8);
    }

    pub(crate) fn i64(&mut self, value: i64) {
        self.u64(((value << 1) ^ (value >> 63)) as u64);
    }

    pub(crate) fn time(&mut self, time: Timestamp) {
        self.i64(time.0);
    }

    pub(crate) fn len(&mut self, len: usize) {
        self.u64(len as u64);
    }

    pub(crate) fn fixed(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }

    /// Bytes with their length before them.
    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        self.len(bytes.len());
        self.fixed(bytes);
    }

    pub(crate) fn str(&mut self, text: &str) {
        self.bytes(text.as_bytes());
    }

    fn optional_str(&mut self, text: Option<&str>) {
        match text {
            None => self.u8(0),
            Some(text) => {
                self.u8(1);
                self.str(text);
            }
        }
    }
}

/// Reads the snapshot format; every read checks the bytes left.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn u8(&mut self) -> Result<u8, SnapshotError> {
        let value = *self
            .bytes
            .get(self.at)
            .ok_or_else(|| corrupt("cut short"))?;
        self.at += 1;
        Ok(value)
    }

    pub(crate) fn bool(&mut self) -> Result<bool, SnapshotError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(corrupt("a flag that is neither 0 nor 1")),
        }
    }

    pub(crate) fn u64(&mut self) -> Result<u64, SnapshotError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                if shift == 63 && byte > 1 {
                    break;
                }
                return Ok(value);
            }
        }
        Err(corrupt("a number of more than 64 bits"))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, SnapshotError> {
        u32::try_from(self.u64()?).map_err(|_| corrupt("a number beyond 32 bits"))
    }

    pub(crate) fn u16(&mut self) -> Result<u16, SnapshotError> {
        u16::try_from(self.u64()?).map_err(|_| corrupt("a number beyond 16 bits"))
    }

    pub(crate) fn i64(&mut self) -> Result<i64, SnapshotError> {
        let raw = self.u64()?;
        Ok((raw >> 1) as i64 ^ -((raw & 1) as i64))
    }

    pub(crate) fn time(&mut self) -> Result<Timestamp, SnapshotError> {
        self.i64().map(Timestamp)
    }

    /// A count of items that take at least `least_bytes` each: one the
    /// bytes left cannot hold is refused before anything is allocated.
    pub(crate) fn len(&mut self, least_bytes: usize) -> Result<usize, SnapshotError> {
        let len = usize::try_from(self.u64()?).unwrap_or(usize::MAX);
        let left = self.bytes.len() - self.at;
        if len.saturating_mul(least_bytes.max(1)) > left {
            return Err(corrupt("a count beyond the bytes left"));
        }
        Ok(len)
    }

    pub(crate) fn fixed<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        let bytes = self
            .bytes
            .get(self.at..self.at + N)
            .ok_or_else(|| corrupt("cut short"))?;
        self.at += N;
        let mut fixed = [0; N];
        fixed.copy_from_slice(bytes);
        Ok(fixed)
    }

    /// Bytes written by [`Writer::bytes`].
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], SnapshotError> {
        let len = self.len(1)?;
        let bytes = &self.bytes[self.at..self.at + len];
        self.at += len;
        Ok(bytes)
    }

    pub(crate) fn str(&mut self) -> Result<&'a str, SnapshotError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| corrupt("text that is not UTF-8"))
    }

    fn compact_str(&mut self) -> Result<CompactString, SnapshotError> {
        self.str().map(CompactString::from)
    }

    fn optional_str(&mut self) -> Result<Option<CompactString>, SnapshotError> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.compact_str().map(Some),
            _ => Err(corrupt(
                "an optional text that is neither absent nor present",
            )),
        }
    }
}
