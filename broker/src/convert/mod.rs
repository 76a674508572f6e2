//! The one-time conversion of a single broker's data directory, as releases from before
//! every broker was a cluster node wrote it (topics in `topics.toml`, partition logs
//! written without Raft), into the directory of a one-voter cluster's node, run when
//! such a directory is started as a one-node cluster. Every acknowledged record stays where it was, at
//! the same offset; topic ids, the cluster id clients were told, committed group
//! offsets (`__consumer_offsets` keeps its partition count) and producer ids carry
//! over.
//!
//! Crash order (each step is safe to repeat, so a start interrupted anywhere converts
//! again from the top while `topics.toml` exists):
//!
//! 1. [`prepare`], before the cluster starts: the identity becomes node `--node-id`, a
//!    member, with its cluster id and incarnation kept
//!    ([`IdentityFile::convert_single`]); partition directories no registered topic
//!    owns are set aside as `<dir>.<uuid>-stray`; then per partition without a Raft
//!    state yet: the log is opened and closed (recovering it after an unclean stop),
//!    every entry gets term 1 (`log_store::restamp_zero_terms`, its own crash order
//!    in docs/log-store.md), and the log is adopted by a group whose one voter is this
//!    node, committed through its last entry (`LogStorage::adopt`, one file replace).
//!    A partition with a Raft state was adopted before and is not touched again.
//! 2. [`finish`], once the controller runs: one [`MetaRecord::Import`] carries the
//!    cluster id, every topic (id, partition count, overrides) and the end of the
//!    producer ids the single broker reserved; applied, it places every partition on
//!    this node, and the replicas open on the adopted logs. A second import of the
//!    same topics changes nothing.
//! 3. `topics.toml` is renamed to `topics.toml.converted` (and the directory synced):
//!    from then on the controller's records are the only topic metadata.
//!
//! A directory started with other peers is refused: a single broker's topics join a
//! cluster only by converting it alone first and adding nodes after.

use std::path::Path;
use std::sync::{Arc, RwLock};

use log_store::{failpoint, Log, LogConfig};
use replication::LogStorage;
use tracing::info;

use crate::cluster::metadata::{ImportedTopic, MetaRecord};
use crate::cluster::{Cluster, CONTROLLER_TIMEOUT};
use crate::config::ClusterSettings;
use crate::config::TopicDefaults;
use crate::error::{BrokerError, Result};
use crate::identity::IdentityFile;

mod registry;
use registry::{Registered, REGISTRY_FILE};

/// What `topics.toml` is renamed to once the controller holds its topics.
pub const CONVERTED_REGISTRY_FILE: &str = "topics.toml.converted";

/// Crash points of the conversion's last two steps (its first step's are log-store's
/// and replication's), for the crash tests.
pub const POINTS: &[&str] = &["convert.before_import", "convert.before_rename"];

/// A conversion whose first step is done: the rest waits for the controller.
#[derive(Debug)]
pub struct Pending {
    cluster_id: String,
    topics: Vec<Registered>,
}

/// The first step (see the module docs), when `data_dir` holds a single broker's topic
/// registry; `None` for any other directory.
pub fn prepare(
    data_dir: &Path,
    settings: &ClusterSettings,
    defaults: &TopicDefaults,
) -> Result<Option<Pending>> {
    if !data_dir.join(REGISTRY_FILE).exists() {
        return Ok(None);
    }
    let me = settings.node_id;
    if settings.peers.keys().any(|&p| p != me) {
        return Err(BrokerError::Config(format!(
            "data directory {} was written by a single broker ({REGISTRY_FILE} lists its \
             topics); it converts only as a one-node cluster: start it with --peers naming \
             this node alone, then add nodes, or give this node an empty directory",
            data_dir.display()
        )));
    }
    let node_id = i32::try_from(me)
        .map_err(|_| BrokerError::Config(format!("node id {me} is out of range")))?;
    let cluster_id = IdentityFile::convert_single(data_dir, node_id)?;
    let topics = registry::read(data_dir, defaults)?;
    registry::set_aside_strays(data_dir, |topic, index| {
        topics
            .iter()
            .any(|t| t.name == topic && (0..t.partitions).contains(&index))
    });
    info!(
        topics = topics.len(),
        node = me,
        "converting a single broker's data directory into a one-node cluster's"
    );
    for t in &topics {
        for index in 0..t.partitions {
            let dir = data_dir.join(format!("{}-{index}", t.name));
            adopt_partition(&dir, t.config.log_config(), me)?;
        }
    }
    Ok(Some(Pending { cluster_id, topics }))
}

/// Gives the log in `dir` to a group whose one voter is `voter` (step 1, per partition).
fn adopt_partition(dir: &Path, config: LogConfig, voter: u64) -> Result<()> {
    if !dir.exists() {
        // Never written: the replica starts an empty group.
        return Ok(());
    }
    let failed = |reason: String| BrokerError::Conversion {
        dir: dir.to_path_buf(),
        reason,
    };
    let open = || -> Result<Arc<RwLock<Log>>> {
        let log = Log::open(dir, config.clone()).map_err(|e| failed(e.to_string()))?;
        Ok(Arc::new(RwLock::new(log)))
    };
    let close = |log: Arc<RwLock<Log>>| -> Result<()> {
        let log = Arc::try_unwrap(log)
            .map_err(|_| failed("the log is still shared".into()))?
            .into_inner()
            .map_err(|_| failed("the log's lock is poisoned".into()))?;
        log.close().map_err(|e| failed(e.to_string()))
    };
    // Opening recovers a log left by an unclean stop; closing leaves the clean marker
    // the restamp needs.
    let log = open()?;
    let storage = LogStorage::new(log.clone()).map_err(|e| failed(e.to_string()))?;
    let adopted = !storage.persisted().conf.voters.is_empty();
    drop(storage);
    close(log)?;
    if adopted {
        return Ok(());
    }
    let restamped = log_store::restamp_zero_terms(dir, 1).map_err(|e| failed(e.to_string()))?;
    let log = open()?;
    let storage = LogStorage::new(log.clone()).map_err(|e| failed(e.to_string()))?;
    storage.adopt(voter).map_err(|e| failed(e.to_string()))?;
    drop(storage);
    close(log)?;
    info!(dir = %dir.display(), entries = restamped.entries, "partition log adopted by its one-voter group");
    Ok(())
}

/// The last steps (see the module docs): imports the topics into the controller, waits
/// until the import is applied here, and renames the registry.
pub async fn finish(cluster: &Cluster, data_dir: &Path, pending: Pending) -> Result<()> {
    let check = |point: &'static str| {
        failpoint::check(point).map_err(|e| BrokerError::Conversion {
            dir: data_dir.to_path_buf(),
            reason: e.to_string(),
        })
    };
    // Every id the single broker may have handed out stays below the controller's.
    let next_producer_id = registry::reserved_producer_ids(data_dir)?;
    let topics = pending
        .topics
        .into_iter()
        .map(|t| ImportedTopic {
            name: t.name,
            id: t.id.to_string(),
            partitions: t.partitions,
            config: t.overrides,
        })
        .collect::<Vec<_>>();
    let count = topics.len();
    check("convert.before_import")?;
    let record = MetaRecord::Import {
        request: cluster.request_id(),
        node: cluster.node_id,
        cluster_id: pending.cluster_id,
        topics,
        next_producer_id,
    };
    cluster
        .submit(record, CONTROLLER_TIMEOUT)
        .await
        .map_err(|e| BrokerError::Conversion {
            dir: data_dir.to_path_buf(),
            reason: format!("importing the topics into the controller: {e}"),
        })?;
    check("convert.before_rename")?;
    let from = data_dir.join(REGISTRY_FILE);
    let to = data_dir.join(CONVERTED_REGISTRY_FILE);
    std::fs::rename(&from, &to).map_err(|e| BrokerError::io(&from, e))?;
    log_store::checkpoint::sync_dir(data_dir).map_err(|e| BrokerError::Conversion {
        dir: data_dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    info!(
        topics = count,
        "single broker's data directory converted: the controller holds its topics"
    );
    Ok(())
}
