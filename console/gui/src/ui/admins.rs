//! Admins: create, delete, reset a password, add and revoke grants. Only
//! what the caller holds itself is offered as a grant.

use egui::{RichText, Ui};
use herald_console::grants::CAPABILITIES;
use herald_console::pb;

use super::widgets::{capability_name, content, error_text, fields_grid, weak};
use crate::i18n::{T, Tr};
use crate::state::{Confirm, Console, Form, GrantDraft, Session};

pub fn admins_ui(ui: &mut Ui, c: &mut Console) {
    let tr = c.tr;
    let Some(s) = &mut c.session else { return };
    let mut new = false;
    egui::Panel::left("admin_list")
        .resizable(true)
        .default_size(220.0)
        .show(ui, |ui| {
            ui.add_space(6.0);
            if ui
                .add_sized(
                    [ui.available_width(), 28.0],
                    egui::Button::selectable(s.admins_view.selected.is_none(), tr.t(T::NewAdmin)),
                )
                .clicked()
            {
                new = true;
            }
            ui.separator();
            ui.label(RichText::new(tr.t(T::AdminsList)).strong());
            egui::ScrollArea::vertical()
                .id_salt("admin_rows")
                .auto_shrink([false, false])
                .show(ui, |ui| {
                    for a in &s.admins {
                        let selected = s.admins_view.selected.as_deref() == Some(a.name.as_str());
                        let name = if a.name == s.user {
                            format!("{} ({})", a.name, tr.t(T::You))
                        } else {
                            a.name.clone()
                        };
                        if ui.selectable_label(selected, name).clicked() {
                            s.admins_view.selected = Some(a.name.clone());
                            s.admins_view.reset_password.clear();
                            s.admins_view.reset_password_again.clear();
                        }
                    }
                });
        });
    if new {
        s.admins_view.selected = None;
    }
    let mut action: Action = None;
    egui::CentralPanel::default().show(ui, |ui| {
        egui::ScrollArea::vertical()
            .id_salt("admin_detail")
            .auto_shrink([false, false])
            .show(ui, |ui| match s.admins_view.selected.clone() {
                None => action = create_ui(ui, s, tr),
                Some(name) => action = detail_ui(ui, s, tr, &name, c.now_ms),
            });
    });
    if let Some(action) = action {
        action(c);
    }
}

/// Capabilities the caller holds somewhere: the only ones it may grant.
fn grantable_caps(s: &Session) -> Vec<pb::Capability> {
    CAPABILITIES
        .iter()
        .map(|(_, cap)| *cap)
        .filter(|cap| s.perms.has_any(*cap))
        .collect()
}

/// Capability × where, limited to what the caller holds.
fn grant_draft_ui(ui: &mut Ui, s: &Session, draft: &mut GrantDraft, tr: Tr, salt: &str) {
    let caps = grantable_caps(s);
    if !caps.contains(&draft.capability)
        && let Some(first) = caps.first()
    {
        draft.capability = *first;
    }
    ui.horizontal(|ui| {
        let label = ui.label(tr.t(T::Capability));
        egui::ComboBox::from_id_salt(format!("{salt}_cap"))
            .selected_text(capability_name(tr, draft.capability))
            .width(200.0)
            .show_ui(ui, |ui| {
                for cap in &caps {
                    ui.selectable_value(&mut draft.capability, *cap, capability_name(tr, *cap));
                }
            })
            .response
            .labelled_by(label.id);
        let (org, _) = s.perms.grantable(draft.capability);
        if !org {
            draft.organisation = false;
        }
        let label = ui.label(tr.t(T::Scope));
        let chosen = if draft.organisation {
            tr.t(T::WholeOrganisation).to_owned()
        } else {
            draft
                .unit
                .as_deref()
                .map(|id| s.tree.path(id).to_owned())
                .unwrap_or_default()
        };
        egui::ComboBox::from_id_salt(format!("{salt}_scope"))
            .selected_text(super::widgets::content_text(ui, &chosen))
            .width(220.0)
            .show_ui(ui, |ui| {
                if org
                    && ui
                        .selectable_label(draft.organisation, tr.t(T::WholeOrganisation))
                        .clicked()
                {
                    draft.organisation = true;
                    draft.unit = None;
                }
                for (_, unit) in s.units_with(draft.capability) {
                    let selected = !draft.organisation && draft.unit.as_deref() == Some(&unit.id);
                    let text = super::widgets::content_text(ui, &unit.path);
                    if ui.selectable_label(selected, text).clicked() {
                        draft.organisation = false;
                        draft.unit = Some(unit.id.clone());
                    }
                }
            })
            .response
            .labelled_by(label.id);
    });
}

fn describe_grant(s: &Session, tr: Tr, grant: &pb::Grant) -> (String, String) {
    let cap = pb::Capability::try_from(grant.capability).map_or_else(
        |_| format!("{}", grant.capability),
        |c| capability_name(tr, c).to_owned(),
    );
    let scope = grant.scope.clone().unwrap_or_default();
    let place = if scope.organisation {
        tr.t(T::WholeOrganisation).to_owned()
    } else {
        scope
            .unit_ids
            .iter()
            .map(|id| s.tree.path(id).to_owned())
            .collect::<Vec<_>>()
            .join(", ")
    };
    (cap, place)
}

type Action = Option<Box<dyn FnOnce(&mut Console)>>;

fn create_ui(ui: &mut Ui, s: &mut Session, tr: Tr) -> Action {
    let mut action: Action = None;
    ui.heading(tr.t(T::NewAdmin));
    ui.add_space(8.0);
    let v = &mut s.admins_view;
    fields_grid(
        ui,
        "new_admin",
        vec![
            (tr.t(T::Name), &mut v.new_name, false),
            (tr.t(T::Password), &mut v.new_password, true),
            (tr.t(T::RepeatPassword), &mut v.new_password_again, true),
        ],
        240.0,
    );
    ui.add_space(8.0);
    ui.label(RichText::new(tr.t(T::GrantsToGive)).strong());
    let mut remove = None;
    let drafts = v.new_grants.clone();
    for (i, draft) in drafts.iter().enumerate() {
        if let Some(grant) = draft.to_grant() {
            let (cap, place) = describe_grant(s, tr, &grant);
            ui.horizontal(|ui| {
                ui.label(format!("• {cap}"));
                content(ui, &place);
                if ui
                    .small_button("✖")
                    .on_hover_text(tr.t(T::Delete))
                    .clicked()
                {
                    remove = Some(i);
                }
            });
        }
    }
    if let Some(i) = remove {
        s.admins_view.new_grants.remove(i);
    }
    let mut draft = s.admins_view.grant.clone();
    ui.horizontal(|ui| {
        grant_draft_ui(ui, s, &mut draft, tr, "new_admin_grant");
        if ui
            .add_enabled(
                draft.to_grant().is_some(),
                egui::Button::new(tr.t(T::AddGrant)),
            )
            .clicked()
            && !s.admins_view.new_grants.contains(&draft)
        {
            s.admins_view.new_grants.push(draft.clone());
        }
    });
    s.admins_view.grant = draft;
    ui.add_space(8.0);
    if let Some(e) = s.error(Form::AdminCreate) {
        error_text(ui, e);
    }
    if ui
        .add_enabled(
            !s.is_busy(Form::AdminCreate),
            egui::Button::new(tr.t(T::Create)),
        )
        .clicked()
    {
        action = Some(Box::new(Console::create_admin));
    }
    action
}

fn detail_ui(ui: &mut Ui, s: &mut Session, tr: Tr, name: &str, now: i64) -> Action {
    let mut action: Action = None;
    let Some(admin) = s.admin(name).cloned() else {
        weak(ui, tr.t(T::PickAdmin));
        return None;
    };
    ui.heading(admin.name.as_str());
    ui.label(
        RichText::new(format!(
            "{} {} · {} {}",
            tr.t(T::Created),
            herald_console::timefmt::format_near(admin.created_unix_ms, now),
            tr.t(T::CreatedBy),
            if admin.created_by.is_empty() {
                "-"
            } else {
                &admin.created_by
            }
        ))
        .weak(),
    );
    ui.add_space(8.0);
    ui.label(RichText::new(tr.t(T::Grants)).strong());
    if admin.grants.is_empty() {
        weak(ui, tr.t(T::NoGrants));
    }
    egui::Grid::new("grants")
        .num_columns(3)
        .striped(true)
        .spacing([16.0, 6.0])
        .show(ui, |ui| {
            for grant in &admin.grants {
                let (cap, place) = describe_grant(s, tr, grant);
                ui.label(cap);
                content(ui, &place);
                if ui.small_button(tr.t(T::Revoke)).clicked() {
                    let (name, grant) = (admin.name.clone(), grant.clone());
                    action = Some(Box::new(move |c: &mut Console| c.revoke_grant(name, grant)));
                }
                ui.end_row();
            }
        });
    if let Some(e) = s.error(Form::GrantRevoke) {
        error_text(ui, e);
    }
    ui.add_space(6.0);
    let mut draft = s.admins_view.grant.clone();
    ui.horizontal(|ui| {
        grant_draft_ui(ui, s, &mut draft, tr, "add_grant");
        if ui
            .add_enabled(
                draft.to_grant().is_some() && !s.is_busy(Form::GrantAdd),
                egui::Button::new(tr.t(T::AddGrant)),
            )
            .clicked()
        {
            action = Some(Box::new(Console::add_grant));
        }
    });
    s.admins_view.grant = draft;
    if let Some(e) = s.error(Form::GrantAdd) {
        error_text(ui, e);
    }
    ui.separator();
    ui.label(RichText::new(tr.t(T::ResetPassword)).strong());
    let v = &mut s.admins_view;
    fields_grid(
        ui,
        "reset_password",
        vec![
            (tr.t(T::Password), &mut v.reset_password, true),
            (tr.t(T::RepeatPassword), &mut v.reset_password_again, true),
        ],
        240.0,
    );
    if ui
        .add_enabled(
            !s.is_busy(Form::AdminPassword),
            egui::Button::new(tr.t(T::ResetPassword)),
        )
        .clicked()
    {
        action = Some(Box::new(Console::reset_password));
    }
    if let Some(e) = s.error(Form::AdminPassword) {
        error_text(ui, e);
    }
    if admin.name != s.user {
        ui.separator();
        let color = ui.visuals().error_fg_color;
        if ui
            .button(RichText::new(tr.t(T::DeleteAdmin)).color(color))
            .clicked()
        {
            s.confirm = Some(Confirm::DeleteAdmin {
                name: admin.name.clone(),
            });
        }
        if let Some(e) = s.error(Form::AdminDelete) {
            error_text(ui, e);
        }
    }
    action
}
