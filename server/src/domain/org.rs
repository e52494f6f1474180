//! The org-unit tree: the organisation at the root, departments and branches
//! below. Computers belong to exactly one unit; grants are scoped to subtrees.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::UnixMs;

pub type UnitId = String;

/// Longest unit name accepted.
pub const MAX_NAME_CHARS: usize = 100;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit {
    pub id: UnitId,
    /// `None` only for the root (the organisation itself).
    pub parent: Option<UnitId>,
    pub name: String,
    pub created_ms: UnixMs,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrgError {
    #[error("no org unit with id {0:?}")]
    NotFound(String),
    #[error("invalid unit name {0:?}: {1}")]
    BadName(String, &'static str),
    #[error("{parent} already has a unit named {name:?}: choose another name")]
    DuplicateName { parent: String, name: String },
    #[error("the root unit (the organisation) cannot be {0}")]
    Root(&'static str),
    #[error("cannot move {unit} into {target}: it is inside the unit being moved")]
    Cycle { unit: String, target: String },
    #[error("cannot delete {unit}: it still has {what}; move or remove them first")]
    NotEmpty { unit: String, what: String },
    #[error("the stored org tree is inconsistent: {0}")]
    Corrupt(String),
}

/// An immutable snapshot of the tree. Mutations are checked against a
/// snapshot, then written; the caller rebuilds the snapshot afterwards.
#[derive(Clone, Debug)]
pub struct OrgTree {
    units: HashMap<UnitId, Unit>,
    children: HashMap<UnitId, Vec<UnitId>>,
    root: UnitId,
}

impl OrgTree {
    /// Builds the tree from its units. Exactly one unit must have no parent,
    /// every parent must exist, and there must be no cycles.
    pub fn new(units: impl IntoIterator<Item = Unit>) -> Result<Self, OrgError> {
        let units: HashMap<UnitId, Unit> = units.into_iter().map(|u| (u.id.clone(), u)).collect();
        let roots: Vec<&Unit> = units.values().filter(|u| u.parent.is_none()).collect();
        let root = match roots.as_slice() {
            [one] => one.id.clone(),
            [] => return Err(OrgError::Corrupt("no root unit".into())),
            _ => return Err(OrgError::Corrupt("more than one root unit".into())),
        };
        let mut children: HashMap<UnitId, Vec<UnitId>> = HashMap::new();
        for u in units.values() {
            if let Some(p) = &u.parent {
                if !units.contains_key(p) {
                    return Err(OrgError::Corrupt(format!(
                        "unit {} has unknown parent {p}",
                        u.id
                    )));
                }
                children.entry(p.clone()).or_default().push(u.id.clone());
            }
        }
        for list in children.values_mut() {
            list.sort_by(|a, b| units[a].name.cmp(&units[b].name).then(a.cmp(b)));
        }
        let tree = OrgTree {
            units,
            children,
            root,
        };
        // Every unit must reach the root; otherwise there is a cycle.
        for id in tree.units.keys() {
            if tree.ancestors_and_self(id).last().copied() != Some(&tree.root) {
                return Err(OrgError::Corrupt(format!("unit {id} is in a cycle")));
            }
        }
        Ok(tree)
    }

    pub fn root(&self) -> &Unit {
        &self.units[&self.root]
    }

    pub fn get(&self, id: &str) -> Result<&Unit, OrgError> {
        self.units
            .get(id)
            .ok_or_else(|| OrgError::NotFound(id.to_owned()))
    }

    pub fn contains(&self, id: &str) -> bool {
        self.units.contains_key(id)
    }

    pub fn len(&self) -> usize {
        self.units.len()
    }

    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    pub fn children(&self, id: &str) -> &[UnitId] {
        self.children.get(id).map(Vec::as_slice).unwrap_or_default()
    }

    /// `id`, its parent, ..., the root. Stops early (without the root) on a
    /// cycle or a dangling parent, which `new` rejects.
    pub fn ancestors_and_self(&self, id: &str) -> Vec<&UnitId> {
        let mut out = Vec::new();
        let mut cur = self.units.get(id);
        while let Some(u) = cur {
            if out.len() > self.units.len() {
                break;
            }
            out.push(&u.id);
            cur = u.parent.as_ref().and_then(|p| self.units.get(p));
        }
        out
    }

    /// Whether `unit` is `ancestor` or lies below it.
    pub fn is_within(&self, unit: &str, ancestor: &str) -> bool {
        self.ancestors_and_self(unit)
            .iter()
            .any(|a| a.as_str() == ancestor)
    }

    /// "/" for the root, "/Branches/Branch 3" below it. Unknown ids give
    /// "(unknown unit ID)".
    pub fn path(&self, id: &str) -> String {
        if !self.units.contains_key(id) {
            return format!("(unknown unit {id})");
        }
        let chain = self.ancestors_and_self(id);
        let names: Vec<&str> = chain
            .iter()
            .rev()
            .skip(1) // the root has no name in paths
            .map(|u| self.units[*u].name.as_str())
            .collect();
        format!("/{}", names.join("/"))
    }

    /// The unit at `path` ("/", "/A/B"; a missing leading slash is allowed).
    pub fn find_path(&self, path: &str) -> Option<&Unit> {
        let mut cur = &self.root;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            cur = self
                .children(cur)
                .iter()
                .find(|c| self.units[*c].name == part)?;
        }
        self.units.get(cur)
    }

    /// Every unit, parents before children, siblings by name.
    pub fn ordered(&self) -> Vec<&Unit> {
        let mut out = Vec::with_capacity(self.units.len());
        let mut stack = vec![&self.root];
        while let Some(id) = stack.pop() {
            out.push(&self.units[id]);
            stack.extend(self.children(id).iter().rev());
        }
        out
    }

    /// `id` and every unit below it.
    pub fn subtree(&self, id: &str) -> Vec<&UnitId> {
        let mut out = Vec::new();
        let Some(start) = self.units.get(id) else {
            return out;
        };
        let mut stack = vec![&start.id];
        while let Some(cur) = stack.pop() {
            out.push(cur);
            stack.extend(self.children(cur));
        }
        out
    }

    pub fn check_create(&self, parent: &str, name: &str) -> Result<String, OrgError> {
        self.get(parent)?;
        let name = validate_name(name)?;
        self.check_unique(parent, &name, None)?;
        Ok(name)
    }

    pub fn check_rename(&self, id: &str, name: &str) -> Result<String, OrgError> {
        let unit = self.get(id)?;
        let name = validate_name(name)?;
        if let Some(parent) = &unit.parent {
            self.check_unique(parent, &name, Some(id))?;
        }
        Ok(name)
    }

    pub fn check_move(&self, id: &str, new_parent: &str) -> Result<(), OrgError> {
        let unit = self.get(id)?;
        self.get(new_parent)?;
        if unit.parent.is_none() {
            return Err(OrgError::Root("moved"));
        }
        if self.is_within(new_parent, id) {
            return Err(OrgError::Cycle {
                unit: self.path(id),
                target: self.path(new_parent),
            });
        }
        self.check_unique(new_parent, &unit.name, Some(id))
    }

    /// A unit can be deleted when nothing hangs on it: no child units and
    /// none of the things the caller counted (computers, tokens, grants).
    pub fn check_delete(&self, id: &str, attached: &[(usize, &str)]) -> Result<(), OrgError> {
        let unit = self.get(id)?;
        if unit.parent.is_none() {
            return Err(OrgError::Root("deleted"));
        }
        let mut what: Vec<String> = Vec::new();
        let children = self.children(id).len();
        if children > 0 {
            what.push(plural(children, "child unit"));
        }
        what.extend(
            attached
                .iter()
                .filter(|(n, _)| *n > 0)
                .map(|(n, w)| plural(*n, w)),
        );
        if what.is_empty() {
            Ok(())
        } else {
            Err(OrgError::NotEmpty {
                unit: self.path(id),
                what: what.join(", "),
            })
        }
    }

    fn check_unique(&self, parent: &str, name: &str, except: Option<&str>) -> Result<(), OrgError> {
        let clash = self.children(parent).iter().any(|c| {
            Some(c.as_str()) != except && self.units[c].name.to_lowercase() == name.to_lowercase()
        });
        if clash {
            Err(OrgError::DuplicateName {
                parent: self.path(parent),
                name: name.to_owned(),
            })
        } else {
            Ok(())
        }
    }
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// Trims the name and checks it can be shown and used in a path.
pub fn validate_name(name: &str) -> Result<String, OrgError> {
    let trimmed = name.trim();
    let bad = |why| Err(OrgError::BadName(name.to_owned(), why));
    if trimmed.is_empty() {
        return bad("it is empty");
    }
    if trimmed.chars().count() > MAX_NAME_CHARS {
        return bad("it is longer than 100 characters");
    }
    if trimmed.contains('/') {
        return bad("it contains '/', which separates units in paths");
    }
    if trimmed.chars().any(char::is_control) {
        return bad("it contains control characters");
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn unit(id: &str, parent: Option<&str>, name: &str) -> Unit {
        Unit {
            id: id.into(),
            parent: parent.map(Into::into),
            name: name.into(),
            created_ms: 0,
        }
    }

    /// root ─┬─ branches ─┬─ b3
    ///       │            └─ b7
    ///       └─ hr
    pub(crate) fn library() -> OrgTree {
        OrgTree::new([
            unit("root", None, "City Library"),
            unit("branches", Some("root"), "Branches"),
            unit("b3", Some("branches"), "Branch 3"),
            unit("b7", Some("branches"), "Branch 7"),
            unit("hr", Some("root"), "HR"),
        ])
        .unwrap()
    }

    #[test]
    fn paths_and_lookup() {
        let t = library();
        for (id, path) in [
            ("root", "/"),
            ("branches", "/Branches"),
            ("b3", "/Branches/Branch 3"),
            ("hr", "/HR"),
        ] {
            assert_eq!(t.path(id), path);
            assert_eq!(t.find_path(path).map(|u| u.id.as_str()), Some(id));
        }
        assert_eq!(
            t.find_path("Branches/Branch 7").map(|u| u.id.as_str()),
            Some("b7")
        );
        assert!(t.find_path("/Nope").is_none());
    }

    #[test]
    fn within() {
        let t = library();
        for (unit, anc, want) in [
            ("b3", "branches", true),
            ("b3", "root", true),
            ("b3", "b3", true),
            ("b3", "b7", false),
            ("branches", "b3", false),
            ("hr", "branches", false),
            ("missing", "root", false),
        ] {
            assert_eq!(t.is_within(unit, anc), want, "{unit} within {anc}");
        }
    }

    #[test]
    fn ordered_puts_parents_first() {
        let t = library();
        let ids: Vec<&str> = t.ordered().iter().map(|u| u.id.as_str()).collect();
        assert_eq!(ids, ["root", "branches", "b3", "b7", "hr"]);
        let mut sub: Vec<&str> = t.subtree("branches").iter().map(|s| s.as_str()).collect();
        sub.sort();
        assert_eq!(sub, ["b3", "b7", "branches"]);
    }

    #[test]
    fn create_rename_checks() {
        let t = library();
        let cases: [(&str, &str, Result<&str, &str>); 6] = [
            ("branches", " Branch 9 ", Ok("Branch 9")),
            ("branches", "branch 3", Err("already has")),
            ("branches", "", Err("empty")),
            ("branches", "a/b", Err("'/'")),
            ("nope", "X", Err("no org unit")),
            (
                "root",
                "Ｂranches 多语言 فارسی",
                Ok("Ｂranches 多语言 فارسی"),
            ),
        ];
        for (parent, name, want) in cases {
            let got = t.check_create(parent, name);
            match (got, want) {
                (Ok(n), Ok(w)) => assert_eq!(n, w),
                (Err(e), Err(w)) => assert!(e.to_string().contains(w), "{e} should mention {w}"),
                (got, want) => panic!("create {name:?} under {parent}: got {got:?}, want {want:?}"),
            }
        }
        assert!(
            t.check_rename("b3", "Branch 3").is_ok(),
            "renaming to its own name is fine"
        );
        assert!(t.check_rename("b3", "Branch 7").is_err());
        assert!(t.check_create("root", &"x".repeat(101)).is_err());
    }

    #[test]
    fn move_checks() {
        let t = library();
        for (id, to, ok) in [
            ("b3", "hr", true),
            ("branches", "b3", false), // into its own subtree
            ("branches", "branches", false),
            ("root", "hr", false),
            ("b3", "missing", false),
        ] {
            assert_eq!(t.check_move(id, to).is_ok(), ok, "move {id} to {to}");
        }
    }

    #[test]
    fn delete_checks() {
        let t = library();
        assert!(t.check_delete("b3", &[(0, "computer")]).is_ok());
        let e = t
            .check_delete("b3", &[(2, "computer"), (1, "enrollment token")])
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot delete /Branches/Branch 3: it still has 2 computers, 1 enrollment token; move or remove them first"
        );
        assert!(
            t.check_delete("branches", &[])
                .unwrap_err()
                .to_string()
                .contains("2 child units")
        );
        assert!(matches!(
            t.check_delete("root", &[]),
            Err(OrgError::Root(_))
        ));
    }

    #[test]
    fn rejects_broken_trees() {
        assert!(OrgTree::new([]).is_err());
        assert!(OrgTree::new([unit("a", None, "A"), unit("b", None, "B")]).is_err());
        assert!(OrgTree::new([unit("a", None, "A"), unit("b", Some("x"), "B")]).is_err());
        assert!(
            OrgTree::new([
                unit("r", None, "R"),
                unit("a", Some("b"), "A"),
                unit("b", Some("a"), "B")
            ])
            .is_err()
        );
    }
}
