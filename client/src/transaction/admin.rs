//! What operators ask about transactions: every broker's list of the transactional ids
//! it coordinates (ListTransactions), and the state of named ids at their coordinators
//! (DescribeTransactions).

use std::time::Duration;

use kafka_protocol::messages::{
    DescribeTransactionsRequest, ListTransactionsRequest, ProducerId, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::group::coordinator::{find_coordinator, CoordinatorKind};
use crate::topic_partition::TopicPartition;

/// One transactional id as its coordinator lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionListing {
    /// The transactional id.
    pub transactional_id: String,
    /// Its producer id.
    pub producer_id: i64,
    /// Its state, as Kafka names it (`Ongoing`, `CompleteCommit`, …).
    pub state: String,
    /// The broker that coordinates it.
    pub coordinator: i32,
}

/// One transactional id's state at its coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionDescription {
    /// The transactional id.
    pub transactional_id: String,
    /// The broker that coordinates it.
    pub coordinator: i32,
    /// Its state, as Kafka names it.
    pub state: String,
    /// Its producer id and epoch.
    pub producer_id: i64,
    /// The epoch of that producer id.
    pub producer_epoch: i16,
    /// `transaction.timeout.ms` of its producer.
    pub timeout_ms: i32,
    /// When the ongoing transaction began (ms since the epoch), -1 when none runs.
    pub start_time_ms: i64,
    /// The partitions the transaction wrote to, sorted.
    pub partitions: Vec<TopicPartition>,
}

/// Filters of [`list_transactions`]; empty lists filter nothing.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Keep these states only.
    pub states: Vec<String>,
    /// Keep these producer ids only.
    pub producer_ids: Vec<i64>,
    /// Keep transactions running at least this long.
    pub min_duration: Option<Duration>,
}

/// Every broker's transactional ids, by id.
pub async fn list_transactions(
    cluster: &Cluster,
    filter: &ListFilter,
) -> Result<Vec<TransactionListing>> {
    let metadata = cluster.refresh_metadata(Some(&[]), false).await?;
    let mut out = Vec::new();
    for &node in metadata.brokers.keys() {
        let request = |version: i16| {
            let duration = filter
                .min_duration
                .map_or(-1, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            ListTransactionsRequest::default()
                .with_state_filters(
                    filter
                        .states
                        .iter()
                        .map(|s| StrBytes::from_string(s.clone()))
                        .collect(),
                )
                .with_producer_id_filters(
                    filter.producer_ids.iter().map(|&p| ProducerId(p)).collect(),
                )
                .with_duration_filter(if version >= 1 { duration } else { -1 })
        };
        let response = cluster.send_node_with(node, request).await?;
        let context = || format!("list the transactions of broker {node}");
        Error::check(response.error_code, context, None)?;
        if let Some(unknown) = response.unknown_state_filters.first() {
            return Err(Error::InvalidArgument(format!(
                "broker {node} knows no transaction state {unknown:?}"
            )));
        }
        out.extend(
            response
                .transaction_states
                .into_iter()
                .map(|t| TransactionListing {
                    transactional_id: t.transactional_id.to_string(),
                    producer_id: t.producer_id.0,
                    state: t.transaction_state.to_string(),
                    coordinator: node,
                }),
        );
    }
    out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
    Ok(out)
}

/// The state of each of `ids` at its coordinator, in the order given.
pub async fn describe_transactions(
    cluster: &Cluster,
    ids: &[String],
) -> Result<Vec<TransactionDescription>> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let timeout = cluster.request_timeout();
        let coordinator = find_coordinator(cluster, CoordinatorKind::Transaction, id, timeout)
            .await?
            .node_id;
        let request = DescribeTransactionsRequest::default()
            .with_transactional_ids(vec![TransactionalId(StrBytes::from_string(id.clone()))]);
        let response = cluster.send_node(coordinator, &request).await?;
        let Some(t) = response.transaction_states.into_iter().next() else {
            return Err(Error::InvalidArgument(format!(
                "broker {coordinator} did not describe transactional id {id:?}"
            )));
        };
        let context = || format!("describe transactional id {id:?}");
        Error::check(t.error_code, context, None)?;
        let mut partitions: Vec<TopicPartition> = t
            .topics
            .iter()
            .flat_map(|topic| {
                topic
                    .partitions
                    .iter()
                    .map(|&p| TopicPartition::new(topic.topic.to_string(), p))
            })
            .collect();
        partitions.sort();
        out.push(TransactionDescription {
            transactional_id: id.clone(),
            coordinator,
            state: t.transaction_state.to_string(),
            producer_id: t.producer_id.0,
            producer_epoch: t.producer_epoch,
            timeout_ms: t.transaction_timeout_ms,
            start_time_ms: t.transaction_start_time_ms,
            partitions,
        });
    }
    Ok(out)
}
