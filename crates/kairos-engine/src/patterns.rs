//! The pattern kinds: how each reacts to an event and to its timers.
//!
//! Every match goes through a *ladder* (see `config`): step 1 is due at
//! `anchor + at`. Even immediate matches (`at = 0s`) are timers due at the
//! event's time, so they fire only after every event with an event time
//! ≤ that instant has been applied — the tie rule that makes an order at
//! exactly add + 30 min cancel the reminder.

use crate::config::{
    Bound, CountFire, KeySpec, Offset, Pattern, Period, ScheduleSource, Trigger, Window,
};
use crate::customer::{
    CountGroup, CountMemory, Customer, KeyedState, Ladder, Lag, MaybeTime, MeasureMemory,
    MeasureMut, Memory, MessageId, PeriodMemory, Properties, Reasons, MEASURE_BUCKETS,
};
use crate::decision::Decision;
use crate::globals::{Globals, RankBucket, RankHistogram};
use crate::growth::reserve_one;
use crate::local_time::{next_yearly, period_of, utc_offset_ms};
use crate::matching::{
    event_keys, matches, matches_any, resolve_offset, EventKeys, DEFAULT_ENTITY,
};
use crate::plan::Plan;
use crate::policy::{zone_of, Candidate};
use crate::taste::ItemVectors;
use crate::timers::{TimerEntry, TimerPurpose, TimerTable};
use compact_str::CompactString;
use kairos_model::ids::stable_hash;
use kairos_model::{CartItem, Event, Payload, PayloadValue, PropertyValue, Span, Timestamp};
use serde_json::{json, Value};
use smallvec::{smallvec, SmallVec};
use std::cell::{Cell, OnceCell};
use std::ops::Range;
use thin_vec::ThinVec;
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// How many causing message ids a ladder or window remembers.
const MAX_REASON_EVENTS: usize = 8;
/// How many activity times a cadence remembers.
const MAX_HISTORY: usize = 12;

/// Everything a pattern may touch while handling one customer.
pub struct Ctx<'a> {
    /// The compiled pipeline.
    pub plan: &'a Plan,
    /// The timer table.
    pub timers: &'a mut TimerTable,
    /// Global state.
    pub globals: &'a mut Globals,
    /// The customer.
    pub customer: &'a mut Customer,
    /// Its slot.
    pub cid: u32,
    /// Processing time (never goes backwards).
    pub now: Timestamp,
    /// The catalog's item vectors (for taste vectors).
    pub items: &'a ItemVectors,
    /// Recurring schedules are not re-armed beyond this (see the engine's
    /// `RECURRENCE_HORIZON`).
    pub horizon: Timestamp,
    /// Where the last search found a trigger's states to begin (0 to
    /// start with): a hint, checked before use (see
    /// [`Ctx::trigger_start`]).
    pub states_from: Cell<usize>,
}

impl Ctx<'_> {
    /// Where `trigger`'s states are: states are kept sorted by trigger, so a
    /// heavy customer's hundreds of keyed states (orders, products, carts)
    /// are not all scanned for every trigger an event reaches.
    fn trigger_range(&self, trigger: u16) -> Range<usize> {
        let states = &self.customer.states;
        let start = self.trigger_start(trigger);
        // A trigger has one state per key, and most are keyed by the
        // customer: counting beats a second binary search.
        let length = states[start..]
            .iter()
            .take_while(|state| state.trigger == trigger)
            .count();
        start..start + length
    }

    /// Where `trigger`'s states begin (or would). An event's triggers are
    /// handled in ascending order, so the next one's states usually begin
    /// a few states after where the last search ended ([`Self::states_from`]):
    /// a short walk from there finds them, where a binary search of a busy
    /// customer's states took some 45 instructions for each trigger.
    #[inline]
    fn trigger_start(&self, trigger: u16) -> usize {
        /// States walked before the rest is searched.
        const WALK: usize = 4;
        let states = &self.customer.states;
        // The first trigger's states (a single-trigger pipeline's) begin
        // at the start, as do all when there are none.
        if states.first().is_none_or(|first| first.trigger >= trigger) {
            return 0;
        }
        let hint = self.states_from.get();
        // States are sorted by trigger: when the one before the hint is of
        // an earlier trigger, so are all before it, whatever has been
        // inserted or removed since the hint was taken.
        let mut start = match hint.checked_sub(1).map(|before| states.get(before)) {
            Some(Some(before)) if before.trigger < trigger => hint,
            _ => 0,
        };
        let walked = (start + WALK).min(states.len());
        while start < walked && states[start].trigger < trigger {
            start += 1;
        }
        if start == walked && start < states.len() {
            start = search_states(states, start, trigger);
        }
        self.states_from.set(start);
        start
    }

    /// Inlined: the call cost a fifth of a lookup, and `dormant_wakeup`
    /// looks up its state on every event.
    #[inline(always)]
    fn find(&self, trigger: u16, entity: Option<&str>) -> Option<usize> {
        self.locate(trigger, entity).ok()
    }

    /// Where the state of `trigger` for `entity` is, or else where
    /// `trigger`'s states are (see [`Self::trigger_range`]): one pass over
    /// them, which stops at the state sought.
    #[inline(always)]
    fn locate(&self, trigger: u16, entity: Option<&str>) -> Result<usize, Range<usize>> {
        let states = &self.customer.states;
        let start = self.trigger_start(trigger);
        let mut end = start;
        for state in &states[start..] {
            if state.trigger != trigger {
                break;
            }
            if state.is_for(entity) {
                return Ok(end);
            }
            end += 1;
        }
        Err(start..end)
    }

    pub(crate) fn find_token(&self, token: u32) -> Option<usize> {
        self.customer
            .states
            .iter()
            .position(|state| state.token == token)
    }

    fn find_or_insert(
        &mut self,
        trigger: u16,
        entity: Option<&str>,
        memory: impl FnOnce() -> Memory,
    ) -> usize {
        let mut range = match self.locate(trigger, entity) {
            Ok(index) => return index,
            Err(range) => range,
        };
        if entity.is_some() {
            // The new key makes one more: the oldest makes room.
            let limit = self.plan.pipeline.settings.max_keys_per_trigger.max(1);
            if let Some(oldest) = oldest_key_beyond(&self.customer.states, range.clone(), limit - 1)
            {
                self.remove_state(oldest);
                range.end -= 1;
            }
        }
        let token = self.customer.token();
        // Exact growth: states are created rarely and read on every event,
        // and doubling a vector of a million customers' states costs more
        // memory than the occasional copy costs time.
        self.customer.states.reserve_exact(1);
        self.customer
            .states
            .insert(range.end, KeyedState::new(trigger, token, entity, memory()));
        range.end
    }

    /// Drops a keyed state and everything hanging off it.
    pub fn remove_state(&mut self, index: usize) {
        let state = self.customer.states.remove(index);
        discard_state(self.timers, self.globals, self.cid, state);
    }

    /// Moves state `token`'s window-close timer from `placed` (if any) to `to`.
    fn move_window_close(&mut self, token: u32, placed: Option<Timestamp>, to: Timestamp) {
        if let Some(placed) = placed {
            let old = self.timer(placed, token, TimerPurpose::WindowClose);
            self.timers.remove(&old);
        }
        let new = self.timer(to, token, TimerPurpose::WindowClose);
        self.timers.insert(new);
    }

    fn timer(&self, due: Timestamp, token: u32, purpose: TimerPurpose) -> TimerEntry {
        TimerEntry {
            due,
            customer: self.cid,
            token,
            purpose,
        }
    }

    /// Starts (or restarts) the ladder of a state at `anchor`.
    fn start_ladder(
        &mut self,
        index: usize,
        anchor: Timestamp,
        first_at: Span,
        events: &[MessageId],
        properties: Properties,
    ) {
        // Looked up once (the customer's key is a separate field).
        let state = &mut self.customer.states[index];
        let token = state.token;
        let trigger = self.plan.trigger(state.trigger);
        let variant = pick_variant(self.plan, trigger, &self.customer.key);
        let first_at = trigger
            .variants
            .get(usize::from(variant))
            .and_then(|v| v.first_step_at)
            .unwrap_or(first_at);
        let due = (anchor + first_at).max(self.now);
        // An abandoned cart's reason lists every add since the cart was
        // started; other patterns name only what caused this match.
        let accumulate = matches!(trigger.pattern, Pattern::Absence { .. });
        // A new journey (or step 1 of this one again): not held back.
        state.held_back = false;
        // Only later (and not so much later that the lag overflows): leave
        // the timer where it is and move it when it fires (cheap restarts for
        // busy carts and activity streams).
        let kept_lag = state
            .ladder
            .as_ref()
            .filter(|ladder| ladder.next_step == 0)
            .and_then(|ladder| Lag::new(due - ladder.timer_at()));
        match (&mut state.ladder, kept_lag) {
            (Some(ladder), Some(lag)) => {
                ladder.timer_lag = lag;
                ladder.anchor = anchor;
                ladder.due = due;
                ladder.variant = variant;
                if accumulate {
                    ladder.events.append(events, MAX_REASON_EVENTS);
                } else {
                    ladder.events.replace(events);
                }
                ladder.properties = properties;
            }
            (existing, _) => {
                let mut kept_events = Reasons::None;
                if let Some(old) = existing.take() {
                    self.timers.remove(&TimerEntry {
                        due: old.timer_at(),
                        customer: self.cid,
                        token,
                        purpose: TimerPurpose::Ladder,
                    });
                    if old.next_step == 0 && accumulate {
                        kept_events = old.events;
                    }
                }
                kept_events.append(events, MAX_REASON_EVENTS);
                *existing = Some(Box::new(Ladder {
                    anchor,
                    next_step: 0,
                    due,
                    timer_lag: Lag::ZERO,
                    variant,
                    events: kept_events,
                    properties,
                }));
                self.timers.insert(TimerEntry {
                    due,
                    customer: self.cid,
                    token,
                    purpose: TimerPurpose::Ladder,
                });
            }
        }
    }

    /// The common restart of a fixed wait (an activity event for an
    /// inactivity trigger keyed by the customer) done in place: what
    /// [`Self::wait_anchor`], [`Self::stale_restart`] and
    /// [`Self::start_ladder`] come to when the ladder is pending at step 1,
    /// the trigger has no variants and keeps no properties, and the new
    /// deadline is no earlier than its timer. Returns false, having changed
    /// nothing, in every other case, which the general path handles. (Most
    /// events restart `dormant_wakeup`'s wait: the general path cost some
    /// 150 instructions each time, this some 45, besides making the
    /// message id both keep.)
    fn restart_pending_wait(
        &mut self,
        index: usize,
        trigger_index: u16,
        time: Timestamp,
        first_at: Span,
        message: &EventMessage<'_>,
    ) -> bool {
        let plan = self.plan;
        if !plan.trigger(trigger_index).variants.is_empty()
            || !plan.kept_property_names(trigger_index).is_empty()
        {
            return false;
        }
        let now = self.now;
        let state = &mut self.customer.states[index];
        let Some(ladder) = state.ladder.as_deref_mut() else {
            return false;
        };
        if ladder.next_step != 0 || !ladder.properties.is_empty() {
            return false;
        }
        // A late event does not pull the wait back (`wait_anchor`); at
        // step 1 a restart at the same anchor is not stale.
        let anchor = ladder.anchor.max(time);
        let due = (anchor + first_at).max(now);
        // The timer stays where it is (see `start_ladder`).
        let Some(lag) = Lag::new(due - ladder.timer_at()) else {
            return false;
        };
        state.held_back = false;
        ladder.timer_lag = lag;
        ladder.anchor = anchor;
        ladder.due = due;
        ladder.variant = u8::MAX;
        // Straight from the event's id: not kept on its own and then copied.
        ladder.events.replace_with_event_id(message.text);
        true
    }

    /// Where a restarted fixed wait counts from: the event's time, or the
    /// ladder's anchor if that is later (a late event does not pull it back).
    fn wait_anchor(&self, index: usize, time: Timestamp) -> Timestamp {
        self.customer.states[index]
            .ladder
            .as_ref()
            .map_or(time, |ladder| ladder.anchor.max(time))
    }

    /// Whether restarting the ladder of state `index` at `anchor` would
    /// move it back or repeat steps already due: a late event older than
    /// the ladder's anchor (or as old, once a step went out) changes nothing.
    fn stale_restart(&self, index: usize, anchor: Timestamp) -> bool {
        self.customer.states[index]
            .ladder
            .as_ref()
            .is_some_and(|ladder| {
                anchor < ladder.anchor || (anchor == ladder.anchor && ladder.next_step > 0)
            })
    }

    /// Whether a cancel event reaches the pending ladder of state `index`.
    /// A recurring schedule always has its next occurrence pending: a
    /// cancel reaches the occurrence under way (a birthday whose first
    /// step went out, the period now running), not one to come, which a
    /// cancel of the one before armed.
    fn cancellable(&self, index: usize) -> bool {
        let state = &self.customer.states[index];
        let Some(ladder) = state.ladder.as_ref() else {
            return false;
        };
        match &self.plan.trigger(state.trigger).pattern {
            Pattern::Schedule {
                source: ScheduleSource::YearlyTrait { .. },
            } => ladder.next_step > 0,
            Pattern::Schedule {
                source: ScheduleSource::PeriodEnd { period, .. },
            } => {
                let zone = zone_of(self.plan, self.customer);
                ladder.next_step > 0
                    || ladder.anchor <= self.now
                    || period_of(self.now, *period, zone).map(|(_, end)| end) == Some(ladder.anchor)
            }
            _ => true,
        }
    }

    /// Cancels the pending ladder (and deferred decisions) of a state.
    fn cancel_ladder(&mut self, index: usize) {
        let token = self.customer.states[index].token;
        let trigger = self.customer.states[index].trigger;
        let mut cancelled_anchor = None;
        if let Some(ladder) = self.customer.states[index].ladder.take() {
            self.timers
                .remove(&self.timer(ladder.timer_at(), token, TimerPurpose::Ladder));
            cancelled_anchor = Some(ladder.anchor);
        }
        let entity: Option<CompactString> =
            self.customer.states[index].entity_key().map(Into::into);
        let timers = &mut *self.timers;
        let cid = self.cid;
        if let Some(occasional) = self.customer.occasional_if_any() {
            occasional.deferred.retain(|deferred| {
                let cancel = deferred.trigger == trigger && deferred.entity == entity;
                if cancel {
                    timers.remove(&TimerEntry {
                        due: deferred.due,
                        customer: cid,
                        token: deferred.token,
                        purpose: TimerPurpose::Deferred,
                    });
                }
                !cancel
            });
        }
        let state = &self.customer.states[index];
        if matches!(state.memory(), Memory::None) {
            self.remove_state(index);
            return;
        }
        // A recurring schedule goes on with its next occurrence: a
        // cancelled birthday or period end is this one's, not every one's.
        if let Some(anchor) = cancelled_anchor {
            rearm_recurring(self, index, trigger, anchor);
        }
    }

    /// Cancels ladders of `trigger` for the keys an event addresses (all of
    /// the customer's keys when the event lacks the key property).
    fn cancel_for_keys(&mut self, trigger: u16, keys: &EventKeys) {
        // A decision held for quiet hours is pending too, and outlives its
        // ladder when it came from the last step: cancelled with the ladder.
        let timers = &mut *self.timers;
        let cid = self.cid;
        if let Some(occasional) = self.customer.occasional_if_any() {
            occasional.deferred.retain(|deferred| {
                let addressed = deferred.trigger == trigger
                    && match keys {
                        EventKeys::Customer | EventKeys::Missing => true,
                        EventKeys::Entities(list) => deferred
                            .entity
                            .as_deref()
                            .is_some_and(|entity| list.iter().any(|k| k == entity)),
                    };
                if addressed {
                    timers.remove(&TimerEntry {
                        due: deferred.due,
                        customer: cid,
                        token: deferred.token,
                        purpose: TimerPurpose::Deferred,
                    });
                }
                !addressed
            });
        }
        // Backwards: cancelling may remove the state at `index`.
        for index in self.trigger_range(trigger).rev() {
            let state = &self.customer.states[index];
            if state.ladder.is_none() || !self.cancellable(index) {
                continue;
            }
            let addressed = match keys {
                EventKeys::Customer | EventKeys::Missing => true,
                EventKeys::Entities(list) => state
                    .entity_key()
                    .is_some_and(|entity| list.iter().any(|k| k == entity)),
            };
            if addressed {
                self.cancel_ladder(index);
            }
        }
    }
}

/// Where `trigger`'s states begin in `states`, searched from `from`, before
/// which all are of earlier triggers (see [`Ctx::trigger_start`]).
#[inline(never)]
fn search_states(states: &[KeyedState], from: usize, trigger: u16) -> usize {
    from + states[from..].partition_point(|state| state.trigger < trigger)
}

/// The oldest keyed state (smallest token) among `range` (one trigger's
/// states) when it holds more than `keep` keys (`max_keys_per_trigger`). A
/// customer's own state (a count's memory beside its groups' journeys) is
/// not a key, and never goes.
pub fn oldest_key_beyond(states: &[KeyedState], range: Range<usize>, keep: usize) -> Option<usize> {
    // Few states, fewer keys: told without looking at them.
    if range.len() <= keep {
        return None;
    }
    let keyed = range.filter(|&index| states[index].entity_key().is_some());
    if keyed.clone().count() <= keep {
        return None;
    }
    keyed.min_by_key(|&index| states[index].token)
}

/// Two ids of one person both wait on a journey of one trigger and key
/// (`theirs` is about to go): a journey that each event restarts (a cart
/// reminder, a wait for inactivity) runs from the person's latest event,
/// whichever id it came on, so a later start of theirs moves into `mine`,
/// with the causing events of both. Anything else stays as `mine` has it.
pub fn merge_journey(
    plan: &Plan,
    timers: &mut TimerTable,
    (from, theirs): (u32, &mut KeyedState),
    (into, mine): (u32, &mut KeyedState),
) {
    let restarts = match &plan.trigger(mine.trigger).pattern {
        Pattern::Absence { restart, .. } => *restart,
        Pattern::Inactivity { .. } => true,
        _ => false,
    };
    // Their journey restarts mine when it started later and has sent
    // nothing yet, whether mine is waiting, has sent steps (a later start
    // begins again at step 1) or is over.
    let later = theirs.ladder.as_ref().is_some_and(|their_ladder| {
        their_ladder.next_step == 0
            && mine
                .ladder
                .as_ref()
                .is_none_or(|my_ladder| their_ladder.anchor > my_ladder.anchor)
    });
    if !restarts || !later {
        return;
    }
    let Some(mut moved) = theirs.ladder.take() else {
        return;
    };
    let ladder_timer = |due, customer, token| TimerEntry {
        due,
        customer,
        token,
        purpose: TimerPurpose::Ladder,
    };
    timers.remove(&ladder_timer(moved.timer_at(), from, theirs.token));
    if let Some(replaced) = mine.ladder.take() {
        timers.remove(&ladder_timer(replaced.timer_at(), into, mine.token));
        // Adds before the restart are this journey's too, unless it had
        // already sent (as on one id: a restart after step 1 starts afresh).
        if replaced.next_step == 0 {
            let mut events = replaced.events;
            events.append(moved.events.as_slice(), MAX_REASON_EVENTS);
            moved.events = events;
        }
    }
    timers.insert(ladder_timer(moved.timer_at(), into, mine.token));
    mine.held_back = false;
    mine.ladder = Some(moved);
}

/// Cancels a removed state's timers and withdraws its rank contribution.
pub fn discard_state(timers: &mut TimerTable, globals: &mut Globals, cid: u32, state: KeyedState) {
    if let Some(ladder) = &state.ladder {
        timers.remove(&TimerEntry {
            due: ladder.timer_at(),
            customer: cid,
            token: state.token,
            purpose: TimerPurpose::Ladder,
        });
    }
    if let Some(due) = state.window_close() {
        timers.remove(&TimerEntry {
            due,
            customer: cid,
            token: state.token,
            purpose: TimerPurpose::WindowClose,
        });
    }
    if let (Some(bucket), Some(Some(ranks))) = (
        state.memory().measure_ranked(),
        globals.ranks.get_mut(usize::from(state.trigger)),
    ) {
        ranks.remove(bucket);
    }
}

/// The variant a customer gets for a trigger (`u8::MAX`: none configured).
fn pick_variant(plan: &Plan, trigger: &Trigger, customer_key: &str) -> u8 {
    let total: u32 = trigger.variants.iter().map(|v| v.weight).sum();
    if total == 0 {
        return u8::MAX;
    }
    // The whole hash, not basis points: weights go up to 1,000,000 each.
    // (For totals dividing 10,000 this is the same point as before.)
    let point = (stable_hash(
        plan.pipeline.settings.seed,
        &[b"variant", trigger.id.as_bytes(), customer_key.as_bytes()],
    ) % u64::from(total)) as u32;
    let mut cumulative = 0;
    for (index, variant) in trigger.variants.iter().enumerate() {
        cumulative += variant.weight;
        if point < cumulative {
            return index as u8;
        }
    }
    u8::MAX
}

/// Properties of the anchor event a ladder needs later (offsets and
/// payload): `names` are the trigger's ([`Plan::kept_property_names`]).
/// Most triggers keep none: that is told where it is asked, without a
/// call.
#[inline(always)]
fn kept_properties(names: &[String], event: &Event) -> Properties {
    if names.is_empty() {
        return Properties::new();
    }
    copy_properties(names, event)
}

/// [`kept_properties`] for a trigger that keeps some.
fn copy_properties(names: &[String], event: &Event) -> Properties {
    let mut kept = Properties::new();
    for name in names {
        if let Some(value) = event.properties.get(name) {
            // Kept for the ladder's whole life; usually one or two.
            reserve_one(&mut kept, usize::MAX);
            kept.push((name.clone(), value.to_json()));
        }
    }
    kept
}

/// The states an event addresses. An event without the key property uses the
/// `default` entity (a customer's one implicit cart), except for list keys:
/// an order without products replenishes nothing. Walked, not collected:
/// gathering them into a list cost some 60 instructions an event.
fn entity_list<'a>(
    spec: &KeySpec,
    keys: &'a EventKeys,
) -> impl Iterator<Item = Option<&'a str>> + 'a {
    let (single, list): (Option<Option<&str>>, &[_]) = match keys {
        EventKeys::Customer => (Some(None), &[]),
        EventKeys::Missing if matches!(spec, KeySpec::ListItem { .. }) => (None, &[]),
        EventKeys::Missing => (Some(Some(DEFAULT_ENTITY)), &[]),
        EventKeys::Entities(list) => (None, list),
    };
    single
        .into_iter()
        .chain(list.iter().map(|key| Some(key.as_ref())))
}

fn fixed_first_offset(trigger: &Trigger, properties: &[(String, Value)]) -> Option<Span> {
    match &trigger.steps.first()?.at {
        // Most are: answered here, without a call.
        Offset::Fixed(span) => Some(*span),
        at => resolve_offset(at, properties),
    }
}

/// An event's message id as state keeps it ([`MessageId`]), made when a
/// trigger first keeps it and then shared by every other trigger the event
/// reaches: `dormant_wakeup` keeps the id of every event, and making it
/// again per trigger was some 55 instructions each time.
pub struct EventMessage<'e> {
    /// The id as the event carries it.
    text: &'e CompactString,
    /// The id as kept, once a trigger asked for it.
    kept: OnceCell<MessageId>,
}

impl<'e> EventMessage<'e> {
    /// The message id of an event, not yet converted.
    pub fn new(text: &'e CompactString) -> Self {
        EventMessage {
            text,
            kept: OnceCell::new(),
        }
    }

    /// The id as state keeps it.
    fn get(&self) -> &MessageId {
        self.kept.get_or_init(|| MessageId::from_event(self.text))
    }

    /// The id as the one reason of a match.
    fn as_reason(&self) -> &[MessageId] {
        std::slice::from_ref(self.get())
    }
}

/// Handles one event for one customer trigger. `message` is the event's
/// message id (see [`EventMessage`]); `emptied_cart` names a cart this event
/// emptied.
pub fn on_event(
    ctx: &mut Ctx<'_>,
    trigger_index: u16,
    event: &Event,
    message: &EventMessage<'_>,
    emptied_cart: Option<&str>,
) {
    let plan = ctx.plan;
    let trigger = plan.trigger(trigger_index);
    let stores = &plan.pipeline.stores;
    // Made where they are needed: most triggers an event reaches stop at
    // their first match test (a property key is a property look-up).
    let keys = || event_keys(&trigger.key, event);
    if matches_any(&trigger.cancel_on, event, stores) {
        ctx.cancel_for_keys(trigger_index, &keys());
    }
    match &trigger.pattern {
        Pattern::Absence {
            start,
            cancel,
            restart,
            cancel_when_cart_empty,
        } => {
            if matches_any(cancel, event, stores) {
                ctx.cancel_for_keys(trigger_index, &keys());
            }
            if let (true, Some(cart)) = (*cancel_when_cart_empty, emptied_cart) {
                let cart_keys = match trigger.key {
                    crate::config::KeySpec::Customer
                        if ctx.customer.carts.iter().all(|c| c.lines.is_empty()) =>
                    {
                        Some(EventKeys::Customer)
                    }
                    crate::config::KeySpec::Customer => None,
                    _ => Some(EventKeys::Entities(smallvec![cart.into()])),
                };
                if let Some(cart_keys) = cart_keys {
                    ctx.cancel_for_keys(trigger_index, &cart_keys);
                }
            }
            if matches(start, event, stores) {
                let properties = kept_properties(plan.kept_property_names(trigger_index), event);
                let Some(first_at) = fixed_first_offset(trigger, &properties) else {
                    return;
                };
                for entity in entity_list(&trigger.key, &keys()) {
                    let index = ctx.find_or_insert(trigger_index, entity, Memory::default);
                    if !restart && ctx.customer.states[index].ladder.is_some() {
                        continue;
                    }
                    if ctx.stale_restart(index, event.time) {
                        continue;
                    }
                    ctx.start_ladder(
                        index,
                        event.time,
                        first_at,
                        message.as_reason(),
                        properties.clone(),
                    );
                }
            }
        }
        Pattern::Inactivity { activity } => {
            if !matches(activity, event, stores) {
                return;
            }
            if let (KeySpec::Customer, Offset::Fixed(first_at)) =
                (&trigger.key, &trigger.steps[0].at)
            {
                // Every activity event restarts a fixed wait (`dormant_wakeup`
                // matches every event), and after a customer's first event
                // its state exists: go straight to it, without the general
                // path's key list, insertion and offset resolution below,
                // which come to the same restart. That path was a tenth of
                // retail's instructions.
                if let Some(index) = ctx.find(trigger_index, None) {
                    if ctx.restart_pending_wait(
                        index,
                        trigger_index,
                        event.time,
                        *first_at,
                        message,
                    ) {
                        return;
                    }
                    let properties =
                        kept_properties(plan.kept_property_names(trigger_index), event);
                    let latest = ctx.wait_anchor(index, event.time);
                    if !ctx.stale_restart(index, latest) {
                        ctx.start_ladder(index, latest, *first_at, message.as_reason(), properties);
                    }
                    return;
                }
            }
            let properties = kept_properties(plan.kept_property_names(trigger_index), event);
            // Only a cadence needs the history; a fixed wait needs nothing
            // beyond the ladder, which keeps idle customers small.
            let cadence = match &trigger.steps[0].at {
                Offset::Cadence {
                    multiplier,
                    floor,
                    min_history,
                    sparse_floor,
                } => Some((*multiplier, *floor, *min_history, *sparse_floor)),
                _ => None,
            };
            for entity in entity_list(&trigger.key, &keys()) {
                let index = ctx.find_or_insert(trigger_index, entity, || match cadence {
                    Some(_) => Memory::History(ThinVec::new()),
                    None => Memory::None,
                });
                let memory = ctx.customer.states[index].memory_mut();
                let (first_at, latest) = match (memory, cadence) {
                    (
                        Some(Memory::History(history)),
                        Some((multiplier, floor, min_history, sparse_floor)),
                    ) => {
                        if history.last() != Some(&event.time) {
                            let position = history.partition_point(|t| *t <= event.time);
                            history.insert(position, event.time);
                            if history.len() > MAX_HISTORY {
                                history.remove(0);
                            }
                        }
                        let latest = *history.last().unwrap_or(&event.time);
                        (
                            cadence_offset(history, multiplier, floor, min_history, sparse_floor),
                            latest,
                        )
                    }
                    _ => (
                        resolve_offset(&trigger.steps[0].at, &properties),
                        ctx.wait_anchor(index, event.time),
                    ),
                };
                match first_at {
                    Some(_) if ctx.stale_restart(index, latest) => {}
                    Some(first_at) => ctx.start_ladder(
                        index,
                        latest,
                        first_at,
                        message.as_reason(),
                        properties.clone(),
                    ),
                    None => {
                        if ctx.customer.states[index].ladder.is_some() {
                            ctx.cancel_ladder(index);
                        }
                    }
                }
            }
        }
        Pattern::Count {
            event: counted,
            min,
            window,
            group_by,
            unless,
            fire,
        } => {
            let is_counted = matches(counted, event, stores);
            let is_unless = matches_any(unless, event, stores);
            if !is_counted && !is_unless {
                // Any event of the customer keeps an open session alive (a
                // channel's delivery receipt is not the customer's doing).
                if let (Window::Session(gap), false) =
                    (window, event.name == crate::matching::DELIVERY_RECEIPT)
                {
                    extend_sessions(ctx, trigger_index, event.time, *gap);
                }
                return;
            }
            let zone = zone_of(plan, ctx.customer);
            for entity in entity_list(&trigger.key, &keys()) {
                let now = event.time;
                let fresh = || Memory::Count(Box::default());
                // (`on_reach` sessions have no close timer to forget them by.)
                let mut index = if let (Window::Session(gap), CountFire::OnClose) = (window, fire) {
                    // Looked up once for both: a session that goes on
                    // unblocked keeps its state where it was found.
                    let found = ctx.find(trigger_index, entity);
                    if blocks_session(ctx, trigger_index, entity, found, now, *gap, is_unless) {
                        continue;
                    }
                    match found {
                        Some(index) => index,
                        None => ctx.find_or_insert(trigger_index, entity, fresh),
                    }
                } else {
                    ctx.find_or_insert(trigger_index, entity, fresh)
                };
                // A tumbling window's close timer is due at the instant the
                // next window opens, and events at an instant go before
                // timers: close the old window first, as its timer would
                // have, so that this event counts in the new one.
                if let Window::Tumbling(_) = window {
                    let state = &ctx.customer.states[index];
                    if let Some(close) = state.window_close().filter(|close| *close <= now) {
                        let token = state.token;
                        let entry = ctx.timer(close, token, TimerPurpose::WindowClose);
                        ctx.timers.remove(&entry);
                        on_window_close(ctx, token, close);
                        index = ctx.find_or_insert(trigger_index, entity, fresh);
                    }
                }
                let token = ctx.customer.states[index].token;
                let state = &mut ctx.customer.states[index];
                match state.memory() {
                    // The last window matched on close and its ladder is
                    // still pending: the next window counts all the same.
                    Memory::None => state.set_memory(fresh()),
                    // A blocked session ended, its close timer not yet
                    // fired: a new one starts, and the timer is moved when
                    // it fires, as for any window.
                    Memory::BlockedSession { .. } => {
                        state.set_memory(Memory::Count(Box::new(CountMemory {
                            window_close: state.window_close().into(),
                            ..CountMemory::default()
                        })))
                    }
                    _ => {}
                }
                let Some(Memory::Count(memory)) = state.memory_mut() else {
                    continue;
                };
                // Which window this event falls in; a new window starts fresh.
                let window_id = match window {
                    Window::Tumbling(size) => tumbling_index(now, *size, zone),
                    Window::Sliding(_) => 0,
                    Window::Session(gap) => match memory.last.get() {
                        Some(last) if now - last > *gap => last.0 + 1,
                        _ => memory.window,
                    },
                };
                // A sliding window with nothing left in it starts afresh.
                let emptied = match window {
                    Window::Sliding(size) => {
                        memory.last.get().is_some_and(|last| now - last >= *size)
                    }
                    _ => false,
                };
                if window_id != memory.window || memory.last.get().is_none() || emptied {
                    **memory = CountMemory {
                        window: if let Window::Session(_) = window {
                            now.0
                        } else {
                            window_id
                        },
                        // The old window's close timer stays where it is.
                        window_close: memory.window_close,
                        ..CountMemory::default()
                    };
                }
                memory.last = Some(memory.last.get().map_or(now, |last| last.max(now))).into();
                if is_unless {
                    memory.unless_at = Some(now).into();
                }
                let mut matched_group = None;
                if is_counted {
                    if memory.events.len() < MAX_REASON_EVENTS {
                        memory.events.push(message.get().clone());
                    }
                    for (property, value) in group_values(group_by, event) {
                        let hash = group_hash(property, value);
                        let position = match memory
                            .groups
                            .iter()
                            .position(|g| g.hash == hash && g.is(property, value))
                        {
                            Some(position) => position,
                            None => {
                                let limit = plan.pipeline.settings.max_keys_per_trigger.max(1) * 2;
                                if let (true, Window::Sliding(size)) =
                                    (memory.groups.len() >= limit, window)
                                {
                                    // Groups with nothing left in the window
                                    // make room.
                                    memory.groups.retain(|g| {
                                        g.recent.last().is_some_and(|t| now - *t < *size)
                                    });
                                }
                                if memory.groups.len() >= limit {
                                    // The oldest group makes room (one that
                                    // matched is kept: it is the report).
                                    match memory.groups.iter().position(|g| !g.fired) {
                                        Some(oldest) => {
                                            memory.groups.remove(oldest);
                                        }
                                        None => continue,
                                    }
                                }
                                memory.groups.push(CountGroup {
                                    hash,
                                    value: group_label(property, value),
                                    ..CountGroup::default()
                                });
                                memory.groups.len() - 1
                            }
                        };
                        let first_to_reach =
                            *fire == CountFire::OnClose && !memory.groups.iter().any(|g| g.fired);
                        let g = &mut memory.groups[position];
                        g.count += 1;
                        // On close, the match is the group that reached
                        // `min` first: the one payload properties came from.
                        if first_to_reach && g.count >= *min {
                            g.fired = true;
                        }
                        let mut reached = g.count >= *min;
                        // Payload properties come from the event that first
                        // brings a group to `min` (copied once, not per event).
                        if g.count == *min
                            && memory.properties.is_empty()
                            && !trigger.payload.properties.is_empty()
                        {
                            memory.properties =
                                kept_properties(plan.kept_property_names(trigger_index), event);
                        }
                        if let Window::Sliding(size) = window {
                            g.recent.push(now);
                            if g.recent.len() > *min as usize {
                                g.recent.remove(0);
                            }
                            reached = g.recent.len() >= *min as usize && now - g.recent[0] < *size;
                        }
                        let blocked = match (window, memory.unless_at.get()) {
                            (Window::Sliding(size), Some(at)) => now - at < *size,
                            (_, unless_at) => unless_at.is_some(),
                        };
                        if *fire == CountFire::OnReach
                            && reached
                            && !g.fired
                            && !blocked
                            && matched_group.is_none()
                        {
                            g.fired = true;
                            if let Window::Sliding(_) = window {
                                g.recent.clear();
                                g.fired = false;
                            }
                            matched_group = Some(g.value.to_string());
                        }
                    }
                }
                let events = if matched_group.is_some() {
                    let events = memory.events.clone();
                    if let Window::Sliding(_) = window {
                        // The next match names its own events.
                        memory.events.clear();
                    }
                    events
                } else {
                    ThinVec::new()
                };
                // Window-close timers: tumbling windows close at their end,
                // sessions `gap` after the last event.
                let close_at = match (fire, window) {
                    (CountFire::OnClose, Window::Session(gap)) => {
                        memory.last.get().map(|last| last + *gap)
                    }
                    (CountFire::OnClose, Window::Tumbling(size)) => {
                        Some(tumbling_end(now, *size, zone))
                    }
                    _ => None,
                };
                if let Some(close_at) = close_at {
                    // A timer already placed at or before the true close is
                    // left alone and moved when it fires (sessions only grow).
                    if memory
                        .window_close
                        .get()
                        .is_none_or(|placed| placed > close_at)
                    {
                        if let Some(old) = memory.window_close.take() {
                            ctx.timers.remove(&TimerEntry {
                                due: old,
                                customer: ctx.cid,
                                token,
                                purpose: TimerPurpose::WindowClose,
                            });
                        }
                        memory.window_close = Some(close_at).into();
                        ctx.timers.insert(TimerEntry {
                            due: close_at,
                            customer: ctx.cid,
                            token,
                            purpose: TimerPurpose::WindowClose,
                        });
                    }
                }
                if let Some(group) = matched_group {
                    let mut properties =
                        kept_properties(plan.kept_property_names(trigger_index), event);
                    if !group.is_empty() {
                        reserve_one(&mut properties, usize::MAX);
                        properties.push(("group".to_string(), Value::String(group.clone())));
                    }
                    if let Some(first_at) = fixed_first_offset(trigger, &properties) {
                        // Each group's match is a journey of its own (two
                        // orders ready at once are two messages), kept in a
                        // state keyed by the group beside the count's.
                        let journey = match entity {
                            None if !group.is_empty() => {
                                let label = Some(group.as_str());
                                ctx.find_or_insert(trigger_index, label, Memory::default)
                            }
                            _ => index,
                        };
                        ctx.start_ladder(journey, now, first_at, &events, properties);
                    }
                }
            }
        }
        Pattern::Sequence {
            first,
            then,
            within,
        } => {
            for entity in entity_list(&trigger.key, &keys()) {
                if matches(then, event, stores) {
                    if let Some(index) = ctx.find(trigger_index, entity) {
                        if let Memory::Sequence(start) = ctx.customer.states[index].memory() {
                            let (at, first_message) = &**start;
                            if event.time - *at <= *within && event.time >= *at {
                                let events = vec![first_message.clone(), message.get().clone()];
                                ctx.customer.states[index].set_memory(Memory::None);
                                let properties =
                                    kept_properties(plan.kept_property_names(trigger_index), event);
                                if let Some(first_at) = fixed_first_offset(trigger, &properties) {
                                    ctx.start_ladder(
                                        index, event.time, first_at, &events, properties,
                                    );
                                }
                                continue;
                            }
                        }
                    }
                }
                if matches(first, event, stores) {
                    let index = ctx.find_or_insert(trigger_index, entity, Memory::default);
                    ctx.customer.states[index].set_memory(Memory::Sequence(Box::new((
                        event.time,
                        message.get().clone(),
                    ))));
                }
            }
        }
        Pattern::Schedule { source } => {
            on_schedule_event(ctx, trigger_index, source, event, message)
        }
        Pattern::Threshold { measure, bound } => {
            if !matches(&measure.event, event, stores) {
                return;
            }
            let amount = match &measure.property {
                Some(property) => event.property_number(property).unwrap_or(0.0),
                None => 1.0,
            };
            let spans = 1 + usize::from(matches!(bound, Bound::DropPercent(_)));
            let bucket_width = Span((measure.window.0 / MEASURE_BUCKETS as i64).max(1));
            let counts = measure.property.is_none();
            let index =
                ctx.find_or_insert(trigger_index, None, || Memory::new_measure(spans, counts));
            let Some(state_memory) = ctx.customer.states[index].memory_mut() else {
                return;
            };
            let keep = MEASURE_BUCKETS * spans;
            let Some(rolled) = add_to_measure(state_memory, event.time, bucket_width, keep, amount)
            else {
                return;
            };
            // Activity only raises the current window, so a drop can only
            // appear when old buckets roll out of it (tested first: most
            // events roll nothing, and need not look at the aggregate again).
            if let (Bound::DropPercent(_), false) = (bound, rolled) {
                return;
            }
            let Some(mut memory) = state_memory.measure_mut() else {
                return;
            };
            let current = memory.sum(0, MEASURE_BUCKETS);
            // The aggregate just before this amount (after older amounts
            // rolled out): a bound it was below is re-armed, even though no
            // event saw the aggregate fall.
            let in_window =
                memory.newest() - event.time.0.div_euclid(bucket_width.0) < MEASURE_BUCKETS as i64;
            let before = if in_window { current - amount } else { current };
            let band_of = |value: f64| -> Option<u16> {
                match bound {
                    Bound::AtLeast(limit) => (value >= *limit).then_some(0),
                    Bound::NearNextTier {
                        tiers,
                        within_percent,
                    } => tiers
                        .iter()
                        .position(|tier| value < *tier)
                        .filter(|&next| value >= tiers[next] * (1.0 - within_percent / 100.0))
                        .map(|next| next as u16),
                    _ => None,
                }
            };
            if let Bound::AtLeast(_) | Bound::NearNextTier { .. } = bound {
                if band_of(before) != *memory.matched() {
                    *memory.matched() = None;
                }
            }
            let band: Option<u16> = match bound {
                Bound::AtLeast(limit) => (current >= *limit).then_some(0),
                Bound::NearNextTier {
                    tiers,
                    within_percent,
                } => tiers
                    .iter()
                    .position(|tier| current < *tier)
                    .filter(|&next| current >= tiers[next] * (1.0 - within_percent / 100.0))
                    .map(|next| next as u16),
                Bound::TopPercent(percent) => {
                    let slot = usize::from(trigger_index);
                    if ctx.globals.ranks.len() <= slot {
                        ctx.globals.ranks.resize_with(slot + 1, || None);
                    }
                    let ranks = ctx.globals.ranks[slot].get_or_insert_with(RankHistogram::default);
                    if let Some(old) = memory.ranked().take() {
                        ranks.remove(old);
                    }
                    // Only customers with a non-zero aggregate are ranked.
                    if current > 0.0 {
                        *memory.ranked() = Some(ranks.insert(current));
                    }
                    (current > 0.0 && ranks.len() >= 20 && ranks.in_top(current, *percent))
                        .then_some(0)
                }
                Bound::DropPercent(percent) => {
                    let previous = memory.sum(MEASURE_BUCKETS, MEASURE_BUCKETS);
                    (previous > 0.0 && current <= previous * (1.0 - percent / 100.0)).then_some(0)
                }
            };
            let matched = memory.matched();
            let newly = band.is_some() && band != *matched;
            *matched = band;
            if newly {
                let mut properties =
                    kept_properties(plan.kept_property_names(trigger_index), event);
                reserve_one(&mut properties, usize::MAX);
                properties.push(("value".to_string(), json!(current)));
                if let Some(first_at) = fixed_first_offset(trigger, &properties) {
                    ctx.start_ladder(index, event.time, first_at, message.as_reason(), properties);
                }
            }
        }
        Pattern::Rate { .. } => {}
    }
}

/// Adds `amount` at `time` (1 for counts) to the rolling aggregate in
/// `memory`; returns whether older buckets rolled out (`None`: not an
/// aggregate). A tally whose bucket is full becomes sums, which count on.
fn add_to_measure(
    memory: &mut Memory,
    time: Timestamp,
    width: Span,
    keep: usize,
    amount: f64,
) -> Option<bool> {
    let (rolled, added) = match memory.measure_mut()? {
        MeasureMut::Sums(sums) => sums.add(time, width, keep, amount),
        MeasureMut::Counts(counts) => counts.add(time, width, keep, amount),
    };
    if !added {
        memory.widen_tally();
        if let Some(MeasureMut::Sums(sums)) = memory.measure_mut() {
            // The buckets rolled already: this only adds.
            sums.add(time, width, keep, amount);
        }
    }
    Some(rolled)
}

impl MeasureMut<'_> {
    /// The sum of `count` buckets from the `from`th newest.
    fn sum(&self, from: usize, count: usize) -> f64 {
        match self {
            MeasureMut::Sums(memory) => memory.sum(from, count),
            MeasureMut::Counts(memory) => memory.sum(from, count),
        }
    }

    /// Index of the newest bucket.
    fn newest(&self) -> i64 {
        match self {
            MeasureMut::Sums(memory) => memory.newest,
            MeasureMut::Counts(memory) => memory.newest,
        }
    }

    /// The band or tier already matched.
    fn matched(&mut self) -> &mut Option<u16> {
        match self {
            MeasureMut::Sums(memory) => &mut memory.matched,
            MeasureMut::Counts(memory) => &mut memory.matched,
        }
    }

    /// Where the value last reported to the rank histogram sits.
    fn ranked(&mut self) -> &mut Option<RankBucket> {
        match self {
            MeasureMut::Sums(memory) => &mut memory.ranked,
            MeasureMut::Counts(memory) => &mut memory.ranked,
        }
    }
}

/// A bucket of a rolling aggregate: an `f32` sum or a `u8` count.
pub(crate) trait Bucket: Copy {
    /// An empty bucket.
    const ZERO: Self;
    /// Adds an amount (always 1 for a count); false when the bucket is
    /// full and holds what it held.
    fn add(&mut self, amount: f64) -> bool;
    /// What the bucket holds.
    fn value(self) -> f64;
}

impl Bucket for f32 {
    const ZERO: f32 = 0.0;
    fn add(&mut self, amount: f64) -> bool {
        *self += amount as f32;
        true
    }
    fn value(self) -> f64 {
        f64::from(self)
    }
}

impl Bucket for u8 {
    const ZERO: u8 = 0;
    fn add(&mut self, amount: f64) -> bool {
        debug_assert_eq!(amount, 1.0, "tallies count events");
        match self.checked_add(1) {
            Some(count) => {
                *self = count;
                true
            }
            None => false,
        }
    }
    fn value(self) -> f64 {
        f64::from(self)
    }
}

impl<B: Bucket> MeasureMemory<[B]> {
    /// Adds `amount` at `time`; returns whether older buckets rolled out,
    /// and whether the amount was added (false: its bucket is full).
    fn add(&mut self, time: Timestamp, width: Span, keep: usize, amount: f64) -> (bool, bool) {
        let index = time.0.div_euclid(width.0);
        let keep = keep.min(self.buckets.len());
        let mut rolled = false;
        if self.kept == 0 {
            self.newest = index;
            self.kept = keep as u8;
            rolled = true;
        } else if index > self.newest {
            let buckets = &mut self.buckets[..keep];
            let shift = (index - self.newest) as usize;
            if shift >= keep {
                buckets.fill(B::ZERO);
            } else {
                buckets.rotate_right(shift);
                buckets[..shift].fill(B::ZERO);
            }
            self.newest = index;
            rolled = true;
        }
        // Late amounts land in their own (older) bucket when still kept.
        let age = (self.newest - index) as usize;
        let added = match self.buckets[..keep].get_mut(age) {
            Some(bucket) => bucket.add(amount),
            None => true, // too old to count: nothing to add
        };
        (rolled, added)
    }

    fn sum(&self, from: usize, count: usize) -> f64 {
        self.buckets[..usize::from(self.kept)]
            .iter()
            .skip(from)
            .take(count)
            .map(|&b| b.value())
            .sum()
    }
}

/// Moves the close of every open session of `trigger_index` to `time + gap`.
fn extend_sessions(ctx: &mut Ctx<'_>, trigger_index: u16, time: Timestamp, gap: Span) {
    for index in ctx.trigger_range(trigger_index) {
        match ctx.customer.states[index].memory_mut() {
            // Only the session's last activity moves; its close timer is
            // checked against it when it fires (see `on_window_close`).
            Some(Memory::Count(memory))
                if memory
                    .last
                    .get()
                    .is_some_and(|last| time >= last && time - last <= gap) =>
            {
                memory.last = Some(time).into();
            }
            Some(Memory::BlockedSession { close, .. }) if time <= *close => {
                extend_blocked_session(ctx, index, time + gap)
            }
            _ => {}
        }
    }
}

/// Session windows with `unless`: once an `unless` event falls in a session,
/// nothing counted in it can match, so the session is kept as its end alone
/// ([`Memory::BlockedSession`]). Handles the event and returns true when it
/// concerns such a session (it goes on, or this event blocks it); returns
/// false when the event is to be counted as usual, having changed nothing.
/// `found` is where the state of `entity` is, if it has one.
fn blocks_session(
    ctx: &mut Ctx<'_>,
    trigger_index: u16,
    entity: Option<&str>,
    found: Option<usize>,
    now: Timestamp,
    gap: Span,
    is_unless: bool,
) -> bool {
    if let Some(index) = found {
        if let Memory::BlockedSession { close, .. } = *ctx.customer.states[index].memory() {
            if now <= close {
                extend_blocked_session(ctx, index, now + gap);
                return true;
            }
        }
    }
    if !is_unless {
        return false;
    }
    let index = match found {
        Some(index) => index,
        None => ctx.find_or_insert(trigger_index, entity, Memory::default),
    };
    let state = &mut ctx.customer.states[index];
    let placed = state.window_close();
    // The session this event is in: the open one, or a new one.
    let open = match state.memory() {
        Memory::Count(memory) => memory.last.get().filter(|last| now - *last <= gap),
        _ => None,
    };
    let close = open.map_or(now, |last| last.max(now)) + gap;
    // A close timer already placed stays where it is, if the lag fits.
    let lag = placed.and_then(|placed| Lag::new(close - placed));
    state.set_memory(Memory::BlockedSession {
        close,
        lag: lag.unwrap_or(Lag::ZERO),
    });
    if lag.is_none() {
        let token = state.token;
        ctx.move_window_close(token, placed, close);
    }
    true
}

/// A blocked session went on: its end moves to `until`, its timer stays
/// (see [`Memory::BlockedSession`]) unless the lag would no longer fit.
fn extend_blocked_session(ctx: &mut Ctx<'_>, index: usize, until: Timestamp) {
    let state = &mut ctx.customer.states[index];
    let Some(Memory::BlockedSession { close, lag }) = state.memory_mut() else {
        return;
    };
    if until <= *close {
        return;
    }
    // Where its timer sits (see `KeyedState::window_close`).
    let placed = *close - lag.span();
    *close = until;
    match Lag::new(until - placed) {
        Some(longer) => *lag = longer,
        None => {
            *lag = Lag::ZERO;
            let token = state.token;
            ctx.move_window_close(token, Some(placed), until);
        }
    }
}

/// k × the median gap between activities, at least `floor`, at most
/// [`Span::LONGEST`]; with too little history, `sparse_floor`.
pub fn cadence_offset(
    history: &[Timestamp],
    multiplier: f64,
    floor: Span,
    min_history: u32,
    sparse_floor: Option<Span>,
) -> Option<Span> {
    if history.len() < min_history.max(2) as usize {
        return sparse_floor;
    }
    let mut gaps: Vec<i64> = history
        .windows(2)
        .map(|pair| pair[1].0 - pair[0].0)
        .collect();
    gaps.sort_unstable();
    let middle = gaps.len() / 2;
    let median = if gaps.len().is_multiple_of(2) {
        (gaps[middle - 1] + gaps[middle]) / 2
    } else {
        gaps[middle]
    };
    // No longer than any configured offset may be (see `Span::LONGEST`).
    Some(
        Span((median as f64 * multiplier) as i64)
            .max(floor)
            .min(Span::LONGEST),
    )
}

fn tumbling_offset_ms(time: Timestamp, size: Span, zone: chrono_tz::Tz) -> i64 {
    if size.0 % Span::DAY.0 == 0 {
        utc_offset_ms(time, zone)
    } else {
        0
    }
}

fn tumbling_index(time: Timestamp, size: Span, zone: chrono_tz::Tz) -> i64 {
    (time.0 + tumbling_offset_ms(time, size, zone)).div_euclid(size.0.max(1))
}

fn tumbling_end(time: Timestamp, size: Span, zone: chrono_tz::Tz) -> Timestamp {
    if size.0 % Span::DAY.0 == 0 {
        // Local midnight after the window, at that instant's own offset.
        let days = (tumbling_index(time, size, zone) + 1).saturating_mul(size.0 / Span::DAY.0);
        let end = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
            .and_then(|epoch| epoch.checked_add_signed(chrono::Duration::try_days(days)?))
            .and_then(|date| crate::local_time::at_local(date, 0, zone));
        if let Some(end) = end {
            return end;
        }
    }
    let offset = tumbling_offset_ms(time, size, zone);
    let end = (tumbling_index(time, size, zone) + 1)
        .saturating_mul(size.0.max(1))
        .saturating_sub(offset);
    Timestamp(end.clamp(Timestamp::MIN.0, Timestamp::MAX.0))
}

/// The groups an event counts under: (property, value) pairs, or one
/// unnamed group when the pattern is not grouped. Borrowed, so counting an
/// event into an existing group allocates nothing.
fn group_values<'a>(
    group_by: &'a [String],
    event: &'a Event,
) -> SmallVec<[(&'a str, &'a PropertyValue); 2]> {
    static UNGROUPED: PropertyValue = PropertyValue::Null;
    if group_by.is_empty() {
        return smallvec![("", &UNGROUPED)];
    }
    group_by
        .iter()
        .filter_map(|property| Some((property.as_str(), event.properties.get(property)?)))
        .filter(|(_, value)| value.is_string() || value.is_number() || value.is_boolean())
        .collect()
}

/// A cheap first comparison for group labels (strings hash without
/// allocating or joining; groups of two properties whose values hash alike
/// are told apart by their labels).
fn group_hash(property: &str, value: &PropertyValue) -> u64 {
    match value {
        PropertyValue::Null => 0,
        PropertyValue::String(text) => xxh3_64_with_seed(text.as_bytes(), property.len() as u64),
        other => stable_hash(0, &[property.as_bytes(), other.to_string().as_bytes()]),
    }
}

/// `product_id=p1`; empty for the unnamed group. Built in place: a label of
/// up to 24 bytes is stored inline, and a new group is made on most product
/// views.
fn group_label(property: &str, value: &PropertyValue) -> CompactString {
    match value {
        PropertyValue::Null => CompactString::default(),
        PropertyValue::String(text) => {
            // A label that fits inline is put together in place, its parts
            // copied one after the other: each push into a CompactString
            // checks its representation again (some 80 instructions a push),
            // and joining the parts on the stack took a UTF-8 check of the
            // whole (some 85) to make a `str` of them again.
            if property.len() + 1 + text.len() <= std::mem::size_of::<CompactString>() {
                return [property, "=", text.as_str()].into_iter().collect();
            }
            let mut label = CompactString::with_capacity(property.len() + 1 + text.len());
            label.push_str(property);
            label.push('=');
            label.push_str(text);
            label
        }
        other => compact_str::format_compact!("{property}={other}"),
    }
}

impl CountGroup {
    /// Whether this is the group of `property` = `value`.
    fn is(&self, property: &str, value: &PropertyValue) -> bool {
        match value {
            PropertyValue::Null => self.value.is_empty(),
            PropertyValue::String(text) => {
                let label = &*self.value;
                label.len() == property.len() + 1 + text.len()
                    && label.starts_with(property)
                    && label.as_bytes()[property.len()] == b'='
                    && label.ends_with(text.as_str())
            }
            other => *self.value == *group_label(property, other),
        }
    }
}

fn on_schedule_event(
    ctx: &mut Ctx<'_>,
    trigger_index: u16,
    source: &ScheduleSource,
    event: &Event,
    message: &EventMessage<'_>,
) {
    let plan = ctx.plan;
    let trigger = plan.trigger(trigger_index);
    let stores = &plan.pipeline.stores;
    let first_at = fixed_first_offset(trigger, &[]).unwrap_or(Span::ZERO);
    match source {
        ScheduleSource::YearlyTrait { name, .. } => {
            // The trait the schedule names: a birthday is kept in the
            // profile; another trait's date in the schedule's own state.
            let known = ctx.find(trigger_index, None).and_then(|index| {
                match ctx.customer.states[index].memory() {
                    Memory::Yearly { date } if *date != (0, 0) => Some(*date),
                    _ => None,
                }
            });
            let date = match name.as_str() {
                "birthday" => ctx.customer.profile.birthday,
                _ => event
                    .traits
                    .get(name.as_str())
                    .and_then(PropertyValue::as_str)
                    .and_then(crate::local_time::parse_month_day)
                    .or(known),
            };
            let Some(date) = date else {
                return;
            };
            let index = ctx.find_or_insert(trigger_index, None, || Memory::Yearly { date: (0, 0) });
            let unchanged = matches!(ctx.customer.states[index].memory(), Memory::Yearly { date: known } if *known == date);
            // Armed for this date already (a time zone learned since moves
            // it: `on_zone_change`).
            if unchanged && ctx.customer.states[index].ladder.is_some() {
                return;
            }
            ctx.customer.states[index].set_memory(Memory::Yearly { date });
            let reason = message.as_reason();
            schedule_yearly(ctx, index, trigger_index, ctx.now, reason);
        }
        ScheduleSource::EventTime {
            event: wanted,
            property,
            default_after,
        } => {
            if !matches(wanted, event, stores) {
                return;
            }
            let anchor = event
                .properties
                .get(property)
                .and_then(PropertyValue::as_str)
                .and_then(|text| Timestamp::parse_rfc3339(text).ok())
                // Within the years event times may take (a mistyped year
                // would schedule for 9999), else as if absent.
                .filter(|at| (Event::EARLIEST_TIME..Event::AFTER_LATEST_TIME).contains(at))
                .unwrap_or(event.time + *default_after);
            let properties = kept_properties(plan.kept_property_names(trigger_index), event);
            let index = ctx.find_or_insert(trigger_index, Some(&event.message_id), Memory::default);
            let reason = message.as_reason();
            ctx.start_ladder(index, anchor, first_at, reason, properties);
        }
        ScheduleSource::PeriodEnd { period, condition } => {
            if !matches(&condition.event, event, stores) {
                return;
            }
            let zone = zone_of(plan, ctx.customer);
            let Some((period_index, end)) = period_of(event.time, *period, zone) else {
                return;
            };
            let amount = match &condition.property {
                Some(property) => event.property_number(property).unwrap_or(0.0),
                None => 1.0,
            };
            let keep = periods_held(trigger, condition.periods, *period);
            let index = ctx.find_or_insert(trigger_index, None, || {
                Memory::Periods(Box::new(PeriodMemory {
                    first: period_index,
                    period: period_index,
                    sums: vec![0.0; keep],
                }))
            });
            if let Some(Memory::Periods(periods)) = ctx.customer.states[index].memory_mut() {
                roll_periods(&mut periods.period, &mut periods.sums, period_index, keep);
                if period_index == periods.period {
                    periods.sums[0] += amount;
                }
            }
            if ctx.customer.states[index].ladder.is_none() {
                let reason = message.as_reason();
                ctx.start_ladder(index, end, first_at, reason, Properties::new());
            }
        }
    }
}

/// Periods of sums a period-end schedule keeps: the `judged` ones, the one
/// after them (a step due at or after a period's end judges the period that
/// ended, not the new one), and as many more as its latest step lies past
/// the end, so that a later step still finds the period it judges.
fn periods_held(trigger: &Trigger, judged: u32, period: Period) -> usize {
    let latest = trigger
        .steps
        .iter()
        .filter_map(|step| match step.at {
            Offset::Fixed(at) => Some(at),
            _ => None,
        })
        .max()
        .unwrap_or(Span::ZERO);
    let shortest = match period {
        Period::Month => Span::DAY * 28,
        Period::Quarter => Span::DAY * 89,
        Period::Year => Span::DAY * 365,
    };
    let past_the_end = match latest > Span::ZERO {
        true => (latest.0 / shortest.0) as usize + 1,
        false => 0,
    };
    judged.max(1) as usize + 1 + past_the_end
}

/// The customer's time zone changed: a birthday still ahead moves to 09:00
/// in the new zone, a period end to the end of the same period there. Two
/// days before the pending occurrence lies in its year, or its period, in
/// either zone (zones are less than a day apart, periods a month or more),
/// so the occurrence moves within them: one that already went out in the
/// old zone, or a cancelled one, is not armed again.
pub fn on_zone_change(ctx: &mut Ctx<'_>, trigger_index: u16) {
    let trigger = ctx.plan.trigger(trigger_index);
    let Pattern::Schedule { source } = &trigger.pattern else {
        return;
    };
    let Some(index) = ctx.find(trigger_index, None) else {
        return;
    };
    let Some(ladder) = ctx.customer.states[index]
        .ladder
        .as_ref()
        .filter(|ladder| ladder.next_step == 0 && ladder.anchor > ctx.now)
    else {
        return;
    };
    let (anchor, reasons) = (ladder.anchor, ladder.events.as_slice().to_vec());
    let within = anchor - Span::DAY * 2;
    let first_at = fixed_first_offset(trigger, &[]).unwrap_or(Span::ZERO);
    match source {
        ScheduleSource::YearlyTrait { .. } => {
            // `schedule_yearly` takes the time of the first step.
            schedule_yearly(ctx, index, trigger_index, within + first_at, &reasons);
        }
        ScheduleSource::PeriodEnd { period, .. } => {
            let zone = zone_of(ctx.plan, ctx.customer);
            if let Some((_, end)) =
                period_of(within, *period, zone).filter(|(_, end)| *end != anchor)
            {
                ctx.start_ladder(index, end, first_at, &reasons, Properties::new());
            }
        }
        ScheduleSource::EventTime { .. } => {}
    }
}

/// Arms the next occurrence of a recurring schedule (a yearly trait, a
/// period end) after the one anchored at `anchor`, within the horizon.
fn rearm_recurring(ctx: &mut Ctx<'_>, index: usize, trigger_index: u16, anchor: Timestamp) {
    let trigger = ctx.plan.trigger(trigger_index);
    match &trigger.pattern {
        Pattern::Schedule {
            source: ScheduleSource::YearlyTrait { .. },
        } => {
            // `schedule_yearly` takes the time of the first step: the next
            // occurrence is the one whose first step follows this one's.
            let first_at = fixed_first_offset(trigger, &[]).unwrap_or(Span::ZERO);
            let after = anchor + first_at + Span(1);
            schedule_yearly(ctx, index, trigger_index, after, &[])
        }
        Pattern::Schedule {
            source: ScheduleSource::PeriodEnd { period, .. },
        } => {
            let zone = zone_of(ctx.plan, ctx.customer);
            let next = period_of(anchor, *period, zone);
            if let Some((_, next_end)) = next.filter(|(_, end)| *end <= ctx.horizon) {
                let first_at = fixed_first_offset(trigger, &[]).unwrap_or(Span::ZERO);
                ctx.start_ladder(index, next_end, first_at, &[], Properties::new());
            }
        }
        _ => {}
    }
}

fn roll_periods(period: &mut i64, sums: &mut Vec<f64>, to: i64, keep: usize) {
    if to > *period {
        let shift = (to - *period) as usize;
        for _ in 0..shift.min(keep) {
            sums.insert(0, 0.0);
        }
        sums.truncate(keep);
        *period = to;
    }
}

fn schedule_yearly(
    ctx: &mut Ctx<'_>,
    index: usize,
    trigger_index: u16,
    after: Timestamp,
    events: &[MessageId],
) {
    let trigger = ctx.plan.trigger(trigger_index);
    let (ScheduleSource::YearlyTrait { minute_of_day, .. }, Memory::Yearly { date: (month, day) }) = (
        match &trigger.pattern {
            Pattern::Schedule { source } => source,
            _ => return,
        },
        ctx.customer.states[index].memory(),
    ) else {
        return;
    };
    let (month, day, minute) = (*month, *day, *minute_of_day);
    let first_at = fixed_first_offset(trigger, &[]).unwrap_or(Span::ZERO);
    let zone = zone_of(ctx.plan, ctx.customer);
    let next = next_yearly(after - first_at, month, day, minute, zone);
    if let Some(anchor) = next.filter(|anchor| *anchor <= ctx.horizon) {
        if let Some(old) = ctx.customer.states[index].ladder.take() {
            let token = ctx.customer.states[index].token;
            ctx.timers.remove(&TimerEntry {
                due: old.timer_at(),
                customer: ctx.cid,
                token,
                purpose: TimerPurpose::Ladder,
            });
        }
        ctx.start_ladder(index, anchor, first_at, events, Properties::new());
    }
}

/// A ladder timer came due. Returns the decision candidate for the step (if
/// the step's condition holds) and schedules the next step.
pub fn on_ladder_timer(ctx: &mut Ctx<'_>, token: u32, due: Timestamp) -> Option<Candidate> {
    let index = ctx.find_token(token)?;
    let state = &mut ctx.customer.states[index];
    let ladder = state.ladder.as_mut()?;
    if ladder.timer_at() != due {
        return None;
    }
    if ladder.due > due {
        // Restarted since the timer was placed: move it to the real deadline.
        ladder.timer_lag = Lag::ZERO;
        ctx.timers.insert(TimerEntry {
            due: ladder.due,
            customer: ctx.cid,
            token,
            purpose: TimerPurpose::Ladder,
        });
        return None;
    }
    let trigger_index = state.trigger;
    let trigger = ctx.plan.trigger(trigger_index);
    let recurring = matches!(
        trigger.pattern,
        Pattern::Schedule {
            source: ScheduleSource::YearlyTrait { .. } | ScheduleSource::PeriodEnd { .. }
        }
    );
    if recurring && ladder.next_step == 0 && ladder.anchor > ctx.horizon {
        // Armed while the input was open, beyond the horizon now that it is
        // closed: dropped, as it would not have been armed.
        state.ladder = None;
        return None;
    }
    let step = usize::from(ladder.next_step);
    let holds = match &trigger.pattern {
        Pattern::Schedule {
            source: ScheduleSource::PeriodEnd { condition, period },
        } => {
            let zone = zone_of(ctx.plan, ctx.customer);
            let state = &mut ctx.customer.states[index];
            // The period judged is the one that ends at the anchor (with an
            // offset of 0s or more the step is due in the next one).
            let anchor = state.ladder.as_ref().map_or(due, |ladder| ladder.anchor);
            let judged = period_of(anchor - Span(1), *period, zone);
            match (state.memory_mut(), period_of(due, *period, zone), judged) {
                (Some(Memory::Periods(periods)), Some((current, _)), Some((judged, _))) => {
                    let keep = condition.periods.max(1) as usize;
                    let held = periods
                        .sums
                        .len()
                        .max(periods_held(trigger, keep as u32, *period));
                    periods.sums.resize(held, 0.0);
                    roll_periods(
                        &mut periods.period,
                        &mut periods.sums,
                        current.max(judged),
                        held,
                    );
                    let observed = judged - periods.first + 1 >= keep as i64;
                    let lag = (periods.period - judged).max(0) as usize;
                    observed
                        && lag + keep <= periods.sums.len()
                        && periods.sums[lag..lag + keep]
                            .iter()
                            .all(|sum| *sum < condition.below)
                }
                _ => false,
            }
        }
        _ => true,
    };
    let candidate = holds.then(|| build_candidate(ctx, index, step, due));
    // Next step, or the end of this ladder. Every way out from here returns
    // `candidate` (the ladder is still there): so it can be built where
    // it is returned, not copied there (a few hundred bytes).
    let state = &mut ctx.customer.states[index];
    let Some(ladder) = state.ladder.as_mut() else {
        return candidate;
    };
    let next = step + 1;
    if next < trigger.steps.len() {
        let at = resolve_offset(&trigger.steps[next].at, &ladder.properties).unwrap_or(Span::ZERO);
        let next_due = (ladder.anchor + at).max(due);
        ladder.next_step = next as u8;
        ladder.due = next_due;
        ladder.timer_lag = Lag::ZERO;
        ctx.timers.insert(TimerEntry {
            due: next_due,
            customer: ctx.cid,
            token,
            purpose: TimerPurpose::Ladder,
        });
        return candidate;
    }
    let finished = state.ladder.take();
    end_ladder(ctx, index, finished.map_or(due, |ladder| ladder.anchor));
    candidate
}

/// A state's ladder is over (its last step came, or a pipeline switch
/// removed the step it waited for): a recurring schedule is armed for its
/// next occurrence after `anchor`, and a state that remembers nothing
/// else goes.
pub(crate) fn end_ladder(ctx: &mut Ctx<'_>, index: usize, anchor: Timestamp) {
    let trigger_index = ctx.customer.states[index].trigger;
    match &ctx.plan.trigger(trigger_index).pattern {
        Pattern::Schedule {
            source: ScheduleSource::YearlyTrait { .. } | ScheduleSource::PeriodEnd { .. },
        } => rearm_recurring(ctx, index, trigger_index, anchor),
        _ => {
            if matches!(ctx.customer.states[index].memory(), Memory::None) {
                ctx.remove_state(index);
            }
        }
    }
}

/// Marks the pending ladder of `trigger` for `entity` (the customer's own
/// when `None`) as a journey whose step 1 the cooldown held back.
pub fn hold_back_journey(ctx: &mut Ctx<'_>, trigger: u16, entity: Option<&str>) {
    if let Some(index) = ctx.find(trigger, entity) {
        let state = &mut ctx.customer.states[index];
        state.held_back = state.ladder.is_some();
    }
}

/// A count window closed: match if some group reached `min` without `unless`.
pub fn on_window_close(ctx: &mut Ctx<'_>, token: u32, due: Timestamp) {
    let Some(index) = ctx.find_token(token) else {
        return;
    };
    let state = &mut ctx.customer.states[index];
    let trigger_index = state.trigger;
    if let Some(Memory::BlockedSession { close, lag }) = state.memory_mut() {
        if *close - lag.span() != due {
            return;
        }
        if *close > due {
            // The session went on since the timer was placed.
            let close = *close;
            *lag = Lag::ZERO;
            ctx.timers
                .insert(ctx.timer(close, token, TimerPurpose::WindowClose));
            return;
        }
        // It ended: nothing to match, nothing to keep.
        state.set_memory(Memory::None);
        if state.ladder.is_none() {
            ctx.remove_state(index);
        }
        return;
    }
    let Some(Memory::Count(count)) = state.memory_mut() else {
        return;
    };
    if count.window_close.get() != Some(due) {
        return;
    }
    count.window_close = MaybeTime::NONE;
    let trigger = ctx.plan.trigger(trigger_index);
    let Pattern::Count { min, window, .. } = &trigger.pattern else {
        return;
    };
    if let Window::Session(gap) = window {
        let close_at = count.last.get().map_or(due, |last| last + *gap);
        if close_at > due {
            // The session went on since the timer was placed.
            count.window_close = Some(close_at).into();
            ctx.timers.insert(TimerEntry {
                due: close_at,
                customer: ctx.cid,
                token,
                purpose: TimerPurpose::WindowClose,
            });
            return;
        }
    }
    let Memory::Count(memory) = state.take_memory() else {
        return;
    };
    let group = memory
        .groups
        .iter()
        .find(|g| g.fired && g.count >= *min)
        .or_else(|| memory.groups.iter().find(|g| g.count >= *min))
        .map(|g| g.value.to_string());
    match group {
        Some(group) if memory.unless_at.get().is_none() => {
            let mut properties = memory.properties;
            if !group.is_empty() {
                reserve_one(&mut properties, usize::MAX);
                properties.push(("group".to_string(), Value::String(group)));
            }
            match fixed_first_offset(trigger, &properties) {
                Some(first_at) => {
                    ctx.start_ladder(index, due, first_at, &memory.events, properties)
                }
                None => ctx.remove_state(index),
            }
        }
        _ => {
            if ctx.customer.states[index].ladder.is_none() {
                ctx.remove_state(index);
            }
        }
    }
}

/// Payload names the engine sets, made at compile time (see `Payload::set`).
const OFFER: CompactString = CompactString::const_new("offer");
const CART: CompactString = CompactString::const_new("cart");
const CART_VALUE: CompactString = CompactString::const_new("cart_value");
const SCHEDULED_FOR: CompactString = CompactString::const_new("scheduled_for");

/// Builds the decision for `step` of the ladder of state `index`.
fn build_candidate(ctx: &mut Ctx<'_>, index: usize, step: usize, due: Timestamp) -> Candidate {
    let plan = ctx.plan;
    let customer = &*ctx.customer;
    let (key, carts) = (&customer.key, &customer.carts);
    let state = &customer.states[index];
    let trigger = plan.trigger(state.trigger);
    let ladder = state.ladder.as_ref().expect("called with a ladder");
    let events = ladder
        .events
        .as_slice()
        .iter()
        .map(MessageId::to_text)
        .collect();
    let variant = trigger.variants.get(usize::from(ladder.variant));
    let step_config = &trigger.steps[step];
    let channel = variant
        .and_then(|v| v.channel.clone())
        .unwrap_or_else(|| step_config.channel.clone());
    let offer = variant
        .and_then(|v| v.offer.clone())
        .or_else(|| step_config.offer.clone());
    // The key as the state holds it, cloned where needed rather than
    // converted from text again.
    let entity_text = state.entity_text();
    let entity = entity_text.map(CompactString::as_str);
    let step_number = step as u32 + 1;
    // The step's own deadline, anchor + offset: a step set up already past
    // it (a late event's, or a "30 days before" of points expiring in ten)
    // fires at once but was due then, and is stale as long after that.
    let offset = match (step, variant.and_then(|v| v.first_step_at)) {
        (0, Some(first)) => Some(first),
        _ => resolve_offset(&step_config.at, &ladder.properties),
    };
    let fired_at = offset.map_or(due, |offset| (ladder.anchor + offset).min(due));
    let hash = stable_hash(
        plan.pipeline.settings.seed,
        &[
            plan.pipeline.name.as_bytes(),
            trigger.id.as_bytes(),
            key.as_bytes(),
            entity.unwrap_or("").as_bytes(),
            &ladder.anchor.0.to_le_bytes(),
            &step_number.to_le_bytes(),
        ],
    );
    let mut payload = Payload::new();
    if let Some(offer) = offer {
        payload.set(OFFER, PayloadValue::Shared(offer));
    }
    match (&trigger.key, entity_text) {
        (crate::config::KeySpec::Property(name), Some(entity))
        | (crate::config::KeySpec::ListItem { field: name, .. }, Some(entity)) => {
            // Copied into the name's inline room, not cloned onto the heap.
            payload.set(name.as_str(), PayloadValue::Text(entity.clone()));
        }
        _ => {}
    }
    if trigger.payload.cart {
        let mut carts = carts.iter().filter(|cart| match (&trigger.key, entity) {
            (crate::config::KeySpec::Property(_), Some(entity)) => &*cart.id == entity,
            _ => true,
        });
        // Sized up front for the first cart, mostly the only one (growing
        // it line by line reallocated per decision; counting the lines of
        // every cart first compared each cart's id twice).
        let first = carts.next();
        let mut items = Vec::with_capacity(first.map_or(0, |cart| cart.lines.len()));
        let mut value = 0.0;
        for cart in first.into_iter().chain(carts) {
            value += cart.value();
            items.extend(cart.lines.iter().map(|line| CartItem {
                price: line.price,
                product_id: line.product_id.clone(),
                quantity: line.quantity,
            }));
        }
        payload.set(CART, PayloadValue::Cart(items));
        payload.set(
            CART_VALUE,
            PayloadValue::Number((value * 100.0).round() / 100.0),
        );
    }
    for (name, value) in &ladder.properties {
        payload.set(name.as_str(), PayloadValue::Json(value.clone()));
    }
    if let Pattern::Schedule { .. } = trigger.pattern {
        payload.set(
            SCHEDULED_FOR,
            PayloadValue::Text(ladder.anchor.to_rfc3339().into()),
        );
    }
    let decision = Decision {
        action_id: kairos_model::ids::action_id(hash),
        user_id: key.clone(),
        trigger: trigger.id.clone(),
        step: step_number,
        channel,
        priority: trigger.priority,
        variant: variant
            .map(|v| v.name.clone())
            .unwrap_or_else(|| plan.control_variant.clone()),
        fired_at,
        decided_at: due,
        expires_at: fired_at + trigger.expires_after,
        suppressed: None,
        rule: trigger.rule.clone(),
        events,
        payload,
        recommend: None,
    };
    Candidate {
        trigger: state.trigger,
        entity: entity_text.cloned(),
        held_back: state.held_back,
        first_pass: true,
        decision,
    }
}

/// Starts a ladder for a match found outside the per-customer patterns (a
/// global rate spike).
pub fn start_match(
    ctx: &mut Ctx<'_>,
    trigger_index: u16,
    entity: Option<&str>,
    anchor: Timestamp,
    events: &[MessageId],
    properties: Properties,
) {
    let trigger = ctx.plan.trigger(trigger_index);
    let Some(first_at) = fixed_first_offset(trigger, &properties) else {
        return;
    };
    let index = ctx.find_or_insert(trigger_index, entity, Memory::default);
    ctx.start_ladder(index, anchor, first_at, events, properties);
}

#[cfg(test)]
mod cadence {
    use super::*;

    #[test]
    fn an_offset_from_cadence_is_never_longer_than_a_configured_one() {
        let days = |n: i64| Timestamp(n * Span::DAY.0);
        let history = [days(0), days(10), days(20)];
        let offset = |multiplier| cadence_offset(&history, multiplier, Span::DAY, 2, None);
        assert_eq!(offset(2.0), Some(Span::DAY * 20));
        assert_eq!(offset(1e12), Some(Span::LONGEST));
        assert_eq!(cadence_offset(&history[..1], 2.0, Span::DAY, 2, None), None);
    }
}

#[cfg(test)]
mod tallies {
    use super::*;

    /// Adds one event at `time` as the threshold pattern does.
    fn count(memory: &mut Memory, time: Timestamp) -> f64 {
        add_to_measure(memory, time, Span::HOUR, 2 * MEASURE_BUCKETS, 1.0).expect("a measure");
        let measure = memory.measure_mut().expect("a measure");
        measure.sum(0, 2 * MEASURE_BUCKETS)
    }

    #[test]
    fn a_group_label_is_property_equals_value_whatever_its_length() {
        for (property, value) in [
            ("product_id", "p1"),
            ("category", "électroménager"),
            ("product_id", "a value too long to be held inline"),
            ("", ""),
        ] {
            let label = group_label(property, &PropertyValue::String(value.into()));
            assert_eq!(label, format!("{property}={value}"));
            assert_eq!(label.is_heap_allocated(), label.len() > 24, "{label}");
        }
    }

    #[test]
    fn a_tally_past_255_in_one_bucket_becomes_sums_and_stays_exact() {
        let mut memory = Memory::new_measure(2, true);
        let earlier = Timestamp(0);
        assert_eq!(count(&mut memory, earlier), 1.0);
        let now = Timestamp(Span::HOUR.0 * 3);
        for n in 1..=255 {
            assert_eq!(count(&mut memory, now), f64::from(n) + 1.0);
        }
        assert!(matches!(memory, Memory::TallyTwoWindows(_)));
        assert_eq!(count(&mut memory, now), 257.0);
        assert!(matches!(memory, Memory::MeasureTwoWindows(_)));
        for n in 258..=70_000 {
            assert_eq!(count(&mut memory, now), f64::from(n));
        }
        // The older bucket survived the widening, in its place.
        let measure = memory.measure_mut().expect("a measure");
        assert_eq!(measure.sum(3, 1), 1.0);
        assert_eq!(measure.sum(0, 1), 69_999.0);
    }

    #[test]
    fn sums_and_counts_of_one_event_each_agree() {
        let mut sums = Memory::new_measure(1, false);
        let mut counts = Memory::new_measure(1, true);
        for hours in [0, 1, 1, 5, 4, 30, 31, 31] {
            let time = Timestamp(Span::HOUR.0 * hours);
            assert_eq!(count(&mut sums, time), count(&mut counts, time));
        }
    }
}
