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
//!
//! The partition log *is* the Raft log: each batch is one Raft entry, offsets are assigned
//! deterministically at append (`base_offset = next_offset`), and non-data Raft entries
//! take a Raft index but no Kafka offset, so clients never see them. See [`Log`] for the
//! API and its guarantees, and `docs/log-store.md` for the design notes.
//!
//! ## Departures from the architecture map
//! - The entry table is the authority on which `.log` bytes belong to the log (recovery
//!   walks it); a `.log` batch without a table record is an unacknowledged tail and is cut.
//!   The map calls the table "dense per-entry"; the non-data payloads live in a sidecar
//!   `.entrydata` file instead of inside the table, so table records stay fixed-size and
//!   lookups by Raft index are arithmetic.
//! - Reads return bytes sliced from a memory map of the `.log` (closed and active segments
//!   alike) instead of using sendfile; the broker may add sendfile later.
//! - `Log` is not internally synchronised: mutations take `&mut self`, reads `&self`.
//!   Returned `Bytes` outlive any lock, so a reader never blocks an append for longer than
//!   the lookup.

pub mod batch;
pub mod checkpoint;
pub mod clock;
pub mod config;
pub mod entries;
pub mod error;
pub mod index;
pub mod inspect;
pub mod log;
pub mod segment;

pub use batch::{BatchError, BatchHeader, Batches};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::LogConfig;
pub use entries::EntryKind;
pub use error::{LogError, Result};
pub use log::{
    AppendInfo, EntryInfo, Log, OpenReport, PendingFlush, RetentionOutcome, SegmentInfo,
};
