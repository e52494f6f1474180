//! How heraldctl shows things: aligned text tables for people, JSON for
//! scripts. The protobuf types do not derive serde, so the JSON shape is
//! written out here, once per message.

use std::collections::{HashMap, HashSet};
use std::io::Write;

use serde_json::{Value, json};

use crate::alerts::{delivery_state_name, priority_name};
use crate::grants::{capability_name_i32, describe_scope, unit_path};
use crate::pb;
use crate::timefmt::{format_ago, format_time_of_day, format_unix_ms};

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

/// Writes `value` as JSON on one line to stdout (for streams of objects).
pub(crate) fn out_json_line(value: &Value) -> anyhow::Result<()> {
    let text = serde_json::to_string(value)?;
    out(&text)
}

/// At most `max` characters of `text` on one line, with `…` when cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    let one_line = text.replace(['\n', '\r', '\t'], " ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    let mut cut: String = one_line.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

pub(crate) fn send_alert_json(r: &pb::SendAlertResponse) -> Value {
    json!({
        "alert_id": r.alert_id,
        "computers": r.computers,
        "accepted_unix_ms": r.accepted_unix_ms,
        "expires_unix_ms": r.expires_unix_ms,
    })
}

/// Who an alert would reach, per unit, with a total line.
pub(crate) fn audience_table(p: &pb::PreviewAlertAudienceResponse) -> String {
    let mut rows: Vec<Vec<String>> = p
        .units
        .iter()
        .map(|u| {
            vec![
                u.path.clone(),
                u.computers.to_string(),
                u.online.to_string(),
            ]
        })
        .collect();
    rows.push(vec![
        "total".into(),
        p.computers.to_string(),
        p.online.to_string(),
    ]);
    table(&["UNIT", "COMPUTERS", "ONLINE"], &rows)
}

pub(crate) fn audience_json(p: &pb::PreviewAlertAudienceResponse) -> Value {
    json!({
        "computers": p.computers,
        "online": p.online,
        "units": p.units.iter().map(|u| json!({
            "org_unit_id": u.org_unit_id,
            "path": u.path,
            "computers": u.computers,
            "online": u.online,
        })).collect::<Vec<_>>(),
    })
}

/// Whether an alert is still up: `cancelled`, `expired` or `active`.
pub(crate) fn alert_state(a: &pb::AlertSummary, now_ms: i64) -> &'static str {
    if a.cancelled {
        "cancelled"
    } else if a.expires_unix_ms != 0 && a.expires_unix_ms <= now_ms {
        "expired"
    } else {
        "active"
    }
}

pub(crate) fn alert_summary_json(a: &pb::AlertSummary, now_ms: i64) -> Value {
    json!({
        "id": a.id,
        "title": a.title,
        "body": a.body,
        "priority": priority_name(a.priority),
        "sender": a.sender,
        "sender_unit_path": a.sender_unit_path,
        "accepted_unix_ms": a.accepted_unix_ms,
        "expires_unix_ms": a.expires_unix_ms,
        "cancelled": a.cancelled,
        "state": alert_state(a, now_ms),
        "computers": a.computers,
        "targets": a.targets,
    })
}

pub(crate) fn alert_counts_json(c: Option<&pb::AlertCounts>) -> Value {
    let c = c.copied().unwrap_or_default();
    json!({
        "queued": c.queued,
        "delivered": c.delivered,
        "displayed": c.displayed,
        "dismissed": c.dismissed,
        "expired": c.expired,
        "cancelled": c.cancelled,
    })
}

pub(crate) fn computer_delivery_json(d: &pb::ComputerDelivery) -> Value {
    json!({
        "computer_id": d.computer_id,
        "hostname": d.hostname,
        "org_unit_path": d.org_unit_path,
        "state": delivery_state_name(d.state),
        "delivered_unix_ms": d.delivered_unix_ms,
        "displayed_unix_ms": d.displayed_unix_ms,
        "dismissed_unix_ms": d.dismissed_unix_ms,
        "user": d.user,
        "online": d.online,
    })
}

pub(crate) fn alert_status_json(s: &pb::AlertStatus, now_ms: i64) -> Value {
    let alert = s.alert.clone().unwrap_or_default();
    let units: Vec<Value> = s
        .units
        .iter()
        .map(|u| {
            json!({
                "org_unit_id": u.org_unit_id,
                "org_unit_path": u.org_unit_path,
                "counts": alert_counts_json(u.counts.as_ref()),
            })
        })
        .collect();
    json!({
        "alert": alert_summary_json(&alert, now_ms),
        "counts": alert_counts_json(s.counts.as_ref()),
        "units": units,
        "computers": s.computers.iter().map(computer_delivery_json).collect::<Vec<_>>(),
        "settled": s.settled,
    })
}

/// The counts on one line: `queued 0  delivered 3  displayed 27  ...`.
pub(crate) fn counts_line(c: Option<&pb::AlertCounts>) -> String {
    let c = c.copied().unwrap_or_default();
    format!(
        "queued {}  delivered {}  displayed {}  dismissed {}  expired {}  cancelled {}",
        c.queued, c.delivered, c.displayed, c.dismissed, c.expired, c.cancelled
    )
}

/// One line of `alert watch`: the time (UTC) and the counts.
pub(crate) fn watch_line(at_ms: i64, s: &pb::AlertStatus) -> String {
    format!(
        "{}  {}",
        format_time_of_day(at_ms),
        counts_line(s.counts.as_ref())
    )
}

fn count_cells(c: Option<&pb::AlertCounts>) -> Vec<String> {
    let c = c.copied().unwrap_or_default();
    [
        c.queued,
        c.delivered,
        c.displayed,
        c.dismissed,
        c.expired,
        c.cancelled,
    ]
    .iter()
    .map(u32::to_string)
    .collect()
}

const COUNT_HEADERS: [&str; 7] = [
    "UNIT",
    "QUEUED",
    "DELIVERED",
    "DISPLAYED",
    "DISMISSED",
    "EXPIRED",
    "CANCELLED",
];

const DELIVERY_HEADERS: [&str; 7] = [
    "HOSTNAME",
    "UNIT",
    "STATE",
    "DISPLAYED",
    "USER",
    "ONLINE",
    "COMPUTER",
];

fn dash_if_empty(text: &str) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else {
        text.to_owned()
    }
}

/// The summary of an alert as `key: value` lines, then its body indented.
pub(crate) fn alert_summary_text(a: &pb::AlertSummary, now_ms: i64) -> String {
    let sender = if a.sender_unit_path.is_empty() {
        a.sender.clone()
    } else {
        format!("{} (as {})", a.sender, a.sender_unit_path)
    };
    let mut text = fields(&[
        ("alert", a.id.clone()),
        ("title", a.title.clone()),
        ("priority", priority_name(a.priority)),
        ("to", dash_if_empty(&a.targets.join(", "))),
        ("computers", a.computers.to_string()),
        ("sender", sender),
        ("sent", format_unix_ms(a.accepted_unix_ms)),
        ("expires", format_unix_ms(a.expires_unix_ms)),
        ("state", alert_state(a, now_ms).to_owned()),
    ]);
    if !a.body.is_empty() {
        text.push('\n');
        for line in a.body.lines() {
            let indented = format!("  {line}");
            text.push_str(indented.trim_end());
            text.push('\n');
        }
    }
    text
}

/// An alert's status for people: the summary, whether it has settled, the
/// counts per org unit with a total, and the computers if asked for.
pub(crate) fn alert_status_text(s: &pb::AlertStatus, now_ms: i64) -> String {
    let alert = s.alert.clone().unwrap_or_default();
    let mut text = alert_summary_text(&alert, now_ms);
    text.push('\n');
    text.push_str(if s.settled {
        "settled: nothing can change any more\n"
    } else {
        "not settled: copies may still be delivered, displayed or dismissed\n"
    });
    text.push('\n');
    let mut units: Vec<&pb::UnitAlertCounts> = s.units.iter().collect();
    units.sort_by(|a, b| a.org_unit_path.cmp(&b.org_unit_path));
    let mut rows: Vec<Vec<String>> = units
        .iter()
        .map(|u| {
            let mut row = vec![dash_if_empty(&u.org_unit_path)];
            row.extend(count_cells(u.counts.as_ref()));
            row
        })
        .collect();
    let mut total = vec!["total".to_owned()];
    total.extend(count_cells(s.counts.as_ref()));
    rows.push(total);
    text.push_str(&table(&COUNT_HEADERS, &rows));
    if !s.computers.is_empty() {
        let mut list: Vec<&pb::ComputerDelivery> = s.computers.iter().collect();
        list.sort_by(|a, b| {
            (&a.org_unit_path, &a.hostname, &a.computer_id).cmp(&(
                &b.org_unit_path,
                &b.hostname,
                &b.computer_id,
            ))
        });
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|d| {
                vec![
                    dash_if_empty(&d.hostname),
                    dash_if_empty(&d.org_unit_path),
                    delivery_state_name(d.state),
                    format_unix_ms(d.displayed_unix_ms),
                    dash_if_empty(&d.user),
                    if d.online { "yes" } else { "no" }.to_owned(),
                    d.computer_id.clone(),
                ]
            })
            .collect();
        text.push('\n');
        text.push_str(&table(&DELIVERY_HEADERS, &rows));
    }
    text
}

/// How long a title may be in `alert list`.
const LIST_TITLE_CHARS: usize = 40;

pub(crate) const ALERT_HEADERS: [&str; 8] = [
    "ID",
    "SENT",
    "PRIORITY",
    "TITLE",
    "SENDER",
    "COMPUTERS",
    "DISPLAYED",
    "STATE",
];

/// Alerts as table rows. DISPLAYED counts the copies that reached a screen
/// (displayed or dismissed since) out of all.
pub(crate) fn alert_rows(list: &[pb::AlertStatus], now_ms: i64) -> Vec<Vec<String>> {
    list.iter()
        .map(|s| {
            let a = s.alert.clone().unwrap_or_default();
            let c = s.counts.unwrap_or_default();
            let total =
                c.queued + c.delivered + c.displayed + c.dismissed + c.expired + c.cancelled;
            vec![
                a.id.clone(),
                format_unix_ms(a.accepted_unix_ms),
                priority_name(a.priority),
                truncate(&a.title, LIST_TITLE_CHARS),
                a.sender.clone(),
                a.computers.to_string(),
                format!("{}/{total}", c.displayed + c.dismissed),
                alert_state(&a, now_ms).to_owned(),
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

    fn sample_status() -> pb::AlertStatus {
        let counts = |queued, delivered, displayed, dismissed| pb::AlertCounts {
            queued,
            delivered,
            displayed,
            dismissed,
            expired: 0,
            cancelled: 0,
        };
        pb::AlertStatus {
            alert: Some(pb::AlertSummary {
                id: "al-12".into(),
                title: "Network outage in all branches until further notice".into(),
                body: "The network is down.\n\nhttps://status.example".into(),
                priority: pb::Priority::Warning as i32,
                sender: "it-anna".into(),
                sender_unit_path: "/Branches".into(),
                accepted_unix_ms: 1_740_818_096_000,
                expires_unix_ms: 1_740_818_096_000 + 4 * 3_600_000,
                cancelled: false,
                computers: 3,
                targets: vec!["/Branches/Branch 3".into(), "/Branches/Branch 7".into()],
            }),
            counts: Some(counts(0, 1, 1, 1)),
            units: vec![
                pb::UnitAlertCounts {
                    org_unit_id: "u-b7".into(),
                    org_unit_path: "/Branches/Branch 7".into(),
                    counts: Some(counts(0, 1, 0, 0)),
                },
                pb::UnitAlertCounts {
                    org_unit_id: "u-b3".into(),
                    org_unit_path: "/Branches/Branch 3".into(),
                    counts: Some(counts(0, 0, 1, 1)),
                },
            ],
            computers: vec![
                pb::ComputerDelivery {
                    computer_id: "c-2".into(),
                    hostname: "pc-b".into(),
                    org_unit_path: "/Branches/Branch 3".into(),
                    state: pb::DeliveryState::Displayed as i32,
                    delivered_unix_ms: 1_740_818_097_000,
                    displayed_unix_ms: 1_740_818_097_000,
                    dismissed_unix_ms: 0,
                    user: "anna".into(),
                    online: true,
                },
                pb::ComputerDelivery {
                    computer_id: "c-1".into(),
                    hostname: "pc-a".into(),
                    org_unit_path: "/Branches/Branch 7".into(),
                    state: pb::DeliveryState::Delivered as i32,
                    delivered_unix_ms: 1_740_818_097_000,
                    ..Default::default()
                },
            ],
            settled: false,
        }
    }

    #[test]
    fn alert_status_text_shows_counts_units_and_computers() {
        let now = 1_740_818_100_000;
        let text = alert_status_text(&sample_status(), now);
        let want = "\
alert:     al-12
title:     Network outage in all branches until further notice
priority:  warning
to:        /Branches/Branch 3, /Branches/Branch 7
computers: 3
sender:    it-anna (as /Branches)
sent:      2025-03-01 08:34:56 UTC
expires:   2025-03-01 12:34:56 UTC
state:     active

  The network is down.

  https://status.example

not settled: copies may still be delivered, displayed or dismissed

UNIT                QUEUED  DELIVERED  DISPLAYED  DISMISSED  EXPIRED  CANCELLED
/Branches/Branch 3  0       0          1          1          0        0
/Branches/Branch 7  0       1          0          0          0        0
total               0       1          1          1          0        0

HOSTNAME  UNIT                STATE      DISPLAYED                USER  ONLINE  COMPUTER
pc-b      /Branches/Branch 3  displayed  2025-03-01 08:34:57 UTC  anna  yes     c-2
pc-a      /Branches/Branch 7  delivered  -                        -     no      c-1
";
        assert_eq!(text, want);
    }

    #[test]
    fn alert_status_json_names_states() {
        let now = 1_740_818_100_000;
        let mut status = sample_status();
        let value = alert_status_json(&status, now);
        assert_eq!(value["alert"]["id"], "al-12");
        assert_eq!(value["alert"]["priority"], "warning");
        assert_eq!(value["alert"]["state"], "active");
        assert_eq!(value["counts"]["dismissed"], 1);
        assert_eq!(value["units"][1]["org_unit_path"], "/Branches/Branch 3");
        assert_eq!(value["units"][1]["counts"]["displayed"], 1);
        assert_eq!(value["computers"][0]["state"], "displayed");
        assert_eq!(value["computers"][0]["user"], "anna");
        assert_eq!(value["settled"], false);

        status.alert.as_mut().unwrap().cancelled = true;
        assert_eq!(
            alert_status_json(&status, now)["alert"]["state"],
            "cancelled"
        );
        status.alert.as_mut().unwrap().cancelled = false;
        assert_eq!(
            alert_status_json(&status, now + 5 * 3_600_000)["alert"]["state"],
            "expired"
        );
    }

    #[test]
    fn alert_rows_truncate_titles_and_count_screens() {
        let now = 1_740_818_100_000;
        let rows = alert_rows(&[sample_status()], now);
        assert_eq!(
            rows[0],
            vec![
                "al-12",
                "2025-03-01 08:34:56 UTC",
                "warning",
                "Network outage in all branches until fu…",
                "it-anna",
                "3",
                "2/3",
                "active",
            ]
        );
        assert_eq!(truncate("short", 40), "short");
        assert_eq!(truncate("a\nb", 40), "a b");
        assert_eq!(truncate("abcdef", 4), "abc…");
    }

    #[test]
    fn watch_lines_show_time_and_counts() {
        let status = sample_status();
        assert_eq!(
            watch_line(1_740_830_401_000, &status),
            "12:00:01  queued 0  delivered 1  displayed 1  dismissed 1  expired 0  cancelled 0"
        );
        assert_eq!(
            counts_line(None),
            "queued 0  delivered 0  displayed 0  dismissed 0  expired 0  cancelled 0"
        );
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
