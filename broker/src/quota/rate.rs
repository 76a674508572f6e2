//! A client's credit against its quota: a token bucket, as Kafka measures controller
//! mutations (KIP-599). Credit accrues at the quota's rate up to a burst of
//! [`BURST`] worth of it (the span Kafka's windowed byte-rate measurement grants:
//! `quota.window.num - 1` samples of `quota.window.size.seconds`); what a request
//! uses is taken from it, and a client in debt waits until the debt is paid off.
//!
//! Unlike a windowed rate, a bucket does not hand a saturating client a second burst
//! when its first leaves the window, so its rate settles at the quota.

use std::time::{Duration, Instant};

/// The most credit a client can save: this long at its quota.
pub const BURST: Duration = Duration::from_secs(10);
/// The longest single throttle (Kafka's whole quota window).
pub const MAX_THROTTLE: Duration = Duration::from_secs(11);

/// Credit (in the quota's unit: bytes, or percent-seconds) at a moment.
#[derive(Debug)]
pub struct Bucket {
    credit: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket for `quota` per second.
    pub fn new(quota: f64, now: Instant) -> Bucket {
        Bucket {
            credit: quota * BURST.as_secs_f64(),
            at: now,
        }
    }

    /// Takes `amount` at `now` under `quota` per second, and returns how long the client
    /// must wait for its credit to be back at zero (zero while it has credit).
    pub fn take(&mut self, amount: f64, quota: f64, now: Instant) -> Duration {
        let full = quota * BURST.as_secs_f64();
        let earned = now.saturating_duration_since(self.at).as_secs_f64() * quota;
        self.credit = (self.credit + earned).min(full) - amount;
        self.at = now;
        if self.credit >= 0.0 || quota <= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64((-self.credit / quota).min(MAX_THROTTLE.as_secs_f64()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_the_rate_is_held_to_the_quota() {
        let t0 = Instant::now();
        let mut b = Bucket::new(100.0, t0);
        // Ten seconds' worth at once is free.
        assert_eq!(b.take(1000.0, 100.0, t0), Duration::ZERO);
        // Fifty more put the client half a second in debt.
        assert_eq!(b.take(50.0, 100.0, t0), Duration::from_millis(500));
        // Having waited it out, a client at the quota is never throttled.
        let mut t = t0 + Duration::from_millis(500);
        for _ in 0..20 {
            t += Duration::from_secs(1);
            assert_eq!(b.take(100.0, 100.0, t), Duration::ZERO);
        }
    }

    #[test]
    fn credit_is_capped_and_throttles_are_bounded() {
        let t0 = Instant::now();
        let mut b = Bucket::new(1.0, t0);
        let later = t0 + Duration::from_secs(3600);
        // An hour idle still saves only the burst.
        assert_eq!(b.take(10.0, 1.0, later), Duration::ZERO);
        assert_eq!(b.take(1e9, 1.0, later), MAX_THROTTLE);
    }
}
