//! What the logged-in admin may use, worked out from the grants the server
//! reported (`WhoAmI`) and the org tree, so the console can hide what would
//! be refused. The server stays the authority: this only mirrors it.

use std::collections::HashMap;

use herald_console::pb;

/// The org units as a tree: parents, children and a display order.
#[derive(Clone, Debug, Default)]
pub struct UnitTree {
    units: Vec<pb::OrgUnit>,
    index: HashMap<String, usize>,
    /// Depth-first, children by name: (depth, index into `units`).
    order: Vec<(usize, usize)>,
}

impl UnitTree {
    pub fn new(units: Vec<pb::OrgUnit>) -> Self {
        let index: HashMap<String, usize> = units
            .iter()
            .enumerate()
            .map(|(i, u)| (u.id.clone(), i))
            .collect();
        let mut children: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut roots = Vec::new();
        for (i, u) in units.iter().enumerate() {
            if u.parent_id.is_empty() || !index.contains_key(&u.parent_id) {
                roots.push(i);
            } else {
                children.entry(u.parent_id.as_str()).or_default().push(i);
            }
        }
        let by_name = |list: &mut Vec<usize>| {
            list.sort_by(|a, b| {
                units[*a]
                    .name
                    .to_lowercase()
                    .cmp(&units[*b].name.to_lowercase())
            })
        };
        by_name(&mut roots);
        for list in children.values_mut() {
            by_name(list);
        }
        let mut order = Vec::with_capacity(units.len());
        let mut stack: Vec<(usize, usize)> = roots.into_iter().rev().map(|i| (0, i)).collect();
        while let Some((depth, i)) = stack.pop() {
            order.push((depth, i));
            if let Some(kids) = children.get(units[i].id.as_str()) {
                stack.extend(kids.iter().rev().map(|k| (depth + 1, *k)));
            }
        }
        Self {
            units,
            index,
            order,
        }
    }

    pub fn units(&self) -> &[pb::OrgUnit] {
        &self.units
    }

    pub fn get(&self, id: &str) -> Option<&pb::OrgUnit> {
        self.index.get(id).map(|i| &self.units[*i])
    }

    /// The path of a unit, or its id if it is not known.
    pub fn path<'a>(&'a self, id: &'a str) -> &'a str {
        self.get(id).map_or(id, |u| u.path.as_str())
    }

    /// Every unit, depth first with children sorted by name, and its depth.
    pub fn ordered(&self) -> impl Iterator<Item = (usize, &pb::OrgUnit)> {
        self.order.iter().map(|(d, i)| (*d, &self.units[*i]))
    }

    pub fn root(&self) -> Option<&pb::OrgUnit> {
        self.order.first().map(|(_, i)| &self.units[*i])
    }

    /// Whether `unit` is `ancestor` or lies below it.
    pub fn is_within(&self, unit: &str, ancestor: &str) -> bool {
        let mut at = unit;
        for _ in 0..=self.units.len() {
            if at == ancestor {
                return true;
            }
            match self.get(at) {
                Some(u) if !u.parent_id.is_empty() => at = &u.parent_id,
                _ => return false,
            }
        }
        false
    }

    pub fn has_children(&self, id: &str) -> bool {
        self.units.iter().any(|u| u.parent_id == id)
    }
}

/// The features of the console, each shown only to admins who may use it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Screen {
    Dashboard,
    Alerts,
    Organisation,
    Admins,
    Audit,
}

/// The caller's grants, queried by capability and unit.
#[derive(Clone, Debug, Default)]
pub struct Perms {
    grants: Vec<(pb::Capability, pb::Scope)>,
}

impl Perms {
    pub fn new(me: &pb::AdminInfo) -> Self {
        let grants = me
            .grants
            .iter()
            .filter_map(|g| {
                let cap = pb::Capability::try_from(g.capability).ok()?;
                Some((cap, g.scope.clone().unwrap_or_default()))
            })
            .collect();
        Self { grants }
    }

    /// Holds `cap` somewhere.
    pub fn has_any(&self, cap: pb::Capability) -> bool {
        self.grants
            .iter()
            .any(|(c, s)| *c == cap && (s.organisation || !s.unit_ids.is_empty()))
    }

    /// Holds `cap` for the whole organisation.
    pub fn has_org(&self, cap: pb::Capability) -> bool {
        self.grants.iter().any(|(c, s)| *c == cap && s.organisation)
    }

    /// May use `cap` on `unit` (the unit lies in a granted subtree).
    pub fn allows(&self, cap: pb::Capability, unit: &str, tree: &UnitTree) -> bool {
        self.grants.iter().any(|(c, s)| {
            *c == cap
                && (s.organisation || s.unit_ids.iter().any(|root| tree.is_within(unit, root)))
        })
    }

    /// The screens to show, in navigation order.
    pub fn screens(&self) -> Vec<Screen> {
        use pb::Capability as C;
        let mut out = vec![Screen::Dashboard];
        if self.has_any(C::SendQuickAlerts) || self.has_any(C::ViewReports) {
            out.push(Screen::Alerts);
        }
        if [
            C::ManageOrgUnits,
            C::EnrollAgents,
            C::ManageComputers,
            C::ViewReports,
        ]
        .into_iter()
        .any(|c| self.has_any(c))
        {
            out.push(Screen::Organisation);
        }
        if self.has_any(C::ManageAdmins) {
            out.push(Screen::Admins);
        }
        if self.has_any(C::ViewAuditLog) {
            out.push(Screen::Audit);
        }
        out
    }

    pub fn may_see_computers(&self) -> bool {
        self.has_any(pb::Capability::ManageComputers) || self.has_any(pb::Capability::ViewReports)
    }

    pub fn may_see_alerts(&self) -> bool {
        self.has_any(pb::Capability::SendQuickAlerts) || self.has_any(pb::Capability::ViewReports)
    }

    /// The scopes in which the caller holds `cap`: what it may pass on.
    pub fn grantable(&self, cap: pb::Capability) -> (bool, Vec<String>) {
        let mut org = false;
        let mut units = Vec::new();
        for (c, s) in &self.grants {
            if *c == cap {
                org |= s.organisation;
                units.extend(s.unit_ids.iter().cloned());
            }
        }
        (org, units)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn unit(id: &str, parent: &str, name: &str, path: &str) -> pb::OrgUnit {
        pb::OrgUnit {
            id: id.into(),
            parent_id: parent.into(),
            name: name.into(),
            path: path.into(),
            created_unix_ms: 1,
        }
    }

    fn tree() -> UnitTree {
        UnitTree::new(vec![
            unit("root", "", "City Library", "/"),
            unit("br", "root", "Branches", "/Branches"),
            unit("b7", "br", "Branch 7", "/Branches/Branch 7"),
            unit("b3", "br", "Branch 3", "/Branches/Branch 3"),
            unit(
                "b3a",
                "b3",
                "Reading room",
                "/Branches/Branch 3/Reading room",
            ),
            unit("hr", "root", "HR", "/HR"),
        ])
    }

    fn grant(cap: pb::Capability, org: bool, units: &[&str]) -> pb::Grant {
        pb::Grant {
            capability: cap as i32,
            scope: Some(pb::Scope {
                organisation: org,
                unit_ids: units.iter().map(|u| (*u).to_owned()).collect(),
            }),
        }
    }

    #[test]
    fn tree_order_is_depth_first_by_name() {
        let t = tree();
        let order: Vec<(usize, &str)> = t.ordered().map(|(d, u)| (d, u.id.as_str())).collect();
        assert_eq!(
            order,
            [
                (0, "root"),
                (1, "br"),
                (2, "b3"),
                (3, "b3a"),
                (2, "b7"),
                (1, "hr")
            ]
        );
        assert!(t.is_within("b3a", "br"));
        assert!(t.is_within("b3", "b3"));
        assert!(!t.is_within("hr", "br"));
        assert!(!t.is_within("unknown", "br"));
        assert_eq!(t.path("b3"), "/Branches/Branch 3");
        assert!(t.has_children("b3") && !t.has_children("b7"));
    }

    #[test]
    fn screens_and_units_mirror_the_grants() {
        use pb::Capability as C;
        let t = tree();
        // Only messages everywhere and quick alerts on Branch 3.
        let me = pb::AdminInfo {
            name: "alice".into(),
            grants: vec![
                grant(C::SendMessages, true, &[]),
                grant(C::SendQuickAlerts, false, &["b3"]),
            ],
            ..Default::default()
        };
        let p = Perms::new(&me);
        assert_eq!(p.screens(), [Screen::Dashboard, Screen::Alerts]);
        let alertable: Vec<&str> = t
            .ordered()
            .filter(|(_, u)| p.allows(C::SendQuickAlerts, &u.id, &t))
            .map(|(_, u)| u.id.as_str())
            .collect();
        assert_eq!(alertable, ["b3", "b3a"]);
        assert!(!p.may_see_computers());
        assert!(p.may_see_alerts());
        assert_eq!(p.grantable(C::SendQuickAlerts), (false, vec!["b3".into()]));

        // The bootstrap admin: everything everywhere.
        let all = pb::AdminInfo {
            grants: herald_console::grants::CAPABILITIES
                .iter()
                .map(|(_, c)| grant(*c, true, &[]))
                .collect(),
            ..Default::default()
        };
        let p = Perms::new(&all);
        assert_eq!(
            p.screens(),
            [
                Screen::Dashboard,
                Screen::Alerts,
                Screen::Organisation,
                Screen::Admins,
                Screen::Audit
            ]
        );
        assert!(p.allows(C::ManageAdmins, "hr", &t));

        // A scope with no units grants nothing.
        let empty = pb::AdminInfo {
            grants: vec![grant(C::ViewAuditLog, false, &[])],
            ..Default::default()
        };
        assert_eq!(Perms::new(&empty).screens(), [Screen::Dashboard]);
    }
}
