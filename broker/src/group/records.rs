//! The records of `__consumer_offsets`, in Kafka's own layout, so tools that read the
//! topic (Burrow, `kafka-console-consumer --formatter ...OffsetsMessageFormatter`) work
//! against Strata unchanged.
//!
//! Every record's key starts with an int16 version that says what it is:
//! - 0 or 1: an offset commit, key `(group, topic, partition)`, value
//!   `OffsetCommitValue` (we write v3: offset, leader epoch, metadata, commit time);
//! - 2: a group's metadata, key `(group)`, value `GroupMetadataValue` (we write v3:
//!   protocol type, generation, protocol, leader, state time, members).
//!
//! A null value is a tombstone: the offset, or the whole group, is gone. These record
//! layouts are not Kafka *request* messages, so the `kafka-protocol` crate has no codec
//! for them; this file reads and writes them with the bounds-checked primitives of
//! [`crate::record_fields`].

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Key version of an offset commit (Kafka writes 1; 0 has the same layout).
pub const OFFSET_COMMIT_KEY_VERSION: i16 = 1;
/// Key version of a group metadata record.
pub const GROUP_METADATA_KEY_VERSION: i16 = 2;
/// The offset-commit value layout we write (offset, leader epoch, metadata, commit time).
pub const OFFSET_COMMIT_VALUE_VERSION: i16 = 3;
/// The group-metadata value layout we write (with group instance ids).
pub const GROUP_METADATA_VALUE_VERSION: i16 = 3;

pub use crate::record_fields::RecordError;
use crate::record_fields::{
    err, get_bytes, get_compact_string, get_i16, get_i32, get_i64, get_nullable_string, get_string,
    put_bytes, put_nullable_string, put_string,
};
pub use crate::record_fields::{java_string_hash, partition_for};

/// What a record's key names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RecordKey {
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    Group {
        group: String,
    },
}

impl RecordKey {
    /// The group the record belongs to.
    pub fn group(&self) -> &str {
        match self {
            RecordKey::Offset { group, .. } | RecordKey::Group { group } => group,
        }
    }

    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(64);
        match self {
            RecordKey::Offset {
                group,
                topic,
                partition,
            } => {
                b.put_i16(OFFSET_COMMIT_KEY_VERSION);
                put_string(&mut b, group);
                put_string(&mut b, topic);
                b.put_i32(*partition);
            }
            RecordKey::Group { group } => {
                b.put_i16(GROUP_METADATA_KEY_VERSION);
                put_string(&mut b, group);
            }
        }
        b.freeze()
    }

    pub fn decode(mut b: Bytes) -> Result<RecordKey, RecordError> {
        let version = get_i16(&mut b)?;
        match version {
            0 | 1 => Ok(RecordKey::Offset {
                group: get_string(&mut b)?,
                topic: get_string(&mut b)?,
                partition: get_i32(&mut b)?,
            }),
            2 => Ok(RecordKey::Group {
                group: get_string(&mut b)?,
            }),
            v => err(format!("unknown key version {v}")),
        }
    }
}

/// A committed offset as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    /// -1 when the client did not say.
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

impl OffsetValue {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(32 + self.metadata.len());
        b.put_i16(OFFSET_COMMIT_VALUE_VERSION);
        b.put_i64(self.offset);
        b.put_i32(self.leader_epoch);
        put_string(&mut b, &self.metadata);
        b.put_i64(self.commit_timestamp_ms);
        b.freeze()
    }

    /// Reads versions 0–3 (4 adds only tagged fields, which are skipped).
    pub fn decode(mut b: Bytes) -> Result<OffsetValue, RecordError> {
        let version = get_i16(&mut b)?;
        if !(0..=4).contains(&version) {
            return err(format!("unknown offset value version {version}"));
        }
        let offset = get_i64(&mut b)?;
        let leader_epoch = if version >= 3 { get_i32(&mut b)? } else { -1 };
        let metadata = if version >= 4 {
            get_compact_string(&mut b)?.unwrap_or_default()
        } else {
            get_string(&mut b)?
        };
        let commit_timestamp_ms = get_i64(&mut b)?;
        Ok(OffsetValue {
            offset,
            leader_epoch,
            metadata,
            commit_timestamp_ms,
        })
    }
}

/// One member in a stored group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// The member's metadata for the group's selected protocol.
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A group's metadata as stored after a rebalance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// When the group entered its current state (wall clock, ms).
    pub state_timestamp_ms: i64,
    pub members: Vec<StoredMember>,
}

impl GroupValue {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(128);
        b.put_i16(GROUP_METADATA_VALUE_VERSION);
        put_string(&mut b, &self.protocol_type);
        b.put_i32(self.generation);
        put_nullable_string(&mut b, self.protocol.as_deref());
        put_nullable_string(&mut b, self.leader.as_deref());
        b.put_i64(self.state_timestamp_ms);
        // A group's member count is bounded by `group.max.size` (an i32).
        b.put_i32(i32::try_from(self.members.len()).unwrap_or(i32::MAX));
        for m in &self.members {
            put_string(&mut b, &m.member_id);
            put_nullable_string(&mut b, m.instance_id.as_deref());
            put_string(&mut b, &m.client_id);
            put_string(&mut b, &m.client_host);
            b.put_i32(m.rebalance_timeout_ms);
            b.put_i32(m.session_timeout_ms);
            put_bytes(&mut b, &m.subscription);
            put_bytes(&mut b, &m.assignment);
        }
        b.freeze()
    }

    /// Reads versions 0–3 (Kafka's non-flexible layouts).
    pub fn decode(mut b: Bytes) -> Result<GroupValue, RecordError> {
        let version = get_i16(&mut b)?;
        if !(0..=3).contains(&version) {
            return err(format!("unsupported group value version {version}"));
        }
        let protocol_type = get_string(&mut b)?;
        let generation = get_i32(&mut b)?;
        let protocol = get_nullable_string(&mut b)?;
        let leader = get_nullable_string(&mut b)?;
        let state_timestamp_ms = if version >= 2 { get_i64(&mut b)? } else { -1 };
        let count = get_i32(&mut b)?;
        // Each member takes at least 22 bytes; a count beyond that is forged.
        if count < 0 || count as usize > b.remaining() / 22 {
            return err(format!("member count {count} exceeds the record"));
        }
        let mut members = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let member_id = get_string(&mut b)?;
            let instance_id = if version >= 3 {
                get_nullable_string(&mut b)?
            } else {
                None
            };
            let client_id = get_string(&mut b)?;
            let client_host = get_string(&mut b)?;
            let rebalance_timeout_ms = if version >= 1 { get_i32(&mut b)? } else { -1 };
            let session_timeout_ms = get_i32(&mut b)?;
            let subscription = get_bytes(&mut b)?;
            let assignment = get_bytes(&mut b)?;
            members.push(StoredMember {
                member_id,
                instance_id,
                client_id,
                client_host,
                rebalance_timeout_ms: if rebalance_timeout_ms < 0 {
                    session_timeout_ms
                } else {
                    rebalance_timeout_ms
                },
                session_timeout_ms,
                subscription,
                assignment,
            });
        }
        Ok(GroupValue {
            protocol_type,
            generation,
            protocol,
            leader,
            state_timestamp_ms,
            members,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_round_trip() {
        let k = RecordKey::Offset {
            group: "g".into(),
            topic: "orders".into(),
            partition: 7,
        };
        assert_eq!(RecordKey::decode(k.encode()).unwrap(), k);
        let k = RecordKey::Group { group: "g".into() };
        assert_eq!(RecordKey::decode(k.encode()).unwrap(), k);
        let v = OffsetValue {
            offset: 42,
            leader_epoch: 3,
            metadata: "m".into(),
            commit_timestamp_ms: 1_700_000_000_000,
        };
        assert_eq!(OffsetValue::decode(v.encode()).unwrap(), v);
        let g = GroupValue {
            protocol_type: "consumer".into(),
            generation: 4,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            state_timestamp_ms: 5,
            members: vec![StoredMember {
                member_id: "m1".into(),
                instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 45_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        assert_eq!(GroupValue::decode(g.encode()).unwrap(), g);
    }

    #[test]
    fn every_truncation_and_forged_count_is_an_error() {
        let g = GroupValue {
            protocol_type: "consumer".into(),
            generation: 1,
            protocol: None,
            leader: None,
            state_timestamp_ms: 0,
            members: vec![],
        }
        .encode();
        for cut in 0..g.len() {
            assert!(GroupValue::decode(g.slice(..cut)).is_err(), "cut {cut}");
        }
        let mut forged = g.to_vec();
        let n = forged.len();
        forged[n - 4..].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(GroupValue::decode(Bytes::from(forged)).is_err());
        assert!(RecordKey::decode(Bytes::from_static(b"\x00\x09")).is_err());
        assert!(OffsetValue::decode(Bytes::from_static(b"\x00\x03\x00")).is_err());
    }

    #[test]
    fn placement_matches_java_string_hash_code() {
        // "hello".hashCode() == 99162322 in Java; "" is 0.
        assert_eq!(java_string_hash("hello"), 99_162_322);
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(partition_for("hello", 50), 99_162_322 % 50);
        // A negative hash maps through abs.
        let h = java_string_hash("polygenelubricants");
        assert_eq!(h, i32::MIN);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
    }
}
