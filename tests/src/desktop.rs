//! A desktop for tests that claim something is shown: an X server (Xvfb), a
//! private D-Bus session bus, and a notification server on it that records
//! what arrives (and a screen saver that can be locked).

use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use zbus::OwnedVariant;

/// Fails with the package to install when a tool is missing: a test never
/// skips silently.
pub fn require_tool(name: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{name}` not found: install it with `apt-get install {package}` (./test.sh does)"
    );
}

/// A child process killed when dropped.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Xvfb on a display it picks itself (`-displayfd`: it skips displays in
/// use and reclaims stale lock files). Ended with SIGTERM so it cleans up.
pub struct Xvfb {
    server: Child,
    pub display: String,
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.server.id().to_string())
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.server.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

impl Xvfb {
    pub fn start() -> Xvfb {
        require_tool("Xvfb", "xvfb xauth");
        let mut server = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1024x768x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Xvfb");
        let mut line = String::new();
        std::io::BufReader::new(server.stdout.take().expect("Xvfb stdout"))
            .read_line(&mut line)
            .expect("read the display number from Xvfb");
        let n: u32 = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("Xvfb did not report a display: {line:?}"));
        Xvfb {
            server,
            display: format!(":{n}"),
        }
    }

    /// Screenshot of the whole screen; returns the number of distinct colours.
    pub fn screenshot(&self, png: &Path) -> usize {
        require_tool("import", "imagemagick");
        let status = Command::new("import")
            .args(["-display", &self.display, "-window", "root"])
            .arg(png)
            .status()
            .expect("run import");
        assert!(status.success(), "import failed");
        let out = Command::new("identify")
            .args(["-format", "%k"])
            .arg(png)
            .output()
            .expect("run identify");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0)
    }
}

/// A private D-Bus session bus.
pub struct Bus {
    pub address: String,
    _daemon: KillOnDrop,
}

impl Bus {
    pub fn start() -> Bus {
        require_tool("dbus-daemon", "dbus-daemon");
        let mut child = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start dbus-daemon");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("bus address");
        Bus {
            address: line.trim().to_owned(),
            _daemon: KillOnDrop(child),
        }
    }
}

/// One notification as the server received it.
#[derive(Clone, Debug)]
pub struct Notification {
    pub app: String,
    pub summary: String,
    pub body: String,
    pub urgency: Option<u8>,
    pub expire_timeout: i32,
}

struct Notifd {
    log: Arc<Mutex<Vec<Notification>>>,
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
        hints: HashMap<String, OwnedVariant>,
        expire_timeout: i32,
    ) -> u32 {
        let urgency = hints.get("urgency").and_then(|v| u8::try_from(v).ok());
        let mut log = self.log.lock().expect("log");
        log.push(Notification {
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

struct ScreenSaver {
    locked: Arc<Mutex<bool>>,
}

#[zbus::interface(name = "org.freedesktop.ScreenSaver")]
impl ScreenSaver {
    fn get_active(&self) -> bool {
        *self.locked.lock().expect("lock flag")
    }
}

/// The notification server and screen saver of a test desktop.
pub struct Desktop {
    pub bus: Bus,
    pub notifications: Arc<Mutex<Vec<Notification>>>,
    pub locked: Arc<Mutex<bool>>,
    _conn: zbus::Connection,
}

impl Desktop {
    pub async fn start() -> Desktop {
        let bus = Bus::start();
        let notifications = Arc::new(Mutex::new(Vec::new()));
        let locked = Arc::new(Mutex::new(false));
        let conn = zbus::connection::Builder::address(bus.address.as_str())
            .name("org.freedesktop.Notifications")
            .name("org.freedesktop.ScreenSaver")
            .serve_at(
                "/org/freedesktop/Notifications",
                Notifd {
                    log: notifications.clone(),
                },
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
        Desktop {
            bus,
            notifications,
            locked,
            _conn: conn,
        }
    }

    pub fn notification(&self, i: usize) -> Option<Notification> {
        self.notifications.lock().expect("log").get(i).cloned()
    }

    pub fn count(&self) -> usize {
        self.notifications.lock().expect("log").len()
    }

    pub fn set_locked(&self, locked: bool) {
        *self.locked.lock().expect("lock flag") = locked;
    }
}

/// Pids of live processes whose parent is `parent` and whose name is `name`.
pub fn children_named(parent: u32, name: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ..."; comm may contain spaces, so split at ')'.
        let Some((head, tail)) = stat.rsplit_once(')') else {
            continue;
        };
        let comm = head.split_once('(').map(|(_, c)| c).unwrap_or_default();
        let fields: Vec<&str> = tail.split_whitespace().collect();
        let (Some(state), Some(ppid)) = (fields.first(), fields.get(1)) else {
            continue;
        };
        if *state != "Z" && ppid.parse::<u32>().ok() == Some(parent) && name.starts_with(comm) {
            out.push(pid);
        }
    }
    out
}
