//! The dashboard: computers online and offline per org unit (live, from the
//! presence stream), and the recent alerts with their live delivery
//! progress.

use egui::{RichText, Ui};
use herald_console::pb;

use super::widgets::{self, cell, columns, content_cell, header_row, row, weak};
use crate::backend::Connection;
use crate::i18n::T;
use crate::state::Console;

const ROW: f32 = 22.0;

pub fn dashboard_ui(ui: &mut Ui, c: &mut Console) {
    ui.columns(2, |cols| {
        let [left, right] = cols else { return };
        presence_ui(left, c);
        recent_alerts_ui(right, c);
    });
}

fn presence_ui(ui: &mut Ui, c: &mut Console) {
    let tr = c.tr;
    let Some(s) = &c.session else { return };
    ui.heading(tr.t(T::ComputersPerUnit));
    ui.add_space(6.0);
    if let Some(error) = &s.presence_error {
        widgets::error_text(ui, error);
    }
    // The rows need both the counts and the tree to place them in.
    if s.presence_units.is_none() || s.tree.units().is_empty() {
        if s.presence_error.is_none() {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(tr.t(T::Loading));
            });
        }
        return;
    }
    if s.connection != Connection::Online {
        // The counts stop following the computers until the server is back.
        weak(
            ui,
            &tr.fill(T::PresenceAsOf, &[("time", &c.time(s.presence_at_ms))]),
        );
    }
    if s.presence.is_empty() {
        weak(ui, tr.t(T::NoComputersYet));
        return;
    }
    let widths = columns(ui.available_width(), &[200.0, 60.0, 60.0], 80.0);
    header_row(
        ui,
        &widths,
        ROW,
        &[tr.t(T::Unit), tr.t(T::Online), tr.t(T::Offline), ""],
    );
    let dark = ui.visuals().dark_mode;
    egui::ScrollArea::vertical()
        .id_salt("presence")
        .auto_shrink([false, false])
        .show_rows(ui, ROW, s.presence.len(), |ui, range| {
            for p in &s.presence[range] {
                row(ui, &widths, ROW, |ui, col| match col {
                    0 => {
                        ui.add_space(14.0 * p.depth as f32);
                        content_cell(ui, &p.name);
                    }
                    1 => {
                        cell(
                            ui,
                            RichText::new(p.online.to_string()).color(widgets::online_color()),
                        );
                    }
                    2 => {
                        cell(ui, p.offline.to_string());
                    }
                    _ => {
                        let total = (p.online + p.offline).max(1);
                        let (rect, response) = ui.allocate_exact_size(
                            egui::vec2(ui.available_width(), 10.0),
                            egui::Sense::hover(),
                        );
                        let painter = ui.painter_at(rect);
                        painter.rect_filled(rect, 3.0, ui.visuals().extreme_bg_color);
                        painter.rect_filled(
                            rect,
                            3.0,
                            widgets::state_color(pb::DeliveryState::Queued, dark),
                        );
                        let mut on = rect;
                        on.set_width(rect.width() * p.online as f32 / total as f32);
                        painter.rect_filled(on, 3.0, widgets::online_color());
                        let text = format!(
                            "{}: {} {}, {} {}",
                            p.name,
                            tr.t(T::Online),
                            p.online,
                            tr.t(T::Offline),
                            p.offline
                        );
                        response.widget_info(|| {
                            egui::WidgetInfo::labeled(egui::Role::ProgressIndicator, true, &text)
                        });
                    }
                });
            }
        });
}

fn recent_alerts_ui(ui: &mut Ui, c: &mut Console) {
    let tr = c.tr;
    let now = c.now_ms;
    let Some(s) = &c.session else { return };
    ui.heading(tr.t(T::RecentAlerts));
    ui.add_space(6.0);
    if !s.perms.may_see_alerts() {
        weak(ui, tr.t(T::AlertsHidden));
        return;
    }
    if let Some(error) = &s.alerts_error {
        widgets::error_text(ui, error);
    }
    let Some(alerts) = &s.alerts else {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label(tr.t(T::Loading));
        });
        return;
    };
    if alerts.is_empty() {
        weak(ui, tr.t(T::NoAlertsYet));
        return;
    }
    let mut open = None;
    let row_height = 64.0;
    egui::ScrollArea::vertical()
        .id_salt("recent_alerts")
        .auto_shrink([false, false])
        .show_rows(ui, row_height, alerts.len(), |ui, range| {
            for status in &alerts[range] {
                let Some(a) = &status.alert else { continue };
                let counts = status.counts.unwrap_or_default();
                egui::Frame::group(ui.style()).show(ui, |ui| {
                    ui.set_width(ui.available_width());
                    ui.set_height(row_height - 14.0);
                    ui.horizontal(|ui| {
                        widgets::tag(
                            ui,
                            widgets::priority_name(tr, a.priority),
                            widgets::priority_color(a.priority),
                        );
                        // Right-hand items first, so a long title is cut
                        // before it reaches them.
                        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                            if ui.small_button(tr.t(T::Open)).clicked() {
                                open = Some(a.id.clone());
                            }
                            let state = if a.cancelled {
                                tr.t(T::CancelledAlert)
                            } else if status.settled {
                                tr.t(T::SettledShort)
                            } else {
                                tr.t(T::Live)
                            };
                            ui.label(RichText::new(state).weak());
                            ui.label(RichText::new(tr.ago(now, a.accepted_unix_ms)).weak());
                            ui.with_layout(
                                egui::Layout::left_to_right(egui::Align::Center),
                                |ui| {
                                    widgets::content_cell(ui, &a.title);
                                },
                            );
                        });
                    });
                    ui.horizontal(|ui| {
                        let seen = counts.displayed + counts.dismissed;
                        let total = widgets::total(&counts);
                        let label = tr.fill(
                            T::SeenOnScreen,
                            &[("seen", &seen.to_string()), ("total", &total.to_string())],
                        );
                        ui.label(label);
                        widgets::counts_bar(ui, tr, &counts, ui.available_width(), 10.0);
                    });
                });
            }
        });
    if let Some(id) = open {
        c.open_alert(&id);
    }
}
