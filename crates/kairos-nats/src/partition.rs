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

#[cfg(test)]
mod tests {
    use super::*;

    /// Publishers in other languages implement the rule from the README;
    /// these values are the ones it shows, so they must never change.
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
