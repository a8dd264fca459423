//! Test harness: a pipeline from TOML text, events from JSON, a fake clock
//! that jumps wherever the test says, and the decisions collected.
#![allow(dead_code)]

use kairos_engine::{Decision, Engine};
use kairos_model::{Event, Timestamp};
use serde_json::{json, Value};

/// Compiles pipeline TOML or fails the test with every diagnostic.
pub fn pipeline(text: &str) -> kairos_engine::config::Pipeline {
    match kairos_pipeline::compile("test.toml", text, &[]) {
        Ok(pipeline) => pipeline,
        Err(diagnostics) => panic!(
            "pipeline does not compile:\n{}",
            diagnostics
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

/// A pipeline named `t` with a policy section and triggers.
pub fn with_policy(policy: &str, triggers: &str) -> String {
    format!("name = \"t\"\n{policy}\n{triggers}")
}

/// The abandoned-cart reminder: 30 minutes after the last add, by push,
/// unless an order comes first.
pub const CART_REMINDER: &str = r#"
[[trigger]]
id = "cart"
kind = "absence"
start = "Product Added"
cancel = ["Order Completed"]
after = "30m"
channel = "push"
"#;

/// A policy section that lets everything through, so pattern tests see every
/// match as sent.
pub const OPEN_POLICY: &str = r#"
[policy]
holdout_percent = 0
consent_required = []
quiet_hours = false
weekly_marketing_cap = 1000
daily_caps = { targeted = 1000, content = 1000 }
arbitration_window = "0s"
"#;

pub fn at(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// A track call without properties.
pub fn plain_track(user: &str, name: &str, time: &str, message_id: &str) -> Value {
    track(user, name, time, message_id, json!({}))
}

/// A track call.
pub fn track(user: &str, name: &str, time: &str, message_id: &str, properties: Value) -> Value {
    json!({"type": "track", "event": name, "userId": user, "timestamp": time, "messageId": message_id, "properties": properties})
}

pub struct Harness {
    pub engine: Engine,
    pub decisions: Vec<Decision>,
}

impl Harness {
    pub fn new(toml: &str) -> Harness {
        Harness::with_pipeline(pipeline(toml))
    }

    /// For a pipeline changed in code beyond what the file format allows.
    pub fn with_pipeline(pipeline: kairos_engine::config::Pipeline) -> Harness {
        Harness {
            engine: Engine::new(pipeline),
            decisions: Vec::new(),
        }
    }

    pub fn send(&mut self, call: Value) -> &mut Self {
        let event = Event::from_json(call.to_string().as_bytes()).expect("valid test event");
        self.engine.handle_event(event);
        self.collect();
        self
    }

    /// Sends `call` as a live service does, with its clock reading `clock`;
    /// the engine's refusal of an event dated too far ahead, if any.
    pub fn send_live(
        &mut self,
        call: Value,
        clock: &str,
    ) -> Result<&mut Self, kairos_engine::AheadOfClock> {
        let event = Event::from_json(call.to_string().as_bytes()).expect("valid test event");
        self.engine.handle_live_event(event, at(clock))?;
        self.collect();
        Ok(self)
    }

    /// Sends `call` at its `timestamp` even outside the times JSON input
    /// accepts (2000–2099): the engine itself takes any time a program
    /// hands it.
    pub fn send_at_any_time(&mut self, mut call: Value) -> &mut Self {
        let time = call["timestamp"].as_str().expect("a timestamp").to_string();
        call["timestamp"] = "2026-01-01T00:00:00Z".into();
        let mut event = Event::from_json(call.to_string().as_bytes()).expect("valid test event");
        event.time = kairos_model::Timestamp::parse_rfc3339(&time).expect("RFC 3339");
        self.engine.handle_event(event);
        self.collect();
        self
    }

    /// `Signed Up` at noon for customers `u0` .. `u{count-1}`: a crowd for
    /// tests of percentages (holdout, rollout, variants).
    pub fn sign_up_crowd(&mut self, count: usize) -> &mut Self {
        for n in 0..count {
            let call = track(
                &format!("u{n}"),
                "Signed Up",
                "2026-11-23T12:00:00Z",
                &format!("m{n}"),
                json!({}),
            );
            self.send(call);
        }
        self
    }

    pub fn advance(&mut self, time: &str) -> &mut Self {
        self.engine.advance_to(at(time));
        self.collect();
        self
    }

    pub fn finish(&mut self) -> &mut Self {
        self.engine.advance_to(Timestamp::MAX);
        self.collect();
        self
    }

    fn collect(&mut self) {
        while let Some(decision) = self.engine.poll_decision() {
            self.decisions.push(decision);
        }
    }

    pub fn sent(&self) -> Vec<&Decision> {
        self.decisions.iter().filter(|d| d.is_sent()).collect()
    }

    /// (trigger, step, fired_at, suppression) of every decision, compactly.
    pub fn summary(&self) -> Vec<String> {
        self.decisions
            .iter()
            .map(|d| {
                format!(
                    "{} {} step{} {} {}",
                    d.user_id,
                    d.trigger,
                    d.step,
                    d.fired_at,
                    d.suppressed.map(|s| s.as_str()).unwrap_or("sent")
                )
            })
            .collect()
    }
}
