//! Every topic config Kafka 3.9 and 4.x define, with its type, the broker setting that
//! gives its default, and what Strata does with it.
//!
//! A key is either honoured (it changes how the topic behaves) or stored: accepted,
//! validated as Kafka validates it, kept with the topic and reported by DescribeConfigs,
//! but without effect, because Strata has no such mechanism. Tools that create topics
//! the way Kafka tooling does (Connect, Streams, Terraform providers) send such keys
//! routinely; refusing them would refuse the whole topic.

/// Kafka's config types, as DescribeConfigs v3+ reports them (`config_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

/// How a stored key's value is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// An integer in this range.
    Range(i64, i64),
    /// `-1`, or an integer in this range (Kafka's "use the codec's default" level).
    DefaultOrRange(i64, i64),
    /// `true` or `false`, any case.
    Boolean,
    /// `false` only: the feature does not exist here.
    FalseOnly(&'static str),
    /// Empty, `*`, or a comma-separated list of `partition:broker` pairs.
    ReplicaList,
    /// Any non-empty text.
    Text,
}

/// What Strata does with a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The key changes the topic's behaviour (a field of [`super::TopicConfig`]).
    Honoured,
    /// Accepted, checked by `rule`, stored and reported; `why` it has no effect.
    Stored {
        default: &'static str,
        rule: Rule,
        why: &'static str,
    },
}

/// One topic config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicKey {
    pub name: &'static str,
    pub kind: KeyType,
    /// The broker setting that gives the default (Kafka's "server default property");
    /// empty when Kafka has none.
    pub broker_name: &'static str,
    pub effect: Effect,
}

const fn honoured(name: &'static str, kind: KeyType, broker_name: &'static str) -> TopicKey {
    TopicKey {
        name,
        kind,
        broker_name,
        effect: Effect::Honoured,
    }
}

const fn stored(
    name: &'static str,
    kind: KeyType,
    broker_name: &'static str,
    default: &'static str,
    rule: Rule,
    why: &'static str,
) -> TopicKey {
    TopicKey {
        name,
        kind,
        broker_name,
        effect: Effect::Stored { default, rule, why },
    }
}

const LONG_MAX: &str = "9223372036854775807";
const NO_TIERED_STORAGE: &str = "Strata has no tiered storage";
const NO_THROTTLE: &str = "Strata does not throttle replication";
const LEVELS: &str = "Strata compresses at each codec's default level";
const FSYNC: &str = "Strata syncs by entry, or with write.caching by flush.ms and flush.bytes";

/// Every topic config, in the order DescribeConfigs lists them.
#[rustfmt::skip]
pub const TOPIC_KEYS: [TopicKey; 40] = {
    use KeyType::*;
    [
        // Strata's own: an append-only, provable topic (set at creation only).
        honoured("audit.enabled", Boolean, ""),
        honoured("audit.head.interval.ms", Long, ""),
        honoured("cleanup.policy", List, "log.cleanup.policy"),
        stored("compression.gzip.level", Int, "compression.gzip.level", "-1", Rule::DefaultOrRange(1, 9), LEVELS),
        stored("compression.lz4.level", Int, "compression.lz4.level", "9", Rule::Range(1, 17), LEVELS),
        honoured("compression.type", String, "compression.type"),
        stored("compression.zstd.level", Int, "compression.zstd.level", "3", Rule::Range(-131_072, 22), LEVELS),
        honoured("delete.retention.ms", Long, "log.cleaner.delete.retention.ms"),
        honoured("file.delete.delay.ms", Long, "log.segment.delete.delay.ms"),
        honoured("flush.bytes", Long, ""),
        stored("flush.messages", Long, "log.flush.interval.messages", LONG_MAX, Rule::Range(1, i64::MAX), FSYNC),
        honoured("flush.ms", Long, "log.flush.interval.ms"),
        stored("follower.replication.throttled.replicas", List, "", "", Rule::ReplicaList, NO_THROTTLE),
        honoured("index.interval.bytes", Int, "log.index.interval.bytes"),
        stored("leader.replication.throttled.replicas", List, "", "", Rule::ReplicaList, NO_THROTTLE),
        stored("local.retention.bytes", Long, "log.local.retention.bytes", "-2", Rule::Range(-2, i64::MAX), NO_TIERED_STORAGE),
        stored("local.retention.ms", Long, "log.local.retention.ms", "-2", Rule::Range(-2, i64::MAX), NO_TIERED_STORAGE),
        honoured("max.compaction.lag.ms", Long, "log.cleaner.max.compaction.lag.ms"),
        honoured("max.message.bytes", Int, "message.max.bytes"),
        stored("message.downconversion.enable", Boolean, "log.message.downconversion.enable", "true", Rule::Boolean,
            "Strata never down-converts: it stores and serves record batch v2 only"),
        stored("message.format.version", String, "log.message.format.version", "3.0-IV1", Rule::Text,
            "batches are always stored in format v2 (Kafka 4 removed this key)"),
        honoured("message.timestamp.after.max.ms", Long, "log.message.timestamp.after.max.ms"),
        honoured("message.timestamp.before.max.ms", Long, "log.message.timestamp.before.max.ms"),
        honoured("message.timestamp.difference.max.ms", Long, "log.message.timestamp.difference.max.ms"),
        honoured("message.timestamp.type", String, "log.message.timestamp.type"),
        honoured("min.cleanable.dirty.ratio", Double, "log.cleaner.min.cleanable.ratio"),
        honoured("min.compaction.lag.ms", Long, "log.cleaner.min.compaction.lag.ms"),
        honoured("min.insync.replicas", Int, "min.insync.replicas"),
        stored("preallocate", Boolean, "log.preallocate", "false", Rule::Boolean,
            "segment files grow as they are written"),
        stored("remote.log.copy.disable", Boolean, "", "false", Rule::Boolean, NO_TIERED_STORAGE),
        stored("remote.log.delete.on.disable", Boolean, "", "false", Rule::Boolean, NO_TIERED_STORAGE),
        stored("remote.storage.enable", Boolean, "", "false", Rule::FalseOnly(NO_TIERED_STORAGE), NO_TIERED_STORAGE),
        honoured("retention.bytes", Long, "log.retention.bytes"),
        honoured("retention.ms", Long, "log.retention.ms"),
        honoured("segment.bytes", Int, "log.segment.bytes"),
        honoured("segment.index.bytes", Int, "log.index.size.max.bytes"),
        stored("segment.jitter.ms", Long, "log.roll.jitter.ms", "0", Rule::Range(0, i64::MAX),
            "segments roll at segment.ms exactly"),
        honoured("segment.ms", Long, "log.roll.ms"),
        stored("unclean.leader.election.enable", Boolean, "unclean.leader.election.enable", "false", Rule::Boolean,
            "Raft elects only a replica that holds every committed entry, so an unclean election never happens"),
        honoured("write.caching", Boolean, "write.caching.default"),
    ]
};

/// The topic config named `name`.
pub fn topic_key(name: &str) -> Option<&'static TopicKey> {
    TOPIC_KEYS.iter().find(|k| k.name == name)
}

/// The topic config whose default the broker setting `broker_name` gives.
pub fn topic_key_for_broker_setting(broker_name: &str) -> Option<&'static TopicKey> {
    TOPIC_KEYS
        .iter()
        .find(|k| !k.broker_name.is_empty() && k.broker_name == broker_name)
}

/// The topic configs whose value is a list (IncrementalAlterConfigs may APPEND to and
/// SUBTRACT from them).
pub fn is_list(name: &str) -> bool {
    topic_key(name).is_some_and(|k| k.kind == KeyType::List)
}

impl Rule {
    /// Checks `value`; the reason it is refused.
    pub fn check(&self, value: &str) -> Result<(), String> {
        let v = value.trim();
        let int = || {
            v.parse::<i64>()
                .map_err(|_| format!("{value:?} is not an integer"))
        };
        match *self {
            Rule::Range(lo, hi) => {
                let n = int()?;
                if !(lo..=hi).contains(&n) {
                    return Err(format!("{n} is outside {lo}..={hi}"));
                }
            }
            Rule::DefaultOrRange(lo, hi) => {
                let n = int()?;
                if n != -1 && !(lo..=hi).contains(&n) {
                    return Err(format!("{n} is neither -1 nor within {lo}..={hi}"));
                }
            }
            Rule::Boolean => {
                parse_bool(v).ok_or_else(|| format!("{value:?} is not true or false"))?;
            }
            Rule::FalseOnly(why) => match parse_bool(v) {
                Some(false) => {}
                Some(true) => return Err(format!("cannot be true: {why}")),
                None => return Err(format!("{value:?} is not true or false")),
            },
            Rule::ReplicaList => {
                let pair = |p: &str| {
                    p.trim()
                        .split_once(':')
                        .is_some_and(|(a, b)| a.parse::<u32>().is_ok() && b.parse::<u32>().is_ok())
                };
                if !(v.is_empty() || v == "*" || v.split(',').all(pair)) {
                    return Err(format!(
                        "{value:?} is not *, empty, or a list of partition:broker pairs"
                    ));
                }
            }
            Rule::Text => {
                if v.is_empty() {
                    return Err("must not be empty".into());
                }
            }
        }
        Ok(())
    }
}

/// `true` or `false` in any case, as Kafka parses booleans.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_sorted_unique_and_broker_names_unique() {
        let names: Vec<_> = TOPIC_KEYS.iter().map(|k| k.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
        let mut broker: Vec<_> = TOPIC_KEYS
            .iter()
            .map(|k| k.broker_name)
            .filter(|b| !b.is_empty())
            .collect();
        let n = broker.len();
        broker.sort_unstable();
        broker.dedup();
        assert_eq!(broker.len(), n);
    }

    #[test]
    fn stored_defaults_pass_their_own_rules() {
        for k in TOPIC_KEYS {
            if let Effect::Stored { default, rule, .. } = k.effect {
                if rule != Rule::Text && rule != Rule::ReplicaList {
                    assert_eq!(rule.check(default), Ok(()), "{}", k.name);
                }
            }
        }
    }

    #[test]
    fn rules_refuse_what_kafka_refuses() {
        assert!(Rule::DefaultOrRange(1, 9).check("0").is_err());
        assert!(Rule::DefaultOrRange(1, 9).check("-1").is_ok());
        assert!(Rule::Boolean.check("TRUE").is_ok());
        assert!(Rule::Boolean.check("yes").is_err());
        assert!(Rule::FalseOnly("no").check("true").is_err());
        assert!(Rule::ReplicaList.check("0:1, 1:2").is_ok());
        assert!(Rule::ReplicaList.check("*").is_ok());
        assert!(Rule::ReplicaList.check("0-1").is_err());
        assert!(Rule::Range(1, i64::MAX).check("0").is_err());
    }
}
