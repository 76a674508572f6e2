//! Which side of a disagreement is wrong: a replica whose tree disagrees with a logged
//! head, and a leader after each head it logs, ask the group's other voters for their
//! root of the head's tree size (a call between brokers,
//! [`AUDIT_ROOT`](crate::calls::AUDIT_ROOT)) and count.
//!
//! - A root held by a majority of the voters is the group's: a replica whose own root is
//!   another is the one changed behind Raft's back, and goes out of service; a logged
//!   head with another root was signed by a leader whose tree was changed (that leader
//!   finds itself in the minority by its own poll).
//! - Without a majority among the answers (peers down, or a single replica: its own
//!   word is no majority), the logged head decides: it was committed by a quorum when
//!   it was logged.
//!
//! Replicas without a tree (restarted from a Raft snapshot) abstain, and so does a
//! replica asked about a tree its seal covers (a head logged before the seal).

use std::collections::HashMap;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use log_store::merkle::Hash;

use crate::partition::Partition;
use crate::Broker;

/// How long a peer has to answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// What a poll found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// This replica's root is the group's (or the logged head's, without a majority).
    Agrees,
    /// This replica's root is not: it was changed.
    Diverged(String),
    /// This replica agrees with the majority, but the logged head does not: its signer
    /// was changed.
    HeadWrong(String),
}

/// Polls the voters of `p`'s group about the tree of `size` leaves, which the head
/// logged at `raft_index` says has root `logged`.
pub async fn poll(
    broker: &Broker,
    p: &Partition,
    size: u64,
    logged: Hash,
    raft_index: u64,
) -> Verdict {
    if !p.keeps_audit_tree() {
        return Verdict::Agrees; // nothing to compare: abstain
    }
    let own = p.audit_root(size);
    // Read after the root: a seal applied in between is seen here.
    if size < p.audit_sealed_size() {
        // Sealed since the head was logged: only the export proves those leaves now.
        return Verdict::Agrees;
    }
    let me = broker.cluster.node_id;
    let voters = broker
        .cluster
        .node
        .status()
        .await
        .into_iter()
        .find(|s| s.group == p.group())
        .map(|s| s.voters)
        .unwrap_or_default();
    let mut answers: Vec<Hash> = own.into_iter().collect();
    for &peer in voters.iter().filter(|&&v| v != me) {
        answers.extend(ask(broker, peer, p, size).await);
    }
    judge(own, &answers, voters.len().max(1), logged, raft_index, size)
}

/// The verdict from this replica's root, the roots the voters gave (its own included)
/// and the number of voters.
fn judge(
    own: Option<Hash>,
    answers: &[Hash],
    voters: usize,
    logged: Hash,
    raft_index: u64,
    size: u64,
) -> Verdict {
    let mut votes: HashMap<Hash, usize> = HashMap::new();
    for root in answers {
        *votes.entry(*root).or_default() += 1;
    }
    // This replica's own word is no majority: another replica must say the same.
    let majority = votes
        .into_iter()
        .find(|&(_, n)| n * 2 > voters && answers.len() > 1)
        .map(|(root, _)| root);
    let hex = log_store::merkle::to_hex;
    match (majority, own) {
        (Some(m), Some(o)) if m == o && m == logged => Verdict::Agrees,
        (Some(m), Some(o)) if m == o => Verdict::HeadWrong(format!(
            "the head logged at raft index {raft_index} gives the tree of {size} leaves root \
             {}; a majority of the replicas, this one included, have {}",
            hex(&logged),
            hex(&m)
        )),
        (Some(m), _) => Verdict::Diverged(format!(
            "this replica's tree of {size} leaves is not the majority's (root {})",
            hex(&m)
        )),
        (None, Some(o)) if o == logged => Verdict::Agrees,
        (None, _) => Verdict::Diverged(format!(
            "this replica's tree of {size} leaves disagrees with the head logged at raft \
             index {raft_index} (root {}), and no majority of the replicas answered otherwise",
            hex(&logged)
        )),
    }
}

/// Node `node`'s root of `p`'s tree of `size` leaves (`None`: no answer, or none kept).
async fn ask(broker: &Broker, node: u64, p: &Partition, size: u64) -> Option<Hash> {
    let payload = request(p.topic(), p.index(), size);
    let answer = crate::calls::call(broker, node, payload, ASK_TIMEOUT)
        .await
        .ok()?;
    match answer.split_first() {
        Some((0, root)) => root.try_into().ok(),
        _ => None,
    }
}

/// The call: kind, topic length u16, topic, partition i32, tree size u64.
fn request(topic: &str, partition: i32, size: u64) -> Bytes {
    let mut buf = BytesMut::with_capacity(16 + topic.len());
    buf.put_u8(crate::calls::AUDIT_ROOT);
    buf.put_u16(u16::try_from(topic.len()).unwrap_or(u16::MAX));
    buf.put_slice(topic.as_bytes());
    buf.put_i32(partition);
    buf.put_u64(size);
    buf.freeze()
}

/// Answers a peer's call (its body, the kind byte taken): 0 and the root, or 1.
pub fn answer(broker: &Broker, body: &[u8]) -> Bytes {
    let root = parse(body).and_then(|(topic, partition, size)| {
        let t = broker.topics.get(topic)?;
        t.partition(partition)?.audit_root(size)
    });
    match root {
        Some(r) => Bytes::from([&[0u8][..], &r].concat()),
        None => Bytes::from_static(&[1]),
    }
}

fn parse(body: &[u8]) -> Option<(&str, i32, u64)> {
    let len = u16::from_be_bytes(body.get(..2)?.try_into().ok()?) as usize;
    let topic = std::str::from_utf8(body.get(2..2 + len)?).ok()?;
    let rest = body.get(2 + len..)?;
    if rest.len() != 12 {
        return None;
    }
    let partition = i32::from_be_bytes(rest[..4].try_into().ok()?);
    let size = u64::from_be_bytes(rest[4..].try_into().ok()?);
    Some((topic, partition, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_majority_decides_and_the_head_breaks_ties() {
        let (good, bad) = ([1u8; 32], [2u8; 32]);
        // A changed follower: the others and the head agree.
        assert!(matches!(
            judge(Some(bad), &[bad, good, good], 3, good, 9, 5),
            Verdict::Diverged(_)
        ));
        // A changed leader signed the head: the followers are the majority.
        assert!(matches!(
            judge(Some(good), &[good, good, bad], 3, bad, 9, 5),
            Verdict::HeadWrong(_)
        ));
        // ... and the leader finds itself in the minority.
        assert!(matches!(
            judge(Some(bad), &[bad, good, good], 3, bad, 9, 5),
            Verdict::Diverged(_)
        ));
        // One replica, or peers that did not answer: the logged head decides.
        assert_eq!(judge(Some(good), &[good], 1, good, 9, 5), Verdict::Agrees);
        assert!(matches!(
            judge(Some(bad), &[bad], 1, good, 9, 5),
            Verdict::Diverged(_)
        ));
        assert!(matches!(
            judge(Some(bad), &[bad, good], 3, good, 9, 5),
            Verdict::Diverged(_)
        ));
        assert_eq!(
            judge(Some(good), &[good, good, good], 3, good, 9, 5),
            Verdict::Agrees
        );
        // Fewer leaves here than the head covers (batches removed).
        assert!(matches!(
            judge(None, &[good, good], 3, good, 9, 5),
            Verdict::Diverged(_)
        ));
    }

    #[test]
    fn calls_round_trip_and_garbage_is_refused() {
        let r = request("trail", 3, 77);
        assert_eq!(parse(&r[1..]), Some(("trail", 3, 77)));
        assert_eq!(parse(&r[1..r.len() - 1]), None);
        assert_eq!(parse(&[0, 200, 1]), None);
        assert_eq!(parse(&[]), None);
    }
}
