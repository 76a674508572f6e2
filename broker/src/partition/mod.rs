//! One partition on this broker: its log, its idempotent-producer state, and its high
//! watermark.
//!
//! Single-node semantics, chosen to match what a Raft group gives: the high
//! watermark is the *durable* end of the log. Appends go to the page cache at once; a
//! flusher task per partition makes them durable in groups (one `fdatasync` covers every
//! append that arrived while the previous one ran: group commit) and then advances the
//! high watermark. Consumers never read past it, and acks=all answers once it covers the
//! batch, so an acknowledged acks=all write survives power loss. A flush starts at once
//! when someone waits for it (acks=all, a commit, a Fetch long poll) and otherwise
//! [`UNWAITED_FLUSH_DELAY`] after the append, so unwatched acks=1 traffic shares syncs.
//!
//! The log sits behind a `std::sync::RwLock`: appends take it for writing, reads for
//! reading, both for microseconds; the `fdatasync` itself runs without it
//! (`Log::prepare_flush`).
//!
//! Errors are [`PartitionError`]s; handlers turn them into Kafka codes (`kafka_codes`).
//!
//! **In a cluster** ([`Partition::open_replica`]) the partition is one replica of its
//! Raft group (the `replication` crate): the log is the group's Raft log, shared with
//! the node task that appends and flushes it; the high watermark is the group's commit
//! point, published by the node; only the leader accepts produce and serves reads
//! (NOT_LEADER_OR_FOLLOWER elsewhere). A produce is checked against the producer state,
//! proposed, and recorded once the leader appended it (offsets are known then), all
//! under one per-partition async lock, so batches enter the Raft log in the order their
//! sequences were checked; acks=all waits for that entry to commit. A new leader
//! rebuilds the producer state from its own log, which holds every entry of the old
//! leader that may have been acknowledged. A partition this broker holds no replica of
//! is [`Partition::remote`]: it only answers NOT_LEADER_OR_FOLLOWER.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use log_store::{BatchHeader, CleanOutcome, Cleaner, Log, LogConfig, LogError};
use replication::group::{discard_logger, Group, ProposeError};
use replication::node::{Ack, GroupView, NodeHandle, Tracked};
use replication::LogStorage;
use tokio::sync::{watch, Notify};
use tracing::{error, info, warn};

use crate::cluster::InSyncReplicas;
use crate::error::{BrokerError, Result};
use crate::metrics::Metrics;
use crate::producer_state::{ProducerStates, SequenceCheck};

mod batches;
mod error;
use batches::{
    check_produced_header, corrupt_or, offset_held_through, read_past_empty_batches,
    rebuild_producers,
};
pub use error::{PartitionError, PartitionResult};

/// Bytes read per step when rebuilding producer state from the log at open.
const REBUILD_READ_BYTES: usize = 1 << 20;

/// How long appended data may wait for its flush while nobody waits for it (no acks=all
/// produce, offset commit or Fetch long poll on the partition): the flush then covers
/// every append of that interval, where acks=1 producers would otherwise trigger one
/// `fdatasync` per request. Bounds how far the high watermark trails the log end when
/// nobody is waiting; anyone who waits gets the flush at once.
pub const UNWAITED_FLUSH_DELAY: Duration = Duration::from_millis(10);

/// Where an accepted batch is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: u64,
    pub last_offset: u64,
    /// A retry of a batch already in the log: nothing was written.
    pub duplicate: bool,
}

/// Offsets a client sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offsets {
    pub log_start: u64,
    pub high_watermark: u64,
    pub log_end: u64,
    pub size_bytes: u64,
}

/// What every partition of a broker shares.
#[derive(Debug)]
pub struct Shared {
    /// Bumped whenever any high watermark moves: wakes Fetch long polls.
    pub data_changed: watch::Sender<u64>,
    pub metrics: Arc<Metrics>,
    /// The in-sync replicas of the groups this node leads (empty on a single node).
    pub in_sync: Arc<InSyncReplicas>,
}

impl Shared {
    pub fn new(metrics: Arc<Metrics>, in_sync: Arc<InSyncReplicas>) -> Arc<Shared> {
        Arc::new(Shared {
            data_changed: watch::channel(0).0,
            metrics,
            in_sync,
        })
    }
}

struct Inner {
    log: Log,
    producers: ProducerStates,
}

/// A replica of a partition's Raft group hosted on this broker.
struct Hosted {
    group: u64,
    node: NodeHandle,
    /// The group's voters when this replica opened (empty for a replica a move added).
    voters: Vec<u64>,
    /// The Raft log, shared with the group on the node task.
    log: Arc<RwLock<Log>>,
    /// The log's `max.message.bytes`, checked before a batch is proposed (no log lock
    /// on the produce path).
    max_message_bytes: std::sync::atomic::AtomicU32,
    producers: std::sync::Mutex<ProducerStates>,
    view: watch::Receiver<GroupView>,
    /// Serializes produce on the leader: check, propose, record. Holds the term whose
    /// producer state is loaded (0: none).
    appending: tokio::sync::Mutex<u64>,
    closed: AtomicBool,
}

/// How this partition is stored.
enum Mode {
    /// Single node: the log is here and only here.
    Local,
    /// A replica of a Raft group, on this broker.
    Hosted(Box<Hosted>),
    /// A partition of the cluster with no replica on this broker.
    Remote { group: u64 },
}

/// A partition. Shared by every request that touches it (`Arc`).
pub struct Partition {
    topic: Arc<str>,
    index: i32,
    /// `None` once closed (shutdown) or deleted.
    inner: RwLock<Option<Inner>>,
    high_watermark: watch::Sender<u64>,
    /// Something was appended since the last flush started.
    dirty: Notify,
    /// Someone waits for the high watermark to move (acks=all, a commit, a long poll).
    flush_wanted: Notify,
    /// Fetch long polls waiting on this partition now ([`FlushDemand`]): while there
    /// are any, every flush starts at once.
    fetch_waiters: AtomicUsize,
    /// Broker-wide: the data-changed signal and the metrics.
    shared: Arc<Shared>,
    /// Set after an `fdatasync` failed: nothing more is accepted or served, since the
    /// kernel may have dropped pages the log believes written.
    failed: AtomicBool,
    mode: Mode,
}

/// A produce accepted by a cluster partition's leader.
#[derive(Debug)]
pub struct ReplicaAppend {
    pub appended: Appended,
    /// Resolves when the batch commits (acks=all); `None` for a duplicate, which waits
    /// on the high watermark instead.
    pub committed: Option<
        tokio::sync::oneshot::Receiver<
            std::result::Result<replication::node::Committed, ProposeError>,
        >,
    >,
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Partition({}-{})", self.topic, self.index)
    }
}

fn log_err(topic: &str, partition: i32, source: LogError) -> BrokerError {
    BrokerError::Log {
        topic: topic.to_string(),
        partition,
        source,
    }
}

impl Partition {
    fn new(
        topic: Arc<str>,
        index: i32,
        shared: Arc<Shared>,
        high_watermark: u64,
        inner: Option<Inner>,
        mode: Mode,
    ) -> Arc<Partition> {
        Arc::new(Partition {
            topic,
            index,
            inner: RwLock::new(inner),
            high_watermark: watch::channel(high_watermark).0,
            dirty: Notify::new(),
            flush_wanted: Notify::new(),
            fetch_waiters: AtomicUsize::new(0),
            shared,
            failed: AtomicBool::new(false),
            mode,
        })
    }

    /// Opens (or creates) the partition's log in `dir`, makes everything recovered
    /// durable, and rebuilds the producer state from the batch headers.
    pub fn open(
        topic: Arc<str>,
        index: i32,
        dir: &std::path::Path,
        config: LogConfig,
        shared: Arc<Shared>,
    ) -> Result<Arc<Partition>> {
        let err = |e| log_err(&topic, index, e);
        let mut log = Log::open(dir, config).map_err(err)?;
        let report = log.open_report();
        if report.truncated_bytes > 0 || report.removed_segments > 0 {
            warn!(topic = %topic, partition = index, ?report, "partition recovered after an unclean stop");
        }
        let hw = log.flush().map_err(err)?;
        let producers = rebuild_producers(&log).map_err(err)?;
        info!(topic = %topic, partition = index, log_start = log.log_start_offset(), high_watermark = hw, producers = producers.len(), "partition open");
        let partition = Partition::new(
            topic,
            index,
            shared,
            hw,
            Some(Inner { log, producers }),
            Mode::Local,
        );
        // Outside a runtime (offline tools) nothing is appended, so no flusher is needed.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(partition.clone().run_flusher());
        }
        Ok(partition)
    }

    /// Opens this broker's replica of a cluster partition: its log in `dir` becomes the
    /// Raft log of group `group` (created with `voters` if new), driven by `node`. With
    /// `rejoin` (this node lost its data directory) the replica does not vote until it
    /// caught up (`Group::start_rejoin`).
    #[allow(clippy::too_many_arguments)]
    pub async fn open_replica(
        topic: Arc<str>,
        index: i32,
        dir: &std::path::Path,
        config: LogConfig,
        shared: Arc<Shared>,
        node: NodeHandle,
        self_id: u64,
        group: u64,
        voters: &[u64],
        rejoin: bool,
    ) -> Result<Arc<Partition>> {
        let err = |e| log_err(&topic, index, e);
        let max_message_bytes = config.max_message_bytes;
        let log = Log::open(dir, config).map_err(err)?;
        let report = log.open_report();
        if report.truncated_bytes > 0 || report.removed_segments > 0 {
            warn!(topic = %topic, partition = index, ?report, "replica recovered after an unclean stop");
        }
        let log = Arc::new(RwLock::new(log));
        let replication = |e: replication::ReplicationError| BrokerError::Replication {
            topic: topic.to_string(),
            partition: index,
            reason: e.to_string(),
        };
        let storage = LogStorage::new(log.clone()).map_err(replication)?;
        let mut replica =
            Group::open(self_id, storage, voters, &discard_logger()).map_err(replication)?;
        if rejoin {
            replica.start_rejoin(false).map_err(replication)?;
        }
        let hw = replica.committed_offset();
        let gone = |what: &str| BrokerError::Replication {
            topic: topic.to_string(),
            partition: index,
            reason: what.to_string(),
        };
        node.add_group(group, replica)
            .await
            .map_err(|e| gone(&e.to_string()))?;
        let view = node
            .watch(group)
            .await
            .ok_or_else(|| gone("the node lost the group just added"))?;
        info!(topic = %topic, partition = index, group, high_watermark = hw, "replica open");
        let partition = Partition::new(
            topic,
            index,
            shared,
            hw,
            None,
            Mode::Hosted(Box::new(Hosted {
                group,
                node,
                voters: voters.to_vec(),
                max_message_bytes: max_message_bytes.into(),
                log,
                producers: std::sync::Mutex::new(ProducerStates::default()),
                view: view.clone(),
                appending: tokio::sync::Mutex::new(0),
                closed: AtomicBool::new(false),
            })),
        );
        tokio::spawn(partition.clone().follow_view(view));
        Ok(partition)
    }

    /// A cluster partition with no replica here.
    pub fn remote(topic: Arc<str>, index: i32, shared: Arc<Shared>, group: u64) -> Arc<Partition> {
        Partition::new(topic, index, shared, 0, None, Mode::Remote { group })
    }

    /// Publishes the group's commit point as the high watermark, until the group
    /// leaves this node.
    async fn follow_view(self: Arc<Self>, mut view: watch::Receiver<GroupView>) {
        let mut leader = view.borrow().leader;
        loop {
            let v = *view.borrow_and_update();
            if v.leader != leader && v.leader != 0 {
                leader = v.leader;
                self.shared.metrics.leader_changes.inc();
                info!(topic = %self.topic, partition = self.index, leader, term = v.term, "partition leader changed");
            }
            let hw = v.committed_offset;
            let moved = self.high_watermark.send_if_modified(|cur| {
                let moved = hw != *cur;
                *cur = hw;
                moved
            });
            if moved {
                self.shared
                    .data_changed
                    .send_modify(|v| *v = v.wrapping_add(1));
            }
            if view.changed().await.is_err() {
                return;
            }
        }
    }

    /// The Raft group of a cluster partition; `None` on a single node.
    pub fn group(&self) -> Option<u64> {
        match &self.mode {
            Mode::Local => None,
            Mode::Hosted(h) => Some(h.group),
            Mode::Remote { group } => Some(*group),
        }
    }

    /// This replica's view of its group (leader, term, commit point); `None` unless a
    /// replica is hosted here.
    pub fn view(&self) -> Option<GroupView> {
        match &self.mode {
            Mode::Hosted(h) => Some(*h.view.borrow()),
            _ => None,
        }
    }

    /// Ok where this broker may serve the partition's data: always on a single node,
    /// only on the leader in a cluster.
    pub fn check_leader(&self) -> PartitionResult<()> {
        match &self.mode {
            Mode::Local => Ok(()),
            Mode::Hosted(h) if h.view.borrow().is_leader => Ok(()),
            _ => Err(PartitionError::NotLeader),
        }
    }

    /// Checks a client's `current_leader_epoch` (-1: none given). A single node is
    /// always at epoch 0 and knows no other; a cluster partition's epoch is its Raft
    /// term: a newer one is UNKNOWN_LEADER_EPOCH (this broker has not caught up), an
    /// older one FENCED_LEADER_EPOCH (the client's metadata is stale).
    pub fn check_epoch(&self, epoch: i32) -> PartitionResult<()> {
        if epoch < 0 {
            return Ok(());
        }
        let current = match &self.mode {
            Mode::Local => 0,
            Mode::Hosted(h) => h.view.borrow().term,
            Mode::Remote { .. } => return Err(PartitionError::NotLeader),
        };
        match (epoch as u64).cmp(&current) {
            std::cmp::Ordering::Greater => Err(PartitionError::UnknownLeaderEpoch {
                given: epoch,
                current,
            }),
            std::cmp::Ordering::Less if current > 0 => Err(PartitionError::FencedLeaderEpoch {
                given: epoch,
                current,
            }),
            _ => Ok(()),
        }
    }

    /// The leader epoch clients are told: 0 on a single node, the Raft term of a
    /// hosted cluster replica, -1 when unknown here.
    pub fn leader_epoch(&self) -> i32 {
        match &self.mode {
            Mode::Local => 0,
            Mode::Hosted(h) => i32::try_from(h.view.borrow().term).unwrap_or(i32::MAX),
            Mode::Remote { .. } => -1,
        }
    }

    /// Produce on a cluster partition's leader: checks that at least `min_in_sync`
    /// replicas are in sync (an acks=all produce passes the topic's
    /// `min.insync.replicas`, anything else 1), the batch and the producer's sequence,
    /// proposes the batch to the group, and returns once the leader appended it (its
    /// offsets assigned), with a receiver for its commit. `awaited`: the caller waits for
    /// that commit now (acks=all), so a lone voter flushes at once; otherwise it may hold
    /// the flush briefly (`replication::node::LAZY_FLUSH_DELAY`) unless a Fetch long poll
    /// waits on the partition.
    pub async fn append_replica(
        &self,
        batch: Bytes,
        min_in_sync: u32,
        awaited: bool,
    ) -> PartitionResult<ReplicaAppend> {
        self.check_usable()?;
        let Mode::Hosted(h) = &self.mode else {
            return Err(PartitionError::NotLeader);
        };
        if min_in_sync > 1 && h.view.borrow().is_leader {
            // Kafka checks before the append, duplicates included. A leader that has
            // not sampled its group yet (for up to one ISR sample interval after it was
            // elected) counts what its first sample will: itself and every voter whose
            // node is heard from (refusing on itself alone would turn every failover
            // into a burst of NOT_ENOUGH_REPLICAS).
            let in_sync = self.shared.in_sync.count(h.group).unwrap_or_else(|| {
                let me = h.view.borrow().leader;
                let live = h.voters.iter().filter(|&&v| v != me && h.node.is_alive(v));
                1 + live.count()
            });
            if (in_sync as u64) < u64::from(min_in_sync) {
                return Err(PartitionError::NotEnoughReplicas {
                    in_sync,
                    required: min_in_sync,
                });
            }
        }
        let header = check_produced_header(&batch)?;
        let mut loaded_term = h.appending.lock().await;
        let view = *h.view.borrow();
        if !view.is_leader {
            return Err(PartitionError::NotLeader);
        }
        if h.closed.load(Ordering::Acquire) {
            return Err(PartitionError::NotLeader);
        }
        if *loaded_term != view.term {
            // New leadership: this log holds every entry the old leader may have
            // acknowledged; rebuild the producers' sequences from it.
            let log = h.log.read().map_err(|_| PartitionError::Offline)?;
            let rebuilt = rebuild_producers(&log).map_err(PartitionError::Log)?;
            drop(log);
            *lock_producers(&h.producers) = rebuilt;
            *loaded_term = view.term;
        }
        let check = lock_producers(&h.producers).check(&header);
        match check {
            SequenceCheck::Refuse(why) => return Err(corrupt_or(&batch, why.into())),
            SequenceCheck::Duplicate {
                base_offset,
                last_offset,
            } => {
                BatchHeader::parse_validated(&batch)
                    .map_err(|e| PartitionError::Log(LogError::CorruptBatch(e)))?;
                self.shared.metrics.duplicate_batches.inc();
                return Ok(ReplicaAppend {
                    appended: Appended {
                        base_offset,
                        last_offset,
                        duplicate: true,
                    },
                    committed: None,
                });
            }
            SequenceCheck::Append => {}
        }
        // The Raft entry is appended by the node without another check: validate the
        // whole batch (CRC-32C included) here, and its size (replicas take whatever
        // their leader appended).
        BatchHeader::parse_validated(&batch)
            .map_err(|e| PartitionError::Log(LogError::CorruptBatch(e)))?;
        let limit_bytes = h.max_message_bytes.load(Ordering::Relaxed);
        if batch.len() > limit_bytes as usize {
            return Err(PartitionError::Log(LogError::BatchTooLarge {
                size_bytes: batch.len(),
                limit_bytes,
            }));
        }
        let commit = if awaited || self.fetch_waiters.load(Ordering::Acquire) > 0 {
            Ack::Quorum
        } else {
            Ack::Eventually
        };
        let tracked: Tracked = match tokio::time::timeout(
            REPLICA_APPEND_TIMEOUT,
            h.node.propose_tracked(h.group, batch, commit),
        )
        .await
        {
            Ok(Ok(t)) => t,
            Ok(Err(ProposeError::NotLeader { .. })) | Ok(Err(ProposeError::Dropped(_))) => {
                return Err(PartitionError::NotLeader)
            }
            Ok(Err(ProposeError::ChangeInProgress)) | Err(_) => {
                return Err(PartitionError::Timeout("the Raft group"))
            }
        };
        let base_offset = tracked.appended.base_offset;
        let last_offset = base_offset + header.last_offset_delta.max(0) as u64;
        lock_producers(&h.producers).record(&header, base_offset, last_offset);
        self.shared.metrics.appended_batches.inc();
        Ok(ReplicaAppend {
            appended: Appended {
                base_offset,
                last_offset,
                duplicate: false,
            },
            committed: Some(tracked.committed),
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn index(&self) -> i32 {
        self.index
    }

    fn check_usable(&self) -> PartitionResult<()> {
        if self.failed.load(Ordering::Acquire) {
            return Err(PartitionError::Offline);
        }
        Ok(())
    }

    /// Runs `f` on the log under the read lock; an error code when the partition is gone
    /// (or, in a cluster, has no replica here).
    pub fn with_log<T>(&self, f: impl FnOnce(&Log) -> T) -> PartitionResult<T> {
        self.check_usable()?;
        match &self.mode {
            Mode::Local => {}
            Mode::Hosted(h) => {
                if h.closed.load(Ordering::Acquire) {
                    return Err(PartitionError::Gone);
                }
                let log = h.log.read().map_err(|_| PartitionError::Offline)?;
                return Ok(f(&log));
            }
            Mode::Remote { .. } => return Err(PartitionError::NotLeader),
        }
        // A poisoned lock means a panic while appending; refuse rather than guess.
        let guard = self.inner.read().map_err(|_| PartitionError::Offline)?;
        match guard.as_ref() {
            Some(inner) => Ok(f(&inner.log)),
            None => Err(PartitionError::Gone),
        }
    }

    fn with_inner_mut<T>(
        &self,
        f: impl FnOnce(&mut Inner) -> PartitionResult<T>,
    ) -> PartitionResult<T> {
        self.check_usable()?;
        if !matches!(self.mode, Mode::Local) {
            // Cluster partitions change only through their Raft group.
            return Err(PartitionError::NotLeader);
        }
        let mut guard = self.inner.write().map_err(|_| PartitionError::Offline)?;
        match guard.as_mut() {
            Some(inner) => f(inner),
            None => Err(PartitionError::Gone),
        }
    }

    /// Validates and appends one produced batch (idempotence checked in the same step).
    /// Errors are Kafka error codes. The batch is durable and visible to consumers once
    /// [`Partition::wait_durable`] returns for its last offset.
    ///
    /// The CRC-32C is computed once per batch: by `Log::append` when the batch is
    /// appended, and here only when the batch is refused or answered as a duplicate
    /// without reaching the log (a corrupt batch is CORRUPT_MESSAGE whatever else is
    /// wrong with it, as in Kafka). Nothing is decoded per record.
    pub fn append(&self, batch: &[u8]) -> PartitionResult<Appended> {
        if let Mode::Hosted(_) = &self.mode {
            // The group coordinator's synchronous path on a cluster partition: wait for
            // the leader's append here. Only reached from the broker's multi-threaded
            // runtime (cluster mode), where blocking in place hands this worker's other
            // tasks to another thread.
            let handle =
                tokio::runtime::Handle::try_current().map_err(|_| PartitionError::NotLeader)?;
            if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
                return Err(PartitionError::NotLeader);
            }
            let batch = Bytes::copy_from_slice(batch);
            // The coordinator waits with `wait_durable`, which hurries the flush.
            let append = self.append_replica(batch, 1, false);
            return tokio::task::block_in_place(|| handle.block_on(append)).map(|r| r.appended);
        }
        let header = check_produced_header(batch)?;
        let appended = self.with_inner_mut(|inner| match inner.producers.check(&header) {
            SequenceCheck::Refuse(why) => Err(corrupt_or(batch, why.into())),
            SequenceCheck::Duplicate {
                base_offset,
                last_offset,
            } => match BatchHeader::parse_validated(batch) {
                Ok(_) => Ok(Appended {
                    base_offset,
                    last_offset,
                    duplicate: true,
                }),
                Err(e) => Err(PartitionError::Log(LogError::CorruptBatch(e))),
            },
            SequenceCheck::Append => {
                // Validates the whole batch (CRC-32C included) before writing anything.
                let info = inner.log.append(batch).map_err(|e| {
                    if matches!(e, LogError::Io { .. }) {
                        error!(topic = %self.topic, partition = self.index, error = %e, "append failed");
                    }
                    PartitionError::Log(e)
                })?;
                inner
                    .producers
                    .record(&header, info.base_offset, info.last_offset);
                Ok(Appended {
                    base_offset: info.base_offset,
                    last_offset: info.last_offset,
                    duplicate: false,
                })
            }
        })?;
        if appended.duplicate {
            self.shared.metrics.duplicate_batches.inc();
        } else {
            self.shared.metrics.appended_batches.inc();
            self.dirty.notify_one();
        }
        Ok(appended)
    }

    /// The high watermark: the end of the durable log, the limit of what consumers see.
    pub fn high_watermark(&self) -> u64 {
        *self.high_watermark.borrow()
    }

    /// A receiver that changes whenever the high watermark moves.
    pub fn watch_high_watermark(&self) -> watch::Receiver<u64> {
        self.high_watermark.subscribe()
    }

    /// Waits until the high watermark passes `offset` (the batch holding it is durable),
    /// or `timeout`. `Err` with a Kafka error code on timeout or failure.
    pub async fn wait_durable(&self, offset: u64, timeout: Duration) -> PartitionResult<()> {
        if let Mode::Hosted(h) = &self.mode {
            return self.wait_committed_in_term(h, offset, timeout).await;
        }
        let mut rx = self.high_watermark.subscribe();
        if *rx.borrow() <= offset {
            self.flush_wanted.notify_one();
        }
        let failed = &self.failed;
        let waited = tokio::time::timeout(timeout, async {
            rx.wait_for(|&hw| hw > offset || failed.load(Ordering::Acquire))
                .await
                .map(|_| ())
        })
        .await;
        match waited {
            Ok(Ok(())) => self.check_usable(),
            Ok(Err(_)) => Err(PartitionError::Offline),
            Err(_) => Err(PartitionError::Timeout("the flush")),
        }
    }

    /// A cluster replica's [`Partition::wait_durable`]: the high watermark passing
    /// `offset` while this node still leads in the term it led when the wait began.
    /// Within one leadership term the leader's log is never truncated, so the entry at
    /// `offset` is the one this leader appended; once the term changes that is no
    /// longer certain, and the answer is NOT_LEADER_OR_FOLLOWER (the client retries).
    async fn wait_committed_in_term(
        &self,
        h: &Hosted,
        offset: u64,
        timeout: Duration,
    ) -> PartitionResult<()> {
        let mut view = h.view.clone();
        let start = *view.borrow_and_update();
        if !start.is_leader {
            return Err(PartitionError::NotLeader);
        }
        if start.committed_offset <= offset {
            h.node.hurry(h.group);
        }
        let waited = tokio::time::timeout(timeout, async {
            view.wait_for(|v| v.term != start.term || v.committed_offset > offset)
                .await
                .map(|v| *v)
        })
        .await;
        match waited {
            Ok(Ok(v)) if v.term == start.term => Ok(()),
            Ok(_) => Err(PartitionError::NotLeader),
            Err(_) => Err(PartitionError::Timeout("the Raft group")),
        }
    }

    /// Marks a Fetch long poll waiting on this partition until the returned guard is
    /// dropped: meanwhile flushes start at once, so a consumer at the end of the log
    /// sees new data as soon as it is durable, never [`UNWAITED_FLUSH_DELAY`] later.
    pub fn flush_demand(self: &Arc<Self>) -> FlushDemand {
        self.fetch_waiters.fetch_add(1, Ordering::AcqRel);
        // Data appended before the poll began may be waiting out the delay: flush it.
        self.want_flush();
        FlushDemand {
            partition: Arc::clone(self),
        }
    }

    /// Asks for the next flush now rather than after [`UNWAITED_FLUSH_DELAY`], when
    /// appended data is not durable yet.
    fn want_flush(&self) {
        let behind = self
            .with_log(|log| log.next_offset() > self.high_watermark())
            .unwrap_or(false);
        if !behind {
            return;
        }
        match &self.mode {
            Mode::Hosted(h) => h.node.hurry(h.group),
            _ => self.flush_wanted.notify_one(),
        }
    }

    /// Log start, high watermark, log end and size.
    pub fn offsets(&self) -> PartitionResult<Offsets> {
        let hw = self.high_watermark();
        self.with_log(|log| Offsets {
            log_start: log.log_start_offset(),
            high_watermark: hw.min(log.next_offset()),
            log_end: log.next_offset(),
            size_bytes: log.size_bytes(),
        })
    }

    /// Whole batches from `offset`, up to `max_bytes` (at least one batch), never past the
    /// high watermark. Zero-copy.
    ///
    /// Batches that compaction emptied (no records, offsets kept) are passed over into
    /// the next segments until a batch with records is included, `max_bytes` is reached
    /// or the high watermark: librdkafka treats an answer without a single record as "the
    /// limit was too small", doubles its fetch size and, after ten such answers, fails
    /// with MSG_SIZE_TOO_LARGE. Zero-copy unless such a stretch is crossed.
    pub fn read(&self, offset: u64, max_bytes: usize) -> PartitionResult<Bytes> {
        let hw = self.high_watermark();
        self.with_log(|log| read_past_empty_batches(log, offset, max_bytes, hw))?
            .map_err(PartitionError::Log)
    }

    /// Applies new settings to the log.
    pub fn set_config(&self, config: LogConfig) -> PartitionResult<()> {
        match &self.mode {
            Mode::Local => {}
            Mode::Hosted(h) => {
                let mut log = h.log.write().map_err(|_| PartitionError::Offline)?;
                let limit = config.max_message_bytes;
                log.set_config(config).map_err(PartitionError::Log)?;
                h.max_message_bytes.store(limit, Ordering::Relaxed);
                return Ok(());
            }
            Mode::Remote { .. } => return Ok(()),
        }
        self.with_inner_mut(|inner| inner.log.set_config(config).map_err(PartitionError::Log))
    }

    /// DeleteRecords on a cluster partition's leader: a replicated entry moves the log
    /// start to `offset` (at most the high watermark) on every replica when it applies
    /// it. Returns the new log start once the entry committed (applied here by then).
    pub async fn delete_before_replicated(&self, offset: u64) -> PartitionResult<u64> {
        self.check_usable()?;
        let Mode::Hosted(h) = &self.mode else {
            return self.delete_before(offset);
        };
        self.check_leader()?;
        let high_watermark = self.high_watermark();
        if offset > high_watermark {
            return Err(PartitionError::PastHighWatermark {
                offset,
                high_watermark,
            });
        }
        let start = || {
            h.log
                .read()
                .map(|l| l.log_start_offset())
                .map_err(|_| PartitionError::Offline)
        };
        if offset <= start()? {
            return start();
        }
        match tokio::time::timeout(
            REPLICA_APPEND_TIMEOUT,
            h.node.move_log_start(h.group, offset),
        )
        .await
        {
            Ok(Ok(_)) => start(),
            Ok(Err(ProposeError::NotLeader { .. })) | Ok(Err(ProposeError::Dropped(_))) => {
                Err(PartitionError::NotLeader)
            }
            Ok(Err(ProposeError::ChangeInProgress)) | Err(_) => {
                Err(PartitionError::Timeout("the Raft group"))
            }
        }
    }

    /// Kafka DeleteRecords: moves the log start (never past the high watermark).
    pub fn delete_before(&self, offset: u64) -> PartitionResult<u64> {
        if self.group().is_some() {
            // The log start moves on every replica alike: `delete_before_replicated`.
            return Err(PartitionError::NotLeader);
        }
        let high_watermark = self.high_watermark();
        if offset > high_watermark {
            return Err(PartitionError::PastHighWatermark {
                offset,
                high_watermark,
            });
        }
        self.with_inner_mut(|inner| inner.log.delete_before(offset).map_err(PartitionError::Log))
    }

    /// One compaction pass when the log wants one (`cleanup.policy` with `compact` and
    /// enough dirty bytes): prepared under the read lock, rewritten without any lock, and
    /// swapped in under the write lock, so produce and fetch wait at most for the swap.
    /// Blocking I/O: call it from a blocking thread. `Ok(None)` when nothing was due.
    ///
    /// Only committed records (below the high watermark) enter the key map, so a cleaning
    /// never reads an entry Raft could still truncate. Every replica of a group cleans its
    /// own copy of that prefix; offsets and Raft entries stay (an emptied batch remains,
    /// header only), so a follower sent cleaned entries derives the same offsets.
    /// `held_by_all` is the Raft index every replica of the group holds, known on the
    /// leader only: tombstones past their delete horizon go only below it, and never on
    /// a replica that does not know it (`None`).
    pub fn clean(
        &self,
        cleaner: &Cleaner,
        now_ms: i64,
        held_by_all: Option<u64>,
    ) -> std::result::Result<Option<CleanOutcome>, String> {
        if matches!(self.mode, Mode::Remote { .. }) {
            return Ok(None);
        }
        let hw = self.high_watermark();
        let local = matches!(self.mode, Mode::Local);
        let prepared = self.with_log(|log| {
            let tombstones_below = match (local, held_by_all) {
                (true, _) => u64::MAX,
                (false, Some(index)) => offset_held_through(log, index),
                (false, None) => 0,
            };
            log.prepare_clean_below(hw, tombstones_below, now_ms)
        });
        let job = match prepared {
            Err(_) => return Ok(None), // closed, deleted or offline
            Ok(Ok(None)) => return Ok(None),
            Ok(Ok(Some(job))) => job,
            Ok(Err(e)) => return Err(e.to_string()),
        };
        let cleaned = job.run(cleaner).map_err(|e| e.to_string())?;
        drop(job);
        let outcome = self
            .with_log_mut(|log| Ok(log.complete_clean(cleaned)))
            .map_err(|code| format!("partition unavailable (error code {code})"))?
            .map_err(|e| e.to_string())?;
        Ok(Some(outcome))
    }

    /// Runs `f` on the log under the write lock, on a single node or a replica hosted
    /// here; for changes every replica makes on its own (a cleaning's swap), never for
    /// ones Raft must order.
    fn with_log_mut<T>(
        &self,
        f: impl FnOnce(&mut Log) -> PartitionResult<T>,
    ) -> PartitionResult<T> {
        match &self.mode {
            Mode::Local => self.with_inner_mut(|inner| f(&mut inner.log)),
            Mode::Hosted(h) => {
                self.check_usable()?;
                if h.closed.load(Ordering::Acquire) {
                    return Err(PartitionError::Gone);
                }
                let mut log = h.log.write().map_err(|_| PartitionError::Offline)?;
                f(&mut log)
            }
            Mode::Remote { .. } => Err(PartitionError::NotLeader),
        }
    }

    /// Housekeeping: retention and idle map release. A cluster replica deletes only
    /// segments wholly below its high watermark (committed entries, which Raft never
    /// truncates; a follower that still needs them gets a snapshot), however busy the
    /// end of its log.
    pub fn housekeeping(&self) {
        if let Mode::Hosted(h) = &self.mode {
            if h.closed.load(Ordering::Acquire) {
                return;
            }
            let hw = self.high_watermark();
            let Ok(mut log) = h.log.write() else { return };
            match log.apply_retention_below(hw) {
                Ok(o) if o.deleted_segments > 0 => {
                    info!(topic = %self.topic, partition = self.index, outcome = ?o, "retention deleted segments")
                }
                Ok(_) => {}
                Err(e) => {
                    warn!(topic = %self.topic, partition = self.index, error = %e, "retention failed")
                }
            }
            log.release_idle_maps();
            return;
        }
        let result = self.with_inner_mut(|inner| {
            let outcome = inner.log.apply_retention().map_err(|e| {
                warn!(topic = %self.topic, partition = self.index, error = %e, "retention failed");
                PartitionError::Log(e)
            })?;
            inner.log.release_idle_maps();
            Ok(outcome)
        });
        if let Ok(outcome) = result {
            if outcome.deleted_segments > 0 {
                info!(topic = %self.topic, partition = self.index, ?outcome, "retention deleted segments");
            }
        }
    }

    /// One group commit: prepares under the lock, syncs without it, publishes the new
    /// high watermark. Returns false when the partition is closed or failed.
    async fn flush_once(self: &Arc<Self>) -> bool {
        let pending = match self.with_log(|log| log.prepare_flush()) {
            Ok(Ok(Some(p))) => p,
            Ok(Ok(None)) => return true,
            Ok(Err(e)) => return self.fail(&e.to_string()),
            Err(_) => return false,
        };
        let started = std::time::Instant::now();
        let synced = tokio::task::spawn_blocking(move || pending.sync().map(|()| pending)).await;
        self.shared.metrics.flushes.inc();
        self.shared
            .metrics
            .flush_duration
            .observe(started.elapsed().as_secs_f64());
        match synced {
            Ok(Ok(pending)) => {
                let hw = self.with_inner_mut(|inner| Ok(inner.log.complete_flush(pending)));
                match hw {
                    Ok(hw) => {
                        let moved = self.high_watermark.send_if_modified(|cur| {
                            let moved = hw > *cur;
                            *cur = (*cur).max(hw);
                            moved
                        });
                        if moved {
                            self.shared
                                .data_changed
                                .send_modify(|v| *v = v.wrapping_add(1));
                        }
                        true
                    }
                    Err(_) => false,
                }
            }
            Ok(Err(e)) => self.fail(&e.to_string()),
            Err(e) => self.fail(&format!("flush task died: {e}")),
        }
    }

    fn fail(&self, why: &str) -> bool {
        error!(topic = %self.topic, partition = self.index, error = why, "fdatasync failed; partition taken offline");
        self.failed.store(true, Ordering::Release);
        // After a failed fdatasync the page cache may hold data the disk lost; nothing
        // this process holds can be trusted as durable any more (fail-stop).
        self.shared.metrics.health.fail(format!(
            "partition {}-{}: fdatasync failed: {why}",
            self.topic, self.index
        ));
        // Wake acks=all waiters so they answer KAFKA_STORAGE_ERROR now.
        self.high_watermark.send_modify(|_| {});
        false
    }

    /// The group-commit loop, until the partition closes: after an append, flushes at
    /// once if someone waits for durability, otherwise after [`UNWAITED_FLUSH_DELAY`]
    /// (or as soon as someone starts waiting). Appends made during a flush are covered by
    /// the next one. One task per partition, started by `open`.
    async fn run_flusher(self: Arc<Self>) {
        loop {
            self.dirty.notified().await;
            if self.fetch_waiters.load(Ordering::Acquire) == 0 {
                tokio::select! {
                    _ = self.flush_wanted.notified() => {}
                    _ = tokio::time::sleep(UNWAITED_FLUSH_DELAY) => {}
                }
            }
            if !self.flush_once().await {
                return;
            }
        }
    }

    /// Flushes, writes the clean-shutdown marker and closes the log; later requests get
    /// an error code. Idempotent.
    pub fn close(&self) -> Result<()> {
        match &self.mode {
            Mode::Local => {}
            Mode::Remote { .. } => return Ok(()),
            Mode::Hosted(h) => {
                if h.closed.swap(true, Ordering::AcqRel) {
                    return Ok(());
                }
                let mut log = match h.log.write() {
                    Ok(l) => l,
                    Err(p) => p.into_inner(),
                };
                // Once the node's task has ended nothing writes to the log: seal it,
                // so the next open skips the recovery scan. While the node runs (a
                // replica removed from a live node) only make it durable.
                let closed = if h.node.is_stopped() {
                    log.seal()
                } else {
                    log.flush().map(|_| ())
                };
                return closed.map_err(|e| log_err(&self.topic, self.index, e));
            }
        }
        let mut guard = match self.inner.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let closed = match guard.take() {
            Some(inner) => {
                let end = inner.log.next_offset();
                inner
                    .log
                    .close()
                    .map_err(|e| log_err(&self.topic, self.index, e))
                    .map(|()| end)
            }
            None => Ok(self.high_watermark()),
        };
        drop(guard);
        match &closed {
            // Everything is durable now: acks=all waiters answer success.
            Ok(end) => {
                let end = *end;
                self.high_watermark.send_if_modified(|hw| {
                    let moved = end > *hw;
                    *hw = (*hw).max(end);
                    moved
                });
            }
            // Not durable: waiters answer an error instead of timing out.
            Err(_) => {
                self.fail("closing the log failed");
            }
        }
        self.dirty.notify_one();
        self.flush_wanted.notify_one();
        closed.map(|_| ())
    }
}

/// A Fetch long poll waiting on a partition ([`Partition::flush_demand`]).
#[derive(Debug)]
pub struct FlushDemand {
    partition: Arc<Partition>,
}

impl Drop for FlushDemand {
    fn drop(&mut self) {
        self.partition.fetch_waiters.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How long a produce waits for the leader's node to append its batch.
const REPLICA_APPEND_TIMEOUT: Duration = Duration::from_secs(30);

fn lock_producers(
    m: &std::sync::Mutex<ProducerStates>,
) -> std::sync::MutexGuard<'_, ProducerStates> {
    // Updates are single calls that leave the map consistent; a panic in one cannot
    // leave it half-changed.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests;
