//! The permission matrix: every admin RPC × (no grant / grant on another
//! subtree / grant on the touched subtree / org-wide) against a real server.

use std::collections::HashMap;
use std::time::Duration;

use futures::future::BoxFuture;
use herald_proto::pb;
use herald_proto::pb::Capability as Cap;
use herald_tests::{Admin, PASSWORD, TestServer, grant as unit_grant};
use tonic::Code;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Case {
    NoGrant,
    OtherSubtree,
    ThisSubtree,
    OrgWide,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Refused with PERMISSION_DENIED.
    Deny,
    /// Answered; for listings, the item in the touched subtree is included.
    Allow,
    /// A listing answered without the item in the touched subtree.
    Hidden,
}
use Outcome::{Allow, Deny, Hidden};

/// The org tree every case runs against: / ─┬─ A ── A1
///                                          └─ B
struct World {
    server: TestServer,
    boss: Admin,
    root: String,
    a: String,
    a1: String,
    b: String,
}

fn scope(case: Case, w: &World) -> Option<pb::Scope> {
    match case {
        Case::NoGrant => None,
        Case::OtherSubtree => Some(pb::Scope {
            organisation: false,
            unit_ids: vec![w.b.clone()],
        }),
        Case::ThisSubtree => Some(pb::Scope {
            organisation: false,
            unit_ids: vec![w.a.clone()],
        }),
        Case::OrgWide => Some(pb::Scope {
            organisation: true,
            unit_ids: vec![],
        }),
    }
}

fn grant(cap: Cap, scope: pb::Scope) -> pb::Grant {
    pb::Grant {
        capability: cap as i32,
        scope: Some(scope),
    }
}

async fn create_admin(w: &World, name: &str, grants: Vec<pb::Grant>) -> pb::AdminInfo {
    let mut c = w.boss.client.clone();
    c.create_admin(w.boss.req(pb::CreateAdminRequest {
        name: name.into(),
        password: PASSWORD.into(),
        grants,
    }))
    .await
    .unwrap_or_else(|s| panic!("create admin {name}: {}", s.message()))
    .into_inner()
}

async fn login(w: &World, name: &str) -> Admin {
    Admin::login(&w.server.url(), &w.server.ca_pem, name, PASSWORD)
        .await
        .expect("login")
}

async fn enroll(w: &World, unit: &str) -> String {
    let token = w.boss.token(unit, 1).await;
    let dir = tempfile::tempdir().unwrap();
    herald_agent::enroll::enroll(&w.server.url(), &token, dir.path(), false)
        .await
        .expect("enroll")
        .info
        .computer_id
}

type Rpc = for<'a> fn(&'a World, &'a Admin) -> BoxFuture<'a, Result<Option<bool>, tonic::Status>>;

/// Runs one RPC as `actor`; `Some(visible)` for listings.
macro_rules! rpc {
    (|$w:ident, $a:ident| $body:expr) => {{
        fn f<'a>(
            $w: &'a World,
            $a: &'a Admin,
        ) -> BoxFuture<'a, Result<Option<bool>, tonic::Status>> {
            Box::pin(async move { $body })
        }
        f as Rpc
    }};
}

fn rows() -> Vec<(&'static str, Vec<Cap>, [Outcome; 4], Rpc)> {
    let standard = [Deny, Deny, Allow, Allow];
    let listing = [Deny, Hidden, Allow, Allow];
    vec![
        (
            "CreateOrgUnit",
            vec![Cap::ManageOrgUnits],
            standard,
            rpc!(|w, a| {
                let mut c = a.client.clone();
                c.create_org_unit(a.req(pb::CreateOrgUnitRequest {
                    parent_id: w.a.clone(),
                    name: uniq("New"),
                }))
                .await?;
                Ok(None)
            }),
        ),
        (
            "RenameOrgUnit",
            vec![Cap::ManageOrgUnits],
            standard,
            rpc!(|w, a| {
                let mut c = a.client.clone();
                c.rename_org_unit(a.req(pb::RenameOrgUnitRequest {
                    id: w.a1.clone(),
                    name: uniq("A1"),
                }))
                .await?;
                Ok(None)
            }),
        ),
        (
            "MoveOrgUnit",
            vec![Cap::ManageOrgUnits],
            standard,
            rpc!(|w, a| {
                let unit = w.boss.create_unit(&w.a, &uniq("Mover")).await;
                let mut c = a.client.clone();
                c.move_org_unit(a.req(pb::MoveOrgUnitRequest {
                    id: unit.id,
                    new_parent_id: w.a1.clone(),
                }))
                .await?;
                Ok(None)
            }),
        ),
        (
            "DeleteOrgUnit",
            vec![Cap::ManageOrgUnits],
            standard,
            rpc!(|w, a| {
                let unit = w.boss.create_unit(&w.a, &uniq("Doomed")).await;
                let mut c = a.client.clone();
                c.delete_org_unit(a.req(pb::DeleteOrgUnitRequest { id: unit.id }))
                    .await?;
                Ok(None)
            }),
        ),
        (
            "CreateEnrollmentToken",
            vec![Cap::EnrollAgents],
            standard,
            rpc!(|w, a| {
                let mut c = a.client.clone();
                c.create_enrollment_token(a.req(pb::CreateEnrollmentTokenRequest {
                    org_unit_id: w.a1.clone(),
                    valid_for_secs: 60,
                    max_uses: 1,
                }))
                .await?;
                Ok(None)
            }),
        ),
        (
            "ListEnrollmentTokens",
            vec![Cap::EnrollAgents],
            listing,
            rpc!(|w, a| {
                let mut c = a.client.clone();
                let t = c
                    .list_enrollment_tokens(a.req(pb::ListEnrollmentTokensRequest {
                        include_inactive: true,
                    }))
                    .await?
                    .into_inner();
                Ok(Some(t.tokens.iter().any(|t| t.org_unit_id == w.a)))
            }),
        ),
        (
            "RevokeEnrollmentToken",
            vec![Cap::EnrollAgents],
            standard,
            rpc!(|w, a| {
                let mut boss = w.boss.client.clone();
                let t = boss
                    .create_enrollment_token(w.boss.req(pb::CreateEnrollmentTokenRequest {
                        org_unit_id: w.a.clone(),
                        valid_for_secs: 60,
                        max_uses: 1,
                    }))
                    .await?
                    .into_inner();
                let mut c = a.client.clone();
                c.revoke_enrollment_token(a.req(pb::RevokeEnrollmentTokenRequest {
                    id: t.info.unwrap().id,
                }))
                .await?;
                Ok(None)
            }),
        ),
        (
            "ListComputers",
            vec![Cap::ManageComputers],
            listing,
            rpc!(|w, a| {
                let mut c = a.client.clone();
                let list = c
                    .list_computers(a.req(pb::ListComputersRequest::default()))
                    .await?
                    .into_inner();
                Ok(Some(list.computers.iter().any(|c| c.org_unit_id == w.a)))
            }),
        ),
        (
            "ListComputers(view reports)",
            vec![Cap::ViewReports],
            listing,
            rpc!(|w, a| {
                let mut c = a.client.clone();
                let list = c
                    .list_computers(a.req(pb::ListComputersRequest::default()))
                    .await?
                    .into_inner();
                Ok(Some(list.computers.iter().any(|c| c.org_unit_id == w.a)))
            }),
        ),
        (
            "GetComputer",
            vec![Cap::ManageComputers],
            standard,
            rpc!(|w, a| {
                let id = enroll(w, &w.a).await;
                let mut c = a.client.clone();
                c.get_computer(a.req(pb::GetComputerRequest { id })).await?;
                Ok(None)
            }),
        ),
        (
            "MoveComputer",
            vec![Cap::ManageComputers],
            standard,
            rpc!(|w, a| {
                let id = enroll(w, &w.a).await;
                let mut c = a.client.clone();
                c.move_computer(a.req(pb::MoveComputerRequest {
                    id,
                    org_unit_id: w.a1.clone(),
                }))
                .await?;
                Ok(None)
            }),
        ),
        (
            "RevokeComputer",
            vec![Cap::ManageComputers],
            standard,
            rpc!(|w, a| {
                let id = enroll(w, &w.a).await;
                let mut c = a.client.clone();
                c.revoke_computer(a.req(pb::RevokeComputerRequest { id }))
                    .await?;
                Ok(None)
            }),
        ),
        (
            "ListAdmins",
            vec![Cap::ManageAdmins],
            [Deny, Allow, Allow, Allow],
            rpc!(|_w, a| {
                let mut c = a.client.clone();
                c.list_admins(a.req(pb::ListAdminsRequest {})).await?;
                Ok(None)
            }),
        ),
        (
            "CreateAdmin",
            vec![Cap::ManageAdmins, Cap::SendMessages],
            standard,
            rpc!(|w, a| {
                let mut c = a.client.clone();
                c.create_admin(a.req(pb::CreateAdminRequest {
                    name: uniq("new"),
                    password: PASSWORD.into(),
                    grants: vec![unit_grant(Cap::SendMessages, &w.a1)],
                }))
                .await?;
                Ok(None)
            }),
        ),
        (
            "AddGrant",
            vec![Cap::ManageAdmins, Cap::SendMessages],
            standard,
            rpc!(|w, a| {
                let name = uniq("target");
                create_admin(w, &name, vec![]).await;
                let mut c = a.client.clone();
                c.add_grant(a.req(pb::AddGrantRequest {
                    name,
                    grant: Some(unit_grant(Cap::SendMessages, &w.a)),
                }))
                .await?;
                Ok(None)
            }),
        ),
        (
            "RevokeGrant",
            vec![Cap::ManageAdmins],
            standard,
            rpc!(|w, a| {
                let name = uniq("target");
                create_admin(w, &name, vec![unit_grant(Cap::SendMessages, &w.a)]).await;
                let mut c = a.client.clone();
                let info = c
                    .revoke_grant(a.req(pb::RevokeGrantRequest {
                        name,
                        grant: Some(unit_grant(Cap::SendMessages, &w.a)),
                    }))
                    .await?;
                assert!(info.into_inner().grants.is_empty());
                Ok(None)
            }),
        ),
        (
            "ResetAdminPassword",
            vec![Cap::ManageAdmins, Cap::ViewReports],
            standard,
            rpc!(|w, a| {
                let name = uniq("target");
                create_admin(w, &name, vec![unit_grant(Cap::ViewReports, &w.a1)]).await;
                let mut c = a.client.clone();
                c.reset_admin_password(a.req(pb::ResetAdminPasswordRequest {
                    name,
                    new_password: "another long password".into(),
                }))
                .await?;
                Ok(None)
            }),
        ),
        (
            "DeleteAdmin",
            vec![Cap::ManageAdmins, Cap::ViewReports],
            standard,
            rpc!(|w, a| {
                let name = uniq("target");
                create_admin(w, &name, vec![unit_grant(Cap::ViewReports, &w.a)]).await;
                let mut c = a.client.clone();
                c.delete_admin(a.req(pb::DeleteAdminRequest { name }))
                    .await?;
                Ok(None)
            }),
        ),
        (
            "ListAuditLog",
            vec![Cap::ViewAuditLog],
            listing,
            rpc!(|w, a| {
                let mut c = a.client.clone();
                let log = c
                    .list_audit_log(a.req(pb::ListAuditLogRequest {
                        limit: 1000,
                        ..Default::default()
                    }))
                    .await?
                    .into_inner();
                Ok(Some(log.entries.iter().any(|e| e.org_unit_id == w.a)))
            }),
        ),
        (
            "ListOrgUnits",
            vec![Cap::ManageOrgUnits],
            [Allow, Allow, Allow, Allow],
            rpc!(|w, a| {
                let units = a.units().await;
                Ok(Some(units.iter().any(|u| u.id == w.a)))
            }),
        ),
        (
            "WhoAmI",
            vec![Cap::ManageOrgUnits],
            [Allow, Allow, Allow, Allow],
            rpc!(|_w, a| {
                let mut c = a.client.clone();
                c.who_am_i(a.req(pb::WhoAmIRequest {})).await?;
                Ok(None)
            }),
        ),
    ]
}

fn uniq(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}", N.fetch_add(1, Ordering::Relaxed))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_rpc_checks_grants_against_the_units_it_touches() {
    let server = TestServer::start().await;
    let boss = server.admin().await;
    let root = boss.root().await.id;
    let a = boss.create_unit(&root, "A").await.id;
    let a1 = boss.create_unit(&a, "A1").await.id;
    let b = boss.create_unit(&root, "B").await.id;
    let w = World {
        server,
        boss,
        root,
        a,
        a1,
        b,
    };
    // Something to see in listings: a token, a computer and audit entries in A.
    enroll(&w, &w.a).await;
    w.boss.token(&w.a, 1).await;
    let _ = &w.root;

    let cases = [
        Case::NoGrant,
        Case::OtherSubtree,
        Case::ThisSubtree,
        Case::OrgWide,
    ];
    let mut actors: HashMap<(Vec<i32>, Case), Admin> = HashMap::new();
    let mut failures = Vec::new();
    for (name, caps, expected, rpc) in rows() {
        for (case, want) in cases.iter().zip(expected) {
            let key = (caps.iter().map(|c| *c as i32).collect::<Vec<_>>(), *case);
            if !actors.contains_key(&key) {
                let actor = uniq("actor");
                let grants = match scope(*case, &w) {
                    None => vec![],
                    Some(s) => caps.iter().map(|c| grant(*c, s.clone())).collect(),
                };
                create_admin(&w, &actor, grants).await;
                actors.insert(key.clone(), login(&w, &actor).await);
            }
            let actor = &actors[&key];
            let got = match tokio::time::timeout(Duration::from_secs(20), rpc(&w, actor))
                .await
                .expect("rpc in time")
            {
                Ok(None) | Ok(Some(true)) => Allow,
                Ok(Some(false)) => Hidden,
                Err(s) if s.code() == Code::PermissionDenied => {
                    assert!(s.message().starts_with("you "), "{name}: {}", s.message());
                    Deny
                }
                Err(s) => panic!(
                    "{name} {case:?}: unexpected {:?}: {}",
                    s.code(),
                    s.message()
                ),
            };
            if got != want {
                failures.push(format!("{name} with {case:?}: got {got:?}, want {want:?}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "permission matrix mismatches:\n{}",
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_grants_beyond_what_they_hold() {
    let server = TestServer::start().await;
    let boss = server.admin().await;
    let root = boss.root().await.id;
    let a = boss.create_unit(&root, "A").await.id;
    let b = boss.create_unit(&root, "B").await.id;
    let w = World {
        server,
        boss,
        root: root.clone(),
        a: a.clone(),
        a1: a.clone(),
        b: b.clone(),
    };
    // May manage admins everywhere, but may send quick alerts only on A.
    let org = pb::Scope {
        organisation: true,
        unit_ids: vec![],
    };
    create_admin(
        &w,
        "lead",
        vec![
            grant(Cap::ManageAdmins, org.clone()),
            unit_grant(Cap::SendQuickAlerts, &a),
        ],
    )
    .await;
    create_admin(&w, "helper", vec![]).await;
    let lead = login(&w, "lead").await;
    let mut c = lead.client.clone();
    let add = |g: pb::Grant| pb::AddGrantRequest {
        name: "helper".into(),
        grant: Some(g),
    };

    let refused = c
        .add_grant(lead.req(add(unit_grant(Cap::SendQuickAlerts, &b))))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(
        refused.message().contains("send quick alerts") && refused.message().contains("/B"),
        "{}",
        refused.message()
    );
    let refused = c
        .add_grant(lead.req(add(grant(Cap::SendQuickAlerts, org.clone()))))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let refused = c
        .add_grant(lead.req(add(unit_grant(Cap::ManageOrgUnits, &a))))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let refused = c
        .create_admin(lead.req(pb::CreateAdminRequest {
            name: "sneaky".into(),
            password: PASSWORD.into(),
            grants: vec![grant(Cap::ViewAuditLog, org.clone())],
        }))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);

    let ok = c
        .add_grant(lead.req(add(unit_grant(Cap::SendQuickAlerts, &a))))
        .await
        .expect("within own grants");
    assert_eq!(ok.into_inner().grants.len(), 1);
    // "lead" cannot reset the bootstrap admin, whose grants reach further.
    let refused = c
        .reset_admin_password(lead.req(pb::ResetAdminPasswordRequest {
            name: "admin".into(),
            new_password: "x".repeat(12),
        }))
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Code::PermissionDenied,
        "{}",
        refused.message()
    );

    // Bad input is a clear invalid-argument, not a crash.
    let bad = c
        .add_grant(lead.req(pb::AddGrantRequest {
            name: "helper".into(),
            grant: Some(pb::Grant {
                capability: 999,
                scope: Some(org.clone()),
            }),
        }))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(
        bad.message().contains("grant.capability"),
        "{}",
        bad.message()
    );
    let bad = c
        .add_grant(lead.req(pb::AddGrantRequest {
            name: "helper".into(),
            grant: Some(unit_grant(Cap::SendQuickAlerts, "u-nope")),
        }))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);

    // Without a session every call is unauthenticated.
    let mut anon = Admin::connect(&w.server.url(), &w.server.ca_pem)
        .await
        .unwrap();
    let s = anon
        .list_org_units(pb::ListOrgUnitsRequest {})
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::Unauthenticated);
    let mut forged = tonic::Request::new(pb::ListOrgUnitsRequest {});
    forged
        .metadata_mut()
        .insert("authorization", "Bearer forged".parse().unwrap());
    assert_eq!(
        anon.list_org_units(forged).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    let wrong = Admin::login(&w.server.url(), &w.server.ca_pem, "lead", "wrong password!").await;
    assert!(wrong.is_err());
    let _ = (&w.root, &w.b);
}
