//! kairos-loadtest's parts: the traffic it sends on schedule and the
//! report of what came back. The binary is `src/main.rs`.

pub mod actions;
pub mod measure;
pub mod plots;
pub mod raw;
pub mod report;
pub mod traffic;
