//! How heraldctl shows things: aligned text tables for people, JSON for
//! scripts. The protobuf types do not derive serde, so the JSON shape is
//! written out here, once per message.

use std::collections::{HashMap, HashSet};
use std::io::Write;

use serde_json::{Value, json};

use crate::grants::{capability_name_i32, describe_scope, unit_path};
use crate::pb;
use crate::timefmt::{format_ago, format_unix_ms};

/// Writes `text` (plus a final newline) to stdout. A closed pipe (`heraldctl
/// ... | head`) is not an error.
pub(crate) fn out(text: &str) -> anyhow::Result<()> {
    if text.is_empty() {
        return Ok(());
    }
    let mut stdout = std::io::stdout().lock();
    let result = stdout
        .write_all(text.as_bytes())
        .and_then(|()| {
            if text.ends_with('\n') {
                Ok(())
            } else {
                stdout.write_all(b"\n")
            }
        })
        .and_then(|()| stdout.flush());
    match result {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::anyhow!("cannot write to standard output: {e}"))
        }
        _ => Ok(()),
    }
}

/// Writes `value` as pretty JSON to stdout.
pub(crate) fn out_json(value: &Value) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    out(&text)
}

/// A note for the person at the terminal, on stderr so it never mixes with
/// output a script captures. Failing to write it is not worth failing for.
pub(crate) fn note(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// Columns aligned with two spaces between them; the last column is not
/// padded.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let header_row: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    let mut text = String::new();
    for row in std::iter::once(&header_row).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            let pad = widths
                .get(i)
                .copied()
                .unwrap_or(0)
                .saturating_sub(cell.chars().count());
            line.extend(std::iter::repeat_n(' ', pad));
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// `key: value` lines with the values aligned.
pub(crate) fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0)
        + 1;
    let mut text = String::new();
    for (key, value) in pairs {
        let label = format!("{key}:");
        text.push_str(&format!("{label:<width$} {value}\n"));
    }
    text
}

/// The org tree, one unit per line, children indented under their parent
/// and sorted by name. Units whose parent is missing show at the top level.
pub(crate) fn unit_tree(units: &[pb::OrgUnit]) -> String {
    let ids: HashSet<&str> = units.iter().map(|u| u.id.as_str()).collect();
    let mut children: HashMap<&str, Vec<&pb::OrgUnit>> = HashMap::new();
    let mut tops: Vec<&pb::OrgUnit> = Vec::new();
    for unit in units {
        if unit.parent_id.is_empty()
            || !ids.contains(unit.parent_id.as_str())
            || unit.parent_id == unit.id
        {
            tops.push(unit);
        } else {
            children
                .entry(unit.parent_id.as_str())
                .or_default()
                .push(unit);
        }
    }
    for list in children.values_mut() {
        list.sort_by(|a, b| a.name.cmp(&b.name));
    }
    tops.sort_by(|a, b| a.path.cmp(&b.path));

    let mut rows = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    // Units caught in a parent cycle are not reachable from a top unit;
    // starting from every unit afterwards shows them too.
    for start in tops.into_iter().chain(units) {
        let mut stack = vec![(start, 0usize)];
        while let Some((unit, depth)) = stack.pop() {
            if !seen.insert(unit.id.as_str()) {
                continue;
            }
            let name = if unit.parent_id.is_empty() {
                if unit.name.is_empty() {
                    "/".to_owned()
                } else {
                    format!("/ ({})", unit.name)
                }
            } else {
                unit.name.clone()
            };
            rows.push(vec![
                format!("{}{name}", "  ".repeat(depth)),
                unit.id.clone(),
            ]);
            if let Some(kids) = children.get(unit.id.as_str()) {
                stack.extend(kids.iter().rev().map(|k| (*k, depth + 1)));
            }
        }
    }
    table(&["UNIT", "ID"], &rows)
}

pub(crate) fn unit_json(unit: &pb::OrgUnit) -> Value {
    json!({
        "id": unit.id,
        "parent_id": unit.parent_id,
        "name": unit.name,
        "path": unit.path,
        "created_unix_ms": unit.created_unix_ms,
    })
}

pub(crate) fn grant_json(grant: &pb::Grant, units: &[pb::OrgUnit]) -> Value {
    let scope = grant.scope.clone().unwrap_or_default();
    let scope_units: Vec<Value> = scope
        .unit_ids
        .iter()
        .map(|id| json!({ "id": id, "path": unit_path(units, id) }))
        .collect();
    json!({
        "capability": capability_name_i32(grant.capability),
        "organisation": scope.organisation,
        "units": scope_units,
    })
}

pub(crate) fn admin_json(admin: &pb::AdminInfo, units: &[pb::OrgUnit]) -> Value {
    let grants: Vec<Value> = admin.grants.iter().map(|g| grant_json(g, units)).collect();
    json!({
        "name": admin.name,
        "created_unix_ms": admin.created_unix_ms,
        "created_by": admin.created_by,
        "grants": grants,
    })
}

/// Grants as table rows: capability, scope.
pub(crate) fn grant_rows(grants: &[pb::Grant], units: &[pb::OrgUnit]) -> Vec<Vec<String>> {
    grants
        .iter()
        .map(|g| {
            vec![
                capability_name_i32(g.capability),
                describe_scope(g.scope.as_ref(), units),
            ]
        })
        .collect()
}

/// Grants on one line: `send-messages: organisation; view-reports: /HR`.
pub(crate) fn grants_line(grants: &[pb::Grant], units: &[pb::OrgUnit]) -> String {
    if grants.is_empty() {
        return "-".to_owned();
    }
    grant_rows(grants, units)
        .into_iter()
        .map(|row| row.join(": "))
        .collect::<Vec<_>>()
        .join("; ")
}

/// What an enrollment token can still do at `now_ms`.
pub(crate) fn token_state(token: &pb::EnrollmentToken, now_ms: i64) -> &'static str {
    if token.revoked {
        "revoked"
    } else if token.expires_unix_ms != 0 && token.expires_unix_ms <= now_ms {
        "expired"
    } else if token.max_uses != 0 && token.uses >= token.max_uses {
        "used up"
    } else {
        "active"
    }
}

pub(crate) fn token_json(token: &pb::EnrollmentToken, now_ms: i64) -> Value {
    json!({
        "id": token.id,
        "org_unit_id": token.org_unit_id,
        "org_unit_path": token.org_unit_path,
        "created_unix_ms": token.created_unix_ms,
        "created_by": token.created_by,
        "expires_unix_ms": token.expires_unix_ms,
        "max_uses": token.max_uses,
        "uses": token.uses,
        "revoked": token.revoked,
        "state": token_state(token, now_ms),
    })
}

pub(crate) fn token_rows(tokens: &[pb::EnrollmentToken], now_ms: i64) -> Vec<Vec<String>> {
    tokens
        .iter()
        .map(|t| {
            vec![
                t.id.clone(),
                t.org_unit_path.clone(),
                token_state(t, now_ms).to_owned(),
                format!("{}/{}", t.uses, t.max_uses),
                format_unix_ms(t.expires_unix_ms),
                t.created_by.clone(),
            ]
        })
        .collect()
}

pub(crate) const TOKEN_HEADERS: [&str; 6] =
    ["ID", "UNIT", "STATE", "USES", "EXPIRES", "CREATED BY"];

pub(crate) fn computer_status(computer: &pb::Computer) -> &'static str {
    if computer.revoked {
        "revoked"
    } else if computer.online {
        "online"
    } else {
        "offline"
    }
}

pub(crate) fn computer_json(c: &pb::Computer) -> Value {
    json!({
        "id": c.id,
        "hostname": c.hostname,
        "org_unit_id": c.org_unit_id,
        "org_unit_path": c.org_unit_path,
        "os": c.os,
        "agent_version": c.agent_version,
        "online": c.online,
        "last_seen_unix_ms": c.last_seen_unix_ms,
        "logged_in_users": c.logged_in_users,
        "enrolled_unix_ms": c.enrolled_unix_ms,
        "revoked": c.revoked,
        "certificate_not_after_unix_ms": c.certificate_not_after_unix_ms,
        "certificate_serial": c.certificate_serial,
    })
}

pub(crate) const COMPUTER_HEADERS: [&str; 8] = [
    "ID",
    "HOSTNAME",
    "UNIT",
    "STATUS",
    "LAST SEEN",
    "OS",
    "AGENT",
    "USERS",
];

pub(crate) fn computer_rows(computers: &[pb::Computer], now_ms: i64) -> Vec<Vec<String>> {
    computers
        .iter()
        .map(|c| {
            vec![
                c.id.clone(),
                c.hostname.clone(),
                c.org_unit_path.clone(),
                computer_status(c).to_owned(),
                if c.online && !c.revoked {
                    "now".to_owned()
                } else {
                    format_ago(now_ms, c.last_seen_unix_ms)
                },
                c.os.clone(),
                c.agent_version.clone(),
                users(&c.logged_in_users),
            ]
        })
        .collect()
}

fn users(list: &[String]) -> String {
    if list.is_empty() {
        "-".to_owned()
    } else {
        list.join(", ")
    }
}

/// One computer in detail.
pub(crate) fn computer_details(c: &pb::Computer, now_ms: i64) -> String {
    fields(&[
        ("id", c.id.clone()),
        ("hostname", c.hostname.clone()),
        ("unit", format!("{} ({})", c.org_unit_path, c.org_unit_id)),
        ("status", computer_status(c).to_owned()),
        (
            "last seen",
            format!(
                "{} ({})",
                format_unix_ms(c.last_seen_unix_ms),
                format_ago(now_ms, c.last_seen_unix_ms)
            ),
        ),
        ("os", c.os.clone()),
        ("agent version", c.agent_version.clone()),
        ("users", users(&c.logged_in_users)),
        ("enrolled", format_unix_ms(c.enrolled_unix_ms)),
        ("certificate", c.certificate_serial.clone()),
        (
            "valid until",
            format_unix_ms(c.certificate_not_after_unix_ms),
        ),
    ])
}

pub(crate) fn audit_json(e: &pb::AuditEntry, units: &[pb::OrgUnit]) -> Value {
    json!({
        "seq": e.seq,
        "at_unix_ms": e.at_unix_ms,
        "admin": e.admin,
        "action": e.action,
        "target": e.target,
        "org_unit_id": e.org_unit_id,
        "org_unit_path": unit_path(units, &e.org_unit_id),
        "details": e.details,
    })
}

pub(crate) const AUDIT_HEADERS: [&str; 7] = [
    "SEQ", "TIME", "ADMIN", "ACTION", "TARGET", "UNIT", "DETAILS",
];

pub(crate) fn audit_rows(entries: &[pb::AuditEntry], units: &[pb::OrgUnit]) -> Vec<Vec<String>> {
    entries
        .iter()
        .map(|e| {
            let unit = if e.org_unit_id.is_empty() {
                "-".to_owned()
            } else {
                unit_path(units, &e.org_unit_id)
                    .unwrap_or(&e.org_unit_id)
                    .to_owned()
            };
            vec![
                e.seq.to_string(),
                format_unix_ms(e.at_unix_ms),
                e.admin.clone(),
                e.action.clone(),
                e.target.clone(),
                unit,
                // Details are free text; keep each entry on one line.
                e.details.replace(['\n', '\r'], " "),
            ]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grants::tests::{sample_units, unit};

    #[test]
    fn tables_align_columns() {
        let rows = vec![
            vec!["a".to_owned(), "long value".to_owned(), "x".to_owned()],
            vec!["bbbb".to_owned(), "v".to_owned(), String::new()],
        ];
        assert_eq!(
            table(&["K", "VALUE", "LAST"], &rows),
            "K     VALUE       LAST\n\
             a     long value  x\n\
             bbbb  v\n"
        );
    }

    #[test]
    fn tree_indents_children_under_parents() {
        let mut units = sample_units();
        units[0].name = "City Library".into();
        // A unit whose parent is gone still shows up.
        units.push(unit("lost", "gone", "/Gone/Lost"));
        assert_eq!(
            unit_tree(&units),
            "UNIT              ID\n\
             / (City Library)  root\n\
             \x20 Branches        u-br\n\
             \x20   Branch 3      u-b3\n\
             \x20   Branch 7      u-b7\n\
             \x20 HR              u-hr\n\
             Lost              lost\n"
        );
    }

    #[test]
    fn tree_survives_cycles() {
        let units = vec![unit("a", "b", "/A"), unit("b", "a", "/B")];
        assert_eq!(unit_tree(&units), "UNIT  ID\nA     a\n  B   b\n");
    }

    #[test]
    fn token_states() {
        let now = 1_000_000;
        let token = |revoked, expires, uses, max_uses| pb::EnrollmentToken {
            revoked,
            expires_unix_ms: expires,
            uses,
            max_uses,
            ..Default::default()
        };
        let cases = [
            (token(true, now + 1, 0, 1), "revoked"),
            (token(false, now, 0, 1), "expired"),
            (token(false, now + 1, 1, 1), "used up"),
            (token(false, now + 1, 2, 5), "active"),
            (token(false, 0, 0, 0), "active"),
        ];
        for (t, want) in cases {
            assert_eq!(token_state(&t, now), want, "{t:?}");
        }
    }

    #[test]
    fn computer_rows_show_status_and_age() {
        let now = 1_000_000_000;
        let computer = |online, revoked, last_seen| pb::Computer {
            id: "c1".into(),
            hostname: "pc-01".into(),
            org_unit_path: "/HR".into(),
            online,
            revoked,
            last_seen_unix_ms: last_seen,
            logged_in_users: vec!["anna".into(), "bob".into()],
            ..Default::default()
        };
        let cases = [
            (computer(true, false, now), "online", "now"),
            (computer(false, false, now - 12_000), "offline", "12s ago"),
            (computer(true, true, now - 120_000), "revoked", "2m ago"),
            (computer(false, false, 0), "offline", "never"),
        ];
        for (c, status, seen) in cases {
            let row = &computer_rows(std::slice::from_ref(&c), now)[0];
            assert_eq!((row[3].as_str(), row[4].as_str()), (status, seen));
            assert_eq!(row[7], "anna, bob");
        }
    }

    #[test]
    fn grants_show_paths() {
        let units = sample_units();
        let grants = vec![
            pb::Grant {
                capability: pb::Capability::SendQuickAlerts as i32,
                scope: Some(pb::Scope {
                    organisation: false,
                    unit_ids: vec!["u-b3".into(), "u-b7".into()],
                }),
            },
            pb::Grant {
                capability: pb::Capability::ViewReports as i32,
                scope: Some(pb::Scope {
                    organisation: true,
                    unit_ids: vec![],
                }),
            },
        ];
        assert_eq!(
            grants_line(&grants, &units),
            "send-quick-alerts: /Branches/Branch 3, /Branches/Branch 7; view-reports: organisation"
        );
        assert_eq!(grants_line(&[], &units), "-");
        let value = grant_json(&grants[0], &units);
        assert_eq!(value["capability"], "send-quick-alerts");
        assert_eq!(value["units"][0]["path"], "/Branches/Branch 3");
    }

    #[test]
    fn audit_rows_keep_one_line_per_entry() {
        let units = sample_units();
        let entries = vec![pb::AuditEntry {
            seq: 7,
            at_unix_ms: 1_740_818_096_000,
            admin: "root".into(),
            action: "org_unit.create".into(),
            target: "u-b3".into(),
            org_unit_id: "u-b3".into(),
            details: "created\nBranch 3".into(),
        }];
        assert_eq!(
            audit_rows(&entries, &units)[0],
            vec![
                "7",
                "2025-03-01 08:34:56 UTC",
                "root",
                "org_unit.create",
                "u-b3",
                "/Branches/Branch 3",
                "created Branch 3"
            ]
        );
    }
}
