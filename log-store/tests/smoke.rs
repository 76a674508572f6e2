mod common;
use common::*;
use log_store::{EntryKind, Log, LogConfig};

#[test]
fn append_read_reopen_truncate() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 4096,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), cfg.clone()).unwrap();
    let mut expected = Vec::new();
    for i in 0..50u64 {
        let mut b = batch(i, 3, 100, 1_000 + i as i64 * 10);
        let info = log.append_with_term(1, &mut b).unwrap();
        assert_eq!(info.base_offset, i * 3);
        expected.push(unpatched(&b));
        if i == 10 {
            log.append_meta(1, EntryKind::Noop, b"").unwrap();
        }
    }
    assert!(log.segment_count() > 1, "segments: {}", log.segment_count());
    let got: Vec<_> = read_all(&log, 0)
        .iter()
        .map(|(_, b)| unpatched(b))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(log.last_raft_index(), 51);
    assert_eq!(log.offset_for_timestamp(1_000 + 200).unwrap(), Some(60));
    log.close().unwrap();

    let log = Log::open(dir.path(), cfg.clone()).unwrap();
    assert!(log.open_report().clean);
    let got: Vec<_> = read_all(&log, 0)
        .iter()
        .map(|(_, b)| unpatched(b))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(log.offset_for_timestamp(1_000 + 200).unwrap(), Some(60));
    drop(log); // unclean

    let mut log = Log::open(dir.path(), cfg.clone()).unwrap();
    assert!(!log.open_report().clean);
    let got: Vec<_> = read_all(&log, 0)
        .iter()
        .map(|(_, b)| unpatched(b))
        .collect();
    assert_eq!(got, expected);
    log.truncate_from(31).unwrap();
    assert_eq!(log.next_offset(), 30);
    let got: Vec<_> = read_all(&log, 0)
        .iter()
        .map(|(_, b)| unpatched(b))
        .collect();
    assert_eq!(got, expected[..10]);
    let mut b = batch(99, 1, 10, 5);
    assert_eq!(log.append_with_term(2, &mut b).unwrap().base_offset, 30);
    log.close().unwrap();
    let log = Log::open(dir.path(), cfg).unwrap();
    assert_eq!(log.next_offset(), 31);
}
