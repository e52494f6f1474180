//! `herald-agent session`: the per-user part, started inside the desktop
//! session. It connects to the service's local socket (which is how the
//! service knows the user is logged in), and shows what the service hands
//! it: a desktop notification and the popup window (`herald-agent-popup`,
//! started on demand and gone when closed, so nothing GUI stays resident).
//! What the person saw and closed goes back to the service as receipts.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::process::{Child, ChildStdin};
use tokio::sync::mpsc;

use crate::items::LocalAlert;
use crate::local::{FromSession, ToSession};

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(
        "cannot reach the herald-agent service at {path}: {source} (is `herald-agent service` running?)"
    )]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("the herald-agent service closed the connection")]
    Closed,
    #[error("unexpected message from the service: {0}")]
    Protocol(String),
}

/// A connection to the service, as a session part holds it.
pub struct SessionClient {
    pub welcome: ToSession,
    lines: Lines<BufReader<OwnedReadHalf>>,
    write: OwnedWriteHalf,
}

impl SessionClient {
    pub async fn connect(socket: &Path) -> Result<SessionClient, SessionError> {
        let stream = UnixStream::connect(socket)
            .await
            .map_err(|source| SessionError::Connect {
                path: socket.display().to_string(),
                source,
            })?;
        let (read, write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let first = lines
            .next_line()
            .await
            .map_err(|_| SessionError::Closed)?
            .ok_or(SessionError::Closed)?;
        let welcome: ToSession =
            serde_json::from_str(&first).map_err(|e| SessionError::Protocol(e.to_string()))?;
        if !matches!(welcome, ToSession::Welcome { .. }) {
            return Err(SessionError::Protocol(
                "the service did not start with a welcome".into(),
            ));
        }
        Ok(SessionClient {
            welcome,
            lines,
            write,
        })
    }

    /// The next message from the service; `None` when it went away.
    pub async fn next(&mut self) -> Option<ToSession> {
        loop {
            let line = self.lines.next_line().await.ok()??;
            match serde_json::from_str(&line) {
                Ok(m) => return Some(m),
                Err(e) => tracing::debug!(error = %e, "ignoring unknown message from the service"),
            }
        }
    }

    pub async fn send(&mut self, msg: &FromSession) -> Result<(), SessionError> {
        let mut line =
            serde_json::to_string(msg).map_err(|e| SessionError::Protocol(e.to_string()))?;
        line.push('\n');
        self.write
            .write_all(line.as_bytes())
            .await
            .map_err(|_| SessionError::Closed)
    }
}

#[derive(Clone, Debug)]
pub struct SessionOptions {
    pub socket: PathBuf,
    /// The popup binary; `None` looks for `herald-agent-popup` next to this
    /// executable.
    pub popup: Option<PathBuf>,
    /// Show desktop notifications.
    pub notifications: bool,
}

fn popup_binary(opts: &SessionOptions) -> Option<PathBuf> {
    if let Some(p) = &opts.popup {
        return Some(p.clone());
    }
    let exe = std::env::current_exe().ok()?;
    let p = exe.with_file_name("herald-agent-popup");
    p.exists().then_some(p)
}

/// The popup process while it is open.
struct Popup {
    child: Child,
    stdin: ChildStdin,
}

/// A line for the popup's stdin (see the popup's protocol).
fn popup_show(a: &LocalAlert) -> String {
    let v = serde_json::json!({
        "type": "show",
        "id": a.id,
        "title": a.title,
        "body": a.body,
        "priority": a.priority,
        "sender_unit": a.sender_unit,
        "sender": a.sender,
        "sent_unix_ms": a.sent_unix_ms,
        "expires_unix_ms": a.expires_unix_ms,
    });
    format!("{v}\n")
}

#[derive(serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum PopupEvent {
    Displayed { id: String, at_unix_ms: i64 },
    Dismissed { id: String, at_unix_ms: i64 },
}

fn urgency(priority: &str) -> (notify_rust::Urgency, notify_rust::Timeout) {
    match priority {
        "critical" => (notify_rust::Urgency::Critical, notify_rust::Timeout::Never),
        "warning" => (
            notify_rust::Urgency::Normal,
            notify_rust::Timeout::Milliseconds(30_000),
        ),
        _ => (
            notify_rust::Urgency::Low,
            notify_rust::Timeout::Milliseconds(15_000),
        ),
    }
}

/// Shows a desktop notification; returns whether the notification server
/// accepted it.
async fn notify(a: &LocalAlert) -> bool {
    let (urgency, timeout) = urgency(&a.priority);
    let summary = a.title.clone();
    let body = if a.sender_unit.is_empty() {
        a.body.clone()
    } else {
        format!("{}\n— {}", a.body, a.sender_unit)
    };
    let shown = tokio::task::spawn_blocking(move || {
        notify_rust::Notification::new()
            .appname("Herald")
            .summary(&summary)
            .body(&body)
            .urgency(urgency)
            .timeout(timeout)
            .show()
            .map(|_| ())
    })
    .await;
    match shown {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "desktop notification failed");
            false
        }
        Err(_) => false,
    }
}

/// Whether the screen is locked, as the desktop's screen saver service
/// (`org.freedesktop.ScreenSaver` on the session bus) says. Desktops without
/// one count as unlocked.
async fn screen_locked(bus: &mut Option<zbus::Connection>) -> bool {
    if bus.is_none() {
        *bus = zbus::Connection::session().await.ok();
    }
    let Some(conn) = bus.as_ref() else {
        return false;
    };
    let reply = conn
        .call_method(
            Some("org.freedesktop.ScreenSaver"),
            "/org/freedesktop/ScreenSaver",
            Some("org.freedesktop.ScreenSaver"),
            "GetActive",
            &(),
        )
        .await;
    match reply {
        Ok(m) => m.body().deserialize::<bool>().unwrap_or(false),
        Err(_) => false,
    }
}

/// How often a locked screen is checked again while alerts wait for it.
const LOCK_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs for the whole desktop session: waits for the service if it is not
/// up yet (the session may start before it), and reconnects when the
/// service restarts. What was not shown yet is offered again on reconnect.
pub async fn run_forever(opts: SessionOptions) {
    let backoff = crate::backoff::Backoff {
        base: std::time::Duration::from_millis(500),
        cap: std::time::Duration::from_secs(30),
    };
    let mut attempt = 0;
    loop {
        let started = std::time::Instant::now();
        match run(opts.clone()).await {
            Ok(()) => return,
            Err(e) => {
                if started.elapsed() > std::time::Duration::from_secs(10) {
                    attempt = 0;
                }
                let delay = backoff.random_delay(attempt);
                attempt = attempt.saturating_add(1);
                tracing::warn!(error = %e, retry_in = ?delay, "session part lost the service");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Runs until the service goes away.
pub async fn run(opts: SessionOptions) -> Result<(), SessionError> {
    let mut client = SessionClient::connect(&opts.socket).await?;
    if let ToSession::Welcome {
        user, computer_id, ..
    } = &client.welcome
    {
        tracing::info!(%user, computer = %computer_id, "connected to the herald-agent service");
    }
    let (events_tx, mut events) = mpsc::unbounded_channel::<FromSession>();
    let mut popup: Option<Popup> = None;
    let mut bus: Option<zbus::Connection> = None;
    // Alerts that arrived while the screen was locked, shown at unlock.
    let mut waiting: Vec<LocalAlert> = Vec::new();
    let mut lock_poll = tokio::time::interval(LOCK_POLL);
    lock_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            msg = client.next() => {
                let Some(msg) = msg else { return Err(SessionError::Closed) };
                match msg {
                    ToSession::Alert(a) => {
                        if screen_locked(&mut bus).await {
                            tracing::info!(item = %a.id, "screen locked: the alert waits for unlock");
                            waiting.push(a);
                        } else {
                            show(&opts, &mut client, &mut popup, &a, &events_tx).await?;
                        }
                    }
                    ToSession::Withdraw { id } => {
                        waiting.retain(|a| a.id != id);
                        if let Some(p) = popup.as_mut() {
                            let line = format!("{}\n", serde_json::json!({"type": "withdraw", "id": id}));
                            let _ = p.stdin.write_all(line.as_bytes()).await;
                        }
                    }
                    ToSession::Welcome { .. } => {}
                }
            }
            Some(ev) = events.recv() => client.send(&ev).await?,
            _ = lock_poll.tick(), if !waiting.is_empty() => {
                if !screen_locked(&mut bus).await {
                    for a in std::mem::take(&mut waiting) {
                        show(&opts, &mut client, &mut popup, &a, &events_tx).await?;
                    }
                }
            }
        }
    }
}

/// Notification plus popup, unless the alert expired meanwhile.
async fn show(
    opts: &SessionOptions,
    client: &mut SessionClient,
    popup: &mut Option<Popup>,
    a: &LocalAlert,
    events: &mpsc::UnboundedSender<FromSession>,
) -> Result<(), SessionError> {
    if !a.is_valid(crate::core::now_ms()) {
        return Ok(());
    }
    let notified = opts.notifications && notify(a).await;
    let shown_in_popup = show_in_popup(opts, popup, a, events).await;
    if !shown_in_popup && notified {
        // No popup here (no display, or no popup binary): the
        // notification is what the person sees.
        client
            .send(&FromSession::Displayed {
                id: a.id.clone(),
                at_unix_ms: crate::core::now_ms(),
            })
            .await?;
    }
    Ok(())
}

/// Hands the alert to the popup, starting it if it is not open. Returns
/// whether a popup took it.
async fn show_in_popup(
    opts: &SessionOptions,
    popup: &mut Option<Popup>,
    a: &LocalAlert,
    events: &mpsc::UnboundedSender<FromSession>,
) -> bool {
    let line = popup_show(a);
    if let Some(p) = popup.as_mut() {
        let alive = matches!(p.child.try_wait(), Ok(None));
        if alive && p.stdin.write_all(line.as_bytes()).await.is_ok() {
            return true;
        }
        *popup = None;
    }
    let Some(bin) = popup_binary(opts) else {
        tracing::info!("no popup binary found; notification only");
        return false;
    };
    let spawned = tokio::process::Command::new(&bin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(false)
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(popup = %bin.display(), error = %e, "cannot start the popup");
            return false;
        }
    };
    let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return false;
    };
    if stdin.write_all(line.as_bytes()).await.is_err() {
        return false;
    }
    let events = events.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            let ev = match serde_json::from_str::<PopupEvent>(&l) {
                Ok(PopupEvent::Displayed { id, at_unix_ms }) => {
                    FromSession::Displayed { id, at_unix_ms }
                }
                Ok(PopupEvent::Dismissed { id, at_unix_ms }) => {
                    FromSession::Dismissed { id, at_unix_ms }
                }
                Err(_) => continue,
            };
            if events.send(ev).is_err() {
                return;
            }
        }
    });
    *popup = Some(Popup { child, stdin });
    true
}
