//! The [`Engine`]: inputs, outputs, and the loop that applies events and
//! fires timers in event-time order.

use crate::attribution::{self, DecisionRecord};
use crate::config::{LateEvents, Pattern, Pipeline};
use crate::customer::{Customer, DeferredDecision, MessageId, Population};
use crate::decision::{Decision, Suppression};
use crate::globals::{Globals, RateMemory};
use crate::growth::reserve_one;
use crate::id_index::{IdIndex, IdKey};
use crate::local_time::{local_hour, parse_month_day};
use crate::lookahead::{Lookahead, Start, EVENTS_AHEAD, TIMERS_AHEAD};
use crate::matching::{matches_any, DEFAULT_ENTITY};
use crate::patterns::{self, discard_state, Ctx};
use crate::plan::{CartEvent, Handling, Plan, RouteId};
use crate::policy::{self, Candidate, Verdict};
use crate::reorder::ReorderBuffer;
use crate::slots::{Slot, Slots};
use crate::stats::{Packing, Stats, TriggerStats, VariantStats};
use crate::taste::{self, Interaction, ItemVectors};
use crate::timers::{TimerEntry, TimerPurpose, TimerTable};
use kairos_model::{Event, EventType, PropertyValue, Span, Timestamp};
use serde_json::json;
use smallvec::SmallVec;
use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::VecDeque;

/// Once the input is closed (the end of a backtest, whose clock then runs
/// to the end of time), recurring schedules (birthdays, period ends) go on
/// at most this far beyond the newest event, instead of looping forever.
/// While events may still come they always go on: a clock advanced through
/// a quiet spell (a service's wall clock) must not lose next year's
/// birthday, and an occurrence armed then but beyond this horizon once the
/// input closes is dropped when it comes up, as if never armed.
const RECURRENCE_HORIZON: kairos_model::Span = kairos_model::Span(400 * 86_400_000);

/// The key of the pseudo-customer that global (`rate`) triggers act for.
pub const OPS_CUSTOMER: &str = "_ops";

/// The deterministic trigger engine. See the crate docs for the contract.
pub struct Engine {
    pub(crate) plan: Plan,
    /// Promise: every on-time event before this has been seen.
    pub(crate) watermark: Timestamp,
    /// Newest event time seen.
    pub(crate) newest_event: Timestamp,
    /// Events not yet behind the watermark.
    pub(crate) buffer: ReorderBuffer,
    /// Brings buffered events' customers into cache before they are needed.
    pub(crate) lookahead: Lookahead,
    /// Time of the last applied event or fired timer; never goes backwards.
    pub(crate) now: Timestamp,
    pub(crate) customers: Slots,
    /// Slots freed by erasure or merging, each with the token its next
    /// occupant starts from: tokens are not reused in a slot (until they
    /// wrap), so a cancelled timer left in the table cannot be taken for a
    /// new occupant's (see `timers`).
    pub(crate) free_slots: Vec<(u32, u32)>,
    /// The ops pseudo-customer's slot, once a rate trigger has matched.
    pub(crate) ops_slot: Option<u32>,
    /// Every known id (userId or anonymousId) → customer slot.
    pub(crate) ids: IdIndex,
    pub(crate) timers: TimerTable,
    pub(crate) globals: Globals,
    pub(crate) output: VecDeque<Decision>,
    /// Applied events kept for the caller to drop (see
    /// [`Engine::hand_back_events`]); `None`: dropped here.
    pub(crate) spent: Option<Vec<Event>>,
    /// No more events will come (see [`Engine::close_input`]), or the
    /// clock was run to the end of time.
    pub(crate) input_closed: bool,
    pub(crate) stats: Stats,
    /// The catalog's item vectors, for taste vectors and recommendation
    /// queries; empty: neither (see `taste`).
    pub(crate) items: ItemVectors,
}

impl Engine {
    /// An engine for a validated pipeline, with no customers and the clock
    /// at the beginning of time.
    pub fn new(pipeline: Pipeline) -> Engine {
        let stats = Stats {
            triggers: pipeline
                .triggers
                .iter()
                .map(|trigger| TriggerStats {
                    id: trigger.id.to_string(),
                    variants: trigger
                        .variant_names()
                        .map(|name| VariantStats {
                            name: name.to_string(),
                            ..VariantStats::default()
                        })
                        .collect(),
                    ..TriggerStats::default()
                })
                .collect(),
            ..Stats::default()
        };
        Engine {
            plan: Plan::new(pipeline),
            watermark: Timestamp::MIN,
            newest_event: Timestamp::MIN,
            buffer: ReorderBuffer::default(),
            lookahead: Lookahead::default(),
            now: Timestamp::MIN,
            customers: Slots::default(),
            free_slots: Vec::new(),
            ops_slot: None,
            ids: IdIndex::default(),
            timers: TimerTable::default(),
            globals: Globals::default(),
            output: VecDeque::new(),
            spent: None,
            input_closed: false,
            stats,
            items: ItemVectors::new(),
        }
    }

    /// Hands applied events back instead of dropping them: freeing an
    /// event's strings and property list is a noticeable share of the work
    /// per event, and a caller with a thread of its own (the backtest's
    /// parser, which allocated them) can do it there. Once on, collect them
    /// with [`Engine::take_spent_events`], or they accumulate.
    pub fn hand_back_events(&mut self) {
        self.spent.get_or_insert_with(Vec::new);
    }

    /// The events applied since the last call (with
    /// [`Engine::hand_back_events`]; otherwise none), in the order applied.
    pub fn take_spent_events(&mut self) -> Vec<Event> {
        match &mut self.spent {
            Some(spent) => std::mem::replace(spent, Vec::with_capacity(spent.len())),
            None => Vec::new(),
        }
    }

    /// The catalog's item vectors, to load or change (between two events;
    /// a change applies to the next event and decision). Not part of a
    /// snapshot: the service loads the catalog's current vectors again
    /// after restoring one.
    pub fn item_vectors_mut(&mut self) -> &mut ItemVectors {
        &mut self.items
    }

    // ----- getters -------------------------------------------------------

    /// The catalog's item vectors.
    pub fn item_vectors(&self) -> &ItemVectors {
        &self.items
    }

    /// The pipeline in force.
    pub fn pipeline(&self) -> &Pipeline {
        &self.plan.pipeline
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The current watermark.
    pub fn watermark(&self) -> Timestamp {
        self.watermark
    }

    /// Customers held.
    pub fn customer_count(&self) -> usize {
        self.customers.len() - self.free_slots.len()
    }

    /// Customers packed now, and customers packed and unpacked so far (see
    /// `settings.pack_idle_after`).
    pub fn packing(&self) -> Packing {
        self.customers.packing()
    }

    /// Timers held (ladder steps, window closes, deferred decisions),
    /// including cancelled ones the table has not dropped yet: in buckets
    /// ahead, at most about as many as the live ones; in the bucket being
    /// fired (about a minute), all of them until they come up (see `timers`).
    pub fn pending_timers(&self) -> usize {
        self.timers.len()
    }

    /// Whether any state mentions `id` (a userId or anonymousId): used to
    /// prove erasure.
    pub fn holds_anything_about(&self, id: &str) -> bool {
        self.ids.contains(id)
            || self.customers.any(|customer| {
                &*customer.key == id
                    || customer.aliases().iter().any(|known| &**known == id)
                    || customer.deferred().iter().any(|d| d.decision.user_id == id)
            })
    }

    // ----- inputs --------------------------------------------------------

    /// Hands the engine one event. It is applied once the watermark passes
    /// its event time (at most `allowed_lateness` behind the newest event
    /// seen, or at the next [`Engine::advance_to`]). An event already behind
    /// the watermark is late: counted, then applied at once or dropped as
    /// `settings.late_events` says.
    pub fn handle_event(&mut self, event: Event) {
        self.stats.events += 1;
        if event.time < self.watermark {
            self.stats.late += 1;
            // An erasure is carried out however late it comes: dropping it
            // would keep what the customer asked to have removed.
            if self.plan.pipeline.settings.late_events == LateEvents::Drop
                && !is_erasure(&self.plan, &event, self.plan.route_id(&event.name))
            {
                self.stats.late_dropped += 1;
                return;
            }
            let message_hash = event.message_hash();
            self.apply(&event, message_hash, None);
            self.retire(event);
            self.pump();
            return;
        }
        if event.time > self.newest_event {
            self.newest_event = event.time;
            let lateness = self.plan.pipeline.settings.allowed_lateness;
            self.watermark = self.watermark.max(self.newest_event - lateness);
        }
        let message_hash = event.message_hash();
        let customer = Lookahead::ACTIVE.then(|| self.ids.key(event.customer_key()));
        self.buffer.push(event, message_hash, customer);
        self.pump();
    }

    /// Hands the engine one event in a live service, whose clock (the time
    /// its input stream stored the event, or a tick's) reads `clock`. The
    /// clock is advanced first, firing what was due before it. A service
    /// cannot hold events back for the allowed lateness without delaying
    /// every immediate trigger by as much, so an event up to
    /// `allowed_lateness` behind the clock is on time: applied at once, in
    /// arrival order. One further behind is late (see [`config::LateEvents`]),
    /// and one ahead of the clock waits for it.
    ///
    /// An event more than `allowed_lateness` ahead of the clock is refused
    /// and changes nothing: its time would carry the watermark forward and
    /// fire everyone's timers early. The same sequence of events and clocks
    /// gives the same decisions, which is what lets a service replay its
    /// input after a crash.
    ///
    /// [`config::LateEvents`]: crate::config::LateEvents
    pub fn handle_live_event(
        &mut self,
        event: Event,
        clock: Timestamp,
    ) -> Result<(), AheadOfClock> {
        let lateness = self.plan.pipeline.settings.allowed_lateness;
        if event.time > clock.saturating_add(lateness) {
            return Err(AheadOfClock {
                event_time: event.time,
                clock,
                allowed: lateness,
            });
        }
        self.advance_to(clock);
        if event.time < self.watermark && event.time >= self.watermark - lateness {
            self.stats.events += 1;
            let message_hash = event.message_hash();
            self.apply(&event, message_hash, None);
            self.retire(event);
            self.pump();
        } else {
            self.handle_event(event);
        }
        Ok(())
    }

    /// Declares that no more on-time events before `watermark` will come, and
    /// processes everything before it: buffered events and every timer due
    /// strictly before it. Calling it again with the same or an earlier time
    /// changes nothing. `Timestamp::MAX` drains everything.
    pub fn advance_to(&mut self, watermark: Timestamp) {
        if watermark > self.watermark {
            self.watermark = watermark;
            // Nothing arriving after the end of time can be on time: as
            // good as closed (see `Engine::close_input`).
            self.input_closed |= watermark == Timestamp::MAX;
            self.pump();
        }
    }

    /// Declares that no more events will come (the end of a backtest's
    /// input): the clock may still be advanced to fire what is pending, but
    /// idle customers are no longer packed, which would be work for nothing
    /// (every customer goes idle while a backtest runs its clock through the
    /// year after its input), and recurring schedules stop about a year after
    /// the newest event (see `RECURRENCE_HORIZON`), so that running the clock
    /// deadline by deadline comes to an end. Advancing to `Timestamp::MAX`
    /// does the same.
    pub fn close_input(&mut self) {
        self.input_closed = true;
    }

    /// Erases a customer (by any of their ids): state, timers, pending
    /// decisions, identity links, rank contributions. Returns whether anything
    /// was held.
    pub fn erase(&mut self, id: &str) -> bool {
        let Some(slot) = self.ids.get(id) else {
            return false;
        };
        let Some(mut customer) = self.customers.take(slot) else {
            return false;
        };
        let occasional = customer.take_occasional();
        for state in customer.states {
            discard_state(&mut self.timers, &mut self.globals, slot, state);
        }
        for deferred in occasional.deferred {
            self.timers.remove(&deferred_entry(slot, &deferred));
        }
        self.ids.remove(&customer.key);
        for known in &occasional.aliases {
            self.ids.remove(known);
        }
        self.free_slots.push((slot, customer.next_token));
        self.stats.erasures += 1;
        true
    }

    // ----- outputs -------------------------------------------------------

    /// The next decision, in the order they were made.
    pub fn poll_decision(&mut self) -> Option<Decision> {
        self.output.pop_front()
    }

    /// The earliest pending deadline: call [`Engine::advance_to`] with a
    /// later time to fire it. It may be a cancelled timer's (the table drops
    /// some only when they come up), so waking for it may fire nothing.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.timers.next_due()
    }

    /// The earliest time at which advancing the clock does something: the
    /// [`Engine::poll_timeout`] deadline, or an event waiting in the reorder
    /// buffer for the watermark to pass it.
    pub fn poll_pending(&self) -> Option<Timestamp> {
        match (self.buffer.earliest(), self.timers.next_due()) {
            (Some(event), Some(timer)) => Some(event.min(timer)),
            (event, timer) => event.or(timer),
        }
    }

    // ----- the loop ------------------------------------------------------

    /// Applies buffered events and fires timers that are behind the
    /// watermark, in time order; an event at time t goes before a timer due
    /// at t.
    fn pump(&mut self) {
        loop {
            let event_time = self.buffer.earliest().filter(|t| *t < self.watermark);
            let timer_due = self.timers.next_due().filter(|t| *t < self.watermark);
            match (event_time, timer_due) {
                (Some(event), timer) if timer.is_none_or(|due| event <= due) => {
                    if Lookahead::ACTIVE {
                        // The event that leaves a walk's length from now.
                        let ahead = self.buffer.ahead(EVENTS_AHEAD).and_then(|waiting| {
                            Some(Start::Event(waiting.customer?, waiting.message_hash))
                        });
                        self.look_ahead(ahead);
                    }
                    if let Some(place) = self.buffer.pop() {
                        // Applied where it waited (see `ReorderBuffer::lend`).
                        let lent = self.buffer.lend();
                        if let Some(waiting) = lent.get(place) {
                            let (hash, key) = (waiting.message_hash, waiting.customer);
                            self.apply(&waiting.event, hash, key);
                        }
                        let keep = self.spent.is_some();
                        if let Some(event) = self.buffer.release(lent, place, keep) {
                            self.retire(event);
                        }
                    }
                }
                (_, Some(_)) => {
                    if let Some(first) = self.timers.pop_before(self.watermark) {
                        if Lookahead::ACTIVE {
                            let ahead = self.timers.customer_ahead(TIMERS_AHEAD);
                            self.look_ahead(ahead.map(|slot| Start::Slot(slot, None)));
                        }
                        self.fire(first);
                    }
                }
                _ => break,
            }
        }
        if self.timers.wants_compaction() {
            let customers = &self.customers;
            self.timers.compact(|entry| is_pending(customers, entry));
        }
        // Once nothing more arrives, packing would be work for nothing.
        if !self.input_closed {
            let settings = &self.plan.pipeline.settings;
            self.customers
                .sweep(self.now, settings.pack_idle_after, settings.dedup_lookback);
        }
    }

    /// Hands the lookahead the customer of an event or a timer coming up.
    fn look_ahead(&mut self, start: Option<Start>) {
        let population = Population {
            ids: &self.ids,
            customers: &self.customers,
        };
        self.lookahead.push(start, &population);
    }

    fn advance_now(&mut self, time: Timestamp) {
        debug_assert!(
            time >= self.now || time < self.watermark,
            "time went backwards"
        );
        self.now = self.now.max(time);
    }

    /// An applied event: dropped, or kept for the caller.
    fn retire(&mut self, event: Event) {
        if let Some(spent) = &mut self.spent {
            spent.push(event);
        }
    }

    /// Applies one event; `message_hash` is its [`Event::message_hash`],
    /// `key` the id key of its [`Event::customer_key`] if taken on arrival.
    fn apply(&mut self, event: &Event, message_hash: u64, key: Option<IdKey>) {
        self.advance_now(event.time);
        let route_id = self.plan.route_id(&event.name);
        if is_erasure(&self.plan, event, route_id) {
            for id in [event.user_id.as_deref(), event.anonymous_id.as_deref()]
                .into_iter()
                .flatten()
            {
                self.erase(id);
            }
            return;
        }
        let slot = self.resolve_identity(event, key);
        let settings = &self.plan.pipeline.settings;
        let (lookback, max_carts) = (settings.dedup_lookback, settings.max_keys_per_trigger);
        let (half_life, window) = (settings.taste_half_life, settings.attribution_window);
        let conversion =
            self.plan.route(route_id).handling.conversion && event.event_type == EventType::Track;
        let Some(customer) = self.customers.get_mut(slot) else {
            return;
        };
        customer.touched = customer.touched.max(event.time);
        if !customer
            .seen
            .first_sighting(message_hash, event.time, lookback)
        {
            self.stats.duplicates += 1;
            return;
        }
        if conversion {
            // Before the triggers see it: an action the conversion itself
            // causes is not credited with it.
            let touch = customer
                .occasional_if_any()
                .and_then(|occasional| occasional.last_touch.as_mut());
            if let Some(touch) = touch {
                let revenue = attribution::revenue(event);
                attribution::attribute(
                    touch,
                    event.time,
                    revenue,
                    window,
                    &mut self.stats.triggers,
                );
            }
        }
        let Some(mut ctx) = self.ctx(slot) else {
            return;
        };
        let plan = ctx.plan;
        let route = plan.route(route_id);
        let zone_before = ctx.customer.profile.timezone;
        update_profile(plan, ctx.customer, event, route.handling);
        let emptied = update_carts(ctx.customer, event, route.handling, max_carts);
        if let Some(how) = route.handling.taste {
            if plan.recommends && !ctx.items.is_empty() && event.event_type == EventType::Track {
                learn_taste(ctx.customer, ctx.items, event, how, half_life);
            }
        }
        let message = patterns::EventMessage::new(&event.message_id);
        for &trigger in &route.triggers {
            patterns::on_event(&mut ctx, trigger, event, &message, emptied.as_deref());
        }
        if ctx.customer.profile.timezone != zone_before {
            // Birthdays at 09:00 local time and period ends move with the
            // zone, whichever event told it.
            for &trigger in &plan.zone_schedules {
                patterns::on_zone_change(&mut ctx, trigger);
            }
        }
        // Most pipelines have no rate trigger: copying the empty list out
        // cost ~25 instructions an event.
        if route.rates.is_empty() {
            return;
        }
        // Copied out: counting changes the engine, whose plan holds them.
        let rates: SmallVec<[u16; 4]> = SmallVec::from_slice(&route.rates);
        for trigger in rates {
            self.on_rate(trigger, event);
        }
    }

    /// Counts an event for a global rate trigger and matches on a spike.
    fn on_rate(&mut self, trigger_index: u16, event: &Event) {
        let trigger = self.plan.trigger(trigger_index);
        let Pattern::Rate {
            events,
            window,
            baseline,
            increase_percent,
            min_count,
            pause_marketing,
        } = &trigger.pattern
        else {
            return;
        };
        if !matches_any(events, event, &self.plan.pipeline.stores) {
            return;
        }
        let now = self.now;
        let slot = usize::from(trigger_index);
        if self.globals.rates.len() <= slot {
            self.globals.rates.resize_with(slot + 1, || None);
        }
        let memory = self.globals.rates[slot].get_or_insert_with(|| RateMemory::new(*window, now));
        memory.count(now, *baseline + *window * 2);
        if now - memory.first_seen < *baseline
            || memory.last_match.is_some_and(|at| now - at < *window)
        {
            return;
        }
        let (current, average) = memory.current_and_baseline(now, *window, *baseline);
        if current < u64::from(*min_count)
            || (current as f64) < average * (1.0 + increase_percent / 100.0)
        {
            return;
        }
        memory.last_match = Some(now);
        self.globals.breaker_until = self.globals.breaker_until.max(now + *pause_marketing);
        let ops = self.ops_slot();
        let Some(mut ctx) = self.ctx(ops) else {
            return;
        };
        let properties = thin_vec::thin_vec![
            ("current".to_string(), json!(current)),
            (
                "baseline_average".to_string(),
                json!((average * 100.0).round() / 100.0),
            ),
        ];
        patterns::start_match(
            &mut ctx,
            trigger_index,
            None,
            now,
            &[MessageId::new(&event.message_id)],
            properties,
        );
    }

    /// Fires every timer due at `first.due` for `first.customer`, including
    /// those set for that instant while firing (a window close that matches
    /// starts its ladder there), then runs the resulting decisions through
    /// the policy, highest priority first, ties in the pipeline file's order
    /// (arbitration between triggers firing at the same instant).
    fn fire(&mut self, first: TimerEntry) {
        let (due, slot) = (first.due, first.customer);
        // Mostly alone (a ladder step): the first timer is held apart, and
        // only others of the same instant and customer go in a list, which
        // is then mostly left empty (making, filtering and draining a list
        // of one was about a quarter of this function's own work).
        let mut others: SmallVec<[TimerEntry; 4]> = SmallVec::new();
        while let Some(next) = self.timers.pop_if_same(due, slot) {
            others.push(next);
        }
        // Cancelled timers the table could not remove come up too; they must
        // not move the clock (a late event's decision depends on it). A
        // packed customer is unpacked to tell.
        self.customers.get_mut(slot);
        let mut first = Some(first).filter(|entry| is_pending(&self.customers, entry));
        if !others.is_empty() {
            others.retain(|entry| is_pending(&self.customers, entry));
        }
        if first.is_none() && others.is_empty() {
            return;
        }
        self.advance_now(due);
        // Mostly one (a ladder step): the first is held apart, not in a
        // list, so that when it is alone it goes to the policy as it is
        // (a candidate is a few hundred bytes, copied at every move).
        let mut first_candidate: Option<Candidate> = None;
        let mut more: Vec<Candidate> = Vec::new();
        loop {
            let Some(mut ctx) = self.ctx(slot) else {
                return;
            };
            for entry in first.take().into_iter().chain(others.drain(..)) {
                if let Some(candidate) = fire_entry(&mut ctx, entry) {
                    match first_candidate {
                        None => first_candidate = Some(candidate),
                        Some(_) => more.push(candidate),
                    }
                }
            }
            // Timers set for this very instant while handling the batch
            // join it, so that arbitration sees their decisions too.
            while let Some(next) = self.timers.pop_if_same(due, slot) {
                others.push(next);
            }
            if others.is_empty() {
                break;
            }
            others.retain(|entry| is_pending(&self.customers, entry));
            if others.is_empty() {
                break;
            }
        }
        let Some(candidate) = first_candidate else {
            return;
        };
        if more.is_empty() {
            self.deliver(slot, candidate);
            return;
        }
        // Several: in the order made, then sorted (stably) for arbitration.
        more.insert(0, candidate);
        more.sort_by_key(|candidate| (Reverse(candidate.decision.priority), candidate.trigger));
        for candidate in more {
            self.deliver(slot, candidate);
        }
    }

    /// Everything a pattern may touch while acting for the customer in `slot`.
    pub(crate) fn ctx(&mut self, slot: u32) -> Option<Ctx<'_>> {
        Some(Ctx {
            plan: &self.plan,
            timers: &mut self.timers,
            globals: &mut self.globals,
            customer: self.customers.get_mut(slot)?,
            cid: slot,
            now: self.now,
            items: &self.items,
            horizon: match self.input_closed {
                true => self.newest_event + RECURRENCE_HORIZON,
                false => Timestamp::MAX,
            },
            states_from: Default::default(),
        })
    }

    /// Runs the policy on a candidate and outputs or defers it.
    fn deliver(&mut self, slot: u32, mut candidate: Candidate) {
        let now = self.now;
        let Some(customer) = self.customers.get_mut(slot) else {
            return;
        };
        let channel = self.plan.channel_index(&candidate.decision.channel);
        let verdict = match policy::judge(
            &self.plan,
            customer,
            self.globals.breaker_until,
            &candidate,
            channel,
            now,
        ) {
            // Either final verdict is decided now: a decision deferred to
            // quiet hours' end and suppressed then was decided then, not
            // when it fired (a `--until` between the two left it out).
            Err(reason) => {
                candidate.decision.suppressed = Some(reason);
                candidate.decision.decided_at = now;
                Verdict::Final
            }
            Ok(Some(later)) => Verdict::Defer(later),
            Ok(None) => {
                policy::record_sent(&self.plan, customer, &candidate, channel, now);
                candidate.decision.decided_at = now;
                Verdict::Final
            }
        };
        match verdict {
            Verdict::Final => {
                let (step, suppressed) = (candidate.decision.step, candidate.decision.suppressed);
                let held_back = step == 1 && suppressed == Some(Suppression::Cooldown);
                self.ask_for_recommendations(slot, &mut candidate);
                self.record_decision(slot, &candidate, now);
                // Moved straight into the queue, not through a local: a
                // decision is a few hundred bytes, and each move copies it.
                self.output.push_back(candidate.decision);
                if held_back {
                    if let Some(mut ctx) = self.ctx(slot) {
                        let entity = candidate.entity.as_deref();
                        patterns::hold_back_journey(&mut ctx, candidate.trigger, entity);
                    }
                }
            }
            Verdict::Defer(due) => {
                let token = customer.token();
                let deferred = DeferredDecision {
                    token,
                    trigger: candidate.trigger,
                    entity: candidate.entity,
                    due,
                    held_back: candidate.held_back,
                    decision: Box::new(candidate.decision),
                };
                self.timers.insert(deferred_entry(slot, &deferred));
                customer.occasional_mut().deferred.push(deferred);
            }
        }
    }

    /// Counts a final decision in the trigger's statistics and keeps it in
    /// the customer's record (see `attribution`).
    fn record_decision(&mut self, slot: u32, candidate: &Candidate, now: Timestamp) {
        let decision = &candidate.decision;
        let trigger = self.plan.trigger(candidate.trigger);
        let variant = variant_index(trigger, &decision.variant);
        let stats = &mut self.stats.triggers[usize::from(candidate.trigger)];
        stats.record(decision.step, decision.suppressed);
        if let Some(counts) = stats.variants.get_mut(variant) {
            match decision.suppressed {
                None => counts.sent += 1,
                Some(Suppression::Holdout) => counts.held_out += 1,
                Some(_) => {}
            }
        }
        let Some(customer) = self.customers.get_mut(slot) else {
            return;
        };
        let occasional = customer.occasional_mut();
        let record = DecisionRecord {
            at: now,
            trigger: candidate.trigger,
            step: decision.step.min(u32::from(u8::MAX)) as u8,
            variant: variant.min(usize::from(u8::MAX)) as u8,
            suppressed: decision.suppressed,
        };
        attribution::record_decision(
            &mut occasional.decisions,
            &mut occasional.last_touch,
            record,
        );
    }

    /// Leaves a sent decision whose trigger recommends items with the query
    /// for them (see `taste`).
    fn ask_for_recommendations(&mut self, slot: u32, candidate: &mut Candidate) {
        let trigger = self.plan.trigger(candidate.trigger);
        let k = trigger.payload.recommendations;
        if k == 0 || candidate.decision.suppressed.is_some() || self.items.is_empty() {
            return;
        }
        let settings = &self.plan.pipeline.settings;
        let taste = self
            .customers
            .get_mut(slot)
            .and_then(|customer| customer.occasional_if_any())
            .and_then(|occasional| occasional.taste.as_deref());
        candidate.decision.recommend = Some(Box::new(taste::request(
            taste,
            &self.items,
            &candidate.decision.payload,
            k,
            self.now,
            settings.recently_bought,
            settings.taste_half_life,
        )));
    }

    // ----- identity ------------------------------------------------------

    /// The slot for `id`, created when unknown; `key`: its id key, if
    /// known already (hashing the id again is a noticeable share of the
    /// work per event).
    fn customer_slot(&mut self, id: &str, key: Option<IdKey>) -> u32 {
        let key = key.unwrap_or_else(|| self.ids.key(id));
        debug_assert_eq!(key, self.ids.key(id), "the key of another id");
        if let Some(slot) = self.ids.get_key(key) {
            return slot;
        }
        let slot = self.new_slot(id);
        self.ids.insert_key(key, slot);
        slot
    }

    /// The slot of the pseudo-customer global triggers act for. It is kept
    /// out of the id index, so no customer's id (not even `_ops`) reaches
    /// its state, and erasing or merging customers never touches it.
    fn ops_slot(&mut self) -> u32 {
        match self.ops_slot {
            Some(slot) => slot,
            None => {
                let slot = self.new_slot(OPS_CUSTOMER);
                self.ops_slot = Some(slot);
                slot
            }
        }
    }

    /// A new customer keyed `key` in a free slot or a new one.
    fn new_slot(&mut self, key: &str) -> u32 {
        let mut customer = Customer::new(key);
        match self.free_slots.pop() {
            Some((slot, next_token)) => {
                customer.next_token = next_token;
                self.customers.put(slot, customer);
                slot
            }
            None => self.customers.push(customer),
        }
    }

    /// Finds the person an event belongs to, linking `anonymousId` /
    /// `previousId` to `userId` (merging two histories when both exist), so
    /// state follows the person across devices. `key`: the id key of the
    /// event's [`Event::customer_key`], if taken on arrival.
    fn resolve_identity(&mut self, event: &Event, key: Option<IdKey>) -> u32 {
        let other = event
            .previous_id
            .as_deref()
            .or(event.anonymous_id.as_deref());
        let Some(user) = event.user_id.as_deref() else {
            // The customer key is the anonymousId, which is `other` unless
            // a previousId came too.
            let key = key.filter(|_| event.previous_id.is_none() && other.is_some());
            return self.customer_slot(other.unwrap_or(DEFAULT_ENTITY), key);
        };
        // The customer key is the userId.
        let Some(other) = other.filter(|other| *other != user) else {
            return self.customer_slot(user, key);
        };
        match (self.ids.get(user), self.ids.get(other)) {
            (Some(person), Some(device)) if person != device => {
                self.merge(device, person);
                person
            }
            (Some(person), Some(_)) => person,
            (Some(person), None) => {
                self.ids.insert(other, person);
                if let Some(customer) = self.customers.get_mut(person) {
                    customer.occasional_mut().aliases.push(other.into());
                }
                person
            }
            (None, Some(device)) => {
                self.ids.insert(user, device);
                if let Some(customer) = self.customers.get_mut(device) {
                    let device_id = std::mem::replace(&mut customer.key, user.into());
                    let occasional = customer.occasional_mut();
                    occasional.aliases.push(device_id);
                    // Decisions held for later go out under the person's
                    // id, as a merge's do.
                    for deferred in &mut occasional.deferred {
                        deferred.decision.user_id = user.into();
                    }
                }
                device
            }
            (None, None) => {
                let person = self.customer_slot(user, key);
                self.ids.insert(other, person);
                if let Some(customer) = self.customers.get_mut(person) {
                    customer.occasional_mut().aliases.push(other.into());
                }
                person
            }
        }
    }

    /// Moves everything of customer `from` into `into`. Where both have state
    /// for the same trigger and key, the identified person's wins, except a
    /// journey each event restarts, which runs from the later start
    /// (`patterns::merge_journey`).
    fn merge(&mut self, from: u32, into: u32) {
        let half_life = self.plan.pipeline.settings.taste_half_life;
        let Some(mut source) = self.customers.take(from) else {
            return;
        };
        let occasional = source.take_occasional();
        self.free_slots.push((from, source.next_token));
        let Some(target) = self.customers.get_mut(into) else {
            return;
        };
        for id in occasional
            .aliases
            .iter()
            .chain(std::iter::once(&source.key))
        {
            self.ids.insert(id, into);
        }
        let mine = target.occasional_mut();
        mine.aliases.extend(occasional.aliases);
        mine.aliases.push(source.key);
        mine.sent.extend(occasional.sent);
        mine.sent.sort_by_key(|sent| sent.at);
        if let Some(hours) = occasional.engagement_hours {
            let mine = mine.engagement_hours.get_or_insert([0; 24]);
            for (mine, theirs) in mine.iter_mut().zip(hours.iter()) {
                *mine = mine.saturating_add(*theirs);
            }
        }
        if let Some(theirs) = occasional.taste {
            match &mut mine.taste {
                Some(taste) => taste.absorb(*theirs, half_life),
                None => mine.taste = Some(theirs),
            }
        }
        attribution::merge(
            (&mut mine.decisions, &mut mine.last_touch),
            (occasional.decisions, occasional.last_touch),
        );
        target.seen.absorb(source.seen);
        for cart in source.carts {
            let existing = target.cart_mut(&cart.id);
            for line in cart.lines {
                match existing
                    .lines
                    .iter_mut()
                    .find(|l| l.product_id == line.product_id)
                {
                    Some(known) => known.quantity = known.quantity.saturating_add(line.quantity),
                    None => existing.lines.push(line),
                }
            }
        }
        let profile = &mut target.profile;
        profile.timezone = profile.timezone.or(source.profile.timezone);
        profile.birthday = profile.birthday.or(source.profile.birthday);
        // Consent: the identified person's word where they gave one.
        let (theirs, stated) = (&source.profile, profile.consent_stated);
        profile.consent |= theirs.consent & !stated;
        profile.consent_stated |= theirs.consent_stated;
        for mut state in source.states {
            let taken = target.states.iter_mut().find(|mine| {
                mine.trigger == state.trigger && mine.entity_key() == state.entity_key()
            });
            if let Some(mine) = taken {
                let timers = &mut self.timers;
                patterns::merge_journey(&self.plan, timers, (from, &mut state), (into, mine));
                discard_state(timers, &mut self.globals, from, state);
                continue;
            }
            let token = target.token();
            if let Some(ladder) = &state.ladder {
                self.timers.remove(&TimerEntry {
                    due: ladder.timer_at(),
                    customer: from,
                    token: state.token,
                    purpose: TimerPurpose::Ladder,
                });
                self.timers.insert(TimerEntry {
                    due: ladder.timer_at(),
                    customer: into,
                    token,
                    purpose: TimerPurpose::Ladder,
                });
            }
            if let Some(due) = state.window_close() {
                self.timers.remove(&TimerEntry {
                    due,
                    customer: from,
                    token: state.token,
                    purpose: TimerPurpose::WindowClose,
                });
                self.timers.insert(TimerEntry {
                    due,
                    customer: into,
                    token,
                    purpose: TimerPurpose::WindowClose,
                });
            }
            state.token = token;
            target.states.push(state);
        }
        // Patterns find a trigger's states by binary search.
        target.states.sort_by_key(|state| state.trigger);
        // Two people's keys may add up to more than a customer keeps: the
        // oldest go, as when a new key comes in (`max_keys_per_trigger`).
        let limit = self.plan.pipeline.settings.max_keys_per_trigger.max(1);
        while target.carts.len() > limit {
            target.carts.remove(0);
        }
        while let Some(index) = over_key_limit(&target.states, limit) {
            let state = target.states.remove(index);
            discard_state(&mut self.timers, &mut self.globals, into, state);
        }
        for mut deferred in occasional.deferred {
            self.timers.remove(&deferred_entry(from, &deferred));
            deferred.token = target.token();
            deferred.decision.user_id = target.key.clone();
            self.timers.insert(deferred_entry(into, &deferred));
            target.occasional_mut().deferred.push(deferred);
        }
    }
}

/// The oldest (smallest token) entity-keyed state of the first trigger
/// holding more than `limit` keys, if any.
fn over_key_limit(states: &[crate::customer::KeyedState], limit: usize) -> Option<usize> {
    // States are sorted by trigger: one range per trigger.
    let mut start = 0;
    while start < states.len() {
        let trigger = states[start].trigger;
        let end = start + states[start..].partition_point(|state| state.trigger == trigger);
        if let Some(oldest) = patterns::oldest_key_beyond(states, start..end, limit) {
            return Some(oldest);
        }
        start = end;
    }
    None
}

/// Handles one timer of a batch (see `Engine::fire`): the decision
/// candidate it makes, if any.
fn fire_entry(ctx: &mut Ctx<'_>, entry: TimerEntry) -> Option<Candidate> {
    match entry.purpose {
        TimerPurpose::Ladder => patterns::on_ladder_timer(ctx, entry.token, entry.due),
        TimerPurpose::WindowClose => {
            patterns::on_window_close(ctx, entry.token, entry.due);
            None
        }
        TimerPurpose::Deferred => {
            let deferred = &mut ctx.customer.occasional_if_any()?.deferred;
            let position = deferred.iter().position(|d| d.token == entry.token)?;
            let deferred = deferred.swap_remove(position);
            let candidate = Candidate {
                trigger: deferred.trigger,
                entity: deferred.entity,
                held_back: deferred.held_back,
                first_pass: false,
                decision: *deferred.decision,
            };
            Some(candidate)
        }
    }
}

/// Whether a timer's owner still waits for it: the table keeps some
/// cancelled timers (see `timers`), and they are recognised here. A packed
/// customer's are kept until they come up (see `Engine::fire`).
fn is_pending(customers: &Slots, entry: &TimerEntry) -> bool {
    let customer = match customers.slot(entry.customer) {
        Some(Slot::Hot(customer)) => customer,
        Some(Slot::Packed(_) | Slot::PackedBlock(_)) => return true,
        Some(Slot::Vacant) | None => return false,
    };
    let state = || {
        customer
            .states
            .iter()
            .find(|state| state.token == entry.token)
    };
    match entry.purpose {
        TimerPurpose::Ladder => state()
            .and_then(|state| state.ladder.as_ref())
            .is_some_and(|ladder| ladder.timer_at() == entry.due),
        TimerPurpose::WindowClose => {
            state().and_then(|state| state.window_close()) == Some(entry.due)
        }
        TimerPurpose::Deferred => customer
            .deferred()
            .iter()
            .any(|deferred| deferred.token == entry.token && deferred.due == entry.due),
    }
}

/// Whether `event` (whose route is `route`) asks for its customer's erasure.
fn is_erasure(plan: &Plan, event: &Event, route: RouteId) -> bool {
    event.event_type == EventType::Track && plan.route(route).handling.erasure
}

fn deferred_entry(slot: u32, deferred: &DeferredDecision) -> TimerEntry {
    TimerEntry {
        due: deferred.due,
        customer: slot,
        token: deferred.token,
        purpose: TimerPurpose::Deferred,
    }
}

/// Time zone, birthday, consent and engagement hours from an event (of a
/// name handled as `handling` says).
fn update_profile(plan: &Plan, customer: &mut Customer, event: &Event, handling: Handling) {
    if let Some(zone) = event.timezone.as_deref().and_then(|name| name.parse().ok()) {
        customer.profile.timezone = Some(zone);
    }
    // Most events carry no traits: skip the lookup's call.
    if let Some(birthday) = (!event.traits.is_empty())
        .then(|| event.traits.get("birthday"))
        .flatten()
        .and_then(PropertyValue::as_str)
        .and_then(parse_month_day)
    {
        customer.profile.birthday = Some(birthday);
    }
    let consent_source = match event.event_type {
        EventType::Identify => event.traits.get("consent"),
        _ if handling.consent_update => event.properties.get("consent"),
        _ => None,
    };
    if let Some(PropertyValue::Object(channels)) = consent_source {
        for (channel, granted) in channels.iter() {
            set_consent(plan, customer, channel, granted.as_bool().unwrap_or(false));
        }
    }
    if handling.consent_update {
        if let (Some(channel), Some(granted)) = (
            event.property_text("channel"),
            event
                .properties
                .get("granted")
                .and_then(PropertyValue::as_bool),
        ) {
            set_consent(plan, customer, &channel, granted);
        }
    }
    if handling.feedback {
        let zone = policy::zone_of(plan, customer);
        let hour = local_hour(event.time, zone);
        let hours = customer
            .occasional_mut()
            .engagement_hours
            .get_or_insert([0; 24]);
        hours[hour] = hours[hour].saturating_add(1);
    }
}

fn set_consent(plan: &Plan, customer: &mut Customer, channel: &str, granted: bool) {
    let bit = Plan::consent_bit(plan.channel_index(channel));
    customer.profile.consent_stated |= bit;
    if granted {
        customer.profile.consent |= bit;
    } else {
        customer.profile.consent &= !bit;
    }
}

/// The place of the variant named `name` among the trigger's
/// [`variant_names`](crate::config::Trigger::variant_names).
fn variant_index(trigger: &crate::config::Trigger, name: &str) -> usize {
    trigger
        .variants
        .iter()
        .position(|variant| &*variant.name == name)
        .unwrap_or(0)
}

/// Feeds the items an e-commerce event names (`product_id`, or an order's
/// `products[].product_id`) to the customer's taste.
fn learn_taste(
    customer: &mut Customer,
    items: &ItemVectors,
    event: &Event,
    how: Interaction,
    half_life: Span,
) {
    let time = event.time;
    match how {
        Interaction::Bought => {
            let Some(PropertyValue::Array(products)) = event.properties.get("products") else {
                return;
            };
            let ids: SmallVec<[Cow<'_, str>; 4]> = products
                .iter()
                .filter_map(|product| product.get("product_id")?.as_text())
                .collect();
            let ids = ids.iter().map(|id| &**id);
            taste::observe(customer, items, ids, how, time, half_life);
        }
        Interaction::Viewed | Interaction::Added => {
            if let Some(id) = event.property_text("product_id") {
                taste::observe(customer, items, std::iter::once(&*id), how, time, half_life);
            }
        }
    }
}

/// Maintains cart contents from the Segment e-commerce events (of a name
/// handled as `handling` says). Returns the id of a cart this event emptied.
fn update_carts(
    customer: &mut Customer,
    event: &Event,
    handling: Handling,
    max_carts: usize,
) -> Option<String> {
    const MAX_LINES: usize = 50;
    const FIRST_CART_LINES: usize = 2;
    if event.event_type != EventType::Track {
        return None;
    }
    let cart_event = handling.cart?;
    let cart_id = || {
        event
            .property_text("cart_id")
            .unwrap_or(Cow::Borrowed(DEFAULT_ENTITY))
    };
    let product = || {
        event
            .property_text("product_id")
            .unwrap_or(Cow::Borrowed("unknown"))
    };
    // Read only by the cart events, which are a small share of the traffic.
    let quantity = || {
        event
            .property_number("quantity")
            .map(|q| q.max(0.0) as u32)
            .unwrap_or(1)
    };
    match cart_event {
        CartEvent::ProductAdded => {
            let id = cart_id();
            if customer.carts.len() >= max_carts && !customer.carts.iter().any(|c| *c.id == *id) {
                customer.carts.remove(0);
            }
            let price = event.property_number("price").unwrap_or(0.0);
            let (product, quantity) = (product(), quantity());
            let cart = customer.cart_mut(&id);
            match cart
                .lines
                .iter()
                .position(|line| *line.product_id == *product)
            {
                Some(index) => {
                    let line = &mut cart.lines[index];
                    line.quantity = line.quantity.saturating_add(quantity);
                    line.price = price;
                }
                None if cart.lines.len() < MAX_LINES => {
                    if cart.lines.is_empty() {
                        // A cart that gets a line mostly gets a second
                        // (the cart job's hold one to three): room for two
                        // at once saves a reallocation per cart (0.7 % of
                        // that job's instructions) for one line's room
                        // (40 bytes) unused in a one-line cart, about 14
                        // bytes a customer with a cart on average.
                        cart.lines.reserve_exact(FIRST_CART_LINES);
                    }
                    reserve_one(&mut cart.lines, MAX_LINES);
                    cart.lines.push(crate::customer::CartLine {
                        product_id: product.into(),
                        quantity,
                        price,
                    })
                }
                None => {}
            }
            None
        }
        CartEvent::ProductRemoved => {
            let id = cart_id();
            let (product, quantity) = (product(), quantity());
            let position = customer.carts.iter().position(|c| *c.id == *id)?;
            let cart = &mut customer.carts[position];
            if let Some(line) = cart
                .lines
                .iter_mut()
                .find(|line| *line.product_id == *product)
            {
                line.quantity = line.quantity.saturating_sub(quantity);
            }
            cart.lines.retain(|line| line.quantity > 0);
            if cart.lines.is_empty() {
                customer.carts.swap_remove(position);
                return Some(id.into_owned());
            }
            None
        }
        CartEvent::OrderCompleted => {
            match event.property_text("cart_id") {
                Some(id) => customer.carts.retain(|c| *c.id != *id),
                None => customer.carts.clear(),
            }
            None
        }
    }
}

/// An event refused by [`Engine::handle_live_event`]: dated further ahead of
/// the live clock than the allowed lateness.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event time {} is more than {allowed} ahead of the clock ({}); accepted: up to the allowed lateness ahead", event_time.to_rfc3339(), clock.to_rfc3339())]
pub struct AheadOfClock {
    /// The event's time.
    pub event_time: Timestamp,
    /// The clock it came at.
    pub clock: Timestamp,
    /// `settings.allowed_lateness`.
    pub allowed: kairos_model::Span,
}
