//! `strata audit verify DIR`: recomputes an audit partition's Merkle tree from the
//! segment files of DIR (read only: a stopped broker's partition directory, a copy, or a
//! replica's), and checks it against what the caller trusts:
//!
//! - `--head FILE`: a head as `strata audit head --json` prints it (its signature checked
//!   with `--public-key`): the first `tree_size` batches must hash to its root;
//! - `--against TOPIC/P` (with the admin port flags): a broker's committed tree. When the
//!   roots differ, the first bad batch is found by bisection on prefix roots (the broker
//!   proves the root of any prefix), in O(log n) requests, and named by its offset.
//!
//! A batch with a bad CRC-32C is named too (a change that did not fix the CRC). Exits 1
//! when anything does not match.
//!
//! A directory whose front was sealed (`audit.seal`) is recomputed from the seal's
//! frontier on, and an export (`export.json`, `strata audit export`) from the frontier
//! it starts at, checked against the signed head it carries (`audit_export.rs`).

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use anyhow::Context;
use log_store::log::SealFile;
use log_store::merkle::{self, Hash, MemoryTree};
use log_store::{inspect, logged_heads};
use serde_json::Value;

use super::admin_http::{AdminClient, AdminEndpointArgs};
use super::audit::{field_hash, num, signed_by, tree_head};
use super::partition::parse_partition;
use super::Outcome;

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// The partition directory (`<topic>-<partition>`) to recompute the tree of.
    dir: PathBuf,
    /// A head to check the tree against (JSON of `strata audit head --json`).
    #[arg(long, value_name = "FILE")]
    head: Option<PathBuf>,
    /// The public key (hex) to check the signatures of --head and of every head logged
    /// in DIR with.
    #[arg(long, value_name = "HEX")]
    public_key: Option<String>,
    /// Compare with this partition's committed tree on a broker, naming the first batch
    /// that differs.
    #[arg(long, value_name = "TOPIC/P")]
    against: Option<String>,
    #[command(flatten)]
    admin: AdminEndpointArgs,
}

/// The batches of a directory as leaves: their hashes and offsets.
pub(super) struct Leaves {
    pub(super) tree: MemoryTree,
    /// Leaves before this one were sealed: the tree holds their frontier only.
    pub(super) first_leaf: u64,
    /// The offset the leaves read start at.
    pub(super) first_offset: u64,
    /// (base offset, last offset) per leaf read.
    pub(super) offsets: Vec<(u64, u64)>,
    pub(super) problems: Vec<String>,
}

impl Leaves {
    /// Leaves from a frontier: `tree` holds the first `first_leaf` leaves' frontier, and
    /// the batches read start at `first_offset`.
    pub(super) fn after(tree: MemoryTree, first_offset: u64) -> Leaves {
        Leaves {
            first_leaf: tree.size(),
            tree,
            first_offset,
            offsets: Vec::new(),
            problems: Vec::new(),
        }
    }

    /// The offset of leaf `index`'s batch (0 when not read).
    fn offset_of(&self, index: u64) -> u64 {
        let i = index.saturating_sub(self.first_leaf) as usize;
        self.offsets.get(i).map_or(self.first_offset, |o| o.0)
    }
}

/// The leaves of a partition directory: from offset 0, or with `audit.seal` from the
/// seal's frontier (whose root the heads logged after it vouch for). While the sealed
/// batches are still there they are compared with the seal, and a difference is told,
/// not counted: they may have been compacted, and the export proves them.
fn partition_leaves(dir: &Path) -> anyhow::Result<Leaves> {
    let from_zero = || read_leaves(dir, Leaves::after(MemoryTree::default(), 0));
    let Some(file) = SealFile::read(dir)? else {
        return from_zero();
    };
    let first_base = inspect::segment_logs(dir)?.first().map(|&(base, _)| base);
    let tree = file.tree().context("the seal file's frontier")?;
    let mut sealed = Leaves::after(tree, file.seal.next_offset);
    if first_base == Some(0) {
        let all = from_zero()?;
        let end = all.offsets.last().map_or(0, |&(_, l)| l + 1);
        if file.seal.next_offset > end {
            println!("audit.seal is past the log's end (its entry was not durable): ignored, as the broker does");
            return Ok(all);
        }
        if let Some(why) = seal_mismatch(&all, &file) {
            println!("{why}: compacted or changed since the seal; the export proves them");
        }
        // The batches from the seal on, as already hashed: their leaves go on from it.
        for (i, &(base, last)) in all.offsets.iter().enumerate() {
            if base >= file.seal.next_offset {
                let leaf = all.tree.leaf(i as u64).context("a leaf per batch read")?;
                sealed.tree.push(leaf);
                sealed.offsets.push((base, last));
            }
        }
        sealed.problems = all.problems;
    }
    println!(
        "leaves 0..{} are sealed: the tree goes on from audit.seal, which the heads logged after it vouch for",
        file.seal.tree_size
    );
    if first_base == Some(0) {
        return Ok(sealed);
    }
    read_leaves(dir, sealed)
}

/// How the batches before the seal's offset differ from `audit.seal`, if they do.
fn seal_mismatch(leaves: &Leaves, file: &SealFile) -> Option<String> {
    let seal = &file.seal;
    let i = usize::try_from(seal.tree_size).ok()?.checked_sub(1);
    let ends = i
        .and_then(|i| leaves.offsets.get(i))
        .map(|&(_, last)| last + 1);
    let root = merkle::root(&leaves.tree, seal.tree_size).ok();
    (root != Some(seal.root) || ends != Some(seal.next_offset)).then(|| {
        format!(
            "the batches before offset {} are not the {} leaves audit.seal says (root {})",
            seal.next_offset,
            seal.tree_size,
            merkle::to_hex(&seal.root)
        )
    })
}

/// Reads the batches of the segment files in `dir` from `leaves.first_offset` on, as
/// the next leaves of `leaves`.
pub(super) fn read_leaves(dir: &Path, mut leaves: Leaves) -> anyhow::Result<Leaves> {
    let logs = inspect::segment_logs(dir).with_context(|| format!("listing {}", dir.display()))?;
    if logs.is_empty() {
        anyhow::bail!(
            "no segment files in {}; is it a partition directory?",
            dir.display()
        );
    }
    for (_, path) in logs {
        inspect::scan_log_file(
            &path,
            |b| {
                let (base, last) = (b.header.base_offset, b.header.last_offset());
                let next = leaves
                    .offsets
                    .last()
                    .map_or(leaves.first_offset, |&(_, l)| l + 1);
                if leaves.offsets.is_empty() && base >= 0 && (base as u64) < next {
                    return ControlFlow::Continue(()); // sealed, not yet removed
                }
                if leaves.offsets.is_empty() && base >= 0 && (base as u64) > next {
                    leaves.problems.push(format!(
                        "the batches start at offset {base}, after offset {next} where the tree goes on: no tree can be rebuilt here"
                    ));
                    return ControlFlow::Break(());
                }
                if base < 0 || (base as u64) < next {
                    // Bytes past the log's end (a truncation that left the file alone).
                    return ControlFlow::Break(());
                }
                if !b.crc_ok {
                    leaves
                        .problems
                        .push(format!("offset {base}: the batch's CRC-32C does not match"));
                }
                leaves.tree.push(merkle::leaf_hash(b.frame));
                leaves.offsets.push((base as u64, last as u64));
                ControlFlow::Continue(())
            },
            |_| {},
        )
        .with_context(|| format!("reading {}", path.display()))?;
    }
    Ok(leaves)
}

pub(super) fn verify(args: &VerifyArgs) -> anyhow::Result<Outcome> {
    let export = super::audit_export::Export::read(&args.dir)?;
    let mut leaves = match &export {
        Some(e) => read_leaves(&args.dir, e.start()?)?,
        None => partition_leaves(&args.dir)?,
    };
    let size = leaves.tree.size();
    let root = merkle::root(&leaves.tree, size).context("the tree of the whole log")?;
    println!(
        "{}: {size} leaves ({} sealed before offset {}), offsets {}, root {}",
        args.dir.display(),
        leaves.first_leaf,
        leaves.first_offset,
        leaves.offsets.last().map_or("none".to_string(), |&(_, l)| {
            format!("{}..={l}", leaves.first_offset)
        }),
        merkle::to_hex(&root)
    );
    let why = match &export {
        Some(e) => {
            e.notes(&leaves, args.public_key.as_deref());
            e.check(&leaves, args.public_key.as_deref())?
        }
        None => check_logged_heads(&leaves, &args.dir, args.public_key.as_deref())?,
    };
    leaves.problems.extend(why);
    if let Some(path) = &args.head {
        let why = check_head(&leaves, path, args.public_key.as_deref())?;
        leaves.problems.extend(why);
    }
    if let Some(partition) = &args.against {
        let why = check_against(&leaves, partition, &args.admin)?;
        leaves.problems.extend(why);
    }
    if leaves.problems.is_empty() {
        println!("verified");
        return Ok(Outcome::Clean);
    }
    for p in &leaves.problems {
        eprintln!("{}: {p}", args.dir.display());
    }
    Ok(Outcome::Damaged)
}

/// What does not match among the heads logged in `dir`: each must be the root of the
/// recomputed tree of its size and, when `public_key` is given, signed with it. The
/// first head that fails bounds the first bad batch: it lies after the largest tree a
/// head before it proved.
fn check_logged_heads(
    leaves: &Leaves,
    dir: &Path,
    public_key: Option<&str>,
) -> anyhow::Result<Vec<String>> {
    let found = logged_heads::read_logged_heads(dir)
        .with_context(|| format!("reading the heads logged in {}", dir.display()))?;
    let mut problems = Vec::new();
    let mut proven = leaves.first_leaf;
    let mut sealed = 0;
    for (raft_index, head) in &found {
        let at = format!("the head logged at raft index {raft_index}");
        let logged = match head {
            Ok(l) => l,
            Err(why) => {
                problems.push(format!("{at}: {why}"));
                continue;
            }
        };
        let h = &logged.head;
        if h.tree_size < leaves.first_leaf {
            sealed += 1; // its leaves are sealed: their export proves them
            continue;
        }
        if let Some(key) = public_key {
            let signature = logged.signature.unwrap_or([0; 64]);
            if !signed_by(key, h, &signature) {
                problems.push(format!(
                    "{at} (tree size {}) is not signed by that key",
                    h.tree_size
                ));
            }
        }
        match merkle::root(&leaves.tree, h.tree_size) {
            Ok(root) if root == h.root => proven = proven.max(h.tree_size),
            Ok(_) => problems.push(format!(
                "{at}: the first {} batches do not hash to its root; the first bad batch is \
                 one of leaves {proven}..{} (from offset {})",
                h.tree_size,
                h.tree_size,
                leaves.offset_of(proven)
            )),
            Err(_) => problems.push(format!(
                "{at} covers {} batches, the log holds {}: its tail was cut",
                h.tree_size,
                leaves.tree.size()
            )),
        }
    }
    println!(
        "{} logged heads checked ({sealed} of sealed leaves only, not checked here)",
        found.len() - sealed
    );
    Ok(problems)
}

/// What does not match the head in `path` (signed, when `public_key` is given).
fn check_head(
    leaves: &Leaves,
    path: &Path,
    public_key: Option<&str>,
) -> anyhow::Result<Option<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let head: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let size = num(&head, "tree_size")?;
    let root = field_hash(&head, "root_hash")?;
    if let Some(key) = public_key {
        let signature = head.get("signature").and_then(Value::as_str);
        let signature = signature
            .and_then(merkle::bytes_from_hex)
            .unwrap_or_default();
        if !signed_by(key, &tree_head(&head)?, &signature) {
            return Ok(Some(format!(
                "the head in {} is not signed by that key",
                path.display()
            )));
        }
    }
    if leaves.tree.size() < size {
        return Ok(Some(format!(
            "the log holds {} batches, the head covers {size}: its tail was cut or the log rolled back",
            leaves.tree.size()
        )));
    }
    if size < leaves.first_leaf {
        return Ok(Some(format!(
            "the head covers {size} leaves, fewer than the {} sealed here: check it against the export",
            leaves.first_leaf
        )));
    }
    let local = merkle::root(&leaves.tree, size).context("a prefix of the tree")?;
    Ok((local != root).then(|| {
        format!(
            "the first {size} batches do not hash to the head's root: one was changed, removed, \
             added or reordered (compare with a broker, --against, to name it)"
        )
    }))
}

/// What does not match the broker's committed tree of `partition`; names the first
/// batch that differs.
fn check_against(
    leaves: &Leaves,
    partition: &str,
    admin: &AdminEndpointArgs,
) -> anyhow::Result<Option<String>> {
    let (topic, index) = parse_partition(partition)?;
    let client = AdminClient::new(admin)?;
    let base = format!("/audit/{topic}/{index}");
    let head = client.get(client.addr(), &format!("{base}/head"))?;
    let size = num(&head, "tree_size")?;
    let broker_root = |m: u64| -> anyhow::Result<Hash> {
        let answer = client.get(
            client.addr(),
            &format!("{base}/consistency?from={m}&to={size}"),
        )?;
        field_hash(&answer, "from_root")
    };
    let local_root = |m: u64| merkle::root(&leaves.tree, m).context("a prefix of the tree");
    let common = size.min(leaves.tree.size());
    if common < leaves.first_leaf {
        return Ok(Some(format!(
            "the broker's tree has {size} leaves, fewer than the {} sealed here",
            leaves.first_leaf
        )));
    }
    if local_root(common)? == broker_root(common)? {
        if leaves.tree.size() < size {
            let from = leaves
                .offsets
                .last()
                .map_or(leaves.first_offset, |&(_, l)| l + 1);
            return Ok(Some(format!(
                "the log ends at batch {} (offset {from}); the broker's tree has {size}: the tail was cut",
                leaves.tree.size()
            )));
        }
        return Ok(None);
    }
    // The longest prefix both trees share: prefix equality only fails from the first
    // bad leaf on.
    let (mut good, mut bad) = (leaves.first_leaf, common);
    while bad - good > 1 {
        let mid = good + (bad - good) / 2;
        if local_root(mid)? == broker_root(mid)? {
            good = mid;
        } else {
            bad = mid;
        }
    }
    // Leaf `good` is the first that differs (the prefix of `good + 1` leaves does; the
    // sealed prefix, when `good` is still there, is the broker's as the seal says).
    let first_bad = good;
    let offset = leaves.offset_of(first_bad);
    Ok(Some(format!(
        "batch {first_bad} (offset {offset}) differs from the broker's tree: it or the order \
         from there was changed, or a batch before it removed"
    )))
}
