//! Replacing a running engine's pipeline between two inputs, keeping what
//! customers have done so far for the triggers that stay.
//!
//! Triggers are matched by id. For each trigger of the new pipeline:
//!
//! - **kept** (same id, same `key` and pattern): its states stay, with
//!   their windows, counts and pending steps. Pending steps move to the new
//!   offsets: a step is due at its anchor (the cart's last add, say) plus
//!   the new offset, so a new `after` applies to the carts already waiting
//!   too; a step whose new deadline has passed fires at once, stamped with
//!   that deadline, as a late event's step does. A ladder whose next step
//!   the new pipeline no longer has ends. Variants are matched by name (a
//!   customer whose variant is gone gets none). Channels, offers,
//!   priorities, cooldowns, payloads and policy apply to every decision
//!   made after the switch.
//! - **reset** (same id, but its `key` or pattern changed — its events, its
//!   window, its threshold): its states are dropped with their timers, as
//!   if it were new. An in-flight window of a count whose window length
//!   changed is not stretched or cut: it is gone, and counting starts
//!   again at the next matching event.
//! - **added**: starts with no state.
//!
//! A trigger of the old pipeline that is no longer there (**removed**)
//! has its states, timers and waiting deferred decisions dropped. Its sent
//! actions still count against the customer's caps (they were sent), but
//! no longer for any cooldown; conversions are no longer attributed to it.
//!
//! Channels are numbered per pipeline (those needing consent first): a
//! customer's consent and sends are renumbered, so a grant for a channel
//! keeps meaning that channel (consent for a channel the old pipeline did
//! not use was never kept). A customer's recent decisions and last touch
//! of a removed trigger or variant are dropped rather than credited to
//! another.
//!
//! Counters (fired, sent, suppressed, attribution) carry over for triggers
//! whose id stays, variant by variant by name. Idle customers are unpacked
//! to be updated, and packed again by the usual sweep (a quarter of
//! `settings.pack_idle_after` later): memory grows for that long.
//!
//! The switch is deterministic: the same inputs with the switch at the same
//! place give the same decisions, which is what lets a service replay a
//! stream with switches in it (see `kairos-nats`).

use crate::config::{Pipeline, Trigger};
use crate::customer::{Customer, Ladder, Lag};
use crate::engine::Engine;
use crate::globals::Globals;
use crate::matching::resolve_offset;
use crate::patterns::{discard_state, end_ladder};
use crate::plan::Plan;
use crate::stats::{Stats, TriggerStats, VariantStats};
use crate::timers::{TimerEntry, TimerPurpose, TimerTable};
use kairos_model::Timestamp;
use std::collections::HashMap;

/// What a replacement did, trigger by trigger (ids).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reloaded {
    /// Same id, key and pattern: state kept.
    pub kept: Vec<String>,
    /// Same id, another key or pattern: state dropped.
    pub reset: Vec<String>,
    /// New ids.
    pub added: Vec<String>,
    /// Ids no longer in the pipeline.
    pub removed: Vec<String>,
}

/// The trigger index `u16::MAX` stands for a trigger that was removed (in
/// sent records, which still count against caps).
const REMOVED: u16 = u16::MAX;

/// Where each old trigger index goes.
struct Remap {
    /// The new index of the trigger with the same id, if any.
    by_id: Vec<Option<u16>>,
    /// The same, only where the state carries over (kept triggers).
    state: Vec<Option<u16>>,
}

impl Remap {
    fn new(old: &Pipeline, new: &Pipeline) -> (Remap, Reloaded) {
        let positions: HashMap<&str, u16> = new
            .triggers
            .iter()
            .enumerate()
            .map(|(index, trigger)| (&*trigger.id, index as u16))
            .collect();
        let mut reloaded = Reloaded::default();
        let mut remap = Remap {
            by_id: Vec::with_capacity(old.triggers.len()),
            state: Vec::with_capacity(old.triggers.len()),
        };
        for trigger in &old.triggers {
            let to = positions.get(&*trigger.id).copied();
            let compatible = to.filter(|&to| same_state(trigger, &new.triggers[usize::from(to)]));
            match (to, compatible) {
                (None, _) => reloaded.removed.push(trigger.id.to_string()),
                (Some(_), None) => reloaded.reset.push(trigger.id.to_string()),
                (Some(_), Some(_)) => reloaded.kept.push(trigger.id.to_string()),
            }
            remap.by_id.push(to);
            remap.state.push(compatible);
        }
        let old_ids: Vec<&str> = old.triggers.iter().map(|trigger| &*trigger.id).collect();
        reloaded.added = new
            .triggers
            .iter()
            .filter(|trigger| !old_ids.contains(&&*trigger.id))
            .map(|trigger| trigger.id.to_string())
            .collect();
        (remap, reloaded)
    }

    fn by_id(&self, old: u16) -> Option<u16> {
        self.by_id.get(usize::from(old)).copied().flatten()
    }

    fn state(&self, old: u16) -> Option<u16> {
        self.state.get(usize::from(old)).copied().flatten()
    }
}

/// Whether a trigger's states mean the same under `new`: the same key and
/// the same pattern (everything else is read when deciding, not kept).
fn same_state(old: &Trigger, new: &Trigger) -> bool {
    old.key == new.key && old.pattern == new.pattern
}

/// The new place of variant `old` (`u8::MAX`: none) of `from` in `to`, by
/// name.
fn variant_in(from: &Trigger, to: &Trigger, old: u8) -> u8 {
    let Some(variant) = from.variants.get(usize::from(old)) else {
        return u8::MAX;
    };
    to.variants
        .iter()
        .position(|known| known.name == variant.name)
        .map_or(u8::MAX, |position| position as u8)
}

impl Engine {
    /// Switches to `pipeline` (validated) now, between two inputs, keeping
    /// the state of the triggers that stay (see the module docs). Events
    /// still waiting in the reorder buffer are applied under the new
    /// pipeline.
    pub fn replace_pipeline(&mut self, pipeline: Pipeline) -> Reloaded {
        let (remap, reloaded) = Remap::new(&self.plan.pipeline, &pipeline);
        let new_plan = Plan::new(pipeline);
        let channels = ChannelMap::new(&self.plan.channels, &new_plan.channels);
        let old_plan = std::mem::replace(&mut self.plan, new_plan);
        let triggers = (
            &old_plan.pipeline.triggers[..],
            &self.plan.pipeline.triggers[..],
        );
        let mut ended = Vec::new();
        for slot in 0..self.customers.len() as u32 {
            let Some(customer) = self.customers.get_mut(slot) else {
                continue;
            };
            let timers = &mut self.timers;
            let globals = &mut self.globals;
            for (token, anchor) in
                remap_customer(customer, timers, globals, slot, &remap, &channels, triggers)
            {
                ended.push((slot, token, anchor));
            }
        }
        // As when a last step comes: a recurring schedule is armed for its
        // next occurrence, an empty state goes.
        for (slot, token, anchor) in ended {
            if let Some(mut ctx) = self.ctx(slot) {
                if let Some(index) = ctx.find_token(token) {
                    end_ladder(&mut ctx, index, anchor);
                }
            }
        }
        self.remap_globals(&remap, self.plan.pipeline.triggers.len());
        self.stats = carried_stats(&self.stats, &self.plan.pipeline);
        reloaded
    }

    /// Rate and rank memories follow their triggers where the state is
    /// kept.
    fn remap_globals(&mut self, remap: &Remap, triggers: usize) {
        let mut rates: Vec<_> = (0..triggers).map(|_| None).collect();
        let mut ranks: Vec<_> = (0..triggers).map(|_| None).collect();
        let old_rates = std::mem::take(&mut self.globals.rates);
        let old_ranks = std::mem::take(&mut self.globals.ranks);
        for (old, memory) in old_rates.into_iter().enumerate() {
            if let Some(to) = remap.state(old as u16) {
                rates[usize::from(to)] = memory;
            }
        }
        for (old, memory) in old_ranks.into_iter().enumerate() {
            if let Some(to) = remap.state(old as u16) {
                ranks[usize::from(to)] = memory;
            }
        }
        self.globals.rates = rates;
        self.globals.ranks = ranks;
    }
}

/// Moves a pending step to its anchor plus the offset `trigger` now
/// gives it (left alone when the offset is not a fixed or
/// property-derived one, such as a cadence).
fn reschedule(
    timers: &mut TimerTable,
    slot: u32,
    token: u32,
    ladder: &mut Ladder,
    trigger: &Trigger,
) {
    let step = usize::from(ladder.next_step);
    let variant = trigger.variants.get(usize::from(ladder.variant));
    let offset = match (step, variant.and_then(|variant| variant.first_step_at)) {
        (0, Some(first)) => Some(first),
        _ => resolve_offset(&trigger.steps[step].at, &ladder.properties),
    };
    let Some(due) = offset.map(|offset| ladder.anchor + offset) else {
        return;
    };
    if due == ladder.due {
        return;
    }
    let timer = |due| TimerEntry {
        due,
        customer: slot,
        token,
        purpose: TimerPurpose::Ladder,
    };
    timers.remove(&timer(ladder.timer_at()));
    ladder.due = due;
    ladder.timer_lag = Lag::ZERO;
    timers.insert(timer(due));
}

/// Moves one customer's state to the new pipeline (see the module docs):
/// returns the (token, anchor) of each ladder that ended because its next
/// step is gone, for [`end_ladder`].
fn remap_customer(
    customer: &mut Customer,
    timers: &mut TimerTable,
    globals: &mut Globals,
    slot: u32,
    remap: &Remap,
    channels: &ChannelMap,
    (old, new): (&[Trigger], &[Trigger]),
) -> Vec<(u32, Timestamp)> {
    let mut ended = Vec::new();
    let states = std::mem::take(&mut customer.states);
    for mut state in states {
        let Some(to) = remap.state(state.trigger) else {
            discard_state(timers, globals, slot, state);
            continue;
        };
        let (from, into) = (&old[usize::from(state.trigger)], &new[usize::from(to)]);
        if let Some(ladder) = &mut state.ladder {
            if usize::from(ladder.next_step) >= into.steps.len() {
                // The step it waits for is gone: the ladder ends.
                timers.remove(&TimerEntry {
                    due: ladder.timer_at(),
                    customer: slot,
                    token: state.token,
                    purpose: TimerPurpose::Ladder,
                });
                ended.push((state.token, ladder.anchor));
                state.ladder = None;
            } else {
                ladder.variant = variant_in(from, into, ladder.variant);
                reschedule(timers, slot, state.token, ladder, into);
            }
        }
        state.trigger = to;
        customer.states.push(state);
    }
    // States are kept in trigger order (lookups rely on it), and the new
    // pipeline may order its triggers differently.
    customer.states.sort_by_key(|state| state.trigger);
    let profile = &mut customer.profile;
    profile.consent = channels.consent_bits(profile.consent);
    profile.consent_stated = channels.consent_bits(profile.consent_stated);
    let Some(occasional) = customer.occasional_if_any() else {
        return ended;
    };
    for sent in &mut occasional.sent {
        sent.trigger = remap.by_id(sent.trigger).unwrap_or(REMOVED);
        sent.channel = channels.channel(sent.channel);
    }
    occasional
        .deferred
        .retain_mut(|deferred| match remap.by_id(deferred.trigger) {
            Some(to) => {
                deferred.trigger = to;
                true
            }
            None => {
                timers.remove(&TimerEntry {
                    due: deferred.due,
                    customer: slot,
                    token: deferred.token,
                    purpose: TimerPurpose::Deferred,
                });
                false
            }
        });
    // A decision or touch of a removed trigger or variant is dropped: it
    // would be credited to another.
    occasional.decisions.retain_mut(|record| {
        let to = remap.by_id(record.trigger);
        let variant =
            to.and_then(|to| variant_by_name(old, new, record.trigger, to, record.variant));
        let (Some(to), Some(variant)) = (to, variant) else {
            return false;
        };
        (record.trigger, record.variant) = (to, variant);
        true
    });
    occasional.last_touch = occasional.last_touch.and_then(|mut touch| {
        let to = remap.by_id(touch.trigger)?;
        touch.variant = variant_by_name(old, new, touch.trigger, to, touch.variant)?;
        touch.trigger = to;
        Some(touch)
    });
    ended
}

/// Where each old channel number goes: channels are numbered per pipeline
/// (those needing consent first), and customers' consent bits and sent
/// records hold numbers.
struct ChannelMap {
    /// Old number → new number (a channel the new pipeline does not use:
    /// the number unknown channels get).
    to: Vec<u8>,
}

impl ChannelMap {
    fn new(old: &[String], new: &[String]) -> ChannelMap {
        let unknown = new.len().min(31) as u8;
        let to = old
            .iter()
            .map(|name| {
                new.iter()
                    .position(|known| known == name)
                    .map_or(unknown, |position| position.min(31) as u8)
            })
            .collect();
        ChannelMap { to }
    }

    /// The new number of old channel `old` (unknown ones keep the place
    /// unknown channels share).
    fn channel(&self, old: u8) -> u8 {
        self.to
            .get(usize::from(old))
            .copied()
            .unwrap_or_else(|| self.to.len().min(31) as u8)
    }

    /// Consent bits renumbered: a grant for a channel keeps meaning that
    /// channel (one the new pipeline does not use is dropped).
    fn consent_bits(&self, old: u16) -> u16 {
        (0..16u8)
            .filter(|&bit| old & (1 << bit) != 0)
            .fold(0, |bits, bit| bits | Plan::consent_bit(self.channel(bit)))
    }
}

/// An attribution variant index (the place among `variant_names`: 0 is
/// `control` without variants) of trigger `from` in the old pipeline, in
/// trigger `to` of the new one, by name (`None` when gone).
fn variant_by_name(
    old: &[Trigger],
    new: &[Trigger],
    from: u16,
    to: u16,
    variant: u8,
) -> Option<u8> {
    let (from, to) = (&old[usize::from(from)], &new[usize::from(to)]);
    let name = from.variant_names().nth(usize::from(variant))?;
    to.variant_names()
        .position(|known| known == name)
        .map(|position| position as u8)
}

/// Counters for `pipeline`, carried over from `old` by trigger id and
/// variant name.
fn carried_stats(old: &Stats, pipeline: &Pipeline) -> Stats {
    let by_id: HashMap<&str, &TriggerStats> = old
        .triggers
        .iter()
        .map(|trigger| (trigger.id.as_str(), trigger))
        .collect();
    let triggers = pipeline
        .triggers
        .iter()
        .map(|trigger| {
            let before = by_id.get(&*trigger.id);
            let variants = trigger
                .variant_names()
                .map(|name| {
                    before
                        .and_then(|before| before.variants.iter().find(|v| v.name == name))
                        .cloned()
                        .unwrap_or_else(|| VariantStats {
                            name: name.to_string(),
                            ..VariantStats::default()
                        })
                })
                .collect();
            TriggerStats {
                id: trigger.id.to_string(),
                fired: before.map_or(0, |before| before.fired),
                sent: before.map_or(0, |before| before.sent),
                suppressed: before
                    .map_or_else(Default::default, |before| before.suppressed.clone()),
                variants,
            }
        })
        .collect();
    Stats {
        triggers,
        ..old.clone()
    }
}
