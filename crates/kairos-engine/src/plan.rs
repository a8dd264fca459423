//! The pipeline prepared for fast dispatch: which triggers care about which
//! event names, channel numbering, and per-trigger lookups.

use crate::config::{EventMatch, Offset, Pattern, Pipeline, ScheduleSource, Trigger};
use crate::taste::Interaction;
use hashbrown::HashMap;
use std::sync::Arc;

/// A compiled pipeline.
#[derive(Debug)]
pub struct Plan {
    /// The pipeline as configured.
    pub pipeline: Pipeline,
    /// Event name → its route in `routes`, for every name some trigger
    /// names or the engine handles itself: one lookup per event tells all
    /// of it.
    route_ids: RouteTable,
    /// Routes by id; the first, [`RouteId::ANY`], is every other name's.
    routes: Vec<Route>,
    /// Every channel any trigger or variant uses, numbered.
    pub channels: Vec<String>,
    /// Consent bits (see [`Plan::consent_bit`]) of the channels that need
    /// the customer's consent.
    pub consent_channels: u16,
    /// The variant name of decisions from triggers without variants, shared
    /// by all of them.
    pub control_variant: Arc<str>,
    /// Per trigger: the event properties its ladders keep (see
    /// [`Plan::kept_property_names`]).
    kept_property_names: Vec<Vec<String>>,
    /// Schedules whose occurrences are local times (a birthday at 09:00, a
    /// period end), moved when an event changes the customer's time zone.
    pub zone_schedules: Vec<u16>,
    /// How long a customer's sent records are kept: the longest a check
    /// looks back (the weekly cap's eight days, the longest cooldown, the
    /// arbitration window).
    pub sent_retention: kairos_model::Span,
    /// Some trigger's actions carry recommendations: only then are taste
    /// vectors kept (see `taste`).
    pub recommends: bool,
}

/// Where events of one name go: the triggers they reach, and what the
/// engine does with them itself.
#[derive(Debug, Default)]
pub struct Route {
    /// Indexes of customer triggers that name it somewhere (including
    /// every trigger listening to `*`), in pipeline order.
    pub triggers: Vec<u16>,
    /// Rate triggers counting it (including every rate trigger counting
    /// `*`), in pipeline order.
    pub rates: Vec<u16>,
    /// What the engine does with it itself.
    pub handling: Handling,
}

/// A route's number in the plan (see [`Plan::route_id`]): an event's route
/// is looked up once, and read again after the engine has been changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteId(u32);

impl RouteId {
    /// The route of names no trigger names and the engine does not handle.
    const ANY: RouteId = RouteId(0);
}

/// The event names the engine acts on itself, whatever the triggers,
/// recognised once per name rather than compared with every event's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Handling {
    /// `settings.erasure_event`: as a track call, an erasure request.
    pub erasure: bool,
    /// `Consent Updated`: states consent for a channel.
    pub consent_update: bool,
    /// One of `policy.feedback_events`: counted in engagement hours.
    pub feedback: bool,
    /// A Segment e-commerce event that changes carts (as a track call).
    pub cart: Option<CartEvent>,
    /// A Segment e-commerce event that tells of interest in items (as a
    /// track call), for taste vectors.
    pub taste: Option<Interaction>,
    /// `settings.conversion_event`: as a track call, a conversion
    /// attributed to the customer's last action.
    pub conversion: bool,
}

/// The Segment e-commerce events that change carts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CartEvent {
    /// `Product Added`.
    ProductAdded,
    /// `Product Removed`.
    ProductRemoved,
    /// `Order Completed`.
    OrderCompleted,
}

/// The name of the event that states consent for a channel.
pub const CONSENT_UPDATED: &str = "Consent Updated";

impl Plan {
    /// Indexes a pipeline.
    pub fn new(pipeline: Pipeline) -> Plan {
        let mut by_event: HashMap<String, Vec<u16>> = HashMap::new();
        let mut any_event = Vec::new();
        let mut rates_by_event: HashMap<String, Vec<u16>> = HashMap::new();
        let mut any_rate = Vec::new();
        // Channels that need consent are numbered first, so that each has
        // a consent bit of its own (see `Plan::consent_bit`): a grant for
        // one channel is never read as a grant for another.
        let mut channels: Vec<String> = Vec::new();
        for channel in &pipeline.policy.consent_required {
            if !channels.contains(channel) {
                channels.push(channel.clone());
            }
        }
        for (index, trigger) in pipeline.triggers.iter().enumerate() {
            let index = index as u16;
            let names = event_names(trigger);
            if let Pattern::Rate { .. } = trigger.pattern {
                if names.contains(&"*") {
                    any_rate.push(index);
                }
                for name in names.into_iter().filter(|name| *name != "*") {
                    push_unique(rates_by_event.entry(name.to_string()).or_default(), index);
                }
            } else if names.contains(&"*") {
                any_event.push(index);
            } else {
                for name in names {
                    push_unique(by_event.entry(name.to_string()).or_default(), index);
                }
            }
            let step_channels = trigger.steps.iter().map(|step| &step.channel);
            let variant_channels = trigger.variants.iter().filter_map(|v| v.channel.as_ref());
            for channel in step_channels.chain(variant_channels) {
                if !channels.iter().any(|known| **known == **channel) {
                    channels.push(channel.to_string());
                }
            }
        }
        let mut named: HashMap<String, Route> = HashMap::new();
        for (name, triggers) in by_event {
            named.entry(name).or_default().triggers = triggers;
        }
        for (name, rates) in rates_by_event {
            named.entry(name).or_default().rates = rates;
        }
        let mut handle = |name: &str, how: fn(&mut Handling)| {
            how(&mut named.entry(name.to_string()).or_default().handling)
        };
        handle(&pipeline.settings.erasure_event, |h| h.erasure = true);
        handle(&pipeline.settings.conversion_event, |h| h.conversion = true);
        handle(CONSENT_UPDATED, |h| h.consent_update = true);
        for name in &pipeline.policy.feedback_events {
            handle(name, |h| h.feedback = true);
        }
        handle("Product Added", |h| h.cart = Some(CartEvent::ProductAdded));
        handle("Product Removed", |h| {
            h.cart = Some(CartEvent::ProductRemoved)
        });
        handle("Order Completed", |h| {
            h.cart = Some(CartEvent::OrderCompleted)
        });
        handle("Product Viewed", |h| h.taste = Some(Interaction::Viewed));
        handle("Product Clicked", |h| h.taste = Some(Interaction::Viewed));
        handle("Product Added", |h| h.taste = Some(Interaction::Added));
        handle("Order Completed", |h| h.taste = Some(Interaction::Bought));
        let mut routes = vec![Route::default()];
        let mut route_ids = RouteTable::with_room_for(named.len());
        for (name, route) in named {
            route_ids.insert(name, RouteId(routes.len() as u32));
            routes.push(route);
        }
        for route in &mut routes {
            for (list, any) in [
                (&mut route.triggers, &any_event),
                (&mut route.rates, &any_rate),
            ] {
                list.extend(any);
                list.sort_unstable();
                list.dedup();
            }
        }
        let consent_channels = channels
            .iter()
            .enumerate()
            .filter(|(_, channel)| pipeline.policy.consent_required.contains(channel))
            .fold(0u16, |bits, (index, _)| {
                bits | Plan::consent_bit(index as u8)
            });
        let kept_property_names = pipeline.triggers.iter().map(kept_property_names).collect();
        let zone_schedules = (0..pipeline.triggers.len() as u16)
            .filter(|&index| {
                matches!(
                    pipeline.triggers[usize::from(index)].pattern,
                    Pattern::Schedule {
                        source: ScheduleSource::YearlyTrait { .. }
                            | ScheduleSource::PeriodEnd { .. }
                    }
                )
            })
            .collect();
        let sent_retention = pipeline
            .triggers
            .iter()
            .map(|trigger| trigger.cooldown)
            .max()
            .unwrap_or(kairos_model::Span::ZERO)
            .max(kairos_model::Span::DAY * 8)
            .max(pipeline.policy.arbitration_window);
        let recommends = pipeline
            .triggers
            .iter()
            .any(|trigger| trigger.payload.recommendations > 0);
        Plan {
            recommends,
            pipeline,
            route_ids,
            routes,
            channels,
            consent_channels,
            control_variant: Arc::from("control"),
            kept_property_names,
            zone_schedules,
            sent_retention,
        }
    }

    /// The properties of an anchor event that a trigger's ladders keep:
    /// its payload's, then those its step offsets read, each once. (Worked
    /// out here once: most triggers keep none, and an inactivity trigger
    /// asks on every event.)
    pub fn kept_property_names(&self, trigger: u16) -> &[String] {
        &self.kept_property_names[usize::from(trigger)]
    }

    /// The route of events with this name. Inlined: the call itself was a
    /// third of the lookup's cost.
    #[inline(always)]
    pub fn route_id(&self, name: &str) -> RouteId {
        self.route_ids.get(name)
    }

    /// A route by id.
    pub fn route(&self, id: RouteId) -> &Route {
        &self.routes[id.0 as usize]
    }

    /// A trigger by index.
    pub fn trigger(&self, index: u16) -> &Trigger {
        &self.pipeline.triggers[usize::from(index)]
    }

    /// A channel's bit in a customer's consent masks. Channels that need
    /// consent are numbered first and the compiler allows at most 16 of
    /// them, so each has a bit of its own; channels past the sixteenth
    /// (which need no consent) have none, and a grant for them is not
    /// recorded.
    pub fn consent_bit(channel_index: u8) -> u16 {
        1u16.checked_shl(u32::from(channel_index)).unwrap_or(0)
    }

    /// The number of a channel (channels beyond the 32nd share number 31,
    /// so their caps count together).
    pub fn channel_index(&self, channel: &str) -> u8 {
        self.channels
            .iter()
            .position(|known| known == channel)
            .unwrap_or(self.channels.len())
            .min(31) as u8
    }
}

/// Event name → route, looked up once per event. A general hash map
/// spent ~67 instructions a lookup hashing the whole name; here a name is
/// reduced to its length and two overlapping words (its first and last
/// eight bytes, or four for shorter names), which for names of up to 16
/// bytes (`Product Viewed`, `page`) are the name itself, so that a lookup
/// compares integers and reads the bytes only of longer names. The table
/// is open-addressed and at most a quarter full: every probe ends within
/// the clusters of the pipeline's own names, whatever name an event
/// carries, so the unkeyed hash cannot be made to pile lookups up.
#[derive(Debug)]
struct RouteTable {
    /// A power of two in size; [`RouteId::ANY`] marks a free slot.
    slots: Vec<RouteSlot>,
    /// `64 - log2(slots.len())`: a home slot is the top bits of the hash.
    shift: u32,
}

#[derive(Debug, Default)]
struct RouteSlot {
    words: NameWords,
    /// The whole name, compared only when it is longer than `words` covers.
    name: String,
    route: RouteId,
}

/// A name's length and its first and last words (see [`RouteTable`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct NameWords {
    len: usize,
    head: u64,
    tail: u64,
}

impl NameWords {
    /// Names up to this long are told apart by their words alone.
    const WHOLE: usize = 16;

    #[inline(always)]
    fn of(name: &str) -> NameWords {
        let bytes = name.as_bytes();
        let len = bytes.len();
        let u64_at = |at: usize| {
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(word)
        };
        let u32_at = |at: usize| {
            let mut word = [0u8; 4];
            word.copy_from_slice(&bytes[at..at + 4]);
            u64::from(u32::from_le_bytes(word))
        };
        let (head, tail) = match len {
            8.. => (u64_at(0), u64_at(len - 8)),
            4..=7 => (u32_at(0), u32_at(len - 4)),
            _ => (
                bytes
                    .iter()
                    .fold(0u64, |word, byte| word << 8 | u64::from(*byte)),
                0,
            ),
        };
        NameWords { len, head, tail }
    }

    fn home(&self, shift: u32) -> usize {
        let mixed = (self.head ^ self.tail.rotate_left(29) ^ self.len as u64)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (mixed >> shift) as usize
    }
}

impl Default for RouteId {
    fn default() -> Self {
        RouteId::ANY
    }
}

impl RouteTable {
    /// An empty table for `names` names.
    fn with_room_for(names: usize) -> RouteTable {
        let capacity = (names * 4).next_power_of_two().max(8);
        RouteTable {
            slots: (0..capacity).map(|_| RouteSlot::default()).collect(),
            shift: 64 - capacity.trailing_zeros(),
        }
    }

    /// Adds a name not in the table yet (there is room: see
    /// [`RouteTable::with_room_for`]).
    fn insert(&mut self, name: String, route: RouteId) {
        debug_assert!(route != RouteId::ANY && self.get(&name) == RouteId::ANY);
        let words = NameWords::of(&name);
        let mask = self.slots.len() - 1;
        let mut index = words.home(self.shift);
        while self.slots[index].route != RouteId::ANY {
            index = (index + 1) & mask;
        }
        self.slots[index] = RouteSlot { words, name, route };
    }

    /// The route of `name`; [`RouteId::ANY`] for a name not in the table.
    #[inline(always)]
    fn get(&self, name: &str) -> RouteId {
        let words = NameWords::of(name);
        let mask = self.slots.len() - 1;
        let mut index = words.home(self.shift);
        loop {
            let slot = &self.slots[index];
            if slot.route == RouteId::ANY
                || (slot.words == words && (words.len <= NameWords::WHOLE || slot.name == name))
            {
                return slot.route;
            }
            index = (index + 1) & mask;
        }
    }
}

/// See [`Plan::kept_property_names`].
fn kept_property_names(trigger: &Trigger) -> Vec<String> {
    let offset_properties = trigger.steps.iter().filter_map(|step| match &step.at {
        Offset::ByProperty { property, .. } => Some(property),
        _ => None,
    });
    let mut names: Vec<String> = Vec::new();
    for name in trigger.payload.properties.iter().chain(offset_properties) {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
}

fn push_unique(list: &mut Vec<u16>, index: u16) {
    if !list.contains(&index) {
        list.push(index);
    }
}

/// Every event name a trigger reacts to.
fn event_names(trigger: &Trigger) -> Vec<&str> {
    let mut matches: Vec<&EventMatch> = trigger.cancel_on.iter().collect();
    match &trigger.pattern {
        Pattern::Absence {
            start,
            cancel,
            cancel_when_cart_empty,
            ..
        } => {
            matches.push(start);
            matches.extend(cancel);
            if *cancel_when_cart_empty {
                return with(matches, "Product Removed");
            }
        }
        Pattern::Count {
            event,
            unless,
            window,
            ..
        } => {
            matches.push(event);
            matches.extend(unless);
            if let crate::config::Window::Session(_) = window {
                // Every event of the customer keeps a session open.
                return with(matches, "*");
            }
        }
        Pattern::Inactivity { activity } => matches.push(activity),
        Pattern::Sequence { first, then, .. } => {
            matches.push(first);
            matches.push(then);
        }
        Pattern::Schedule { source } => match source {
            // Armed by identify calls; `cancel_on` events reach it too.
            ScheduleSource::YearlyTrait { .. } => return with(matches, "identify"),
            ScheduleSource::EventTime { event, .. } => matches.push(event),
            ScheduleSource::PeriodEnd { condition, .. } => matches.push(&condition.event),
        },
        Pattern::Threshold { measure, .. } => matches.push(&measure.event),
        Pattern::Rate { events, .. } => matches.extend(events),
    }
    with(matches, "")
}

/// The names of `matches`, plus `extra` when not empty, sorted and unique.
fn with<'a>(matches: Vec<&'a EventMatch>, extra: &'a str) -> Vec<&'a str> {
    let mut names: Vec<&str> = matches.iter().map(|m| m.name.as_str()).collect();
    if !extra.is_empty() {
        names.push(extra);
    }
    names.sort_unstable();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_table_finds_each_name_and_only_it() {
        let names = [
            "",
            "a",
            "ab",
            "abc",
            "page",
            "Product Added",
            "Product Viewed",
            "Order Completed",
            "exactly sixteen!",
            "a name of twenty-nine bytes..",
            "a name of twenty-nine bytes.!",
            "a name of twenty-nine bytes!.",
        ];
        let mut table = RouteTable::with_room_for(names.len());
        for (index, name) in names.iter().enumerate() {
            table.insert(name.to_string(), RouteId(index as u32 + 1));
        }
        for (index, name) in names.iter().enumerate() {
            assert_eq!(table.get(name), RouteId(index as u32 + 1), "{name:?}");
        }
        // Same length, first and last words as a known name, but not it.
        let middle_differs = "a name of Twenty-nine bytes..";
        assert_eq!(
            NameWords::of(middle_differs),
            NameWords::of("a name of twenty-nine bytes..")
        );
        for unknown in [
            middle_differs,
            "b",
            "a\0",
            "\0a",
            "pag",
            "pages",
            "Product added",
            "Product Viewed ",
        ] {
            assert_eq!(table.get(unknown), RouteId::ANY, "{unknown:?}");
        }
    }

    #[test]
    fn short_names_with_equal_words_are_equal() {
        let names = [
            "",
            "a",
            "a\0",
            "\0a",
            "abcd",
            "abcde",
            "abcdefgh",
            "abcdefghi",
        ];
        for a in names {
            for b in names {
                assert_eq!(NameWords::of(a) == NameWords::of(b), a == b, "{a:?} {b:?}");
            }
        }
    }
}
