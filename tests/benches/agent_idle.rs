//! Agent idle footprint: what the agent costs a PC while nothing happens.
//!
//! Starts a real `herald-server` process on 127.0.0.1 (temp data dir),
//! creates an enrollment token with the real `heraldctl`, enrolls the real
//! `herald-agent` with it, runs `herald-agent service` connected to the
//! server, and `herald-agent session` connected to the service on a private
//! D-Bus session bus with a notification server and a screen saver (the
//! test desktop of `herald_tests::desktop`). No alert is sent, so no popup
//! window is started. The session part needs no X display until a popup
//! opens, so none is started.
//!
//! After a settle time the service process and the session part process
//! are sampled once per second from /proc for `--minutes`:
//! - memory: VmRSS (`status`), Pss and Private_Clean + Private_Dirty
//!   (`smaps_rollup`);
//! - CPU: utime + stime (`stat`) over the window, as a share of one CPU;
//!   CPU of reaped child processes (cutime + cstime) separately;
//! - wake-ups: voluntary + nonvoluntary context switches summed over the
//!   process's threads (`task/*/status`), accumulated per thread id so a
//!   thread that starts or ends in the window is counted correctly, as a
//!   rate per second, overall and per minute; also broken down by thread
//!   name, which shows what wakes.
//!
//! With `--perf`, wake-ups are also counted by the kernel: `perf stat -a -e
//! sched:sched_wakeup` filtered on the process's thread ids (taken at the
//! start of the window).
//!
//! With `--meshcentral DIR` (a directory where `npm install meshcentral`
//! ran), MeshCentral's Linux agent is measured in the same window: a
//! MeshCentral server (`node`, loopback only, temp data dir) is started, a
//! device group created with `meshctrl`, its agent settings (`.msh`) fetched
//! from the server, and `meshagent_x86-64 connect` run connected to it.
//!
//! ```text
//! cargo build --release -p herald-server -p herald-agent -p herald-console
//! cargo bench -p herald-tests --bench agent_idle                      # 10 minutes
//! cargo bench -p herald-tests --bench agent_idle -- --minutes 0.5     # smoke run
//! cargo bench -p herald-tests --bench agent_idle -- --meshcentral DIR --perf
//! ```
//!
//! Options: `--minutes M` (10; fractions allowed), `--settle S` (seconds
//! between "connected" and the window, 20), `--json PATH`
//! (target/bench-agent-idle.json), `--perf`, `--meshcentral DIR`.
//!
//! Only 127.0.0.1 is used; every wait is bounded in time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use herald_proto::pb;
use herald_tests::ctl::Ctl;
use herald_tests::desktop::{Desktop, KillOnDrop};
use herald_tests::{Admin, PASSWORD, ServerProcess};
use serde_json::{Value, json};

const TARGET_RSS_MIB: f64 = 10.0;
const TARGET_CPU_PERCENT: f64 = 0.1;
const TARGET_WAKEUPS_PER_S: f64 = 1.0;
/// How long the agent gets to connect (and the session part to be seen).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);
const BUILD: &str = "cargo build --release -p herald-server -p herald-agent -p herald-console";

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match Args::parse(&argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("agent_idle bench: error: {e:#}");
            std::process::exit(2);
        }
    };
    // One thread: the bench itself should wake as little as possible.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = rt.block_on(bench_main(args)) {
        eprintln!("agent_idle bench: error: {e:#}");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------------
// Arguments

#[derive(Clone, Debug)]
struct Args {
    minutes: f64,
    settle: Duration,
    json: PathBuf,
    perf: bool,
    meshcentral: Option<PathBuf>,
}

/// `target/release` when run as `target/release/deps/agent_idle-<hash>`.
fn release_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from("target/release"))
}

impl Args {
    fn parse(argv: &[String]) -> anyhow::Result<Args> {
        let target = release_dir()
            .parent()
            .map(Path::to_owned)
            .unwrap_or_else(|| PathBuf::from("target"));
        let mut a = Args {
            minutes: 10.0,
            settle: Duration::from_secs(20),
            json: target.join("bench-agent-idle.json"),
            perf: false,
            meshcentral: None,
        };
        let mut it = argv.iter();
        while let Some(flag) = it.next() {
            let mut value = || {
                it.next()
                    .cloned()
                    .ok_or_else(|| anyhow!("{flag} needs a value"))
            };
            match flag.as_str() {
                // cargo bench passes --bench to harness = false targets.
                "--bench" => {}
                "--minutes" => {
                    a.minutes = value()?
                        .parse()
                        .context("--minutes takes a number, e.g. 10 or 0.5")?;
                    if !(a.minutes > 0.0 && a.minutes.is_finite()) {
                        bail!("--minutes must be more than 0");
                    }
                }
                "--settle" => {
                    a.settle = Duration::from_secs_f64(
                        value()?.parse().context("--settle takes seconds")?,
                    );
                }
                "--json" => a.json = PathBuf::from(value()?),
                "--perf" => a.perf = true,
                "--meshcentral" => a.meshcentral = Some(PathBuf::from(value()?)),
                other => bail!(
                    "unknown option {other}; options: --minutes M, --settle S, --json PATH, \
                     --perf, --meshcentral DIR"
                ),
            }
        }
        Ok(a)
    }
}

// ---------------------------------------------------------------------------
// The run

async fn bench_main(args: Args) -> anyhow::Result<()> {
    let release = release_dir();
    for name in ["herald-server", "herald-agent", "heraldctl"] {
        let p = release.join(name);
        if !p.is_file() {
            bail!(
                "{} is missing: build the release binaries first with `{BUILD}`",
                p.display()
            );
        }
    }
    if args.perf {
        require_on_path(
            "perf",
            "perf is needed for --perf (apt-get install linux-perf)",
        )?;
    }
    let tmp = tempfile::tempdir()?;
    let load_before = loadavg();

    println!(
        "starting herald-server, enrolling herald-agent, starting its service and session part"
    );
    let herald = Herald::start(tmp.path()).await?;
    println!(
        "herald-agent service pid {}, session part pid {}: connected, user logged in",
        herald.service.0.id(),
        herald.session.0.id()
    );
    let mesh = match &args.meshcentral {
        Some(dir) => {
            println!(
                "starting a MeshCentral server and its agent (from {})",
                dir.display()
            );
            let m = Mesh::start(dir, tmp.path()).await?;
            println!(
                "MeshCentral {} agent pid {}: connected",
                m.version,
                m.agent.child.id()
            );
            Some(m)
        }
        None => None,
    };

    println!("settling for {:.0} s", args.settle.as_secs_f64());
    tokio::time::sleep(args.settle).await;

    let mut watched = vec![
        Watched::new(
            "herald-agent service",
            herald.service.0.id(),
            &herald.service_log,
        ),
        Watched::new(
            "herald-agent session",
            herald.session.0.id(),
            &herald.session_log,
        ),
    ];
    if let Some(m) = &mesh {
        watched.push(Watched::new(
            "MeshCentral agent",
            m.agent.child.id(),
            &m.agent_log,
        ));
    }

    let window = Duration::from_secs_f64(args.minutes * 60.0);
    let perf = if args.perf {
        let mut runs = Vec::new();
        for w in &watched {
            runs.push(Some(PerfWakeups::start(w.pid, window, tmp.path())?));
        }
        runs
    } else {
        watched.iter().map(|_| None).collect()
    };

    println!(
        "sampling {} process(es) once per second for {:.1} min",
        watched.len(),
        args.minutes
    );
    let samples = window.as_secs().max(1);
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for i in 0..=samples {
        tick.tick().await;
        let t = start.elapsed().as_secs_f64();
        for w in &mut watched {
            w.sample(t)?;
        }
        if i > 0 && i % 60 == 0 {
            println!("  {} of {} min", i / 60, samples.div_ceil(60));
        }
    }
    let perf_counts: Vec<Option<f64>> = perf
        .into_iter()
        .map(|p| p.and_then(|p| p.finish()))
        .collect();
    let load_after = loadavg();

    // Still connected after the window, without having reconnected.
    let herald_connected = herald.still_connected().await?;
    let herald_sessions = count_lines(&herald.service_log, "session established");
    let mesh_connected = match &mesh {
        Some(m) => Some(m.connected()?),
        None => None,
    };

    let summaries: Vec<Summary> = watched
        .iter()
        .zip(perf_counts)
        .map(|(w, perf)| Summary::of(w, perf))
        .collect();
    print_report(
        &args,
        &summaries,
        load_before.as_deref(),
        load_after.as_deref(),
    );
    println!();
    println!(
        "herald-agent: connected at the end of the window: {}; sessions established since start: {herald_sessions} (1 = no reconnect)",
        yes_no(herald_connected)
    );
    if let (Some(m), Some(c)) = (&mesh, mesh_connected) {
        println!(
            "MeshCentral agent ({}): connected at the end of the window: {}",
            m.version,
            yes_no(c)
        );
    }

    let report = json!({
        "bench": "agent_idle",
        "minutes": args.minutes,
        "settle_s": args.settle.as_secs_f64(),
        "targets": {
            "rss_mib": TARGET_RSS_MIB,
            "cpu_percent": TARGET_CPU_PERCENT,
            "wakeups_per_s": TARGET_WAKEUPS_PER_S,
        },
        "machine": {
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
            "loadavg_before": load_before,
            "loadavg_after": load_after,
        },
        "herald": {
            "connected_at_end": herald_connected,
            "sessions_established": herald_sessions,
        },
        "meshcentral": mesh.as_ref().map(|m| json!({
            "version": m.version,
            "mode": "meshagent_x86-64 connect, connected to a local MeshCentral server",
            "connected_at_end": mesh_connected,
        })),
        "processes": summaries.iter().map(Summary::json).collect::<Vec<_>>(),
    });
    if let Some(dir) = args.json.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.json, serde_json::to_string_pretty(&report)?)?;
    println!("JSON summary: {}", args.json.display());
    Ok(())
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn require_on_path(name: &str, hint: &str) -> anyhow::Result<()> {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
        .unwrap_or(false);
    if found {
        Ok(())
    } else {
        bail!("`{name}` not found: {hint}")
    }
}

fn loadavg() -> Option<String> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

fn count_lines(path: &Path, needle: &str) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.lines().filter(|l| l.contains(needle)).count())
        .unwrap_or(0)
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Polls `check` every `every` until it returns `Some`, or fails after `limit`.
async fn poll<T, F, Fut>(
    what: &str,
    limit: Duration,
    every: Duration,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if start.elapsed() > limit {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(every).await;
    }
}

// ---------------------------------------------------------------------------
// Herald: server, enrolled agent service, session part

struct Herald {
    _server: ServerProcess,
    _desktop: Desktop,
    service: KillOnDrop,
    session: KillOnDrop,
    service_log: PathBuf,
    session_log: PathBuf,
    url: String,
    ca_pem: String,
    computer_id: String,
}

impl Herald {
    async fn start(tmp: &Path) -> anyhow::Result<Herald> {
        let agent_bin = release_dir().join("herald-agent");
        let data_dir = tmp.join("server");
        let ca_pem = ServerProcess::init(&data_dir);
        let server = ServerProcess::start(&data_dir, "127.0.0.1:0");
        let url = server.url();

        // The admin creates a one-use token for the root unit with heraldctl.
        let ctl = Ctl::for_url(&url);
        ctl.login_ca(&data_dir.join("tls/ca.pem"), "admin", PASSWORD)
            .await
            .ok();
        let token = ctl
            .run(&["token", "create", "--unit", "/", "--uses", "1"])
            .await
            .ok()
            .stdout
            .trim()
            .to_owned();

        // herald-agent enroll, then the service, as installed (default log level).
        let state_dir = tmp.join("agent-state");
        let out = Command::new(&agent_bin)
            .args(["enroll", "--server", &url, "--token", &token, "--state-dir"])
            .arg(&state_dir)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .context("run herald-agent enroll")?;
        let printed = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!(
                "herald-agent enroll failed: {printed}{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let computer_id = printed
            .split_whitespace()
            .skip_while(|w| *w != "as")
            .nth(1)
            .ok_or_else(|| anyhow!("herald-agent enroll printed {printed:?}"))?
            .to_owned();

        let socket = tmp.join("run/session.sock");
        let service_log = tmp.join("agent-service.log");
        let service = KillOnDrop(
            Command::new(&agent_bin)
                .args(["service", "--state-dir"])
                .arg(&state_dir)
                .arg("--socket")
                .arg(&socket)
                .env_remove("RUST_LOG")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&service_log)?)
                .spawn()
                .context("start herald-agent service")?,
        );
        let admin = Admin::login(&url, &ca_pem, "admin", PASSWORD).await?;
        let computer = |admin: &Admin| {
            let (admin, id) = (admin.clone(), computer_id.clone());
            async move {
                let mut c = admin.client.clone();
                c.get_computer(admin.req(pb::GetComputerRequest { id }))
                    .await
                    .ok()
                    .map(tonic::Response::into_inner)
            }
        };
        poll(
            "the agent service to connect",
            CONNECT_TIMEOUT,
            Duration::from_millis(100),
            || {
                let c = computer(&admin);
                async move { c.await.filter(|c| c.online) }
            },
        )
        .await
        .with_context(|| format!("service log:\n{}", tail(&service_log)))?;

        // The session part, in a desktop session with its own bus.
        let desktop = Desktop::start().await;
        let session_log = tmp.join("agent-session.log");
        let session = KillOnDrop(
            Command::new(&agent_bin)
                .args(["session", "--socket"])
                .arg(&socket)
                .env("DBUS_SESSION_BUS_ADDRESS", &desktop.bus.address)
                .env_remove("DISPLAY")
                .env_remove("RUST_LOG")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&session_log)?)
                .spawn()
                .context("start herald-agent session")?,
        );
        poll(
            "the session part's user on the server",
            CONNECT_TIMEOUT,
            Duration::from_millis(100),
            || {
                let c = computer(&admin);
                async move {
                    c.await
                        .filter(|c| c.online && !c.logged_in_users.is_empty())
                }
            },
        )
        .await
        .with_context(|| format!("session part log:\n{}", tail(&session_log)))?;

        Ok(Herald {
            _server: server,
            _desktop: desktop,
            service,
            session,
            service_log,
            session_log,
            url,
            ca_pem,
            computer_id,
        })
    }

    /// Whether the server sees the computer online with its user logged in.
    async fn still_connected(&self) -> anyhow::Result<bool> {
        let admin = Admin::login(&self.url, &self.ca_pem, "admin", PASSWORD).await?;
        let mut c = admin.client.clone();
        let computer = c
            .get_computer(admin.req(pb::GetComputerRequest {
                id: self.computer_id.clone(),
            }))
            .await?
            .into_inner();
        Ok(computer.online && !computer.logged_in_users.is_empty())
    }
}

// ---------------------------------------------------------------------------
// MeshCentral: a local server and its Linux agent

/// A process started in its own process group; the whole group is killed
/// when dropped (MeshCentral's server runs as several node processes).
struct Group {
    child: Child,
}

impl Group {
    fn spawn(cmd: &mut Command) -> std::io::Result<Group> {
        use std::os::unix::process::CommandExt;
        Ok(Group {
            child: cmd.process_group(0).spawn()?,
        })
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

const MESH_USER: &str = "admin";
const MESH_PASSWORD: &str = "Idle-bench-2-cores";
const MESH_AGENT: &str = "meshagent_x86-64";

/// `meshctrl` against the local MeshCentral server, as its administrator.
struct MeshCtl {
    script: PathBuf,
    port: u16,
}

impl MeshCtl {
    fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let url = format!("wss://127.0.0.1:{}", self.port);
        let out = Command::new("node")
            .arg(&self.script)
            .args(args)
            .args([
                "--url",
                &url,
                "--loginuser",
                MESH_USER,
                "--loginpass",
                MESH_PASSWORD,
            ])
            .output()
            .context("run meshctrl")?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!(
                "meshctrl {args:?} failed: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(text)
    }

    /// Whether the server lists a device whose agent is connected.
    fn connected(&self) -> anyhow::Result<bool> {
        let out = self.run(&["listdevices", "--json"])?;
        let devices: Value = serde_json::from_str(out.trim())
            .with_context(|| format!("meshctrl listdevices printed {out:?}"))?;
        Ok(devices
            .as_array()
            .is_some_and(|d| d.iter().any(|n| n["conn"].as_u64().unwrap_or(0) & 1 == 1)))
    }
}

struct Mesh {
    // Dropped in this order: the agent first, then the server.
    agent: Group,
    _server: Group,
    agent_log: PathBuf,
    version: String,
    ctl: MeshCtl,
}

impl Mesh {
    async fn start(dir: &Path, tmp: &Path) -> anyhow::Result<Mesh> {
        let package = dir.join("node_modules/meshcentral");
        let agent_src = package.join("agents").join(MESH_AGENT);
        if !package.join("meshcentral.js").is_file() || !agent_src.is_file() {
            bail!(
                "{} has no MeshCentral with its Linux agent: run `npm install meshcentral` in it",
                dir.display()
            );
        }
        require_on_path(
            "node",
            "MeshCentral runs on Node.js (apt-get install nodejs)",
        )?;
        let version = std::fs::read_to_string(package.join("package.json"))
            .ok()
            .and_then(|s| serde_json::from_str::<Value>(&s).ok())
            .and_then(|v| v["version"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "(unknown version)".into());

        // A free loopback port for its HTTPS and agent listener.
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let data = tmp.join("meshcentral-data");
        std::fs::create_dir_all(&data)?;
        let config = json!({
            "settings": {
                "datapath": data,
                "filespath": tmp.join("meshcentral-files"),
                "cert": "127.0.0.1",
                "port": port,
                "portBind": "127.0.0.1",
                "redirPort": 0,
                "mpsPort": 0,
                "exactPorts": true,
                "WANonly": true,
                "selfUpdate": false,
                "noAgentUpdate": 1,
                // No code-signing time stamp server: nothing leaves loopback.
                "agentTimeStampServer": false,
                "autoBackup": false,
            },
            "domains": { "": {
                "title": "Herald idle bench",
                "newAccounts": false,
                "agentNoProxy": true,
            } },
        });
        std::fs::write(
            data.join("config.json"),
            serde_json::to_string_pretty(&config)?,
        )?;

        let node = |args: &[&str]| {
            let mut c = Command::new("node");
            c.arg(&package)
                .arg("--datapath")
                .arg(&data)
                .args(args)
                .current_dir(tmp);
            c
        };
        let account: [&[&str]; 2] = [
            &[
                "--createaccount",
                MESH_USER,
                "--pass",
                MESH_PASSWORD,
                "--email",
                "admin@example.invalid",
            ],
            &["--adminaccount", MESH_USER],
        ];
        for args in account {
            let out = node(args).output().context("run node meshcentral")?;
            if !out.status.success() {
                bail!(
                    "meshcentral {args:?} failed: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }

        let server_log = tmp.join("meshcentral-server.log");
        let server = Group::spawn(
            node(&[])
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&server_log)?)
                .stderr(std::fs::File::create(tmp.join("meshcentral-server.err"))?),
        )
        .context("start the MeshCentral server")?;
        // The first start makes its certificates: allow a few minutes.
        poll(
            "the MeshCentral server to listen",
            Duration::from_secs(300),
            Duration::from_millis(500),
            || {
                let up = std::fs::read_to_string(&server_log)
                    .is_ok_and(|s| s.contains("HTTPS server running on"));
                async move { up.then_some(()) }
            },
        )
        .await
        .with_context(|| format!("server log:\n{}", tail(&server_log)))?;

        let ctl = MeshCtl {
            script: package.join("meshctrl.js"),
            port,
        };
        let created = ctl.run(&["adddevicegroup", "--name", "herald-idle-bench"])?;
        let mesh_id = created
            .split_whitespace()
            .find_map(|w| w.strip_prefix("mesh//"))
            .ok_or_else(|| anyhow!("meshctrl adddevicegroup printed {created:?}"))?
            .to_owned();

        // The agent's settings, as the server hands them out for this group.
        let fetch = format!(
            "require('https').get({{host:'127.0.0.1',port:{port},\
             path:'/meshsettings?id='+encodeURIComponent(process.argv[1]),\
             rejectUnauthorized:false}},r=>{{let d='';r.setEncoding('utf8');\
             r.on('data',c=>d+=c);r.on('end',()=>{{if(r.statusCode!==200){{\
             console.error('HTTP '+r.statusCode);process.exit(1)}}process.stdout.write(d)}})}})\
             .on('error',e=>{{console.error(e.message);process.exit(1)}})"
        );
        let out = Command::new("node")
            .args(["-e", &fetch, &mesh_id])
            .output()
            .context("fetch the agent settings")?;
        let msh = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() || !msh.contains("MeshServer=wss://127.0.0.1:") {
            bail!(
                "cannot get the agent settings from the MeshCentral server: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let agent_dir = tmp.join("meshagent");
        std::fs::create_dir_all(&agent_dir)?;
        let agent_bin = agent_dir.join(MESH_AGENT);
        std::fs::copy(&agent_src, &agent_bin)?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&agent_bin, std::fs::Permissions::from_mode(0o755))?;
        }
        std::fs::write(agent_dir.join(format!("{MESH_AGENT}.msh")), msh)?;

        // The agent in the foreground, connected, not installed as a service.
        let agent_log = tmp.join("meshagent.log");
        let agent = Group::spawn(
            Command::new(&agent_bin)
                .arg("connect")
                .current_dir(&agent_dir)
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&agent_log)?)
                .stderr(Stdio::null()),
        )
        .context("start the MeshCentral agent")?;
        poll(
            "the MeshCentral agent to connect",
            Duration::from_secs(120),
            Duration::from_secs(2),
            || {
                let up = ctl.connected().unwrap_or(false);
                async move { up.then_some(()) }
            },
        )
        .await?;
        Ok(Mesh {
            agent,
            _server: server,
            agent_log,
            version,
            ctl,
        })
    }

    fn connected(&self) -> anyhow::Result<bool> {
        self.ctl.connected()
    }
}

// ---------------------------------------------------------------------------
// Sampling /proc

#[derive(Clone, Debug)]
struct Sample {
    t: f64,
    rss_kib: u64,
    pss_kib: Option<u64>,
    private_kib: Option<u64>,
    threads: u64,
    /// utime + stime, in clock ticks.
    cpu_ticks: u64,
    /// cutime + cstime (reaped children), in clock ticks.
    child_ticks: u64,
    /// Context switches of all threads since the window started.
    voluntary: u64,
    involuntary: u64,
}

/// One thread's context switches as last read, and which name it goes by.
struct ThreadSeen {
    name: String,
    voluntary: u64,
    involuntary: u64,
}

struct Watched {
    label: String,
    pid: u32,
    log: PathBuf,
    threads: HashMap<u32, ThreadSeen>,
    voluntary: u64,
    involuntary: u64,
    /// Wake-ups in the window by thread name, and how many thread ids had it.
    by_name: BTreeMap<String, (u64, std::collections::BTreeSet<u32>)>,
    samples: Vec<Sample>,
}

impl Watched {
    fn new(label: &str, pid: u32, log: &Path) -> Watched {
        Watched {
            label: label.to_owned(),
            pid,
            log: log.to_owned(),
            threads: HashMap::new(),
            voluntary: 0,
            involuntary: 0,
            by_name: BTreeMap::new(),
            samples: Vec::new(),
        }
    }

    fn sample(&mut self, t: f64) -> anyhow::Result<()> {
        let proc_dir = PathBuf::from(format!("/proc/{}", self.pid));
        let exited = || {
            anyhow!(
                "{} (pid {}) exited during the window; its log:\n{}",
                self.label,
                self.pid,
                tail(&self.log)
            )
        };
        let stat = std::fs::read_to_string(proc_dir.join("stat")).map_err(|_| exited())?;
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        if fields.len() < 18 || fields[0] == "Z" || fields[0] == "X" {
            return Err(exited());
        }
        let num = |i: usize| fields[i].parse::<u64>().unwrap_or(0);
        // Fields after "(comm)": state is 3, utime 14, stime 15, cutime 16,
        // cstime 17, num_threads 20 (proc(5)), so index = field - 3.
        let (cpu_ticks, child_ticks, threads) = (num(11) + num(12), num(13) + num(14), num(17));
        let status = std::fs::read_to_string(proc_dir.join("status")).map_err(|_| exited())?;
        let rss_kib = kib_field(&status, "VmRSS:").unwrap_or(0);
        let rollup = std::fs::read_to_string(proc_dir.join("smaps_rollup")).ok();
        let pss_kib = rollup.as_deref().and_then(|r| kib_field(r, "Pss:"));
        let private_kib = rollup
            .as_deref()
            .and_then(|r| Some(kib_field(r, "Private_Clean:")? + kib_field(r, "Private_Dirty:")?));

        // Per thread id: new threads count from zero, threads that ended
        // keep what was counted up to their last sample.
        let first = self.samples.is_empty();
        let mut seen = HashMap::new();
        for entry in std::fs::read_dir(proc_dir.join("task"))
            .map_err(|_| exited())?
            .flatten()
        {
            let Ok(tid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(s) = std::fs::read_to_string(entry.path().join("status")) else {
                continue;
            };
            let name = s
                .lines()
                .find_map(|l| l.strip_prefix("Name:"))
                .unwrap_or("?")
                .trim()
                .to_owned();
            let now = ThreadSeen {
                name,
                voluntary: count_field(&s, "voluntary_ctxt_switches:"),
                involuntary: count_field(&s, "nonvoluntary_ctxt_switches:"),
            };
            if !first {
                let (v0, i0) = self
                    .threads
                    .get(&tid)
                    .map(|p| (p.voluntary, p.involuntary))
                    .unwrap_or((0, 0));
                let dv = now.voluntary.saturating_sub(v0);
                let di = now.involuntary.saturating_sub(i0);
                self.voluntary += dv;
                self.involuntary += di;
                let e = self.by_name.entry(now.name.clone()).or_default();
                e.0 += dv + di;
                e.1.insert(tid);
            } else {
                self.by_name
                    .entry(now.name.clone())
                    .or_default()
                    .1
                    .insert(tid);
            }
            seen.insert(tid, now);
        }
        self.threads = seen;
        self.samples.push(Sample {
            t,
            rss_kib,
            pss_kib,
            private_kib,
            threads,
            cpu_ticks,
            child_ticks,
            voluntary: self.voluntary,
            involuntary: self.involuntary,
        });
        Ok(())
    }
}

/// "VmRSS:   1234 kB" → 1234.
fn kib_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn count_field(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux).
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

// ---------------------------------------------------------------------------
// perf: wake-ups as the scheduler counts them

struct PerfWakeups {
    child: Child,
    out: PathBuf,
    window: Duration,
}

impl PerfWakeups {
    /// Counts `sched:sched_wakeup` events whose woken task is one of the
    /// process's threads, system-wide, for `window`.
    fn start(pid: u32, window: Duration, tmp: &Path) -> anyhow::Result<PerfWakeups> {
        let tids: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        let filter = tids
            .iter()
            .map(|t| format!("pid == {t}"))
            .collect::<Vec<_>>()
            .join(" || ");
        let out = tmp.join(format!("perf-{pid}.csv"));
        let child = Command::new("perf")
            .args([
                "stat",
                "-a",
                "-x",
                ",",
                "-e",
                "sched:sched_wakeup",
                "--filter",
                &filter,
                "-o",
            ])
            .arg(&out)
            .args(["--", "sleep", &format!("{:.0}", window.as_secs_f64())])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start perf stat")?;
        Ok(PerfWakeups { child, out, window })
    }

    /// Wake-ups per second, once perf has finished.
    fn finish(mut self) -> Option<f64> {
        self.child.wait().ok()?;
        let text = std::fs::read_to_string(&self.out).ok()?;
        let count: f64 = text
            .lines()
            .find(|l| l.contains("sched:sched_wakeup"))?
            .split(',')
            .next()?
            .trim()
            .parse()
            .ok()?;
        Some(count / self.window.as_secs_f64())
    }
}

// ---------------------------------------------------------------------------
// Summary and report

struct Summary {
    label: String,
    pid: u32,
    window_s: f64,
    samples: usize,
    rss_median_mib: f64,
    rss_max_mib: f64,
    pss_median_mib: Option<f64>,
    private_median_mib: Option<f64>,
    cpu_percent: f64,
    children_cpu_percent: f64,
    wakeups_per_s: f64,
    voluntary_per_s: f64,
    involuntary_per_s: f64,
    /// Rate in each whole minute of the window (or the whole window if it is
    /// shorter than a minute).
    wakeups_per_minute: Vec<f64>,
    perf_wakeups_per_s: Option<f64>,
    threads_median: f64,
    threads_max: u64,
    /// Thread name, thread ids seen, wake-ups in the window.
    per_thread: Vec<(String, usize, u64)>,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

impl Summary {
    fn of(w: &Watched, perf: Option<f64>) -> Summary {
        let s = &w.samples;
        let (first, last) = (&s[0], &s[s.len() - 1]);
        let window_s = (last.t - first.t).max(1e-9);
        let ticks = clock_ticks();
        let wake = |a: &Sample, b: &Sample| {
            ((b.voluntary + b.involuntary) - (a.voluntary + a.involuntary)) as f64
        };
        let mut per_minute = Vec::new();
        let mut start = 0;
        for (i, x) in s.iter().enumerate() {
            if x.t - s[start].t >= 60.0 - 0.5 {
                per_minute.push(wake(&s[start], x) / (x.t - s[start].t));
                start = i;
            }
        }
        if per_minute.is_empty() {
            per_minute.push(wake(first, last) / window_s);
        }
        let opt_median = |f: &dyn Fn(&Sample) -> Option<u64>| {
            let v: Vec<f64> = s.iter().filter_map(|x| f(x).map(mib)).collect();
            (!v.is_empty()).then(|| median(v))
        };
        let mut per_thread: Vec<(String, usize, u64)> = w
            .by_name
            .iter()
            .map(|(name, (n, tids))| (name.clone(), tids.len(), *n))
            .collect();
        per_thread.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
        Summary {
            label: w.label.clone(),
            pid: w.pid,
            window_s,
            samples: s.len(),
            rss_median_mib: median(s.iter().map(|x| mib(x.rss_kib)).collect()),
            rss_max_mib: s.iter().map(|x| mib(x.rss_kib)).fold(0.0, f64::max),
            pss_median_mib: opt_median(&|x| x.pss_kib),
            private_median_mib: opt_median(&|x| x.private_kib),
            cpu_percent: (last.cpu_ticks - first.cpu_ticks) as f64 / ticks / window_s * 100.0,
            children_cpu_percent: (last.child_ticks - first.child_ticks) as f64 / ticks / window_s
                * 100.0,
            wakeups_per_s: wake(first, last) / window_s,
            voluntary_per_s: (last.voluntary - first.voluntary) as f64 / window_s,
            involuntary_per_s: (last.involuntary - first.involuntary) as f64 / window_s,
            wakeups_per_minute: per_minute,
            perf_wakeups_per_s: perf,
            threads_median: median(s.iter().map(|x| x.threads as f64).collect()),
            threads_max: s.iter().map(|x| x.threads).max().unwrap_or(0),
            per_thread,
        }
    }

    fn wakeups_median_minute(&self) -> f64 {
        median(self.wakeups_per_minute.clone())
    }

    fn wakeups_max_minute(&self) -> f64 {
        self.wakeups_per_minute.iter().copied().fold(0.0, f64::max)
    }

    fn meets_rss(&self) -> bool {
        self.rss_max_mib <= TARGET_RSS_MIB
    }

    fn meets_cpu(&self) -> bool {
        self.cpu_percent <= TARGET_CPU_PERCENT
    }

    fn meets_wakeups(&self) -> bool {
        self.wakeups_per_s <= TARGET_WAKEUPS_PER_S
    }

    fn verdict(&self) -> String {
        let mut missed = Vec::new();
        if !self.meets_rss() {
            missed.push("RSS");
        }
        if !self.meets_cpu() {
            missed.push("CPU");
        }
        if !self.meets_wakeups() {
            missed.push("wake-ups");
        }
        if missed.is_empty() {
            "yes".into()
        } else {
            format!("no ({})", missed.join(", "))
        }
    }

    fn json(&self) -> Value {
        json!({
            "process": self.label,
            "pid": self.pid,
            "window_s": self.window_s,
            "samples": self.samples,
            "rss_median_mib": self.rss_median_mib,
            "rss_max_mib": self.rss_max_mib,
            "pss_median_mib": self.pss_median_mib,
            "private_median_mib": self.private_median_mib,
            "cpu_percent": self.cpu_percent,
            "children_cpu_percent": self.children_cpu_percent,
            "wakeups_per_s": self.wakeups_per_s,
            "voluntary_per_s": self.voluntary_per_s,
            "involuntary_per_s": self.involuntary_per_s,
            "wakeups_median_minute_per_s": self.wakeups_median_minute(),
            "wakeups_max_minute_per_s": self.wakeups_max_minute(),
            "wakeups_per_minute": self.wakeups_per_minute,
            "perf_sched_wakeup_per_s": self.perf_wakeups_per_s,
            "threads_median": self.threads_median,
            "threads_max": self.threads_max,
            "per_thread": self.per_thread.iter().map(|(name, tids, n)| json!({
                "name": name, "thread_ids": tids, "wakeups": n,
                "per_s": *n as f64 / self.window_s,
            })).collect::<Vec<_>>(),
            "meets": {
                "rss": self.meets_rss(),
                "cpu": self.meets_cpu(),
                "wakeups": self.meets_wakeups(),
            },
        })
    }
}

fn print_report(args: &Args, s: &[Summary], load_before: Option<&str>, load_after: Option<&str>) {
    println!();
    println!(
        "Idle footprint over {:.1} min ({} samples, 1 per second), after {:.0} s settling; \
         load average before {} / after {}",
        s[0].window_s / 60.0,
        s[0].samples,
        args.settle.as_secs_f64(),
        load_before.unwrap_or("?"),
        load_after.unwrap_or("?"),
    );
    println!();
    let mut header = "| metric | target |".to_owned();
    let mut rule = "|---|---|".to_owned();
    for x in s {
        header.push_str(&format!(" {} |", x.label));
        rule.push_str("---:|");
    }
    println!("{header}");
    println!("{rule}");
    let row = |name: &str, target: &str, f: &dyn Fn(&Summary) -> String| {
        let mut line = format!("| {name} | {target} |");
        for x in s {
            line.push_str(&format!(" {} |", f(x)));
        }
        println!("{line}");
    };
    let opt = |v: Option<f64>, digits: usize| match v {
        Some(v) => format!("{v:.digits$}"),
        None => "n/a".into(),
    };
    row("RSS median (MiB)", "", &|x| {
        format!("{:.2}", x.rss_median_mib)
    });
    row("RSS max (MiB)", "≤ 10", &|x| {
        format!("{:.2}", x.rss_max_mib)
    });
    row("PSS median (MiB)", "", &|x| opt(x.pss_median_mib, 2));
    row("private median (MiB)", "", &|x| {
        opt(x.private_median_mib, 2)
    });
    row("CPU over the window (%)", "≤ 0.1", &|x| {
        format!("{:.3}", x.cpu_percent)
    });
    row("CPU of child processes (%)", "", &|x| {
        format!("{:.3}", x.children_cpu_percent)
    });
    row("wake-ups/s, overall", "≤ 1", &|x| {
        format!("{:.3}", x.wakeups_per_s)
    });
    row("wake-ups/s, median minute", "", &|x| {
        format!("{:.3}", x.wakeups_median_minute())
    });
    row("wake-ups/s, busiest minute", "", &|x| {
        format!("{:.3}", x.wakeups_max_minute())
    });
    row("  of which voluntary/s", "", &|x| {
        format!("{:.3}", x.voluntary_per_s)
    });
    if args.perf {
        row("wake-ups/s, perf sched_wakeup", "", &|x| {
            opt(x.perf_wakeups_per_s, 3)
        });
    }
    row("threads (median / max)", "", &|x| {
        format!("{:.0} / {}", x.threads_median, x.threads_max)
    });
    row("meets the targets", "", &|x| x.verdict());

    println!();
    println!("Wake-ups by thread over the window:");
    for x in s {
        let list: Vec<String> = x
            .per_thread
            .iter()
            .map(|(name, tids, n)| {
                let ids = if *tids > 1 {
                    format!(" ×{tids}")
                } else {
                    String::new()
                };
                format!("{name}{ids}: {n} ({:.3}/s)", *n as f64 / x.window_s)
            })
            .collect();
        println!("  {}: {}", x.label, list.join(", "));
    }
}
