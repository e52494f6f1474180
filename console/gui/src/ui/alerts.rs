//! Quick alerts: the list of recent alerts, the composer with its audience
//! tree, and an alert's live progress (overall, per unit, per computer).

use egui::{RichText, Ui};
use herald_console::pb;

use super::widgets::{
    self, cell, columns, content, content_cell, content_heading, content_selectable, error_text,
    header_row, row, weak,
};
use crate::i18n::{COMPUTERS, T};
use crate::state::{Confirm, Console, EXPIRY_CHOICES};

const ROW: f32 = 22.0;

pub fn alerts_ui(ui: &mut Ui, c: &mut Console) {
    let tr = c.tr;
    let mut open = None;
    let mut new = false;
    egui::Panel::left("alert_list")
        .resizable(true)
        .default_size(280.0)
        .show(ui, |ui| {
            ui.add_space(6.0);
            let composing = c
                .session
                .as_ref()
                .is_some_and(|s| s.alerts_view.opened.is_none());
            if ui
                .add_sized(
                    [ui.available_width(), 28.0],
                    egui::Button::selectable(composing, tr.t(T::NewAlert)),
                )
                .clicked()
            {
                new = true;
            }
            ui.separator();
            ui.label(RichText::new(tr.t(T::RecentAlerts)).strong());
            let Some(s) = &c.session else { return };
            let Some(alerts) = &s.alerts else {
                ui.spinner();
                return;
            };
            if alerts.is_empty() {
                weak(ui, tr.t(T::NoAlertsYet));
            }
            let opened = s.alerts_view.opened.as_deref();
            egui::ScrollArea::vertical()
                .id_salt("alert_list_rows")
                .auto_shrink([false, false])
                .show_rows(ui, 40.0, alerts.len(), |ui, range| {
                    for status in &alerts[range] {
                        let Some(a) = &status.alert else { continue };
                        let counts = status.counts.unwrap_or_default();
                        ui.vertical(|ui| {
                            ui.set_height(40.0);
                            ui.horizontal(|ui| {
                                let (dot, _) = ui.allocate_exact_size(
                                    egui::vec2(8.0, 8.0),
                                    egui::Sense::hover(),
                                );
                                ui.painter().circle_filled(
                                    dot.center(),
                                    4.0,
                                    widgets::priority_color(a.priority),
                                );
                                if content_selectable(ui, opened == Some(a.id.as_str()), &a.title)
                                    .clicked()
                                {
                                    open = Some(a.id.clone());
                                }
                            });
                            ui.horizontal(|ui| {
                                ui.add_space(16.0);
                                ui.label(
                                    RichText::new(format!(
                                        "{} · {}/{}",
                                        c.time(a.accepted_unix_ms),
                                        counts.displayed + counts.dismissed,
                                        widgets::total(&counts)
                                    ))
                                    .weak()
                                    .small(),
                                );
                            });
                        });
                    }
                });
        });
    if new {
        c.new_alert();
    }
    if let Some(id) = open {
        c.open_alert(&id);
    }
    egui::CentralPanel::default().show(ui, |ui| {
        let opened = c
            .session
            .as_ref()
            .and_then(|s| s.alerts_view.opened.clone());
        match opened {
            Some(_) => progress_ui(ui, c),
            None => {
                let may_send = c
                    .session
                    .as_ref()
                    .is_some_and(|s| s.perms.has_any(pb::Capability::SendQuickAlerts));
                if may_send {
                    compose_ui(ui, c);
                } else {
                    weak(ui, tr.t(T::NoAlertSelected));
                }
            }
        }
    });
}

fn compose_ui(ui: &mut Ui, c: &mut Console) {
    let tr = c.tr;
    c.update_preview();
    let presence: Vec<(String, u32)> = c
        .session
        .as_ref()
        .map(|s| {
            s.presence
                .iter()
                .map(|p| (p.unit_id.clone(), p.online + p.offline))
                .collect()
        })
        .unwrap_or_default();
    let covered: Vec<(usize, pb::OrgUnit, bool, bool)> = match &c.session {
        Some(s) => s
            .tree
            .ordered()
            .map(|(depth, u)| {
                let allowed = s
                    .perms
                    .allows(pb::Capability::SendQuickAlerts, &u.id, &s.tree);
                (depth, u.clone(), allowed, c.audience_covers(&u.id))
            })
            .collect(),
        None => return,
    };
    let Some(s) = &mut c.session else { return };
    let busy = s.is_busy(crate::state::Form::AlertSend);
    let compose = &mut s.alerts_view.compose;
    let mut submit = false;
    egui::ScrollArea::vertical()
        .id_salt("compose")
        .auto_shrink([false, false])
        .show(ui, |ui| {
            ui.heading(tr.t(T::NewAlert));
            ui.add_space(8.0);
            let width = (ui.available_width() - 24.0).min(720.0);
            egui::Grid::new("compose_grid")
                .num_columns(2)
                .spacing([12.0, 10.0])
                .show(ui, |ui| {
                    let label = ui.label(tr.t(T::Title));
                    ui.add(
                        egui::TextEdit::singleline(&mut compose.title)
                            .desired_width(width - 130.0)
                            .char_limit(200),
                    )
                    .labelled_by(label.id);
                    ui.end_row();

                    let label = ui.label(tr.t(T::Body));
                    ui.add(
                        egui::TextEdit::multiline(&mut compose.body)
                            .desired_width(width - 130.0)
                            .desired_rows(4),
                    )
                    .labelled_by(label.id);
                    ui.end_row();

                    ui.label(tr.t(T::Priority));
                    ui.horizontal(|ui| {
                        for (p, key) in [
                            (pb::Priority::Info, T::PriorityInfo),
                            (pb::Priority::Warning, T::PriorityWarning),
                            (pb::Priority::Critical, T::PriorityCritical),
                        ] {
                            ui.radio_value(&mut compose.priority, p, tr.t(key));
                        }
                    });
                    ui.end_row();

                    let label = ui.label(tr.t(T::Expires));
                    egui::ComboBox::from_id_salt("expiry")
                        .selected_text(
                            EXPIRY_CHOICES[compose.expiry.min(EXPIRY_CHOICES.len() - 1)].1,
                        )
                        .show_ui(ui, |ui| {
                            for (i, (_, name)) in EXPIRY_CHOICES.iter().enumerate() {
                                ui.selectable_value(&mut compose.expiry, i, *name);
                            }
                        })
                        .response
                        .labelled_by(label.id);
                    ui.end_row();
                });

            ui.add_space(10.0);
            ui.label(RichText::new(tr.t(T::Audience)).strong());
            ui.checkbox(&mut compose.everyone, tr.t(T::EveryoneAllowed));
            egui::Frame::group(ui.style()).show(ui, |ui| {
                ui.set_width(width);
                egui::ScrollArea::vertical()
                    .id_salt("audience")
                    .max_height(220.0)
                    .auto_shrink([false, true])
                    .show(ui, |ui| {
                        for (depth, unit, allowed, covered) in &covered {
                            ui.horizontal(|ui| {
                                ui.add_space(18.0 * *depth as f32);
                                let direct = compose.units.contains(&unit.id);
                                let inherited = *covered && !direct;
                                let mut checked = *covered;
                                let name = if unit.parent_id.is_empty() {
                                    format!("{} (/)", unit.name)
                                } else {
                                    unit.name.clone()
                                };
                                let enabled = *allowed && !inherited && !compose.everyone;
                                let response = ui.add_enabled(
                                    enabled,
                                    egui::Checkbox::new(
                                        &mut checked,
                                        widgets::content_text(ui, &name),
                                    ),
                                );
                                if response.changed() {
                                    if checked {
                                        compose.units.insert(unit.id.clone());
                                    } else {
                                        compose.units.remove(&unit.id);
                                    }
                                }
                                if let Some((_, n)) = presence.iter().find(|(id, _)| *id == unit.id)
                                {
                                    ui.label(
                                        RichText::new(tr.count(COMPUTERS, u64::from(*n))).weak(),
                                    );
                                }
                            });
                        }
                    });
            });
            ui.add_space(6.0);
            let reach = match &compose.preview {
                _ if compose.units.is_empty() && !compose.everyone => {
                    RichText::new(tr.t(T::PickAudience)).weak()
                }
                None => RichText::new(tr.t(T::Counting)).weak(),
                Some(Ok(a)) => RichText::new(tr.fill(
                    T::Reaches,
                    &[
                        ("computers", &tr.count(COMPUTERS, u64::from(a.computers))),
                        ("online", &a.online.to_string()),
                    ],
                ))
                .strong(),
                Some(Err(e)) => RichText::new(e.as_str()).color(ui.visuals().error_fg_color),
            };
            ui.label(reach);
            if let Some(Ok(a)) = &compose.preview
                && a.units.len() > 1
            {
                for (path, n, online) in &a.units {
                    ui.horizontal(|ui| {
                        ui.add_space(12.0);
                        content(ui, path);
                        ui.label(
                            RichText::new(format!(
                                "{} ({} {})",
                                tr.count(COMPUTERS, u64::from(*n)),
                                online,
                                tr.t(T::Online).to_lowercase()
                            ))
                            .weak(),
                        );
                    });
                }
            }
            ui.add_space(8.0);
            if let Some(error) = &compose.error {
                error_text(ui, error);
            }
            let text = if busy {
                tr.t(T::Sending)
            } else {
                tr.t(T::Send)
            };
            let send = ui.add_enabled(
                !busy,
                egui::Button::new(RichText::new(text).strong()).min_size(egui::vec2(120.0, 30.0)),
            );
            if send.clicked() {
                submit = true;
            }
        });
    if submit {
        c.submit_alert();
    }
}

fn progress_ui(ui: &mut Ui, c: &mut Console) {
    let tr = c.tr;
    let now = c.now_ms;
    let Some(s) = &c.session else { return };
    let Some(status) = &s.alerts_view.status else {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label(tr.t(T::Loading));
        });
        return;
    };
    let Some(a) = &status.alert else { return };
    let counts = status.counts.unwrap_or_default();
    let may_cancel =
        !status.settled && !a.cancelled && s.perms.has_any(pb::Capability::SendQuickAlerts);
    let mut cancel = false;
    let alert_id = a.id.clone();
    ui.horizontal(|ui| {
        widgets::tag(
            ui,
            widgets::priority_name(tr, a.priority),
            widgets::priority_color(a.priority),
        );
        content_heading(ui, &a.title);
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            if may_cancel && ui.button(tr.t(T::CancelAlert)).clicked() {
                cancel = true;
            }
            if a.cancelled {
                widgets::tag(ui, tr.t(T::CancelledAlert), ui.visuals().error_fg_color);
            } else if status.settled {
                ui.label(RichText::new(tr.t(T::Settled)).weak());
            } else {
                ui.spinner();
                widgets::tag(ui, tr.t(T::Live), widgets::online_color());
            }
        });
    });
    if !a.body.is_empty() {
        let color = ui.visuals().text_color();
        let font = egui::TextStyle::Body.resolve(ui.style());
        herald_popup::ui::bidi_text_ui(ui, &a.body, font, color, false);
    }
    ui.add_space(4.0);
    egui::Grid::new("alert_meta")
        .num_columns(4)
        .spacing([16.0, 4.0])
        .show(ui, |ui| {
            ui.label(RichText::new(tr.t(T::Sender)).weak());
            content(ui, &format!("{} · {}", a.sender, a.sender_unit_path));
            ui.label(RichText::new(tr.t(T::Targets)).weak());
            content(ui, &a.targets.join(", "));
            ui.end_row();
            ui.label(RichText::new(tr.t(T::SentAt)).weak());
            ui.label(format!(
                "{} ({})",
                c.time(a.accepted_unix_ms),
                tr.ago(now, a.accepted_unix_ms)
            ));
            ui.label(RichText::new(tr.t(T::ExpiresAt)).weak());
            ui.label(c.time(a.expires_unix_ms));
            ui.end_row();
        });
    ui.separator();

    let seen = counts.displayed + counts.dismissed;
    let total = widgets::total(&counts);
    ui.horizontal(|ui| {
        ui.label(RichText::new(tr.t(T::Overall)).strong());
        ui.label(tr.fill(
            T::SeenOnScreen,
            &[("seen", &seen.to_string()), ("total", &total.to_string())],
        ));
    });
    widgets::counts_bar(ui, tr, &counts, ui.available_width(), 18.0);
    widgets::counts_legend(ui, tr, &counts);
    ui.add_space(6.0);

    if !status.units.is_empty() {
        ui.label(RichText::new(tr.t(T::PerUnit)).strong());
        let widths = columns(ui.available_width(), &[220.0, 70.0], 100.0);
        let unit_rows = status.units.len().min(8);
        egui::ScrollArea::vertical()
            .id_salt("per_unit")
            .max_height((ROW + 4.0) * unit_rows as f32)
            .auto_shrink([false, true])
            .show_rows(ui, ROW, status.units.len(), |ui, range| {
                for u in &status.units[range] {
                    let uc = u.counts.unwrap_or_default();
                    row(ui, &widths, ROW, |ui, col| match col {
                        0 => {
                            content_cell(ui, &u.org_unit_path);
                        }
                        1 => {
                            cell(
                                ui,
                                format!("{}/{}", uc.displayed + uc.dismissed, widgets::total(&uc)),
                            );
                        }
                        _ => {
                            widgets::counts_bar(ui, tr, &uc, ui.available_width(), 12.0);
                        }
                    });
                }
            });
        ui.add_space(6.0);
    }

    ui.label(RichText::new(tr.t(T::PerComputer)).strong());
    let widths = columns(
        ui.available_width(),
        &[170.0, 170.0, 90.0, 110.0, 130.0, 130.0],
        60.0,
    );
    header_row(
        ui,
        &widths,
        ROW,
        &[
            tr.t(T::Hostname),
            tr.t(T::Unit),
            tr.t(T::State),
            tr.t(T::ShownTo),
            tr.t(T::DeliveredAt),
            tr.t(T::DisplayedAt),
            tr.t(T::Online),
        ],
    );
    let dark = ui.visuals().dark_mode;
    egui::ScrollArea::vertical()
        .id_salt("per_computer")
        .auto_shrink([false, false])
        .show_rows(ui, ROW, status.computers.len(), |ui, range| {
            for d in &status.computers[range] {
                row(ui, &widths, ROW, |ui, col| match col {
                    0 => {
                        content_cell(ui, &d.hostname);
                    }
                    1 => {
                        content_cell(ui, &d.org_unit_path);
                    }
                    2 => {
                        let state = pb::DeliveryState::try_from(d.state)
                            .unwrap_or(pb::DeliveryState::Unspecified);
                        cell(
                            ui,
                            RichText::new(widgets::state_name(tr, d.state))
                                .color(widgets::state_color(state, dark))
                                .strong(),
                        );
                    }
                    3 => {
                        cell(ui, d.user.as_str());
                    }
                    4 => {
                        cell(ui, c.time(d.delivered_unix_ms));
                    }
                    5 => {
                        cell(ui, c.time(d.displayed_unix_ms));
                    }
                    _ => {
                        if d.online {
                            widgets::tag(ui, "●", widgets::online_color());
                        } else {
                            cell(ui, RichText::new("○").weak());
                        }
                    }
                });
            }
        });
    if cancel {
        c.ask(Confirm::CancelAlert { id: alert_id });
    }
}
