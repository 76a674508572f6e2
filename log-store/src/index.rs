//! The sparse, memory-mapped offset and time indexes, in Kafka's on-disk format.
//!
//! Both are arrays of fixed-size big-endian entries. While their segment is active they
//! may hold up to `segment.index.bytes` worth of entries; the file grows toward that in
//! steps of [`INDEX_GROWTH_BYTES`], each allocated for real (a write through the map into
//! a hole of a full disk would be a SIGBUS, see `prealloc.rs`). When the segment closes
//! the file is trimmed to the written entries, so a closed index's file size is exactly
//! `entries × ENTRY_BYTES` (as in Kafka).
//!
//! - `.index`: (relative offset u32, position u32): the *last* offset of a batch relative to
//!   the segment's base offset, and the file position where that batch starts.
//! - `.timeindex`: (timestamp i64, relative offset u32): the segment's running maximum
//!   timestamp and the last offset of the batch that first reached it.
//!
//! Index files are hints: the segment validates them on open and rebuilds them from the
//! `.log` when they disagree with it, so no index content can corrupt a read.

use std::fs::{File, OpenOptions};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use memmap2::{MmapMut, MmapOptions};

use crate::error::{LogError, Result};
use crate::handle::SyncHandle;

/// One fixed-size index entry.
pub trait IndexEntry: Copy + std::fmt::Debug {
    /// Size of the entry on disk.
    const ENTRY_BYTES: usize;
    fn decode(buf: &[u8]) -> Self;
    fn encode(&self, buf: &mut [u8]);
}

/// An `.index` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    /// Last offset of the indexed batch minus the segment's base offset.
    pub relative_offset: u32,
    /// File position of the start of the indexed batch.
    pub position: u32,
}

/// Size of one `.index` entry in bytes.
pub const OFFSET_INDEX_ENTRY_BYTES: usize = 8;
/// Size of one `.timeindex` entry in bytes.
pub const TIME_INDEX_ENTRY_BYTES: usize = 12;

impl IndexEntry for OffsetEntry {
    const ENTRY_BYTES: usize = OFFSET_INDEX_ENTRY_BYTES;
    fn decode(buf: &[u8]) -> Self {
        OffsetEntry {
            relative_offset: u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]),
            position: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
        }
    }
    fn encode(&self, buf: &mut [u8]) {
        buf[0..4].copy_from_slice(&self.relative_offset.to_be_bytes());
        buf[4..8].copy_from_slice(&self.position.to_be_bytes());
    }
}

/// A `.timeindex` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    /// The segment's maximum timestamp up to and including the indexed batch.
    pub timestamp: i64,
    /// Last offset of the batch that first reached `timestamp`, relative to the base.
    pub relative_offset: u32,
}

impl IndexEntry for TimeEntry {
    const ENTRY_BYTES: usize = TIME_INDEX_ENTRY_BYTES;
    fn decode(buf: &[u8]) -> Self {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&buf[0..8]);
        TimeEntry {
            timestamp: i64::from_be_bytes(ts),
            relative_offset: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
        }
    }
    fn encode(&self, buf: &mut [u8]) {
        buf[0..8].copy_from_slice(&self.timestamp.to_be_bytes());
        buf[8..12].copy_from_slice(&self.relative_offset.to_be_bytes());
    }
}

/// Bytes an active index's file grows by when it fills (allocated, not sparse).
pub const INDEX_GROWTH_BYTES: u64 = 64 * 1024;

/// A memory-mapped array of index entries backed by one file.
#[derive(Debug)]
pub struct MmapIndex<E: IndexEntry> {
    path: PathBuf,
    file: File,
    /// `None` while the mapping would be empty (mmap of length 0 is not allowed).
    map: Option<MmapMut>,
    /// Entries written.
    len: usize,
    /// Entries the current file size can hold.
    capacity: usize,
    /// Entries the index may grow to (`segment.index.bytes` while active).
    limit: usize,
    _entry: PhantomData<E>,
}

/// The offset index of one segment.
pub type OffsetIndex = MmapIndex<OffsetEntry>;
/// The time index of one segment.
pub type TimeIndex = MmapIndex<TimeEntry>;

impl<E: IndexEntry> MmapIndex<E> {
    /// Opens (creating if absent) an index file. Its current size must be a whole number
    /// of entries, which it is after a clean close; a preallocated file from an unclean
    /// stop is reset by the caller through `clear`. With `preallocate_bytes`, the file is
    /// grown so appends have room (the active segment).
    pub fn open(path: &Path, preallocate_bytes: Option<u64>) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| LogError::io(path, e))?;
        let file_len = file.metadata().map_err(|e| LogError::io(path, e))?.len();
        let whole = file_len % E::ENTRY_BYTES as u64 == 0;
        let len = (file_len / E::ENTRY_BYTES as u64) as usize;
        let mut index = MmapIndex {
            path: path.to_path_buf(),
            file,
            map: None,
            len,
            capacity: len,
            limit: len,
            _entry: PhantomData,
        };
        index.remap(file_len)?;
        if !whole {
            // Keep the whole entries; the caller validates and rebuilds as needed.
            index.len = len;
        }
        if let Some(bytes) = preallocate_bytes {
            index.ensure_capacity_bytes(bytes)?;
        }
        Ok(index)
    }

    fn remap(&mut self, file_len: u64) -> Result<()> {
        self.map = None;
        self.capacity = (file_len / E::ENTRY_BYTES as u64) as usize;
        if self.capacity == 0 {
            return Ok(());
        }
        // SAFETY: the file is owned by this segment; Strata never truncates an index
        // below a live mapping's length except through `trim`, which remaps first.
        let map = unsafe {
            MmapOptions::new()
                .len(file_len as usize)
                .map_mut(&self.file)
        }
        .map_err(|e| LogError::io(&self.path, e))?;
        self.map = Some(map);
        Ok(())
    }

    /// Lets the index grow to `bytes` worth of entries (`segment.index.bytes`), and
    /// allocates its first step now. Fails (ENOSPC) when the disk has no room for it.
    pub fn ensure_capacity_bytes(&mut self, bytes: u64) -> Result<()> {
        self.limit = self.limit.max((bytes / E::ENTRY_BYTES as u64) as usize);
        let step = (INDEX_GROWTH_BYTES / E::ENTRY_BYTES as u64) as usize;
        self.grow_to((self.len + step).min(self.limit))
    }

    /// Grows the file, allocated, to hold `entries` (never shrinks it).
    fn grow_to(&mut self, entries: usize) -> Result<()> {
        if entries <= self.capacity {
            return Ok(());
        }
        let bytes = (entries * E::ENTRY_BYTES) as u64;
        crate::prealloc::allocate(&self.file, &self.path, bytes)?;
        self.remap(bytes)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Entries the index may hold (`segment.index.bytes` while active); the file grows
    /// toward it as entries are pushed.
    pub fn capacity(&self) -> usize {
        self.limit.max(self.capacity)
    }

    pub fn is_full(&self) -> bool {
        self.len >= self.capacity()
    }

    /// The entry at `i`; `i < len()`.
    pub fn get(&self, i: usize) -> E {
        debug_assert!(i < self.len);
        let map = self.map.as_ref().expect("len > 0 implies a mapping");
        E::decode(&map[i * E::ENTRY_BYTES..(i + 1) * E::ENTRY_BYTES])
    }

    pub fn last(&self) -> Option<E> {
        (self.len > 0).then(|| self.get(self.len - 1))
    }

    /// Appends an entry; returns `false` (and writes nothing) when the index is full,
    /// or when the disk has no room to grow it: an index is sparse by design, so a
    /// missing entry only makes a lookup scan further, and the append goes on.
    pub fn push(&mut self, entry: E) -> bool {
        if self.len >= self.capacity {
            let step = (INDEX_GROWTH_BYTES / E::ENTRY_BYTES as u64) as usize;
            let want = (self.capacity + step).min(self.limit);
            if want <= self.capacity {
                return false;
            }
            if let Err(e) = self.grow_to(want) {
                tracing::warn!(path = %self.path.display(), error = %e, "index not grown; entry skipped");
                return false;
            }
        }
        let map = self.map.as_mut().expect("capacity > 0 implies a mapping");
        let at = self.len * E::ENTRY_BYTES;
        entry.encode(&mut map[at..at + E::ENTRY_BYTES]);
        self.len += 1;
        true
    }

    /// Keeps the first `len` entries.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Drops every entry (before a rebuild).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// The largest `i` such that `key(get(i)) <= target`, by binary search. Entries must
    /// be sorted by `key`, which segment validation guarantees before any lookup.
    pub fn floor_by<K: Ord>(&self, target: K, key: impl Fn(&E) -> K) -> Option<usize> {
        let (mut lo, mut hi) = (0usize, self.len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if key(&self.get(mid)) <= target {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1)
    }

    /// Shrinks the file to exactly the written entries and syncs it (segment close).
    pub fn trim(&mut self) -> Result<()> {
        self.trim_unsynced()?;
        self.file
            .sync_all()
            .map_err(|e| LogError::io(&self.path, e))
    }

    /// Shrinks the file as [`Index::trim`] does, leaving the sync to whoever syncs the
    /// handle from [`Index::sync_handle`] (a roll's next flush). Pages written through
    /// the map stay in the page cache when it is replaced, and that sync writes them.
    pub fn trim_unsynced(&mut self) -> Result<()> {
        let bytes = (self.len * E::ENTRY_BYTES) as u64;
        self.map = None;
        self.file
            .set_len(bytes)
            .map_err(|e| LogError::io(&self.path, e))?;
        self.limit = self.len;
        self.remap(bytes)
    }

    /// A duplicate handle on the index file, to sync it without `&mut self`.
    pub fn sync_handle(&self) -> Result<SyncHandle> {
        crate::handle::duplicate(&self.path, &self.file)
    }
}
