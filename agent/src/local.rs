//! The local socket between the service and the session parts. The service
//! asks the kernel who is on the other end (SO_PEERCRED); a session part
//! cannot claim to be somebody else.
//!
//! Protocol: one JSON object per line, `type` tagged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, watch};

use crate::core::Core;

/// Service → session part.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToSession {
    /// Who the service has recognised the session part as.
    Welcome {
        user: String,
        uid: u32,
        computer_id: String,
    },
    /// Show this alert now.
    Alert(crate::items::LocalAlert),
    /// Take this item off the screen (cancelled by the sender).
    Withdraw { id: String },
}

/// Session part → service.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromSession {
    Ping,
    /// The item is on this user's screen.
    Displayed {
        id: String,
        at_unix_ms: i64,
    },
    /// This user closed it.
    Dismissed {
        id: String,
        at_unix_ms: i64,
    },
}

/// A logged-in user as the kernel reported it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LocalUser {
    pub name: String,
    pub uid: u32,
}

struct Conn {
    user: LocalUser,
    tx: mpsc::UnboundedSender<ToSession>,
}

/// The session parts currently connected, published as a sorted, deduped
/// user list whenever it changes.
pub struct Sessions {
    next: AtomicU64,
    conns: Mutex<BTreeMap<u64, Conn>>,
    users: watch::Sender<Vec<LocalUser>>,
}

impl Sessions {
    pub fn new() -> Arc<Self> {
        Arc::new(Sessions {
            next: AtomicU64::new(1),
            conns: Mutex::new(BTreeMap::new()),
            users: watch::channel(Vec::new()).0,
        })
    }

    /// Sends `msg` to every connected session part whose user `to` accepts.
    pub fn send(&self, msg: &ToSession, to: impl Fn(&str) -> bool) {
        if let Ok(c) = self.conns.lock() {
            for conn in c.values().filter(|c| to(&c.user.name)) {
                let _ = conn.tx.send(msg.clone());
            }
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<Vec<LocalUser>> {
        self.users.subscribe()
    }

    pub fn users(&self) -> Vec<LocalUser> {
        self.users.borrow().clone()
    }

    fn add(&self, user: LocalUser, tx: mpsc::UnboundedSender<ToSession>) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut c) = self.conns.lock() {
            c.insert(id, Conn { user, tx });
            self.publish(&c);
        }
        id
    }

    fn remove(&self, id: u64) {
        if let Ok(mut c) = self.conns.lock() {
            c.remove(&id);
            self.publish(&c);
        }
    }

    fn publish(&self, conns: &BTreeMap<u64, Conn>) {
        let mut users: Vec<LocalUser> = conns.values().map(|c| c.user.clone()).collect();
        users.sort();
        users.dedup();
        self.users.send_if_modified(|cur| {
            if *cur == users {
                false
            } else {
                *cur = users;
                true
            }
        });
    }
}

/// Where the service listens unless told otherwise: /run/herald-agent for
/// the system service, the user's runtime dir otherwise.
pub fn default_socket_path() -> PathBuf {
    if nix::unistd::Uid::effective().is_root() {
        return PathBuf::from("/run/herald-agent/session.sock");
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|x| !x.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("herald-agent/session.sock"),
        None => std::env::temp_dir().join(format!(
            "herald-agent-{}/session.sock",
            nix::unistd::Uid::effective()
        )),
    }
}

/// Binds the socket (replacing a stale one) so every local user can
/// connect: who they are is decided by peer credentials, not file modes.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    }
    if path.exists() {
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    Ok(listener)
}

fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| format!("uid{uid}"))
}

/// Accepts session parts until `shutdown` flips.
pub async fn serve(listener: UnixListener, core: Arc<Core>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "local socket accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        tokio::spawn(handle(stream, core.clone(), shutdown.clone()));
    }
}

async fn write_msg(write: &mut tokio::net::unix::OwnedWriteHalf, msg: &ToSession) -> bool {
    let Ok(mut line) = serde_json::to_string(msg) else {
        return false;
    };
    line.push('\n');
    write.write_all(line.as_bytes()).await.is_ok()
}

async fn handle(stream: UnixStream, core: Arc<Core>, mut shutdown: watch::Receiver<bool>) {
    let uid = match stream.peer_cred() {
        Ok(cred) => cred.uid(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read peer credentials; refusing the session part");
            return;
        }
    };
    let user = LocalUser {
        name: user_name(uid),
        uid,
    };
    let (read, mut write) = stream.into_split();
    let welcome = ToSession::Welcome {
        user: user.name.clone(),
        uid,
        computer_id: core.computer_id.clone(),
    };
    if !write_msg(&mut write, &welcome).await {
        return;
    }
    tracing::info!(user = %user.name, uid, "session part connected");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let id = core.sessions.add(user.clone(), tx.clone());
    // What arrived while this user was not logged in, and is still valid.
    for alert in core.unseen_by(&user.name) {
        let _ = tx.send(ToSession::Alert(alert));
    }
    let mut lines = BufReader::new(read).lines();
    loop {
        tokio::select! {
            next = lines.next_line() => match next {
                Ok(Some(l)) => match serde_json::from_str::<FromSession>(&l) {
                    Ok(FromSession::Displayed { id, at_unix_ms }) => core.record(&id, &user.name, herald_proto::pb::DeliveryState::Displayed, at_unix_ms),
                    Ok(FromSession::Dismissed { id, at_unix_ms }) => core.record(&id, &user.name, herald_proto::pb::DeliveryState::Dismissed, at_unix_ms),
                    Ok(FromSession::Ping) => {}
                    Err(_) => tracing::debug!(user = %user.name, "ignoring unknown message from session part"),
                },
                Ok(None) | Err(_) => break,
            },
            Some(msg) = rx.recv() => {
                if !write_msg(&mut write, &msg).await {
                    break;
                }
            }
            _ = shutdown.changed() => break,
        }
    }
    core.sessions.remove(id);
    tracing::info!(user = %user.name, uid, "session part disconnected");
}
