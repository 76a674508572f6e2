//! The records of `__transaction_state`, in Kafka's layout (TransactionLogKey and
//! TransactionLogValue, version 0), so tools that read the topic find what they expect:
//! - key: int16 version (0), the transactional id;
//! - value: int16 version (0), producer id (int64), producer epoch (int16), transaction
//!   timeout in ms (int32), status (int8), the partitions (an int32-counted array of
//!   topic and int32-counted partition ids), last update and start times (int64 ms).
//!
//! A null value is a tombstone: the transactional id expired. Records read back are
//! untrusted and checked field by field ([`crate::record_fields`]).

use std::collections::BTreeSet;

use bytes::{Buf, BufMut, Bytes, BytesMut};

pub use crate::record_fields::RecordError;
use crate::record_fields::{err, get_i16, get_i32, get_i64, get_string, need, put_string};

/// Key and value version written and read.
const VERSION: i16 = 0;

/// Where a transaction is (Kafka's `TransactionState`, with its codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnStatus {
    /// No transaction since the producer's epoch began.
    Empty,
    Ongoing,
    /// Ending: the outcome is decided and durable, markers are being written.
    PrepareCommit,
    PrepareAbort,
    /// Ended: every marker is written.
    CompleteCommit,
    CompleteAbort,
}

impl TxnStatus {
    fn code(self) -> i8 {
        match self {
            TxnStatus::Empty => 0,
            TxnStatus::Ongoing => 1,
            TxnStatus::PrepareCommit => 2,
            TxnStatus::PrepareAbort => 3,
            TxnStatus::CompleteCommit => 4,
            TxnStatus::CompleteAbort => 5,
        }
    }

    fn from_code(code: i8) -> Result<TxnStatus, RecordError> {
        Ok(match code {
            0 => TxnStatus::Empty,
            1 => TxnStatus::Ongoing,
            2 => TxnStatus::PrepareCommit,
            3 => TxnStatus::PrepareAbort,
            4 => TxnStatus::CompleteCommit,
            5 => TxnStatus::CompleteAbort,
            c => return err(format!("unknown transaction status {c}")),
        })
    }

    /// The name DescribeTransactions and ListTransactions use.
    pub fn name(self) -> &'static str {
        match self {
            TxnStatus::Empty => "Empty",
            TxnStatus::Ongoing => "Ongoing",
            TxnStatus::PrepareCommit => "PrepareCommit",
            TxnStatus::PrepareAbort => "PrepareAbort",
            TxnStatus::CompleteCommit => "CompleteCommit",
            TxnStatus::CompleteAbort => "CompleteAbort",
        }
    }
}

/// A transactional id's state as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnValue {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub status: TxnStatus,
    /// The partitions the transaction wrote to (or will write its offsets to).
    pub partitions: BTreeSet<(String, i32)>,
    pub last_update_ms: i64,
    /// When the ongoing transaction began (-1 when none has).
    pub start_ms: i64,
}

pub fn encode_key(transactional_id: &str) -> Bytes {
    let mut b = BytesMut::with_capacity(2 + 2 + transactional_id.len());
    b.put_i16(VERSION);
    put_string(&mut b, transactional_id);
    b.freeze()
}

pub fn decode_key(mut b: Bytes) -> Result<String, RecordError> {
    match get_i16(&mut b)? {
        VERSION => get_string(&mut b),
        v => err(format!("unknown transaction key version {v}")),
    }
}

impl TxnValue {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(64);
        b.put_i16(VERSION);
        b.put_i64(self.producer_id);
        b.put_i16(self.producer_epoch);
        b.put_i32(self.timeout_ms);
        b.put_i8(self.status.code());
        let mut by_topic: Vec<(&str, Vec<i32>)> = Vec::new();
        for (topic, partition) in &self.partitions {
            match by_topic.last_mut() {
                Some((t, ids)) if t == topic => ids.push(*partition),
                _ => by_topic.push((topic, vec![*partition])),
            }
        }
        // Partitions come from bounded requests: far fewer than i32::MAX.
        b.put_i32(by_topic.len() as i32);
        for (topic, ids) in by_topic {
            put_string(&mut b, topic);
            b.put_i32(ids.len() as i32);
            for id in ids {
                b.put_i32(id);
            }
        }
        b.put_i64(self.last_update_ms);
        b.put_i64(self.start_ms);
        b.freeze()
    }

    pub fn decode(mut b: Bytes) -> Result<TxnValue, RecordError> {
        let version = get_i16(&mut b)?;
        if version != VERSION {
            return err(format!("unsupported transaction value version {version}"));
        }
        let producer_id = get_i64(&mut b)?;
        let producer_epoch = get_i16(&mut b)?;
        let timeout_ms = get_i32(&mut b)?;
        need(&b, 1, "status")?;
        let status = TxnStatus::from_code(b.get_i8())?;
        let mut partitions = BTreeSet::new();
        // Counts are untrusted: each element is read only if its bytes are there.
        for _ in 0..get_i32(&mut b)?.max(0) {
            let topic = get_string(&mut b)?;
            for _ in 0..get_i32(&mut b)?.max(0) {
                partitions.insert((topic.clone(), get_i32(&mut b)?));
            }
        }
        Ok(TxnValue {
            producer_id,
            producer_epoch,
            timeout_ms,
            status,
            partitions,
            last_update_ms: get_i64(&mut b)?,
            start_ms: get_i64(&mut b)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value() -> TxnValue {
        TxnValue {
            producer_id: 4000,
            producer_epoch: 3,
            timeout_ms: 60_000,
            status: TxnStatus::Ongoing,
            partitions: BTreeSet::from([
                ("a".to_string(), 0),
                ("a".to_string(), 2),
                ("b".to_string(), 1),
            ]),
            last_update_ms: 1_700_000_000_123,
            start_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn keys_and_values_round_trip() {
        assert_eq!(decode_key(encode_key("tx-1")).unwrap(), "tx-1");
        let v = value();
        assert_eq!(TxnValue::decode(v.encode()).unwrap(), v);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = value().encode();
        for cut in 0..bytes.len() {
            assert!(
                TxnValue::decode(bytes.slice(..cut)).is_err(),
                "cut at {cut}"
            );
        }
        let mut huge = BytesMut::from(&bytes[..17]);
        huge.put_i32(i32::MAX);
        assert!(TxnValue::decode(huge.freeze()).is_err());
        assert!(decode_key(Bytes::from_static(b"\0\x01\0\x01x")).is_err());
    }
}
