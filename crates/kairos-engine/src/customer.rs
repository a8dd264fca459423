//! Per-customer state. Kept small on purpose (a million customers must fit in
//! a few hundred MB): optional parts are boxed or empty vectors, trigger state
//! exists only for triggers that have something to remember. Ids (keys,
//! aliases, cart and product ids, reasons) are `CompactString`s: up to 24
//! bytes live inline, so a short id costs no allocation and no extra cache
//! miss when compared (a 36-byte UUID still takes an allocation). A keyed
//! state's entity key is the exception: it is boxed, and shares its place
//! with the state's memory (see [`KeyedState`]), because most states have
//! none and would otherwise carry 24 (or 8) empty bytes.

use crate::attribution::{DecisionRecord, Touch};
use crate::decision::Decision;
use crate::globals::RankBucket;
use crate::growth::reserve_one;
use crate::id_index::{IdIndex, IdKey};
use crate::lookahead::{prefetch, prefetch_lines, prefetch_thin_vec, Walk};
pub use crate::message_id::MessageId;
pub use crate::seen::SeenMessages;
use crate::slots::{Slot, Slots};
use crate::taste::Taste;
use chrono_tz::Tz;
use compact_str::CompactString;
pub use frozen::{freeze, pack_whole, thaw, unpack_whole};
use kairos_model::{Span, Timestamp};
use serde_json::Value;
use thin_vec::ThinVec;

mod frozen;

/// Everything held about one person. The record itself holds what nearly
/// every event reads (key, profile, de-dup with up to two entries inline,
/// states, carts, when it was last touched) in 104 bytes; the parts most
/// customers never have (other ids, messages sent, deferred decisions,
/// engagement hours) hang off one optional box. An idle customer is held
/// packed instead (see `slots`).
#[derive(Debug)]
pub struct Customer {
    /// The key actions carry: `userId` once known, else `anonymousId`.
    pub key: CompactString,
    /// Profile from identify traits.
    pub profile: Profile,
    /// Recently seen message ids, for de-duplication.
    pub seen: SeenMessages,
    /// Open carts.
    pub carts: ThinVec<Cart>,
    /// Per trigger (and entity) memory, sorted by trigger.
    pub states: ThinVec<KeyedState>,
    /// Next token for a keyed state or deferred decision.
    pub next_token: u32,
    /// Time of the newest event applied (`MIN` when none was since it was
    /// unpacked): how long it has been idle (see `slots`).
    pub touched: Timestamp,
    /// See [`Occasional`]; `None` while all of it is empty.
    occasional: Option<Box<Occasional>>,
}

/// The parts of a customer that most never have.
#[derive(Debug, Default)]
pub struct Occasional {
    /// Other ids that resolve to this customer (devices' anonymousIds, merged
    /// ids), for erasure and merging.
    pub aliases: ThinVec<CompactString>,
    /// Recently sent actions, for caps, cooldowns and arbitration.
    pub sent: ThinVec<SentRecord>,
    /// Decisions waiting for quiet hours to end or the best send time.
    pub deferred: ThinVec<DeferredDecision>,
    /// Hour-of-day histogram of opens/clicks (local time), once there is any.
    pub engagement_hours: Option<[u16; 24]>,
    /// What they have shown interest in, once a catalog item was touched
    /// (see `taste`).
    pub taste: Option<Box<Taste>>,
    /// Their latest sent action or held-out decision, which a conversion is
    /// attributed to (see `attribution`).
    pub last_touch: Option<Touch>,
    /// Their latest decisions, sent or not, newest last (at most
    /// [`crate::attribution::RECENT_DECISIONS`]): what `inspect` shows.
    pub decisions: ThinVec<DecisionRecord>,
}

impl Customer {
    /// A new, empty customer.
    pub fn new(key: &str) -> Customer {
        Customer {
            key: key.into(),
            profile: Profile::default(),
            seen: SeenMessages::default(),
            carts: ThinVec::new(),
            states: ThinVec::new(),
            next_token: 0,
            touched: Timestamp::MIN,
            occasional: None,
        }
    }

    /// A fresh token.
    pub fn token(&mut self) -> u32 {
        // Tokens share 32 bits with a timer's purpose (see `timers`).
        self.next_token = (self.next_token + 1) % crate::timers::TOKEN_LIMIT;
        self.next_token
    }

    /// Other ids of this customer.
    pub fn aliases(&self) -> &[CompactString] {
        self.occasional.as_ref().map_or(&[], |o| &o.aliases)
    }

    /// Recently sent actions, oldest first.
    pub fn sent(&self) -> &[SentRecord] {
        self.occasional.as_ref().map_or(&[], |o| &o.sent)
    }

    /// Decisions waiting to be delivered.
    pub fn deferred(&self) -> &[DeferredDecision] {
        self.occasional.as_ref().map_or(&[], |o| &o.deferred)
    }

    /// Opens and clicks by local hour, if any were seen.
    pub fn engagement_hours(&self) -> Option<&[u16; 24]> {
        self.occasional.as_ref()?.engagement_hours.as_ref()
    }

    /// The occasional parts, for changing them (created on demand).
    pub fn occasional_mut(&mut self) -> &mut Occasional {
        self.occasional.get_or_insert_with(Box::default)
    }

    /// The occasional parts if there are any, to read.
    pub fn occasional(&self) -> Option<&Occasional> {
        self.occasional.as_deref()
    }

    /// The occasional parts if there are any, for removing from them.
    pub fn occasional_if_any(&mut self) -> Option<&mut Occasional> {
        self.occasional.as_deref_mut()
    }

    /// Takes the occasional parts out (merging, erasure).
    pub fn take_occasional(&mut self) -> Occasional {
        self.occasional.take().map(|o| *o).unwrap_or_default()
    }

    /// The cart with this id, created on demand.
    pub fn cart_mut(&mut self, id: &str) -> &mut Cart {
        match self.carts.iter().position(|cart| &*cart.id == id) {
            Some(index) => &mut self.carts[index],
            None => {
                // Most customers hold one cart (see `growth`).
                reserve_one(&mut self.carts, usize::MAX);
                self.carts.push(Cart {
                    id: id.into(),
                    lines: ThinVec::new(),
                });
                self.carts.last_mut().expect("just pushed")
            }
        }
    }
}

/// Every customer, and the index that finds them by id.
pub struct Population<'a> {
    /// Id → slot.
    pub ids: &'a IdIndex,
    /// Customers by slot.
    pub customers: &'a Slots,
}

impl Population<'_> {
    /// The customer in `slot` if it is in working form (a packed one is
    /// left to be unpacked when needed: its block is prefetched, no more).
    fn get(&self, slot: u32) -> Option<&Customer> {
        match self.customers.slot(slot)? {
            Slot::Hot(customer) => Some(customer),
            _ => None,
        }
    }
}

/// The blocks of a customer, walked ahead of its events (see `lookahead`).
impl Walk for Population<'_> {
    fn prefetch_index(&self, key: IdKey) {
        self.ids.prefetch(key);
    }

    fn resolve(&self, key: IdKey) -> Option<u32> {
        self.ids.get_key(key)
    }

    fn prefetch_record(&self, slot: u32) {
        if let Some(place) = self.customers.slot(slot) {
            prefetch_lines(place);
        }
    }

    fn prefetch_parts(&self, slot: u32) {
        match self.customers.slot(slot) {
            Some(Slot::Hot(customer)) => {
                prefetch_thin_vec(&customer.states);
                prefetch(customer.states.as_ptr().wrapping_add(1));
                prefetch_thin_vec(&customer.carts);
                customer.seen.prefetch_start();
                if let Some(occasional) = &customer.occasional {
                    prefetch(&occasional.taste);
                }
            }
            Some(Slot::PackedBlock(block)) => {
                prefetch(block.as_ptr());
                prefetch(block.as_ptr().wrapping_add(64));
            }
            _ => {}
        }
    }

    fn prefetch_details(&self, slot: u32, message: Option<u64>) {
        let Some(customer) = self.get(slot) else {
            return;
        };
        if let Some(message) = message {
            customer.seen.prefetch_slot(message);
        }
        for state in customer.states.iter().take(8) {
            if let Some(ladder) = &state.ladder {
                prefetch_lines(&**ladder);
            }
            // (An entity state's memory, behind its key's box, is left to
            // be fetched when used: reading the box here would wait for it.)
            match &state.held {
                Held::Customer(Memory::Count(memory)) => prefetch_lines(&**memory),
                Held::Customer(Memory::Measure(memory)) => prefetch_lines(&**memory),
                Held::Customer(Memory::MeasureTwoWindows(memory)) => prefetch_lines(&**memory),
                Held::Customer(Memory::Tally(memory)) => prefetch_lines(&**memory),
                Held::Customer(Memory::TallyTwoWindows(memory)) => prefetch_lines(&**memory),
                Held::Customer(_) => {}
                Held::Entity(entity) => prefetch(&**entity),
                Held::EntityAndMemory(both) => prefetch_lines(&**both),
            }
        }
        for cart in customer.carts.iter().take(4) {
            prefetch(cart.id.as_ptr());
            prefetch(cart.lines.as_ptr());
        }
        if let Some(taste) = customer
            .occasional
            .as_ref()
            .and_then(|o| o.taste.as_deref())
        {
            prefetch_lines(taste);
        }
    }
}

/// What identify calls told us.
#[derive(Debug, Default)]
pub struct Profile {
    /// IANA time zone, if known.
    pub timezone: Option<Tz>,
    /// Birthday as (month, day).
    pub birthday: Option<(u8, u8)>,
    /// Consent granted, one bit per channel (see [`Plan::consent_bit`]).
    pub consent: u16,
    /// Channels the customer has said yes or no to: a merge keeps the
    /// identified person's word where they gave one, so a withdrawal is not
    /// undone by an old grant from another device.
    ///
    /// [`Plan::consent_bit`]: crate::plan::Plan::consent_bit
    pub consent_stated: u16,
}

/// A cart's contents.
#[derive(Debug, Clone)]
pub struct Cart {
    /// `cart_id`, or `default`.
    pub id: CompactString,
    /// Lines (a few, usually: see `growth`).
    pub lines: ThinVec<CartLine>,
}

/// One product in a cart.
#[derive(Debug, Clone)]
pub struct CartLine {
    /// `product_id`.
    pub product_id: CompactString,
    /// Quantity.
    pub quantity: u32,
    /// Unit price.
    pub price: f64,
}

impl Cart {
    /// Sum of quantity × price.
    pub fn value(&self) -> f64 {
        self.lines
            .iter()
            .map(|line| line.price * f64::from(line.quantity))
            .sum()
    }
}

/// One trigger's memory for one key of one customer, in 32 bytes.
#[derive(Debug)]
pub struct KeyedState {
    /// Trigger index in the pipeline.
    pub trigger: u16,
    /// Identifies this state's timers.
    pub token: u32,
    /// Pattern memory, and the entity key of a trigger keyed by one.
    held: Held,
    /// Pending ladder, if a match is in progress.
    pub ladder: Option<Box<Ladder>>,
    /// The pending ladder's step 1 was held back by the cooldown: its later
    /// steps are held back by it too (see `policy::judge`). Kept here, in
    /// bytes the record has spare, rather than in the ladder.
    pub held_back: bool,
}

/// A keyed state's memory and entity key in the 16 bytes of a [`Memory`]
/// (its discriminant takes a value `Memory`'s leaves free). Most states
/// are keyed by the customer and hold only a memory; most entity-keyed
/// ones (an abandoned cart, a points-expiry schedule) hold no memory
/// beyond their ladder, so the key alone is boxed. Both, which no pattern
/// of the shipped pipelines needs, share one box.
#[derive(Debug)]
enum Held {
    /// Keyed by the customer.
    Customer(Memory),
    /// Keyed by an entity, with no memory ([`Memory::None`]).
    Entity(Box<CompactString>),
    /// Keyed by an entity, with memory.
    EntityAndMemory(Box<(CompactString, Memory)>),
}

/// What [`KeyedState::memory`] shows for an entity state without memory.
static NO_MEMORY: Memory = Memory::None;

impl KeyedState {
    /// A state with no ladder.
    pub fn new(trigger: u16, token: u32, entity: Option<&str>, memory: Memory) -> KeyedState {
        let held = match (entity, memory) {
            (None, memory) => Held::Customer(memory),
            (Some(entity), Memory::None) => Held::Entity(Box::new(entity.into())),
            (Some(entity), memory) => Held::EntityAndMemory(Box::new((entity.into(), memory))),
        };
        KeyedState {
            trigger,
            token,
            held,
            ladder: None,
            held_back: false,
        }
    }

    /// The entity key, if the trigger is keyed by one.
    #[inline]
    pub fn entity_key(&self) -> Option<&str> {
        self.entity_text().map(CompactString::as_str)
    }

    /// [`Self::entity_key`] as held, for callers that keep a copy (cloning
    /// it is cheaper than converting the text back).
    pub fn entity_text(&self) -> Option<&CompactString> {
        match &self.held {
            Held::Customer(_) => None,
            Held::Entity(entity) => Some(entity),
            Held::EntityAndMemory(both) => Some(&both.0),
        }
    }

    /// Whether this is the state of `entity` (`None`: the customer's own).
    /// The same as comparing [`Self::entity_key`], without reading a boxed
    /// key when the kinds differ.
    #[inline]
    pub fn is_for(&self, entity: Option<&str>) -> bool {
        match (&self.held, entity) {
            (Held::Customer(_), None) => true,
            (Held::Customer(_), Some(_)) | (_, None) => false,
            (Held::Entity(key), Some(entity)) => key.as_str() == entity,
            (Held::EntityAndMemory(both), Some(entity)) => both.0.as_str() == entity,
        }
    }

    /// The pattern memory.
    #[inline]
    pub fn memory(&self) -> &Memory {
        match &self.held {
            Held::Customer(memory) => memory,
            Held::Entity(_) => &NO_MEMORY,
            Held::EntityAndMemory(both) => &both.1,
        }
    }

    /// The pattern memory, for changing it in place; `None` for an entity
    /// state without memory (there is nothing to change: to give it one,
    /// use [`Self::set_memory`]). So no path that merely looks for a kind of
    /// memory can give such a state a box it does not need.
    #[inline]
    pub fn memory_mut(&mut self) -> Option<&mut Memory> {
        match &mut self.held {
            Held::Customer(memory) => Some(memory),
            Held::EntityAndMemory(both) => Some(&mut both.1),
            Held::Entity(_) => None,
        }
    }

    /// Replaces the pattern memory.
    #[inline]
    pub fn set_memory(&mut self, memory: Memory) {
        match &mut self.held {
            Held::Customer(held) => *held = memory,
            _ => self.set_entity_memory(memory),
        }
    }

    /// [`Self::set_memory`] for an entity state: the key alone when there
    /// is no memory, the key and the memory in one box otherwise.
    #[inline(never)]
    fn set_entity_memory(&mut self, memory: Memory) {
        match (&mut self.held, memory) {
            (Held::Customer(held), memory) => *held = memory,
            (Held::Entity(_), Memory::None) => {}
            (Held::EntityAndMemory(both), Memory::None) => {
                let entity = std::mem::take(&mut both.0);
                self.held = Held::Entity(Box::new(entity));
            }
            (Held::EntityAndMemory(both), memory) => both.1 = memory,
            (Held::Entity(entity), memory) => {
                let entity = std::mem::take(&mut **entity);
                self.held = Held::EntityAndMemory(Box::new((entity, memory)));
            }
        }
    }

    /// Takes the pattern memory out, leaving [`Memory::None`].
    pub fn take_memory(&mut self) -> Memory {
        let memory = match &mut self.held {
            Held::Customer(memory) => return std::mem::take(memory),
            Held::Entity(_) => return Memory::None,
            Held::EntityAndMemory(both) => std::mem::take(&mut both.1),
        };
        self.set_memory(Memory::None);
        memory
    }

    /// The deadline of the pending window-close timer (count patterns).
    pub fn window_close(&self) -> Option<Timestamp> {
        match self.memory() {
            Memory::Count(memory) => memory.window_close.get(),
            Memory::BlockedSession { close, lag } => Some(*close - lag.span()),
            _ => None,
        }
    }
}

/// Event properties a pattern keeps for later (offsets, payload): usually
/// none, so a thin vector (8 bytes, no allocation while empty).
pub type Properties = ThinVec<(String, Value)>;

/// Pattern-specific memory.
#[derive(Debug, Default)]
pub enum Memory {
    /// Nothing beyond the ladder (absence, schedule from events).
    #[default]
    None,
    /// Activity times (newest last, bounded) for cadence offsets.
    History(ThinVec<Timestamp>),
    /// Count window.
    Count(Box<CountMemory>),
    /// A session window an `unless` event blocked: nothing counted in it can
    /// match any more, so only its end is kept, not its counts. Every
    /// add-to-cart opens one for browse abandonment, hence the care.
    BlockedSession {
        /// The session's last activity + its gap.
        close: Timestamp,
        /// How far before `close` its close timer sits: the timer is moved
        /// when it fires, not on every event of a busy session. When it
        /// fires at `close`, the session has ended and is forgotten.
        lag: Lag,
    },
    /// The last `first` of a sequence: its time and message id.
    Sequence(Box<(Timestamp, MessageId)>),
    /// A rolling aggregate over one window.
    Measure(Box<MeasureMemory<[f32; MEASURE_BUCKETS]>>),
    /// A rolling aggregate over two windows (a drop from one to the next):
    /// twice the buckets, which only such measures pay for.
    MeasureTwoWindows(Box<MeasureMemory<[f32; 2 * MEASURE_BUCKETS]>>),
    /// A rolling count of events over one window, in 8-bit buckets: a
    /// quarter of the bytes of sums. A count that would pass 255 in a
    /// bucket (a few customers' in a busy stretch) turns it into
    /// [`Memory::Measure`] ([`Memory::widen_tally`]), which counts on, so
    /// counts stay exact, as they are in `f32` up to 2²⁴.
    Tally(Box<MeasureMemory<[u8; MEASURE_BUCKETS]>>),
    /// The same over two windows (activity drops: every idle customer of
    /// `retail.toml` has one).
    TallyTwoWindows(Box<MeasureMemory<[u8; 2 * MEASURE_BUCKETS]>>),
    /// Per-period sums.
    Periods(Box<PeriodMemory>),
    /// The yearly date (a birthday, or the date of the trait the schedule
    /// names) its ladder was computed for.
    Yearly {
        /// (month, day) the ladder was computed for.
        date: (u8, u8),
    },
}

impl Memory {
    /// An empty rolling aggregate over `windows` windows (one or two), of
    /// counts when `counts` (the measure has no amount property), else of
    /// sums.
    pub fn new_measure(windows: usize, counts: bool) -> Memory {
        match (windows, counts) {
            (1, true) => Memory::Tally(MeasureMemory::new()),
            (_, true) => Memory::TallyTwoWindows(MeasureMemory::new()),
            (1, false) => Memory::Measure(MeasureMemory::new()),
            (_, false) => Memory::MeasureTwoWindows(MeasureMemory::new()),
        }
    }

    /// Where the rolling aggregate, of any kind, last reported to the
    /// global rank histogram.
    pub fn measure_ranked(&self) -> Option<RankBucket> {
        match self {
            Memory::Measure(memory) => memory.ranked,
            Memory::MeasureTwoWindows(memory) => memory.ranked,
            Memory::Tally(memory) => memory.ranked,
            Memory::TallyTwoWindows(memory) => memory.ranked,
            _ => None,
        }
    }

    /// The rolling aggregate, of any kind, for changing it.
    pub fn measure_mut(&mut self) -> Option<MeasureMut<'_>> {
        match self {
            Memory::Measure(memory) => Some(MeasureMut::Sums(&mut **memory)),
            Memory::MeasureTwoWindows(memory) => Some(MeasureMut::Sums(&mut **memory)),
            Memory::Tally(memory) => Some(MeasureMut::Counts(&mut **memory)),
            Memory::TallyTwoWindows(memory) => Some(MeasureMut::Counts(&mut **memory)),
            _ => None,
        }
    }

    /// Turns a tally into sums of the same counts (when a bucket is full).
    pub fn widen_tally(&mut self) {
        match self {
            Memory::Tally(memory) => *self = Memory::Measure(memory.widened()),
            Memory::TallyTwoWindows(memory) => *self = Memory::MeasureTwoWindows(memory.widened()),
            _ => {}
        }
    }
}

/// A rolling aggregate of either bucket type, for changing it.
pub enum MeasureMut<'a> {
    /// Sums of amounts.
    Sums(&'a mut MeasureMemory<[f32]>),
    /// Counts of events.
    Counts(&'a mut MeasureMemory<[u8]>),
}

/// An optional instant in 8 bytes, where `Option<Timestamp>` takes 16: no
/// instant is below [`Timestamp::MIN`], so one below it means none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaybeTime(i64);

impl MaybeTime {
    /// No instant.
    pub const NONE: MaybeTime = MaybeTime(i64::MIN);

    /// The instant, if any.
    pub fn get(self) -> Option<Timestamp> {
        (self != Self::NONE).then_some(Timestamp(self.0))
    }

    /// Takes the instant out, leaving none.
    pub fn take(&mut self) -> Option<Timestamp> {
        std::mem::replace(self, Self::NONE).get()
    }
}

impl Default for MaybeTime {
    fn default() -> Self {
        Self::NONE
    }
}

impl From<Option<Timestamp>> for MaybeTime {
    fn from(time: Option<Timestamp>) -> Self {
        time.map_or(Self::NONE, |time| MaybeTime(time.0))
    }
}

/// Per-period sums for period-end schedules.
#[derive(Debug)]
pub struct PeriodMemory {
    /// Index of the period of the first event: earlier periods are unknown,
    /// not zero (a new customer is not "below target last quarter").
    pub first: i64,
    /// Index of the current period.
    pub period: i64,
    /// Sums, current period first.
    pub sums: Vec<f64>,
}

/// Count-window memory.
#[derive(Debug, Default)]
pub struct CountMemory {
    /// Window start (tumbling index or session start).
    pub window: i64,
    /// Last event in the window, once there is one.
    pub last: MaybeTime,
    /// Per group: value, count, recent times (sliding), fired in this window.
    pub groups: ThinVec<CountGroup>,
    /// An `unless` event happened in the window (its time).
    pub unless_at: MaybeTime,
    /// Message ids that contributed (bounded).
    pub events: ThinVec<MessageId>,
    /// Payload properties of the last counted event.
    pub properties: Properties,
    /// Where the window-close timer sits, if one is pending. Kept here, not
    /// in every keyed state: only count patterns have one.
    pub window_close: MaybeTime,
}

/// One group of a count pattern.
#[derive(Debug, Default)]
pub struct CountGroup {
    /// Hash of (property, value), compared before the label.
    pub hash: u64,
    /// `property=value`, or empty for the single group.
    pub value: CompactString,
    /// Count in the window.
    pub count: u32,
    /// For sliding windows: the most recent `min` times.
    pub recent: ThinVec<Timestamp>,
    /// Already matched in this window.
    pub fired: bool,
}

/// Buckets per window of a rolling aggregate.
pub const MEASURE_BUCKETS: usize = 12;

/// Rolling-aggregate memory: a ring of buckets, as many as the measure
/// needs: `MEASURE_BUCKETS` for one window, twice that for a drop between
/// two, of `f32` sums or `u8` counts (see [`Memory::Measure`],
/// [`Memory::Tally`]). Code works on `MeasureMemory<[f32]>` and
/// `MeasureMemory<[u8]>`, to which the sizes coerce.
#[derive(Debug)]
pub struct MeasureMemory<Buckets: ?Sized> {
    /// Index of the newest bucket.
    pub newest: i64,
    /// Buckets in use; 0 until the first amount.
    pub kept: u8,
    /// Band/tier already matched (re-armed when left).
    pub matched: Option<u16>,
    /// Where the value last reported to the global rank histogram sits.
    pub ranked: Option<RankBucket>,
    /// Bucket sums or counts, newest first; the first `kept` are in use.
    /// Inline, so updating an aggregate touches one allocation. (f32: a
    /// rolling sum needs ~7 significant digits.)
    pub buckets: Buckets,
}

impl<B: Default + Copy, const N: usize> MeasureMemory<[B; N]> {
    /// An empty aggregate.
    pub fn new() -> Box<Self> {
        Box::new(MeasureMemory {
            newest: 0,
            kept: 0,
            matched: None,
            ranked: None,
            buckets: [B::default(); N],
        })
    }
}

impl<const N: usize> MeasureMemory<[u8; N]> {
    /// The same counts as sums.
    fn widened(&self) -> Box<MeasureMemory<[f32; N]>> {
        Box::new(MeasureMemory {
            newest: self.newest,
            kept: self.kept,
            matched: self.matched,
            ranked: self.ranked,
            buckets: self.buckets.map(f32::from),
        })
    }
}

/// A ladder in progress.
#[derive(Debug)]
pub struct Ladder {
    /// Anchor time.
    pub anchor: Timestamp,
    /// Index (0-based) of the next step.
    pub next_step: u8,
    /// True due time of the next step.
    pub due: Timestamp,
    /// How far before `due` the timer entry sits: a restart that only
    /// moves the deadline later leaves the timer where it is, and it is
    /// moved when it fires (see [`Ladder::timer_at`]).
    pub timer_lag: Lag,
    /// Variant index (`u8::MAX`: control without variants).
    pub variant: u8,
    /// Causing message ids (bounded).
    pub events: Reasons,
    /// Anchor-event properties needed later (offsets, payload).
    pub properties: Properties,
}

impl Ladder {
    /// Where the timer entry sits (≤ `due`).
    pub fn timer_at(&self) -> Timestamp {
        self.due - self.timer_lag.span()
    }
}

/// How far a timer entry sits behind the deadline it serves, in 6 bytes
/// (2-byte aligned, so it fits in the spare bytes of a [`Ladder`] and of
/// [`Memory`]): up to 2⁴⁸ − 1 ms, ~8,900 years. A timer left behind by
/// restarts stays where it is and is moved when it fires; that firing
/// moves the engine's clock, so moving the timer earlier instead would
/// change the decision of a late event. A lag stays below the offset that
/// set the deadline, and validated pipelines bound offsets at 100 years
/// (`Span::LONGEST`), so the at-once move kept for a distance beyond this
/// range only serves pipelines built in code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lag([u16; 3]);

impl Lag {
    /// None.
    pub const ZERO: Lag = Lag([0; 3]);

    /// `span` as a lag, if it is one (not negative, not beyond the range).
    pub fn new(span: Span) -> Option<Lag> {
        let ms = u64::try_from(span.0).ok().filter(|ms| *ms < 1 << 48)?;
        Some(Lag([ms as u16, (ms >> 16) as u16, (ms >> 32) as u16]))
    }

    /// The distance.
    pub fn span(self) -> Span {
        let [low, middle, high] = self.0.map(u64::from);
        Span((low | middle << 16 | high << 32) as i64)
    }
}

/// The message ids that caused a ladder, oldest first. Most ladders keep
/// exactly one for their whole life (the event that started them), so one
/// id lives inline in the ladder; only more than one takes a list.
#[derive(Debug, Default)]
pub enum Reasons {
    /// None (schedules that no event started).
    #[default]
    None,
    /// One.
    One(MessageId),
    /// Two or more.
    Many(ThinVec<MessageId>),
}

/// The room a ladder's list of causing ids starts with (see
/// [`Reasons::append`]). Three 24-byte ids and the list's 16-byte header
/// come to 88 bytes, in the allocator's 96-byte size class.
const REASONS_FIRST_LIST: usize = 3;

impl Reasons {
    /// Appends `events`, keeping the newest `limit` (at least one).
    pub fn append(&mut self, events: &[MessageId], limit: usize) {
        for (index, event) in events.iter().enumerate() {
            match self {
                Reasons::None => *self = Reasons::One(event.clone()),
                Reasons::One(first) => {
                    // Room for the ids still to come, and for a third: a
                    // cart that gets a second product mostly gets more,
                    // and growing one id at a time reallocated at each.
                    // (Room for four saved a little more time but added
                    // three times the bytes per customer with a cart.)
                    let needed = 1 + events.len() - index;
                    let first_room = REASONS_FIRST_LIST.min(limit.saturating_add(1));
                    let mut list = ThinVec::with_capacity(needed.max(first_room));
                    list.push(std::mem::replace(first, MessageId::Uuid([0; 16])));
                    list.push(event.clone());
                    *self = Reasons::Many(list);
                }
                Reasons::Many(list) => {
                    // At most `limit` + 1 before the oldest are dropped.
                    reserve_one(list, limit.saturating_add(1));
                    list.push(event.clone());
                }
            }
        }
        if let Reasons::Many(list) = self {
            let excess = list.len().saturating_sub(limit.max(1));
            // (An empty drain still moves the whole list onto itself.)
            if excess > 0 {
                list.drain(..excess);
            }
        }
    }

    /// Replaces the ids with `events` (a busy customer restarts an
    /// inactivity ladder on every event).
    pub fn replace(&mut self, events: &[MessageId]) {
        match (&mut *self, events) {
            (Reasons::One(kept), [event]) => kept.assign(event),
            _ => {
                *self = Reasons::None;
                self.append(events, usize::MAX);
            }
        }
    }

    /// [`Self::replace`] with the one id an event carries, assigned in
    /// place when there is one id already (a busy customer's inactivity
    /// ladder).
    pub fn replace_with_event_id(&mut self, id: &CompactString) {
        match self {
            Reasons::One(kept) => kept.assign_from_event(id),
            _ => *self = Reasons::One(MessageId::from_event(id)),
        }
    }

    /// The ids, oldest first.
    pub fn as_slice(&self) -> &[MessageId] {
        match self {
            Reasons::None => &[],
            Reasons::One(one) => std::slice::from_ref(one),
            Reasons::Many(list) => list,
        }
    }
}

/// A sent action, remembered for caps, cooldowns and arbitration.
#[derive(Debug, Clone, Copy)]
pub struct SentRecord {
    /// When it was sent.
    pub at: Timestamp,
    /// Trigger index.
    pub trigger: u16,
    /// Channel index.
    pub channel: u8,
    /// Whether it counts as marketing, and which cap.
    pub cap: CapClass,
    /// Its priority.
    pub priority: u8,
}

/// Which cap a sent action counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapClass {
    /// Daily targeted cap and weekly marketing cap.
    Targeted,
    /// Daily content cap and weekly marketing cap.
    Content,
    /// Neither.
    Uncapped,
}

/// A decision waiting to be delivered.
#[derive(Debug)]
pub struct DeferredDecision {
    /// Its timer token.
    pub token: u32,
    /// Trigger index.
    pub trigger: u16,
    /// Entity key of the state it came from.
    pub entity: Option<CompactString>,
    /// When it is to be delivered.
    pub due: Timestamp,
    /// Its journey's step 1 was held back by the cooldown.
    pub held_back: bool,
    /// The decision (not yet final).
    pub decision: Box<Decision>,
}

#[cfg(test)]
mod layout {
    use super::*;
    use std::mem::size_of;

    /// A million customers multiply every byte here: growing one of these
    /// records should be a decision, not an accident.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn records_stay_small() {
        assert_eq!(size_of::<crate::slots::Slot>(), 112);
        assert_eq!(size_of::<Customer>(), 104);
        assert_eq!(size_of::<KeyedState>(), 32);
        assert_eq!(size_of::<Held>(), 16);
        assert_eq!(size_of::<Ladder>(), 56);
        assert_eq!(size_of::<Reasons>(), 24);
        assert_eq!(size_of::<Memory>(), 16);
        assert_eq!(size_of::<Lag>(), 6);
        assert_eq!(size_of::<SeenMessages>(), 32);
        assert_eq!(size_of::<Cart>(), 32);
        assert_eq!(size_of::<CountMemory>(), 56);
        assert_eq!(size_of::<MeasureMemory<[f32; MEASURE_BUCKETS]>>(), 64);
        assert_eq!(size_of::<MeasureMemory<[f32; 2 * MEASURE_BUCKETS]>>(), 112);
        assert_eq!(size_of::<MeasureMemory<[u8; MEASURE_BUCKETS]>>(), 32);
        assert_eq!(size_of::<MeasureMemory<[u8; 2 * MEASURE_BUCKETS]>>(), 40);
        assert_eq!(size_of::<CartLine>(), 40);
    }
}

#[cfg(test)]
mod lag {
    use super::*;

    #[test]
    fn holds_every_distance_up_to_48_bits_and_nothing_else() {
        for ms in [0, 1, 65_535, 65_536, 1 << 32, (1 << 32) + 7, (1 << 48) - 1] {
            assert_eq!(Lag::new(Span(ms)).map(Lag::span), Some(Span(ms)));
        }
        assert_eq!(Lag::new(Span(1 << 48)), None);
        assert_eq!(Lag::new(Span(-1)), None);
        assert_eq!(Lag::ZERO.span(), Span::ZERO);
    }
}

#[cfg(test)]
mod maybe_time {
    use super::*;

    #[test]
    fn holds_every_instant_and_none() {
        for time in [Timestamp::MIN, Timestamp(-1), Timestamp(0), Timestamp::MAX] {
            let mut held = MaybeTime::from(Some(time));
            assert_eq!(held.get(), Some(time));
            assert_eq!(held.take(), Some(time));
            assert_eq!(held, MaybeTime::NONE);
        }
        assert_eq!(MaybeTime::from(None).get(), None);
        assert_eq!(MaybeTime::default().get(), None);
    }
}

#[cfg(test)]
mod reasons {
    use super::*;

    fn ids(reasons: &Reasons) -> Vec<String> {
        reasons.as_slice().iter().map(ToString::to_string).collect()
    }

    fn new(texts: &[&str]) -> Vec<MessageId> {
        texts.iter().map(|text| MessageId::new(text)).collect()
    }

    #[test]
    fn one_id_stays_inline_and_more_keep_the_newest() {
        let mut reasons = Reasons::default();
        reasons.append(&new(&["m1"]), 3);
        assert!(matches!(reasons, Reasons::One(_)));
        reasons.append(&new(&["m2", "m3", "m4"]), 3);
        assert_eq!(ids(&reasons), ["m2", "m3", "m4"]);
        reasons.append(&new(&["m5"]), 3);
        assert_eq!(ids(&reasons), ["m3", "m4", "m5"]);
        assert_eq!(reasons.as_slice(), new(&["m3", "m4", "m5"]));
    }

    #[test]
    fn a_long_list_grows_to_its_limit_and_no_further() {
        let texts: Vec<String> = (0..20).map(|n| format!("m{n}")).collect();
        let all: Vec<&str> = texts.iter().map(String::as_str).collect();
        let mut reasons = Reasons::default();
        for text in &all {
            reasons.append(&new(&[text]), 8);
        }
        assert_eq!(ids(&reasons), all[12..]);
        let Reasons::Many(list) = &reasons else {
            panic!("a list");
        };
        assert_eq!(list.capacity(), 9);
        // Without a limit (as `replace` asks), growth stays finite.
        reasons.append(&new(&all), usize::MAX);
        assert_eq!(reasons.as_slice().len(), 28);
    }

    #[test]
    fn replacing_reuses_a_single_long_ids_buffer() {
        let long = "ajs-next-9f0c4a52-5b8e-4c1e-9d35-0b7c2f3e1a64";
        let mut reasons = Reasons::default();
        reasons.append(&new(&[long]), 8);
        let Reasons::One(MessageId::Text(kept)) = &reasons else {
            panic!("one id is held inline, as text");
        };
        let buffer = kept.as_ptr();
        let newer = "ajs-next-0a1b2c3d-5b8e-4c1e-9d35-0b7c2f3e1a64";
        reasons.replace(&new(&[newer]));
        assert_eq!(ids(&reasons), [newer]);
        let Reasons::One(MessageId::Text(kept)) = &reasons else {
            panic!("still one id");
        };
        assert_eq!(kept.as_ptr(), buffer, "same heap buffer");
        let uuid = "9f0c4a52-5b8e-4c1e-9d35-0b7c2f3e1a64";
        reasons.replace(&new(&[uuid]));
        assert_eq!(ids(&reasons), [uuid]);
        reasons.replace(&new(&["a", "b"]));
        assert_eq!(ids(&reasons), ["a", "b"]);
        reasons.replace(&[]);
        assert!(ids(&reasons).is_empty());
    }
}

#[cfg(test)]
mod keyed_state {
    use super::*;

    #[test]
    fn an_entity_state_boxes_its_key_alone_until_it_has_memory() {
        let mut state = KeyedState::new(3, 7, Some("cart-1"), Memory::None);
        assert!(matches!(state.held, Held::Entity(_)));
        assert_eq!(state.entity_key(), Some("cart-1"));
        assert!(matches!(state.memory(), Memory::None));
        state.set_memory(Memory::Yearly { date: (3, 15) });
        assert!(matches!(state.held, Held::EntityAndMemory(_)));
        assert!(matches!(state.memory(), Memory::Yearly { date: (3, 15) }));
        if let Some(Memory::Yearly { date }) = state.memory_mut() {
            *date = (4, 1);
        }
        assert!(matches!(
            state.take_memory(),
            Memory::Yearly { date: (4, 1) }
        ));
        assert!(matches!(state.held, Held::Entity(_)));
        // Nothing to change in place, and asking makes no room.
        assert!(state.memory_mut().is_none());
        assert!(matches!(state.held, Held::Entity(_)));
        state.set_memory(Memory::Count(Box::default()));
        assert!(matches!(state.memory_mut(), Some(Memory::Count(_))));
        state.set_memory(Memory::None);
        assert!(matches!(state.held, Held::Entity(_)));
        assert_eq!(state.entity_key(), Some("cart-1"));
        assert_eq!((state.trigger, state.token), (3, 7));
    }

    #[test]
    fn a_customer_state_holds_its_memory_inline() {
        let mut state = KeyedState::new(1, 2, None, Memory::Yearly { date: (1, 2) });
        assert_eq!(state.entity_key(), None);
        assert!(matches!(state.memory(), Memory::Yearly { date: (1, 2) }));
        state.set_memory(Memory::None);
        assert!(matches!(state.held, Held::Customer(Memory::None)));
        let state = KeyedState::new(1, 2, Some("e"), Memory::Yearly { date: (1, 2) });
        assert_eq!(state.entity_key(), Some("e"));
        assert!(matches!(state.memory(), Memory::Yearly { date: (1, 2) }));
    }
}
