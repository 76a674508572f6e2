//! The admin HTTP server: `GET /health` (200 `ok` while serving, 503 `starting` until a
//! cluster node is registered, 503 with the reasons after a failure the broker cannot
//! recover from), `GET /metrics`
//! (Prometheus / OpenMetrics text) and `GET /cluster` (JSON: this node, the controller
//! leader, the registered brokers and this node's partition replicas with their Raft
//! view; what `strata cluster status` shows),
//! `POST /cluster/rebalance-leaders` and `POST /cluster/move` (cluster operations), and
//! `GET /audit/…` (audit topics' tree heads and proofs, [`audit`]).
//!
//! Access: see [`auth`] (`admin.api.require.auth`, HTTP Basic or a bearer token, changes
//! for super users) and [`tls`] (HTTPS with `ADMIN:SSL`). Whatever the credentials, a
//! change must not come from a web page: any page a browser shows could send a POST to
//! `127.0.0.1:9644`. A browser marks every POST with an `Origin` header, and it can send
//! `application/json` to another origin only after a CORS preflight this server never
//! grants. So the operations refuse a request that carries `Origin` (403) and one whose
//! body is not declared `application/json` (415); the CLI sends neither kind.

mod audit;
mod audit_seal;
mod auth;
mod listener;

pub use auth::AdminAuth;
use auth::AuthState;

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use replication::group::GroupStatus;
use serde_json::Value;

use crate::cluster::metadata::PartitionMeta;
use crate::cluster::ClusterError;
use crate::health::Status;
use crate::shutdown::Shutdown;
use crate::Broker;

const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// 200 `ok` while the broker can keep its promises; 503 `starting` with what start-up
/// waits for (a cluster node until the controller applied its registration); 503
/// `unhealthy` with the failures (one per line) once a task or a partition's storage
/// failed and the broker is stopping, or while it is degraded.
async fn health(State(broker): State<Arc<Broker>>) -> axum::response::Response {
    let unavailable = axum::http::StatusCode::SERVICE_UNAVAILABLE;
    match broker.metrics.health.status() {
        Status::Ok => "ok\n".into_response(),
        Status::Starting(waiting_for) => {
            (unavailable, format!("starting\n{waiting_for}\n")).into_response()
        }
        Status::Unhealthy(reasons) => {
            (unavailable, format!("unhealthy\n{reasons}\n")).into_response()
        }
    }
}

async fn metrics(State(broker): State<Arc<Broker>>) -> impl IntoResponse {
    let body = crate::scrape::render(&broker);
    ([(CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], body)
}

/// This node's view of the cluster as JSON.
async fn cluster(State(broker): State<Arc<Broker>>) -> axum::response::Response {
    let c = &broker.cluster;
    let statuses: std::collections::HashMap<u64, GroupStatus> = c
        .node
        .status()
        .await
        .into_iter()
        .map(|s| (s.group, s))
        .collect();
    let mut partitions = Vec::new();
    let mut placement = Vec::new();
    let (brokers, controller) = {
        let state = c.state();
        for (name, t) in &state.topics {
            for (i, p) in t.partitions.iter().enumerate() {
                let reported = state.leaders.get(&p.group).copied();
                placement.push(placement_json(name, i, p, reported));
                if let Some(s) = statuses.get(&p.group) {
                    let isr = c.isr(p.group).map(|i| i.in_sync);
                    partitions.push(replica_json((name, i, p), s, isr));
                }
            }
        }
        let brokers: Vec<_> = state
            .brokers
            .iter()
            .map(|(id, b)| {
                serde_json::json!({
                    "id": id,
                    "kafka_addr": format!("{}:{}", b.host, b.port),
                    "admin_addr": b.admin,
                    "alive": c.is_alive(*id),
                })
            })
            .collect();
        (brokers, c.controller_leader().unwrap_or(0))
    };
    let controller_replica = statuses
        .get(&crate::cluster::metadata::CONTROLLER_GROUP)
        .map(|s| {
            serde_json::json!({
                "term": s.term,
                "committed_index": s.committed_index,
                "rejoining": s.rejoining,
                "votes_refused": s.votes_refused,
            })
        });
    let body = serde_json::json!({
        "node_id": c.node_id,
        "standing": c.standing(),
        "controller_leader": controller,
        "controller": controller_replica,
        "brokers": brokers,
        "partitions": partitions,
        "placement": placement,
        "under_replicated": c.under_replicated(),
        "transport_dropped": c.transport_dropped(),
    });
    ([(CONTENT_TYPE, "application/json")], format!("{body}\n")).into_response()
}

/// Partition `index` of `topic` as the controller places it: the fields both of the
/// cluster view's lists start with, then `more`.
fn partition_json(topic: &str, index: usize, p: &PartitionMeta, more: Value) -> Value {
    let mut entry = serde_json::json!({
        "topic": topic,
        "partition": index,
        "group": p.group,
        "replicas": p.replicas,
    });
    if let (Some(entry), Value::Object(more)) = (entry.as_object_mut(), more) {
        entry.extend(more);
    }
    entry
}

/// Where the controller places a partition, and the leader it last recorded (0 when
/// none).
fn placement_json(
    topic: &str,
    index: usize,
    p: &PartitionMeta,
    reported: Option<(u64, u64)>,
) -> Value {
    let more = serde_json::json!({
        "target": p.target,
        "leader": reported.map_or(0, |(l, _)| l),
        "term": reported.map_or(0, |(_, t)| t),
    });
    partition_json(topic, index, p, more)
}

/// This node's replica of a partition, as its Raft group sees it.
fn replica_json(
    (topic, index, p): (&str, usize, &PartitionMeta),
    s: &GroupStatus,
    isr: Option<Vec<u64>>,
) -> Value {
    let more = serde_json::json!({
        "leader": s.leader,
        "term": s.term,
        "committed_index": s.committed_index,
        "high_watermark": s.committed_offset,
        "last_index": s.last_index,
        "voters": s.voters,
        "learners": s.learners,
        "joint": s.joint,
        "rejoining": s.rejoining,
        "votes_refused": s.votes_refused,
        "matched": s.matched,
        "isr": isr,
        "local": true,
    });
    partition_json(topic, index, p, more)
}

/// `POST /cluster/rebalance-leaders`: plans leader transfers that even leaderships out
/// and asks the leaders to carry them out; answers the plan.
async fn rebalance_leaders(State(broker): State<Arc<Broker>>) -> axum::response::Response {
    let c = &broker.cluster;
    let plan: Vec<_> = c
        .rebalance_leaders()
        .await
        .into_iter()
        .map(|t| serde_json::json!({"group": t.group, "from": t.from, "to": t.to}))
        .collect();
    let body = serde_json::json!({ "transfers": plan });
    ([(CONTENT_TYPE, "application/json")], format!("{body}\n")).into_response()
}

/// The body of `POST /cluster/move`.
#[derive(serde::Deserialize)]
struct MoveRequest {
    topic: String,
    partition: i32,
    to: Vec<u64>,
}

/// `POST /cluster/move` with `{"topic": T, "partition": P, "to": [1, 2, 4]}`: starts
/// moving the partition's replicas (through the controller). 200 once the controller
/// accepted the move (it then runs in the background; `GET /cluster` shows its
/// `target` until it is done); 400 with the Kafka error for a bad request, 409 while
/// another move of the partition is under way, 503 without a controller.
async fn move_partition(
    State(broker): State<Arc<Broker>>,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::http::StatusCode;
    use kafka_protocol::error::ResponseError;
    let c = &broker.cluster;
    let answer = |status: StatusCode, body: serde_json::Value| {
        (
            status,
            [(CONTENT_TYPE, "application/json")],
            format!("{body}\n"),
        )
            .into_response()
    };
    let req: MoveRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return answer(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": format!("expected {{\"topic\", \"partition\", \"to\"}}: {e}")}),
            )
        }
    };
    match c.move_partition(req.topic, req.partition, req.to).await {
        Ok(()) => answer(StatusCode::OK, serde_json::json!({"accepted": true})),
        Err(e) => {
            let status = match &e {
                ClusterError::ControllerTimeout { .. } => StatusCode::SERVICE_UNAVAILABLE,
                ClusterError::Refused(r)
                    if r.code == ResponseError::ReassignmentInProgress.code() =>
                {
                    StatusCode::CONFLICT
                }
                _ => StatusCode::BAD_REQUEST,
            };
            answer(
                status,
                serde_json::json!({"error": e.to_string(), "code": e.code()}),
            )
        }
    }
}

/// Refuses a change that a web page could have sent (see the module docs).
async fn not_from_a_browser(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::{header, StatusCode};
    let refuse = |status: StatusCode, why: &str| {
        let body = serde_json::json!({ "error": why });
        (
            status,
            [(CONTENT_TYPE, "application/json")],
            format!("{body}\n"),
        )
            .into_response()
    };
    let headers = request.headers();
    if headers.contains_key(header::ORIGIN) {
        let why = "admin changes are not accepted from web pages (the request has an Origin)";
        return refuse(StatusCode::FORBIDDEN, why);
    }
    let json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        let why = "admin changes take Content-Type: application/json";
        return refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE, why);
    }
    next.run(request).await
}

/// Serves until shutdown begins: plain HTTP, or HTTPS with `tls` (`ADMIN:SSL`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<crate::tls::ListenerTls>>,
    auth: Arc<AdminAuth>,
    broker: Arc<Broker>,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    let state = AuthState {
        auth,
        broker: broker.clone(),
    };
    let changes = Router::new()
        .route(
            "/cluster/rebalance-leaders",
            axum::routing::post(rebalance_leaders),
        )
        .route("/cluster/move", axum::routing::post(move_partition))
        .route(
            "/audit/{topic}/{partition}/log-head",
            axum::routing::post(audit::log_head),
        )
        .route(
            "/audit/{topic}/{partition}/seal",
            axum::routing::post(audit_seal::seal),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::record_change,
        ))
        .route_layer(axum::middleware::from_fn(not_from_a_browser))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::may_alter_cluster,
        ));
    let app = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/cluster", get(cluster))
        .route("/audit/key", get(audit::key))
        .route("/audit/{topic}/{partition}/head", get(audit::head))
        .route("/audit/{topic}/{partition}/heads", get(audit::logged_heads))
        .route("/audit/{topic}/{partition}/seal", get(audit_seal::current))
        .route(
            "/audit/{topic}/{partition}/inclusion",
            get(audit::inclusion),
        )
        .route(
            "/audit/{topic}/{partition}/consistency",
            get(audit::consistency),
        )
        .merge(changes)
        .layer(axum::middleware::from_fn_with_state(
            state,
            auth::authenticate,
        ))
        .with_state(broker.clone())
        .into_make_service_with_connect_info::<listener::ClientAddr>();
    let mut stopping = shutdown.clone();
    let stopped = async move { stopping.wait().await };
    let listener = listener::AdminListener::start(listener, tls, broker.metrics.clone(), shutdown)?;
    axum::serve(listener, app)
        .with_graceful_shutdown(stopped)
        .await
}
