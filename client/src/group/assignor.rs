//! Client-side partition assignment, as in Kafka: the coordinator picks one protocol
//! (assignor name) every member supports, the elected leader runs that assignor over
//! every member's subscription and sends the result in SyncGroup.
//!
//! Every assignor here guarantees, for the topics that exist: each partition of a topic
//! at least one member subscribes to goes to exactly one member that subscribes to it;
//! no member gets a partition of a topic it did not subscribe to; the result is a pure
//! function of the members (sorted by `group.instance.id`, else member id), their
//! subscriptions and the partition counts, so any leader computes the same answer.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

use crate::group::protocol::Subscription;
use crate::topic_partition::TopicPartition;

pub use crate::group::range::RangeAssignor;
pub use crate::group::round_robin::RoundRobinAssignor;
pub use crate::group::sticky::StickyAssignor;

/// One member as the leader sees it in the JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSubscription {
    /// The member id the coordinator gave it.
    pub member_id: String,
    /// Its `group.instance.id`, for static members.
    pub group_instance_id: Option<String>,
    /// What it subscribed to (and owned before).
    pub subscription: Subscription,
}

impl MemberSubscription {
    /// The key members are ordered by: the stable `group.instance.id` where there is
    /// one (so a restarted static member gets its partitions back), else the member id.
    pub fn sort_key(&self) -> (&str, &str) {
        (
            self.group_instance_id.as_deref().unwrap_or(""),
            self.member_id.as_str(),
        )
    }

    /// Whether it subscribed to `topic`.
    pub fn subscribes_to(&self, topic: &str) -> bool {
        self.subscription.topics.iter().any(|t| t == topic)
    }
}

/// Member id → the partitions it is assigned (every member has an entry, possibly
/// empty; each list sorted).
pub type Assignment = BTreeMap<String, Vec<TopicPartition>>;

/// A partition assignment strategy (Kafka's `partition.assignment.strategy`).
pub trait Assignor: Send + Sync + Debug {
    /// The protocol name members announce (`range`, `roundrobin`, `sticky`), the same
    /// as the Java client's so mixed groups agree.
    fn name(&self) -> &'static str;

    /// Assigns the partitions of `partition_counts` (topic → number of partitions; only
    /// topics that exist) to `members`. See the module documentation for what every
    /// implementation guarantees.
    fn assign(
        &self,
        members: &[MemberSubscription],
        partition_counts: &BTreeMap<String, i32>,
    ) -> Assignment;
}

/// The assignor named `name`, if this client has it.
pub fn by_name(name: &str) -> Option<Arc<dyn Assignor>> {
    match name {
        "range" => Some(Arc::new(RangeAssignor)),
        "roundrobin" => Some(Arc::new(RoundRobinAssignor)),
        "sticky" => Some(Arc::new(StickyAssignor)),
        _ => None,
    }
}

/// Members sorted by [`MemberSubscription::sort_key`].
pub(crate) fn sorted_members(members: &[MemberSubscription]) -> Vec<&MemberSubscription> {
    let mut sorted: Vec<&MemberSubscription> = members.iter().collect();
    sorted.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    sorted
}

/// An assignment with an empty entry for every member.
pub(crate) fn empty_assignment(members: &[MemberSubscription]) -> Assignment {
    members
        .iter()
        .map(|m| (m.member_id.clone(), Vec::new()))
        .collect()
}

/// The partitions of every topic that exists and that some member subscribes to, in
/// (topic, partition) order.
pub(crate) fn subscribed_partitions(
    members: &[MemberSubscription],
    partition_counts: &BTreeMap<String, i32>,
) -> Vec<TopicPartition> {
    partition_counts
        .iter()
        .filter(|(topic, _)| members.iter().any(|m| m.subscribes_to(topic)))
        .flat_map(|(topic, &count)| {
            (0..count.max(0)).map(|p| TopicPartition::new(topic.clone(), p))
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeSet;

    use super::*;

    pub fn member(id: &str, topics: &[&str]) -> MemberSubscription {
        MemberSubscription {
            member_id: id.to_string(),
            group_instance_id: None,
            subscription: Subscription {
                topics: topics.iter().map(|t| t.to_string()).collect(),
                generation: -1,
                ..Subscription::default()
            },
        }
    }

    pub fn counts(topics: &[(&str, i32)]) -> BTreeMap<String, i32> {
        topics.iter().map(|&(t, n)| (t.to_string(), n)).collect()
    }

    /// The guarantees of the module documentation.
    pub fn check_valid(
        assignor: &dyn Assignor,
        members: &[MemberSubscription],
        partition_counts: &BTreeMap<String, i32>,
    ) -> Assignment {
        let assignment = assignor.assign(members, partition_counts);
        let ids: BTreeSet<&str> = members.iter().map(|m| m.member_id.as_str()).collect();
        let keys: BTreeSet<&str> = assignment.keys().map(String::as_str).collect();
        assert_eq!(ids, keys, "every member has an entry, and only members");
        let mut seen = BTreeSet::new();
        for (id, partitions) in &assignment {
            let m = members.iter().find(|m| &m.member_id == id).unwrap();
            let mut sorted = partitions.clone();
            sorted.sort();
            assert_eq!(&sorted, partitions, "{id}'s list is sorted");
            for tp in partitions {
                assert!(m.subscribes_to(&tp.topic), "{id} got {tp} unsubscribed");
                assert!(seen.insert(tp.clone()), "{tp} assigned twice");
            }
        }
        let expected: BTreeSet<TopicPartition> = subscribed_partitions(members, partition_counts)
            .into_iter()
            .collect();
        assert_eq!(seen, expected, "every subscribed partition assigned");
        // Determinism: member order in the input does not matter.
        let mut reversed = members.to_vec();
        reversed.reverse();
        assert_eq!(assignor.assign(&reversed, partition_counts), assignment);
        assignment
    }

    /// max − min partitions per member, over members that subscribe to everything.
    pub fn spread(assignment: &Assignment) -> usize {
        let sizes: Vec<usize> = assignment.values().map(Vec::len).collect();
        sizes.iter().max().unwrap_or(&0) - sizes.iter().min().unwrap_or(&0)
    }

    /// A small deterministic generator for randomized cases (no dependency needed).
    pub struct Lcg(pub u64);
    impl Lcg {
        pub fn next(&mut self, bound: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) % bound.max(1)
        }
    }

    /// Random groups: 1–8 members over up to 4 topics of 0–12 partitions, some
    /// subscribing to a subset, some static.
    pub fn random_cases(
        seed: u64,
        cases: usize,
    ) -> Vec<(Vec<MemberSubscription>, BTreeMap<String, i32>)> {
        let mut rng = Lcg(seed);
        let topics = ["a", "b", "c", "d"];
        (0..cases)
            .map(|_| {
                let topic_count = 1 + rng.next(4) as usize;
                let counts: BTreeMap<String, i32> = topics[..topic_count]
                    .iter()
                    .map(|t| (t.to_string(), rng.next(13) as i32))
                    .collect();
                let member_count = 1 + rng.next(8) as usize;
                let members = (0..member_count)
                    .map(|i| {
                        let mut subscribed: Vec<&str> = topics[..topic_count]
                            .iter()
                            .copied()
                            .filter(|_| rng.next(4) != 0)
                            .collect();
                        if subscribed.is_empty() {
                            subscribed.push(topics[0]);
                        }
                        // A topic that does not exist is ignored.
                        if rng.next(5) == 0 {
                            subscribed.push("missing");
                        }
                        let mut m = member(
                            &format!("m-{}", rng.next(1000) * 10 + i as u64),
                            &subscribed,
                        );
                        if rng.next(3) == 0 {
                            m.group_instance_id = Some(format!("i-{i}"));
                        }
                        m
                    })
                    .collect();
                (members, counts)
            })
            .collect()
    }

    #[test]
    fn names_resolve() {
        for name in ["range", "roundrobin", "sticky"] {
            assert_eq!(by_name(name).unwrap().name(), name);
        }
        assert!(by_name("cooperative-sticky").is_none());
    }

    #[test]
    fn every_assignor_is_valid_on_random_groups() {
        for name in ["range", "roundrobin", "sticky"] {
            let assignor = by_name(name).unwrap();
            for (members, counts) in random_cases(42, 300) {
                check_valid(assignor.as_ref(), &members, &counts);
            }
        }
    }

    #[test]
    fn no_members_or_no_partitions() {
        for name in ["range", "roundrobin", "sticky"] {
            let assignor = by_name(name).unwrap();
            assert!(assignor.assign(&[], &counts(&[("a", 3)])).is_empty());
            let a = check_valid(assignor.as_ref(), &[member("x", &["a"])], &counts(&[]));
            assert_eq!(a["x"], vec![]);
        }
    }
}
