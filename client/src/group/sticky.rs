//! The sticky assignor (protocol name `sticky`, eager): as balanced as round-robin, but
//! members keep the partitions they owned in the previous generation wherever balance
//! allows, so a rebalance moves as few partitions as it can.
//!
//! What a member owned comes from its subscription's `owned_partitions` (version 1+);
//! this client fills it with its assignment from before the rebalance even though it
//! revokes everything first (eager protocol). When two members claim a partition, the
//! claim from the newer generation wins. Balance: no member subscribing to a topic has
//! two or more partitions fewer than a member holding a partition of that topic.
//!
//! Not `cooperative-sticky`: that protocol revokes only moving partitions and needs a
//! second rebalance, which this client does not implement.

use std::collections::{BTreeMap, BTreeSet};

use crate::group::assignor::{
    empty_assignment, sorted_members, subscribed_partitions, Assignment, Assignor,
    MemberSubscription,
};
use crate::topic_partition::TopicPartition;

/// See the module documentation.
#[derive(Debug, Clone, Copy, Default)]
pub struct StickyAssignor;

impl Assignor for StickyAssignor {
    fn name(&self) -> &'static str {
        "sticky"
    }

    fn assign(
        &self,
        members: &[MemberSubscription],
        partition_counts: &BTreeMap<String, i32>,
    ) -> Assignment {
        let sorted = sorted_members(members);
        if sorted.is_empty() {
            return empty_assignment(members);
        }
        let all: BTreeSet<TopicPartition> = subscribed_partitions(members, partition_counts)
            .into_iter()
            .collect();
        // Index of each member in `sorted` → its partitions.
        let mut held: Vec<BTreeSet<TopicPartition>> = vec![BTreeSet::new(); sorted.len()];

        // 1. Claims: the newest generation wins, then the first member in order.
        let mut claims: BTreeMap<&TopicPartition, (i32, usize)> = BTreeMap::new();
        for (i, m) in sorted.iter().enumerate() {
            for tp in &m.subscription.owned_partitions {
                if !all.contains(tp) || !m.subscribes_to(&tp.topic) {
                    continue;
                }
                let generation = m.subscription.generation;
                match claims.get(tp) {
                    Some(&(g, _)) if g >= generation => {}
                    _ => {
                        claims.insert(tp, (generation, i));
                    }
                }
            }
        }
        // 2. Keep claims up to the balanced share.
        let max_share = all.len().div_ceil(sorted.len());
        for (tp, (_, i)) in claims {
            if held[i].len() < max_share {
                held[i].insert(tp.clone());
            }
        }
        // 3. Everything else to the least loaded subscriber.
        let placed: BTreeSet<TopicPartition> = held.iter().flatten().cloned().collect();
        for tp in all.iter().filter(|tp| !placed.contains(*tp)) {
            if let Some(i) = least_loaded(&sorted, &held, &tp.topic) {
                held[i].insert(tp.clone());
            }
        }
        // 4. Even out: move from the most loaded while someone subscribed has two fewer.
        // Each move lowers the sum of squared loads, so this ends; the bound is a guard.
        let mut moves_left = all.len() * sorted.len() + 1;
        while moves_left > 0 && move_one(&sorted, &mut held) {
            moves_left -= 1;
        }

        let mut assignment = empty_assignment(members);
        for (m, partitions) in sorted.iter().zip(held) {
            if let Some(list) = assignment.get_mut(&m.member_id) {
                list.extend(partitions);
            }
        }
        assignment
    }
}

/// The member with the fewest partitions among those subscribing to `topic` (the first
/// in order on ties).
fn least_loaded(
    sorted: &[&MemberSubscription],
    held: &[BTreeSet<TopicPartition>],
    topic: &str,
) -> Option<usize> {
    (0..sorted.len())
        .filter(|&i| sorted[i].subscribes_to(topic))
        .min_by_key(|&i| (held[i].len(), i))
}

/// Moves one partition from a member to a subscriber holding at least two fewer;
/// `false` when no such move exists.
fn move_one(sorted: &[&MemberSubscription], held: &mut [BTreeSet<TopicPartition>]) -> bool {
    let mut donors: Vec<usize> = (0..sorted.len()).collect();
    donors.sort_by_key(|&i| (std::cmp::Reverse(held[i].len()), i));
    for donor in donors {
        // The donor's partitions from the last, so lower partitions stay put.
        let candidates: Vec<TopicPartition> = held[donor].iter().rev().cloned().collect();
        for tp in candidates {
            let Some(to) = least_loaded(sorted, held, &tp.topic) else {
                continue;
            };
            if held[to].len() + 2 <= held[donor].len() {
                held[donor].remove(&tp);
                held[to].insert(tp);
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::assignor::tests::{check_valid, counts, member, random_cases, spread};

    fn owning(
        mut m: MemberSubscription,
        owned: &[TopicPartition],
        generation: i32,
    ) -> MemberSubscription {
        m.subscription.owned_partitions = owned.to_vec();
        m.subscription.generation = generation;
        m
    }

    #[test]
    fn equal_subscriptions_balance_within_one() {
        for (members, counts) in random_cases(11, 200) {
            let all: Vec<&str> = counts.keys().map(String::as_str).collect();
            let same: Vec<_> = members.iter().map(|m| member(&m.member_id, &all)).collect();
            let a = check_valid(&StickyAssignor, &same, &counts);
            assert!(spread(&a) <= 1, "{a:?}");
        }
    }

    #[test]
    fn a_new_member_takes_partitions_without_reshuffling_the_rest() {
        let topics = counts(&[("t", 12)]);
        let first: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|id| member(id, &["t"]))
            .collect();
        let before = check_valid(&StickyAssignor, &first, &topics);
        let mut next: Vec<_> = first
            .iter()
            .map(|m| owning(m.clone(), &before[&m.member_id], 1))
            .collect();
        next.push(member("d", &["t"]));
        let after = check_valid(&StickyAssignor, &next, &topics);
        assert_eq!(spread(&after), 0);
        for id in ["a", "b", "c"] {
            assert!(
                after[id].iter().all(|tp| before[id].contains(tp)),
                "{id} moved partitions it kept"
            );
            assert_eq!(after[id].len(), 3);
        }
        // A member leaving: its partitions are spread, the others keep theirs.
        let remaining: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|id| owning(member(id, &["t"]), &after[*id], 2))
            .collect();
        let last = check_valid(&StickyAssignor, &remaining, &topics);
        for id in ["a", "b", "c"] {
            assert!(after[id].iter().all(|tp| last[id].contains(tp)));
        }
    }

    #[test]
    fn the_newer_generation_wins_a_disputed_partition() {
        let tp = TopicPartition::new("t", 0);
        let members = [
            owning(member("a", &["t"]), std::slice::from_ref(&tp), 3),
            owning(member("b", &["t"]), std::slice::from_ref(&tp), 4),
        ];
        let a = check_valid(&StickyAssignor, &members, &counts(&[("t", 2)]));
        assert_eq!(a["b"], vec![tp]);
    }
}
