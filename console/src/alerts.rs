//! Quick alerts as admins type and read them: audiences
//! (`org:/Branches/Branch 3`, `org:ID`, `computer:ID`, `all`), priorities
//! (`info`, `warning`, `critical`) and delivery states by name.

use herald_proto::pb;
use herald_proto::pb::alert_target::Target;

use crate::{ClientError, resolve_unit};

/// One `--to` as typed, before org units are looked up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlertTargetSpec {
    /// Every computer in the subtree under an org unit (`org:UNIT`, where
    /// UNIT is an id or a path).
    Unit(String),
    /// One computer by id (`computer:ID`).
    Computer(String),
    /// Every computer the sender may send quick alerts to (`all`).
    All,
}

const TARGET_HELP: &str = "use org:PATH or org:ID for an org unit's subtree \
                           (e.g. \"org:/Branches/Branch 3\"), computer:ID, or all";

impl AlertTargetSpec {
    /// Parses `org:UNIT` (also `unit:UNIT`), `computer:ID` or `all`. The
    /// kind is case-insensitive; the unit and id are kept as typed, trimmed.
    pub fn parse(input: &str) -> Result<Self, ClientError> {
        let trimmed = input.trim();
        if trimmed.eq_ignore_ascii_case("all") {
            return Ok(AlertTargetSpec::All);
        }
        let invalid = || ClientError::Invalid(format!("invalid target {input:?}: {TARGET_HELP}"));
        let (kind, rest) = trimmed.split_once(':').ok_or_else(invalid)?;
        let rest = rest.trim();
        if rest.is_empty() {
            return Err(invalid());
        }
        match kind.trim().to_ascii_lowercase().as_str() {
            "org" | "unit" => Ok(AlertTargetSpec::Unit(rest.to_owned())),
            "computer" => Ok(AlertTargetSpec::Computer(rest.to_owned())),
            _ => Err(invalid()),
        }
    }

    /// The wire target, with a unit path looked up in `units`. Computer ids
    /// are passed on as they are; the server checks them.
    pub fn resolve(&self, units: &[pb::OrgUnit]) -> Result<pb::AlertTarget, ClientError> {
        let target = match self {
            AlertTargetSpec::Unit(spec) => Target::OrgUnitId(resolve_unit(units, spec)?.id.clone()),
            AlertTargetSpec::Computer(id) => Target::ComputerId(id.clone()),
            AlertTargetSpec::All => Target::All(true),
        };
        Ok(pb::AlertTarget {
            target: Some(target),
        })
    }

    /// Whether resolving needs the org units.
    pub fn needs_units(&self) -> bool {
        matches!(self, AlertTargetSpec::Unit(_))
    }
}

/// Parses one typed target and resolves it against `units`.
pub fn parse_alert_target(
    spec: &str,
    units: &[pb::OrgUnit],
) -> Result<pb::AlertTarget, ClientError> {
    AlertTargetSpec::parse(spec)?.resolve(units)
}

/// Resolves typed targets; targets naming the same thing twice are sent once.
pub fn resolve_alert_targets(
    specs: &[AlertTargetSpec],
    units: &[pb::OrgUnit],
) -> Result<Vec<pb::AlertTarget>, ClientError> {
    if specs.is_empty() {
        return Err(ClientError::Invalid(format!(
            "no target given: {TARGET_HELP}"
        )));
    }
    let mut out: Vec<pb::AlertTarget> = Vec::new();
    for spec in specs {
        let target = spec.resolve(units)?;
        if !out.contains(&target) {
            out.push(target);
        }
    }
    Ok(out)
}

/// A target as people read it: `org:/HR`, `computer:ID`, `all`.
pub fn describe_alert_target(target: &pb::AlertTarget, units: &[pb::OrgUnit]) -> String {
    match &target.target {
        Some(Target::OrgUnitId(id)) => {
            format!("org:{}", crate::grants::unit_path(units, id).unwrap_or(id))
        }
        Some(Target::ComputerId(id)) => format!("computer:{id}"),
        Some(Target::All(true)) => "all".to_owned(),
        Some(Target::All(false)) | None => "nothing".to_owned(),
    }
}

/// Every priority with the name the command line uses for it, lowest first.
pub const PRIORITIES: [(&str, pb::Priority); 3] = [
    ("info", pb::Priority::Info),
    ("warning", pb::Priority::Warning),
    ("critical", pb::Priority::Critical),
];

/// Parses a priority: `info`, `warning` or `critical` in any letter case,
/// or the protobuf name (`PRIORITY_WARNING`).
pub fn parse_priority(input: &str) -> Result<pb::Priority, ClientError> {
    let normal = input.trim().to_ascii_lowercase();
    let normal = normal.strip_prefix("priority_").unwrap_or(&normal);
    PRIORITIES
        .iter()
        .find(|(name, _)| *name == normal)
        .map(|(_, p)| *p)
        .ok_or_else(|| {
            ClientError::Invalid(format!(
                "unknown priority {input:?}: use info, warning or critical"
            ))
        })
}

/// The name of a priority as the wire carries it. Unspecified is what the
/// server treats as info; values this client does not know print as
/// `unknown(N)`.
pub fn priority_name(value: i32) -> String {
    match pb::Priority::try_from(value) {
        Ok(pb::Priority::Unspecified) => "info".to_owned(),
        Ok(p) => PRIORITIES
            .iter()
            .find(|(_, q)| *q == p)
            .map_or_else(|| format!("unknown({value})"), |(n, _)| (*n).to_owned()),
        Err(_) => format!("unknown({value})"),
    }
}

/// The name of a delivery state as the wire carries it (`delivered`,
/// `cancelled`, ...); values this client does not know print as `unknown(N)`.
pub fn delivery_state_name(value: i32) -> String {
    let name = match pb::DeliveryState::try_from(value) {
        Ok(pb::DeliveryState::Queued) => "queued",
        Ok(pb::DeliveryState::Delivered) => "delivered",
        Ok(pb::DeliveryState::Displayed) => "displayed",
        Ok(pb::DeliveryState::Opened) => "opened",
        Ok(pb::DeliveryState::Acknowledged) => "acknowledged",
        Ok(pb::DeliveryState::Dismissed) => "dismissed",
        Ok(pb::DeliveryState::Expired) => "expired",
        Ok(pb::DeliveryState::Cancelled) => "cancelled",
        Ok(pb::DeliveryState::Unspecified) | Err(_) => return format!("unknown({value})"),
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grants::tests::sample_units;

    fn unit_target(id: &str) -> pb::AlertTarget {
        pb::AlertTarget {
            target: Some(Target::OrgUnitId(id.to_owned())),
        }
    }

    fn computer_target(id: &str) -> pb::AlertTarget {
        pb::AlertTarget {
            target: Some(Target::ComputerId(id.to_owned())),
        }
    }

    fn all_target() -> pb::AlertTarget {
        pb::AlertTarget {
            target: Some(Target::All(true)),
        }
    }

    #[test]
    fn alert_targets_parse_and_resolve() {
        let units = sample_units();
        let cases: [(&str, Option<pb::AlertTarget>); 18] = [
            ("org:/Branches/Branch 3", Some(unit_target("u-b3"))),
            ("org:Branches/Branch 3/", Some(unit_target("u-b3"))),
            ("org:u-hr", Some(unit_target("u-hr"))),
            ("ORG: /HR ", Some(unit_target("u-hr"))),
            ("org:/", Some(unit_target("root"))),
            ("unit:/Branches", Some(unit_target("u-br"))),
            ("computer:c-12", Some(computer_target("c-12"))),
            ("Computer: c-12 ", Some(computer_target("c-12"))),
            ("all", Some(all_target())),
            (" ALL ", Some(all_target())),
            // Unknown units fail here, before anything is sent.
            ("org:/Nope", None),
            ("org:/branches", None),
            ("org:", None),
            ("computer:", None),
            ("/HR", None),
            ("org", None),
            ("everyone", None),
            ("", None),
        ];
        for (spec, want) in cases {
            assert_eq!(parse_alert_target(spec, &units).ok(), want, "{spec:?}");
        }
    }

    #[test]
    fn target_errors_say_what_to_type() {
        let units = sample_units();
        let err = |spec: &str| {
            parse_alert_target(spec, &units)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(
            err("/HR").starts_with("invalid target \"/HR\": use org:PATH or org:ID"),
            "{}",
            err("/HR")
        );
        assert!(
            err("org:/Nope").starts_with("no org unit \"/Nope\": known units are /, /Branches"),
            "{}",
            err("org:/Nope")
        );
    }

    #[test]
    fn repeated_targets_are_sent_once() {
        let units = sample_units();
        let specs: Vec<AlertTargetSpec> = ["org:/HR", "org:u-hr", "computer:c1", "all", "ALL"]
            .iter()
            .map(|s| AlertTargetSpec::parse(s))
            .collect::<Result<_, _>>()
            .unwrap();
        let targets = resolve_alert_targets(&specs, &units).unwrap();
        assert_eq!(
            targets,
            vec![unit_target("u-hr"), computer_target("c1"), all_target()]
        );
        let described: Vec<String> = targets
            .iter()
            .map(|t| describe_alert_target(t, &units))
            .collect();
        assert_eq!(described, ["org:/HR", "computer:c1", "all"]);
        assert!(resolve_alert_targets(&[], &units).is_err());
        assert!(!AlertTargetSpec::All.needs_units());
        assert!(AlertTargetSpec::Unit("/HR".into()).needs_units());
    }

    #[test]
    fn priorities_parse_and_print() {
        let cases = [
            ("info", Some(pb::Priority::Info)),
            ("Warning", Some(pb::Priority::Warning)),
            (" CRITICAL ", Some(pb::Priority::Critical)),
            ("PRIORITY_WARNING", Some(pb::Priority::Warning)),
            ("unspecified", None),
            ("urgent", None),
            ("", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_priority(input).ok(), want, "{input:?}");
        }
        for (name, p) in PRIORITIES {
            assert_eq!(priority_name(p as i32), name);
        }
        assert_eq!(priority_name(0), "info");
        assert_eq!(priority_name(9), "unknown(9)");
    }

    #[test]
    fn delivery_states_have_names() {
        let cases = [
            (pb::DeliveryState::Queued as i32, "queued"),
            (pb::DeliveryState::Delivered as i32, "delivered"),
            (pb::DeliveryState::Displayed as i32, "displayed"),
            (pb::DeliveryState::Dismissed as i32, "dismissed"),
            (pb::DeliveryState::Expired as i32, "expired"),
            (pb::DeliveryState::Cancelled as i32, "cancelled"),
            (0, "unknown(0)"),
            (42, "unknown(42)"),
        ];
        for (value, want) in cases {
            assert_eq!(delivery_state_name(value), want);
        }
    }
}
