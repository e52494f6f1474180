//! Capabilities, scopes and grants, and the one place that decides whether an
//! admin may do something to an org unit.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::org::{OrgTree, UnitId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    ManageOrgUnits,
    EnrollAgents,
    ManageComputers,
    SendQuickAlerts,
    SendMessages,
    ManageCourses,
    AnswerChat,
    ManageTickets,
    ViewReports,
    ManageAdmins,
    ViewAuditLog,
}

impl Capability {
    pub const ALL: [Capability; 11] = [
        Capability::ManageOrgUnits,
        Capability::EnrollAgents,
        Capability::ManageComputers,
        Capability::SendQuickAlerts,
        Capability::SendMessages,
        Capability::ManageCourses,
        Capability::AnswerChat,
        Capability::ManageTickets,
        Capability::ViewReports,
        Capability::ManageAdmins,
        Capability::ViewAuditLog,
    ];

    /// How people read it: "send quick alerts".
    pub fn label(self) -> &'static str {
        match self {
            Capability::ManageOrgUnits => "manage org units",
            Capability::EnrollAgents => "enroll agents",
            Capability::ManageComputers => "manage computers",
            Capability::SendQuickAlerts => "send quick alerts",
            Capability::SendMessages => "send messages",
            Capability::ManageCourses => "manage courses",
            Capability::AnswerChat => "answer chat",
            Capability::ManageTickets => "manage tickets",
            Capability::ViewReports => "view reports",
            Capability::ManageAdmins => "manage admins",
            Capability::ViewAuditLog => "view audit log",
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Where a grant applies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Organisation,
    /// The subtrees rooted at these units. Never empty.
    Units(BTreeSet<UnitId>),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub capability: Capability,
    pub scope: Scope,
}

impl Grant {
    pub fn new(capability: Capability, scope: Scope) -> Self {
        Grant { capability, scope }
    }

    pub fn org(capability: Capability) -> Self {
        Grant {
            capability,
            scope: Scope::Organisation,
        }
    }

    pub fn units<'a>(capability: Capability, units: impl IntoIterator<Item = &'a str>) -> Self {
        Grant {
            capability,
            scope: Scope::Units(units.into_iter().map(str::to_owned).collect()),
        }
    }
}

/// A refusal a person can act on: which capability is missing, and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("you need the \"{capability}\" permission on {place}")]
    Missing {
        capability: Capability,
        place: String,
    },
    #[error("you cannot grant \"{capability}\" on {place}: you do not hold it there yourself")]
    BeyondOwn {
        capability: Capability,
        place: String,
    },
    #[error(
        "you cannot manage admin {admin:?}: they hold {place}, which you could not grant yourself"
    )]
    AdminOutOfReach { admin: String, place: String },
}

/// What one admin holds. All checks go through here.
#[derive(Clone, Copy, Debug)]
pub struct Grants<'a> {
    pub grants: &'a [Grant],
    pub tree: &'a OrgTree,
}

impl<'a> Grants<'a> {
    pub fn new(grants: &'a [Grant], tree: &'a OrgTree) -> Self {
        Grants { grants, tree }
    }

    fn with(&self, cap: Capability) -> impl Iterator<Item = &'a Scope> + 'a {
        self.grants
            .iter()
            .filter(move |g| g.capability == cap)
            .map(|g| &g.scope)
    }

    /// Holds `cap` somewhere at all.
    pub fn has_any(&self, cap: Capability) -> bool {
        self.with(cap).next().is_some()
    }

    /// Holds `cap` for the whole organisation.
    pub fn has_org(&self, cap: Capability) -> bool {
        self.with(cap).any(|s| *s == Scope::Organisation)
    }

    /// Holds `cap` on `unit` (through a grant on it or on an ancestor).
    pub fn allows(&self, cap: Capability, unit: &str) -> bool {
        self.with(cap).any(|s| match s {
            Scope::Organisation => true,
            Scope::Units(units) => units.iter().any(|u| self.tree.is_within(unit, u)),
        })
    }

    /// Like `allows`, as a `Result` naming what is missing.
    pub fn require(&self, cap: Capability, unit: &str) -> Result<(), Denied> {
        if self.allows(cap, unit) {
            Ok(())
        } else {
            Err(Denied::Missing {
                capability: cap,
                place: self.tree.path(unit),
            })
        }
    }

    pub fn require_org(&self, cap: Capability) -> Result<(), Denied> {
        if self.has_org(cap) {
            Ok(())
        } else {
            Err(Denied::Missing {
                capability: cap,
                place: "the whole organisation".into(),
            })
        }
    }

    pub fn require_any(&self, cap: Capability) -> Result<(), Denied> {
        if self.has_any(cap) {
            Ok(())
        } else {
            Err(Denied::Missing {
                capability: cap,
                place: "any org unit".into(),
            })
        }
    }

    /// Holds `cap` over all of `scope`. `Err` names the first place missing.
    pub fn covers(&self, cap: Capability, scope: &Scope) -> Result<(), String> {
        match scope {
            Scope::Organisation if self.has_org(cap) => Ok(()),
            Scope::Organisation => Err("the whole organisation".into()),
            Scope::Units(units) => match units.iter().find(|u| !self.allows(cap, u)) {
                None => Ok(()),
                Some(u) => Err(self.tree.path(u)),
            },
        }
    }

    /// May give `grant` to someone: needs "manage admins" over the grant's
    /// scope and the granted capability itself over that scope.
    pub fn may_grant(&self, grant: &Grant) -> Result<(), Denied> {
        self.covers(Capability::ManageAdmins, &grant.scope)
            .map_err(|place| Denied::Missing {
                capability: Capability::ManageAdmins,
                place,
            })?;
        self.covers(grant.capability, &grant.scope)
            .map_err(|place| Denied::BeyondOwn {
                capability: grant.capability,
                place,
            })
    }

    /// May take `grant` away from someone: "manage admins" over its scope.
    pub fn may_revoke(&self, grant: &Grant) -> Result<(), Denied> {
        self.covers(Capability::ManageAdmins, &grant.scope)
            .map_err(|place| Denied::Missing {
                capability: Capability::ManageAdmins,
                place,
            })
    }

    /// May manage (reset the password of, delete) an admin holding
    /// `their_grants`: only if this admin could have granted every one of
    /// them, so nobody can take over an account more powerful than their own.
    pub fn may_manage_admin(&self, name: &str, their_grants: &[Grant]) -> Result<(), Denied> {
        self.require_any(Capability::ManageAdmins)?;
        for g in their_grants {
            self.may_grant(g).map_err(|_| Denied::AdminOutOfReach {
                admin: name.to_owned(),
                place: match &g.scope {
                    Scope::Organisation => {
                        format!("\"{}\" on the whole organisation", g.capability)
                    }
                    Scope::Units(u) => format!(
                        "\"{}\" on {}",
                        g.capability,
                        u.iter()
                            .map(|id| self.tree.path(id))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                },
            })?;
        }
        Ok(())
    }

    /// The units on which `cap` is held: `None` means all of them.
    pub fn units_with(&self, cap: Capability) -> Option<BTreeSet<&'a UnitId>> {
        if self.has_org(cap) {
            return None;
        }
        let mut out = BTreeSet::new();
        for s in self.with(cap) {
            if let Scope::Units(units) = s {
                for u in units {
                    out.extend(self.tree.subtree(u));
                }
            }
        }
        Some(out)
    }
}

/// Removes grants that another grant of the same capability already implies
/// and merges unit scopes, so stored grants stay small and readable.
pub fn normalize(grants: &[Grant], tree: &OrgTree) -> Vec<Grant> {
    let mut out = Vec::new();
    for cap in Capability::ALL {
        let scopes: Vec<&Scope> = grants
            .iter()
            .filter(|g| g.capability == cap)
            .map(|g| &g.scope)
            .collect();
        if scopes.is_empty() {
            continue;
        }
        if scopes.iter().any(|s| **s == Scope::Organisation) {
            out.push(Grant::org(cap));
            continue;
        }
        let all: BTreeSet<&UnitId> = scopes
            .iter()
            .flat_map(|s| match s {
                Scope::Units(u) => u.iter().collect::<Vec<_>>(),
                Scope::Organisation => Vec::new(),
            })
            .collect();
        // Keep a unit only if none of its proper ancestors is also listed.
        let kept: BTreeSet<UnitId> = all
            .iter()
            .filter(|u| !all.iter().any(|a| a != *u && tree.is_within(u, a)))
            .map(|u| (*u).clone())
            .collect();
        out.push(Grant::new(cap, Scope::Units(kept)));
    }
    out
}

/// Removes `grant` from `grants`: an org-wide grant is removed only by an
/// org-wide revoke; units are removed from unit scopes one by one.
pub fn subtract(grants: &[Grant], grant: &Grant) -> Vec<Grant> {
    let mut out = Vec::new();
    for g in grants {
        if g.capability != grant.capability {
            out.push(g.clone());
            continue;
        }
        match (&g.scope, &grant.scope) {
            (_, Scope::Organisation) => {}
            (Scope::Organisation, Scope::Units(_)) => out.push(g.clone()),
            (Scope::Units(have), Scope::Units(drop)) => {
                let left: BTreeSet<UnitId> = have.difference(drop).cloned().collect();
                if !left.is_empty() {
                    out.push(Grant::new(g.capability, Scope::Units(left)));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::Capability::*;
    use super::*;
    use crate::domain::org::tests::library;

    #[test]
    fn allows_matrix() {
        let t = library();
        let branch3_alerts = [
            Grant::units(SendQuickAlerts, ["b3"]),
            Grant::org(SendMessages),
        ];
        let branches_org = [Grant::units(ManageOrgUnits, ["branches"])];
        // (grants, capability, unit, expected)
        let cases: [(&[Grant], Capability, &str, bool); 12] = [
            (&[], SendQuickAlerts, "b3", false),
            (&branch3_alerts, SendQuickAlerts, "b3", true),
            (&branch3_alerts, SendQuickAlerts, "b7", false),
            (&branch3_alerts, SendQuickAlerts, "branches", false),
            (&branch3_alerts, SendQuickAlerts, "root", false),
            (&branch3_alerts, SendMessages, "b7", true),
            (&branch3_alerts, SendMessages, "root", true),
            (&branch3_alerts, ManageOrgUnits, "b3", false),
            (&branches_org, ManageOrgUnits, "b3", true),
            (&branches_org, ManageOrgUnits, "branches", true),
            (&branches_org, ManageOrgUnits, "hr", false),
            (&branches_org, ManageOrgUnits, "missing", false),
        ];
        for (grants, cap, unit, want) in cases {
            assert_eq!(
                Grants::new(grants, &t).allows(cap, unit),
                want,
                "{cap} on {unit} with {grants:?}"
            );
        }
    }

    #[test]
    fn require_names_capability_and_place() {
        let t = library();
        let g = [Grant::units(SendQuickAlerts, ["b3"])];
        let e = Grants::new(&g, &t)
            .require(SendQuickAlerts, "b7")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "you need the \"send quick alerts\" permission on /Branches/Branch 7"
        );
    }

    #[test]
    fn cannot_grant_beyond_own() {
        let t = library();
        let admin = [
            Grant::units(ManageAdmins, ["branches"]),
            Grant::units(SendQuickAlerts, ["b3"]),
        ];
        let g = Grants::new(&admin, &t);
        let cases = [
            (Grant::units(SendQuickAlerts, ["b3"]), Ok(())),
            (
                Grant::units(SendQuickAlerts, ["b7"]),
                Err("cannot grant \"send quick alerts\" on /Branches/Branch 7"),
            ),
            (Grant::org(SendQuickAlerts), Err("manage admins")),
            (Grant::units(SendQuickAlerts, ["hr"]), Err("manage admins")),
            (Grant::units(ManageAdmins, ["b7"]), Ok(())),
            (
                Grant::units(ViewReports, ["b3"]),
                Err("cannot grant \"view reports\""),
            ),
        ];
        for (grant, want) in cases {
            match (g.may_grant(&grant), want) {
                (Ok(()), Ok(())) => {}
                (Err(e), Err(w)) => assert!(e.to_string().contains(w), "{e} should contain {w}"),
                (got, want) => panic!("{grant:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn managing_admins_needs_reach_over_their_grants() {
        let t = library();
        let me = [
            Grant::units(ManageAdmins, ["branches"]),
            Grant::units(SendMessages, ["branches"]),
        ];
        let g = Grants::new(&me, &t);
        assert!(g.may_manage_admin("x", &[]).is_ok());
        assert!(
            g.may_manage_admin("x", &[Grant::units(SendMessages, ["b3", "b7"])])
                .is_ok()
        );
        assert!(
            g.may_manage_admin("x", &[Grant::units(SendQuickAlerts, ["b3"])])
                .is_err(),
            "a power I lack"
        );
        assert!(
            g.may_manage_admin("x", &[Grant::units(SendMessages, ["hr"])])
                .is_err()
        );
        assert!(g.may_manage_admin("x", &[Grant::org(ViewReports)]).is_err());
        assert!(Grants::new(&[], &t).may_manage_admin("x", &[]).is_err());
    }

    #[test]
    fn units_with_expands_subtrees() {
        let t = library();
        let g = [Grant::units(ViewReports, ["branches"])];
        let units = Grants::new(&g, &t).units_with(ViewReports).unwrap();
        let ids: Vec<&str> = units.iter().map(|s| s.as_str()).collect();
        assert_eq!(ids, ["b3", "b7", "branches"]);
        assert!(
            Grants::new(&[Grant::org(ViewReports)], &t)
                .units_with(ViewReports)
                .is_none()
        );
    }

    #[test]
    fn normalize_and_subtract() {
        let t = library();
        let g = normalize(
            &[
                Grant::units(SendMessages, ["b3"]),
                Grant::units(SendMessages, ["branches", "hr"]),
                Grant::org(ViewReports),
            ],
            &t,
        );
        assert_eq!(
            g,
            vec![
                Grant::units(SendMessages, ["branches", "hr"]),
                Grant::org(ViewReports)
            ]
        );
        let g = subtract(&g, &Grant::units(SendMessages, ["hr"]));
        assert_eq!(
            g,
            vec![
                Grant::units(SendMessages, ["branches"]),
                Grant::org(ViewReports)
            ]
        );
        let g = subtract(&g, &Grant::units(SendMessages, ["branches"]));
        assert_eq!(g, vec![Grant::org(ViewReports)]);
        assert_eq!(
            subtract(&g, &Grant::units(ViewReports, ["b3"])),
            g,
            "unit revoke leaves org grant"
        );
        assert!(subtract(&g, &Grant::org(ViewReports)).is_empty());
    }
}
