//! One file per Kafka API. [`dispatch`] checks the version against what ApiVersions
//! advertises, decodes the body with the `kafka-protocol` codec and calls the handler.

mod acls;
mod add_offsets_to_txn;
mod add_partitions_to_txn;
mod api_versions;
mod authz;
mod client_quotas;
mod configs;
mod context;
mod create_partitions;
mod create_topics;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod describe_groups;
mod describe_producers;
mod describe_transactions;
mod end_txn;
mod fetch;
mod find_coordinator;
mod heartbeat;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_groups;
mod list_offsets;
mod list_transactions;
pub mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod offset_for_leader_epoch;
mod produce;
mod sasl_authenticate;
mod sasl_handshake;
mod scram_users;
mod sync_group;
mod txn_offset_commit;
mod unsupported;
mod write_txn_markers;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use kafka_protocol::messages::{RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;

use crate::request::Body;
pub use context::RequestContext;
pub use sasl_authenticate::FAILED_AUTHENTICATION_DELAY;

/// A response body still being waited for (durability, Fetch data).
pub type Deferred = Pin<Box<dyn Future<Output = ResponseKind> + Send>>;

/// What a handler hands the connection's writer.
pub enum Reply {
    /// The answer, known now.
    Now(Box<ResponseKind>),
    /// The answer, once a wait completes; later answers on the connection queue behind it.
    Later(Deferred),
    /// No answer at all (Produce with acks=0).
    Nothing,
}

impl Reply {
    /// An answer known now.
    pub fn now(response: impl Into<ResponseKind>) -> Reply {
        Reply::Now(Box::new(response.into()))
    }
}

/// `i32::MIN`: "authorized operations not requested / not supported".
pub const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

/// Handles one decoded request. `Err` closes the connection with that reason.
/// Returns the reply and the version to encode it at.
pub async fn dispatch(ctx: Arc<RequestContext>, body: Body) -> Result<(Reply, i16), String> {
    let version = ctx.version;
    let request = match body {
        Body::ApiVersions => return Ok(api_versions::handle(&ctx)),
        Body::Unsupported(mut body) => {
            return unsupported::reply(&ctx, &mut body).map(|r| (r, version))
        }
        Body::Decoded(request) => *request,
    };
    let reply = match request {
        RequestKind::Metadata(r) => Reply::now(metadata::handle(&ctx, r).await),
        RequestKind::Produce(r) => produce::handle(ctx.clone(), r).await?,
        RequestKind::Fetch(r) => fetch::handle(ctx.clone(), r),
        RequestKind::ListOffsets(r) => Reply::now(list_offsets::handle(&ctx, r)),
        RequestKind::OffsetForLeaderEpoch(r) => {
            Reply::now(offset_for_leader_epoch::handle(&ctx, r))
        }
        RequestKind::CreateTopics(r) => Reply::now(create_topics::handle(&ctx, r).await),
        RequestKind::DeleteTopics(r) => Reply::now(delete_topics::handle(&ctx, r).await),
        RequestKind::CreatePartitions(r) => Reply::now(create_partitions::handle(&ctx, r).await),
        RequestKind::DeleteRecords(r) => Reply::now(delete_records::handle(&ctx, r).await),
        RequestKind::InitProducerId(r) => Reply::now(init_producer_id::handle(&ctx, r).await),
        RequestKind::DescribeCluster(r) => Reply::now(describe_cluster::handle(&ctx, r)),
        RequestKind::FindCoordinator(r) => Reply::now(find_coordinator::handle(&ctx, r)),
        RequestKind::AddPartitionsToTxn(r) => {
            Reply::now(add_partitions_to_txn::handle(&ctx, r).await)
        }
        RequestKind::EndTxn(r) => Reply::now(end_txn::handle(&ctx, r).await),
        RequestKind::AddOffsetsToTxn(r) => Reply::now(add_offsets_to_txn::handle(&ctx, r).await),
        RequestKind::TxnOffsetCommit(r) => Reply::now(txn_offset_commit::handle(&ctx, r).await),
        RequestKind::DescribeTransactions(r) => Reply::now(describe_transactions::handle(&ctx, r)),
        RequestKind::ListTransactions(r) => Reply::now(list_transactions::handle(&ctx, r)),
        RequestKind::WriteTxnMarkers(r) => Reply::now(write_txn_markers::handle(&ctx, r).await),
        RequestKind::DescribeProducers(r) => Reply::now(describe_producers::handle(&ctx, r)),
        RequestKind::JoinGroup(r) => join_group::handle(ctx.clone(), r),
        RequestKind::SyncGroup(r) => sync_group::handle(ctx.clone(), r),
        RequestKind::Heartbeat(r) => Reply::now(heartbeat::handle(&ctx, r)),
        RequestKind::LeaveGroup(r) => Reply::now(leave_group::handle(&ctx, r)),
        RequestKind::OffsetCommit(r) => offset_commit::handle(ctx.clone(), r),
        RequestKind::OffsetFetch(r) => Reply::now(offset_fetch::handle(&ctx, r)),
        RequestKind::ListGroups(r) => Reply::now(list_groups::handle(&ctx, r)),
        RequestKind::DescribeGroups(r) => Reply::now(describe_groups::handle(&ctx, r)),
        RequestKind::DeleteGroups(r) => delete_groups::handle(ctx.clone(), r),
        RequestKind::OffsetDelete(r) => offset_delete::handle(ctx.clone(), r),
        RequestKind::DescribeConfigs(r) => Reply::now(configs::describe(&ctx, r)),
        RequestKind::AlterConfigs(r) => Reply::now(configs::alter(&ctx, r).await),
        RequestKind::IncrementalAlterConfigs(r) => {
            Reply::now(configs::incremental_alter(&ctx, r).await)
        }
        RequestKind::SaslHandshake(r) => Reply::now(sasl_handshake::handle(&ctx, r)),
        RequestKind::SaslAuthenticate(r) => {
            Reply::now(sasl_authenticate::handle(ctx.clone(), r).await)
        }
        RequestKind::DescribeUserScramCredentials(r) => Reply::now(scram_users::describe(&ctx, r)),
        RequestKind::AlterUserScramCredentials(r) => Reply::now(scram_users::alter(&ctx, r).await),
        RequestKind::CreateAcls(r) => Reply::now(acls::create(&ctx, r).await),
        RequestKind::DescribeAcls(r) => Reply::now(acls::describe(&ctx, r)),
        RequestKind::DeleteAcls(r) => Reply::now(acls::delete(&ctx, r).await),
        RequestKind::DescribeClientQuotas(r) => Reply::now(client_quotas::describe(&ctx, r)),
        RequestKind::AlterClientQuotas(r) => Reply::now(client_quotas::alter(&ctx, r).await),
        other => {
            // `versions::accepted` lists only the APIs matched above.
            return Err(format!("no handler for {other:?}"));
        }
    };
    Ok((reply, version))
}

/// A message for an `error_message` field.
pub(crate) fn message(text: impl Into<String>) -> Option<StrBytes> {
    Some(StrBytes::from_string(text.into()))
}
