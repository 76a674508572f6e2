//! Client quotas, as Kafka has them: byte rates for producing and fetching and a share
//! of request-handling time, per user and client id ([`config`], replicated in the
//! cluster metadata), measured with a credit bucket ([`rate`]) per client
//! ([`sensors`]). A client over its quota is answered with `throttle_time_ms` and its
//! connection reads nothing more until that time has passed (KIP-219).

pub mod config;
pub mod rate;
pub mod sensors;

pub use config::{ClientQuotas, EntityName, QuotaChange, QuotaEntity, QuotaKind};
pub use sensors::QuotaSensors;
