//! `AdminService`: the console's and heraldctl's view of the server. Each
//! handler authenticates the caller, checks grants against the units the call
//! touches, writes the change and its audit entry in one durable batch, and
//! only then answers.

use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use herald_proto::pb;
use herald_proto::pb::admin_service_server::AdminService;
use tonic::{Request, Response, Status};

use crate::convert::{admin_to_pb, audit_to_pb, computer_to_pb, grant_from_pb, unit_to_pb};
use crate::domain::org::Unit;
use crate::domain::perm::{Capability, Grant, Scope, normalize, subtract};
use crate::domain::token::{self, TokenRecord};
use crate::error::{ApiError, ApiResult};
use crate::state::{
    AdminRecord, AuditRecord, Caller, ComputerRecord, SessionRecord, State, new_id, now_ms,
    random_secret, token_hash,
};
use crate::store::{Batch, Table, seq_key};

pub struct AdminApi {
    state: Arc<State>,
    /// Verified against when the name is unknown, so that the time a login
    /// takes does not tell which admin names exist.
    dummy_hash: String,
}

fn respond<T>(r: ApiResult<T>) -> Result<Response<T>, Status> {
    r.map(Response::new).map_err(Status::from)
}

pub const MIN_PASSWORD_CHARS: usize = 10;

fn validate_admin_name(name: &str) -> ApiResult<String> {
    let n = name.trim();
    let ok = !n.is_empty()
        && n.len() <= 64
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(n.to_owned())
    } else {
        Err(ApiError::invalid(
            "name",
            "use 1 to 64 letters, digits, '.', '_', '-' or '@'",
        ))
    }
}

fn validate_password(field: &'static str, pw: &str) -> ApiResult<()> {
    let n = pw.chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err(ApiError::invalid(
            field,
            format!("use at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if n > 1024 {
        return Err(ApiError::invalid(field, "use at most 1024 characters"));
    }
    Ok(())
}

/// argon2id hash (PHC string), computed off the async runtime.
pub async fn hash_password(pw: String) -> ApiResult<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        Argon2::default()
            .hash_password(pw.as_bytes(), &salt)
            .map(|h| h.to_string())
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
    .map_err(|e| ApiError::Internal(format!("password hashing failed: {e}")))
}

async fn verify_password(pw: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .is_ok_and(|h| Argon2::default().verify_password(pw.as_bytes(), &h).is_ok())
    })
    .await
    .unwrap_or(false)
}

impl AdminApi {
    pub fn new(state: Arc<State>) -> Self {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let dummy_hash = Argon2::default()
            .hash_password(random_secret().as_bytes(), &salt)
            .map(|h| h.to_string())
            .unwrap_or_default();
        AdminApi { state, dummy_hash }
    }

    fn load_admin(&self, name: &str) -> ApiResult<AdminRecord> {
        self.state
            .db
            .get(Table::Admins, name)?
            .ok_or_else(|| ApiError::NotFound(format!("no admin named {name:?}")))
    }

    fn token_to_pb(&self, t: &TokenRecord) -> pb::EnrollmentToken {
        pb::EnrollmentToken {
            id: t.id.clone(),
            org_unit_id: t.unit.clone(),
            org_unit_path: self.state.tree().path(&t.unit),
            created_unix_ms: t.created_ms,
            created_by: t.created_by.clone(),
            expires_unix_ms: t.expires_ms,
            max_uses: t.max_uses,
            uses: t.uses,
            revoked: t.revoked,
        }
    }

    fn find_token(&self, id: &str) -> ApiResult<TokenRecord> {
        let id = id.trim();
        if id.is_empty() {
            return Err(ApiError::invalid("id", "token id is missing"));
        }
        self.state
            .db
            .list::<TokenRecord>(Table::Tokens)?
            .into_iter()
            .find(|t| t.id == id)
            .ok_or_else(|| ApiError::NotFound(format!("no enrollment token with id {id:?}")))
    }

    fn load_computer(&self, id: &str) -> ApiResult<ComputerRecord> {
        self.state
            .computer(id.trim())?
            .ok_or_else(|| ApiError::NotFound(format!("no computer with id {id:?}")))
    }

    fn computer_pb(&self, c: &ComputerRecord) -> pb::Computer {
        computer_to_pb(c, &self.state.tree(), self.state.live(&c.id))
    }

    async fn login(&self, req: pb::LoginRequest) -> ApiResult<pb::LoginResponse> {
        let admin: Option<AdminRecord> = self.state.db.get(Table::Admins, req.name.trim())?;
        let hash = admin
            .as_ref()
            .map_or(self.dummy_hash.clone(), |a| a.password_hash.clone());
        let ok = verify_password(req.password, hash).await;
        let Some(admin) = admin.filter(|_| ok) else {
            tracing::info!(name = %req.name, "failed admin login");
            return Err(ApiError::Unauthenticated("wrong name or password".into()));
        };
        let token = random_secret();
        let now = now_ms();
        let expires = now + (self.state.config.admin_session_ttl_secs as i64) * 1000;
        let mut batch = Batch::new();
        batch.put_json(
            Table::Sessions,
            token_hash(&token),
            &SessionRecord {
                admin: admin.name.clone(),
                created_ms: now,
                expires_ms: expires,
            },
        );
        // Expired sessions are swept on login, so the table stays small.
        self.sweep_sessions(&mut batch, now)?;
        self.state.audit(
            &mut batch,
            &admin.name,
            "admin.login",
            &admin.name,
            None,
            "",
        )?;
        self.state.db.commit(batch).await?;
        Ok(pb::LoginResponse {
            session_token: token,
            expires_unix_ms: expires,
            admin: Some(admin_to_pb(&admin)),
        })
    }

    fn sweep_sessions(&self, batch: &mut Batch, now: i64) -> ApiResult<()> {
        for (key, session) in self.state.db.list_keyed::<SessionRecord>(Table::Sessions)? {
            if session.expires_ms <= now {
                batch.delete(Table::Sessions, key);
            }
        }
        Ok(())
    }

    async fn create_unit(
        &self,
        caller: Caller,
        req: pb::CreateOrgUnitRequest,
    ) -> ApiResult<pb::OrgUnit> {
        let _w = self.state.write_lock.lock().await;
        let tree = self.state.tree();
        let parent = req.parent_id.trim();
        tree.get(parent)?;
        self.state
            .grants(&caller, &tree)
            .require(Capability::ManageOrgUnits, parent)?;
        let name = tree.check_create(parent, &req.name)?;
        let unit = Unit {
            id: new_id("u-"),
            parent: Some(parent.to_owned()),
            name,
            created_ms: now_ms(),
        };
        let mut batch = Batch::new();
        batch.put_json(Table::Units, unit.id.clone(), &unit);
        let path = format!("{}/{}", tree.path(parent).trim_end_matches('/'), unit.name);
        self.state.audit(
            &mut batch,
            &caller.name,
            "org_unit.create",
            &unit.id,
            Some(&unit.id),
            format!("created {path}"),
        )?;
        self.state.db.commit(batch).await?;
        self.state.reload_tree()?;
        unit_to_pb(&self.state.tree(), &unit.id)
    }

    async fn rename_unit(
        &self,
        caller: Caller,
        req: pb::RenameOrgUnitRequest,
    ) -> ApiResult<pb::OrgUnit> {
        let _w = self.state.write_lock.lock().await;
        let tree = self.state.tree();
        let mut unit = tree.get(req.id.trim())?.clone();
        self.state
            .grants(&caller, &tree)
            .require(Capability::ManageOrgUnits, &unit.id)?;
        let name = tree.check_rename(&unit.id, &req.name)?;
        let old = tree.path(&unit.id);
        unit.name = name;
        let mut batch = Batch::new();
        batch.put_json(Table::Units, unit.id.clone(), &unit);
        self.state.audit(
            &mut batch,
            &caller.name,
            "org_unit.rename",
            &unit.id,
            Some(&unit.id),
            format!("renamed {old} to {:?}", unit.name),
        )?;
        self.state.db.commit(batch).await?;
        self.state.reload_tree()?;
        unit_to_pb(&self.state.tree(), &unit.id)
    }

    async fn move_unit(
        &self,
        caller: Caller,
        req: pb::MoveOrgUnitRequest,
    ) -> ApiResult<pb::OrgUnit> {
        let _w = self.state.write_lock.lock().await;
        let tree = self.state.tree();
        let mut unit = tree.get(req.id.trim())?.clone();
        let target = req.new_parent_id.trim();
        tree.get(target)?;
        let g = self.state.grants(&caller, &tree);
        g.require(Capability::ManageOrgUnits, &unit.id)?;
        g.require(Capability::ManageOrgUnits, target)?;
        tree.check_move(&unit.id, target)?;
        let old = tree.path(&unit.id);
        unit.parent = Some(target.to_owned());
        let mut batch = Batch::new();
        batch.put_json(Table::Units, unit.id.clone(), &unit);
        self.state.audit(
            &mut batch,
            &caller.name,
            "org_unit.move",
            &unit.id,
            Some(&unit.id),
            format!("moved {old} under {}", tree.path(target)),
        )?;
        self.state.db.commit(batch).await?;
        self.state.reload_tree()?;
        unit_to_pb(&self.state.tree(), &unit.id)
    }

    async fn delete_unit(
        &self,
        caller: Caller,
        req: pb::DeleteOrgUnitRequest,
    ) -> ApiResult<pb::DeleteOrgUnitResponse> {
        let _w = self.state.write_lock.lock().await;
        let tree = self.state.tree();
        let id = req.id.trim();
        tree.get(id)?;
        self.state
            .grants(&caller, &tree)
            .require(Capability::ManageOrgUnits, id)?;
        let now = now_ms();
        let computers = self
            .state
            .db
            .list::<ComputerRecord>(Table::Computers)?
            .iter()
            .filter(|c| c.unit == id && !c.revoked)
            .count();
        let tokens = self
            .state
            .db
            .list::<TokenRecord>(Table::Tokens)?
            .iter()
            .filter(|t| t.unit == id && t.is_active(now))
            .count();
        let admins = self
            .state
            .db
            .list::<AdminRecord>(Table::Admins)?
            .iter()
            .filter(|a| {
                a.grants
                    .iter()
                    .any(|g| matches!(&g.scope, Scope::Units(u) if u.contains(id)))
            })
            .count();
        tree.check_delete(
            id,
            &[
                (computers, "computer"),
                (tokens, "active enrollment token"),
                (admins, "admin granted on it"),
            ],
        )?;
        let path = tree.path(id);
        let mut batch = Batch::new();
        batch.delete(Table::Units, id);
        self.state.audit(
            &mut batch,
            &caller.name,
            "org_unit.delete",
            id,
            Some(id),
            format!("deleted {path}"),
        )?;
        self.state.db.commit(batch).await?;
        self.state.reload_tree()?;
        Ok(pb::DeleteOrgUnitResponse {})
    }

    async fn create_token(
        &self,
        caller: Caller,
        req: pb::CreateEnrollmentTokenRequest,
    ) -> ApiResult<pb::CreateEnrollmentTokenResponse> {
        let tree = self.state.tree();
        let unit = req.org_unit_id.trim();
        tree.get(unit)?;
        self.state
            .grants(&caller, &tree)
            .require(Capability::EnrollAgents, unit)?;
        let cfg = &self.state.config;
        let max_secs = u64::from(cfg.token_max_validity_days) * 86400;
        let valid_for = if req.valid_for_secs == 0 {
            cfg.token_default_validity_secs
        } else {
            req.valid_for_secs
        };
        if valid_for > max_secs {
            return Err(ApiError::invalid(
                "valid_for_secs",
                format!(
                    "at most {} days; create a new token later instead",
                    cfg.token_max_validity_days
                ),
            ));
        }
        let max_uses = if req.max_uses == 0 { 1 } else { req.max_uses };
        if max_uses > 100_000 {
            return Err(ApiError::invalid("max_uses", "at most 100000"));
        }
        let secret = random_secret();
        let hash = token::secret_hash(&secret);
        let now = now_ms();
        let rec = TokenRecord {
            id: token::short_id(&hash),
            hash: hash.clone(),
            unit: unit.to_owned(),
            created_ms: now,
            created_by: caller.name.clone(),
            expires_ms: now + (valid_for as i64) * 1000,
            max_uses,
            uses: 0,
            revoked: false,
        };
        let mut batch = Batch::new();
        batch.put_json(Table::Tokens, hash, &rec);
        self.state.audit(
            &mut batch,
            &caller.name,
            "token.create",
            &rec.id,
            Some(unit),
            format!(
                "for {}, {} use(s), valid {}s",
                tree.path(unit),
                max_uses,
                valid_for
            ),
        )?;
        self.state.db.commit(batch).await?;
        Ok(pb::CreateEnrollmentTokenResponse {
            token: token::format(&self.state.ca.fingerprint(), &secret),
            info: Some(self.token_to_pb(&rec)),
        })
    }

    fn list_tokens(
        &self,
        caller: Caller,
        req: pb::ListEnrollmentTokensRequest,
    ) -> ApiResult<pb::ListEnrollmentTokensResponse> {
        let tree = self.state.tree();
        let g = self.state.grants(&caller, &tree);
        g.require_any(Capability::EnrollAgents)?;
        let now = now_ms();
        let mut tokens: Vec<TokenRecord> = self
            .state
            .db
            .list::<TokenRecord>(Table::Tokens)?
            .into_iter()
            .filter(|t| g.allows(Capability::EnrollAgents, &t.unit))
            .filter(|t| req.include_inactive || t.is_active(now))
            .collect();
        tokens.sort_by_key(|t| std::cmp::Reverse(t.created_ms));
        Ok(pb::ListEnrollmentTokensResponse {
            tokens: tokens.iter().map(|t| self.token_to_pb(t)).collect(),
        })
    }

    async fn revoke_token(
        &self,
        caller: Caller,
        req: pb::RevokeEnrollmentTokenRequest,
    ) -> ApiResult<pb::EnrollmentToken> {
        let _w = self.state.write_lock.lock().await;
        let mut t = self.find_token(&req.id)?;
        let tree = self.state.tree();
        self.state
            .grants(&caller, &tree)
            .require(Capability::EnrollAgents, &t.unit)?;
        if !t.revoked {
            t.revoked = true;
            let mut batch = Batch::new();
            batch.put_json(Table::Tokens, t.hash.clone(), &t);
            self.state.audit(
                &mut batch,
                &caller.name,
                "token.revoke",
                &t.id,
                Some(&t.unit),
                "",
            )?;
            self.state.db.commit(batch).await?;
        }
        Ok(self.token_to_pb(&t))
    }

    fn list_computers(
        &self,
        caller: Caller,
        req: pb::ListComputersRequest,
    ) -> ApiResult<pb::ListComputersResponse> {
        let tree = self.state.tree();
        let g = self.state.grants(&caller, &tree);
        let visible = |unit: &str| {
            g.allows(Capability::ManageComputers, unit) || g.allows(Capability::ViewReports, unit)
        };
        let within = req.org_unit_id.trim();
        if within.is_empty() {
            if !g.has_any(Capability::ManageComputers) && !g.has_any(Capability::ViewReports) {
                g.require_any(Capability::ManageComputers)?;
            }
        } else {
            tree.get(within)?;
            if !visible(within) {
                g.require(Capability::ManageComputers, within)?;
            }
        }
        let computers = self
            .state
            .computers()?
            .into_iter()
            .filter(|c| req.include_revoked || !c.revoked)
            .filter(|c| within.is_empty() || tree.is_within(&c.unit, within))
            .filter(|c| visible(&c.unit))
            .map(|c| self.computer_pb(&c))
            .collect();
        Ok(pb::ListComputersResponse { computers })
    }

    fn get_computer(&self, caller: Caller, req: pb::GetComputerRequest) -> ApiResult<pb::Computer> {
        let c = self.load_computer(&req.id)?;
        let tree = self.state.tree();
        let g = self.state.grants(&caller, &tree);
        if !g.allows(Capability::ViewReports, &c.unit) {
            g.require(Capability::ManageComputers, &c.unit)?;
        }
        Ok(self.computer_pb(&c))
    }

    async fn move_computer(
        &self,
        caller: Caller,
        req: pb::MoveComputerRequest,
    ) -> ApiResult<pb::Computer> {
        let _w = self.state.write_lock.lock().await;
        let mut c = self.load_computer(&req.id)?;
        let tree = self.state.tree();
        let target = req.org_unit_id.trim();
        tree.get(target)?;
        let g = self.state.grants(&caller, &tree);
        g.require(Capability::ManageComputers, &c.unit)?;
        g.require(Capability::ManageComputers, target)?;
        if c.revoked {
            return Err(ApiError::invalid(
                "id",
                "this computer is revoked; enroll it again instead of moving it",
            ));
        }
        let from = tree.path(&c.unit);
        c.unit = target.to_owned();
        let mut batch = Batch::new();
        batch.put_json(Table::Computers, c.id.clone(), &c);
        self.state.audit(
            &mut batch,
            &caller.name,
            "computer.move",
            &c.id,
            Some(target),
            format!("{} moved from {from} to {}", c.hostname, tree.path(target)),
        )?;
        self.state.db.commit(batch).await?;
        self.state.computer_placed(&c.id, &c.unit);
        Ok(self.computer_pb(&c))
    }

    async fn revoke_computer(
        &self,
        caller: Caller,
        req: pb::RevokeComputerRequest,
    ) -> ApiResult<pb::Computer> {
        let _w = self.state.write_lock.lock().await;
        let mut c = self.load_computer(&req.id)?;
        let tree = self.state.tree();
        self.state
            .grants(&caller, &tree)
            .require(Capability::ManageComputers, &c.unit)?;
        if !c.revoked {
            c.revoked = true;
            c.revoked_ms = Some(now_ms());
            let mut batch = Batch::new();
            batch.put_json(Table::Computers, c.id.clone(), &c);
            self.state.audit(
                &mut batch,
                &caller.name,
                "computer.revoke",
                &c.id,
                Some(&c.unit),
                format!("revoked {}", c.hostname),
            )?;
            self.state.db.commit(batch).await?;
        }
        self.state.computer_revoked(&c.id);
        if let Ok(mut set) = self.state.revoked.write() {
            set.insert(c.cert_serial.clone());
        }
        self.state.kill_session(
            &c.id,
            Status::permission_denied("this computer was revoked by an admin"),
        );
        Ok(self.computer_pb(&c))
    }

    fn check_new_grants(&self, caller: &Caller, grants: Vec<pb::Grant>) -> ApiResult<Vec<Grant>> {
        let tree = self.state.tree();
        let g = self.state.grants(caller, &tree);
        let mut out = Vec::new();
        for pg in grants {
            let grant = grant_from_pb(Some(pg), &tree)?;
            g.may_grant(&grant)?;
            out.push(grant);
        }
        Ok(normalize(&out, &tree))
    }

    async fn create_admin(
        &self,
        caller: Caller,
        req: pb::CreateAdminRequest,
    ) -> ApiResult<pb::AdminInfo> {
        let tree = self.state.tree();
        self.state
            .grants(&caller, &tree)
            .require_any(Capability::ManageAdmins)?;
        let name = validate_admin_name(&req.name)?;
        validate_password("password", &req.password)?;
        let grants = self.check_new_grants(&caller, req.grants)?;
        let hash = hash_password(req.password).await?;
        let _w = self.state.write_lock.lock().await;
        if self
            .state
            .db
            .get::<AdminRecord>(Table::Admins, &name)?
            .is_some()
        {
            return Err(ApiError::AlreadyExists(format!(
                "an admin named {name:?} already exists"
            )));
        }
        let rec = AdminRecord {
            name: name.clone(),
            password_hash: hash,
            grants,
            created_ms: now_ms(),
            created_by: caller.name.clone(),
        };
        let mut batch = Batch::new();
        batch.put_json(Table::Admins, name.clone(), &rec);
        self.state.audit(
            &mut batch,
            &caller.name,
            "admin.create",
            &name,
            None,
            describe_grants(&rec.grants, &tree),
        )?;
        self.state.db.commit(batch).await?;
        Ok(admin_to_pb(&rec))
    }

    async fn delete_admin(
        &self,
        caller: Caller,
        req: pb::DeleteAdminRequest,
    ) -> ApiResult<pb::DeleteAdminResponse> {
        let _w = self.state.write_lock.lock().await;
        let target = self.load_admin(req.name.trim())?;
        if target.name == caller.name {
            return Err(ApiError::invalid(
                "name",
                "you cannot delete your own account",
            ));
        }
        let tree = self.state.tree();
        self.state
            .grants(&caller, &tree)
            .may_manage_admin(&target.name, &target.grants)?;
        let mut batch = Batch::new();
        batch.delete(Table::Admins, target.name.clone());
        for (key, s) in self.state.db.list_keyed::<SessionRecord>(Table::Sessions)? {
            if s.admin == target.name {
                batch.delete(Table::Sessions, key);
            }
        }
        self.state.audit(
            &mut batch,
            &caller.name,
            "admin.delete",
            &target.name,
            None,
            "",
        )?;
        self.state.db.commit(batch).await?;
        Ok(pb::DeleteAdminResponse {})
    }

    async fn reset_password(
        &self,
        caller: Caller,
        req: pb::ResetAdminPasswordRequest,
    ) -> ApiResult<pb::ResetAdminPasswordResponse> {
        validate_password("new_password", &req.new_password)?;
        let hash = hash_password(req.new_password).await?;
        let _w = self.state.write_lock.lock().await;
        let mut target = self.load_admin(req.name.trim())?;
        let tree = self.state.tree();
        self.state
            .grants(&caller, &tree)
            .may_manage_admin(&target.name, &target.grants)?;
        target.password_hash = hash;
        let mut batch = Batch::new();
        batch.put_json(Table::Admins, target.name.clone(), &target);
        // A reset ends the admin's sessions everywhere.
        for (key, s) in self.state.db.list_keyed::<SessionRecord>(Table::Sessions)? {
            if s.admin == target.name && key != caller.session_hash {
                batch.delete(Table::Sessions, key);
            }
        }
        self.state.audit(
            &mut batch,
            &caller.name,
            "admin.reset_password",
            &target.name,
            None,
            "",
        )?;
        self.state.db.commit(batch).await?;
        Ok(pb::ResetAdminPasswordResponse {})
    }

    async fn change_grant(
        &self,
        caller: Caller,
        name: &str,
        grant: Option<pb::Grant>,
        add: bool,
    ) -> ApiResult<pb::AdminInfo> {
        let _w = self.state.write_lock.lock().await;
        let tree = self.state.tree();
        let mut target = self.load_admin(name.trim())?;
        let grant = grant_from_pb(grant, &tree)?;
        let g = self.state.grants(&caller, &tree);
        let action = if add {
            g.may_grant(&grant)?;
            let mut all = target.grants.clone();
            all.push(grant.clone());
            target.grants = normalize(&all, &tree);
            "admin.grant"
        } else {
            g.may_revoke(&grant)?;
            target.grants = subtract(&target.grants, &grant);
            "admin.revoke_grant"
        };
        let unit = match &grant.scope {
            Scope::Units(u) if u.len() == 1 => u.iter().next().cloned(),
            _ => None,
        };
        let mut batch = Batch::new();
        batch.put_json(Table::Admins, target.name.clone(), &target);
        self.state.audit(
            &mut batch,
            &caller.name,
            action,
            &target.name,
            unit.as_deref(),
            describe_grants(std::slice::from_ref(&grant), &tree),
        )?;
        self.state.db.commit(batch).await?;
        Ok(admin_to_pb(&target))
    }

    fn list_audit(
        &self,
        caller: Caller,
        req: pb::ListAuditLogRequest,
    ) -> ApiResult<pb::ListAuditLogResponse> {
        let tree = self.state.tree();
        let g = self.state.grants(&caller, &tree);
        g.require_any(Capability::ViewAuditLog)?;
        let org_wide = g.has_org(Capability::ViewAuditLog);
        let limit = match req.limit {
            0 => 100,
            n => n.min(1000) as usize,
        };
        let unit_filter = req.org_unit_id.trim();
        if !unit_filter.is_empty() {
            tree.get(unit_filter)?;
        }
        let mut before = (req.before_seq > 0).then(|| seq_key(req.before_seq));
        let mut out = Vec::new();
        let mut scanned = 0usize;
        'pages: loop {
            let page: Vec<AuditRecord> =
                self.state
                    .db
                    .list_rev(Table::Audit, before.as_deref(), 512)?;
            if page.is_empty() {
                break;
            }
            before = page.last().map(|r| seq_key(r.seq));
            for r in page {
                scanned += 1;
                if req.since_unix_ms > 0 && r.at_ms < req.since_unix_ms {
                    break 'pages;
                }
                let visible = org_wide
                    || r.unit
                        .as_deref()
                        .is_some_and(|u| g.allows(Capability::ViewAuditLog, u));
                let matches = visible
                    && (req.until_unix_ms == 0 || r.at_ms <= req.until_unix_ms)
                    && (req.admin.is_empty() || r.admin == req.admin)
                    && (req.action.is_empty() || r.action.starts_with(&req.action))
                    && (unit_filter.is_empty()
                        || r.unit
                            .as_deref()
                            .is_some_and(|u| tree.is_within(u, unit_filter)));
                if matches {
                    out.push(audit_to_pb(&r));
                    if out.len() >= limit {
                        break 'pages;
                    }
                }
            }
            if scanned > 200_000 {
                break;
            }
        }
        Ok(pb::ListAuditLogResponse { entries: out })
    }
}

fn describe_grants(grants: &[Grant], tree: &crate::domain::org::OrgTree) -> String {
    grants
        .iter()
        .map(|g| match &g.scope {
            Scope::Organisation => format!("{} on the whole organisation", g.capability),
            Scope::Units(u) => format!(
                "{} on {}",
                g.capability,
                u.iter()
                    .map(|id| tree.path(id))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn login(
        &self,
        req: Request<pb::LoginRequest>,
    ) -> Result<Response<pb::LoginResponse>, Status> {
        respond(AdminApi::login(self, req.into_inner()).await)
    }

    async fn logout(
        &self,
        req: Request<pb::LogoutRequest>,
    ) -> Result<Response<pb::LogoutResponse>, Status> {
        let caller = self.state.caller(&req)?;
        let mut batch = Batch::new();
        batch.delete(Table::Sessions, caller.session_hash.clone());
        respond(
            async {
                self.state.audit(
                    &mut batch,
                    &caller.name,
                    "admin.logout",
                    &caller.name,
                    None,
                    "",
                )?;
                self.state.db.commit(batch).await?;
                Ok(pb::LogoutResponse {})
            }
            .await,
        )
    }

    async fn who_am_i(
        &self,
        req: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::AdminInfo>, Status> {
        let caller = self.state.caller(&req)?;
        respond(self.load_admin(&caller.name).map(|a| admin_to_pb(&a)))
    }

    async fn change_own_password(
        &self,
        req: Request<pb::ChangeOwnPasswordRequest>,
    ) -> Result<Response<pb::ChangeOwnPasswordResponse>, Status> {
        let caller = self.state.caller(&req)?;
        let req = req.into_inner();
        respond(
            async {
                validate_password("new_password", &req.new_password)?;
                let admin = self.load_admin(&caller.name)?;
                if !verify_password(req.old_password, admin.password_hash.clone()).await {
                    return Err(ApiError::PermissionDenied(
                        "the old password is wrong".into(),
                    ));
                }
                let hash = hash_password(req.new_password).await?;
                let _w = self.state.write_lock.lock().await;
                let mut admin = self.load_admin(&caller.name)?;
                admin.password_hash = hash;
                let mut batch = Batch::new();
                batch.put_json(Table::Admins, admin.name.clone(), &admin);
                self.state.audit(
                    &mut batch,
                    &caller.name,
                    "admin.change_password",
                    &caller.name,
                    None,
                    "",
                )?;
                self.state.db.commit(batch).await?;
                Ok(pb::ChangeOwnPasswordResponse {})
            }
            .await,
        )
    }

    async fn list_org_units(
        &self,
        req: Request<pb::ListOrgUnitsRequest>,
    ) -> Result<Response<pb::ListOrgUnitsResponse>, Status> {
        self.state.caller(&req)?;
        let tree = self.state.tree();
        respond(
            tree.ordered()
                .iter()
                .map(|u| unit_to_pb(&tree, &u.id))
                .collect::<ApiResult<Vec<_>>>()
                .map(|units| pb::ListOrgUnitsResponse { units }),
        )
    }

    async fn create_org_unit(
        &self,
        req: Request<pb::CreateOrgUnitRequest>,
    ) -> Result<Response<pb::OrgUnit>, Status> {
        let caller = self.state.caller(&req)?;
        respond(self.create_unit(caller, req.into_inner()).await)
    }

    async fn rename_org_unit(
        &self,
        req: Request<pb::RenameOrgUnitRequest>,
    ) -> Result<Response<pb::OrgUnit>, Status> {
        let caller = self.state.caller(&req)?;
        respond(self.rename_unit(caller, req.into_inner()).await)
    }

    async fn move_org_unit(
        &self,
        req: Request<pb::MoveOrgUnitRequest>,
    ) -> Result<Response<pb::OrgUnit>, Status> {
        let caller = self.state.caller(&req)?;
        respond(self.move_unit(caller, req.into_inner()).await)
    }

    async fn delete_org_unit(
        &self,
        req: Request<pb::DeleteOrgUnitRequest>,
    ) -> Result<Response<pb::DeleteOrgUnitResponse>, Status> {
        let caller = self.state.caller(&req)?;
        respond(self.delete_unit(caller, req.into_inner()).await)
    }

    async fn create_enrollment_token(
        &self,
        req: Request<pb::CreateEnrollmentTokenRequest>,
    ) -> Result<Response<pb::CreateEnrollmentTokenResponse>, Status> {
        let caller = self.state.caller(&req)?;
        respond(self.create_token(caller, req.into_inner()).await)
    }

    async fn list_enrollment_tokens(
        &self,
        req: Request<pb::ListEnrollmentTokensRequest>,
    ) -> Result<Response<pb::ListEnrollmentTokensResponse>, Status> {
        let caller = self.state.caller(&req)?;
        respond(self.list_tokens(caller, req.into_inner()))
    }

    async fn revoke_enrollment_token(
        &self,
        req: Request<pb::RevokeEnrollmentTokenRequest>,
    ) -> Result<Response<pb::EnrollmentToken>, Status> {
        let caller = self.state.caller(&req)?;
        respond(self.revoke_token(caller, req.into_inner()).await)
    }

    async fn list_computers(
        &self,
        req: Request<pb::ListComputersRequest>,
    ) -> Result<Response<pb::ListComputersResponse>, Status> {
        let caller = self.state.caller(&req)?;
        respond(AdminApi::list_computers(self, caller, req.into_inner()))
    }

    async fn get_computer(
        &self,
        req: Request<pb::GetComputerRequest>,
    ) -> Result<Response<pb::Computer>, Status> {
        let caller = self.state.caller(&req)?;
        respond(AdminApi::get_computer(self, caller, req.into_inner()))
    }

    async fn move_computer(
        &self,
        req: Request<pb::MoveComputerRequest>,
    ) -> Result<Response<pb::Computer>, Status> {
        let caller = self.state.caller(&req)?;
        respond(AdminApi::move_computer(self, caller, req.into_inner()).await)
    }

    async fn revoke_computer(
        &self,
        req: Request<pb::RevokeComputerRequest>,
    ) -> Result<Response<pb::Computer>, Status> {
        let caller = self.state.caller(&req)?;
        respond(AdminApi::revoke_computer(self, caller, req.into_inner()).await)
    }

    async fn list_admins(
        &self,
        req: Request<pb::ListAdminsRequest>,
    ) -> Result<Response<pb::ListAdminsResponse>, Status> {
        let caller = self.state.caller(&req)?;
        let tree = self.state.tree();
        respond(
            self.state
                .grants(&caller, &tree)
                .require_any(Capability::ManageAdmins)
                .map_err(ApiError::from)
                .and_then(|()| Ok(self.state.db.list::<AdminRecord>(Table::Admins)?))
                .map(|admins| pb::ListAdminsResponse {
                    admins: admins.iter().map(admin_to_pb).collect(),
                }),
        )
    }

    async fn create_admin(
        &self,
        req: Request<pb::CreateAdminRequest>,
    ) -> Result<Response<pb::AdminInfo>, Status> {
        let caller = self.state.caller(&req)?;
        respond(AdminApi::create_admin(self, caller, req.into_inner()).await)
    }

    async fn delete_admin(
        &self,
        req: Request<pb::DeleteAdminRequest>,
    ) -> Result<Response<pb::DeleteAdminResponse>, Status> {
        let caller = self.state.caller(&req)?;
        respond(AdminApi::delete_admin(self, caller, req.into_inner()).await)
    }

    async fn reset_admin_password(
        &self,
        req: Request<pb::ResetAdminPasswordRequest>,
    ) -> Result<Response<pb::ResetAdminPasswordResponse>, Status> {
        let caller = self.state.caller(&req)?;
        respond(self.reset_password(caller, req.into_inner()).await)
    }

    async fn add_grant(
        &self,
        req: Request<pb::AddGrantRequest>,
    ) -> Result<Response<pb::AdminInfo>, Status> {
        let caller = self.state.caller(&req)?;
        let r = req.into_inner();
        respond(self.change_grant(caller, &r.name, r.grant, true).await)
    }

    async fn revoke_grant(
        &self,
        req: Request<pb::RevokeGrantRequest>,
    ) -> Result<Response<pb::AdminInfo>, Status> {
        let caller = self.state.caller(&req)?;
        let r = req.into_inner();
        respond(self.change_grant(caller, &r.name, r.grant, false).await)
    }

    async fn send_alert(
        &self,
        req: Request<pb::SendAlertRequest>,
    ) -> Result<Response<pb::SendAlertResponse>, Status> {
        let caller = self.state.caller(&req)?;
        respond(crate::alerts::send(&self.state, &caller, req.into_inner()).await)
    }

    async fn preview_alert_audience(
        &self,
        req: Request<pb::PreviewAlertAudienceRequest>,
    ) -> Result<Response<pb::PreviewAlertAudienceResponse>, Status> {
        let caller = self.state.caller(&req)?;
        respond(crate::alerts::preview(&self.state, &caller, req.get_ref()))
    }

    async fn list_alerts(
        &self,
        req: Request<pb::ListAlertsRequest>,
    ) -> Result<Response<pb::ListAlertsResponse>, Status> {
        let caller = self.state.caller(&req)?;
        respond(crate::alerts::list(&self.state, &caller, req.get_ref()))
    }

    async fn get_alert_status(
        &self,
        req: Request<pb::GetAlertStatusRequest>,
    ) -> Result<Response<pb::AlertStatus>, Status> {
        let caller = self.state.caller(&req)?;
        respond(crate::alerts::status(&self.state, &caller, req.get_ref()))
    }

    type WatchAlertStream = crate::alerts::WatchStream;
    type WatchPresenceStream = crate::presence::WatchStream;
    type WatchAlertListStream = crate::alerts::AlertListStream;

    async fn watch_alert_list(
        &self,
        req: Request<pb::WatchAlertListRequest>,
    ) -> Result<Response<Self::WatchAlertListStream>, Status> {
        let caller = self.state.caller(&req)?;
        respond(crate::alerts::watch_list(self.state.clone(), &caller))
    }

    async fn watch_presence(
        &self,
        req: Request<pb::WatchPresenceRequest>,
    ) -> Result<Response<Self::WatchPresenceStream>, Status> {
        let caller = self.state.caller(&req)?;
        respond(crate::presence::watch(self.state.clone(), caller))
    }

    async fn watch_alert(
        &self,
        req: Request<pb::GetAlertStatusRequest>,
    ) -> Result<Response<Self::WatchAlertStream>, Status> {
        let caller = self.state.caller(&req)?;
        respond(crate::alerts::watch(
            self.state.clone(),
            &caller,
            req.into_inner(),
        ))
    }

    async fn cancel_alert(
        &self,
        req: Request<pb::CancelAlertRequest>,
    ) -> Result<Response<pb::AlertSummary>, Status> {
        let caller = self.state.caller(&req)?;
        respond(crate::alerts::cancel(&self.state, &caller, req.get_ref()).await)
    }

    async fn list_audit_log(
        &self,
        req: Request<pb::ListAuditLogRequest>,
    ) -> Result<Response<pb::ListAuditLogResponse>, Status> {
        let caller = self.state.caller(&req)?;
        respond(self.list_audit(caller, req.into_inner()))
    }
}
