//! Live presence for the console's dashboard: the WatchPresence stream
//! follows agents connecting and disconnecting, new units and moves, shows
//! each admin only the units it holds grants on, and ends on logout.

use std::time::Duration;

use herald_proto::pb;
use herald_tests::{Admin, PASSWORD, TestAgent, TestServer, grant};
use tokio_stream::StreamExt;

type Presence = tonic::Streaming<pb::PresenceSummary>;

async fn watch(admin: &Admin) -> Presence {
    let mut c = admin.client.clone();
    c.watch_presence(admin.req(pb::WatchPresenceRequest {}))
        .await
        .unwrap()
        .into_inner()
}

/// (path, online, offline) per unit.
fn rows(s: &pb::PresenceSummary) -> Vec<(String, u32, u32)> {
    s.units
        .iter()
        .map(|u| (u.path.clone(), u.online, u.offline))
        .collect()
}

/// Reads summaries until one matches `want`.
async fn until(stream: &mut Presence, want: &[(&str, u32, u32)]) {
    let want: Vec<(String, u32, u32)> = want
        .iter()
        .map(|(p, on, off)| ((*p).to_owned(), *on, *off))
        .collect();
    let mut seen = Vec::new();
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(s) = stream.next().await {
            let r = rows(&s.unwrap());
            if r == want {
                return true;
            }
            seen.push(r);
        }
        false
    })
    .await;
    assert!(
        matches!(found, Ok(true)),
        "never saw {want:?}; saw {seen:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_follows_agents_units_and_grants_and_ends_on_logout() {
    let server = TestServer::start().await;
    let boss = server.admin().await;
    let root = boss.root().await;
    let branches = boss.create_unit(&root.id, "Branches").await.id;
    let b3 = boss.create_unit(&branches, "Branch 3").await.id;

    let mut all = watch(&boss).await;
    until(
        &mut all,
        &[
            ("/", 0, 0),
            ("/Branches", 0, 0),
            ("/Branches/Branch 3", 0, 0),
        ],
    )
    .await;

    let mut agent = TestAgent::enroll(&server.url(), &boss.token(&b3, 1).await).await;
    agent.wait_connected(Duration::from_secs(20)).await;
    until(
        &mut all,
        &[
            ("/", 0, 0),
            ("/Branches", 0, 0),
            ("/Branches/Branch 3", 1, 0),
        ],
    )
    .await;

    // A new unit shows up; a computer moved into it is counted there.
    let hr = boss.create_unit(&root.id, "HR").await.id;
    until(
        &mut all,
        &[
            ("/", 0, 0),
            ("/Branches", 0, 0),
            ("/Branches/Branch 3", 1, 0),
            ("/HR", 0, 0),
        ],
    )
    .await;
    let mut c = boss.client.clone();
    c.move_computer(boss.req(pb::MoveComputerRequest {
        id: agent.computer_id.clone(),
        org_unit_id: hr.clone(),
    }))
    .await
    .unwrap();
    until(
        &mut all,
        &[
            ("/", 0, 0),
            ("/Branches", 0, 0),
            ("/Branches/Branch 3", 0, 0),
            ("/HR", 1, 0),
        ],
    )
    .await;

    // An admin with one grant on Branch 3 sees only that unit.
    c.create_admin(boss.req(pb::CreateAdminRequest {
        name: "branch-it".into(),
        password: PASSWORD.into(),
        grants: vec![grant(pb::Capability::SendQuickAlerts, &b3)],
    }))
    .await
    .unwrap();
    let it = Admin::login(&server.url(), &server.ca_pem, "branch-it", PASSWORD)
        .await
        .unwrap();
    let mut mine = watch(&it).await;
    until(&mut mine, &[("/Branches/Branch 3", 0, 0)]).await;

    agent.stop().await;
    until(
        &mut all,
        &[
            ("/", 0, 0),
            ("/Branches", 0, 0),
            ("/Branches/Branch 3", 0, 0),
            ("/HR", 0, 1),
        ],
    )
    .await;

    // Logging out ends the stream at its next update.
    let mut ic = it.client.clone();
    ic.logout(it.req(pb::LogoutRequest {})).await.unwrap();
    boss.create_unit(&branches, "Branch 7").await;
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match mine.next().await {
                Some(Ok(_)) => continue,
                Some(Err(s)) => return Some(s.code()),
                None => return None,
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(ended, Some(tonic::Code::Unauthenticated));
}
