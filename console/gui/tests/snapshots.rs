//! Snapshot images of the console's main screens, drawn from the sample
//! organisation (no server) with CPU rendering, under `tests/snapshots/`.
//! `UPDATE_SNAPSHOTS=1 cargo nextest run -p herald-console-gui` accepts
//! changed images.

use egui::Vec2;
use egui_kittest::kittest::Queryable as _;
use egui_kittest::{Harness, SnapshotOptions};
use herald_console_gui::backend::Reply;
use herald_console_gui::i18n::Lang;
use herald_console_gui::perms::Screen;
use herald_console_gui::{Console, sample};

fn harness(console: Console, theme: egui::Theme) -> Harness<'static, Console> {
    let mut h = Harness::builder()
        .with_size(Vec2::new(1280.0, 800.0))
        .with_theme(theme)
        .with_options(SnapshotOptions::default().threshold(2.0))
        .with_context_setup(herald_popup::fonts::install)
        .wgpu()
        .build_ui_state(
            |ui, c: &mut Console| {
                herald_console_gui::ui::console_ui(ui, c);
                c.take_requests();
            },
            console,
        );
    // Spinners keep asking for frames: step a fixed number instead of
    // running until idle.
    h.run_steps(4);
    h
}

fn on(screen: Screen, computers: usize) -> Console {
    let mut c = sample::console(computers);
    c.go(screen);
    c
}

#[test]
fn login_screen() {
    let mut c = Console::new(Default::default(), None);
    c.login.server = "https://herald.example.org:7443".into();
    c.login.ca_file = "/var/lib/herald/tls/ca.pem".into();
    c.login.user = "admin".into();
    c.login.error = Some("not authenticated: wrong name or password".into());
    let mut h = harness(c, egui::Theme::Dark);
    h.get_by_label("Log in");
    h.snapshot("login");
}

#[test]
fn dashboard_in_polish() {
    let mut c = on(Screen::Dashboard, 240);
    c.set_lang(Lang::Pl);
    let mut h = harness(c, egui::Theme::Light);
    h.get_by_label("Pulpit");
    h.get_by_label("Komputery w jednostkach");
    h.snapshot("dashboard_pl");
}

#[test]
fn alert_progress() {
    let mut c = on(Screen::Alerts, 240);
    c.open_alert("al-3");
    c.apply(Reply::AlertStatus(sample::alert_detail()));
    let mut h = harness(c, egui::Theme::Dark);
    h.get_by_label("Per computer");
    h.snapshot("alert_progress");
}

#[test]
fn compose_quick_alert() {
    let mut c = on(Screen::Alerts, 240);
    {
        let s = c.session.as_mut().expect("logged in");
        let compose = &mut s.alerts_view.compose;
        compose.title = "Awaria sieci w filii nr 3".into();
        compose.body = "Internet wróci około 14:00.".into();
        compose.priority = herald_console::pb::Priority::Warning;
        compose.units.insert("u-teh".into());
        compose.units.insert("u-b3".into());
    }
    c.update_preview();
    c.apply(Reply::Preview {
        seq: 1,
        result: Ok(herald_console_gui::backend::Audience {
            computers: 96,
            online: 64,
            units: vec![
                ("/Branches/Filia nr 3".into(), 48, 32),
                ("/Branches/شعبه تهران".into(), 48, 32),
            ],
        }),
    });
    let mut h = harness(c, egui::Theme::Light);
    h.get_by_label("Reaches 96 computers (64 online now)");
    h.snapshot("compose");
}

#[test]
fn organisation_with_computers() {
    let mut c = on(Screen::Organisation, 10_000);
    let s = c.session.as_mut().expect("logged in");
    s.org.selected_computer = Some("c-00003".into());
    let mut h = harness(c, egui::Theme::Light);
    h.get_by_label("10000 of 10000 shown");
    h.snapshot("organisation");
}

#[test]
fn admins_and_grants() {
    let mut c = on(Screen::Admins, 10);
    c.session.as_mut().expect("logged in").admins_view.selected = Some("alice".into());
    let mut h = harness(c, egui::Theme::Dark);
    h.get_by_label("Add grant");
    h.snapshot("admins");
}

#[test]
fn audit_log() {
    let c = on(Screen::Audit, 10);
    let mut h = harness(c, egui::Theme::Light);
    h.get_by_label("Search");
    h.snapshot("audit");
}
