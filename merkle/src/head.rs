//! Tree heads: what a (signed) head of an audit partition's tree states, the bytes its
//! Ed25519 signature covers and how a signature is checked, and the payload of the
//! non-data log entry (log-store's `EntryKind::AuditHead`) that records one in the
//! partition's own log.
//!
//! The statement, big-endian, so that any Ed25519 implementation can check a signature:
//!
//! ```text
//! "strata-audit-tree-head-v1" (25 bytes) | topic length u16 | topic (UTF-8) |
//! partition i32 | tree size u64 | root hash (32 bytes) | last offset i64 (-1: empty
//! tree) | timestamp ms i64
//! ```
//!
//! A logged head is the statement followed by the signature's length (u8: 0 for an
//! unsigned head, 64 for an Ed25519 signature) and the signature. Nothing may follow.

use super::Hash;

/// What a statement starts with: the kind of statement and its version.
pub const HEAD_CONTEXT: &[u8] = b"strata-audit-tree-head-v1";

/// Length of an Ed25519 signature.
pub const SIGNATURE_BYTES: usize = 64;

/// A head's bytes that do not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed tree head: {0}")]
pub struct HeadError(pub &'static str);

/// A tree head: the tree of `tree_size` leaves of `topic`/`partition` has root `root`,
/// and its last leaf's batch ends at `last_offset`, as of `timestamp_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeHead {
    pub topic: String,
    pub partition: i32,
    pub tree_size: u64,
    pub root: Hash,
    /// `None` for the empty tree.
    pub last_offset: Option<u64>,
    pub timestamp_ms: i64,
}

impl TreeHead {
    /// The statement: the bytes a signature covers (see the module doc).
    pub fn message(&self) -> Vec<u8> {
        let topic = self.topic.as_bytes();
        let mut m = Vec::with_capacity(HEAD_CONTEXT.len() + 2 + topic.len() + 60);
        m.extend_from_slice(HEAD_CONTEXT);
        // Kafka topic names are at most 249 bytes.
        m.extend_from_slice(&u16::try_from(topic.len()).unwrap_or(u16::MAX).to_be_bytes());
        m.extend_from_slice(topic);
        m.extend_from_slice(&self.partition.to_be_bytes());
        m.extend_from_slice(&self.tree_size.to_be_bytes());
        m.extend_from_slice(&self.root);
        let last = self
            .last_offset
            .map_or(-1, |o| i64::try_from(o).unwrap_or(i64::MAX));
        m.extend_from_slice(&last.to_be_bytes());
        m.extend_from_slice(&self.timestamp_ms.to_be_bytes());
        m
    }

    /// Parses a statement at the start of `bytes`; returns it and the bytes after it.
    pub fn parse(bytes: &[u8]) -> Result<(TreeHead, &[u8]), HeadError> {
        let mut r = Reader(bytes);
        if r.take(HEAD_CONTEXT.len())? != HEAD_CONTEXT {
            return Err(HeadError("not a strata-audit-tree-head-v1 statement"));
        }
        let topic_len = u16::from_be_bytes(r.array()?) as usize;
        let topic = std::str::from_utf8(r.take(topic_len)?)
            .map_err(|_| HeadError("topic is not UTF-8"))?
            .to_string();
        let partition = i32::from_be_bytes(r.array()?);
        let tree_size = u64::from_be_bytes(r.array()?);
        let root = r.array()?;
        let last_offset = match i64::from_be_bytes(r.array()?) {
            -1 => None,
            o => Some(u64::try_from(o).map_err(|_| HeadError("negative last offset"))?),
        };
        let timestamp_ms = i64::from_be_bytes(r.array()?);
        let head = TreeHead {
            topic,
            partition,
            tree_size,
            root,
            last_offset,
            timestamp_ms,
        };
        Ok((head, r.0))
    }
}

/// Whether `signature` is `public_key`'s Ed25519 signature (RFC 8032) of `head`'s
/// statement.
pub fn verify_signature(public_key: &[u8], head: &TreeHead, signature: &[u8]) -> bool {
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public_key)
        .verify(&head.message(), signature)
        .is_ok()
}

/// A head as the log records it: the statement and its signature, if it was signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedHead {
    pub head: TreeHead,
    pub signature: Option<[u8; SIGNATURE_BYTES]>,
}

impl LoggedHead {
    /// The entry's payload (see the module doc).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.head.message();
        match &self.signature {
            Some(sig) => {
                out.push(SIGNATURE_BYTES as u8);
                out.extend_from_slice(sig);
            }
            None => out.push(0),
        }
        out
    }

    /// Parses an entry's payload; anything but exactly one statement and signature is
    /// refused.
    pub fn decode(bytes: &[u8]) -> Result<LoggedHead, HeadError> {
        let (head, rest) = TreeHead::parse(bytes)?;
        let mut r = Reader(rest);
        let signature = match r.array::<1>()?[0] as usize {
            0 => None,
            SIGNATURE_BYTES => Some(r.array()?),
            _ => return Err(HeadError("signature length is neither 0 nor 64")),
        };
        if !r.0.is_empty() {
            return Err(HeadError("bytes after the signature"));
        }
        Ok(LoggedHead { head, signature })
    }
}

/// Reads fixed-size fields off the front of a byte string.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], HeadError> {
        if self.0.len() < n {
            return Err(HeadError("too short"));
        }
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], HeadError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn head() -> TreeHead {
        TreeHead {
            topic: "trail".into(),
            partition: 2,
            tree_size: 10,
            root: [7; 32],
            last_offset: Some(99),
            timestamp_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn logged_heads_round_trip_signed_or_not() {
        for signature in [None, Some([9u8; 64])] {
            let logged = LoggedHead {
                head: head(),
                signature,
            };
            assert_eq!(LoggedHead::decode(&logged.encode()), Ok(logged));
        }
        let empty = TreeHead {
            tree_size: 0,
            last_offset: None,
            ..head()
        };
        let message = empty.message();
        let (parsed, rest) = TreeHead::parse(&message).unwrap();
        assert_eq!((parsed, rest.len()), (empty, 0));
    }

    #[test]
    fn the_statement_layout_is_the_documented_one() {
        let m = head().message();
        assert!(m.starts_with(HEAD_CONTEXT));
        assert_eq!(m.len(), 25 + 2 + 5 + 4 + 8 + 32 + 8 + 8);
        assert_eq!(&m[25..27], &[0, 5]);
        assert_eq!(&m[36..44], &10u64.to_be_bytes());
    }

    #[test]
    fn trailing_bytes_and_bad_signature_lengths_are_refused() {
        let mut bytes = LoggedHead {
            head: head(),
            signature: None,
        }
        .encode();
        bytes.push(0);
        assert!(LoggedHead::decode(&bytes).is_err());
        let n = bytes.len();
        bytes[n - 2] = 3;
        assert!(LoggedHead::decode(&bytes).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Any bytes decode to a head or an error, never a panic.
        #[test]
        fn arbitrary_payloads_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = LoggedHead::decode(&bytes);
        }

        /// A cut logged head never decodes.
        #[test]
        fn cut_heads_are_refused(cut in 0usize..110) {
            let bytes = LoggedHead { head: head(), signature: Some([1; 64]) }.encode();
            prop_assume!(cut < bytes.len());
            prop_assert!(LoggedHead::decode(&bytes[..cut]).is_err());
        }
    }
}
