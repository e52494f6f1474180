//! The session part raises a real desktop notification: a private D-Bus
//! session bus (dbus-daemon) with a notification server on it that records
//! what arrives, and the real `herald-agent session` process.

use std::time::Duration;

use herald_proto::pb;
use herald_tests::desktop::{Desktop, KillOnDrop};
use herald_tests::{TestAgent, TestServer, to_all, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_raise_desktop_notifications_with_their_urgency() {
    let desktop = Desktop::start().await;

    let server = TestServer::start().await;
    let admin = server.admin().await;
    let root = admin.root().await.id;
    let token = admin.token(&root, 1).await;
    let mut agent = TestAgent::enroll(&server.url(), &token).await;
    agent.wait_connected(Duration::from_secs(10)).await;
    // No popup program here: the notification alone is what the person sees.
    let _session = KillOnDrop(
        std::process::Command::new(herald_tests::bin_path("herald-agent"))
            .args([
                "session",
                "--popup",
                "/nonexistent/herald-agent-popup",
                "--socket",
            ])
            .arg(&agent.socket)
            .env("DBUS_SESSION_BUS_ADDRESS", &desktop.bus.address)
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap(),
    );
    wait_for("session part logged in", Duration::from_secs(10), || {
        let (admin, id) = (admin.clone(), agent.computer_id.clone());
        async move { (!admin.computer(&id).await.logged_in_users.is_empty()).then_some(()) }
    })
    .await;

    let mut c = admin.client.clone();
    let critical = c
        .send_alert(admin.req(pb::SendAlertRequest {
            targets: vec![to_all()],
            title: "Evacuate building B".into(),
            body: "Fire alarm — leave by the east stairs. Ewakuacja budynku B.".into(),
            priority: pb::Priority::Critical as i32,
            expires_unix_ms: 0,
        }))
        .await
        .unwrap()
        .into_inner();
    let n = wait_for("critical notification", Duration::from_secs(20), || {
        let n = desktop.notification(0);
        async move { n }
    })
    .await;
    assert_eq!(n.app, "Herald");
    assert_eq!(n.summary, "Evacuate building B");
    assert!(n.body.contains("Ewakuacja budynku B."), "{}", n.body);
    assert_eq!(n.urgency, Some(2), "critical");
    assert_eq!(
        n.expire_timeout, 0,
        "critical notifications stay until closed"
    );
    admin
        .wait_counts(&critical.alert_id, "displayed via the notification", |c| {
            c.displayed == 1
        })
        .await;

    let info = c
        .send_alert(admin.req(pb::SendAlertRequest {
            targets: vec![to_all()],
            title: "Printer on floor 2 fixed".into(),
            body: "Thanks for your patience.".into(),
            priority: pb::Priority::Info as i32,
            expires_unix_ms: 0,
        }))
        .await
        .unwrap()
        .into_inner();
    let n = wait_for("info notification", Duration::from_secs(20), || {
        let n = desktop.notification(1);
        async move { n }
    })
    .await;
    assert_eq!(n.summary, "Printer on floor 2 fixed");
    assert_eq!(n.urgency, Some(0), "info is low urgency");
    assert!(n.expire_timeout > 0);
    admin
        .wait_counts(&info.alert_id, "displayed", |c| c.displayed == 1)
        .await;
    assert_eq!(desktop.count(), 2, "each alert notified once");

    // While the screen is locked an alert is delivered but not shown; it
    // appears at unlock.
    desktop.set_locked(true);
    let waiting = c
        .send_alert(admin.req(pb::SendAlertRequest {
            targets: vec![to_all()],
            title: "Sent while locked".into(),
            body: "Shown after unlock.".into(),
            priority: pb::Priority::Warning as i32,
            expires_unix_ms: 0,
        }))
        .await
        .unwrap()
        .into_inner();
    let st = admin
        .wait_counts(&waiting.alert_id, "delivered to the locked computer", |c| {
            c.delivered == 1
        })
        .await;
    assert_eq!(st.counts.unwrap().displayed, 0);
    assert_eq!(desktop.count(), 2, "nothing shown on a locked screen");
    desktop.set_locked(false);
    admin
        .wait_counts(&waiting.alert_id, "displayed after unlock", |c| {
            c.displayed == 1
        })
        .await;
    assert_eq!(
        desktop.notification(desktop.count() - 1).unwrap().summary,
        "Sent while locked"
    );
}
