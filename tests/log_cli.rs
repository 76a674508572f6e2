//! `strata log dump` and `strata log verify`, run as a real process against logs written
//! by `log_store::Log` and then damaged the ways disks and crashes damage them.

mod common;

use std::fs::{self, OpenOptions};
use std::path::Path;

use common::{build_log, path_str, segment_logs, strata, Run, BATCHES, RECORDS_PER_BATCH};

fn fresh_log() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().expect("create a temp dir");
    let dir = tmp.path().join("orders-0");
    build_log(&dir);
    (tmp, dir)
}

fn batch_lines(run: &Run) -> Vec<&str> {
    run.stdout
        .lines()
        .filter(|l| l.starts_with("position="))
        .collect()
}

fn json_batch_lines(run: &Run) -> Vec<&str> {
    run.stdout
        .lines()
        .filter(|l| l.contains(r#""type":"batch""#))
        .collect()
}

fn offsets_of(i: u64) -> String {
    let base = i * RECORDS_PER_BATCH;
    format!(" offsets={base}..={} ", base + RECORDS_PER_BATCH - 1)
}

/// The size of the first batch of a `.log` file.
fn first_batch_bytes(log: &Path) -> usize {
    let bytes = fs::read(log).expect("read segment");
    log_store::BatchHeader::frame_size(&bytes).expect("a whole first batch")
}

#[test]
fn version_is_printed_by_flag_and_subcommand() {
    let expected = format!("strata {}\n", env!("CARGO_PKG_VERSION"));
    for args in [&["--version"][..], &["version"][..]] {
        let run = strata(args);
        assert_eq!(run.code, Some(0), "{args:?}: {}", run.stderr);
        assert_eq!(run.stdout, expected, "{args:?}");
    }
}

#[test]
fn a_clean_log_verifies_and_dumps_every_batch() {
    let (_tmp, dir) = fresh_log();
    let dir_arg = path_str(&dir);
    let records = BATCHES * RECORDS_PER_BATCH;

    let run = strata(&["log", "verify", dir_arg]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    let segments = segment_logs(&dir).len();
    assert!(
        run.stdout.contains(&format!(
            ": {segments} segments, {BATCHES} batches, {records} records, "
        )),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains(&format!("offsets 0..={}", records - 1)));
    assert!(
        run.stdout.contains("; 0 errors, 0 warnings"),
        "{}",
        run.stdout
    );
    assert_eq!(run.stdout.lines().last(), Some("OK"));

    let run = strata(&["log", "dump", dir_arg]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    let lines = batch_lines(&run);
    assert_eq!(lines.len() as u64, BATCHES, "{}", run.stdout);
    for (i, line) in lines.iter().enumerate() {
        assert!(line.contains(&offsets_of(i as u64)), "batch {i}: {line}");
        assert!(line.contains(" records=5 "), "{line}");
        assert!(line.contains(" compression=none "), "{line}");
        assert!(
            line.contains(" producer_id=7 producer_epoch=0 base_sequence=0 "),
            "{line}"
        );
        assert!(line.ends_with(" flags=- crc=ok"), "{line}");
    }
    // Batch 0 holds timestamps BASE_TIMESTAMP_MS + 0..=4.
    assert!(lines[0].starts_with("position=0 "), "{}", lines[0]);
    assert!(
        lines[0].contains(
            " base_ts=1700000000000 max_ts=1700000000004 max_time=2023-11-14T22:13:20.004Z "
        ),
        "{}",
        lines[0]
    );
    assert_eq!(
        run.stdout.lines().filter(|l| l.starts_with("== ")).count(),
        segments,
        "one header per segment"
    );
    let summary = run.stdout.lines().last().unwrap_or_default();
    assert!(
        summary.starts_with(&format!(
            "summary: {segments} files, {BATCHES} batches, {records} records, "
        )) && summary.ends_with(&format!("0 bad CRCs, offsets 0..={}; OK", records - 1)),
        "{summary}"
    );

    let run = strata(&["log", "dump", "--json", dir_arg]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    for line in run.stdout.lines() {
        assert!(line.starts_with('{') && line.ends_with('}'), "{line}");
        assert_eq!(line.matches('"').count() % 2, 0, "{line}");
    }
    let lines = json_batch_lines(&run);
    assert_eq!(lines.len() as u64, BATCHES);
    for (i, line) in lines.iter().enumerate() {
        let base = i as u64 * RECORDS_PER_BATCH;
        let expected = format!(
            r#""base_offset":{base},"last_offset":{},"records":5,"#,
            base + RECORDS_PER_BATCH - 1
        );
        assert!(line.contains(&expected), "{line}");
        assert!(line.contains(r#""crc_ok":true"#), "{line}");
    }
    assert!(lines[0].contains(r#""max_time":"2023-11-14T22:13:20.004Z""#));
    let summary = run.stdout.lines().last().unwrap_or_default();
    assert!(summary.contains(r#""type":"summary""#), "{summary}");
    assert!(
        summary.contains(&format!(r#""batches":{BATCHES},"#)),
        "{summary}"
    );
    assert!(summary.ends_with(r#""ok":true}"#), "{summary}");
}

#[test]
fn a_single_segment_file_dumps_its_own_batches() {
    let (_tmp, dir) = fresh_log();
    let logs = segment_logs(&dir);
    let run = strata(&["log", "dump", path_str(&logs[1])]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    let lines = batch_lines(&run);
    assert!(!lines.is_empty());
    // The second segment starts where its name says.
    let base: u64 = logs[1]
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .expect("segment names are base offsets");
    assert!(
        lines[0].contains(&format!(" offsets={base}..=")),
        "{}",
        lines[0]
    );
}

#[test]
fn a_flipped_payload_byte_is_a_crc_mismatch() {
    let (_tmp, dir) = fresh_log();
    let first = &segment_logs(&dir)[0];
    let mut bytes = fs::read(first).expect("read segment");
    // Inside the records of batch 0 (the header is 61 bytes), far from its end.
    bytes[100] ^= 0x01;
    fs::write(first, &bytes).expect("write segment");

    let run = strata(&["log", "verify", path_str(&dir)]);
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    let expected = format!(
        "ERROR {}: CRC mismatch in batch at position 0 (header says offsets 0..=4)",
        first.display()
    );
    assert!(run.stdout.contains(&expected), "{}", run.stdout);
    assert_eq!(run.stdout.lines().last(), Some("DAMAGED"));

    let run = strata(&["log", "dump", path_str(&dir)]);
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    let lines = batch_lines(&run);
    assert_eq!(lines.len() as u64, BATCHES, "every batch is still listed");
    assert!(lines[0].contains(&offsets_of(0)) && lines[0].ends_with(" crc=BAD"));
    assert!(lines[1..].iter().all(|l| l.ends_with(" crc=ok")));
    assert!(run.stdout.contains(" 1 bad CRCs, "), "{}", run.stdout);

    let run = strata(&["log", "dump", "--json", path_str(&dir)]);
    assert_eq!(run.code, Some(1));
    assert!(json_batch_lines(&run)[0].contains(r#""crc_ok":false"#));
}

#[test]
fn a_directory_of_bare_log_files_like_a_kafka_broker_s_verifies() {
    let (tmp, dir) = fresh_log();
    let bare = tmp.path().join("bare-0");
    fs::create_dir(&bare).expect("create dir");
    for log in segment_logs(&dir) {
        let name = log.file_name().expect("file name");
        fs::copy(&log, bare.join(name)).expect("copy segment");
    }
    let run = strata(&["log", "verify", path_str(&bare)]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains(&format!(" {BATCHES} batches, ")),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("; 0 errors, "), "{}", run.stdout);

    let run = strata(&["log", "dump", path_str(&bare)]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert_eq!(batch_lines(&run).len() as u64, BATCHES);
}

#[test]
fn a_torn_tail_in_the_last_segment_is_only_a_warning() {
    let (_tmp, dir) = fresh_log();
    let last = segment_logs(&dir).pop().expect("a segment");
    let len = fs::metadata(&last).expect("stat").len();
    let file = OpenOptions::new().write(true).open(&last).expect("open");
    file.set_len(len - 10).expect("truncate mid-batch");
    drop(file);

    let run = strata(&["log", "verify", path_str(&dir)]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    let expected = format!("WARNING {}: file ends inside a batch", last.display());
    assert!(run.stdout.contains(&expected), "{}", run.stdout);
    assert!(
        run.stdout.contains(&format!(" {} batches, ", BATCHES - 1)),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("; 0 errors, "), "{}", run.stdout);

    let run = strata(&["log", "dump", path_str(&dir)]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert_eq!(batch_lines(&run).len() as u64, BATCHES - 1);
    assert!(run.stdout.contains(&expected), "{}", run.stdout);
}

#[test]
fn garbage_inside_a_closed_segment_is_damage() {
    let (_tmp, dir) = fresh_log();
    let first = &segment_logs(&dir)[0];
    let at = first_batch_bytes(first);
    let mut bytes = fs::read(first).expect("read segment");
    bytes.splice(at..at, [0xff; 20]);
    fs::write(first, &bytes).expect("write segment");

    let run = strata(&["log", "verify", path_str(&dir)]);
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    let expected = format!(
        "ERROR {}: not a record batch at position {at}",
        first.display()
    );
    assert!(run.stdout.contains(&expected), "{}", run.stdout);

    let run = strata(&["log", "dump", path_str(&dir)]);
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains(&expected), "{}", run.stdout);
    let run = strata(&["log", "dump", "--json", path_str(first)]);
    assert_eq!(run.code, Some(1));
    assert!(run.stdout.contains(&format!(
        r#"{{"type":"bad_frame","severity":"error","file":"{}","position":{at},"#,
        first.display()
    )));
}

#[test]
fn a_torn_tail_in_a_closed_segment_is_damage() {
    let (_tmp, dir) = fresh_log();
    let first = &segment_logs(&dir)[0];
    let len = fs::metadata(first).expect("stat").len();
    let file = OpenOptions::new().write(true).open(first).expect("open");
    file.set_len(len - 10).expect("truncate mid-batch");
    drop(file);

    let expected = format!("ERROR {}: file ends inside a batch", first.display());
    for command in ["verify", "dump"] {
        let run = strata(&["log", command, path_str(&dir)]);
        assert_eq!(run.code, Some(1), "{command}: {}{}", run.stdout, run.stderr);
        assert!(run.stdout.contains(&expected), "{command}: {}", run.stdout);
    }
}

#[test]
fn missing_or_wrong_paths_are_usage_errors() {
    let tmp = tempfile::tempdir().expect("create a temp dir");
    let missing = tmp.path().join("no-such-partition");
    let file = tmp.path().join("00000000000000000000.log");
    fs::write(&file, b"").expect("write file");
    let empty = tmp.path().join("empty-0");
    fs::create_dir(&empty).expect("create dir");

    for (args, message) in [
        (vec!["log", "verify", path_str(&missing)], "cannot read"),
        (vec!["log", "dump", path_str(&missing)], "cannot read"),
        (vec!["log", "verify", path_str(&file)], "is not a directory"),
        (vec!["log", "verify", path_str(&empty)], "no segment files"),
        (vec!["log", "dump", path_str(&empty)], "no segment files"),
    ] {
        let run = strata(&args);
        assert_eq!(run.code, Some(2), "{args:?}: {}{}", run.stdout, run.stderr);
        assert!(
            run.stderr.starts_with("strata: error: ") && run.stderr.contains(message),
            "{args:?}: {}",
            run.stderr
        );
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
    }
    let run = strata(&["--log-level", "no such=level", "version"]);
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.starts_with("strata: error: invalid --log-level"),
        "{}",
        run.stderr
    );
}
