//! `AgentService`: enrollment and the one long-lived session per agent.
//! Every call but `Enroll` is bound to the computer named by the client
//! certificate; nothing an agent says about itself changes who it is.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use futures::Stream;
use herald_proto::framed::{self, FrameError, FrameReader, FrameWriter};
use herald_proto::pb;
use herald_proto::pb::agent_service_server::AgentService;
use herald_proto::pb::{agent_message, server_message};
use tokio::sync::{mpsc, oneshot};
use tonic::{Request, Response, Status, Streaming};

use crate::convert::text;
use crate::domain::token::{self, TokenError, TokenRecord};
use crate::error::{ApiError, ApiResult};
use crate::fanout::{LiveSession, Outbound, SessionTx, outbound, session_stream};
use crate::net::TlsConn;
use crate::state::{ComputerRecord, PresenceRecord, State, new_id, now_ms};
use crate::store::{Batch, Table};

pub struct AgentApi {
    pub state: Arc<State>,
    next_conn: AtomicU64,
}

impl AgentApi {
    pub fn new(state: Arc<State>) -> Self {
        AgentApi {
            state,
            next_conn: AtomicU64::new(1),
        }
    }

    async fn enroll(&self, req: pb::EnrollRequest) -> ApiResult<pb::EnrollResponse> {
        let parts = token::parse(&req.token)?;
        if parts.ca_fingerprint != self.state.ca.fingerprint() {
            return Err(ApiError::invalid(
                "token",
                "this token was made by another Herald server (its CA fingerprint differs)",
            ));
        }
        let hostname = text("hostname", &req.hostname, 253)?;
        if hostname.is_empty() {
            return Err(ApiError::invalid("hostname", "hostname is missing"));
        }
        let os = text("os", &req.os, 200)?;
        let agent_version = text("agent_version", &req.agent_version, 64)?;
        if req.csr_pem.len() > 16 * 1024 {
            return Err(ApiError::invalid("csr_pem", "larger than 16 KiB"));
        }
        let hash = token::secret_hash(&parts.secret);
        let _w = self.state.write_lock.lock().await;
        let mut tok: TokenRecord = self
            .state
            .db
            .get(Table::Tokens, &hash)?
            .ok_or(TokenError::Unknown)?;
        let now = now_ms();
        tok.check_usable(now)?;
        let tree = self.state.tree();
        if !tree.contains(&tok.unit) {
            return Err(ApiError::NotFound(
                "the org unit of this token no longer exists: ask for a new token".into(),
            ));
        }
        let id = new_id("c-");
        let validity =
            Duration::from_secs(u64::from(self.state.config.agent_cert_validity_days) * 86400);
        let issued = self
            .state
            .ca
            .sign_agent(&req.csr_pem, &id, time::OffsetDateTime::now_utc(), validity)
            .map_err(|e| ApiError::invalid("csr_pem", e.to_string()))?;
        tok.uses += 1;
        let rec = ComputerRecord {
            id: id.clone(),
            unit: tok.unit.clone(),
            hostname: hostname.clone(),
            os,
            agent_version,
            enrolled_ms: now,
            enrolled_with_token: tok.id.clone(),
            cert_serial: issued.serial_hex.clone(),
            cert_not_after_ms: issued.not_after_ms,
            revoked: false,
            revoked_ms: None,
            last_seen_ms: now,
            users: Vec::new(),
        };
        let mut batch = Batch::new();
        batch.put_json(Table::Tokens, hash, &tok);
        batch.put_json(Table::Computers, id.clone(), &rec);
        self.state.audit(
            &mut batch,
            &tok.created_by,
            "computer.enroll",
            &id,
            Some(&tok.unit),
            format!(
                "{hostname} enrolled into {} with token {}",
                tree.path(&tok.unit),
                tok.id
            ),
        )?;
        self.state.db.commit(batch).await?;
        self.state.computer_placed(&id, &tok.unit);
        tracing::info!(computer = %id, %hostname, unit = %tree.path(&tok.unit), "computer enrolled");
        Ok(pb::EnrollResponse {
            computer_id: id,
            certificate_pem: issued.pem,
            ca_chain_pem: self.state.ca.cert_pem.clone(),
            org_unit_path: tree.path(&tok.unit),
            certificate_not_after_unix_ms: issued.not_after_ms,
        })
    }
}

/// Records what the agent reported and when it was last seen.
async fn save_presence(
    state: &State,
    computer: &str,
    hello: Option<&pb::Hello>,
    users: &[String],
) -> ApiResult<()> {
    let Some(rec) = state.computer(computer)? else {
        return Ok(());
    };
    if rec.revoked {
        return Ok(());
    }
    let mut p = PresenceRecord {
        hostname: rec.hostname,
        os: rec.os,
        agent_version: rec.agent_version,
        users: users.to_vec(),
        last_seen_ms: now_ms(),
    };
    if let Some(h) = hello {
        p.hostname = text("hostname", &h.hostname, 253).unwrap_or(p.hostname);
        p.os = text("os", &h.os, 200).unwrap_or(p.os);
        p.agent_version = text("agent_version", &h.agent_version, 64).unwrap_or(p.agent_version);
    }
    // Only the presence table: the computer record belongs to enrollment
    // and admins, and this write never holds their lock.
    let mut batch = Batch::new();
    batch.put_json(Table::Presence, rec.id.clone(), &p);
    state.db.commit(batch).await?;
    Ok(())
}

fn user_names(users: &[pb::LoggedInUser]) -> Vec<String> {
    let mut names: Vec<String> = users
        .iter()
        .filter_map(|u| text("users", &u.name, 64).ok())
        .filter(|n| !n.is_empty())
        .collect();
    names.sort();
    names.dedup();
    names.truncate(64);
    names
}

type SessionStream = Pin<Box<dyn Stream<Item = Result<pb::ServerMessage, Status>> + Send>>;

fn msg(kind: server_message::Kind) -> Outbound {
    outbound(pb::ServerMessage { kind: Some(kind) })
}

/// How long an agent has to say hello after connecting.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Waits (at most [`HELLO_TIMEOUT`]) for the session's first message,
/// which must be a hello.
async fn await_hello(
    first: impl std::future::Future<Output = Result<Option<pb::AgentMessage>, Status>>,
) -> Result<pb::Hello, Status> {
    match tokio::time::timeout(HELLO_TIMEOUT, first).await {
        Ok(first) => hello_of(first?),
        Err(_) => Err(Status::deadline_exceeded("no hello within 10 seconds")),
    }
}

/// Why a session ends when the server shuts down.
fn shutting_down() -> Status {
    Status::unavailable("the server is shutting down")
}

/// Why a session ends when the agent fell silent.
fn silent() -> Status {
    Status::deadline_exceeded("no heartbeat: session closed")
}

/// The hello a session must start with.
fn hello_of(first: Option<pb::AgentMessage>) -> Result<pb::Hello, Status> {
    match first {
        Some(pb::AgentMessage {
            kind: Some(agent_message::Kind::Hello(h)),
        }) => Ok(h),
        _ => Err(Status::invalid_argument(
            "the session must start with a hello",
        )),
    }
}

/// A live agent session, whichever way it is carried (gRPC stream or
/// framed connection): registered in the hub, its queue the one fan-out
/// pushes to.
struct Session {
    state: Arc<State>,
    computer: String,
    conn_id: u64,
    tx: SessionTx,
    /// Fires when the session is ended from outside (revocation, a newer
    /// session of the same computer, a full queue).
    killed: oneshot::Receiver<Status>,
    last_seen: Arc<AtomicI64>,
}

impl AgentApi {
    /// Registers the session of `computer`, which said `hello`, and queues
    /// its welcome and whatever it missed. Returns the session and the
    /// receiving end of its queue.
    async fn open(
        &self,
        computer: ComputerRecord,
        hello: pb::Hello,
    ) -> Result<(Session, mpsc::Receiver<Outbound>), Status> {
        let users = user_names(&hello.users);
        save_presence(&self.state, &computer.id, Some(&hello), &users)
            .await
            .map_err(Status::from)?;

        let state = self.state.clone();
        let tree = state.tree();
        let (tx, rx) = mpsc::channel(state.config.agent_send_queue);
        let welcome = server_message::Kind::Welcome(pb::Welcome {
            computer_id: computer.id.clone(),
            org_unit_path: tree.path(&computer.unit),
            server_time_unix_ms: now_ms(),
            heartbeat_interval_secs: state.config.heartbeat_interval_secs,
        });
        // The queue is empty, so this cannot fail.
        let _ = tx.try_send(msg(welcome));

        let conn_id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let (kill_tx, killed) = oneshot::channel::<Status>();
        // Register before reading the outbox, so that nothing accepted in
        // between is missed (it may arrive twice; the agent dedupes by id).
        let last_seen = Arc::new(AtomicI64::new(now_ms()));
        state.hub.register(
            &computer.id,
            LiveSession {
                conn_id,
                tx: tx.clone(),
                kill: Some(kill_tx),
                users,
                last_seen_ms: last_seen.clone(),
            },
        );
        // A revocation that committed while this session was being set up
        // killed whatever was registered then, not this session: look again
        // now that it is registered (revocation commits before it kills).
        let revoked_meanwhile = matches!(
            state.db.get::<ComputerRecord>(Table::Computers, &computer.id),
            Ok(Some(c)) if c.revoked || c.cert_serial != computer.cert_serial
        );
        if revoked_meanwhile {
            state.hub.kill(
                &computer.id,
                Status::permission_denied("this computer was revoked by an admin"),
            );
        }
        tracing::info!(computer = %computer.id, conn_id, "agent session opened");
        for m in crate::alerts::resume(&state, &computer.id, hello.resume_after_seq) {
            if tx.try_send(outbound(m)).is_err() {
                state.hub.kill(
                    &computer.id,
                    Status::resource_exhausted("backlog larger than the send queue; reconnect"),
                );
                break;
            }
        }
        let session = Session {
            state,
            computer: computer.id,
            conn_id,
            tx,
            killed,
            last_seen,
        };
        Ok((session, rx))
    }

    /// Serves one framed session (ALPN `herald-session/1`) on `conn`: one
    /// task reads the agent's frames and writes the session's queue.
    pub async fn serve_framed(self: Arc<Self>, conn: TlsConn) {
        let peer = conn.info().peer.clone();
        let (rd, wr) = tokio::io::split(conn);
        let mut reader = FrameReader::new(rd, framed::MAX_AGENT_FRAME);
        let mut writer = FrameWriter::new(wr);
        let opened = async {
            let computer = self.state.computer_of_peer(peer.as_ref())?;
            let first = async {
                reader
                    .next()
                    .await
                    .map_err(|e| Status::invalid_argument(e.to_string()))
            };
            let hello = await_hello(first).await?;
            self.open(computer, hello).await
        }
        .await;
        let (mut session, mut rx) = match opened {
            Ok(x) => x,
            Err(status) => return end_framed(&mut writer, Some(status)).await,
        };
        let idle_limit = session.state.config.heartbeat_interval() * 3;
        let idle = tokio::time::sleep(idle_limit);
        tokio::pin!(idle);
        let mut shutdown = session.state.shutdown.clone();
        // Set when a write is left waiting on an agent that does not read:
        // nothing more gets through to it, so it gets no last words.
        let mut stuck = false;
        let end: Option<Status> = loop {
            tokio::select! {
                biased;
                killed = &mut session.killed => break killed.ok(),
                _ = shutdown.changed() => break Some(shutting_down()),
                next = reader.next::<pb::AgentMessage>() => match next {
                    Ok(None) => break None,
                    Ok(Some(m)) => {
                        idle.as_mut().reset(tokio::time::Instant::now() + idle_limit);
                        if let Err(status) = session.on_message(m).await {
                            break Some(status);
                        }
                    }
                    Err(FrameError::Io(_) | FrameError::Truncated) => break None,
                    Err(e) => break Some(Status::invalid_argument(e.to_string())),
                },
                out = rx.recv() => {
                    let Some(out) = out else { break None };
                    // Everything queued goes out in one write.
                    if let Err(end) = queue_all(&mut writer, &mut rx, out) {
                        break end;
                    }
                    // A session cut while its agent does not take the
                    // write (its queue filled up behind it) lets go now
                    // rather than after the write limit.
                    let flushed = tokio::select! {
                        biased;
                        killed = &mut session.killed => {
                            stuck = true;
                            break killed.ok();
                        }
                        flushed = tokio::time::timeout(WRITE_STALL, writer.flush()) => flushed,
                    };
                    match flushed {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => break None,
                        Err(_) => {
                            tracing::warn!(computer = %session.computer, "agent does not read its session; disconnecting it");
                            stuck = true;
                            break None;
                        }
                    }
                }
                () = &mut idle => break Some(silent()),
            }
        };
        if stuck {
            tracing::info!(computer = %session.computer, reason = ?end.map(|s| s.message().to_owned()), "closing a session its agent does not read");
            drop((reader, writer));
        } else {
            end_framed(&mut writer, end).await;
        }
        session.close().await;
    }
}

type FramedWriter = FrameWriter<tokio::io::WriteHalf<TlsConn>>;

/// Queues `first` and whatever else is waiting in `rx` (up to
/// [`WRITE_BATCH`] bytes) on `writer`. `Err` when the queue says the
/// session ends, with the status to end it with, if any.
fn queue_all(
    writer: &mut FramedWriter,
    rx: &mut mpsc::Receiver<Outbound>,
    first: Outbound,
) -> Result<(), Option<Status>> {
    let mut next = first;
    loop {
        match next {
            Ok(m) => writer.queue(&*m),
            Err(status) => return Err(Some(*status)),
        }
        if writer.queued() >= WRITE_BATCH {
            return Ok(());
        }
        match rx.try_recv() {
            Ok(m) => next = m,
            Err(mpsc::error::TryRecvError::Empty) => return Ok(()),
            Err(mpsc::error::TryRecvError::Disconnected) => return Err(None),
        }
    }
}

/// The last words of a framed session: why it ends, if there is a reason
/// to give, then the connection is closed.
async fn end_framed(writer: &mut FramedWriter, end: Option<Status>) {
    if let Some(status) = end {
        writer.queue(&framed::end_message(&status));
        let _ = tokio::time::timeout(END_WRITE_TIMEOUT, writer.flush()).await;
    }
    let _ = tokio::time::timeout(END_WRITE_TIMEOUT, writer.shutdown()).await;
}

/// A framed session writes at most this much per write before it looks at
/// the agent's side again.
const WRITE_BATCH: usize = 64 * 1024;
/// An agent that takes this long to take a write is considered stuck.
const WRITE_STALL: Duration = Duration::from_secs(20);
/// How long the last words of a session may take.
const END_WRITE_TIMEOUT: Duration = Duration::from_secs(2);

impl Session {
    /// Handles one message from the agent; an error ends the session.
    async fn on_message(&self, m: pb::AgentMessage) -> Result<(), Status> {
        let now = now_ms();
        self.last_seen.store(now, Ordering::Relaxed);
        let reply = match m.kind {
            Some(agent_message::Kind::Heartbeat(_)) => {
                Some(server_message::Kind::HeartbeatAck(pb::HeartbeatAck {
                    server_time_unix_ms: now,
                }))
            }
            Some(agent_message::Kind::Presence(p)) => {
                let users = user_names(&p.users);
                self.state
                    .hub
                    .update(&self.computer, self.conn_id, |l| l.users = users.clone());
                if let Err(e) = save_presence(&self.state, &self.computer, None, &users).await {
                    tracing::warn!(computer = %self.computer, error = %e, "cannot store presence");
                }
                None
            }
            Some(agent_message::Kind::Receipt(r)) => {
                // Stored by the receipt writer, which acknowledges on this
                // session's queue.
                self.state
                    .receipts
                    .submit(&self.computer, self.conn_id, r, self.tx.clone());
                None
            }
            Some(agent_message::Kind::Hello(_)) | None => None,
        };
        if let Some(kind) = reply
            && self.tx.try_send(msg(kind)).is_err()
        {
            return Err(Status::resource_exhausted(
                "the agent does not read its session: disconnected",
            ));
        }
        Ok(())
    }

    /// Leaves the hub and records when the computer was last seen, unless
    /// a newer session of the computer has taken over.
    async fn close(self) {
        let hub = &self.state.hub;
        // A session cut from outside (stuck, revoked) has already left the
        // hub; one replaced by a newer session finds that one there.
        let last = hub.deregister(&self.computer, self.conn_id) || !hub.is_online(&self.computer);
        if last && let Err(e) = save_presence(&self.state, &self.computer, None, &[]).await {
            tracing::warn!(computer = %self.computer, error = %e, "cannot store last-seen");
        }
        tracing::info!(computer = %self.computer, conn_id = self.conn_id, "agent session closed");
    }
}

#[tonic::async_trait]
impl AgentService for AgentApi {
    async fn enroll(
        &self,
        req: Request<pb::EnrollRequest>,
    ) -> Result<Response<pb::EnrollResponse>, Status> {
        AgentApi::enroll(self, req.into_inner())
            .await
            .map(Response::new)
            .map_err(Status::from)
    }

    type SessionStream = SessionStream;

    async fn session(
        &self,
        req: Request<Streaming<pb::AgentMessage>>,
    ) -> Result<Response<SessionStream>, Status> {
        let computer = self.state.agent_identity(&req)?;
        let mut inbound = req.into_inner();
        let hello = await_hello(inbound.message()).await?;
        let (mut session, rx) = self.open(computer, hello).await?;
        let idle_limit = session.state.config.heartbeat_interval() * 3;
        let mut shutdown = session.state.shutdown.clone();
        tokio::spawn(async move {
            let end: Option<Status> = loop {
                tokio::select! {
                    killed = &mut session.killed => break killed.ok(),
                    _ = shutdown.changed() => break Some(shutting_down()),
                    next = tokio::time::timeout(idle_limit, inbound.message()) => match next {
                        Err(_) => break Some(silent()),
                        Ok(Err(_)) | Ok(Ok(None)) => break None,
                        Ok(Ok(Some(m))) => {
                            if let Err(status) = session.on_message(m).await {
                                break Some(status);
                            }
                        }
                    },
                }
            };
            if let Some(status) = end {
                let _ = session.tx.try_send(Err(Box::new(status)));
            }
            session.close().await;
        });
        Ok(Response::new(Box::pin(session_stream(rx))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_must_start_with_a_hello() {
        let hello = pb::Hello {
            hostname: "pc-1".into(),
            ..Default::default()
        };
        let with = |kind| Some(pb::AgentMessage { kind: Some(kind) });
        let cases = [
            (with(agent_message::Kind::Hello(hello.clone())), true),
            (
                with(agent_message::Kind::Heartbeat(pb::Heartbeat::default())),
                false,
            ),
            (Some(pb::AgentMessage { kind: None }), false),
            (None, false),
        ];
        for (first, ok) in cases {
            match hello_of(first.clone()) {
                Ok(h) => assert!(ok && h == hello, "{first:?}"),
                Err(s) => {
                    assert!(!ok, "{first:?}");
                    assert_eq!(s.code(), tonic::Code::InvalidArgument);
                    assert!(s.message().contains("hello"), "{}", s.message());
                }
            }
        }
    }
}
