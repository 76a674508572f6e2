//! The usage measured per client against its quota ([`QuotaSensors`]): a credit
//! bucket per client and quota, and the throttle it earns. A measurement unused for an hour is dropped, with its metrics,
//! as Kafka expires its quota sensors.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::config::{ClientQuotas, QuotaKind, SensorKey};
use super::rate::Bucket;
use crate::metrics::{Metrics, QuotaLabels};

/// How long a measurement is kept without use.
const IDLE_EXPIRY: Duration = Duration::from_secs(3600);
/// How often idle measurements are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// Measurements kept at most. Client ids are the client's choice: past this many, the
/// clients without one of their own share one ([`OVERFLOW`]), and its metrics.
pub const MAX_SENSORS: usize = 10_000;
/// The user and client id of the shared measurement.
pub const OVERFLOW: &str = "<overflow>";

struct Sensor {
    bucket: Bucket,
    last: Instant,
}

#[derive(Default)]
struct Inner {
    sensors: HashMap<(QuotaKind, SensorKey), Sensor>,
    swept: Option<Instant>,
}

/// Every client's measured usage, by quota kind and the key its quota is shared under.
#[derive(Default)]
pub struct QuotaSensors {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for QuotaSensors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QuotaSensors")
    }
}

fn labels(kind: QuotaKind, (user, client): &SensorKey) -> QuotaLabels {
    QuotaLabels {
        quota: kind.key().into(),
        user: user.clone(),
        client_id: client.clone(),
    }
}

impl QuotaSensors {
    /// Records `amount` (bytes, or percent-seconds of handler time) for `user` using
    /// `client` and returns how long it must be throttled: zero without a quota or
    /// under it.
    pub fn record(
        &self,
        quotas: &ClientQuotas,
        kind: QuotaKind,
        (user, client): (&str, &str),
        amount: f64,
        metrics: &Metrics,
    ) -> Duration {
        let Some((limit, mut key)) = quotas.resolve(kind, user, client) else {
            return Duration::ZERO;
        };
        let now = Instant::now();
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.sweep(now, metrics);
        if inner.sensors.len() >= MAX_SENSORS && !inner.sensors.contains_key(&(kind, key.clone())) {
            key = (OVERFLOW.to_string(), OVERFLOW.to_string());
        }
        let sensor = inner
            .sensors
            .entry((kind, key.clone()))
            .or_insert_with(|| Sensor {
                bucket: Bucket::new(limit, now),
                last: now,
            });
        sensor.last = now;
        let throttle = sensor.bucket.take(amount, limit, now);
        let l = labels(kind, &key);
        metrics.quota_usage.get_or_create(&l).inc_by(amount);
        if !throttle.is_zero() {
            metrics
                .quota_throttle
                .get_or_create(&l)
                .inc_by(throttle.as_secs_f64());
        }
        throttle
    }
}

impl Inner {
    fn sweep(&mut self, now: Instant, metrics: &Metrics) {
        if self
            .swept
            .is_some_and(|t| now.saturating_duration_since(t) < SWEEP_EVERY)
        {
            return;
        }
        self.swept = Some(now);
        self.sensors.retain(|(kind, key), s| {
            let keep = now.saturating_duration_since(s.last) < IDLE_EXPIRY;
            if !keep {
                let l = labels(*kind, key);
                metrics.quota_usage.remove(&l);
                metrics.quota_throttle.remove(&l);
            }
            keep
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quota::{EntityName, QuotaChange, QuotaEntity};

    #[test]
    fn a_client_over_its_quota_is_throttled_and_counted() {
        let mut quotas = ClientQuotas::default();
        quotas.apply(vec![QuotaChange {
            entity: QuotaEntity {
                user: Some(EntityName::Named("alice".into())),
                client_id: None,
            },
            set: [(QuotaKind::Produce.key().to_string(), 100.0)].into(),
            remove: vec![],
        }]);
        let (sensors, metrics) = (QuotaSensors::default(), Metrics::default());
        let alice = ("alice", "app");
        let record =
            |who, amount| sensors.record(&quotas, QuotaKind::Produce, who, amount, &metrics);
        // The burst (10 s at 100/s) is free; 500 more is 5 s of debt.
        assert_eq!(record(alice, 1000.0), Duration::ZERO);
        let throttle = record(alice, 500.0);
        assert!(throttle > Duration::from_millis(4990) && throttle <= Duration::from_secs(5));
        let bob = ("bob", "app");
        assert_eq!(record(bob, 1e9), Duration::ZERO);
        let l = labels(QuotaKind::Produce, &("alice".into(), "".into()));
        assert_eq!(metrics.quota_usage.get_or_create(&l).get(), 1500.0);
    }
}
