//! Counters the engine keeps about itself: what came in, what was rejected or
//! late, and per trigger what fired, was sent and was suppressed (by reason).

use crate::decision::Suppression;
use std::collections::BTreeMap;

/// Engine-wide counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Events handed to the engine.
    pub events: u64,
    /// Events skipped as duplicates (same `messageId` within the look-back).
    pub duplicates: u64,
    /// Events that arrived behind the watermark.
    pub late: u64,
    /// Late events discarded (`late_events = "drop"`).
    pub late_dropped: u64,
    /// Customers erased.
    pub erasures: u64,
    /// Per trigger, in pipeline order.
    pub triggers: Vec<TriggerStats>,
}

/// Idle customers' packing (see `settings.pack_idle_after`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Packing {
    /// Customers packed now.
    pub cold_now: usize,
    /// Their packed bytes (held in their slots, or in blocks of their own
    /// beyond 110 bytes).
    pub cold_bytes: usize,
    /// Times a customer was packed.
    pub packed: u64,
    /// Times a customer was unpacked (an event or timer for them).
    pub unpacked: u64,
}

/// Per-trigger counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TriggerStats {
    /// Trigger id.
    pub id: String,
    /// Times the pattern matched (a ladder's later steps are not counted).
    pub fired: u64,
    /// Actions sent (every step).
    pub sent: u64,
    /// Decisions suppressed, by reason.
    pub suppressed: BTreeMap<&'static str, u64>,
}

impl TriggerStats {
    pub(crate) fn record(&mut self, step: u32, suppressed: Option<Suppression>) {
        if step == 1 {
            self.fired += 1;
        }
        match suppressed {
            None => self.sent += 1,
            Some(reason) => *self.suppressed.entry(reason.as_str()).or_default() += 1,
        }
    }
}
