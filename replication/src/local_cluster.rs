//! N Raft nodes in one process over real loopback TCP (the real transport), each with
//! its own partition logs: what the cluster tests and the replication benchmark run.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use log_store::{Log, LogConfig};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::error::{ReplicationError, Result};
use crate::group::{discard_logger, Group, ProposeError};
use crate::node::{self, Committed, NodeHandle};
use crate::storage::LogStorage;
use crate::transport::{self, Transport};

/// Inbound messages queued per node before the transport's readers wait.
const INBOUND_QUEUE: usize = 8192;

/// A running in-process cluster.
pub struct LocalCluster {
    handles: HashMap<u64, NodeHandle>,
    stops: HashMap<u64, watch::Sender<bool>>,
    logs: HashMap<(u64, u64), Arc<RwLock<Log>>>,
}

impl LocalCluster {
    /// Starts `nodes` nodes (ids 1..=nodes), each replicating groups 1..=groups, with
    /// logs under `dir/node-<id>/p-<group>`, ticking every `tick`.
    pub async fn start(
        dir: &Path,
        nodes: u64,
        groups: u64,
        config: LogConfig,
        tick: Duration,
    ) -> Result<LocalCluster> {
        let mut listeners = HashMap::new();
        let mut addrs = HashMap::new();
        for id in 1..=nodes {
            let l = TcpListener::bind("127.0.0.1:0").await.map_err(|source| {
                ReplicationError::StateIo {
                    path: "127.0.0.1:0".into(),
                    source,
                }
            })?;
            let addr = l.local_addr().map_err(|source| ReplicationError::StateIo {
                path: "127.0.0.1:0".into(),
                source,
            })?;
            addrs.insert(id, addr);
            listeners.insert(id, l);
        }
        let voters: Vec<u64> = (1..=nodes).collect();
        let mut cluster = LocalCluster {
            handles: HashMap::new(),
            stops: HashMap::new(),
            logs: HashMap::new(),
        };
        for id in 1..=nodes {
            let (stop, stop_rx) = watch::channel(false);
            let transport = Transport::new(stop_rx.clone());
            for (&peer, &addr) in &addrs {
                if peer != id {
                    transport.add_peer(peer, addr);
                }
            }
            let (inbound_tx, inbound_rx) = mpsc::channel(INBOUND_QUEUE);
            if let Some(listener) = listeners.remove(&id) {
                tokio::spawn(transport::serve(
                    listener,
                    inbound_tx,
                    transport.stats().clone(),
                    stop_rx.clone(),
                ));
            }
            let mut map = HashMap::new();
            for g in 1..=groups {
                let path = dir.join(format!("node-{id}/p-{g}"));
                let log =
                    Log::open(&path, config.clone()).map_err(|source| ReplicationError::Log {
                        dir: path.clone(),
                        source,
                    })?;
                let log = Arc::new(RwLock::new(log));
                cluster.logs.insert((id, g), log.clone());
                let storage = LogStorage::new(log)?;
                map.insert(g, Group::open(id, storage, &voters, &discard_logger())?);
            }
            let (handle, _task) = node::start(map, transport, inbound_rx, tick, stop_rx);
            cluster.handles.insert(id, handle);
            cluster.stops.insert(id, stop);
        }
        Ok(cluster)
    }

    /// The ids of the nodes still running.
    pub fn live(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.handles.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// The log of `group` on node `id`.
    pub fn log(&self, id: u64, group: u64) -> Option<&Arc<RwLock<Log>>> {
        self.logs.get(&(id, group))
    }

    /// Stops node `id` (its task, transport and listener).
    pub fn stop(&mut self, id: u64) {
        if let Some(stop) = self.stops.remove(&id) {
            stop.send_replace(true);
        }
        self.handles.remove(&id);
    }

    /// Proposes `batch` to `group` through whichever live node leads it (following
    /// NotLeader hints, retrying while there is no leader) until it commits or
    /// `timeout` passes.
    pub async fn propose(
        &self,
        group: u64,
        batch: Vec<u8>,
        timeout: Duration,
    ) -> std::result::Result<Committed, ProposeError> {
        let deadline = Instant::now() + timeout;
        let live = self.live();
        let mut i = 0usize;
        let mut target = *live.first().ok_or(ProposeError::NotLeader { leader: 0 })?;
        loop {
            let Some(h) = self.handles.get(&target) else {
                return Err(ProposeError::NotLeader { leader: target });
            };
            let err = match h.propose(group, batch.clone()).await {
                Ok(c) => return Ok(c),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(err);
            }
            match err {
                ProposeError::NotLeader { leader } if self.handles.contains_key(&leader) => {
                    target = leader;
                }
                _ => {
                    // No leader yet (or it is stopped): let an election happen.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    i = (i + 1) % live.len();
                    target = live[i];
                }
            }
        }
    }

    /// Stops every node.
    pub fn shutdown(&mut self) {
        for (_, stop) in self.stops.drain() {
            stop.send_replace(true);
        }
        self.handles.clear();
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}
