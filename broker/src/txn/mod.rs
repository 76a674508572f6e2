//! The transaction coordinator: Kafka's transactions for producers with a
//! `transactional.id`, with each id's state stored as records in the compacted internal
//! topic `__transaction_state` ([`records`] has the layout, [`state`] the state
//! machine, `load` the loading as leaderships move, `markers` the end of a
//! transaction in its partitions, `describe` what the admin APIs list).
//!
//! ## Guarantees
//! - An id lives on partition `abs(javaHashCode(id)) % transaction.state.log.num.partitions`
//!   of `__transaction_state`, as in Kafka; its coordinator is that partition's leader,
//!   which replays the partition (latest record per id wins, tombstones delete) before
//!   it serves the partition's ids. The topic is created on first use.
//! - Every change of an id's state is durable (the same `fdatasync` group commit as
//!   acks=all produce) before it is answered. EndTxn is answered once the decision
//!   (PrepareCommit or PrepareAbort) is durable; the markers follow, and the
//!   transaction completes once every partition holds its marker. A coordinator that
//!   takes over a prepared transaction finishes writing its markers.
//! - One request at a time per id: a request that arrives while another change of the
//!   same id is being made durable, or while its markers are being written, is told
//!   CONCURRENT_TRANSACTIONS, and the client retries.
//! - A produced transactional batch is taken only when the coordinator confirms that
//!   its producer (id and epoch) has the partition in its ongoing transaction (the
//!   check KIP-890 added to Kafka), so a stray or forged transactional batch cannot
//!   open a transaction that nobody will end and hold back the last stable offset.
//! - Fencing: InitProducerId bumps the id's epoch (a new producer id once the epoch is
//!   exhausted). An ongoing transaction is first aborted at the bumped epoch, and so is
//!   one that outlives its `transaction.timeout.ms`; their markers make every partition
//!   refuse the older epoch, and the old producer's requests to the coordinator are
//!   answered PRODUCER_FENCED.
//!
//! - Other brokers are reached with calls over the Raft transport ([`remote`]): markers
//!   to the leaders of the transaction's partitions, and a partition leader's question
//!   to the coordinator about a transactional produce.

mod describe;
mod error;
mod load;
mod markers;
pub mod records;
pub mod remote;
pub mod state;

pub use error::TxnError;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::cluster::Cluster;
use crate::config::TxnConfig;
use crate::internal_batch::now_ms;
use crate::leadership::{Loaded, NotServed};
use crate::partition::{Partition, PartitionError};
use crate::shutdown::Shutdown;
use crate::topics::{Topics, OFFSETS_TOPIC, TXN_STATE_TOPIC};
use crate::Broker;
use records::{TxnStatus, TxnValue};
use state::{EndStep, InitStep};

/// How often leaderships, prepared transactions and the topic's existence are checked.
const TICK_INTERVAL: Duration = Duration::from_millis(100);
/// How often prepared transactions that nobody finishes (loaded from the log, or
/// whose markers failed) are taken up again.
const RESUME_INTERVAL: Duration = Duration::from_secs(1);
/// How long a change of an id's state waits to become durable.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest transactional id stored (int16-length strings in the records).
const MAX_ID_BYTES: usize = i16::MAX as usize;

/// One transactional id.
#[derive(Debug, Default)]
struct Entry {
    /// Held while a change is made durable or markers are written.
    busy: Arc<tokio::sync::Mutex<()>>,
    /// The durable state (`None`: none yet, or expired).
    value: Mutex<Option<TxnValue>>,
}

impl Entry {
    fn get(&self) -> Option<TxnValue> {
        self.value.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, v: Option<TxnValue>) {
        *self.value.lock().unwrap_or_else(|p| p.into_inner()) = v;
    }
}

/// An id being changed: its entry, its change lock, its `__transaction_state`
/// partition and the coordinator epoch.
struct Claim {
    entry: Arc<Entry>,
    /// Held, never read: other requests for the id get CONCURRENT_TRANSACTIONS until
    /// the claim is dropped.
    _busy: tokio::sync::OwnedMutexGuard<()>,
    partition: Arc<Partition>,
    coordinator_epoch: i32,
}

/// The transaction coordinator of this broker.
#[derive(Debug)]
pub struct TxnCoordinator {
    config: TxnConfig,
    /// `__transaction_state` partitions, by index (set once the topic exists).
    partitions: RwLock<Vec<Arc<Partition>>>,
    /// The partitions whose ids are loaded here, with the Raft term they were loaded
    /// in. An id is served only while its partition is led here and loaded in the
    /// current term.
    loaded: Loaded,
    txns: Mutex<HashMap<String, Arc<Entry>>>,
    /// `__transaction_state` is being created.
    creating: std::sync::atomic::AtomicBool,
}

impl TxnCoordinator {
    pub fn new(config: TxnConfig) -> TxnCoordinator {
        TxnCoordinator {
            config,
            partitions: RwLock::new(Vec::new()),
            loaded: Loaded::default(),
            txns: Mutex::new(HashMap::new()),
            creating: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn txns(&self) -> MutexGuard<'_, HashMap<String, Arc<Entry>>> {
        self.txns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The `__transaction_state` partition of `id` (None before the topic exists).
    pub fn partition_of(&self, id: &str) -> Option<Arc<Partition>> {
        let parts = self.partitions.read().unwrap_or_else(|p| p.into_inner());
        let index = crate::record_fields::partition_for(id, parts.len() as i32);
        parts.get(index as usize).cloned()
    }

    /// The id's partition when this broker coordinates `id` now, with the coordinator
    /// epoch (the partition's Raft term, which markers carry).
    fn serves(&self, id: &str) -> Result<(Arc<Partition>, i32), TxnError> {
        let p = self
            .partition_of(id)
            .ok_or(TxnError::CoordinatorNotAvailable)?;
        match self.loaded.serves(&p) {
            Ok(term) => Ok((p, i32::try_from(term).unwrap_or(i32::MAX))),
            Err(NotServed::NotLeader) => Err(TxnError::NotCoordinator),
            Err(NotServed::Loading) => Err(TxnError::LoadInProgress),
        }
    }

    fn entry(&self, id: &str) -> Arc<Entry> {
        self.txns().entry(id.to_string()).or_default().clone()
    }

    /// The id's entry with its change lock, when this broker serves the id and no
    /// other change of it is under way.
    fn claim(&self, id: &str) -> Result<Claim, TxnError> {
        if id.is_empty() || id.len() > MAX_ID_BYTES {
            return Err(TxnError::InvalidId(id.chars().take(64).collect()));
        }
        let (partition, coordinator_epoch) = self.serves(id)?;
        let entry = self.entry(id);
        let busy = entry
            .busy
            .clone()
            .try_lock_owned()
            .map_err(|_| TxnError::Concurrent)?;
        Ok(Claim {
            entry,
            _busy: busy,
            partition,
            coordinator_epoch,
        })
    }

    /// Makes `value` (`None`: a tombstone) the id's durable state.
    async fn persist(p: &Partition, id: &str, value: Option<&TxnValue>) -> Result<(), TxnError> {
        let record = (Some(records::encode_key(id)), value.map(TxnValue::encode));
        let batch = crate::internal_batch::encode(vec![record], now_ms()).map_err(|_| {
            PartitionError::InvalidBatch("the coordinator's record does not encode")
        })?;
        let at = p.append_own(batch.into()).await?.last_offset;
        p.wait_durable(at, WRITE_TIMEOUT).await?;
        Ok(())
    }

    /// InitProducerId with a transactional id: the producer id and epoch to use.
    pub async fn init_producer_id(
        &self,
        broker: &Arc<Broker>,
        id: &str,
        timeout_ms: i32,
        given: (i64, i16),
    ) -> Result<(i64, i16), TxnError> {
        if !(1..=self.config.max_timeout_ms).contains(&timeout_ms) {
            return Err(TxnError::InvalidTimeout {
                timeout_ms,
                max_ms: self.config.max_timeout_ms,
            });
        }
        let c = self.claim(id)?;
        let current = c.entry.get();
        let now = now_ms();
        let next = match (state::init_step(current.as_ref(), given)?, current) {
            (InitStep::BumpEpoch, Some(v)) => {
                state::empty(v.producer_id, v.producer_epoch + 1, timeout_ms, now)
            }
            (InitStep::AbortOngoing, Some(v)) => {
                let aborting = state::fence_and_abort(&v, now);
                Self::persist(&c.partition, id, Some(&aborting)).await?;
                c.entry.set(Some(aborting));
                info!(
                    transactional_id = id,
                    "aborting the ongoing transaction of a fenced producer"
                );
                decided(broker, false, "fenced");
                markers::finish_later(broker, id, c);
                return Err(TxnError::Concurrent);
            }
            _ => {
                let pid = broker
                    .cluster
                    .allocate_producer_id()
                    .await
                    .map_err(|e| TxnError::ProducerIds(e.to_string()))?;
                state::empty(pid, 0, timeout_ms, now)
            }
        };
        Self::persist(&c.partition, id, Some(&next)).await?;
        c.entry.set(Some(next.clone()));
        Ok((next.producer_id, next.producer_epoch))
    }

    /// Refuses a partition a transaction cannot include: unknown, or internal.
    pub fn check_partition(
        &self,
        topics: &Topics,
        topic: &str,
        index: i32,
    ) -> Result<(), TxnError> {
        markers::check_partition(topics, topic, index, false)
    }

    /// AddPartitionsToTxn (the caller checked each partition with
    /// [`TxnCoordinator::check_partition`]).
    pub async fn add_partitions(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: BTreeSet<(String, i32)>,
    ) -> Result<(), TxnError> {
        let c = self.claim(id)?;
        let current = c.entry.get().ok_or(TxnError::InvalidProducerIdMapping)?;
        let Some(next) =
            state::add_partitions(&current, producer_id, epoch, &partitions, now_ms())?
        else {
            return Ok(());
        };
        Self::persist(&c.partition, id, Some(&next)).await?;
        c.entry.set(Some(next));
        Ok(())
    }

    /// AddOffsetsToTxn: adds `group`'s `__consumer_offsets` partition to the producer's
    /// ongoing transaction, for the offsets it will commit there (TxnOffsetCommit).
    pub async fn add_offsets(
        &self,
        topics: &Topics,
        id: &str,
        producer_id: i64,
        epoch: i16,
        offsets_partition: i32,
    ) -> Result<(), TxnError> {
        markers::check_partition(topics, OFFSETS_TOPIC, offsets_partition, true)?;
        let partitions = BTreeSet::from([(OFFSETS_TOPIC.to_string(), offsets_partition)]);
        self.add_partitions(id, producer_id, epoch, partitions)
            .await
    }

    /// EndTxn: answered once the decision is durable; the markers follow.
    pub async fn end_txn(
        &self,
        broker: &Arc<Broker>,
        id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> Result<(), TxnError> {
        let c = self.claim(id)?;
        let current = c.entry.get().ok_or(TxnError::InvalidProducerIdMapping)?;
        match state::end(&current, producer_id, epoch, commit, now_ms())? {
            EndStep::AlreadyDone => Ok(()),
            EndStep::Prepare(next) => {
                Self::persist(&c.partition, id, Some(&next)).await?;
                c.entry.set(Some(next));
                decided(broker, commit, "client");
                markers::finish_later(broker, id, c);
                Ok(())
            }
        }
    }

    /// [`TxnCoordinator::verify`] wherever `id`'s coordinator is: here, or asked with a
    /// verification call ([`remote`]).
    pub async fn verify_anywhere(
        &self,
        broker: &Broker,
        id: &str,
        producer: (i64, i16),
        (topic, partition): (&str, i32),
    ) -> Result<(), TxnError> {
        match self.verify(id, producer.0, producer.1, topic, partition) {
            Err(TxnError::NotCoordinator) => {}
            local => return local,
        }
        let p = self
            .partition_of(id)
            .ok_or(TxnError::CoordinatorNotAvailable)?;
        let node = broker
            .cluster
            .leader_of(p.group(), p.view())
            .filter(|&n| n != broker.cluster.node_id)
            .ok_or(TxnError::CoordinatorNotAvailable)?;
        remote::verify(broker, node, id, producer, (topic, partition)).await
    }

    /// Whether producer `(producer_id, epoch)` of `id` may write a transactional batch
    /// to `topic`-`partition` now: it has that partition in its ongoing transaction.
    pub fn verify(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), TxnError> {
        self.serves(id)?;
        let v = self
            .txns()
            .get(id)
            .and_then(|e| e.get())
            .ok_or(TxnError::InvalidProducerIdMapping)?;
        if v.producer_id != producer_id {
            return Err(TxnError::InvalidProducerIdMapping);
        }
        if v.producer_epoch != epoch {
            return Err(TxnError::ProducerFenced);
        }
        let added = v.partitions.contains(&(topic.to_string(), partition));
        if v.status != TxnStatus::Ongoing || !added {
            return Err(TxnError::NotInTransaction);
        }
        Ok(())
    }

    /// Aborts ongoing transactions past their timeout, at a bumped epoch.
    async fn abort_timed_out(&self, broker: &Arc<Broker>) {
        let now = now_ms();
        for (id, v) in self.snapshot() {
            if !state::timed_out(&v, now) {
                continue;
            }
            let Ok(c) = self.claim(&id) else {
                continue;
            };
            let Some(current) = c.entry.get().filter(|v| state::timed_out(v, now)) else {
                continue;
            };
            let aborting = state::fence_and_abort(&current, now);
            match Self::persist(&c.partition, &id, Some(&aborting)).await {
                Ok(()) => {
                    info!(transactional_id = %id, timeout_ms = current.timeout_ms, "aborting a transaction past its timeout");
                    c.entry.set(Some(aborting));
                    decided(broker, false, "timeout");
                    markers::finish_later(broker, &id, c);
                }
                Err(e) => {
                    warn!(transactional_id = %id, error = %e, "aborting a timed-out transaction failed; will retry")
                }
            }
        }
    }

    /// Forgets ids idle past `transactional.id.expiration.ms`.
    async fn expire_ids(&self) {
        let now = now_ms();
        let expiration = self.config.id_expiration.as_millis() as i64;
        for (id, v) in self.snapshot() {
            if !state::expired(&v, now, expiration) {
                continue;
            }
            let Ok(c) = self.claim(&id) else {
                continue;
            };
            if !c
                .entry
                .get()
                .is_some_and(|v| state::expired(&v, now, expiration))
            {
                continue;
            }
            match Self::persist(&c.partition, &id, None).await {
                Ok(()) => {
                    c.entry.set(None);
                    self.txns().remove(&id);
                    info!(transactional_id = %id, "transactional id expired");
                }
                Err(e) => {
                    warn!(transactional_id = %id, error = %e, "expiring a transactional id failed; will retry")
                }
            }
        }
    }

    /// Finishes prepared transactions nobody is finishing (loaded from the log, or
    /// whose markers failed).
    fn resume_prepared(&self, broker: &Arc<Broker>) {
        for (id, v) in self.snapshot() {
            if !matches!(v.status, TxnStatus::PrepareCommit | TxnStatus::PrepareAbort) {
                continue;
            }
            if let Ok(c) = self.claim(&id) {
                markers::finish_later(broker, &id, c);
            }
        }
    }

    /// How many ids coordinated here are in each state (every state listed).
    pub fn state_counts(&self) -> Vec<(&'static str, usize)> {
        let all = [
            TxnStatus::Empty,
            TxnStatus::Ongoing,
            TxnStatus::PrepareCommit,
            TxnStatus::PrepareAbort,
            TxnStatus::CompleteCommit,
            TxnStatus::CompleteAbort,
        ];
        let values = self.snapshot();
        all.iter()
            .map(|&s| {
                (
                    s.name(),
                    values.iter().filter(|(_, v)| v.status == s).count(),
                )
            })
            .collect()
    }

    fn snapshot(&self) -> Vec<(String, TxnValue)> {
        let entries: Vec<(String, Arc<Entry>)> = self
            .txns()
            .iter()
            .map(|(id, e)| (id.clone(), e.clone()))
            .collect();
        entries
            .into_iter()
            .filter_map(|(id, e)| e.get().map(|v| (id, v)))
            .collect()
    }

    /// Starts creating `__transaction_state` in the background unless that is under
    /// way (FindCoordinator answers COORDINATOR_NOT_AVAILABLE meanwhile; the client
    /// asks again).
    pub fn ensure_topic(self: &Arc<Self>, broker: &Arc<Broker>) {
        if self
            .creating
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            return;
        }
        let (txns, broker) = (self.clone(), broker.clone());
        tokio::spawn(async move {
            let _ = txns.create_topic(&broker.cluster, &broker.topics).await;
            txns.creating
                .store(false, std::sync::atomic::Ordering::Release);
        });
    }

    /// Creates `__transaction_state` (compacted, `transaction.state.log.num.partitions`
    /// partitions, the default replication factor up to three) unless it exists; the
    /// coordinator takes its partitions at its next tick.
    async fn create_topic(&self, cluster: &Cluster, topics: &Topics) -> Result<(), TxnError> {
        if topics.get(TXN_STATE_TOPIC).is_some() {
            return Ok(());
        }
        let overrides = BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            (
                "segment.bytes".to_string(),
                self.config.state_topic_segment_bytes.to_string(),
            ),
        ]);
        let created = cluster
            .create_topic(
                topics,
                TXN_STATE_TOPIC,
                self.config.state_topic_partitions,
                -1,
                overrides,
            )
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(_) if topics.get(TXN_STATE_TOPIC).is_some() => Ok(()),
            Err(e) => {
                warn!(error = %e, "creating {TXN_STATE_TOPIC} failed");
                Err(TxnError::CoordinatorNotAvailable)
            }
        }
    }

    /// Follows leaderships, and on their intervals aborts timed-out transactions and
    /// expires idle ids, until shutdown.
    pub async fn run(self: Arc<Self>, broker: Arc<Broker>, mut shutdown: Shutdown) {
        let mut tick = tokio::time::interval(TICK_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_abort_check = Instant::now();
        let mut last_expiry_check = Instant::now();
        let mut last_resume = Instant::now();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.wait() => return,
            }
            if self.partitions().is_empty() {
                match broker.topics.get(TXN_STATE_TOPIC) {
                    Some(t) => {
                        *self.partitions.write().unwrap_or_else(|p| p.into_inner()) =
                            t.partitions.clone();
                    }
                    None => continue,
                }
            }
            // Replaying a partition reads its log: off the async threads.
            tokio::task::block_in_place(|| self.follow_leadership());
            if last_resume.elapsed() >= RESUME_INTERVAL {
                last_resume = Instant::now();
                self.resume_prepared(&broker);
            }
            if last_abort_check.elapsed() >= self.config.abort_check_interval {
                last_abort_check = Instant::now();
                self.abort_timed_out(&broker).await;
            }
            if last_expiry_check.elapsed() >= self.config.expiry_check_interval {
                last_expiry_check = Instant::now();
                self.expire_ids().await;
            }
        }
    }
}

/// Counts a transaction decided here (`strata_transactions_ended`).
fn decided(broker: &Broker, commit: bool, reason: &str) {
    let labels = crate::metrics::TxnEndLabels {
        outcome: if commit { "commit" } else { "abort" }.to_string(),
        reason: reason.to_string(),
    };
    broker.metrics.transaction_ends.get_or_create(&labels).inc();
}
