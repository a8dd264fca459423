//! The admin HTTP endpoints: `/healthz`, `/readyz` and `/metrics`.

use crate::worker::Health;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
pub use metrics_exporter_prometheus::PrometheusHandle;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Latency buckets, in seconds: fine below 10 ms (the immediate-trigger
/// target) and 50 ms (the timer target), coarse above.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Installs the process's Prometheus recorder; every `metrics` call after
/// this is exported.
pub fn install_metrics() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)?
        .install_recorder()?;
    Ok(handle)
}

#[derive(Clone)]
struct AdminState {
    metrics: PrometheusHandle,
    health: Arc<Health>,
    client: async_nats::Client,
}

/// Serves the endpoints on `listener` until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: PrometheusHandle,
    health: Arc<Health>,
    client: async_nats::Client,
) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .with_state(AdminState {
            metrics,
            health,
            client,
        });
    axum::serve(listener, app).await?;
    Ok(())
}

/// Binds the admin address, so that a taken port fails the start.
pub async fn bind(address: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|error| anyhow::anyhow!("cannot listen on {address} for --admin: {error}"))
}

/// Ready: connected to NATS, streams present, snapshot loaded, consumer
/// created.
async fn readyz(State(state): State<AdminState>) -> (StatusCode, &'static str) {
    let connected = state.client.connection_state() == async_nats::connection::State::Connected;
    if !connected {
        return (StatusCode::SERVICE_UNAVAILABLE, "not connected to NATS\n");
    }
    if !state.health.ready.load(Ordering::Acquire) {
        return (StatusCode::SERVICE_UNAVAILABLE, "starting or stopping\n");
    }
    (StatusCode::OK, "ready\n")
}

async fn render_metrics(State(state): State<AdminState>) -> String {
    state.metrics.render()
}
