//! Live online/offline counts per org unit, for the console's dashboard.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use herald_proto::pb;
use tonic::Status;

use crate::domain::perm::Capability;
use crate::error::ApiResult;
use crate::state::{Caller, State, now_ms};

pub type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::PresenceSummary, Status>> + Send>>;

/// Summaries at most this often, however busy the network is.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Counts for the units `caller` holds any grant on.
pub fn summary(state: &State, caller: &Caller) -> ApiResult<pb::PresenceSummary> {
    let tree = state.tree();
    let g = state.grants(caller, &tree);
    let mut counts: HashMap<&str, (u32, u32)> = HashMap::new();
    let computers = state.roster.all();
    for (c, unit) in &computers {
        let slot = counts.entry(unit.as_str()).or_default();
        if state.is_online(c) {
            slot.0 += 1;
        } else {
            slot.1 += 1;
        }
    }
    let mut units: Vec<pb::UnitPresence> = tree
        .ordered()
        .into_iter()
        .filter(|u| Capability::ALL.iter().any(|cap| g.allows(*cap, &u.id)))
        .map(|u| {
            let (online, offline) = counts.get(u.id.as_str()).copied().unwrap_or_default();
            pb::UnitPresence {
                org_unit_id: u.id.clone(),
                path: tree.path(&u.id),
                online,
                offline,
            }
        })
        .collect();
    units.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(pb::PresenceSummary {
        units,
        at_unix_ms: now_ms(),
    })
}

/// The summary now, then again after every change (at most once a second),
/// until the caller hangs up or the server shuts down.
pub fn watch(state: Arc<State>, caller: Caller) -> ApiResult<WatchStream> {
    let mut changes = state.hub.subscribe_presence();
    changes.mark_unchanged();
    let first = summary(&state, &caller)?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        let mut last = first.units.clone();
        if tx.send(Ok(first)).await.is_err() {
            return;
        }
        loop {
            tokio::select! {
                r = changes.changed() => if r.is_err() { return },
                () = tx.closed() => return,
                _ = shutdown.changed() => return,
            }
            // Let a burst of connects (a reconnect storm) settle into one
            // summary.
            tokio::time::sleep(MIN_INTERVAL).await;
            changes.mark_unchanged();
            // Grants may have changed or the session ended meanwhile.
            let next = match state
                .caller_by_session(&caller.session_hash)
                .and_then(|c| summary(&state, &c))
            {
                Ok(s) => s,
                Err(e) => {
                    let _ = tx.send(Err(Status::from(e))).await;
                    return;
                }
            };
            if next.units != last {
                last = next.units.clone();
                if tx.send(Ok(next)).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
}
