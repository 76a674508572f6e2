//! The round-robin assignor (Kafka's `RoundRobinAssignor`, protocol name
//! `roundrobin`): every partition of every subscribed topic, in (topic, partition)
//! order, goes to the next member in a circle of the sorted members, skipping members
//! that do not subscribe to its topic.
//!
//! When every member subscribes to the same topics, partition counts differ by at most
//! one between members.

use std::collections::BTreeMap;

use crate::group::assignor::{
    empty_assignment, sorted_members, subscribed_partitions, Assignment, Assignor,
    MemberSubscription,
};

/// See the module documentation.
#[derive(Debug, Clone, Copy, Default)]
pub struct RoundRobinAssignor;

impl Assignor for RoundRobinAssignor {
    fn name(&self) -> &'static str {
        "roundrobin"
    }

    fn assign(
        &self,
        members: &[MemberSubscription],
        partition_counts: &BTreeMap<String, i32>,
    ) -> Assignment {
        let mut assignment = empty_assignment(members);
        let sorted = sorted_members(members);
        if sorted.is_empty() {
            return assignment;
        }
        let mut next = 0usize;
        for tp in subscribed_partitions(members, partition_counts) {
            // At most one full turn: some member subscribes (the partition is listed).
            for step in 0..sorted.len() {
                let m = sorted[(next + step) % sorted.len()];
                if m.subscribes_to(&tp.topic) {
                    next = (next + step + 1) % sorted.len();
                    if let Some(list) = assignment.get_mut(&m.member_id) {
                        list.push(tp);
                    }
                    break;
                }
            }
        }
        for list in assignment.values_mut() {
            list.sort();
        }
        assignment
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::assignor::tests::{check_valid, counts, member, random_cases, spread};
    use crate::topic_partition::TopicPartition;

    #[test]
    fn partitions_deal_out_in_turn() {
        // Kafka's javadoc example: C0 gets t0p0, t0p2, t1p1; C1 gets t0p1, t1p0, t1p2.
        let members = [member("c0", &["t0", "t1"]), member("c1", &["t0", "t1"])];
        let a = check_valid(
            &RoundRobinAssignor,
            &members,
            &counts(&[("t0", 3), ("t1", 3)]),
        );
        let tp = TopicPartition::new;
        assert_eq!(a["c0"], vec![tp("t0", 0), tp("t0", 2), tp("t1", 1)]);
        assert_eq!(a["c1"], vec![tp("t0", 1), tp("t1", 0), tp("t1", 2)]);
    }

    #[test]
    fn equal_subscriptions_balance_within_one() {
        for (members, counts) in random_cases(7, 200) {
            let all: Vec<&str> = counts.keys().map(String::as_str).collect();
            let same: Vec<_> = members.iter().map(|m| member(&m.member_id, &all)).collect();
            let a = check_valid(&RoundRobinAssignor, &same, &counts);
            assert!(spread(&a) <= 1, "{a:?}");
        }
    }
}
