//! Nothing the server acknowledged is lost when it is killed: SIGKILL the
//! process right after answers arrive, restart it, and look.

use std::time::Duration;

use herald_proto::pb;
use herald_tests::{Admin, PASSWORD, ServerProcess, TestAgent, fast_backoff, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_changes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ServerProcess::init(dir.path());
    let mut server = ServerProcess::start(dir.path(), "127.0.0.1:0");
    let admin = Admin::login(&server.url(), &ca, "admin", PASSWORD)
        .await
        .expect("login");
    let root = admin.root().await;

    // A computer enrolls (answered), then a stream of unit creations runs
    // concurrently; the server is killed the moment the 40th answer arrives.
    let token = admin.token(&root.id, 1).await;
    let agent_dir = tempfile::tempdir().unwrap();
    let enrolled = herald_agent::enroll::enroll(&server.url(), &token, agent_dir.path(), false)
        .await
        .expect("enroll");

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut writers = Vec::new();
    for w in 0..4 {
        let admin = admin.clone();
        let root = root.id.clone();
        let tx = tx.clone();
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let mut c = admin.client.clone();
                let name = format!("W{w}-{i}");
                match c
                    .create_org_unit(admin.req(pb::CreateOrgUnitRequest {
                        parent_id: root.clone(),
                        name: name.clone(),
                    }))
                    .await
                {
                    Ok(_) => {
                        if tx.send(name).is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    drop(tx);
    let mut acknowledged = Vec::new();
    while let Some(name) = rx.recv().await {
        acknowledged.push(name);
        if acknowledged.len() == 40 {
            server.kill9();
            break;
        }
    }
    // Answers that were already on their way when the process died count too.
    while let Ok(name) = rx.try_recv() {
        acknowledged.push(name);
    }
    for w in writers {
        let _ = w.await;
    }
    assert!(acknowledged.len() >= 40);

    let server = ServerProcess::start(dir.path(), &server.addr.to_string());
    let admin = wait_for("restarted server", Duration::from_secs(20), || {
        let url = server.url();
        let ca = ca.clone();
        async move { Admin::login(&url, &ca, "admin", PASSWORD).await.ok() }
    })
    .await;
    let names: Vec<String> = admin.units().await.into_iter().map(|u| u.name).collect();
    let lost: Vec<&String> = acknowledged.iter().filter(|n| !names.contains(n)).collect();
    assert!(
        lost.is_empty(),
        "acknowledged but lost after SIGKILL: {lost:?}"
    );

    // The enrolled computer is still known, and its agent connects.
    let listed = admin.computer(&enrolled.info.computer_id).await;
    assert_eq!(listed.id, enrolled.info.computer_id);
    let mut agent = TestAgent::start(agent_dir, enrolled.info.computer_id.clone(), fast_backoff());
    agent.wait_connected(Duration::from_secs(15)).await;
    wait_for("computer online", Duration::from_secs(10), || {
        let admin = admin.clone();
        let id = enrolled.info.computer_id.clone();
        async move { admin.computer(&id).await.online.then_some(()) }
    })
    .await;

    // init refuses an existing data dir and changes nothing.
    let before = std::fs::read(dir.path().join("tls/ca.pem")).unwrap();
    let out = std::process::Command::new(herald_tests::bin_path("herald-server"))
        .args(["init", "--data-dir"])
        .arg(dir.path())
        .env("HERALD_BOOTSTRAP_PASSWORD", "another password")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already holds a Herald server"));
    assert_eq!(
        std::fs::read(dir.path().join("tls/ca.pem")).unwrap(),
        before
    );
}
