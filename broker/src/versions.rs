//! The API versions this broker implements: exactly what ApiVersions advertises.
//!
//! Produce advertises v0–v2 although only v3+ (RecordBatch v2) is accepted: librdkafka
//! derives features (compression, message format) from the advertised ranges and turns
//! them off when the low versions are missing (KAFKA-18659); Kafka 4 does the same. A
//! Produce request below v3 closes its connection.
//!
//! FindCoordinator v0 matters for the same reason: librdkafka enables LZ4 only when it
//! is in the list; and SaslHandshake v0, without which librdkafka before 2.2 reports
//! "SASL Handshake not supported by broker" (v0 itself answers UNSUPPORTED_VERSION).
//!
//! The group APIs stop below Kafka's newest versions where those belong to KIP-848's
//! consumer protocol (OffsetCommit v9 and OffsetFetch v9 carry member epochs);
//! OffsetCommit v0–1 are gone from Kafka 4 and from the codec.

use kafka_protocol::messages::ApiKey;

/// `(api, min, max)` for every API this broker answers.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 0, 11),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 6),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::AddPartitionsToTxn, 0, 3),
    (ApiKey::EndTxn, 0, 3),
    (ApiKey::AddOffsetsToTxn, 0, 3),
    (ApiKey::TxnOffsetCommit, 0, 3),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 1),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::WriteTxnMarkers, 1, 1),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 8),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    (ApiKey::AlterClientQuotas, 0, 1),
    (ApiKey::DescribeClientQuotas, 0, 1),
];

/// Lowest Produce version actually accepted (RecordBatch v2 only).
pub const PRODUCE_MIN_ACCEPTED: i16 = 3;

/// The advertised range of `api`, if this broker implements it.
pub fn range(api: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(k, _, _)| *k == api)
        .map(|&(_, min, max)| (min, max))
}

/// Lowest SaslHandshake version accepted: v0 is followed by raw SASL frames, which no
/// client since Kafka 1.0 sends; it is advertised because librdkafka before 2.2 enables
/// SASL only when SaslHandshake v0 is in range (it then uses v1).
pub const SASL_HANDSHAKE_MIN_ACCEPTED: i16 = 1;

/// The lowest version of `api` that is answered (above the advertised minimum for
/// Produce and SaslHandshake).
fn min_accepted(api: ApiKey, advertised_min: i16) -> i16 {
    match api {
        ApiKey::Produce => advertised_min.max(PRODUCE_MIN_ACCEPTED),
        ApiKey::SaslHandshake => advertised_min.max(SASL_HANDSHAKE_MIN_ACCEPTED),
        _ => advertised_min,
    }
}

/// Whether requests of `api` at `version` are answered.
pub fn accepted(api: ApiKey, version: i16) -> bool {
    range(api).is_some_and(|(min, max)| (min_accepted(api, min)..=max).contains(&version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertised_ranges_lie_within_what_the_codec_encodes() {
        for &(api, min, max) in SUPPORTED {
            let codec = api.valid_versions();
            assert!(min <= max, "{api:?}");
            let lowest = min_accepted(api, min);
            assert!(
                codec.min <= lowest && max <= codec.max,
                "{api:?}: {min}..={max} vs {codec:?}"
            );
        }
        assert!(!accepted(ApiKey::Produce, 2));
        assert!(accepted(ApiKey::Produce, 3));
        assert!(accepted(ApiKey::JoinGroup, 0));
        assert!(!accepted(ApiKey::OffsetCommit, 9));
        assert!(!accepted(ApiKey::SaslHandshake, 0));
        assert!(accepted(ApiKey::SaslHandshake, 1));
    }
}
