//! Consumer groups, Kafka's classic protocol: members of a group share the partitions
//! of the topics they subscribe to, and the group remembers how far it read.
//!
//! - [`GroupConsumer`]: a member — subscribe, poll, rebalance callbacks, auto and
//!   manual commits, static membership (see its module for the guarantees).
//! - [`assignor`]: the client-side assignors (`range`, `roundrobin`, `sticky`).
//! - [`GroupAdmin`]: list, describe and delete groups; read, reset and delete their
//!   committed offsets.
//! - [`coordinator`], [`membership`], [`heartbeat`], [`offsets`], [`protocol`]: the
//!   pieces — coordinator lookup, the join/sync state machine, the heartbeat task,
//!   OffsetCommit/OffsetFetch, and the consumer protocol's embedded bytes.

pub mod admin;
pub mod assignor;
pub mod consumer;
pub mod coordinator;
pub mod heartbeat;
pub mod membership;
pub mod offsets;
pub mod protocol;

mod fetcher;
mod range;
mod round_robin;
mod sticky;

pub use admin::{GroupAdmin, GroupDescription, GroupListing, MemberDescription};
pub use assignor::{Assignor, RangeAssignor, RoundRobinAssignor, StickyAssignor};
pub use consumer::{GroupConfig, GroupConsumer, OffsetReset, RebalanceListener};
