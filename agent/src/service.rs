//! `herald-agent service`: keeps the computer's one session to the server.
//! Reconnects with exponential backoff and jitter, says hello with its
//! presence, sends heartbeats, and reports the logged-in users whenever the
//! set of connected session parts changes.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use herald_proto::framed::{self, SessionReader, SessionWriter};
use herald_proto::pb;
use herald_proto::pb::{agent_message, server_message};
use herald_proto::tls::ServerTrust;
use tokio::sync::watch;
use tonic::Code;

use crate::backoff::{Backoff, Outcome, Reconnect};
use crate::core::Core;
use crate::items::ItemStore;
use crate::local::LocalUser;
use crate::state::{Identity, StateDir};

/// How long the service waits for the server's welcome on a new session
/// before it counts the try as failed.
pub const WELCOME_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Clone, Debug)]
pub struct ServiceOptions {
    pub state_dir: PathBuf,
    /// Local socket for session parts; `None` runs without one.
    pub socket: Option<PathBuf>,
    pub backoff: Backoff,
}

/// What the service is doing, for logs, tests and a future status command.
#[derive(Clone, Debug, Default)]
pub struct ServiceStatus {
    pub connected: bool,
    /// Sessions established since start.
    pub sessions: u64,
    /// Connection attempts that failed since start.
    pub failures: u64,
    pub last_error: Option<String>,
    /// The longest reconnect delay used so far.
    pub longest_delay: Duration,
    /// Set when the server says this computer was revoked.
    pub revoked: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error("cannot listen on the local socket {path}: {source}")]
    Socket {
        path: String,
        source: std::io::Error,
    },
}

enum SessionEnd {
    /// The session was up and then ended: reconnect after a short jittered pause.
    AfterWelcome(String),
    /// Could not establish a session.
    Failed(String),
    Revoked(String),
    Shutdown,
}

/// Runs until `shutdown` flips to true. `status` is updated as things happen.
pub async fn run(
    opts: ServiceOptions,
    shutdown: watch::Receiver<bool>,
    status: watch::Sender<ServiceStatus>,
) -> Result<(), ServiceError> {
    let identity = StateDir::new(&opts.state_dir).load()?;
    let items = ItemStore::open(&opts.state_dir, crate::core::now_ms())?;
    let core = Core::new(identity.info.computer_id.clone(), items);
    if let Some(path) = &opts.socket {
        let listener = crate::local::bind(path).map_err(|source| ServiceError::Socket {
            path: path.display().to_string(),
            source,
        })?;
        tracing::info!(socket = %path.display(), "listening for session parts");
        tokio::spawn(crate::local::serve(
            listener,
            core.clone(),
            shutdown.clone(),
        ));
    }
    let mut shutdown = shutdown;
    let mut reconnect = Reconnect::new(opts.backoff);
    loop {
        if *shutdown.borrow() {
            break;
        }
        let end = run_session(&identity, &core, &mut shutdown, &status).await;
        let delay = match end {
            SessionEnd::Shutdown => break,
            SessionEnd::AfterWelcome(why) => {
                tracing::info!(reason = %why, "session ended; reconnecting");
                reconnect.random_delay_after(Outcome::SessionEnded)
            }
            SessionEnd::Failed(why) => {
                tracing::warn!(error = %why, attempt = reconnect.failures(), "cannot reach the server");
                status.send_modify(|s| {
                    s.failures += 1;
                    s.last_error = Some(why);
                });
                reconnect.random_delay_after(Outcome::Failed)
            }
            SessionEnd::Revoked(why) => {
                tracing::error!(error = %why, "the server revoked this computer; enroll it again with a new token");
                status.send_modify(|s| {
                    s.revoked = true;
                    s.failures += 1;
                    s.last_error = Some(why);
                });
                reconnect.random_delay_after(Outcome::Revoked)
            }
        };
        status.send_modify(|s| {
            s.connected = false;
            s.longest_delay = s.longest_delay.max(delay);
        });
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => break,
        }
    }
    status.send_modify(|s| s.connected = false);
    Ok(())
}

fn users_pb(users: &[LocalUser]) -> Vec<pb::LoggedInUser> {
    users
        .iter()
        .map(|u| pb::LoggedInUser {
            name: u.name.clone(),
            uid: u.uid,
            locked: false,
        })
        .collect()
}

fn agent_msg(kind: agent_message::Kind) -> pb::AgentMessage {
    pb::AgentMessage { kind: Some(kind) }
}

fn classify(status: &tonic::Status) -> SessionEnd {
    let text = format!("{}: {}", status.code(), status.message());
    if status.code() == Code::PermissionDenied && status.message().contains("revoked") {
        SessionEnd::Revoked(text)
    } else {
        SessionEnd::Failed(text)
    }
}

/// How long one write to the server may take before the session is
/// given up as stuck.
const WRITE_TIMEOUT: Duration = Duration::from_secs(20);

/// Writes what is queued on `writer`; false when the session is gone.
async fn flush(writer: &mut SessionWriter) -> bool {
    matches!(
        tokio::time::timeout(WRITE_TIMEOUT, writer.flush()).await,
        Ok(Ok(()))
    )
}

async fn send(writer: &mut SessionWriter, kind: agent_message::Kind) -> bool {
    writer.queue(&agent_msg(kind));
    flush(writer).await
}

async fn run_session(
    identity: &Identity,
    core: &Arc<Core>,
    shutdown: &mut watch::Receiver<bool>,
    status: &watch::Sender<ServiceStatus>,
) -> SessionEnd {
    let config = match herald_proto::tls::client_config(
        &ServerTrust::CaPem(identity.ca_pem.clone()),
        Some(&identity.client),
    ) {
        Ok(c) => c,
        Err(e) => return SessionEnd::Failed(format!("the stored identity is unusable: {e}")),
    };
    let mut users_rx = core.sessions.subscribe();
    let hello = pb::Hello {
        agent_version: crate::VERSION.to_owned(),
        hostname: crate::hostname(),
        os: crate::os_description(),
        users: users_pb(&users_rx.borrow_and_update()),
        resume_after_seq: core.max_seq(),
    };
    let (mut inbound, mut writer) = tokio::select! {
        c = framed::connect(&identity.info.server, config, hello) => match c {
            Ok(c) => c,
            Err(e) => return SessionEnd::Failed(e.to_string()),
        },
        _ = shutdown.changed() => return SessionEnd::Shutdown,
    };
    let welcome = tokio::select! {
        m = tokio::time::timeout(WELCOME_TIMEOUT, inbound.message()) => m,
        _ = shutdown.changed() => return SessionEnd::Shutdown,
    };
    let heartbeat = match welcome {
        Ok(Ok(Some(pb::ServerMessage {
            kind: Some(server_message::Kind::Welcome(w)),
        }))) => {
            tracing::info!(computer = %w.computer_id, unit = %w.org_unit_path, "session established");
            Duration::from_secs(u64::from(w.heartbeat_interval_secs.max(1)))
        }
        Ok(Ok(_)) => return SessionEnd::Failed("the server did not welcome the session".into()),
        Ok(Err(s)) => return classify(&s),
        Err(_) => {
            return SessionEnd::Failed(format!(
                "no welcome from the server within {} s",
                WELCOME_TIMEOUT.as_secs()
            ));
        }
    };
    status.send_modify(|s| {
        s.connected = true;
        s.sessions += 1;
        s.last_error = None;
    });
    let end = session_loop(
        core,
        shutdown,
        heartbeat,
        &mut inbound,
        &mut writer,
        &mut users_rx,
    )
    .await;
    if matches!(end, SessionEnd::Shutdown) {
        let _ = tokio::time::timeout(Duration::from_secs(1), writer.shutdown()).await;
    }
    end
}

/// The established session: heartbeats, presence, receipts out; deliveries,
/// withdrawals and receipt acknowledgements in.
async fn session_loop(
    core: &Arc<Core>,
    shutdown: &mut watch::Receiver<bool>,
    heartbeat: Duration,
    inbound: &mut SessionReader,
    writer: &mut SessionWriter,
    users_rx: &mut watch::Receiver<Vec<LocalUser>>,
) -> SessionEnd {
    let send_side_closed = || SessionEnd::AfterWelcome("the session's send side closed".into());
    // Receipts stored while disconnected (or before a crash) go first.
    let mut sent: HashSet<(String, i32)> = HashSet::new();
    if !send_receipts(core, writer, &mut sent).await {
        return send_side_closed();
    }
    // When the receipts stored since the last send go out (see `pacing`).
    let mut send_receipts_at: Option<tokio::time::Instant> = None;
    let mut ticker = tokio::time::interval(heartbeat);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let silence_limit = heartbeat * 3;
    loop {
        tokio::select! {
            _ = shutdown.changed() => return SessionEnd::Shutdown,
            () = core.receipts_waiting.notified() => {
                send_receipts_at.get_or_insert_with(|| {
                    tokio::time::Instant::now() + crate::pacing::receipt_delay()
                });
            }
            () = crate::pacing::sleep_until(send_receipts_at) => {
                send_receipts_at = None;
                if !send_receipts(core, writer, &mut sent).await {
                    return send_side_closed();
                }
            }
            _ = ticker.tick() => {
                let hb = pb::Heartbeat { agent_time_unix_ms: crate::core::now_ms() };
                if !send(writer, agent_message::Kind::Heartbeat(hb)).await {
                    return send_side_closed();
                }
            }
            changed = users_rx.changed() => {
                if changed.is_ok() {
                    let users = users_pb(&users_rx.borrow_and_update());
                    if !send(writer, agent_message::Kind::Presence(pb::Presence { users })).await {
                        return send_side_closed();
                    }
                }
            }
            m = tokio::time::timeout(silence_limit, inbound.message()) => match m {
                Err(_) => return SessionEnd::AfterWelcome("the server went silent".into()),
                Ok(Ok(None)) => return SessionEnd::AfterWelcome("the server closed the session".into()),
                Ok(Err(s)) => return match classify(&s) {
                    SessionEnd::Failed(t) => SessionEnd::AfterWelcome(t),
                    other => other,
                },
                Ok(Ok(Some(msg))) => match msg.kind {
                    Some(server_message::Kind::HeartbeatAck(_)) => {}
                    Some(server_message::Kind::ReceiptAck(ack)) => {
                        for k in &ack.receipts {
                            sent.remove(&(k.item_id.clone(), k.state));
                        }
                        core.acknowledge(&ack.receipts);
                    }
                    Some(server_message::Kind::Delivery(d)) => core.on_delivery(&d),
                    Some(server_message::Kind::Withdraw(w)) => core.on_withdraw(&w.item_id),
                    Some(server_message::Kind::Welcome(_) | server_message::Kind::End(_)) | None => {}
                },
            },
        }
    }
}

/// Sends the stored receipts not yet sent in this session, in one write.
async fn send_receipts(
    core: &Core,
    writer: &mut SessionWriter,
    sent: &mut HashSet<(String, i32)>,
) -> bool {
    let mut any = false;
    for r in core.pending_receipts() {
        if sent.insert((r.item_id.clone(), r.state)) {
            writer.queue(&agent_msg(agent_message::Kind::Receipt(r)));
            any = true;
        }
    }
    !any || flush(writer).await
}
