//! A roll's crash order: the roll syncs nothing, the next flush syncs the closed segment
//! and the directory before the flushed watermark moves, and only then does the recovery
//! point move. A crash (or a power loss) at each step reopens a log that holds at least
//! everything flushed, as an exact prefix of what was appended.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use log_store::checkpoint::Checkpoint;
use log_store::{failpoint, EntryKind, Log, LogConfig};

use common::Appended;

fn config() -> LogConfig {
    common::four_kib_segments()
}

/// Appends data batches until the log has rolled `rolls` times past its state now.
fn append_until_rolled(log: &mut Log, out: &mut Vec<Appended>, rolls: usize) {
    let want = log.segment_count() + rolls;
    let mut i = out.len() as u64;
    while log.segment_count() < want {
        let b = common::batch(i, 2, 300, 1_000 + i as i64);
        let info = log.append_with_term(1, &b).unwrap();
        out.push(Appended {
            raft_index: info.raft_index,
            term: 1,
            kind: EntryKind::Data,
            bytes: common::as_stored(b, info.base_offset, 1),
        });
        i += 1;
    }
}

fn segment_files(dir: &Path, base: u64) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            name.starts_with(&format!("{base:020}."))
        })
        .collect()
}

/// Opens the log in `dir`: it holds a prefix of `appended` of at least `durable` entries,
/// and takes an append right after it. Returns the prefix's length.
fn assert_prefix_of_at_least(dir: &Path, appended: &[Appended], durable: usize) -> usize {
    let mut log = Log::open(dir, config()).unwrap_or_else(|e| panic!("open failed: {e}"));
    let k = log.last_raft_index() as usize;
    assert!(
        (durable..=appended.len()).contains(&k),
        "{k} entries, {durable} durable of {}",
        appended.len()
    );
    common::assert_holds(&log, &appended[..k]);
    let next = log.next_offset();
    let info = log
        .append_with_term(1, &common::batch(9_999, 1, 10, 5_000))
        .unwrap();
    assert_eq!(info.base_offset, next);
    k
}

#[test]
fn a_roll_leaves_the_closed_segment_to_the_next_flush() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config()).unwrap();
    let mut appended = Vec::new();
    append_until_rolled(&mut log, &mut appended, 1);
    let first = log.segments()[0].clone();
    // Nothing was flushed: the watermark stays at 0, and a flush is owed even once no
    // entry is left unsynced in the active segment.
    assert_eq!(log.flushed_offset(), 0);
    let pending = log
        .prepare_flush()
        .unwrap()
        .expect("the roll is owed a flush");
    pending.sync().unwrap();
    assert_eq!(log.complete_flush(pending).unwrap(), log.next_offset());
    let checkpoint = Checkpoint::read(dir.path()).unwrap().unwrap();
    assert_eq!(checkpoint.recovery_point, first.next_offset);
    assert!(log.prepare_flush().unwrap().is_none());
    // An unclean stop now scans only the active segment.
    drop(log);
    let log = Log::open(dir.path(), config()).unwrap();
    assert_eq!(log.open_report().recovered_segments, 1);
    common::assert_holds(&log, &appended);
}

/// A crash at each step of a roll and of the flush after it (the page cache survives, as
/// with `kill -9`): nothing appended is lost, and the log goes on.
#[test]
fn a_crash_at_each_step_of_a_roll_loses_nothing() {
    for point in ["log.roll.before_create", "log.roll.before_checkpoint"] {
        assert!(failpoint::POINTS.contains(&point));
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), config()).unwrap();
        let mut appended = Vec::new();
        append_until_rolled(&mut log, &mut appended, 1);
        log.flush().unwrap();
        failpoint::arm(point, 0);
        let crashed = if point == "log.roll.before_create" {
            log.roll().is_err()
        } else {
            log.roll().unwrap();
            log.flush().is_err()
        };
        assert!(crashed, "{point} did not stop the step");
        assert_eq!(failpoint::take_fired(), [point]);
        drop(log);
        let k = assert_prefix_of_at_least(dir.path(), &appended, appended.len());
        assert_eq!(k, appended.len(), "{point}");
    }
}

/// A power loss after a roll and before the flush that syncs it: the closed segment may
/// lose any unsynced part of its tail (cut at any byte past what was flushed), and the
/// new segment's files may be gone, kept, or left with an empty table (its header was
/// not synced yet). The log reopens with at least everything
/// flushed, as a prefix.
#[test]
fn a_power_loss_before_the_rolls_flush_keeps_what_was_flushed() {
    let base = tempfile::tempdir().unwrap();
    let src = base.path().join("src");
    let mut log = Log::open(&src, config()).unwrap();
    let mut appended = Vec::new();
    append_until_rolled(&mut log, &mut appended, 2);
    log.flush().unwrap();
    let durable = appended.len();
    let flushed_bytes = log.segments().last().unwrap().size_bytes;
    let closing = log.segments().last().unwrap().base_offset;
    append_until_rolled(&mut log, &mut appended, 1);
    let closed = log.segments()[log.segment_count() - 2].clone();
    assert_eq!(closed.base_offset, closing);
    let active = log.segments().last().unwrap().base_offset;
    drop(log);
    for (trial, cut) in (flushed_bytes..=closed.size_bytes).step_by(97).enumerate() {
        for new_files in ["gone", "kept", "table emptied"] {
            let dir = base.path().join(format!("t{trial}-{new_files}"));
            common::copy_dir(&src, &dir);
            let log_file = closed.path.clone();
            let f = fs::OpenOptions::new()
                .write(true)
                .open(dir.join(log_file.file_name().unwrap()))
                .unwrap();
            f.set_len(cut).unwrap();
            match new_files {
                "gone" => {
                    for p in segment_files(&dir, active) {
                        fs::remove_file(p).unwrap();
                    }
                }
                // Its header was never synced: a power loss may leave the table empty.
                "table emptied" => {
                    fs::write(dir.join(format!("{active:020}.entries")), b"").unwrap()
                }
                _ => {}
            }
            let k = assert_prefix_of_at_least(&dir, &appended, durable);
            assert!(k >= durable, "cut {cut}: {k}");
        }
    }
}

fn spare_files(dir: &Path) -> Vec<PathBuf> {
    ["entries", "log", "index", "timeindex"]
        .iter()
        .map(|s| dir.join(format!("next-segment.{s}.tmp")))
        .collect()
}

/// Polls until the thread started by the last roll has created the spare files.
fn wait_for_spare(dir: &Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !spare_files(dir).iter().all(|p| p.exists()) {
        assert!(std::time::Instant::now() < deadline, "no spare files");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// A roll starts a thread creating the next segment's files; the next roll takes them
/// under the new segment's names, and leftovers of a stop go at open.
#[test]
fn a_roll_takes_the_files_made_ahead_and_leftovers_go_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config()).unwrap();
    let mut appended = Vec::new();
    append_until_rolled(&mut log, &mut appended, 1);
    wait_for_spare(dir.path());
    let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&fs::metadata(p).unwrap());
    let spare_inodes: Vec<u64> = spare_files(dir.path()).iter().map(|p| inode(p)).collect();
    append_until_rolled(&mut log, &mut appended, 1);
    let active = log.segments().last().unwrap().base_offset;
    let taken: Vec<u64> = ["entries", "log", "index", "timeindex"]
        .iter()
        .map(|s| inode(&dir.path().join(format!("{active:020}.{s}"))))
        .collect();
    assert_eq!(
        taken, spare_inodes,
        "the new segment's files are the spare ones"
    );
    let pending = log.prepare_flush().unwrap().unwrap();
    pending.sync().unwrap();
    log.complete_flush(pending).unwrap();
    // A third roll's spare files are left by an unclean stop.
    append_until_rolled(&mut log, &mut appended, 1);
    wait_for_spare(dir.path());
    drop(log);
    let k = assert_prefix_of_at_least(dir.path(), &appended, 0);
    assert_eq!(k, appended.len());
    assert!(spare_files(dir.path()).iter().all(|p| !p.exists()));
}
