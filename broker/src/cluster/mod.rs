//! This broker as one node of a Strata cluster (a single broker is a cluster of one).
//!
//! `strata serve --node-id N --raft-addr H:P --peers 1=H:P,2=H:P,3=H:P` starts it. The
//! broker then runs one Raft node (`replication::node`) that drives
//!
//! - the **controller group** ([`metadata::CONTROLLER_GROUP`]), whose voters are the
//!   lowest `MAX_CONTROLLER_VOTERS` peer ids and whose committed records are the
//!   cluster metadata ([`metadata`]): brokers and their Kafka addresses, topics, their
//!   partitions' Raft groups and replicas, topic configs, reported partition leaders;
//! - one **Raft group per partition** it holds a replica of (the partition log is the
//!   group's Raft log; [`crate::partition::Partition::open_replica`]).
//!
//! Every broker applies the controller's committed records in order ([`Cluster::run`])
//! and reconciles its topics with them: it opens the replicas placed on it, knows the
//! others as remote, closes and removes the replicas of deleted topics. Requests that
//! change metadata (CreateTopics, DeleteTopics, CreatePartitions, config changes) may
//! arrive at any broker: it proposes the record to the controller (raft-rs forwards a
//! follower's proposal to the leader), then waits until the record's outcome appears
//! in its own applied state, re-sending it while it does not (records carry a request
//! id and are applied once). A broker registers its Kafka address the same way at
//! start, and reports each partition leadership it wins, so every broker can answer
//! Metadata for every partition.
//!
//! Partition moves are carried out by each partition's leader ([`moves`]).
//!
//! The controller's snapshots are checkpoint records in its own log (KRaft keeps them in
//! separate files; see docs/cluster.md); placement is rack-unaware.

mod apply;
mod error;
mod isr;
pub mod metadata;
pub mod moves;
mod replicas;
mod standing;
mod topic_changes;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use log_store::{Log, LogConfig};
use replication::group::{discard_logger, Group, GroupStatus};
use replication::node::{self, GroupView, NodeHandle};
use replication::transport::{self, PeerAddr, Transport, TransportSecurity};
use replication::LogStorage;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use crate::config::ClusterSettings;
use crate::error::{BrokerError, Result};
use crate::identity::{IdentityFile, Standing};
use crate::partition::InSyncReplicas;
pub use error::ClusterError;
use metadata::{MetaRecord, MetadataState, CONTROLLER_GROUP};

/// The Raft tick: elections after 10–20 ticks, heartbeats every 2.
pub const RAFT_TICK: Duration = Duration::from_millis(50);
/// Messages from peers queued before the transport stops reading.
const INBOUND_QUEUE: usize = 8192;
/// How often a request to the controller is sent again while its outcome is unknown.
const RESUBMIT_INTERVAL: Duration = Duration::from_millis(500);
/// How long InitProducerId waits for a block of producer ids from the controller.
const PRODUCER_IDS_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a metadata change waits for the controller before giving up.
pub const CONTROLLER_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest controller record (a checkpoint holds the whole state).
const CONTROLLER_MAX_RECORD_BYTES: u32 = 256 << 20;
/// Directory of the controller group's log under the data directory.
pub const CONTROLLER_DIR: &str = "cluster-controller";

/// The Raft transport to every peer, and its listener when this node has one: the
/// transport and the queue of messages it received. Every connection starts with a
/// handshake naming the cluster id and the node; with `RAFT:SSL` in
/// `listener.security.protocol.map` it runs mutual TLS, each peer's certificate valid
/// for the host `peers` gives it.
async fn start_transport(
    settings: &ClusterSettings,
    shutdown: &watch::Receiver<bool>,
) -> Result<(Transport, mpsc::Receiver<transport::Envelope>)> {
    let (cluster_id, me) = (settings.cluster_id.as_str(), settings.node_id);
    let security = match &settings.raft_tls {
        Some(tls) => {
            TransportSecurity::from_pem_files(cluster_id, me, &tls.keystore, &tls.truststore)
        }
        None => TransportSecurity::plaintext(cluster_id, me),
    }
    .map_err(|e| BrokerError::Config(format!("the Raft listener's TLS: {e}")))?;
    let transport = Transport::new(shutdown.clone(), security);
    for (&id, addr) in &settings.peers {
        if id != settings.node_id {
            let resolved = resolve(addr).await?;
            let host = addr.rsplit_once(':').map_or(addr.as_str(), |(h, _)| h);
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let peer = PeerAddr::named(host, resolved).map_err(cluster_err)?;
            transport.add_peer(id, peer);
        }
    }
    let (inbound_tx, inbound_rx) = mpsc::channel(INBOUND_QUEUE);
    if let Some(addr) = &settings.raft_addr {
        let bind_addr = resolve(addr).await?;
        let listener = TcpListener::bind(bind_addr)
            .await
            .map_err(|source| BrokerError::Bind {
                what: "raft-addr".into(),
                addr: bind_addr,
                source,
            })?;
        tokio::spawn(transport::serve(listener, inbound_tx, transport.clone()));
    }
    Ok((transport, inbound_rx))
}

/// Opens the controller group's log under the data directory.
fn open_controller_log(settings: &ClusterSettings, data_dir: &Path) -> Result<Log> {
    let config = LogConfig {
        segment_bytes: settings.controller_segment_bytes,
        max_message_bytes: CONTROLLER_MAX_RECORD_BYTES,
        ..LogConfig::default()
    };
    Log::open(data_dir.join(CONTROLLER_DIR), config).map_err(|source| BrokerError::Log {
        topic: CONTROLLER_DIR.into(),
        partition: 0,
        source,
    })
}

/// The first id of this node's controller requests, unique across nodes and restarts:
/// the node id, then the start time in microseconds.
fn first_request_id(me: u64) -> u64 {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    (me << 48) ^ (micros & ((1 << 48) - 1))
}

/// This node's part of the cluster.
pub struct Cluster {
    pub node_id: u64,
    pub node: NodeHandle,
    pub settings: ClusterSettings,
    state: RwLock<MetadataState>,
    /// Bumped after every applied record (and its reconciliation).
    applied: watch::Sender<u64>,
    controller: watch::Receiver<GroupView>,
    controller_log: Arc<RwLock<Log>>,
    next_request: AtomicU64,
    transport: Transport,
    /// Stops the node and the transport: after the broker drained its connections and
    /// handed its leaderships over, before it closes the logs.
    stop: watch::Sender<bool>,
    /// In-sync replicas of the groups this node leads ([`Cluster::track_isr`]).
    isr: Arc<InSyncReplicas>,
    /// The producer-id block being handed out: (next, end).
    producer_ids: tokio::sync::Mutex<(i64, i64)>,
    /// Serializes topic changes from clients: one at a time goes to the controller.
    topic_change: tokio::sync::Mutex<()>,
    /// The Raft node's task, until the broker takes it to supervise it.
    node_task: std::sync::Mutex<Option<NodeTask>>,
    /// This node's data directory identity ([`crate::identity`]; see [`standing`]).
    identity: std::sync::Mutex<IdentityFile>,
    /// The incarnation of this node's data directory.
    incarnation: String,
}

/// The Raft node's task: it ends at shutdown or with a group's storage error.
pub type NodeTask = tokio::task::JoinHandle<std::result::Result<(), replication::ReplicationError>>;

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cluster(node {})", self.node_id)
    }
}

fn cluster_err(what: impl std::fmt::Display) -> BrokerError {
    BrokerError::Cluster(what.to_string())
}

async fn resolve(addr: &str) -> Result<SocketAddr> {
    tokio::net::lookup_host(addr)
        .await
        .map_err(|e| cluster_err(format!("raft address {addr:?}: {e}")))?
        .next()
        .ok_or_else(|| cluster_err(format!("raft address {addr:?} resolves to nothing")))
}

impl Cluster {
    /// The Raft transport's counts (for `/metrics`).
    pub fn transport_stats(&self) -> &std::sync::Arc<replication::transport::TransportStats> {
        self.transport.stats()
    }

    /// The Raft node's task, once (the broker supervises it: its end before shutdown is
    /// a failure of every partition this node holds).
    pub fn take_node_task(&self) -> Option<NodeTask> {
        self.node_task
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// Binds the Raft listener, connects to the peers and starts the node with the
    /// controller group. Partition groups are added as the metadata is applied
    /// ([`Cluster::run`]).
    /// A new data directory (`identity` standing [`Standing::Joining`]) starts its
    /// controller replica rejoining, with fresh elections allowed (see
    /// [`standing`]).
    pub async fn start(
        settings: ClusterSettings,
        data_dir: &Path,
        identity: IdentityFile,
    ) -> Result<Arc<Cluster>> {
        let (stop, shutdown) = watch::channel(false);
        let me = settings.node_id;
        if !settings.peers.contains_key(&me) {
            return Err(cluster_err(format!(
                "--peers does not list this node ({me})"
            )));
        }
        let (transport, inbound_rx) = start_transport(&settings, &shutdown).await?;
        let log = Arc::new(RwLock::new(open_controller_log(&settings, data_dir)?));
        let storage = LogStorage::new(log.clone()).map_err(cluster_err)?;
        let voters = settings.controller_voters();
        let mut controller =
            Group::open(me, storage, &voters, &discard_logger()).map_err(cluster_err)?;
        if identity.identity().standing == Standing::Joining {
            controller.start_rejoin(true).map_err(cluster_err)?;
        }
        let incarnation = identity.identity().incarnation.clone();
        let groups = HashMap::from([(CONTROLLER_GROUP, controller)]);
        let (node, node_task) = node::start(
            me,
            groups,
            transport.clone(),
            inbound_rx,
            RAFT_TICK,
            shutdown,
        );
        let view = node
            .watch(CONTROLLER_GROUP)
            .await
            .ok_or_else(|| cluster_err("the node did not start the controller group"))?;
        info!(
            node = me,
            ?voters,
            peers = settings.peers.len(),
            "cluster node started"
        );
        Ok(Arc::new(Cluster {
            node_id: me,
            node,
            settings,
            state: RwLock::new(MetadataState::new()),
            applied: watch::channel(0).0,
            controller: view,
            controller_log: log,
            next_request: AtomicU64::new(first_request_id(me)),
            transport,
            stop,
            isr: Arc::default(),
            producer_ids: tokio::sync::Mutex::new((0, 0)),
            topic_change: tokio::sync::Mutex::new(()),
            node_task: std::sync::Mutex::new(Some(node_task)),
            identity: std::sync::Mutex::new(identity),
            incarnation,
        }))
    }

    /// Stops the Raft node and its transport (the last step of a broker's shutdown),
    /// waits up to `timeout` for the node's task to end, then seals the controller's
    /// log, so the next start skips its recovery scan. Returns whether the node
    /// stopped in time: only then may the partitions' logs be sealed too (a node still
    /// running would fail on a sealed log).
    pub async fn stop(&self, timeout: Duration) -> bool {
        self.stop.send_replace(true);
        if tokio::time::timeout(timeout, self.node.stopped())
            .await
            .is_err()
        {
            warn!(
                ?timeout,
                "the Raft node did not stop in time; its logs stay unsealed"
            );
            return false;
        }
        let mut log = self
            .controller_log
            .write()
            .unwrap_or_else(|p| p.into_inner());
        if let Err(e) = log.seal() {
            warn!(error = %e, "sealing the controller log; the next start recovers it");
        }
        true
    }

    /// Hands the leadership of `group`, if this node holds it, to the most caught-up
    /// other voter (a replica that must not serve: its audit tree diverged). Returns
    /// whether a transfer was asked for.
    pub async fn hand_over(&self, group: u64) -> bool {
        let status = self.node.status().await;
        let Some(to) = status
            .iter()
            .find(|s| s.group == group && s.leader == self.node_id)
            .and_then(successor)
        else {
            return false;
        };
        self.node.transfer_leader(group, to).await.is_ok()
    }

    /// Graceful shutdown's first step: hands every leadership this node holds to the
    /// most caught-up other voter, and waits (at most `timeout`) until it holds none,
    /// so clients see a leader change rather than an election timeout.
    pub async fn hand_over_leadership(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut asked = std::collections::HashSet::new();
        loop {
            let led: Vec<GroupStatus> = self
                .node
                .status()
                .await
                .into_iter()
                // A group with no other voter (a one-voter group) has nobody to take
                // over: waiting for it would only spend the whole timeout.
                .filter(|s| s.leader == self.node_id && !s.joint)
                .filter(|s| s.voters.iter().any(|&v| v != self.node_id))
                .collect();
            if led.is_empty() || Instant::now() >= deadline {
                if !led.is_empty() {
                    warn!(
                        groups = led.len(),
                        "shutting down while still leading; followers will elect after a timeout"
                    );
                }
                return;
            }
            for s in &led {
                // A transfer that raft-rs gave up on is asked for again after a while.
                if !asked.insert((s.group, s.term)) {
                    continue;
                }
                if let Some(to) = successor(s) {
                    let _ = self.node.transfer_leader(s.group, to).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The Raft transport's TLS material, when it runs TLS (for reloading).
    pub fn raft_tls(&self) -> Option<replication::transport::TransportTls> {
        self.transport.security().tls().cloned()
    }

    /// The applied metadata (a read guard: do not hold it across an await).
    pub fn state(&self) -> RwLockReadGuard<'_, MetadataState> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether broker `id` is up as far as this node can tell: itself, or a peer heard
    /// from within an election timeout.
    pub fn is_alive(&self, id: u64) -> bool {
        id == self.node_id || self.node.is_alive(id)
    }

    /// The controller leader this node knows, if any.
    pub fn controller_leader(&self) -> Option<u64> {
        Some(self.controller.borrow().leader).filter(|&l| l != 0)
    }

    /// The cluster id clients are told, once the controller has one.
    pub fn cluster_id(&self) -> Option<String> {
        self.state().cluster_id.clone()
    }

    /// Messages dropped because a peer's queue was full or it was unreachable.
    pub fn transport_dropped(&self) -> u64 {
        self.transport
            .stats()
            .dropped
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The leader of partition group `group` as far as this node knows: its own replica's
    /// view first, else the controller's latest report.
    pub fn leader_of(&self, group: u64, local: Option<GroupView>) -> Option<u64> {
        let reported = self.state().leaders.get(&group).copied();
        match (local, reported) {
            (Some(v), Some((l, t))) if t > v.term => Some(l),
            // A replica here: its own view, even "unknown" (an election under way):
            // an older report may name a leader that lost its quorum.
            (Some(v), _) => Some(v.leader),
            (None, Some((l, _))) => Some(l),
            (None, None) => None,
        }
        .filter(|&l| l != 0)
    }

    /// A fresh request id.
    pub fn request_id(&self) -> u64 {
        self.next_request.fetch_add(1, Ordering::Relaxed)
    }

    /// Hands `record` to the controller leader (fire and forget).
    async fn send(&self, record: &MetaRecord) {
        let batch = encode_record(record);
        if let Err(e) = self.node.forward(CONTROLLER_GROUP, batch).await {
            debug!(error = %e, "controller record not sent (no leader yet)");
        }
    }

    /// Submits a request record and waits until it is applied here: its outcome.
    /// Sent again every `RESUBMIT_INTERVAL` until then (applied once: its request id).
    pub async fn submit(
        &self,
        record: MetaRecord,
        timeout: Duration,
    ) -> std::result::Result<(), ClusterError> {
        let Some(request) = record.request() else {
            self.send(&record).await;
            return Ok(());
        };
        let deadline = Instant::now() + timeout;
        let mut applied = self.applied.subscribe();
        loop {
            self.send(&record).await;
            let resend_at = Instant::now() + RESUBMIT_INTERVAL;
            loop {
                if let Some(outcome) = self.state().outcome(request) {
                    return outcome.clone().map_err(ClusterError::Refused);
                }
                let now = Instant::now();
                if now >= deadline {
                    return Err(ClusterError::ControllerTimeout { timeout });
                }
                let wake = resend_at.min(deadline);
                if now >= resend_at {
                    break;
                }
                let _ = tokio::time::timeout(wake - now, applied.changed()).await;
            }
        }
    }

    /// Waits until `done` holds for the applied state (after reconciliation), or the
    /// timeout passes. Returns whether it held.
    pub async fn wait_applied(&self, timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
        let mut applied = self.applied.subscribe();
        let deadline = Instant::now() + timeout;
        loop {
            if done() {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let _ = tokio::time::timeout(left.min(RESUBMIT_INTERVAL), applied.changed()).await;
        }
    }

    /// Announces this broker's Kafka address (and its directory's incarnation) until the
    /// controller has it and the cluster has an id: true then, false if the broker
    /// stopped first.
    pub async fn register(
        self: Arc<Self>,
        host: String,
        port: i32,
        admin: String,
        listeners: BTreeMap<String, metadata::Endpoint>,
        mut shutdown: crate::shutdown::Shutdown,
    ) -> bool {
        let me = self.node_id;
        let record = MetaRecord::RegisterBroker {
            id: me,
            host: host.clone(),
            port,
            admin: admin.clone(),
            incarnation: self.incarnation.clone(),
            listeners: listeners.clone(),
        };
        // Whoever is first gives the cluster its id.
        let id = MetaRecord::ClusterId {
            id: match self.settings.cluster_id.as_str() {
                "" => format!("strata-{}", uuid::Uuid::new_v4().simple()),
                configured => configured.to_string(),
            },
        };
        loop {
            let (registered, named) = {
                let state = self.state();
                let registered = state.brokers.get(&me).is_some_and(|b| {
                    b.host == host
                        && b.port == port
                        && b.admin == admin
                        && b.incarnation == self.incarnation
                        && b.listeners == listeners
                });
                (registered, state.cluster_id.is_some())
            };
            if registered && named {
                info!(node = me, "registered with the controller");
                // A block of producer ids at hand, so the first InitProducerId needs
                // no controller round trip (and works while the controller is away).
                if let Err(r) = self.producer_id_within(CONTROLLER_TIMEOUT, 0).await {
                    debug!(error = %r, "no producer ids from the controller yet");
                }
                return true;
            }
            // A joining node registers its incarnation once it is a member (see
            // [`standing`]): until then the controller's record of an earlier one tells
            // it whether its directory was lost.
            if !registered && self.standing() == Standing::Member {
                self.send(&record).await;
            }
            if !named {
                self.send(&id).await;
            }
            tokio::select! {
                _ = self.wait_applied(RESUBMIT_INTERVAL, || false) => {}
                _ = shutdown.wait() => return false,
            }
        }
    }

    /// Reports this node's leadership of partition groups to the controller: whenever
    /// one of `view`'s changes shows this node leading in a term the controller has not
    /// recorded, until the view's group leaves the node.
    pub async fn report_leadership(
        self: Arc<Self>,
        group: u64,
        mut view: watch::Receiver<GroupView>,
    ) {
        loop {
            let v = *view.borrow_and_update();
            let recorded = self.state().leaders.get(&group).copied();
            if v.is_leader && recorded != Some((self.node_id, v.term)) {
                self.send(&MetaRecord::Leader {
                    group,
                    leader: self.node_id,
                    term: v.term,
                })
                .await;
                // Check again after a while: the record may have been lost.
                let _ = tokio::time::timeout(RESUBMIT_INTERVAL, view.changed()).await;
                continue;
            }
            if view.changed().await.is_err() {
                return;
            }
        }
    }

    /// Plans leader transfers that even each topic's leaderships out over the registered
    /// brokers (from the leaders the controller recorded) and asks the leaders, through the
    /// controller log, to carry them out. Returns the plan.
    pub async fn rebalance_leaders(&self) -> Vec<replication::balance::Transfer> {
        // Planned per topic: each topic's leaderships spread over the brokers (and so
        // the total too). One plan over every partition would even the total only,
        // and could pile one topic's leaders onto one broker.
        let (per_topic, nodes) = {
            let state = self.state();
            let per_topic: Vec<Vec<GroupStatus>> = state
                .topics
                .values()
                .map(|t| {
                    t.partitions
                        .iter()
                        .filter_map(|p| {
                            let &(leader, term) = state.leaders.get(&p.group)?;
                            Some(GroupStatus {
                                group: p.group,
                                id: leader,
                                leader,
                                term,
                                committed_index: 0,
                                committed_offset: 0,
                                last_index: 0,
                                voters: p.replicas.clone(),
                                ..Default::default()
                            })
                        })
                        .collect()
                })
                .collect();
            let nodes: Vec<u64> = state.brokers.keys().copied().collect();
            (per_topic, nodes)
        };
        let plan: Vec<_> = per_topic
            .iter()
            .flat_map(|statuses| replication::balance::plan_leader_transfers(statuses, &nodes))
            .collect();
        for t in &plan {
            self.send(&MetaRecord::TransferLeader {
                group: t.group,
                to: t.to,
            })
            .await;
        }
        plan
    }

    /// A producer id for InitProducerId: from this node's current block, after asking
    /// the controller for a new block when it is used up (blocks are never reused,
    /// also across restarts: a restarted node asks for a fresh one, at registration).
    /// Without a controller answer within [`PRODUCER_IDS_TIMEOUT`] the client is told to
    /// retry (it may pick another broker): an InitProducerId must not wait out the
    /// producer's whole delivery timeout on a broker cut off from the controller.
    pub async fn allocate_producer_id(&self) -> std::result::Result<i64, ClusterError> {
        self.producer_id_within(PRODUCER_IDS_TIMEOUT, 1).await
    }

    /// Takes `take` ids (0: only makes sure a block is at hand), asking the controller
    /// for a block, waiting at most `timeout`, when none is left.
    async fn producer_id_within(
        &self,
        timeout: Duration,
        take: i64,
    ) -> std::result::Result<i64, ClusterError> {
        let mut block = self.producer_ids.lock().await;
        if block.0 >= block.1 {
            let request = self.request_id();
            self.submit(
                MetaRecord::AllocateProducerIds {
                    request,
                    node: self.node_id,
                },
                timeout,
            )
            .await?;
            // Only this node asks for its blocks, one request at a time (the lock).
            let start = self
                .state()
                .producer_blocks
                .get(&self.node_id)
                .copied()
                .ok_or(ClusterError::NoProducerIds)?;
            *block = (start, start + metadata::PRODUCER_ID_BLOCK);
        }
        let id = block.0;
        block.0 += take;
        Ok(id)
    }

    /// Asks the controller to move `topic`'s partition `partition` to the brokers `to`
    /// (the first is the preferred leader). Returns once the move is recorded; the
    /// partition's leader carries it out ([`moves`]).
    pub async fn move_partition(
        &self,
        topic: String,
        partition: i32,
        to: Vec<u64>,
    ) -> std::result::Result<(), ClusterError> {
        let record = MetaRecord::MovePartition {
            request: self.request_id(),
            topic,
            partition,
            to,
        };
        self.submit(record, CONTROLLER_TIMEOUT).await
    }

    /// Acts on an applied [`MetaRecord::TransferLeader`]: hands the leadership over when
    /// this node leads the group (raft-rs ignores the request otherwise).
    pub async fn transfer_if_leading(&self, group: u64, to: u64) {
        if let Err(e) = self.node.transfer_leader(group, to).await {
            debug!(group, to, error = %e, "leader transfer not started here");
        }
    }
}

/// One controller record as a one-record Kafka batch.
fn encode_record(record: &MetaRecord) -> Vec<u8> {
    let value = Some(Bytes::from(record.encode()));
    // An uncompressed batch of plain records always encodes.
    crate::internal_batch::encode(vec![(None, value)], crate::internal_batch::now_ms())
        .expect("an uncompressed one-record batch always encodes")
}

/// The metadata records of one stored batch; undecodable ones are skipped with a
/// warning (every broker skips the same ones, so states still agree).
fn decode_records(batch: Bytes) -> Vec<(u64, MetaRecord)> {
    let records = match crate::internal_batch::decode(batch) {
        Ok(r) => r,
        Err(e) => {
            warn!(error = e, "undecodable controller batch skipped");
            return Vec::new();
        }
    };
    records
        .into_iter()
        .filter_map(|(_, value, offset)| match MetaRecord::decode(&value?) {
            // Offsets read back from our own log are never negative.
            Ok(m) => Some((u64::try_from(offset).ok()?, m)),
            Err(e) => {
                warn!(offset, error = e, "undecodable controller record skipped");
                None
            }
        })
        .collect()
}

/// The voter other than the leader that holds the most of the log, as the leader sees it.
fn successor(s: &GroupStatus) -> Option<u64> {
    s.matched
        .iter()
        .filter(|(id, _)| s.voters.contains(id) && *id != s.leader)
        .max_by_key(|(_, matched)| *matched)
        .map(|(id, _)| *id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_the_batch_round_trip() {
        let r = MetaRecord::RegisterBroker {
            id: 2,
            host: "127.0.0.1".into(),
            port: 9092,
            admin: "127.0.0.1:9644".into(),
            incarnation: "5f0c".into(),
            listeners: [(
                "SSL".to_string(),
                metadata::Endpoint {
                    host: "broker.example".into(),
                    port: 9094,
                },
            )]
            .into(),
        };
        let batch = encode_record(&r);
        log_store::BatchHeader::parse_validated(&batch).expect("a valid RecordBatch v2");
        assert_eq!(decode_records(Bytes::from(batch)), vec![(0, r)]);
        assert!(decode_records(Bytes::from_static(b"garbage")).is_empty());
    }
}
