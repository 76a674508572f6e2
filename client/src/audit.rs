//! Consuming an audit topic with proof (opt-in, [`AuditCheck`] with
//! [`PartitionConsumer::poll_checked`](crate::consumer::PartitionConsumer::poll_checked)):
//! every batch a fetch returns is hashed here (its RFC 9162 leaf) and proven to be the
//! next leaf of a tree head signed with a key the caller holds, before any of its
//! records is handed over. A consumer can so refuse history that is not the signed one:
//! a changed, inserted, dropped or reordered batch fails its proof.
//!
//! - With a *trusted head* (one the caller kept, e.g. from a witness), batches it covers
//!   are proven against it, and every newer head must extend it (a consistency proof):
//!   a broker that rewrote history before that head cannot pass.
//! - Other batches are proven against the broker's latest signed head, fetched when a
//!   batch lies past the one in hand; its signature must check with the caller's key.
//!
//! Proofs come from a [`ProofSource`] (the brokers' admin port, in the CLI: this crate
//! speaks only the Kafka protocol). Each batch costs one proof request.

use std::future::Future;

use bytes::Bytes;
use merkle::{leaf_hash, verify_consistency, verify_inclusion, Hash, TreeHead};

/// A tree head with its signature, as a proof source hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHead {
    /// What the head states.
    pub head: TreeHead,
    /// Its Ed25519 signature (64 bytes).
    pub signature: Vec<u8>,
}

/// The inclusion proof of the batch holding an offset, in the tree of `tree_size` leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inclusion {
    /// The batch's leaf.
    pub leaf_index: u64,
    /// The tree the proof is in.
    pub tree_size: u64,
    /// The base offset of the batch the proof is about.
    pub base_offset: u64,
    /// Sibling hashes from the leaf up (RFC 9162's inclusion path).
    pub path: Vec<Hash>,
}

/// Where heads and proofs come from. Nothing it says is trusted: heads are checked with
/// the caller's key, proofs against signed roots.
pub trait ProofSource {
    /// The partition's latest committed head, signed.
    fn head(
        &self,
        topic: &str,
        partition: i32,
    ) -> impl Future<Output = Result<SignedHead, String>> + Send;
    /// The inclusion proof of the batch holding `offset` in the tree of `tree_size`.
    fn inclusion(
        &self,
        topic: &str,
        partition: i32,
        offset: u64,
        tree_size: u64,
    ) -> impl Future<Output = Result<Inclusion, String>> + Send;
    /// The consistency proof from the tree of `from` leaves to the tree of `to`.
    fn consistency(
        &self,
        topic: &str,
        partition: i32,
        from: u64,
        to: u64,
    ) -> impl Future<Output = Result<Vec<Hash>, String>> + Send;
}

/// Why a batch (or a head) was refused; the offset is the batch's base offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("offset {offset}: {reason}")]
pub struct AuditRefusal {
    /// The base offset of the batch refused (-1: a trusted head refused up front).
    pub offset: i64,
    /// Why.
    pub reason: String,
}

/// Checks one partition's batches as a consumer reads them.
#[derive(Debug)]
pub struct AuditCheck<S> {
    source: S,
    topic: String,
    partition: i32,
    public_key: Vec<u8>,
    trusted: Option<TreeHead>,
    current: Option<TreeHead>,
    /// The leaf index and last offset of the last batch proven.
    last: Option<(u64, i64)>,
}

impl<S: ProofSource> AuditCheck<S> {
    /// Checks `topic`/`partition` with heads signed by `public_key` (Ed25519, 32 bytes),
    /// and against `trusted` when given (its signature is checked at the first batch).
    pub fn new(
        source: S,
        topic: &str,
        partition: i32,
        public_key: Vec<u8>,
        trusted: Option<SignedHead>,
    ) -> Result<AuditCheck<S>, AuditRefusal> {
        let trusted = match trusted {
            Some(t) if merkle::verify_signature(&public_key, &t.head, &t.signature) => Some(t.head),
            Some(_) => return Err(refusal(-1, "the trusted head is not signed by the key")),
            None => None,
        };
        Ok(AuditCheck {
            source,
            topic: topic.to_string(),
            partition,
            public_key,
            trusted,
            current: None,
            last: None,
        })
    }

    /// Proves every whole batch of a fetch's record bytes (the trailing part of a batch
    /// cut short is left for the next fetch, as the consumer does).
    pub async fn check(&mut self, records: &Bytes) -> Result<(), AuditRefusal> {
        for (base, last, batch) in frames(records) {
            if self.last.is_some_and(|(_, done)| last <= done) {
                continue; // proven by an earlier fetch
            }
            self.check_batch(base, last, batch).await?;
        }
        Ok(())
    }

    async fn check_batch(
        &mut self,
        base: i64,
        last: i64,
        batch: &[u8],
    ) -> Result<(), AuditRefusal> {
        let head = self.head_covering(base, last).await?;
        let offset = u64::try_from(base).map_err(|_| refusal(base, "a negative offset"))?;
        let (topic, p) = (self.topic.as_str(), self.partition);
        let proof = self
            .source
            .inclusion(topic, p, offset, head.tree_size)
            .await
            .map_err(|e| refusal(base, &format!("no inclusion proof: {e}")))?;
        if proof.base_offset != offset || proof.tree_size != head.tree_size {
            return Err(refusal(base, "the proof is about another batch or tree"));
        }
        let leaf = leaf_hash(batch);
        verify_inclusion(
            &leaf,
            proof.leaf_index,
            head.tree_size,
            &proof.path,
            &head.root,
        )
        .map_err(|e| {
            let n = head.tree_size;
            let why = if self.trusted.as_ref() == Some(&head) {
                // Every proof in a tree whose history changed fails, not only the
                // changed batch's: the paths carry the changed subtrees' hashes.
                format!("the broker cannot prove it in the trusted tree of {n} leaves: its history differs from the trusted head ({e})")
            } else {
                format!("the batch is not in the signed tree of {n} leaves: {e}")
            };
            refusal(base, &why)
        })?;
        if let Some((index, _)) = self.last {
            if proof.leaf_index != index + 1 {
                let why = format!(
                    "leaf {} follows leaf {index}: batches are missing",
                    proof.leaf_index
                );
                return Err(refusal(base, &why));
            }
        }
        self.last = Some((proof.leaf_index, last));
        Ok(())
    }

    /// The head to prove a batch ending at `last` against: the trusted one when it
    /// covers it, else the latest signed head, fetched (and checked) when needed.
    async fn head_covering(&mut self, base: i64, last: i64) -> Result<TreeHead, AuditRefusal> {
        let covers = |h: &TreeHead| h.last_offset.is_some_and(|o| o as i64 >= last);
        if let Some(t) = self.trusted.as_ref().filter(|t| covers(t)) {
            return Ok(t.clone());
        }
        if let Some(c) = self.current.as_ref().filter(|c| covers(c)) {
            return Ok(c.clone());
        }
        let (topic, p) = (self.topic.as_str(), self.partition);
        let signed = self
            .source
            .head(topic, p)
            .await
            .map_err(|e| refusal(base, &format!("no signed head: {e}")))?;
        let head = signed.head;
        if head.topic != self.topic || head.partition != self.partition {
            return Err(refusal(base, "the head is another partition's"));
        }
        if !merkle::verify_signature(&self.public_key, &head, &signed.signature) {
            return Err(refusal(base, "the head is not signed by the key"));
        }
        if let Some(t) = &self.trusted {
            let proof = self
                .source
                .consistency(topic, p, t.tree_size, head.tree_size)
                .await
                .map_err(|e| refusal(base, &format!("no consistency proof: {e}")))?;
            verify_consistency(t.tree_size, head.tree_size, &proof, &t.root, &head.root).map_err(
                |e| {
                    refusal(
                        base,
                        &format!("the broker's tree does not extend the trusted head: {e}"),
                    )
                },
            )?;
        }
        if !covers(&head) {
            return Err(refusal(base, "the batch is past the broker's signed head"));
        }
        self.current = Some(head.clone());
        Ok(head)
    }
}

fn refusal(offset: i64, reason: &str) -> AuditRefusal {
    AuditRefusal {
        offset,
        reason: reason.to_string(),
    }
}

/// The whole batches of record bytes: (base offset, last offset, the batch's bytes).
pub(crate) fn frames(records: &Bytes) -> impl Iterator<Item = (i64, i64, &[u8])> {
    let mut rest: &[u8] = records;
    std::iter::from_fn(move || {
        let base = i64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
        let length = i32::from_be_bytes(rest.get(8..12)?.try_into().ok()?);
        let end = 12usize.checked_add(usize::try_from(length).ok()?)?;
        let batch = rest.get(..end)?;
        let delta = i32::from_be_bytes(batch.get(23..27)?.try_into().ok()?);
        rest = &rest[end..];
        Some((base, base + i64::from(delta), batch))
    })
}

#[cfg(test)]
mod tests;
