//! Crash and corruption tests: whatever happens to the files of the last segment (cut at
//! any byte, bits flipped, a zeroed tail, garbage appended) reopening yields exactly a
//! prefix of what was appended, never garbage and never a panic. Damaged or missing
//! index files of any segment are rebuilt, losing nothing.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use log_store::{EntryKind, Log, LogConfig};

use common::Appended;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 8192,
        index_interval_bytes: 512,
        // Small preallocation: each trial copies the directory.
        segment_index_bytes: 16 * 1024,
        ..LogConfig::default()
    }
}

/// Builds a log of several segments with data and non-data entries and several terms,
/// then stops it uncleanly (drop without close) or cleanly.
fn build(dir: &Path, clean: bool) -> Vec<Appended> {
    let mut log = Log::open(dir, config()).unwrap();
    let mut out = Vec::new();
    let mut term = 1;
    for i in 0..90u64 {
        if i % 25 == 24 {
            term += 1;
            let payload = format!("noop-{i}").into_bytes();
            let idx = log.append_meta(term, EntryKind::Noop, &payload).unwrap();
            out.push(Appended {
                raft_index: idx,
                term,
                kind: EntryKind::Noop,
                bytes: payload,
            });
        }
        let b = common::batch(
            i,
            1 + (i as usize % 4),
            40 + (i as usize * 37) % 400,
            10_000 + i as i64 * 100,
        );
        let info = log.append_with_term(term, &b).unwrap();
        let b = common::as_stored(b, info.base_offset, term);
        out.push(Appended {
            raft_index: info.raft_index,
            term,
            kind: EntryKind::Data,
            bytes: b,
        });
    }
    let last_meta = format!("conf-{term}").into_bytes();
    let idx = log
        .append_meta(term, EntryKind::ConfChangeV2, &last_meta)
        .unwrap();
    out.push(Appended {
        raft_index: idx,
        term,
        kind: EntryKind::ConfChangeV2,
        bytes: last_meta,
    });
    let b = common::batch(1000, 2, 100, 20_000);
    let info = log.append_with_term(term, &b).unwrap();
    let b = common::as_stored(b, info.base_offset, term);
    out.push(Appended {
        raft_index: info.raft_index,
        term,
        kind: EntryKind::Data,
        bytes: b,
    });
    // Non-data entries never roll a segment, so the last segment holds these.
    for j in 0..3u64 {
        let payload = format!("meta-{j}").into_bytes();
        let idx = log
            .append_meta(term, EntryKind::ConfChange, &payload)
            .unwrap();
        out.push(Appended {
            raft_index: idx,
            term,
            kind: EntryKind::ConfChange,
            bytes: payload,
        });
        let b = common::batch(2000 + j, 1, 50, 30_000);
        let info = log.append_with_term(term, &b).unwrap();
        let b = common::as_stored(b, info.base_offset, term);
        out.push(Appended {
            raft_index: info.raft_index,
            term,
            kind: EntryKind::Data,
            bytes: b,
        });
    }
    let payload = b"final-noop".to_vec();
    let idx = log.append_meta(term, EntryKind::Noop, &payload).unwrap();
    out.push(Appended {
        raft_index: idx,
        term,
        kind: EntryKind::Noop,
        bytes: payload,
    });
    assert!(
        log.segment_count() >= 4,
        "want several segments, got {}",
        log.segment_count()
    );
    if clean {
        log.close().unwrap();
    } else {
        drop(log);
    }
    out
}

fn files_with_suffix(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == suffix))
        .collect();
    v.sort();
    v
}

/// The file of the last segment with this suffix (every segment has a `.log`).
fn last_with_suffix(dir: &Path, suffix: &str) -> PathBuf {
    let log = files_with_suffix(dir, "log").pop().unwrap();
    let path = log.with_extension(suffix);
    assert!(path.exists(), "the last segment has no .{suffix}");
    path
}

/// Opens the damaged log and checks that it holds exactly the first `k` appended entries,
/// returning `k`. Then checks the log still works: an append lands right after the
/// prefix, and a clean reopen keeps everything.
fn assert_prefix(dir: &Path, appended: &[Appended]) -> usize {
    let mut log = Log::open(dir, config()).unwrap_or_else(|e| panic!("open failed: {e}"));
    assert_eq!(log.first_raft_index(), 1);
    let k = log.last_raft_index() as usize;
    assert!(k <= appended.len());
    common::assert_holds(&log, &appended[..k]);
    let data = appended[..k].iter().filter(|a| a.kind.is_data()).count();
    let next = log.next_offset();
    let term = log.last_term();
    let b = common::batch(4242, 1, 10, 99_999);
    let info = log.append_with_term(term, &b).unwrap();
    assert_eq!(info.base_offset, next);
    assert_eq!(info.raft_index, k as u64 + 1);
    log.close().unwrap();
    let log = Log::open(dir, config()).unwrap();
    assert_eq!(log.next_offset(), next + 1);
    assert_eq!(common::read_all(&log, 0).len(), data + 1);
    k
}

/// A way to damage an index file.
type Damage = dyn Fn(&Path, &mut Rng);

/// A small deterministic generator (xorshift64*), so failures replay.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Entries of the last segment whose batch ends at or before `cut` survive a cut of its
/// `.log` at `cut`: the prefix ends just before the first batch crossing it.
fn expected_after_log_cut(dir: &Path, appended: &[Appended], cut: u64) -> usize {
    let log = Log::open(dir, config()).unwrap();
    let seg = log.segments().pop().unwrap();
    let mut pos = 0u64;
    for a in &appended[(seg.base_raft_index - 1) as usize..] {
        if a.kind == EntryKind::Data {
            pos += a.bytes.len() as u64;
            if pos > cut {
                return (a.raft_index - 1) as usize;
            }
        }
    }
    appended.len()
}

#[test]
fn cutting_the_last_segment_at_any_byte_leaves_an_exact_prefix() {
    let base = tempfile::tempdir().unwrap();
    let src = base.path().join("src");
    let appended = build(&src, false);
    let reference = base.path().join("reference");
    common::copy_dir(&src, &reference);
    let log_file = last_with_suffix(&src, "log");
    let size = fs::metadata(&log_file).unwrap().len();
    // Every batch boundary and its neighbours, plus an even sample of positions.
    let mut cuts: Vec<u64> = (0..size).step_by(211).collect();
    let mut pos = 0;
    for b in common::split(&bytes::Bytes::from(fs::read(&log_file).unwrap())) {
        pos += b.1.len() as u64;
        cuts.extend([pos.saturating_sub(1), pos, pos + 1]);
    }
    cuts.retain(|c| *c <= size);
    cuts.sort();
    cuts.dedup();
    for (i, cut) in cuts.iter().enumerate() {
        let dir = base.path().join(format!("cut-{i}"));
        common::copy_dir(&src, &dir);
        let f = fs::OpenOptions::new()
            .write(true)
            .open(dir.join(log_file.file_name().unwrap()))
            .unwrap();
        f.set_len(*cut).unwrap();
        let want = expected_after_log_cut(&reference, &appended, *cut);
        let got = assert_prefix(&dir, &appended);
        assert_eq!(got, want, "cut at {cut}");
        fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn flipped_bits_in_the_last_segment_leave_a_prefix() {
    let base = tempfile::tempdir().unwrap();
    let src = base.path().join("src");
    let appended = build(&src, false);
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    for suffix in ["log", "entries", "entrydata"] {
        let name = last_with_suffix(&src, suffix)
            .file_name()
            .unwrap()
            .to_owned();
        let len = fs::metadata(src.join(&name)).unwrap().len();
        for trial in 0..40 {
            let dir = base.path().join(format!("flip-{suffix}-{trial}"));
            common::copy_dir(&src, &dir);
            let path = dir.join(&name);
            let mut bytes = fs::read(&path).unwrap();
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(len) as usize;
                bytes[at] ^= 1 << rng.below(8);
            }
            fs::write(&path, &bytes).unwrap();
            let k = assert_prefix(&dir, &appended);
            assert!(
                k < appended.len() || suffix == "entries",
                "a flip in the {suffix} went unnoticed"
            );
            fs::remove_dir_all(&dir).unwrap();
        }
    }
}

#[test]
fn zeroed_tails_and_garbage_leave_a_prefix() {
    let base = tempfile::tempdir().unwrap();
    let src = base.path().join("src");
    let appended = build(&src, false);
    for suffix in ["log", "entries", "entrydata"] {
        let name = last_with_suffix(&src, suffix)
            .file_name()
            .unwrap()
            .to_owned();
        let len = fs::metadata(src.join(&name)).unwrap().len() as usize;
        for zeroed in [1usize, 7, 48, 61, 300, 1000, len] {
            let dir = base.path().join(format!("zero-{suffix}-{zeroed}"));
            common::copy_dir(&src, &dir);
            let path = dir.join(&name);
            let mut bytes = fs::read(&path).unwrap();
            let from = len.saturating_sub(zeroed);
            bytes[from..].fill(0);
            fs::write(&path, &bytes).unwrap();
            assert_prefix(&dir, &appended);
            fs::remove_dir_all(&dir).unwrap();
        }
    }
    // Garbage after the last batch (a torn write that never got its entry) is cut, and
    // nothing acknowledged is lost.
    let dir = base.path().join("garbage");
    common::copy_dir(&src, &dir);
    let path = dir.join(last_with_suffix(&src, "log").file_name().unwrap());
    let mut bytes = fs::read(&path).unwrap();
    bytes.extend(std::iter::repeat_n(0xAB, 777));
    fs::write(&path, &bytes).unwrap();
    assert_eq!(assert_prefix(&dir, &appended), appended.len());
}

#[test]
fn cutting_the_entry_table_anywhere_leaves_a_prefix() {
    let base = tempfile::tempdir().unwrap();
    let src = base.path().join("src");
    let appended = build(&src, false);
    let name = last_with_suffix(&src, "entries")
        .file_name()
        .unwrap()
        .to_owned();
    let len = fs::metadata(src.join(&name)).unwrap().len();
    for (i, cut) in (0..len.min(64 * 48)).step_by(13).enumerate() {
        let dir = base.path().join(format!("cut-entries-{i}"));
        common::copy_dir(&src, &dir);
        let f = fs::OpenOptions::new()
            .write(true)
            .open(dir.join(&name))
            .unwrap();
        f.set_len(cut).unwrap();
        assert_prefix(&dir, &appended);
        fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn damaged_or_missing_indexes_are_rebuilt_without_loss() {
    for clean in [true, false] {
        let base = tempfile::tempdir().unwrap();
        let src = base.path().join("src");
        let appended = build(&src, clean);
        let reference = Log::open(&src, config()).unwrap();
        let expected_ts: Vec<_> = (0..100)
            .map(|i| reference.offset_for_timestamp(10_000 + i * 97).unwrap())
            .collect();
        let expected_reads: Vec<_> = (0..reference.next_offset())
            .map(|o| reference.read(o, 1).unwrap())
            .collect();
        drop(reference);
        if clean {
            // The reference open/drop above left it unclean; make it clean again.
            Log::open(&src, config()).unwrap().close().unwrap();
        }
        let mut rng = Rng(0xD00D_F00D);
        let damages: [&Damage; 5] = [
            &|p, _| fs::remove_file(p).unwrap(),
            &|p, _| fs::write(p, b"").unwrap(),
            &|p, _| fs::write(p, [1u8, 2, 3]).unwrap(),
            &|p, rng| {
                let mut b = fs::read(p).unwrap();
                for x in b.iter_mut() {
                    *x = rng.next() as u8;
                }
                fs::write(p, b).unwrap()
            },
            &|p, _| {
                // Entries out of order: reverse them.
                let mut b = fs::read(p).unwrap();
                let n = if p.extension().unwrap() == "index" {
                    8
                } else {
                    12
                };
                let mut chunks: Vec<Vec<u8>> = b.chunks(n).map(|c| c.to_vec()).collect();
                chunks.reverse();
                b = chunks.concat();
                fs::write(p, b).unwrap()
            },
        ];
        for (d, damage) in damages.iter().enumerate() {
            let dir = base.path().join(format!("idx-{d}"));
            common::copy_dir(&src, &dir);
            for suffix in ["index", "timeindex"] {
                for p in files_with_suffix(&dir, suffix) {
                    damage(&p, &mut rng);
                }
            }
            let log = Log::open(&dir, config()).unwrap();
            assert_eq!(
                log.last_raft_index() as usize,
                appended.len(),
                "damage {d}, clean {clean}"
            );
            for (i, want) in expected_ts.iter().enumerate() {
                assert_eq!(
                    &log.offset_for_timestamp(10_000 + i as i64 * 97).unwrap(),
                    want
                );
            }
            for (o, want) in expected_reads.iter().enumerate() {
                assert_eq!(&log.read(o as u64, 1).unwrap(), want, "read at {o}");
            }
            drop(log);
            assert_prefix(&dir, &appended);
        }
    }
}

#[test]
fn a_damaged_checkpoint_means_a_full_scan_not_a_failure() {
    let base = tempfile::tempdir().unwrap();
    let src = base.path().join("src");
    let appended = build(&src, true);
    fs::write(src.join("log.checkpoint"), b"not a checkpoint").unwrap();
    let log = Log::open(&src, config()).unwrap();
    assert!(!log.open_report().clean);
    assert_eq!(log.open_report().recovered_segments, log.segment_count());
    drop(log);
    assert_eq!(assert_prefix(&src, &appended), appended.len());
}

/// A crash between a reset's checkpoint and the removal of the old segments: the old
/// segments (here with entries of the snapshot's own term, which recovery cannot tell
/// apart by term) are all removed and the log opens restarted at the snapshot.
#[test]
fn a_crash_inside_a_reset_opens_the_restarted_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config()).unwrap();
    for i in 0..100u64 {
        log.append_with_term(2, &common::batch(i, 2, 150, 1_000))
            .unwrap();
    }
    assert!(log.segment_count() >= 4);
    log_store::failpoint::arm("log.reset.before_segments", 0);
    assert!(log.reset(500, 100, 2).is_err());
    assert_eq!(
        log_store::failpoint::take_fired(),
        ["log.reset.before_segments"]
    );
    drop(log);
    let log = Log::open(dir.path(), config()).unwrap();
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.first_raft_index(), 100);
    assert_eq!(log.prev_raft_entry(), (99, 2));
    assert_eq!((log.log_start_offset(), log.next_offset()), (500, 500));
    assert!(common::read_all(&log, 500).is_empty());
}
