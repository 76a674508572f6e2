//! The group state machine driven through joins, syncs, heartbeats and time.

use super::*;
use crate::config::GroupConfig;
use kafka_protocol::error::ResponseError;

fn config() -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay: Duration::ZERO,
        ..GroupConfig::default()
    }
}

fn params(member_id: &str) -> JoinParams {
    JoinParams {
        member_id: member_id.into(),
        instance_id: None,
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 20_000,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::from_static(b"r"))],
        require_known_member_id: true,
        supports_skip_assignment: false,
    }
}

/// A SyncGroup of `member_id` at `generation` handing in `assignments`.
fn sync_params(member_id: &str, generation: i32, assignments: Vec<(String, Bytes)>) -> SyncParams {
    SyncParams {
        member_id: member_id.into(),
        instance_id: None,
        generation,
        protocol_type: None,
        protocol_name: None,
        assignments,
    }
}

fn now_answer<T>(a: Answer<T>) -> T {
    match a {
        Answer::Now(t) => t,
        Answer::Wait(_) => panic!("expected an immediate answer"),
    }
}

fn waited<T>(a: Answer<T>) -> oneshot::Receiver<T> {
    match a {
        Answer::Wait(rx) => rx,
        Answer::Now(_) => panic!("expected to wait"),
    }
}

/// Joins a new member through MEMBER_ID_REQUIRED; returns its id and join receiver.
fn join_new(g: &mut Group, now: Instant) -> (String, oneshot::Receiver<JoinResult>) {
    let first = now_answer(g.join(params(""), &config(), now, 0));
    assert_eq!(code(&first.error), ResponseError::MemberIdRequired.code());
    let id = first.member_id.clone();
    let rx = waited(g.join(params(&id), &config(), now, 0));
    (id, rx)
}

#[test]
fn two_members_join_sync_and_become_stable() {
    let now = Instant::now();
    let mut g = Group::new("g", 0);
    let (a, mut rx_a) = join_new(&mut g, now);
    // One member, everyone joined, no delay: generation 1 at once.
    let ja = rx_a.try_recv().unwrap();
    assert_eq!(
        (code(&ja.error), ja.generation, ja.leader.as_str()),
        (0, 1, a.as_str())
    );
    assert_eq!(ja.members.len(), 1);
    assert_eq!(g.state, GroupState::CompletingRebalance);

    // A second member joins: the group goes back to PreparingRebalance until `a`
    // rejoins.
    let (b, mut rx_b) = join_new(&mut g, now);
    assert_eq!(g.state, GroupState::PreparingRebalance);
    assert!(rx_b.try_recv().is_err());
    let mut rx_a = waited(g.join(params(&a), &config(), now, 0));
    let (ja, jb) = (rx_a.try_recv().unwrap(), rx_b.try_recv().unwrap());
    assert_eq!((ja.generation, jb.generation), (2, 2));
    assert_eq!(ja.leader, a);
    assert_eq!((ja.members.len(), jb.members.len()), (2, 0));

    // The follower's sync waits for the leader's.
    let sync = |id: &str, assignments: Vec<(String, Bytes)>| SyncParams {
        protocol_type: Some("consumer".into()),
        protocol_name: Some("range".into()),
        ..sync_params(id, 2, assignments)
    };
    let mut sb = waited(g.sync(sync(&b, vec![]), now, 0));
    assert!(sb.try_recv().is_err());
    let mut sa = waited(g.sync(
        sync(
            &a,
            vec![
                (a.clone(), Bytes::from_static(b"A")),
                (b.clone(), Bytes::from_static(b"B")),
            ],
        ),
        now,
        0,
    ));
    assert_eq!(g.state, GroupState::Stable);
    assert!(g.take_persist());
    g.fire_syncs(Ok(Some(7)), now);
    assert_eq!(sa.try_recv().unwrap().assignment, Bytes::from_static(b"A"));
    let rb = sb.try_recv().unwrap();
    assert_eq!(
        (rb.assignment, rb.durable_at),
        (Bytes::from_static(b"B"), Some(7))
    );

    // Fencing: an old generation and an unknown member.
    assert_eq!(
        GroupError::code_of(&g.heartbeat(&a, None, 1, now)),
        ResponseError::IllegalGeneration.code()
    );
    assert_eq!(
        GroupError::code_of(&g.heartbeat("nobody", None, 2, now)),
        ResponseError::UnknownMemberId.code()
    );
    assert_eq!(GroupError::code_of(&g.heartbeat(&b, None, 2, now)), 0);
    // An admin commit is refused while the group has members.
    assert_eq!(
        g.check_commit("", None, -1, now).map_err(|e| e.code()),
        Err(ResponseError::UnknownMemberId.code())
    );
}

#[test]
fn session_expiry_removes_a_member_and_rebalances() {
    let now = Instant::now();
    let mut g = Group::new("g", 0);
    let (a, _rx) = join_new(&mut g, now);
    let generation = g.generation;
    let s = sync_params(&a, generation, vec![]);
    let _sa = waited(g.sync(s, now, 0));
    g.fire_syncs(Ok(None), now);
    assert_eq!(g.state, GroupState::Stable);
    g.expire(now + Duration::from_secs(5), 0);
    assert_eq!(g.members.len(), 1);
    g.expire(now + Duration::from_secs(11), 0);
    assert!(g.members.is_empty());
    assert_eq!(g.state, GroupState::Empty);
    assert_eq!(g.generation, generation + 1);
    assert!(g.check_commit("", None, -1, now).is_ok());
}

#[test]
fn rebalance_timeout_drops_members_that_do_not_rejoin() {
    let now = Instant::now();
    let mut g = Group::new("g", 0);
    let (a, _) = join_new(&mut g, now);
    let (_b, mut rx_b) = join_new(&mut g, now);
    assert_eq!(g.state, GroupState::PreparingRebalance);
    // `a` never rejoins; 20 s rebalance timeout.
    assert!(matches!(
        g.heartbeat(&a, None, 1, now),
        Err(GroupError::RebalanceInProgress)
    ));
    g.expire(now + Duration::from_secs(21), 0);
    let jb = rx_b.try_recv().unwrap();
    assert_eq!(code(&jb.error), 0);
    assert_eq!(g.members.len(), 1);
    assert_eq!(jb.leader, jb.member_id);
}

#[test]
fn a_member_that_hung_up_while_joining_is_not_waited_for() {
    let now = Instant::now();
    let mut g = Group::new("g", 0);
    let (a, _rx_a) = join_new(&mut g, now);
    // `b` joins, which starts a rebalance, and then its connection closes.
    let (_b, rx_b) = join_new(&mut g, now);
    drop(rx_b);
    let mut rx_a = waited(g.join(params(&a), &config(), now, 0));
    assert!(rx_a.try_recv().is_err(), "b's session has not ended yet");
    g.expire(now + Duration::from_secs(5), 0);
    assert_eq!(g.members.len(), 2);
    // b's session (10 s) ends: it is removed and the rebalance completes without it.
    g.expire(now + Duration::from_secs(11), 0);
    assert_eq!(g.members.len(), 1);
    let ja = rx_a.try_recv().unwrap();
    assert_eq!((code(&ja.error), ja.members.len()), (0, 1));
}

#[test]
fn static_member_rejoining_keeps_its_assignment_and_fences_the_old_id() {
    let now = Instant::now();
    let mut g = Group::new("g", 0);
    let mut p = params("");
    p.instance_id = Some("i1".into());
    let mut rx = waited(g.join(p.clone(), &config(), now, 0));
    let first = rx.try_recv().unwrap();
    let old = first.member_id.clone();
    let _s = waited(g.sync(
        SyncParams {
            instance_id: Some("i1".into()),
            ..sync_params(
                &old,
                first.generation,
                vec![(old.clone(), Bytes::from_static(b"X"))],
            )
        },
        now,
        0,
    ));
    g.fire_syncs(Ok(None), now);
    // The process restarts: unknown member id, same instance id; v9 leader skips
    // the assignment.
    p.supports_skip_assignment = true;
    let again = now_answer(g.join(p, &config(), now, 0));
    assert_eq!(code(&again.error), 0);
    assert_ne!(again.member_id, old);
    assert_eq!(again.generation, first.generation);
    assert!(again.skip_assignment);
    assert_eq!(g.state, GroupState::Stable);
    assert_eq!(
        GroupError::code_of(&g.heartbeat(&old, Some("i1"), first.generation, now)),
        ResponseError::FencedInstanceId.code()
    );
    assert_eq!(
        GroupError::code_of(&g.heartbeat(&again.member_id, Some("i1"), first.generation, now)),
        0
    );
    assert_eq!(
        GroupError::code_of(&g.leave(&old, Some("i1"), now, 0)),
        ResponseError::FencedInstanceId.code()
    );
    assert_eq!(
        GroupError::code_of(&g.leave(&again.member_id, Some("i1"), now, 0)),
        0
    );
    assert_eq!(g.state, GroupState::Empty);
}

/// Joins a static member (no MEMBER_ID_REQUIRED round) and returns its receiver.
fn join_static(g: &mut Group, instance: &str, now: Instant) -> oneshot::Receiver<JoinResult> {
    let mut p = params("");
    p.instance_id = Some(instance.into());
    waited(g.join(p, &config(), now, 0))
}

fn sync_all(g: &mut Group, leader: &str, generation: i32, now: Instant) {
    let ids: Vec<String> = g.members.keys().cloned().collect();
    let _rx = waited(
        g.sync(
            SyncParams {
                instance_id: g.members[leader].instance_id.clone(),
                ..sync_params(
                    leader,
                    generation,
                    ids.into_iter()
                        .map(|id| (id, Bytes::from_static(b"a")))
                        .collect(),
                )
            },
            now,
            0,
        ),
    );
    g.fire_syncs(Ok(Some(1)), now);
}

#[test]
fn complete_join_keeps_static_members_that_did_not_rejoin() {
    let now = Instant::now();
    let mut g = Group::new("g", 0);
    let mut rx1 = join_static(&mut g, "i1", now);
    let j1 = rx1.try_recv().unwrap();
    sync_all(&mut g, &j1.member_id, j1.generation, now);
    // b joins; i1 does not rejoin; at the rebalance deadline (20 s) i1 is kept
    // (dynamic members would be dropped) if its session still runs: make it long.
    g.members.get_mut(&j1.member_id).unwrap().session_timeout = Duration::from_secs(60);
    g.members.get_mut(&j1.member_id).unwrap().session_deadline = now + Duration::from_secs(60);
    let (b, mut rx_b) = join_new(&mut g, now);
    g.expire(now + Duration::from_secs(21), 0);
    let jb = rx_b.try_recv().unwrap();
    assert_eq!((code(&jb.error), jb.generation), (0, 2));
    assert_eq!(
        jb.leader, b,
        "the leader is chosen among members that rejoined"
    );
    assert_eq!(
        jb.members.len(),
        2,
        "the absent static member is still assigned"
    );
    assert!(g.members.contains_key(&j1.member_id));
    // When it comes back with a new process it takes its place without a rebalance.
    sync_all(&mut g, &b, 2, now + Duration::from_secs(21));
    let mut p = params("");
    p.instance_id = Some("i1".into());
    p.supports_skip_assignment = true;
    let back = now_answer(g.join(p, &config(), now + Duration::from_secs(22), 0));
    assert_eq!((code(&back.error), back.generation), (0, 2));
    assert_eq!(g.state, GroupState::Stable);
}

#[test]
fn an_empty_group_takes_the_protocol_type_of_its_next_member() {
    let now = Instant::now();
    let mut g = Group::new("g", 0);
    let (a, _) = join_new(&mut g, now);
    assert_eq!(GroupError::code_of(&g.leave(&a, None, now, 0)), 0);
    assert_eq!(g.state, GroupState::Empty);
    let mut p = params("");
    p.protocol_type = "connect".into();
    p.require_known_member_id = false;
    let mut rx = waited(g.join(p, &config(), now, 0));
    let j = rx.try_recv().unwrap();
    assert_eq!(j.protocol_type.as_deref(), Some("connect"));
}

#[test]
fn a_synced_follower_gets_a_fresh_session_and_zombies_are_fenced_first() {
    let now = Instant::now();
    let mut g = Group::new("g", 0);
    let (a, _) = join_new(&mut g, now);
    let (b, _rx_b) = join_new(&mut g, now);
    let _ = g.join(params(&a), &config(), now, 0);
    assert_eq!(g.state, GroupState::CompletingRebalance);
    // A zombie from generation 1 commits during CompletingRebalance: fenced by its
    // generation before it hears of the rebalance.
    assert_eq!(
        g.check_commit(&a, None, 1, now).map_err(|e| e.code()),
        Err(ResponseError::IllegalGeneration.code())
    );
    assert_eq!(
        g.check_commit(&a, None, 2, now).map_err(|e| e.code()),
        Err(ResponseError::RebalanceInProgress.code())
    );
    // b syncs at once; the leader takes 9 s (b's session is 10 s).
    let _sb = waited(g.sync(sync_params(&b, 2, vec![]), now, 0));
    let late = now + Duration::from_secs(9);
    let _sa = waited(g.sync(sync_params(&a, 2, vec![]), late, 0));
    g.fire_syncs(Ok(Some(3)), late);
    // 12 s after the start b has not heartbeated, but its session restarted at 9 s.
    g.expire(now + Duration::from_secs(12), 0);
    assert!(g.members.contains_key(&b));
    assert_eq!(g.state, GroupState::Stable);
}

#[test]
fn inconsistent_protocols_and_bad_timeouts_are_refused() {
    let now = Instant::now();
    let mut g = Group::new("g", 0);
    let (_a, _) = join_new(&mut g, now);
    let mut p = params("");
    p.protocols = vec![("roundrobin".into(), Bytes::new())];
    assert_eq!(
        code(&now_answer(g.join(p, &config(), now, 0)).error),
        ResponseError::InconsistentGroupProtocol.code()
    );
    let mut p = params("");
    p.session_timeout_ms = 10;
    assert_eq!(
        code(&now_answer(g.join(p, &config(), now, 0)).error),
        ResponseError::InvalidSessionTimeout.code()
    );
}

#[test]
fn the_most_preferred_common_protocol_wins() {
    let now = Instant::now();
    let mut g = Group::new("g", 0);
    let mut p = params("");
    p.require_known_member_id = false;
    p.protocols = vec![
        ("cooperative-sticky".into(), Bytes::new()),
        ("range".into(), Bytes::new()),
    ];
    let _a = waited(g.join(p.clone(), &config(), now, 0));
    p.protocols = vec![("range".into(), Bytes::new())];
    let mut rx = waited(g.join(p, &config(), now, 0));
    let ids: Vec<String> = g.members.keys().cloned().collect();
    // Rejoin the first member so the rebalance completes.
    let first = ids
        .iter()
        .find(|id| g.members[*id].protocols.len() == 2)
        .unwrap()
        .clone();
    let mut p = params(&first);
    p.protocols = vec![
        ("cooperative-sticky".into(), Bytes::new()),
        ("range".into(), Bytes::new()),
    ];
    let _ = g.join(p, &config(), now, 0);
    assert_eq!(
        rx.try_recv().unwrap().protocol_name.as_deref(),
        Some("range")
    );
}

/// A JoinGroup or SyncGroup answer's Kafka error code (0: none).
fn code(refusal: &Option<GroupError>) -> i16 {
    GroupError::code_or_none(refusal.as_ref())
}

#[test]
fn a_static_member_back_with_another_subscription_or_an_old_leader_rebalances() {
    let now = Instant::now();
    let static_join = |instance: &str, metadata: &'static [u8], skip: bool| {
        let mut p = params("");
        p.instance_id = Some(instance.into());
        p.protocols = vec![("range".into(), Bytes::from_static(metadata))];
        p.supports_skip_assignment = skip;
        p
    };
    // Alone, i1 leads a stable group at generation 1.
    let setup = || {
        let mut g = Group::new("g", 0);
        let mut rx = waited(g.join(static_join("i1", b"r", true), &config(), now, 0));
        let j = rx.try_recv().unwrap();
        sync_all(&mut g, &j.member_id, j.generation, now);
        assert_eq!(g.state, GroupState::Stable);
        g
    };
    // Same subscription, a leader that can skip the assignment: no rebalance.
    let mut g = setup();
    let same = now_answer(g.join(static_join("i1", b"r", true), &config(), now, 0));
    assert_eq!((code(&same.error), same.generation), (0, 1));
    assert_eq!(g.state, GroupState::Stable);
    // Another subscription (new topics or pattern): the group rebalances.
    let mut g = setup();
    let _changed = waited(g.join(static_join("i1", b"other", true), &config(), now, 0));
    assert_ne!(g.state, GroupState::Stable);
    // A leader below JoinGroup v9 cannot be told to skip: the group rebalances.
    let mut g = setup();
    let _old = waited(g.join(static_join("i1", b"r", false), &config(), now, 0));
    assert_ne!(g.state, GroupState::Stable);
}
