//! `herald-server init`: a new data dir with its CA, server certificate, store
//! and bootstrap admin. Refuses to touch a data dir that already has any of
//! them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::ca::{Ca, CaPaths};
use crate::domain::org::Unit;
use crate::domain::perm::{Capability, Grant};
use crate::state::{AdminRecord, AuditRecord, new_id, now_ms};
use crate::store::{Batch, Db, SledStore, Table, seq_key};
use crate::{ServerError, store_dir};

#[derive(Debug, Clone)]
pub struct InitOptions {
    pub data_dir: PathBuf,
    /// Extra DNS names / IPs for the server certificate.
    pub names: Vec<String>,
    pub org_name: String,
    pub admin_name: String,
    /// `None` generates one.
    pub admin_password: Option<String>,
}

#[derive(Debug, Clone)]
pub struct InitReport {
    pub ca_fingerprint: String,
    pub ca_file: PathBuf,
    pub admin_name: String,
    /// Set when the password was generated (to be shown once).
    pub generated_password: Option<String>,
}

pub async fn init(opts: InitOptions) -> Result<InitReport, ServerError> {
    let err = |e: &dyn std::fmt::Display| ServerError::Setup(e.to_string());
    let paths = CaPaths::new(&opts.data_dir);
    for existing in [paths.dir.clone(), store_dir(&opts.data_dir)] {
        if existing.exists() {
            return Err(ServerError::Setup(format!(
                "{} already holds a Herald server ({} exists); nothing was changed",
                opts.data_dir.display(),
                existing.display()
            )));
        }
    }
    let (password, generated) = match opts.admin_password.clone() {
        Some(p) if p.chars().count() >= crate::admin::MIN_PASSWORD_CHARS => (p, None),
        Some(_) => {
            return Err(ServerError::Setup(format!(
                "the bootstrap password must have at least {} characters",
                crate::admin::MIN_PASSWORD_CHARS
            )));
        }
        None => {
            let p = generate_password();
            (p.clone(), Some(p))
        }
    };
    let org_name = crate::domain::org::validate_name(&opts.org_name).map_err(|e| err(&e))?;
    std::fs::create_dir_all(&opts.data_dir)
        .map_err(|e| err(&format!("cannot create {}: {e}", opts.data_dir.display())))?;
    restrict(&opts.data_dir);
    let ca = Ca::create(
        &paths,
        &org_name,
        &opts.names,
        time::OffsetDateTime::now_utc(),
    )
    .map_err(|e| err(&e))?;
    let db =
        Db::new(SledStore::open(&store_dir(&opts.data_dir), Duration::ZERO).map_err(|e| err(&e))?);
    let now = now_ms();
    let root = Unit {
        id: new_id("u-"),
        parent: None,
        name: org_name.clone(),
        created_ms: now,
    };
    let hash = crate::admin::hash_password(password)
        .await
        .map_err(|e| err(&e))?;
    let admin = AdminRecord {
        name: opts.admin_name.clone(),
        password_hash: hash,
        grants: Capability::ALL.iter().map(|c| Grant::org(*c)).collect(),
        created_ms: now,
        created_by: "herald-server init".into(),
    };
    let seq = db.next_id().map_err(|e| err(&e))?;
    let mut batch = Batch::new();
    batch.put_json(Table::Units, root.id.clone(), &root);
    batch.put_json(Table::Admins, admin.name.clone(), &admin);
    batch.put_json(Table::Meta, "schema", &1u32);
    batch.put_json(
        Table::Audit,
        seq_key(seq),
        &AuditRecord {
            seq,
            at_ms: now,
            admin: "herald-server init".into(),
            action: "server.init".into(),
            target: org_name.clone(),
            unit: Some(root.id.clone()),
            details: format!(
                "created the organisation and bootstrap admin {:?}",
                admin.name
            ),
        },
    );
    db.commit(batch).await.map_err(|e| err(&e))?;
    Ok(InitReport {
        ca_fingerprint: ca.fingerprint(),
        ca_file: paths.ca_cert(),
        admin_name: admin.name,
        generated_password: generated,
    })
}

fn restrict(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
}

/// 20 characters from an alphabet without look-alikes.
fn generate_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..20)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}
