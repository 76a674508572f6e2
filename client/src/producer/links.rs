//! The producer's connections: one [`Pipeline`] per broker, opened when a batch first
//! needs it (by a task of its own, so the producer's task never waits for the
//! network), replaced once it breaks, and tried again no sooner than a retry backoff
//! after a failed attempt. Produce requests in flight are counted per broker, against
//! `max_in_flight_requests`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use tokio::task::{Id, JoinError, JoinSet};
use tracing::{debug, warn};

use crate::cluster::Cluster;
use crate::connection::{Connection, Pipeline};
use crate::error::{Error, Result};

use super::accumulator::Accumulator;

/// The producer's link to one broker.
#[derive(Default)]
pub(super) struct NodeLink {
    pub(super) pipeline: Option<Pipeline>,
    /// How many connections were opened to this node: the id of the current one.
    pub(super) id: u64,
    pub(super) connecting: bool,
    /// After a failed attempt: no new one before this.
    pub(super) retry_at: Option<Instant>,
    /// Why the last attempt failed, for the batches that wait for this node.
    pub(super) last_error: Option<Error>,
    /// Produce requests sent to this node and not settled (on any of its connections).
    pub(super) in_flight: usize,
}

/// Every broker's link, and the connections being opened.
#[derive(Default)]
pub(super) struct Links {
    pub(super) nodes: HashMap<i32, NodeLink>,
    pub(super) connecting: JoinSet<(i32, Result<Pipeline>)>,
    /// Which node each connecting task is for, should the task fail.
    connecting_nodes: HashMap<Id, i32>,
}

impl Links {
    /// The id of the usable connection to `node`. Without one, starts opening one
    /// (unless under way, or the last attempt failed less than a backoff ago) and
    /// returns `None`: the caller tries again when it is open.
    pub(super) fn usable(
        &mut self,
        node: i32,
        cluster: &Arc<Cluster>,
        now: Instant,
    ) -> Option<u64> {
        let link = self.nodes.entry(node).or_default();
        if link.pipeline.as_ref().is_some_and(Pipeline::is_broken) {
            debug!(node, "produce connection broke; reconnecting");
            link.pipeline = None;
        }
        if link.pipeline.is_some() {
            return Some(link.id);
        }
        if !link.connecting && link.retry_at.is_none_or(|t| now >= t) {
            link.connecting = true;
            let cluster = Arc::clone(cluster);
            let task = self.connecting.spawn(async move {
                let opened = cluster.connect_node(node).await;
                (node, opened.and_then(Connection::into_pipeline))
            });
            self.connecting_nodes.insert(task.id(), node);
        }
        None
    }

    /// The open connection to `node`.
    pub(super) fn pipeline(&self, node: i32) -> Option<&Pipeline> {
        self.nodes.get(&node)?.pipeline.as_ref()
    }

    /// Produce requests in flight to `node`.
    pub(super) fn in_flight(&self, node: i32) -> usize {
        self.nodes.get(&node).map_or(0, |l| l.in_flight)
    }

    pub(super) fn last_error(&self, node: i32) -> Option<&Error> {
        self.nodes.get(&node)?.last_error.as_ref()
    }

    pub(super) fn request_started(&mut self, node: i32) {
        self.nodes.entry(node).or_default().in_flight += 1;
    }

    /// A request to `node` is settled; a connection it found broken is dropped.
    pub(super) fn request_finished(&mut self, node: i32) {
        let link = self.nodes.entry(node).or_default();
        link.in_flight = link.in_flight.saturating_sub(1);
        if link.pipeline.as_ref().is_some_and(Pipeline::is_broken) {
            link.pipeline = None;
        }
    }
}

impl Accumulator {
    /// A connection attempt ended: keep the connection, or note the failure and let
    /// the node be tried again after a backoff (and the leaders looked up again).
    pub(super) fn connected(
        &mut self,
        joined: std::result::Result<(Id, (i32, Result<Pipeline>)), JoinError>,
        now: Instant,
    ) {
        let (id, node, opened) = match joined {
            Ok((id, (node, opened))) => (id, node, opened),
            Err(e) => {
                let Some(&node) = self.links.connecting_nodes.get(&e.id()) else {
                    return;
                };
                let error = Error::Connect {
                    addr: format!("node {node}"),
                    reason: format!("the connecting task failed: {e}"),
                };
                (e.id(), node, Err(error))
            }
        };
        self.links.connecting_nodes.remove(&id);
        let link = self.links.nodes.entry(node).or_default();
        link.connecting = false;
        match opened {
            Ok(pipeline) => {
                link.pipeline = Some(pipeline);
                link.id += 1;
                link.retry_at = None;
                link.last_error = None;
            }
            Err(e) => {
                warn!(node, error = %e, "cannot connect to the partition leader");
                link.retry_at = Some(now + self.config.retry_backoff);
                link.last_error = Some(e);
                let topics: Vec<String> = self.topics.keys().cloned().collect();
                self.refresh_in_background(topics, now);
            }
        }
    }
}
