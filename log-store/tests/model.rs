//! Model-based property test: random sequences of append / meta append / read / truncate
//! (by offset and by Raft index) / roll / retention / DeleteRecords / clean and unclean
//! reopen, checked after every step against a plain in-memory model of the log.

mod common;

use std::sync::Arc;

use log_store::{EntryKind, Log, LogConfig, ManualClock};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Append {
        records: usize,
        value_bytes: usize,
        term_bump: bool,
    },
    Meta {
        payload_bytes: usize,
    },
    Read {
        pick: u16,
        max_bytes: usize,
    },
    Truncate {
        pick: u16,
    },
    TruncateRaft {
        pick: u16,
    },
    Roll,
    AdvanceClock {
        ms: i64,
    },
    Retention,
    DeleteBefore {
        pick: u16,
    },
    Reopen {
        clean: bool,
    },
    Flush,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (1usize..6, 0usize..300, proptest::bool::weighted(0.1))
            .prop_map(|(records, value_bytes, term_bump)| Op::Append { records, value_bytes, term_bump }),
        1 => (0usize..40).prop_map(|payload_bytes| Op::Meta { payload_bytes }),
        3 => (any::<u16>(), 1usize..3000).prop_map(|(pick, max_bytes)| Op::Read { pick, max_bytes }),
        1 => any::<u16>().prop_map(|pick| Op::Truncate { pick }),
        1 => any::<u16>().prop_map(|pick| Op::TruncateRaft { pick }),
        1 => Just(Op::Roll),
        1 => (1i64..5_000).prop_map(|ms| Op::AdvanceClock { ms }),
        1 => Just(Op::Retention),
        1 => any::<u16>().prop_map(|pick| Op::DeleteBefore { pick }),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
        1 => Just(Op::Flush),
    ]
}

/// One Raft entry of the model.
#[derive(Debug, Clone)]
struct ModelEntry {
    raft_index: u64,
    term: u64,
    /// Data: (base offset, last offset, stored bytes). Non-data: payload.
    data: Option<(u64, u64, Vec<u8>)>,
    payload: Vec<u8>,
    max_timestamp: i64,
}

struct Model {
    entries: Vec<ModelEntry>,
    /// Raft index of the first entry (entries before were deleted with their segment).
    first_raft_index: u64,
    log_start: u64,
    next_offset: u64,
    term: u64,
}

impl Model {
    fn last_raft_index(&self) -> u64 {
        self.first_raft_index + self.entries.len() as u64 - 1
    }
    fn data(&self) -> impl Iterator<Item = &(u64, u64, Vec<u8>)> {
        self.entries.iter().filter_map(|e| e.data.as_ref())
    }
    fn pick_offset(&self, pick: u16) -> u64 {
        let span = self.next_offset - self.log_start + 1;
        self.log_start + u64::from(pick) % span
    }
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        segment_ms: Some(60_000),
        index_interval_bytes: 300,
        segment_index_bytes: 1024,
        retention_ms: Some(30_000),
        retention_bytes: Some(6000),
        max_message_bytes: 4096,
        ..LogConfig::default()
    }
}

fn check(log: &Log, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(log.next_offset(), model.next_offset);
    prop_assert_eq!(log.log_start_offset(), model.log_start);
    prop_assert_eq!(log.last_raft_index(), model.last_raft_index());
    prop_assert_eq!(log.first_raft_index(), model.first_raft_index);
    // Every Raft entry: term, kind, bytes.
    for e in &model.entries {
        let info = log
            .entry(e.raft_index)
            .map_err(|err| TestCaseError::fail(err.to_string()))?;
        prop_assert_eq!(info.term, e.term);
        prop_assert_eq!(log.term_of(e.raft_index).unwrap(), e.term);
        let payload = log.entry_payload(e.raft_index).unwrap();
        match &e.data {
            Some((base, _, bytes)) => {
                prop_assert_eq!(info.kind, EntryKind::Data);
                prop_assert_eq!(info.base_offset, *base);
                prop_assert_eq!(&payload[..], &bytes[..]);
            }
            None => {
                prop_assert_eq!(info.kind, EntryKind::Noop);
                prop_assert_eq!(&payload[..], &e.payload[..]);
            }
        }
    }
    // A full sequential read from the log start returns exactly the model's batches.
    let got = common::read_all(log, model.log_start);
    let want: Vec<_> = model
        .data()
        .filter(|(_, last, _)| *last >= model.log_start)
        .collect();
    prop_assert_eq!(got.len(), want.len());
    for ((base, bytes), (wbase, _, wbytes)) in got.iter().zip(want) {
        prop_assert_eq!(*base, *wbase);
        prop_assert_eq!(&bytes[..], &wbytes[..]);
    }
    Ok(())
}

/// Segments are deleted (by retention, DeleteRecords, or at open when wholly before the
/// log start); their entries leave the model. Retention's reasons are checked by the
/// caller; anything else may only remove batches below the log start.
fn sync_deleted(log: &Log, model: &mut Model) -> Result<(), TestCaseError> {
    let first = log.first_raft_index();
    let dropped = (first - model.first_raft_index) as usize;
    prop_assert!(dropped <= model.entries.len());
    model.entries.drain(..dropped);
    model.first_raft_index = first;
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let open = |clock: &Arc<ManualClock>| {
        Log::open_with_clock(dir.path(), config(), clock.clone()).unwrap()
    };
    let mut log = open(&clock);
    let mut model = Model {
        entries: Vec::new(),
        first_raft_index: 1,
        log_start: 0,
        next_offset: 0,
        term: 1,
    };
    let mut seed = 0u64;
    for op in ops {
        match op {
            Op::Append {
                records,
                value_bytes,
                term_bump,
            } => {
                if term_bump {
                    model.term += 1;
                }
                seed += 1;
                let ts = clock.now_ms_for_test();
                let b = common::batch(seed, records, value_bytes, ts);
                let info = log.append_with_term(model.term, &b).unwrap();
                let b = common::as_stored(b, info.base_offset, model.term);
                prop_assert_eq!(info.base_offset, model.next_offset);
                prop_assert_eq!(info.raft_index, model.last_raft_index() + 1);
                let last = info.last_offset;
                model.entries.push(ModelEntry {
                    raft_index: info.raft_index,
                    term: model.term,
                    data: Some((info.base_offset, last, b)),
                    payload: Vec::new(),
                    max_timestamp: ts + records as i64 - 1,
                });
                model.next_offset = last + 1;
            }
            Op::Meta { payload_bytes } => {
                let payload = vec![7u8; payload_bytes];
                let idx = log
                    .append_meta(model.term, EntryKind::Noop, &payload)
                    .unwrap();
                prop_assert_eq!(idx, model.last_raft_index() + 1);
                model.entries.push(ModelEntry {
                    raft_index: idx,
                    term: model.term,
                    data: None,
                    payload,
                    max_timestamp: -1,
                });
            }
            Op::Read { pick, max_bytes } => {
                let offset = model.pick_offset(pick);
                let bytes = log.read(offset, max_bytes).unwrap();
                let got = common::split(&bytes);
                let want: Vec<_> = model
                    .data()
                    .filter(|(_, last, _)| *last >= offset)
                    .collect();
                if want.is_empty() {
                    prop_assert!(got.is_empty());
                } else {
                    // At least one whole batch; the first holds `offset`; all in order.
                    prop_assert!(!got.is_empty());
                    prop_assert!(got.len() == 1 || bytes.len() <= max_bytes);
                    for ((base, b), (wbase, _, wb)) in got.iter().zip(want) {
                        prop_assert_eq!(*base, *wbase);
                        prop_assert_eq!(&b[..], &wb[..]);
                    }
                }
                // Reads out of range are errors, never panics.
                prop_assert!(log.read(model.next_offset + 1, 100).is_err());
                if model.log_start > 0 {
                    prop_assert!(log.read(model.log_start - 1, 100).is_err());
                }
            }
            Op::Truncate { pick } => {
                let offset = model.pick_offset(pick);
                log.truncate_from(offset).unwrap();
                if offset < model.next_offset {
                    // Drop the batches holding `offset` and after, and the entries after them.
                    let cut = model
                        .entries
                        .iter()
                        .position(|e| e.data.as_ref().is_some_and(|(_, last, _)| *last >= offset))
                        .expect("a batch holds an offset below next_offset");
                    model.next_offset = model.entries[cut].data.as_ref().unwrap().0;
                    model.entries.truncate(cut);
                    model.log_start = model.log_start.min(model.next_offset);
                }
                model.term = model.term.max(model.entries.last().map_or(0, |e| e.term));
            }
            Op::TruncateRaft { pick } => {
                let span = model.entries.len() as u64 + 1;
                let idx = model.first_raft_index + u64::from(pick) % span;
                log.truncate_from_raft_index(idx).unwrap();
                let keep = (idx - model.first_raft_index) as usize;
                model.entries.truncate(keep);
                model.next_offset = match model.entries.iter().rev().find_map(|e| e.data.as_ref()) {
                    Some((_, last, _)) => last + 1,
                    None => log.next_offset(), // only deleted segments' history is left
                };
                model.log_start = model.log_start.min(model.next_offset);
            }
            Op::Roll => log.roll().unwrap(),
            Op::AdvanceClock { ms } => clock.advance_ms(ms),
            Op::Retention | Op::DeleteBefore { .. } => {
                let before: Vec<_> = log.segments();
                let new_start = match op {
                    Op::DeleteBefore { pick } => {
                        let offset = model.pick_offset(pick);
                        log.delete_before(offset).unwrap();
                        prop_assert_eq!(log.log_start_offset(), offset.max(model.log_start));
                        offset.max(model.log_start)
                    }
                    _ => {
                        let out = log.apply_retention().unwrap();
                        prop_assert_eq!(out.deleted_segments, before.len() - log.segment_count());
                        // Only closed segments, oldest first, each past a limit.
                        let now = clock.now_ms_for_test();
                        let total: u64 = before.iter().map(|s| s.size_bytes).sum();
                        let mut removed = 0u64;
                        for s in &before[..out.deleted_segments] {
                            prop_assert!(!s.active);
                            let old = now - s.max_timestamp > 30_000;
                            let big = total - removed - s.size_bytes >= 6000;
                            let below_start = s.next_offset <= model.log_start;
                            removed += s.size_bytes;
                            prop_assert!(
                                old || big || below_start,
                                "segment {} deleted without reason",
                                s.base_offset
                            );
                        }
                        log.log_start_offset()
                    }
                };
                model.log_start = new_start;
                sync_deleted(&log, &mut model)?;
                if model.entries.is_empty() {
                    prop_assert_eq!(log.next_offset(), model.next_offset);
                }
            }
            Op::Reopen { clean } => {
                if clean {
                    log.close().unwrap();
                } else {
                    drop(log);
                }
                let first_before = model.first_raft_index;
                log = open(&clock);
                prop_assert_eq!(log.open_report().clean, clean);
                // Open only removes segments wholly before the log start.
                for e in &model.entries[..(log.first_raft_index() - first_before) as usize] {
                    if let Some((_, last, _)) = &e.data {
                        prop_assert!(*last < model.log_start);
                    }
                }
                prop_assert_eq!(log.open_report().truncated_bytes, 0);
                sync_deleted(&log, &mut model)?;
            }
            Op::Flush => {
                prop_assert_eq!(log.flush().unwrap(), model.next_offset);
            }
        }
        check(&log, &model)?;
        // Timestamp lookup agrees with a scan of the model.
        if let Some(e) = model.entries.iter().rev().find(|e| e.data.is_some()) {
            let t = e.max_timestamp;
            let want = model
                .entries
                .iter()
                .filter_map(|e| e.data.as_ref().map(|d| (d, e.max_timestamp)))
                .find(|((_, last, _), ts)| *ts >= t && *last >= model.log_start)
                .map(|((base, _, _), _)| (*base).max(model.log_start));
            prop_assert_eq!(log.offset_for_timestamp(t).unwrap(), want);
        }
    }
    Ok(())
}

/// `ManualClock::now_ms` through the trait, for brevity above.
trait NowForTest {
    fn now_ms_for_test(&self) -> i64;
}
impl NowForTest for ManualClock {
    fn now_ms_for_test(&self) -> i64 {
        log_store::Clock::now_ms(self)
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
        max_shrink_iters: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]
    #[test]
    fn log_matches_model(ops in proptest::collection::vec(op(), 1..120)) {
        run(ops)?;
    }
}
