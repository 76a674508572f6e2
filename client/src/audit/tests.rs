//! The check against proofs made here from an in-memory tree (RFC 9162, `merkle`) and a
//! key made here: what an honest broker serves passes, and each kind of tampering fails
//! with the offset of the first batch it touches.

use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};

use super::*;
use merkle::{consistency_proof, inclusion_proof, root, MemoryTree};

/// A batch frame: base offset, length, then a body whose lastOffsetDelta is `count - 1`.
fn batch(base: i64, count: i32, fill: u8) -> Vec<u8> {
    let mut b = vec![fill; 61];
    b[..8].copy_from_slice(&base.to_be_bytes());
    b[8..12].copy_from_slice(&49i32.to_be_bytes());
    b[23..27].copy_from_slice(&(count - 1).to_be_bytes());
    b
}

/// Ten batches of two offsets each.
fn log(fill: u8) -> Vec<Vec<u8>> {
    (0..10).map(|i| batch(i * 2, 2, fill + i as u8)).collect()
}

/// A broker's answers for the log `batches`, its heads signed by `key`.
struct Memory {
    tree: MemoryTree,
    batches: Vec<Vec<u8>>,
    key: Ed25519KeyPair,
}

/// A fresh Ed25519 key (PKCS#8) and its public half.
fn key() -> (Vec<u8>, Vec<u8>) {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let public = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .unwrap()
        .public_key()
        .as_ref()
        .to_vec();
    (pkcs8.as_ref().to_vec(), public)
}

impl Memory {
    fn new(batches: Vec<Vec<u8>>, pkcs8: &[u8]) -> Memory {
        let mut tree = MemoryTree::default();
        for b in &batches {
            tree.push(leaf_hash(b));
        }
        let key = Ed25519KeyPair::from_pkcs8(pkcs8).unwrap();
        Memory { tree, batches, key }
    }

    fn signed(&self, size: u64) -> SignedHead {
        let last = frames(&Bytes::from(self.batches[size as usize - 1].clone()))
            .next()
            .unwrap()
            .1;
        let head = TreeHead {
            topic: "trail".into(),
            partition: 0,
            tree_size: size,
            root: root(&self.tree, size).unwrap(),
            last_offset: Some(last as u64),
            timestamp_ms: 1,
        };
        let signature = self.key.sign(&head.message()).as_ref().to_vec();
        SignedHead { head, signature }
    }
}

impl ProofSource for Memory {
    async fn head(&self, _: &str, _: i32) -> Result<SignedHead, String> {
        Ok(self.signed(self.batches.len() as u64))
    }

    async fn inclusion(
        &self,
        _: &str,
        _: i32,
        offset: u64,
        size: u64,
    ) -> Result<Inclusion, String> {
        let index = offset / 2;
        let path = inclusion_proof(&self.tree, index, size).map_err(|e| e.to_string())?;
        Ok(Inclusion {
            leaf_index: index,
            tree_size: size,
            base_offset: index * 2,
            path,
        })
    }

    async fn consistency(&self, _: &str, _: i32, from: u64, to: u64) -> Result<Vec<Hash>, String> {
        consistency_proof(&self.tree, from, to).map_err(|e| e.to_string())
    }
}

fn fetched(batches: &[Vec<u8>]) -> Bytes {
    Bytes::from(batches.concat())
}

fn check(memory: Memory, public: Vec<u8>, trusted: Option<SignedHead>) -> AuditCheck<Memory> {
    AuditCheck::new(memory, "trail", 0, public, trusted).unwrap()
}

async fn run(c: &mut AuditCheck<Memory>, served: &[Vec<u8>]) -> Result<(), AuditRefusal> {
    // Two fetches, as a consumer would make.
    c.check(&fetched(&served[..4])).await?;
    c.check(&fetched(&served[4..])).await
}

#[tokio::test]
async fn an_honest_log_passes_with_or_without_a_trusted_head() {
    let (k, public) = key();
    let mut c = check(Memory::new(log(1), &k), public.clone(), None);
    run(&mut c, &log(1)).await.unwrap();
    let trusted = Memory::new(log(1), &k).signed(6);
    let mut c = check(Memory::new(log(1), &k), public.clone(), Some(trusted));
    run(&mut c, &log(1)).await.unwrap();
    // Heads signed by another key are refused.
    let (other, _) = key();
    let mut c = check(Memory::new(log(1), &other), public, None);
    let e = run(&mut c, &log(1)).await.unwrap_err();
    assert!(
        e.offset == 0 && e.reason.contains("not signed by the key"),
        "{e}"
    );
}

#[tokio::test]
async fn a_changed_dropped_or_swapped_batch_is_refused_at_its_offset() {
    let (k, public) = key();
    let honest = || check(Memory::new(log(1), &k), public.clone(), None);
    let mut served = log(1);
    served[5][40] ^= 1;
    assert_eq!(run(&mut honest(), &served).await.unwrap_err().offset, 10);

    let mut served = log(1);
    served.remove(6);
    let e = run(&mut honest(), &served).await.unwrap_err();
    assert!(e.offset == 14 && e.reason.contains("missing"), "{e}");

    let mut served = log(1);
    served.swap(2, 3);
    assert_eq!(run(&mut honest(), &served).await.unwrap_err().offset, 6);
}

#[tokio::test]
async fn a_rewritten_history_fails_against_the_trusted_head() {
    // The broker's key signs a new history (its operator holds the key): only a head
    // kept from before tells.
    let (k, public) = key();
    let trusted = Memory::new(log(1), &k).signed(6);
    let mut rewritten = log(1);
    rewritten[3] = batch(6, 2, 99);
    let forger = Memory::new(rewritten.clone(), &k);
    let mut c = check(forger, public.clone(), Some(trusted.clone()));
    let e = run(&mut c, &rewritten).await.unwrap_err();
    // The first batch already fails: its proof carries the rewritten subtree's hash.
    assert!(
        e.offset == 0 && e.reason.contains("differs from the trusted head"),
        "{e}"
    );
    // Without the kept head the forgery passes: it is a signed tree.
    let mut c = check(Memory::new(rewritten.clone(), &k), public.clone(), None);
    run(&mut c, &rewritten).await.unwrap();
    // A "trusted" head not signed by the key is refused up front.
    let (other, _) = key();
    let forged = SignedHead {
        signature: Memory::new(log(1), &other).signed(6).signature,
        ..trusted
    };
    assert!(AuditCheck::new(Memory::new(log(1), &k), "trail", 0, public, Some(forged)).is_err());
}

#[test]
fn frames_stop_at_a_cut_batch() {
    let mut bytes = log(1)[..3].concat();
    bytes.truncate(bytes.len() - 5);
    let found: Vec<_> = frames(&Bytes::from(bytes))
        .map(|(b, l, _)| (b, l))
        .collect();
    assert_eq!(found, vec![(0, 1), (2, 3)]);
    assert_eq!(frames(&Bytes::from_static(&[0, 0, 0])).count(), 0);
}
