//! The service's shared core: the local item store, the connected session
//! parts, and the signal that receipts are waiting to go to the server.

use std::sync::{Arc, Mutex};

use herald_proto::pb;
use tokio::sync::Notify;

use crate::items::{ItemStore, LocalAlert, Received};
use crate::local::{Sessions, ToSession};

pub struct Core {
    pub computer_id: String,
    items: Mutex<ItemStore>,
    pub sessions: Arc<Sessions>,
    /// Woken whenever a new receipt is stored.
    pub receipts_waiting: Notify,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Core {
    pub fn new(computer_id: String, items: ItemStore) -> Arc<Core> {
        Arc::new(Core {
            computer_id,
            items: Mutex::new(items),
            sessions: Sessions::new(),
            receipts_waiting: Notify::new(),
        })
    }

    fn items(&self) -> std::sync::MutexGuard<'_, ItemStore> {
        // Every store operation leaves the store consistent before it can
        // panic (the file write comes last), so a poisoned lock is usable.
        self.items
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn max_seq(&self) -> u64 {
        self.items().max_seq()
    }

    /// A delivery from the server: stored (with its "delivered" receipt)
    /// before it is shown to the logged-in users.
    pub fn on_delivery(&self, d: &pb::Delivery) {
        let received = self.items().receive(d, now_ms());
        match received {
            Ok(Received::New(alert)) => {
                tracing::info!(item = %alert.id, priority = %alert.priority, "alert received");
                self.receipts_waiting.notify_one();
                let msg = ToSession::Alert(*alert);
                self.sessions.send(&msg, |_| true);
            }
            Ok(Received::Known) => {}
            Ok(Received::Ignored) => {
                tracing::info!(item = %d.item_id, "ignoring expired or unknown item")
            }
            // Not acknowledged: the server sends it again on the next session.
            Err(e) => tracing::error!(item = %d.item_id, error = %e, "cannot store a delivery"),
        }
    }

    pub fn on_withdraw(&self, id: &str) {
        match self.items().withdraw(id) {
            Ok(true) => {
                tracing::info!(item = %id, "item withdrawn by the sender");
                self.sessions
                    .send(&ToSession::Withdraw { id: id.to_owned() }, |_| true);
            }
            Ok(false) => {}
            Err(e) => tracing::error!(item = %id, error = %e, "cannot store a withdrawal"),
        }
    }

    /// A session part reports display or dismissal for its user.
    pub fn record(&self, id: &str, user: &str, state: pb::DeliveryState, at: i64) {
        let at = if at > 0 { at.min(now_ms()) } else { now_ms() };
        match self.items().record(id, user, state, at) {
            Ok(true) => self.receipts_waiting.notify_one(),
            Ok(false) => {}
            Err(e) => tracing::error!(item = %id, error = %e, "cannot store a receipt"),
        }
    }

    pub fn pending_receipts(&self) -> Vec<pb::Receipt> {
        self.items()
            .pending_receipts()
            .iter()
            .map(|r| r.to_pb())
            .collect()
    }

    pub fn acknowledge(&self, keys: &[pb::ReceiptKey]) {
        if let Err(e) = self.items().acknowledge(keys) {
            tracing::error!(error = %e, "cannot store receipt acknowledgements");
        }
    }

    pub fn unseen_by(&self, user: &str) -> Vec<LocalAlert> {
        self.items().unseen_by(user, now_ms())
    }
}
