//! The agent's local store of items and receipts, in the state dir.
//!
//! Items are kept so each is shown once per user even across restarts and
//! reconnects; receipts are kept until the server confirms them, so a crash
//! or a network cut loses none. The whole store is rewritten atomically
//! (temp file, fsync, rename) on every change: items are rare, and the file
//! stays small because expired items are pruned.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use herald_proto::pb;
use serde::{Deserialize, Serialize};

use crate::state::StateError;

/// An alert as the agent keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalAlert {
    pub id: String,
    pub seq: u64,
    pub title: String,
    pub body: String,
    /// "info", "warning" or "critical".
    pub priority: String,
    pub sender_unit: String,
    pub sender: String,
    pub sent_unix_ms: i64,
    pub expires_unix_ms: i64,
    pub received_unix_ms: i64,
    /// Users on whose screen it was displayed.
    #[serde(default)]
    pub shown_to: BTreeSet<String>,
    #[serde(default)]
    pub dismissed_by: BTreeSet<String>,
    #[serde(default)]
    pub withdrawn: bool,
}

impl LocalAlert {
    pub fn is_valid(&self, now: i64) -> bool {
        !self.withdrawn && (self.expires_unix_ms == 0 || now < self.expires_unix_ms)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingReceipt {
    pub item_id: String,
    pub seq: u64,
    /// `pb::DeliveryState` as i32.
    pub state: i32,
    pub at_unix_ms: i64,
    pub user: String,
}

impl PendingReceipt {
    pub fn to_pb(&self) -> pb::Receipt {
        pb::Receipt {
            item_id: self.item_id.clone(),
            seq: self.seq,
            state: self.state,
            at_unix_ms: self.at_unix_ms,
            user: self.user.clone(),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Data {
    items: BTreeMap<String, LocalAlert>,
    receipts: Vec<PendingReceipt>,
    /// Highest outbox position stored: the resume cursor.
    max_seq: u64,
}

pub struct ItemStore {
    path: PathBuf,
    data: Data,
}

/// What a delivery did to the store.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// First time: to be shown.
    New(Box<LocalAlert>),
    /// Already known (a resend after a reconnect).
    Known,
    /// Expired, or not an item kind this agent knows.
    Ignored,
}

fn priority_name(p: i32) -> &'static str {
    match pb::Priority::try_from(p) {
        Ok(pb::Priority::Critical) => "critical",
        Ok(pb::Priority::Warning) => "warning",
        _ => "info",
    }
}

impl ItemStore {
    /// Opens the store in `dir`, dropping items that expired over an hour ago
    /// (the server never resends expired items).
    pub fn open(dir: &Path, now: i64) -> Result<ItemStore, StateError> {
        let path = dir.join("items.json");
        let data = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt {
                path: path.clone(),
                reason: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Data::default(),
            Err(source) => return Err(StateError::Io { path, source }),
        };
        let mut store = ItemStore { path, data };
        store
            .data
            .items
            .retain(|_, a| a.expires_unix_ms == 0 || a.expires_unix_ms > now - 3_600_000);
        Ok(store)
    }

    fn save(&self) -> Result<(), StateError> {
        let bytes = serde_json::to_vec(&self.data).map_err(|e| StateError::Corrupt {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        crate::state::write_atomic(&self.path, &bytes, 0o600)
    }

    pub fn max_seq(&self) -> u64 {
        self.data.max_seq
    }

    pub fn get(&self, id: &str) -> Option<&LocalAlert> {
        self.data.items.get(id)
    }

    /// Stores a delivery and a "delivered" receipt, durably, before anything
    /// is shown or acknowledged.
    pub fn receive(&mut self, d: &pb::Delivery, now: i64) -> Result<Received, StateError> {
        let Some(pb::delivery::Item::Alert(a)) = &d.item else {
            return Ok(Received::Ignored);
        };
        if self.data.items.contains_key(&d.item_id) {
            return Ok(Received::Known);
        }
        if d.expires_unix_ms != 0 && d.expires_unix_ms <= now {
            return Ok(Received::Ignored);
        }
        let local = LocalAlert {
            id: d.item_id.clone(),
            seq: d.seq,
            title: a.title.clone(),
            body: a.body.clone(),
            priority: priority_name(a.priority).to_owned(),
            sender_unit: a.sender_unit_path.clone(),
            sender: a.sender_name.clone(),
            sent_unix_ms: d.created_unix_ms,
            expires_unix_ms: d.expires_unix_ms,
            received_unix_ms: now,
            shown_to: BTreeSet::new(),
            dismissed_by: BTreeSet::new(),
            withdrawn: false,
        };
        self.data.items.insert(local.id.clone(), local.clone());
        self.data.max_seq = self.data.max_seq.max(d.seq);
        self.push_receipt(&local.id, local.seq, pb::DeliveryState::Delivered, now, "");
        self.save()?;
        Ok(Received::New(Box::new(local)))
    }

    /// Marks an item withdrawn (cancelled by the sender). Returns whether it
    /// was known and valid.
    pub fn withdraw(&mut self, id: &str) -> Result<bool, StateError> {
        match self.data.items.get_mut(id) {
            Some(a) if !a.withdrawn => {
                a.withdrawn = true;
                self.save()?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Records that `user`'s session displayed or dismissed an item, with a
    /// receipt for the server. Repeats change nothing.
    pub fn record(
        &mut self,
        id: &str,
        user: &str,
        state: pb::DeliveryState,
        at: i64,
    ) -> Result<bool, StateError> {
        let Some(a) = self.data.items.get_mut(id) else {
            return Ok(false);
        };
        let changed = match state {
            pb::DeliveryState::Displayed => a.shown_to.insert(user.to_owned()),
            pb::DeliveryState::Dismissed => {
                let first = a.dismissed_by.insert(user.to_owned());
                a.shown_to.insert(user.to_owned());
                first
            }
            _ => false,
        };
        if changed {
            let seq = a.seq;
            self.push_receipt(id, seq, state, at, user);
            self.save()?;
        }
        Ok(changed)
    }

    fn push_receipt(&mut self, id: &str, seq: u64, state: pb::DeliveryState, at: i64, user: &str) {
        self.data.receipts.push(PendingReceipt {
            item_id: id.to_owned(),
            seq,
            state: state as i32,
            at_unix_ms: at,
            user: user.to_owned(),
        });
    }

    pub fn pending_receipts(&self) -> &[PendingReceipt] {
        &self.data.receipts
    }

    /// Drops receipts the server has stored.
    pub fn acknowledge(&mut self, keys: &[pb::ReceiptKey]) -> Result<(), StateError> {
        let before = self.data.receipts.len();
        self.data.receipts.retain(|r| {
            !keys
                .iter()
                .any(|k| k.item_id == r.item_id && k.state == r.state)
        });
        if self.data.receipts.len() != before {
            self.save()?;
        }
        Ok(())
    }

    /// Valid items `user` has not seen yet, oldest first.
    pub fn unseen_by(&self, user: &str, now: i64) -> Vec<LocalAlert> {
        let mut out: Vec<LocalAlert> = self
            .data
            .items
            .values()
            .filter(|a| a.is_valid(now) && !a.shown_to.contains(user))
            .cloned()
            .collect();
        out.sort_by_key(|a| a.seq);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(id: &str, seq: u64, expires: i64) -> pb::Delivery {
        pb::Delivery {
            seq,
            item_id: id.into(),
            created_unix_ms: 1,
            expires_unix_ms: expires,
            item: Some(pb::delivery::Item::Alert(pb::Alert {
                title: "Outage".into(),
                body: "Network down".into(),
                priority: pb::Priority::Critical as i32,
                sender_unit_path: "/Branches".into(),
                sender_name: "it".into(),
            })),
        }
    }

    #[test]
    fn dedupe_receipts_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ItemStore::open(dir.path(), 100).unwrap();
        assert!(matches!(
            s.receive(&delivery("a", 5, 1000), 100).unwrap(),
            Received::New(_)
        ));
        assert_eq!(
            s.receive(&delivery("a", 5, 1000), 101).unwrap(),
            Received::Known
        );
        assert_eq!(
            s.receive(&delivery("old", 6, 50), 100).unwrap(),
            Received::Ignored
        );
        assert_eq!(s.max_seq(), 5);
        assert_eq!(s.unseen_by("anna", 100).len(), 1);
        assert!(
            s.record("a", "anna", pb::DeliveryState::Displayed, 110)
                .unwrap()
        );
        assert!(
            !s.record("a", "anna", pb::DeliveryState::Displayed, 111)
                .unwrap(),
            "shown once"
        );
        assert!(s.unseen_by("anna", 120).is_empty());
        assert_eq!(
            s.unseen_by("ben", 120).len(),
            1,
            "another user still gets it"
        );
        assert_eq!(s.pending_receipts().len(), 2);

        // Everything survives a restart (the process may be killed any time).
        let mut s = ItemStore::open(dir.path(), 130).unwrap();
        assert_eq!(s.pending_receipts().len(), 2);
        assert!(s.unseen_by("anna", 130).is_empty());
        assert_eq!(s.get("a").unwrap().priority, "critical");
        s.acknowledge(&[pb::ReceiptKey {
            item_id: "a".into(),
            state: pb::DeliveryState::Delivered as i32,
        }])
        .unwrap();
        assert_eq!(s.pending_receipts().len(), 1);
        assert!(s.withdraw("a").unwrap());
        assert!(
            s.unseen_by("ben", 130).is_empty(),
            "withdrawn items are not shown"
        );
        // Expired items are pruned an hour after expiry.
        let s = ItemStore::open(dir.path(), 1000 + 3_600_001).unwrap();
        assert!(s.get("a").is_none());
    }
}
