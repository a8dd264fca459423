//! The validated pipeline as the engine sees it.
//!
//! `kairos-pipeline` compiles a pipeline file into a [`Pipeline`]; tests and
//! benches may build one directly. Everything here is plain data: every number
//! is a tunable default from the file, never a constant in engine code.
//!
//! # Timing model shared by every trigger
//!
//! A pattern *matches* at an **anchor** time. Each [`Step`] of the trigger's
//! ladder is due at `anchor + step.at`; step 1's due time is the trigger's
//! *fire* time (`fired_at`). Steps not yet due are cancelled by the trigger's
//! cancel events (a conversion cancels the rest of a ladder).
//!
//! | kind        | anchor                                   | step 1 `at`                   |
//! |-------------|------------------------------------------|-------------------------------|
//! | absence     | the last `start` event                   | `after` (the wait for B)      |
//! | inactivity  | the last `activity` event                | `after` (fixed or cadence)    |
//! | schedule    | the calendar time (birthday 09:00, ...)  | an offset, may be negative    |
//! | count, sequence, threshold, rate | the event that completed the match | usually `0s` |

use chrono_tz::Tz;
use kairos_model::Span;
use serde_json::Value;
use std::sync::Arc;

/// A whole pipeline: settings, delivery policy and triggers.
#[derive(Clone, Debug)]
pub struct Pipeline {
    /// Short name; actions carry `source = "kairos/<name>"`.
    pub name: String,
    /// Time and hygiene settings.
    pub settings: Settings,
    /// What stands between "a trigger fired" and "an action is sent".
    pub policy: Policy,
    /// Store locations, for `near_store` filters.
    pub stores: Vec<Store>,
    /// The triggers, in file order (ties in arbitration go to the earlier one).
    pub triggers: Vec<Trigger>,
}

/// Time and hygiene settings (`[settings]`).
#[derive(Clone, Debug)]
pub struct Settings {
    /// How far behind the newest event time an event may arrive and still be
    /// applied in event-time order. Default 5 s.
    pub allowed_lateness: Span,
    /// What happens to an event later than that.
    pub late_events: LateEvents,
    /// Per-customer `messageId` de-duplication look-back. Default 24 h.
    pub dedup_lookback: Span,
    /// A customer with no event for this long is packed into one compact
    /// block until their next event or timer (see `slots`). Decisions never
    /// depend on it, except for retries arriving more than `dedup_lookback`
    /// behind the clock (packing forgets message ids older than twice the
    /// look-back). Default 48 h: twice the default look-back, so that a
    /// customer is packed without any (see `customer::frozen`).
    pub pack_idle_after: Span,
    /// Time zone for customers who never told us theirs. Default UTC.
    pub default_timezone: Tz,
    /// Track event name that erases a customer. Default `Erasure Requested`.
    pub erasure_event: String,
    /// Seed for every deterministic assignment (holdout, variants, rollout).
    pub seed: u64,
    /// At most this many entity keys (carts, products ...) per customer per
    /// trigger; the oldest is dropped beyond it. Bounds memory. Default 16.
    pub max_keys_per_trigger: usize,
    /// A taste vector's interactions count half as much after this (see
    /// `taste`). Default 14 days.
    pub taste_half_life: Span,
    /// Items bought this recently are never recommended. Default 30 days.
    pub recently_bought: Span,
    /// The track event that counts as a conversion, attributed to the
    /// customer's last action (see [`crate::stats::VariantStats`]). Default
    /// `Order Completed`.
    pub conversion_event: String,
    /// How long after an action (or a held-out decision) a conversion is
    /// still attributed to it. Default 24 h.
    pub attribution_window: Span,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            allowed_lateness: Span::seconds(5),
            late_events: LateEvents::Apply,
            dedup_lookback: Span::HOUR * 24,
            pack_idle_after: Span::HOUR * 48,
            default_timezone: Tz::UTC,
            erasure_event: "Erasure Requested".to_string(),
            seed: 0,
            max_keys_per_trigger: 16,
            taste_half_life: Span::DAY * 14,
            recently_bought: Span::DAY * 30,
            conversion_event: "Order Completed".to_string(),
            attribution_window: Span::HOUR * 24,
        }
    }
}

/// Handling of events that arrive after the watermark has passed their time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LateEvents {
    /// Apply at once (state updates, cancellations, new timers; a timer whose
    /// deadline is already past fires immediately with `fired_at` = deadline).
    /// Decisions already made are never retracted. Counted as late.
    Apply,
    /// Count and discard.
    Drop,
}

/// The delivery policy (`[policy]`).
#[derive(Clone, Debug)]
pub struct Policy {
    /// Percentage (0–100) of customers in the global control group: evaluated,
    /// never sent marketing. Default 5.
    pub holdout_percent: f64,
    /// Channels that need the customer's consent (identify trait
    /// `consent.<channel> = true` or a `Consent Updated` event).
    pub consent_required: Vec<String>,
    /// Per channel, per local calendar day: at most this many of each category.
    pub daily_caps: DailyCaps,
    /// At most this many marketing (targeted + content) messages in any 7 days.
    pub weekly_marketing_cap: u32,
    /// Local quiet hours, `None` for none. Default 22:00–08:00.
    pub quiet_hours: Option<QuietHours>,
    /// A sent marketing action suppresses lower-or-equal priority marketing
    /// decisions for the same customer within this window. Default 10 min.
    pub arbitration_window: Span,
    /// Send-time optimisation: opens/clicks needed before a customer's best
    /// hour is trusted. Default 3.
    pub send_time_min_feedback: u32,
    /// Event names of feedback that teaches send-time optimisation.
    pub feedback_events: Vec<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            holdout_percent: 5.0,
            consent_required: ["push", "sms", "email", "wechat"]
                .map(String::from)
                .to_vec(),
            daily_caps: DailyCaps {
                targeted: 1,
                content: 1,
            },
            weekly_marketing_cap: 3,
            quiet_hours: Some(QuietHours {
                start_minute: 22 * 60,
                end_minute: 8 * 60,
            }),
            arbitration_window: Span::MINUTE * 10,
            send_time_min_feedback: 3,
            feedback_events: ["Message Opened", "Message Clicked"]
                .map(String::from)
                .to_vec(),
        }
    }
}

/// "1 + 1": one targeted and one content message per channel per local day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DailyCaps {
    /// Targeted (trigger-driven offers).
    pub targeted: u32,
    /// Content (newsletters, tips).
    pub content: u32,
}

/// A local time-of-day window; `start > end` wraps midnight (22:00–08:00).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuietHours {
    /// Minutes after local midnight when quiet starts.
    pub start_minute: u16,
    /// Minutes after local midnight when quiet ends.
    pub end_minute: u16,
}

/// A physical store, for nearby-store offers.
#[derive(Clone, Debug, PartialEq)]
pub struct Store {
    /// Store id as events carry it (`store_id`).
    pub id: String,
    /// Latitude in degrees.
    pub lat: f64,
    /// Longitude in degrees.
    pub lon: f64,
}

/// How caps and consent treat a trigger's actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Category {
    /// Marketing, trigger-driven (counts against the "targeted" daily cap).
    Targeted,
    /// Marketing, content (counts against the "content" daily cap).
    Content,
    /// Service messages: bypass caps, quiet hours, holdout and the breaker.
    Transactional,
    /// Operations alerts (not per customer); bypass everything.
    Ops,
}

impl Category {
    /// Marketing categories are capped, held out and paused by the breaker.
    pub fn is_marketing(self) -> bool {
        matches!(self, Category::Targeted | Category::Content)
    }
}

/// What a trigger's quiet-hours behaviour is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuietHoursMode {
    /// Deliver at the end of quiet hours if still before `expires_at`, else drop.
    Defer,
    /// Drop decisions that fall in quiet hours.
    Drop,
    /// Send regardless (transactional).
    Ignore,
}

/// One trigger (`[[trigger]]`).
#[derive(Clone, Debug)]
pub struct Trigger {
    /// Unique id; actions carry it as `trigger` and in `type`.
    pub id: Arc<str>,
    /// The rule in words, used as `reason.rule`.
    pub rule: Arc<str>,
    /// Whose state it keys on.
    pub key: KeySpec,
    /// The behaviour to detect.
    pub pattern: Pattern,
    /// The ladder: at least one step.
    pub steps: Vec<Step>,
    /// Higher wins arbitration. 0–100 by convention.
    pub priority: u32,
    /// Caps/consent treatment.
    pub category: Category,
    /// No second *sent* action of this trigger to a customer within this.
    pub cooldown: Span,
    /// An action is stale this long after its step was due.
    pub expires_after: Span,
    /// Quiet-hours behaviour.
    pub quiet_hours: QuietHoursMode,
    /// Send-time optimisation: may be delayed up to this to reach the
    /// customer's most responsive hour. Zero disables it.
    pub deliver_within: Span,
    /// Events that cancel this trigger's pending steps and deferred actions
    /// for the same key (conversion).
    pub cancel_on: Vec<EventMatch>,
    /// A/B variants; empty means everyone gets `control`.
    pub variants: Vec<Variant>,
    /// Grey release: percentage (0–100) of customers the trigger is live for;
    /// the rest are evaluated and recorded as suppressed `rollout`.
    pub rollout_percent: f64,
    /// What the action payload carries.
    pub payload: PayloadSpec,
}

impl Trigger {
    /// Its variant names, in order: `control` alone without variants (what
    /// its decisions carry then).
    pub fn variant_names(&self) -> impl Iterator<Item = &str> {
        let control = self.variants.is_empty().then_some("control");
        control
            .into_iter()
            .chain(self.variants.iter().map(|variant| &*variant.name))
    }
}

/// Whose state a trigger keys on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySpec {
    /// The customer.
    Customer,
    /// An entity the customer owns, named by an event property (`cart_id`).
    /// Events without the property use the key `default`, except cancel
    /// events, which then apply to every key of the customer.
    Property(String),
    /// One key per item of a list property (`products[].product_id`); an
    /// event without items addresses no key.
    ListItem {
        /// The list property (`products`).
        list: String,
        /// The item field (`product_id`).
        field: String,
    },
}

/// Which events a pattern reacts to.
#[derive(Clone, Debug, PartialEq)]
pub struct EventMatch {
    /// Event name (`Product Added`, `page`, `identify`), or `*` for any event.
    pub name: String,
    /// Every filter must hold.
    pub filters: Vec<PropertyFilter>,
    /// `Some(true)`: only identified customers (with a `userId`); `Some(false)`:
    /// only anonymous ones.
    pub identified: Option<bool>,
}

impl EventMatch {
    /// Matches every event with this name, unfiltered.
    pub fn named(name: &str) -> EventMatch {
        EventMatch {
            name: name.to_string(),
            filters: Vec::new(),
            identified: None,
        }
    }
}

/// A condition on one event property.
#[derive(Clone, Debug, PartialEq)]
pub struct PropertyFilter {
    /// Property name.
    pub property: String,
    /// The test.
    pub test: FilterTest,
}

/// Property tests.
#[derive(Clone, Debug, PartialEq)]
pub enum FilterTest {
    /// Equal to (numbers compare numerically, `"1"` equals `1`).
    Equals(Value),
    /// One of.
    OneOf(Vec<Value>),
    /// Numeric comparisons.
    LessThan(f64),
    /// ≤
    AtMost(f64),
    /// >
    GreaterThan(f64),
    /// ≥
    AtLeast(f64),
    /// Present at all.
    Exists,
    /// `lat`/`lon` properties within this many km of some configured store
    /// (the property named is ignored; it is `location` by convention).
    NearStore {
        /// Radius in kilometres.
        within_km: f64,
    },
}

/// The pattern kinds.
#[derive(Clone, Debug, PartialEq)]
pub enum Pattern {
    /// `start`, then no `cancel` within step 1's `at` (abandoned cart,
    /// first-purchase nudge, complaint SLA). Another `start` before the fire
    /// restarts the wait when `restart` is set.
    Absence {
        /// A.
        start: EventMatch,
        /// B (and resets): cancel every pending step of the key.
        cancel: Vec<EventMatch>,
        /// A later `start` moves the deadline (true) or is ignored (false).
        restart: bool,
        /// The key's cart becoming empty (`Product Removed` of the last item)
        /// cancels too.
        cancel_when_cart_empty: bool,
    },
    /// At least `min` matching events in a window, optionally grouped by
    /// properties, optionally unless another event happens in the window.
    Count {
        /// Events counted.
        event: EventMatch,
        /// Threshold.
        min: u32,
        /// Window shape.
        window: Window,
        /// Count separately per value of each of these properties (any one
        /// group reaching `min` matches). Empty: one group.
        group_by: Vec<String>,
        /// Any of these in the window prevents the match.
        unless: Vec<EventMatch>,
        /// Match as soon as `min` is reached, or when the window closes.
        fire: CountFire,
    },
    /// No `activity` for step 1's `at` (which may be derived from the
    /// customer's own cadence). Later steps repeat the nudge (dormant wake-up).
    Inactivity {
        /// What counts as activity (`*` for any event).
        activity: EventMatch,
    },
    /// `first`, then `then` within `within` → match on `then`.
    Sequence {
        /// A.
        first: EventMatch,
        /// B.
        then: EventMatch,
        /// Maximum gap.
        within: Span,
    },
    /// A calendar time derived from state.
    Schedule {
        /// Where the calendar time comes from.
        source: ScheduleSource,
    },
    /// A rolling per-customer aggregate crosses a bound.
    Threshold {
        /// The aggregate.
        measure: Measure,
        /// The bound.
        bound: Bound,
    },
    /// A global (not per-customer) rate versus its trailing baseline.
    Rate {
        /// Events counted (any of them).
        events: Vec<EventMatch>,
        /// Current window (1 h).
        window: Span,
        /// Baseline length (the average over this, per window). E.g. 7 d.
        baseline: Span,
        /// Match when current ≥ baseline × (1 + increase_percent / 100).
        increase_percent: f64,
        /// And current ≥ this (no alarm on 2 vs 1).
        min_count: u32,
        /// Pause all marketing for this long when it matches (circuit breaker).
        pause_marketing: Span,
    },
}

/// Count window shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// Fixed, non-overlapping windows; whole-day sizes align to the
    /// customer's local midnight, others to the epoch.
    Tumbling(Span),
    /// The last `Span` before each event.
    Sliding(Span),
    /// Closes after this gap without any event from the customer.
    Session(Span),
}

/// When a count pattern matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CountFire {
    /// On the event that reaches `min` (once per window and group).
    OnReach,
    /// When the window closes with some group at `min` and no `unless`.
    OnClose,
}

/// Calendar sources for schedules.
#[derive(Clone, Debug, PartialEq)]
pub enum ScheduleSource {
    /// A yearly date from an identify trait (`birthday`: `YYYY-MM-DD` or
    /// `MM-DD`), at a local time of day.
    YearlyTrait {
        /// Trait name.
        name: String,
        /// Local minutes after midnight (09:00 = 540).
        minute_of_day: u16,
    },
    /// A time carried by an event property (`expires_at` of `Points Earned`),
    /// or the event time plus `default_after` when the property is absent.
    /// Each such event is its own key (one reminder ladder per points lot).
    EventTime {
        /// Which events.
        event: EventMatch,
        /// Property holding an RFC 3339 time.
        property: String,
        /// Used when the property is missing (points expire 3 y after earning).
        default_after: Span,
    },
    /// The end of each calendar period in the customer's time zone, for
    /// customers with `measure` activity; matches only when `condition` holds.
    PeriodEnd {
        /// Period.
        period: Period,
        /// Condition evaluated at the step time.
        condition: PeriodCondition,
    },
}

/// Calendar periods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    /// Calendar month.
    Month,
    /// Calendar quarter.
    Quarter,
    /// Calendar year.
    Year,
}

/// "Below target this period and the previous ones."
#[derive(Clone, Debug, PartialEq)]
pub struct PeriodCondition {
    /// Summed per period.
    pub event: EventMatch,
    /// Numeric property summed (`revenue`); `None` counts events.
    pub property: Option<String>,
    /// The target per period.
    pub below: f64,
    /// Consecutive periods (including the current one) below target.
    pub periods: u32,
}

/// A rolling per-customer aggregate.
#[derive(Clone, Debug, PartialEq)]
pub struct Measure {
    /// Which events.
    pub event: EventMatch,
    /// Numeric property summed; `None` counts events.
    pub property: Option<String>,
    /// Trailing window.
    pub window: Span,
}

/// Bounds for thresholds.
#[derive(Clone, Debug, PartialEq)]
pub enum Bound {
    /// Aggregate ≥ value (once, re-armed when it falls below).
    AtLeast(f64),
    /// Within `within_percent` below the next tier threshold (once per tier).
    NearNextTier {
        /// Ascending tier thresholds.
        tiers: Vec<f64>,
        /// 10 means "≥ 90 % of the next tier".
        within_percent: f64,
    },
    /// In the top `percent` of all customers with a non-zero aggregate.
    TopPercent(f64),
    /// The aggregate fell by ≥ `percent` versus the window before it.
    DropPercent(f64),
}

/// Durations that may depend on the event or the customer.
#[derive(Clone, Debug, PartialEq)]
pub enum Offset {
    /// The same for everyone.
    Fixed(Span),
    /// Looked up by a property of the anchor event (complaint severity).
    ByProperty {
        /// Property name.
        property: String,
        /// Value → offset.
        values: Vec<(String, Span)>,
        /// When the value is missing or not listed.
        default: Span,
    },
    /// `multiplier` × the median gap between the key's last activities,
    /// at least `floor`; with fewer than `min_history` activities,
    /// `sparse_floor` (or no match when `None`).
    Cadence {
        /// k.
        multiplier: f64,
        /// Lower bound.
        floor: Span,
        /// Activities needed to trust the median.
        min_history: u32,
        /// Used with fewer activities.
        sparse_floor: Option<Span>,
    },
}

/// One rung of a ladder.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// Due at anchor + this.
    pub at: Offset,
    /// Channel the action goes to.
    pub channel: Arc<str>,
    /// Offer code put into the payload, if any.
    pub offer: Option<Arc<str>>,
}

/// A/B variant.
#[derive(Clone, Debug, PartialEq)]
pub struct Variant {
    /// Name (`control`, `coupon10`).
    pub name: Arc<str>,
    /// Relative weight.
    pub weight: u32,
    /// Overrides step 1's wait (e.g. 30 m versus 60 m).
    pub first_step_at: Option<Span>,
    /// Overrides every step's channel.
    pub channel: Option<Arc<str>>,
    /// Overrides every step's offer.
    pub offer: Option<Arc<str>>,
}

/// What goes into `data.payload`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PayloadSpec {
    /// Cart items and value of the key's cart (or all of the customer's carts
    /// for customer-keyed triggers).
    pub cart: bool,
    /// Properties copied from the triggering event.
    pub properties: Vec<String>,
    /// How many recommended items a sent action carries
    /// (`payload.recommendations`), 0 for none. Filled in when a catalog
    /// is loaded (see `taste`).
    pub recommendations: usize,
}
