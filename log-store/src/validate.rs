//! What a produced batch must satisfy beyond its header and CRC before it is written, as
//! Kafka's `LogValidator` checks it: every record decodes (lengths, varints, headers)
//! within the batch, there are exactly `recordsCount` of them, their offset deltas are
//! `0..n-1` (so `lastOffsetDelta` is bounded by the records present), and the topic's
//! rules hold for each record: a key on a compacted topic, a CreateTime timestamp within
//! `message.timestamp.before.max.ms` / `message.timestamp.after.max.ms` of the broker's
//! clock. A batch that claims LogAppendTime itself is refused: only the broker stamps it.
//! A compressed batch is checked after decompression, which stops at
//! [`MAX_DECOMPRESSED_BATCH_BYTES`].
//!
//! Without these checks one forged batch (one record claiming 2^31-1, with a valid CRC)
//! moved the log end by two billion offsets and made every consumer reading past it fail.

use crate::batch::{BatchHeader, LOG_APPEND_TIME_FLAG};
use crate::records::{records_section, RecordIter, MAX_DECOMPRESSED_BATCH_BYTES};

/// The topic's rules for produced records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRules {
    /// `cleanup.policy` includes `compact`: every record needs a key.
    pub require_key: bool,
    /// The broker's clock now, in ms since the epoch.
    pub now_ms: i64,
    /// `message.timestamp.before.max.ms`: how far in the past a CreateTime may be.
    pub timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`: how far in the future a CreateTime may be.
    pub timestamp_after_max_ms: i64,
}

/// Which rule a record broke (the Kafka error differs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordRule {
    /// A compacted topic's record without a key (Kafka: INVALID_RECORD).
    MissingKey,
    /// A timestamp outside the topic's bounds (Kafka: INVALID_TIMESTAMP).
    Timestamp,
}

/// One refused record: its index in the batch and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    pub index: i32,
    pub message: String,
}

/// Why a produced batch is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// The records are not what the header says (Kafka: CORRUPT_MESSAGE).
    #[error("corrupt records: {0}")]
    Corrupt(String),
    /// Well-formed records that break a rule of the topic; the first rule broken decides
    /// the error, every record breaking it is listed.
    #[error("{} record(s) refused: {}", errors.len(), errors.first().map_or("", |e| e.message.as_str()))]
    Records {
        rule: RecordRule,
        errors: Vec<RecordError>,
    },
}

/// The most per-record errors one refusal lists (a batch of a million keyless records
/// must not make a million messages).
pub const MAX_RECORD_ERRORS: usize = 100;

/// Checks `batch` (one whole RecordBatch v2 whose header is `header`) against the
/// framing rules and `rules`. Returns the largest timestamp of its records (-1 when
/// none has one): the max timestamp its header must carry.
pub fn validate_records(
    batch: &[u8],
    header: &BatchHeader,
    rules: &RecordRules,
) -> Result<i64, ValidationError> {
    let corrupt = ValidationError::Corrupt;
    if i64::from(header.last_offset_delta) + 1 != i64::from(header.records_count) {
        return Err(corrupt(format!(
            "lastOffsetDelta {} does not match {} records",
            header.last_offset_delta, header.records_count
        )));
    }
    if header.attributes & LOG_APPEND_TIME_FLAG != 0 {
        // Consumers would read the header's max timestamp, unchecked, for every record.
        return Err(ValidationError::Records {
            rule: RecordRule::Timestamp,
            errors: vec![RecordError {
                index: 0,
                message: "a produced batch may not claim LogAppendTime; the broker stamps it \
                          on topics with message.timestamp.type=LogAppendTime"
                    .into(),
            }],
        });
    }
    let data = records_section(batch, header, MAX_DECOMPRESSED_BATCH_BYTES).map_err(corrupt)?;
    let mut records = RecordIter::new(&data, header.records_count).map_err(corrupt)?;
    let mut missing_key = Vec::new();
    let mut bad_time = Vec::new();
    let mut max_timestamp = -1i64;
    for (i, record) in records.by_ref().enumerate() {
        let record = record.map_err(corrupt)?;
        let index = i as i32;
        if record.offset_delta != index {
            return Err(corrupt(format!(
                "record {i} has offset delta {}",
                record.offset_delta
            )));
        }
        if rules.require_key && record.key.is_none() && missing_key.len() < MAX_RECORD_ERRORS {
            missing_key.push(RecordError {
                index,
                message: "a compacted topic does not accept a record without a key".into(),
            });
        }
        let timestamp = header.base_timestamp.saturating_add(record.timestamp_delta);
        max_timestamp = max_timestamp.max(timestamp);
        if timestamp >= 0 && bad_time.len() < MAX_RECORD_ERRORS {
            if let Some(why) = timestamp_out_of_bounds(timestamp, rules) {
                bad_time.push(RecordError {
                    index,
                    message: why,
                });
            }
        }
    }
    records.finish().map_err(corrupt)?;
    if !missing_key.is_empty() {
        return Err(ValidationError::Records {
            rule: RecordRule::MissingKey,
            errors: missing_key,
        });
    }
    if !bad_time.is_empty() {
        return Err(ValidationError::Records {
            rule: RecordRule::Timestamp,
            errors: bad_time,
        });
    }
    Ok(max_timestamp)
}

/// Why `timestamp` breaks the topic's bounds, if it does.
fn timestamp_out_of_bounds(timestamp: i64, rules: &RecordRules) -> Option<String> {
    let past_ms = rules.now_ms.saturating_sub(timestamp);
    let future_ms = timestamp.saturating_sub(rules.now_ms);
    if past_ms > rules.timestamp_before_max_ms {
        Some(format!(
            "timestamp {timestamp} is {past_ms} ms in the past, more than \
             message.timestamp.before.max.ms {}",
            rules.timestamp_before_max_ms
        ))
    } else if future_ms > rules.timestamp_after_max_ms {
        Some(format!(
            "timestamp {timestamp} is {future_ms} ms in the future, more than \
             message.timestamp.after.max.ms {}",
            rules.timestamp_after_max_ms
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use proptest::prelude::*;
    use strata_testkit::{encode_batch, Compression, RecordSpec, NO_PRODUCER};

    const NOW_MS: i64 = 1_700_000_000_000;

    fn rules() -> RecordRules {
        RecordRules {
            require_key: false,
            now_ms: NOW_MS,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: 3_600_000,
        }
    }

    fn batch(keys: &[Option<&str>], timestamp_ms: i64, compression: Compression) -> Vec<u8> {
        let specs = keys.iter().map(|k| RecordSpec {
            key: k.map(|k| Bytes::from(k.to_string())),
            value: Some(Bytes::from_static(b"value")),
            timestamp_ms,
        });
        encode_batch(specs, NO_PRODUCER, compression).to_vec()
    }

    fn check(bytes: &[u8], rules: &RecordRules) -> Result<(), ValidationError> {
        let header = BatchHeader::parse_header(bytes).unwrap();
        let max_timestamp = validate_records(bytes, &header, rules)?;
        assert_eq!(
            max_timestamp, header.max_timestamp,
            "as the encoder computed it"
        );
        Ok(())
    }

    /// Rewrites a header field (big endian) and the CRC-32C, as a forger would.
    fn forge(bytes: &mut [u8], at: usize, value: &[u8]) {
        bytes[at..at + value.len()].copy_from_slice(value);
        let crc = crc32c::crc32c(&bytes[21..]);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    }

    #[test]
    fn well_formed_batches_pass_in_every_codec() {
        for c in strata_testkit::ALL_COMPRESSIONS {
            let b = batch(&[Some("a"), None, Some("c")], NOW_MS, c);
            assert_eq!(check(&b, &rules()), Ok(()), "{c:?}");
        }
    }

    #[test]
    fn a_batch_claiming_log_append_time_is_refused() {
        // Consumers would take its max timestamp (here far in the future) for every record.
        let mut b = batch(&[Some("k")], NOW_MS, Compression::None);
        forge(&mut b, 21, &LOG_APPEND_TIME_FLAG.to_be_bytes());
        forge(&mut b, 35, &i64::MAX.to_be_bytes());
        match check(&b, &rules()) {
            Err(ValidationError::Records { rule, errors }) => {
                assert_eq!(rule, RecordRule::Timestamp);
                assert!(errors[0].message.contains("LogAppendTime"), "{errors:?}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_count_the_records_do_not_back_is_corrupt() {
        // One record claiming 2^31-1 (lastOffsetDelta 2^31-2 and recordsCount 2^31-1,
        // CRC valid): the forged batch that moved a log end by two billion offsets.
        let mut b = batch(&[Some("k")], NOW_MS, Compression::None);
        forge(&mut b, 23, &(i32::MAX - 1).to_be_bytes());
        forge(&mut b, 57, &i32::MAX.to_be_bytes());
        assert!(matches!(
            check(&b, &rules()),
            Err(ValidationError::Corrupt(_))
        ));
        // Two records claiming three, and three claiming two.
        let mut b = batch(&[Some("a"), Some("b")], NOW_MS, Compression::None);
        forge(&mut b, 23, &2i32.to_be_bytes());
        forge(&mut b, 57, &3i32.to_be_bytes());
        assert!(matches!(
            check(&b, &rules()),
            Err(ValidationError::Corrupt(_))
        ));
        let mut b = batch(
            &[Some("a"), Some("b"), Some("c")],
            NOW_MS,
            Compression::None,
        );
        forge(&mut b, 23, &1i32.to_be_bytes());
        forge(&mut b, 57, &2i32.to_be_bytes());
        assert!(matches!(
            check(&b, &rules()),
            Err(ValidationError::Corrupt(_))
        ));
    }

    #[test]
    fn compacted_topics_refuse_keyless_records_listing_each() {
        let b = batch(
            &[Some("a"), None, Some("c"), None],
            NOW_MS,
            Compression::Lz4,
        );
        let rules = RecordRules {
            require_key: true,
            ..rules()
        };
        match check(&b, &rules) {
            Err(ValidationError::Records { rule, errors }) => {
                assert_eq!(rule, RecordRule::MissingKey);
                let at: Vec<i32> = errors.iter().map(|e| e.index).collect();
                assert_eq!(at, vec![1, 3]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn create_times_outside_the_bounds_are_refused() {
        let future = batch(&[Some("a")], NOW_MS + 3_600_001, Compression::None);
        let Err(ValidationError::Records { rule, .. }) = check(&future, &rules()) else {
            panic!("a timestamp over an hour ahead must be refused");
        };
        assert_eq!(rule, RecordRule::Timestamp);
        let near = batch(&[Some("a")], NOW_MS + 3_599_000, Compression::None);
        assert_eq!(check(&near, &rules()), Ok(()));
        let old = batch(&[Some("a")], NOW_MS - 10_000, Compression::None);
        assert_eq!(check(&old, &rules()), Ok(()));
        let strict = RecordRules {
            timestamp_before_max_ms: 5_000,
            ..rules()
        };
        assert!(check(&old, &strict).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Any bytes after a well-formed header: never a panic, and a pass only when
        /// the records really decode.
        #[test]
        fn arbitrary_records_never_panic(
            records in proptest::collection::vec(any::<u8>(), 0..300),
            count in 0i32..40,
        ) {
            let mut b = batch(&[Some("k")], NOW_MS, Compression::None);
            b.truncate(61);
            b.extend_from_slice(&records);
            let len = (b.len() - 12) as i32;
            b[8..12].copy_from_slice(&len.to_be_bytes());
            b[23..27].copy_from_slice(&(count - 1).to_be_bytes());
            b[57..61].copy_from_slice(&count.to_be_bytes());
            if let Ok(header) = BatchHeader::parse_header(&b) {
                let _ = validate_records(&b, &header, &rules());
            }
        }
    }
}
