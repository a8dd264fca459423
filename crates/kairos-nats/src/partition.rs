//! Which partition, and so which subject, a customer's events go to.
//!
//! Every event of one customer must land in one partition, in order, so
//! that a worker owning that partition sees the whole customer. The rule is
//! part of kairos' contract with publishers (README, "Sending events") and
//! must never change: partition = xxh3-64 (seed 0) of the customer key's
//! UTF-8 bytes, modulo the number of partitions; the customer key is the
//! `userId`, or the `anonymousId` when there is no `userId`.

/// Subjects of the events stream: `kairos.events.<partition>`.
pub const EVENTS_PREFIX: &str = "kairos.events";

/// The subject the engine publishes its clock ticks to (see `worker`).
pub const TICK_SUBJECT: &str = "kairos.events.tick";

/// The default number of partitions.
pub const DEFAULT_PARTITIONS: u32 = 16;

/// The partition of `customer_key` among `partitions` (at least 1).
pub fn partition_of(customer_key: &str, partitions: u32) -> u32 {
    let hash = xxhash_rust::xxh3::xxh3_64(customer_key.as_bytes());
    (hash % u64::from(partitions.max(1))) as u32
}

/// `kairos.events.<partition>`.
pub fn event_subject(partition: u32) -> String {
    format!("{EVENTS_PREFIX}.{partition}")
}

/// A call's `messageId` as its `Nats-Msg-Id` header value: as it is, unless
/// it holds a character a header cannot (a line break would end the header
/// and start another, which JetStream would obey); then a hash of it, the
/// same on every retry.
pub fn message_id_header(message_id: &str) -> std::borrow::Cow<'_, str> {
    if message_id.chars().any(char::is_control) {
        let hash = xxhash_rust::xxh3::xxh3_64(message_id.as_bytes());
        std::borrow::Cow::Owned(format!("msgid-{hash:016x}"))
    } else {
        std::borrow::Cow::Borrowed(message_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Publishers in other languages implement the rule from the README;
    /// these values are the ones it shows, so they must never change.
    #[test]
    fn a_message_id_that_could_end_a_header_is_hashed() {
        assert_eq!(message_id_header("m-1"), "m-1");
        let odd = message_id_header("m1\r\nNats-Expected-Last-Sequence: 1");
        assert!(odd.starts_with("msgid-") && !odd.contains('\n'), "{odd}");
        assert_eq!(
            odd,
            message_id_header("m1\r\nNats-Expected-Last-Sequence: 1")
        );
    }

    #[test]
    fn the_documented_partitions_never_change() {
        // Python: xxhash.xxh3_64_intdigest(b"u1") % 16 == 1
        assert_eq!(partition_of("u1", 16), 1);
        assert_eq!(partition_of("anon-7f3a", 16), 15);
        assert_eq!(partition_of("u123", 16), 5);
        assert_eq!(partition_of("u1", 1), 0);
        assert_eq!(partition_of("u1", 0), 0, "zero partitions taken as one");
        assert_eq!(event_subject(3), "kairos.events.3");
    }
}
