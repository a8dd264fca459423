//! Publishing Segment calls to the events stream, as `kairos publish` does
//! and as any publisher must: to the customer's partition subject, with the
//! call's `messageId` as `Nats-Msg-Id` so that a retried publish is stored
//! once.

use crate::partition::{event_subject, message_id_header, partition_of};
use async_nats::jetstream::{self, context::PublishAckFuture};
use async_nats::HeaderMap;
use bytes::Bytes;
use kairos_model::{Event, InvalidEvent};
use std::collections::VecDeque;
use std::time::Duration;

/// Publishes events with up to `window` acknowledgements outstanding
/// (pipelined: one round trip per message would cap a publisher at a few
/// thousand messages a second).
pub struct Publisher {
    js: jetstream::Context,
    partitions: u32,
    window: usize,
    in_flight: VecDeque<InFlight>,
    published: u64,
}

struct InFlight {
    subject: String,
    headers: HeaderMap,
    payload: Bytes,
    ack: PublishAckFuture,
}

impl Publisher {
    /// A publisher over `partitions` partitions.
    pub fn new(client: async_nats::Client, partitions: u32, window: usize) -> Publisher {
        Publisher {
            js: jetstream::new(client),
            partitions: partitions.max(1),
            window: window.max(1),
            in_flight: VecDeque::new(),
            published: 0,
        }
    }

    /// Validates one Segment call and publishes it; an invalid one is
    /// returned, not sent (the engine would only put it in its DLQ).
    pub async fn publish(&mut self, call: &[u8]) -> anyhow::Result<Result<(), InvalidEvent>> {
        let event = match Event::from_json(call) {
            Ok(event) => event,
            Err(invalid) => return Ok(Err(invalid)),
        };
        let subject = event_subject(partition_of(event.customer_key(), self.partitions));
        let mut headers = HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            message_id_header(&event.message_id).as_ref(),
        );
        while self.in_flight.len() >= self.window {
            self.confirm_oldest().await?;
        }
        let payload = Bytes::copy_from_slice(call);
        let ack = self.send(&subject, &headers, &payload).await?;
        self.in_flight.push_back(InFlight {
            subject,
            headers,
            payload,
            ack,
        });
        Ok(Ok(()))
    }

    /// Waits until every published event is stored; returns how many were.
    pub async fn flush(&mut self) -> anyhow::Result<u64> {
        while !self.in_flight.is_empty() {
            self.confirm_oldest().await?;
        }
        Ok(self.published)
    }

    async fn send(
        &self,
        subject: &str,
        headers: &HeaderMap,
        payload: &Bytes,
    ) -> anyhow::Result<PublishAckFuture> {
        let mut attempts = 0;
        loop {
            match self
                .js
                .publish_with_headers(subject.to_string(), headers.clone(), payload.clone())
                .await
            {
                Ok(ack) => return Ok(ack),
                Err(error) if attempts < 20 => {
                    attempts += 1;
                    tracing::warn!(%error, "publishing; retrying");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(error) => anyhow::bail!("publishing to {subject}: {error}"),
            }
        }
    }

    /// Waits for the oldest acknowledgement, publishing the event again
    /// (same id: stored once) when it did not come.
    async fn confirm_oldest(&mut self) -> anyhow::Result<()> {
        let Some(mut in_flight) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let mut attempts = 0;
        loop {
            match in_flight.ack.await {
                Ok(_) => break,
                Err(error) if attempts < 20 => {
                    attempts += 1;
                    tracing::warn!(%error, "an event was not stored; publishing it again");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    in_flight.ack = self
                        .send(&in_flight.subject, &in_flight.headers, &in_flight.payload)
                        .await?;
                }
                Err(error) => anyhow::bail!("publishing to {}: {error}", in_flight.subject),
            }
        }
        self.published += 1;
        Ok(())
    }
}
