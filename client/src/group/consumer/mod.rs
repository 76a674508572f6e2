//! The group consumer: subscribes to topics as a member of a consumer group, reads the
//! partitions the group assigns it, and commits how far it got.
//!
//! Guarantees (Kafka's classic group protocol, eager rebalancing):
//! - **At least once** when records are processed before the next `poll` (auto
//!   commit) or before [`GroupConsumer::commit`] (manual): a committed offset only ever
//!   covers records `poll` has returned, so a record is lost only if the application
//!   drops it after `poll`; after a crash or a rebalance, the records returned since
//!   the last commit are delivered again (to this member or another).
//! - Per partition, records come in increasing offset order, none twice within one
//!   assignment; control batches never.
//! - A partition is read by at most one member of a generation: before rejoining, the
//!   consumer stops reading, commits what it has returned (auto commit) and calls
//!   [`RebalanceListener::on_partitions_revoked`] for everything it had; after the new
//!   assignment it calls [`RebalanceListener::on_partitions_assigned`] and resumes each
//!   partition at the group's committed offset (or `auto.offset.reset` without one).
//! - Rebalances happen inside [`GroupConsumer::poll`]: call it at least once per
//!   `rebalance_timeout` (Kafka's `max.poll.interval.ms`), or the coordinator completes
//!   the rebalance without this member. Heartbeats run on their own task, so slow
//!   processing does not end the session.
//! - [`GroupConsumer::close`] commits (auto commit), calls `on_partitions_revoked`
//!   and leaves the group so its partitions move at once; a static member
//!   (`group.instance.id`) does not leave, as in Kafka: its partitions wait for it
//!   until its session times out. Dropping the consumer without `close` leaves the
//!   member in the group until its session times out.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::{GroupId, LeaveGroupRequest};
use kafka_protocol::protocol::StrBytes;
use tracing::{debug, info, info_span, Instrument, Span};

use crate::cluster::Cluster;
use crate::consumer::FetchConfig;
use crate::error::{Error, Result};
use crate::group::assignor::{Assignor, RangeAssignor, RoundRobinAssignor};
use crate::group::coordinator::{CoordinatorKind, CoordinatorLink};
use crate::group::fetcher::Fetcher;
use crate::group::heartbeat::Heartbeat;
use crate::group::membership::{MemberState, Membership};
use crate::record::ConsumerRecord;
use crate::topic_partition::TopicPartition;

mod commits;
mod positions;
mod rebalance;

/// Kafka's `session.timeout.ms` default (45 s).
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(45);
/// Kafka's `heartbeat.interval.ms` default (3 s).
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(3);
/// Kafka's `max.poll.interval.ms` default (5 min), sent as the rebalance timeout.
pub const DEFAULT_REBALANCE_TIMEOUT: Duration = Duration::from_secs(300);
/// Kafka's `auto.commit.interval.ms` default (5 s).
pub const DEFAULT_AUTO_COMMIT_INTERVAL: Duration = Duration::from_secs(5);
/// Kafka's `max.poll.records` default.
pub const DEFAULT_MAX_POLL_RECORDS: usize = 500;
/// Most topics one consumer may subscribe to (each is a metadata lookup per rebalance).
pub const MAX_SUBSCRIBED_TOPICS: usize = 10_000;
/// How long JoinGroup and SyncGroup may take beyond the rebalance timeout (the Java
/// client's margin).
const JOIN_TIMEOUT_MARGIN: Duration = Duration::from_secs(5);
/// First wait before retrying a failed join, commit or fetch; doubles up to the max.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// How often the partition counts of subscribed topics are checked; a change makes
/// the member rejoin so new partitions get assigned.
const SUBSCRIPTION_METADATA_MAX_AGE: Duration = Duration::from_secs(30);

/// Where a partition without a committed offset starts (`auto.offset.reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    /// The log start offset.
    Earliest,
    /// The log end: only records produced from now on.
    Latest,
    /// Fail with [`Error::NoOffset`].
    None,
}

/// Group consumer settings; names follow the Java client's.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// `group.id`.
    pub group_id: String,
    /// `group.instance.id`: makes the member static (it keeps its partitions across
    /// restarts within the session timeout). Needs JoinGroup v5+.
    pub group_instance_id: Option<String>,
    /// `session.timeout.ms`: the coordinator drops a member it has not heard from for
    /// this long. Brokers bound it (Kafka: 6 s to 30 min).
    pub session_timeout: Duration,
    /// `heartbeat.interval.ms`; must be below the session timeout (a third of it is
    /// customary).
    pub heartbeat_interval: Duration,
    /// `max.poll.interval.ms`: how long the coordinator waits for members to rejoin.
    pub rebalance_timeout: Duration,
    /// `enable.auto.commit`.
    pub auto_commit: bool,
    /// `auto.commit.interval.ms`.
    pub auto_commit_interval: Duration,
    /// `auto.offset.reset`.
    pub auto_offset_reset: OffsetReset,
    /// `partition.assignment.strategy`, in order of preference.
    pub assignors: Vec<Arc<dyn Assignor>>,
    /// `max.poll.records`: most records one `poll` returns.
    pub max_poll_records: usize,
    /// Fetch sizes and waits.
    pub fetch: FetchConfig,
}

impl GroupConfig {
    /// Kafka's defaults for `group_id`, with the `range` then `roundrobin` assignors.
    pub fn new(group_id: impl Into<String>) -> GroupConfig {
        GroupConfig {
            group_id: group_id.into(),
            group_instance_id: None,
            session_timeout: DEFAULT_SESSION_TIMEOUT,
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            rebalance_timeout: DEFAULT_REBALANCE_TIMEOUT,
            auto_commit: true,
            auto_commit_interval: DEFAULT_AUTO_COMMIT_INTERVAL,
            auto_offset_reset: OffsetReset::Latest,
            assignors: vec![Arc::new(RangeAssignor), Arc::new(RoundRobinAssignor)],
            max_poll_records: DEFAULT_MAX_POLL_RECORDS,
            fetch: FetchConfig::default(),
        }
    }

    fn validate(&self) -> Result<()> {
        let invalid = |m: String| Err(Error::InvalidArgument(m));
        if self.group_id.is_empty() {
            return invalid("group.id is empty".into());
        }
        if self.group_instance_id.as_deref() == Some("") {
            return invalid("group.instance.id is empty".into());
        }
        if self.heartbeat_interval.is_zero() || self.heartbeat_interval >= self.session_timeout {
            return invalid(format!(
                "heartbeat.interval.ms ({:?}) must be positive and below session.timeout.ms ({:?})",
                self.heartbeat_interval, self.session_timeout
            ));
        }
        for (name, d) in [
            ("session.timeout.ms", self.session_timeout),
            ("max.poll.interval.ms", self.rebalance_timeout),
        ] {
            if i32::try_from(d.as_millis()).is_err() {
                return invalid(format!(
                    "{name} ({d:?}) does not fit the protocol's i32 milliseconds"
                ));
            }
        }
        if self.assignors.is_empty() {
            return invalid("no partition assignment strategy".into());
        }
        if self.max_poll_records == 0 {
            return invalid("max.poll.records is 0".into());
        }
        Ok(())
    }
}

/// Callbacks around rebalances, called from inside [`GroupConsumer::poll`] and
/// [`GroupConsumer::close`] on the caller's task.
pub trait RebalanceListener: Send {
    /// The consumer stops reading `partitions` (before it rejoins, and on close). With
    /// auto commit, their positions are already committed (unless the generation was
    /// over, in which case another member may already own them).
    fn on_partitions_revoked(&mut self, partitions: &[TopicPartition]) {
        let _ = partitions;
    }

    /// The group assigned `partitions` to this consumer (possibly none).
    fn on_partitions_assigned(&mut self, partitions: &[TopicPartition]) {
        let _ = partitions;
    }
}

/// Where reading a partition resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    /// Ask the group for its committed offset (then `auto.offset.reset`).
    Committed,
    /// Apply `auto.offset.reset` (no committed offset, or it was out of range).
    Reset,
    /// The offset of the next record `poll` returns.
    At(i64),
}

#[derive(Debug)]
struct PartitionState {
    position: Position,
    /// The next offset to fetch (ahead of `position` by what is buffered).
    fetch_position: i64,
    /// The high watermark the last fetch reported.
    high_watermark: Option<i64>,
}

/// What one join attempt came to.
enum JoinFlow {
    /// The assignment of a new generation.
    Assigned(Vec<TopicPartition>),
    /// Join again at once.
    Again,
    /// Join again after a backoff.
    Backoff,
}

/// A consumer group member. See the module documentation for its guarantees.
pub struct GroupConsumer {
    cluster: Arc<Cluster>,
    config: GroupConfig,
    topics: Vec<String>,
    link: CoordinatorLink,
    member: Membership,
    assignment: BTreeMap<TopicPartition, PartitionState>,
    /// Fetched, not yet returned; refilled only when empty, so bounded by one fetch.
    buffer: VecDeque<ConsumerRecord>,
    fetcher: Fetcher,
    heartbeat: Option<Heartbeat>,
    listener: Option<Box<dyn RebalanceListener>>,
    /// What this member last committed or read from the group, per partition.
    committed: BTreeMap<TopicPartition, i64>,
    /// What this member owned before its last rebalance (for sticky assignors).
    owned_before: Vec<TopicPartition>,
    next_auto_commit: Instant,
    partition_counts: BTreeMap<String, i32>,
    next_metadata_check: Instant,
    span: Span,
}

impl std::fmt::Debug for GroupConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupConsumer")
            .field("group", &self.config.group_id)
            .field("member", &self.member)
            .field("topics", &self.topics)
            .field("assignment", &self.assignment.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl GroupConsumer {
    /// A consumer that has not joined yet: it joins at the first [`GroupConsumer::poll`]
    /// after [`GroupConsumer::subscribe`]. Fails on an invalid configuration.
    pub fn new(cluster: Arc<Cluster>, config: GroupConfig) -> Result<GroupConsumer> {
        config.validate()?;
        let span = info_span!("group_consumer", group = %config.group_id);
        let now = Instant::now();
        Ok(GroupConsumer {
            fetcher: Fetcher::new(Arc::clone(&cluster), config.fetch.clone()),
            link: CoordinatorLink::new(CoordinatorKind::Group, &config.group_id),
            member: Membership::new(&config.group_id, config.group_instance_id.clone()),
            cluster,
            config,
            topics: Vec::new(),
            assignment: BTreeMap::new(),
            buffer: VecDeque::new(),
            heartbeat: None,
            listener: None,
            committed: BTreeMap::new(),
            owned_before: Vec::new(),
            next_auto_commit: now,
            partition_counts: BTreeMap::new(),
            next_metadata_check: now + SUBSCRIPTION_METADATA_MAX_AGE,
            span,
        })
    }

    /// Sets the callbacks around rebalances (replacing any earlier listener).
    pub fn set_rebalance_listener(&mut self, listener: Box<dyn RebalanceListener>) {
        self.listener = Some(listener);
    }

    /// Subscribes to `topics` (replacing the subscription); a member that already
    /// joined rejoins at the next poll. Topics that do not exist yet get assigned once
    /// they do (within 30 s, the subscription metadata's maximum age).
    pub fn subscribe<T: Into<String>>(
        &mut self,
        topics: impl IntoIterator<Item = T>,
    ) -> Result<()> {
        let mut topics: Vec<String> = topics.into_iter().map(Into::into).collect();
        topics.sort();
        topics.dedup();
        if topics.is_empty() || topics.iter().any(String::is_empty) {
            return Err(Error::InvalidArgument(
                "subscribe to one or more named topics".into(),
            ));
        }
        if topics.len() > MAX_SUBSCRIBED_TOPICS {
            return Err(Error::InvalidArgument(format!(
                "{} topics exceed the limit of {MAX_SUBSCRIBED_TOPICS}",
                topics.len()
            )));
        }
        if topics != self.topics {
            self.topics = topics;
            self.member.need_rejoin();
        }
        Ok(())
    }

    /// Changes `max.poll.records` (e.g. to stop exactly at a record count: positions,
    /// and so commits, never pass the records returned). Fails on 0.
    pub fn set_max_poll_records(&mut self, max_records: usize) -> Result<()> {
        if max_records == 0 {
            return Err(Error::InvalidArgument("max.poll.records is 0".into()));
        }
        self.config.max_poll_records = max_records;
        Ok(())
    }

    /// The group id.
    pub fn group_id(&self) -> &str {
        &self.config.group_id
    }

    /// The member id the coordinator assigned ("" before the first join).
    pub fn member_id(&self) -> &str {
        self.member.member_id()
    }

    /// The generation joined, or -1.
    pub fn generation(&self) -> i32 {
        self.member.generation()
    }

    /// What a transactional producer needs to commit this member's offsets in its
    /// transaction ([`crate::TransactionalProducer::send_offsets`]).
    pub fn group_metadata(&self) -> crate::transaction::GroupMetadata {
        crate::transaction::GroupMetadata {
            group_id: self.config.group_id.clone(),
            generation_id: self.member.generation(),
            member_id: self.member.member_id().to_string(),
            group_instance_id: self.member.instance_id().map(str::to_string),
        }
    }

    /// The partitions assigned in the current generation, sorted.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.assignment.keys().cloned().collect()
    }

    /// The offset of the next record `poll` returns for `tp`, once known.
    pub fn position(&self, tp: &TopicPartition) -> Option<i64> {
        match self.assignment.get(tp)?.position {
            Position::At(offset) => Some(offset),
            _ => None,
        }
    }

    /// How far `tp`'s position is behind the high watermark the last fetch reported.
    pub fn lag(&self, tp: &TopicPartition) -> Option<i64> {
        let state = self.assignment.get(tp)?;
        match (state.position, state.high_watermark) {
            (Position::At(p), Some(hw)) => Some((hw - p).max(0)),
            _ => None,
        }
    }

    /// Moves `tp`'s position: the next poll returns records from `offset`. Fails if
    /// `tp` is not assigned to this consumer.
    pub fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<()> {
        let state = self.assignment.get_mut(tp).ok_or_else(|| {
            Error::InvalidArgument(format!("{tp} is not assigned to this consumer"))
        })?;
        state.position = Position::At(offset);
        state.fetch_position = offset;
        self.buffer
            .retain(|r| *r.topic != *tp.topic || r.partition != tp.partition);
        Ok(())
    }

    /// Up to `max.poll.records` records from the assigned partitions, waiting up to
    /// `timeout` for some (an empty list when none came). Joins or rejoins the group
    /// first when needed (which may take longer than `timeout`: the coordinator waits
    /// for every member), and auto-commits when the interval has passed.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        if self.topics.is_empty() {
            return Err(Error::InvalidArgument("poll before subscribe".into()));
        }
        let span = self.span.clone();
        self.poll_inner(timeout).instrument(span).await
    }

    async fn poll_inner(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        let deadline = Instant::now() + timeout;
        let mut fetched = false;
        let mut backoff = RETRY_BACKOFF;
        loop {
            self.apply_heartbeat_signal()?;
            self.check_partition_counts().await;
            if self.member.state() != MemberState::Stable {
                self.rebalance().await?;
                continue;
            }
            self.maybe_auto_commit().await?;
            let records = self.drain();
            if !records.is_empty() {
                return Ok(records);
            }
            let now = Instant::now();
            if fetched && now >= deadline {
                return Ok(Vec::new());
            }
            match self.resolve_positions().await {
                Ok(()) => {}
                Err(e) if e.is_retriable() => {
                    debug!(error = %e, "looking up positions failed; retrying");
                    self.pause(backoff.min(deadline.saturating_duration_since(now)))
                        .await;
                    backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
                    fetched = true;
                    continue;
                }
                Err(e) => return Err(e),
            }
            let wait = deadline
                .saturating_duration_since(Instant::now())
                .min(self.config.fetch.max_wait);
            if !self.fetch(wait).await? {
                self.pause(backoff.min(wait)).await;
                backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
            } else {
                backoff = RETRY_BACKOFF;
            }
            fetched = true;
        }
    }

    /// Commits the positions of every assigned partition (the offsets after the
    /// records `poll` returned) and waits for the coordinator's answer. Fails with
    /// [`Error::CommitFailed`] when the group has rebalanced since.
    pub async fn commit(&mut self) -> Result<()> {
        let offsets = self.consumed_offsets();
        let span = self.span.clone();
        self.send_commit(&offsets).instrument(span).await
    }

    /// Commits explicit offsets (each the offset of the next record to read) and waits
    /// for the answer. Fails as [`GroupConsumer::commit`] does.
    pub async fn commit_offsets(&mut self, offsets: &BTreeMap<TopicPartition, i64>) -> Result<()> {
        let span = self.span.clone();
        self.send_commit(offsets).instrument(span).await
    }

    /// The group's committed offsets for `partitions` (those without one are left out).
    pub async fn committed(
        &mut self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        let span = self.span.clone();
        self.fetch_committed(partitions).instrument(span).await
    }

    /// Leaves the group cleanly: commits positions (auto commit), calls
    /// `on_partitions_revoked`, and sends LeaveGroup (not for static members). Returns
    /// the commit's error, if any; the member leaves regardless.
    pub async fn close(mut self) -> Result<()> {
        let span = self.span.clone();
        self.close_inner().instrument(span).await
    }

    async fn close_inner(&mut self) -> Result<()> {
        self.heartbeat = None;
        let mut result = Ok(());
        if self.config.auto_commit && self.member.state() == MemberState::Stable {
            result = self.commit().await;
        }
        let revoked = self.assignment();
        if !revoked.is_empty() {
            if let Some(l) = self.listener.as_mut() {
                l.on_partitions_revoked(&revoked);
            }
        }
        self.assignment.clear();
        self.buffer.clear();
        if self.member.instance_id().is_none() && !self.member.member_id().is_empty() {
            if let Err(e) = self.leave().await {
                debug!(error = %e, "LeaveGroup failed; the session timeout will remove the member");
            }
        }
        self.member.reset();
        result
    }

    async fn leave(&mut self) -> Result<()> {
        let group = self.config.group_id.clone();
        let member_id = self.member.member_id().to_string();
        let timeout = self.cluster.request_timeout();
        let response = self
            .link
            .send(&self.cluster, timeout, |version| {
                let request = LeaveGroupRequest::default().with_group_id(group_id(&group));
                // v3+ names leaving members in a list.
                if version >= 3 {
                    request.with_members(vec![MemberIdentity::default()
                        .with_member_id(StrBytes::from_string(member_id.clone()))
                        .with_reason(
                            (version >= 5)
                                .then(|| StrBytes::from_static_str("the consumer is closing")),
                        )])
                } else {
                    request.with_member_id(StrBytes::from_string(member_id.clone()))
                }
            })
            .await?;
        let code = response
            .members
            .first()
            .map(|m| m.error_code)
            .filter(|&c| c != 0)
            .unwrap_or(response.error_code);
        info!(member = %member_id, code, "left the group");
        Error::check(code, || format!("leave group {group:?}"), None)
    }

    /// Sleeps for `wait`, waking early if the heartbeat task reports something.
    async fn pause(&mut self, wait: Duration) {
        match self.heartbeat.as_mut() {
            Some(hb) => {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = hb.changed() => {}
                }
            }
            None => tokio::time::sleep(wait).await,
        }
    }
}

fn group_id(group: &str) -> GroupId {
    GroupId(StrBytes::from_string(group.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_are_validated() {
        let ok = GroupConfig::new("g");
        assert!(ok.validate().is_ok());
        let mut c = GroupConfig::new("");
        assert!(c.validate().is_err());
        c = GroupConfig::new("g");
        c.heartbeat_interval = c.session_timeout;
        assert!(c.validate().is_err());
        c = GroupConfig::new("g");
        c.assignors.clear();
        assert!(c.validate().is_err());
        c = GroupConfig::new("g");
        c.max_poll_records = 0;
        assert!(c.validate().is_err());
        c = GroupConfig::new("g");
        c.rebalance_timeout = Duration::from_secs(u64::MAX / 4);
        assert!(c.validate().is_err());
        c = GroupConfig::new("g");
        c.group_instance_id = Some(String::new());
        assert!(c.validate().is_err());
    }
}
