//! Signed tree heads of audit topics: the broker signs each head it serves or logs with
//! the Ed25519 key of `audit.signing.key.file` (a PEM PKCS#8 private key, handled like a
//! TLS key: read at start, never logged), and publishes the public key
//! (`GET /audit/key`, `strata audit key`). A client that holds the public key can then
//! check a head without trusting the connection it came over, and keep it as evidence:
//! a later head that is not consistent with a signed one proves the log was rewritten.
//!
//! The signed message is the head's statement (`log_store::merkle::TreeHead::message`).
//! Signing uses `ring` (already in the build through rustls), whose Ed25519 is RFC 8032.

use std::path::{Path, PathBuf};

use log_store::merkle::{TreeHead, SIGNATURE_BYTES};
use ring::signature::{Ed25519KeyPair, KeyPair};
use rustls::pki_types::PrivateKeyDer;

/// A signing key that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("audit.signing.key.file {path}: {why}")]
pub struct SignerError {
    pub path: PathBuf,
    pub why: String,
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

    /// The Ed25519 signature of `head`'s statement.
    pub fn sign(&self, head: &TreeHead) -> [u8; SIGNATURE_BYTES] {
        let mut out = [0u8; SIGNATURE_BYTES];
        // An Ed25519 signature is 64 bytes (RFC 8032).
        out.copy_from_slice(self.key.sign(&head.message()).as_ref());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use log_store::merkle::verify_signature;

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
        let head = TreeHead {
            topic: "trail".into(),
            partition: 2,
            tree_size: 10,
            root: [7u8; 32],
            last_offset: Some(99),
            timestamp_ms: 1_700_000_000_000,
        };
        let sig = signer.sign(&head);
        assert!(verify_signature(signer.public_key(), &head, &sig));
        let other = TreeHead {
            tree_size: 9,
            ..head
        };
        assert!(!verify_signature(signer.public_key(), &other, &sig));

        std::fs::write(&path, "not a key").unwrap();
        let e = AuditSigner::load(&path).unwrap_err();
        assert!(e.to_string().contains("audit.signing.key.file"), "{e}");
    }
}
