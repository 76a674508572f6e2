//! Who this node is in the cluster and who its peers are (`node.id`, the Raft listener,
//! `--peers`), and the controller's settings.

use std::collections::BTreeMap;

/// Voters of the controller group at most (Raft quorums beyond five only cost latency).
pub const MAX_CONTROLLER_VOTERS: usize = 5;
/// Records applied between controller checkpoints, by default
/// (`metadata.snapshot.records`).
pub const DEFAULT_CHECKPOINT_RECORDS: u64 = 1000;
/// Segment size of the controller log (`metadata.log.segment.bytes`): segments wholly
/// before the latest checkpoint are deleted.
pub const DEFAULT_CONTROLLER_SEGMENT_BYTES: u64 = 8 << 20;

/// Who this node is and who its peers are (from `--node-id`, `--raft-addr`, `--peers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    pub node_id: u64,
    /// The Raft listener; `None` only on a node whose peers are itself alone (nothing
    /// to listen for).
    pub raft_addr: Option<String>,
    /// Every node's Raft address, this one's included.
    pub peers: BTreeMap<u64, String>,
    /// Records applied between controller checkpoints (`metadata.snapshot.records`).
    pub checkpoint_records: u64,
    /// Segment size of the controller log (`metadata.log.segment.bytes`).
    pub controller_segment_bytes: u64,
    /// `cluster.id`: Raft peers with another id are refused; clients see it as the
    /// cluster id (empty: no check, and the first broker picks a random one).
    pub cluster_id: String,
    /// Mutual TLS on the Raft port (`RAFT:SSL` in `listener.security.protocol.map`).
    pub raft_tls: Option<RaftTls>,
}

/// The Raft port's TLS files: this node's key and certificate chain (used as server
/// and as client), and the authorities its peers' certificates must come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftTls {
    pub keystore: std::path::PathBuf,
    pub truststore: std::path::PathBuf,
}

impl ClusterSettings {
    /// Parses `--peers`: `1=host:port,2=host:port`.
    pub fn parse_peers(text: &str) -> std::result::Result<BTreeMap<u64, String>, String> {
        let mut peers = BTreeMap::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (id, addr) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?} is not ID=HOST:PORT"))?;
            let id: u64 = id
                .trim()
                .parse()
                .ok()
                .filter(|&n| n > 0 && n <= i32::MAX as u64)
                .ok_or_else(|| format!("{id:?} is not a node id (1..2^31)"))?;
            let addr = addr.trim();
            if addr
                .rsplit_once(':')
                .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
            {
                return Err(format!("{addr:?} is not HOST:PORT"));
            }
            if peers.insert(id, addr.to_string()).is_some() {
                return Err(format!("node {id} is listed twice"));
            }
        }
        Ok(peers)
    }

    /// The controller's voters: the lowest peer ids, at most [`MAX_CONTROLLER_VOTERS`].
    pub fn controller_voters(&self) -> Vec<u64> {
        self.peers
            .keys()
            .copied()
            .take(MAX_CONTROLLER_VOTERS)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_and_refuse_nonsense() {
        let p = ClusterSettings::parse_peers("1=127.0.0.1:9093, 2=h:1,3=[::1]:5").unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[&3], "[::1]:5");
        for bad in [
            "1",
            "x=h:1",
            "0=h:1",
            "1=h",
            "1=h:99999",
            "1=:5",
            "1=h:1,1=h:2",
        ] {
            assert!(ClusterSettings::parse_peers(bad).is_err(), "{bad}");
        }
        let s = ClusterSettings {
            node_id: 1,
            raft_addr: Some("h:1".into()),
            peers: (1..=7).map(|i| (i, format!("h:{i}"))).collect(),
            checkpoint_records: DEFAULT_CHECKPOINT_RECORDS,
            controller_segment_bytes: DEFAULT_CONTROLLER_SEGMENT_BYTES,
            cluster_id: String::new(),
            raft_tls: None,
        };
        assert_eq!(s.controller_voters(), vec![1, 2, 3, 4, 5]);
    }
}
