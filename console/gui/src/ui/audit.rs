//! The audit log: filter by admin, action, unit and time; newest first.

use egui::{RichText, Ui};

use super::widgets::{cell, columns, content_cell, error_text, field, header_row, row, weak};
use crate::i18n::T;
use crate::state::Console;

const ROW: f32 = 22.0;

pub fn audit_ui(ui: &mut Ui, c: &mut Console) {
    let tr = c.tr;
    let offset_ms = i64::from(c.utc_offset_s) * 1000;
    let Some(s) = &mut c.session else { return };
    let mut search = false;
    let mut older = false;
    ui.heading(tr.t(T::NavAudit));
    ui.add_space(6.0);
    ui.horizontal_wrapped(|ui| {
        let admins: Vec<String> = s.admins.iter().map(|a| a.name.clone()).collect();
        let label = ui.label(tr.t(T::AuditAdmin));
        if admins.is_empty() {
            ui.add(egui::TextEdit::singleline(&mut s.audit.admin).desired_width(120.0))
                .labelled_by(label.id);
        } else {
            let shown = if s.audit.admin.is_empty() {
                "—".to_owned()
            } else {
                s.audit.admin.clone()
            };
            egui::ComboBox::from_id_salt("audit_admin")
                .selected_text(shown)
                .width(120.0)
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut s.audit.admin, String::new(), "—");
                    for name in admins {
                        ui.selectable_value(&mut s.audit.admin, name.clone(), name);
                    }
                })
                .response
                .labelled_by(label.id);
        }
        field(
            ui,
            tr.t(T::AuditAction),
            &mut s.audit.action,
            tr.t(T::AuditActionHint),
            150.0,
        );
        let label = ui.label(tr.t(T::Unit));
        let chosen = s.audit.unit.as_deref().map_or_else(
            || tr.t(T::AnyUnit).to_owned(),
            |id| s.tree.path(id).to_owned(),
        );
        let units: Vec<(String, String)> = s
            .tree
            .ordered()
            .map(|(_, u)| (u.id.clone(), u.path.clone()))
            .collect();
        egui::ComboBox::from_id_salt("audit_unit")
            .selected_text(super::widgets::content_text(ui, &chosen))
            .width(160.0)
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut s.audit.unit, None, tr.t(T::AnyUnit));
                for (id, path) in units {
                    let text = super::widgets::content_text(ui, &path);
                    ui.selectable_value(&mut s.audit.unit, Some(id), text);
                }
            })
            .response
            .labelled_by(label.id);
        field(
            ui,
            tr.t(T::Since),
            &mut s.audit.since,
            tr.t(T::SinceHint),
            130.0,
        );
        field(
            ui,
            tr.t(T::Until),
            &mut s.audit.until,
            tr.t(T::SinceHint),
            130.0,
        );
        if ui
            .add_enabled(!s.audit.loading, egui::Button::new(tr.t(T::Search)))
            .clicked()
        {
            search = true;
        }
        if s.audit.loading {
            ui.spinner();
        }
    });
    if let Some(error) = &s.audit.error {
        error_text(ui, error);
    }
    ui.add_space(6.0);
    let widths = columns(
        ui.available_width(),
        &[150.0, 100.0, 150.0, 170.0, 170.0],
        120.0,
    );
    header_row(
        ui,
        &widths,
        ROW,
        &[
            tr.t(T::When),
            tr.t(T::AuditAdmin),
            tr.t(T::AuditAction),
            tr.t(T::Target),
            tr.t(T::Unit),
            tr.t(T::Details),
        ],
    );
    if s.audit.searched && s.audit.entries.is_empty() {
        weak(ui, tr.t(T::NoAuditEntries));
    }
    let more = s.audit.more;
    let entries = &s.audit.entries;
    let tree = &s.tree;
    let footer = if more { 36.0 } else { 0.0 };
    egui::ScrollArea::vertical()
        .id_salt("audit_rows")
        .max_height((ui.available_height() - footer).max(ROW))
        .auto_shrink([false, false])
        .show_rows(ui, ROW, entries.len(), |ui, range| {
            for e in &entries[range] {
                let response = row(ui, &widths, ROW, |ui, col| {
                    match col {
                        0 => cell(ui, time_of(e.at_unix_ms, offset_ms)),
                        1 => cell(ui, e.admin.as_str()),
                        2 => cell(ui, RichText::new(e.action.as_str()).monospace()),
                        3 => content_cell(ui, &e.target),
                        4 => content_cell(
                            ui,
                            if e.org_unit_id.is_empty() {
                                "-"
                            } else {
                                tree.path(&e.org_unit_id)
                            },
                        ),
                        _ => content_cell(ui, &e.details),
                    };
                });
                if !e.details.is_empty() {
                    response.on_hover_text(e.details.as_str());
                }
            }
        });
    if more && ui.button(tr.t(T::LoadOlder)).clicked() {
        older = true;
    }
    if search {
        c.search_audit(false);
    } else if older {
        c.search_audit(true);
    } else if !c
        .session
        .as_ref()
        .is_some_and(|s| s.audit.searched || s.audit.loading || s.audit.error.is_some())
    {
        // First visit: show the newest entries without asking.
        c.search_audit(false);
    }
}

fn time_of(ms: i64, offset_ms: i64) -> String {
    let text = herald_console::timefmt::format_unix_ms(ms + offset_ms);
    text.get(..19).unwrap_or(&text).to_owned()
}
