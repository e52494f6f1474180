//! Quick alerts end to end: targeting, live counts, offline and late agents,
//! expiry, and crashes of the server and of the agent service.

use std::time::Duration;

use futures::StreamExt;
use herald_proto::pb;
use herald_tests::{
    Admin, FakeUser, PASSWORD, ServerProcess, TestAgent, TestServer, current_user, fast_backoff,
    grant, now_ms, to_all, to_unit, wait_for,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_reaches_its_subtree_only_and_counts_go_live() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let root = admin.root().await.id;
    let branches = admin.create_unit(&root, "Branches").await.id;
    let b3 = admin.create_unit(&branches, "Branch 3").await.id;
    let b7 = admin.create_unit(&branches, "Branch 7").await.id;
    let hr = admin.create_unit(&root, "HR").await.id;
    let mut agents = Vec::new();
    for unit in [&b3, &b3, &b7, &hr] {
        let t = admin.token(unit, 1).await;
        let mut a = TestAgent::enroll(&server.url(), &t).await;
        a.wait_connected(Duration::from_secs(10)).await;
        agents.push(a);
    }
    let mut users = Vec::new();
    for a in &agents {
        users.push(FakeUser::connect(&a.socket).await);
    }

    let sent = admin
        .send_alert(vec![to_unit(&branches)], "Network outage", 0)
        .await
        .expect("send");
    assert_eq!(
        sent.computers, 3,
        "the subtree of /Branches holds three computers"
    );
    // The watch stream follows the counts live.
    let mut c = admin.client.clone();
    let mut watch = c
        .watch_alert(admin.req(pb::GetAlertStatusRequest {
            alert_id: sent.alert_id.clone(),
            computers: false,
        }))
        .await
        .expect("watch")
        .into_inner();
    for u in users.iter_mut().take(3) {
        let a = u.next_alert(true).await;
        assert_eq!(a.id, sent.alert_id);
        assert_eq!(a.priority, "warning");
        assert_eq!(a.sender_unit, "/Branches");
    }
    let displayed = loop {
        let st = tokio::time::timeout(Duration::from_secs(20), watch.next())
            .await
            .expect("watch update")
            .expect("open")
            .unwrap();
        if st.counts.as_ref().unwrap().displayed == 3 {
            break st;
        }
    };
    assert!(!displayed.settled);
    let per_unit: Vec<(String, u32)> = displayed
        .units
        .iter()
        .map(|u| {
            (
                u.org_unit_path.clone(),
                u.counts.as_ref().unwrap().displayed,
            )
        })
        .collect();
    assert_eq!(per_unit.len(), 2);
    assert!(
        per_unit.contains(&("/Branches/Branch 3".into(), 2))
            && per_unit.contains(&("/Branches/Branch 7".into(), 1))
    );

    let st = admin.alert_status(&sent.alert_id).await;
    let hr_computer = &agents[3].computer_id;
    assert!(
        st.computers.iter().all(|c| &c.computer_id != hr_computer),
        "HR is outside the audience"
    );
    assert!(
        st.computers
            .iter()
            .all(|c| c.user == current_user().0 && c.displayed_unix_ms >= sent.accepted_unix_ms)
    );

    // Everyone closes it: dismissed, settled, and the watch stream ends.
    for u in users.iter_mut().take(3) {
        u.dismiss(&sent.alert_id).await;
    }
    let mut last = None;
    while let Some(st) = tokio::time::timeout(Duration::from_secs(20), watch.next())
        .await
        .expect("watch progresses")
    {
        last = Some(st.unwrap());
    }
    let last = last.expect("a final status");
    assert!(last.settled);
    assert_eq!(last.counts.unwrap().dismissed, 3);

    // The HR user got nothing: the next alert to HR is the first it sees.
    let second = admin
        .send_alert(vec![to_unit(&hr)], "HR only", 0)
        .await
        .unwrap();
    assert_eq!(users[3].next_alert(true).await.id, second.alert_id);
    assert_eq!(users[3].received, vec![second.alert_id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scope_limits_all_and_out_of_scope_sends_are_refused_whole() {
    let server = TestServer::start().await;
    let boss = server.admin().await;
    let root = boss.root().await.id;
    let branches = boss.create_unit(&root, "Branches").await.id;
    let b3 = boss.create_unit(&branches, "Branch 3").await.id;
    let hr = boss.create_unit(&root, "HR").await.id;
    for unit in [&b3, &branches, &hr] {
        let t = boss.token(unit, 1).await;
        herald_agent::enroll::enroll(
            &server.url(),
            &t,
            tempfile::tempdir().unwrap().path(),
            false,
        )
        .await
        .unwrap();
    }
    let mut c = boss.client.clone();
    c.create_admin(boss.req(pb::CreateAdminRequest {
        name: "branch-it".into(),
        password: PASSWORD.into(),
        grants: vec![grant(pb::Capability::SendQuickAlerts, &branches)],
    }))
    .await
    .unwrap();
    let it = Admin::login(&server.url(), &server.ca_pem, "branch-it", PASSWORD)
        .await
        .unwrap();

    // The preview counts what a send would reach, checked the same way.
    let mut ic = it.client.clone();
    let preview = ic
        .preview_alert_audience(it.req(pb::PreviewAlertAudienceRequest {
            targets: vec![to_all()],
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((preview.computers, preview.online), (2, 0));
    let per_unit: Vec<(String, u32)> = preview
        .units
        .iter()
        .map(|u| (u.path.clone(), u.computers))
        .collect();
    assert_eq!(
        per_unit,
        vec![
            ("/Branches".to_owned(), 1),
            ("/Branches/Branch 3".to_owned(), 1)
        ]
    );
    let refused_preview = ic
        .preview_alert_audience(it.req(pb::PreviewAlertAudienceRequest {
            targets: vec![to_unit(&b3), to_unit(&hr)],
        }))
        .await
        .unwrap_err();
    assert_eq!(refused_preview.code(), tonic::Code::PermissionDenied);
    assert!(
        refused_preview.message().contains("/HR"),
        "{}",
        refused_preview.message()
    );

    let all = it
        .send_alert(vec![to_all()], "Phishing wave", 0)
        .await
        .unwrap();
    assert_eq!(
        all.computers, 2,
        "all = every computer the sender may reach"
    );
    let everyone = boss
        .send_alert(vec![to_all()], "Evacuation drill", 0)
        .await
        .unwrap();
    assert_eq!(everyone.computers, 3);

    let refused = it
        .send_alert(vec![to_unit(&b3), to_unit(&hr)], "Too far", 0)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    assert!(
        refused.message().contains("send quick alerts") && refused.message().contains("/HR"),
        "{}",
        refused.message()
    );
    let listed = ic
        .list_alerts(it.req(pb::ListAlertsRequest { limit: 100 }))
        .await
        .unwrap()
        .into_inner()
        .alerts;
    let titles: Vec<String> = listed
        .iter()
        .map(|a| a.alert.as_ref().unwrap().title.clone())
        .collect();
    assert_eq!(
        titles,
        vec!["Phishing wave"],
        "nothing of the refused send was stored, and the org-wide alert is not visible"
    );

    // Clear errors for bad input.
    let long = boss
        .send_alert(vec![to_unit(&b3)], &"x".repeat(201), 0)
        .await
        .unwrap_err();
    assert_eq!(long.code(), tonic::Code::InvalidArgument);
    assert!(long.message().contains("title"), "{}", long.message());
    let past = boss
        .send_alert(vec![to_unit(&b3)], "late", now_ms() - 1000)
        .await
        .unwrap_err();
    assert!(past.message().contains("expires"), "{}", past.message());
    let none = boss.send_alert(vec![], "nobody", 0).await.unwrap_err();
    assert!(none.message().contains("targets"), "{}", none.message());
    let bogus = c
        .get_alert_status(boss.req(pb::GetAlertStatusRequest {
            alert_id: "nope".into(),
            computers: false,
        }))
        .await
        .unwrap_err();
    assert_eq!(bogus.code(), tonic::Code::InvalidArgument);

    // The alert list stream: each admin hears of the alerts it may see, as
    // they are sent or cancelled by anyone.
    let mut boss_list = c
        .watch_alert_list(boss.req(pb::WatchAlertListRequest {}))
        .await
        .unwrap()
        .into_inner();
    let mut it_list = ic
        .watch_alert_list(it.req(pb::WatchAlertListRequest {}))
        .await
        .unwrap()
        .into_inner();
    let to_hr = boss
        .send_alert(vec![to_unit(&hr)], "HR only", 0)
        .await
        .unwrap();
    let to_b3 = boss
        .send_alert(vec![to_unit(&b3)], "Branch 3", 0)
        .await
        .unwrap();
    ic.cancel_alert(it.req(pb::CancelAlertRequest {
        alert_id: to_b3.alert_id.clone(),
    }))
    .await
    .unwrap();
    let seen: Vec<(String, bool)> = vec![
        next(&mut boss_list).await,
        next(&mut boss_list).await,
        next(&mut boss_list).await,
    ]
    .into_iter()
    .map(|a| (a.id, a.cancelled))
    .collect();
    assert_eq!(
        seen,
        vec![
            (to_hr.alert_id.clone(), false),
            (to_b3.alert_id.clone(), false),
            (to_b3.alert_id.clone(), true)
        ]
    );
    let seen: Vec<(String, bool)> = vec![next(&mut it_list).await, next(&mut it_list).await]
        .into_iter()
        .map(|a| (a.id, a.cancelled))
        .collect();
    assert_eq!(
        seen,
        vec![(to_b3.alert_id.clone(), false), (to_b3.alert_id, true)],
        "the HR alert is not shown to an admin without HR"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_agents_get_valid_alerts_late_and_expired_ones_never() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let root = admin.root().await.id;
    let token = admin.token(&root, 1).await;
    let mut agent = TestAgent::enroll(&server.url(), &token).await;
    agent.wait_connected(Duration::from_secs(10)).await;
    let id = agent.computer_id.clone();
    agent.stop().await;
    let state_dir = std::mem::replace(&mut agent.state_dir, tempfile::tempdir().unwrap());
    wait_for("agent offline", Duration::from_secs(10), || {
        let admin = admin.clone();
        let id = id.clone();
        async move { (!admin.computer(&id).await.online).then_some(()) }
    })
    .await;

    // Sent while offline: one that expires soon, one that stays valid.
    let short = admin
        .send_alert(vec![to_all()], "Short-lived", now_ms() + 1500)
        .await
        .unwrap();
    let valid = admin
        .send_alert(vec![to_all()], "Still valid", 0)
        .await
        .unwrap();
    let st = admin.alert_status(&valid.alert_id).await;
    assert_eq!(st.counts.unwrap().queued, 1);
    admin
        .wait_counts(&short.alert_id, "expiry while offline", |c| c.expired == 1)
        .await;

    // The agent comes back, and a person logs in.
    let mut agent = TestAgent::start(state_dir, id, fast_backoff());
    agent.wait_connected(Duration::from_secs(10)).await;
    let mut user = FakeUser::connect(&agent.socket).await;
    let got = user.next_alert(true).await;
    assert_eq!(got.id, valid.alert_id, "the expired alert is never shown");
    admin
        .wait_counts(&valid.alert_id, "late display", |c| c.displayed == 1)
        .await;
    let st = admin.alert_status(&short.alert_id).await.counts.unwrap();
    assert_eq!((st.expired, st.displayed, st.delivered), (1, 0, 0));

    // A cancelled alert is withdrawn from the screen.
    let cancelled = admin
        .send_alert(vec![to_all()], "Wrong branch", 0)
        .await
        .unwrap();
    assert_eq!(user.next_alert(true).await.id, cancelled.alert_id);
    let mut c = admin.client.clone();
    c.cancel_alert(admin.req(pb::CancelAlertRequest {
        alert_id: cancelled.alert_id.clone(),
    }))
    .await
    .unwrap();
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), user.client.next())
            .await
            .unwrap()
            .unwrap();
        if let herald_agent::local::ToSession::Withdraw { id } = msg {
            assert_eq!(id, cancelled.alert_id);
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_right_after_send_loses_nothing_and_shows_once() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ServerProcess::init(dir.path());
    let mut server = ServerProcess::start(dir.path(), "127.0.0.1:0");
    let admin = Admin::login(&server.url(), &ca, "admin", PASSWORD)
        .await
        .unwrap();
    let root = admin.root().await.id;
    let token = admin.token(&root, 3).await;
    let mut agents = Vec::new();
    let mut users = Vec::new();
    for _ in 0..3 {
        let mut a = TestAgent::enroll(&server.url(), &token).await;
        a.wait_connected(Duration::from_secs(10)).await;
        users.push(FakeUser::connect(&a.socket).await);
        agents.push(a);
    }
    let sent = admin
        .send_alert(vec![to_all()], "Power cut at 14:00", 0)
        .await
        .unwrap();
    server.kill9();

    let server = ServerProcess::start(dir.path(), &server.addr.to_string());
    let admin = wait_for("restarted server", Duration::from_secs(20), || {
        let (url, ca) = (server.url(), ca.clone());
        async move { Admin::login(&url, &ca, "admin", PASSWORD).await.ok() }
    })
    .await;
    for u in &mut users {
        assert_eq!(u.next_alert(true).await.id, sent.alert_id);
    }
    admin
        .wait_counts(&sent.alert_id, "all displayed after restart", |c| {
            c.displayed == 3
        })
        .await;
    // Exactly once: the next alert is the next thing each person sees.
    let next = admin
        .send_alert(vec![to_all()], "All clear", 0)
        .await
        .unwrap();
    for u in &mut users {
        assert_eq!(u.next_alert(true).await.id, next.alert_id);
        assert_eq!(
            u.received,
            vec![sent.alert_id.clone(), next.alert_id.clone()]
        );
    }
}

/// A `herald-agent service` process, killed when dropped.
struct AgentProcess(std::process::Child);

impl AgentProcess {
    fn start(state_dir: &std::path::Path, socket: &std::path::Path) -> AgentProcess {
        let child = std::process::Command::new(herald_tests::bin_path("herald-agent"))
            .args(["service", "--max-backoff", "1s", "--state-dir"])
            .arg(state_dir)
            .arg("--socket")
            .arg(socket)
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap();
        AgentProcess(child)
    }
    fn kill9(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_killed_between_display_and_receipt_still_reports_and_does_not_show_again() {
    let mut server = TestServer::start().await;
    let admin = server.admin().await;
    let root = admin.root().await.id;
    let token = admin.token(&root, 1).await;
    let state = tempfile::tempdir().unwrap();
    let id = herald_agent::enroll::enroll(&server.url(), &token, state.path(), false)
        .await
        .unwrap()
        .info
        .computer_id;
    let socket = state.path().join("s.sock");
    let mut agent = AgentProcess::start(state.path(), &socket);
    let mut user = FakeUser::connect(&socket).await;
    wait_for("agent online", Duration::from_secs(20), || {
        let (admin, id) = (admin.clone(), id.clone());
        async move { admin.computer(&id).await.online.then_some(()) }
    })
    .await;
    let sent = admin
        .send_alert(vec![to_all()], "Phishing mail: do not open", 0)
        .await
        .unwrap();
    let a = user.next_alert(false).await;
    admin
        .wait_counts(&sent.alert_id, "delivered", |c| c.delivered == 1)
        .await;

    // The server goes away; the person sees the popup; the service stores
    // the receipt but cannot send it — and is then killed.
    server.stop().await;
    user.client
        .send(&herald_agent::local::FromSession::Displayed {
            id: a.id.clone(),
            at_unix_ms: now_ms(),
        })
        .await
        .unwrap();
    let items = state.path().join("items.json");
    wait_for(
        "receipt stored durably by the agent",
        Duration::from_secs(10),
        || {
            let items = items.clone();
            async move {
                let text = std::fs::read_to_string(&items).ok()?;
                let v: serde_json::Value = serde_json::from_str(&text).ok()?;
                v["receipts"]
                    .as_array()?
                    .iter()
                    .any(|r| r["state"] == pb::DeliveryState::Displayed as i32)
                    .then_some(())
            }
        },
    )
    .await;
    agent.kill9();

    server.restart().await;
    let admin = server.admin().await;
    let _agent = AgentProcess::start(state.path(), &socket);
    let mut user = FakeUser::connect(&socket).await;
    let st = admin
        .wait_counts(&sent.alert_id, "displayed receipt after the crash", |c| {
            c.displayed == 1
        })
        .await;
    assert_eq!(st.computers[0].user, current_user().0);
    // Not shown again: the next alert is the first thing the person sees.
    let next = admin.send_alert(vec![to_all()], "Second", 0).await.unwrap();
    assert_eq!(user.next_alert(true).await.id, next.alert_id);
    assert_eq!(user.received, vec![next.alert_id]);
}

async fn next(s: &mut tonic::Streaming<pb::AlertSummary>) -> pb::AlertSummary {
    tokio::time::timeout(Duration::from_secs(10), s.message())
        .await
        .expect("an alert list event within 10 s")
        .unwrap()
        .unwrap()
}

/// An agent that stops reading its session is cut off once its queue fills
/// behind a write it does not take: the server lets go of the connection
/// at once (it does not wait out the write limit), the computer shows
/// offline with the time it was cut, and the other agents keep receiving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_stops_reading_is_cut_off_and_the_others_keep_receiving() {
    let config = herald_server::config::Config {
        agent_send_queue: 8,
        ..Default::default()
    };
    let server = TestServer::start_with(config).await;
    let admin = server.admin().await;
    let root = admin.root().await.id;
    let token = admin.token(&root, 2).await;
    let mut good = TestAgent::enroll(&server.url(), &token).await;
    good.wait_connected(Duration::from_secs(10)).await;
    let mut stuck = TestAgent::enroll(&server.url(), &token).await;
    stuck.wait_connected(Duration::from_secs(10)).await;
    // The real service steps aside; a client that never reads takes its
    // identity.
    let (_inbound, _writer, _welcome) = stuck.take_over_session(&server).await;
    assert!(admin.computer(&stuck.computer_id).await.online);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let before_cut = now_ms();

    // 12 kB alerts until the stuck agent's socket and its queue of 8 are
    // full and it is cut.
    let body = "警".repeat(4000);
    let mut sent = Vec::new();
    while admin.computer(&stuck.computer_id).await.online {
        assert!(
            sent.len() < 1000,
            "still online after {} alerts",
            sent.len()
        );
        let mut c = admin.client.clone();
        let r = c
            .send_alert(admin.req(pb::SendAlertRequest {
                targets: vec![to_all()],
                title: format!("Outage notice {}", sent.len()),
                body: body.clone(),
                priority: pb::Priority::Warning as i32,
                expires_unix_ms: 0,
            }))
            .await
            .expect("send alert")
            .into_inner();
        sent.push(r.alert_id);
    }
    let cut = std::time::Instant::now();
    let cut_ms = now_ms();
    assert!(sent.len() > 8, "cut after {} alerts", sent.len());

    // The server has closed its end with the agent's data still unsent
    // (FIN_WAIT1 with a send queue), long before the 20 s write limit.
    let port = server.addr.port();
    wait_for(
        "the server to close the stuck connection",
        Duration::from_secs(10),
        || async move { closed_with_unsent_data(port).then_some(()) },
    )
    .await;
    assert!(cut.elapsed() < Duration::from_secs(10));

    let seen = admin.computer(&stuck.computer_id).await;
    assert!(!seen.online);
    assert!(
        (before_cut..=now_ms()).contains(&seen.last_seen_unix_ms),
        "last seen {} should be when it was cut ({cut_ms})",
        seen.last_seen_unix_ms
    );
    // The other agent got every alert, the last one included.
    for id in [&sent[0], sent.last().unwrap()] {
        admin
            .wait_counts(id, "the other agent's receipt", |c| c.delivered == 1)
            .await;
    }
    assert!(admin.computer(&good.computer_id).await.online);
}

/// Whether a server-side socket on `port` (IPv4 loopback) was closed by
/// the server with data its peer has not taken (FIN_WAIT1, send queue > 0).
fn closed_with_unsent_data(port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    table.lines().skip(1).any(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let local_port = f
            .get(1)
            .and_then(|a| a.rsplit(':').next())
            .and_then(|p| u16::from_str_radix(p, 16).ok());
        let unsent = f
            .get(4)
            .and_then(|q| q.split(':').next())
            .and_then(|q| u64::from_str_radix(q, 16).ok());
        local_port == Some(port) && f.get(3) == Some(&"04") && unsent.is_some_and(|q| q > 0)
    })
}
