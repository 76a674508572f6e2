//! Audit topics' Merkle trees on the admin port, as JSON (hashes in lowercase hex), for
//! auditors and independent verifiers. Read-only; over committed batches only.
//!
//! - `GET /audit/{topic}/{partition}/head`: `{tree_size, root_hash, last_offset,
//!   timestamp_ms, signature}`, the signature (Ed25519, hex; `null` without
//!   `audit.signing.key.file`) over the head's statement (`merkle::TreeHead`).
//! - `GET /audit/{topic}/{partition}/heads[?after_index=I][&limit=N]`: the heads logged
//!   in the partition's log (committed) after Raft index `I`, each with its
//!   `raft_index`;
//! - `POST /audit/{topic}/{partition}/log-head` (a change: ALTER on the Cluster, as the
//!   other admin changes): the leader logs its signed committed head now.
//! - `GET /audit/key`: `{algorithm: "Ed25519", public_key}` (hex, 32 bytes); 404 without
//!   a key.
//! - `GET /audit/{topic}/{partition}/inclusion?offset=N[&tree_size=S]`: the inclusion
//!   proof (RFC 9162 2.1.3) of the batch holding offset `N` in the tree of `S` leaves
//!   (default: the head's), with `leaf_index`, the batch's `base_offset` and
//!   `last_offset`, its `leaf_hash`, the `path` and that tree's `root_hash`.
//! - `GET /audit/{topic}/{partition}/consistency?from=A&to=B`: the consistency proof
//!   (RFC 9162 2.1.4) between the trees of `A` and `B` leaves, with both roots.
//! - `GET` and `POST /audit/{topic}/{partition}/seal`: the seal in force, and sealing
//!   (`audit_seal.rs`).
//!
//! 404 for an unknown topic or partition or one this broker holds no replica of, 400
//! for a question the tree cannot answer (not an audit topic, an offset or size past the
//! committed head), with `{"error": …}`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use log_store::merkle::to_hex as hex;
use serde_json::{json, Value};

use crate::audit_heads::{head_json, signed};
use crate::internal_batch::now_ms;
use crate::partition::{Partition, PartitionError, PartitionResult};
use crate::Broker;

pub(super) fn answer(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(CONTENT_TYPE, "application/json")],
        format!("{body}\n"),
    )
        .into_response()
}

/// A question refused: the status and why.
pub(super) struct Refusal(pub(super) StatusCode, pub(super) String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        answer(self.0, json!({ "error": self.1 }))
    }
}

pub(super) fn partition(
    broker: &Broker,
    topic: &str,
    index: i32,
) -> Result<Arc<Partition>, Refusal> {
    broker
        .topics
        .get(topic)
        .and_then(|t| t.partition(index).cloned())
        .ok_or_else(|| {
            Refusal(
                StatusCode::NOT_FOUND,
                format!("no partition {topic}/{index}"),
            )
        })
}

pub(super) fn reply(result: PartitionResult<Value>) -> Result<Response, Refusal> {
    let status = match &result {
        Ok(_) => StatusCode::OK,
        Err(PartitionError::NotLeader | PartitionError::Gone) => StatusCode::NOT_FOUND,
        Err(PartitionError::Offline | PartitionError::AuditDiverged) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        Err(_) => StatusCode::BAD_REQUEST,
    };
    result
        .map(|body| answer(status, body))
        .map_err(|e| Refusal(status, e.to_string()))
}

/// An unsigned number from the query string (`None`: absent).
fn number(query: &HashMap<String, String>, key: &str) -> Result<Option<u64>, Refusal> {
    query
        .get(key)
        .map(|v| {
            v.parse::<u64>().map_err(|_| {
                Refusal(
                    StatusCode::BAD_REQUEST,
                    format!("{key}={v:?} is not a number"),
                )
            })
        })
        .transpose()
}

/// A number the query string must hold.
pub(super) fn required(query: &HashMap<String, String>, key: &str) -> Result<u64, Refusal> {
    number(query, key)?
        .ok_or_else(|| Refusal(StatusCode::BAD_REQUEST, format!("{key}=N is required")))
}

pub(super) async fn head(
    State(broker): State<Arc<Broker>>,
    Path((topic, index)): Path<(String, i32)>,
) -> Result<Response, Refusal> {
    let p = partition(&broker, &topic, index)?;
    reply(
        p.audit_head()
            .map(|h| head_json(&signed(&broker, &p, &h, now_ms()))),
    )
}

/// `GET /audit/{topic}/{partition}/heads[?after_index=I][&limit=N]`: the heads logged in
/// the partition (committed ones) after Raft index `I`, oldest first, with their Raft
/// indexes.
pub(super) async fn logged_heads(
    State(broker): State<Arc<Broker>>,
    Path((topic, index)): Path<(String, i32)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, Refusal> {
    let p = partition(&broker, &topic, index)?;
    let after = number(&query, "after_index")?.unwrap_or(0);
    let limit = number(&query, "limit")?.map_or(MAX_HEADS, |n| (n as usize).min(MAX_HEADS));
    reply(p.logged_heads(after, limit).map(|heads| {
        let heads: Vec<Value> = heads
            .iter()
            .map(|(raft_index, logged)| {
                let mut h = head_json(logged);
                h["raft_index"] = json!(raft_index);
                h
            })
            .collect();
        json!({ "topic": topic, "partition": index, "heads": heads })
    }))
}

/// Heads one `GET …/heads` answers at most.
const MAX_HEADS: usize = 1000;

/// `POST /audit/{topic}/{partition}/log-head`: the leader signs its committed head and logs
/// it now; answers with the head once its entry committed (409 when the last logged head
/// already covers the committed tree).
pub(super) async fn log_head(
    State(broker): State<Arc<Broker>>,
    Path((topic, index)): Path<(String, i32)>,
) -> Result<Response, Refusal> {
    let p = partition(&broker, &topic, index)?;
    if let Err(e) = p.check_leader() {
        return reply(Err(e));
    }
    let head = match p.audit_head_to_log() {
        Ok((Some(head), _)) => head,
        Ok((None, _)) => {
            let why = "the last logged head already covers every committed batch";
            return Err(Refusal(StatusCode::CONFLICT, why.into()));
        }
        Err(e) => return reply(Err(e)),
    };
    let logged = signed(&broker, &p, &head, now_ms());
    let done = crate::audit_heads::log_head(&broker, &p, &logged).await;
    reply(done.map(|()| head_json(&logged)))
}

/// `GET /audit/key`: the public key heads are signed with (404 without one).
pub(super) async fn key(State(broker): State<Arc<Broker>>) -> Result<Response, Refusal> {
    let signer = broker.audit_signer.as_ref().ok_or_else(|| {
        Refusal(
            StatusCode::NOT_FOUND,
            "no audit.signing.key.file: heads are not signed".into(),
        )
    })?;
    Ok(answer(
        StatusCode::OK,
        json!({"algorithm": "Ed25519", "public_key": hex(signer.public_key())}),
    ))
}

pub(super) async fn inclusion(
    State(broker): State<Arc<Broker>>,
    Path((topic, index)): Path<(String, i32)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, Refusal> {
    let p = partition(&broker, &topic, index)?;
    let (offset, size) = (required(&query, "offset")?, number(&query, "tree_size")?);
    reply(p.audit_inclusion(offset, size).map(|(proof, root)| {
        json!({
            "topic": topic, "partition": index, "offset": offset,
            "leaf_index": proof.leaf_index, "tree_size": proof.tree_size,
            "base_offset": proof.base_offset, "last_offset": proof.last_offset,
            "leaf_hash": hex(&proof.leaf_hash),
            "path": proof.path.iter().map(|h| hex(h)).collect::<Vec<_>>(),
            "root_hash": hex(&root),
        })
    }))
}

pub(super) async fn consistency(
    State(broker): State<Arc<Broker>>,
    Path((topic, index)): Path<(String, i32)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, Refusal> {
    let p = partition(&broker, &topic, index)?;
    let (from, to) = (required(&query, "from")?, required(&query, "to")?);
    reply(p.audit_consistency(from, to).map(|(proof, first, second)| {
        json!({
            "topic": topic, "partition": index, "from": from, "to": to,
            "from_root": hex(&first), "to_root": hex(&second),
            "proof": proof.iter().map(|h| hex(h)).collect::<Vec<_>>(),
        })
    }))
}
