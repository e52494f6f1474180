//! The alert window driven through egui_kittest: widgets found by their
//! accessible labels, clicks, and snapshot images under `tests/snapshots/`.
//! The clock is `PopupState::now_ms`, so nothing here sleeps.

use egui::{Vec2, accesskit};
use egui_kittest::kittest::{NodeT as _, Queryable as _};
use egui_kittest::{Harness, SnapshotOptions};
use herald_popup::{AlertSpec, Event, PopupState, Priority, alerts_ui, fonts};

/// 2025-11-24 10:04 UTC, shown as "10:04" with a zero offset.
const SENT: i64 = 1_763_978_640_000;
const T0: i64 = SENT + 30_000;

fn alert(id: &str, priority: Priority, title: &str, body: &str) -> AlertSpec {
    AlertSpec {
        id: id.into(),
        title: title.into(),
        body: body.into(),
        priority,
        sender_unit: "/Branches/Branch 3".into(),
        sender: "alice".into(),
        sent_unix_ms: SENT,
        expires_unix_ms: Some(SENT + 4 * 3_600_000),
    }
}

fn state_with(alerts: Vec<AlertSpec>) -> PopupState {
    let mut state = PopupState::new(T0, 0);
    // Shown oldest first, so the last one ends up on top.
    for spec in alerts {
        state.apply(herald_popup::Command::Show(spec), T0);
    }
    state
}

fn harness<'a>(
    state: PopupState,
    size: Vec2,
    theme: egui::Theme,
    wgpu: bool,
) -> Harness<'a, PopupState> {
    let builder = Harness::builder()
        .with_size(size)
        .with_theme(theme)
        .with_options(SnapshotOptions::default().threshold(2.0))
        .with_context_setup(fonts::install);
    let builder = if wgpu { builder.wgpu() } else { builder };
    let mut harness = builder.build_ui_state(
        |ui, state: &mut PopupState| {
            egui::Frame::central_panel(ui.style()).show(ui, |ui| alerts_ui(ui, state));
        },
        state,
    );
    harness.run();
    harness
}

fn dismissed(events: &[Event]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Dismissed { id, .. } => Some(id.as_str()),
            Event::Displayed { .. } => None,
        })
        .collect()
}

#[test]
fn finds_widgets_and_closes_a_non_critical_alert() {
    let state = state_with(vec![
        alert(
            "info-1",
            Priority::Info,
            "Printers on floor 2 are offline",
            "Please use the printers on floor 1 until noon.",
        ),
        alert(
            "crit-1",
            Priority::Critical,
            "Phishing warning",
            "Do not open mail titled \"Invoice overdue\".",
        ),
    ]);
    let mut h = harness(state, Vec2::new(520.0, 420.0), egui::Theme::Dark, false);

    // Both alerts were painted, newest first.
    let ids: Vec<&str> = h
        .state()
        .alerts()
        .iter()
        .map(|a| a.spec.id.as_str())
        .collect();
    assert_eq!(ids, ["crit-1", "info-1"]);
    assert_eq!(
        h.state().pending_events(),
        [
            Event::Displayed {
                id: "crit-1".into(),
                at_unix_ms: T0
            },
            Event::Displayed {
                id: "info-1".into(),
                at_unix_ms: T0
            },
        ]
    );

    h.get_by_label("Printers on floor 2 are offline");
    h.get_by_label("Please use the printers on floor 1 until noon.");
    h.get_by_label("Phishing warning");
    // The critical alert's button counts down, so only the info alert's says "Close".
    h.get_by_label("Close (5)");
    h.get_by_label("Close").click();
    h.run();

    assert_eq!(dismissed(h.state().pending_events()), ["info-1"]);
    let ids: Vec<&str> = h
        .state()
        .alerts()
        .iter()
        .map(|a| a.spec.id.as_str())
        .collect();
    assert_eq!(ids, ["crit-1"]);
    assert!(
        h.query_by_label("Printers on floor 2 are offline")
            .is_none()
    );
    assert!(!h.state().should_exit());
}

#[test]
fn critical_close_is_disabled_for_five_seconds() {
    let state = state_with(vec![alert(
        "crit-1",
        Priority::Critical,
        "Evacuate building B",
        "Use the stairs, not the lifts.",
    )]);
    let mut h = harness(state, Vec2::new(520.0, 300.0), egui::Theme::Light, false);
    let displayed_at = h.state().alerts()[0].displayed_at_ms;
    assert_eq!(displayed_at, Some(T0));

    // (ms after display, button label, enabled)
    let steps = [
        (0, "Close (5)", false),
        (1, "Close (5)", false),
        (1_000, "Close (4)", false),
        (4_001, "Close (1)", false),
        (4_999, "Close (1)", false),
    ];
    for (after, label, enabled) in steps {
        h.state_mut().now_ms = T0 + after;
        h.run();
        let button = h.get_by_label(label);
        assert_eq!(
            !button.accesskit_node().is_disabled(),
            enabled,
            "at +{after} ms"
        );
        assert_eq!(button.accesskit_node().role(), accesskit::Role::Button);
        // Clicking a disabled button does nothing.
        button.click();
        h.run();
        assert!(
            dismissed(h.state().pending_events()).is_empty(),
            "at +{after} ms"
        );
    }

    h.state_mut().now_ms = T0 + 5_000;
    h.run();
    let close = h.get_by_label("Close");
    assert!(!close.accesskit_node().is_disabled());
    close.click();
    h.run();
    assert_eq!(dismissed(h.state().pending_events()), ["crit-1"]);
    assert!(h.state().should_exit());
}

#[test]
fn links_are_only_http_and_https() {
    let state = state_with(vec![alert(
        "info-1",
        Priority::Info,
        "Links",
        "Status: https://status.example.pl/filia-3 — not file:///etc/passwd or javascript:alert(1)",
    )]);
    let h = harness(state, Vec2::new(520.0, 300.0), egui::Theme::Dark, false);
    let links: Vec<String> = h
        .get_all_by_role(accesskit::Role::Link)
        .filter_map(|n| n.accesskit_node().label())
        .collect();
    assert_eq!(links, ["https://status.example.pl/filia-3"]);
}

#[test]
fn persian_text_is_labelled_in_logical_order() {
    let title = "سرور ایمیل تا ساعت ۱۴ در دسترس نیست";
    let state = state_with(vec![alert(
        "fa-1",
        Priority::Warning,
        title,
        "لطفا صبور باشید.",
    )]);
    let h = harness(state, Vec2::new(520.0, 300.0), egui::Theme::Dark, false);
    // Screen readers get the text as written, not the reordered drawing.
    h.get_by_label(title);
    h.get_by_label("لطفا صبور باشید.");
}

#[test]
fn snapshot_warning_polish() {
    let state = state_with(vec![alert(
        "pl-1",
        Priority::Warning,
        "Awaria sieci w filii nr 3 — prosimy o cierpliwość",
        "Network outage at Branch 3: the catalogue and e-mail are unavailable. \
         Technicy są już na miejscu; spodziewamy się przywrócenia łączności przed 12:00. \
         Status: https://status.example.pl/filia-3",
    )]);
    let mut h = harness(state, Vec2::new(520.0, 360.0), egui::Theme::Dark, true);
    h.snapshot("warning_polish");
}

fn stack_state() -> PopupState {
    let mut japanese = alert(
        "ja-1",
        Priority::Info,
        "本日17時にシステムメンテナンスを行います",
        "メールとチャットは約30分間ご利用いただけません。作業中のファイルは保存してください。",
    );
    japanese.sender = "山田".into();
    japanese.sender_unit = "/Tokyo/IT".into();
    let mut chinese = alert(
        "zh-1",
        Priority::Info,
        "今晚网络维护",
        "今晚22点至23点进行网络维护，请提前保存工作。",
    );
    chinese.sender_unit = "/Branches/Branch 8".into();
    let mut persian = alert(
        "fa-1",
        Priority::Critical,
        "سرور ایمیل تا ساعت ۱۴ در دسترس نیست",
        "همکاران گرامی، به دلیل به‌روزرسانی Exchange سرور ایمیل تا ساعت ۱۴ در دسترس نیست. \
         برای اطلاعات بیشتر به https://status.example.ir مراجعه کنید.",
    );
    persian.sender = "رضا".into();
    persian.sender_unit = "/Branches/Branch 3".into();
    state_with(vec![chinese, japanese, persian])
}

#[test]
fn snapshot_stack_japanese_persian() {
    let mut h = harness(
        stack_state(),
        Vec2::new(520.0, 640.0),
        egui::Theme::Dark,
        true,
    );
    h.snapshot("stack_japanese_persian");
}

#[test]
fn snapshot_stack_light() {
    let mut h = harness(
        stack_state(),
        Vec2::new(520.0, 640.0),
        egui::Theme::Light,
        true,
    );
    h.snapshot("stack_light");
}
