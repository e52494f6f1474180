//! Capabilities and scopes as admins type them (`send-quick-alerts`,
//! `org`, `unit:/Branches/Branch 3`) and as the wire carries them.

use herald_proto::pb;

use crate::{ClientError, resolve_unit};

/// Every capability with the name the command line uses for it.
pub const CAPABILITIES: [(&str, pb::Capability); 11] = [
    ("manage-org-units", pb::Capability::ManageOrgUnits),
    ("enroll-agents", pb::Capability::EnrollAgents),
    ("manage-computers", pb::Capability::ManageComputers),
    ("send-quick-alerts", pb::Capability::SendQuickAlerts),
    ("send-messages", pb::Capability::SendMessages),
    ("manage-courses", pb::Capability::ManageCourses),
    ("answer-chat", pb::Capability::AnswerChat),
    ("manage-tickets", pb::Capability::ManageTickets),
    ("view-reports", pb::Capability::ViewReports),
    ("manage-admins", pb::Capability::ManageAdmins),
    ("view-audit-log", pb::Capability::ViewAuditLog),
];

/// Parses a capability name. Accepts the kebab-case names of
/// [`CAPABILITIES`] in any letter case, with `_` for `-`, and the protobuf
/// names (`CAPABILITY_SEND_MESSAGES`).
pub fn parse_capability(input: &str) -> Result<pb::Capability, ClientError> {
    let normal = input.trim().to_ascii_lowercase().replace('_', "-");
    let normal = normal.strip_prefix("capability-").unwrap_or(&normal);
    CAPABILITIES
        .iter()
        .find(|(name, _)| *name == normal)
        .map(|(_, cap)| *cap)
        .ok_or_else(|| {
            let names: Vec<&str> = CAPABILITIES.iter().map(|(name, _)| *name).collect();
            ClientError::Invalid(format!(
                "unknown capability {input:?}: use one of {}",
                names.join(", ")
            ))
        })
}

/// The command-line name of a capability.
pub fn capability_name(capability: pb::Capability) -> &'static str {
    CAPABILITIES
        .iter()
        .find(|(_, cap)| *cap == capability)
        .map_or("unspecified", |(name, _)| *name)
}

/// The command-line name of a capability as the wire carries it (`i32`);
/// values this client does not know print as `unknown(N)`.
pub fn capability_name_i32(value: i32) -> String {
    match pb::Capability::try_from(value) {
        Ok(cap) if cap != pb::Capability::Unspecified => capability_name(cap).to_owned(),
        _ => format!("unknown({value})"),
    }
}

/// One scope as typed, before org units are looked up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScopeSpec {
    /// The whole organisation (`org`).
    Organisation,
    /// The subtree under one unit (`unit:ID` or `unit:/PATH`).
    Unit(String),
}

impl ScopeSpec {
    /// Parses `org` or `unit:UNIT`, where UNIT is an org unit id or path.
    pub fn parse(input: &str) -> Result<Self, ClientError> {
        let trimmed = input.trim();
        if matches!(
            trimmed.to_ascii_lowercase().as_str(),
            "org" | "organisation" | "organization"
        ) {
            return Ok(ScopeSpec::Organisation);
        }
        match trimmed.split_once(':') {
            Some((kind, unit)) if kind.eq_ignore_ascii_case("unit") && !unit.trim().is_empty() => {
                Ok(ScopeSpec::Unit(unit.trim().to_owned()))
            }
            _ => Err(ClientError::Invalid(format!(
                "invalid scope {input:?}: use \"org\" for the whole organisation or \
                 \"unit:UNIT\" with an org unit id or path, e.g. \"unit:/Branches/Branch 3\""
            ))),
        }
    }
}

/// Turns typed scopes into a wire scope, looking unit paths up in `units`.
/// Several scopes add up; a unit named twice is sent once.
pub fn resolve_scopes(
    specs: &[ScopeSpec],
    units: &[pb::OrgUnit],
) -> Result<pb::Scope, ClientError> {
    if specs.is_empty() {
        return Err(ClientError::Invalid(
            "no scope given: use \"org\" or \"unit:UNIT\"".to_owned(),
        ));
    }
    let mut scope = pb::Scope::default();
    for spec in specs {
        match spec {
            ScopeSpec::Organisation => scope.organisation = true,
            ScopeSpec::Unit(unit) => {
                let id = &resolve_unit(units, unit)?.id;
                if !scope.unit_ids.contains(id) {
                    scope.unit_ids.push(id.clone());
                }
            }
        }
    }
    Ok(scope)
}

/// A grant as typed on the command line: `CAPABILITY=SCOPE`, e.g.
/// `send-quick-alerts=unit:/Branches/Branch 3` or `view-reports=org`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantSpec {
    pub capability: pb::Capability,
    pub scope: ScopeSpec,
}

impl GrantSpec {
    pub fn parse(input: &str) -> Result<Self, ClientError> {
        let (cap, scope) = input.split_once('=').ok_or_else(|| {
            ClientError::Invalid(format!(
                "invalid grant {input:?}: use CAPABILITY=SCOPE, e.g. view-reports=org or \
                 send-quick-alerts=unit:/Branches/Branch 3"
            ))
        })?;
        Ok(GrantSpec {
            capability: parse_capability(cap)?,
            scope: ScopeSpec::parse(scope)?,
        })
    }
}

/// Turns typed grants into wire grants. Grants of the same capability are
/// merged into one grant whose scope covers all of them.
pub fn resolve_grants(
    specs: &[GrantSpec],
    units: &[pb::OrgUnit],
) -> Result<Vec<pb::Grant>, ClientError> {
    let mut grouped: Vec<(pb::Capability, Vec<ScopeSpec>)> = Vec::new();
    for spec in specs {
        match grouped.iter_mut().find(|(cap, _)| *cap == spec.capability) {
            Some((_, scopes)) => scopes.push(spec.scope.clone()),
            None => grouped.push((spec.capability, vec![spec.scope.clone()])),
        }
    }
    grouped
        .into_iter()
        .map(|(cap, scopes)| {
            Ok(pb::Grant {
                capability: cap as i32,
                scope: Some(resolve_scopes(&scopes, units)?),
            })
        })
        .collect()
}

/// The places a scope covers, for people: `organisation`, or the unit paths
/// (ids of units not in `units` print as `unknown unit ID`).
pub fn scope_places(scope: Option<&pb::Scope>, units: &[pb::OrgUnit]) -> Vec<String> {
    let Some(scope) = scope else {
        return Vec::new();
    };
    if scope.organisation {
        return vec!["organisation".to_owned()];
    }
    scope
        .unit_ids
        .iter()
        .map(|id| unit_path(units, id).map_or_else(|| format!("unknown unit {id}"), str::to_owned))
        .collect()
}

/// A scope on one line: `organisation`, `/Branches/Branch 3, /Branches/Branch 7`
/// or `nothing`.
pub fn describe_scope(scope: Option<&pb::Scope>, units: &[pb::OrgUnit]) -> String {
    let places = scope_places(scope, units);
    if places.is_empty() {
        "nothing".to_owned()
    } else {
        places.join(", ")
    }
}

/// The path of the unit with this id, if it is in `units`.
pub fn unit_path<'a>(units: &'a [pb::OrgUnit], id: &str) -> Option<&'a str> {
    units.iter().find(|u| u.id == id).map(|u| u.path.as_str())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn unit(id: &str, parent: &str, path: &str) -> pb::OrgUnit {
        pb::OrgUnit {
            id: id.to_owned(),
            parent_id: parent.to_owned(),
            name: path.rsplit('/').next().unwrap_or_default().to_owned(),
            path: path.to_owned(),
            created_unix_ms: 1,
        }
    }

    pub(crate) fn sample_units() -> Vec<pb::OrgUnit> {
        vec![
            unit("root", "", "/"),
            unit("u-br", "root", "/Branches"),
            unit("u-b3", "u-br", "/Branches/Branch 3"),
            unit("u-b7", "u-br", "/Branches/Branch 7"),
            unit("u-hr", "root", "/HR"),
        ]
    }

    #[test]
    fn capabilities_parse_and_print() {
        let cases = [
            ("manage-org-units", Some(pb::Capability::ManageOrgUnits)),
            ("send-quick-alerts", Some(pb::Capability::SendQuickAlerts)),
            ("SEND_QUICK_ALERTS", Some(pb::Capability::SendQuickAlerts)),
            (
                "CAPABILITY_VIEW_AUDIT_LOG",
                Some(pb::Capability::ViewAuditLog),
            ),
            (" view-reports ", Some(pb::Capability::ViewReports)),
            ("unspecified", None),
            ("send", None),
            ("", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_capability(input).ok(), want, "{input:?}");
        }
        for (name, cap) in CAPABILITIES {
            assert_eq!(capability_name(cap), name);
            assert_eq!(parse_capability(name).ok(), Some(cap));
            assert_eq!(capability_name_i32(cap as i32), name);
        }
        assert_eq!(capability_name_i32(0), "unknown(0)");
        assert_eq!(capability_name_i32(99), "unknown(99)");
    }

    #[test]
    fn unknown_capability_lists_the_names() {
        let err = parse_capability("fly")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.starts_with("unknown capability \"fly\": use one of manage-org-units,"),
            "{err}"
        );
    }

    #[test]
    fn scopes_parse() {
        let cases = [
            ("org", Some(ScopeSpec::Organisation)),
            ("Organisation", Some(ScopeSpec::Organisation)),
            (
                "unit:/Branches/Branch 3",
                Some(ScopeSpec::Unit("/Branches/Branch 3".into())),
            ),
            ("unit:u-b3", Some(ScopeSpec::Unit("u-b3".into()))),
            ("UNIT: /HR", Some(ScopeSpec::Unit("/HR".into()))),
            ("unit:", None),
            ("/Branches", None),
            ("everything", None),
            ("", None),
        ];
        for (input, want) in cases {
            assert_eq!(ScopeSpec::parse(input).ok(), want, "{input:?}");
        }
    }

    #[test]
    fn scopes_resolve_to_unit_ids() {
        let units = sample_units();
        let org = ScopeSpec::Organisation;
        let b3 = ScopeSpec::Unit("/Branches/Branch 3".into());
        let b7 = ScopeSpec::Unit("u-b7".into());
        let missing = ScopeSpec::Unit("/Branches/Branch 9".into());
        // (scopes typed, Some((organisation, unit ids)) or None for an error)
        type Case = (Vec<ScopeSpec>, Option<(bool, Vec<&'static str>)>);
        let cases: Vec<Case> = vec![
            (vec![org.clone()], Some((true, vec![]))),
            (
                vec![b3.clone(), b7.clone()],
                Some((false, vec!["u-b3", "u-b7"])),
            ),
            (vec![b3.clone(), b3.clone()], Some((false, vec!["u-b3"]))),
            (vec![org, b3], Some((true, vec!["u-b3"]))),
            (vec![b7, missing], None),
            (vec![], None),
        ];
        for (specs, want) in cases {
            let got = resolve_scopes(&specs, &units)
                .ok()
                .map(|s| (s.organisation, s.unit_ids));
            let want = want.map(|(org, ids)| (org, ids.into_iter().map(String::from).collect()));
            assert_eq!(got, want, "{specs:?}");
        }
    }

    #[test]
    fn grants_parse_and_merge() {
        let units = sample_units();
        let specs: Vec<GrantSpec> = [
            "send-quick-alerts=unit:/Branches/Branch 3",
            "view-reports=org",
            "send-quick-alerts=unit:/Branches/Branch 7",
        ]
        .iter()
        .map(|s| GrantSpec::parse(s))
        .collect::<Result<_, _>>()
        .unwrap();
        let grants = resolve_grants(&specs, &units).unwrap();
        assert_eq!(grants.len(), 2);
        assert_eq!(grants[0].capability, pb::Capability::SendQuickAlerts as i32);
        assert_eq!(
            grants[0].scope.as_ref().map(|s| s.unit_ids.clone()),
            Some(vec!["u-b3".to_owned(), "u-b7".to_owned()])
        );
        assert_eq!(grants[1].scope.as_ref().map(|s| s.organisation), Some(true));

        for bad in ["view-reports", "fly=org", "view-reports=everywhere", "=org"] {
            assert!(GrantSpec::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn scopes_describe_as_paths() {
        let units = sample_units();
        let cases = [
            (None, "nothing"),
            (
                Some(pb::Scope {
                    organisation: true,
                    unit_ids: vec!["u-b3".into()],
                }),
                "organisation",
            ),
            (
                Some(pb::Scope {
                    organisation: false,
                    unit_ids: vec!["u-b3".into(), "gone".into()],
                }),
                "/Branches/Branch 3, unknown unit gone",
            ),
        ];
        for (scope, want) in cases {
            assert_eq!(describe_scope(scope.as_ref(), &units), want);
        }
    }
}
