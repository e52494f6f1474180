//! The organisation: the org tree (create, rename, move, delete), the
//! computers of the selected unit with presence (move, revoke) and its
//! enrollment tokens (create, copy, revoke).

use egui::{RichText, Ui};
use herald_console::pb;

use super::widgets::{
    self, cell, columns, content, content_cell, content_heading, content_selectable, error_text,
    field, header_row, row, weak,
};
use crate::i18n::{COMPUTERS, T};
use crate::state::{Confirm, Console, Form, Session};

const ROW: f32 = 22.0;

pub fn org_ui(ui: &mut Ui, c: &mut Console) {
    if let Some(s) = &mut c.session {
        s.update_org_rows();
    }
    tree_ui(ui, c);
    let has_computer = c
        .session
        .as_ref()
        .and_then(|s| {
            s.org
                .selected_computer
                .as_deref()
                .and_then(|id| s.computer(id))
        })
        .is_some();
    if has_computer {
        egui::Panel::right("computer_details")
            .resizable(true)
            .default_size(320.0)
            .show(ui, |ui| computer_ui(ui, c));
    }
    egui::CentralPanel::default().show(ui, |ui| {
        let selected = c.session.as_ref().and_then(|s| s.org.selected.clone());
        let Some(unit) = selected else {
            weak(ui, c.tr.t(T::PickUnit));
            return;
        };
        unit_ui(ui, c, &unit);
        ui.separator();
        tokens_ui(ui, c, &unit);
        computers_ui(ui, c);
    });
}

fn tree_ui(ui: &mut Ui, c: &mut Console) {
    let tr = c.tr;
    let Some(s) = &mut c.session else { return };
    egui::Panel::left("org_tree")
        .resizable(true)
        .default_size(240.0)
        .show(ui, |ui| {
            ui.add_space(6.0);
            ui.label(RichText::new(tr.t(T::OrgTree)).strong());
            ui.separator();
            let units: Vec<(usize, String, String)> = s
                .tree
                .ordered()
                .map(|(d, u)| (d, u.id.clone(), u.name.clone()))
                .collect();
            let mut pick = None;
            egui::ScrollArea::vertical()
                .id_salt("tree_rows")
                .auto_shrink([false, false])
                .show_rows(ui, ROW, units.len(), |ui, range| {
                    for (depth, id, name) in &units[range] {
                        ui.horizontal(|ui| {
                            ui.set_height(ROW);
                            ui.add_space(14.0 * *depth as f32);
                            let selected = s.org.selected.as_deref() == Some(id.as_str());
                            if content_selectable(ui, selected, name).clicked() {
                                pick = Some(id.clone());
                            }
                            let (total, online) = s.unit_computers(id);
                            if total > 0 {
                                ui.label(RichText::new(format!("{online}/{total}")).weak().small());
                            }
                        });
                    }
                });
            if let Some(id) = pick {
                s.org.selected = Some(id);
                s.org.rename_to.clear();
                s.org.move_to = None;
                s.org.new_token = None;
            }
        });
}

fn unit_ui(ui: &mut Ui, c: &mut Console, unit_id: &str) {
    let tr = c.tr;
    let Some(s) = &mut c.session else { return };
    let Some(unit) = s.tree.get(unit_id).cloned() else {
        return;
    };
    content_heading(ui, &unit.name);
    let (total, online) = s.unit_computers(unit_id);
    ui.horizontal_wrapped(|ui| {
        content(ui, &unit.path);
        ui.label(
            RichText::new(format!(
                "· {} · {} {}",
                tr.count(COMPUTERS, u64::from(total)),
                tr.t(T::Online).to_lowercase(),
                online
            ))
            .weak(),
        );
    });
    if !s
        .perms
        .allows(pb::Capability::ManageOrgUnits, unit_id, &s.tree)
    {
        return;
    }
    ui.add_space(6.0);
    let is_root = unit.parent_id.is_empty();
    let mut action: Option<fn(&mut Console)> = None;
    egui::Grid::new("unit_actions")
        .num_columns(2)
        .spacing([12.0, 8.0])
        .show(ui, |ui| {
            let label = ui.label(tr.t(T::NewChildUnit));
            ui.horizontal(|ui| {
                ui.add(egui::TextEdit::singleline(&mut s.org.new_unit_name).desired_width(220.0))
                    .labelled_by(label.id);
                let busy = s.is_busy(Form::UnitCreate);
                if ui
                    .add_enabled(
                        !busy && !s.org.new_unit_name.trim().is_empty(),
                        egui::Button::new(tr.t(T::Create)),
                    )
                    .clicked()
                {
                    action = Some(Console::create_unit);
                }
                if let Some(e) = s.error(Form::UnitCreate) {
                    error_text(ui, e);
                }
            });
            ui.end_row();
            if !is_root {
                let label = ui.label(tr.t(T::Rename));
                ui.horizontal(|ui| {
                    ui.add(
                        egui::TextEdit::singleline(&mut s.org.rename_to)
                            .hint_text(unit.name.as_str())
                            .desired_width(220.0),
                    )
                    .labelled_by(label.id);
                    if ui
                        .add_enabled(
                            !s.org.rename_to.trim().is_empty(),
                            egui::Button::new(tr.t(T::Rename)),
                        )
                        .clicked()
                    {
                        action = Some(Console::rename_unit);
                    }
                    if let Some(e) = s.error(Form::UnitRename) {
                        error_text(ui, e);
                    }
                });
                ui.end_row();
                let label = ui.label(tr.t(T::MoveTo));
                ui.horizontal(|ui| {
                    let chosen = s
                        .org
                        .move_to
                        .as_deref()
                        .map(|id| s.tree.path(id).to_owned())
                        .unwrap_or_default();
                    let parents: Vec<(String, String)> = s
                        .tree
                        .ordered()
                        .filter(|(_, u)| {
                            !s.tree.is_within(&u.id, unit_id)
                                && u.id != unit.parent_id
                                && s.perms
                                    .allows(pb::Capability::ManageOrgUnits, &u.id, &s.tree)
                        })
                        .map(|(_, u)| (u.id.clone(), u.path.clone()))
                        .collect();
                    egui::ComboBox::from_id_salt("move_unit_to")
                        .selected_text(widgets::content_text(ui, &chosen))
                        .width(220.0)
                        .show_ui(ui, |ui| {
                            for (id, path) in parents {
                                let text = widgets::content_text(ui, &path);
                                ui.selectable_value(&mut s.org.move_to, Some(id), text);
                            }
                        })
                        .response
                        .labelled_by(label.id);
                    if ui
                        .add_enabled(s.org.move_to.is_some(), egui::Button::new(tr.t(T::Move)))
                        .clicked()
                    {
                        action = Some(Console::move_unit);
                    }
                    if let Some(e) = s.error(Form::UnitMove) {
                        error_text(ui, e);
                    }
                });
                ui.end_row();
                ui.label("");
                ui.horizontal(|ui| {
                    if ui.button(tr.t(T::Delete)).clicked() {
                        s.confirm = Some(Confirm::DeleteUnit {
                            id: unit_id.to_owned(),
                        });
                    }
                    if let Some(e) = s.error(Form::UnitDelete) {
                        error_text(ui, e);
                    }
                });
                ui.end_row();
            }
        });
    if let Some(action) = action {
        action(c);
    }
}

fn tokens_ui(ui: &mut Ui, c: &mut Console, unit_id: &str) {
    let tr = c.tr;
    let now = c.now_ms;
    let Some(s) = &mut c.session else { return };
    if !s
        .perms
        .allows(pb::Capability::EnrollAgents, unit_id, &s.tree)
    {
        return;
    }
    let mut create = false;
    let mut revoke = None;
    egui::CollapsingHeader::new(RichText::new(tr.t(T::Tokens)).strong())
        .id_salt("tokens")
        .default_open(true)
        .show(ui, |ui| {
            ui.horizontal_wrapped(|ui| {
                field(
                    ui,
                    tr.t(T::ValidFor),
                    &mut s.org.token_valid_for,
                    "24h",
                    70.0,
                );
                field(ui, tr.t(T::Uses), &mut s.org.token_uses, "1", 50.0);
                let busy = s.is_busy(Form::TokenCreate);
                if ui
                    .add_enabled(!busy, egui::Button::new(tr.t(T::CreateToken)))
                    .clicked()
                {
                    create = true;
                }
                if let Some(e) = s.error(Form::TokenCreate) {
                    error_text(ui, e);
                }
            });
            if let Some((secret, path)) = &s.org.new_token {
                egui::Frame::group(ui.style()).show(ui, |ui| {
                    ui.set_width(ui.available_width());
                    ui.label(tr.fill(T::TokenCreated, &[("unit", path)]));
                    ui.horizontal(|ui| {
                        if ui.button(tr.t(T::Copy)).clicked() {
                            ui.ctx().copy_text(secret.clone());
                        }
                        ui.add(egui::Label::new(RichText::new(secret.as_str()).monospace()).wrap());
                    });
                });
            }
            let tokens: Vec<&pb::EnrollmentToken> = s
                .tokens
                .iter()
                .filter(|t| {
                    t.org_unit_id == unit_id
                        && !t.revoked
                        && t.expires_unix_ms > now
                        && t.uses < t.max_uses.max(1)
                })
                .collect();
            if tokens.is_empty() {
                weak(ui, tr.t(T::NoTokens));
                return;
            }
            let widths = columns(
                ui.available_width(),
                &[110.0, 140.0, 140.0, 60.0, 100.0],
                80.0,
            );
            header_row(
                ui,
                &widths,
                ROW,
                &[
                    tr.t(T::TokenId),
                    tr.t(T::Created),
                    tr.t(T::ExpiresAt),
                    tr.t(T::Uses),
                    tr.t(T::CreatedBy),
                    "",
                ],
            );
            for t in tokens {
                row(ui, &widths, ROW, |ui, col| {
                    match col {
                        0 => cell(ui, RichText::new(t.id.as_str()).monospace()),
                        1 => cell(ui, c_time(now, t.created_unix_ms)),
                        2 => cell(ui, c_time(now, t.expires_unix_ms)),
                        3 => cell(ui, format!("{}/{}", t.uses, t.max_uses.max(1))),
                        4 => cell(ui, t.created_by.as_str()),
                        _ => {
                            let r = ui.small_button(tr.t(T::Revoke));
                            if r.clicked() {
                                revoke = Some(t.id.clone());
                            }
                            r
                        }
                    };
                });
            }
        });
    if create {
        c.create_token();
    }
    if let Some(id) = revoke {
        c.revoke_token(id);
    }
}

/// A time for tables, relative to `now` when within the last two days.
fn c_time(now: i64, ms: i64) -> String {
    herald_console::timefmt::format_near(ms, now)
}

fn computers_ui(ui: &mut Ui, c: &mut Console) {
    let tr = c.tr;
    let now = c.now_ms;
    let Some(s) = &mut c.session else { return };
    if !s.perms.may_see_computers() {
        return;
    }
    ui.separator();
    ui.horizontal_wrapped(|ui| {
        ui.label(RichText::new(tr.t(T::Computers)).strong());
        ui.add_space(12.0);
        field(
            ui,
            tr.t(T::Filter),
            &mut s.org.filter,
            tr.t(T::FilterHint),
            200.0,
        );
        ui.checkbox(&mut s.org.show_revoked, tr.t(T::ShowRevoked));
        let total = s.computers.as_ref().map_or(0, Vec::len);
        ui.label(
            RichText::new(tr.fill(
                T::ComputersShown,
                &[
                    ("shown", &s.org.rows.len().to_string()),
                    ("total", &total.to_string()),
                ],
            ))
            .weak(),
        );
    });
    if let Some(error) = &s.computers_error {
        error_text(ui, error);
    }
    computer_table_ui(ui, s, tr, now);
}

/// The computer table: only the visible rows are laid out, so ten thousand
/// computers scroll as smoothly as ten.
pub fn computer_table_ui(ui: &mut Ui, s: &mut Session, tr: crate::i18n::Tr, now: i64) {
    let widths = columns(
        ui.available_width(),
        &[180.0, 180.0, 70.0, 110.0, 150.0, 80.0],
        80.0,
    );
    header_row(
        ui,
        &widths,
        ROW,
        &[
            tr.t(T::Hostname),
            tr.t(T::Unit),
            tr.t(T::Online),
            tr.t(T::LastSeen),
            tr.t(T::Os),
            tr.t(T::AgentVersion),
            tr.t(T::LoggedInUsers),
        ],
    );
    let Some(list) = &s.computers else {
        ui.spinner();
        return;
    };
    let rows = &s.org.rows;
    let mut pick = None;
    egui::ScrollArea::vertical()
        .id_salt("computer_rows")
        .auto_shrink([false, false])
        .show_rows(ui, ROW, rows.len(), |ui, range| {
            for &i in &rows[range] {
                let Some(computer) = list.get(i) else {
                    continue;
                };
                let selected = s.org.selected_computer.as_deref() == Some(computer.id.as_str());
                let response = row(ui, &widths, ROW, |ui, col| match col {
                    0 => {
                        if content_selectable(ui, selected, &computer.hostname).clicked() {
                            pick = Some(computer.id.clone());
                        }
                    }
                    1 => {
                        content_cell(ui, &computer.org_unit_path);
                    }
                    2 => {
                        if computer.revoked {
                            widgets::tag(ui, tr.t(T::Revoked), ui.visuals().error_fg_color);
                        } else if computer.online {
                            widgets::tag(ui, tr.t(T::Online), widgets::online_color());
                        } else {
                            cell(ui, RichText::new(tr.t(T::Offline)).weak());
                        }
                    }
                    3 => {
                        let when = if computer.online {
                            tr.t(T::JustNow).to_owned()
                        } else {
                            tr.ago(now, computer.last_seen_unix_ms)
                        };
                        cell(ui, when);
                    }
                    4 => {
                        cell(ui, computer.os.as_str());
                    }
                    5 => {
                        cell(ui, computer.agent_version.as_str());
                    }
                    _ => {
                        content_cell(ui, &computer.logged_in_users.join(", "));
                    }
                });
                let _ = response;
            }
        });
    if let Some(id) = pick {
        s.org.computer_move_to = None;
        s.org.selected_computer = Some(id);
    }
}

fn computer_ui(ui: &mut Ui, c: &mut Console) {
    let tr = c.tr;
    let now = c.now_ms;
    let Some(s) = &mut c.session else { return };
    let Some(computer) = s
        .org
        .selected_computer
        .as_deref()
        .and_then(|id| s.computer(id))
        .cloned()
    else {
        return;
    };
    let mut close = false;
    let mut do_move = false;
    ui.add_space(6.0);
    ui.horizontal(|ui| {
        content_heading(ui, &computer.hostname);
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            if ui
                .small_button("✖")
                .on_hover_text(tr.t(T::Dismiss))
                .clicked()
            {
                close = true;
            }
        });
    });
    ui.label(RichText::new(computer.id.as_str()).monospace().weak());
    ui.add_space(4.0);
    egui::Grid::new("computer_grid")
        .num_columns(2)
        .spacing([12.0, 4.0])
        .show(ui, |ui| {
            let line = |ui: &mut Ui, key: T, value: String| {
                ui.label(RichText::new(tr.t(key)).weak());
                content(ui, &value);
                ui.end_row();
            };
            line(ui, T::Unit, computer.org_unit_path.clone());
            let presence = if computer.revoked {
                tr.t(T::Revoked).to_owned()
            } else if computer.online {
                tr.t(T::Online).to_owned()
            } else {
                format!(
                    "{} · {}",
                    tr.t(T::Offline),
                    tr.ago(now, computer.last_seen_unix_ms)
                )
            };
            line(ui, T::State, presence);
            line(ui, T::Os, computer.os.clone());
            line(ui, T::AgentVersion, computer.agent_version.clone());
            line(ui, T::LoggedInUsers, computer.logged_in_users.join(", "));
            line(ui, T::Enrolled, c_time(now, computer.enrolled_unix_ms));
            line(
                ui,
                T::CertValidUntil,
                c_time(now, computer.certificate_not_after_unix_ms),
            );
        });
    let may_manage = s.perms.allows(
        pb::Capability::ManageComputers,
        &computer.org_unit_id,
        &s.tree,
    );
    if may_manage && !computer.revoked {
        ui.separator();
        let label = ui.label(tr.t(T::MoveComputer));
        ui.horizontal(|ui| {
            let chosen = s
                .org
                .computer_move_to
                .as_deref()
                .map(|id| s.tree.path(id).to_owned())
                .unwrap_or_default();
            let targets: Vec<(String, String)> = s
                .tree
                .ordered()
                .filter(|(_, u)| {
                    u.id != computer.org_unit_id
                        && s.perms
                            .allows(pb::Capability::ManageComputers, &u.id, &s.tree)
                })
                .map(|(_, u)| (u.id.clone(), u.path.clone()))
                .collect();
            egui::ComboBox::from_id_salt("move_computer_to")
                .selected_text(widgets::content_text(ui, &chosen))
                .width(180.0)
                .show_ui(ui, |ui| {
                    for (id, path) in targets {
                        let text = widgets::content_text(ui, &path);
                        ui.selectable_value(&mut s.org.computer_move_to, Some(id), text);
                    }
                })
                .response
                .labelled_by(label.id);
            if ui
                .add_enabled(
                    s.org.computer_move_to.is_some(),
                    egui::Button::new(tr.t(T::Move)),
                )
                .clicked()
            {
                do_move = true;
            }
        });
        if let Some(e) = s.error(Form::ComputerMove) {
            error_text(ui, e);
        }
        ui.add_space(8.0);
        let color = ui.visuals().error_fg_color;
        if ui
            .button(RichText::new(tr.t(T::RevokeComputer)).color(color))
            .clicked()
        {
            s.confirm = Some(Confirm::RevokeComputer {
                id: computer.id.clone(),
            });
        }
        if let Some(e) = s.error(Form::ComputerRevoke) {
            error_text(ui, e);
        }
    }
    if close {
        s.org.selected_computer = None;
    }
    if do_move {
        c.move_computer();
    }
}
