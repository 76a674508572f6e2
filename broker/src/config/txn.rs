//! Settings of the transaction coordinator, with Kafka's names.

use std::time::Duration;

use super::at_least;
use crate::error::BrokerError;

/// How the transaction coordinator keeps `__transaction_state` and its transactions.
#[derive(Debug, Clone, PartialEq)]
pub struct TxnConfig {
    /// `transaction.state.log.num.partitions`: fixed once the topic exists (an id's
    /// place is a hash modulo this). Kafka's default is 50; ours is 16, as for
    /// `__consumer_offsets`.
    pub state_topic_partitions: i32,
    /// `transaction.state.log.segment.bytes`.
    pub state_topic_segment_bytes: u64,
    /// `transaction.max.timeout.ms`: the longest `transaction.timeout.ms` a producer
    /// may ask for.
    pub max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`: an id with no transaction for this long is
    /// forgotten.
    pub id_expiration: Duration,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`: how often
    /// transactions past their timeout are looked for (and aborted).
    pub abort_check_interval: Duration,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`.
    pub expiry_check_interval: Duration,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig {
            state_topic_partitions: 16,
            state_topic_segment_bytes: 100 * 1024 * 1024,
            max_timeout_ms: 900_000,
            id_expiration: Duration::from_secs(7 * 24 * 3600),
            abort_check_interval: Duration::from_secs(10),
            expiry_check_interval: Duration::from_secs(3600),
        }
    }
}

impl TxnConfig {
    /// Sets `key` if it is one of these settings: `Ok(false)` when it is not.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool, BrokerError> {
        let parse_err = |what: &str| BrokerError::Config(format!("{key}: {value:?} is not {what}"));
        let millis = |v: &str| {
            at_least::<u64>(v, 1)
                .map(Duration::from_millis)
                .ok_or_else(|| parse_err("a positive number of milliseconds"))
        };
        match key {
            "transaction.state.log.num.partitions" => {
                self.state_topic_partitions = value
                    .parse()
                    .ok()
                    .filter(|n: &i32| (1..=1000).contains(n))
                    .ok_or_else(|| parse_err("a partition count from 1 to 1000"))?
            }
            "transaction.state.log.segment.bytes" => {
                self.state_topic_segment_bytes = at_least::<u64>(value, 1024 * 1024)
                    .ok_or_else(|| parse_err("a size of at least 1 MiB"))?
            }
            "transaction.max.timeout.ms" => {
                self.max_timeout_ms = at_least::<i32>(value, 1)
                    .ok_or_else(|| parse_err("a positive number of milliseconds"))?
            }
            "transactional.id.expiration.ms" => self.id_expiration = millis(value)?,
            "transaction.abort.timed.out.transaction.cleanup.interval.ms" => {
                self.abort_check_interval = millis(value)?
            }
            "transaction.remove.expired.transaction.cleanup.interval.ms" => {
                self.expiry_check_interval = millis(value)?
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}
