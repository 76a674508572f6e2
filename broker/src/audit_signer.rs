//! Signed tree heads of audit topics: the broker signs each head it serves with the
//! Ed25519 key of `audit.signing.key.file` (a PEM PKCS#8 private key, handled like a TLS
//! key: read at start, never logged), and publishes the public key
//! (`GET /audit/key`, `strata audit key`). A client that holds the public key can then
//! check a head without trusting the connection it came over, and keep it as evidence:
//! a later head that is not consistent with a signed one proves the log was rewritten.
//!
//! The signed message is this byte string, big-endian, so any Ed25519 implementation
//! can check it:
//!
//! ```text
//! "strata-audit-tree-head-v1" (25 bytes) | topic length u16 | topic (UTF-8) |
//! partition i32 | tree size u64 | root hash (32 bytes) | last offset i64 (-1: empty
//! tree) | timestamp ms i64
//! ```
//!
//! Signing uses `ring` (already in the build through rustls), whose Ed25519 is RFC 8032.

use std::path::{Path, PathBuf};

use ring::signature::{Ed25519KeyPair, KeyPair};
use rustls::pki_types::PrivateKeyDer;

/// What the signed message starts with: the kind of statement and its version.
pub const HEAD_CONTEXT: &[u8] = b"strata-audit-tree-head-v1";

/// A signing key that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("audit.signing.key.file {path}: {why}")]
pub struct SignerError {
    pub path: PathBuf,
    pub why: String,
}

/// A tree head as signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadStatement<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub tree_size: u64,
    pub root: &'a [u8; 32],
    pub last_offset: Option<u64>,
    pub timestamp_ms: i64,
}

impl HeadStatement<'_> {
    /// The bytes signed (see the module doc).
    pub fn message(&self) -> Vec<u8> {
        let topic = self.topic.as_bytes();
        let mut m = Vec::with_capacity(HEAD_CONTEXT.len() + 2 + topic.len() + 60);
        m.extend_from_slice(HEAD_CONTEXT);
        // Kafka topic names are at most 249 bytes.
        m.extend_from_slice(&u16::try_from(topic.len()).unwrap_or(u16::MAX).to_be_bytes());
        m.extend_from_slice(topic);
        m.extend_from_slice(&self.partition.to_be_bytes());
        m.extend_from_slice(&self.tree_size.to_be_bytes());
        m.extend_from_slice(self.root);
        let last = self
            .last_offset
            .map_or(-1, |o| i64::try_from(o).unwrap_or(i64::MAX));
        m.extend_from_slice(&last.to_be_bytes());
        m.extend_from_slice(&self.timestamp_ms.to_be_bytes());
        m
    }
}

/// The broker's head-signing key.
#[derive(Debug)]
pub struct AuditSigner {
    key: Ed25519KeyPair,
}

impl AuditSigner {
    /// Reads the Ed25519 private key (PEM, PKCS#8) at `path`.
    pub fn load(path: &Path) -> Result<AuditSigner, SignerError> {
        let bad = |why: String| SignerError {
            path: path.to_path_buf(),
            why,
        };
        let der =
            replication::transport::security::private_key(path).map_err(|e| bad(e.to_string()))?;
        let PrivateKeyDer::Pkcs8(der) = der else {
            return Err(bad("not a PKCS#8 key (BEGIN PRIVATE KEY)".into()));
        };
        let key = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der.secret_pkcs8_der())
            .map_err(|e| bad(format!("not an Ed25519 key: {e}")))?;
        Ok(AuditSigner { key })
    }

    /// The raw 32-byte public key.
    pub fn public_key(&self) -> &[u8] {
        self.key.public_key().as_ref()
    }

    /// The Ed25519 signature of `head`'s message.
    pub fn sign(&self, head: &HeadStatement<'_>) -> Vec<u8> {
        self.key.sign(&head.message()).as_ref().to_vec()
    }
}

/// Whether `signature` is `public_key`'s Ed25519 signature of `head`.
pub fn verify(public_key: &[u8], head: &HeadStatement<'_>, signature: &[u8]) -> bool {
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public_key)
        .verify(&head.message(), signature)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PKCS#8 v1 Ed25519 key (RFC 8410's example private key, as OpenSSL writes it).
    const PEM: &str = "-----BEGIN PRIVATE KEY-----\n\
        MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n\
        -----END PRIVATE KEY-----\n";

    #[test]
    fn a_signed_head_checks_with_the_public_key_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.key");
        std::fs::write(&path, PEM).unwrap();
        let signer = AuditSigner::load(&path).unwrap();
        let root = [7u8; 32];
        let head = HeadStatement {
            topic: "trail",
            partition: 2,
            tree_size: 10,
            root: &root,
            last_offset: Some(99),
            timestamp_ms: 1_700_000_000_000,
        };
        let sig = signer.sign(&head);
        assert!(verify(signer.public_key(), &head, &sig));
        let other = HeadStatement {
            tree_size: 9,
            ..head
        };
        assert!(!verify(signer.public_key(), &other, &sig));
        assert!(head.message().starts_with(HEAD_CONTEXT));

        std::fs::write(&path, "not a key").unwrap();
        let e = AuditSigner::load(&path).unwrap_err();
        assert!(e.to_string().contains("audit.signing.key.file"), "{e}");
    }
}
