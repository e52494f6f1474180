//! Quick alerts on the server: sending (audience, permission, durable
//! records, then fan-out), status and live watching, cancelling, and the
//! agent side of it (resume after reconnect, receipts).

use std::collections::{BTreeMap, BTreeSet};
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
use crate::state::{Caller, ComputerRecord, State, now_ms};
use crate::store::{Batch, Table, seq_key};

/// `al-<seq>`; the store key is the zero-padded seq, so keys sort by time.
fn alert_key(id: &str) -> ApiResult<String> {
    id.trim()
        .strip_prefix("al-")
        .and_then(|n| n.parse::<u64>().ok())
        .map(seq_key)
        .ok_or_else(|| ApiError::invalid("alert_id", format!("{id:?} is not an alert id (al-…)")))
}

fn delivery_key(alert: &str, computer: &str) -> String {
    format!("{alert}/{computer}")
}

fn outbox_key(computer: &str, seq: u64) -> String {
    format!("{computer}/{}", seq_key(seq))
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
    let computers: Vec<ComputerRecord> = state
        .db
        .list::<ComputerRecord>(Table::Computers)?
        .into_iter()
        .filter(|c| !c.revoked)
        .collect();
    let mut audience: BTreeMap<String, String> = BTreeMap::new(); // computer → unit
    let mut described = Vec::new();
    let mut target_units = BTreeSet::new();
    for t in targets {
        match &t.target {
            Some(pb::alert_target::Target::OrgUnitId(u)) => {
                let u = u.trim();
                tree.get(u)?;
                g.require(Capability::SendQuickAlerts, u)?;
                for c in computers.iter().filter(|c| tree.is_within(&c.unit, u)) {
                    audience.insert(c.id.clone(), c.unit.clone());
                }
                described.push(tree.path(u));
                target_units.insert(u.to_owned());
            }
            Some(pb::alert_target::Target::ComputerId(id)) => {
                let c = computers
                    .iter()
                    .find(|c| c.id == id.trim())
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
                for c in &computers {
                    if allowed.as_ref().is_none_or(|set| set.contains(&c.unit)) {
                        audience.insert(c.id.clone(), c.unit.clone());
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
    let mut batch = Batch::new();
    batch.put_json(Table::Alerts, seq_key(seq), &alert);
    for (computer, unit) in &audience {
        // The alert's seq is above every earlier outbox entry of every
        // computer, so each outbox stays ordered.
        batch.put_json(
            Table::Deliveries,
            delivery_key(&id, computer),
            &Delivery::new(&id, computer, unit, seq),
        );
        batch.put_json(Table::Outbox, outbox_key(computer, seq), &id);
    }
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
            alert.title,
            described.join(", "),
            audience.len()
        ),
    )?;
    // Held over commit and fan-out, so a cancel cannot slip in between and
    // withdraw the alert before it was pushed.
    let _w = state.write_lock.lock().await;
    state.db.commit(batch).await?;
    let accepted = now_ms();
    let msg = delivery_msg(&alert, seq);
    let report = state
        .hub
        .push_each(audience.keys().map(String::as_str), |_| msg.clone());
    tracing::info!(alert = %id, computers = audience.len(), sent = report.sent, offline = report.offline, stuck = report.stuck, "alert accepted and fanned out");
    Ok(pb::SendAlertResponse {
        alert_id: id,
        computers: audience.len() as u32,
        accepted_unix_ms: accepted,
        expires_unix_ms: expires,
    })
}

fn load_alert(state: &State, id: &str) -> ApiResult<Alert> {
    state
        .db
        .get(Table::Alerts, &alert_key(id)?)?
        .ok_or_else(|| ApiError::NotFound(format!("no alert with id {id:?}")))
}

fn deliveries(state: &State, id: &str) -> ApiResult<Vec<Delivery>> {
    Ok(state
        .db
        .list_prefix::<Delivery>(Table::Deliveries, &format!("{id}/"))?
        .into_iter()
        .map(|(_, d)| d)
        .collect())
}

/// May see an alert: "send quick alerts" or "view reports" on every unit it went to.
fn check_visible(state: &State, caller: &Caller, ds: &[Delivery]) -> ApiResult<()> {
    let tree = state.tree();
    let g = state.grants(caller, &tree);
    let units: BTreeSet<&str> = ds.iter().map(|d| d.unit.as_str()).collect();
    for u in units {
        if !tree.contains(u) {
            continue;
        }
        if !g.allows(Capability::ViewReports, u) {
            g.require(Capability::SendQuickAlerts, u)?;
        }
    }
    if ds.is_empty() && !g.has_any(Capability::ViewReports) {
        g.require_any(Capability::SendQuickAlerts)?;
    }
    Ok(())
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

fn status_pb(
    state: &State,
    a: &Alert,
    ds: &[Delivery],
    with_computers: bool,
    now: UnixMs,
) -> pb::AlertStatus {
    let tree = state.tree();
    let (all, units, settled) = alert::tally(a, ds, now);
    let computers = if with_computers {
        let hosts: BTreeMap<String, String> = state
            .db
            .list::<ComputerRecord>(Table::Computers)
            .unwrap_or_default()
            .into_iter()
            .map(|c| (c.id, c.hostname))
            .collect();
        ds.iter()
            .map(|d| pb::ComputerDelivery {
                computer_id: d.computer.clone(),
                hostname: hosts.get(&d.computer).cloned().unwrap_or_default(),
                org_unit_path: tree.path(&d.unit),
                state: state_to_pb(d.effective(a, now)) as i32,
                delivered_unix_ms: d.delivered_ms.unwrap_or(0),
                displayed_unix_ms: d.displayed_ms.unwrap_or(0),
                dismissed_unix_ms: d.dismissed_ms.unwrap_or(0),
                user: d.user.clone().unwrap_or_default(),
                online: state.is_online(&d.computer),
            })
            .collect()
    } else {
        Vec::new()
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

pub fn status(
    state: &State,
    caller: &Caller,
    req: &pb::GetAlertStatusRequest,
) -> ApiResult<pb::AlertStatus> {
    let a = load_alert(state, &req.alert_id)?;
    let ds = deliveries(state, &a.id)?;
    check_visible(state, caller, &ds)?;
    Ok(status_pb(state, &a, &ds, req.computers, now_ms()))
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
        let page: Vec<Alert> = state.db.list_rev(Table::Alerts, before.as_deref(), 64)?;
        let Some(last) = page.last() else { break };
        before = Some(alert_key(&last.id)?);
        for a in page {
            let ds = deliveries(state, &a.id)?;
            if check_visible(state, caller, &ds).is_ok() {
                out.push(status_pb(state, &a, &ds, false, now));
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
            let next = match (load_alert(&state, &id), deliveries(&state, &id)) {
                (Ok(a), Ok(ds)) => status_pb(&state, &a, &ds, req.computers, now_ms()),
                (Err(e), _) | (_, Err(e)) => {
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

pub async fn cancel(
    state: &State,
    caller: &Caller,
    req: &pb::CancelAlertRequest,
) -> ApiResult<pb::AlertSummary> {
    let _w = state.write_lock.lock().await;
    let mut a = load_alert(state, &req.alert_id)?;
    let ds = deliveries(state, &a.id)?;
    let tree = state.tree();
    let g = state.grants(caller, &tree);
    for u in ds.iter().map(|d| d.unit.as_str()).collect::<BTreeSet<_>>() {
        if tree.contains(u) {
            g.require(Capability::SendQuickAlerts, u)?;
        }
    }
    if ds.is_empty() {
        g.require_any(Capability::SendQuickAlerts)?;
    }
    if !a.cancelled {
        a.cancelled = true;
        a.cancelled_ms = Some(now_ms());
        let mut batch = Batch::new();
        batch.put_json(Table::Alerts, alert_key(&a.id)?, &a);
        state.audit(
            &mut batch,
            &caller.name,
            "alert.cancel",
            &a.id,
            None,
            format!("cancelled \"{}\"", a.title),
        )?;
        state.db.commit(batch).await?;
        let showing = ds
            .iter()
            .filter(|d| !d.state.is_final())
            .map(|d| d.computer.as_str());
        let report = state.hub.push_each(showing, |_| withdraw_msg(&a.id));
        tracing::info!(alert = %a.id, withdrawn = report.sent, "alert cancelled");
        state.hub.alert_changed(&a.id);
    }
    Ok(summary_pb(&a))
}

/// What a (re)connecting agent should get: every item in its outbox after
/// `after_seq` that is still wanted, and a withdrawal for cancelled ones it
/// may still show. Expired entries are dropped from the outbox.
pub async fn resume(
    state: &State,
    computer: &str,
    after_seq: u64,
) -> ApiResult<Vec<pb::ServerMessage>> {
    let now = now_ms();
    let mut out = Vec::new();
    let mut cleanup = Batch::new();
    for (key, id) in state
        .db
        .list_prefix::<String>(Table::Outbox, &format!("{computer}/"))?
    {
        let Ok(a) = load_alert(state, &id) else {
            cleanup.delete(Table::Outbox, key);
            continue;
        };
        let Some(d) = state
            .db
            .get::<Delivery>(Table::Deliveries, &delivery_key(&id, computer))?
        else {
            cleanup.delete(Table::Outbox, key);
            continue;
        };
        if a.cancelled {
            if !d.state.is_final() {
                out.push(withdraw_msg(&a.id));
            }
            if now >= a.expires_ms {
                cleanup.delete(Table::Outbox, key);
            }
        } else if now >= a.expires_ms || d.state.is_final() {
            cleanup.delete(Table::Outbox, key);
        } else if d.seq > after_seq {
            out.push(delivery_msg(&a, d.seq));
        }
    }
    // Dropping outbox entries needs no sync of its own; the next commit
    // carries it, and a lost deletion is redone on the next resume.
    state.db.commit(cleanup).await?;
    Ok(out)
}

/// Receipts from every session go through one writer that stores them in
/// batches (one store commit for up to a few thousand receipts) and then
/// acknowledges each on its session's queue. Receipt storage thus costs one
/// task, not one commit per receipt, and does not crowd out the fan-out of
/// the next alert.
pub struct ReceiptWriter {
    tx: tokio::sync::mpsc::UnboundedSender<PendingReceipt>,
}

pub struct PendingReceipt {
    computer: String,
    receipt: pb::Receipt,
    ack: crate::fanout::SessionTx,
}

const RECEIPT_BATCH: usize = 4096;

impl ReceiptWriter {
    pub fn start(state: std::sync::Weak<State>) -> (ReceiptWriter, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PendingReceipt>();
        let task = tokio::spawn(async move {
            let mut pending = Vec::with_capacity(RECEIPT_BATCH);
            while rx.recv_many(&mut pending, RECEIPT_BATCH).await > 0 {
                let Some(state) = state.upgrade() else { return };
                store_receipts(&state, std::mem::take(&mut pending)).await;
            }
        });
        (ReceiptWriter { tx }, task)
    }

    pub fn submit(&self, computer: &str, receipt: pb::Receipt, ack: crate::fanout::SessionTx) {
        let _ = self.tx.send(PendingReceipt {
            computer: computer.to_owned(),
            receipt,
            ack,
        });
    }
}

async fn store_receipts(state: &State, batch_in: Vec<PendingReceipt>) {
    let now = now_ms();
    let mut batch = Batch::new();
    // Several receipts for one delivery in a batch build on each other.
    let mut touched: BTreeMap<String, Delivery> = BTreeMap::new();
    let mut changed_alerts = BTreeSet::new();
    let mut acks: Vec<(crate::fanout::SessionTx, pb::ReceiptKey)> =
        Vec::with_capacity(batch_in.len());
    for p in batch_in {
        let r = &p.receipt;
        let key = pb::ReceiptKey {
            item_id: r.item_id.clone(),
            state: r.state,
        };
        if let Some(to) = state_from_pb(r.state) {
            let dkey = delivery_key(&r.item_id, &p.computer);
            let current = match touched.remove(&dkey) {
                Some(d) => Some(d),
                None => match state.db.get::<Delivery>(Table::Deliveries, &dkey) {
                    Ok(d) => d,
                    Err(e) => {
                        // Not acknowledged: the agent keeps it and sends it again.
                        tracing::warn!(computer = %p.computer, error = %e, "cannot read a delivery for a receipt");
                        continue;
                    }
                },
            };
            if let Some(mut d) = current {
                let at = if r.at_unix_ms > 0 {
                    r.at_unix_ms.min(now)
                } else {
                    now
                };
                let user = r.user.chars().take(64).collect::<String>();
                if d.apply(to, at, Some(&user)) {
                    batch.put_json(Table::Deliveries, dkey.clone(), &d);
                    changed_alerts.insert(r.item_id.clone());
                }
                touched.insert(dkey, d);
            }
        }
        acks.push((p.ack, key));
    }
    if let Err(e) = state.db.commit(batch).await {
        tracing::warn!(error = %e, "cannot store receipts; agents will send them again");
        return;
    }
    for id in changed_alerts {
        state.hub.alert_changed(&id);
    }
    for (ack, key) in acks {
        let msg = pb::ServerMessage {
            kind: Some(server_message::Kind::ReceiptAck(pb::ReceiptAck {
                receipts: vec![key],
            })),
        };
        // A full queue means the agent is not reading; it resends the receipt
        // on its next session.
        let _ = ack.try_send(Ok(msg));
    }
}
