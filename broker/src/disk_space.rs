//! The free-space floor (`storage.min.free.bytes`, Redpanda's `storage_min_free_bytes`
//! idea): below it, produce is refused with KAFKA_STORAGE_ERROR (clients retry it) and
//! `/health` reports the broker degraded, instead of the disk filling until writes fail
//! mid-way. Space freed by retention, DeleteRecords or a deleted topic brings writes
//! back at the next check. Reads, group commits and the broker's own metadata writes go
//! on: the floor is their headroom.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::shutdown::Shutdown;
use crate::Broker;

/// How often free space is measured.
pub const DISK_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The data directory's free space, as last measured.
#[derive(Debug, Default)]
pub struct DiskSpace {
    low: AtomicBool,
}

impl DiskSpace {
    /// Whether free space was below the floor at the last check.
    pub fn low(&self) -> bool {
        self.low.load(Ordering::Relaxed)
    }
}

/// Bytes an unprivileged writer may still use on the filesystem holding `dir`.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in path"))?;
    // SAFETY: `statvfs` is plain old data, fully written by a successful call; `path` is
    // a valid NUL-terminated string for the duration of the call.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// Measures the data directory every [`DISK_CHECK_INTERVAL`] until shutdown, moving
/// the broker in and out of the low-space state.
pub async fn watch(broker: Arc<Broker>, mut shutdown: Shutdown) {
    let floor = broker.config.storage_min_free_bytes;
    let dir = broker.config.data_dir.clone();
    let mut tick = tokio::time::interval(DISK_CHECK_INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait() => return,
        }
        let free = match free_bytes(&dir) {
            Ok(free) => free,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "measuring free disk space");
                continue;
            }
        };
        broker.metrics.disk_free_bytes.set(free as i64);
        let low = free < floor;
        broker.disk.low.store(low, Ordering::Relaxed);
        broker.metrics.health.set_degraded(
            "disk space",
            low.then(|| {
                format!(
                    "{free} bytes free in {}, below storage.min.free.bytes {floor}: produce refused",
                    dir.display()
                )
            }),
        );
    }
}
