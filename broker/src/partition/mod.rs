//! One partition on this broker: a replica of the partition's Raft group (the
//! `replication` crate), or a stand-in for a partition this broker holds no replica of.
//!
//! A replica's log is the group's Raft log, shared with the node task that appends and
//! flushes it; the high watermark is the group's commit point, published by the node, so
//! consumers never read what a crash or a new leader could take back. Only the leader
//! accepts produce and serves reads (NOT_LEADER_OR_FOLLOWER elsewhere). A produce is
//! checked against the producer state, proposed, and recorded once the leader appended
//! it (offsets are known then), all under one per-partition async lock, so batches enter
//! the Raft log in the order their sequences were checked; acks=all waits for that entry
//! to commit. A new leader rebuilds the producer state from its own log, which holds
//! every entry of the old leader that may have been acknowledged. A partition this
//! broker holds no replica of is [`Partition::remote`]: it only answers
//! NOT_LEADER_OR_FOLLOWER. A single broker is a cluster of one: every group has one
//! voter and commits once its own log is durable.
//!
//! The log sits behind a `std::sync::RwLock`: appends take it for writing, reads for
//! reading, both for microseconds; the node's `fdatasync` runs without it.
//!
//! Errors are [`PartitionError`]s; handlers turn them into Kafka codes (`kafka_codes`).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use log_store::{CleanOutcome, Cleaner, Log, LogError};
use replication::group::{discard_logger, Group, ProposeError, WriteCaching};
use replication::node::{GroupView, NodeHandle};
use replication::LogStorage;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::TopicConfig;
use crate::error::{BrokerError, Result};
use crate::metrics::Metrics;

mod append;
mod audit;
mod batches;
mod error;
mod isolation;
mod isr;
mod producers;
mod replay;
mod replica_state;
mod sidecars;
pub use append::{MarkerFrom, Produce};
use batches::{
    check_produced_header, corrupt_or, offset_held_through, read_past_empty_batches,
    stamp_append_time,
};
pub use error::{PartitionError, PartitionResult};
pub use isolation::CommittedRead;
pub use isr::{InSyncReplicas, Isr};
use replica_state::{loaded, ReplicaState};

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
    /// Offsets below this one are durable (their `fdatasync` done).
    pub flushed: u64,
    pub size_bytes: u64,
}

/// What every partition of a broker shares.
#[derive(Debug)]
pub struct Shared {
    /// Bumped whenever any high watermark moves: wakes Fetch long polls.
    pub data_changed: watch::Sender<u64>,
    pub metrics: Arc<Metrics>,
    /// The in-sync replicas of the groups this node leads.
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
    /// The replica's write-caching policy, shared with its Raft group.
    write_caching: WriteCaching,
    /// Producers' sequences and transactions, for the leader's term.
    state: std::sync::Mutex<ReplicaState>,
    /// How far the segments' producer snapshots and transaction indexes are written.
    sidecars: sidecars::SidecarProgress,
    view: watch::Receiver<GroupView>,
    /// Serializes produce on the leader: check, propose, record.
    appending: tokio::sync::Mutex<()>,
    closed: AtomicBool,
    /// The audit tree disagrees with a logged head: the replica serves nothing.
    diverged: AtomicBool,
}

/// How this partition is stored.
enum Mode {
    /// A replica of a Raft group, on this broker.
    Hosted(Box<Hosted>),
    /// A partition of the cluster with no replica on this broker.
    Remote { group: u64 },
}

/// A partition. Shared by every request that touches it (`Arc`).
pub struct Partition {
    topic: Arc<str>,
    index: i32,
    high_watermark: watch::Sender<u64>,
    /// Fetch long polls waiting on this partition now ([`FlushDemand`]): while there
    /// are any, appends ask their group to commit at once.
    fetch_waiters: AtomicUsize,
    /// Broker-wide: the data-changed signal and the metrics.
    shared: Arc<Shared>,
    mode: Mode,
}

/// A produce accepted by a cluster partition's leader.
#[derive(Debug)]
pub struct ReplicaAppend {
    pub appended: Appended,
    /// The append time stamped on the batch (LogAppendTime topics; not duplicates).
    pub log_append_time_ms: Option<i64>,
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
        mode: Mode,
    ) -> Arc<Partition> {
        Arc::new(Partition {
            topic,
            index,
            high_watermark: watch::channel(high_watermark).0,
            fetch_waiters: AtomicUsize::new(0),
            shared,
            mode,
        })
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
        config: &TopicConfig,
        shared: Arc<Shared>,
        node: NodeHandle,
        self_id: u64,
        group: u64,
        voters: &[u64],
        rejoin: bool,
    ) -> Result<Arc<Partition>> {
        let err = |e| log_err(&topic, index, e);
        let max_message_bytes = config.max_message_bytes;
        let write_caching = WriteCaching::new(config.write_caching());
        let log = Log::open(dir, config.log_config()).map_err(err)?;
        let report = log.open_report();
        let diverged = log.audit_divergence().is_some();
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
        replica.set_write_caching(write_caching.clone());
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
            Mode::Hosted(Box::new(Hosted {
                group,
                node,
                voters: voters.to_vec(),
                max_message_bytes: max_message_bytes.into(),
                write_caching,
                log,
                state: std::sync::Mutex::new(ReplicaState::default()),
                sidecars: Default::default(),
                view: view.clone(),
                appending: tokio::sync::Mutex::new(()),
                closed: AtomicBool::new(false),
                diverged: AtomicBool::new(diverged),
            })),
        );
        tokio::spawn(partition.clone().follow_view(view));
        Ok(partition)
    }

    /// A cluster partition with no replica here.
    pub fn remote(topic: Arc<str>, index: i32, shared: Arc<Shared>, group: u64) -> Arc<Partition> {
        Partition::new(topic, index, shared, 0, Mode::Remote { group })
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

    /// The partition's Raft group.
    pub fn group(&self) -> u64 {
        match &self.mode {
            Mode::Hosted(h) => h.group,
            Mode::Remote { group } => *group,
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

    /// Ok where this broker may serve the partition's data: on its leader, unless its
    /// audit tree disagrees with a logged head.
    pub fn check_leader(&self) -> PartitionResult<()> {
        self.check_tree_agrees()?;
        match &self.mode {
            Mode::Hosted(h) if h.view.borrow().is_leader => Ok(()),
            _ => Err(PartitionError::NotLeader),
        }
    }

    /// Checks a client's `current_leader_epoch` (-1: none given). A partition's epoch
    /// is its Raft term: a newer one is UNKNOWN_LEADER_EPOCH (this broker has not caught up), an
    /// older one FENCED_LEADER_EPOCH (the client's metadata is stale).
    pub fn check_epoch(&self, epoch: i32) -> PartitionResult<()> {
        if epoch < 0 {
            return Ok(());
        }
        let current = match &self.mode {
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

    /// The leader epoch clients are told: the Raft term of a hosted replica, -1 when
    /// unknown here.
    pub fn leader_epoch(&self) -> i32 {
        match &self.mode {
            Mode::Hosted(h) => i32::try_from(h.view.borrow().term).unwrap_or(i32::MAX),
            Mode::Remote { .. } => -1,
        }
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn index(&self) -> i32 {
        self.index
    }

    /// Runs `f` on the log under the read lock; an error code when the partition is gone
    /// or has no replica here.
    pub fn with_log<T>(&self, f: impl FnOnce(&Log) -> T) -> PartitionResult<T> {
        let Mode::Hosted(h) = &self.mode else {
            return Err(PartitionError::NotLeader);
        };
        if h.closed.load(Ordering::Acquire) {
            return Err(PartitionError::Gone);
        }
        // A poisoned lock means a panic while appending; refuse rather than guess.
        let log = h.log.read().map_err(|_| PartitionError::Offline)?;
        Ok(f(&log))
    }

    /// The high watermark: the group's commit point, the limit of what consumers see.
    /// On a hosted replica, the group's view as it stands: the published value follows
    /// it from another task, and an acks=all producer is answered from the view, so a
    /// ListOffsets right after its answer must not see the published value lag.
    pub fn high_watermark(&self) -> u64 {
        let published = *self.high_watermark.borrow();
        match &self.mode {
            Mode::Hosted(h) => published.max(h.view.borrow().committed_offset),
            Mode::Remote { .. } => published,
        }
    }

    /// A receiver that changes whenever the high watermark moves.
    pub fn watch_high_watermark(&self) -> watch::Receiver<u64> {
        self.high_watermark.subscribe()
    }

    /// Waits until the high watermark passes `offset` while this node still leads in the
    /// term it led when the wait began (see [`Partition::wait_committed_in_term`]), or
    /// `timeout`. `Err` with a Kafka error code on timeout, a lost leadership or no
    /// replica here.
    pub async fn wait_durable(&self, offset: u64, timeout: Duration) -> PartitionResult<()> {
        match &self.mode {
            Mode::Hosted(h) => self.wait_committed_in_term(h, offset, timeout).await,
            Mode::Remote { .. } => Err(PartitionError::NotLeader),
        }
    }

    /// [`Partition::wait_durable`] on a hosted replica: the high watermark passing
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
    /// dropped: meanwhile appends ask their group to commit at once, so a consumer at
    /// the end of the log sees new data as soon as it is durable.
    pub fn flush_demand(self: &Arc<Self>) -> FlushDemand {
        self.fetch_waiters.fetch_add(1, Ordering::AcqRel);
        // Data appended before the poll began may be waiting out the delay: flush it.
        self.want_flush();
        FlushDemand {
            partition: Arc::clone(self),
        }
    }

    /// Asks the group to flush and commit now, when appended data is not committed yet.
    fn want_flush(&self) {
        let Mode::Hosted(h) = &self.mode else { return };
        let behind = self
            .with_log(|log| log.next_offset() > self.high_watermark())
            .unwrap_or(false);
        if behind {
            h.node.hurry(h.group);
        }
    }

    /// Log start, high watermark, log end and size.
    pub fn offsets(&self) -> PartitionResult<Offsets> {
        let hw = self.high_watermark();
        self.with_log(|log| Offsets {
            log_start: log.log_start_offset(),
            high_watermark: hw.min(log.next_offset()),
            log_end: log.next_offset(),
            flushed: log.flushed_offset(),
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

    /// OffsetForLeaderEpoch on the partition's leader: `(epoch, end offset)` of leader
    /// epoch `epoch` (see `Log::end_offset_for_term`), after checking the client's
    /// `current_epoch` as Fetch does; `(-1, -1)` for an epoch this log does not reach
    /// (Kafka's UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET).
    pub fn end_offset_for_epoch(
        &self,
        current_epoch: i32,
        epoch: i32,
    ) -> PartitionResult<(i32, i64)> {
        self.check_leader()?;
        self.check_epoch(current_epoch)?;
        let Ok(epoch) = u64::try_from(epoch) else {
            return Ok((-1, -1));
        };
        let found = self
            .with_log(|log| log.end_offset_for_term(epoch))?
            .map_err(PartitionError::Log)?;
        Ok(found.map_or((-1, -1), |(e, end)| {
            (i32::try_from(e).unwrap_or(i32::MAX), end as i64)
        }))
    }

    /// Applies new settings to the log and the replica's write caching.
    pub fn set_config(&self, config: &TopicConfig) -> PartitionResult<()> {
        let Mode::Hosted(h) = &self.mode else {
            return Ok(());
        };
        let mut log = h.log.write().map_err(|_| PartitionError::Offline)?;
        log.set_config(config.log_config())
            .map_err(PartitionError::Log)?;
        h.max_message_bytes
            .store(config.max_message_bytes, Ordering::Relaxed);
        h.write_caching.set(config.write_caching());
        Ok(())
    }

    /// Kafka DeleteRecords, on the partition's leader: a replicated entry moves the log
    /// start to `offset` (at most the high watermark) on every replica when it applies
    /// it. Returns the new log start once the entry committed (applied here by then).
    pub async fn delete_before_replicated(&self, offset: u64) -> PartitionResult<u64> {
        let Mode::Hosted(h) = &self.mode else {
            return Err(PartitionError::NotLeader);
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
        proposed(h.node.move_log_start(h.group, offset)).await?;
        start()
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
        let prepared = self.with_log(|log| {
            let tombstones_below = held_by_all.map_or(0, |index| offset_held_through(log, index));
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

    /// Runs `f` on the log of a replica hosted here under the write lock; for changes
    /// every replica makes on its own (a cleaning's swap), never for ones Raft must
    /// order.
    fn with_log_mut<T>(
        &self,
        f: impl FnOnce(&mut Log) -> PartitionResult<T>,
    ) -> PartitionResult<T> {
        let Mode::Hosted(h) = &self.mode else {
            return Err(PartitionError::NotLeader);
        };
        if h.closed.load(Ordering::Acquire) {
            return Err(PartitionError::Gone);
        }
        let mut log = h.log.write().map_err(|_| PartitionError::Offline)?;
        f(&mut log)
    }

    /// Housekeeping: retention, idle map release, the producer snapshots and
    /// transaction indexes of newly closed segments (`sidecars.rs`), and for an audit
    /// log the leaves of those segments (`log_store::log::write_audit_leaves`). A replica deletes
    /// only segments wholly below its high watermark (committed entries, which Raft
    /// never truncates; a follower that still needs them gets a snapshot), however busy
    /// the end of its log.
    pub fn housekeeping(&self) {
        let Mode::Hosted(h) = &self.mode else { return };
        if h.closed.load(Ordering::Acquire) {
            return;
        }
        self.retain(h);
        match sidecars::write_missing(&h.log, &h.sidecars, self.high_watermark()) {
            Ok(0) => {}
            Ok(n) => {
                self.shared.metrics.sidecars_written.inc_by(n as u64);
            }
            Err(e) => {
                warn!(topic = %self.topic, partition = self.index, error = %e, "segment sidecars not written")
            }
        }
        if let Err(e) = log_store::log::write_audit_leaves(&h.log) {
            warn!(topic = %self.topic, partition = self.index, error = %e, "audit leaves not written");
        }
    }

    /// Scrubs up to `budget` bytes of the audit log's segments whose leaves were read
    /// from disk at open (`log_store::log::scrub_audit_leaves`); the bytes read.
    pub fn scrub_audit(&self, budget: usize) -> usize {
        let Mode::Hosted(h) = &self.mode else {
            return 0;
        };
        if budget == 0 || h.closed.load(Ordering::Acquire) {
            return 0;
        }
        log_store::log::scrub_audit_leaves(&h.log, budget).unwrap_or_else(|e| {
            warn!(topic = %self.topic, partition = self.index, error = %e, "audit leaves not scrubbed; retrying next pass");
            0
        })
    }

    /// Retention and idle map release, under the write lock.
    fn retain(&self, h: &Hosted) {
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
    }
    /// Makes the log durable and, once the node's task has ended, seals it; later
    /// requests get an error code. Idempotent.
    pub fn close(&self) -> Result<()> {
        let Mode::Hosted(h) = &self.mode else {
            return Ok(());
        };
        if h.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let mut log = match h.log.write() {
            Ok(l) => l,
            Err(p) => p.into_inner(),
        };
        // Once the node's task has ended nothing writes to the log: seal it, so the
        // next open skips the recovery scan. While the node runs (a replica removed
        // from a live node) only make it durable.
        let closed = if h.node.is_stopped() {
            log.seal()
        } else {
            log.flush().map(|_| ())
        };
        closed.map_err(|e| log_err(&self.topic, self.index, e))
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

/// Bytes of audit logs the scrub hashes per housekeeping pass, all partitions together
/// (at most: a segment once begun is finished): 256 MiB every
/// `log.retention.check.interval.ms` (30 s by default) is about 8.5 MiB/s, a 10 GiB log
/// in 20 minutes.
pub const AUDIT_SCRUB_BYTES_PER_PASS: usize = 256 << 20;

/// Waits for a proposal to the replica's group (at most [`REPLICA_APPEND_TIMEOUT`]),
/// its refusals as partition errors.
async fn proposed<T>(
    proposal: impl std::future::Future<Output = Result<T, ProposeError>>,
) -> PartitionResult<T> {
    match tokio::time::timeout(REPLICA_APPEND_TIMEOUT, proposal).await {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(ProposeError::NotLeader { .. })) | Ok(Err(ProposeError::Dropped(_))) => {
            Err(PartitionError::NotLeader)
        }
        Ok(Err(ProposeError::ChangeInProgress)) | Err(_) => {
            Err(PartitionError::Timeout("the Raft group"))
        }
    }
}
