//! N Raft nodes in one process over real loopback TCP (the real transport), each with
//! its own partition logs: what the cluster tests and the replication benchmark run.
//! Nodes can be stopped (their task, listener and connections end; the files stay),
//! restarted from their files on the same address, and added; replicas can be added
//! to a node for a membership change. Nodes talk plaintext with no cluster id unless
//! started with [`LocalCluster::start_with_security`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use log_store::{Log, LogConfig};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::error::{ReplicationError, Result};
use crate::group::{discard_logger, Group, GroupStatus, ProposeError};
use crate::node::{self, Ack, Committed, NodeHandle};
use crate::storage::LogStorage;
use crate::transport::{self, SecurityError, Transport, TransportSecurity};

/// Inbound messages queued per node before the transport's readers wait.
const INBOUND_QUEUE: usize = 8192;

struct Running {
    handle: NodeHandle,
    stop: watch::Sender<bool>,
    task: JoinHandle<crate::Result<()>>,
    /// The task accepting peers' connections; it owns the listener.
    serve: JoinHandle<()>,
    transport: Transport,
}

/// The transport identity of node `id` (a cluster id, TLS material).
pub type SecurityOf = Arc<dyn Fn(u64) -> Result<TransportSecurity, SecurityError> + Send + Sync>;

/// A running in-process cluster.
pub struct LocalCluster {
    dir: PathBuf,
    security: SecurityOf,
    config: LogConfig,
    tick: Duration,
    addrs: HashMap<u64, SocketAddr>,
    /// Groups each node replicates (kept across restarts).
    replicas: HashMap<u64, Vec<u64>>,
    running: HashMap<u64, Running>,
    /// The address of each stopped node, held by a bound socket that does not listen:
    /// peers' connections are refused, and neither a port-0 bind nor an outgoing
    /// connection can take the port before the node restarts on it.
    held: HashMap<u64, TcpSocket>,
    logs: HashMap<(u64, u64), Arc<RwLock<Log>>>,
}

fn bind_err(addr: &str) -> impl Fn(std::io::Error) -> ReplicationError + '_ {
    move |source| ReplicationError::Network {
        what: format!("binding {addr}"),
        source,
    }
}

impl LocalCluster {
    /// Starts `nodes` nodes (ids 1..=nodes), each replicating groups 1..=groups with
    /// every node a voter, with logs under `dir/node-<id>/p-<group>`, ticking every
    /// `tick`.
    pub async fn start(
        dir: &Path,
        nodes: u64,
        groups: u64,
        config: LogConfig,
        tick: Duration,
    ) -> Result<LocalCluster> {
        let plaintext: SecurityOf = Arc::new(|id| TransportSecurity::plaintext("", id));
        Self::start_with_security(dir, nodes, groups, config, tick, plaintext).await
    }

    /// [`LocalCluster::start`] with each node's transport identity from `security`
    /// (also for nodes added or restarted later).
    pub async fn start_with_security(
        dir: &Path,
        nodes: u64,
        groups: u64,
        config: LogConfig,
        tick: Duration,
        security: SecurityOf,
    ) -> Result<LocalCluster> {
        let mut cluster = LocalCluster {
            dir: dir.to_path_buf(),
            security,
            config,
            tick,
            addrs: HashMap::new(),
            replicas: HashMap::new(),
            running: HashMap::new(),
            held: HashMap::new(),
            logs: HashMap::new(),
        };
        let mut listeners = HashMap::new();
        for id in 1..=nodes {
            let l = TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(bind_err("127.0.0.1:0"))?;
            cluster
                .addrs
                .insert(id, l.local_addr().map_err(bind_err("127.0.0.1:0"))?);
            listeners.insert(id, l);
            cluster.replicas.insert(id, (1..=groups).collect());
        }
        let voters: Vec<u64> = (1..=nodes).collect();
        for (id, listener) in listeners {
            cluster.spawn(id, listener, &voters, false)?;
        }
        Ok(cluster)
    }

    fn open_replica(&mut self, id: u64, group: u64, voters: &[u64], rejoin: bool) -> Result<Group> {
        let path = self.dir.join(format!("node-{id}/p-{group}"));
        let log =
            Log::open(&path, self.config.clone()).map_err(|source| ReplicationError::Log {
                dir: path.clone(),
                source,
            })?;
        let log = Arc::new(RwLock::new(log));
        self.logs.insert((id, group), log.clone());
        let storage = LogStorage::new(log)?;
        let mut group = Group::open(id, storage, voters, &discard_logger())?;
        if rejoin {
            group.start_rejoin(false)?;
        }
        Ok(group)
    }

    fn spawn(
        &mut self,
        id: u64,
        listener: TcpListener,
        voters: &[u64],
        rejoin: bool,
    ) -> Result<()> {
        let (stop, stop_rx) = watch::channel(false);
        let transport = Transport::new(stop_rx.clone(), (self.security)(id)?);
        for (&peer, &addr) in &self.addrs {
            if peer != id {
                transport.add_peer(peer, addr);
            }
        }
        let (inbound_tx, inbound_rx) = mpsc::channel(INBOUND_QUEUE);
        let serve = tokio::spawn(transport::serve(listener, inbound_tx, transport.clone()));
        let mut map = HashMap::new();
        for g in self.replicas.get(&id).cloned().unwrap_or_default() {
            map.insert(g, self.open_replica(id, g, voters, rejoin)?);
        }
        let (handle, task) =
            node::start(id, map, transport.clone(), inbound_rx, self.tick, stop_rx);
        self.running.insert(
            id,
            Running {
                handle,
                stop,
                task,
                serve,
                transport,
            },
        );
        Ok(())
    }

    /// The ids of the nodes running.
    pub fn live(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.running.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// The handle of running node `id`.
    pub fn handle(&self, id: u64) -> Option<&NodeHandle> {
        self.running.get(&id).map(|r| &r.handle)
    }

    /// The transport counts of running node `id`.
    pub fn transport_stats(&self, id: u64) -> Option<Arc<crate::transport::TransportStats>> {
        self.running.get(&id).map(|r| r.transport.stats().clone())
    }

    /// The Raft address of node `id`.
    pub fn addr(&self, id: u64) -> Option<SocketAddr> {
        self.addrs.get(&id).copied()
    }

    /// The log of `group` on node `id` (the latest opened, also after a stop).
    pub fn log(&self, id: u64, group: u64) -> Option<&Arc<RwLock<Log>>> {
        self.logs.get(&(id, group))
    }

    /// Stops node `id` (its task, transport and listener) and waits for its task to
    /// end; its files stay for [`LocalCluster::restart`], and its address stays reserved
    /// for it.
    pub async fn stop(&mut self, id: u64) {
        if let Some(r) = self.running.remove(&id) {
            r.stop.send_replace(true);
            let _ = r.task.await;
            // The listener is closed once its task has ended.
            let _ = r.serve.await;
        }
        if let Some(&addr) = self.addrs.get(&id) {
            if let Some(socket) = hold(addr) {
                self.held.insert(id, socket);
            }
        }
    }

    /// Starts stopped node `id` again from its files, on its old address.
    pub async fn restart(&mut self, id: u64) -> Result<()> {
        self.restart_with(id, &[], false).await
    }

    /// Starts stopped node `id` again after deleting its files, as a node whose disk
    /// was replaced: its groups start from the full voter list, rejoining
    /// ([`Group::start_rejoin`]) when `rejoin`.
    pub async fn restart_wiped(&mut self, id: u64, rejoin: bool) -> Result<()> {
        let dir = self.dir.join(format!("node-{id}"));
        std::fs::remove_dir_all(&dir).map_err(|source| ReplicationError::StateIo {
            path: dir.clone(),
            source,
        })?;
        let mut voters: Vec<u64> = self.addrs.keys().copied().collect();
        voters.sort_unstable();
        self.restart_with(id, &voters, rejoin).await
    }

    async fn restart_with(&mut self, id: u64, voters: &[u64], rejoin: bool) -> Result<()> {
        let Some(addr) = self.addrs.get(&id).copied() else {
            return Err(ReplicationError::Network {
                what: format!("restarting node {id}"),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such node"),
            });
        };
        let listener = match self.held.remove(&id) {
            Some(socket) => socket.listen(1024),
            None => TcpListener::bind(addr).await,
        }
        .map_err(bind_err("the node's old address"))?;
        self.spawn(id, listener, voters, rejoin)
    }

    /// Starts a new node `id` with no groups; every running node learns its address.
    pub async fn add_node(&mut self, id: u64) -> Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(bind_err("127.0.0.1:0"))?;
        let addr = listener.local_addr().map_err(bind_err("127.0.0.1:0"))?;
        for r in self.running.values() {
            r.transport.add_peer(id, addr);
        }
        self.addrs.insert(id, addr);
        self.replicas.insert(id, Vec::new());
        self.spawn(id, listener, &[], false)
    }

    /// Opens an empty, uninitialized replica of `group` on running node `id`, ready to
    /// be added by a membership change (the leader's snapshot initializes it).
    pub async fn add_replica(&mut self, id: u64, group: u64) -> Result<()> {
        let replica = self.open_replica(id, group, &[], false)?;
        let Some(r) = self.running.get(&id) else {
            return Err(ReplicationError::Network {
                what: format!("adding group {group} to node {id}"),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "node not running"),
            });
        };
        r.handle
            .add_group(group, replica)
            .await
            .map_err(|e| ReplicationError::Network {
                what: format!("adding group {group} to node {id}"),
                source: std::io::Error::other(e.to_string()),
            })?;
        self.replicas.entry(id).or_default().push(group);
        Ok(())
    }

    /// The status of `group` on every running node.
    pub async fn status(&self, group: u64) -> Vec<GroupStatus> {
        let mut out = Vec::new();
        for id in self.live() {
            if let Some(h) = self.handle(id) {
                out.extend(h.status().await.into_iter().filter(|s| s.group == group));
            }
        }
        out
    }

    /// The running node that leads `group` now, if one does.
    pub async fn leader(&self, group: u64) -> Option<u64> {
        self.status(group)
            .await
            .into_iter()
            .find(|s| s.leader == s.id)
            .map(|s| s.id)
    }

    /// Proposes `batch` to `group` through whichever live node leads it (following
    /// NotLeader hints, retrying while there is no leader) until it commits or
    /// `timeout` passes.
    pub async fn propose(
        &self,
        group: u64,
        batch: impl Into<bytes::Bytes>,
        timeout: Duration,
    ) -> std::result::Result<Committed, ProposeError> {
        let batch = batch.into();
        let deadline = Instant::now() + timeout;
        let live = self.live();
        let mut i = 0usize;
        let mut target = *live.first().ok_or(ProposeError::NotLeader { leader: 0 })?;
        loop {
            let Some(h) = self.handle(target) else {
                return Err(ProposeError::NotLeader { leader: target });
            };
            let err = match h.propose(group, batch.clone(), Ack::Quorum).await {
                Ok(c) => return Ok(c),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(err);
            }
            match err {
                ProposeError::NotLeader { leader } if self.running.contains_key(&leader) => {
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
        for (_, r) in self.running.drain() {
            r.stop.send_replace(true);
        }
    }
}

/// Binds `addr` without listening, once the stopped node's serve task has ended (so its
/// listener is closed); `None` should that fail, and then a restart binds the address
/// afresh.
fn hold(addr: SocketAddr) -> Option<TcpSocket> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .ok()?;
    // Connections the node accepted may linger on the port (TIME_WAIT); like the
    // listener itself, the reserving socket shares the port with them.
    socket.set_reuseaddr(true).ok()?;
    socket.bind(addr).ok()?;
    Some(socket)
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}
