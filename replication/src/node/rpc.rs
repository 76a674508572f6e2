//! Calls between nodes over the Raft transport: a node sends a payload to a peer and
//! waits for the peer's answer. The transport already authenticates every connection
//! (a node id, bound to a certificate with TLS), so a call's sender is a peer of the
//! cluster; the payloads are the owner's (the broker sends Kafka requests it answers
//! for its peers, such as transaction markers for the partitions it leads).
//!
//! A call travels as a Raft message of the reserved group [`RPC_GROUP`], which no
//! Raft group uses: `index` carries the call's id, `commit` whether it is a request (0)
//! or an answer (1), `context` the payload. The node's task hands such messages to
//! [`Rpc::deliver`] instead of a group. Like every message, a call may be dropped (a
//! full queue, a peer down): the caller's wait then ends at its timeout, and the caller
//! retries. Requests that arrive while [`INCOMING_CALLS`] are queued unanswered are
//! dropped the same way.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use raft::eraftpb::Message;
use tokio::sync::{mpsc, oneshot};

use crate::transport::Transport;

/// The group id of calls between nodes; no Raft group has it.
pub const RPC_GROUP: u64 = u64::MAX;
/// Requests from peers queued for the owner before more are dropped.
pub const INCOMING_CALLS: usize = 1024;
/// Calls of this node waiting for an answer before more are refused.
pub const PENDING_CALLS: usize = 4096;

/// Why a call got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    #[error("node {peer} did not answer within {timeout:?}")]
    Timeout { peer: u64, timeout: Duration },
    #[error("{PENDING_CALLS} calls are already waiting for answers")]
    Busy,
}

/// A request from a peer, answered with [`Rpc::answer`].
#[derive(Debug)]
pub struct RpcCall {
    pub from: u64,
    pub payload: Bytes,
    id: u64,
}

/// This node's calls: those it waits on, and the requests from peers for its owner.
#[derive(Debug)]
pub struct Rpc {
    node_id: u64,
    transport: Transport,
    next_id: AtomicU64,
    pending: Mutex<HashMap<u64, oneshot::Sender<Bytes>>>,
    incoming: mpsc::Sender<RpcCall>,
    /// Taken once by the owner ([`Rpc::take_incoming`]).
    incoming_rx: Mutex<Option<mpsc::Receiver<RpcCall>>>,
}

fn message(from: u64, to: u64, id: u64, answer: bool, payload: Bytes) -> Message {
    Message {
        from,
        to,
        index: id,
        commit: u64::from(answer),
        context: payload,
        ..Default::default()
    }
}

impl Rpc {
    pub(super) fn new(node_id: u64, transport: Transport) -> Rpc {
        let (incoming, rx) = mpsc::channel(INCOMING_CALLS);
        Rpc {
            node_id,
            transport,
            next_id: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
            incoming,
            incoming_rx: Mutex::new(Some(rx)),
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Bytes>>> {
        // Each change is one map operation: a panic cannot leave it half-changed.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The requests peers send this node; `None` after the first call.
    pub fn take_incoming(&self) -> Option<mpsc::Receiver<RpcCall>> {
        self.incoming_rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// Sends `payload` to `peer` and waits at most `timeout` for its answer.
    pub async fn call(
        &self,
        peer: u64,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, RpcError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self.pending();
            if pending.len() >= PENDING_CALLS {
                return Err(RpcError::Busy);
            }
            pending.insert(id, tx);
        }
        self.transport
            .send(RPC_GROUP, message(self.node_id, peer, id, false, payload));
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => Ok(answer),
            _ => {
                self.pending().remove(&id);
                Err(RpcError::Timeout { peer, timeout })
            }
        }
    }

    /// Answers a peer's request.
    pub fn answer(&self, call: &RpcCall, payload: Bytes) {
        self.transport.send(
            RPC_GROUP,
            message(self.node_id, call.from, call.id, true, payload),
        );
    }

    /// A message of [`RPC_GROUP`] from the transport: an answer to one of this node's
    /// calls (an unknown or late one is ignored), or a request for the owner.
    pub(super) fn deliver(&self, m: Message) {
        if m.commit == 1 {
            if let Some(waiting) = self.pending().remove(&m.index) {
                let _ = waiting.send(m.context);
            }
            return;
        }
        let call = RpcCall {
            from: m.from,
            payload: m.context,
            id: m.index,
        };
        if self.incoming.try_send(call).is_err() {
            tracing::warn!(
                peer = m.from,
                "a call from a peer was dropped: too many queued"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::TransportSecurity;

    #[tokio::test]
    async fn an_answer_reaches_its_call_and_a_missing_one_times_out() {
        let (_stop, shutdown) = tokio::sync::watch::channel(false);
        let rpc = std::sync::Arc::new(Rpc::new(
            1,
            Transport::new(shutdown, TransportSecurity::plaintext("c", 1).unwrap()),
        ));
        let caller = rpc.clone();
        let call = tokio::spawn(async move {
            caller
                .call(2, Bytes::from_static(b"ping"), Duration::from_secs(5))
                .await
        });
        // The transport has no peer 2: answer as peer 2 would, by hand.
        let id = loop {
            if let Some(&id) = rpc.pending().keys().next() {
                break id;
            }
            tokio::task::yield_now().await;
        };
        rpc.deliver(message(2, 1, id, true, Bytes::from_static(b"pong")));
        assert_eq!(call.await.unwrap().unwrap(), Bytes::from_static(b"pong"));
        let lost = rpc.call(2, Bytes::new(), Duration::from_millis(10)).await;
        assert_eq!(
            lost,
            Err(RpcError::Timeout {
                peer: 2,
                timeout: Duration::from_millis(10)
            })
        );
        assert!(rpc.pending().is_empty());
        let mut incoming = rpc.take_incoming().unwrap();
        assert!(rpc.take_incoming().is_none());
        rpc.deliver(message(3, 1, 9, false, Bytes::from_static(b"req")));
        let req = incoming.recv().await.unwrap();
        assert_eq!((req.from, req.id, &req.payload[..]), (3, 9, &b"req"[..]));
    }
}
