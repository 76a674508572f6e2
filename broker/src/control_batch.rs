//! Transaction markers: the control batches that end a transaction in each partition it
//! wrote to. A marker is a RecordBatch v2 with the control and transactional attributes
//! set, the transaction's producer id and epoch, no sequence (-1) and one record:
//! - key: int16 version (0), int16 type (0 ABORT, 1 COMMIT);
//! - value: int16 version (0), then Kafka's `EndTxnMarker` (the coordinator epoch).
//!
//! A marker takes an offset like any batch; consumers skip control batches by their
//! attributes, so no client sees one as a record. The batch is built by the
//! `kafka-protocol` codec; only the two small versioned payloads are laid out here.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::EndTxnMarker;
use kafka_protocol::protocol::{Decodable, Encodable};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// How a transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerKind {
    Abort,
    Commit,
}

impl MarkerKind {
    /// The control record type Kafka stores in the key.
    fn code(self) -> i16 {
        match self {
            MarkerKind::Abort => 0,
            MarkerKind::Commit => 1,
        }
    }
}

/// A transaction marker as stored in one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub kind: MarkerKind,
    /// The epoch of the transaction coordinator that wrote it.
    pub coordinator_epoch: i32,
}

/// A control batch that cannot be built or read.
#[derive(Debug, thiserror::Error)]
pub enum ControlBatchError {
    #[error("control batch codec: {0}")]
    Codec(String),
    #[error("control batch holds {0} records, not one")]
    RecordCount(usize),
    #[error("control record key: {0}")]
    Key(&'static str),
    #[error("control record value: {0}")]
    Value(String),
}

/// Control record (key and value) version written and read.
const CONTROL_VERSION: i16 = 0;

/// The control batch that writes `marker` for producer `producer_id` at `producer_epoch`,
/// stamped `now_ms`. Its offsets are assigned by the log like any batch's.
pub fn encode(
    producer_id: i64,
    producer_epoch: i16,
    marker: Marker,
    now_ms: i64,
) -> Result<Bytes, ControlBatchError> {
    let mut key = BytesMut::with_capacity(4);
    key.put_i16(CONTROL_VERSION);
    key.put_i16(marker.kind.code());
    let mut value = BytesMut::with_capacity(6);
    value.put_i16(CONTROL_VERSION);
    EndTxnMarker::default()
        .with_coordinator_epoch(marker.coordinator_epoch)
        .encode(&mut value, CONTROL_VERSION)
        .map_err(|e| ControlBatchError::Codec(e.to_string()))?;
    let record = Record {
        transactional: true,
        control: true,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id,
        producer_epoch,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: now_ms,
        key: Some(key.freeze()),
        value: Some(value.freeze()),
        headers: Default::default(),
    };
    let mut buf = BytesMut::with_capacity(96);
    RecordBatchEncoder::encode(
        &mut buf,
        [&record],
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| ControlBatchError::Codec(e.to_string()))?;
    Ok(buf.freeze())
}

/// The marker in a stored control batch (the caller checked the control attribute).
pub fn decode(mut batch: Bytes) -> Result<Marker, ControlBatchError> {
    let set = RecordBatchDecoder::decode(&mut batch)
        .map_err(|e| ControlBatchError::Codec(e.to_string()))?;
    let [record] = set.records.as_slice() else {
        return Err(ControlBatchError::RecordCount(set.records.len()));
    };
    let mut key = record
        .key
        .clone()
        .ok_or(ControlBatchError::Key("missing"))?;
    if key.len() < 4 {
        return Err(ControlBatchError::Key("shorter than 4 bytes"));
    }
    if key.get_i16() < 0 {
        return Err(ControlBatchError::Key("negative version"));
    }
    let kind = match key.get_i16() {
        0 => MarkerKind::Abort,
        1 => MarkerKind::Commit,
        _ => return Err(ControlBatchError::Key("unknown control type")),
    };
    // Kafka reads the coordinator epoch from any value version; so does this.
    let mut value = record
        .value
        .clone()
        .ok_or_else(|| ControlBatchError::Value("missing".into()))?;
    if value.len() < 6 {
        return Err(ControlBatchError::Value("shorter than 6 bytes".into()));
    }
    value.advance(2);
    let end = EndTxnMarker::decode(&mut value, CONTROL_VERSION)
        .map_err(|e| ControlBatchError::Value(e.to_string()))?;
    Ok(Marker {
        kind,
        coordinator_epoch: end.coordinator_epoch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use log_store::BatchHeader;

    #[test]
    fn a_marker_is_a_valid_control_batch_that_reads_back() {
        for kind in [MarkerKind::Abort, MarkerKind::Commit] {
            let marker = Marker {
                kind,
                coordinator_epoch: 7,
            };
            let batch = encode(42, 3, marker, 1_700_000_000_000).unwrap();
            let h = BatchHeader::parse_validated(&batch).unwrap();
            assert!(h.is_control() && h.is_transactional());
            assert_eq!((h.producer_id, h.producer_epoch), (42, 3));
            assert_eq!((h.base_sequence, h.records_count), (-1, 1));
            assert_eq!(decode(batch).unwrap(), marker);
        }
    }

    #[test]
    fn malformed_control_records_are_errors() {
        let data = crate::internal_batch::encode(
            vec![(Some(Bytes::from_static(b"\0\0\0\x05")), Some(Bytes::new()))],
            0,
        )
        .unwrap();
        assert!(matches!(
            decode(Bytes::from(data)),
            Err(ControlBatchError::Key("unknown control type"))
        ));
        let two = crate::internal_batch::encode(vec![(None, None), (None, None)], 0).unwrap();
        assert!(matches!(
            decode(Bytes::from(two)),
            Err(ControlBatchError::RecordCount(2))
        ));
        assert!(decode(Bytes::from_static(b"short")).is_err());
    }
}
