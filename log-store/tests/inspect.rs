//! `inspect::verify_dir` and `scan_log_file` on sound, crashed, damaged and Kafka-only logs.

mod common;

use log_store::inspect::{self, ScanEnd, Severity};
use log_store::{EntryKind, Log, LogConfig};

fn build(dir: &std::path::Path, clean: bool) -> u64 {
    let config = LogConfig {
        segment_bytes: 4096,
        segment_index_bytes: 16 * 1024,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir, config).unwrap();
    for i in 0..60u64 {
        if i % 20 == 5 {
            log.append_meta(1 + i / 20, EntryKind::Noop, b"leader")
                .unwrap();
        }
        let b = common::batch(i, 2, 200, 1000 + i as i64);
        log.append_with_term(1 + i / 20, &b).unwrap();
    }
    let next = log.next_offset();
    if clean {
        log.close().unwrap();
    }
    next
}

#[test]
fn a_sound_log_verifies_clean_or_crashed() {
    for clean in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let next = build(dir.path(), clean);
        let mut last_progress = (0, 0);
        let report =
            inspect::verify_dir(dir.path(), |done, total| last_progress = (done, total)).unwrap();
        assert!(report.is_ok(), "{:?}", report.findings);
        assert_eq!(report.batches, 60);
        assert_eq!(report.records, 120);
        assert_eq!(
            (report.first_offset, report.last_offset),
            (Some(0), Some(next - 1))
        );
        assert_eq!(last_progress.0, last_progress.1);
        assert!(report.segments > 3);
    }
}

#[test]
fn damage_in_a_closed_segment_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), true);
    let logs = inspect::segment_logs(dir.path()).unwrap();
    let victim = &logs[1].1;
    let mut bytes = std::fs::read(victim).unwrap();
    bytes[100] ^= 0x10;
    std::fs::write(victim, bytes).unwrap();
    let report = inspect::verify_dir(dir.path(), |_, _| {}).unwrap();
    assert!(!report.is_ok());
    let errors: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    assert!(
        errors
            .iter()
            .any(|f| &f.path == victim && f.message.contains("CRC")),
        "{errors:?}"
    );
}

#[test]
fn a_torn_tail_is_a_warning_and_a_kafka_only_directory_verifies() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), false);
    let logs = inspect::segment_logs(dir.path()).unwrap();
    let last = &logs.last().unwrap().1;
    let len = std::fs::metadata(last).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(last)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    let scan =
        inspect::scan_log_file(last, |_| std::ops::ControlFlow::Continue(()), |_| {}).unwrap();
    assert!(matches!(scan.end, ScanEnd::TornTail { .. }));
    let report = inspect::verify_dir(dir.path(), |_, _| {}).unwrap();
    assert!(report.is_ok(), "{:?}", report.findings);
    assert!(report
        .findings
        .iter()
        .any(|f| f.message.contains("ends inside a batch")));

    // Only .log files, as a Kafka broker's partition directory might be copied.
    let kafka = tempfile::tempdir().unwrap();
    for (_, p) in &logs {
        std::fs::copy(p, kafka.path().join(p.file_name().unwrap())).unwrap();
    }
    let report = inspect::verify_dir(kafka.path(), |_, _| {}).unwrap();
    assert!(report.is_ok(), "{:?}", report.findings);
    assert_eq!(report.segments, logs.len());
}

#[test]
fn a_zero_filled_tail_is_a_preallocated_end_not_a_bad_frame() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), true);
    let logs = inspect::segment_logs(dir.path()).unwrap();
    let last = &logs.last().unwrap().1;
    let len = std::fs::metadata(last).unwrap().len();
    // As Kafka leaves an active segment with file.preallocate=true.
    std::fs::OpenOptions::new()
        .write(true)
        .open(last)
        .unwrap()
        .set_len(len + 100_000)
        .unwrap();
    let scan =
        inspect::scan_log_file(last, |_| std::ops::ControlFlow::Continue(()), |_| {}).unwrap();
    assert_eq!(
        scan.end,
        ScanEnd::ZeroTail {
            position: len,
            zero_bytes: 100_000
        }
    );
    let kafka = tempfile::tempdir().unwrap();
    for (_, p) in &logs {
        std::fs::copy(p, kafka.path().join(p.file_name().unwrap())).unwrap();
    }
    let report = inspect::verify_dir(kafka.path(), |_, _| {}).unwrap();
    assert!(report.is_ok(), "{:?}", report.findings);
    // In a closed segment the same zeros are damage.
    let first = kafka.path().join(logs[0].1.file_name().unwrap());
    let flen = std::fs::metadata(&first).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&first)
        .unwrap()
        .set_len(flen + 64)
        .unwrap();
    assert!(!inspect::verify_dir(kafka.path(), |_, _| {})
        .unwrap()
        .is_ok());
}

#[test]
fn offsets_of_a_batch_with_a_bad_crc_are_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), true);
    let logs = inspect::segment_logs(dir.path()).unwrap();
    let victim = &logs[0].1;
    let mut bytes = std::fs::read(victim).unwrap();
    // lastOffsetDelta of the first batch (inside the CRC) becomes huge.
    bytes[23..27].copy_from_slice(&1_000_000i32.to_be_bytes());
    std::fs::write(victim, bytes).unwrap();
    let report = inspect::verify_dir(dir.path(), |_, _| {}).unwrap();
    let errors: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "only the CRC mismatch, no knock-on offset errors: {errors:?}"
    );
    assert!(errors[0].message.contains("CRC mismatch"));
}

#[test]
fn a_scan_stops_when_the_caller_says_so() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), true);
    let first = &inspect::segment_logs(dir.path()).unwrap()[0].1;
    let mut seen = 0;
    let scan = inspect::scan_log_file(
        first,
        |_| {
            seen += 1;
            if seen == 2 {
                std::ops::ControlFlow::Break(())
            } else {
                std::ops::ControlFlow::Continue(())
            }
        },
        |_| {},
    )
    .unwrap();
    assert_eq!(seen, 2);
    assert!(matches!(scan.end, ScanEnd::Stopped { .. }));
}
