//! Drawing the console. Thin: every decision is in [`crate::state`]; these
//! functions read the state, draw it and call its methods on clicks.

mod admins;
mod alerts;
mod audit;
mod dashboard;
mod org;
pub mod widgets;

use egui::{Align, Layout, RichText, Ui};

use crate::backend::Connection;
use crate::i18n::{Lang, T};
use crate::perms::Screen;
use crate::settings::TrustMode;
use crate::state::{Confirm, Console};
use widgets::error_text;

/// The whole window.
pub fn console_ui(ui: &mut Ui, c: &mut Console) {
    if c.session.is_none() {
        egui::CentralPanel::default().show(ui, |ui| login_ui(ui, c));
        return;
    }
    top_bar_ui(ui, c);
    notice_ui(ui, c);
    nav_ui(ui, c);
    egui::CentralPanel::default().show(ui, |ui| {
        let screen = c.session.as_ref().map(|s| s.screen);
        match screen {
            Some(Screen::Dashboard) => dashboard::dashboard_ui(ui, c),
            Some(Screen::Alerts) => alerts::alerts_ui(ui, c),
            Some(Screen::Organisation) => org::org_ui(ui, c),
            Some(Screen::Admins) => admins::admins_ui(ui, c),
            Some(Screen::Audit) => audit::audit_ui(ui, c),
            None => {}
        }
    });
    confirm_ui(ui, c);
}

/// The language switch. In a right-to-left layout (the top bar's right
/// side) the combo box is added first so that the label still reads before it.
fn lang_ui(ui: &mut Ui, c: &mut Console) {
    let mut lang = c.settings.lang;
    let combo = |ui: &mut Ui, lang: &mut Lang| {
        egui::ComboBox::from_id_salt("language")
            .selected_text(lang.native_name())
            .show_ui(ui, |ui| {
                for l in Lang::ALL {
                    ui.selectable_value(lang, l, l.native_name());
                }
            })
            .response
    };
    if ui.layout().prefer_right_to_left() {
        let response = combo(ui, &mut lang);
        let label = ui.label(c.tr.t(T::Language));
        response.labelled_by(label.id);
    } else {
        let label = ui.label(c.tr.t(T::Language));
        combo(ui, &mut lang).labelled_by(label.id);
    }
    c.set_lang(lang);
}

fn login_ui(ui: &mut Ui, c: &mut Console) {
    let tr = c.tr;
    ui.with_layout(Layout::right_to_left(Align::Min), |ui| lang_ui(ui, c));
    ui.add_space((ui.available_height() * 0.15).max(8.0));
    ui.vertical_centered(|ui| {
        ui.heading(tr.t(T::AppTitle));
        ui.add_space(4.0);
        ui.label(tr.t(T::LoginHeading));
        ui.add_space(16.0);
    });
    let width = 460.0_f32.min(ui.available_width());
    let margin = ((ui.available_width() - width) / 2.0).max(0.0);
    ui.horizontal(|ui| {
        ui.add_space(margin);
        ui.vertical(|ui| {
            ui.set_width(width);
            let f = &mut c.login;
            let busy = f.busy;
            let grid = egui::Grid::new("login")
                .num_columns(2)
                .spacing([12.0, 10.0]);
            let mut submit = false;
            grid.show(ui, |ui| {
                let edit_width = width - 150.0;
                let row =
                    |ui: &mut Ui, label: &str, value: &mut String, hint: &str, secret: bool| {
                        let label = ui.label(label);
                        let response = ui
                            .add(
                                egui::TextEdit::singleline(value)
                                    .hint_text(hint)
                                    .password(secret)
                                    .desired_width(edit_width),
                            )
                            .labelled_by(label.id);
                        ui.end_row();
                        response
                    };
                row(
                    ui,
                    tr.t(T::Server),
                    &mut f.server,
                    tr.t(T::ServerHint),
                    false,
                );
                ui.label(tr.t(T::TrustBy));
                ui.horizontal(|ui| {
                    ui.radio_value(&mut f.trust, TrustMode::CaFile, tr.t(T::CaFile));
                    ui.radio_value(&mut f.trust, TrustMode::Fingerprint, tr.t(T::Fingerprint));
                });
                ui.end_row();
                match f.trust {
                    TrustMode::CaFile => row(
                        ui,
                        tr.t(T::CaFilePath),
                        &mut f.ca_file,
                        tr.t(T::CaFileHint),
                        false,
                    ),
                    TrustMode::Fingerprint => row(
                        ui,
                        tr.t(T::FingerprintValue),
                        &mut f.fingerprint,
                        tr.t(T::FingerprintHint),
                        false,
                    ),
                };
                row(ui, tr.t(T::User), &mut f.user, "", false);
                let pw = row(ui, tr.t(T::Password), &mut f.password, "", true);
                submit = pw.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            });
            ui.add_space(10.0);
            ui.horizontal(|ui| {
                let text = if busy {
                    tr.t(T::LoggingIn)
                } else {
                    tr.t(T::LogIn)
                };
                if ui
                    .add_enabled(
                        !busy,
                        egui::Button::new(text).min_size(egui::vec2(120.0, 28.0)),
                    )
                    .clicked()
                {
                    submit = true;
                }
                if busy {
                    ui.spinner();
                }
            });
            if let Some(error) = &c.login.error {
                ui.add_space(8.0);
                error_text(ui, error);
            }
            if submit && !busy {
                c.submit_login();
            }
        });
    });
}

fn top_bar_ui(ui: &mut Ui, c: &mut Console) {
    let tr = c.tr;
    egui::Panel::top("top").show(ui, |ui| {
        ui.add_space(4.0);
        ui.horizontal(|ui| {
            ui.label(RichText::new(tr.t(T::AppTitle)).strong().size(16.0));
            ui.separator();
            if let Some(s) = &c.session {
                ui.label(tr.fill(T::LoggedInAs, &[("user", &s.user), ("server", &s.server)]));
                ui.separator();
                match &s.connection {
                    Connection::Online => {
                        widgets::tag(
                            ui,
                            &format!("● {}", tr.t(T::Connected)),
                            widgets::online_color(),
                        );
                    }
                    Connection::Lost(reason) => {
                        let color = ui.visuals().error_fg_color;
                        ui.spinner();
                        ui.add(
                            egui::Label::new(
                                RichText::new(tr.fill(T::ConnectionLost, &[("reason", reason)]))
                                    .color(color)
                                    .strong(),
                            )
                            .truncate(),
                        );
                    }
                }
            }
            ui.with_layout(Layout::right_to_left(Align::Center), |ui| {
                if ui.button(tr.t(T::LogOut)).clicked() {
                    c.logout();
                    return;
                }
                if ui.button(tr.t(T::Refresh)).clicked() {
                    c.refresh();
                }
                ui.separator();
                lang_ui(ui, c);
            });
        });
        ui.add_space(4.0);
    });
}

fn nav_ui(ui: &mut Ui, c: &mut Console) {
    let tr = c.tr;
    let Some(s) = &c.session else { return };
    let current = s.screen;
    let screens = s.screens();
    let mut go = None;
    egui::Panel::left("nav")
        .resizable(false)
        .exact_size(170.0)
        .show(ui, |ui| {
            ui.add_space(8.0);
            for screen in screens {
                let name = tr.t(match screen {
                    Screen::Dashboard => T::NavDashboard,
                    Screen::Alerts => T::NavAlerts,
                    Screen::Organisation => T::NavOrganisation,
                    Screen::Admins => T::NavAdmins,
                    Screen::Audit => T::NavAudit,
                });
                let button =
                    egui::Button::selectable(current == screen, RichText::new(name).size(15.0))
                        .min_size(egui::vec2(ui.available_width(), 30.0));
                if ui.add(button).clicked() {
                    go = Some(screen);
                }
            }
        });
    if let Some(screen) = go {
        c.go(screen);
    }
}

fn notice_ui(ui: &mut Ui, c: &mut Console) {
    let tr = c.tr;
    let Some(notice) = c.notice.clone() else {
        return;
    };
    let mut dismiss = false;
    egui::Panel::bottom("notice").show(ui, |ui| {
        ui.add_space(4.0);
        ui.horizontal(|ui| {
            if ui.button(tr.t(T::Dismiss)).clicked() {
                dismiss = true;
            }
            if notice.error {
                error_text(ui, &notice.text);
            } else {
                widgets::tag(ui, "✔", widgets::online_color());
                widgets::content(ui, &notice.text);
            }
        });
        ui.add_space(4.0);
    });
    if dismiss {
        c.notice = None;
    }
}

fn confirm_ui(ui: &mut Ui, c: &mut Console) {
    let tr = c.tr;
    let Some(s) = &c.session else { return };
    let Some(confirm) = s.confirm.clone() else {
        return;
    };
    let (question, yes) = match &confirm {
        Confirm::DeleteUnit { id } => (
            tr.fill(T::DeleteUnitConfirm, &[("unit", s.tree.path(id))]),
            tr.t(T::Delete),
        ),
        Confirm::RevokeComputer { id } => {
            let host = s.computer(id).map_or(id.as_str(), |c| c.hostname.as_str());
            (
                tr.fill(T::RevokeComputerConfirm, &[("host", host)]),
                tr.t(T::RevokeComputer),
            )
        }
        Confirm::DeleteAdmin { name } => (
            tr.fill(T::DeleteAdminConfirm, &[("name", name)]),
            tr.t(T::DeleteAdmin),
        ),
        Confirm::SendCritical => {
            let reach = match &s.alerts_view.compose.preview {
                Some(Ok(a)) => tr.count(crate::i18n::COMPUTERS, u64::from(a.computers)),
                _ => tr.t(T::Audience).to_lowercase(),
            };
            (
                format!(
                    "{}\n\n{}",
                    tr.t(T::ConfirmCritical),
                    tr.fill(T::ConfirmCriticalBody, &[("computers", &reach)])
                ),
                tr.t(T::Send),
            )
        }
        Confirm::CancelAlert { .. } => {
            (tr.t(T::ConfirmCancelAlert).to_owned(), tr.t(T::CancelAlert))
        }
    };
    let mut answer = None;
    let modal = egui::Modal::new(egui::Id::unique("herald-confirm")).show(ui.ctx(), |ui| {
        ui.set_max_width(420.0);
        ui.label(RichText::new(question).size(15.0));
        ui.add_space(12.0);
        ui.horizontal(|ui| {
            if ui.button(tr.t(T::Back)).clicked() {
                answer = Some(false);
            }
            let color = ui.visuals().error_fg_color;
            if ui
                .add(egui::Button::new(RichText::new(yes).strong().color(color)))
                .clicked()
            {
                answer = Some(true);
            }
        });
    });
    if modal.should_close() && answer.is_none() {
        answer = Some(false);
    }
    if let Some(yes) = answer {
        c.answer(yes);
    }
}
