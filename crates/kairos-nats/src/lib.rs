//! kairos on NATS JetStream: the streams it creates, the partition rule
//! publishers follow, the engine worker behind `kairos run`, snapshots, the
//! admin endpoints and the publisher behind `kairos publish`.
//!
//! The engine (`kairos_engine`) stays free of I/O; everything here is the
//! edge around it.

pub mod actions;
pub mod admin;
pub mod catalog;
pub mod connect;
pub mod forget;
pub mod outbox;
pub mod partition;
pub mod pipelines;
pub mod publisher;
pub mod requests;
pub mod snapshots;
pub mod streams;
pub mod worker;
