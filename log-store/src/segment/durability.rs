//! A segment's durability: flushes (in place, or prepared as handles synced without
//! the segment) and closing (synced at once, or left to the log's next flush after a
//! roll).

use tracing::debug;

use super::{CleanHandles, Segment, SyncCover};
use crate::error::{LogError, Result};
use crate::handle::{duplicate, SyncHandle};

impl Segment {
    /// Makes every append so far durable: the `.log`, and unless the table is
    /// rebuildable (whose non-data entries were synced as they came, and whose data
    /// records a recovery rebuilds from the `.log`), `.entrydata` then the table.
    pub fn flush(&mut self) -> Result<()> {
        if self.log_dirty {
            self.log_file
                .sync_data()
                .map_err(|e| LogError::io(&self.log_path, e))?;
            self.log_dirty = false;
        }
        if self.entries.rebuildable() {
            return self.entries.sync_header();
        }
        self.sync_entrydata()?;
        self.entries.sync()
    }

    /// Syncs `.entrydata` when it grew since its last sync.
    pub(super) fn sync_entrydata(&mut self) -> Result<()> {
        if self.entrydata_size > self.entrydata_synced {
            if let Some(f) = &self.entrydata {
                f.sync_data()
                    .map_err(|e| LogError::io(&self.entrydata_path, e))?;
            }
            self.entrydata_synced = self.entrydata_size;
        }
        Ok(())
    }

    /// Duplicate handles on every file a flush must sync (the `.log`; unless the table
    /// is rebuildable, `.entrydata` when it grew since its last sync and the table; the
    /// table also while its header is not known durable), and what they cover. For
    /// [`crate::Log::prepare_flush`].
    pub fn sync_handles(&self) -> Result<(Vec<SyncHandle>, SyncCover)> {
        let dup = duplicate;
        let mut files = vec![dup(&self.log_path, &self.log_file)?];
        if self.entries.rebuildable() {
            if self.entries.header_durable() {
                return Ok((files, SyncCover::default()));
            }
            files.push(self.entries.sync_handle()?);
            let cover = SyncCover {
                header: true,
                ..SyncCover::default()
            };
            return Ok((files, cover));
        }
        if let Some(f) = &self.entrydata {
            if self.entrydata_size > self.entrydata_synced {
                files.push(dup(&self.entrydata_path, f)?);
            }
        }
        files.push(self.entries.sync_handle()?);
        let cover = SyncCover {
            entries: self.entries.len(),
            entrydata_bytes: self.entrydata_size,
            header: true,
        };
        Ok((files, cover))
    }

    /// Duplicate handles on the entry table and `.entrydata` (when present), so the
    /// cleaner can read a closed segment's entries without the log's lock. Closed segments
    /// never change in place, and a handle outlives the file's deletion.
    pub(crate) fn clean_handles(&self) -> Result<CleanHandles> {
        let (table_path, table) = self.entries.sync_handle()?;
        let entrydata = match &self.entrydata {
            Some(f) => Some(duplicate(&self.entrydata_path, f)?),
            None => None,
        };
        Ok(CleanHandles {
            table_path,
            table,
            entrydata,
        })
    }

    /// Records that a sync through [`Segment::sync_handles`] finished.
    pub fn mark_synced(&mut self, cover: SyncCover) {
        self.entries.mark_synced(cover.entries);
        if cover.header {
            self.entries.mark_header_durable();
        }
        self.entrydata_synced = self.entrydata_synced.max(cover.entrydata_bytes);
    }

    /// Seals the segment: final time-index entry, indexes and table trimmed to their
    /// content, everything synced, the `.log` cut to its logical end when no reader holds
    /// a slice of the stale tail.
    pub fn close(&mut self) -> Result<()> {
        self.push_time_entry();
        self.flush()?;
        self.offset_index.trim()?;
        self.time_index.trim()?;
        self.entries.trim()?;
        self.cut_file_synced()?;
        self.active = false;
        Ok(())
    }

    /// [`Segment::cut_file_to_logical_size`], with the new length synced.
    pub(super) fn cut_file_synced(&mut self) -> Result<()> {
        if self.cut_file_to_logical_size()? {
            self.log_file
                .sync_all()
                .map_err(|e| LogError::io(&self.log_path, e))?;
        }
        Ok(())
    }

    /// Closes the segment as [`Segment::close`] does but syncs nothing: returns handles
    /// on each of its files, which `sync_all` makes durable (a roll leaves that to the
    /// log's next flush, so appends to the next segment do not wait for it). Until then
    /// the segment keeps what it knows is unsynced, should a truncation reopen it.
    pub fn close_unsynced(&mut self) -> Result<Vec<SyncHandle>> {
        self.push_time_entry();
        self.offset_index.trim_unsynced()?;
        self.time_index.trim_unsynced()?;
        self.entries.trim_unsynced()?;
        self.cut_file_to_logical_size()?;
        self.active = false;
        let mut files = vec![
            duplicate(&self.log_path, &self.log_file)?,
            self.offset_index.sync_handle()?,
            self.time_index.sync_handle()?,
            self.entries.sync_handle()?,
        ];
        if let Some(f) = &self.entrydata {
            files.push(duplicate(&self.entrydata_path, f)?);
        }
        Ok(files)
    }

    /// Shrinks the `.log` file to `log_size` if nothing outside holds a slice of it;
    /// true when it did (the caller syncs the new length).
    fn cut_file_to_logical_size(&mut self) -> Result<bool> {
        if self.file_size == self.log_size {
            return Ok(false);
        }
        if self.readers_alive() {
            debug!(path = %self.log_path.display(), "readers hold the segment; tail cut deferred");
            return Ok(false);
        }
        self.reset_map();
        self.log_file
            .set_len(self.log_size)
            .map_err(|e| LogError::io(&self.log_path, e))?;
        self.file_size = self.log_size;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LogConfig;
    use crate::entries::{EntryKind, EntryTable};

    /// The paths a flush prepared now would sync.
    fn synced_paths(seg: &Segment) -> Vec<String> {
        let (files, _) = seg.sync_handles().unwrap();
        files
            .iter()
            .map(|(p, _)| p.extension().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    /// A rebuildable table leaves its records to recovery: a flush syncs the `.log`
    /// alone, and a non-data entry syncs itself. A truncation ends that for good; from
    /// then on `.entrydata` is synced by the flushes that cover its growth and skipped by
    /// the rest, and entries cut off and written again are synced again.
    #[test]
    fn a_flush_syncs_what_a_crash_could_not_rebuild() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig::default();
        let mut seg = Segment::create(dir.path(), 0, 1, &config, 0).unwrap();
        assert!(seg.entries.rebuildable());
        assert_eq!(synced_paths(&seg), ["log"]);
        seg.append_meta(EntryKind::Noop, 1, b"first").unwrap();
        assert!(!seg.entries.has_unsynced());
        assert_eq!(seg.entrydata_synced, seg.entrydata_size);
        assert_eq!(synced_paths(&seg), ["log"]);
        seg.append_meta(EntryKind::Noop, 1, b"second").unwrap();
        seg.truncate_from_raft_index(2, &config).unwrap();
        assert!(!seg.entries.rebuildable());
        let reopened = EntryTable::open(seg.entries.path()).unwrap();
        assert!(!reopened.rebuildable(), "the cleared flag is on disk");
        assert_eq!(synced_paths(&seg), ["log", "entries"]);
        seg.append_meta(EntryKind::Noop, 2, b"again").unwrap();
        assert_eq!(synced_paths(&seg), ["log", "entrydata", "entries"]);
        let (_, cover) = seg.sync_handles().unwrap();
        // Written between the prepare and its end: the next flush still covers it.
        seg.append_meta(EntryKind::Noop, 2, b"third").unwrap();
        seg.mark_synced(cover);
        assert_eq!(synced_paths(&seg), ["log", "entrydata", "entries"]);
        seg.flush().unwrap();
        assert_eq!(synced_paths(&seg), ["log", "entries"]);
    }

    /// A segment made for a roll leaves its table's header to the next flush: until a
    /// flush covers it, the table is among the files a flush syncs.
    #[test]
    fn a_rolled_segments_table_header_is_synced_by_its_first_flush() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig::default();
        let mut seg = Segment::create_for_roll(dir.path(), 0, 1, &config, 0).unwrap();
        assert!(seg.entries.rebuildable());
        assert_eq!(synced_paths(&seg), ["log", "entries"]);
        let (_, cover) = seg.sync_handles().unwrap();
        seg.mark_synced(cover);
        assert_eq!(synced_paths(&seg), ["log"]);
        let mut seg = Segment::create_for_roll(dir.path(), 0, 1, &config, 0).unwrap();
        seg.flush().unwrap();
        assert_eq!(
            synced_paths(&seg),
            ["log"],
            "an in-place flush syncs it too"
        );
    }
}
