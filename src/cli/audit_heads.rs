//! `strata audit heads TOPIC/P`: the signed heads a partition's leaders logged in its log
//! (`GET /audit/TOPIC/P/heads`), each checked here: its signature with `--public-key`
//! (or, said so, the key the broker publishes), and a consistency proof from it to the
//! committed head, checked against the head's own root. So the broker's tree today
//! extends every head it ever logged: a rewritten history fails at the first head it
//! contradicts. `--log` first asks the leader to log a head now.

use std::time::Duration;

use anyhow::Context;
use log_store::merkle;
use serde_json::Value;

use super::admin_http::{AdminClient, AdminEndpointArgs};
use super::audit::{field_hash, hashes, num, signed_by, tree_head};
use super::partition::parse_partition;
use super::Outcome;

#[derive(clap::Args, Debug)]
pub struct HeadsArgs {
    /// The partition, as TOPIC/PARTITION.
    partition: String,
    /// The public key (hex) the heads must be signed with [default: the one the broker
    /// publishes, which proves less].
    #[arg(long, value_name = "HEX")]
    public_key: Option<String>,
    /// Ask the partition's leader (this --admin) to log a head now, first.
    #[arg(long)]
    log: bool,
    #[command(flatten)]
    admin: AdminEndpointArgs,
}

/// How long `--log` waits for the head's entry to commit.
const LOG_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) fn heads(args: &HeadsArgs) -> anyhow::Result<Outcome> {
    let (topic, index) = parse_partition(&args.partition)?;
    let client = AdminClient::new(&args.admin)?;
    let base = format!("/audit/{topic}/{index}");
    if args.log {
        let answer = client.post(
            client.addr(),
            &format!("{base}/log-head"),
            "{}",
            LOG_TIMEOUT,
        )?;
        println!("logged: {}", answer.trim());
    }
    let key = match &args.public_key {
        Some(k) => Some(k.clone()),
        None => published_key(&client),
    };
    let heads = logged_heads(&client, &base)?;
    let current = num(
        &client.get(client.addr(), &format!("{base}/head"))?,
        "tree_size",
    )?;
    let mut problems = Vec::new();
    for h in &heads {
        let head = tree_head(h)?;
        let at = format!(
            "head at raft index {} (tree size {})",
            num(h, "raft_index")?,
            head.tree_size
        );
        let signature = h.get("signature").and_then(Value::as_str);
        let signature = signature
            .and_then(merkle::bytes_from_hex)
            .unwrap_or_default();
        let signed = key.as_deref().map(|k| signed_by(k, &head, &signature));
        if signed == Some(false) {
            problems.push(format!("{at}: not signed by the key"));
        }
        let path = format!("{base}/consistency?from={}&to={current}", head.tree_size);
        let proof = client.get(client.addr(), &path)?;
        let to_root = field_hash(&proof, "to_root")?;
        let checked = merkle::verify_consistency(
            head.tree_size,
            current,
            &hashes(&proof, "proof")?,
            &head.root,
            &to_root,
        );
        match checked {
            Ok(()) if signed != Some(false) => {
                let how = if signed.is_some() {
                    "signed"
                } else {
                    "unsigned"
                };
                println!(
                    "{}: {at}: {how}, and extended by the tree of {current}",
                    args.partition
                )
            }
            Ok(()) => {}
            Err(e) => problems.push(format!(
                "{at}: the tree of {current} does not extend it: {e}"
            )),
        }
    }
    println!("{}: {} logged heads checked", args.partition, heads.len());
    if problems.is_empty() {
        return Ok(Outcome::Clean);
    }
    for p in &problems {
        eprintln!("{}: {p}", args.partition);
    }
    Ok(Outcome::Damaged)
}

/// Every committed head logged, page by page (by Raft index).
fn logged_heads(client: &AdminClient, base: &str) -> anyhow::Result<Vec<Value>> {
    let mut heads = Vec::new();
    let mut after = 0;
    loop {
        let path = format!("{base}/heads?after_index={after}&limit={PAGE}");
        let page = client.get(client.addr(), &path)?;
        let list = page
            .get("heads")
            .and_then(Value::as_array)
            .context("the answer has no list \"heads\"")?;
        for h in list {
            after = num(h, "raft_index")?;
            heads.push(h.clone());
        }
        if list.len() < PAGE {
            return Ok(heads);
        }
    }
}

/// Heads asked for per request.
const PAGE: usize = 500;

/// The key the broker publishes (`None`: it signs nothing; signatures go unchecked).
fn published_key(client: &AdminClient) -> Option<String> {
    let Ok(answer) = client.get(client.addr(), "/audit/key") else {
        eprintln!("the broker publishes no signing key: signatures are not checked");
        return None;
    };
    eprintln!(
        "checking signatures with the key the broker publishes (give --public-key to check \
         against one you hold)"
    );
    answer
        .get("public_key")
        .and_then(Value::as_str)
        .map(str::to_string)
}
