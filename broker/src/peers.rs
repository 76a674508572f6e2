//! The calls other brokers send this one (`calls`), answered each in its own task by
//! the module that serves its kind. A call of an unknown kind, or an empty one, is
//! logged and left unanswered: the caller's wait times out, as when a message is lost.

use std::sync::Arc;

use replication::node::rpc::RpcCall;
use tokio::sync::mpsc;
use tracing::warn;

use crate::calls::{AUDIT_EVENTS, AUDIT_ROOT, VERIFY, WRITE_MARKERS};
use crate::shutdown::Shutdown;
use crate::Broker;

/// Answers the calls peers send this broker until shutdown.
pub async fn serve(
    broker: Arc<Broker>,
    mut calls: mpsc::Receiver<RpcCall>,
    mut shutdown: Shutdown,
) {
    loop {
        let call = tokio::select! {
            Some(call) = calls.recv() => call,
            _ = shutdown.wait() => return,
            else => return,
        };
        tokio::spawn(answer(broker.clone(), call));
    }
}

async fn answer(broker: Arc<Broker>, call: RpcCall) {
    let Some(&kind) = call.payload.first() else {
        warn!(peer = call.from, "an empty call from a peer");
        return;
    };
    let body = call.payload.slice(1..);
    let answered = match kind {
        WRITE_MARKERS => crate::txn::remote::answer_markers(&broker, body).await,
        VERIFY => crate::txn::remote::answer_verify(&broker, body),
        AUDIT_EVENTS => Ok(crate::audit_trail::answer_events_call(&broker, body).await),
        AUDIT_ROOT => Ok(crate::audit_heads::answer_root_call(&broker, &body)),
        other => Err(format!("unknown call {other}")),
    };
    match answered {
        Ok(bytes) => broker.cluster.node.rpc().answer(&call, bytes),
        Err(e) => warn!(peer = call.from, error = %e, "a call from a peer left unanswered"),
    }
}
