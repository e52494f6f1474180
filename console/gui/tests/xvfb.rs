//! The real `herald-console` binary on a virtual X display, logged in with
//! the session `heraldctl login` saves (as the quickstart opens it), against
//! a real server with an online computer and alerts in Polish, Persian and
//! Japanese. The screenshot lands in the target dir's tmp folder
//! (`console-xvfb.png`) for people to look at.
//!
//! Needs `Xvfb` (package xvfb) and `import`/`identify` (imagemagick); fails
//! with a clear message if they are missing rather than skipping.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use herald_console::SavedSession;
use herald_console::pb;
use herald_tests::desktop::{KillOnDrop, Xvfb, require_tool};
use herald_tests::{FakeUser, TestAgent, TestServer, now_ms, to_unit};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_console_window_opens_logged_in() {
    require_tool("identify", "imagemagick");
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let root = admin.root().await.id;
    let branches = admin.create_unit(&root, "Branches").await.id;
    let b3 = admin.create_unit(&branches, "Filia nr 3").await.id;
    admin.create_unit(&branches, "شعبه تهران").await;
    admin.create_unit(&branches, "東京分館").await;
    let token = admin.token(&b3, 1).await;
    let mut agent = TestAgent::enroll(&server.url(), &token).await;
    agent.wait_connected(Duration::from_secs(10)).await;
    let mut user = FakeUser::connect(&agent.socket).await;
    let mut c = admin.client.clone();
    for (title, priority) in [
        (
            "本日17時にシステムメンテナンスを行います",
            pb::Priority::Info,
        ),
        (
            "سرور ایمیل تا ساعت ۱۴ در دسترس نیست",
            pb::Priority::Critical,
        ),
        ("Awaria sieci w filii nr 3", pb::Priority::Warning),
    ] {
        c.send_alert(admin.req(pb::SendAlertRequest {
            targets: vec![to_unit(&b3)],
            title: title.into(),
            body: String::new(),
            priority: priority as i32,
            expires_unix_ms: 0,
        }))
        .await
        .unwrap();
        user.next_alert(true).await;
    }

    // What `heraldctl login` leaves behind.
    let home = tempfile::tempdir().unwrap();
    let ca_file = home.path().join("ca.pem");
    std::fs::write(&ca_file, &server.ca_pem).unwrap();
    SavedSession {
        server: server.url(),
        ca_file: Some(ca_file),
        fingerprint: None,
        user: "admin".into(),
        token: admin.token.clone(),
        expires_unix_ms: now_ms() + 3_600_000,
    }
    .save(&home.path().join("session.toml"))
    .unwrap();

    let xvfb = Xvfb::start();
    let mut console = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_herald-console"))
            .args(["--cli-session", "--window-size", "1024x768"])
            .env("DISPLAY", &xvfb.display)
            .env_remove("WAYLAND_DISPLAY")
            .env("HERALD_CTL_HOME", home.path())
            .env("HERALD_CONSOLE_HOME", home.path())
            .env("HERALD_CONSOLE_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .expect("start herald-console"),
    );
    let (tx, lines) = mpsc::channel();
    let stderr = console.0.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("herald-console: {line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let start = Instant::now();
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(30).saturating_sub(start.elapsed()))
            .expect("herald-console logs in within 30 s");
        if line.contains("logged in") {
            assert!(line.contains("admin"), "{line}");
            break;
        }
    }
    assert!(
        console.0.try_wait().unwrap().is_none(),
        "herald-console exited"
    );

    // Poll until the dashboard with its counts and alerts is on screen: a
    // window full of text and bars has far more colours than an empty one.
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-xvfb.png");
    let _ = std::fs::remove_file(&shot);
    let start = Instant::now();
    let mut colours = 0;
    while start.elapsed() < Duration::from_secs(30) {
        // Frames keep coming while watches settle; give the last one time.
        tokio::time::sleep(Duration::from_millis(300)).await;
        colours = xvfb.screenshot(&shot);
        if colours > 300 {
            break;
        }
    }
    assert!(
        colours > 300,
        "{} stayed nearly flat ({colours} colours)",
        shot.display()
    );
    eprintln!("screenshot: {}", shot.display());
    // Nothing secret was remembered.
    let saved = std::fs::read_to_string(home.path().join("console.toml")).unwrap();
    assert!(!saved.contains(&admin.token), "{saved}");
    agent.stop().await;
}
