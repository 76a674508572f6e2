//! Sealing an audit partition's first batches on the admin port, once an exporter
//! archived them (`strata audit export --seal`), so that DeleteRecords, retention and
//! compaction may then remove or rewrite them (`log_store::log::AuditSeal`).
//!
//! - `GET /audit/{topic}/{partition}/seal`: the seal in force on this replica:
//!   `{tree_size, next_offset, root_hash, frontier}` (the frontier: the hashes of the
//!   complete subtrees that make up the sealed leaves, largest first, which an export
//!   starting there needs); zeros and an empty frontier before any seal.
//! - `POST /audit/{topic}/{partition}/seal?tree_size=N&root_hash=HEX` (a change: ALTER
//!   on the Cluster): the leader seals its first `N` committed leaves, given the root
//!   the exporter computed from the batches it archived (400 when it is not the tree's,
//!   or when those leaves are sealed already); answers with the new seal once its entry
//!   committed.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use log_store::log::AuditSeal;
use log_store::merkle::{self, to_hex as hex, Hash};
use serde_json::{json, Value};

use super::audit::{partition, reply, required, Refusal};
use crate::Broker;

fn seal_json(topic: &str, index: i32, seal: Option<(AuditSeal, Vec<Hash>)>) -> Value {
    let (seal, frontier) = seal.unwrap_or((
        AuditSeal {
            tree_size: 0,
            next_offset: 0,
            root: merkle::empty_root(),
        },
        Vec::new(),
    ));
    json!({
        "topic": topic, "partition": index,
        "tree_size": seal.tree_size, "next_offset": seal.next_offset,
        "root_hash": hex(&seal.root),
        "frontier": frontier.iter().map(|h| hex(h)).collect::<Vec<_>>(),
    })
}

pub(super) async fn current(
    State(broker): State<Arc<Broker>>,
    Path((topic, index)): Path<(String, i32)>,
) -> Result<Response, Refusal> {
    let p = partition(&broker, &topic, index)?;
    reply(p.audit_seal().map(|s| seal_json(&topic, index, s)))
}

pub(super) async fn seal(
    State(broker): State<Arc<Broker>>,
    Path((topic, index)): Path<(String, i32)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, Refusal> {
    let p = partition(&broker, &topic, index)?;
    let tree_size = required(&query, "tree_size")?;
    let root = query
        .get("root_hash")
        .and_then(|h| merkle::from_hex(h))
        .ok_or_else(|| {
            let why = "root_hash=HEX (64 hex digits) is required";
            Refusal(StatusCode::BAD_REQUEST, why.into())
        })?;
    let sealed = p.seal_audit(tree_size, root).await;
    reply(sealed.map(|s| seal_json(&topic, index, Some(s))))
}
