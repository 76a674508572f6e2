//! Offline reading of the tree heads an audit log recorded (`EntryKind::AuditHead`
//! entries), for `strata audit verify DIR`: each segment's `.entries` table is read with
//! ordinary reads (never mapped, never written), up to its first record that does not
//! check out, and each head's payload is read from `.entrydata` and checked against the
//! record's crc32.

use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::entries::{self, EntryKind, EntryRecord, ENTRY_RECORD_BYTES, ENTRY_TABLE_HEADER_BYTES};
use crate::error::{LogError, Result};
use crate::inspect::segment_logs;
use crate::merkle::LoggedHead;
use crate::segment::{segment_file_name, ENTRIES_SUFFIX, ENTRYDATA_SUFFIX};

/// Larger payloads are not heads (a topic name is at most 249 bytes).
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// A head found in a directory: its Raft index and the head, or why it cannot be read.
pub type FoundHead = (u64, std::result::Result<LoggedHead, String>);

/// The heads recorded in the partition directory `dir`, in log order.
pub fn read_logged_heads(dir: &Path) -> Result<Vec<FoundHead>> {
    let mut out = Vec::new();
    for (base, _) in segment_logs(dir)? {
        let table = dir.join(segment_file_name(base, ENTRIES_SUFFIX));
        let bytes = match std::fs::read(&table) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(LogError::io(&table, e)),
        };
        entries::parse_header(&bytes).map_err(|why| LogError::corrupt(&table, why))?;
        let records = bytes[ENTRY_TABLE_HEADER_BYTES..]
            .chunks_exact(ENTRY_RECORD_BYTES)
            .map_while(EntryRecord::decode);
        let data = dir.join(segment_file_name(base, ENTRYDATA_SUFFIX));
        for rec in records.filter(|r| r.kind == EntryKind::AuditHead) {
            out.push((rec.raft_index, read_head(&data, &rec)));
        }
    }
    Ok(out)
}

/// The head whose payload `rec` locates in the `.entrydata` file `path`.
fn read_head(path: &Path, rec: &EntryRecord) -> std::result::Result<LoggedHead, String> {
    if rec.length as usize > MAX_HEAD_BYTES {
        return Err(format!("a head of {} bytes is not one", rec.length));
    }
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut buf = vec![0u8; rec.length as usize];
    file.read_exact_at(&mut buf, rec.position)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if crc32fast::hash(&buf) != rec.aux {
        return Err("the head's bytes fail their checksum".into());
    }
    LoggedHead::decode(&buf).map_err(|e| e.to_string())
}
