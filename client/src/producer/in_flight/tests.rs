//! The in-flight queue of one partition: settling, retries, gaps and renewals.

use super::*;
use crate::batch::{BatchBuilder, ProducerIdentity};
use crate::delivery::Slots;
use crate::error::KafkaCode;
use crate::producer::accumulator::Body;
use crate::producer::accumulator::Pending;
use crate::record::Compression;

const NOT_LEADER: i16 = 6;
const MESSAGE_TOO_LARGE: i16 = 10;
const NOT_ENOUGH_REPLICAS: i16 = 19;

fn kafka(code: i16) -> Error {
    Error::Kafka {
        context: "produce to t-0".into(),
        code: KafkaCode(code),
        message: None,
    }
}

/// A queue of `n` batches of one record each (serials 1..=n), sealed with
/// sequences 0..n as a first send would.
fn queue(n: u64, now: Instant) -> PartitionQueue {
    let mut q = PartitionQueue::default();
    let identity = Some(ProducerIdentity {
        producer_id: 7,
        producer_epoch: 0,
        transactional: false,
    });
    for serial in 1..=n {
        let mut b = Batch::open(serial, 64, now);
        let mut builder = BatchBuilder::with_capacity(64);
        builder.push(None, Some(b"x"), &[], 0).expect("a record");
        let seq = i32::try_from(serial - 1).expect("small");
        let bytes = builder
            .finish(identity, seq, Compression::None)
            .expect("sealed");
        b.body = Body::Sealed {
            bytes,
            stale_sequence: false,
        };
        b.sequence = Some(seq);
        let (reply, _) = Slots::with_failures(None).next();
        b.records.push(Pending {
            reply,
            timestamp_ms: 0,
        });
        q.batches.push_back(b);
    }
    q.next_sequence = i32::try_from(n).expect("small");
    q
}

fn lost() -> Error {
    Error::io("broker", std::io::Error::other("connection reset"))
}

/// Each batch's sequence, and whether its bytes must be re-stamped.
fn sequences(q: &PartitionQueue) -> Vec<(Option<i32>, bool)> {
    let stale = |b: &Batch| {
        matches!(
            b.body,
            Body::Sealed {
                stale_sequence: true,
                ..
            }
        )
    };
    q.batches.iter().map(|b| (b.sequence, stale(b))).collect()
}

fn config() -> ProducerConfig {
    ProducerConfig {
        retry_backoff: Duration::from_millis(100),
        ..ProducerConfig::default()
    }
}

fn cx(config: &ProducerConfig, now: Instant) -> SettleContext<'_> {
    SettleContext {
        config,
        idempotent: true,
        renewing: false,
        now,
    }
}

fn send_all(q: &mut PartitionQueue, now: Instant, limit: usize) -> Vec<u64> {
    let mut sent = Vec::new();
    while q.may_send(now, limit) {
        sent.push(q.next_to_send().map(|b| b.first_serial).unwrap_or(0));
        q.mark_sent(0, 1);
    }
    sent
}

fn serials(q: &PartitionQueue) -> Vec<u64> {
    q.batches.iter().map(|b| b.first_serial).collect()
}

#[test]
fn up_to_the_limit_in_flight_in_queue_order() {
    let now = Instant::now();
    let mut q = queue(7, now);
    assert_eq!(send_all(&mut q, now, 5), vec![1, 2, 3, 4, 5]);
    assert_eq!(q.in_flight, 5);
    let config = config();
    let ok = Attempt::Appended(Some(0));
    assert!(
        matches!(q.settle(1, ok, &cx(&config, now)), Settled::Acknowledged(b, Some(0)) if b.first_serial == 1)
    );
    assert_eq!(
        send_all(&mut q, now, 5),
        vec![6],
        "a slot freed, the next goes"
    );
    assert!(matches!(
        q.settle(99, Attempt::Appended(None), &cx(&config, now)),
        Settled::Unknown
    ));
}

#[test]
fn a_retried_batch_waits_for_all_in_flight_then_resends_in_order() {
    let now = Instant::now();
    let config = config();
    let mut q = queue(6, now);
    send_all(&mut q, now, 5); // 1..=5 in flight
                              // Batch 1 acknowledged, batch 2 refused (retriable), 3.. refused out of order.
    assert!(matches!(
        q.settle(1, Attempt::Appended(Some(0)), &cx(&config, now)),
        Settled::Acknowledged(..)
    ));
    assert!(matches!(
        q.settle(2, Attempt::Refused(kafka(NOT_LEADER)), &cx(&config, now)),
        Settled::Retry
    ));
    assert!(q.retrying, "held while batches are in flight");
    assert!(!q.may_send(now + Duration::from_secs(10), 5));
    for serial in [3, 4] {
        let r = q.settle(
            serial,
            Attempt::Refused(kafka(OUT_OF_ORDER_SEQUENCE_NUMBER)),
            &cx(&config, now),
        );
        assert!(matches!(r, Settled::Retry), "{r:?}");
        assert!(!q.may_send(now + Duration::from_secs(10), 5));
    }
    let r = q.settle(
        5,
        Attempt::Refused(kafka(OUT_OF_ORDER_SEQUENCE_NUMBER)),
        &cx(&config, now),
    );
    assert!(matches!(r, Settled::Retry));
    assert_eq!(q.in_flight, 0);
    assert!(!q.retrying);
    assert!(!q.may_send(now, 5), "the backoff runs");
    let later = now + Duration::from_secs(1);
    // Resent from the first unacknowledged batch, in order, with their bytes.
    assert_eq!(send_all(&mut q, later, 5), vec![2, 3, 4, 5, 6]);
    let kept = sequences(&q);
    assert_eq!(
        kept[..4],
        [
            (Some(1), false),
            (Some(2), false),
            (Some(3), false),
            (Some(4), false)
        ]
    );
    // Out-of-order refusals did not count as attempts: 3..=5 are on their first.
    let attempts: Vec<u32> = q.batches.iter().map(|b| b.attempts).collect();
    assert_eq!(attempts, vec![2, 1, 1, 1, 1]);
}

#[test]
fn out_of_order_for_the_first_unacknowledged_batch_fails_it() {
    let now = Instant::now();
    let config = config();
    let mut q = queue(2, now);
    send_all(&mut q, now, 5);
    let r = q.settle(
        1,
        Attempt::Refused(kafka(OUT_OF_ORDER_SEQUENCE_NUMBER)),
        &cx(&config, now),
    );
    match r {
        Settled::Failed {
            batch, renew_id, ..
        } => {
            assert_eq!(batch.first_serial, 1);
            assert!(renew_id);
        }
        other => panic!("{other:?}"),
    }
    // Batch 2 is now first, but the producer id is being renewed: retried.
    let renewing = SettleContext {
        renewing: true,
        ..cx(&config, now)
    };
    let r = q.settle(
        2,
        Attempt::Refused(kafka(OUT_OF_ORDER_SEQUENCE_NUMBER)),
        &renewing,
    );
    assert!(matches!(r, Settled::Retry), "{r:?}");
    assert_eq!(serials(&q), vec![2]);
}

#[test]
fn a_later_batch_acknowledged_before_an_earlier_retry_resolves_at_once() {
    let now = Instant::now();
    let config = config();
    let mut q = queue(3, now);
    send_all(&mut q, now, 5);
    assert!(matches!(
        q.settle(1, Attempt::Refused(kafka(NOT_LEADER)), &cx(&config, now)),
        Settled::Retry
    ));
    // The broker appended 2 (it had 1 after all): acknowledged now.
    assert!(matches!(
        q.settle(2, Attempt::Appended(Some(1)), &cx(&config, now)),
        Settled::Acknowledged(..)
    ));
    assert!(matches!(
        q.settle(3, Attempt::Appended(Some(2)), &cx(&config, now)),
        Settled::Acknowledged(..)
    ));
    assert_eq!(serials(&q), vec![1]);
    let later = now + Duration::from_secs(1);
    assert_eq!(
        send_all(&mut q, later, 5),
        vec![1],
        "only the refused one again"
    );
    // Its resend is a duplicate: `partition_result` turns that into success.
    assert!(matches!(
        q.settle(1, Attempt::Appended(Some(0)), &cx(&config, later)),
        Settled::Acknowledged(..)
    ));
    assert!(q.batches.is_empty());
}

#[test]
fn non_retriable_and_exhausted_batches_fail_for_good() {
    let now = Instant::now();
    let config = ProducerConfig {
        retries: 1,
        ..config()
    };
    let mut q = queue(2, now);
    send_all(&mut q, now, 5);
    let r = q.settle(
        1,
        Attempt::Refused(kafka(MESSAGE_TOO_LARGE)),
        &cx(&config, now),
    );
    assert!(
        matches!(r, Settled::Failed { ref error, .. } if error.kafka_code() == Some(MESSAGE_TOO_LARGE))
    );
    assert!(matches!(
        q.settle(2, Attempt::Refused(kafka(NOT_LEADER)), &cx(&config, now)),
        Settled::Retry
    ));
    let later = now + Duration::from_secs(1);
    assert_eq!(send_all(&mut q, later, 5), vec![2]);
    let r = q.settle(2, Attempt::Refused(kafka(NOT_LEADER)), &cx(&config, later));
    assert!(
        matches!(r, Settled::Failed { ref error, .. } if error.is_retriable()),
        "{r:?}"
    );
}

#[test]
fn in_flight_batches_pin_the_partition_to_their_connection() {
    let now = Instant::now();
    let mut q = queue(2, now);
    assert!(!q.pinned_elsewhere(3, Some(1)), "nothing in flight");
    q.mark_sent(0, 1);
    assert!(!q.pinned_elsewhere(0, Some(1)));
    assert!(q.pinned_elsewhere(0, Some(2)), "a new connection waits");
    assert!(q.pinned_elsewhere(3, None), "a new leader waits");
}

#[test]
fn the_first_batch_under_an_id_goes_alone_until_acknowledged() {
    let now = Instant::now();
    let config = config();
    let mut q = queue(4, now);
    q.awaiting_first_ack = true; // as `prepare` sets on stamping sequence 0
    assert_eq!(send_all(&mut q, now, 5), vec![1], "alone");
    assert!(q.blocked(5), "so the batches behind it may grow");
    // Refused with an error that may clear before the next request: still alone.
    assert!(matches!(
        q.settle(
            1,
            Attempt::Refused(kafka(NOT_ENOUGH_REPLICAS)),
            &cx(&config, now)
        ),
        Settled::Retry
    ));
    let later = now + Duration::from_secs(1);
    assert_eq!(send_all(&mut q, later, 5), vec![1]);
    assert!(matches!(
        q.settle(1, Attempt::Appended(Some(0)), &cx(&config, later)),
        Settled::Acknowledged(..)
    ));
    assert_eq!(
        send_all(&mut q, later, 5),
        vec![2, 3, 4],
        "then up to the limit"
    );
}

#[test]
fn a_definite_refusal_keeps_the_id_and_closes_the_gap() {
    let now = Instant::now();
    let config = config();
    let mut q = queue(5, now);
    send_all(&mut q, now, 5);
    // Batch 1 is retried; batch 2 is refused for good; 3..=5 find the gap.
    assert!(matches!(
        q.settle(1, Attempt::Refused(kafka(NOT_LEADER)), &cx(&config, now)),
        Settled::Retry
    ));
    let r = q.settle(
        2,
        Attempt::Refused(kafka(MESSAGE_TOO_LARGE)),
        &cx(&config, now),
    );
    assert!(
        matches!(r, Settled::Failed { ref batch, renew_id: false, .. } if batch.first_serial == 2),
        "{r:?}"
    );
    for serial in [3, 4] {
        let r = q.settle(
            serial,
            Attempt::Refused(kafka(OUT_OF_ORDER_SEQUENCE_NUMBER)),
            &cx(&config, now),
        );
        assert!(matches!(r, Settled::Retry), "{r:?}");
        assert_eq!(q.gaps.len(), 1, "closed once all are back");
    }
    let r = q.settle(
        5,
        Attempt::Refused(kafka(OUT_OF_ORDER_SEQUENCE_NUMBER)),
        &cx(&config, now),
    );
    assert!(matches!(r, Settled::Retry), "{r:?}");
    // Batch 1 keeps sequence 0; the later ones move down by batch 2's record.
    assert_eq!(
        sequences(&q),
        vec![
            (Some(0), false),
            (Some(1), true),
            (Some(2), true),
            (Some(3), true)
        ]
    );
    assert_eq!(q.next_sequence, 4);
    assert!(q.gaps.is_empty());
    let later = now + Duration::from_secs(1);
    assert_eq!(send_all(&mut q, later, 5), vec![1, 3, 4, 5]);
}

#[test]
fn a_definite_refusal_of_the_only_batch_in_flight_closes_the_gap_at_once() {
    let now = Instant::now();
    let config = config();
    let mut q = queue(3, now);
    q.awaiting_first_ack = true;
    send_all(&mut q, now, 5);
    let r = q.settle(
        1,
        Attempt::Refused(kafka(MESSAGE_TOO_LARGE)),
        &cx(&config, now),
    );
    assert!(
        matches!(
            r,
            Settled::Failed {
                renew_id: false,
                ..
            }
        ),
        "{r:?}"
    );
    assert_eq!(sequences(&q), vec![(Some(0), true), (Some(1), true)]);
    assert!(
        q.awaiting_first_ack,
        "nothing acknowledged under this id yet"
    );
    assert_eq!(send_all(&mut q, now, 5), vec![2]);
}

#[test]
fn only_an_unknown_outcome_renews_and_renewal_fails_every_unknown_batch() {
    let now = Instant::now();
    let config = ProducerConfig {
        retries: 1,
        ..config()
    };
    let mut q = queue(4, now);
    send_all(&mut q, now, 5);
    // The connection is lost after the broker answered batch 1 (retriable) and
    // before batches 3 and 4 were answered: their outcome is unknown.
    assert!(matches!(
        q.settle(1, Attempt::Refused(kafka(NOT_LEADER)), &cx(&config, now)),
        Settled::Retry
    ));
    let r = q.settle(
        2,
        Attempt::Refused(kafka(OUT_OF_ORDER_SEQUENCE_NUMBER)),
        &cx(&config, now),
    );
    assert!(matches!(r, Settled::Retry));
    for serial in [3, 4] {
        assert!(matches!(
            q.settle(serial, Attempt::Lost(lost()), &cx(&config, now)),
            Settled::Retry
        ));
    }
    let later = now + Duration::from_secs(1);
    assert_eq!(send_all(&mut q, later, 5), vec![1, 2, 3, 4]);
    // Batch 3's resend is lost too, and that was its last retry.
    assert!(matches!(
        q.settle(1, Attempt::Appended(Some(0)), &cx(&config, later)),
        Settled::Acknowledged(..)
    ));
    assert!(matches!(
        q.settle(2, Attempt::Refused(kafka(NOT_LEADER)), &cx(&config, later)),
        Settled::Retry
    ));
    let r = q.settle(3, Attempt::Lost(lost()), &cx(&config, later));
    assert!(matches!(r, Settled::Failed { renew_id: true, .. }), "{r:?}");
    let renewing = SettleContext {
        renewing: true,
        ..cx(&config, later)
    };
    let r = q.settle(
        4,
        Attempt::Refused(kafka(OUT_OF_ORDER_SEQUENCE_NUMBER)),
        &renewing,
    );
    assert!(matches!(r, Settled::Retry), "{r:?}");
    // At the renewal, batch 4 (an earlier attempt unanswered) comes out to fail;
    // batch 2, refused every time, takes new sequence numbers as it is sent.
    let unknown: Vec<u64> = q.renew().iter().map(|b| b.first_serial).collect();
    assert_eq!(unknown, vec![4]);
    assert_eq!(serials(&q), vec![2]);
    assert_eq!(sequences(&q), vec![(None, true)]);
    assert_eq!(q.next_sequence, 0);
}

#[test]
fn a_batch_refused_every_time_stores_nothing_when_its_retries_run_out() {
    let now = Instant::now();
    let config = ProducerConfig {
        retries: 0,
        ..config()
    };
    let mut q = queue(2, now);
    send_all(&mut q, now, 5);
    let r = q.settle(1, Attempt::Refused(kafka(NOT_LEADER)), &cx(&config, now));
    assert!(
        matches!(
            r,
            Settled::Failed {
                renew_id: false,
                ..
            }
        ),
        "{r:?}"
    );
    let r = q.settle(1, Attempt::Lost(lost()), &cx(&config, now));
    assert!(matches!(r, Settled::Unknown), "settled once");
    let r = q.settle(2, Attempt::Lost(lost()), &cx(&config, now));
    assert!(matches!(r, Settled::Failed { renew_id: true, .. }), "{r:?}");
}
