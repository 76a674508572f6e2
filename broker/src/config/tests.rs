use super::*;

#[test]
fn toml_keys_dotted_or_quoted_and_typos_refused() {
    let mut c = BrokerConfig::default();
    c.apply_toml(
        "data-dir = \"/tmp/x\"\nnode-id = 3\nnum.partitions = 4\n\"retention.ms\" = 1000\n\
         [auto.create.topics]\nenable = false\n",
    )
    .unwrap();
    assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
    assert_eq!(c.node_id, 3);
    assert_eq!(c.topics.num_partitions, 4);
    assert!(!c.topics.auto_create_topics);
    assert_eq!(c.topics.log.retention_ms, Some(1000));
    assert_eq!(c.retention_check_interval, DEFAULT_RETENTION_CHECK_INTERVAL);
    c.apply_toml("\"log.retention.check.interval.ms\" = 250")
        .unwrap();
    assert_eq!(c.retention_check_interval, Duration::from_millis(250));

    for bad in [
        "data-dirr = \"x\"",
        "num.partitions = 0",
        "node-id = -1",
        "segment.bytes = 3",
        "retention.ms = -5",
        "\"log.retention.check.interval.ms\" = 0",
        "cleanup.policy = \"shred\"",
        "kafka-addr = [1]",
        "not toml",
    ] {
        let err = BrokerConfig::default().apply_toml(bad).unwrap_err();
        assert!(matches!(err, BrokerError::Config(_)), "{bad}: {err}");
    }
}

#[test]
fn topic_config_round_trips_through_strings() {
    let mut t = TopicConfig::default();
    t.set("retention.bytes", "1048576").unwrap();
    t.set("retention.ms", "-1").unwrap();
    assert_eq!(t.get("retention.bytes").as_deref(), Some("1048576"));
    assert_eq!(t.get("retention.ms").as_deref(), Some("-1"));
    assert_eq!(t.log_config().retention_ms, None);
    t.reset("retention.bytes", &TopicConfig::default()).unwrap();
    assert_eq!(t.retention_bytes, None);
    assert!(t.set("max.message.bytes", "abc").is_err());
    assert!(t.set("no.such.key", "1").is_err());
    assert!(t.get("no.such.key").is_none());
}

#[test]
fn every_topic_key_reads_and_sets_its_own_default() {
    let defaults = TopicConfig::default();
    for key in topic_keys::TOPIC_KEYS {
        let value = defaults
            .get(key.name)
            .unwrap_or_else(|| panic!("{} has no value", key.name));
        let mut c = TopicConfig::default();
        c.set(key.name, &value)
            .unwrap_or_else(|e| panic!("{} = {value:?}: {e}", key.name));
        assert_eq!(c.get(key.name), Some(value), "{}", key.name);
    }
    assert_eq!(defaults.check(), Ok(()));
}

#[test]
fn broker_settings_set_topic_defaults_and_are_remembered() {
    let mut c = BrokerConfig::default();
    c.apply_toml(
        "\"log.retention.ms\" = 5000\n\"log.message.timestamp.type\" = \"LogAppendTime\"\n\
         \"compression.type\" = \"zstd\"\n",
    )
    .unwrap();
    assert_eq!(c.topics.log.retention_ms, Some(5000));
    assert!(c.topics.log.log_append_time);
    assert_eq!(c.topics.log.compression, Some(4));
    let explicit: Vec<_> = c.topics.explicit.iter().copied().collect();
    assert_eq!(
        explicit,
        ["compression.type", "message.timestamp.type", "retention.ms"]
    );
    let err = BrokerConfig::default()
        .apply_toml("\"log.cleaner.min.compaction.lag.ms\" = 10\n\"max.compaction.lag.ms\" = 5\n")
        .unwrap_err();
    assert!(err.to_string().contains("max.compaction.lag.ms"), "{err}");
}

#[test]
fn values_kafka_accepts_below_the_logs_minimums_are_raised_for_the_log() {
    let mut t = TopicConfig::default();
    t.set("index.interval.bytes", "0").unwrap();
    t.set("segment.index.bytes", "4").unwrap();
    assert_eq!(t.get("segment.index.bytes").as_deref(), Some("4"));
    assert_eq!(t.check(), Ok(()));
    let log = t.log_config();
    assert_eq!(log.index_interval_bytes, 1, "an entry for every batch");
    assert_eq!(
        log.segment_index_bytes,
        log_store::config::MIN_SEGMENT_INDEX_BYTES
    );
    assert!(t.set("segment.index.bytes", "3").is_err());
    // message.timestamp.difference.max.ms applies where before/after are left unset.
    t.set("message.timestamp.difference.max.ms", "1000")
        .unwrap();
    t.set("message.timestamp.after.max.ms", "9223372036854775807")
        .unwrap();
    let rules = t.record_rules(0);
    assert_eq!(
        (rules.timestamp_before_max_ms, rules.timestamp_after_max_ms),
        (1000, 1000)
    );
    t.set("message.timestamp.before.max.ms", "50000").unwrap();
    assert_eq!(t.record_rules(0).timestamp_before_max_ms, 50000);
}

#[test]
fn kafkas_hour_and_minute_settings_give_time_defaults_ms_first() {
    let mut c = BrokerConfig::default();
    c.apply_toml("\"log.retention.hours\" = 2\n\"log.roll.hours\" = 1\n")
        .unwrap();
    assert_eq!(c.topics.log.retention_ms, Some(7_200_000));
    assert_eq!(c.topics.log.segment_ms, Some(3_600_000));
    assert!(c.topics.explicit.contains("retention.ms"));
    let mut c = BrokerConfig::default();
    c.apply_toml(
        "\"log.retention.hours\" = 2\n\"log.retention.minutes\" = 3\n\"log.retention.ms\" = 5\n",
    )
    .unwrap();
    assert_eq!(c.topics.log.retention_ms, Some(5), "ms wins, as in Kafka");
    let mut c = BrokerConfig::default();
    c.apply_toml("\"log.retention.hours\" = -1\n").unwrap();
    assert_eq!(c.topics.log.retention_ms, None);
    assert!(BrokerConfig::default()
        .apply_toml("\"log.retention.hours\" = \"soon\"\n")
        .is_err());
}

#[test]
fn transaction_settings_read_and_refuse_out_of_range_values() {
    let mut c = BrokerConfig::default();
    c.apply_toml(
        "transaction.state.log.num.partitions = 4\ntransaction.max.timeout.ms = 60000\n\
         transactional.id.expiration.ms = 5000\n\
         transaction.abort.timed.out.transaction.cleanup.interval.ms = 200\n",
    )
    .unwrap();
    assert_eq!(c.txns.state_topic_partitions, 4);
    assert_eq!(c.txns.max_timeout_ms, 60_000);
    assert_eq!(c.txns.id_expiration, Duration::from_secs(5));
    assert_eq!(c.txns.abort_check_interval, Duration::from_millis(200));
    for bad in [
        "transaction.state.log.num.partitions = 0",
        "transaction.state.log.segment.bytes = 10",
        "transaction.max.timeout.ms = 0",
        "transaction.remove.expired.transaction.cleanup.interval.ms = -1",
    ] {
        let err = BrokerConfig::default().apply_toml(bad).unwrap_err();
        assert!(matches!(err, BrokerError::Config(_)), "{bad}: {err}");
    }
}

#[test]
fn an_audit_topic_keeps_everything_whatever_the_broker_defaults() {
    // A broker whose defaults compact and expire: audit.enabled (applied first, by
    // name order) turns both off; a later key may turn either on, for the log to apply
    // to sealed batches only.
    let mut defaults = TopicConfig::default();
    defaults.set("cleanup.policy", "compact").unwrap();
    defaults.set("retention.ms", "1000").unwrap();
    let mut t = defaults.clone();
    t.set("audit.enabled", "true").unwrap();
    t.check().unwrap();
    assert!(t.audit && t.retention_ms.is_none() && t.retention_bytes.is_none());
    assert_eq!(t.cleanup_policy, "delete");
    assert!(t.log_config().audit);
    for (key, value) in [
        ("cleanup.policy", "compact,delete"),
        ("retention.ms", "86400000"),
        ("retention.bytes", "1"),
    ] {
        let mut set = t.clone();
        set.set(key, value).unwrap();
        set.check().unwrap();
        assert!(set.log_config().audit);
    }
    let overrides = std::collections::BTreeMap::from([("audit.enabled".into(), "TRUE".into())]);
    assert!(super::audit_override(&overrides));
    assert!(!super::audit_override(&Default::default()));
}

#[test]
fn audit_head_interval_has_a_floor() {
    let mut t = TopicConfig::default();
    assert_eq!(t.get("audit.head.interval.ms").as_deref(), Some("60000"));
    t.set("audit.head.interval.ms", "250").unwrap();
    assert_eq!(t.audit_head_interval_ms, 250);
    let e = t.set("audit.head.interval.ms", "99").unwrap_err();
    assert!(e.to_string().contains("minimum 100"), "{e}");
    assert!(t.set("audit.head.interval.ms", "soon").is_err());
}

#[test]
fn audit_log_settings_parse_and_refuse_nonsense() {
    use super::audit_log::EventType;
    let mut c = BrokerConfig::default();
    assert!(!c.audit_log.enabled);
    c.set("audit.log.enabled", "true").unwrap();
    c.set("audit.log.event.types", "authenticate, admin")
        .unwrap();
    c.set("audit.log.buffer.events", "50").unwrap();
    assert!(c.audit_log.records(EventType::Admin));
    assert!(!c.audit_log.records(EventType::Management));
    assert_eq!(c.audit_log.buffer_events, 50);
    for (key, bad) in [
        ("audit.log.event.types", "authenticate,produce"),
        ("audit.log.buffer.events", "0"),
        ("audit.log.enabled", "yes please"),
        ("audit.log.replication.factor", "0"),
    ] {
        let e = c.set(key, bad).unwrap_err();
        assert!(e.to_string().contains(key), "{e}");
    }
}

#[test]
fn offsets_retention_takes_minutes_or_milliseconds() {
    let mut c = BrokerConfig::default();
    c.set("offsets.retention.minutes", "2").unwrap();
    assert_eq!(c.groups.offsets_retention, Duration::from_secs(120));
    c.set("offsets.retention.ms", "15000").unwrap();
    assert_eq!(c.groups.offsets_retention, Duration::from_secs(15));
    assert!(c.set("offsets.retention.ms", "999").is_err());
}
