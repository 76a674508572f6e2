//! Idempotent producers over the wire: a retried batch is answered with its original
//! offsets and not appended again, a gap is refused, and both still hold after the
//! broker restarts (producer state is rebuilt from the log).

mod common;

use bytes::Bytes;
use common::{idempotent_batch, roundtrip, start_broker};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use tokio::net::TcpStream;

async fn produce(conn: &mut TcpStream, id: i32, records: Bytes) -> (i16, i64) {
    let req: RequestKind = common::produce_one("idem", 0, records, -1).into();
    match roundtrip(conn, ApiKey::Produce, 9, id, &req).await {
        ResponseKind::Produce(r) => {
            let p = &r.responses[0].partition_responses[0];
            (p.error_code, p.base_offset)
        }
        other => panic!("{other:?}"),
    }
}

async fn producer_id(conn: &mut TcpStream) -> i64 {
    let req: RequestKind = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .into();
    match roundtrip(conn, ApiKey::InitProducerId, 4, 0, &req).await {
        ResponseKind::InitProducerId(r) => {
            assert_eq!(r.error_code, 0);
            assert_eq!(r.producer_epoch, 0);
            *r.producer_id
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_deduplicated_and_gaps_refused_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_broker(dir.path()).await;
    running
        .broker
        .cluster
        .create_topic(&running.broker.topics, "idem", 1, 1, Default::default())
        .await
        .unwrap();
    let mut conn = TcpStream::connect(running.kafka_addr).await.unwrap();
    let pid = producer_id(&mut conn).await;

    assert_eq!(
        produce(&mut conn, 1, idempotent_batch(pid, 0, 0, 3)).await,
        (0, 0)
    );
    assert_eq!(
        produce(&mut conn, 2, idempotent_batch(pid, 0, 3, 2)).await,
        (0, 3)
    );
    // A retry of either is answered with the original offsets.
    assert_eq!(
        produce(&mut conn, 3, idempotent_batch(pid, 0, 0, 3)).await,
        (0, 0)
    );
    assert_eq!(
        produce(&mut conn, 4, idempotent_batch(pid, 0, 3, 2)).await,
        (0, 3)
    );
    let gap = produce(&mut conn, 5, idempotent_batch(pid, 0, 9, 1)).await;
    assert_eq!(gap.0, ResponseError::OutOfOrderSequenceNumber.code());
    // A producer the partition has no state for (retention may have removed it) is
    // accepted wherever its sequence is, as Kafka does.
    let unknown = produce(&mut conn, 6, idempotent_batch(pid + 1000, 0, 4, 1)).await;
    assert_eq!(unknown, (0, 5));
    let p = running.broker.topics.get("idem").unwrap().partitions[0].clone();
    assert_eq!(p.offsets().unwrap().log_end, 6, "no retry was appended");
    drop(p);

    running.shutdown();
    running.wait().await.unwrap();

    let running = start_broker(dir.path()).await;
    let mut conn = TcpStream::connect(running.kafka_addr).await.unwrap();
    assert_eq!(
        produce(&mut conn, 7, idempotent_batch(pid, 0, 3, 2)).await,
        (0, 3)
    );
    assert_eq!(
        produce(&mut conn, 8, idempotent_batch(pid, 0, 5, 1)).await,
        (0, 6)
    );
    let gap = produce(&mut conn, 9, idempotent_batch(pid, 0, 7, 1)).await;
    assert_eq!(gap.0, ResponseError::OutOfOrderSequenceNumber.code());
    // A new id after the restart never repeats one handed out before it.
    assert!(producer_id(&mut conn).await > pid);
    let p = running.broker.topics.get("idem").unwrap().partitions[0].clone();
    assert_eq!(p.offsets().unwrap().log_end, 7);
    drop(p);
    running.shutdown();
    running.wait().await.unwrap();
}
