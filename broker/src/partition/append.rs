//! Appending on a partition's leader: a client's batch (Produce), a batch the broker
//! wrote itself (the group coordinator's records) and a transaction marker. All go
//! through one path under the partition's append lock: the producer state is checked,
//! the batch proposed to the Raft group, and once the leader appended it (its offsets
//! known) the producer and transaction state record it.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use log_store::{BatchHeader, LogError};
use replication::node::{Ack, Tracked};

use super::{
    check_produced_header, corrupt_or, loaded, proposed, stamp_append_time, Appended, Mode,
    Partition, PartitionError, PartitionResult, ReplicaAppend, REPLICA_APPEND_TIMEOUT,
};
use crate::control_batch::{self, Marker};
use crate::producer_state::{SequenceCheck, SequenceRefusal};

/// How a client's batch is appended.
#[derive(Debug, Clone, Copy)]
pub struct Produce {
    /// Replicas that must be in sync: the topic's `min.insync.replicas` for acks=all,
    /// otherwise 1.
    pub min_in_sync: u32,
    /// The caller waits for the commit now (acks=all).
    pub awaited: bool,
    /// Stamp the batch with the append time (LogAppendTime topics).
    pub stamp: bool,
    /// The batch may be transactional: its transaction was verified.
    pub transaction_verified: bool,
}

impl Default for Produce {
    fn default() -> Self {
        Produce {
            min_in_sync: 1,
            awaited: false,
            stamp: false,
            transaction_verified: false,
        }
    }
}

/// Who asks for a transaction marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerFrom {
    /// The transaction coordinator, ending a transaction it decided.
    Coordinator,
    /// An operator aborting a hanging transaction on one partition.
    Admin,
}

impl MarkerFrom {
    fn origin(self, marker: Marker) -> Origin {
        match self {
            MarkerFrom::Coordinator => Origin::Marker(marker),
            MarkerFrom::Admin => Origin::AdminAbort(marker),
        }
    }
}

/// An operator's abort is taken only for a transaction open here, at the epoch of the
/// producer that opened it.
fn admin_abort_check(state: &super::ReplicaState, h: &BatchHeader) -> SequenceCheck {
    let producer_id = h.producer_id;
    if !state.txns.is_open(producer_id) {
        return SequenceCheck::Refuse(SequenceRefusal::NoOpenTransaction { producer_id });
    }
    let current = state.producers.epoch_of(producer_id);
    if current != Some(h.producer_epoch) {
        return SequenceCheck::Refuse(SequenceRefusal::NotCurrentEpoch {
            producer_id,
            epoch: h.producer_epoch,
            current,
        });
    }
    SequenceCheck::Append
}

/// Who wrote a batch.
#[derive(Debug, Clone, Copy)]
enum Origin {
    /// A producer (Produce): checked against its producer's sequence.
    Client,
    /// The broker itself: group records, offsets in a transaction.
    Broker,
    /// A transaction coordinator's marker.
    Marker(Marker),
    /// An operator's abort marker (WriteTxnMarkers on the Kafka port): taken only for
    /// a producer with a transaction open here, at its current epoch.
    AdminAbort(Marker),
}

impl Origin {
    fn marker(self) -> Option<Marker> {
        match self {
            Origin::Marker(marker) | Origin::AdminAbort(marker) => Some(marker),
            Origin::Client | Origin::Broker => None,
        }
    }
}

impl Partition {
    /// Produce on a cluster partition's leader: checks that at least `min_in_sync`
    /// replicas are in sync (an acks=all produce passes the topic's
    /// `min.insync.replicas`, anything else 1), the batch and the producer's sequence,
    /// proposes the batch to the group, and returns once the leader appended it (its
    /// offsets assigned), with a receiver for its commit. `awaited`: the caller waits for
    /// that commit now (acks=all), so a lone voter flushes at once; otherwise it may hold
    /// the flush briefly (`replication::node::LAZY_FLUSH_DELAY`) unless a Fetch long poll
    /// waits on the partition. `stamp`: the topic is LogAppendTime; the batch is
    /// stamped with the clock under the append lock, so stamps follow offsets. A
    /// transactional batch is taken only when the caller verified, with the transaction
    /// coordinator, that its producer has this partition in an ongoing transaction.
    pub async fn append_replica(
        &self,
        batch: Bytes,
        produce: Produce,
    ) -> PartitionResult<ReplicaAppend> {
        let header = check_produced_header(&batch, produce.transaction_verified)?;
        self.append_as(batch, header, produce, Origin::Client).await
    }

    /// The append path of every batch, by who wrote it.
    async fn append_as(
        &self,
        batch: Bytes,
        header: BatchHeader,
        produce: Produce,
        origin: Origin,
    ) -> PartitionResult<ReplicaAppend> {
        let Produce {
            min_in_sync,
            awaited,
            stamp,
            ..
        } = produce;
        let Mode::Hosted(h) = &self.mode else {
            return Err(PartitionError::NotLeader);
        };
        self.check_tree_agrees()?;
        self.check_in_sync(h, min_in_sync)?;
        let _appending = h.appending.lock().await;
        let view = *h.view.borrow();
        if !view.is_leader {
            return Err(PartitionError::NotLeader);
        }
        if h.closed.load(Ordering::Acquire) {
            return Err(PartitionError::NotLeader);
        }
        let check = {
            let state = loaded(&h.state, &h.log, view.term, &self.shared.metrics)?;
            // The broker's own batches carry no sequence (a marker ends its producer's
            // transaction, offsets in a transaction belong to it) and are never retried.
            match origin {
                Origin::Client => state.producers.check(&header),
                Origin::AdminAbort(_) => admin_abort_check(&state, &header),
                Origin::Broker | Origin::Marker(_) => SequenceCheck::Append,
            }
        };
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
                    log_append_time_ms: None,
                });
            }
            SequenceCheck::Append => {}
        }
        // The Raft entry is appended by the node without another check: validate the
        // whole batch (CRC-32C included) here, and its size (replicas take whatever
        // their leader appended). Stamping checks the CRC before it writes a new one.
        let (batch, log_append_time_ms) = if stamp {
            let (stamped, at_ms) = stamp_append_time(&batch)?;
            (stamped, Some(at_ms))
        } else {
            BatchHeader::parse_validated(&batch)
                .map_err(|e| PartitionError::Log(LogError::CorruptBatch(e)))?;
            (batch, None)
        };
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
        let tracked: Tracked = proposed(h.node.propose_tracked(h.group, batch, commit)).await?;
        let base_offset = tracked.appended.base_offset;
        let last_offset = base_offset + header.last_offset_delta.max(0) as u64;
        loaded(&h.state, &h.log, view.term, &self.shared.metrics)?.record(
            &header,
            base_offset,
            last_offset,
            origin.marker(),
        );
        self.shared.metrics.appended_batches.inc();
        Ok(ReplicaAppend {
            appended: Appended {
                base_offset,
                last_offset,
                duplicate: false,
            },
            committed: Some(tracked.committed),
            log_append_time_ms,
        })
    }

    /// Appends one batch the broker wrote, from a synchronous caller (the group
    /// coordinator: group records, offsets, transactional offsets) on this
    /// partition's leader, and returns once the leader appended it; the caller waits
    /// for its commit with [`Partition::wait_durable`], which hurries the flush. Only reached
    /// from the broker's multi-threaded runtime, where blocking in place hands this
    /// worker's other tasks to another thread.
    pub fn append(&self, batch: &[u8]) -> PartitionResult<Appended> {
        let handle =
            tokio::runtime::Handle::try_current().map_err(|_| PartitionError::NotLeader)?;
        if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
            return Err(PartitionError::NotLeader);
        }
        let append = self.append_own(Bytes::copy_from_slice(batch));
        tokio::task::block_in_place(|| handle.block_on(append))
    }

    /// [`Partition::append`] for an asynchronous caller (the transaction coordinator).
    pub async fn append_own(&self, batch: Bytes) -> PartitionResult<Appended> {
        let header = BatchHeader::parse_header(&batch)
            .map_err(|e| PartitionError::Log(LogError::CorruptBatch(e)))?;
        self.append_as(batch, header, Produce::default(), Origin::Broker)
            .await
            .map(|r| r.appended)
    }

    /// Writes a transaction marker for producer `producer_id` at `epoch` on this
    /// partition's leader and returns its offset once it is committed. The marker ends
    /// the producer's open transaction here, and from then on the partition refuses the
    /// producer's batches with an older epoch. A coordinator's marker is written as
    /// asked; an operator's (`MarkerFrom::Admin`, always an abort) only ends a
    /// transaction open here at the producer's current epoch.
    pub async fn append_marker(
        &self,
        producer_id: i64,
        epoch: i16,
        marker: Marker,
        from: MarkerFrom,
    ) -> PartitionResult<u64> {
        let now = crate::internal_batch::now_ms();
        let batch = control_batch::encode(producer_id, epoch, marker, now)
            .map_err(|_| PartitionError::InvalidBatch("the marker does not encode"))?;
        let header = BatchHeader::parse_header(&batch)
            .map_err(|e| PartitionError::Log(LogError::CorruptBatch(e)))?;
        let produce = Produce {
            awaited: true,
            ..Produce::default()
        };
        let appended = self
            .append_as(batch, header, produce, from.origin(marker))
            .await?;
        let offset = appended.appended.last_offset;
        self.wait_durable(offset, REPLICA_APPEND_TIMEOUT).await?;
        Ok(offset)
    }
}
