//! Partition moves (`strata partition move TOPIC/P --to 1,2,4`).
//!
//! A move is a [`MetaRecord::MovePartition`] in the controller: the partition gets a
//! target replica list, every broker in the target opens a replica (an uninitialized
//! one where it had none), and the partition's leader carries the move out, one step
//! per turn of [`Cluster::drive_moves`]. Each step is decided from the group's current
//! configuration alone, so a new leader picks a move up where the old one left it:
//!
//! 1. brokers of the target that are not in the group yet join as learners (they get
//!    a snapshot, then the log, and never count for a quorum meanwhile);
//! 2. once every learner of the target holds everything committed, and the leader is
//!    itself in the target, one joint change promotes the learners and removes the
//!    replicas the target drops (raft-rs leaves the joint configuration by itself);
//! 3. a leader that the target drops never removes itself (raft-rs would leave it
//!    leading a group it is not in, sending nothing): it hands leadership to a caught-up
//!    voter of the target first, or, when no voter stays, promotes the learners first
//!    and hands over next turn;
//! 4. when the voters are the target, the leader reports [`MetaRecord::MoveDone`]; the
//!    controller's placement becomes the target and the dropped brokers remove their
//!    replicas' files.
//!
//! Writes go on throughout: the partition log is the Raft log, so the new replicas
//! receive exactly the entries the old ones hold, and a write acknowledged with
//! acks=all is on a quorum of whichever configuration committed it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use replication::group::{GroupStatus, MemberChange};
use tracing::{debug, info, warn};

use super::metadata::MetaRecord;
use super::Cluster;

/// How often the leaders of moving partitions take a move's next step.
const MOVE_STEP_INTERVAL: Duration = Duration::from_millis(200);
/// How long one membership change may take to commit before the step is tried again.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a leader does next for a move, from its group's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoveStep {
    /// Nothing now (a joint configuration is being left, or learners are catching up).
    Wait,
    /// A membership change.
    Change(Vec<MemberChange>),
    /// Hand the leadership to this voter.
    Transfer(u64),
    /// The voters are the target: report the move done.
    Done,
}

/// The next step of moving the group `s` describes (as seen by its leader) to `target`.
pub fn next_step(s: &GroupStatus, target: &[u64]) -> MoveStep {
    if s.joint {
        return MoveStep::Wait;
    }
    let member = |n: &u64| s.voters.contains(n) || s.learners.contains(n);
    let missing: Vec<u64> = target.iter().copied().filter(|n| !member(n)).collect();
    if !missing.is_empty() {
        return MoveStep::Change(missing.into_iter().map(MemberChange::AddLearner).collect());
    }
    let matched = |n: u64| {
        s.matched
            .iter()
            .find(|(id, _)| *id == n)
            .map_or(0, |&(_, m)| m)
    };
    let new: Vec<u64> = s
        .learners
        .iter()
        .copied()
        .filter(|n| target.contains(n))
        .collect();
    if new.iter().any(|&n| matched(n) < s.committed_index) {
        return MoveStep::Wait;
    }
    if !target.contains(&s.id) {
        let heir = s
            .voters
            .iter()
            .copied()
            .filter(|n| target.contains(n))
            .max_by_key(|&n| matched(n));
        return match heir {
            Some(n) => MoveStep::Transfer(n),
            None => MoveStep::Change(new.into_iter().map(MemberChange::AddVoter).collect()),
        };
    }
    let mut changes: Vec<MemberChange> = new.into_iter().map(MemberChange::AddVoter).collect();
    changes.extend(
        s.voters
            .iter()
            .chain(&s.learners)
            .copied()
            .filter(|n| !target.contains(n))
            .map(MemberChange::Remove),
    );
    if changes.is_empty() {
        MoveStep::Done
    } else {
        MoveStep::Change(changes)
    }
}

impl Cluster {
    /// Carries out the moves of the partitions this node leads, until shutdown.
    pub async fn drive_moves(self: Arc<Self>, mut shutdown: crate::shutdown::Shutdown) {
        let mut applied = self.applied.subscribe();
        loop {
            let moves = self.state().moves();
            if moves.is_empty() {
                tokio::select! {
                    changed = applied.changed() => if changed.is_err() { return },
                    _ = shutdown.wait() => return,
                }
                continue;
            }
            let led: HashMap<u64, GroupStatus> = self
                .node
                .status()
                .await
                .into_iter()
                .filter(|s| s.leader == self.node_id)
                .map(|s| (s.group, s))
                .collect();
            for (group, target) in moves {
                if let Some(s) = led.get(&group) {
                    self.move_step(s, &target).await;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(MOVE_STEP_INTERVAL) => {}
                _ = shutdown.wait() => return,
            }
        }
    }

    async fn move_step(&self, s: &GroupStatus, target: &[u64]) {
        let group = s.group;
        match next_step(s, target) {
            MoveStep::Wait => {}
            MoveStep::Change(changes) => {
                info!(
                    group,
                    ?changes,
                    ?target,
                    "partition move: membership change"
                );
                let change = self.node.change_membership(group, changes);
                match tokio::time::timeout(CHANGE_TIMEOUT, change).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => debug!(group, error = %e, "partition move: change not made"),
                    Err(_) => warn!(group, "partition move: a membership change did not commit within {CHANGE_TIMEOUT:?}"),
                }
            }
            MoveStep::Transfer(to) => {
                info!(
                    group,
                    to, "partition move: handing leadership to a staying replica"
                );
                if let Err(e) = self.node.transfer_leader(group, to).await {
                    debug!(group, error = %e, "partition move: transfer not started");
                }
            }
            MoveStep::Done => {
                info!(group, ?target, "partition move: done");
                self.send(&MetaRecord::MoveDone {
                    group,
                    replicas: target.to_vec(),
                })
                .await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(id: u64, voters: &[u64], learners: &[u64], matched: &[(u64, u64)]) -> GroupStatus {
        GroupStatus {
            group: 1000,
            id,
            leader: id,
            term: 3,
            committed_index: 50,
            committed_offset: 40,
            last_index: 52,
            voters: voters.to_vec(),
            learners: learners.to_vec(),
            matched: matched.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn a_move_adds_learners_then_swaps_in_one_change() {
        use MemberChange::*;
        let target = [1, 2, 4];
        let s = status(1, &[1, 2, 3], &[], &[(2, 52), (3, 52)]);
        assert_eq!(
            next_step(&s, &target),
            MoveStep::Change(vec![AddLearner(4)])
        );
        let s = status(1, &[1, 2, 3], &[4], &[(2, 52), (3, 52), (4, 10)]);
        assert_eq!(next_step(&s, &target), MoveStep::Wait, "4 is catching up");
        let s = status(1, &[1, 2, 3], &[4], &[(2, 52), (3, 52), (4, 50)]);
        assert_eq!(
            next_step(&s, &target),
            MoveStep::Change(vec![AddVoter(4), Remove(3)])
        );
        let mut joint = s.clone();
        joint.joint = true;
        assert_eq!(next_step(&joint, &target), MoveStep::Wait);
        let s = status(1, &[1, 2, 4], &[], &[(2, 52), (4, 52)]);
        assert_eq!(next_step(&s, &target), MoveStep::Done);
    }

    #[test]
    fn a_leader_the_move_drops_hands_over_first() {
        use MemberChange::*;
        // 3 leads and is dropped: it hands over to the most caught-up staying voter.
        let s = status(3, &[1, 2, 3], &[4], &[(1, 49), (2, 52), (4, 50)]);
        assert_eq!(next_step(&s, &[1, 2, 4]), MoveStep::Transfer(2));
        // Nobody stays: the new replicas become voters first.
        let s = status(1, &[1, 2, 3], &[4, 5, 6], &[(4, 50), (5, 51), (6, 52)]);
        assert_eq!(
            next_step(&s, &[4, 5, 6]),
            MoveStep::Change(vec![AddVoter(4), AddVoter(5), AddVoter(6)])
        );
        let s = status(1, &[1, 2, 3, 4, 5, 6], &[], &[(4, 50), (5, 51), (6, 52)]);
        assert_eq!(next_step(&s, &[4, 5, 6]), MoveStep::Transfer(6));
        let s = status(6, &[1, 2, 3, 4, 5, 6], &[], &[(4, 50), (5, 51)]);
        assert_eq!(
            next_step(&s, &[4, 5, 6]),
            MoveStep::Change(vec![Remove(1), Remove(2), Remove(3)])
        );
    }
}
