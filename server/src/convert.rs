//! Wire types ↔ domain types, at the edge.

use std::collections::BTreeSet;

use herald_proto::pb;

use crate::domain::org::OrgTree;
use crate::domain::perm::{Capability, Grant, Scope};
use crate::error::{ApiError, ApiResult};
use crate::state::{AdminRecord, AuditRecord, ComputerRecord};

pub fn capability_from_pb(v: i32) -> ApiResult<Capability> {
    use pb::Capability as P;
    let p = P::try_from(v)
        .map_err(|_| ApiError::invalid("grant.capability", format!("unknown capability {v}")))?;
    Ok(match p {
        P::Unspecified => {
            return Err(ApiError::invalid(
                "grant.capability",
                "capability is missing",
            ));
        }
        P::ManageOrgUnits => Capability::ManageOrgUnits,
        P::EnrollAgents => Capability::EnrollAgents,
        P::ManageComputers => Capability::ManageComputers,
        P::SendQuickAlerts => Capability::SendQuickAlerts,
        P::SendMessages => Capability::SendMessages,
        P::ManageCourses => Capability::ManageCourses,
        P::AnswerChat => Capability::AnswerChat,
        P::ManageTickets => Capability::ManageTickets,
        P::ViewReports => Capability::ViewReports,
        P::ManageAdmins => Capability::ManageAdmins,
        P::ViewAuditLog => Capability::ViewAuditLog,
    })
}

pub fn capability_to_pb(c: Capability) -> pb::Capability {
    use pb::Capability as P;
    match c {
        Capability::ManageOrgUnits => P::ManageOrgUnits,
        Capability::EnrollAgents => P::EnrollAgents,
        Capability::ManageComputers => P::ManageComputers,
        Capability::SendQuickAlerts => P::SendQuickAlerts,
        Capability::SendMessages => P::SendMessages,
        Capability::ManageCourses => P::ManageCourses,
        Capability::AnswerChat => P::AnswerChat,
        Capability::ManageTickets => P::ManageTickets,
        Capability::ViewReports => P::ViewReports,
        Capability::ManageAdmins => P::ManageAdmins,
        Capability::ViewAuditLog => P::ViewAuditLog,
    }
}

pub fn grant_from_pb(g: Option<pb::Grant>, tree: &OrgTree) -> ApiResult<Grant> {
    let g = g.ok_or_else(|| ApiError::invalid("grant", "grant is missing"))?;
    let capability = capability_from_pb(g.capability)?;
    let scope = g
        .scope
        .ok_or_else(|| ApiError::invalid("grant.scope", "scope is missing"))?;
    let scope = if scope.organisation {
        if !scope.unit_ids.is_empty() {
            return Err(ApiError::invalid(
                "grant.scope",
                "give either organisation or unit ids, not both",
            ));
        }
        Scope::Organisation
    } else {
        if scope.unit_ids.is_empty() {
            return Err(ApiError::invalid(
                "grant.scope",
                "name the org units, or the whole organisation",
            ));
        }
        for id in &scope.unit_ids {
            tree.get(id).map_err(|_| {
                ApiError::invalid(
                    "grant.scope.unit_ids",
                    format!("no org unit with id {id:?}"),
                )
            })?;
        }
        Scope::Units(scope.unit_ids.into_iter().collect::<BTreeSet<_>>())
    };
    Ok(Grant { capability, scope })
}

pub fn grant_to_pb(g: &Grant) -> pb::Grant {
    let scope = match &g.scope {
        Scope::Organisation => pb::Scope {
            organisation: true,
            unit_ids: vec![],
        },
        Scope::Units(u) => pb::Scope {
            organisation: false,
            unit_ids: u.iter().cloned().collect(),
        },
    };
    pb::Grant {
        capability: capability_to_pb(g.capability) as i32,
        scope: Some(scope),
    }
}

pub fn admin_to_pb(a: &AdminRecord) -> pb::AdminInfo {
    pb::AdminInfo {
        name: a.name.clone(),
        grants: a.grants.iter().map(grant_to_pb).collect(),
        created_unix_ms: a.created_ms,
        created_by: a.created_by.clone(),
    }
}

pub fn unit_to_pb(tree: &OrgTree, id: &str) -> ApiResult<pb::OrgUnit> {
    let u = tree.get(id)?;
    Ok(pb::OrgUnit {
        id: u.id.clone(),
        parent_id: u.parent.clone().unwrap_or_default(),
        name: u.name.clone(),
        path: tree.path(&u.id),
        created_unix_ms: u.created_ms,
    })
}

pub fn computer_to_pb(
    c: &ComputerRecord,
    tree: &OrgTree,
    live: Option<(Vec<String>, i64)>,
) -> pb::Computer {
    let online = live.is_some();
    let (users, last_seen) = match live {
        Some((users, seen)) => (users, seen.max(c.last_seen_ms)),
        None => (Vec::new(), c.last_seen_ms),
    };
    pb::Computer {
        id: c.id.clone(),
        org_unit_id: c.unit.clone(),
        org_unit_path: tree.path(&c.unit),
        hostname: c.hostname.clone(),
        os: c.os.clone(),
        agent_version: c.agent_version.clone(),
        online,
        last_seen_unix_ms: last_seen,
        logged_in_users: users,
        enrolled_unix_ms: c.enrolled_ms,
        revoked: c.revoked,
        certificate_not_after_unix_ms: c.cert_not_after_ms,
        certificate_serial: c.cert_serial.clone(),
    }
}

pub fn audit_to_pb(a: &AuditRecord) -> pb::AuditEntry {
    pb::AuditEntry {
        seq: a.seq,
        at_unix_ms: a.at_ms,
        admin: a.admin.clone(),
        action: a.action.clone(),
        target: a.target.clone(),
        org_unit_id: a.unit.clone().unwrap_or_default(),
        details: a.details.clone(),
    }
}

/// Checks a free-text field's length and that it has no control characters.
pub fn text(field: &'static str, value: &str, max_chars: usize) -> ApiResult<String> {
    let v = value.trim();
    if v.chars().count() > max_chars {
        return Err(ApiError::invalid(
            field,
            format!("longer than {max_chars} characters"),
        ));
    }
    if v.chars().any(char::is_control) {
        return Err(ApiError::invalid(field, "contains control characters"));
    }
    Ok(v.to_owned())
}
