//! Reconnect delays: exponential with jitter, so that thousands of agents
//! cut off by a server restart do not all come back in the same instant.

use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Delay ceiling for the first retry.
    pub base: Duration,
    /// No delay is ever longer than this.
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// The ceiling after `attempt` failures in a row: base·2^attempt, capped.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// A delay in [ceiling/2, ceiling], picked by `unit` in [0, 1).
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let ceiling = self.ceiling(attempt);
        let half = ceiling / 2;
        half + half.mul_f64(unit.clamp(0.0, 1.0))
    }

    pub fn random_delay(&self, attempt: u32) -> Duration {
        self.delay(attempt, rand::random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_with_jitter_and_never_exceeds_cap() {
        let b = Backoff {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
        };
        let cases = [
            (0, 0.0, 250),
            (0, 0.999, 499),
            (1, 0.0, 500),
            (3, 1.0, 4000),
            (5, 0.5, 12000),
            (6, 0.5, 22500),
            (7, 1.0, 30000),
            (1000, 0.999, 29_985),
        ];
        for (attempt, unit, want_ms) in cases {
            assert_eq!(
                b.delay(attempt, unit).as_millis(),
                want_ms,
                "attempt {attempt}, unit {unit}"
            );
        }
        for attempt in 0..100 {
            assert!(b.random_delay(attempt) <= b.cap);
        }
    }
}
