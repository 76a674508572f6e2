//! `strata audit head | heads | key | prove | consistency | verify | witness | export`: an audit
//! topic's Merkle tree through a broker's admin HTTP (`GET /audit/…`), with every proof
//! checked here, by the RFC 9162 verifier of `log_store::merkle`, before it is printed. A proof that
//! does not check exits with status 1 (damaged), as `strata log verify` does; other
//! failures exit with 2.

use anyhow::Context;
use log_store::merkle::{self, Hash, TreeHead};
use serde_json::Value;

use super::admin_http::{AdminClient, AdminEndpointArgs};
use super::partition::parse_partition;
use super::Outcome;

#[derive(clap::Args, Debug)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(clap::Subcommand, Debug)]
enum AuditCommand {
    /// The head of a partition's tree over its committed batches: size, root, last
    /// offset, and the broker's signature when it has a signing key.
    Head(Target),
    /// The public key (Ed25519, hex) the brokers sign tree heads with.
    Key {
        #[command(flatten)]
        admin: AdminEndpointArgs,
    },
    /// Proves the batch holding --offset is in the tree (of --tree-size leaves, default
    /// the head's) and checks the proof against that tree's root.
    Prove {
        #[command(flatten)]
        target: Target,
        /// An offset of the batch to prove.
        #[arg(long)]
        offset: u64,
        /// The tree size to prove against [default: the committed head's].
        #[arg(long)]
        tree_size: Option<u64>,
    },
    /// Recomputes a partition directory's tree from its segment files and checks it
    /// against every head logged in it, a saved head (--head) or a broker's tree
    /// (--against), naming the first batch that differs.
    Verify(super::audit_verify::VerifyArgs),
    /// Writes a partition's batches from its seal on, with the signed head and proofs
    /// they check against, to a directory that `verify` checks with no broker; with
    /// --seal, then seals them, so that DeleteRecords, retention and compaction may
    /// remove them.
    Export(super::audit_export::ExportArgs),
    /// Lists the signed heads logged in a partition's log and checks each: its signature,
    /// and that the committed tree extends it (a consistency proof).
    Heads(super::audit_heads::HeadsArgs),
    /// Remembers each partition's last head in --state and checks that the new head
    /// extends it (a consistency proof against the remembered root): fails on a
    /// rollback (a smaller tree) or a fork (a rewritten history).
    Witness(WitnessArgs),
    /// Proves the tree of --from leaves is a prefix of the tree of --to leaves (nothing
    /// before --from changed) and checks the proof.
    Consistency {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        from: u64,
        #[arg(long)]
        to: u64,
    },
}

#[derive(clap::Args, Debug)]
struct WitnessArgs {
    /// The partitions to watch, as TOPIC/PARTITION.
    #[arg(required = true)]
    partitions: Vec<String>,
    /// The file of heads last seen (JSON; created when absent, updated for every
    /// partition whose new head checks).
    #[arg(long, value_name = "FILE")]
    state: std::path::PathBuf,
    #[command(flatten)]
    admin: AdminEndpointArgs,
}

#[derive(clap::Args, Debug)]
struct Target {
    /// The partition, as TOPIC/PARTITION (e.g. `audit-trail/0`).
    partition: String,
    #[command(flatten)]
    admin: AdminEndpointArgs,
    /// Print the broker's JSON answer (after checking it) instead of text.
    #[arg(long)]
    json: bool,
}

impl AuditArgs {
    pub fn run(self) -> anyhow::Result<Outcome> {
        match self.command {
            AuditCommand::Head(t) => head(&t),
            AuditCommand::Key { admin } => {
                let client = AdminClient::new(&admin)?;
                let answer = client.get(client.addr(), "/audit/key")?;
                let key = answer.get("public_key").and_then(Value::as_str);
                println!("{}", key.context("the answer has no public_key")?);
                Ok(Outcome::Clean)
            }
            AuditCommand::Prove {
                target,
                offset,
                tree_size,
            } => {
                let size = tree_size.map_or(String::new(), |s| format!("&tree_size={s}"));
                let answer = get(&target, &format!("inclusion?offset={offset}{size}"))?;
                prove(&target, &answer)
            }
            AuditCommand::Verify(v) => super::audit_verify::verify(&v),
            AuditCommand::Export(e) => super::audit_export::export(&e),
            AuditCommand::Heads(h) => super::audit_heads::heads(&h),
            AuditCommand::Witness(w) => {
                super::audit_witness::witness(&w.partitions, &w.state, &w.admin)
            }
            AuditCommand::Consistency { target, from, to } => {
                let answer = get(&target, &format!("consistency?from={from}&to={to}"))?;
                consistency(&target, &answer)
            }
        }
    }
}

/// `GET /audit/TOPIC/P/{what}` on the broker of `t`.
fn get(t: &Target, what: &str) -> anyhow::Result<Value> {
    let (topic, index) = parse_partition(&t.partition)?;
    let client = AdminClient::new(&t.admin)?;
    client.get(client.addr(), &format!("/audit/{topic}/{index}/{what}"))
}

pub(super) fn num(v: &Value, key: &str) -> anyhow::Result<u64> {
    v.get(key)
        .and_then(Value::as_u64)
        .with_context(|| format!("the answer has no number {key:?}"))
}

pub(super) fn hash(v: &Value) -> anyhow::Result<Hash> {
    let text = v.as_str().context("a hash that is not a string")?;
    merkle::from_hex(text).with_context(|| format!("{text:?} is not a SHA-256 hash in hex"))
}

pub(super) fn field_hash(v: &Value, key: &str) -> anyhow::Result<Hash> {
    hash(
        v.get(key)
            .with_context(|| format!("the answer has no {key:?}"))?,
    )
}

pub(super) fn hashes(v: &Value, key: &str) -> anyhow::Result<Vec<Hash>> {
    v.get(key)
        .and_then(Value::as_array)
        .with_context(|| format!("the answer has no list {key:?}"))?
        .iter()
        .map(hash)
        .collect()
}

/// The head a JSON answer (or a saved head) states.
pub(super) fn tree_head(v: &Value) -> anyhow::Result<TreeHead> {
    let topic = v
        .get("topic")
        .and_then(Value::as_str)
        .context("the head has no \"topic\"")?;
    Ok(TreeHead {
        topic: topic.to_string(),
        partition: i32::try_from(num(v, "partition")?).context("a partition number")?,
        tree_size: num(v, "tree_size")?,
        root: field_hash(v, "root_hash")?,
        last_offset: v.get("last_offset").and_then(Value::as_u64),
        timestamp_ms: v
            .get("timestamp_ms")
            .and_then(Value::as_i64)
            .context("the head has no timestamp_ms")?,
    })
}

/// Whether `signature` is the Ed25519 signature of `head` by `public_key` (hex).
pub(super) fn signed_by(public_key: &str, head: &TreeHead, signature: &[u8]) -> bool {
    merkle::bytes_from_hex(public_key)
        .is_some_and(|k| merkle::verify_signature(&k, head, signature))
}

fn head(t: &Target) -> anyhow::Result<Outcome> {
    let answer = get(t, "head")?;
    if t.json {
        println!("{answer}");
        return Ok(Outcome::Clean);
    }
    let last = answer.get("last_offset").and_then(Value::as_u64);
    let text = |key: &str| answer.get(key).and_then(Value::as_str);
    println!(
        "{}: tree size {}, root {}, last offset {}, signature {}",
        t.partition,
        num(&answer, "tree_size")?,
        text("root_hash").unwrap_or("-"),
        last.map_or("-".to_string(), |o| o.to_string()),
        text("signature").unwrap_or("none (the broker has no audit.signing.key.file)"),
    );
    Ok(Outcome::Clean)
}

fn prove(t: &Target, answer: &Value) -> anyhow::Result<Outcome> {
    let (index, size) = (num(answer, "leaf_index")?, num(answer, "tree_size")?);
    let leaf = field_hash(answer, "leaf_hash")?;
    let root = field_hash(answer, "root_hash")?;
    let checked = merkle::verify_inclusion(&leaf, index, size, &hashes(answer, "path")?, &root);
    report(t, answer, checked, || {
        format!(
            "offsets {}..={} are leaf {index} of the tree of {size} leaves with root {}",
            num(answer, "base_offset").unwrap_or(0),
            num(answer, "last_offset").unwrap_or(0),
            answer["root_hash"].as_str().unwrap_or("")
        )
    })
}

fn consistency(t: &Target, answer: &Value) -> anyhow::Result<Outcome> {
    let (from, to) = (num(answer, "from")?, num(answer, "to")?);
    let (r1, r2) = (
        field_hash(answer, "from_root")?,
        field_hash(answer, "to_root")?,
    );
    let checked = merkle::verify_consistency(from, to, &hashes(answer, "proof")?, &r1, &r2);
    report(t, answer, checked, || {
        format!("the tree of {from} leaves is a prefix of the tree of {to} leaves")
    })
}

/// Prints a checked proof (`claim`), or says why it failed (exit status 1).
fn report(
    t: &Target,
    answer: &Value,
    checked: Result<(), merkle::ProofError>,
    claim: impl FnOnce() -> String,
) -> anyhow::Result<Outcome> {
    match checked {
        Ok(()) if t.json => println!("{answer}"),
        Ok(()) => println!("{}: verified: {}", t.partition, claim()),
        Err(e) => {
            eprintln!("{}: the proof does not verify: {e}", t.partition);
            return Ok(Outcome::Damaged);
        }
    }
    Ok(Outcome::Clean)
}
