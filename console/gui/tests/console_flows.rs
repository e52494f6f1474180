//! The console driven through egui_kittest against a real in-process server
//! (mutual TLS on loopback, sled store in a temp dir) and an in-process
//! agent: widgets are found by their accessible labels, so a missing label
//! fails the test. The console's own backend thread talks to the server;
//! the test steps frames until what it waits for is on screen.

// Test helpers outside `#[test]` functions: a failed step is a test failure.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use egui::Vec2;
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT as _, Queryable as _};
use herald_console::pb;
use herald_console_gui::settings::Settings;
use herald_console_gui::{Console, ConsoleApp};
use herald_tests::{FakeUser, PASSWORD, TestAgent, TestServer, grant, to_unit};

/// A console window with its own backend, and settings in `dir`.
fn console(dir: &Path) -> Harness<'static, ConsoleApp> {
    let state = Console::new(Settings::default(), Some(dir.join("console.toml")));
    let mut h = Harness::builder()
        .with_size(Vec2::new(1280.0, 860.0))
        .with_context_setup(herald_popup::fonts::install)
        .build_ui_state(
            |ui, app: &mut ConsoleApp| app.frame(ui),
            ConsoleApp::offline(Console::new(Settings::default(), None)),
        );
    let ctx = h.ctx.clone();
    *h.state_mut() = ConsoleApp::start(state, &ctx).expect("backend thread");
    h.run();
    h
}

/// Steps frames until `done` holds, or fails naming `what`.
async fn step_until(
    h: &mut Harness<'static, ConsoleApp>,
    what: &str,
    mut done: impl FnMut(&Harness<'static, ConsoleApp>) -> bool,
) {
    let start = Instant::now();
    loop {
        h.step();
        if done(h) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn type_into(h: &mut Harness<'static, ConsoleApp>, label: &str, text: &str) {
    h.get_by_label(label).click();
    h.run();
    h.get_by_label(label).type_text(text);
    h.run();
}

fn has_label(h: &Harness<'static, ConsoleApp>, label: &str) -> bool {
    h.query_all_by_label(label).next().is_some()
}

/// When the server counted the dashboard's latest presence summary.
fn presence_at(h: &Harness<'static, ConsoleApp>) -> i64 {
    h.state()
        .state
        .session
        .as_ref()
        .map_or(0, |s| s.presence_at_ms)
}

/// The recent alerts entry of alert `id`, if the console lists it.
fn listed(h: &Harness<'static, ConsoleApp>, id: &str) -> Option<pb::AlertStatus> {
    let alerts = h.state().state.session.as_ref()?.alerts.as_ref()?;
    let mut found = alerts
        .iter()
        .filter(|a| a.alert.as_ref().is_some_and(|x| x.id == id));
    let first = found.next().cloned();
    assert!(found.next().is_none(), "alert {id} listed twice");
    first
}

/// Fills in the login form and waits until the console shows the dashboard.
async fn log_in(h: &mut Harness<'static, ConsoleApp>, server: &TestServer, user: &str) {
    let ca = server.dir.path().join("ca-for-console.pem");
    std::fs::write(&ca, &server.ca_pem).expect("write CA file");
    type_into(h, "Server", &server.url());
    type_into(h, "CA file path", &ca.display().to_string());
    type_into(h, "User", user);
    type_into(h, "Password", PASSWORD);
    h.get_by_label("Log in").click();
    step_until(h, "the dashboard after logging in", |h| {
        h.state()
            .state
            .session
            .as_ref()
            .is_some_and(|s| !s.tree.units().is_empty() && s.presence_units.is_some())
            && has_label(h, "Dashboard")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_in_enroll_a_computer_and_watch_an_alert_reach_its_screen() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start().await;
    let mut h = console(dir.path());
    log_in(&mut h, &server, "admin").await;
    // The bootstrap admin holds everything, so every screen is offered.
    for screen in [
        "Dashboard",
        "Quick alerts",
        "Organisation",
        "Admins",
        "Audit log",
    ] {
        h.get_by_label(screen);
    }
    // The server and user are remembered, the password is not.
    let saved = std::fs::read_to_string(dir.path().join("console.toml")).unwrap();
    assert!(
        saved.contains(&server.url()) && saved.contains("admin"),
        "{saved}"
    );
    assert!(!saved.contains(PASSWORD), "{saved}");

    // Organisation: a unit under the root, then a token for it. Opening the
    // screen fetches the computer list.
    h.get_by_label("Organisation").click();
    step_until(&mut h, "the computer list", |h| {
        h.state()
            .state
            .session
            .as_ref()
            .is_some_and(|s| s.computers.is_some())
    })
    .await;
    type_into(&mut h, "New unit inside", "Filia nr 3");
    h.get_by_label("Create").click();
    step_until(&mut h, "the new unit selected", |h| {
        let s = h.state().state.session.as_ref().unwrap();
        s.org
            .selected
            .as_deref()
            .is_some_and(|id| s.tree.path(id) == "/Filia nr 3")
    })
    .await;
    h.get_by_label("Create token").click();
    step_until(&mut h, "the token shown once", |h| has_label(h, "Copy")).await;
    let token = h
        .state()
        .state
        .session
        .as_ref()
        .and_then(|s| s.org.new_token.clone())
        .map(|(secret, path)| {
            assert_eq!(path, "/Filia nr 3");
            secret
        })
        .unwrap();
    // The token on screen is the secret itself, ready to copy.
    h.get_by_label(&token);

    // A computer enrolls with it and a person is logged in there.
    let mut agent = TestAgent::enroll(&server.url(), &token).await;
    agent.wait_connected(Duration::from_secs(10)).await;
    let mut user = FakeUser::connect(&agent.socket).await;

    // Refresh: the computer is listed under the unit, online.
    h.get_by_label("Refresh").click();
    step_until(&mut h, "the computer online in the list", |h| {
        h.state()
            .state
            .session
            .as_ref()
            .and_then(|s| s.computers.as_ref())
            .is_some_and(|list| list.iter().any(|c| c.online && c.id == agent.computer_id))
            && has_label(h, "Online")
    })
    .await;

    // Quick alert to that unit: the audience count comes from the server.
    h.get_by_label("Quick alerts").click();
    h.run();
    type_into(&mut h, "Title", "Awaria sieci w filii nr 3");
    type_into(
        &mut h,
        "Message",
        "Back by 14:00. https://status.example.org",
    );
    h.get_by_label("Filia nr 3").click();
    step_until(&mut h, "the audience count", |h| {
        has_label(h, "Reaches 1 computer (1 online now)")
    })
    .await;
    h.get_by_label("Send").click();
    step_until(&mut h, "the progress view", |h| {
        has_label(h, "Per computer") && has_label(h, "Awaria sieci w filii nr 3")
    })
    .await;

    // The person's session part shows it: "displayed" comes back live.
    let alert = user.next_alert(true).await;
    assert_eq!(alert.title, "Awaria sieci w filii nr 3");
    step_until(&mut h, "displayed on the progress view", |h| {
        has_label(h, "displayed 1")
            && has_label(h, "displayed")
            && has_label(h, "On screen: 1 of 1")
    })
    .await;
    let s = h.state().state.session.as_ref().unwrap();
    let status = s.alerts_view.status.as_ref().unwrap();
    assert_eq!(status.computers.len(), 1);
    assert_eq!(status.computers[0].computer_id, agent.computer_id);
    assert_eq!(
        status.computers[0].state,
        pb::DeliveryState::Displayed as i32
    );

    // Dismissed: the stream settles the alert and the view says so.
    user.dismiss(&alert.id).await;
    step_until(&mut h, "settled", |h| {
        has_label(h, "dismissed 1") && has_label(h, "Settled: nothing can change any more")
    })
    .await;

    // The dashboard's counts follow the computers by themselves: a second
    // computer connects in the unit and later goes away, and nothing is
    // clicked in between.
    h.get_by_label("Dashboard").click();
    step_until(&mut h, "one computer online in the unit", |h| {
        has_label(h, "Filia nr 3: Online 1, Offline 0")
    })
    .await;
    let admin = server.admin().await;
    let unit = admin
        .units()
        .await
        .into_iter()
        .find(|u| u.path == "/Filia nr 3")
        .unwrap();

    // Another admin session sends an alert to the unit: it joins the
    // dashboard's recent alerts with no click, and its progress follows
    // the person who sees it.
    let other = admin
        .send_alert(vec![to_unit(&unit.id)], "Fire drill at 11:00", 0)
        .await
        .unwrap();
    step_until(&mut h, "the other session's alert on the dashboard", |h| {
        has_label(h, "Fire drill at 11:00") && listed(h, &other.alert_id).is_some()
    })
    .await;
    let shown = user.next_alert(true).await;
    assert_eq!(shown.id, other.alert_id);
    step_until(&mut h, "the other session's alert displayed", |h| {
        listed(h, &other.alert_id)
            .and_then(|a| a.counts)
            .is_some_and(|c| c.displayed == 1)
            && h.query_all_by_label("On screen: 1 of 1").count() == 2
    })
    .await;
    // The console's own alert is still listed once.
    assert!(listed(&h, &alert.id).is_some());
    // Cancelled from the other session: the row says so.
    let mut c = admin.client.clone();
    c.cancel_alert(admin.req(pb::CancelAlertRequest {
        alert_id: other.alert_id.clone(),
    }))
    .await
    .unwrap();
    step_until(&mut h, "the other session's alert cancelled", |h| {
        listed(h, &other.alert_id)
            .and_then(|a| a.alert)
            .is_some_and(|a| a.cancelled)
            && has_label(h, "Cancelled")
    })
    .await;

    let mut second = TestAgent::enroll(&server.url(), &admin.token(&unit.id, 1).await).await;
    second.wait_connected(Duration::from_secs(10)).await;
    step_until(&mut h, "the second computer counted online", |h| {
        has_label(h, "Filia nr 3: Online 2, Offline 0")
            && has_label(h, "City Library: Online 2, Offline 0")
    })
    .await;
    second.stop().await;
    step_until(&mut h, "the second computer counted offline", |h| {
        has_label(h, "Filia nr 3: Online 1, Offline 1")
    })
    .await;

    // The server restarts: once it is back the console subscribes again,
    // and counts from the new stream (later than any before) come in as
    // the first computer reconnects and, below, goes away.
    let before = presence_at(&h);
    server.restart().await;
    step_until(&mut h, "counts from the restarted server", |h| {
        presence_at(h) > before && has_label(h, "Filia nr 3: Online 1, Offline 1")
    })
    .await;
    // The alert list follows again too: an alert sent after the restart
    // (whether before or after the console subscribed anew) is listed.
    let after = server
        .admin()
        .await
        .send_alert(vec![to_unit(&unit.id)], "Drill over", 0)
        .await
        .unwrap();
    step_until(&mut h, "an alert sent after the restart", |h| {
        has_label(h, "Drill over") && listed(h, &after.alert_id).is_some()
    })
    .await;
    agent.stop().await;
    step_until(&mut h, "both computers counted offline", |h| {
        has_label(h, "Filia nr 3: Online 0, Offline 2")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_sees_only_what_it_may_use_and_the_server_refuses_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let root = admin.root().await.id;
    let branches = admin.create_unit(&root, "Branches").await.id;
    let b3 = admin.create_unit(&branches, "Branch 3").await.id;
    let b7 = admin.create_unit(&branches, "Branch 7").await.id;
    // A computer in each branch.
    let mut in_b3 = TestAgent::enroll(&server.url(), &admin.token(&b3, 1).await).await;
    let mut in_b7 = TestAgent::enroll(&server.url(), &admin.token(&b7, 1).await).await;
    in_b3.wait_connected(Duration::from_secs(10)).await;
    in_b7.wait_connected(Duration::from_secs(10)).await;
    // Every grant is on Branch 3: the dashboard's counts cover the units
    // the admin holds any grant on.
    let mut c = admin.client.clone();
    c.create_admin(admin.req(pb::CreateAdminRequest {
        name: "alice".into(),
        password: PASSWORD.into(),
        grants: vec![
            grant(pb::Capability::SendMessages, &b3),
            grant(pb::Capability::SendQuickAlerts, &b3),
        ],
    }))
    .await
    .unwrap();

    let mut h = console(dir.path());
    log_in(&mut h, &server, "alice").await;
    h.get_by_label("Dashboard");
    h.get_by_label("Quick alerts");
    for hidden in ["Organisation", "Admins", "Audit log"] {
        assert!(!has_label(&h, hidden), "{hidden} must not be offered");
    }
    // Without "manage computers" or "view reports", the dashboard still
    // counts the computers of Branch 3, and only those.
    step_until(&mut h, "the counts of Branch 3", |h| {
        has_label(h, "Branch 3: Online 1, Offline 0")
    })
    .await;
    for other in ["Branch 7", "Branches", "City Library"] {
        assert!(
            h.query_all_by_label_contains(&format!("{other}: Online"))
                .next()
                .is_none(),
            "{other} must not be counted"
        );
    }

    // Only Branch 3 can be picked as the audience.
    h.get_by_label("Quick alerts").click();
    h.run();
    let enabled = |h: &Harness<'static, ConsoleApp>, name: &str| {
        !h.get_by_label(name).accesskit_node().is_disabled()
    };
    assert!(enabled(&h, "Branch 3"));
    for other in ["Branch 7", "Branches", "City Library (/)"] {
        assert!(!enabled(&h, other), "{other} must not be selectable");
    }
    h.get_by_label("Branch 3").click();
    step_until(&mut h, "the audience count", |h| {
        has_label(h, "Reaches 1 computer (1 online now)")
    })
    .await;

    // The same session forges a send to Branch 7: the server refuses it and
    // the console shows the server's words.
    h.state_mut()
        .state
        .send_alert_request(pb::SendAlertRequest {
            targets: vec![to_unit(&b7)],
            title: "Forged".into(),
            body: String::new(),
            priority: pb::Priority::Info as i32,
            expires_unix_ms: 0,
        });
    step_until(&mut h, "the refusal on screen", |h| {
        h.query_all_by_label_contains("permission denied")
            .next()
            .is_some()
    })
    .await;
    let error = h
        .state()
        .state
        .session
        .as_ref()
        .and_then(|s| s.alerts_view.compose.error.clone())
        .unwrap();
    assert!(
        error.starts_with("permission denied: ") && error.contains("/Branches/Branch 7"),
        "{error}"
    );
    // Nothing was sent to Branch 7.
    let mut c = admin.client.clone();
    let alerts = c
        .list_alerts(admin.req(pb::ListAlertsRequest { limit: 10 }))
        .await
        .unwrap()
        .into_inner()
        .alerts;
    assert!(alerts.is_empty(), "{alerts:?}");
    in_b3.stop().await;
    in_b7.stop().await;
}
