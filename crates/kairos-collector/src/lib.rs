//! Segment's HTTP Tracking API in front of kairos' events stream, so that
//! tracking SDKs send to kairos unchanged (`kairos collect`).

pub mod calls;
pub mod keys;
pub mod server;
