//! The popup's state: which alerts are in the window, and which events are
//! waiting to be written to stdout.
//!
//! Pure: every method that depends on time takes `now` (Unix milliseconds),
//! so the critical-alert delay and expiry are tested without sleeping.

use std::collections::HashSet;

use crate::protocol::{AlertSpec, Command, Event, Priority};

/// How long a critical alert stays on screen before it may be closed.
pub const CRITICAL_CLOSE_DELAY_MS: i64 = 5_000;

/// One alert in the window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    pub spec: AlertSpec,
    /// When the alert was first painted; `None` until then.
    pub displayed_at_ms: Option<i64>,
}

impl Alert {
    /// Milliseconds until the person may close this alert; zero if they may now.
    ///
    /// A critical alert that has not been painted yet cannot be closed: the
    /// delay starts when the person could first see it.
    pub fn close_blocked_for_ms(&self, now_ms: i64) -> i64 {
        if self.spec.priority != Priority::Critical {
            return 0;
        }
        match self.displayed_at_ms {
            Some(at) => (at + CRITICAL_CLOSE_DELAY_MS - now_ms).max(0),
            None => CRITICAL_CLOSE_DELAY_MS,
        }
    }

    fn is_expired(&self, now_ms: i64) -> bool {
        self.spec.expires_unix_ms.is_some_and(|at| at <= now_ms)
    }
}

/// Alerts in the window plus the outbox of events for the agent.
#[derive(Clone, Debug, Default)]
pub struct PopupState {
    /// Newest first.
    alerts: Vec<Alert>,
    /// Events not yet written to stdout, oldest first.
    outbox: Vec<Event>,
    /// Ids that were in the window and have left it. A repeated `show` for
    /// one of them is ignored, so an alert appears on screen at most once.
    gone: HashSet<String>,
    /// Whether any alert has been painted; the process exits only afterwards.
    ever_displayed: bool,
    /// Whether stdin reached end of file: no more alerts can arrive.
    input_closed: bool,
    /// The clock the UI reads. Updated by the binary every frame; set by hand in tests.
    pub now_ms: i64,
    /// Local time zone offset used to print "sent at" times.
    pub utc_offset_s: i32,
}

impl PopupState {
    pub fn new(now_ms: i64, utc_offset_s: i32) -> Self {
        Self {
            now_ms,
            utc_offset_s,
            ..Self::default()
        }
    }

    /// Alerts in display order, newest first.
    pub fn alerts(&self) -> &[Alert] {
        &self.alerts
    }

    /// Applies one command from stdin.
    pub fn apply(&mut self, command: Command, now_ms: i64) {
        match command {
            Command::Show(spec) => self.show(spec, now_ms),
            Command::Withdraw { id } => self.withdraw(&id),
        }
    }

    fn show(&mut self, spec: AlertSpec, now_ms: i64) {
        if self.gone.contains(&spec.id) || self.alerts.iter().any(|a| a.spec.id == spec.id) {
            tracing::debug!(id = %spec.id, "ignoring repeated show");
            return;
        }
        if spec.expires_unix_ms.is_some_and(|at| at <= now_ms) {
            tracing::info!(id = %spec.id, "ignoring alert that has already expired");
            return;
        }
        self.alerts.insert(
            0,
            Alert {
                spec,
                displayed_at_ms: None,
            },
        );
    }

    /// Removes an alert without telling the agent: the agent asked for it.
    pub fn withdraw(&mut self, id: &str) {
        if let Some(pos) = self.alerts.iter().position(|a| a.spec.id == id) {
            self.alerts.remove(pos);
            self.gone.insert(id.to_owned());
        }
    }

    /// Removes every alert whose expiry has passed, without events.
    pub fn expire(&mut self, now_ms: i64) {
        let gone = &mut self.gone;
        self.alerts.retain(|a| {
            let keep = !a.is_expired(now_ms);
            if !keep {
                tracing::info!(id = %a.spec.id, "alert expired");
                gone.insert(a.spec.id.clone());
            }
            keep
        });
    }

    /// Records that the alert is on screen; the first time, queues `displayed`.
    pub fn mark_displayed(&mut self, id: &str, now_ms: i64) {
        let Some(alert) = self.alerts.iter_mut().find(|a| a.spec.id == id) else {
            return;
        };
        if alert.displayed_at_ms.is_none() {
            alert.displayed_at_ms = Some(now_ms);
            self.ever_displayed = true;
            self.outbox.push(Event::Displayed {
                id: id.to_owned(),
                at_unix_ms: now_ms,
            });
        }
    }

    /// The person closed an alert. Returns false (and changes nothing) if the
    /// alert is unknown or is a critical alert still inside its delay.
    pub fn dismiss(&mut self, id: &str, now_ms: i64) -> bool {
        let Some(pos) = self.alerts.iter().position(|a| a.spec.id == id) else {
            return false;
        };
        if self.alerts[pos].close_blocked_for_ms(now_ms) > 0 {
            return false;
        }
        self.alerts.remove(pos);
        self.gone.insert(id.to_owned());
        self.outbox.push(Event::Dismissed {
            id: id.to_owned(),
            at_unix_ms: now_ms,
        });
        true
    }

    /// The window manager closed the window: every alert the person has
    /// seen counts as dismissed. Alerts never painted leave without an event.
    pub fn close_all(&mut self, now_ms: i64) {
        for alert in self.alerts.drain(..) {
            if alert.displayed_at_ms.is_some() {
                self.outbox.push(Event::Dismissed {
                    id: alert.spec.id.clone(),
                    at_unix_ms: now_ms,
                });
            }
            self.gone.insert(alert.spec.id);
        }
    }

    /// Stdin reached end of file.
    pub fn input_closed(&mut self) {
        self.input_closed = true;
    }

    /// True once the window has nothing left to do: it has shown an alert
    /// (or can receive no more) and the list is empty.
    pub fn should_exit(&self) -> bool {
        self.alerts.is_empty() && (self.ever_displayed || self.input_closed)
    }

    /// Takes the events waiting to be written, oldest first.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.outbox)
    }

    /// Events waiting to be written, for inspection in tests.
    pub fn pending_events(&self) -> &[Event] {
        &self.outbox
    }

    /// When the window next needs to redraw by itself: a countdown tick of a
    /// critical alert, or an expiry. `None` if nothing is scheduled.
    pub fn next_wakeup_ms(&self, now_ms: i64) -> Option<i64> {
        self.alerts
            .iter()
            .flat_map(|a| {
                let blocked = a.close_blocked_for_ms(now_ms);
                let tick = (blocked > 0).then(|| now_ms + (blocked - 1) % 1_000 + 1);
                [tick, a.spec.expires_unix_ms]
            })
            .flatten()
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str, priority: Priority, expires: Option<i64>) -> AlertSpec {
        AlertSpec {
            id: id.into(),
            title: format!("title {id}"),
            body: String::new(),
            priority,
            sender_unit: String::new(),
            sender: String::new(),
            sent_unix_ms: 0,
            expires_unix_ms: expires,
        }
    }

    fn show(id: &str, priority: Priority, expires: Option<i64>) -> Command {
        Command::Show(spec(id, priority, expires))
    }

    fn ids(state: &PopupState) -> Vec<&str> {
        state.alerts().iter().map(|a| a.spec.id.as_str()).collect()
    }

    fn displayed(id: &str, at: i64) -> Event {
        Event::Displayed {
            id: id.into(),
            at_unix_ms: at,
        }
    }

    fn dismissed(id: &str, at: i64) -> Event {
        Event::Dismissed {
            id: id.into(),
            at_unix_ms: at,
        }
    }

    /// One step of a scenario, applied at a given time.
    enum Step {
        Cmd(Command),
        Paint,
        Dismiss(&'static str, bool),
        Expire,
        CloseAll,
        InputClosed,
    }

    struct Case {
        name: &'static str,
        steps: Vec<(i64, Step)>,
        alerts: Vec<&'static str>,
        events: Vec<Event>,
        exit: bool,
    }

    fn run(case: Case) {
        let mut state = PopupState::new(0, 0);
        for (now, step) in case.steps {
            match step {
                Step::Cmd(c) => state.apply(c, now),
                Step::Paint => {
                    let shown: Vec<String> =
                        state.alerts().iter().map(|a| a.spec.id.clone()).collect();
                    for id in shown {
                        state.mark_displayed(&id, now);
                    }
                }
                Step::Dismiss(id, ok) => {
                    assert_eq!(
                        state.dismiss(id, now),
                        ok,
                        "{}: dismiss {id} at {now}",
                        case.name
                    )
                }
                Step::Expire => state.expire(now),
                Step::CloseAll => state.close_all(now),
                Step::InputClosed => state.input_closed(),
            }
        }
        assert_eq!(ids(&state), case.alerts, "{}: alerts", case.name);
        assert_eq!(state.take_events(), case.events, "{}: events", case.name);
        assert_eq!(state.should_exit(), case.exit, "{}: exit", case.name);
    }

    #[test]
    fn transitions() {
        use Priority::*;
        use Step::*;
        let cases = vec![
            Case {
                name: "empty window waits for its first alert",
                steps: vec![],
                alerts: vec![],
                events: vec![],
                exit: false,
            },
            Case {
                name: "newest first, displayed once",
                steps: vec![
                    (10, Cmd(show("a", Info, None))),
                    (11, Paint),
                    (12, Cmd(show("b", Warning, None))),
                    (13, Paint),
                    (14, Paint),
                ],
                alerts: vec!["b", "a"],
                events: vec![displayed("a", 11), displayed("b", 13)],
                exit: false,
            },
            Case {
                name: "show for an id already in the window is ignored",
                steps: vec![
                    (1, Cmd(show("a", Info, None))),
                    (2, Cmd(show("b", Info, None))),
                    (3, Cmd(show("a", Critical, None))),
                ],
                alerts: vec!["b", "a"],
                events: vec![],
                exit: false,
            },
            Case {
                name: "dismiss last alert exits",
                steps: vec![
                    (1, Cmd(show("a", Warning, None))),
                    (2, Paint),
                    (3, Dismiss("a", true)),
                    (4, Dismiss("a", false)),
                ],
                alerts: vec![],
                events: vec![displayed("a", 2), dismissed("a", 3)],
                exit: true,
            },
            Case {
                name: "a closed alert does not come back",
                steps: vec![
                    (1, Cmd(show("a", Info, None))),
                    (2, Paint),
                    (3, Dismiss("a", true)),
                    (4, Cmd(show("a", Info, None))),
                ],
                alerts: vec![],
                events: vec![displayed("a", 2), dismissed("a", 3)],
                exit: true,
            },
            Case {
                name: "withdraw removes without an event",
                steps: vec![
                    (1, Cmd(show("a", Info, None))),
                    (2, Cmd(show("b", Info, None))),
                    (3, Paint),
                    (4, Cmd(Command::Withdraw { id: "a".into() })),
                    (5, Cmd(Command::Withdraw { id: "zzz".into() })),
                ],
                alerts: vec!["b"],
                events: vec![displayed("b", 3), displayed("a", 3)],
                exit: false,
            },
            Case {
                name: "critical is blocked for five seconds after display",
                steps: vec![
                    (1_000, Cmd(show("c", Critical, None))),
                    (1_500, Dismiss("c", false)),
                    (2_000, Paint),
                    (6_999, Dismiss("c", false)),
                    (7_000, Dismiss("c", true)),
                ],
                alerts: vec![],
                events: vec![displayed("c", 2_000), dismissed("c", 7_000)],
                exit: true,
            },
            Case {
                name: "expired on arrival is never shown",
                steps: vec![(100, Cmd(show("old", Warning, Some(100))))],
                alerts: vec![],
                events: vec![],
                exit: false,
            },
            Case {
                name: "expiry removes without an event",
                steps: vec![
                    (1, Cmd(show("a", Info, Some(50)))),
                    (2, Cmd(show("b", Info, Some(500)))),
                    (3, Paint),
                    (49, Expire),
                    (50, Expire),
                ],
                alerts: vec!["b"],
                events: vec![displayed("b", 3), displayed("a", 3)],
                exit: false,
            },
            Case {
                name: "window closed by the window manager dismisses what was seen",
                steps: vec![
                    (1, Cmd(show("a", Critical, None))),
                    (2, Paint),
                    (3, Cmd(show("b", Info, None))),
                    (4, CloseAll),
                ],
                alerts: vec![],
                events: vec![displayed("a", 2), dismissed("a", 4)],
                exit: true,
            },
            Case {
                name: "stdin closed keeps running until the list is empty",
                steps: vec![
                    (1, Cmd(show("a", Info, None))),
                    (2, Paint),
                    (3, InputClosed),
                ],
                alerts: vec!["a"],
                events: vec![displayed("a", 2)],
                exit: false,
            },
            Case {
                name: "stdin closed before any alert exits",
                steps: vec![(1, InputClosed)],
                alerts: vec![],
                events: vec![],
                exit: true,
            },
        ];
        for case in cases {
            run(case);
        }
    }

    #[test]
    fn countdown_and_wakeups() {
        let mut state = PopupState::new(0, 0);
        state.apply(
            Command::Show(spec("c", Priority::Critical, Some(60_000))),
            0,
        );
        state.mark_displayed("c", 1_000);
        let alert = &state.alerts()[0];
        // (now, blocked ms, next wakeup)
        let cases = [
            (1_000, 5_000, Some(2_000)),
            (1_001, 4_999, Some(2_000)),
            (5_500, 500, Some(6_000)),
            (6_000, 0, Some(60_000)),
            (70_000, 0, Some(60_000)),
        ];
        for (now, blocked, wake) in cases {
            assert_eq!(alert.close_blocked_for_ms(now), blocked, "now={now}");
            assert_eq!(state.next_wakeup_ms(now), wake, "now={now}");
        }
    }
}
