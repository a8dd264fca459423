//! Decisions made into action messages on a thread of their own: answering
//! a decision's recommendations (an index query, a fraction of a
//! millisecond) and writing its JSON. The engine's loop only hands them
//! over, so a trigger that asks for recommendations costs the loop no more
//! than one that does not, and the two run on both cores.
//!
//! Messages come back in the order the decisions were made. The worker
//! holds a snapshot until every decision handed over has come back and
//! been published ([`ActionWriter::in_flight`]): a snapshot must never
//! cover a decision that exists only here.

use crate::outbox::Outgoing;
use crate::streams::ACTIONS_PREFIX;
use async_nats::HeaderMap;
use bytes::Bytes;
use kairos_engine::Decision;
use kairos_recommend::ItemIndex;
use metrics::histogram;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// One decision to write, with when its input was taken off the stream.
struct Job {
    decision: Decision,
    received: Instant,
}

/// The thread writing actions, and the messages it has written.
pub struct ActionWriter {
    /// `None` once stopping.
    jobs: Option<mpsc::Sender<Job>>,
    written: UnboundedReceiver<Outgoing>,
    /// Handed over and not yet taken back.
    in_flight: usize,
    thread: Option<JoinHandle<()>>,
}

impl ActionWriter {
    /// Starts the thread; `pipeline` names the pipeline in every action.
    pub fn start(pipeline: String, items: Arc<ItemIndex>) -> std::io::Result<ActionWriter> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (done, written) = unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("kairos-actions".into())
            .spawn(move || write_all(&pipeline, &items, &queue, &done))?;
        Ok(ActionWriter {
            jobs: Some(jobs),
            written,
            in_flight: 0,
            thread: Some(thread),
        })
    }

    /// Hands `decision` over (it comes back from [`ActionWriter::next`]).
    /// Never waits: the worker bounds what is in flight.
    pub fn write(&mut self, decision: Decision, received: Instant) {
        let Some(jobs) = &self.jobs else { return };
        // A send fails only if the thread is gone; `next` then says so.
        if jobs.send(Job { decision, received }).is_ok() {
            self.in_flight += 1;
        }
    }

    /// Decisions handed over whose messages have not been taken back.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// The next message written, in the order handed over. Call only while
    /// [`ActionWriter::in_flight`] is not zero (it waits otherwise).
    /// Cancel-safe: a message is taken only when this returns.
    pub async fn next(&mut self) -> anyhow::Result<Outgoing> {
        match self.written.recv().await {
            Some(outgoing) => {
                self.in_flight -= 1;
                Ok(outgoing)
            }
            // It panicked: what it held was never published, and the
            // snapshot before it is what a restart resumes from.
            None => anyhow::bail!(
                "the thread writing actions stopped with {} decisions unwritten",
                self.in_flight
            ),
        }
    }
}

impl Drop for ActionWriter {
    fn drop(&mut self) {
        // Dropped on an error path: what it still holds is not wanted
        // (the snapshot before covers it), so the thread stops at its next
        // message instead of answering every one first.
        self.written.close();
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The thread's loop: until the worker lets go of its end.
fn write_all(
    pipeline: &str,
    items: &ItemIndex,
    queue: &mpsc::Receiver<Job>,
    done: &UnboundedSender<Outgoing>,
) {
    let mut rendered = Vec::new();
    for job in queue {
        let outgoing = write_action(pipeline, items, job, &mut rendered);
        if done.send(outgoing).is_err() {
            return;
        }
    }
}

/// One decision as the message to publish: its recommendations answered,
/// its JSON written, its action id as the `Nats-Msg-Id`.
fn write_action(
    pipeline: &str,
    items: &ItemIndex,
    Job {
        mut decision,
        received,
    }: Job,
    rendered: &mut Vec<u8>,
) -> Outgoing {
    if let Some(request) = decision.recommend.take() {
        let started = Instant::now();
        kairos_recommend::enrich(items, &request, &mut decision.payload);
        histogram!("kairos_recommend_seconds").record(started.elapsed().as_secs_f64());
    }
    let subject = action_subject(&decision);
    let mut headers = HeaderMap::new();
    headers.insert(
        async_nats::header::NATS_MESSAGE_ID,
        decision.action_id.as_str(),
    );
    let fired_at = decision.fired_at;
    rendered.clear();
    decision
        .into_action_data()
        .write_action_json(pipeline, rendered);
    Outgoing {
        subject,
        headers,
        payload: Bytes::copy_from_slice(rendered),
        received,
        fired_at: Some(fired_at),
    }
}

/// `kairos.actions.<channel>` for a sent decision, the audit subject
/// `kairos.actions.suppressed` for one that was not.
fn action_subject(decision: &Decision) -> String {
    match decision.suppressed {
        None => format!("{ACTIONS_PREFIX}.{}", decision.channel),
        Some(_) => format!("{ACTIONS_PREFIX}.suppressed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kairos_engine::taste::RecommendationRequest;
    use kairos_engine::Suppression;
    use kairos_model::{Payload, Timestamp};
    use kairos_recommend::{parse_item, CatalogChange};
    use serde_json::Value;

    fn decision(number: usize, recommend: bool) -> Decision {
        Decision {
            action_id: format!("act_{number:016x}").into(),
            user_id: "u1".into(),
            trigger: "abandoned_cart".into(),
            step: 1,
            channel: "push".into(),
            priority: 1,
            variant: "control".into(),
            fired_at: Timestamp(1_000 + number as i64),
            decided_at: Timestamp(1_000 + number as i64),
            expires_at: Timestamp(100_000),
            suppressed: (number % 5 == 4).then_some(Suppression::Cooldown),
            rule: "a rule".into(),
            events: vec![],
            payload: Payload::default(),
            recommend: recommend.then(|| {
                Box::new(RecommendationRequest {
                    k: 2,
                    vector: computed("coffee/beans", "Hill", "Hill espresso beans"),
                    exclude: vec!["espresso".into()],
                    store: None,
                })
            }),
        }
    }

    fn computed(category: &str, brand: &str, title: &str) -> Vec<f32> {
        let item = parse_item(
            serde_json::json!({"id": "q", "title": title, "category": category, "brand": brand, "price": 10.0})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        kairos_recommend::computed_vector(&item)
    }

    #[tokio::test]
    async fn messages_come_back_in_the_order_decisions_were_made_with_their_recommendations() {
        let dir = tempfile::tempdir().unwrap();
        let items = ItemIndex::open(dir.path()).unwrap();
        let catalog = [
            r#"{"id":"espresso","title":"Hill espresso beans","category":"coffee/beans","brand":"Hill","price":12}"#,
            r#"{"id":"lungo","title":"Hill lungo beans","category":"coffee/beans","brand":"Hill","price":11}"#,
            r#"{"id":"socks","title":"Wool socks","category":"apparel/socks","brand":"Knit","price":9}"#,
        ];
        items
            .apply(
                catalog
                    .iter()
                    .map(|line| CatalogChange::Upsert(parse_item(line.as_bytes()).unwrap())),
            )
            .unwrap();
        let mut writer = ActionWriter::start("retail".into(), Arc::new(items)).unwrap();
        let received = Instant::now();
        for number in 0..300 {
            writer.write(decision(number, number % 3 == 0), received);
        }
        assert_eq!(writer.in_flight(), 300);
        for number in 0..300 {
            let outgoing = writer.next().await.unwrap();
            let id = outgoing
                .headers
                .get(async_nats::header::NATS_MESSAGE_ID)
                .unwrap()
                .to_string();
            assert_eq!(id, format!("act_{number:016x}"));
            let expected_subject = if number % 5 == 4 {
                "kairos.actions.suppressed"
            } else {
                "kairos.actions.push"
            };
            assert_eq!(outgoing.subject, expected_subject);
            let action: Value = serde_json::from_slice(&outgoing.payload).unwrap();
            assert_eq!(action["id"], id.as_str());
            let recommended = &action["data"]["payload"]["recommendations"];
            if number % 3 == 0 {
                // The cart's own item is left out; coffee comes before socks.
                let ids: Vec<&str> = recommended
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|item| item["item_id"].as_str().unwrap())
                    .collect();
                assert_eq!(ids, ["lungo", "socks"]);
            } else {
                assert!(recommended.is_null(), "{action}");
            }
        }
        assert_eq!(writer.in_flight(), 0);
    }
}
