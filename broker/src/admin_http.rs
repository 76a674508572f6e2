//! The admin HTTP server: `GET /health` (200 `ok` while serving) and `GET /metrics`
//! (Prometheus / OpenMetrics text).

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::shutdown::Shutdown;
use crate::Broker;

const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

async fn health() -> &'static str {
    "ok\n"
}

async fn metrics(State(broker): State<Arc<Broker>>) -> impl IntoResponse {
    let body = broker.metrics.render(&broker.topics, &broker.groups);
    ([(CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], body)
}

/// Serves until shutdown begins.
pub async fn serve(
    listener: tokio::net::TcpListener,
    broker: Arc<Broker>,
    mut shutdown: Shutdown,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(broker);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.wait().await })
        .await
}
