//! Integration tests of `kairos-pipeline`, one module per concern (one test
//! binary, so the workspace links it once).

mod every_kind;
mod mistakes;
mod overrides;
mod repository_pipelines;
mod robustness;
mod support;
