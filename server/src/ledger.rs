//! The delivery ledger: which computers an alert goes to and how far it got
//! on each.
//!
//! **Stored** as one audience record per alert (its computers, grouped by
//! unit) and append-only receipt batches (`<alert seq>/<batch seq>`, one
//! key per alert per receipt commit). Sending an alert to 10,000 computers
//! is thus two keys, not 10,000, and a burst of receipts is one key per
//! alert, with no read of the delivery before writing it.
//!
//! **In memory**, every alert that has not expired yet has its
//! [`Entry`]: the alert and each computer's [`Delivery`], the result of
//! replaying the stored receipts. Reconnecting agents, receipts, status and
//! live watching read it without touching the store. Expired alerts are
//! loaded from the store when someone asks for them. A week of alerts to
//! 10,000 computers is millions of deliveries, so an entry keeps them in a
//! vector sorted by computer id, and computer, unit and user names are
//! [`Names`]: one allocation each, shared by every alert that names them.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use serde::{Deserialize, Serialize};

use crate::domain::UnixMs;
use crate::domain::alert::{Alert, Delivery, DeliveryState, MAX_TTL_MS, Name};
use crate::domain::org::UnitId;
use crate::store::{Batch, Db, StoreError, Table, seq_key};

/// An alert's audience as stored: computer ids grouped by their unit.
#[derive(Debug, Default, Serialize, Deserialize)]
struct StoredAudience {
    units: BTreeMap<UnitId, Vec<String>>,
}

/// One receipt as stored in a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredReceipt {
    #[serde(rename = "c")]
    pub computer: String,
    #[serde(rename = "s")]
    pub state: DeliveryState,
    pub at: UnixMs,
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// The names deliveries hold, each allocated once.
#[derive(Default)]
pub struct Names {
    set: Mutex<HashSet<Name>>,
}

impl Names {
    fn lock(&self) -> MutexGuard<'_, HashSet<Name>> {
        // Every change is one insert or retain: a poisoned set is whole.
        self.set
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The shared copy of `s`.
    pub fn get(&self, s: &str) -> Name {
        intern(&mut self.lock(), s)
    }

    /// Forgets names that no delivery holds any more.
    fn prune(&self) {
        self.lock().retain(|n| Arc::strong_count(n) > 1);
    }
}

fn intern(set: &mut HashSet<Name>, s: &str) -> Name {
    if let Some(n) = set.get(s) {
        return n.clone();
    }
    let n: Name = Arc::from(s);
    set.insert(n.clone());
    n
}

/// An alert and where each of its deliveries stands.
#[derive(Debug, Clone)]
pub struct Entry {
    pub seq: u64,
    pub alert: Alert,
    /// (computer id, its delivery), sorted by computer id.
    deliveries: Vec<(Name, Delivery)>,
}

impl Entry {
    /// A new alert to `audience` (computer → unit), nothing delivered yet.
    pub fn new<'a>(
        seq: u64,
        alert: Alert,
        audience: impl IntoIterator<Item = (&'a String, &'a String)>,
        names: &Names,
    ) -> Entry {
        let mut set = names.lock();
        let mut deliveries: Vec<(Name, Delivery)> = audience
            .into_iter()
            .map(|(c, u)| (intern(&mut set, c), Delivery::new(intern(&mut set, u))))
            .collect();
        drop(set);
        deliveries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        deliveries.dedup_by(|a, b| a.0 == b.0);
        Entry {
            seq,
            alert,
            deliveries,
        }
    }

    fn index(&self, computer: &str) -> Option<usize> {
        self.deliveries
            .binary_search_by(|(c, _)| (**c).cmp(computer))
            .ok()
    }

    /// Computer `computer`'s delivery, if the alert went to it.
    pub fn get(&self, computer: &str) -> Option<&Delivery> {
        self.index(computer).map(|i| &self.deliveries[i].1)
    }

    /// Replaces computer `computer`'s delivery; one the alert did not go to
    /// is ignored.
    pub fn set(&mut self, computer: &str, d: Delivery) {
        if let Some(i) = self.index(computer) {
            self.deliveries[i].1 = d;
        }
    }

    /// Every (computer id, delivery), ordered by computer id.
    pub fn deliveries(&self) -> impl ExactSizeIterator<Item = (&Name, &Delivery)> {
        self.deliveries.iter().map(|(c, d)| (c, d))
    }

    /// Replays stored receipts, in the order they were stored.
    fn replay(&mut self, receipts: impl IntoIterator<Item = StoredReceipt>, names: &Names) {
        let mut set = names.lock();
        for r in receipts {
            if let Some(i) = self.index(&r.computer) {
                let user = r.user.as_deref().map(|u| intern(&mut set, u));
                self.deliveries[i].1.apply(r.state, r.at, user.as_ref());
            }
        }
    }
}

/// Adds a new alert's records (alert, audience) to `batch`.
pub fn put_new(batch: &mut Batch, entry: &Entry) {
    // Deliveries are in computer order, so each unit's list is too.
    let mut audience = StoredAudience::default();
    for (c, d) in entry.deliveries() {
        audience
            .units
            .entry(d.unit.to_string())
            .or_default()
            .push(c.to_string());
    }
    batch.put_json(Table::Alerts, seq_key(entry.seq), &entry.alert);
    batch.put_json(Table::Audiences, seq_key(entry.seq), &audience);
}

/// Adds one receipt batch of an alert to `batch`.
pub fn put_receipts(batch: &mut Batch, alert_seq: u64, batch_seq: u64, rs: &[StoredReceipt]) {
    batch.put_json(
        Table::Receipts,
        format!("{}/{}", seq_key(alert_seq), seq_key(batch_seq)),
        &rs,
    );
}

/// Reads an alert and its deliveries from the store.
pub fn load(db: &Db, seq: u64, names: &Names) -> Result<Option<Entry>, StoreError> {
    let Some(alert) = db.get::<Alert>(Table::Alerts, &seq_key(seq))? else {
        return Ok(None);
    };
    let audience: StoredAudience = db.get(Table::Audiences, &seq_key(seq))?.unwrap_or_default();
    let pairs = audience
        .units
        .iter()
        .flat_map(|(unit, computers)| computers.iter().map(move |c| (c, unit)));
    let mut entry = Entry::new(seq, alert, pairs, names);
    let batches =
        db.list_prefix::<Vec<StoredReceipt>>(Table::Receipts, &format!("{}/", seq_key(seq)))?;
    entry.replay(batches.into_iter().flat_map(|(_, rs)| rs), names);
    Ok(Some(entry))
}

pub type Shared = Arc<Mutex<Entry>>;

pub fn lock(e: &Shared) -> MutexGuard<'_, Entry> {
    // Every change to an entry is a single assignment or insert after the
    // store committed it, so a poisoned entry is still consistent.
    e.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The entries of all alerts that have not expired, by alert seq.
#[derive(Default)]
pub struct Book {
    live: RwLock<BTreeMap<u64, Shared>>,
    pub names: Names,
}

impl Book {
    /// Loads every alert that has not expired at `now`.
    pub fn load(db: &Db, now: UnixMs) -> Result<Book, StoreError> {
        let names = Names::default();
        let mut live = BTreeMap::new();
        let mut before: Option<String> = None;
        'pages: loop {
            let page: Vec<(String, Alert)> =
                db.list_rev_keyed(Table::Alerts, before.as_deref(), 64)?;
            let Some((last, _)) = page.last() else { break };
            before = Some(last.clone());
            for (key, alert) in page {
                if alert.accepted_ms + MAX_TTL_MS < now {
                    // Older alerts have all expired.
                    break 'pages;
                }
                if alert.expires_ms <= now {
                    continue;
                }
                let Ok(seq) = key.parse::<u64>() else {
                    continue;
                };
                if let Some(e) = load(db, seq, &names)? {
                    live.insert(seq, Arc::new(Mutex::new(e)));
                }
            }
        }
        Ok(Book {
            live: RwLock::new(live),
            names,
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<u64, Shared>> {
        self.live
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<u64, Shared>> {
        self.live
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a new alert (after it was stored) and forgets expired ones.
    pub fn insert(&self, entry: Entry, now: UnixMs) -> Shared {
        let seq = entry.seq;
        let shared = Arc::new(Mutex::new(entry));
        let mut live = self.write();
        let before = live.len();
        live.retain(|_, e| lock(e).alert.expires_ms > now);
        let forgot = live.len() < before;
        live.insert(seq, shared.clone());
        drop(live);
        if forgot {
            self.names.prune();
        }
        shared
    }

    pub fn get(&self, seq: u64) -> Option<Shared> {
        self.read().get(&seq).cloned()
    }

    /// The entry of alert `seq`: the live one, or one read from the store
    /// (not kept) for an expired alert.
    pub fn get_or_load(&self, db: &Db, seq: u64) -> Result<Option<Shared>, StoreError> {
        if let Some(e) = self.get(seq) {
            return Ok(Some(e));
        }
        Ok(load(db, seq, &self.names)?.map(|e| Arc::new(Mutex::new(e))))
    }

    /// Every live entry, oldest first.
    pub fn all_live(&self) -> Vec<Shared> {
        self.read().values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::alert::Priority;
    use crate::store::SledStore;

    fn alert(id: &str, accepted: UnixMs, expires: UnixMs) -> Alert {
        Alert {
            id: id.into(),
            title: "t".into(),
            body: "b".into(),
            priority: Priority::Info,
            sender: "it".into(),
            sender_unit_path: "/".into(),
            accepted_ms: accepted,
            expires_ms: expires,
            cancelled: false,
            cancelled_ms: None,
            computers: 2,
            targets: vec![],
        }
    }

    fn receipt(c: &str, s: DeliveryState, at: UnixMs) -> StoredReceipt {
        StoredReceipt {
            computer: c.into(),
            state: s,
            at,
            user: Some("anna".into()),
        }
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_delivery_in_memory_is_small() {
        // A week of alerts to 10,000 computers is millions of these.
        assert_eq!(std::mem::size_of::<(Name, Delivery)>(), 104);
    }

    #[tokio::test]
    async fn stored_receipts_replay_to_the_same_states_and_expired_alerts_are_not_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::new(SledStore::open(dir.path(), std::time::Duration::ZERO).unwrap());
        let audience: BTreeMap<String, String> = [("c1", "u1"), ("c2", "u2")]
            .into_iter()
            .map(|(c, u)| (c.to_owned(), u.to_owned()))
            .collect();
        let now = 1_000_000;
        let mut batch = Batch::new();
        let names = Names::default();
        let live = Entry::new(7, alert("al-7", now - 10, now + 1000), &audience, &names);
        let old = Entry::new(3, alert("al-3", now - 2000, now - 1), &audience, &names);
        put_new(&mut batch, &live);
        put_new(&mut batch, &old);
        // Two batches; the second builds on the first, a repeat changes nothing.
        put_receipts(
            &mut batch,
            7,
            1,
            &[receipt("c1", DeliveryState::Delivered, 5)],
        );
        put_receipts(
            &mut batch,
            7,
            2,
            &[
                receipt("c1", DeliveryState::Displayed, 6),
                receipt("c1", DeliveryState::Delivered, 9),
                receipt("nobody", DeliveryState::Displayed, 9),
            ],
        );
        db.commit(batch).await.unwrap();

        let e = load(&db, 7, &names).unwrap().unwrap();
        let ds: Vec<(&Name, &Delivery)> = e.deliveries().collect();
        assert_eq!(ds.len(), 2);
        assert_eq!(
            (
                &**ds[0].0,
                ds[0].1.state,
                ds[0].1.delivered_ms,
                ds[0].1.displayed_ms
            ),
            ("c1", DeliveryState::Displayed, Some(5), Some(6))
        );
        assert_eq!(ds[0].1.user.as_deref(), Some("anna"));
        assert_eq!(
            (&**ds[1].0, &*ds[1].1.unit, ds[1].1.state),
            ("c2", "u2", DeliveryState::Queued)
        );
        assert!(e.get("nobody").is_none());
        assert!(
            Arc::ptr_eq(&e.deliveries[0].0, &live.deliveries[0].0),
            "a computer's id is held once, however many alerts went to it"
        );

        let book = Book::load(&db, now).unwrap();
        assert!(book.get(7).is_some(), "an alert still valid is live");
        assert!(book.get(3).is_none(), "an expired one is not");
        let loaded = book.get_or_load(&db, 3).unwrap().unwrap();
        assert_eq!(lock(&loaded).alert.id, "al-3");
        assert!(book.get_or_load(&db, 99).unwrap().is_none());
        // Inserting forgets alerts that expired meanwhile, and the names
        // only they held.
        assert!(book.names.lock().contains("anna"));
        book.insert(
            Entry::new(9, alert("al-9", now, now + 5000), &audience, &book.names),
            now + 2000,
        );
        assert_eq!(
            book.all_live()
                .iter()
                .map(|e| lock(e).seq)
                .collect::<Vec<_>>(),
            vec![9]
        );
        let names = book.names.lock();
        assert!(
            !names.contains("anna"),
            "no live delivery names anna any more"
        );
        assert!(names.contains("c1") && names.contains("u2"));
    }
}
