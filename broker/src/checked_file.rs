//! The broker's own small metadata files (node identity, topic registry, producer-id
//! reservation) carry a checksum, so a damaged one stops start-up with an error that
//! names it instead of being read as something else.
//!
//! A file is its text followed by one last line `# crc32 XXXXXXXX`: CRC-32 (IEEE) of
//! every byte before that line, in hex. The text stays readable (the line is a comment
//! in TOML). Files are replaced atomically (`write_atomically`). A file with no
//! checksum line anywhere is [`Read::Unchecked`] (an older release's); one whose
//! checksum line is damaged or misplaced is an error.

use std::path::Path;

use crate::error::{BrokerError, Result};

const TRAILER: &str = "# crc32 ";

/// What [`read`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// No such file.
    Missing,
    /// The text, its checksum verified.
    Checked(String),
    /// A file without a checksum line, as releases before checksums wrote it: the
    /// caller may accept it once and write it again with one.
    Unchecked(String),
}

/// Writes `text` with its checksum line, atomically and durably.
pub fn write(path: &Path, text: &str) -> Result<()> {
    let mut body = text.to_string();
    if !body.is_empty() && !body.ends_with('\n') {
        body.push('\n');
    }
    let crc = crc32fast::hash(body.as_bytes());
    body.push_str(&format!("{TRAILER}{crc:08x}\n"));
    write_atomically(path, body.as_bytes())
}

/// Reads a file [`write`] wrote, checking its checksum.
pub fn read(path: &Path) -> Result<Read> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Read::Missing),
        Err(e) => return Err(BrokerError::io(path, e)),
    };
    let corrupt = |reason: String| BrokerError::CorruptFile {
        path: path.to_path_buf(),
        reason,
    };
    let text = String::from_utf8(bytes).map_err(|_| corrupt("not UTF-8 text".into()))?;
    let body_end = text.trim_end_matches('\n').rfind('\n').map_or(0, |i| i + 1);
    let last = text[body_end..].trim_end_matches('\n');
    let Some(hex) = last.strip_prefix(TRAILER) else {
        if text.contains(TRAILER) {
            return Err(corrupt("the checksum line is not the last line".into()));
        }
        return Ok(Read::Unchecked(text));
    };
    let want = u32::from_str_radix(hex.trim(), 16)
        .map_err(|_| corrupt(format!("unreadable checksum line {last:?}")))?;
    let body = &text[..body_end];
    let got = crc32fast::hash(body.as_bytes());
    if got != want {
        return Err(corrupt(format!(
            "checksum mismatch (file says {want:08x}, content is {got:08x}): the file was \
             damaged or edited; restore it from a backup"
        )));
    }
    Ok(Read::Checked(body.to_string()))
}

/// Replaces `path` with `bytes` atomically and durably, as the log's own metadata files
/// are (`log_store::checkpoint::replace_file`: a synced `<name>.tmp`, a rename, the
/// directory synced): after a crash the file holds the old or the new content.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| BrokerError::Config(format!("{} is not a file path", path.display())))?;
    let tmp = format!("{name}.tmp");
    log_store::checkpoint::replace_file(dir, &tmp, name, bytes, None).map_err(|e| match e {
        log_store::LogError::Io { path, source } => BrokerError::io(&path, source),
        other => BrokerError::io(path, std::io::Error::other(other)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_text_reads_back_and_any_flipped_byte_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write(&path, "a = 1\nb = \"two\"\n").unwrap();
        assert_eq!(
            read(&path).unwrap(),
            Read::Checked("a = 1\nb = \"two\"\n".into())
        );
        let good = std::fs::read(&path).unwrap();
        let body_len = good.len() - "# crc32 00000000\n".len();
        for i in 0..body_len {
            let mut bad = good.clone();
            bad[i] ^= 0x04;
            std::fs::write(&path, &bad).unwrap();
            let err = read(&path).expect_err("a flipped byte must not read back");
            assert!(
                err.to_string().contains(&path.display().to_string()),
                "{err}"
            );
        }
        // Cut short (a copy cut off): without its checksum line it reads as unchecked
        // text, which the caller refuses or parses; cut inside the line: an error.
        std::fs::write(&path, &good[..body_len]).unwrap();
        assert!(matches!(read(&path).unwrap(), Read::Unchecked(_)));
        std::fs::write(&path, &good[..good.len() - 3]).unwrap();
        assert!(read(&path).is_err());
    }

    #[test]
    fn a_missing_file_and_an_empty_text_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        assert_eq!(read(&path).unwrap(), Read::Missing);
        write(&path, "").unwrap();
        assert_eq!(read(&path).unwrap(), Read::Checked(String::new()));
    }
}
