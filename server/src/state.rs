//! The server's shared state: store, CA, the cached org tree, live agent
//! sessions, and the helpers every handler uses (admin authentication,
//! audit entries).

use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tonic::{Request, Status};

use crate::ca::Ca;
use crate::config::Config;
use crate::domain::UnixMs;
use crate::domain::org::{OrgTree, Unit, UnitId};
use crate::domain::perm::{Grant, Grants};
use crate::error::{ApiError, ApiResult};
use crate::net::{ConnInfo, RevokedSerials};
use crate::store::{Batch, Db, Table, seq_key};

pub fn now_ms() -> UnixMs {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as UnixMs)
        .unwrap_or(0)
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AdminRecord {
    pub name: String,
    /// argon2id PHC string.
    pub password_hash: String,
    pub grants: Vec<Grant>,
    pub created_ms: UnixMs,
    pub created_by: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionRecord {
    pub admin: String,
    pub created_ms: UnixMs,
    pub expires_ms: UnixMs,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ComputerRecord {
    pub id: String,
    pub unit: UnitId,
    pub hostname: String,
    pub os: String,
    pub agent_version: String,
    pub enrolled_ms: UnixMs,
    pub enrolled_with_token: String,
    pub cert_serial: String,
    pub cert_not_after_ms: UnixMs,
    pub revoked: bool,
    #[serde(default)]
    pub revoked_ms: Option<UnixMs>,
    pub last_seen_ms: UnixMs,
    #[serde(default)]
    pub users: Vec<String>,
}

/// What an agent last reported; stored on its own (see `Table::Presence`)
/// and laid over the computer record when it is read.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PresenceRecord {
    pub hostname: String,
    pub os: String,
    pub agent_version: String,
    pub users: Vec<String>,
    pub last_seen_ms: UnixMs,
}

impl PresenceRecord {
    fn apply_to(self, c: &mut ComputerRecord) {
        c.hostname = self.hostname;
        c.os = self.os;
        c.agent_version = self.agent_version;
        c.users = self.users;
        c.last_seen_ms = self.last_seen_ms;
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuditRecord {
    pub seq: u64,
    pub at_ms: UnixMs,
    pub admin: String,
    pub action: String,
    pub target: String,
    pub unit: Option<UnitId>,
    pub details: String,
}

/// Which unit each enrolled, unrevoked computer is in, kept in memory so
/// that resolving an alert's audience or counting presence does not read
/// every computer record. Changed only after the store committed the change
/// (enroll, move, revoke).
#[derive(Default)]
pub struct Roster {
    units: RwLock<std::collections::HashMap<String, UnitId>>,
}

impl Roster {
    pub fn load(db: &Db) -> ApiResult<Roster> {
        let units = db
            .list::<ComputerRecord>(Table::Computers)?
            .into_iter()
            .filter(|c| !c.revoked)
            .map(|c| (c.id, c.unit))
            .collect();
        Ok(Roster {
            units: RwLock::new(units),
        })
    }

    fn set(&self, computer: &str, unit: &str) {
        let mut m = self
            .units
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        m.insert(computer.to_owned(), unit.to_owned());
    }

    fn remove(&self, computer: &str) {
        let mut m = self
            .units
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        m.remove(computer);
    }

    /// Every unrevoked computer with its unit.
    pub fn all(&self) -> Vec<(String, UnitId)> {
        self.units
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(c, u)| (c.clone(), u.clone()))
            .collect()
    }
}

/// The authenticated admin behind a request.
#[derive(Clone, Debug)]
pub struct Caller {
    pub name: String,
    pub grants: Vec<Grant>,
    pub session_hash: String,
}

pub struct State {
    pub db: Db,
    pub ca: Ca,
    pub config: Config,
    /// Serialises read-check-write sequences of admin changes and
    /// enrollments on this node.
    pub write_lock: tokio::sync::Mutex<()>,
    tree: RwLock<Arc<OrgTree>>,
    pub hub: crate::fanout::Hub,
    pub receipts: crate::alerts::ReceiptWriter,
    /// Delivery states of the alerts that have not expired.
    pub book: crate::ledger::Book,
    pub roster: Roster,
    pub revoked: RevokedSerials,
    pub shutdown: watch::Receiver<bool>,
}

impl State {
    pub fn new(
        db: Db,
        ca: Ca,
        config: Config,
        revoked: RevokedSerials,
        shutdown: watch::Receiver<bool>,
    ) -> ApiResult<Arc<Self>> {
        let tree = OrgTree::new(db.list::<Unit>(Table::Units)?)?;
        let book = crate::ledger::Book::load(&db, now_ms())?;
        let roster = Roster::load(&db)?;
        Ok(Arc::new_cyclic(|weak| State {
            db,
            ca,
            config,
            write_lock: tokio::sync::Mutex::new(()),
            tree: RwLock::new(Arc::new(tree)),
            hub: crate::fanout::Hub::default(),
            receipts: crate::alerts::ReceiptWriter::start(weak.clone()).0,
            book,
            roster,
            revoked,
            shutdown,
        }))
    }

    pub fn tree(&self) -> Arc<OrgTree> {
        match self.tree.read() {
            Ok(t) => t.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Rebuilds the cached tree from the store (after a unit change).
    pub fn reload_tree(&self) -> ApiResult<()> {
        let tree = Arc::new(OrgTree::new(self.db.list::<Unit>(Table::Units)?)?);
        match self.tree.write() {
            Ok(mut t) => *t = tree,
            Err(poisoned) => *poisoned.into_inner() = tree,
        }
        // Unit names and paths in presence summaries changed.
        self.hub.presence_changed();
        Ok(())
    }

    /// A computer with what its agent last reported.
    pub fn computer(&self, id: &str) -> ApiResult<Option<ComputerRecord>> {
        let Some(mut c) = self.db.get::<ComputerRecord>(Table::Computers, id)? else {
            return Ok(None);
        };
        if let Some(p) = self.db.get::<PresenceRecord>(Table::Presence, id)? {
            p.apply_to(&mut c);
        }
        Ok(Some(c))
    }

    /// Every computer (revoked ones too) with what its agent last reported.
    pub fn computers(&self) -> ApiResult<Vec<ComputerRecord>> {
        let mut presence: std::collections::HashMap<String, PresenceRecord> = self
            .db
            .list_keyed::<PresenceRecord>(Table::Presence)?
            .into_iter()
            .collect();
        let mut computers = self.db.list::<ComputerRecord>(Table::Computers)?;
        for c in &mut computers {
            if let Some(p) = presence.remove(&c.id) {
                p.apply_to(c);
            }
        }
        Ok(computers)
    }

    /// After a committed enrollment or move: `computer` is now in `unit`.
    pub fn computer_placed(&self, computer: &str, unit: &str) {
        self.roster.set(computer, unit);
        self.hub.presence_changed();
    }

    /// After a committed revocation: `computer` no longer counts anywhere.
    pub fn computer_revoked(&self, computer: &str) {
        self.roster.remove(computer);
        self.hub.presence_changed();
    }

    pub fn is_online(&self, computer: &str) -> bool {
        self.hub.is_online(computer)
    }

    pub fn live(&self, computer: &str) -> Option<(Vec<String>, UnixMs)> {
        self.hub.live(computer)
    }

    pub fn kill_session(&self, computer: &str, status: Status) {
        self.hub.kill(computer, status);
    }

    /// Authenticates the admin session token in the request metadata.
    pub fn caller<T>(&self, req: &Request<T>) -> ApiResult<Caller> {
        let header = req
            .metadata()
            .get(herald_proto::AUTHORIZATION)
            .ok_or_else(|| ApiError::Unauthenticated("not logged in: log in first".into()))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::Unauthenticated(
                    "malformed authorization header: expected \"Bearer <token>\"".into(),
                )
            })?;
        self.caller_by_session(&token_hash(token))
    }

    /// The admin behind a stored session (by the token's hash), checked
    /// again: long-lived streams use it to notice logouts and grant changes.
    pub fn caller_by_session(&self, hash: &str) -> ApiResult<Caller> {
        let session: SessionRecord = self.db.get(Table::Sessions, hash)?.ok_or_else(|| {
            ApiError::Unauthenticated("session unknown or logged out: log in again".into())
        })?;
        if session.expires_ms <= now_ms() {
            return Err(ApiError::Unauthenticated(
                "session expired: log in again".into(),
            ));
        }
        let admin: AdminRecord = self.db.get(Table::Admins, &session.admin)?.ok_or_else(|| {
            ApiError::Unauthenticated("this admin account no longer exists".into())
        })?;
        Ok(Caller {
            name: admin.name,
            grants: admin.grants,
            session_hash: hash.to_owned(),
        })
    }

    /// Adds an audit entry for `caller`'s action to `batch`.
    pub fn audit(
        &self,
        batch: &mut Batch,
        admin: &str,
        action: &str,
        target: &str,
        unit: Option<&str>,
        details: impl Into<String>,
    ) -> ApiResult<()> {
        let seq = self.db.next_id()?;
        let rec = AuditRecord {
            seq,
            at_ms: now_ms(),
            admin: admin.to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            unit: unit.map(str::to_owned),
            details: details.into(),
        };
        batch.put_json(Table::Audit, seq_key(seq), &rec);
        Ok(())
    }

    /// The computer behind an agent RPC, from its client certificate alone.
    pub fn agent_identity<T>(&self, req: &Request<T>) -> Result<ComputerRecord, Status> {
        let info = req.extensions().get::<ConnInfo>();
        self.computer_of_peer(info.and_then(|i| i.peer.as_ref()))
    }

    /// The computer a connection's client certificate names, if it may
    /// still act as that computer.
    pub fn computer_of_peer(
        &self,
        peer: Option<&crate::ca::PeerIdentity>,
    ) -> Result<ComputerRecord, Status> {
        let Some(peer) = peer else {
            return Err(Status::unauthenticated(
                "a client certificate is required: enroll this computer first (herald-agent enroll)",
            ));
        };
        let rec: Option<ComputerRecord> = self
            .db
            .get(Table::Computers, &peer.computer_id)
            .map_err(ApiError::from)?;
        let Some(rec) = rec else {
            return Err(Status::unauthenticated(
                "this computer is not known to the server: enroll it again",
            ));
        };
        if rec.revoked {
            return Err(Status::permission_denied(
                "this computer was revoked by an admin: enroll it again with a new token",
            ));
        }
        if rec.cert_serial != peer.serial_hex {
            return Err(Status::unauthenticated(
                "this certificate was replaced by a newer enrollment: use the newest state dir or enroll again",
            ));
        }
        Ok(rec)
    }

    pub fn grants<'a>(&self, caller: &'a Caller, tree: &'a OrgTree) -> Grants<'a> {
        Grants::new(&caller.grants, tree)
    }
}

/// Session tokens are stored only as their SHA-256.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// 32 random bytes, URL-safe base64: session tokens and token secrets.
pub fn random_secret() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `prefix` + 16 random hex digits.
pub fn new_id(prefix: &str) -> String {
    let bytes: [u8; 8] = rand::random();
    format!("{prefix}{}", hex::encode(bytes))
}
