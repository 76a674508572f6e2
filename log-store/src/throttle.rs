//! The cleaner's I/O throttle (Kafka's `log.cleaner.io.max.bytes.per.second`): cleanings
//! report the bytes they read and write, and are made to wait whenever they run ahead of
//! the rate, so they can't starve produce and fetch I/O. One throttle is shared by every
//! cleaning of a broker.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long the throttle measures before it starts a new window; a cleaning that was idle
/// for longer gets no burst credit beyond one window.
pub const THROTTLE_WINDOW_MS: u64 = 1000;

#[derive(Debug)]
struct Window {
    start: Instant,
    bytes: u64,
}

/// A byte-rate limit shared by cleanings. `Sync`: share it behind an `Arc`.
#[derive(Debug)]
pub struct Throttle {
    bytes_per_second: Option<u64>,
    window: Mutex<Window>,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::unlimited()
    }
}

impl Throttle {
    /// At most `bytes_per_second` (`None`: unlimited, Kafka's default).
    pub fn new(bytes_per_second: Option<u64>) -> Throttle {
        Throttle {
            bytes_per_second: bytes_per_second.filter(|b| *b > 0),
            window: Mutex::new(Window {
                start: Instant::now(),
                bytes: 0,
            }),
        }
    }

    /// No limit.
    pub fn unlimited() -> Throttle {
        Throttle::new(None)
    }

    /// The configured limit.
    pub fn bytes_per_second(&self) -> Option<u64> {
        self.bytes_per_second
    }

    /// Accounts `bytes` done at `now` and returns how long the caller must pause to stay
    /// within the rate. Pure arithmetic over the window, so it is testable.
    pub fn delay_for(&self, bytes: u64, now: Instant) -> Duration {
        let Some(rate) = self.bytes_per_second else {
            return Duration::ZERO;
        };
        // A poisoned lock only means another cleaning panicked mid-update; the window
        // is plain numbers, still usable.
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let elapsed = now.saturating_duration_since(w.start);
        if elapsed > Duration::from_millis(THROTTLE_WINDOW_MS) && w.bytes == 0 {
            w.start = now;
        }
        w.bytes = w.bytes.saturating_add(bytes);
        let due = Duration::from_secs_f64(w.bytes as f64 / rate as f64);
        let elapsed = now.saturating_duration_since(w.start);
        let delay = due.saturating_sub(elapsed);
        if elapsed + delay >= Duration::from_millis(THROTTLE_WINDOW_MS) {
            // Start a fresh window where this pause ends.
            w.start = now + delay;
            w.bytes = 0;
        }
        delay
    }

    /// Accounts `bytes` and sleeps as long as the rate requires (rate limiting, not
    /// synchronisation: nothing waits for anything else here).
    pub fn consume(&self, bytes: u64) {
        let delay = self.delay_for(bytes, Instant::now());
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_never_waits() {
        let t = Throttle::unlimited();
        assert_eq!(t.delay_for(u64::MAX, Instant::now()), Duration::ZERO);
    }

    #[test]
    fn waits_in_proportion_to_the_bytes_beyond_the_rate() {
        let t = Throttle::new(Some(1000));
        let t0 = Instant::now();
        *t.window.lock().unwrap() = Window {
            start: t0,
            bytes: 0,
        };
        // 500 bytes at t0: due at 0.5 s.
        assert_eq!(t.delay_for(500, t0), Duration::from_millis(500));
        // 500 more bytes at 0.5 s: due at 1 s, so 0.5 s more.
        assert_eq!(
            t.delay_for(500, t0 + Duration::from_millis(500)),
            Duration::from_millis(500)
        );
        // A new window starts after a second, without credit for the idle time.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(t.delay_for(10, later), Duration::from_millis(10));
        // 10 bytes per 100 ms is well within 1000 B/s.
        assert_eq!(
            t.delay_for(10, later + Duration::from_millis(100)),
            Duration::ZERO
        );
    }
}
