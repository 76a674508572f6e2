//! Committing offsets (manually or automatically) and reading the group's committed
//! offsets from its coordinator.

use std::collections::BTreeMap;
use std::time::Instant;

use tracing::{debug, warn};

use super::{GroupConsumer, RETRY_BACKOFF, RETRY_BACKOFF_MAX};
use crate::error::{Error, Result};
use crate::group::coordinator::is_coordinator_error;
use crate::group::offsets::{
    check_commit_response, commit_request, fetch_error_code, fetch_request, parse_fetch_response,
    Committer,
};
use crate::topic_partition::TopicPartition;

impl GroupConsumer {
    pub(super) async fn maybe_auto_commit(&mut self) -> Result<()> {
        if !self.config.auto_commit || Instant::now() < self.next_auto_commit {
            return Ok(());
        }
        self.next_auto_commit = Instant::now() + self.config.auto_commit_interval;
        match self.commit().await {
            Ok(()) => Ok(()),
            Err(e @ Error::Fenced { .. }) => Err(e),
            Err(e) => {
                warn!(error = %e, "auto commit failed");
                Ok(())
            }
        }
    }

    pub(super) async fn send_commit(
        &mut self,
        offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let group = self.config.group_id.clone();
        if self.member.generation() < 0 {
            return Err(Error::CommitFailed {
                group,
                reason: "this consumer is not in a generation of the group (it is joining)".into(),
            });
        }
        let member_id = self.member.member_id().to_string();
        let instance_id = self.config.group_instance_id.clone();
        let committer = Committer {
            generation: self.member.generation(),
            member_id: &member_id,
            instance_id: instance_id.as_deref(),
        };
        let timeout = self.cluster.request_timeout();
        let deadline = Instant::now() + timeout;
        let mut backoff = RETRY_BACKOFF;
        loop {
            let attempt = self
                .link
                .send(&self.cluster, timeout, |v| {
                    commit_request(v, &group, committer, offsets)
                })
                .await;
            let retry = match attempt {
                Ok(response) => {
                    let moved = response
                        .topics
                        .iter()
                        .flat_map(|t| t.partitions.iter())
                        .any(|p| is_coordinator_error(p.error_code));
                    if moved {
                        self.link.invalidate();
                        Error::Kafka {
                            context: format!("commit offsets of group {group:?}"),
                            code: crate::error::KafkaCode(crate::error::NOT_COORDINATOR),
                            message: None,
                        }
                    } else {
                        let result = check_commit_response(
                            &group,
                            instance_id.as_deref(),
                            offsets,
                            &response,
                        );
                        match &result {
                            Ok(()) => {
                                debug!(?offsets, "committed");
                                self.committed
                                    .extend(offsets.iter().map(|(tp, &o)| (tp.clone(), o)));
                            }
                            Err(Error::CommitFailed { .. }) => {
                                self.member.need_rejoin();
                                self.heartbeat = None;
                            }
                            Err(_) => {}
                        }
                        return result;
                    }
                }
                Err(e) if e.is_retriable() => e,
                Err(e) => return Err(e),
            };
            if Instant::now() + backoff >= deadline {
                return Err(retry);
            }
            debug!(error = %retry, "commit failed; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
        }
    }

    pub(super) async fn fetch_committed(
        &mut self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        let group = self.config.group_id.clone();
        let timeout = self.cluster.request_timeout();
        let deadline = Instant::now() + timeout;
        let mut backoff = RETRY_BACKOFF;
        loop {
            let mut encode_error = None;
            let attempt = self
                .link
                .send(&self.cluster, timeout, |v| {
                    match fetch_request(v, &group, Some(partitions)) {
                        Ok(r) => r,
                        Err(e) => {
                            encode_error = Some(e);
                            Default::default()
                        }
                    }
                })
                .await;
            if let Some(e) = encode_error {
                return Err(e);
            }
            let retry = match attempt {
                Ok(response) if is_coordinator_error(fetch_error_code(&response)) => {
                    self.link.invalidate();
                    Error::Kafka {
                        context: format!("fetch committed offsets of group {group:?}"),
                        code: crate::error::KafkaCode(fetch_error_code(&response)),
                        message: None,
                    }
                }
                Ok(response) => return parse_fetch_response(&group, &response),
                Err(e) if e.is_retriable() => e,
                Err(e) => return Err(e),
            };
            if Instant::now() + backoff >= deadline {
                return Err(retry);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
        }
    }
}
