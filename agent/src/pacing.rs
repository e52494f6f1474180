//! When the service sends its receipts.
//!
//! A receipt is bookkeeping for the sender's progress view; the alert is
//! what has to be fast. Right after a fan-out every agent of the audience
//! has a "delivered" receipt to send, and if they all answered at once,
//! the server would be reading and storing those answers while it is still
//! pushing the same alert to the agents it has not reached yet (and on a
//! busy network, so would every link in between). A new receipt therefore
//! waits a short random time before it goes out: the answers to a fan-out
//! reach the server spread over about a second after it, and a "displayed"
//! that follows its "delivered" within that time travels with it.

use std::time::Duration;

/// The shortest wait of a new receipt.
pub const RECEIPT_DELAY_MIN: Duration = Duration::from_millis(500);
/// The longest wait of a new receipt.
pub const RECEIPT_DELAY_MAX: Duration = Duration::from_millis(1500);

/// The wait for a receipt, picked by `unit` in [0, 1).
pub fn receipt_delay_at(unit: f64) -> Duration {
    RECEIPT_DELAY_MIN + (RECEIPT_DELAY_MAX - RECEIPT_DELAY_MIN).mul_f64(unit.clamp(0.0, 1.0))
}

/// A random wait for a new receipt, in [`RECEIPT_DELAY_MIN`], [`RECEIPT_DELAY_MAX`].
pub fn receipt_delay() -> Duration {
    receipt_delay_at(rand::random::<f64>())
}

/// Resolves at `at`, when the receipts waiting go out; never without it.
pub async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_in_their_window() {
        let cases = [
            (0.0, 500),
            (0.5, 1000),
            (0.999, 1499),
            (-1.0, 500),
            (7.0, 1500),
        ];
        for (unit, ms) in cases {
            assert_eq!(receipt_delay_at(unit).as_millis(), ms, "unit {unit}");
        }
        for _ in 0..1000 {
            let d = receipt_delay();
            assert!(
                (RECEIPT_DELAY_MIN..=RECEIPT_DELAY_MAX).contains(&d),
                "{d:?}"
            );
        }
    }
}
