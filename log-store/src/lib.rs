//! # log-store — Strata's partition log
//!
//! A partition is an append-only log of Kafka RecordBatch v2 batches, kept in segment files
//! named by their base offset, exactly as a Kafka broker stores them, so fetches can hand
//! stored bytes to a socket without re-encoding:
//!
//! | file | what | format |
//! |---|---|---|
//! | `NNNNNNNNNNNNNNNNNNNN.log` | the batches | Kafka's, byte for byte |
//! | `.index` | sparse offset → position, every `index.interval.bytes` | Kafka's, mmap'd |
//! | `.timeindex` | sparse max timestamp → offset | Kafka's, mmap'd |
//! | `.entries` | dense Raft entry table: index, term, kind, position, length | ours ([`entries`]) |
//! | `.entrydata` | payloads of non-data Raft entries (no-ops, conf changes) | ours |
//! | `log.checkpoint` | log start offset, recovery point, Raft entry before the first | ours ([`checkpoint`]) |
//! | `.txnindex`, `.snapshot` | the broker's state derived from a segment, rebuildable | ours ([`sidecar`]) |
//! | `.leaves` | an audit log's leaves of a closed segment, rebuildable | ours ([`sidecar`], [`log::write_audit_leaves`]) |
//! | `audit.seal` | an audit log's seal and the frontier of its leaves | ours ([`log::SealFile`]) |
//! | `cleaner.checkpoint` | first dirty offset, next delete horizon | ours ([`clean_checkpoint`]) |
//!
//! The partition log *is* the Raft log: each batch is one Raft entry, offsets are assigned
//! deterministically at append (`base_offset = next_offset`), and non-data Raft entries
//! take a Raft index but no Kafka offset, so clients never see them. See [`Log`] for the
//! API and its guarantees, and `docs/log-store.md` for the design notes.
//!
//! ## Compaction
//!
//! With `cleanup.policy=compact` ([`LogConfig::compact`]) the broker drives a background
//! cleaner in three steps: [`Log::prepare_clean`] (read access, cheap) →
//! [`CleanJob::run`] (no lock: builds the key → latest-offset map up to the high
//! watermark and writes cleaned segments to a staging directory) →
//! [`Log::complete_clean`] (write access, short: swaps them in, crash-safely, or discards
//! the job if the log changed). Every batch, and so every Raft entry, keeps its offsets;
//! records superseded by a later one with the same key are dropped, tombstones after
//! `delete.retention.ms` past the cleaning that first saw them (KIP-534). See
//! [`cleaner`] for the rules and the crash-safety argument.
//!
//! ## Departures from the target design
//! - The entry table is the authority on which `.log` bytes belong to the log (recovery
//!   walks it); a `.log` batch without a table record is an unacknowledged tail and is cut.
//!   The table is dense (one record per entry); the non-data payloads live in a sidecar
//!   `.entrydata` file instead of inside the table, so table records stay fixed-size and
//!   lookups by Raft index are arithmetic.
//! - Reads return bytes sliced from a memory map of the `.log` (closed and active segments
//!   alike) instead of using sendfile; the broker may add sendfile later.
//! - Compaction keeps empty batches (Kafka drops most): each is a Raft entry, and the
//!   entry table must stay dense. Cleaned segments are not merged.
//! - `Log` is not internally synchronised: mutations take `&mut self`, reads `&self`.
//!   Returned `Bytes` outlive any lock, so a reader never blocks an append for longer than
//!   the lookup.

pub mod batch;
pub mod checkpoint;
pub mod clean_checkpoint;
pub mod cleaner;
pub mod clock;
pub mod config;
pub mod entries;
pub mod error;
pub mod failpoint;
pub mod handle;
pub mod index;
pub mod inspect;
pub mod log;
pub mod logged_heads;
pub use merkle;
pub mod offset_map;
pub mod prealloc;
pub mod recode;
pub mod records;
pub mod restamp;
pub mod segment;
pub mod sidecar;
pub mod throttle;
pub mod validate;

pub use batch::{BatchError, BatchHeader, Batches};
pub use cleaner::{CleanJob, CleanOutcome, Cleaned, Cleaner, CleanerConfig};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::LogConfig;
pub use entries::EntryKind;
pub use error::{LogError, Result};
pub use log::{
    AppendInfo, AuditDivergence, AuditHead, EntryInfo, HeadMark, InclusionProof, Log, OpenReport,
    PendingFlush, RetentionOutcome, SegmentInfo,
};
pub use recode::{recompress, set_max_timestamp, stamp_log_append_time, RecodeError};
pub use restamp::restamp_zero_terms;
pub use segment::MAP_RESIDENT_BYTES;
pub use sidecar::{Anchor, SidecarKind, StagedSidecar};
pub use throttle::Throttle;
pub use validate::{validate_records, RecordError, RecordRule, RecordRules, ValidationError};
