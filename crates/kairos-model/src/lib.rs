//! The kairos data model: pure data and serde, no I/O.
//!
//! - [`time`]: [`Timestamp`] (milliseconds since the Unix epoch, UTC) and
//!   [`Span`] (a signed length of time) with the `30m` / `24h` / `3d` notation
//!   pipelines use.
//! - [`event`]: the Segment tracking-spec envelope as it arrives on the wire
//!   ([`SegmentCall`]) and the canonical [`Event`] the engine consumes.
//! - [`action`]: the CloudEvents 1.0 envelope kairos emits for each decision
//!   ([`Action`]), with the field names product.md fixes as a contract.
//! - [`properties`]: an event's properties and traits ([`Properties`]), a
//!   small map built for a few lookups per event.
//! - [`payload`]: an action's typed payload ([`Payload`]).
//! - [`ids`]: stable hashing for deterministic ids and assignments.
//!
//! Ids are [`CompactString`]s: up to 24 bytes are stored inline.
#![deny(missing_docs)]

pub mod action;
pub mod event;
pub mod ids;
mod json_out;
pub mod payload;
pub mod properties;
pub mod time;

pub use action::{Action, ActionData, ActionReason};
pub use compact_str::CompactString;
pub use event::{Event, EventType, InvalidEvent, SegmentCall};
pub use payload::{CartItem, Payload, PayloadValue};
pub use properties::{Properties, PropertyValue};
pub use time::{Span, SpanParseError, Timestamp};
