//! The transactional producer's requests to its transaction coordinator
//! (InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn) and to a group's
//! coordinator (TxnOffsetCommit), each retried while the answer says "try again": the
//! coordinator is moving or loading (the link looks it up again), or another operation
//! on the transaction is still finishing (CONCURRENT_TRANSACTIONS, for instance the
//! markers of the previous commit).

use std::time::{Duration, Instant};

use tracing::debug;

use crate::cluster::Cluster;
use crate::connection::Request;
use crate::error::{Error, KafkaCode, Result, CONCURRENT_TRANSACTIONS};
use crate::group::coordinator::{is_coordinator_error, CoordinatorLink};

/// First wait before a retry; doubles up to [`RETRY_BACKOFF_MAX`]. Short: the usual
/// wait is for the markers of the previous commit (CONCURRENT_TRANSACTIONS), a few
/// milliseconds, and a producer committing every 100 ms loses what it oversleeps.
const RETRY_BACKOFF: Duration = Duration::from_millis(2);
const RETRY_BACKOFF_MAX: Duration = Duration::from_millis(500);

/// Sends the request `build` makes to `link`'s coordinator until it is answered
/// without a retriable error, for at most `bound`. `code` reads the answer's first
/// error (0: none); `what` names the request in errors.
pub(crate) async fn call<R: Request>(
    cluster: &Cluster,
    link: &mut CoordinatorLink,
    bound: Duration,
    what: &str,
    build: impl Fn(i16) -> R,
    code: impl Fn(&R::Response) -> i16,
) -> Result<R::Response> {
    let deadline = Instant::now() + bound;
    let mut backoff = RETRY_BACKOFF;
    loop {
        let timeout = cluster.request_timeout();
        let error = match link.send(cluster, timeout, &build).await {
            Ok(response) => match code(&response) {
                0 => return Ok(response),
                c => {
                    if is_coordinator_error(c) {
                        link.invalidate();
                    }
                    let error = Error::Kafka {
                        context: what.to_string(),
                        code: KafkaCode(c),
                        message: None,
                    };
                    if !(is_coordinator_error(c) || c == CONCURRENT_TRANSACTIONS) {
                        return Err(error);
                    }
                    error
                }
            },
            Err(e) if e.is_retriable() || matches!(e, Error::NoCoordinator { .. }) => {
                link.invalidate();
                e
            }
            Err(e) => return Err(e),
        };
        if Instant::now() + backoff >= deadline {
            return Err(error);
        }
        debug!(what, error = %error, "retrying");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
    }
}
