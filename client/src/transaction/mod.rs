//! A transactional producer (Kafka's transactions): records sent to any partitions, and
//! a consumer group's offsets, become visible to `read_committed` consumers all at once
//! on [`TransactionalProducer::commit`], or never, on [`TransactionalProducer::abort`].
//!
//! - [`TransactionalProducer::new`] finds the coordinator of the `transactional.id` and
//!   takes its producer id and epoch (InitProducerId), which fences any older producer
//!   with the same id: its sends and commits fail from then on, and a transaction it
//!   left open is aborted.
//! - Each partition joins the transaction (AddPartitionsToTxn) before its first record
//!   is handed to the producer, so the broker takes its transactional batches; the
//!   partition of a record without one is chosen here (its key's hash, or round robin).
//! - Records go through an idempotent [`Producer`] that writes under the transaction's
//!   producer id and epoch. It never takes another id itself: where an idempotent
//!   producer would, the transaction's pending records fail, the commit is refused and
//!   the transaction must be aborted; the abort then takes a bumped epoch (KIP-360) and
//!   a fresh producer.
//! - [`TransactionalProducer::commit`] waits for every record of the transaction, and
//!   commits (EndTxn) only when all were acknowledged. Its answer means the decision
//!   is durable; the markers that make the records visible follow.
//! - A producer that was fenced (PRODUCER_FENCED, INVALID_PRODUCER_EPOCH) or refused
//!   for the id can only be closed.

pub mod admin;
mod calls;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, EndTxnRequest, GroupId,
    InitProducerIdRequest, ProducerId, TopicName, TransactionalId, TxnOffsetCommitRequest,
};
use kafka_protocol::protocol::StrBytes;
use tracing::{debug, info};

use crate::batch::ProducerIdentity;
use crate::cluster::Cluster;
use crate::error::{Error, Result, INVALID_PRODUCER_EPOCH, PRODUCER_FENCED};
use crate::group::coordinator::{CoordinatorKind, CoordinatorLink};
use crate::partitioner::partition_for_key;
use crate::producer::{Acks, Delivery, Producer, ProducerConfig};
use crate::record::ProducerRecord;
use crate::topic_partition::TopicPartition;
use calls::call;

/// A transactional producer's own settings.
#[derive(Debug, Clone)]
pub struct TransactionConfig {
    /// `transactional.id`: the producer's identity across restarts.
    pub transactional_id: String,
    /// `transaction.timeout.ms`: the coordinator aborts a transaction open longer.
    pub timeout: Duration,
}

impl TransactionConfig {
    /// `transactional_id` with the Java client's default timeout (60 s).
    pub fn new(transactional_id: impl Into<String>) -> TransactionConfig {
        TransactionConfig {
            transactional_id: transactional_id.into(),
            timeout: Duration::from_secs(60),
        }
    }
}

/// The group whose offsets a transaction commits, as its consumer knows it (KIP-447:
/// the coordinator refuses a member that is no longer in the group's generation).
#[derive(Debug, Clone)]
pub struct GroupMetadata {
    /// The group id.
    pub group_id: String,
    /// The generation the consumer is in (-1 for offsets committed without a member).
    pub generation_id: i32,
    /// Its member id ("" without a member).
    pub member_id: String,
    /// Its `group.instance.id`, if a static member.
    pub group_instance_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Ready,
    InTransaction,
    /// A record of the transaction failed: only an abort is possible.
    MustAbort(String),
    /// Fenced or refused for good.
    Failed(String),
}

/// See the module documentation.
#[derive(Debug)]
pub struct TransactionalProducer {
    cluster: Arc<Cluster>,
    config: ProducerConfig,
    txn: TransactionConfig,
    link: CoordinatorLink,
    group_links: HashMap<String, CoordinatorLink>,
    identity: ProducerIdentity,
    producer: Producer,
    state: State,
    /// What the ongoing transaction has added at the coordinator.
    partitions: HashSet<(Arc<str>, i32)>,
    groups: HashSet<String>,
    /// The last transaction's partitions: added with the first partition of the next
    /// one, in the same request (a steady producer writes the same partitions in each
    /// transaction, and each addition is a durable write at the coordinator).
    previous: HashSet<(Arc<str>, i32)>,
    /// Per topic, the partition records without key or partition go to, and the
    /// bytes left before the next one takes over (a batch's worth: as the sticky
    /// partitioner, so batches fill one at a time).
    sticky: HashMap<Arc<str>, (i32, usize)>,
}

impl TransactionalProducer {
    /// Takes the transactional id's producer id and epoch, fencing older producers of
    /// the id. `config` is used with idempotence and acks=all whatever it says.
    pub async fn new(
        cluster: Arc<Cluster>,
        config: ProducerConfig,
        txn: TransactionConfig,
    ) -> Result<TransactionalProducer> {
        let config = ProducerConfig {
            acks: Acks::All,
            idempotent: true,
            ..config
        };
        let mut link = CoordinatorLink::new(CoordinatorKind::Transaction, &txn.transactional_id);
        let identity = init(&cluster, &mut link, &txn, None).await?;
        let id = &txn.transactional_id;
        let producer = Producer::with_identity(Arc::clone(&cluster), config.clone(), identity, id)?;
        Ok(TransactionalProducer {
            cluster,
            config,
            txn,
            link,
            group_links: HashMap::new(),
            identity,
            producer,
            state: State::Ready,
            partitions: HashSet::new(),
            groups: HashSet::new(),
            previous: HashSet::new(),
            sticky: HashMap::new(),
        })
    }

    /// The producer id and epoch in use.
    pub fn identity(&self) -> ProducerIdentity {
        self.identity
    }

    fn refuse(&self, reason: &str) -> Error {
        Error::Transaction {
            transactional_id: self.txn.transactional_id.clone(),
            reason: reason.to_string(),
        }
    }

    /// Starts a transaction (nothing is sent until the first record or offsets).
    pub fn begin(&mut self) -> Result<()> {
        match &self.state {
            State::Ready => {
                self.state = State::InTransaction;
                Ok(())
            }
            State::InTransaction => Err(self.refuse("a transaction is already open")),
            State::MustAbort(why) | State::Failed(why) => Err(self.refuse(why)),
        }
    }

    fn check_open(&self) -> Result<()> {
        match &self.state {
            State::InTransaction => Ok(()),
            State::Ready => Err(self.refuse("no transaction is open (begin one first)")),
            State::MustAbort(why) | State::Failed(why) => Err(self.refuse(why)),
        }
    }

    /// Hands `record` to the transaction and returns its [`Delivery`]. Waits for the
    /// coordinator the first time the transaction writes to the record's partition.
    /// Awaiting the delivery is optional: [`TransactionalProducer::commit`] refuses to
    /// commit a transaction with a failed record either way.
    pub async fn send(&mut self, mut record: ProducerRecord) -> Result<Delivery> {
        self.check_open()?;
        let partition = match record.partition {
            Some(p) => p,
            None => self.choose_partition(&record).await?,
        };
        record.partition = Some(partition);
        let tp = (Arc::clone(&record.topic), partition);
        if !self.partitions.contains(&tp) {
            let mut adding = vec![tp.clone()];
            if self.partitions.is_empty() {
                adding.extend(self.previous.drain().filter(|p| *p != tp));
            }
            self.add_partitions(&adding).await?;
            self.partitions.extend(adding);
        }
        self.producer.enqueue(record).await
    }

    async fn choose_partition(&mut self, record: &ProducerRecord) -> Result<i32> {
        if self.cluster.metadata().topic(&record.topic).is_err() {
            let auto_create = self.config.allow_auto_create_topics;
            let topic = [record.topic.to_string()];
            self.cluster
                .refresh_metadata(Some(&topic), auto_create)
                .await?;
        }
        let count = self
            .cluster
            .metadata()
            .partition_count(&record.topic)?
            .max(1);
        if let Some(key) = &record.key {
            return Ok(partition_for_key(key, count));
        }
        let batch = self.config.batch_size_bytes;
        let size = record.size_estimate_bytes();
        let (partition, left) = self
            .sticky
            .entry(Arc::clone(&record.topic))
            .or_insert((0, batch));
        if *left < size {
            *partition = (*partition + 1) % count;
            *left = batch;
        }
        *left = left.saturating_sub(size);
        Ok(*partition % count)
    }

    async fn add_partitions(&mut self, partitions: &[(Arc<str>, i32)]) -> Result<()> {
        let ProducerIdentity {
            producer_id,
            producer_epoch,
            ..
        } = self.identity;
        let id = self.txn.transactional_id.clone();
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (topic, partition) in partitions {
            by_topic.entry(topic).or_default().push(*partition);
        }
        let topics: Vec<AddPartitionsToTxnTopic> = by_topic
            .into_iter()
            .map(|(topic, indexes)| {
                AddPartitionsToTxnTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(indexes)
            })
            .collect();
        let build = |_version| {
            AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(TransactionalId(StrBytes::from_string(
                    id.clone(),
                )))
                .with_v3_and_below_producer_id(ProducerId(producer_id))
                .with_v3_and_below_producer_epoch(producer_epoch)
                .with_v3_and_below_topics(topics.clone())
        };
        let code = |r: &kafka_protocol::messages::AddPartitionsToTxnResponse| {
            r.results_by_topic_v3_and_below
                .iter()
                .flat_map(|t| t.results_by_partition.iter())
                .map(|p| p.partition_error_code)
                .find(|&c| c != 0)
                .unwrap_or(r.error_code)
        };
        let what = format!("add {} partitions to the transaction", partitions.len());
        let answered = self.coordinator(&what, build, code).await;
        self.settle(answered.map(drop))
    }

    /// Sends a request to the transaction coordinator (see [`calls::call`]).
    async fn coordinator<R: crate::connection::Request>(
        &mut self,
        what: &str,
        build: impl Fn(i16) -> R,
        code: impl Fn(&R::Response) -> i16,
    ) -> Result<R::Response> {
        let bound = self.cluster.request_timeout();
        call(&self.cluster, &mut self.link, bound, what, build, code).await
    }

    /// A fencing error leaves the producer unusable.
    fn settle(&mut self, result: Result<()>) -> Result<()> {
        if let Err(e) = &result {
            if matches!(
                e.kafka_code(),
                Some(PRODUCER_FENCED | INVALID_PRODUCER_EPOCH)
            ) {
                self.state = State::Failed(format!("fenced by a newer producer: {e}"));
            }
        }
        result
    }

    /// Adds `offsets` (the next offset to read, per partition) of `group` to the
    /// transaction: they are committed with it, and only then.
    pub async fn send_offsets(
        &mut self,
        group: &GroupMetadata,
        offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<()> {
        self.check_open()?;
        if !self.groups.contains(&group.group_id) {
            let (pid, epoch) = (self.identity.producer_id, self.identity.producer_epoch);
            let id = self.txn.transactional_id.clone();
            let build = |_version| {
                AddOffsetsToTxnRequest::default()
                    .with_transactional_id(TransactionalId(StrBytes::from_string(id.clone())))
                    .with_producer_id(ProducerId(pid))
                    .with_producer_epoch(epoch)
                    .with_group_id(GroupId(StrBytes::from_string(group.group_id.clone())))
            };
            let code = |r: &kafka_protocol::messages::AddOffsetsToTxnResponse| r.error_code;
            let answered = self
                .coordinator("add offsets to the transaction", build, code)
                .await;
            self.settle(answered.map(drop))?;
            self.groups.insert(group.group_id.clone());
        }
        let committed = self.commit_offsets(group, offsets).await;
        self.settle(committed)
    }

    async fn commit_offsets(
        &mut self,
        group: &GroupMetadata,
        offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<()> {
        let mut by_topic: BTreeMap<&str, Vec<TxnOffsetCommitRequestPartition>> = BTreeMap::new();
        for (tp, offset) in offsets {
            by_topic.entry(&tp.topic).or_default().push(
                TxnOffsetCommitRequestPartition::default()
                    .with_partition_index(tp.partition)
                    .with_committed_offset(*offset)
                    .with_committed_leader_epoch(-1),
            );
        }
        let topics: Vec<TxnOffsetCommitRequestTopic> = by_topic
            .into_iter()
            .map(|(t, partitions)| {
                TxnOffsetCommitRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_string(t.to_string())))
                    .with_partitions(partitions)
            })
            .collect();
        let s = |v: &str| StrBytes::from_string(v.to_string());
        let request = TxnOffsetCommitRequest::default()
            .with_transactional_id(TransactionalId(s(&self.txn.transactional_id)))
            .with_group_id(GroupId(s(&group.group_id)))
            .with_producer_id(ProducerId(self.identity.producer_id))
            .with_producer_epoch(self.identity.producer_epoch)
            .with_generation_id(group.generation_id)
            .with_member_id(s(&group.member_id))
            .with_group_instance_id(group.group_instance_id.as_deref().map(s))
            .with_topics(topics);
        let code = |r: &kafka_protocol::messages::TxnOffsetCommitResponse| {
            r.topics
                .iter()
                .flat_map(|t| t.partitions.iter())
                .map(|p| p.error_code)
                .find(|&c| c != 0)
                .unwrap_or(0)
        };
        let link = self
            .group_links
            .entry(group.group_id.clone())
            .or_insert_with(|| CoordinatorLink::new(CoordinatorKind::Group, &group.group_id));
        let bound = self.cluster.request_timeout();
        let what = format!(
            "commit group {:?}'s offsets in the transaction",
            group.group_id
        );
        call(&self.cluster, link, bound, &what, |_| request.clone(), code)
            .await
            .map(drop)
    }

    /// Commits the transaction once every record of it is acknowledged. When one
    /// failed, nothing is committed and the transaction must be aborted.
    pub async fn commit(&mut self) -> Result<()> {
        self.check_open()?;
        self.producer.flush().await?;
        if let Some(e) = self.producer.take_failure() {
            let why = format!("a record of the transaction failed ({e}); abort it");
            self.state = State::MustAbort(why.clone());
            return Err(self.refuse(&why));
        }
        self.end(true).await
    }

    /// Aborts the transaction: its records and offsets are never visible to
    /// `read_committed` consumers. After a failed record this also bumps the
    /// producer's epoch and starts a fresh producer.
    pub async fn abort(&mut self) -> Result<()> {
        match &self.state {
            State::Failed(why) => return Err(self.refuse(why)),
            State::Ready => return Err(self.refuse("no transaction is open")),
            State::InTransaction | State::MustAbort(_) => {}
        }
        // The records in flight settle first. One that failed leaves the partition's
        // sequence out of step with the broker: the producer then starts afresh.
        self.producer.flush().await?;
        let failed =
            self.producer.take_failure().is_some() || matches!(self.state, State::MustAbort(_));
        self.end(false).await?;
        if failed {
            self.renew().await?;
        }
        Ok(())
    }

    /// EndTxn, unless the transaction wrote nothing (then there is nothing to end).
    async fn end(&mut self, commit: bool) -> Result<()> {
        if !self.partitions.is_empty() || !self.groups.is_empty() {
            let (pid, epoch) = (self.identity.producer_id, self.identity.producer_epoch);
            let id = self.txn.transactional_id.clone();
            let build = |_version| {
                EndTxnRequest::default()
                    .with_transactional_id(TransactionalId(StrBytes::from_string(id.clone())))
                    .with_producer_id(ProducerId(pid))
                    .with_producer_epoch(epoch)
                    .with_committed(commit)
            };
            let code = |r: &kafka_protocol::messages::EndTxnResponse| r.error_code;
            let what = if commit { "commit" } else { "abort" };
            let answered = self.coordinator(what, build, code).await;
            self.settle(answered.map(drop))?;
        }
        debug!(transactional_id = %self.txn.transactional_id, commit, "transaction ended");
        self.previous = std::mem::take(&mut self.partitions);
        self.groups.clear();
        self.state = State::Ready;
        Ok(())
    }

    /// After an aborted transaction whose records failed: the next epoch of the same
    /// producer id (KIP-360), and a producer whose sequences start again.
    async fn renew(&mut self) -> Result<()> {
        let current = Some(self.identity);
        let identity = init(&self.cluster, &mut self.link, &self.txn, current).await;
        let identity = match identity {
            Ok(identity) => identity,
            Err(e) => {
                self.state = State::Failed(format!("cannot bump the producer epoch: {e}"));
                return Err(e);
            }
        };
        let id = &self.txn.transactional_id;
        let cluster = Arc::clone(&self.cluster);
        let fresh = Producer::with_identity(cluster, self.config.clone(), identity, id)?;
        let old = std::mem::replace(&mut self.producer, fresh);
        old.close().await?;
        info!(transactional_id = %self.txn.transactional_id, epoch = identity.producer_epoch, "producer epoch bumped");
        self.identity = identity;
        Ok(())
    }

    /// Closes the producer. An open transaction is left to the coordinator, which
    /// aborts it after its timeout or when the id's next producer starts.
    pub async fn close(self) -> Result<()> {
        self.producer.close().await
    }
}

/// InitProducerId for the transactional id: a new epoch (`current`: the one to bump).
async fn init(
    cluster: &Cluster,
    link: &mut CoordinatorLink,
    txn: &TransactionConfig,
    current: Option<ProducerIdentity>,
) -> Result<ProducerIdentity> {
    let timeout_ms = i32::try_from(txn.timeout.as_millis()).unwrap_or(i32::MAX);
    let (pid, epoch) = current.map_or((-1, -1), |c| (c.producer_id, c.producer_epoch));
    let build = |_version| {
        InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(StrBytes::from_string(
                txn.transactional_id.clone(),
            ))))
            .with_transaction_timeout_ms(timeout_ms)
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
    };
    let code = |r: &kafka_protocol::messages::InitProducerIdResponse| r.error_code;
    // A fenced predecessor's transaction is aborted first: the answer is
    // CONCURRENT_TRANSACTIONS until its markers are written, so allow for that.
    let bound = cluster.request_timeout() * 2;
    let response = call(cluster, link, bound, "InitProducerId", build, code).await?;
    Ok(ProducerIdentity {
        producer_id: response.producer_id.0,
        producer_epoch: response.producer_epoch,
        transactional: true,
    })
}
