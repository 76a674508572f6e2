use super::*;

fn open(dir: &std::path::Path) -> Arc<Partition> {
    // Opened outside a runtime: no flusher task, so the test decides when to flush.
    let shared = Shared::new(Arc::new(Metrics::new()), Arc::default());
    Partition::open("t".into(), 0, dir, LogConfig::default(), shared).expect("open")
}

/// `records` records of 10 bytes, not idempotent (never a duplicate).
fn plain_batch(records: i64) -> Vec<u8> {
    let specs = (0..records).map(|i| strata_testkit::RecordSpec {
        key: None,
        value: Some(Bytes::from(vec![b'v'; 10])),
        timestamp_ms: 1_700_000_000_000 + i,
    });
    strata_testkit::encode_batch(
        specs,
        strata_testkit::NO_PRODUCER,
        strata_testkit::Compression::None,
    )
    .to_vec()
}

#[test]
fn one_flush_makes_every_waiting_produce_durable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = open(dir.path());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut waiters = Vec::new();
        for _ in 0..5 {
            let batch = plain_batch(3);
            let appended = p.append(&batch).expect("append");
            let p = p.clone();
            waiters.push(tokio::spawn(async move {
                p.wait_durable(appended.last_offset, Duration::from_secs(30))
                    .await
            }));
        }
        // Let every waiter subscribe; none can finish before the flush.
        tokio::task::yield_now().await;
        assert!(waiters.iter().all(|w| !w.is_finished()));
        assert_eq!(p.high_watermark(), 0);
        assert!(p.flush_once().await);
        for w in waiters {
            assert!(w.await.expect("waiter").is_ok());
        }
        assert_eq!(p.high_watermark(), 15);
        assert_eq!(p.shared.metrics.flushes.get(), 1);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_nobody_waits_for_still_become_durable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let shared = Shared::new(Arc::new(Metrics::new()), Arc::default());
    // Opened inside the runtime: the flusher task runs.
    let p = Partition::open("t".into(), 0, dir.path(), LogConfig::default(), shared).expect("open");
    let mut hw = p.watch_high_watermark();
    let batch = plain_batch(4);
    p.append(&batch).expect("append");
    // No waiter asked: the flush comes after UNWAITED_FLUSH_DELAY on its own.
    tokio::time::timeout(Duration::from_secs(30), hw.wait_for(|&h| h == 4))
        .await
        .expect("the high watermark moves without a waiter")
        .expect("partition open");
    let batch = plain_batch(4);
    let last = p.append(&batch).expect("append").last_offset;
    assert_eq!(last, 7);
    assert!(p.wait_durable(last, Duration::from_secs(30)).await.is_ok());
    // A long poll's demand lasts exactly as long as its guard.
    let demand = p.flush_demand();
    let second = p.flush_demand();
    assert_eq!(p.fetch_waiters.load(Ordering::Acquire), 2);
    drop((demand, second));
    assert_eq!(p.fetch_waiters.load(Ordering::Acquire), 0);
    p.close().expect("close");
}

#[test]
fn a_corrupt_batch_is_refused_before_its_sequence_is_judged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = open(dir.path());
    let first = strata_testkit::keyed_batch(1, 2, 10, 1_700_000_000_000);
    let mut control = first.clone();
    p.append(&first).expect("append");
    // Attributes bit 5 (control) is under the CRC: flipping it is corruption first.
    control[22] ^= 0x20;
    assert_eq!(
        p.append(&control).map_err(|e| e.code()),
        Err(kafka_protocol::error::ResponseError::CorruptMessage.code())
    );
    // A retry of the appended batch (a duplicate by its sequence) with a bad CRC.
    let mut retry = strata_testkit::keyed_batch(1, 2, 10, 1_700_000_000_000);
    let last = retry.len() - 1;
    retry[last] ^= 1;
    assert_eq!(
        p.append(&retry).map_err(|e| e.code()),
        Err(kafka_protocol::error::ResponseError::CorruptMessage.code())
    );
    let truncated = first[..first.len() - 1].to_vec();
    assert_eq!(
        p.append(&truncated).map_err(|e| e.code()),
        Err(kafka_protocol::error::ResponseError::CorruptMessage.code())
    );
}
