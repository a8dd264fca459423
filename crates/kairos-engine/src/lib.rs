//! The kairos engine: a deterministic, I/O-free trigger engine.
//!
//! **No clock, no sockets, no randomness it was not given.** Time is an
//! input: events carry their event time, and [`Engine::advance_to`] moves the
//! watermark when no events arrive. The same inputs always produce the same
//! decisions, byte for byte, which is what makes a backtest a faithful replay
//! of production and a crash recovery a faithful re-run.
//!
//! # Using it
//!
//! Methods come in three kinds (after quinn-proto):
//! - inputs: [`Engine::handle_event`], [`Engine::advance_to`], [`Engine::erase`],
//!   [`Engine::handle_live_event`] (a live service's events, with its clock),
//!   [`Engine::close_input`];
//! - outputs: [`Engine::poll_decision`] (call until `None` after each input),
//!   [`Engine::poll_timeout`] (the next deadline, so a runtime knows when to
//!   call `advance_to`), [`Engine::poll_pending`] (the same, counting events
//!   that wait for the clock), and, for a caller that frees events on a thread
//!   of its own, [`Engine::take_spent_events`] (after
//!   [`Engine::hand_back_events`]);
//! - getters: [`Engine::stats`], [`Engine::watermark`], [`Engine::packing`], ...
//! - recovery: [`Engine::snapshot`] (after polling every decision) and
//!   [`Engine::restore`]: a restored engine fed the rest of the input
//!   decides as the one that never stopped.
//!
//! ```
//! use kairos_engine::{Engine, config::*};
//! use kairos_model::{Event, Span, Timestamp};
//!
//! let pipeline = Pipeline {
//!     name: "demo".into(),
//!     settings: Settings::default(),
//!     policy: Policy { holdout_percent: 0.0, consent_required: vec![], quiet_hours: None, ..Policy::default() },
//!     stores: vec![],
//!     triggers: vec![Trigger {
//!         id: "abandoned_cart".into(),
//!         rule: "Product Added not followed by Order Completed within 30m".into(),
//!         key: KeySpec::Property("cart_id".into()),
//!         pattern: Pattern::Absence {
//!             start: EventMatch::named("Product Added"),
//!             cancel: vec![EventMatch::named("Order Completed")],
//!             restart: true,
//!             cancel_when_cart_empty: true,
//!         },
//!         steps: vec![Step { at: Offset::Fixed(Span::MINUTE * 30), channel: "push".into(), offer: None }],
//!         priority: 80,
//!         category: Category::Targeted,
//!         cooldown: Span::ZERO,
//!         expires_after: Span::DAY,
//!         quiet_hours: QuietHoursMode::Defer,
//!         deliver_within: Span::ZERO,
//!         cancel_on: vec![],
//!         variants: vec![],
//!         rollout_percent: 100.0,
//!         payload: PayloadSpec { cart: true, ..PayloadSpec::default() },
//!     }],
//! };
//! let mut engine = Engine::new(pipeline);
//! let line = r#"{"type":"track","event":"Product Added","userId":"u1","messageId":"m1",
//!   "timestamp":"2026-11-23T12:00:00Z","properties":{"cart_id":"c1","product_id":"p9","price":12.5}}"#;
//! engine.handle_event(Event::from_json(line.as_bytes()).unwrap());
//! engine.advance_to(Timestamp::parse_rfc3339("2026-11-23T12:30:00.001Z").unwrap());
//! let decision = engine.poll_decision().unwrap();
//! assert_eq!(decision.fired_at.to_rfc3339(), "2026-11-23T12:30:00.000Z");
//! assert_eq!(decision.payload.to_value()["cart_value"], 12.5);
//! ```
//!
//! # Time
//!
//! The watermark `W` promises that every on-time event before `W` has been
//! seen. It is `newest event time − allowed_lateness`, or whatever
//! [`Engine::advance_to`] declared, whichever is later; it never goes back.
//! Events wait in a reorder buffer until `W` passes them, then apply in
//! (event time, arrival) order; a timer due at `t` fires once `W > t`, after
//! every event at or before `t`. So out-of-order arrival within the lateness
//! changes nothing, and an order at exactly add + 30 min still cancels the
//! reminder. Events behind `W` are late: see [`config::LateEvents`].
#![deny(missing_docs)]

pub mod attribution;
pub mod config;
mod customer;
pub mod decision;
mod engine;
mod globals;
mod growth;
mod id_index;
pub mod inspect;
pub mod local_time;
mod lookahead;
pub mod matching;
mod message_id;
mod patterns;
mod plan;
mod policy;
mod reload;
mod reorder;
mod seen;
mod slots;
mod snapshot;
pub mod stats;
pub mod taste;
mod timers;

pub use decision::{Decision, Suppression};
pub use engine::{AheadOfClock, Engine, OPS_CUSTOMER};
pub use inspect::CustomerView;
pub use reload::Reloaded;
pub use snapshot::SnapshotError;
pub use stats::{Packing, Stats, TriggerStats, VariantStats};
