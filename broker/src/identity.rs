//! The data directory's identity: `node.identity`, a checksummed file
//! ([`crate::checked_file`]) naming the node that owns the directory, the cluster it
//! belongs to, and the directory's *incarnation* (`directory.id`, a random id made with
//! the directory, as Kafka's `meta.properties` has).
//!
//! It lets a broker tell a directory it wrote itself from one that lost its state:
//!
//! - a directory of another node (the `node.id` differs from `--node-id`) or of another
//!   cluster (the controller's cluster id differs) is refused, not mixed in;
//! - a new directory of a cluster node starts **joining**: its controller replica does
//!   not vote until caught up (see `replication::group::REJOIN_FILE`). If the controller
//!   already knows this node id from an earlier incarnation, the directory was lost (a
//!   new disk, a wiped volume) and the node is **rejoining**: every partition replica it
//!   opens waits, without voting, until it holds what its group committed, because the
//!   entries and votes its old directory held are gone. A node the controller never
//!   knew (a new cluster, a node added) has nothing to make good and becomes a
//!   **member** once its controller replica caught up;
//! - a single broker's directory, written by a release from before every broker was a
//!   cluster node, keeps its client-visible cluster id here until `crate::convert`
//!   hands it to the controller.
//!
//! A directory that holds data but no identity file was written by a release before
//! identities, if it has that release's `cluster.id` file: the identity is made from
//! it (the node keeps its state). Otherwise a missing identity beside data is an error
//! naming the file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::checked_file::{self, Read};
use crate::error::{BrokerError, Result};

/// The identity file, in the data directory.
pub const IDENTITY_FILE: &str = "node.identity";
/// The cluster id file of releases before identities (read once, then removed).
const LEGACY_CLUSTER_ID_FILE: &str = "cluster.id";
const HEADER: &str = "# Strata node identity (written by the broker; do not edit)\n";

/// Where this directory stands with its cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Standing {
    /// A single broker's directory, as releases from before every broker was a
    /// cluster node wrote it (converted at start, `crate::convert`).
    Single,
    /// A new cluster node's directory, until its controller replica caught up.
    Joining,
    /// A directory that replaced a lost one of a known node: its replicas rejoin.
    Rejoining,
    /// A cluster node's directory holding its state.
    Member,
}

/// The contents of `node.identity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    #[serde(rename = "node.id")]
    pub node_id: i32,
    /// A random id made with the directory (Kafka's `directory.id`).
    #[serde(rename = "directory.id")]
    pub incarnation: String,
    /// The cluster id clients are told: the controller's once this node learned it (a
    /// single broker's own until its conversion).
    #[serde(
        rename = "cluster.id",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cluster_id: Option<String>,
    pub standing: Standing,
}

/// The identity of a data directory, and where it lives.
#[derive(Debug)]
pub struct IdentityFile {
    path: PathBuf,
    identity: Identity,
}

impl IdentityFile {
    /// Opens (or makes) the identity of `data_dir` for node `node_id`. A single
    /// broker's directory holding topics becomes a node's through the conversion
    /// ([`IdentityFile::convert_single`]), which runs first.
    pub fn open(data_dir: &Path, node_id: i32) -> Result<IdentityFile> {
        let path = data_dir.join(IDENTITY_FILE);
        let Some(identity) = load(&path)? else {
            return Self::make(data_dir, path, node_id, true);
        };
        if identity.node_id != node_id {
            return Err(BrokerError::Config(format!(
                "data directory {} belongs to node {}, and this broker is node {node_id} \
                 (--node-id); give each node its own directory",
                data_dir.display(),
                identity.node_id
            )));
        }
        let mut file = IdentityFile { path, identity };
        if file.identity.standing == Standing::Single {
            // A single broker's directory without a topic registry (one with a registry
            // is converted first, `crate::convert`) becomes a cluster node holding its
            // state; it takes the controller's cluster id.
            file.identity.standing = Standing::Member;
            file.identity.cluster_id = None;
            file.save()?;
        }
        Ok(file)
    }

    /// Makes a single broker's directory the directory of node `node_id` of a one-voter
    /// cluster (the first step of `crate::convert`): the node id becomes `node_id` and
    /// the standing a member; the incarnation and the cluster id clients were told
    /// stay. A directory this already did for `node_id` is left as it is. Returns the
    /// cluster id.
    pub fn convert_single(data_dir: &Path, node_id: i32) -> Result<String> {
        let path = data_dir.join(IDENTITY_FILE);
        let mut file = match load(&path)? {
            Some(identity) => IdentityFile { path, identity },
            // An older release's directory: its identity comes from `cluster.id`.
            None => Self::make(data_dir, path, node_id, false)?,
        };
        let id = &mut file.identity;
        match id.standing {
            Standing::Single => {
                id.node_id = node_id;
                id.standing = Standing::Member;
                file.save()?;
            }
            Standing::Member if id.node_id == node_id => {}
            standing => {
                return Err(BrokerError::Config(format!(
                    "data directory {} holds a single broker's topics but belongs to node \
                     {} ({standing:?}); it cannot be converted for node {node_id}",
                    data_dir.display(),
                    id.node_id
                )))
            }
        }
        file.identity
            .cluster_id
            .clone()
            .ok_or_else(|| BrokerError::CorruptFile {
                path: file.path.clone(),
                reason: "a single broker's identity without a cluster id".into(),
            })
    }

    /// The identity of a directory that has none yet: a cluster node's, or (`cluster`
    /// false) a single broker's of a release before identities, about to be converted.
    fn make(data_dir: &Path, path: PathBuf, node_id: i32, cluster: bool) -> Result<IdentityFile> {
        let legacy = data_dir.join(LEGACY_CLUSTER_ID_FILE);
        let legacy_id = match std::fs::read_to_string(&legacy) {
            Ok(id) => Some(id.trim().to_string()).filter(|id| !id.is_empty() && id.len() <= 64),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(BrokerError::io(&legacy, e)),
        };
        let has_state = holds_state(data_dir)?;
        if has_state && legacy_id.is_none() {
            return Err(BrokerError::CorruptFile {
                path,
                reason: format!(
                    "missing, but {} holds data: restore the file from a backup (it names \
                     the node and cluster this data belongs to), or move the data away to \
                     start this node empty",
                    data_dir.display()
                ),
            });
        }
        let standing = match (cluster, has_state) {
            (false, _) => Standing::Single,
            (true, true) => Standing::Member,
            (true, false) => Standing::Joining,
        };
        let cluster_id = match (cluster, legacy_id) {
            (false, Some(id)) => Some(id),
            (false, None) => Some(uuid::Uuid::new_v4().simple().to_string()),
            // A cluster node learns the controller's id.
            (true, _) => None,
        };
        let mut file = IdentityFile {
            path,
            identity: Identity {
                node_id,
                incarnation: uuid::Uuid::new_v4().simple().to_string(),
                cluster_id,
                standing,
            },
        };
        file.save()?;
        match std::fs::remove_file(&legacy) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(BrokerError::io(&legacy, e)),
        }
        tracing::info!(path = %file.path.display(), ?standing, incarnation = %file.identity.incarnation, "data directory identity made");
        Ok(file)
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Records a new standing and cluster id, durably.
    pub fn update(&mut self, standing: Standing, cluster_id: Option<String>) -> Result<()> {
        if self.identity.standing == standing && self.identity.cluster_id == cluster_id {
            return Ok(());
        }
        self.identity.standing = standing;
        self.identity.cluster_id = cluster_id;
        self.save()
    }

    fn save(&mut self) -> Result<()> {
        let text = toml::to_string(&self.identity).map_err(|e| BrokerError::CorruptFile {
            path: self.path.clone(),
            reason: format!("cannot encode: {e}"),
        })?;
        checked_file::write(&self.path, &format!("{HEADER}{text}"))
    }
}

/// The identity at `path`, if the file exists.
fn load(path: &Path) -> Result<Option<Identity>> {
    match checked_file::read(path)? {
        Read::Checked(text) => parse(path, &text).map(Some),
        Read::Unchecked(_) => Err(BrokerError::CorruptFile {
            path: path.to_path_buf(),
            reason: "no checksum line: the file was cut short or edited".into(),
        }),
        Read::Missing => Ok(None),
    }
}

fn parse(path: &Path, text: &str) -> Result<Identity> {
    let identity: Identity = toml::from_str(text).map_err(|e| BrokerError::CorruptFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if identity.incarnation.is_empty() {
        return Err(BrokerError::CorruptFile {
            path: path.to_path_buf(),
            reason: "empty incarnation".into(),
        });
    }
    Ok(identity)
}

/// Whether `dir` holds anything but the lock file and the identity's own temporary.
fn holds_state(dir: &Path) -> Result<bool> {
    let entries = std::fs::read_dir(dir).map_err(|e| BrokerError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| BrokerError::io(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name != ".lock" && !name.ends_with(".tmp") {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A single broker's identity, as releases before the conversion made it.
    fn single(dir: &Path, node_id: i32) -> IdentityFile {
        IdentityFile::make(dir, dir.join(IDENTITY_FILE), node_id, false).unwrap()
    }

    #[test]
    fn a_new_directory_gets_an_identity_that_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let made = IdentityFile::open(dir.path(), 3).unwrap();
        assert_eq!(made.identity().standing, Standing::Joining);
        assert_eq!(made.identity().cluster_id, None);
        let again = IdentityFile::open(dir.path(), 3).unwrap();
        assert_eq!(again.identity(), made.identity());
    }

    #[test]
    fn another_nodes_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        IdentityFile::open(dir.path(), 3).unwrap();
        let err = IdentityFile::open(dir.path(), 4).unwrap_err();
        assert!(err.to_string().contains("belongs to node 3"), "{err}");
    }

    #[test]
    fn a_damaged_or_missing_identity_beside_data_stops_start_up() {
        let dir = tempfile::tempdir().unwrap();
        IdentityFile::open(dir.path(), 1).unwrap();
        std::fs::create_dir(dir.path().join("events-0")).unwrap();
        let path = dir.path().join(IDENTITY_FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        let edited = text.replace("\"node.id\" = 1", "\"node.id\" = 2");
        assert_ne!(edited, text);
        std::fs::write(&path, edited).unwrap();
        let err = IdentityFile::open(dir.path(), 1).unwrap_err();
        assert!(err.to_string().contains(IDENTITY_FILE), "{err}");
        std::fs::remove_file(&path).unwrap();
        let err = IdentityFile::open(dir.path(), 1).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
        assert!(dir.path().join("events-0").exists(), "nothing was deleted");
    }

    #[test]
    fn an_older_releases_directory_keeps_its_state() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LEGACY_CLUSTER_ID_FILE), "abc123\n").unwrap();
        std::fs::create_dir(dir.path().join("events-0")).unwrap();
        // It holds its state, so it is a member; it learns the controller's cluster id.
        let member = IdentityFile::open(dir.path(), 1).unwrap();
        assert_eq!(member.identity().standing, Standing::Member);
        assert!(!dir.path().join(LEGACY_CLUSTER_ID_FILE).exists());
    }

    #[test]
    fn a_single_brokers_directory_converts_once_and_then_is_a_cluster_nodes() {
        let dir = tempfile::tempdir().unwrap();
        let before = single(dir.path(), 0).identity().clone();
        assert_eq!(before.standing, Standing::Single);
        std::fs::create_dir(dir.path().join("events-0")).unwrap();
        let id = IdentityFile::convert_single(dir.path(), 1).unwrap();
        assert_eq!(Some(id.clone()), before.cluster_id);
        // Again (a conversion resumed after a crash): unchanged.
        assert_eq!(IdentityFile::convert_single(dir.path(), 1).unwrap(), id);
        let err = IdentityFile::convert_single(dir.path(), 2).unwrap_err();
        assert!(err.to_string().contains("belongs to node 1"), "{err}");
        let member = IdentityFile::open(dir.path(), 1).unwrap();
        assert_eq!(member.identity().standing, Standing::Member);
        assert_eq!(member.identity().cluster_id, Some(id));
        assert_eq!(member.identity().incarnation, before.incarnation);
    }

    #[test]
    fn an_older_single_brokers_directory_converts_with_its_cluster_id() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LEGACY_CLUSTER_ID_FILE), "abc123\n").unwrap();
        std::fs::create_dir(dir.path().join("events-0")).unwrap();
        assert_eq!(
            IdentityFile::convert_single(dir.path(), 1).unwrap(),
            "abc123"
        );
        assert!(!dir.path().join(LEGACY_CLUSTER_ID_FILE).exists());
    }
}
