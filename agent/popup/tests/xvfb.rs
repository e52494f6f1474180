//! Runs the real `herald-agent-popup` binary on a virtual X display, feeds it
//! a Persian and a Japanese alert, screenshots the screen and checks that it
//! exits once the alerts are withdrawn.
//!
//! Needs `Xvfb` (package xvfb) and `import`/`identify` (imagemagick); fails
//! with a clear message if they are missing rather than skipping.

// Test helpers outside `#[test]` functions: a failed expectation is a test failure.
#![allow(clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};

use herald_tests::desktop::{Xvfb, require_tool};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(50);

/// Kills the child when dropped, so a failing test leaves no X server behind.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads the popup's stdout lines on a thread.
fn line_reader(child: &mut Child) -> Receiver<String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn send(stdin: &mut ChildStdin, line: &str) {
    writeln!(stdin, "{line}").expect("write to popup stdin");
    stdin.flush().expect("flush popup stdin");
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.try_wait().expect("poll popup") {
            return Some(status);
        }
        std::thread::sleep(POLL);
    }
    None
}

#[test]
fn real_binary_under_xvfb_shows_persian_and_japanese() {
    require_tool("identify", "imagemagick");

    let xvfb = Xvfb::start();
    let display = xvfb.display.clone();
    let popup = Command::new(env!("CARGO_BIN_EXE_herald-agent-popup"))
        .env("DISPLAY", &display)
        .env_remove("WAYLAND_DISPLAY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start herald-agent-popup");
    let mut popup = KillOnDrop(popup);
    let lines = line_reader(&mut popup.0);
    let mut stdin = popup.0.stdin.take().expect("piped stdin");

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis();
    let expires = now + 3_600_000;
    send(
        &mut stdin,
        &format!(
            r#"{{"type":"show","id":"fa-1","title":"سرور ایمیل تا ساعت ۱۴ در دسترس نیست","body":"همکاران گرامی، لطفا تا ساعت ۱۴ صبور باشید. https://status.example.ir","priority":"critical","sender_unit":"/Branches/Branch 3","sender":"رضا","sent_unix_ms":{now},"expires_unix_ms":{expires}}}"#
        ),
    );
    send(
        &mut stdin,
        &format!(
            r#"{{"type":"show","id":"ja-1","title":"本日17時にシステムメンテナンスを行います","body":"メールとチャットは約30分間ご利用いただけません。","priority":"warning","sender_unit":"/Tokyo/IT","sender":"山田","sent_unix_ms":{now},"expires_unix_ms":{expires}}}"#
        ),
    );
    send(&mut stdin, "this line is not json and must be ignored");

    // Wait for both alerts to be painted.
    let mut displayed = Vec::new();
    let start = Instant::now();
    while displayed.len() < 2 {
        let left = DEADLINE.saturating_sub(start.elapsed());
        let line = lines.recv_timeout(left).unwrap_or_else(|e| {
            panic!("no displayed events within {DEADLINE:?} ({e}); got {displayed:?}")
        });
        let event: serde_json::Value =
            serde_json::from_str(&line).expect("popup writes JSON lines");
        assert_eq!(event["type"], "displayed", "unexpected event {line}");
        assert!(event["at_unix_ms"].as_u64().is_some(), "{line}");
        displayed.push(event["id"].as_str().unwrap_or_default().to_owned());
    }
    displayed.sort();
    assert_eq!(displayed, ["fa-1", "ja-1"]);

    // The frame is presented just after the event is written: poll the
    // screen until it is no longer one flat colour.
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("popup-xvfb.png");
    let _ = std::fs::remove_file(&shot);
    let start = Instant::now();
    loop {
        if xvfb.screenshot(&shot) > 50 {
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "screen stayed flat: {}",
            shot.display()
        );
        std::thread::sleep(POLL);
    }
    assert!(shot.is_file(), "no screenshot at {}", shot.display());
    eprintln!("screenshot: {}", shot.display());

    // Withdrawn alerts leave without events; then the popup exits by itself.
    send(&mut stdin, r#"{"type":"withdraw","id":"fa-1"}"#);
    send(&mut stdin, r#"{"type":"withdraw","id":"ja-1"}"#);
    drop(stdin);
    let status = wait_exit(&mut popup.0, DEADLINE)
        .expect("popup did not exit after its alerts were withdrawn");
    assert!(status.success(), "popup exited with {status}");
    let rest: Vec<String> = lines.try_iter().collect();
    assert!(
        rest.is_empty(),
        "withdraw must not produce events: {rest:?}"
    );
}
