//! What the engine holds about one customer, put so that a person can read
//! it: the answer to "why did (or didn't) this customer get a message?"
//! (`kairos inspect`, over `kairos.admin.inspect`).
//!
//! A [`CustomerView`] is a copy, made from the customer's state as it is
//! between two inputs: their ids, profile, carts, what each trigger is
//! waiting for and when, decisions waiting for quiet hours to end, their
//! last decisions with the reason each was or was not sent, what a
//! conversion would be attributed to, the sends that caps and cooldowns
//! count, and whether they have a taste. Instants are RFC 3339 (UTC), as
//! actions carry them.

use crate::attribution::{DecisionRecord, Touch};
use crate::config::{EventMatch, Pattern, Trigger};
use crate::customer::{
    CapClass, Cart, Customer, DeferredDecision, KeyedState, Memory, Occasional, SentRecord,
};
use crate::decision::Suppression;
use crate::engine::Engine;
use crate::local_time::local_day;
use crate::plan::Plan;
use crate::policy::zone_of;
use crate::slots::Slot;
use crate::taste::Taste;
use kairos_model::{Span, Timestamp};
use serde::Serialize;
use std::collections::BTreeMap;

/// Everything the engine holds about one customer (see the module docs).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CustomerView {
    /// The key actions carry: `userId` once known, else `anonymousId`.
    pub customer: String,
    /// Other ids that resolve to them (devices' anonymousIds, merged ids).
    pub aliases: Vec<String>,
    /// The engine's clock when asked: what "today", "pending" and "until"
    /// below are measured against.
    pub as_of: String,
    /// They were idle and held packed when asked (see `settings.pack_idle_after`).
    pub was_packed: bool,
    /// What identify calls told.
    pub profile: ProfileView,
    /// Open carts.
    pub carts: Vec<CartView>,
    /// Per trigger (and entity key) with something remembered: what it is
    /// waiting for.
    pub triggers: Vec<TriggerStateView>,
    /// Decisions made and waiting to be delivered (quiet hours' end, the
    /// customer's best hour).
    pub deferred: Vec<DeferredView>,
    /// Their latest decisions, oldest first, sent or not and why.
    pub decisions: Vec<DecisionView>,
    /// What a conversion would be attributed to, if anything.
    pub last_touch: Option<TouchView>,
    /// The sends that caps, cooldowns and arbitration count.
    pub sent: SentView,
    /// What recommendations are made from.
    pub taste: TasteView,
}

/// A customer's profile.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProfileView {
    /// The IANA time zone they told, if any.
    pub timezone: Option<String>,
    /// The zone their local times are taken in (theirs, else the pipeline's default).
    pub timezone_used: String,
    /// Birthday as `MM-DD`, if known.
    pub birthday: Option<String>,
    /// Per channel the pipeline sends on.
    pub consent: Vec<ConsentView>,
}

/// What a customer said about one channel.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConsentView {
    /// The channel.
    pub channel: String,
    /// The policy sends on it only with their consent (`policy.consent_required`).
    pub required: bool,
    /// `granted`, `refused` or `not stated`.
    pub state: &'static str,
}

/// One open cart.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CartView {
    /// `cart_id`, or `default`.
    pub id: String,
    /// Its lines.
    pub items: Vec<CartItemView>,
    /// Sum of quantity × price.
    pub value: f64,
}

/// One product in a cart.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CartItemView {
    /// `product_id`.
    pub product_id: String,
    /// Quantity.
    pub quantity: u32,
    /// Unit price.
    pub price: f64,
}

/// One trigger's memory for one key of the customer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TriggerStateView {
    /// The trigger's id.
    pub trigger: String,
    /// Its rule in words.
    pub rule: String,
    /// The entity key (a cart id ...) of a trigger keyed by one.
    pub entity: Option<String>,
    /// The next step of a match in progress, if one is.
    pub pending: Option<PendingStepView>,
    /// What the pattern remembers besides, in words.
    pub memory: Option<String>,
    /// The deadlines this state waits for.
    pub timers: Vec<TimerView>,
}

/// The next step of a ladder in progress.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PendingStepView {
    /// 1-based.
    pub step: u32,
    /// Steps in the ladder.
    pub of: u32,
    /// When it is due.
    pub due: String,
    /// Where its action goes.
    pub channel: String,
    /// The A/B variant the customer is in for this trigger.
    pub variant: String,
    /// When the match started the ladder (its anchor).
    pub since: String,
    /// The journey's step 1 was held back by the cooldown, and so are the
    /// later steps while it lasts.
    pub held_back_by_cooldown: bool,
    /// All of it in a sentence.
    pub waiting_for: String,
}

/// A deadline held in the engine's timer table.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TimerView {
    /// `step` (a ladder step comes due) or `window close` (a count window ends).
    pub purpose: &'static str,
    /// When.
    pub at: String,
}

/// A decision waiting to be delivered.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeferredView {
    /// The trigger's id.
    pub trigger: String,
    /// The entity key of the state it came from.
    pub entity: Option<String>,
    /// Its ladder step (1-based).
    pub step: u32,
    /// Where it goes.
    pub channel: String,
    /// Its variant.
    pub variant: String,
    /// When its step was due.
    pub fired_at: String,
    /// When it is to be delivered (and the policy checked again).
    pub deliver_at: String,
}

/// One of the customer's latest decisions.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DecisionView {
    /// When it was decided.
    pub at: String,
    /// The trigger's id.
    pub trigger: String,
    /// Ladder step (1-based).
    pub step: u8,
    /// Its variant.
    pub variant: String,
    /// `sent`, or the suppression reason as actions carry it (`cooldown` ...).
    pub outcome: &'static str,
    /// The outcome in words.
    pub meaning: &'static str,
}

/// The decision a conversion would be attributed to (last touch).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TouchView {
    /// When it was decided.
    pub at: String,
    /// The trigger's id.
    pub trigger: String,
    /// Its variant.
    pub variant: String,
    /// `sent`, or `holdout` (held back only because the customer is in the
    /// holdout group, and counted for that group).
    pub group: &'static str,
    /// A conversion was attributed to it already (it counts once).
    pub converted: bool,
    /// A conversion up to this instant is attributed to it
    /// (`settings.attribution_window` after it).
    pub attributable_until: String,
    /// All of it in a sentence.
    pub meaning: String,
}

/// The sends the policy counts.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SentView {
    /// Sent actions remembered, oldest first (kept as long as the longest
    /// check looks back: the weekly cap, a cooldown, arbitration).
    pub recent: Vec<SentRecordView>,
    /// Per channel, sends on the customer's local day of `as_of`, by the
    /// daily cap they count against.
    pub today: BTreeMap<String, CapCounts>,
    /// Marketing sends in the 7 days before `as_of` (the weekly cap).
    pub last_7_days_marketing: u32,
    /// The daily caps in force, per channel and local day.
    pub daily_caps: CapCounts,
    /// The weekly marketing cap in force.
    pub weekly_marketing_cap: u32,
}

/// Counts by daily cap class.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CapCounts {
    /// Targeted (trigger-driven) marketing.
    pub targeted: u32,
    /// Content marketing.
    pub content: u32,
}

/// One remembered send.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SentRecordView {
    /// When it was sent.
    pub at: String,
    /// The trigger's id.
    pub trigger: String,
    /// The channel.
    pub channel: String,
    /// `targeted`, `content` or `uncapped` (transactional and ops).
    pub counts_against: &'static str,
}

/// What the customer's taste holds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TasteView {
    /// They have touched catalog items (only kept when a trigger recommends).
    pub present: bool,
    /// Items recently viewed or added, remembered.
    pub recent_items: usize,
    /// Items recently bought, left out of recommendations.
    pub bought_items: usize,
}

impl Engine {
    /// What the engine holds about the customer `id` (a userId or
    /// anonymousId, theirs or an alias); `None` when no customer has it.
    ///
    /// It changes nothing: a customer held packed (idle) is read from a
    /// copy and stays packed, so an inspection can never make a live run
    /// and its replay differ.
    pub fn inspect(&self, id: &str) -> Option<CustomerView> {
        let slot = self.ids.get(id)?;
        let was_packed = !matches!(self.customers.slot(slot)?, Slot::Hot(_));
        let as_of = self.inspection_time();
        let customer = self.customers.peek(slot)?;
        Some(view(&self.plan, &customer, as_of, was_packed))
    }

    /// Whether `id` (a userId or anonymousId) is one of a customer's: what
    /// [`Engine::inspect`] would find, without unpacking anybody.
    pub fn knows_customer(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    /// The clock a view is taken at: the latest of the last input's time
    /// and the watermark (a live service's clock), unless the watermark was
    /// run to the end of time (the end of a backtest).
    fn inspection_time(&self) -> Timestamp {
        match self.watermark {
            Timestamp::MAX => self.now,
            watermark => self.now.max(watermark),
        }
    }
}

/// The view of `customer`.
fn view(plan: &Plan, customer: &Customer, as_of: Timestamp, was_packed: bool) -> CustomerView {
    let (decisions, last_touch, taste) = match customer.occasional() {
        Some(occasional) => occasional_views(plan, occasional, as_of),
        None => (Vec::new(), None, taste_view(None)),
    };
    CustomerView {
        customer: customer.key.to_string(),
        aliases: customer.aliases().iter().map(ToString::to_string).collect(),
        as_of: as_of.to_rfc3339(),
        was_packed,
        profile: profile_view(plan, customer),
        carts: customer.carts.iter().map(cart_view).collect(),
        triggers: customer
            .states
            .iter()
            .map(|state| state_view(plan, state))
            .collect(),
        deferred: customer
            .deferred()
            .iter()
            .map(|deferred| deferred_view(plan, deferred))
            .collect(),
        decisions,
        last_touch,
        sent: sent_view(plan, customer, as_of),
        taste,
    }
}

/// The views of the parts most customers never have: their decisions,
/// their last touch and their taste.
fn occasional_views(
    plan: &Plan,
    occasional: &Occasional,
    as_of: Timestamp,
) -> (Vec<DecisionView>, Option<TouchView>, TasteView) {
    let decisions = occasional
        .decisions
        .iter()
        .map(|record| decision_view(plan, record))
        .collect();
    let last_touch = occasional
        .last_touch
        .as_ref()
        .map(|touch| touch_view(plan, touch, as_of));
    (
        decisions,
        last_touch,
        taste_view(occasional.taste.as_deref()),
    )
}

fn profile_view(plan: &Plan, customer: &Customer) -> ProfileView {
    let profile = &customer.profile;
    let consent = plan
        .channels
        .iter()
        .enumerate()
        .map(|(index, channel)| {
            let bit = Plan::consent_bit(index.min(31) as u8);
            let state = match (
                profile.consent_stated & bit != 0,
                profile.consent & bit != 0,
            ) {
                (_, true) => "granted",
                (true, false) => "refused",
                (false, false) => "not stated",
            };
            ConsentView {
                channel: channel.clone(),
                required: plan.consent_channels & bit != 0,
                state,
            }
        })
        .collect();
    ProfileView {
        timezone: profile.timezone.map(|zone| zone.name().to_string()),
        timezone_used: zone_of(plan, customer).name().to_string(),
        birthday: profile
            .birthday
            .map(|(month, day)| format!("{month:02}-{day:02}")),
        consent,
    }
}

fn cart_view(cart: &Cart) -> CartView {
    CartView {
        id: cart.id.to_string(),
        items: cart
            .lines
            .iter()
            .map(|line| CartItemView {
                product_id: line.product_id.to_string(),
                quantity: line.quantity,
                price: line.price,
            })
            .collect(),
        value: cart.value(),
    }
}

fn state_view(plan: &Plan, state: &KeyedState) -> TriggerStateView {
    let trigger = plan.trigger(state.trigger);
    let pending = state.ladder.as_ref().map(|ladder| {
        let next = usize::from(ladder.next_step);
        let variant = trigger.variants.get(usize::from(ladder.variant));
        let channel = variant
            .and_then(|variant| variant.channel.clone())
            .or_else(|| trigger.steps.get(next).map(|step| step.channel.clone()))
            .map_or_else(String::new, |channel| channel.to_string());
        let (step, of) = (next as u32 + 1, trigger.steps.len() as u32);
        let due = ladder.due.to_rfc3339();
        let mut waiting_for = format!("step {step} of {of} ({channel}) at {due}");
        let cancels = cancel_names(trigger);
        if !cancels.is_empty() {
            waiting_for.push_str(&format!(", unless {}", cancels.join(" or ")));
        }
        if state.held_back {
            waiting_for.push_str(
                "; the journey's step 1 was held back by the cooldown, which holds this step back too while it lasts",
            );
        }
        PendingStepView {
            step,
            of,
            due,
            channel,
            variant: variant.map_or("control", |variant| &variant.name).to_string(),
            since: ladder.anchor.to_rfc3339(),
            held_back_by_cooldown: state.held_back,
            waiting_for,
        }
    });
    let mut timers = Vec::new();
    if let Some(ladder) = &state.ladder {
        timers.push(TimerView {
            purpose: "step",
            at: ladder.due.to_rfc3339(),
        });
    }
    if let Some(close) = state.window_close() {
        timers.push(TimerView {
            purpose: "window close",
            at: close.to_rfc3339(),
        });
    }
    TriggerStateView {
        trigger: trigger.id.to_string(),
        rule: trigger.rule.to_string(),
        entity: state.entity_key().map(str::to_string),
        pending,
        memory: memory_in_words(state.memory()),
        timers,
    }
}

/// The events that cancel a trigger's pending steps, by name.
fn cancel_names(trigger: &Trigger) -> Vec<&str> {
    let pattern_cancels: &[EventMatch] = match &trigger.pattern {
        Pattern::Absence { cancel, .. } => cancel,
        _ => &[],
    };
    let mut names: Vec<&str> = pattern_cancels
        .iter()
        .chain(&trigger.cancel_on)
        .map(|cancel| cancel.name.as_str())
        .collect();
    names.dedup();
    names
}

/// A pattern's memory in a few words; `None` when it holds nothing.
fn memory_in_words(memory: &Memory) -> Option<String> {
    let words = match memory {
        Memory::None => return None,
        Memory::History(times) => format!("{} activities remembered, for its cadence", times.len()),
        Memory::Count(count) => {
            let highest = count.groups.iter().map(|group| group.count).max();
            let groups = count.groups.len();
            match (highest, groups) {
                (None, _) => "a count window with nothing counted".to_string(),
                (Some(highest), 1) => format!("{highest} counted in the current window"),
                (Some(highest), groups) => {
                    format!("up to {highest} counted in the current window, in {groups} groups")
                }
            }
        }
        Memory::BlockedSession { close, .. } => format!(
            "a session an `unless` event blocked, ending at {}",
            close.to_rfc3339()
        ),
        Memory::Sequence(first) => format!(
            "the first event of the sequence at {}, waiting for the second",
            first.0.to_rfc3339()
        ),
        Memory::Measure(_)
        | Memory::MeasureTwoWindows(_)
        | Memory::Tally(_)
        | Memory::TallyTwoWindows(_) => "a rolling aggregate".to_string(),
        Memory::Periods(periods) => format!("sums of {} periods", periods.sums.len()),
        Memory::Yearly { date: (month, day) } => {
            format!("its yearly date, {month:02}-{day:02}")
        }
    };
    Some(words)
}

fn deferred_view(plan: &Plan, deferred: &DeferredDecision) -> DeferredView {
    let decision = &deferred.decision;
    DeferredView {
        trigger: plan.trigger(deferred.trigger).id.to_string(),
        entity: deferred.entity.as_ref().map(ToString::to_string),
        step: decision.step,
        channel: decision.channel.to_string(),
        variant: decision.variant.to_string(),
        fired_at: decision.fired_at.to_rfc3339(),
        deliver_at: deferred.due.to_rfc3339(),
    }
}

fn decision_view(plan: &Plan, record: &DecisionRecord) -> DecisionView {
    let trigger = plan.trigger(record.trigger);
    DecisionView {
        at: record.at.to_rfc3339(),
        trigger: trigger.id.to_string(),
        step: record.step,
        variant: variant_name(trigger, record.variant),
        outcome: record.suppressed.map_or("sent", Suppression::as_str),
        meaning: outcome_meaning(record.suppressed),
    }
}

/// A decision record's variant (its place among the trigger's variant names).
fn variant_name(trigger: &Trigger, index: u8) -> String {
    trigger
        .variant_names()
        .nth(usize::from(index))
        .unwrap_or("control")
        .to_string()
}

/// A decision's outcome in words: why it was, or was not, sent.
pub fn outcome_meaning(suppressed: Option<Suppression>) -> &'static str {
    match suppressed {
        None => "sent",
        Some(Suppression::Consent) => "the customer has not consented to the channel",
        Some(Suppression::FrequencyCap) => "the daily or weekly frequency cap was reached",
        Some(Suppression::QuietHours) => {
            "it fell in quiet hours and could not be deferred (or the trigger drops such decisions)"
        }
        Some(Suppression::Cooldown) => "the same trigger was sent within its cooldown",
        Some(Suppression::Arbitration) => {
            "a higher- or equal-priority action was sent within the arbitration window"
        }
        Some(Suppression::Holdout) => {
            "the customer is in the holdout group: evaluated, never sent marketing"
        }
        Some(Suppression::CircuitBreaker) => "marketing was paused by an ops alert",
        Some(Suppression::Rollout) => {
            "the trigger is in grey release and the customer is not in it yet"
        }
        Some(Suppression::Expired) => "it was already past its expiry when it could have been sent",
    }
}

fn touch_view(plan: &Plan, touch: &Touch, as_of: Timestamp) -> TouchView {
    let trigger = plan.trigger(touch.trigger);
    let window = plan.pipeline.settings.attribution_window;
    let until = touch.at + window;
    let variant = variant_name(trigger, touch.variant);
    let group = if touch.held_out { "holdout" } else { "sent" };
    let conversion = &plan.pipeline.settings.conversion_event;
    let meaning = if as_of > until {
        format!(
            "too old: a conversion ({conversion}) now is attributed to nothing (the attribution window of {window} has passed)"
        )
    } else {
        let again = if touch.converted {
            " (it has converted already: the revenue adds up, the conversion counts once)"
        } else {
            ""
        };
        format!(
            "a conversion ({conversion}) until {} is attributed to {} (variant {variant}, {group} group){again}",
            until.to_rfc3339(),
            trigger.id
        )
    };
    TouchView {
        at: touch.at.to_rfc3339(),
        trigger: trigger.id.to_string(),
        variant,
        group,
        converted: touch.converted,
        attributable_until: until.to_rfc3339(),
        meaning,
    }
}

fn sent_view(plan: &Plan, customer: &Customer, as_of: Timestamp) -> SentView {
    let policy = &plan.pipeline.policy;
    let zone = zone_of(plan, customer);
    let today = local_day(as_of, zone);
    let channel_name = |index: u8| {
        plan.channels
            .get(usize::from(index))
            .cloned()
            .unwrap_or_else(|| "other".to_string())
    };
    let mut today_counts: BTreeMap<String, CapCounts> = BTreeMap::new();
    let mut last_7_days_marketing = 0;
    for sent in customer.sent() {
        if sent.cap == CapClass::Uncapped {
            continue;
        }
        if local_day(sent.at, zone) == today {
            let counts = today_counts.entry(channel_name(sent.channel)).or_default();
            match sent.cap {
                CapClass::Targeted => counts.targeted += 1,
                CapClass::Content => counts.content += 1,
                CapClass::Uncapped => {}
            }
        }
        if as_of - sent.at < Span::DAY * 7 {
            last_7_days_marketing += 1;
        }
    }
    let record_view = |sent: &SentRecord| SentRecordView {
        at: sent.at.to_rfc3339(),
        // A trigger a pipeline switch removed: its sends still count
        // against the caps (see `reload`).
        trigger: plan
            .pipeline
            .triggers
            .get(usize::from(sent.trigger))
            .map_or_else(|| "(removed)".to_string(), |trigger| trigger.id.to_string()),
        channel: channel_name(sent.channel),
        counts_against: match sent.cap {
            CapClass::Targeted => "targeted",
            CapClass::Content => "content",
            CapClass::Uncapped => "uncapped",
        },
    };
    SentView {
        recent: customer.sent().iter().map(record_view).collect(),
        today: today_counts,
        last_7_days_marketing,
        daily_caps: CapCounts {
            targeted: policy.daily_caps.targeted,
            content: policy.daily_caps.content,
        },
        weekly_marketing_cap: policy.weekly_marketing_cap,
    }
}

fn taste_view(taste: Option<&Taste>) -> TasteView {
    TasteView {
        present: taste.is_some(),
        recent_items: taste.map_or(0, |taste| taste.recent.len()),
        bought_items: taste.map_or(0, |taste| taste.bought.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::*;
    use kairos_model::Event;
    use serde_json::{json, Value};

    const START: &str = "2026-11-23T12:00:00Z";

    fn at(minutes: i64) -> Timestamp {
        Timestamp::parse_rfc3339(START).expect("a time") + Span::MINUTE * minutes
    }

    /// A cart reminder 30 minutes after the last add unless an order comes,
    /// with a day's cooldown; customers idle for an hour are packed.
    fn engine() -> Engine {
        engine_waiting(Span::MINUTE * 30)
    }

    /// [`engine`] with the reminder `wait` after the last add.
    fn engine_waiting(wait: Span) -> Engine {
        let settings = Settings {
            pack_idle_after: Span::HOUR,
            ..Settings::default()
        };
        Engine::new(Pipeline {
            name: "shop".into(),
            settings,
            policy: Policy {
                holdout_percent: 0.0,
                consent_required: vec!["push".into()],
                quiet_hours: None,
                arbitration_window: Span::ZERO,
                ..Policy::default()
            },
            stores: vec![],
            triggers: vec![Trigger {
                id: "abandoned_cart".into(),
                rule: "Product Added not followed by Order Completed within 30m".into(),
                key: KeySpec::Property("cart_id".into()),
                pattern: Pattern::Absence {
                    start: EventMatch::named("Product Added"),
                    cancel: vec![EventMatch::named("Order Completed")],
                    restart: true,
                    cancel_when_cart_empty: true,
                },
                steps: vec![Step {
                    at: Offset::Fixed(wait),
                    channel: "push".into(),
                    offer: None,
                }],
                priority: 80,
                category: Category::Targeted,
                cooldown: Span::DAY,
                expires_after: Span::DAY,
                quiet_hours: QuietHoursMode::Defer,
                deliver_within: Span::ZERO,
                cancel_on: vec![],
                variants: vec![],
                rollout_percent: 100.0,
                payload: PayloadSpec::default(),
            }],
        })
    }

    fn event(call: Value) -> Event {
        Event::from_json(call.to_string().as_bytes()).expect("a valid call")
    }

    fn consent(engine: &mut Engine, user: &str, minute: i64) {
        engine.handle_event(event(json!({
            "type": "identify", "userId": user, "messageId": format!("id-{user}-{minute}"),
            "timestamp": at(minute).to_rfc3339(),
            "context": {"timezone": "Europe/Paris"},
            "traits": {"consent": {"push": true}, "birthday": "1990-03-15"},
        })));
    }

    fn add_to_cart(engine: &mut Engine, user: &str, cart: &str, minute: i64) {
        engine.handle_event(event(json!({
            "type": "track", "event": "Product Added", "userId": user,
            "messageId": format!("add-{user}-{cart}-{minute}"), "timestamp": at(minute).to_rfc3339(),
            "properties": {"cart_id": cart, "product_id": "p9", "price": 12.5, "quantity": 2},
        })));
    }

    fn decisions(engine: &mut Engine) -> Vec<(String, Option<Suppression>)> {
        std::iter::from_fn(|| engine.poll_decision())
            .map(|decision| (decision.action_id.to_string(), decision.suppressed))
            .collect()
    }

    #[test]
    fn a_pending_reminder_shows_what_it_waits_for_and_until_when() {
        let mut engine = engine();
        consent(&mut engine, "u1", 0);
        add_to_cart(&mut engine, "u1", "c1", 1);
        engine.advance_to(at(2));
        let view = engine.inspect("u1").expect("a known customer");
        assert_eq!(view.customer, "u1");
        assert!(!view.was_packed);
        assert_eq!(view.profile.timezone.as_deref(), Some("Europe/Paris"));
        assert_eq!(view.profile.birthday.as_deref(), Some("03-15"));
        assert_eq!(
            view.profile.consent,
            [ConsentView {
                channel: "push".into(),
                required: true,
                state: "granted"
            }]
        );
        assert_eq!(view.carts.len(), 1);
        assert_eq!(
            (view.carts[0].id.as_str(), view.carts[0].value),
            ("c1", 25.0)
        );
        let [state] = &view.triggers[..] else {
            panic!("one trigger state: {view:#?}");
        };
        assert_eq!(state.trigger, "abandoned_cart");
        assert_eq!(state.entity.as_deref(), Some("c1"));
        let pending = state.pending.as_ref().expect("a pending step");
        assert_eq!((pending.step, pending.of), (1, 1));
        assert_eq!(pending.due, at(31).to_rfc3339());
        assert_eq!(pending.variant, "control");
        assert_eq!(
            pending.waiting_for,
            "step 1 of 1 (push) at 2026-11-23T12:31:00.000Z, unless Order Completed"
        );
        assert_eq!(
            state.timers,
            [TimerView {
                purpose: "step",
                at: at(31).to_rfc3339()
            }]
        );
        assert!(view.decisions.is_empty() && view.last_touch.is_none());
        assert!(!view.taste.present);
    }

    #[test]
    fn sent_and_suppressed_decisions_show_with_their_reasons() {
        let mut engine = engine();
        consent(&mut engine, "u1", 0);
        add_to_cart(&mut engine, "u1", "c1", 1);
        add_to_cart(&mut engine, "u1", "c2", 40);
        engine.advance_to(at(80));
        let made = decisions(&mut engine);
        assert_eq!(made.len(), 2, "{made:?}");
        let view = engine.inspect("u1").expect("a known customer");
        let outcomes: Vec<(&str, &str, &str)> = view
            .decisions
            .iter()
            .map(|decision| {
                (
                    decision.trigger.as_str(),
                    decision.outcome,
                    decision.meaning,
                )
            })
            .collect();
        assert_eq!(
            outcomes,
            [
                ("abandoned_cart", "sent", "sent"),
                (
                    "abandoned_cart",
                    "cooldown",
                    "the same trigger was sent within its cooldown"
                ),
            ]
        );
        assert_eq!(view.decisions[0].at, at(31).to_rfc3339());
        let touch = view.last_touch.expect("the sent reminder");
        assert_eq!(
            (touch.group, touch.at.as_str()),
            ("sent", &*at(31).to_rfc3339())
        );
        assert_eq!(touch.attributable_until, (at(31) + Span::DAY).to_rfc3339());
        assert!(
            touch
                .meaning
                .starts_with("a conversion (Order Completed) until"),
            "{}",
            touch.meaning
        );
        assert_eq!(view.sent.recent.len(), 1);
        assert_eq!(
            view.sent.today["push"],
            CapCounts {
                targeted: 1,
                content: 0
            }
        );
        assert_eq!(view.sent.last_7_days_marketing, 1);
        assert!(view.triggers.iter().all(|state| state.pending.is_none()));
    }

    #[test]
    fn an_unknown_customer_is_not_found() {
        let mut engine = engine();
        add_to_cart(&mut engine, "u1", "c1", 1);
        engine.advance_to(at(2));
        assert!(engine.inspect("u2").is_none());
        assert!(!engine.knows_customer("u2"));
        assert!(engine.knows_customer("u1"));
        engine.erase("u1");
        assert!(engine.inspect("u1").is_none());
    }

    #[test]
    fn a_packed_customer_is_shown_and_decides_as_if_never_asked() {
        let three_hours = Span::HOUR * 3;
        let (mut asked, mut left_alone) =
            (engine_waiting(three_hours), engine_waiting(three_hours));
        for engine in [&mut asked, &mut left_alone] {
            consent(engine, "u1", 0);
            add_to_cart(engine, "u1", "c1", 1);
            // Another customer's events move the clock on: u1 goes idle
            // for more than the hour after which customers are packed.
            for minute in [50, 100, 150] {
                add_to_cart(engine, "u2", "c9", minute);
            }
            engine.advance_to(at(151));
            assert_eq!(engine.packing().cold_now, 1, "{:?}", engine.packing());
        }
        let before = asked.inspect("u1").expect("u1");
        assert!(before.was_packed, "{before:#?}");
        let pending = before.triggers[0].pending.as_ref().expect("pending");
        assert_eq!(pending.due, at(181).to_rfc3339());
        let again = asked.inspect("u1").expect("u1");
        assert!(again.was_packed, "still packed: a look changes nothing");
        assert_eq!(asked.packing().cold_now, 1, "{:?}", asked.packing());
        assert_eq!(
            (&again.triggers, &again.profile),
            (&before.triggers, &before.profile)
        );
        for engine in [&mut asked, &mut left_alone] {
            add_to_cart(engine, "u1", "c4", 200);
            engine.advance_to(at(600));
        }
        let made = decisions(&mut asked);
        assert_eq!(made.len(), 3, "{made:?}");
        assert_eq!(made, decisions(&mut left_alone));
    }

    #[test]
    fn the_view_is_json_with_every_part_named() {
        let mut engine = engine();
        add_to_cart(&mut engine, "u1", "c1", 1);
        engine.advance_to(at(2));
        let view = serde_json::to_value(engine.inspect("u1").expect("u1")).expect("JSON");
        for part in [
            "customer",
            "aliases",
            "as_of",
            "was_packed",
            "profile",
            "carts",
            "triggers",
            "deferred",
            "decisions",
            "last_touch",
            "sent",
            "taste",
        ] {
            assert!(view.get(part).is_some(), "{part} in {view:#}");
        }
        assert_eq!(view["profile"]["consent"][0]["state"], "not stated");
        assert_eq!(view["carts"][0]["items"][0]["quantity"], 2);
        assert_eq!(view["triggers"][0]["timers"][0]["purpose"], "step");
    }
}
