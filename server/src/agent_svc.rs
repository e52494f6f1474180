//! `AgentService`: enrollment and the one long-lived session per agent.
//! Every call but `Enroll` is bound to the computer named by the client
//! certificate; nothing an agent says about itself changes who it is.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use futures::Stream;
use herald_proto::pb;
use herald_proto::pb::agent_service_server::AgentService;
use herald_proto::pb::{agent_message, server_message};
use tokio::sync::{mpsc, oneshot};
use tonic::{Request, Response, Status, Streaming};

use crate::convert::text;
use crate::domain::token::{self, TokenError, TokenRecord};
use crate::error::{ApiError, ApiResult};
use crate::fanout::{LiveSession, Outbound, outbound, session_stream};
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
        let hello = match tokio::time::timeout(Duration::from_secs(10), inbound.message()).await {
            Ok(Ok(Some(pb::AgentMessage {
                kind: Some(agent_message::Kind::Hello(h)),
            }))) => h,
            Ok(Ok(_)) => {
                return Err(Status::invalid_argument(
                    "the session must start with a hello",
                ));
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(Status::deadline_exceeded("no hello within 10 seconds")),
        };
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
        let (kill_tx, mut kill_rx) = oneshot::channel::<Status>();
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

        let idle_limit = state.config.heartbeat_interval() * 3;
        let mut shutdown = state.shutdown.clone();
        let id = computer.id.clone();
        tokio::spawn(async move {
            let end: Option<Status> = loop {
                tokio::select! {
                    killed = &mut kill_rx => break killed.ok(),
                    _ = shutdown.changed() => break Some(Status::unavailable("the server is shutting down")),
                    next = tokio::time::timeout(idle_limit, inbound.message()) => match next {
                        Err(_) => break Some(Status::deadline_exceeded("no heartbeat: session closed")),
                        Ok(Err(_)) | Ok(Ok(None)) => break None,
                        Ok(Ok(Some(m))) => {
                            let now = now_ms();
                            last_seen.store(now, Ordering::Relaxed);
                            let reply = match m.kind {
                                Some(agent_message::Kind::Heartbeat(_)) => Some(server_message::Kind::HeartbeatAck(
                                    pb::HeartbeatAck { server_time_unix_ms: now },
                                )),
                                Some(agent_message::Kind::Presence(p)) => {
                                    let users = user_names(&p.users);
                                    state.hub.update(&id, conn_id, |l| l.users = users.clone());
                                    if let Err(e) = save_presence(&state, &id, None, &users).await {
                                        tracing::warn!(computer = %id, error = %e, "cannot store presence");
                                    }
                                    None
                                }
                                Some(agent_message::Kind::Receipt(r)) => {
                                    // Stored by the receipt writer, which
                                    // acknowledges on this session's queue.
                                    state.receipts.submit(&id, conn_id, r, tx.clone());
                                    None
                                }
                                Some(agent_message::Kind::Hello(_)) | None => None,
                            };
                            if let Some(kind) = reply
                                && tx.try_send(msg(kind)).is_err() {
                                    break Some(Status::resource_exhausted("the agent does not read its session: disconnected"));
                                }
                        }
                    },
                }
            };
            if let Some(status) = end {
                let _ = tx.try_send(Err(Box::new(status)));
            }
            if state.hub.deregister(&id, conn_id)
                && let Err(e) = save_presence(&state, &id, None, &[]).await
            {
                tracing::warn!(computer = %id, error = %e, "cannot store last-seen");
            }
            tracing::info!(computer = %id, conn_id, "agent session closed");
        });
        Ok(Response::new(Box::pin(session_stream(rx))))
    }
}
