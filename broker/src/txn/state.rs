//! The transaction state machine of one transactional id, as pure functions over its
//! stored [`TxnValue`]: each request either is refused, changes nothing, or yields the
//! next value, which the coordinator makes durable before it answers.
//!
//! ```text
//!            AddPartitions               EndTxn(commit)
//!   Empty ──────────────────▶ Ongoing ─────────────────▶ PrepareCommit ─▶ CompleteCommit
//!   Complete* ──────────────▶    │  EndTxn(abort), timeout,     (markers written)
//!                                └─ InitProducerId ────────▶ PrepareAbort ──▶ CompleteAbort
//! ```
//!
//! Fencing: InitProducerId bumps the epoch; the producer with the older epoch is then
//! refused everywhere (PRODUCER_FENCED). An ongoing transaction is first aborted at the
//! bumped epoch, so its markers fence the old producer in every partition it wrote.

use std::collections::BTreeSet;

use super::error::TxnError;
use super::records::{TxnStatus, TxnValue};

/// What InitProducerId has to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitStep {
    /// A new producer id at epoch 0: the id is new, or its epoch is exhausted.
    NewProducerId,
    /// The same producer id at the next epoch.
    BumpEpoch,
    /// Abort the ongoing transaction at a bumped epoch first; the client retries.
    AbortOngoing,
}

/// The step InitProducerId takes for a transactional id in state `current`, when the
/// client presents `given` (`(-1, -1)`: a new producer instance).
pub fn init_step(current: Option<&TxnValue>, given: (i64, i16)) -> Result<InitStep, TxnError> {
    let Some(v) = current else {
        return Ok(InitStep::NewProducerId);
    };
    match v.status {
        TxnStatus::PrepareCommit | TxnStatus::PrepareAbort => Err(TxnError::Concurrent),
        TxnStatus::Ongoing => Ok(InitStep::AbortOngoing),
        TxnStatus::Empty | TxnStatus::CompleteCommit | TxnStatus::CompleteAbort => {
            if given.0 != -1 && given != (v.producer_id, v.producer_epoch) {
                return Err(TxnError::ProducerFenced);
            }
            if v.producer_epoch >= i16::MAX - 1 {
                Ok(InitStep::NewProducerId)
            } else {
                Ok(InitStep::BumpEpoch)
            }
        }
    }
}

/// A fresh, empty state for `producer_id` at `epoch`.
pub fn empty(producer_id: i64, epoch: i16, timeout_ms: i32, now_ms: i64) -> TxnValue {
    TxnValue {
        producer_id,
        producer_epoch: epoch,
        timeout_ms,
        status: TxnStatus::Empty,
        partitions: BTreeSet::new(),
        last_update_ms: now_ms,
        start_ms: -1,
    }
}

/// Refuses a request from producer `(producer_id, epoch)` that `v` does not belong to.
fn check_producer(v: &TxnValue, producer_id: i64, epoch: i16) -> Result<(), TxnError> {
    if producer_id != v.producer_id {
        return Err(TxnError::InvalidProducerIdMapping);
    }
    if epoch != v.producer_epoch {
        return Err(TxnError::ProducerFenced);
    }
    Ok(())
}

/// AddPartitionsToTxn (and AddOffsetsToTxn, with the group's offsets partition): the
/// next value, or `None` when every partition is already in the ongoing transaction.
pub fn add_partitions(
    v: &TxnValue,
    producer_id: i64,
    epoch: i16,
    partitions: &BTreeSet<(String, i32)>,
    now_ms: i64,
) -> Result<Option<TxnValue>, TxnError> {
    check_producer(v, producer_id, epoch)?;
    match v.status {
        TxnStatus::PrepareCommit | TxnStatus::PrepareAbort => Err(TxnError::Concurrent),
        TxnStatus::Ongoing if partitions.is_subset(&v.partitions) => Ok(None),
        TxnStatus::Ongoing => {
            let mut next = v.clone();
            next.partitions.extend(partitions.iter().cloned());
            next.last_update_ms = now_ms;
            Ok(Some(next))
        }
        TxnStatus::Empty | TxnStatus::CompleteCommit | TxnStatus::CompleteAbort => {
            Ok(Some(TxnValue {
                status: TxnStatus::Ongoing,
                partitions: partitions.clone(),
                last_update_ms: now_ms,
                start_ms: now_ms,
                ..v.clone()
            }))
        }
    }
}

/// What EndTxn has to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndStep {
    /// Make this prepared state durable, answer, then write the markers.
    Prepare(TxnValue),
    /// A retry of an EndTxn that completed: answer success.
    AlreadyDone,
}

pub fn end(
    v: &TxnValue,
    producer_id: i64,
    epoch: i16,
    commit: bool,
    now_ms: i64,
) -> Result<EndStep, TxnError> {
    check_producer(v, producer_id, epoch)?;
    match (v.status, commit) {
        (TxnStatus::Ongoing, _) => Ok(EndStep::Prepare(TxnValue {
            status: if commit {
                TxnStatus::PrepareCommit
            } else {
                TxnStatus::PrepareAbort
            },
            last_update_ms: now_ms,
            ..v.clone()
        })),
        (TxnStatus::CompleteCommit, true) | (TxnStatus::CompleteAbort, false) => {
            Ok(EndStep::AlreadyDone)
        }
        (TxnStatus::PrepareCommit, true) | (TxnStatus::PrepareAbort, false) => {
            Err(TxnError::Concurrent)
        }
        _ => Err(TxnError::InvalidTxnState {
            status: v.status.name(),
            commit,
        }),
    }
}

/// The ongoing transaction of `v` aborted by the coordinator (timeout, or a new
/// producer instance): prepared for abort at the next epoch, which fences the producer.
pub fn fence_and_abort(v: &TxnValue, now_ms: i64) -> TxnValue {
    TxnValue {
        producer_epoch: v.producer_epoch.saturating_add(1),
        status: TxnStatus::PrepareAbort,
        last_update_ms: now_ms,
        ..v.clone()
    }
}

/// The state once every marker of a prepared transaction is written; `None` unless `v`
/// is prepared.
pub fn complete(v: &TxnValue, now_ms: i64) -> Option<TxnValue> {
    let status = match v.status {
        TxnStatus::PrepareCommit => TxnStatus::CompleteCommit,
        TxnStatus::PrepareAbort => TxnStatus::CompleteAbort,
        _ => return None,
    };
    Some(TxnValue {
        status,
        partitions: BTreeSet::new(),
        last_update_ms: now_ms,
        start_ms: -1,
        ..v.clone()
    })
}

/// Whether an ongoing transaction has outlived its timeout at `now_ms`.
pub fn timed_out(v: &TxnValue, now_ms: i64) -> bool {
    v.status == TxnStatus::Ongoing && now_ms >= v.start_ms.saturating_add(i64::from(v.timeout_ms))
}

/// Whether an idle transactional id has gone unused for `expiration_ms` at `now_ms`.
pub fn expired(v: &TxnValue, now_ms: i64, expiration_ms: i64) -> bool {
    matches!(
        v.status,
        TxnStatus::Empty | TxnStatus::CompleteCommit | TxnStatus::CompleteAbort
    ) && now_ms >= v.last_update_ms.saturating_add(expiration_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(list: &[(&str, i32)]) -> BTreeSet<(String, i32)> {
        list.iter().map(|(t, p)| (t.to_string(), *p)).collect()
    }

    #[test]
    fn a_transaction_goes_from_empty_to_complete() {
        let v = empty(100, 0, 60_000, 1);
        let a = parts(&[("a", 0)]);
        let ongoing = add_partitions(&v, 100, 0, &a, 2).unwrap().unwrap();
        assert_eq!((ongoing.status, ongoing.start_ms), (TxnStatus::Ongoing, 2));
        assert_eq!(add_partitions(&ongoing, 100, 0, &a, 3).unwrap(), None);
        let more = add_partitions(&ongoing, 100, 0, &parts(&[("b", 1)]), 3)
            .unwrap()
            .unwrap();
        assert_eq!(more.partitions, parts(&[("a", 0), ("b", 1)]));
        assert_eq!(more.start_ms, 2);
        let EndStep::Prepare(prepared) = end(&more, 100, 0, true, 4).unwrap() else {
            panic!("an ongoing transaction prepares");
        };
        assert_eq!(prepared.status, TxnStatus::PrepareCommit);
        assert!(matches!(
            add_partitions(&prepared, 100, 0, &a, 5),
            Err(TxnError::Concurrent)
        ));
        assert!(matches!(
            end(&prepared, 100, 0, true, 5),
            Err(TxnError::Concurrent)
        ));
        let done = complete(&prepared, 6).unwrap();
        assert_eq!(done.status, TxnStatus::CompleteCommit);
        assert!(done.partitions.is_empty());
        assert_eq!(end(&done, 100, 0, true, 7).unwrap(), EndStep::AlreadyDone);
        assert!(matches!(
            end(&done, 100, 0, false, 7),
            Err(TxnError::InvalidTxnState { .. })
        ));
        assert!(matches!(
            end(&v, 100, 0, true, 7),
            Err(TxnError::InvalidTxnState { .. })
        ));
    }

    #[test]
    fn fencing_refuses_the_older_epoch_and_aborts_what_was_open() {
        let v = empty(100, 4, 60_000, 1);
        assert_eq!(init_step(None, (-1, -1)).unwrap(), InitStep::NewProducerId);
        assert_eq!(init_step(Some(&v), (-1, -1)).unwrap(), InitStep::BumpEpoch);
        assert_eq!(init_step(Some(&v), (100, 4)).unwrap(), InitStep::BumpEpoch);
        assert!(matches!(
            init_step(Some(&v), (100, 3)),
            Err(TxnError::ProducerFenced)
        ));
        let ongoing = add_partitions(&v, 100, 4, &parts(&[("a", 0)]), 2)
            .unwrap()
            .unwrap();
        assert_eq!(
            init_step(Some(&ongoing), (-1, -1)).unwrap(),
            InitStep::AbortOngoing
        );
        let aborting = fence_and_abort(&ongoing, 3);
        assert_eq!(
            (aborting.producer_epoch, aborting.status),
            (5, TxnStatus::PrepareAbort)
        );
        assert!(matches!(
            init_step(Some(&aborting), (-1, -1)),
            Err(TxnError::Concurrent)
        ));
        assert!(matches!(
            add_partitions(&aborting, 100, 4, &parts(&[("a", 1)]), 4),
            Err(TxnError::ProducerFenced)
        ));
        assert!(matches!(
            add_partitions(&aborting, 99, 5, &parts(&[("a", 1)]), 4),
            Err(TxnError::InvalidProducerIdMapping)
        ));
        let exhausted = empty(100, i16::MAX - 1, 60_000, 1);
        assert_eq!(
            init_step(Some(&exhausted), (-1, -1)).unwrap(),
            InitStep::NewProducerId
        );
    }

    #[test]
    fn timeouts_and_expiry() {
        let v = empty(100, 0, 1_000, 10);
        assert!(!timed_out(&v, 1_000_000));
        assert!(expired(&v, 110, 100) && !expired(&v, 109, 100));
        let ongoing = add_partitions(&v, 100, 0, &parts(&[("a", 0)]), 20)
            .unwrap()
            .unwrap();
        assert!(!timed_out(&ongoing, 1_019) && timed_out(&ongoing, 1_020));
        assert!(!expired(&ongoing, i64::MAX, 100));
        assert_eq!(complete(&ongoing, 30), None);
    }
}
