//! The group coordinator over real TCP connections: what only a socket can show — a
//! member whose connection closes while its JoinGroup waits is not counted as joined, and
//! shutdown answers parked JoinGroups with NOT_COORDINATOR instead of leaving them hanging.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{roundtrip, s, send, start_broker_with};
use kafka_protocol::messages::*;
use tokio::net::TcpStream;

/// The session of a member that must stay in the group for the whole test, however slow
/// the machine: nothing here heartbeats.
const LONG_SESSION_MS: i32 = 30_000;
/// The session of a member whose expiry a test waits for.
const SHORT_SESSION_MS: i32 = 1_500;

fn join(group: &str, member_id: &str, session_ms: i32) -> RequestKind {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(session_ms)
        .with_rebalance_timeout_ms(60_000)
        .with_member_id(s(member_id))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
        )
        .with_name(s("range"))
        .with_metadata(Bytes::from_static(b"sub"))])
        .into()
}

/// Joins (v3: no MEMBER_ID_REQUIRED round) and syncs; the member id and generation.
async fn stable_member(conn: &mut TcpStream, group: &str) -> (String, i32) {
    let ResponseKind::JoinGroup(j) = roundtrip(
        conn,
        ApiKey::JoinGroup,
        3,
        1,
        &join(group, "", LONG_SESSION_MS),
    )
    .await
    else {
        panic!("not a JoinGroup answer")
    };
    assert_eq!(j.error_code, 0);
    let sync: RequestKind = SyncGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(j.generation_id)
        .with_member_id(j.member_id.clone())
        .with_assignments(vec![
            sync_group_request::SyncGroupRequestAssignment::default()
                .with_member_id(j.member_id.clone())
                .with_assignment(Bytes::from_static(b"all")),
        ])
        .into();
    let ResponseKind::SyncGroup(r) = roundtrip(conn, ApiKey::SyncGroup, 3, 2, &sync).await else {
        panic!("not a SyncGroup answer")
    };
    assert_eq!(r.error_code, 0);
    (j.member_id.to_string(), j.generation_id)
}

async fn describe(conn: &mut TcpStream, group: &str) -> (String, usize) {
    let req: RequestKind = DescribeGroupsRequest::default()
        .with_groups(vec![GroupId(s(group))])
        .into();
    let ResponseKind::DescribeGroups(r) = roundtrip(conn, ApiKey::DescribeGroups, 3, 9, &req).await
    else {
        panic!("not a DescribeGroups answer")
    };
    let g = &r.groups[0];
    (g.group_state.to_string(), g.members.len())
}

async fn wait_for_state(conn: &mut TcpStream, group: &str, state: &str, members: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if describe(conn, group).await == (state.to_string(), members) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "group never reached {state}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Group "g" with one stable member (generation 1) and a second member whose JoinGroup
/// is parked in the rebalance it started, with a session of `joiner_session_ms`: (first's
/// connection, first's id, second's).
async fn stable_member_and_parked_joiner(
    addr: std::net::SocketAddr,
    joiner_session_ms: i32,
) -> (TcpStream, String, TcpStream) {
    let mut first = TcpStream::connect(addr).await.unwrap();
    let (first_id, generation) = stable_member(&mut first, "g").await;
    assert_eq!(generation, 1);
    let mut second = TcpStream::connect(addr).await.unwrap();
    send(
        &mut second,
        ApiKey::JoinGroup,
        3,
        77,
        &join("g", "", joiner_session_ms),
    )
    .await;
    let mut admin = TcpStream::connect(addr).await.unwrap();
    wait_for_state(&mut admin, "g", "PreparingRebalance", 2).await;
    (first, first_id, second)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joiner_that_hangs_up_is_not_counted_as_joined() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_broker_with(dir.path(), |c| {
        c.groups.min_session_timeout_ms = 1_000;
    })
    .await;
    // A second member joins (its JoinGroup parks: the first has not rejoined), then its
    // process goes away.
    let (mut first, first_id, second) =
        stable_member_and_parked_joiner(running.kafka_addr, SHORT_SESSION_MS).await;
    drop(second);
    // Wait until the broker has seen the hang-up (and the admin connection's): only the
    // first member's connection is left open.
    let open = &running.broker.metrics.connections_open;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while open.get() != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "connections never closed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The first member rejoins. The rebalance must not complete with the vanished
    // member: it waits for that member's session to end, then completes with one.
    let ResponseKind::JoinGroup(j) = roundtrip(
        &mut first,
        ApiKey::JoinGroup,
        3,
        3,
        &join("g", &first_id, LONG_SESSION_MS),
    )
    .await
    else {
        panic!("not a JoinGroup answer")
    };
    assert_eq!(j.error_code, 0);
    assert_eq!(j.generation_id, 2);
    assert_eq!(j.leader.as_str(), first_id);
    assert_eq!(
        j.members.len(),
        1,
        "the member that hung up was counted as joined"
    );
    running.shutdown();
    running.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_parked_joins_with_not_coordinator() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_broker_with(dir.path(), |c| {
        c.groups.min_session_timeout_ms = 1_000;
    })
    .await;
    let (_first, _, mut second) =
        stable_member_and_parked_joiner(running.kafka_addr, LONG_SESSION_MS).await;

    running.shutdown();
    // The parked JoinGroup is answered (NOT_COORDINATOR) rather than cut off.
    let answer = tokio::time::timeout(Duration::from_secs(5), async {
        use kafka_protocol::protocol::Decodable;
        use tokio::io::AsyncReadExt;
        let len = second.read_i32().await.unwrap();
        let mut frame = vec![0u8; len as usize];
        second.read_exact(&mut frame).await.unwrap();
        let mut frame = Bytes::from(frame);
        ResponseHeader::decode(&mut frame, 0).unwrap();
        JoinGroupResponse::decode(&mut frame, 3).unwrap()
    })
    .await
    .expect("the parked JoinGroup was not answered at shutdown");
    assert_eq!(answer.error_code, 16, "NOT_COORDINATOR");
    running.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_offsets_topic_refuses_delete_records() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_broker_with(dir.path(), |_| {}).await;
    let mut conn = TcpStream::connect(running.kafka_addr).await.unwrap();
    let req: RequestKind = DeleteRecordsRequest::default()
        .with_timeout_ms(5_000)
        .with_topics(vec![delete_records_request::DeleteRecordsTopic::default()
            .with_name(TopicName(s("__consumer_offsets")))
            .with_partitions(vec![
                delete_records_request::DeleteRecordsPartition::default()
                    .with_partition_index(0)
                    .with_offset(-1),
            ])])
        .into();
    let ResponseKind::DeleteRecords(r) =
        roundtrip(&mut conn, ApiKey::DeleteRecords, 2, 1, &req).await
    else {
        panic!("not a DeleteRecords answer")
    };
    assert_eq!(
        r.topics[0].partitions[0].error_code, 17,
        "INVALID_TOPIC_EXCEPTION"
    );
    running.shutdown();
    running.wait().await.unwrap();
}
