//! Ready handling: raft-rs's contract for each Ready, in an order that leaves a replica
//! that opens and catches up after a crash or power loss at any step.
//!
//! Most Readies only append entries (a leader's proposals, a follower's appends in the
//! same term). Their flush is **deferred** ([`Group::handle_ready_deferred`]): the entries
//! are written to the log (readable, not yet durable), raft-rs is told the Ready was
//! handled but not persisted (`advance_append_async`), and the messages that promise
//! durability (a follower's acknowledgements) are held back. A [`FlushJob`], run off the
//! Raft task without the log's lock, makes them durable; [`Group::flushed`] then tells
//! raft-rs (a leader counts its own entries toward the commit only now) and releases the
//! held messages. So the driver can take new proposals and messages while a flush runs,
//! and the next flush covers everything appended meanwhile.
//!
//! A Ready that carries a snapshot, a new term or vote, or entries that replace entries
//! already in the log (Raft conflict resolution) is handled **in place**, after every
//! deferred Ready before it was flushed and its messages released:
//! 1. messages a leader may send before persisting (replication to followers) go out
//!    first, so followers write in parallel with the leader;
//! 2. a snapshot from the leader is installed (state file first, then the log restart;
//!    see [`LogStorage::apply_snapshot`](crate::LogStorage::apply_snapshot));
//! 3. entries already committed are applied: the commit watermark moves (the partition's
//!    high watermark is the Kafka offset after the last committed entry) and
//!    configuration changes take effect, each saved with its index before the next;
//! 4. new entries are appended and flushed (one `fdatasync`), and only then is a new
//!    term or vote saved: no saved state ever refers to entries a power loss could take;
//! 5. messages that required persistence (votes, acknowledgements) go out;
//! 6. entries the Ready's commit covers are applied as in 3.
//!
//! Either way a saved term or vote never comes before the entries it follows, an
//! acknowledgement never leaves before the entries it acknowledges are durable, and
//! only entries durable here are applied (raft-rs hands out committed entries up to the
//! persisted index it was told).
//!
//! A group with write caching on (see `caching`) is the one exception: its plain appends
//! count as persisted once written, so its acknowledgements leave and its entries
//! commit and apply before their flush, which follows in the background. Everything
//! handled in place is unchanged.

use std::collections::VecDeque;

use raft::eraftpb::{ConfChange, ConfChangeV2, Entry, EntryType, Message, MessageType};
use raft::SnapshotStatus;

use super::{offset_after, protobuf_decode, raft_err, Group, ReadyOutput};
use crate::error::Result;
use crate::storage::LogStorage;

/// Deferred Readies awaiting a flush, oldest first, by number: with the messages held
/// until raft-rs may be told they are persisted, or `None` for a write-caching Ready
/// (raft-rs was told at once; its appends await the background flush).
pub(super) type Held = VecDeque<(u64, Option<Vec<Message>>)>;

/// Readies taken in one call while a write-caching leader's appends commit at once.
const MAX_ROUNDS_AT_ONCE: usize = 4;

/// The flush that a group's deferred Readies wait for ([`Group::flush_job`]). Run it
/// anywhere (it takes the log's lock only briefly, not during the `fdatasync`), then
/// hand it back to [`Group::flushed`].
#[derive(Debug)]
pub struct FlushJob {
    storage: LogStorage,
    /// The last deferred Ready it makes durable.
    number: u64,
    /// The write-cached bytes it covers.
    cached_bytes: u64,
}

impl FlushJob {
    /// Makes everything appended so far durable.
    pub fn run(&self) -> Result<()> {
        self.storage.crash_point("raft.before_flush")?;
        self.storage.flush_concurrently()
    }
}

impl Group {
    /// Whether [`Group::handle_ready`] has anything to do.
    pub fn has_ready(&self) -> bool {
        !self.outbox.is_empty() || self.node.has_ready()
    }

    /// Processes everything raft-rs has ready and makes it durable before returning
    /// (for drivers that do not overlap flushes with other work, such as the
    /// deterministic simulation).
    pub fn handle_ready(&mut self) -> Result<ReadyOutput> {
        let mut out = ReadyOutput::default();
        loop {
            let step = self.handle_ready_deferred()?;
            out.messages.extend(step.messages);
            out.committed.extend(step.committed);
            out.snapshot = step.snapshot.or(out.snapshot);
            let Some(job) = self.flush_job() else {
                return Ok(out);
            };
            job.run()?;
            // Persisting may commit (a leader's own entries): go round once more.
            out.messages.extend(self.flushed(&job));
        }
    }

    /// Processes everything raft-rs has ready, deferring the flush of plain appends (see
    /// the module documentation): afterwards [`Group::flush_job`] says whether a flush is
    /// awaited.
    pub fn handle_ready_deferred(&mut self) -> Result<ReadyOutput> {
        let mut out = ReadyOutput::default();
        out.messages.append(&mut self.outbox);
        if !self.node.has_ready() {
            return Ok(out);
        }
        // A write-caching leader's own append may commit at once: the Ready that
        // applies it is taken in the same turn (a few rounds at most; each round's
        // appends are persisted, so raft-rs soon has nothing more).
        for _ in 0..MAX_ROUNDS_AT_ONCE {
            if self.must_persist_in_place() {
                self.settle(&mut out)?;
                self.ready_in_place(&mut out)?;
                break;
            }
            let at_once = self.ready_deferring_flush(&mut out)?;
            if !(at_once && self.node.has_ready()) {
                break;
            }
        }
        self.storage
            .save_commit_if_due(crate::state::COMMIT_SAVE_ENTRIES)?;
        self.finish_rejoin_if_caught_up()?;
        // A snapshot is one small message (it carries no records, see
        // `LogStorage::snapshot`), so it counts as sent once handed to the network: the
        // follower's progress goes back to probing, and if the message was lost the
        // follower's rejection of the next append asks for another.
        for to in out
            .messages
            .iter()
            .filter(|m| m.get_msg_type() == MessageType::MsgSnapshot)
            .map(|m| m.to)
            .collect::<Vec<_>>()
        {
            self.node.report_snapshot(to, SnapshotStatus::Finish);
        }
        Ok(out)
    }

    /// The flush the deferred Readies wait for, if any. Until [`Group::flushed`] takes
    /// it back, a later job covers the same Readies and more.
    pub fn flush_job(&self) -> Option<FlushJob> {
        self.held.back().map(|&(number, _)| FlushJob {
            storage: self.storage.clone(),
            number,
            cached_bytes: self.cached_bytes,
        })
    }

    /// Records that `job` ran successfully: raft-rs learns what is durable (a leader may
    /// commit; check [`Group::has_ready`]), and the messages held for those Readies are
    /// returned for sending. A job older than a flush done in place since is harmless.
    pub fn flushed(&mut self, job: &FlushJob) -> Vec<Message> {
        self.node.on_persist_ready(job.number);
        let mut messages = Vec::new();
        while self.held.front().is_some_and(|(n, _)| *n <= job.number) {
            if let Some((_, Some(held))) = self.held.pop_front() {
                messages.extend(held);
            }
        }
        self.cached_bytes = self.cached_bytes.saturating_sub(job.cached_bytes);
        messages
    }

    /// Whether the next Ready must be persisted in place: it installs a snapshot, saves
    /// a new term or vote, or replaces entries (a truncation must not race a flush).
    fn must_persist_in_place(&self) -> bool {
        let raft = &self.node.raft;
        if raft.raft_log.unstable_snapshot().is_some() {
            return true;
        }
        let hs = raft.hard_state();
        if (hs.term, hs.vote) != self.storage.term_and_vote() {
            return true;
        }
        raft.raft_log
            .unstable_entries()
            .first()
            .is_some_and(|e| e.index <= self.storage.last_raft_index())
    }

    /// Flushes now what deferred Readies appended, and releases their messages.
    fn settle(&mut self, out: &mut ReadyOutput) -> Result<()> {
        let Some(job) = self.flush_job() else {
            return Ok(());
        };
        job.run()?;
        out.messages.extend(self.flushed(&job));
        Ok(())
    }

    /// Handles a Ready whose appends need no flush in place; returns whether it counted
    /// as persisted at once (write caching, or nothing to persist).
    fn ready_deferring_flush(&mut self, out: &mut ReadyOutput) -> Result<bool> {
        let mut ready = self.node.ready();
        out.messages.extend(ready.take_messages());
        let committed = ready.take_committed_entries();
        self.apply(committed, out)?;
        self.append(ready.entries())?;
        let number = ready.number();
        let appended = !ready.entries().is_empty();
        let written: u64 = ready.entries().iter().map(|e| e.data.len() as u64).sum();
        let persisted = ready.take_persisted_messages();
        self.node.advance_append_async(ready);
        self.node.advance_apply();
        // Readies raft-rs has not been told are persisted wait for their flush; a later
        // one waits behind them even with nothing to persist, so a peer sees this
        // replica's messages in the order raft-rs made them.
        let pending = self.held.iter().any(|(_, m)| m.is_some());
        if self.write_caching.get().is_some() && !pending {
            // Written counts as persisted (see `caching`); the entries still await
            // their background flush.
            self.node.on_persist_ready(number);
            out.messages.extend(persisted);
            if appended {
                self.cached_bytes += written;
                self.held.push_back((number, None));
            }
            return Ok(true);
        }
        if appended || pending {
            self.held.push_back((number, Some(persisted)));
            return Ok(false);
        }
        self.node.on_persist_ready(number);
        out.messages.extend(persisted);
        Ok(true)
    }

    fn ready_in_place(&mut self, out: &mut ReadyOutput) -> Result<()> {
        let mut ready = self.node.ready();
        out.messages.extend(ready.take_messages());
        if !ready.snapshot().is_empty() {
            self.install_ready_snapshot(ready.snapshot(), out)?;
        }
        let committed = ready.take_committed_entries();
        self.apply(committed, out)?;
        self.append(ready.entries())?;
        if !ready.entries().is_empty() || ready.must_sync() {
            self.storage.crash_point("raft.before_flush")?;
            self.storage.flush()?;
        }
        // After the flush: a saved term or vote must never come with entries a power
        // loss could take back (and the state file's commit index is the applied one,
        // never past the durable log).
        if let Some(hs) = ready.hs() {
            self.storage.crash_point("raft.before_hard_state")?;
            self.storage.set_hard_state(hs)?;
        }
        out.messages.extend(ready.take_persisted_messages());
        // raft-rs's new commit index (`commit_index()`) is not written: the state file
        // learns the applied index as entries are applied (`apply`).
        let mut light = self.node.advance(ready);
        out.messages.extend(light.take_messages());
        let committed = light.take_committed_entries();
        self.apply(committed, out)?;
        self.node.advance_apply();
        Ok(())
    }

    /// Writes a Ready's entries; this leader's own proposals are vouched for (their
    /// batches were validated when proposed, so the log skips their CRC-32C).
    fn append(&mut self, entries: &[Entry]) -> Result<()> {
        let vouched = &self.vouched;
        let result = self.storage.append_vouched(entries, |e| {
            vouched
                .iter()
                .any(|&(index, term)| index == e.index && term == e.term)
        });
        let last = entries.last().map_or(0, |e| e.index);
        // Proposals at or below the last written index were written, or replaced.
        while self
            .vouched
            .front()
            .is_some_and(|&(index, _)| index <= last)
        {
            self.vouched.pop_front();
        }
        if !self.is_leader() {
            // Deposed: its unwritten proposals are gone from raft-rs's log.
            self.vouched.clear();
        }
        result
    }

    fn apply(&mut self, entries: Vec<Entry>, out: &mut ReadyOutput) -> Result<()> {
        for e in entries {
            match e.get_entry_type() {
                EntryType::EntryConfChange => {
                    let cc: ConfChange = protobuf_decode(&e.data)?;
                    let cs = self
                        .node
                        .apply_conf_change(&cc)
                        .map_err(|x| raft_err("conf change", x))?;
                    self.storage.set_conf_state(e.index, cs)?;
                }
                EntryType::EntryConfChangeV2 => {
                    let cc: ConfChangeV2 = protobuf_decode(&e.data)?;
                    let cs = self
                        .node
                        .apply_conf_change(&cc)
                        .map_err(|x| raft_err("conf change", x))?;
                    self.storage.set_conf_state(e.index, cs)?;
                }
                EntryType::EntryNormal
                    if e.context.as_ref() == crate::storage::LOG_START_CONTEXT =>
                {
                    self.apply_log_start(e.index, &e.data)
                }
                EntryType::EntryNormal => {}
            }
            self.applied = e.index;
            self.storage.note_applied(e.index);
            self.committed_offset = offset_after(&self.storage, e.index);
            out.committed.push(e);
        }
        Ok(())
    }
}
