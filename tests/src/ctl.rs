//! Drives the real `heraldctl` binary as an admin would: each `Ctl` is one
//! person with its own HERALD_CTL_HOME, so saved sessions never mix.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::{PASSWORD, TestServer, bin_path};

/// What one heraldctl run produced.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Panics with everything heraldctl printed unless it succeeded.
    pub fn ok(self) -> Run {
        assert_eq!(self.code, Some(0), "heraldctl failed: {self:#?}");
        self
    }

    /// Panics unless heraldctl failed with exit code 1; returns stderr.
    pub fn fails(self) -> String {
        assert_eq!(
            self.code,
            Some(1),
            "heraldctl should have failed: {self:#?}"
        );
        assert!(self.stderr.starts_with("error: "), "{self:#?}");
        self.stderr
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }
}

/// heraldctl for one person: its own session directory.
pub struct Ctl {
    pub home: tempfile::TempDir,
    pub server: String,
}

impl Ctl {
    pub fn new(server: &TestServer) -> Ctl {
        Ctl::for_url(&server.url())
    }

    /// heraldctl for one person against the server at `url` (for instance a
    /// `herald-server` process rather than a `TestServer`).
    pub fn for_url(url: &str) -> Ctl {
        Ctl {
            home: tempfile::tempdir().unwrap(),
            server: url.to_owned(),
        }
    }

    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(bin_path("heraldctl"));
        cmd.args(args)
            .env("HERALD_CTL_HOME", self.home.path())
            .env_remove("HERALD_PASSWORD")
            .env_remove("XDG_CONFIG_HOME")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Runs heraldctl with `args`, feeding `stdin` (if any) on standard input.
    pub async fn run_with(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let mut cmd = self.command(args);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = cmd.spawn().expect("spawn heraldctl");
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            // heraldctl may exit without reading its input (e.g. on a usage error).
            let _ = pipe.write_all(input.as_bytes()).await;
            drop(pipe);
        }
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("heraldctl {args:?} did not finish within 60 s"))
            .unwrap();
        Run {
            code: out.status.code(),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }

    pub async fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, None).await
    }

    /// `heraldctl --json ARGS`, which must succeed; its parsed output.
    pub async fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        self.run(&all).await.ok().json()
    }

    pub async fn login(&self, server: &TestServer, user: &str, password: &str) {
        let ca = ca_file(server);
        let args = [
            "login",
            "--server",
            &self.server,
            "--ca-file",
            ca.to_str().unwrap(),
            "--user",
            user,
            "--password-stdin",
        ];
        self.run_with(&args, Some(&format!("{password}\n")))
            .await
            .ok();
    }

    pub async fn status(&self, id: &str) -> Value {
        self.json(&["alert", "status", id]).await
    }

    pub async fn login_ca(&self, ca_file: &Path, user: &str, password: &str) -> Run {
        let ca = ca_file.to_str().unwrap();
        let args = [
            "login",
            "--server",
            &self.server,
            "--ca-file",
            ca,
            "--user",
            user,
            "--password-stdin",
        ];
        self.run_with(&args, Some(&format!("{password}\n"))).await
    }

    /// Units by path from `org list --json`.
    pub async fn unit_paths(&self) -> Vec<String> {
        let list = self.json(&["org", "list"]).await;
        list.as_array()
            .unwrap()
            .iter()
            .map(|u| u["path"].as_str().unwrap().to_owned())
            .collect()
    }
}

pub fn ca_file(server: &TestServer) -> PathBuf {
    let p = server.dir.path().join("tls/ca.pem");
    assert!(p.exists(), "{} is missing", p.display());
    p
}

pub async fn logged_in_admin(server: &TestServer) -> Ctl {
    let ctl = Ctl::new(server);
    ctl.login_ca(&ca_file(server), "admin", PASSWORD).await.ok();
    ctl
}
