//! A segment's memory map: created on the first read, shared by every slice handed out,
//! dropped when idle or replaced, and counted in a process-wide account of mapped reads
//! whose pages are released past [`MAP_RESIDENT_BYTES`].

use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use bytes::{Bytes, BytesMut};
use memmap2::{Mmap, MmapOptions};
use tracing::debug;

use super::Segment;
use crate::error::{LogError, Result};

/// Bytes handed out through segment maps, by all logs of the process together, after
/// which the pages of every map read since the last time are dropped from this
/// process's page tables (`MADV_DONTNEED`; they stay in the page cache and the next
/// read faults them back in). Bounds how much of the logs that consumers stream through
/// counts as the broker's resident memory, however many partitions they read: a 1 GiB
/// active segment read end to end would otherwise be resident in full until its map is
/// released, and every partition read adds its own.
pub const MAP_RESIDENT_BYTES: u64 = 128 << 20;

/// The process-wide account behind [`MAP_RESIDENT_BYTES`].
struct ResidentMaps {
    /// Bytes handed out through maps since the last sweep.
    read_bytes: AtomicU64,
    /// Counts sweeps; a segment registers its map once per epoch.
    epoch: AtomicU64,
    /// Maps read since the last sweep (dead ones are skipped).
    maps: Mutex<Vec<Weak<Mmap>>>,
}

static RESIDENT_MAPS: ResidentMaps = ResidentMaps::new();

impl ResidentMaps {
    const fn new() -> ResidentMaps {
        ResidentMaps {
            read_bytes: AtomicU64::new(0),
            epoch: AtomicU64::new(1),
            maps: Mutex::new(Vec::new()),
        }
    }

    fn lock_maps(&self) -> std::sync::MutexGuard<'_, Vec<Weak<Mmap>>> {
        // The list is only pushed to and taken whole: a panic cannot leave it half-changed.
        self.maps.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remembers `map` for the next sweep.
    fn register(&self, map: &Arc<Mmap>) {
        let mut maps = self.lock_maps();
        if maps.len() == maps.capacity() {
            // Maps dropped and made again between sweeps leave dead entries: shed them
            // before the list grows (amortised, so pushes stay O(1)).
            maps.retain(|w| w.strong_count() > 0);
        }
        maps.push(Arc::downgrade(map));
    }

    /// Counts `read` bytes; past [`MAP_RESIDENT_BYTES`], drops the pages of every map
    /// read since the last sweep.
    fn account(&self, read: u64) {
        if self.read_bytes.fetch_add(read, Ordering::Relaxed) + read < MAP_RESIDENT_BYTES {
            return;
        }
        let maps = {
            let mut maps = self.lock_maps();
            // Another reader may have swept since this one counted.
            if self.read_bytes.load(Ordering::Relaxed) < MAP_RESIDENT_BYTES {
                return;
            }
            self.read_bytes.store(0, Ordering::Relaxed);
            self.epoch.fetch_add(1, Ordering::AcqRel);
            std::mem::take(&mut *maps)
        };
        for map in maps.iter().filter_map(Weak::upgrade) {
            // SAFETY: the map is a read-only, shared mapping of a file. MADV_DONTNEED on
            // such a mapping only unmaps its pages from this process: a later access (by
            // a slice already handed out, too) faults the same bytes back in from the page
            // cache, so no reader can observe different contents. (It would zero a
            // private anonymous mapping, which this is not.)
            if let Err(e) = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) } {
                debug!(error = %e, "madvise(DONTNEED) of a segment map failed");
            }
        }
    }
}

/// Owner of a slice of a segment's memory map, so `Bytes` can point into it.
struct MapSlice {
    map: Arc<Mmap>,
    start: usize,
    end: usize,
}

impl AsRef<[u8]> for MapSlice {
    fn as_ref(&self) -> &[u8] {
        &self.map[self.start..self.end]
    }
}

impl Segment {
    /// The segment's memory map, created on first use.
    pub(super) fn map(&self) -> Result<Option<&Arc<Mmap>>> {
        self.map_used.store(true, Ordering::Relaxed);
        if let Some(m) = self.map.get() {
            return Ok(Some(m));
        }
        if self.map_len == 0 {
            return Ok(None);
        }
        // SAFETY: the mapping may extend past the file's end while the segment is active;
        // only bytes below `log_size` (always within the file) are ever read through it,
        // and the file is never shrunk below a byte that a live slice covers.
        let map = unsafe {
            MmapOptions::new()
                .len(self.map_len as usize)
                .map(&self.log_file)
        }
        .map_err(|e| LogError::io(&self.log_path, e))?;
        let _ = self.map.set(Arc::new(map));
        Ok(self.map.get())
    }

    /// Counts `read` bytes handed out through `map` in the process-wide account
    /// ([`MAP_RESIDENT_BYTES`]), registering the map for the next sweep first.
    fn account_map_read(&self, map: &Arc<Mmap>, read: u64) {
        let epoch = RESIDENT_MAPS.epoch.load(Ordering::Acquire);
        if self.map_epoch.swap(epoch, Ordering::Relaxed) != epoch {
            RESIDENT_MAPS.register(map);
        }
        RESIDENT_MAPS.account(read);
    }

    /// Drops the map of a segment (the active one too) that no read used since the last
    /// call, so the pages of cold segments stop counting as this process's resident
    /// memory; a later read maps it again. Slices already handed out keep their own
    /// reference. Returns true if a map was dropped.
    pub fn release_idle_map(&mut self) -> bool {
        let used = self.map_used.swap(false, Ordering::Relaxed);
        if used || self.map.get().is_none() {
            return false;
        }
        self.reset_map();
        true
    }

    /// Zero-copy bytes `[start, end)` of the `.log`; `end <= log_size`.
    pub fn slice(&self, start: u64, end: u64) -> Result<Bytes> {
        debug_assert!(start <= end && end <= self.log_size);
        if start == end {
            return Ok(Bytes::new());
        }
        match self.map()? {
            Some(map) if end <= map.len() as u64 => {
                let bytes = Bytes::from_owner(MapSlice {
                    map: Arc::clone(map),
                    start: start as usize,
                    end: end as usize,
                });
                self.account_map_read(map, end - start);
                Ok(bytes)
            }
            _ => {
                let mut buf = BytesMut::zeroed((end - start) as usize);
                self.log_file
                    .read_exact_at(&mut buf, start)
                    .map_err(|e| LogError::io(&self.log_path, e))?;
                Ok(buf.freeze())
            }
        }
    }

    /// Drops the cached mapping, remembering it while readers still hold slices of it.
    pub(super) fn reset_map(&mut self) {
        // A new map must register itself on its first read.
        *self.map_epoch.get_mut() = 0;
        if let Some(old) = self.map.take() {
            if Arc::strong_count(&old) > 1 {
                self.retired_maps.push(Arc::downgrade(&old));
            }
        }
    }

    /// True while any slice handed out by `slice` is alive.
    pub(super) fn readers_alive(&mut self) -> bool {
        self.retired_maps.retain(|w| w.strong_count() > 0);
        !self.retired_maps.is_empty() || self.map.get().is_some_and(|m| Arc::strong_count(m) > 1)
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::path::Path;

    use super::*;

    /// This process's resident bytes of the mapping that starts at `map`'s address.
    fn resident_bytes(map: &Mmap) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let start = format!("{:x}-", map.as_ptr() as usize);
        let mut lines = smaps.lines().skip_while(|l| !l.starts_with(&start)).skip(1);
        let rss = lines.find(|l| l.starts_with("Rss:")).unwrap();
        let kib: u64 = rss.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib * 1024
    }

    fn touched_map(dir: &Path, name: &str, fill: u8) -> Arc<Mmap> {
        let path = dir.join(name);
        std::fs::write(&path, vec![fill; 4 << 20]).unwrap();
        let file = File::open(&path).unwrap();
        // SAFETY: a test's own file, never changed while mapped.
        let map = Arc::new(unsafe { Mmap::map(&file) }.unwrap());
        assert!(map.iter().all(|b| *b == fill));
        map
    }

    #[test]
    fn a_sweep_drops_the_pages_of_every_map_read_since_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let account = ResidentMaps::new();
        let (a, b) = (
            touched_map(dir.path(), "a", 1),
            touched_map(dir.path(), "b", 2),
        );
        assert!(resident_bytes(&a) >= 4 << 20 && resident_bytes(&b) >= 4 << 20);
        account.register(&a);
        account.register(&b);
        account.account(MAP_RESIDENT_BYTES - 1);
        assert_eq!(
            account.epoch.load(Ordering::Relaxed),
            1,
            "below the limit: no sweep"
        );
        assert!(resident_bytes(&a) >= 4 << 20);
        account.account(1);
        assert_eq!(account.epoch.load(Ordering::Relaxed), 2);
        assert_eq!(account.read_bytes.load(Ordering::Relaxed), 0);
        assert!(account.lock_maps().is_empty());
        assert_eq!((resident_bytes(&a), resident_bytes(&b)), (0, 0));
        // The same bytes fault back in.
        assert!(a.iter().all(|x| *x == 1) && b.iter().all(|x| *x == 2));
    }

    #[test]
    fn dead_maps_are_shed_before_the_list_grows() {
        let dir = tempfile::tempdir().unwrap();
        let account = ResidentMaps::new();
        let live = touched_map(dir.path(), "live", 3);
        for _ in 0..100 {
            let dead = touched_map(dir.path(), "dead", 4);
            account.register(&dead);
        }
        account.register(&live);
        let maps = account.lock_maps();
        assert!(maps.len() < 40, "{} entries kept", maps.len());
        assert_eq!(maps.iter().filter(|w| w.strong_count() > 0).count(), 1);
    }
}
