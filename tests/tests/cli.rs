//! End to end through the real `heraldctl` binary: log in, shape the org
//! tree, enroll a real `herald-agent` with a token made on the command line,
//! watch it come online and revoke it, manage admins and grants, read the
//! audit log, log out. Every test runs its own in-process server on port 0
//! and gives heraldctl its own HERALD_CTL_HOME, so sessions never mix.

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use herald_tests::ctl::{Ctl, ca_file, logged_in_admin};
use herald_tests::{PASSWORD, TestServer, bin_path, wait_for};

/// A child process that is killed when this goes out of scope, panics
/// included.
struct KillOnDrop {
    child: Child,
    log: PathBuf,
}

impl KillOnDrop {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const CAPABILITIES: [&str; 11] = [
    "manage-org-units",
    "enroll-agents",
    "manage-computers",
    "send-quick-alerts",
    "send-messages",
    "manage-courses",
    "answer-chat",
    "manage-tickets",
    "view-reports",
    "manage-admins",
    "view-audit-log",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_whoami_and_logout() {
    let server = TestServer::start().await;
    let ctl = Ctl::new(&server);

    // Not logged in yet: every command says how to log in.
    let err = ctl.run(&["whoami"]).await.fails();
    assert!(
        err.contains("not logged in") && err.contains("heraldctl login"),
        "{err}"
    );

    // A wrong password is refused with exit code 1 and no session is saved.
    let err = ctl
        .login_ca(&ca_file(&server), "admin", "not the password")
        .await
        .fails();
    assert!(err.contains("wrong name or password"), "{err}");
    let err = ctl
        .login_ca(&ca_file(&server), "nobody", PASSWORD)
        .await
        .fails();
    assert!(err.contains("wrong name or password"), "{err}");
    assert!(!ctl.home.path().join("session.toml").exists());

    // Log in with the CA file.
    let run = ctl
        .login_ca(&ca_file(&server), "admin", PASSWORD)
        .await
        .ok();
    assert!(run.stdout.contains("logged in as admin"), "{run:#?}");
    assert!(!run.stdout.contains(PASSWORD) && !run.stderr.contains(PASSWORD));
    assert!(ctl.home.path().join("session.toml").exists());

    // whoami: the bootstrap admin holds every capability org-wide.
    let me = ctl.json(&["whoami"]).await;
    assert_eq!(me["name"], "admin", "{me:#}");
    assert_eq!(me["server"], server.url().as_str(), "{me:#}");
    let grants = me["grants"].as_array().unwrap();
    for cap in CAPABILITIES {
        assert!(
            grants
                .iter()
                .any(|g| g["capability"] == cap && g["organisation"] == true),
            "admin lacks {cap} org-wide: {me:#}"
        );
    }
    let text = ctl.run(&["whoami"]).await.ok().stdout;
    assert!(
        text.contains("admin") && text.contains("manage-admins") && text.contains("organisation"),
        "{text}"
    );

    // Log in with the fingerprint instead, in a fresh home.
    let by_fp = Ctl::new(&server);
    let fp = server.fingerprint.as_str();
    let args = [
        "--json",
        "login",
        "--server",
        &by_fp.server,
        "--fingerprint",
        fp,
        "--user",
        "admin",
        "--password-stdin",
    ];
    let login = by_fp
        .run_with(&args, Some(&format!("{PASSWORD}\n")))
        .await
        .ok()
        .json();
    assert_eq!(login["user"], "admin", "{login:#}");
    assert_eq!(by_fp.json(&["whoami"]).await["name"], "admin");

    // A wrong fingerprint does not get as far as the password check.
    let wrong_fp = Ctl::new(&server);
    let bad = "ab".repeat(32);
    let args = [
        "login",
        "--server",
        &wrong_fp.server,
        "--fingerprint",
        &bad,
        "--user",
        "admin",
        "--password-stdin",
    ];
    let err = wrong_fp
        .run_with(&args, Some(&format!("{PASSWORD}\n")))
        .await
        .fails();
    assert!(!err.contains("wrong name or password"), "{err}");

    // Logging out ends the session; whoami then says to log in again.
    let out = ctl.json(&["logout"]).await;
    assert_eq!(out["logged_out"], true, "{out:#}");
    assert!(!ctl.home.path().join("session.toml").exists());
    let err = ctl.run(&["whoami"]).await.fails();
    assert!(
        err.contains("not logged in") && err.contains("run heraldctl login"),
        "{err}"
    );
    // The other session is untouched.
    assert_eq!(by_fp.json(&["whoami"]).await["name"], "admin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn org_tree_create_rename_move_delete() {
    let server = TestServer::start().await;
    let ctl = logged_in_admin(&server).await;

    let branches = ctl.json(&["org", "create", "/", "Branches"]).await;
    assert_eq!(branches["path"], "/Branches", "{branches:#}");
    let b3 = ctl.json(&["org", "create", "/Branches", "Branch 3"]).await;
    assert_eq!(b3["path"], "/Branches/Branch 3", "{b3:#}");
    assert_eq!(b3["parent_id"], branches["id"], "{b3:#}");
    // Text output names the new unit too.
    let run = ctl.run(&["org", "create", "/", "Archive"]).await.ok();
    assert!(run.stdout.contains("created org unit /Archive"), "{run:#?}");

    let paths = ctl.unit_paths().await;
    for want in ["/Branches", "/Branches/Branch 3", "/Archive"] {
        assert!(
            paths.iter().any(|p| p == want),
            "{want} missing from {paths:?}"
        );
    }
    let tree = ctl.run(&["org", "list"]).await.ok().stdout;
    assert!(
        tree.contains("  Branches") && tree.contains("    Branch 3"),
        "{tree}"
    );

    // A duplicate name is refused.
    let err = ctl
        .run(&["org", "create", "/Branches", "branch 3"])
        .await
        .fails();
    assert!(err.contains("already has a unit named"), "{err}");

    // Rename by path, then move by id.
    let renamed = ctl
        .json(&["org", "rename", "/Branches/Branch 3", "Branch Three"])
        .await;
    assert_eq!(renamed["path"], "/Branches/Branch Three", "{renamed:#}");
    assert_eq!(renamed["id"], b3["id"]);
    let id = b3["id"].as_str().unwrap();
    let moved = ctl.json(&["org", "move", id, "/Archive"]).await;
    assert_eq!(moved["path"], "/Archive/Branch Three", "{moved:#}");
    let paths = ctl.unit_paths().await;
    assert!(
        paths.iter().any(|p| p == "/Archive/Branch Three"),
        "{paths:?}"
    );
    assert!(
        !paths.iter().any(|p| p.starts_with("/Branches/")),
        "{paths:?}"
    );

    // Moving a unit into its own subtree is refused.
    let err = ctl
        .run(&["org", "move", "/Archive", "/Archive/Branch Three"])
        .await
        .fails();
    assert!(err.contains("inside the unit being moved"), "{err}");

    // Deleting a unit that still holds things says what is in it.
    let err = ctl.run(&["org", "delete", "/Archive"]).await.fails();
    assert!(
        err.contains("cannot delete /Archive") && err.contains("1 child unit"),
        "{err}"
    );
    ctl.run(&["token", "create", "--unit", "/Archive/Branch Three"])
        .await
        .ok();
    let err = ctl
        .run(&["org", "delete", "/Archive/Branch Three"])
        .await
        .fails();
    assert!(
        err.contains("cannot delete /Archive/Branch Three")
            && err.contains("1 active enrollment token"),
        "{err}"
    );
    let err = ctl.run(&["org", "delete", "/"]).await.fails();
    assert!(err.contains("root"), "{err}");

    // An empty unit goes.
    let deleted = ctl.json(&["org", "delete", "/Branches"]).await;
    assert_eq!(deleted["deleted"]["path"], "/Branches", "{deleted:#}");
    let paths = ctl.unit_paths().await;
    assert!(!paths.iter().any(|p| p == "/Branches"), "{paths:?}");
    let err = ctl.run(&["org", "delete", "/Branches"]).await.fails();
    assert!(err.contains("/Branches"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_enroll_online_and_revoke() {
    let server = TestServer::start().await;
    let ctl = logged_in_admin(&server).await;
    ctl.run(&["org", "create", "/", "Branches"]).await.ok();
    ctl.run(&["org", "create", "/Branches", "Branch 3"])
        .await
        .ok();

    // In text mode stdout is just the token; the note goes to stderr.
    let run = ctl
        .run(&[
            "token",
            "create",
            "--unit",
            "/Branches/Branch 3",
            "--uses",
            "2",
        ])
        .await
        .ok();
    let token = run.stdout.trim_end_matches('\n');
    assert!(
        !token.is_empty() && !token.contains(char::is_whitespace),
        "{run:#?}"
    );
    assert_eq!(run.stdout.lines().count(), 1, "{run:#?}");
    assert!(
        run.stderr.contains("/Branches/Branch 3") && run.stderr.contains("2 uses"),
        "{run:#?}"
    );

    // The real agent binary enrolls with it.
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().join("state");
    let enroll = std::process::Command::new(bin_path("herald-agent"))
        .args([
            "enroll",
            "--server",
            &server.url(),
            "--token",
            token,
            "--state-dir",
        ])
        .arg(&state_dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let enroll_out = String::from_utf8_lossy(&enroll.stdout);
    assert!(
        enroll.status.success(),
        "enroll failed: {enroll_out}\n{}",
        String::from_utf8_lossy(&enroll.stderr)
    );
    assert!(enroll_out.contains("/Branches/Branch 3"), "{enroll_out}");

    // One use of two is spent.
    let tokens = ctl.json(&["token", "list"]).await;
    let t = &tokens.as_array().unwrap()[0];
    assert_eq!(
        (
            t["uses"].as_u64(),
            t["max_uses"].as_u64(),
            t["state"].as_str()
        ),
        (Some(1), Some(2), Some("active")),
        "{tokens:#}"
    );

    // Enrolled but not running yet: listed, offline.
    let list = ctl.json(&["computers", "list"]).await;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:#?}");
    let id = list[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(list[0]["org_unit_path"], "/Branches/Branch 3");
    assert!(enroll_out.contains(&id), "{enroll_out}");

    // Run the agent service as a child process.
    let log = state.path().join("service.log");
    let child = std::process::Command::new(bin_path("herald-agent"))
        .args(["service", "--max-backoff", "1s", "--state-dir"])
        .arg(&state_dir)
        .arg("--socket")
        .arg(state.path().join("s.sock"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let agent = KillOnDrop { child, log };

    let online = wait_for(
        "the computer online in /Branches/Branch 3",
        Duration::from_secs(30),
        || {
            let ctl = &ctl;
            let id = id.clone();
            async move {
                let list = ctl
                    .json(&["computers", "list", "--unit", "/Branches/Branch 3"])
                    .await;
                list.as_array()?
                    .iter()
                    .find(|c| {
                        c["id"] == id.as_str()
                            && c["online"] == true
                            && c["org_unit_path"] == "/Branches/Branch 3"
                    })
                    .cloned()
            }
        },
    )
    .await;
    assert_eq!(online["revoked"], false, "{online:#}");
    assert!(
        !online["hostname"].as_str().unwrap_or("").is_empty(),
        "{online:#}"
    );
    let text = ctl.run(&["computers", "list"]).await.ok().stdout;
    assert!(text.contains(&id) && text.contains("online"), "{text}");

    // Revoking needs --yes without a terminal.
    let err = ctl.run(&["computers", "revoke", &id]).await.fails();
    assert!(err.contains("--yes"), "{err}");
    let revoked = ctl.json(&["computers", "revoke", &id, "--yes"]).await;
    assert_eq!(revoked["revoked"], true, "{revoked:#}");

    // Gone from the default listing; with --revoked it shows revoked and offline.
    let shown = wait_for(
        "the computer revoked and offline",
        Duration::from_secs(30),
        || {
            let ctl = &ctl;
            let id = id.clone();
            async move {
                let list = ctl.json(&["computers", "list", "--revoked"]).await;
                list.as_array()?
                    .iter()
                    .find(|c| {
                        c["id"] == id.as_str() && c["revoked"] == true && c["online"] == false
                    })
                    .cloned()
            }
        },
    )
    .await;
    assert_eq!(shown["org_unit_path"], "/Branches/Branch 3", "{shown:#}");
    let active = ctl.json(&["computers", "list"]).await;
    assert!(
        !active
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == id.as_str()),
        "{active:#}"
    );
    let text = ctl.run(&["computers", "show", &id]).await.ok().stdout;
    assert!(text.contains("revoked"), "{text}");

    // The audit log has the revocation.
    let audit = ctl.json(&["audit", "--action", "computer.revoke"]).await;
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["target"] == id.as_str()),
        "{audit:#}\n{}",
        agent.log()
    );
    drop(agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_grants_and_audit() {
    let server = TestServer::start().await;
    let admin = logged_in_admin(&server).await;
    admin.run(&["org", "create", "/", "Branches"]).await.ok();
    admin
        .run(&["org", "create", "/Branches", "Branch 3"])
        .await
        .ok();

    let alice_password = "alice's own password 3";
    let created = admin
        .run_with(
            &[
                "--json",
                "admins",
                "create",
                "alice",
                "--password-stdin",
                "--grant",
                "send-quick-alerts=unit:/Branches/Branch 3",
            ],
            Some(&format!("{alice_password}\n")),
        )
        .await
        .ok()
        .json();
    assert_eq!(created["name"], "alice", "{created:#}");
    assert_eq!(created["created_by"], "admin", "{created:#}");
    let grants = created["grants"].as_array().unwrap();
    assert_eq!(grants.len(), 1, "{created:#}");
    assert_eq!(grants[0]["capability"], "send-quick-alerts");
    assert_eq!(grants[0]["organisation"], false);
    assert_eq!(
        grants[0]["units"][0]["path"], "/Branches/Branch 3",
        "{created:#}"
    );

    let list = admin.json(&["admins", "list"]).await;
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert!(
        names.contains(&"admin") && names.contains(&"alice"),
        "{list:#}"
    );

    // Alice logs in with her own session.
    let alice = Ctl::new(&server);
    alice
        .login_ca(&ca_file(&server), "alice", alice_password)
        .await
        .ok();
    let me = alice.json(&["whoami"]).await;
    assert_eq!(me["name"], "alice", "{me:#}");
    assert_eq!(me["grants"].as_array().unwrap().len(), 1, "{me:#}");
    // The admin's session is still the admin's.
    assert_eq!(admin.json(&["whoami"]).await["name"], "admin");

    // She may not shape the org tree, and is told what she lacks.
    let err = alice.run(&["org", "create", "/", "X"]).await.fails();
    assert!(
        err.contains("permission denied") && err.contains("manage org units"),
        "{err}"
    );
    assert!(!admin.unit_paths().await.iter().any(|p| p == "/X"));
    // Nor read the audit log, yet.
    let err = alice.run(&["audit"]).await.fails();
    assert!(
        err.contains("permission denied") && err.contains("view audit log"),
        "{err}"
    );

    // The admin grants her the audit log org-wide.
    let granted = admin
        .json(&["grants", "add", "alice", "view-audit-log", "org"])
        .await;
    let grants = granted["grants"].as_array().unwrap();
    assert!(
        grants
            .iter()
            .any(|g| g["capability"] == "view-audit-log" && g["organisation"] == true),
        "{granted:#}"
    );
    assert!(
        grants
            .iter()
            .any(|g| g["capability"] == "send-quick-alerts"),
        "{granted:#}"
    );
    let listed = admin.json(&["grants", "list", "alice"]).await;
    assert_eq!(listed["grants"], granted["grants"], "{listed:#}");
    // Her own session sees the new grant at once.
    let mine = alice.json(&["grants", "list", "alice"]).await;
    assert_eq!(mine["grants"].as_array().unwrap().len(), 2, "{mine:#}");

    // The audit log, as the admin, lists what happened, newest first.
    let audit = admin.json(&["audit"]).await;
    let entries = audit.as_array().unwrap();
    let find = |action: &str| entries.iter().find(|e| e["action"] == action).cloned();
    let unit = find("org_unit.create").unwrap_or_else(|| panic!("no org_unit.create in {audit:#}"));
    assert_eq!(unit["admin"], "admin", "{unit:#}");
    let made = find("admin.create").unwrap_or_else(|| panic!("no admin.create in {audit:#}"));
    assert_eq!(made["admin"], "admin", "{made:#}");
    assert!(made.to_string().contains("alice"), "{made:#}");
    assert!(
        entries
            .iter()
            .filter(|e| e["action"] == "org_unit.create")
            .count()
            >= 2,
        "{audit:#}"
    );
    let seqs: Vec<u64> = entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] > w[1]),
        "not newest first: {seqs:?}"
    );
    // Filters work on the command line.
    let only = admin
        .json(&["audit", "--action", "admin.create", "--admin", "admin"])
        .await;
    let only = only.as_array().unwrap();
    assert!(
        !only.is_empty() && only.iter().all(|e| e["action"] == "admin.create"),
        "{only:#?}"
    );
    let text = admin.run(&["audit", "--limit", "1"]).await.ok();
    assert!(
        text.stdout.lines().count() == 2 && text.stderr.contains("raise --limit"),
        "{text:#?}"
    );

    // Now alice can read it too, but still not change the tree.
    let hers = alice.json(&["audit"]).await;
    assert!(
        hers.as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "admin.create"),
        "{hers:#}"
    );
    let err = alice.run(&["org", "create", "/", "X"]).await.fails();
    assert!(err.contains("manage org units"), "{err}");

    // Alice logs out; the admin's session lives on.
    alice.run(&["logout"]).await.ok();
    let err = alice.run(&["whoami"]).await.fails();
    assert!(err.contains("run heraldctl login"), "{err}");
    assert_eq!(admin.json(&["whoami"]).await["name"], "admin");
}
