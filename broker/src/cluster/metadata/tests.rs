use super::*;
use kafka_protocol::error::ResponseError;

fn register(s: &mut MetadataState, n: u64) {
    for id in 1..=n {
        s.apply(MetaRecord::RegisterBroker {
            id,
            host: "127.0.0.1".into(),
            port: 9000 + id as i32,
            admin: String::new(),
            incarnation: String::new(),
            listeners: Default::default(),
        });
    }
}

fn create(name: &str, request: u64, partitions: i32, rf: i16) -> MetaRecord {
    MetaRecord::CreateTopic {
        request,
        name: name.into(),
        id: format!("id-{name}"),
        partitions,
        replication_factor: rf,
        config: BTreeMap::new(),
    }
}

#[test]
fn records_round_trip_and_garbage_is_an_error() {
    let r = create("t", 7, 3, -1);
    assert_eq!(MetaRecord::decode(&r.encode()).unwrap(), r);
    assert!(MetaRecord::decode(b"{\"type\":\"nope\"}").is_err());
    assert!(MetaRecord::decode(&[0xff, 0x00]).is_err());
}

#[test]
fn placement_spreads_over_an_even_number_of_brokers_too() {
    // Found by the move test: a start moving on by two used only brokers 1 and 3
    // as first replicas with four brokers.
    let mut s = MetadataState::new();
    register(&mut s, 4);
    s.apply(create("t", 1, 8, 3));
    let mut first = BTreeMap::new();
    let mut held = BTreeMap::new();
    for p in &s.topics["t"].partitions {
        *first.entry(p.replicas[0]).or_insert(0) += 1;
        for r in &p.replicas {
            *held.entry(*r).or_insert(0) += 1;
        }
    }
    assert_eq!(first.values().copied().collect::<Vec<_>>(), vec![2; 4]);
    assert_eq!(held.values().copied().collect::<Vec<_>>(), vec![6; 4]);
}

#[test]
fn placement_spreads_replicas_and_leaders() {
    let mut s = MetadataState::new();
    register(&mut s, 3);
    assert_eq!(s.apply(create("t", 1, 6, 3)), Change::Topic("t".into()));
    assert_eq!(s.outcome(1), Some(&Ok(())));
    let t = &s.topics["t"];
    let mut first = BTreeMap::new();
    for p in &t.partitions {
        assert_eq!(p.replicas.len(), 3);
        let mut r = p.replicas.clone();
        r.sort_unstable();
        r.dedup();
        assert_eq!(r.len(), 3, "distinct replicas");
        *first.entry(p.replicas[0]).or_insert(0) += 1;
    }
    assert_eq!(first.values().copied().collect::<Vec<_>>(), vec![2, 2, 2]);
    let groups: Vec<u64> = t.partitions.iter().map(|p| p.group).collect();
    assert_eq!(groups, (1000..1006).collect::<Vec<_>>());
}

#[test]
fn refusals_are_recorded_for_the_proposer() {
    let mut s = MetadataState::new();
    register(&mut s, 2);
    s.apply(create("t", 1, 1, 1));
    s.apply(create("t", 2, 1, 1));
    assert_eq!(
        s.outcome(2).unwrap().as_ref().unwrap_err().code,
        ResponseError::TopicAlreadyExists.code()
    );
    s.apply(create("u", 3, 1, 3));
    assert_eq!(
        s.outcome(3).unwrap().as_ref().unwrap_err().code,
        ResponseError::InvalidReplicationFactor.code()
    );
    s.apply(create("bad name", 4, 1, 1));
    assert!(s.outcome(4).unwrap().is_err());
    // -1 takes what there is.
    s.apply(create("v", 5, 1, -1));
    assert_eq!(s.topics["v"].partitions[0].replicas.len(), 2);
    s.apply(MetaRecord::CreatePartitions {
        request: 6,
        name: "v".into(),
        count: 3,
    });
    assert_eq!(s.topics["v"].partitions.len(), 3);
    s.apply(MetaRecord::CreatePartitions {
        request: 7,
        name: "v".into(),
        count: 2,
    });
    assert!(s.outcome(7).unwrap().is_err());
    let deleted = s.apply(MetaRecord::DeleteTopic {
        request: 8,
        name: "v".into(),
    });
    assert!(
        matches!(deleted, Change::TopicDeleted(ref n, ref t) if n == "v" && t.partitions.len() == 3)
    );
    s.apply(MetaRecord::DeleteTopic {
        request: 9,
        name: "v".into(),
    });
    assert!(s.outcome(9).unwrap().is_err());
}

#[test]
fn stale_leader_reports_are_ignored_and_outcomes_are_bounded() {
    let mut s = MetadataState::new();
    s.apply(MetaRecord::Leader {
        group: 1000,
        leader: 2,
        term: 5,
    });
    s.apply(MetaRecord::Leader {
        group: 1000,
        leader: 1,
        term: 4,
    });
    assert_eq!(s.leaders[&1000], (2, 5));
    register(&mut s, 1);
    for r in 0..(OUTCOMES_KEPT as u64 + 10) {
        s.apply(MetaRecord::DeleteTopic {
            request: r,
            name: "missing".into(),
        });
    }
    assert!(s.outcome(0).is_none());
    assert!(s.outcome(OUTCOMES_KEPT as u64 + 9).is_some());
}

#[test]
fn a_move_is_validated_recorded_and_ended_by_its_report() {
    let mut s = MetadataState::new();
    register(&mut s, 4);
    s.apply(create("t", 1, 1, 3));
    let before = s.topics["t"].partitions[0].clone();
    let mv = |request, partition, to: &[u64]| MetaRecord::MovePartition {
        request,
        topic: "t".into(),
        partition,
        to: to.to_vec(),
    };
    let code = |s: &MetadataState, r| s.outcome(r).unwrap().as_ref().unwrap_err().code;
    s.apply(mv(2, 1, &[1, 2, 3]));
    assert_eq!(code(&s, 2), ResponseError::UnknownTopicOrPartition.code());
    s.apply(mv(3, 0, &[1, 1, 2]));
    assert_eq!(code(&s, 3), ResponseError::InvalidReplicaAssignment.code());
    s.apply(mv(4, 0, &[1, 2, 9]));
    assert_eq!(code(&s, 4), ResponseError::InvalidReplicaAssignment.code());
    s.apply(mv(5, 0, &[]));
    assert_eq!(code(&s, 5), ResponseError::InvalidReplicaAssignment.code());
    assert_eq!(
        s.topics["t"].partitions[0], before,
        "refusals change nothing"
    );
    // The same brokers in another order: only the preferred leader changes.
    let mut reordered = before.replicas.clone();
    reordered.reverse();
    assert_eq!(s.apply(mv(6, 0, &reordered)), Change::Topic("t".into()));
    assert_eq!(s.topics["t"].partitions[0].replicas, reordered);
    assert!(s.moves().is_empty());
    // A real move: the target is recorded; a second move is refused meanwhile.
    let spare = (1..=4).find(|n| !before.replicas.contains(n)).unwrap();
    let to = vec![reordered[0], reordered[1], spare];
    assert_eq!(s.apply(mv(7, 0, &to)), Change::Topic("t".into()));
    assert_eq!(s.outcome(7), Some(&Ok(())));
    assert_eq!(s.moves(), vec![(before.group, to.clone())]);
    let p = &s.topics["t"].partitions[0];
    assert!(p.hosts(spare) && p.hosts(reordered[2]));
    assert_eq!(p.all_replicas().len(), 4);
    s.apply(mv(8, 0, &before.replicas));
    assert_eq!(code(&s, 8), ResponseError::ReassignmentInProgress.code());
    // Only a report naming the target ends it; a late copy changes nothing.
    let done = |replicas: &[u64]| MetaRecord::MoveDone {
        group: before.group,
        replicas: replicas.to_vec(),
    };
    assert_eq!(s.apply(done(&before.replicas)), Change::None);
    assert_eq!(s.apply(done(&to)), Change::Topic("t".into()));
    let p = &s.topics["t"].partitions[0];
    assert_eq!((p.replicas.clone(), p.target.clone()), (to.clone(), None));
    assert!(!p.hosts(reordered[2]));
    assert_eq!(s.apply(done(&to)), Change::None);
    let r = mv(9, 0, &[1, 2, 3]);
    assert_eq!(MetaRecord::decode(&r.encode()).unwrap(), r);
}

#[test]
fn a_checkpoint_holds_the_whole_state_and_only_counts_where_it_was_taken() {
    let mut s = MetadataState::new();
    register(&mut s, 3);
    s.apply(create("t", 1, 4, 3));
    s.apply(MetaRecord::Leader {
        group: 1001,
        leader: 2,
        term: 7,
    });
    s.apply(create("t", 2, 1, 1)); // a refusal, remembered for its proposer
    s.apply(MetaRecord::ClusterId { id: "c1".into() });
    let record = MetaRecord::Checkpoint {
        through: 9,
        state: Box::new(s.clone()),
    };
    let decoded = MetaRecord::decode(&record.encode()).unwrap();
    assert_eq!(decoded, record, "the state survives JSON");
    // A fresh replica replaying from the checkpoint gets the whole state.
    let mut fresh = MetadataState::new();
    assert_eq!(fresh.apply_at(10, decoded.clone()), (Change::All, true));
    assert_eq!(fresh, s);
    assert!(fresh.outcome(2).unwrap().is_err());
    // One that applied everything: valid, nothing to do.
    assert_eq!(
        s.clone().apply_at(10, decoded.clone()),
        (Change::None, true)
    );
    // Taken before a record that landed in between: ignored, it would undo it.
    let mut later = s.clone();
    later.apply(MetaRecord::DeleteTopic {
        request: 3,
        name: "t".into(),
    });
    let before = later.clone();
    assert_eq!(later.apply_at(11, decoded), (Change::None, false));
    assert_eq!(later, before);
    // New groups continue from the checkpoint's counter.
    fresh.apply(create("u", 4, 1, 1));
    assert_eq!(fresh.topics["u"].partitions[0].group, 1004);
}

#[test]
fn producer_id_blocks_never_overlap() {
    let mut s = MetadataState::new();
    let grant = |s: &mut MetadataState, request, node| {
        s.apply(MetaRecord::AllocateProducerIds { request, node });
        assert_eq!(s.outcome(request), Some(&Ok(())));
        s.producer_blocks[&node]
    };
    let a = grant(&mut s, 1, 1);
    let b = grant(&mut s, 2, 2);
    let c = grant(&mut s, 3, 1);
    assert_eq!((a, b, c), (0, PRODUCER_ID_BLOCK, 2 * PRODUCER_ID_BLOCK));
    // A resent request is applied once.
    s.apply(MetaRecord::AllocateProducerIds {
        request: 3,
        node: 1,
    });
    assert_eq!(s.next_producer_id, 3 * PRODUCER_ID_BLOCK);
}

#[test]
fn an_import_applies_whole_once_and_again_changes_nothing() {
    let topic = |name: &str, id: &str, partitions| ImportedTopic {
        name: name.into(),
        id: id.into(),
        partitions,
        config: BTreeMap::from([("cleanup.policy".into(), "compact".into())]),
    };
    let import = |request, cluster_id: &str, topics: Vec<ImportedTopic>| MetaRecord::Import {
        request,
        node: 1,
        cluster_id: cluster_id.into(),
        topics,
        next_producer_id: 5000,
    };
    let mut s = MetadataState::new();
    let both = vec![topic("__consumer_offsets", "a", 3), topic("t", "b", 2)];
    assert_eq!(s.apply(import(1, "c1", both.clone())), Change::All);
    assert_eq!(s.cluster_id.as_deref(), Some("c1"));
    assert_eq!(s.next_producer_id, 5000);
    let t = &s.topics["t"];
    assert_eq!((t.id.as_str(), t.partitions.len()), ("b", 2));
    assert!(t.partitions.iter().all(|p| p.replicas == [1]));
    assert_eq!(t.config["cleanup.policy"], "compact");
    let groups: Vec<u64> = s
        .topics
        .values()
        .flat_map(|t| &t.partitions)
        .map(|p| p.group)
        .collect();
    assert_eq!(groups, (1000..1005).collect::<Vec<_>>());
    // Imported again under a new request id (a resumed conversion): nothing changes.
    let before = s.clone();
    assert_eq!(s.apply(import(2, "c1", both.clone())), Change::None);
    assert_eq!(s.outcome(2), Some(&Ok(())));
    assert_eq!(
        (&s.topics, s.next_group),
        (&before.topics, before.next_group)
    );
    // Another id for a topic, or another cluster: refused, nothing applied.
    let clash = vec![topic("u", "c", 1), topic("t", "other", 2)];
    assert_eq!(s.apply(import(3, "c1", clash)), Change::None);
    assert!(matches!(s.outcome(3), Some(Err(_))));
    assert!(!s.topics.contains_key("u"));
    assert_eq!(
        s.apply(import(4, "c2", vec![topic("u", "c", 1)])),
        Change::None
    );
    let refused = s.outcome(4).unwrap().clone().unwrap_err();
    assert_eq!(refused.code, ResponseError::InconsistentClusterId.code());
    assert!(!s.topics.contains_key("u"));
}
