//! The proofs `strata consume --audit-key` checks batches with: a broker's admin port
//! (`GET /audit/…`), as a `client::audit::ProofSource`. The admin client blocks, so each
//! request runs on a blocking thread. Nothing it answers is trusted: the client's check
//! verifies heads with the key and proofs against signed roots.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use client::audit::{Inclusion, ProofSource, SignedHead};
use log_store::merkle::{self, Hash};
use serde_json::Value;

use super::admin_http::AdminClient;
use super::audit::{hashes, num, tree_head};

/// A broker's admin port as a source of audit proofs.
#[derive(Clone)]
pub(super) struct AdminProofs {
    client: Arc<AdminClient>,
}

impl AdminProofs {
    pub(super) fn new(client: AdminClient) -> AdminProofs {
        AdminProofs {
            client: Arc::new(client),
        }
    }

    /// `GET /audit/TOPIC/P/{what}` on a blocking thread.
    async fn get(&self, topic: &str, partition: i32, what: String) -> Result<Value, String> {
        let client = self.client.clone();
        let path = format!("/audit/{topic}/{partition}/{what}");
        tokio::task::spawn_blocking(move || client.get(client.addr(), &path))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("{e:#}"))
    }
}

impl ProofSource for AdminProofs {
    async fn head(&self, topic: &str, partition: i32) -> Result<SignedHead, String> {
        let answer = self.get(topic, partition, "head".into()).await?;
        signed_head(&answer).map_err(|e| format!("{e:#}"))
    }

    async fn inclusion(
        &self,
        topic: &str,
        partition: i32,
        offset: u64,
        tree_size: u64,
    ) -> Result<Inclusion, String> {
        let what = format!("inclusion?offset={offset}&tree_size={tree_size}");
        let answer = self.get(topic, partition, what).await?;
        let parsed = || -> anyhow::Result<Inclusion> {
            Ok(Inclusion {
                leaf_index: num(&answer, "leaf_index")?,
                tree_size: num(&answer, "tree_size")?,
                base_offset: num(&answer, "base_offset")?,
                path: hashes(&answer, "path")?,
            })
        };
        parsed().map_err(|e| format!("{e:#}"))
    }

    async fn consistency(
        &self,
        topic: &str,
        partition: i32,
        from: u64,
        to: u64,
    ) -> Result<Vec<Hash>, String> {
        let answer = self
            .get(topic, partition, format!("consistency?from={from}&to={to}"))
            .await?;
        hashes(&answer, "proof").map_err(|e| format!("{e:#}"))
    }
}

/// A signed head from its JSON (an admin answer, or `strata audit head --json`).
pub(super) fn signed_head(v: &Value) -> anyhow::Result<SignedHead> {
    let signature = v
        .get("signature")
        .and_then(Value::as_str)
        .context("the head is not signed (the broker has no audit.signing.key.file)")?;
    Ok(SignedHead {
        head: tree_head(v)?,
        signature: merkle::bytes_from_hex(signature).context("a signature in hex")?,
    })
}

/// A head kept in a file (`strata audit head --json`).
pub(super) fn read_head(path: &Path) -> anyhow::Result<SignedHead> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let v: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    signed_head(&v).with_context(|| format!("the head in {}", path.display()))
}
