//! Leadership balancing: a plan of leader transfers that spreads partition leaderships
//! evenly over the brokers, so no broker carries most of the produce load while others
//! idle (`strata cluster rebalance-leaders` executes it).
//!
//! The plan is computed from the leaders' own [`GroupStatus`] (only a leader knows it
//! leads for sure) and is greedy: repeatedly move one leadership from the broker leading
//! the most groups to the least loaded broker among that group's voters, until no move
//! lowers the spread. Each group moves at most once per plan; the caller executes the
//! transfers and may plan again once they have taken effect.

use std::collections::{BTreeMap, HashSet};

use crate::group::GroupStatus;

/// One leadership to move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfer {
    pub group: u64,
    pub from: u64,
    pub to: u64,
}

/// Plans transfers that even out leaderships over `nodes` (the brokers alive, which are
/// the only valid targets). `leaders` holds one status per group, from its leader.
pub fn plan_leader_transfers(leaders: &[GroupStatus], nodes: &[u64]) -> Vec<Transfer> {
    let alive: HashSet<u64> = nodes.iter().copied().collect();
    let mut load: BTreeMap<u64, usize> = nodes.iter().map(|&n| (n, 0)).collect();
    for s in leaders {
        *load.entry(s.id).or_default() += 1;
    }
    let mut moved = HashSet::new();
    let mut plan = Vec::new();
    loop {
        let best = leaders
            .iter()
            .filter(|s| !moved.contains(&s.group) && !s.joint)
            .filter_map(|s| {
                let from_load = load[&s.id];
                s.voters
                    .iter()
                    .filter(|&&v| v != s.id && alive.contains(&v))
                    .map(|&v| (v, load[&v]))
                    .min_by_key(|&(v, l)| (l, v))
                    .filter(|&(_, to_load)| to_load + 1 < from_load)
                    .map(|(to, to_load)| (from_load - to_load, s.group, s.id, to))
            })
            // The largest gap first; ties by group id, so the plan is deterministic.
            .max_by_key(|&(gap, group, _, _)| (gap, std::cmp::Reverse(group)));
        let Some((_, group, from, to)) = best else {
            return plan;
        };
        moved.insert(group);
        *load.entry(from).or_default() -= 1;
        *load.entry(to).or_default() += 1;
        plan.push(Transfer { group, from, to });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn led(group: u64, id: u64, voters: &[u64]) -> GroupStatus {
        GroupStatus {
            group,
            id,
            leader: id,
            term: 2,
            committed_index: 0,
            committed_offset: 0,
            last_index: 0,
            voters: voters.to_vec(),
            ..Default::default()
        }
    }

    fn loads(leaders: &[GroupStatus], plan: &[Transfer]) -> BTreeMap<u64, usize> {
        let mut by_group: BTreeMap<u64, u64> = leaders.iter().map(|s| (s.group, s.id)).collect();
        for t in plan {
            assert_eq!(by_group[&t.group], t.from);
            by_group.insert(t.group, t.to);
        }
        let mut out = BTreeMap::new();
        for id in by_group.values() {
            *out.entry(*id).or_default() += 1;
        }
        out
    }

    #[test]
    fn all_on_one_broker_spread_evenly() {
        let leaders: Vec<_> = (1..=6).map(|g| led(g, 1, &[1, 2, 3])).collect();
        let plan = plan_leader_transfers(&leaders, &[1, 2, 3]);
        assert_eq!(plan.len(), 4);
        assert!(loads(&leaders, &plan).values().all(|&n| n == 2));
    }

    #[test]
    fn balanced_needs_nothing_and_targets_must_be_alive_voters() {
        let leaders = vec![led(1, 1, &[1, 2]), led(2, 2, &[1, 2]), led(3, 3, &[1, 3])];
        assert!(plan_leader_transfers(&leaders, &[1, 2, 3]).is_empty());
        // One extra leadership is within the spread of one.
        let leaders = vec![led(1, 1, &[1, 2]), led(2, 2, &[1, 2]), led(3, 1, &[1, 2])];
        assert!(plan_leader_transfers(&leaders, &[1, 2]).is_empty());
        // Broker 2 is down: nothing can go there, and 1 → 3 is only possible for group 3.
        let leaders: Vec<_> = (1..=4).map(|g| led(g, 1, &[1, 2])).collect();
        assert!(plan_leader_transfers(&leaders, &[1, 3]).is_empty());
        let mut leaders = leaders;
        leaders.push(led(5, 1, &[1, 3]));
        let plan = plan_leader_transfers(&leaders, &[1, 3]);
        assert_eq!(
            plan,
            vec![Transfer {
                group: 5,
                from: 1,
                to: 3
            }]
        );
    }

    #[test]
    fn groups_mid_change_stay_put() {
        let mut a = led(1, 1, &[1, 2]);
        let mut b = led(2, 1, &[1, 2]);
        assert_eq!(
            plan_leader_transfers(&[a.clone(), b.clone()], &[1, 2]).len(),
            1
        );
        a.joint = true;
        b.joint = true;
        assert!(plan_leader_transfers(&[a, b], &[1, 2]).is_empty());
    }
}
