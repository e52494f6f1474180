//! The session part raises a real desktop notification: a private D-Bus
//! session bus (dbus-daemon) with a notification server on it that records
//! what arrives, and the real `herald-agent session` process.

use std::collections::HashMap;
use std::io::BufRead;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_proto::pb;
use herald_tests::{TestAgent, TestServer, to_all, wait_for};
use zbus::OwnedVariant as OwnedValue;

#[derive(Clone, Debug)]
struct Recorded {
    app: String,
    summary: String,
    body: String,
    urgency: Option<u8>,
    expire_timeout: i32,
}

struct Notifd {
    log: Arc<Mutex<Vec<Recorded>>>,
}

#[zbus::interface(name = "org.freedesktop.Notifications")]
impl Notifd {
    #[allow(clippy::too_many_arguments)]
    async fn notify(
        &self,
        app_name: String,
        _replaces_id: u32,
        _app_icon: String,
        summary: String,
        body: String,
        _actions: Vec<String>,
        hints: HashMap<String, OwnedValue>,
        expire_timeout: i32,
    ) -> u32 {
        let urgency = hints.get("urgency").and_then(|v| u8::try_from(v).ok());
        let mut log = self.log.lock().unwrap();
        log.push(Recorded {
            app: app_name,
            summary,
            body,
            urgency,
            expire_timeout,
        });
        log.len() as u32
    }

    fn get_capabilities(&self) -> Vec<String> {
        vec!["body".into(), "body-hyperlinks".into()]
    }

    fn get_server_information(&self) -> (String, String, String, String) {
        (
            "herald-test-notifd".into(),
            "herald".into(),
            "1".into(),
            "1.2".into(),
        )
    }

    fn close_notification(&self, _id: u32) {}
}

/// The desktop's screen saver, locked or not.
struct ScreenSaver {
    locked: Arc<Mutex<bool>>,
}

#[zbus::interface(name = "org.freedesktop.ScreenSaver")]
impl ScreenSaver {
    fn get_active(&self) -> bool {
        *self.locked.lock().unwrap()
    }
}

/// A private session bus, stopped when dropped.
struct Bus {
    address: String,
    daemon: std::process::Child,
}

impl Bus {
    fn start() -> Bus {
        let mut child = std::process::Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect(
                "dbus-daemon must be installed (Debian package dbus-daemon); ./test.sh installs it",
            );
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        Bus {
            address: line.trim().to_owned(),
            daemon: child,
        }
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

struct Child(std::process::Child);
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_raise_desktop_notifications_with_their_urgency() {
    let bus = Bus::start();
    let log = Arc::new(Mutex::new(Vec::new()));
    let locked = Arc::new(Mutex::new(false));
    let _conn = zbus::connection::Builder::address(bus.address.as_str())
        .name("org.freedesktop.Notifications")
        .name("org.freedesktop.ScreenSaver")
        .serve_at(
            "/org/freedesktop/Notifications",
            Notifd { log: log.clone() },
        )
        .serve_at(
            "/org/freedesktop/ScreenSaver",
            ScreenSaver {
                locked: locked.clone(),
            },
        )
        .build()
        .await
        .expect("connect the notification server to the bus");

    let server = TestServer::start().await;
    let admin = server.admin().await;
    let root = admin.root().await.id;
    let token = admin.token(&root, 1).await;
    let mut agent = TestAgent::enroll(&server.url(), &token).await;
    agent.wait_connected(Duration::from_secs(10)).await;
    // No popup program here: the notification alone is what the person sees.
    let _session = Child(
        std::process::Command::new(herald_tests::bin_path("herald-agent"))
            .args([
                "session",
                "--popup",
                "/nonexistent/herald-agent-popup",
                "--socket",
            ])
            .arg(&agent.socket)
            .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
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
        let log = log.clone();
        async move { log.lock().unwrap().first().cloned() }
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
        let log = log.clone();
        async move { log.lock().unwrap().get(1).cloned() }
    })
    .await;
    assert_eq!(n.summary, "Printer on floor 2 fixed");
    assert_eq!(n.urgency, Some(0), "info is low urgency");
    assert!(n.expire_timeout > 0);
    admin
        .wait_counts(&info.alert_id, "displayed", |c| c.displayed == 1)
        .await;
    assert_eq!(log.lock().unwrap().len(), 2, "each alert notified once");

    // While the screen is locked an alert is delivered but not shown; it
    // appears at unlock.
    *locked.lock().unwrap() = true;
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
    assert_eq!(
        log.lock().unwrap().len(),
        2,
        "nothing shown on a locked screen"
    );
    *locked.lock().unwrap() = false;
    admin
        .wait_counts(&waiting.alert_id, "displayed after unlock", |c| {
            c.displayed == 1
        })
        .await;
    assert_eq!(
        log.lock().unwrap().last().unwrap().summary,
        "Sent while locked"
    );
}
