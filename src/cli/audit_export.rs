//! `strata audit export TOPIC/P --to DIR [--before OFFSET] [--seal]`: archives an audit
//! partition's batches so that they can be checked later with no broker, and (with
//! `--seal`) seals them on the broker, after which DeleteRecords, retention and
//! compaction may remove or rewrite them.
//!
//! The export starts where the partition's seal is (offset 0 before any) and takes the
//! committed batches up to the broker's signed head (or those wholly before `--before`),
//! read through the Kafka protocol exactly as stored. DIR then holds:
//!
//! - `<first offset, 20 digits>.log`: the batches, Kafka's on-disk format;
//! - `export.json`: `format` ("strata-audit-export-v1"), `topic`, `partition`,
//!   `first_leaf` and `first_offset` (where the export starts), `frontier` (the hashes of
//!   the complete subtrees that make up the leaves before it, largest first), `tree_size`
//!   and `next_offset` (where it ends), `root_hash` (the root of the tree of its
//!   `tree_size` leaves), `head` (the broker's signed head, as `strata audit head --json`
//!   prints it) and `consistency` (the proof that the tree of `tree_size` leaves is a
//!   prefix of the head's).
//!
//! `strata audit verify DIR` checks an export: the batches' CRCs, that the frontier and
//! the batches make `root_hash`, that the consistency proof leads from that root to the
//! head's, and with `--public-key` the head's signature. So an export proves its
//! batches against a signed head, and exports made one after another (each starting at
//! the previous seal) chain: each one's frontier is the previous one's tree.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use client::{FetchConfig, PartitionConsumer, StartOffset};
use indicatif::{ProgressBar, ProgressStyle};
use log_store::merkle::{self, to_hex as hex, Hash, MemoryTree};
use log_store::Batches;
use serde_json::{json, Value};

use super::admin_http::{AdminClient, AdminEndpointArgs};
use super::audit::{field_hash, hashes, num, signed_by, tree_head};
use super::audit_verify::{read_leaves, Leaves};
use super::partition::parse_partition;
use super::topic::{block_on, BrokersArg};
use super::Outcome;

const FORMAT: &str = "strata-audit-export-v1";
/// The manifest's name in an export directory.
pub(super) const MANIFEST: &str = "export.json";
/// How long a seal may take to commit.
const SEAL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// The partition to export, as TOPIC/PARTITION.
    partition: String,
    /// The directory to write (created; it must not hold files already).
    #[arg(long, value_name = "DIR")]
    to: PathBuf,
    /// Export only the batches wholly before this offset [default: every batch the
    /// broker's signed head covers].
    #[arg(long, value_name = "OFFSET")]
    before: Option<u64>,
    /// Once the export is written and checked, seal its batches on the broker: from
    /// then on DeleteRecords, retention and compaction may remove them.
    #[arg(long)]
    seal: bool,
    /// The public key (hex) to check the head's signature with before writing.
    #[arg(long, value_name = "HEX")]
    public_key: Option<String>,
    #[command(flatten)]
    brokers: BrokersArg,
    #[command(flatten)]
    admin: AdminEndpointArgs,
}

/// An export's manifest (see the module documentation).
pub(super) struct Export {
    topic: String,
    partition: i32,
    first_leaf: u64,
    first_offset: u64,
    frontier: Vec<Hash>,
    tree_size: u64,
    next_offset: u64,
    root: Hash,
    head: Value,
    consistency: Vec<Hash>,
}

impl Export {
    /// The manifest of the export in `dir` (`None`: `dir` is not an export).
    pub(super) fn read(dir: &Path) -> anyhow::Result<Option<Export>> {
        let path = dir.join(MANIFEST);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let parse = || -> anyhow::Result<Export> {
            let v: Value = serde_json::from_str(&text)?;
            if v.get("format").and_then(Value::as_str) != Some(FORMAT) {
                bail!("not a {FORMAT} manifest");
            }
            Ok(Export {
                topic: v["topic"].as_str().context("no topic")?.to_string(),
                partition: i32::try_from(num(&v, "partition")?)?,
                first_leaf: num(&v, "first_leaf")?,
                first_offset: num(&v, "first_offset")?,
                frontier: hashes(&v, "frontier")?,
                tree_size: num(&v, "tree_size")?,
                next_offset: num(&v, "next_offset")?,
                root: field_hash(&v, "root_hash")?,
                head: v.get("head").cloned().context("no head")?,
                consistency: hashes(&v, "consistency")?,
            })
        };
        parse()
            .map(Some)
            .with_context(|| format!("{} is not an export manifest", path.display()))
    }

    fn to_json(&self) -> Value {
        let all = |hs: &[Hash]| hs.iter().map(|h| hex(h)).collect::<Vec<_>>();
        json!({
            "format": FORMAT, "topic": self.topic, "partition": self.partition,
            "first_leaf": self.first_leaf, "first_offset": self.first_offset,
            "frontier": all(&self.frontier),
            "tree_size": self.tree_size, "next_offset": self.next_offset,
            "root_hash": hex(&self.root), "head": self.head,
            "consistency": all(&self.consistency),
        })
    }

    /// Where the export's leaves start: the frontier of the leaves before it.
    pub(super) fn start(&self) -> anyhow::Result<Leaves> {
        let tree = MemoryTree::from_frontier(self.first_leaf, &self.frontier)
            .context("the manifest's frontier does not match its first_leaf")?;
        Ok(Leaves::after(tree, self.first_offset))
    }

    /// Says what the caller must check by hand: the signature without a key, and for
    /// an export after a seal, that it goes on from the previous export.
    pub(super) fn notes(&self, leaves: &Leaves, public_key: Option<&str>) {
        if public_key.is_none() {
            println!("the head's signature is not checked: give --public-key");
        }
        if let Ok(root) = merkle::root(&leaves.tree, self.first_leaf) {
            if self.first_leaf > 0 {
                println!(
                    "the export goes on from the tree of {} leaves with root {}: the previous export's tree_size and root_hash",
                    self.first_leaf,
                    hex(&root)
                );
            }
        }
    }

    /// What does not match in an export whose batches were read as `leaves`.
    pub(super) fn check(
        &self,
        leaves: &Leaves,
        public_key: Option<&str>,
    ) -> anyhow::Result<Vec<String>> {
        let mut problems = Vec::new();
        let size = leaves.tree.size();
        let next = leaves
            .offsets
            .last()
            .map_or(self.first_offset, |&(_, l)| l + 1);
        if (size, next) != (self.tree_size, self.next_offset) {
            problems.push(format!(
                "the export holds leaves up to {size} (offset {next}); its manifest says {} (offset {}): batches were removed or added",
                self.tree_size, self.next_offset
            ));
        }
        let root = merkle::root(&leaves.tree, size).context("the export's tree")?;
        if root != self.root {
            problems.push(
                "the batches do not hash to the manifest's root: one was changed, removed, added or reordered".into(),
            );
        }
        let head = tree_head(&self.head).context("the manifest's head")?;
        if (head.topic.as_str(), head.partition) != (self.topic.as_str(), self.partition) {
            problems.push("the head is another partition's".into());
        }
        if let Err(e) =
            merkle::verify_consistency(size, head.tree_size, &self.consistency, &root, &head.root)
        {
            problems.push(format!(
                "the batches' tree is not a prefix of the signed head's ({e}): the export is not that history"
            ));
        }
        if let Some(key) = public_key {
            let signature = self.head.get("signature").and_then(Value::as_str);
            let signature = signature
                .and_then(merkle::bytes_from_hex)
                .unwrap_or_default();
            if !signed_by(key, &head, &signature) {
                problems.push("the head is not signed by that key".into());
            }
        }
        Ok(problems)
    }
}

pub(super) fn export(args: &ExportArgs) -> anyhow::Result<Outcome> {
    let (topic, index) = parse_partition(&args.partition)?;
    let client = AdminClient::new(&args.admin)?;
    let base = format!("/audit/{topic}/{index}");
    let head = client.get(client.addr(), &format!("{base}/head"))?;
    let seal = client.get(client.addr(), &format!("{base}/seal"))?;
    let start = sealed_start(&seal)?;
    let (first_leaf, first_offset) = (start.first_leaf, start.first_offset);
    let frontier = hashes(&seal, "frontier")?;
    let wanted = num(&head, "tree_size")?.saturating_sub(first_leaf);
    let log = empty_dir(&args.to)?.join(format!("{first_offset:020}.log"));
    let mut sink = Sink {
        file: std::io::BufWriter::new(
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?,
        ),
        leaves: start,
    };
    block_on(fetch(args, &topic, index, wanted, &mut sink))?;
    let leaves = sink.finish()?;
    let Some(&(_, last)) = leaves.offsets.last() else {
        std::fs::remove_file(&log)?;
        bail!("nothing to export: no committed batch from offset {first_offset} is covered");
    };
    let tree_size = leaves.tree.size();
    let root = merkle::root(&leaves.tree, tree_size).context("the exported tree")?;
    let proof = client.get(
        client.addr(),
        &format!(
            "{base}/consistency?from={tree_size}&to={}",
            num(&head, "tree_size")?
        ),
    )?;
    let manifest = Export {
        topic: topic.clone(),
        partition: index,
        first_leaf,
        first_offset,
        frontier,
        tree_size,
        next_offset: last + 1,
        root,
        head,
        consistency: hashes(&proof, "proof")?,
    };
    // Checked before the manifest is written, and again as read back from disk.
    manifest.notes(&leaves, args.public_key.as_deref());
    let problems = manifest.check(&leaves, args.public_key.as_deref())?;
    if !problems.is_empty() || written_wrong(&args.to, &manifest, args)? {
        report_damage(&args.to, &problems);
        return Ok(Outcome::Damaged);
    }
    println!(
        "{}: exported leaves {first_leaf}..{tree_size} (offsets {first_offset}..{}) to {}, root {}, checked",
        args.partition,
        last + 1,
        args.to.display(),
        hex(&root)
    );
    if args.seal {
        let path = format!("{base}/seal?tree_size={tree_size}&root_hash={}", hex(&root));
        client.post(client.addr(), &path, "{}", SEAL_TIMEOUT)?;
        println!(
            "{}: sealed the first {tree_size} leaves: the batches before offset {} may now be removed",
            args.partition,
            last + 1
        );
    }
    Ok(Outcome::Clean)
}

/// The leaves before the export, from the broker's seal: its frontier, checked to make
/// its root.
fn sealed_start(seal: &Value) -> anyhow::Result<Leaves> {
    let first_leaf = num(seal, "tree_size")?;
    let tree = MemoryTree::from_frontier(first_leaf, &hashes(seal, "frontier")?)
        .context("the broker's seal has a frontier of the wrong length")?;
    if merkle::root(&tree, first_leaf).ok() != Some(field_hash(seal, "root_hash")?) {
        bail!("the broker's seal frontier does not make its root");
    }
    Ok(Leaves::after(tree, num(seal, "next_offset")?))
}

/// `dir`, created when absent; refused when it holds anything.
fn empty_dir(dir: &Path) -> anyhow::Result<&Path> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    if std::fs::read_dir(dir)?.next().is_some() {
        bail!(
            "{} is not empty: an export goes to a directory of its own",
            dir.display()
        );
    }
    Ok(dir)
}

fn report_damage(dir: &Path, problems: &[String]) {
    for p in problems {
        eprintln!("{}: {p}", dir.display());
    }
}

/// Writes the manifest (its presence marks a whole export), synced with the directory,
/// then reads the export back and checks it; true (and the manifest removed) when that
/// check fails.
fn written_wrong(dir: &Path, manifest: &Export, args: &ExportArgs) -> anyhow::Result<bool> {
    let path = dir.join(MANIFEST);
    let mut f = std::fs::File::create(&path)?;
    writeln!(f, "{}", manifest.to_json())?;
    f.sync_all()?;
    std::fs::File::open(dir)?.sync_all()?;
    let leaves = read_leaves(dir, manifest.start()?)?;
    let mut problems = leaves.problems.clone();
    problems.extend(manifest.check(&leaves, args.public_key.as_deref())?);
    if problems.is_empty() {
        return Ok(false);
    }
    std::fs::remove_file(&path)?;
    report_damage(dir, &problems);
    Ok(true)
}

fn header(batch: &Bytes) -> anyhow::Result<log_store::BatchHeader> {
    let (h, _) = Batches::new(batch.clone())
        .next()
        .context("an empty batch")?
        .context("a batch that does not parse")?;
    Ok(h)
}

/// Where fetched batches go: the export's `.log` file, and the leaves of the tree.
struct Sink {
    file: std::io::BufWriter<std::fs::File>,
    leaves: Leaves,
}

impl Sink {
    /// Appends `batch`, which must follow the last one.
    fn push(&mut self, batch: &Bytes, base: u64, last: u64) -> anyhow::Result<()> {
        let next = self
            .leaves
            .offsets
            .last()
            .map_or(self.leaves.first_offset, |&(_, l)| l + 1);
        if base != next {
            bail!("the broker served offset {base} where {next} was next");
        }
        self.file.write_all(batch)?;
        self.leaves.tree.push(merkle::leaf_hash(batch));
        self.leaves.offsets.push((base, last));
        Ok(())
    }

    /// The leaves, once the file is synced.
    fn finish(self) -> anyhow::Result<Leaves> {
        let file = self.file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(self.leaves)
    }
}

/// Up to `wanted` committed batches from the sink's first offset on (those wholly
/// before `--before` only), as stored, into `sink`.
async fn fetch(
    args: &ExportArgs,
    topic: &str,
    index: i32,
    wanted: u64,
    sink: &mut Sink,
) -> anyhow::Result<()> {
    let cluster = args.brokers.connect().await?;
    let config = FetchConfig {
        max_wait: Duration::from_millis(100),
        ..FetchConfig::default()
    };
    let start = StartOffset::Offset(i64::try_from(sink.leaves.first_offset)?);
    let mut consumer = PartitionConsumer::new(cluster, topic, index, start, config).await?;
    let bar = ProgressBar::new(wanted).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} batches")
            .context("the progress bar's template")?,
    );
    let mut got = 0u64;
    'fetching: while got < wanted {
        let batches = consumer.poll_batches().await?;
        if batches.is_empty() && consumer.high_watermark() <= Some(consumer.position()) {
            bail!("the broker's head covers {wanted} more batches; it served {got}");
        }
        for b in batches {
            let h = header(&b)?;
            let (base, last) = (
                u64::try_from(h.base_offset)?,
                u64::try_from(h.last_offset())?,
            );
            if args.before.is_some_and(|o| last >= o) || got == wanted {
                break 'fetching;
            }
            sink.push(&b, base, last)?;
            got += 1;
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    Ok(())
}
