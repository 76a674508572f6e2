//! Every API at every version ApiVersions advertises gets a well-formed answer from a
//! real broker over TCP: the request is encoded by the `kafka-protocol` client side, the
//! answer must decode at the same version. Catches fields a handler sets that the
//! response version cannot carry (the codec then refuses to encode and the connection
//! closes) and handlers that mishandle a version's layout.

mod common;

use bytes::{BufMut, Bytes, BytesMut};
use common::{batch, roundtrip, s, start_broker, topic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A request of `api` at `version` that exercises the handler's main path.
fn request(api: ApiKey, version: i16) -> RequestKind {
    use kafka_protocol::messages::*;
    match api {
        ApiKey::ApiVersions => ApiVersionsRequest::default()
            .with_client_software_name(s("test"))
            .with_client_software_version(s("1"))
            .into(),
        ApiKey::Metadata => MetadataRequest::default()
            .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
            )
            .with_name(Some(topic("t")))]))
            .with_allow_auto_topic_creation(true)
            .into(),
        ApiKey::Produce => ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![produce_request::TopicProduceData::default()
                .with_name(topic("t"))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch())),
                ])])
            .into(),
        ApiKey::Fetch => common::fetch_one("t", 0, 0)
            .with_max_wait_ms(0)
            .with_min_bytes(0)
            .into(),
        ApiKey::ListOffsets => ListOffsetsRequest::default()
            .with_replica_id((-1).into())
            .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
                .with_name(topic("t"))
                .with_partitions(vec![
                    list_offsets_request::ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(-1),
                ])])
            .into(),
        ApiKey::OffsetForLeaderEpoch => OffsetForLeaderEpochRequest::default()
            .with_replica_id((-1).into())
            .with_topics(vec![
                offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                    .with_topic(topic("t"))
                    .with_partitions(vec![
                        offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                            .with_partition(0)
                            .with_current_leader_epoch(-1)
                            .with_leader_epoch(0),
                    ]),
            ])
            .into(),
        ApiKey::CreateTopics => CreateTopicsRequest::default()
            .with_timeout_ms(5000)
            .with_topics(vec![create_topics_request::CreatableTopic::default()
                .with_name(topic(&format!("created-v{version}")))
                .with_num_partitions(2)
                .with_replication_factor(1)
                .with_configs(vec![
                    create_topics_request::CreatableTopicConfig::default()
                        .with_name(s("retention.ms"))
                        .with_value(Some(s("100000"))),
                ])])
            .into(),
        ApiKey::DeleteTopics if version >= 6 => DeleteTopicsRequest::default()
            .with_topics(vec![delete_topics_request::DeleteTopicState::default()
                .with_name(Some(topic(&format!("created-v{}", 7))))])
            .into(),
        ApiKey::DeleteTopics => DeleteTopicsRequest::default()
            .with_topic_names(vec![topic("never-created")])
            .into(),
        ApiKey::DeleteRecords => DeleteRecordsRequest::default()
            .with_timeout_ms(5000)
            .with_topics(vec![delete_records_request::DeleteRecordsTopic::default()
                .with_name(topic("t"))
                .with_partitions(vec![
                    delete_records_request::DeleteRecordsPartition::default()
                        .with_partition_index(0)
                        .with_offset(0),
                ])])
            .into(),
        // The codec's default is an empty transactional id; idempotent producers send null.
        ApiKey::InitProducerId => InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000)
            .into(),
        ApiKey::DescribeConfigs => DescribeConfigsRequest::default()
            .with_resources(vec![
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s("t")),
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(4)
                    .with_resource_name(s("1")),
            ])
            .into(),
        ApiKey::AlterConfigs => AlterConfigsRequest::default()
            .with_resources(vec![alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s("t"))
                .with_configs(vec![alter_configs_request::AlterableConfig::default()
                    .with_name(s("retention.ms"))
                    .with_value(Some(s("200000")))])])
            .into(),
        ApiKey::CreatePartitions => CreatePartitionsRequest::default()
            .with_timeout_ms(5000)
            .with_topics(vec![
                create_partitions_request::CreatePartitionsTopic::default()
                    .with_name(topic(&format!("grown-{version}")))
                    .with_count(3),
            ])
            .into(),
        ApiKey::IncrementalAlterConfigs => IncrementalAlterConfigsRequest::default()
            .with_resources(vec![
                incremental_alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s("t"))
                    .with_configs(vec![
                        incremental_alter_configs_request::AlterableConfig::default()
                            .with_name(s("retention.bytes"))
                            .with_config_operation(0)
                            .with_value(Some(s("1000000"))),
                    ]),
            ])
            .into(),
        ApiKey::DescribeCluster => DescribeClusterRequest::default().into(),
        ApiKey::FindCoordinator if version < 4 => FindCoordinatorRequest::default()
            .with_key(s("group-a"))
            .into(),
        ApiKey::FindCoordinator => FindCoordinatorRequest::default()
            .with_coordinator_keys(vec![s("group-a"), s("group-b")])
            .into(),
        ApiKey::JoinGroup => JoinGroupRequest::default()
            .with_group_id(GroupId(s(&format!("join-v{version}"))))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(10_000)
            .with_member_id(s(""))
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
            )
            .with_name(s("range"))
            .with_metadata(Bytes::from_static(b"sub"))])
            .into(),
        ApiKey::SyncGroup => SyncGroupRequest::default()
            .with_group_id(GroupId(s("nobody")))
            .with_generation_id(1)
            .with_member_id(s("m"))
            .into(),
        ApiKey::Heartbeat => HeartbeatRequest::default()
            .with_group_id(GroupId(s("nobody")))
            .with_generation_id(1)
            .with_member_id(s("m"))
            .into(),
        ApiKey::LeaveGroup if version < 3 => LeaveGroupRequest::default()
            .with_group_id(GroupId(s("nobody")))
            .with_member_id(s("m"))
            .into(),
        ApiKey::LeaveGroup => LeaveGroupRequest::default()
            .with_group_id(GroupId(s("nobody")))
            .with_members(vec![
                leave_group_request::MemberIdentity::default().with_member_id(s("m"))
            ])
            .into(),
        ApiKey::OffsetCommit => OffsetCommitRequest::default()
            .with_group_id(GroupId(s(&format!("commit-v{version}"))))
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(s(""))
            .with_topics(vec![
                offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(topic("t"))
                    .with_partitions(vec![
                        offset_commit_request::OffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(i64::from(version))
                            .with_committed_metadata(Some(s("meta"))),
                    ]),
            ])
            .into(),
        ApiKey::OffsetFetch if version < 8 => OffsetFetchRequest::default()
            .with_group_id(GroupId(s("commit-v2")))
            .with_topics(Some(vec![
                offset_fetch_request::OffsetFetchRequestTopic::default()
                    .with_name(topic("t"))
                    .with_partition_indexes(vec![0, 7]),
            ]))
            .into(),
        ApiKey::OffsetFetch => OffsetFetchRequest::default()
            .with_groups(vec![
                offset_fetch_request::OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(s("commit-v2")))
                    .with_topics(None),
            ])
            .into(),
        ApiKey::ListGroups => ListGroupsRequest::default().into(),
        ApiKey::DescribeGroups => DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(s("commit-v2")), GroupId(s("nobody"))])
            .into(),
        ApiKey::DeleteGroups => DeleteGroupsRequest::default()
            .with_groups_names(vec![GroupId(s(&format!("commit-v{}", version + 6)))])
            .into(),
        ApiKey::OffsetDelete => OffsetDeleteRequest::default()
            .with_group_id(GroupId(s("commit-v3")))
            .with_topics(vec![
                offset_delete_request::OffsetDeleteRequestTopic::default()
                    .with_name(topic("t"))
                    .with_partitions(vec![
                        offset_delete_request::OffsetDeleteRequestPartition::default()
                            .with_partition_index(0),
                    ]),
            ])
            .into(),
        // On a PLAINTEXT listener: ILLEGAL_SASL_STATE (test_sasl.py runs the exchange).
        ApiKey::SaslHandshake => SaslHandshakeRequest::default()
            .with_mechanism(s("PLAIN"))
            .into(),
        ApiKey::SaslAuthenticate => SaslAuthenticateRequest::default()
            .with_auth_bytes(Bytes::from_static(b"\0u\0p"))
            .into(),
        ApiKey::AlterUserScramCredentials => AlterUserScramCredentialsRequest::default()
            .with_upsertions(vec![
                alter_user_scram_credentials_request::ScramCredentialUpsertion::default()
                    .with_name(s("scram-user"))
                    .with_mechanism(1)
                    .with_iterations(4096)
                    .with_salt(Bytes::from_static(&[7; 16]))
                    .with_salted_password(Bytes::from_static(&[9; 32])),
            ])
            .into(),
        ApiKey::DescribeUserScramCredentials => DescribeUserScramCredentialsRequest::default()
            .with_users(Some(vec![
                describe_user_scram_credentials_request::UserName::default()
                    .with_name(s("scram-user")),
            ]))
            .into(),
        // This broker has no authorizer: SECURITY_DISABLED (test_acls.py covers ACLs).
        ApiKey::CreateAcls => CreateAclsRequest::default()
            .with_creations(vec![create_acls_request::AclCreation::default()
                .with_resource_type(2)
                .with_resource_name(s("t"))
                .with_resource_pattern_type(3)
                .with_principal(s("User:alice"))
                .with_host(s("*"))
                .with_operation(3)
                .with_permission_type(3)])
            .into(),
        ApiKey::DescribeAcls => DescribeAclsRequest::default()
            .with_resource_type_filter(1)
            .with_pattern_type_filter(1)
            .with_operation(1)
            .with_permission_type(1)
            .into(),
        ApiKey::DeleteAcls => DeleteAclsRequest::default()
            .with_filters(vec![delete_acls_request::DeleteAclsFilter::default()
                .with_resource_type_filter(1)
                .with_pattern_type_filter(1)
                .with_operation(1)
                .with_permission_type(1)])
            .into(),
        ApiKey::AlterClientQuotas => AlterClientQuotasRequest::default()
            .with_entries(vec![alter_client_quotas_request::EntryData::default()
                .with_entity(vec![alter_client_quotas_request::EntityData::default()
                    .with_entity_type(s("user"))
                    .with_entity_name(Some(s("quota-user")))])
                .with_ops(vec![alter_client_quotas_request::OpData::default()
                    .with_key(s("producer_byte_rate"))
                    .with_value(1e9)])])
            .into(),
        ApiKey::DescribeClientQuotas => DescribeClientQuotasRequest::default()
            .with_components(vec![
                describe_client_quotas_request::ComponentData::default()
                    .with_entity_type(s("user"))
                    .with_match_type(0)
                    .with_match(Some(s("quota-user"))),
            ])
            .into(),
        // Before InitProducerId the id has no transaction: a well-formed refusal.
        ApiKey::AddPartitionsToTxn => AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(s("tx").into())
            .with_v3_and_below_producer_id(1.into())
            .with_v3_and_below_topics(vec![
                add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                    .with_name(topic("t"))
                    .with_partitions(vec![0]),
            ])
            .into(),
        ApiKey::EndTxn => EndTxnRequest::default()
            .with_transactional_id(s("tx").into())
            .with_producer_id(1.into())
            .with_committed(true)
            .into(),
        ApiKey::AddOffsetsToTxn => AddOffsetsToTxnRequest::default()
            .with_transactional_id(s("tx").into())
            .with_producer_id(1.into())
            .with_group_id(s("g").into())
            .into(),
        ApiKey::TxnOffsetCommit => TxnOffsetCommitRequest::default()
            .with_transactional_id(s("tx").into())
            .with_group_id(s("g").into())
            .with_producer_id(1.into())
            .with_generation_id(-1)
            .with_topics(vec![
                txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                    .with_name(topic("t"))
                    .with_partitions(vec![
                        txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                            .with_committed_offset(1),
                    ]),
            ])
            .into(),
        ApiKey::DescribeTransactions => DescribeTransactionsRequest::default()
            .with_transactional_ids(vec![s("tx").into()])
            .into(),
        ApiKey::ListTransactions => ListTransactionsRequest::default()
            .with_state_filters(vec![s("Ongoing"), s("Bogus")])
            .with_duration_filter(if version >= 1 { 1000 } else { -1 })
            .into(),
        ApiKey::DescribeProducers => DescribeProducersRequest::default()
            .with_topics(vec![describe_producers_request::TopicRequest::default()
                .with_name(topic("t"))
                .with_partition_indexes(vec![0, 9])])
            .into(),
        ApiKey::WriteTxnMarkers => WriteTxnMarkersRequest::default()
            .with_markers(vec![write_txn_markers_request::WritableTxnMarker::default(
            )
            .with_producer_id(7.into())
            .with_topics(vec![
                write_txn_markers_request::WritableTxnMarkerTopic::default()
                    .with_name(topic("t"))
                    .with_partition_indexes(vec![0]),
            ])])
            .into(),
        other => panic!("no test request for {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_advertised_version_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_broker(dir.path()).await;
    let mut conn = TcpStream::connect(running.kafka_addr).await.unwrap();

    // Topics the version loops below rely on.
    for (name, partitions) in [("t", 1)]
        .into_iter()
        .chain((0..=3).map(|v| (format!("grown-{v}").leak() as &str, 1)))
    {
        running
            .broker
            .cluster
            .create_topic(
                &running.broker.topics,
                name,
                partitions,
                1,
                Default::default(),
            )
            .await
            .unwrap();
    }

    let mut correlation_id = 0;
    for &(api, min, max) in broker::versions::SUPPORTED {
        for version in min..=max {
            if !broker::versions::accepted(api, version) {
                continue;
            }
            correlation_id += 1;
            let body = request(api, version);
            let response = roundtrip(&mut conn, api, version, correlation_id, &body).await;
            match response {
                ResponseKind::Produce(r) => {
                    let p = &r.responses[0].partition_responses[0];
                    assert_eq!(p.error_code, 0, "Produce v{version}");
                    assert!(p.base_offset >= 0, "Produce v{version}");
                }
                ResponseKind::ListOffsets(r) => {
                    let p = &r.topics[0].partitions[0];
                    assert_eq!(p.error_code, 0, "ListOffsets v{version}");
                    assert!(p.offset >= 0, "ListOffsets v{version}");
                }
                ResponseKind::OffsetForLeaderEpoch(r) => {
                    // Epoch 0 is older than every entry: it ends where the log begins.
                    let p = &r.topics[0].partitions[0];
                    assert_eq!(p.error_code, 0, "OffsetForLeaderEpoch v{version}");
                    assert_eq!((p.leader_epoch, p.end_offset), (0, 0));
                }
                ResponseKind::Metadata(r) => {
                    assert_eq!(r.topics[0].error_code, 0, "Metadata v{version}");
                    assert_eq!(r.brokers.len(), 1);
                    assert_eq!(r.brokers[0].port, i32::from(running.kafka_addr.port()));
                }
                ResponseKind::CreateTopics(r) => {
                    assert_eq!(r.topics[0].error_code, 0, "CreateTopics v{version}");
                }
                ResponseKind::CreatePartitions(r) => {
                    assert_eq!(r.results[0].error_code, 0, "CreatePartitions v{version}");
                }
                ResponseKind::ApiVersions(r) => {
                    assert_eq!(r.error_code, 0);
                    assert_eq!(r.api_keys.len(), broker::versions::SUPPORTED.len());
                }
                ResponseKind::InitProducerId(r) => {
                    assert_eq!(r.error_code, 0);
                    assert!(*r.producer_id >= 0);
                }
                ResponseKind::AlterConfigs(r) => assert_eq!(r.responses[0].error_code, 0),
                ResponseKind::IncrementalAlterConfigs(r) => {
                    assert_eq!(r.responses[0].error_code, 0)
                }
                ResponseKind::DescribeConfigs(r) => {
                    assert!(r
                        .results
                        .iter()
                        .all(|x| x.error_code == 0 && !x.configs.is_empty()));
                }
                ResponseKind::Fetch(r) => {
                    assert_eq!(
                        r.responses[0].partitions[0].error_code, 0,
                        "Fetch v{version}"
                    );
                }
                ResponseKind::FindCoordinator(r) => {
                    let port = i32::from(running.kafka_addr.port());
                    if version < 4 {
                        assert_eq!(r.error_code, 0, "FindCoordinator v{version}");
                        assert_eq!(r.port, port);
                    } else {
                        assert_eq!(r.coordinators.len(), 2);
                        assert!(r
                            .coordinators
                            .iter()
                            .all(|c| c.error_code == 0 && c.port == port));
                    }
                }
                ResponseKind::JoinGroup(r) => {
                    if version >= 4 {
                        assert_eq!(r.error_code, 79, "JoinGroup v{version}: MEMBER_ID_REQUIRED");
                        assert!(!r.member_id.is_empty());
                    } else {
                        assert_eq!(r.error_code, 0, "JoinGroup v{version}");
                        assert_eq!(r.generation_id, 1);
                        assert_eq!(r.leader, r.member_id);
                        assert_eq!(r.members.len(), 1);
                    }
                }
                ResponseKind::SaslHandshake(r) => assert_eq!(r.error_code, 34),
                ResponseKind::SaslAuthenticate(r) => {
                    assert_eq!(r.error_code, 34, "SaslAuthenticate v{version}")
                }
                ResponseKind::AlterUserScramCredentials(r) => {
                    assert_eq!(r.results[0].error_code, 0)
                }
                ResponseKind::DescribeUserScramCredentials(r) => {
                    // AlterUserScramCredentials, before it in the table, made the user.
                    assert_eq!(r.results[0].error_code, 0);
                    assert_eq!(r.results[0].credential_infos[0].iterations, 4096);
                }
                ResponseKind::AlterClientQuotas(r) => assert_eq!(r.entries[0].error_code, 0),
                ResponseKind::DescribeClientQuotas(r) => {
                    // AlterClientQuotas, before it in the table, set the quota.
                    let entries = r.entries.as_ref().expect("entries");
                    assert_eq!((r.error_code, entries.len()), (0, 1));
                    assert_eq!(entries[0].values[0].value, 1e9);
                }
                ResponseKind::CreateAcls(r) => assert_eq!(r.results[0].error_code, 54),
                ResponseKind::DescribeAcls(r) => assert_eq!(r.error_code, 54),
                ResponseKind::DeleteAcls(r) => assert_eq!(r.filter_results[0].error_code, 54),
                ResponseKind::SyncGroup(r) => assert_eq!(r.error_code, 25, "SyncGroup v{version}"),
                ResponseKind::Heartbeat(r) => assert_eq!(r.error_code, 25, "Heartbeat v{version}"),
                ResponseKind::LeaveGroup(r) => {
                    if version < 3 {
                        assert_eq!(r.error_code, 25);
                    } else {
                        assert_eq!(r.members[0].error_code, 25, "LeaveGroup v{version}");
                    }
                }
                ResponseKind::OffsetCommit(r) => {
                    assert_eq!(
                        r.topics[0].partitions[0].error_code, 0,
                        "OffsetCommit v{version}"
                    );
                }
                ResponseKind::OffsetFetch(r) => {
                    let partitions: Vec<(i32, i64)> = if version < 8 {
                        r.topics[0]
                            .partitions
                            .iter()
                            .map(|p| (p.partition_index, p.committed_offset))
                            .collect()
                    } else {
                        r.groups[0].topics[0]
                            .partitions
                            .iter()
                            .map(|p| (p.partition_index, p.committed_offset))
                            .collect()
                    };
                    // commit-v2 committed offset 2 for t-0; t-7 has no commit.
                    let want = if version < 8 {
                        vec![(0, 2), (7, -1)]
                    } else {
                        vec![(0, 2)]
                    };
                    assert_eq!(partitions, want, "OffsetFetch v{version}");
                }
                ResponseKind::ListGroups(r) => {
                    assert!(r.groups.iter().any(|g| g.group_id.as_str() == "commit-v2"));
                }
                ResponseKind::DescribeGroups(r) => {
                    assert_eq!(r.groups[0].group_state.as_str(), "Empty", "v{version}");
                    assert_eq!(r.groups[1].group_state.as_str(), "Dead", "v{version}");
                }
                ResponseKind::DeleteGroups(r) => {
                    assert_eq!(r.results[0].error_code, 0, "DeleteGroups v{version}");
                }
                ResponseKind::OffsetDelete(r) => {
                    assert_eq!(r.error_code, 0);
                    assert_eq!(r.topics[0].partitions[0].error_code, 0);
                }
                ResponseKind::DeleteRecords(r) => {
                    assert_eq!(r.topics[0].partitions[0].error_code, 0);
                }
                ResponseKind::DescribeTransactions(r) => {
                    // No transaction ever ran: `__transaction_state` is not there yet.
                    let t = &r.transaction_states[0];
                    assert_eq!((t.transactional_id.as_str(), t.error_code), ("tx", 15));
                }
                ResponseKind::ListTransactions(r) => {
                    assert_eq!(r.error_code, 0, "ListTransactions v{version}");
                    assert_eq!(r.unknown_state_filters, vec![s("Bogus")]);
                    assert!(r.transaction_states.is_empty());
                }
                ResponseKind::WriteTxnMarkers(r) => {
                    // Producer 7 has no transaction open on t-0: INVALID_TXN_STATE.
                    let p = &r.markers[0].topics[0].partitions[0];
                    assert_eq!(p.error_code, 48);
                }
                ResponseKind::DescribeProducers(r) => {
                    let p = &r.topics[0].partitions;
                    assert_eq!((p[0].error_code, p[1].error_code), (0, 3));
                }
                _ => {}
            }
        }
    }

    // An ApiVersions version beyond ours: UNSUPPORTED_VERSION in the v0 layout.
    correlation_id += 1;
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(ApiKey::ApiVersions as i16)
        .with_request_api_version(99)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(s("probe")))
        .encode(&mut buf, 1)
        .unwrap();
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    conn.write_all(&buf).await.unwrap();
    let len = conn.read_i32().await.unwrap();
    let mut frame = vec![0u8; len as usize];
    conn.read_exact(&mut frame).await.unwrap();
    let mut frame = Bytes::from(frame);
    let header = ResponseHeader::decode(&mut frame, 0).unwrap();
    assert_eq!(header.correlation_id, correlation_id);
    let r = ApiVersionsResponse::decode(&mut frame, 0).unwrap();
    assert_eq!(r.error_code, 35);
    assert!(!r.api_keys.is_empty());

    running.shutdown();
    running.wait().await.unwrap();
}
