//! Who is connected right now, and pushing to them. Fan-out never awaits an
//! agent: each live session has a bounded queue, a push is a `try_send`, and
//! an agent whose queue is full is disconnected rather than allowed to hold
//! memory or delay the others.
//!
//! Today this is in-process. With several server nodes, each node keeps the
//! sessions it holds and learns about new deliveries from a message bus; the
//! interface stays the same.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use herald_proto::pb;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tonic::Status;

use crate::domain::UnixMs;

/// What a session's queue holds: a message, shared by every session a
/// fan-out reaches, or the status that ends the session. Two words: a
/// session queue allocates room for 32 of these when it is made, and a
/// server holds one queue per connected computer.
pub type Outbound = Result<Arc<pb::ServerMessage>, Box<Status>>;

pub type SessionTx = mpsc::Sender<Outbound>;

/// One message for one session's queue.
pub fn outbound(msg: pb::ServerMessage) -> Outbound {
    Ok(Arc::new(msg))
}

/// A session's queue as the stream its gRPC call sends.
pub fn session_stream(
    rx: mpsc::Receiver<Outbound>,
) -> impl futures::Stream<Item = Result<pb::ServerMessage, Status>> + Send + 'static {
    use futures::StreamExt;
    tokio_stream::wrappers::ReceiverStream::new(rx)
        .map(|o| o.map(Arc::unwrap_or_clone).map_err(|status| *status))
}

/// A connected agent session.
pub struct LiveSession {
    pub conn_id: u64,
    pub tx: SessionTx,
    /// Ends the session with this status (revocation, replacement, stuck).
    pub kill: Option<oneshot::Sender<Status>>,
    pub users: Vec<String>,
    /// When the agent was last heard from, kept current by its session
    /// task without taking the hub's lock on every message.
    pub last_seen_ms: Arc<AtomicI64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PushReport {
    pub sent: usize,
    pub offline: usize,
    /// Disconnected because their queue was full.
    pub stuck: usize,
}

pub struct Hub {
    sessions: Mutex<HashMap<String, LiveSession>>,
    /// Ids of alerts whose deliveries changed, for live status watchers.
    alert_changes: broadcast::Sender<String>,
    /// Ids of alerts just sent or cancelled, for alert list watchers.
    alert_list: broadcast::Sender<String>,
    /// Bumped whenever a computer connects, disconnects, or its enrollment
    /// or unit changes, for presence watchers.
    presence: watch::Sender<u64>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            sessions: Mutex::new(HashMap::new()),
            alert_changes: broadcast::channel(4096).0,
            alert_list: broadcast::channel(256).0,
            presence: watch::channel(0).0,
        }
    }
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, LiveSession>> {
        // A panic while holding this lock cannot leave the map half-updated
        // (every critical section is a single map operation), so a poisoned
        // lock is still safe to use.
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a session; an older session of the same computer is ended.
    pub fn register(&self, computer: &str, session: LiveSession) {
        let old = self.lock().insert(computer.to_owned(), session);
        self.presence_changed();
        if let Some(mut old) = old
            && let Some(kill) = old.kill.take()
        {
            let _ = kill.send(Status::aborted(
                "replaced by a newer session of the same computer",
            ));
        }
    }

    /// Removes the session if it is still `conn_id`. Returns whether it was.
    pub fn deregister(&self, computer: &str, conn_id: u64) -> bool {
        let mut s = self.lock();
        if s.get(computer).is_some_and(|l| l.conn_id == conn_id) {
            s.remove(computer);
            drop(s);
            self.presence_changed();
            true
        } else {
            false
        }
    }

    pub fn update(&self, computer: &str, conn_id: u64, f: impl FnOnce(&mut LiveSession)) {
        if let Some(l) = self
            .lock()
            .get_mut(computer)
            .filter(|l| l.conn_id == conn_id)
        {
            f(l);
        }
    }

    pub fn is_online(&self, computer: &str) -> bool {
        self.lock().contains_key(computer)
    }

    pub fn online_count(&self) -> usize {
        self.lock().len()
    }

    /// Users and last-seen of a connected computer.
    pub fn live(&self, computer: &str) -> Option<(Vec<String>, UnixMs)> {
        self.lock()
            .get(computer)
            .map(|l| (l.users.clone(), l.last_seen_ms.load(Ordering::Relaxed)))
    }

    /// Ends a computer's session, if it has one, with `status`.
    pub fn kill(&self, computer: &str, status: Status) {
        let removed = self.lock().remove(computer);
        self.presence_changed();
        if let Some(mut live) = removed
            && let Some(kill) = live.kill.take()
        {
            let _ = kill.send(status);
        }
    }

    /// Pushes `msg` to each connected computer of `computers`.
    pub fn push<'a>(
        &self,
        computers: impl IntoIterator<Item = &'a str>,
        msg: pb::ServerMessage,
    ) -> PushReport {
        let msg = Arc::new(msg);
        let mut report = PushReport::default();
        let mut stuck = Vec::new();
        {
            let sessions = self.lock();
            for c in computers {
                match sessions.get(c) {
                    None => report.offline += 1,
                    Some(live) => match live.tx.try_send(Ok(msg.clone())) {
                        Ok(()) => report.sent += 1,
                        Err(mpsc::error::TrySendError::Full(_)) => stuck.push(c.to_owned()),
                        Err(mpsc::error::TrySendError::Closed(_)) => report.offline += 1,
                    },
                }
            }
        }
        report.stuck = stuck.len();
        for c in stuck {
            tracing::warn!(computer = %c, "agent does not read its session; disconnecting it");
            self.kill(
                &c,
                Status::resource_exhausted("the agent did not keep up with its session; reconnect"),
            );
        }
        report
    }

    /// Tells presence watchers to look again.
    pub fn presence_changed(&self) {
        self.presence.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn subscribe_presence(&self) -> watch::Receiver<u64> {
        self.presence.subscribe()
    }

    pub fn alert_changed(&self, alert_id: &str) {
        let _ = self.alert_changes.send(alert_id.to_owned());
    }

    /// An alert was sent or cancelled.
    pub fn alert_listed(&self, alert_id: &str) {
        let _ = self.alert_list.send(alert_id.to_owned());
    }

    pub fn subscribe_alert_list(&self) -> broadcast::Receiver<String> {
        self.alert_list.subscribe()
    }

    pub fn subscribe_alert_changes(&self) -> broadcast::Receiver<String> {
        self.alert_changes.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(
        conn_id: u64,
        queue: usize,
    ) -> (
        LiveSession,
        mpsc::Receiver<Outbound>,
        oneshot::Receiver<Status>,
    ) {
        let (tx, rx) = mpsc::channel(queue);
        let (kill, killed) = oneshot::channel();
        (
            LiveSession {
                conn_id,
                tx,
                kill: Some(kill),
                users: vec![],
                last_seen_ms: Arc::default(),
            },
            rx,
            killed,
        )
    }

    #[tokio::test]
    async fn a_stuck_agent_is_disconnected_and_does_not_hold_up_the_others() {
        let hub = Hub::default();
        let (fast, mut fast_rx, _k1) = session(1, 4);
        let (stuck, _stuck_rx, mut stuck_killed) = session(2, 1);
        hub.register("fast", fast);
        hub.register("stuck", stuck);
        // The stuck agent's queue (1) fills on the first push.
        let first = hub.push(["fast", "stuck", "gone"], pb::ServerMessage::default());
        assert_eq!(
            first,
            PushReport {
                sent: 2,
                offline: 1,
                stuck: 0
            }
        );
        let second = hub.push(["fast", "stuck"], pb::ServerMessage::default());
        assert_eq!(
            second,
            PushReport {
                sent: 1,
                offline: 0,
                stuck: 1
            }
        );
        assert!(
            !hub.is_online("stuck"),
            "a stuck agent is dropped from the hub"
        );
        let why = stuck_killed
            .try_recv()
            .expect("the stuck session is told to end");
        assert_eq!(why.code(), tonic::Code::ResourceExhausted);
        assert!(
            fast_rx.recv().await.is_some() && fast_rx.recv().await.is_some(),
            "the fast agent got both"
        );
    }

    #[tokio::test]
    async fn a_newer_session_replaces_the_older_one() {
        let hub = Hub::default();
        let (old, _rx1, mut old_killed) = session(1, 4);
        let (new, _rx2, _k2) = session(2, 4);
        hub.register("c", old);
        hub.register("c", new);
        assert_eq!(
            old_killed.try_recv().expect("old session ended").code(),
            tonic::Code::Aborted
        );
        assert!(
            !hub.deregister("c", 1),
            "the old session cannot remove the new one"
        );
        assert!(hub.deregister("c", 2));
    }
}
