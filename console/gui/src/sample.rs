//! A sample organisation fed into a [`Console`] without any server: a city
//! library with branches, computers with presence, alerts in Polish,
//! Persian and Japanese, tokens, admins and audit entries. The frame-time
//! benchmark and the snapshot tests draw it; nothing here touches the
//! network.

use herald_console::pb;

use crate::backend::{Fetched, Reply};
use crate::settings::Settings;
use crate::state::Console;

/// 2025-11-24 10:04 UTC: the sample's "now".
pub const NOW: i64 = 1_763_978_640_000;

const UNITS: [(&str, &str, &str); 9] = [
    ("u-root", "", "City Library"),
    ("u-br", "u-root", "Branches"),
    ("u-b3", "u-br", "Filia nr 3"),
    ("u-b7", "u-br", "Filia nr 7"),
    ("u-b12", "u-br", "Filia nr 12 – Śródmieście"),
    ("u-tokyo", "u-br", "東京分館"),
    ("u-teh", "u-br", "شعبه تهران"),
    ("u-hq", "u-root", "Head office"),
    ("u-it", "u-hq", "IT"),
];

fn units() -> Vec<pb::OrgUnit> {
    let mut out: Vec<pb::OrgUnit> = Vec::new();
    for (id, parent, name) in UNITS {
        let path = match out.iter().find(|u| u.id == parent) {
            None => "/".to_owned(),
            Some(p) if p.path == "/" => format!("/{name}"),
            Some(p) => format!("{}/{name}", p.path),
        };
        out.push(pb::OrgUnit {
            id: id.into(),
            parent_id: parent.into(),
            name: name.into(),
            path,
            created_unix_ms: NOW - 30 * 86_400_000,
        });
    }
    out
}

/// `n` computers spread over the branches, about two thirds online.
pub fn computers(n: usize) -> Vec<pb::Computer> {
    let units = units();
    let leaves: Vec<&pb::OrgUnit> = units
        .iter()
        .filter(|u| !units.iter().any(|c| c.parent_id == u.id))
        .collect();
    (0..n)
        .map(|i| {
            let unit = leaves[i % leaves.len()];
            let online = i % 3 != 2;
            pb::Computer {
                id: format!("c-{i:05x}"),
                org_unit_id: unit.id.clone(),
                org_unit_path: unit.path.clone(),
                hostname: format!("pc-{:03}-{:04}", i % leaves.len(), i),
                os: if i % 4 == 0 {
                    "Windows 11 23H2".into()
                } else {
                    "Debian GNU/Linux 12".into()
                },
                agent_version: "0.1.0".into(),
                online,
                last_seen_unix_ms: NOW - (i as i64 % 97) * 60_000,
                logged_in_users: if online {
                    vec![format!("user{}", i % 50)]
                } else {
                    Vec::new()
                },
                enrolled_unix_ms: NOW - 20 * 86_400_000,
                revoked: false,
                certificate_not_after_unix_ms: NOW + 340 * 86_400_000,
                certificate_serial: format!("{i:016x}"),
            }
        })
        .collect()
}

fn counts(queued: u32, delivered: u32, displayed: u32, dismissed: u32) -> pb::AlertCounts {
    pb::AlertCounts {
        queued,
        delivered,
        displayed,
        dismissed,
        expired: 0,
        cancelled: 0,
    }
}

/// Three alerts: one live, two settled.
pub fn alerts() -> Vec<pb::AlertStatus> {
    let alert = |id: &str, title: &str, body: &str, priority: pb::Priority, ago_min: i64| {
        pb::AlertSummary {
            id: id.into(),
            title: title.into(),
            body: body.into(),
            priority: priority as i32,
            sender: "admin".into(),
            sender_unit_path: "/Head office/IT".into(),
            accepted_unix_ms: NOW - ago_min * 60_000,
            expires_unix_ms: NOW - ago_min * 60_000 + 4 * 3_600_000,
            cancelled: false,
            computers: 24,
            targets: vec!["/Branches".into()],
        }
    };
    vec![
        pb::AlertStatus {
            alert: Some(alert(
                "al-3",
                "Awaria sieci w filii nr 3",
                "Internet wróci około 14:00. Szczegóły: https://status.example.org",
                pb::Priority::Warning,
                2,
            )),
            counts: Some(counts(3, 5, 12, 4)),
            units: vec![
                pb::UnitAlertCounts {
                    org_unit_id: "u-b3".into(),
                    org_unit_path: "/Branches/Filia nr 3".into(),
                    counts: Some(counts(1, 2, 6, 3)),
                },
                pb::UnitAlertCounts {
                    org_unit_id: "u-teh".into(),
                    org_unit_path: "/Branches/شعبه تهران".into(),
                    counts: Some(counts(2, 3, 6, 1)),
                },
            ],
            computers: Vec::new(),
            settled: false,
        },
        pb::AlertStatus {
            alert: Some(alert(
                "al-2",
                "سرور ایمیل تا ساعت ۱۴ در دسترس نیست",
                "همکاران گرامی، لطفا صبور باشید.",
                pb::Priority::Critical,
                95,
            )),
            counts: Some(counts(0, 0, 0, 24)),
            units: Vec::new(),
            computers: Vec::new(),
            settled: true,
        },
        pb::AlertStatus {
            alert: Some(alert(
                "al-1",
                "本日17時にシステムメンテナンスを行います",
                "作業中のファイルは保存してください。",
                pb::Priority::Info,
                60 * 26,
            )),
            counts: Some(counts(0, 0, 0, 24)),
            units: Vec::new(),
            computers: Vec::new(),
            settled: true,
        },
    ]
}

/// The detail of the live alert, with per-computer rows.
pub fn alert_detail() -> pb::AlertStatus {
    let mut status = alerts().remove(0);
    let states = [
        pb::DeliveryState::Displayed,
        pb::DeliveryState::Dismissed,
        pb::DeliveryState::Delivered,
        pb::DeliveryState::Queued,
    ];
    status.computers = computers(24)
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let state = states[i % states.len()];
            let shown = matches!(
                state,
                pb::DeliveryState::Displayed | pb::DeliveryState::Dismissed
            );
            pb::ComputerDelivery {
                computer_id: c.id,
                hostname: c.hostname,
                org_unit_path: c.org_unit_path,
                state: state as i32,
                delivered_unix_ms: if state == pb::DeliveryState::Queued {
                    0
                } else {
                    NOW - 110_000
                },
                displayed_unix_ms: if shown { NOW - 109_000 } else { 0 },
                dismissed_unix_ms: 0,
                user: if shown {
                    format!("user{}", i % 50)
                } else {
                    String::new()
                },
                online: c.online,
            }
        })
        .collect();
    status
}

fn all_grants() -> Vec<pb::Grant> {
    herald_console::grants::CAPABILITIES
        .iter()
        .map(|(_, cap)| pb::Grant {
            capability: *cap as i32,
            scope: Some(pb::Scope {
                organisation: true,
                unit_ids: Vec::new(),
            }),
        })
        .collect()
}

/// The presence summary the server would send for `computers`: counts of
/// the computers directly in each unit, every unit listed, sorted by path.
pub fn presence(computers: &[pb::Computer]) -> pb::PresenceSummary {
    let mut units: Vec<pb::UnitPresence> = units()
        .into_iter()
        .map(|u| {
            let here = computers
                .iter()
                .filter(|c| c.org_unit_id == u.id && !c.revoked);
            let (online, offline) = here.fold((0, 0), |(on, off), c| {
                if c.online {
                    (on + 1, off)
                } else {
                    (on, off + 1)
                }
            });
            pb::UnitPresence {
                org_unit_id: u.id,
                path: u.path,
                online,
                offline,
            }
        })
        .collect();
    units.sort_by(|a, b| a.path.cmp(&b.path));
    pb::PresenceSummary {
        units,
        at_unix_ms: NOW,
    }
}

/// A console logged in as the bootstrap admin, holding `n` computers.
pub fn console(n: usize) -> Console {
    let mut c = Console::new(Settings::default(), None);
    c.now_ms = NOW;
    let me = pb::AdminInfo {
        name: "admin".into(),
        grants: all_grants(),
        created_unix_ms: NOW - 30 * 86_400_000,
        created_by: String::new(),
    };
    c.apply(Reply::LoggedIn {
        server: "https://herald.example.org:7443".into(),
        me: me.clone(),
        expires_unix_ms: NOW + 8 * 3_600_000,
    });
    c.take_requests();
    let alice = pb::AdminInfo {
        name: "alice".into(),
        grants: vec![
            pb::Grant {
                capability: pb::Capability::SendMessages as i32,
                scope: Some(pb::Scope {
                    organisation: true,
                    unit_ids: Vec::new(),
                }),
            },
            pb::Grant {
                capability: pb::Capability::SendQuickAlerts as i32,
                scope: Some(pb::Scope {
                    organisation: false,
                    unit_ids: vec!["u-b3".into()],
                }),
            },
        ],
        created_unix_ms: NOW - 3 * 86_400_000,
        created_by: "admin".into(),
    };
    let tokens = vec![pb::EnrollmentToken {
        id: "tk-7f3a".into(),
        org_unit_id: "u-b3".into(),
        org_unit_path: "/Branches/Filia nr 3".into(),
        created_unix_ms: NOW - 3_600_000,
        created_by: "admin".into(),
        expires_unix_ms: NOW + 23 * 3_600_000,
        max_uses: 10,
        uses: 4,
        revoked: false,
    }];
    let audit = (0..40u64)
        .map(|i| pb::AuditEntry {
            seq: 1000 - i,
            at_unix_ms: NOW - i as i64 * 7 * 60_000,
            admin: if i % 3 == 0 { "alice" } else { "admin" }.into(),
            action: [
                "alert.send",
                "computer.move",
                "token.create",
                "org_unit.create",
            ][i as usize % 4]
                .into(),
            target: format!("c-{i:05x}"),
            org_unit_id: "u-b3".into(),
            details: "to /Branches/Filia nr 3".into(),
        })
        .collect();
    let computers = computers(n);
    c.apply(Reply::Presence(presence(&computers)));
    for fetched in [
        Fetched::Units(units()),
        Fetched::Computers(computers),
        Fetched::Tokens(tokens),
        Fetched::Admins(vec![me, alice]),
        Fetched::Alerts(alerts()),
        Fetched::Audit {
            request: pb::ListAuditLogRequest {
                limit: 200,
                ..Default::default()
            },
            entries: audit,
        },
    ] {
        c.apply(Reply::Fetched(fetched));
    }
    c.take_requests();
    c
}
