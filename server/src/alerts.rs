//! Quick alerts on the server: sending (audience, permission, durable
//! records, then fan-out), status and live watching, cancelling, and the
//! agent side of it (resume after reconnect, receipts).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use herald_proto::pb;
use herald_proto::pb::server_message;
use tonic::Status;

use crate::domain::UnixMs;
use crate::domain::alert::{self, Alert, Counts, Delivery, DeliveryState, Priority};
use crate::domain::org::OrgTree;
use crate::domain::perm::Capability;
use crate::error::{ApiError, ApiResult};
use crate::ledger;
use crate::state::{Caller, State, now_ms};
use crate::store::{Batch, Table, seq_key};

/// `al-<seq>` → seq (alerts are stored under their zero-padded seq, so
/// keys sort by time).
fn alert_seq(id: &str) -> ApiResult<u64> {
    id.trim()
        .strip_prefix("al-")
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| ApiError::invalid("alert_id", format!("{id:?} is not an alert id (al-…)")))
}

pub fn priority_from_pb(p: i32) -> ApiResult<Priority> {
    match pb::Priority::try_from(p) {
        Ok(pb::Priority::Unspecified) | Ok(pb::Priority::Info) => Ok(Priority::Info),
        Ok(pb::Priority::Warning) => Ok(Priority::Warning),
        Ok(pb::Priority::Critical) => Ok(Priority::Critical),
        Err(_) => Err(ApiError::invalid(
            "priority",
            format!("unknown priority {p}"),
        )),
    }
}

pub fn priority_to_pb(p: Priority) -> pb::Priority {
    match p {
        Priority::Info => pb::Priority::Info,
        Priority::Warning => pb::Priority::Warning,
        Priority::Critical => pb::Priority::Critical,
    }
}

pub fn state_to_pb(s: DeliveryState) -> pb::DeliveryState {
    match s {
        DeliveryState::Queued => pb::DeliveryState::Queued,
        DeliveryState::Delivered => pb::DeliveryState::Delivered,
        DeliveryState::Displayed => pb::DeliveryState::Displayed,
        DeliveryState::Dismissed => pb::DeliveryState::Dismissed,
        DeliveryState::Expired => pb::DeliveryState::Expired,
        DeliveryState::Cancelled => pb::DeliveryState::Cancelled,
    }
}

fn state_from_pb(s: i32) -> Option<DeliveryState> {
    match pb::DeliveryState::try_from(s).ok()? {
        pb::DeliveryState::Delivered => Some(DeliveryState::Delivered),
        pb::DeliveryState::Displayed => Some(DeliveryState::Displayed),
        pb::DeliveryState::Dismissed => Some(DeliveryState::Dismissed),
        _ => None,
    }
}

/// The wire form an agent receives.
pub fn delivery_msg(a: &Alert, seq: u64) -> pb::ServerMessage {
    pb::ServerMessage {
        kind: Some(server_message::Kind::Delivery(pb::Delivery {
            seq,
            item_id: a.id.clone(),
            created_unix_ms: a.accepted_ms,
            expires_unix_ms: a.expires_ms,
            item: Some(pb::delivery::Item::Alert(pb::Alert {
                title: a.title.clone(),
                body: a.body.clone(),
                priority: priority_to_pb(a.priority) as i32,
                sender_unit_path: a.sender_unit_path.clone(),
                sender_name: a.sender.clone(),
            })),
        })),
    }
}

fn withdraw_msg(id: &str) -> pb::ServerMessage {
    pb::ServerMessage {
        kind: Some(server_message::Kind::Withdraw(pb::Withdraw {
            item_id: id.to_owned(),
        })),
    }
}

/// The deepest unit containing all of `units`, shown as "who speaks".
fn sender_unit(tree: &OrgTree, units: &BTreeSet<String>) -> String {
    let mut common: Option<Vec<&String>> = None;
    for u in units {
        let mut chain: Vec<&String> = tree.ancestors_and_self(u);
        chain.reverse();
        common = Some(match common {
            None => chain,
            Some(c) => c
                .into_iter()
                .zip(chain)
                .take_while(|(a, b)| a == b)
                .map(|(a, _)| a)
                .collect(),
        });
    }
    match common.and_then(|c| c.last().map(|u| (*u).clone())) {
        Some(u) if u != tree.root().id => tree.path(&u),
        _ => tree.root().name.clone(),
    }
}

/// Who an alert to `targets` goes to, checked against the caller's
/// "send quick alerts" grants (refused whole, naming the unit).
struct Audience {
    /// computer → the unit it is in.
    computers: BTreeMap<String, String>,
    /// The targets in words, for the alert record and the audit log.
    described: Vec<String>,
    target_units: BTreeSet<String>,
}

fn resolve_audience(
    state: &State,
    caller: &Caller,
    tree: &OrgTree,
    targets: &[pb::AlertTarget],
) -> ApiResult<Audience> {
    if targets.is_empty() {
        return Err(ApiError::invalid(
            "targets",
            "name at least one org unit, computer, or all",
        ));
    }
    let g = state.grants(caller, tree);
    let computers = state.roster.all();
    let mut audience: BTreeMap<String, String> = BTreeMap::new(); // computer → unit
    let mut described = Vec::new();
    let mut target_units = BTreeSet::new();
    for t in targets {
        match &t.target {
            Some(pb::alert_target::Target::OrgUnitId(u)) => {
                let u = u.trim();
                tree.get(u)?;
                g.require(Capability::SendQuickAlerts, u)?;
                for (c, unit) in computers.iter().filter(|(_, unit)| tree.is_within(unit, u)) {
                    audience.insert(c.clone(), unit.clone());
                }
                described.push(tree.path(u));
                target_units.insert(u.to_owned());
            }
            Some(pb::alert_target::Target::ComputerId(id)) => {
                let c = state
                    .computer(id.trim())?
                    .filter(|c| !c.revoked)
                    .ok_or_else(|| {
                        ApiError::NotFound(format!("no computer with id {id:?} (or it is revoked)"))
                    })?;
                g.require(Capability::SendQuickAlerts, &c.unit)?;
                audience.insert(c.id.clone(), c.unit.clone());
                described.push(format!("computer {} ({})", c.hostname, c.id));
                target_units.insert(c.unit.clone());
            }
            Some(pb::alert_target::Target::All(true)) => {
                g.require_any(Capability::SendQuickAlerts)?;
                let allowed = g.units_with(Capability::SendQuickAlerts);
                for (c, unit) in &computers {
                    if allowed.as_ref().is_none_or(|set| set.contains(unit)) {
                        audience.insert(c.clone(), unit.clone());
                    }
                }
                described.push("all".into());
                match allowed {
                    None => {
                        target_units.insert(tree.root().id.clone());
                    }
                    Some(set) => target_units.extend(set.into_iter().cloned()),
                }
            }
            _ => return Err(ApiError::invalid("targets", "a target is empty")),
        }
    }
    Ok(Audience {
        computers: audience,
        described,
        target_units,
    })
}

/// Who an alert to these targets would reach, per unit, without sending.
pub fn preview(
    state: &State,
    caller: &Caller,
    req: &pb::PreviewAlertAudienceRequest,
) -> ApiResult<pb::PreviewAlertAudienceResponse> {
    let tree = state.tree();
    let audience = resolve_audience(state, caller, &tree, &req.targets)?;
    let mut units: BTreeMap<String, pb::UnitAudience> = BTreeMap::new();
    let mut online = 0;
    for (computer, unit) in &audience.computers {
        let path = tree.path(unit);
        let u = units
            .entry(path.clone())
            .or_insert_with(|| pb::UnitAudience {
                org_unit_id: unit.clone(),
                path,
                computers: 0,
                online: 0,
            });
        u.computers += 1;
        if state.is_online(computer) {
            u.online += 1;
            online += 1;
        }
    }
    Ok(pb::PreviewAlertAudienceResponse {
        computers: audience.computers.len() as u32,
        online,
        units: units.into_values().collect(),
    })
}

pub async fn send(
    state: &State,
    caller: &Caller,
    req: pb::SendAlertRequest,
) -> ApiResult<pb::SendAlertResponse> {
    let now = now_ms();
    let (title, body, expires) = alert::validate(&req.title, &req.body, req.expires_unix_ms, now)
        .map_err(|alert::AlertError::Invalid(f, m)| ApiError::Invalid {
        field: f,
        message: m,
    })?;
    let priority = priority_from_pb(req.priority)?;
    let tree = state.tree();
    let Audience {
        computers: audience,
        described,
        target_units,
    } = resolve_audience(state, caller, &tree, &req.targets)?;
    let seq = state.db.next_id()?;
    let id = format!("al-{seq}");
    let alert = Alert {
        id: id.clone(),
        title,
        body,
        priority,
        sender: caller.name.clone(),
        sender_unit_path: sender_unit(&tree, &target_units),
        accepted_ms: now,
        expires_ms: expires,
        cancelled: false,
        cancelled_ms: None,
        computers: audience.len() as u32,
        targets: described.clone(),
    };
    let entry = ledger::Entry::new(seq, alert, &audience, &state.book.names);
    let mut batch = Batch::new();
    ledger::put_new(&mut batch, &entry);
    let single_unit = (target_units.len() == 1)
        .then(|| target_units.iter().next().cloned())
        .flatten();
    state.audit(
        &mut batch,
        &caller.name,
        "alert.send",
        &id,
        single_unit.as_deref(),
        format!(
            "{:?} \"{}\" to {} ({} computers)",
            priority,
            entry.alert.title,
            described.join(", "),
            audience.len()
        ),
    )?;
    // Held over commit and fan-out, so a cancel cannot slip in between and
    // withdraw the alert before it was pushed.
    let _w = state.write_lock.lock().await;
    state.db.commit(batch).await?;
    let accepted = now_ms();
    let msg = delivery_msg(&entry.alert, seq);
    // Live before the push, so that the first receipts find it.
    state.book.insert(entry, accepted);
    let report = state.hub.push(audience.keys().map(String::as_str), msg);
    state.hub.alert_listed(&id);
    tracing::info!(alert = %id, computers = audience.len(), sent = report.sent, offline = report.offline, stuck = report.stuck, "alert accepted and fanned out");
    Ok(pb::SendAlertResponse {
        alert_id: id,
        computers: audience.len() as u32,
        accepted_unix_ms: accepted,
        expires_unix_ms: expires,
    })
}

/// The ledger entry of alert `id`: the live one or, for an expired alert,
/// one read from the store.
fn entry(state: &State, id: &str) -> ApiResult<ledger::Shared> {
    state
        .book
        .get_or_load(&state.db, alert_seq(id)?)?
        .ok_or_else(|| ApiError::NotFound(format!("no alert with id {id:?}")))
}

/// Holds "send quick alerts" (or, where given, `or_else`) on every unit the
/// alert went to; for an alert that reached nobody, anywhere.
fn require_on_alert(
    state: &State,
    caller: &Caller,
    e: &ledger::Entry,
    or_else: Option<Capability>,
) -> ApiResult<()> {
    let tree = state.tree();
    let g = state.grants(caller, &tree);
    let units: BTreeSet<&str> = e.deliveries().map(|(_, d)| &*d.unit).collect();
    for u in &units {
        if tree.contains(u) && !or_else.is_some_and(|c| g.allows(c, u)) {
            g.require(Capability::SendQuickAlerts, u)?;
        }
    }
    if units.is_empty() && !or_else.is_some_and(|c| g.has_any(c)) {
        g.require_any(Capability::SendQuickAlerts)?;
    }
    Ok(())
}

/// May see an alert: "send quick alerts" or "view reports" on every unit it went to.
fn check_visible(state: &State, caller: &Caller, e: &ledger::Entry) -> ApiResult<()> {
    require_on_alert(state, caller, e, Some(Capability::ViewReports))
}

/// computer id → host name, for per-computer status rows.
fn hostnames(state: &State) -> BTreeMap<String, String> {
    state
        .computers()
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c.id, c.hostname))
        .collect()
}

fn counts_pb(c: &Counts) -> pb::AlertCounts {
    pb::AlertCounts {
        queued: c.queued,
        delivered: c.delivered,
        displayed: c.displayed,
        dismissed: c.dismissed,
        expired: c.expired,
        cancelled: c.cancelled,
    }
}

fn summary_pb(a: &Alert) -> pb::AlertSummary {
    pb::AlertSummary {
        id: a.id.clone(),
        title: a.title.clone(),
        body: a.body.clone(),
        priority: priority_to_pb(a.priority) as i32,
        sender: a.sender.clone(),
        sender_unit_path: a.sender_unit_path.clone(),
        accepted_unix_ms: a.accepted_ms,
        expires_unix_ms: a.expires_ms,
        cancelled: a.cancelled,
        computers: a.computers,
        targets: a.targets.clone(),
    }
}

/// The status of an alert; with `hosts`, one row per computer too.
fn status_pb(
    state: &State,
    e: &ledger::Entry,
    hosts: Option<&BTreeMap<String, String>>,
    now: UnixMs,
) -> pb::AlertStatus {
    let tree = state.tree();
    let a = &e.alert;
    let (all, units, settled) = alert::tally(a, e.deliveries().map(|(_, d)| d), now);
    let computers = match hosts {
        Some(hosts) => e
            .deliveries()
            .map(|(c, d)| pb::ComputerDelivery {
                computer_id: c.to_string(),
                hostname: hosts.get(&**c).cloned().unwrap_or_default(),
                org_unit_path: tree.path(&d.unit),
                state: state_to_pb(d.effective(a, now)) as i32,
                delivered_unix_ms: d.delivered_ms.unwrap_or(0),
                displayed_unix_ms: d.displayed_ms.unwrap_or(0),
                dismissed_unix_ms: d.dismissed_ms.unwrap_or(0),
                user: d.user.as_deref().unwrap_or_default().to_owned(),
                online: state.is_online(c),
            })
            .collect(),
        None => Vec::new(),
    };
    pb::AlertStatus {
        alert: Some(summary_pb(a)),
        counts: Some(counts_pb(&all)),
        units: units
            .iter()
            .map(|(u, c)| pb::UnitAlertCounts {
                org_unit_id: u.clone(),
                org_unit_path: tree.path(u),
                counts: Some(counts_pb(c)),
            })
            .collect(),
        computers,
        settled,
    }
}

/// The status of an alert, read under its entry's lock (the host names,
/// from the store, are read before taking it).
fn status_of(state: &State, entry: &ledger::Shared, computers: bool) -> pb::AlertStatus {
    let hosts = computers.then(|| hostnames(state));
    status_pb(state, &ledger::lock(entry), hosts.as_ref(), now_ms())
}

pub fn status(
    state: &State,
    caller: &Caller,
    req: &pb::GetAlertStatusRequest,
) -> ApiResult<pb::AlertStatus> {
    let entry = entry(state, &req.alert_id)?;
    check_visible(state, caller, &ledger::lock(&entry))?;
    Ok(status_of(state, &entry, req.computers))
}

pub fn list(
    state: &State,
    caller: &Caller,
    req: &pb::ListAlertsRequest,
) -> ApiResult<pb::ListAlertsResponse> {
    let tree = state.tree();
    let g = state.grants(caller, &tree);
    if !g.has_any(Capability::ViewReports) {
        g.require_any(Capability::SendQuickAlerts)?;
    }
    let limit = match req.limit {
        0 => 50,
        n => n.min(500) as usize,
    };
    let now = now_ms();
    let mut out = Vec::new();
    let mut before: Option<String> = None;
    'pages: loop {
        let page: Vec<(String, Alert)> =
            state
                .db
                .list_rev_keyed(Table::Alerts, before.as_deref(), 64)?;
        let Some((last, _)) = page.last() else { break };
        before = Some(last.clone());
        for (_, a) in page {
            let entry = entry(state, &a.id)?;
            let e = ledger::lock(&entry);
            if check_visible(state, caller, &e).is_ok() {
                out.push(status_pb(state, &e, None, now));
                if out.len() >= limit {
                    break 'pages;
                }
            }
        }
    }
    Ok(pb::ListAlertsResponse { alerts: out })
}

pub type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::AlertStatus, Status>> + Send>>;

/// The status now, then whenever a delivery changes (at most ten times a
/// second), and once more when the alert expires; ends when settled.
pub fn watch(
    state: Arc<State>,
    caller: &Caller,
    req: pb::GetAlertStatusRequest,
) -> ApiResult<WatchStream> {
    let first = status(&state, caller, &req)?;
    let expires = first.alert.as_ref().map_or(0, |a| a.expires_unix_ms);
    let mut changes = state.hub.subscribe_alert_changes();
    let id = first
        .alert
        .as_ref()
        .map(|a| a.id.clone())
        .unwrap_or_default();
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let mut shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        let mut last = first.clone();
        let mut settled = first.settled;
        if tx.send(Ok(first)).await.is_err() {
            return;
        }
        while !settled {
            let until_expiry = Duration::from_millis((expires - now_ms()).max(0) as u64 + 5);
            let wake = tokio::select! {
                r = changes.recv() => match r {
                    Ok(changed) => changed == id,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => true,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                () = tokio::time::sleep(until_expiry) => true,
                () = tx.closed() => return,
                _ = shutdown.changed() => return,
            };
            if !wake {
                continue;
            }
            // Let a burst of receipts land before recomputing.
            tokio::time::sleep(Duration::from_millis(100)).await;
            while changes.try_recv().is_ok() {}
            let next = match entry(&state, &id) {
                Ok(entry) => status_of(&state, &entry, req.computers),
                Err(e) => {
                    let _ = tx.send(Err(Status::from(e))).await;
                    return;
                }
            };
            settled = next.settled;
            if next != last {
                last = next.clone();
                if tx.send(Ok(next)).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
}

pub type AlertListStream = Pin<Box<dyn Stream<Item = Result<pb::AlertSummary, Status>> + Send>>;

/// Alerts the caller may see, as they are sent or cancelled, until the
/// caller hangs up; the session and its grants are checked again for each.
pub fn watch_list(state: Arc<State>, caller: &Caller) -> ApiResult<AlertListStream> {
    {
        let tree = state.tree();
        let g = state.grants(caller, &tree);
        if !g.has_any(Capability::ViewReports) {
            g.require_any(Capability::SendQuickAlerts)?;
        }
    }
    let mut events = state.hub.subscribe_alert_list();
    let session = caller.session_hash.clone();
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let mut shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        loop {
            let id = tokio::select! {
                r = events.recv() => match r {
                    Ok(id) => id,
                    // A watcher this far behind has missed alerts; it asks
                    // for the list again after reconnecting.
                    Err(_) => {
                        let _ = tx.send(Err(Status::data_loss("too many alerts at once: list them again"))).await;
                        return;
                    }
                },
                () = tx.closed() => return,
                _ = shutdown.changed() => return,
            };
            let caller = match state.caller_by_session(&session) {
                Ok(c) => c,
                Err(e) => {
                    let _ = tx.send(Err(Status::from(e))).await;
                    return;
                }
            };
            let Ok(entry) = entry(&state, &id) else {
                continue;
            };
            let visible = {
                let e = ledger::lock(&entry);
                check_visible(&state, &caller, &e).map(|()| summary_pb(&e.alert))
            };
            if let Ok(summary) = visible
                && tx.send(Ok(summary)).await.is_err()
            {
                return;
            }
        }
    });
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
}

pub async fn cancel(
    state: &State,
    caller: &Caller,
    req: &pb::CancelAlertRequest,
) -> ApiResult<pb::AlertSummary> {
    let _w = state.write_lock.lock().await;
    let entry = entry(state, &req.alert_id)?;
    // What is still on screens, to withdraw; the entry is not held across
    // the commit.
    let (mut a, showing) = {
        let e = ledger::lock(&entry);
        require_on_alert(state, caller, &e, None)?;
        let showing: Vec<String> = e
            .deliveries()
            .filter(|(_, d)| !d.state.is_final())
            .map(|(c, _)| c.to_string())
            .collect();
        (e.alert.clone(), showing)
    };
    if !a.cancelled {
        a.cancelled = true;
        a.cancelled_ms = Some(now_ms());
        let mut batch = Batch::new();
        batch.put_json(Table::Alerts, seq_key(alert_seq(&a.id)?), &a);
        state.audit(
            &mut batch,
            &caller.name,
            "alert.cancel",
            &a.id,
            None,
            format!("cancelled \"{}\"", a.title),
        )?;
        state.db.commit(batch).await?;
        ledger::lock(&entry).alert = a.clone();
        let report = state
            .hub
            .push(showing.iter().map(String::as_str), withdraw_msg(&a.id));
        tracing::info!(alert = %a.id, withdrawn = report.sent, "alert cancelled");
        state.hub.alert_changed(&a.id);
        state.hub.alert_listed(&a.id);
    }
    Ok(summary_pb(&a))
}

/// What a (re)connecting agent should get: every alert after `after_seq`
/// it should still show, and a withdrawal for cancelled ones it may still
/// show.
pub fn resume(state: &State, computer: &str, after_seq: u64) -> Vec<pb::ServerMessage> {
    let now = now_ms();
    let mut out = Vec::new();
    for entry in state.book.all_live() {
        let e = ledger::lock(&entry);
        let Some(d) = e.get(computer) else {
            continue;
        };
        if e.alert.cancelled {
            if !d.state.is_final() {
                out.push(withdraw_msg(&e.alert.id));
            }
        } else if d.wanted(&e.alert, now) && e.seq > after_seq {
            out.push(delivery_msg(&e.alert, e.seq));
        }
    }
    out
}

/// Receipts from every session go through one writer that stores them in
/// batches (one store commit for up to a few thousand receipts, or for
/// what arrived within [`RECEIPT_LINGER`] of the first) and then
/// acknowledges each on its session's queue. Receipt storage thus costs one
/// task, not one commit per receipt, and does not crowd out the fan-out of
/// the next alert.
pub struct ReceiptWriter {
    tx: tokio::sync::mpsc::UnboundedSender<PendingReceipt>,
}

pub struct PendingReceipt {
    computer: String,
    receipt: pb::Receipt,
    /// The session the receipt came on (its `LiveSession::conn_id`) and
    /// its queue, where the acknowledgement goes.
    conn_id: u64,
    ack: crate::fanout::SessionTx,
}

const RECEIPT_BATCH: usize = 4096;
/// How long the writer gathers receipts after the first one of a commit
/// arrives: part of a receipt's acknowledgement time, and what bounds the
/// receipt commits to about 1 / linger per second.
const RECEIPT_LINGER: Duration = Duration::from_millis(10);

impl ReceiptWriter {
    pub fn start(state: std::sync::Weak<State>) -> (ReceiptWriter, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PendingReceipt>();
        let task = tokio::spawn(async move {
            let mut pending = Vec::with_capacity(RECEIPT_BATCH);
            while rx.recv_many(&mut pending, RECEIPT_BATCH).await > 0 {
                // Agents spread their receipts out, so they arrive a few at
                // a time; gather what comes within the linger into the same
                // commit rather than paying a commit per handful.
                let until = tokio::time::Instant::now() + RECEIPT_LINGER;
                while pending.len() < RECEIPT_BATCH {
                    let room = RECEIPT_BATCH - pending.len();
                    match tokio::time::timeout_at(until, rx.recv_many(&mut pending, room)).await {
                        Ok(n) if n > 0 => {}
                        _ => break,
                    }
                }
                let Some(state) = state.upgrade() else { return };
                store_receipts(&state, std::mem::take(&mut pending)).await;
            }
        });
        (ReceiptWriter { tx }, task)
    }

    pub fn submit(
        &self,
        computer: &str,
        conn_id: u64,
        receipt: pb::Receipt,
        ack: crate::fanout::SessionTx,
    ) {
        let _ = self.tx.send(PendingReceipt {
            computer: computer.to_owned(),
            receipt,
            conn_id,
            ack,
        });
    }
}

/// One alert's part of a receipt batch.
struct AlertReceipts {
    entry: ledger::Shared,
    /// The deliveries as they will be once stored.
    changed: BTreeMap<String, Delivery>,
    stored: Vec<ledger::StoredReceipt>,
}

async fn store_receipts(state: &State, batch_in: Vec<PendingReceipt>) {
    let now = now_ms();
    let mut per_alert: BTreeMap<u64, AlertReceipts> = BTreeMap::new();
    // One acknowledgement per session, naming all of its receipts.
    let mut acks: HashMap<u64, (crate::fanout::SessionTx, Vec<pb::ReceiptKey>)> = HashMap::new();
    for p in batch_in {
        let r = &p.receipt;
        let key = pb::ReceiptKey {
            item_id: r.item_id.clone(),
            state: r.state,
        };
        if let (Some(to), Ok(seq)) = (state_from_pb(r.state), alert_seq(&r.item_id)) {
            let part = match per_alert.entry(seq) {
                std::collections::btree_map::Entry::Occupied(o) => Some(o.into_mut()),
                std::collections::btree_map::Entry::Vacant(v) => {
                    match state.book.get_or_load(&state.db, seq) {
                        Ok(Some(entry)) => Some(v.insert(AlertReceipts {
                            entry,
                            changed: BTreeMap::new(),
                            stored: Vec::new(),
                        })),
                        Ok(None) => None,
                        Err(e) => {
                            // Not acknowledged: the agent keeps it and sends it again.
                            tracing::warn!(computer = %p.computer, error = %e, "cannot read an alert for a receipt");
                            continue;
                        }
                    }
                }
            };
            // Several receipts for one delivery in a batch build on each other.
            let current = part.as_ref().and_then(|part| {
                part.changed
                    .get(&p.computer)
                    .cloned()
                    .or_else(|| ledger::lock(&part.entry).get(&p.computer).cloned())
            });
            if let (Some(part), Some(mut d)) = (part, current) {
                let at = if r.at_unix_ms > 0 {
                    r.at_unix_ms.min(now)
                } else {
                    now
                };
                let user: String = r.user.chars().take(64).collect();
                let name = (!user.is_empty()).then(|| state.book.names.get(&user));
                if d.apply(to, at, name.as_ref()) {
                    part.stored.push(ledger::StoredReceipt {
                        computer: p.computer.clone(),
                        state: to,
                        at,
                        user: (!user.is_empty()).then_some(user),
                    });
                    part.changed.insert(p.computer.clone(), d);
                }
            }
        }
        acks.entry(p.conn_id)
            .or_insert_with(|| (p.ack, Vec::new()))
            .1
            .push(key);
    }
    let mut batch = Batch::new();
    let parts: Vec<(u64, AlertReceipts)> = per_alert
        .into_iter()
        .filter(|(_, part)| !part.stored.is_empty())
        .collect();
    if !parts.is_empty() {
        let batch_seq = match state.db.next_id() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot store receipts; agents will send them again");
                return;
            }
        };
        for (seq, part) in &parts {
            ledger::put_receipts(&mut batch, *seq, batch_seq, &part.stored);
        }
    }
    if let Err(e) = state.db.commit(batch).await {
        tracing::warn!(error = %e, "cannot store receipts; agents will send them again");
        return;
    }
    for (_, part) in parts {
        let mut e = ledger::lock(&part.entry);
        let id = e.alert.id.clone();
        for (c, d) in part.changed {
            e.set(&c, d);
        }
        drop(e);
        state.hub.alert_changed(&id);
    }
    for (ack, receipts) in acks.into_values() {
        let msg = pb::ServerMessage {
            kind: Some(server_message::Kind::ReceiptAck(pb::ReceiptAck {
                receipts,
            })),
        };
        // A full queue means the agent is not reading; it resends the receipt
        // on its next session.
        let _ = ack.try_send(crate::fanout::outbound(msg));
    }
}
