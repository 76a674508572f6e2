//! Calls between brokers, over the calls of the Raft transport
//! (`replication::node::rpc`: authenticated peers only). A call's payload is one byte
//! naming it, then its body; what each answers is said where it is made and served
//! (`peers` dispatches the calls a broker receives):
//!
//! - [`WRITE_MARKERS`], [`VERIFY`]: a transaction's markers and KIP-890's check
//!   (`txn::remote`);
//! - [`AUDIT_EVENTS`]: a batch of the audit trail for the audit topic's leader
//!   (`audit_trail`);
//! - [`AUDIT_ROOT`]: a replica's root of an audit tree of some size (`audit_heads`).

use std::time::Duration;

use bytes::Bytes;

use crate::Broker;

/// WriteTxnMarkers v1, from a transaction coordinator to a partition leader.
pub const WRITE_MARKERS: u8 = 1;
/// AddPartitionsToTxn v4 `verify_only`, from a partition leader to a coordinator.
pub const VERIFY: u8 = 2;
/// A batch of audit-trail events.
pub const AUDIT_EVENTS: u8 = 3;
/// A replica's root of an audit partition's tree of some size.
pub const AUDIT_ROOT: u8 = 4;

/// Sends `payload` (its kind byte first) to broker `node`; the answer's bytes.
pub async fn call(
    broker: &Broker,
    node: u64,
    payload: Bytes,
    timeout: Duration,
) -> Result<Bytes, String> {
    broker
        .cluster
        .node
        .rpc()
        .call(node, payload, timeout)
        .await
        .map_err(|e| e.to_string())
}

/// The answer of a call that either worked (0) or did not (1, then why, in UTF-8).
pub fn done_or_why(result: Result<(), String>) -> Bytes {
    match result {
        Ok(()) => Bytes::from_static(&[0]),
        Err(why) => Bytes::from([&[1u8][..], why.as_bytes()].concat()),
    }
}

/// What a [`done_or_why`] answer says.
pub fn read_done_or_why(node: u64, answer: &[u8]) -> Result<(), String> {
    match answer.split_first() {
        Some((0, _)) => Ok(()),
        Some((_, why)) => Err(format!("node {node}: {}", String::from_utf8_lossy(why))),
        None => Err(format!("node {node} answered nothing")),
    }
}
