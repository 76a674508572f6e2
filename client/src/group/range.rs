//! The range assignor (Kafka's `RangeAssignor`, protocol name `range`): per topic, the
//! members subscribing to it, sorted, each take a contiguous range of partitions; the
//! first `partitions % members` take one extra.
//!
//! Co-partitioned topics line up (member i gets the same partition numbers of every
//! topic with the same count), at the price of balance across many topics: the first
//! members can end up with one extra partition per topic.

use std::collections::BTreeMap;

use crate::group::assignor::{
    empty_assignment, sorted_members, Assignment, Assignor, MemberSubscription,
};
use crate::topic_partition::TopicPartition;

/// See the module documentation.
#[derive(Debug, Clone, Copy, Default)]
pub struct RangeAssignor;

impl Assignor for RangeAssignor {
    fn name(&self) -> &'static str {
        "range"
    }

    fn assign(
        &self,
        members: &[MemberSubscription],
        partition_counts: &BTreeMap<String, i32>,
    ) -> Assignment {
        let mut assignment = empty_assignment(members);
        let sorted = sorted_members(members);
        for (topic, &count) in partition_counts {
            let subscribers: Vec<&&MemberSubscription> =
                sorted.iter().filter(|m| m.subscribes_to(topic)).collect();
            let Ok(n) = i32::try_from(subscribers.len()) else {
                continue;
            };
            if n == 0 || count <= 0 {
                continue;
            }
            let (per_member, extra) = (count / n, count % n);
            for (i, m) in (0..).zip(subscribers) {
                let start = per_member * i + i.min(extra);
                let len = per_member + i32::from(i < extra);
                if let Some(list) = assignment.get_mut(&m.member_id) {
                    list.extend(
                        (start..start + len).map(|p| TopicPartition::new(topic.clone(), p)),
                    );
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
    use crate::group::assignor::tests::{check_valid, counts, member};

    fn parts(topic: &str, ps: &[i32]) -> Vec<TopicPartition> {
        ps.iter().map(|&p| TopicPartition::new(topic, p)).collect()
    }

    #[test]
    fn ranges_follow_kafka() {
        // Kafka's javadoc example: two members, two topics of three partitions.
        let members = [member("c0", &["t0", "t1"]), member("c1", &["t0", "t1"])];
        let a = check_valid(&RangeAssignor, &members, &counts(&[("t0", 3), ("t1", 3)]));
        let mut c0 = parts("t0", &[0, 1]);
        c0.extend(parts("t1", &[0, 1]));
        let mut c1 = parts("t0", &[2]);
        c1.extend(parts("t1", &[2]));
        assert_eq!(a["c0"], c0);
        assert_eq!(a["c1"], c1);
    }

    #[test]
    fn only_subscribers_share_a_topic() {
        let members = [
            member("a", &["x"]),
            member("b", &["x", "y"]),
            member("c", &["y"]),
        ];
        let a = check_valid(&RangeAssignor, &members, &counts(&[("x", 4), ("y", 3)]));
        assert_eq!(a["a"], parts("x", &[0, 1]));
        let mut b = parts("x", &[2, 3]);
        b.extend(parts("y", &[0, 1]));
        assert_eq!(a["b"], b);
        assert_eq!(a["c"], parts("y", &[2]));
    }

    #[test]
    fn static_members_sort_by_instance_id() {
        let mut first = member("zzz", &["t"]);
        first.group_instance_id = Some("a".into());
        let mut second = member("aaa", &["t"]);
        second.group_instance_id = Some("b".into());
        let a = check_valid(&RangeAssignor, &[first, second], &counts(&[("t", 2)]));
        assert_eq!(a["zzz"], parts("t", &[0]));
        assert_eq!(a["aaa"], parts("t", &[1]));
    }

    #[test]
    fn more_members_than_partitions() {
        let members: Vec<_> = (0..5).map(|i| member(&format!("m{i}"), &["t"])).collect();
        let a = check_valid(&RangeAssignor, &members, &counts(&[("t", 3)]));
        assert_eq!(a.values().filter(|l| l.len() == 1).count(), 3);
        assert_eq!(a.values().filter(|l| l.is_empty()).count(), 2);
    }
}
