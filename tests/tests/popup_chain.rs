//! The whole way to a person's screen: server → agent service → session part
//! → desktop notification and the real popup window on an X server, and the
//! "displayed" receipt back to the server; cancelling withdraws the popup.

use std::time::Duration;

use herald_proto::pb;
use herald_tests::desktop::{Desktop, KillOnDrop, Xvfb, children_named};
use herald_tests::{TestAgent, TestServer, to_all, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_pops_up_on_screen_and_is_withdrawn_when_cancelled() {
    let xvfb = Xvfb::start();
    let desktop = Desktop::start().await;
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let root = admin.root().await.id;
    let branch = admin.create_unit(&root, "Filia nr 3").await.id;
    let token = admin.token(&branch, 1).await;
    let mut agent = TestAgent::enroll(&server.url(), &token).await;
    agent.wait_connected(Duration::from_secs(10)).await;

    let session = KillOnDrop(
        std::process::Command::new(herald_tests::bin_path("herald-agent"))
            .args(["session", "--socket"])
            .arg(&agent.socket)
            .env("DISPLAY", &xvfb.display)
            .env("DBUS_SESSION_BUS_ADDRESS", &desktop.bus.address)
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap(),
    );
    let session_pid = session.0.id();
    wait_for("session part logged in", Duration::from_secs(10), || {
        let (admin, id) = (admin.clone(), agent.computer_id.clone());
        async move { (!admin.computer(&id).await.logged_in_users.is_empty()).then_some(()) }
    })
    .await;

    let mut c = admin.client.clone();
    let sent = c
        .send_alert(admin.req(pb::SendAlertRequest {
            targets: vec![to_all()],
            title: "سرور ایمیل تا ساعت ۱۴ در دسترس نیست".into(),
            body: "Awaria poczty w filii nr 3. メールは14時まで使えません。 https://status.example.org".into(),
            priority: pb::Priority::Critical as i32,
            expires_unix_ms: 0,
        }))
        .await
        .unwrap()
        .into_inner();

    // "Displayed" comes from the popup window itself once it painted.
    admin
        .wait_counts(&sent.alert_id, "displayed on screen", |c| c.displayed == 1)
        .await;
    let popups = children_named(session_pid, "herald-agent-popup");
    assert_eq!(popups.len(), 1, "one popup window process");
    let n = desktop.notification(0).expect("a notification too");
    assert_eq!(n.urgency, Some(2));

    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("alert-on-screen.png");
    // The popup reports "displayed" once it painted; the X server may show
    // the frame a moment later.
    let colours = wait_for("the popup on the screen", Duration::from_secs(10), || {
        let colours = xvfb.screenshot(&shot);
        async move { (colours > 16).then_some(colours) }
    })
    .await;
    assert!(colours > 16, "{} shows the popup", shot.display());

    // A second alert stacks in the same window.
    let second = c
        .send_alert(admin.req(pb::SendAlertRequest {
            targets: vec![to_all()],
            title: "本日17時にシステムメンテナンスを行います".into(),
            body: "作業中のファイルは保存してください。".into(),
            priority: pb::Priority::Warning as i32,
            expires_unix_ms: 0,
        }))
        .await
        .unwrap()
        .into_inner();
    admin
        .wait_counts(&second.alert_id, "second displayed", |c| c.displayed == 1)
        .await;
    assert_eq!(
        children_named(session_pid, "herald-agent-popup").len(),
        1,
        "stacked, not a second window"
    );
    let shot2 = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("alerts-stacked.png");
    xvfb.screenshot(&shot2);

    // Cancelling both withdraws them; the empty popup closes itself.
    for id in [&sent.alert_id, &second.alert_id] {
        c.cancel_alert(admin.req(pb::CancelAlertRequest {
            alert_id: id.clone(),
        }))
        .await
        .unwrap();
    }
    wait_for(
        "popup closed after withdrawal",
        Duration::from_secs(10),
        || {
            let gone = children_named(session_pid, "herald-agent-popup").is_empty();
            async move { gone.then_some(()) }
        },
    )
    .await;
}
