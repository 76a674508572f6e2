//! `strata audit witness TOPIC/P… --state FILE`: a witness of audit partitions, as
//! Certificate Transparency's witnesses are. It remembers the last head it saw of each
//! partition and, at each run, asks the broker for the new head and for a consistency
//! proof from the remembered size, and checks that proof against the **remembered**
//! root: a broker (or an operator with root on it) cannot then take back or rewrite what
//! the witness saw without the next run failing. A smaller tree is a rollback; a proof
//! that does not lead from the remembered root to the new one is a fork. Either exits
//! with status 1 and leaves that partition's remembered head as it was.
//!
//! The state file is JSON, `{"heads": {"TOPIC/P": {"tree_size": N, "root_hash": HEX}}}`,
//! written to a temporary file and renamed over the old one.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use log_store::merkle::{self, to_hex as hex, Hash};
use serde_json::{json, Value};

use super::admin_http::{AdminClient, AdminEndpointArgs};
use super::audit::{field_hash, hash, hashes, num};
use super::partition::parse_partition;
use super::Outcome;

/// A head as the witness remembers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    size: u64,
    root: Hash,
}

fn load(path: &Path) -> anyhow::Result<BTreeMap<String, Seen>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let v: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not the witness's JSON", path.display()))?;
    let heads = v.get("heads").and_then(Value::as_object);
    let heads = heads.with_context(|| format!("{} has no \"heads\"", path.display()))?;
    heads
        .iter()
        .map(|(k, h)| {
            let seen = Seen {
                size: num(h, "tree_size")?,
                root: field_hash(h, "root_hash")?,
            };
            Ok((k.clone(), seen))
        })
        .collect::<anyhow::Result<_>>()
        .with_context(|| format!("reading the heads of {}", path.display()))
}

fn save(path: &Path, heads: &BTreeMap<String, Seen>) -> anyhow::Result<()> {
    let heads: serde_json::Map<String, Value> = heads
        .iter()
        .map(|(k, s)| {
            (
                k.clone(),
                json!({"tree_size": s.size, "root_hash": hex(&s.root)}),
            )
        })
        .collect();
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let text = serde_json::to_string_pretty(&json!({ "heads": heads }))?;
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", Path::new(&tmp).display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
}

/// Checks the new head of `partition` against `last`; the head to remember, or why not.
fn check(
    client: &AdminClient,
    partition: &str,
    last: Option<Seen>,
) -> anyhow::Result<Result<Seen, String>> {
    let (topic, index) = parse_partition(partition)?;
    let base = format!("/audit/{topic}/{index}");
    let head = client.get(client.addr(), &format!("{base}/head"))?;
    let now = Seen {
        size: num(&head, "tree_size")?,
        root: hash(head.get("root_hash").context("the head has no root_hash")?)?,
    };
    let Some(last) = last else { return Ok(Ok(now)) };
    if now.size < last.size {
        return Ok(Err(format!(
            "ROLLBACK: the tree has {} leaves, {} were seen before (root {})",
            now.size,
            last.size,
            hex(&last.root)
        )));
    }
    let path = format!("{base}/consistency?from={}&to={}", last.size, now.size);
    let answer = client.get(client.addr(), &path)?;
    let proof = hashes(&answer, "proof")?;
    match merkle::verify_consistency(last.size, now.size, &proof, &last.root, &now.root) {
        Ok(()) => Ok(Ok(now)),
        Err(e) => Ok(Err(format!(
            "FORK: the tree of {} leaves with root {} seen before is not a prefix of the \
             head of {} leaves with root {} ({e})",
            last.size,
            hex(&last.root),
            now.size,
            hex(&now.root)
        ))),
    }
}

pub(super) fn witness(
    partitions: &[String],
    state: &Path,
    admin: &AdminEndpointArgs,
) -> anyhow::Result<Outcome> {
    let client = AdminClient::new(admin)?;
    let mut heads = load(state)?;
    let mut outcome = Outcome::Clean;
    for p in partitions {
        let last = heads.get(p).copied();
        match check(&client, p, last).with_context(|| format!("checking {p}"))? {
            Ok(now) => {
                let from = last.map_or("first seen".to_string(), |l| format!("{} →", l.size));
                println!(
                    "{p}: {from} {} leaves, root {}: consistent",
                    now.size,
                    hex(&now.root)
                );
                heads.insert(p.clone(), now);
            }
            Err(why) => {
                eprintln!("{p}: {why}");
                outcome = Outcome::Damaged;
            }
        }
    }
    save(state, &heads)?;
    Ok(outcome)
}
