//! Events in: the Segment tracking-spec envelope ([`SegmentCall`]) and the
//! canonical [`Event`] the engine consumes.
//!
//! Conversion validates everything the engine relies on, so a bad call is
//! rejected here with an [`InvalidEvent`] that says what was wrong and what is
//! accepted (the runtime sends it to the DLQ, backtest reports its line).

use crate::ids::hash_str;
use crate::properties::{Properties, PropertyValue};
use crate::time::Timestamp;
use compact_str::CompactString;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::borrow::Cow;
use std::marker::PhantomData;

/// Segment call types (`type` in the envelope).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    /// `track`: a named action (`event`) with `properties`.
    Track,
    /// `identify`: who the user is, with `traits`.
    Identify,
    /// `page`: a web page view.
    Page,
    /// `screen`: a mobile screen view.
    Screen,
    /// `group`: the user joined a group/account.
    Group,
    /// `alias`: `previousId` and `userId` are the same person.
    Alias,
}

impl EventType {
    /// Every accepted `type`, for error messages.
    pub const ACCEPTED: &'static str = "track, identify, page, screen, group, alias";

    /// Every type, in the order of their discriminants (`ALL[t as usize] == t`).
    pub const ALL: [EventType; 6] = [
        EventType::Track,
        EventType::Identify,
        EventType::Page,
        EventType::Screen,
        EventType::Group,
        EventType::Alias,
    ];

    fn parse(text: &str) -> Option<EventType> {
        Some(match text {
            "track" => EventType::Track,
            "identify" => EventType::Identify,
            "page" => EventType::Page,
            "screen" => EventType::Screen,
            "group" => EventType::Group,
            "alias" => EventType::Alias,
            _ => return None,
        })
    }

    /// The name patterns match non-track calls by (`"page"`, `"identify"` ...).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Track => "track",
            EventType::Identify => "identify",
            EventType::Page => "page",
            EventType::Screen => "screen",
            EventType::Group => "group",
            EventType::Alias => "alias",
        }
    }
}

/// The Segment envelope exactly as SDKs send it (camelCase field names).
/// Unknown fields are ignored, as Segment does; so are the parts of
/// `context` kairos has no use for (library, device, ip ...), which are
/// skipped without being built. Short-lived text is borrowed from the input.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)] // the fields are Segment's, documented by Segment
pub struct SegmentCall<'a> {
    #[serde(rename = "type", borrow)]
    pub call_type: Option<Cow<'a, str>>,
    pub event: Option<CompactString>,
    #[serde(default, deserialize_with = "string_or_number")]
    pub user_id: Option<CompactString>,
    #[serde(default, deserialize_with = "string_or_number")]
    pub anonymous_id: Option<CompactString>,
    #[serde(default, deserialize_with = "string_or_number")]
    pub previous_id: Option<CompactString>,
    pub message_id: Option<CompactString>,
    #[serde(borrow)]
    pub timestamp: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub original_timestamp: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub sent_at: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub received_at: Option<Cow<'a, str>>,
    pub properties: Option<Properties>,
    pub traits: Option<Properties>,
    #[serde(default, deserialize_with = "object_only")]
    pub context: Option<SegmentContext>,
    /// `page`/`screen`: the page or screen name (top level, not a property).
    pub name: Option<PropertyValue>,
    /// `page`/`screen`: the page or screen category.
    pub category: Option<PropertyValue>,
}

/// The parts of Segment's `context` kairos uses.
#[derive(Debug, Default, Deserialize)]
pub struct SegmentContext {
    /// IANA time zone of the device.
    pub timezone: Option<CompactString>,
    /// Traits sent along with non-identify calls.
    pub traits: Option<Properties>,
}

/// A struct read from a JSON object only: serde's derived `Deserialize`
/// also reads a struct from an array of its fields in declaration order,
/// which would take `"context":["Asia/Shanghai"]` for a time zone.
fn object_only<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    struct Object<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for Object<T> {
        type Value = Option<T>;

        fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
            formatter.write_str("a JSON object")
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(
            self,
            deserializer: D,
        ) -> Result<Self::Value, D::Error> {
            deserializer.deserialize_map(self)
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Some)
        }
    }

    deserializer.deserialize_option(Object(PhantomData))
}

/// Segment lets ids be numbers; kairos keys are strings.
fn string_or_number<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<CompactString>, D::Error> {
    struct Id;

    impl<'de> serde::de::Visitor<'de> for Id {
        type Value = Option<CompactString>;

        fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
            formatter.write_str("an id as a string or a number")
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
            Ok(Some(text.into()))
        }

        fn visit_u64<E: serde::de::Error>(self, number: u64) -> Result<Self::Value, E> {
            Ok(Some(compact_str::format_compact!("{number}")))
        }

        fn visit_i64<E: serde::de::Error>(self, number: i64) -> Result<Self::Value, E> {
            Ok(Some(compact_str::format_compact!("{number}")))
        }

        fn visit_f64<E: serde::de::Error>(self, number: f64) -> Result<Self::Value, E> {
            // As JSON writes it (serde_json's rendering of the number); JSON
            // has no infinities or NaN, so neither is an id. `+ 0.0` makes
            // -0 read as 0, as sonic-rs reads it.
            Ok(serde_json::Number::from_f64(number + 0.0).map(|number| number.to_string().into()))
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: serde::Deserializer<'de>>(
            self,
            deserializer: D,
        ) -> Result<Self::Value, D::Error> {
            deserializer.deserialize_any(Id)
        }
    }

    deserializer.deserialize_option(Id)
}

/// The canonical event: validated, with one event time and one identity.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// The Segment call type.
    pub event_type: EventType,
    /// For `track`, the event name (`Product Added`); otherwise the type name
    /// (`page`, `identify` ...), so patterns can match every call by name.
    pub name: CompactString,
    /// The known user, if any.
    pub user_id: Option<CompactString>,
    /// The device/browser id before login.
    pub anonymous_id: Option<CompactString>,
    /// `alias` calls: the id being merged into `user_id`.
    pub previous_id: Option<CompactString>,
    /// Idempotency key; generated from the payload when the sender left it out.
    pub message_id: CompactString,
    /// Event time, corrected for client clock skew.
    pub time: Timestamp,
    /// IANA time zone from `context.timezone` or `traits.timezone`, if given.
    pub timezone: Option<CompactString>,
    /// `track`/`page`/`screen` properties.
    pub properties: Properties,
    /// `identify`/`group` traits (and `context.traits`).
    pub traits: Properties,
}

/// Why an input was rejected. `reason()` is a stable machine-readable code (used
/// as the DLQ header and in counters); `Display` explains it to a person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidEvent {
    /// The bytes are not a JSON object.
    #[error("not a JSON object: {0}; accepted: one Segment call as a JSON object")]
    NotJson(String),
    /// Over the size limit.
    #[error("message is {size} bytes; accepted: at most {limit} bytes")]
    TooLarge {
        /// Bytes received.
        size: usize,
        /// The limit in force.
        limit: usize,
    },
    /// `type` not one Segment defines.
    #[error("type {0:?} is unknown; accepted: {accepted}", accepted = EventType::ACCEPTED)]
    UnknownType(String),
    /// No `type` (or `"type":null`). Its reason is `unknown_type`, as it
    /// was before this variant said which it was.
    #[error("call without \"type\"; accepted: a type, one of {accepted}", accepted = EventType::ACCEPTED)]
    MissingType,
    /// A field of the wrong JSON type (`"messageId":5`): the line is a JSON
    /// object, but not a Segment call.
    #[error("{field}: {found}; accepted: {accepted}")]
    WrongType {
        /// Which field (`messageId`, `context.timezone` ...).
        field: &'static str,
        /// What it held, briefly (`integer 5`, `an array`).
        found: String,
        /// What it may hold.
        accepted: &'static str,
    },
    /// A `track` call without `event`.
    #[error(
        "track call without \"event\"; accepted: a non-empty event name such as \"Product Added\""
    )]
    MissingEventName,
    /// Neither `userId` nor `anonymousId`.
    #[error("no userId or anonymousId; accepted: at least one non-empty id")]
    MissingIdentity,
    /// A time field that is not an RFC 3339 time.
    #[error(
        "{field} {value:?} is not a timestamp; accepted: RFC 3339, e.g. 2026-11-23T10:31:07.012Z"
    )]
    BadTimestamp {
        /// Which field.
        field: &'static str,
        /// What it held.
        value: String,
    },
    /// No time at all. Its reason is `bad_timestamp`, as it was before
    /// this variant said the time was missing rather than malformed.
    #[error("call without a time; accepted: timestamp (or originalTimestamp, or receivedAt) in RFC 3339, e.g. 2026-11-23T10:31:07.012Z")]
    MissingTimestamp,
    /// A field sent twice (`"userId"` twice): which one is meant cannot be
    /// told, so neither is taken.
    #[error("field {0:?} appears more than once; accepted: each field once")]
    DuplicateField(String),
    /// `alias` without both ids.
    #[error("alias call needs previousId and userId; accepted: both non-empty")]
    IncompleteAlias,
    /// An event time no behaviour happened at: a client clock at zero, or a
    /// year mistyped as 9999. One such event would carry the watermark with
    /// it and make every later event late.
    #[error("event time {0} is out of range; accepted: times from 2000-01-01T00:00:00Z to 2099-12-31T23:59:59.999Z")]
    TimeOutOfRange(String),
}

impl InvalidEvent {
    /// Every code [`InvalidEvent::reason`] gives, for metrics declared
    /// before anything is rejected.
    pub const REASONS: &'static [&'static str] = &[
        "not_json",
        "too_large",
        "unknown_type",
        "wrong_type",
        "missing_event_name",
        "missing_identity",
        "bad_timestamp",
        "duplicate_field",
        "incomplete_alias",
        "time_out_of_range",
    ];

    /// Stable short code for headers and metrics labels.
    pub fn reason(&self) -> &'static str {
        match self {
            InvalidEvent::NotJson(_) => "not_json",
            InvalidEvent::TooLarge { .. } => "too_large",
            InvalidEvent::UnknownType(_) | InvalidEvent::MissingType => "unknown_type",
            InvalidEvent::WrongType { .. } => "wrong_type",
            InvalidEvent::MissingEventName => "missing_event_name",
            InvalidEvent::MissingIdentity => "missing_identity",
            InvalidEvent::BadTimestamp { .. } | InvalidEvent::MissingTimestamp => "bad_timestamp",
            InvalidEvent::DuplicateField(_) => "duplicate_field",
            InvalidEvent::IncompleteAlias => "incomplete_alias",
            InvalidEvent::TimeOutOfRange(_) => "time_out_of_range",
        }
    }
}

fn non_empty(value: Option<CompactString>) -> Option<CompactString> {
    // Nearly every id starts with a printable ASCII character: no need to
    // trim it to know it is not blank.
    value.filter(|text| {
        text.as_bytes().first().is_some_and(u8::is_ascii_graphic) || !text.trim().is_empty()
    })
}

fn parse_time(field: &'static str, value: &str) -> Result<Timestamp, InvalidEvent> {
    Timestamp::parse_rfc3339(value).map_err(|_| InvalidEvent::BadTimestamp {
        field,
        value: value.to_string(),
    })
}

/// At most this many `{` and `[` in a payload (inside strings or not) take
/// the fast decoder. Nesting is never deeper than the count, and a bounded
/// depth is what keeps that decoder's recursion off the end of the stack.
const FAST_DECODE_MAX_OPENINGS: usize = 64;

/// Decodes a Segment call. Ordinary calls (a few nested objects) go through
/// sonic-rs, which reads them ~1.5x as fast as serde_json (BENCHMARKS.md,
/// 2026-11-26). Payloads with many brackets go through serde_json, whose
/// recursion limit turns hostile nesting into an error: sonic-rs's own guard
/// does not cover every path (cloudwego/sonic-rs#239). Both read a call the
/// same way (tests below); in particular both refuse bytes that are not
/// UTF-8 anywhere in the payload, as JSON requires, where serde_json alone
/// checks only the strings it keeps.
///
/// Only an object is a call: serde also reads a struct from an array of its
/// fields in declaration order, which would take `["track","X","u1",...]`
/// for a call.
fn decode(bytes: &[u8]) -> Result<SegmentCall<'_>, String> {
    let first = bytes
        .iter()
        .find(|byte| !matches!(byte, b' ' | b'\t' | b'\n' | b'\r'));
    if first == Some(&b'[') {
        return Err("expected a JSON object, found `[`".to_string());
    }
    // Counted in bytes, 255 at a time, which the compiler vectorises: for
    // a call of a few hundred bytes, cheaper than stopping at the limit.
    let openings: usize = bytes
        .chunks(255)
        .map(|chunk| {
            let in_chunk = chunk.iter().fold(0u8, |count, &byte| {
                count + u8::from(byte == b'{') + u8::from(byte == b'[')
            });
            usize::from(in_chunk)
        })
        .sum();
    if openings <= FAST_DECODE_MAX_OPENINGS {
        decode_fast(bytes)
    } else {
        decode_careful(bytes)
    }
}

/// sonic-rs: only for payloads of bounded nesting (see [`decode`]).
fn decode_fast(bytes: &[u8]) -> Result<SegmentCall<'_>, String> {
    sonic_rs::from_slice(bytes).map_err(|error| one_line(&error.to_string()))
}

/// A decoder's message as one printable line: sonic-rs follows its first
/// line with an excerpt of the input, which may hold anything (terminal
/// escapes included), and a rejected line is reported on one line.
fn one_line(message: &str) -> String {
    let mut line = String::new();
    for c in message.lines().next().unwrap_or_default().chars() {
        if c.is_control() {
            line.extend(c.escape_default());
        } else {
            line.push(c);
        }
    }
    line
}

/// serde_json, after checking the whole payload is UTF-8.
fn decode_careful(bytes: &[u8]) -> Result<SegmentCall<'_>, String> {
    let text = std::str::from_utf8(bytes).map_err(|error| format!("not UTF-8: {error}"))?;
    serde_json::from_str(text).map_err(|error| one_line(&error.to_string()))
}

/// Why `bytes` did not decode, said the way a person needs it: which field
/// has the wrong type and what it may hold, or what the line is when it is
/// JSON but not an object; otherwise the decoder's own `message` (a syntax
/// error). Only rejected lines come here, so it may parse them again.
#[cold]
#[inline(never)]
fn explain(bytes: &[u8], message: String) -> InvalidEvent {
    let Ok(value) = serde_json::from_slice::<Value>(bytes) else {
        return InvalidEvent::NotJson(message);
    };
    let kind = match value {
        Value::Object(_) => None,
        Value::Array(_) => Some("a JSON array"),
        Value::String(_) => Some("a JSON string"),
        Value::Number(_) => Some("a JSON number"),
        Value::Bool(_) => Some("a JSON boolean"),
        Value::Null => Some("JSON null"),
    };
    if let Some(kind) = kind {
        return InvalidEvent::NotJson(format!("the line is {kind}"));
    }
    // In the order written, so that the field named is the first wrong one.
    let Ok(Members(members)) = serde_json::from_slice::<Members>(bytes) else {
        return InvalidEvent::NotJson(message);
    };
    if let Some(wrong) = members
        .iter()
        .find_map(|(name, value)| wrong_type(name, value))
    {
        return wrong;
    }
    // A valid object whose types are right: a field the call reads was
    // sent twice. The decoder names it; a repeated unknown field is
    // ignored and a name repeated inside `context` is reported as the
    // decoder says, so the name counts only if it is a top-level field the
    // call reads and is sent twice at the top level (one pass: a hostile
    // line of many members must not cost a pass per member).
    let named = message
        .split_once("duplicate field `")
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(name, _)| name);
    let read_by_the_call = |name: &str| {
        FIELDS.iter().any(|(field, ..)| *field == name) || matches!(name, "name" | "category")
    };
    match named {
        Some(name)
            if read_by_the_call(name)
                && members
                    .iter()
                    .filter(|(member, _)| member == name)
                    .nth(1)
                    .is_some() =>
        {
            InvalidEvent::DuplicateField(name.to_string())
        }
        _ => InvalidEvent::NotJson(message),
    }
}

/// An object's members in the order written (repeated names included).
struct Members(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct InOrder;

        impl<'de> Visitor<'de> for InOrder {
            type Value = Members;

            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }

        deserializer.deserialize_map(InOrder)
    }
}

/// What the fields of [`SegmentCall`] may hold, besides `null`.
const A_STRING: &str = "a string";
const A_TYPE: &str = "a string, one of track, identify, page, screen, group, alias";
const AN_ID: &str = "a string or a number";
const A_TIME: &str = "a string in RFC 3339, e.g. 2026-11-23T10:31:07.012Z";
const AN_OBJECT: &str = "a JSON object";
const A_ZONE: &str = "a string, an IANA time zone such as Asia/Shanghai";

/// A member of a Segment call as [`SegmentCall`] reads it: its name, what
/// it may hold besides `null`, and whether a value is that.
type Field = (&'static str, &'static str, fn(&Value) -> bool);

/// The members of a call kairos reads, by the names written.
const FIELDS: [Field; 13] = [
    ("type", A_TYPE, Value::is_string),
    ("event", A_STRING, Value::is_string),
    ("userId", AN_ID, is_id),
    ("anonymousId", AN_ID, is_id),
    ("previousId", AN_ID, is_id),
    ("messageId", A_STRING, Value::is_string),
    ("timestamp", A_TIME, Value::is_string),
    ("originalTimestamp", A_TIME, Value::is_string),
    ("sentAt", A_TIME, Value::is_string),
    ("receivedAt", A_TIME, Value::is_string),
    ("properties", AN_OBJECT, Value::is_object),
    ("traits", AN_OBJECT, Value::is_object),
    ("context", AN_OBJECT, Value::is_object),
];

/// The members of `context` kairos reads ([`SegmentContext`]), checked in
/// this order.
const CONTEXT_FIELDS: [Field; 2] = [
    ("context.timezone", A_ZONE, Value::is_string),
    ("context.traits", AN_OBJECT, Value::is_object),
];

/// The error for a member of a Segment call whose JSON type is not one
/// [`SegmentCall`] reads, if it is such a member.
fn wrong_type(name: &str, value: &Value) -> Option<InvalidEvent> {
    let &(field, accepted, fits) = FIELDS.iter().find(|(field, ..)| *field == name)?;
    if let (Value::Object(context), "context") = (value, field) {
        return CONTEXT_FIELDS.iter().find_map(|&(field, accepted, fits)| {
            let member = context.get(&field["context.".len()..])?;
            mismatch(field, accepted, fits, member)
        });
    }
    mismatch(field, accepted, fits, value)
}

/// The error for `field` holding `value`, unless it `fits` (or is null).
fn mismatch(
    field: &'static str,
    accepted: &'static str,
    fits: fn(&Value) -> bool,
    value: &Value,
) -> Option<InvalidEvent> {
    (!value.is_null() && !fits(value)).then(|| InvalidEvent::WrongType {
        field,
        found: describe(value),
        accepted,
    })
}

fn is_id(value: &Value) -> bool {
    value.is_string() || value.is_number()
}

/// A JSON value in a few words: `integer 5`, `string "x"`, `an array`.
fn describe(value: &Value) -> String {
    const SHOWN: usize = 40;
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(flag) => format!("boolean {flag}"),
        Value::Number(number) if number.is_f64() => format!("number {number}"),
        Value::Number(number) => format!("integer {number}"),
        Value::String(text) if text.chars().count() > SHOWN => {
            let start: String = text.chars().take(SHOWN).collect();
            format!("string {start:?}...")
        }
        Value::String(text) => format!("string {text:?}"),
        Value::Array(_) => "an array".to_string(),
        Value::Object(_) => "an object".to_string(),
    }
}

impl Event {
    /// Parses and validates one JSON-encoded Segment call. A missing
    /// `messageId` is replaced by a hash of the bytes, so a retried identical
    /// payload still de-duplicates.
    pub fn from_json(bytes: &[u8]) -> Result<Event, InvalidEvent> {
        if bytes.len() > Event::MAX_BYTES {
            return Err(InvalidEvent::TooLarge {
                size: bytes.len(),
                limit: Event::MAX_BYTES,
            });
        }
        let call = match decode(bytes) {
            Ok(call) => call,
            Err(message) => return Err(explain(bytes, message)),
        };
        let fallback_id =
            || compact_str::format_compact!("gen-{:016x}", xxhash_rust::xxh3::xxh3_64(bytes));
        Event::from_segment(call, fallback_id)
    }

    /// Validates a decoded call. `fallback_message_id` is called only when the
    /// call has no `messageId`.
    pub fn from_segment(
        call: SegmentCall<'_>,
        fallback_message_id: impl FnOnce() -> CompactString,
    ) -> Result<Event, InvalidEvent> {
        let type_text = call.call_type.ok_or(InvalidEvent::MissingType)?;
        let event_type = EventType::parse(&type_text)
            .ok_or_else(|| InvalidEvent::UnknownType(type_text.to_string()))?;
        let name = match event_type {
            EventType::Track => non_empty(call.event).ok_or(InvalidEvent::MissingEventName)?,
            other => other.as_str().into(),
        };
        let user_id = non_empty(call.user_id);
        let anonymous_id = non_empty(call.anonymous_id);
        let previous_id = non_empty(call.previous_id);
        if user_id.is_none() && anonymous_id.is_none() {
            return Err(InvalidEvent::MissingIdentity);
        }
        if event_type == EventType::Alias && (previous_id.is_none() || user_id.is_none()) {
            return Err(InvalidEvent::IncompleteAlias);
        }
        let time = Event::event_time(
            call.timestamp.as_deref(),
            call.original_timestamp.as_deref(),
            call.sent_at.as_deref(),
            call.received_at.as_deref(),
        )?;
        let context = call.context.unwrap_or_default();
        let mut traits = call.traits.unwrap_or_default();
        for (key, value) in context.traits.unwrap_or_default() {
            traits.insert_if_absent(&key, value);
        }
        let timezone = non_empty(context.timezone).or_else(|| {
            traits
                .get("timezone")
                .and_then(PropertyValue::as_str)
                .map(Into::into)
        });
        let mut properties = call.properties.unwrap_or_default();
        if matches!(event_type, EventType::Page | EventType::Screen) {
            // Segment sends a page's or screen's name and category at the
            // top level; patterns test properties, so they are readable as
            // `name` and `category` (as analytics.js copies `category`),
            // unless the sender set those properties itself.
            for (key, value) in [("name", call.name), ("category", call.category)] {
                if let Some(value) = value.filter(|value| !value.is_null()) {
                    properties.insert_if_absent(key, value);
                }
            }
        }
        Ok(Event {
            event_type,
            name,
            user_id,
            anonymous_id,
            previous_id,
            message_id: non_empty(call.message_id).unwrap_or_else(fallback_message_id),
            time,
            timezone,
            properties,
            traits,
        })
    }

    /// Segment's clock-skew correction: when the client's `sentAt` and the
    /// server's `receivedAt` are both known, the event happened at
    /// `receivedAt − (sentAt − client time)`; otherwise `timestamp` as sent,
    /// else `receivedAt`. The client time is `originalTimestamp` when the
    /// call has one: Segment renames the client's `timestamp` so, and its
    /// `timestamp` is then already corrected (a call exported by Segment),
    /// so it must not be corrected twice.
    fn event_time(
        timestamp: Option<&str>,
        original_timestamp: Option<&str>,
        sent_at: Option<&str>,
        received_at: Option<&str>,
    ) -> Result<Timestamp, InvalidEvent> {
        let received = received_at
            .map(|v| parse_time("receivedAt", v))
            .transpose()?;
        // The client's clock: `originalTimestamp` when Segment renamed it.
        let client_time = match (original_timestamp, timestamp) {
            (Some(original), _) => Some(("originalTimestamp", original)),
            (None, Some(timestamp)) => Some(("timestamp", timestamp)),
            (None, None) => None,
        };
        let time = match (client_time, sent_at, received) {
            (Some((field, client)), Some(sent), Some(received)) => {
                let client = parse_time(field, client)?;
                let sent = parse_time("sentAt", sent)?;
                Ok(Timestamp(received.0 - (sent.0 - client.0)))
            }
            // Without both clocks, `timestamp` as sent (Segment's corrected
            // one when there is an `originalTimestamp` too).
            (Some((field, client)), _, _) => match timestamp {
                Some(timestamp) => parse_time("timestamp", timestamp),
                None => parse_time(field, client),
            },
            (None, _, Some(received)) => Ok(received),
            (None, _, None) => Err(InvalidEvent::MissingTimestamp),
        }?;
        if (Event::EARLIEST_TIME..Event::AFTER_LATEST_TIME).contains(&time) {
            Ok(time)
        } else {
            Err(InvalidEvent::TimeOutOfRange(time.to_rfc3339()))
        }
    }

    /// The largest encoded call accepted: NATS's default largest message,
    /// and 32 times Segment's own limit for one call.
    pub const MAX_BYTES: usize = 1 << 20;

    /// Event times accepted: 2000-01-01T00:00:00Z onwards ...
    pub const EARLIEST_TIME: Timestamp = Timestamp(946_684_800_000);
    /// ... up to, not including, 2100-01-01T00:00:00Z.
    pub const AFTER_LATEST_TIME: Timestamp = Timestamp(4_102_444_800_000);

    /// The key the customer's state lives under: `userId`, else `anonymousId`.
    pub fn customer_key(&self) -> &str {
        self.user_id
            .as_deref()
            .or(self.anonymous_id.as_deref())
            .unwrap_or_default()
    }

    /// Stable hash of the message id, used for de-duplication.
    pub fn message_hash(&self) -> u64 {
        hash_str(&self.message_id)
    }

    /// A property as a string (numbers are rendered), for keys and grouping.
    /// Borrowed unless it has to be rendered.
    #[inline]
    pub fn property_text(&self, name: &str) -> Option<Cow<'_, str>> {
        self.properties.get(name)?.as_text()
    }

    /// A property as a number (numeric strings are accepted).
    #[inline]
    pub fn property_number(&self, name: &str) -> Option<f64> {
        self.properties.get(name)?.as_number()
    }
}

/// A JSON value as a number, accepting numeric strings (`"12.5"`), which many
/// SDKs send.
pub fn value_number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => number_in_text(text),
        _ => None,
    }
}

/// Text as a number (`" 12.5"`), as [`value_number`] reads it.
pub fn number_in_text(text: &str) -> Option<f64> {
    // Rust reads "NaN", "inf" and "1e400" as numbers; JSON has none such,
    // and one would poison sums and comparisons (and be written as `null`
    // where an action promises a number).
    text.trim().parse().ok().filter(|n: &f64| n.is_finite())
}

#[cfg(test)]
mod tests {

    #[test]
    fn every_reason_is_listed() {
        let one_of_each = [
            InvalidEvent::NotJson(String::new()),
            InvalidEvent::TooLarge { size: 2, limit: 1 },
            InvalidEvent::UnknownType(String::new()),
            InvalidEvent::MissingType,
            InvalidEvent::WrongType {
                field: "f",
                found: String::new(),
                accepted: "a",
            },
            InvalidEvent::MissingEventName,
            InvalidEvent::MissingIdentity,
            InvalidEvent::BadTimestamp {
                field: "timestamp",
                value: String::new(),
            },
            InvalidEvent::MissingTimestamp,
            InvalidEvent::DuplicateField(String::new()),
            InvalidEvent::IncompleteAlias,
            InvalidEvent::TimeOutOfRange(String::new()),
        ];
        let mut given: Vec<&str> = one_of_each.iter().map(InvalidEvent::reason).collect();
        given.dedup();
        assert_eq!(given, InvalidEvent::REASONS);
    }
    use super::*;

    fn parse(json: &str) -> Result<Event, InvalidEvent> {
        Event::from_json(json.as_bytes())
    }

    #[test]
    fn track_call_becomes_event() {
        let event = parse(r#"{"type":"track","event":"Product Added","userId":"u1","messageId":"m1","timestamp":"2026-11-23T10:00:00Z","properties":{"cart_id":"c1","price":"12.5"},"context":{"timezone":"Asia/Shanghai"}}"#).unwrap();
        assert_eq!(event.name, "Product Added");
        assert_eq!(event.customer_key(), "u1");
        assert_eq!(event.property_number("price"), Some(12.5));
        assert_eq!(event.timezone.as_deref(), Some("Asia/Shanghai"));
    }

    #[test]
    fn clock_skew_is_corrected_the_segment_way() {
        let event = parse(r#"{"type":"page","anonymousId":"a1","timestamp":"2026-11-23T10:00:00Z","sentAt":"2026-11-23T10:00:05Z","receivedAt":"2026-11-23T09:00:06Z"}"#).unwrap();
        assert_eq!(event.time.to_rfc3339(), "2026-11-23T09:00:01.000Z");
        assert_eq!(event.name, "page");
    }

    #[test]
    fn each_bad_input_has_its_reason() {
        let cases = [
            ("not json", "not_json"),
            (r#"{"type":"shout","userId":"u"}"#, "unknown_type"),
            (r#"{"userId":"u"}"#, "unknown_type"),
            (
                r#"{"type":"track","event":"X","userId":"u","messageId":5}"#,
                "wrong_type",
            ),
            (
                r#"{"type":"track","userId":"u","timestamp":"2026-11-23T10:00:00Z"}"#,
                "missing_event_name",
            ),
            (
                r#"{"type":"track","event":"X","timestamp":"2026-11-23T10:00:00Z"}"#,
                "missing_identity",
            ),
            (
                r#"{"type":"track","event":"X","userId":"u","timestamp":"yesterday"}"#,
                "bad_timestamp",
            ),
            (
                r#"{"type":"track","event":"X","userId":"u"}"#,
                "bad_timestamp",
            ),
            (
                r#"{"type":"alias","userId":"u","timestamp":"2026-11-23T10:00:00Z"}"#,
                "incomplete_alias",
            ),
            (
                r#"{"type":"page","userId":"u","timestamp":"9999-12-31T00:00:00Z"}"#,
                "time_out_of_range",
            ),
            (
                r#"{"type":"page","userId":"u","timestamp":"1970-01-01T00:00:00Z"}"#,
                "time_out_of_range",
            ),
            (
                r#"{"type":"page","userId":"u","timestamp":"1999-12-31T23:59:59.999Z"}"#,
                "time_out_of_range",
            ),
            (
                r#"{"type":"page","userId":"u","timestamp":"2100-01-01T00:00:00Z"}"#,
                "time_out_of_range",
            ),
            // In range as sent, out of it once the client's clock skew is
            // taken off.
            (
                r#"{"type":"page","userId":"u","timestamp":"2026-01-01T00:00:00Z","sentAt":"2099-01-01T00:00:00Z","receivedAt":"2026-01-01T00:00:00Z"}"#,
                "time_out_of_range",
            ),
        ];
        let padded = |size: usize| {
            let head = r#"{"type":"page","userId":"u","timestamp":"2026-11-23T10:00:00Z","properties":{"pad":""#;
            let tail = r#""}}"#;
            format!("{head}{}{tail}", "x".repeat(size - head.len() - tail.len()))
        };
        assert!(parse(&padded(Event::MAX_BYTES)).is_ok());
        let error = parse(&padded(Event::MAX_BYTES + 1)).unwrap_err();
        assert_eq!(error.reason(), "too_large");
        assert_eq!(
            error.to_string(),
            "message is 1048577 bytes; accepted: at most 1048576 bytes"
        );
        for edge in ["2000-01-01T00:00:00Z", "2099-12-31T23:59:59.999Z"] {
            let json = format!(r#"{{"type":"page","userId":"u","timestamp":"{edge}"}}"#);
            assert!(parse(&json).is_ok(), "{edge}");
        }
        for (json, reason) in cases {
            let error = parse(json).unwrap_err();
            assert_eq!(error.reason(), reason, "{json}");
            assert!(error.to_string().contains("accepted"), "{error}");
        }
    }

    #[test]
    fn rejections_are_one_printable_line() {
        for json in [
            "{\"type\":\"track\",\"event\":\"X\u{1b}]0;pwned\u{7}\",\"userId\":1,,}",
            "{\"type\":\"track\",\n\"event\":\"X\u{1b}\"",
            "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\u{1b}",
        ] {
            let message = parse(json).unwrap_err().to_string();
            assert!(!message.contains('\n'), "{message:?}");
            assert!(!message.chars().any(char::is_control), "{message:?}");
            assert!(message.contains("accepted"), "{message:?}");
        }
    }

    #[test]
    fn numeric_ids_read_as_json_writes_them() {
        let user = |id: &str| {
            let json = format!(
                r#"{{"type":"track","event":"X","userId":{id},"anonymousId":"a","timestamp":"2026-11-23T10:00:00Z"}}"#
            );
            parse(&json).unwrap().user_id.map(|id| id.to_string())
        };
        assert_eq!(user("12").as_deref(), Some("12"));
        assert_eq!(user("-7").as_deref(), Some("-7"));
        assert_eq!(user("12.0").as_deref(), Some("12.0"));
        assert_eq!(user("1e3").as_deref(), Some("1000.0"));
        assert_eq!(
            user("18446744073709551615").as_deref(),
            Some("18446744073709551615")
        );
        assert_eq!(user("\"u1\"").as_deref(), Some("u1"));
        assert_eq!(user("null"), None);
        let json =
            r#"{"type":"track","event":"X","userId":true,"timestamp":"2026-11-23T10:00:00Z"}"#;
        assert_eq!(parse(json).unwrap_err().reason(), "wrong_type");
    }

    #[test]
    fn a_missing_type_is_called_missing() {
        for json in [
            r#"{"event":"X","userId":"u","timestamp":"2026-11-23T10:00:00Z"}"#,
            r#"{"type":null,"event":"X","userId":"u","timestamp":"2026-11-23T10:00:00Z"}"#,
            "{}",
        ] {
            let error = parse(json).unwrap_err();
            assert_eq!(error, InvalidEvent::MissingType, "{json}");
            assert_eq!(error.reason(), "unknown_type", "the code it always had");
            assert_eq!(
                error.to_string(),
                "call without \"type\"; accepted: a type, one of track, identify, page, screen, group, alias"
            );
        }
        let error = parse(r#"{"type":"shout","userId":"u"}"#).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "type \"shout\" is unknown; accepted: {}",
                EventType::ACCEPTED
            )
        );
        assert!(A_TYPE.ends_with(EventType::ACCEPTED));
    }

    /// A call with `member` added, read by the fast decoder; and with
    /// enough brackets elsewhere to be read by the careful one.
    fn both_ways(member: &str) -> [String; 2] {
        let head = r#"{"type":"track","event":"X","userId":"u","timestamp":"2026-11-23T10:00:00Z""#;
        let brackets = FAST_DECODE_MAX_OPENINGS + 1;
        [
            format!("{head},{member}}}"),
            format!(
                r#"{head},"x":{}{},{member}}}"#,
                "[".repeat(brackets),
                "]".repeat(brackets)
            ),
        ]
    }

    #[test]
    fn a_call_without_a_time_is_told_so_not_given_an_empty_one() {
        let error = parse(r#"{"type":"track","event":"X","userId":"u"}"#).unwrap_err();
        assert_eq!(error, InvalidEvent::MissingTimestamp);
        assert_eq!(error.reason(), "bad_timestamp");
        assert_eq!(
            error.to_string(),
            "call without a time; accepted: timestamp (or originalTimestamp, or receivedAt) in RFC 3339, e.g. 2026-11-23T10:31:07.012Z"
        );
    }

    #[test]
    fn a_field_sent_twice_is_named_by_both_decoders() {
        for json in both_ways(r#""userId":"v""#) {
            let error = parse(&json).unwrap_err();
            assert_eq!(
                error,
                InvalidEvent::DuplicateField("userId".into()),
                "{json}"
            );
            assert_eq!(error.reason(), "duplicate_field");
            assert_eq!(
                error.to_string(),
                r#"field "userId" appears more than once; accepted: each field once"#
            );
        }
        // A field the call does not read may come twice, as before.
        for json in both_ways(r#""extra":1,"extra":2"#) {
            assert!(parse(&json).is_ok(), "{json}");
        }
        // A repeat inside `context` is not blamed on an unknown top-level
        // field of the same name sent twice.
        let nested = r#""timezone":1,"timezone":2,"context":{"timezone":"UTC","timezone":"UTC"}"#;
        for json in both_ways(nested) {
            assert_eq!(parse(&json).unwrap_err().reason(), "not_json", "{json}");
        }
    }

    #[test]
    fn a_field_of_the_wrong_type_is_named_with_what_it_may_hold() {
        let cases = [
            (r#""messageId":5"#, "messageId: integer 5; accepted: a string"),
            (
                r#""userId":true"#,
                "userId: boolean true; accepted: a string or a number",
            ),
            (
                r#""properties":"x""#,
                "properties: string \"x\"; accepted: a JSON object",
            ),
            (r#""traits":[1]"#, "traits: an array; accepted: a JSON object"),
            (
                r#""anonymousId":{"a":1}"#,
                "anonymousId: an object; accepted: a string or a number",
            ),
            (
                r#""sentAt":1.5"#,
                "sentAt: number 1.5; accepted: a string in RFC 3339, e.g. 2026-11-23T10:31:07.012Z",
            ),
            (
                r#""context":{"timezone":8}"#,
                "context.timezone: integer 8; accepted: a string, an IANA time zone such as Asia/Shanghai",
            ),
            (
                r#""context":{"traits":"vip"}"#,
                "context.traits: string \"vip\"; accepted: a JSON object",
            ),
            // serde would read this as a context with a time zone.
            (
                r#""context":["Asia/Shanghai",null]"#,
                "context: an array; accepted: a JSON object",
            ),
            // The first wrong one as written, not the first by name.
            (
                r#""receivedAt":false,"messageId":5"#,
                "receivedAt: boolean false; accepted: a string in RFC 3339, e.g. 2026-11-23T10:31:07.012Z",
            ),
            // Long or unprintable text is shortened and escaped.
            (
                &format!(r#""messageId":["\u001b]0;x", "{}"]"#, "y".repeat(100)),
                "messageId: an array; accepted: a string",
            ),
            (
                &format!(r#""properties":"\u001b{}""#, "y".repeat(100)),
                &format!(
                    "properties: string \"\\u{{1b}}{}\"...; accepted: a JSON object",
                    "y".repeat(39)
                ),
            ),
        ];
        for (member, message) in cases {
            for json in both_ways(member) {
                let error = parse(&json).unwrap_err();
                assert_eq!(error.to_string(), message, "{json}");
                assert_eq!(error.reason(), "wrong_type", "{json}");
            }
        }
        let error = parse(r#"{"type":7,"userId":"u"}"#).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "type: integer 7; accepted: a string, one of {}",
                EventType::ACCEPTED
            )
        );
        // Members kairos does not read may hold anything; null is no value.
        for member in [r#""library":5"#, r#""name":[1]"#, r#""messageId":null"#] {
            for json in both_ways(member) {
                assert!(parse(&json).is_ok(), "{json}");
            }
        }
    }

    #[test]
    fn json_that_is_not_an_object_says_what_it_is() {
        for (json, kind) in [
            ("\"track\"", "a JSON string"),
            ("5", "a JSON number"),
            ("true", "a JSON boolean"),
            ("null", "JSON null"),
            ("[{\"type\":\"track\"}]", "a JSON array"),
        ] {
            let error = parse(json).unwrap_err();
            assert_eq!(error.reason(), "not_json");
            assert_eq!(
                error.to_string(),
                format!("not a JSON object: the line is {kind}; accepted: one Segment call as a JSON object")
            );
        }
        // A syntax error keeps the decoder's own message.
        let error = parse(r#"{"type":"track","event":"X","#).unwrap_err();
        assert_eq!(error.reason(), "not_json");
        assert!(error.to_string().contains("EOF"), "{error}");
    }

    /// Input from outside is hostile at times: nothing here may crash the
    /// parser or be read differently from what JSON says.
    #[test]
    fn malformed_json_is_rejected_and_escapes_are_read() {
        let head = r#"{"type":"track","event":"X","userId":"u","timestamp":"2026-11-23T10:00:00Z""#;
        let deep = format!(
            r#"{head},"properties":{{"a":{}1{}}}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        // Not UTF-8 in a part kairos skips, read by each decoder.
        let skipped_bad_utf8 = |brackets: usize| {
            let mut bytes = head.as_bytes().to_vec();
            bytes.extend_from_slice(b",\"context\":{\"library\":{\"name\":\"a\xffb\"},\"x\":");
            bytes.extend(std::iter::repeat_n(b'[', brackets));
            bytes.extend(std::iter::repeat_n(b']', brackets));
            bytes.extend_from_slice(b"}}");
            bytes
        };
        let (bad_fast, bad_careful) = (skipped_bad_utf8(1), skipped_bad_utf8(80));
        let cases: [&[u8]; 11] = [
            &bad_fast,
            &bad_careful,
            deep.as_bytes(),
            b"{\"type\":\"track\",\"event\":\"X\xff\",\"userId\":\"u\",\"timestamp\":\"2026-11-23T10:00:00Z\"}",
            b"{\"type\":\"track\",\"event\":\"X\",\"userId\":\"u\",\"timestamp\":\"2026-11-23T10:00:00Z\"} trailing",
            b"{\"type\":\"track\",\"event\":\"X\ny\",\"userId\":\"u\",\"timestamp\":\"2026-11-23T10:00:00Z\"}",
            b"{\"type\":\"track\",\"event\":\"X\",\"userId\":\"u\",\"timestamp\":\"2026-11-23T10:00:00Z\"",
            b"{\"type\":\"track\",\"event\":\"\\ud800\",\"userId\":\"u\",\"timestamp\":\"2026-11-23T10:00:00Z\"}",
            b"",
            // An array of the fields in declaration order, as serde would read it.
            b"[\"track\",\"X\",\"u\",null,null,\"m\",\"2026-11-23T10:00:00Z\",null,null,null,null,null,null,null,null]",
            b" [\"identify\"]",
        ];
        for (index, bytes) in cases.iter().enumerate() {
            let error = Event::from_json(bytes).unwrap_err();
            assert_eq!(error.reason(), "not_json", "case {index}: {error}");
        }
        // Just under the fast decoder's limit: read, and the stack holds.
        let nested = format!(
            r#"{head},"properties":{{"a":{}1{}}}}}"#,
            "[".repeat(FAST_DECODE_MAX_OPENINGS - 2),
            "]".repeat(FAST_DECODE_MAX_OPENINGS - 2)
        );
        assert!(parse(&nested).is_ok());
        let event = parse(&format!(
            r#"{head},"properties":{{"name":"caf\u00e9 \"\ud83d\ude00\"\t","n":1,"n":2}}}}"#
        ))
        .unwrap();
        assert_eq!(
            event.property_text("name").as_deref(),
            Some("caf\u{e9} \"\u{1f600}\"\t")
        );
        assert_eq!(
            event.property_number("n"),
            Some(2.0),
            "the last of a repeated name wins"
        );
    }

    /// Both decoders read a call the same way.
    fn decoders_agree(json: &str) {
        let fast = decode_fast(json.as_bytes());
        let careful = decode_careful(json.as_bytes());
        match (fast, careful) {
            (Ok(fast), Ok(careful)) => {
                let id = || CompactString::from("id");
                assert_eq!(
                    Event::from_segment(fast, id),
                    Event::from_segment(careful, id),
                    "{json}"
                );
            }
            (Err(_), Err(_)) => {}
            (fast, careful) => panic!("{json}: sonic-rs {fast:?}, serde_json {careful:?}"),
        }
    }

    fn with_property(value: &str) -> String {
        format!(
            r#"{{"type":"track","event":"X","userId":"u","timestamp":"2026-11-23T10:00:00Z","properties":{{"v":{value},"w":[{value}]}}}}"#
        )
    }

    #[test]
    fn decoders_agree_on_awkward_values() {
        let values = [
            "0",
            "-0",
            "-0.0",
            "1.4965681858215559e-165",
            "18446744073709551615",
            "-9223372036854775808",
            "01",
            "1.",
            ".5",
            "+1",
            "1e400",
            "\"\\u00e9\\u0000\"",
            "\"\\/\"",
            "\"\\uDFFF\"",
            "\"\\ud83d\\ude00\"",
            "true",
            "null",
            "[]",
            "{}",
            "[1,[2,[3]]]",
            "{\"a\":{\"b\":null}}",
            "nul",
            "\"\t\"",
        ];
        for value in values {
            decoders_agree(&with_property(value));
            decoders_agree(&format!(
                r#"{{"type":"identify","userId":{value},"timestamp":"2026-11-23T10:00:00Z","traits":{{"v":{value}}}}}"#
            ));
        }
    }

    /// A number is read as the nearest double, like Rust's own parser.
    fn reads_exactly(text: &str) {
        let event = Event::from_json(with_property(text).as_bytes()).unwrap();
        let expected: f64 = text.parse().unwrap();
        assert_eq!(
            event.property_number("v").map(f64::to_bits),
            Some(expected.to_bits()),
            "{text}"
        );
    }

    #[test]
    fn numbers_are_read_exactly() {
        for text in [
            "1.0000000000000002",
            "2.2250738585072011e-308",
            "4.9e-324",
            "1.7976931348623157e308",
            "0.1e1",
            "1E+2",
            "12.99",
            "-1.496568185821556e-165",
            "18446744073709551616",
        ] {
            reads_exactly(text);
        }
    }

    use proptest::strategy::Strategy as _;

    proptest::proptest! {
        #[test]
        fn doubles_are_read_back_exactly(value in proptest::num::f64::NORMAL | proptest::num::f64::SUBNORMAL | proptest::num::f64::ZERO) {
            reads_exactly(&serde_json::json!(value).to_string());
        }

        #[test]
        fn decoders_agree_on_generated_calls(
            name in "\\PC{0,12}",
            user in proptest::option::of("[a-z0-9-]{0,40}"),
            properties in proptest::collection::vec(
                ("[a-z_]{1,8}", proptest::prop_oneof![
                    proptest::num::f64::ANY.prop_map(|n| serde_json::json!(n)),
                    proptest::num::i64::ANY.prop_map(|n| serde_json::json!(n)),
                    proptest::num::u64::ANY.prop_map(|n| serde_json::json!(n)),
                    "\\PC{0,20}".prop_map(|text| serde_json::json!(text)),
                    proptest::bool::ANY.prop_map(|flag| serde_json::json!([flag, {"x": null}])),
                ]),
                0..6,
            ),
        ) {
            let properties: serde_json::Map<String, serde_json::Value> =
                properties.into_iter().collect();
            let call = serde_json::json!({
                "type": "track", "event": name, "userId": user, "anonymousId": "a",
                "timestamp": "2026-11-23T10:00:00.123+08:00", "properties": properties,
            });
            decoders_agree(&call.to_string());
        }
    }

    #[test]
    fn missing_message_id_is_derived_from_the_payload() {
        let json =
            r#"{"type":"track","event":"X","userId":"u","timestamp":"2026-11-23T10:00:00Z"}"#;
        assert_eq!(
            parse(json).unwrap().message_id,
            parse(json).unwrap().message_id
        );
    }
}
