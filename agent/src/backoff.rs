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

/// How one try at holding a session to the server ended, as far as the
/// pause before the next try goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The server welcomed the session, and later it ended.
    SessionEnded,
    /// No session came about (unreachable, handshake refused, no welcome).
    Failed,
    /// The server refused this computer as revoked.
    Revoked,
}

/// After a session that was up ends, the pause before the next try is
/// spread evenly over [base/10, this many bases]: when a server restarts,
/// its whole fleet loses its sessions in the same instant, and a server
/// completes a few thousand TLS handshakes a second on two cores; spread
/// over 5 s (the default base is 1 s), 10,000 agents come back at about
/// the rate the server takes them, instead of overflowing its listen queue
/// within half a second (the kernel then drops the connections, and their
/// SYN retries come only after 1, 3 and 7 s).
pub const SESSION_END_SPREAD: u32 = 5;

/// The reconnect policy of one agent service: after a session that was up,
/// a pause spread over a few seconds (the failure count starts again); after each
/// failure in a row, an exponentially growing jittered pause; a revoked
/// computer waits the longest pause. The fan-out benchmark's simulated
/// agents use this same policy, so a reconnect storm measured there is the
/// one real agents would cause.
#[derive(Clone, Debug)]
pub struct Reconnect {
    backoff: Backoff,
    /// Failed tries since the last session was welcomed.
    failures: u32,
}

impl Reconnect {
    pub fn new(backoff: Backoff) -> Self {
        Reconnect {
            backoff,
            failures: 0,
        }
    }

    /// Failed tries since the last session was welcomed.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The pause before the next try after `outcome`, its jitter picked by
    /// `unit` in [0, 1).
    pub fn delay_after(&mut self, outcome: Outcome, unit: f64) -> Duration {
        match outcome {
            Outcome::SessionEnded => {
                self.failures = 0;
                let least = self.backoff.base / 10;
                let spread = self.backoff.base.saturating_mul(SESSION_END_SPREAD) - least;
                (least + spread.mul_f64(unit.clamp(0.0, 1.0))).min(self.backoff.cap)
            }
            Outcome::Failed => {
                let d = self.backoff.delay(self.failures, unit);
                self.failures = self.failures.saturating_add(1);
                d
            }
            Outcome::Revoked => {
                self.failures = self.failures.saturating_add(1);
                self.backoff.cap
            }
        }
    }

    /// [`Reconnect::delay_after`] with random jitter.
    pub fn random_delay_after(&mut self, outcome: Outcome) -> Duration {
        self.delay_after(outcome, rand::random::<f64>())
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

    #[test]
    fn reconnect_backs_off_on_failures_and_starts_again_after_a_session() {
        let mut r = Reconnect::new(Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
        });
        let steps = [
            (Outcome::SessionEnded, 0.0, 100, 0),
            (Outcome::Failed, 0.0, 500, 1),
            (Outcome::Failed, 0.0, 1000, 2),
            (Outcome::Failed, 1.0, 4000, 3),
            (Outcome::SessionEnded, 1.0, 5000, 0),
            (Outcome::Failed, 0.5, 750, 1),
            (Outcome::Revoked, 0.0, 60_000, 2),
            (Outcome::Failed, 0.0, 2000, 3),
        ];
        for (i, (outcome, unit, want_ms, failures)) in steps.into_iter().enumerate() {
            assert_eq!(
                r.delay_after(outcome, unit).as_millis(),
                want_ms,
                "step {i}: {outcome:?}"
            );
            assert_eq!(r.failures(), failures, "step {i}");
        }
    }
}
