//! Quick alerts: validation of what an admin sends, the per-computer delivery
//! state machine, and the counts shown while an alert goes out.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::UnixMs;
use super::org::UnitId;

pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_BODY_CHARS: usize = 4000;
/// An alert lives this long unless the sender says otherwise.
pub const DEFAULT_TTL_MS: UnixMs = 4 * 3600 * 1000;
/// And never longer than this.
pub const MAX_TTL_MS: UnixMs = 7 * 24 * 3600 * 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Info,
    Warning,
    Critical,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Queued,
    Delivered,
    Displayed,
    Dismissed,
    Expired,
    Cancelled,
}

impl DeliveryState {
    /// Progress along queued → delivered → displayed → dismissed.
    fn rank(self) -> u8 {
        match self {
            DeliveryState::Queued => 0,
            DeliveryState::Delivered => 1,
            DeliveryState::Displayed => 2,
            DeliveryState::Dismissed => 3,
            DeliveryState::Expired | DeliveryState::Cancelled => 4,
        }
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            DeliveryState::Dismissed | DeliveryState::Expired | DeliveryState::Cancelled
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlertError {
    #[error("invalid {0}: {1}")]
    Invalid(&'static str, String),
}

/// The alert as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub id: String,
    pub title: String,
    pub body: String,
    pub priority: Priority,
    pub sender: String,
    pub sender_unit_path: String,
    pub accepted_ms: UnixMs,
    pub expires_ms: UnixMs,
    pub cancelled: bool,
    #[serde(default)]
    pub cancelled_ms: Option<UnixMs>,
    pub computers: u32,
    /// Human-readable targets, for lists and the audit log.
    pub targets: Vec<String>,
}

impl Alert {
    /// No longer to be shown anywhere.
    pub fn is_over(&self, now: UnixMs) -> bool {
        self.cancelled || now >= self.expires_ms
    }
}

/// Checks title and body, and works out the expiry (`requested` 0 = default).
pub fn validate(
    title: &str,
    body: &str,
    requested_expiry: UnixMs,
    now: UnixMs,
) -> Result<(String, String, UnixMs), AlertError> {
    let title = title.trim();
    if title.is_empty() {
        return Err(AlertError::Invalid("title", "the title is empty".into()));
    }
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(AlertError::Invalid(
            "title",
            format!("longer than {MAX_TITLE_CHARS} characters"),
        ));
    }
    if title.chars().any(char::is_control) {
        return Err(AlertError::Invalid(
            "title",
            "contains control characters (line breaks go in the body)".into(),
        ));
    }
    let body = body.trim_end();
    if body.chars().count() > MAX_BODY_CHARS {
        return Err(AlertError::Invalid(
            "body",
            format!("longer than {MAX_BODY_CHARS} characters"),
        ));
    }
    if body
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(AlertError::Invalid(
            "body",
            "contains control characters".into(),
        ));
    }
    let expires = if requested_expiry == 0 {
        now + DEFAULT_TTL_MS
    } else {
        requested_expiry
    };
    if expires <= now {
        return Err(AlertError::Invalid(
            "expires",
            "the expiry is in the past".into(),
        ));
    }
    if expires - now > MAX_TTL_MS {
        return Err(AlertError::Invalid(
            "expires",
            "at most 7 days ahead; quick alerts are for what is urgent".into(),
        ));
    }
    Ok((title.to_owned(), body.to_owned(), expires))
}

/// A computer id, unit id or user name as the delivery ledger keeps it:
/// one shared allocation, however many deliveries name it.
pub type Name = std::sync::Arc<str>;

/// Where one computer's copy of an alert stands. The ledger keeps one per
/// computer per live alert, keyed by computer id, so it holds only what
/// differs between computers: 10,000 computers and a week of alerts make
/// millions of these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub unit: Name,
    pub state: DeliveryState,
    pub delivered_ms: Option<UnixMs>,
    pub displayed_ms: Option<UnixMs>,
    pub dismissed_ms: Option<UnixMs>,
    pub user: Option<Name>,
}

impl Delivery {
    pub fn new(unit: Name) -> Self {
        Delivery {
            unit,
            state: DeliveryState::Queued,
            delivered_ms: None,
            displayed_ms: None,
            dismissed_ms: None,
            user: None,
        }
    }

    /// Applies a receipt from the agent. States only move forward; a later
    /// state fills in the earlier ones it implies. Returns whether anything
    /// changed (a repeated receipt changes nothing).
    pub fn apply(&mut self, to: DeliveryState, at: UnixMs, user: Option<&Name>) -> bool {
        if !matches!(
            to,
            DeliveryState::Delivered | DeliveryState::Displayed | DeliveryState::Dismissed
        ) {
            return false;
        }
        if self.state.is_final() || to.rank() <= self.state.rank() {
            return false;
        }
        if self.delivered_ms.is_none() {
            self.delivered_ms = Some(at);
        }
        if to.rank() >= DeliveryState::Displayed.rank() && self.displayed_ms.is_none() {
            self.displayed_ms = Some(at);
            if let Some(u) = user.filter(|u| !u.is_empty()) {
                self.user = Some(u.clone());
            }
        }
        if to == DeliveryState::Dismissed {
            self.dismissed_ms = Some(at);
        }
        self.state = to;
        true
    }

    /// The state to show: one that never reached a screen before the alert
    /// ran out or was cancelled counts as expired or cancelled.
    pub fn effective(&self, alert: &Alert, now: UnixMs) -> DeliveryState {
        match self.state {
            DeliveryState::Queued | DeliveryState::Delivered if alert.cancelled => {
                DeliveryState::Cancelled
            }
            DeliveryState::Queued | DeliveryState::Delivered if now >= alert.expires_ms => {
                DeliveryState::Expired
            }
            s => s,
        }
    }

    /// Should still be offered to the agent.
    pub fn wanted(&self, alert: &Alert, now: UnixMs) -> bool {
        !alert.is_over(now) && !self.state.is_final()
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub queued: u32,
    pub delivered: u32,
    pub displayed: u32,
    pub dismissed: u32,
    pub expired: u32,
    pub cancelled: u32,
}

impl Counts {
    pub fn add(&mut self, s: DeliveryState) {
        match s {
            DeliveryState::Queued => self.queued += 1,
            DeliveryState::Delivered => self.delivered += 1,
            DeliveryState::Displayed => self.displayed += 1,
            DeliveryState::Dismissed => self.dismissed += 1,
            DeliveryState::Expired => self.expired += 1,
            DeliveryState::Cancelled => self.cancelled += 1,
        }
    }
}

/// Overall and per-unit counts, and whether nothing can change any more.
pub fn tally<'a>(
    alert: &Alert,
    deliveries: impl IntoIterator<Item = &'a Delivery>,
    now: UnixMs,
) -> (Counts, BTreeMap<UnitId, Counts>, bool) {
    let mut all = Counts::default();
    let mut units: BTreeMap<&str, Counts> = BTreeMap::new();
    let mut open = false;
    for d in deliveries {
        let s = d.effective(alert, now);
        all.add(s);
        units.entry(&d.unit).or_default().add(s);
        let done = s.is_final() || (s == DeliveryState::Displayed && alert.is_over(now));
        open |= !done;
    }
    let units = units.into_iter().map(|(u, c)| (u.to_owned(), c)).collect();
    (all, units, !open)
}

#[cfg(test)]
mod tests {
    use super::DeliveryState::*;
    use super::*;

    fn alert(expires: UnixMs, cancelled: bool) -> Alert {
        Alert {
            id: "a".into(),
            title: "t".into(),
            body: "b".into(),
            priority: Priority::Warning,
            sender: "it".into(),
            sender_unit_path: "/".into(),
            accepted_ms: 0,
            expires_ms: expires,
            cancelled,
            cancelled_ms: None,
            computers: 1,
            targets: vec![],
        }
    }

    #[test]
    fn validation() {
        let now = 1_000_000;
        let long = "x".repeat(201);
        let cases: [(&str, &str, UnixMs, Result<UnixMs, &str>); 7] = [
            (
                "Outage",
                "Network down at Branch 3",
                0,
                Ok(now + DEFAULT_TTL_MS),
            ),
            (
                "  Phishing  ",
                "Do not open\nhttps://x.example",
                now + 60_000,
                Ok(now + 60_000),
            ),
            ("", "b", 0, Err("title is empty")),
            (&long, "b", 0, Err("longer than 200")),
            ("a\nb", "b", 0, Err("control characters")),
            ("t", "b", now - 1, Err("in the past")),
            ("t", "b", now + MAX_TTL_MS + 1, Err("at most 7 days")),
        ];
        for (title, body, exp, want) in cases {
            match (validate(title, body, exp, now), want) {
                (Ok((_, _, e)), Ok(w)) => assert_eq!(e, w),
                (Err(e), Err(w)) => assert!(e.to_string().contains(w), "{e} should contain {w}"),
                (got, want) => panic!("{title:?}: got {got:?}, want {want:?}"),
            }
        }
        assert!(validate("t", &"y".repeat(4001), 0, now).is_err());
        assert!(validate("t", "bell\u{7}", 0, now).is_err());
    }

    #[test]
    fn state_machine_moves_forward_only() {
        // (from, receipt, expected state, changed)
        let cases = [
            (Queued, Delivered, Delivered, true),
            (Queued, Displayed, Displayed, true),
            (Delivered, Displayed, Displayed, true),
            (Displayed, Dismissed, Dismissed, true),
            (Delivered, Delivered, Delivered, false),
            (Displayed, Delivered, Displayed, false),
            (Dismissed, Displayed, Dismissed, false),
            (Queued, Expired, Queued, false),
            (Queued, Queued, Queued, false),
        ];
        for (from, to, want, changed) in cases {
            let mut d = Delivery::new("u".into());
            d.state = from;
            assert_eq!(
                d.apply(to, 5, Some(&"anna".into())),
                changed,
                "{from:?} + {to:?}"
            );
            assert_eq!(d.state, want, "{from:?} + {to:?}");
        }
        let mut d = Delivery::new("u".into());
        d.apply(Dismissed, 7, Some(&"anna".into()));
        assert_eq!(
            (d.delivered_ms, d.displayed_ms, d.dismissed_ms),
            (Some(7), Some(7), Some(7))
        );
        assert_eq!(d.user.as_deref(), Some("anna"));
    }

    #[test]
    fn effective_state_and_tally() {
        let live = alert(100, false);
        let gone = alert(100, true);
        let mut queued = Delivery::new("u1".into());
        let mut shown = Delivery::new("u2".into());
        shown.apply(Displayed, 10, None);
        assert_eq!(queued.effective(&live, 50), Queued);
        assert_eq!(queued.effective(&live, 100), Expired);
        assert_eq!(queued.effective(&gone, 50), Cancelled);
        assert_eq!(shown.effective(&live, 200), Displayed);
        assert!(
            queued.wanted(&live, 50) && !queued.wanted(&live, 100) && !queued.wanted(&gone, 50)
        );

        let (c, units, settled) = tally(&live, &[queued.clone(), shown.clone()], 50);
        assert_eq!((c.queued, c.displayed), (1, 1));
        assert_eq!(units["u1"].queued, 1);
        assert!(!settled);
        let (c, _, settled) = tally(&live, &[queued.clone(), shown.clone()], 100);
        assert_eq!((c.expired, c.displayed), (1, 1));
        assert!(settled, "after expiry nothing changes any more");
        queued.apply(Dismissed, 60, None);
        shown.apply(Dismissed, 60, None);
        let (c, _, settled) = tally(&live, &[queued, shown], 70);
        assert_eq!(c.dismissed, 2);
        assert!(settled);
    }
}
