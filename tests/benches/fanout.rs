//! Quick-alert fan-out benchmark: "server accepted" → "agent received".
//!
//! Starts a real `herald-server` process on 127.0.0.1, enrolls N simulated
//! agents over the real `Enroll` RPC (own key, CSR, signed client
//! certificate, all in memory), opens N real agent sessions (framed, ALPN
//! `herald-session/1`, as the agent service opens them) over mutual TLS
//! 1.3, then sends quick alerts to everybody and measures,
//! for every agent and round, `agent receive time − accepted_unix_ms` (same
//! machine clock). Agents answer each delivery with a `Receipt` (DELIVERED)
//! like a real agent does, and heartbeat every 20 s.
//!
//! In the same run, with the same certificates and the same N, a minimal
//! baseline server (this binary re-executed with `--baseline-server`: plain
//! tokio-rustls, TLS 1.3, mandatory client certificates, no HTTP/2, no gRPC,
//! no store) writes one small frame to every connection per round; its
//! figures and the Herald/baseline ratios are printed too.
//!
//! Also in the same run, the same workload on two peer brokers (see
//! `fanout/peers.rs`): NATS server and Mosquitto, each started by the bench
//! with a generated configuration requiring mutual TLS, with N subscribers
//! (async-nats, rumqttc; one TCP + TLS connection and one client
//! certificate each) and one publisher; Herald/peer ratios are printed.
//! Install the brokers with `bash tests/benches/install-peers.sh`.
//!
//! With `--slow-percent P`, each N is run once more with P % of the Herald
//! agents no longer reading their connection after the warm-up, to show the
//! server's memory stays bounded and the other agents' latency does not move.
//! Twenty small alerts fit in a stuck agent's socket buffers; with
//! `--slow-burst` the slow run also sends the slow agents 12 kB alerts (the
//! largest body) back to back while the rounds go on, until the server has
//! cut every one of them, to show where the memory of a stuck agent stops.
//!
//! Two other modes replace the fan-out rounds: `--storm` (see
//! `fanout/storm.rs`) kills the server with SIGKILL right after an alert was
//! accepted, restarts it, and measures how the N agents come back and whether
//! the alert reaches each of them once; `--receipt-burst` (see
//! `fanout/receipts.rs`) has all N agents send a DISPLAYED receipt at the
//! same moment and measures acknowledgement latency, throughput and the
//! server's disk syncs. Both keep every agent in the bench process.
//!
//! ```text
//! bash tests/benches/install-peers.sh                # nats-server, mosquitto
//! cargo build --release -p herald-server
//! cargo bench -p herald-tests --bench fanout -- --agents 1000,10000 --rounds 20
//! cargo bench -p herald-tests --bench fanout -- --agents 200 --rounds 5     # smoke run
//! cargo bench -p herald-tests --bench fanout -- --agents 10000 --slow-percent 1
//! cargo bench -p herald-tests --bench fanout -- --agents 10000 --storm
//! cargo bench -p herald-tests --bench fanout -- --agents 10000 --receipt-burst
//! ```
//!
//! Options: `--agents LIST` (default 1000,10000), `--rounds R` (20),
//! `--warmup W` (2), `--server-bin PATH` (target/release/herald-server),
//! `--json PATH` (target/bench-fanout.json), `--agents-per-process K`
//! (default 18000: more agents than that are spread over child worker
//! processes, because each process may hold 20,000 file descriptors),
//! `--connect-parallel P` (64), `--enroll-parallel P` (32), `--pause-ms MS`
//! (300, between rounds), `--no-baseline`. Diagnostics: `--no-receipts`
//! (agents do not answer deliveries), `--perf-out FILE` (runs `perf record`
//! on the Herald server during the measured rounds; extra perf arguments in
//! `FANOUT_PERF_ARGS`, default `-F 999`).
//!
//! Peers: `--peers LIST` (`nats,mosquitto`, or `none`; default: each one
//! whose broker binary is installed, with a note for any that is not; a peer
//! named explicitly must be installed), `--nats-bin PATH`,
//! `--mosquitto-bin PATH`. Slow agents: `--slow-percent P` (e.g. 1), and
//! `--slow-burst` with it.
//! Other modes: `--storm` (JSON default target/bench-fanout-storm.json),
//! `--receipt-burst` (5 measured rounds unless `--rounds` says otherwise;
//! JSON default target/bench-fanout-receipts.json; `--receipt-spread-ms W`
//! spreads the receipts evenly over W ms instead of all at once).
//!
//! Only 127.0.0.1 is used; every phase is bounded in time.

// Only for setrlimit/getrlimit/sysconf/kill in `sys` below.
#![allow(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail};
use futures::StreamExt;
use herald_proto::framed::{SessionReader, SessionWriter};
use herald_proto::pb;
use herald_proto::pb::{agent_message, server_message};
use herald_proto::tls::{ClientIdentity, ServerTrust};
use herald_tests::{Admin, PASSWORD, to_all};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, watch};

#[path = "fanout/peers.rs"]
mod peers;
use peers::Peer;
#[path = "fanout/receipts.rs"]
mod receipts;
#[path = "fanout/storm.rs"]
mod storm;

const HEARTBEAT_EVERY: Duration = Duration::from_secs(20);
const ROUND_TIMEOUT: Duration = Duration::from_secs(30);
const ACK_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Size of the baseline frame payload, about a Herald alert delivery.
const BARE_PAYLOAD: usize = 200;
/// How the peers are measured, printed and put in the JSON summary.
const PEER_METHOD: &str = "mutual TLS 1.3 with one client certificate per subscriber (P-256); \
    NATS: core publish/subscribe, one subject; Mosquitto: MQTT 3.1.1, QoS 1 both ways \
    (subscribers acknowledge each message, like Herald's receipts); accepted = publisher's \
    clock right after the publish call returned, rounded down to the millisecond";
/// How long after slow agents stop reading the server is looked at again:
/// it ends a session after three heartbeat intervals (3 × 30 s) without a
/// message from the agent, or when a write is not taken within 20 s.
const SLOW_HOLD_S: u64 = 100;

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    sys::raise_nofile();
    if argv.iter().any(|a| a == "--receipts-at-once") {
        // Read by `receipts_at_once`, here and in worker processes.
        // SAFETY: no other thread exists yet.
        unsafe { std::env::set_var(RECEIPTS_AT_ONCE_ENV, "1") }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = match argv.first().map(String::as_str) {
        Some("--baseline-server") => rt.block_on(baseline::server_main(&argv[1..])),
        Some("--agent-worker") => rt.block_on(worker_main(&argv[1..])),
        _ => match Args::parse(&argv) {
            Ok(args) => rt.block_on(bench_main(args)),
            Err(e) => Err(e),
        },
    };
    if let Err(e) = result {
        eprintln!("fanout bench: error: {e:#}");
        std::process::exit(1);
    }
    // Do not wait for thousands of agent tasks to wind down.
    rt.shutdown_timeout(Duration::from_millis(200));
}

// ---------------------------------------------------------------------------
// Arguments

#[derive(Clone, Debug)]
struct Args {
    agents: Vec<usize>,
    rounds: usize,
    warmup: usize,
    server_bin: PathBuf,
    json: PathBuf,
    per_process: usize,
    connect_parallel: usize,
    enroll_parallel: usize,
    pause: Duration,
    baseline: bool,
    /// Agents do not answer deliveries with receipts (diagnostic).
    no_receipts: bool,
    /// Record the Herald server with `perf record` during measured rounds.
    perf_out: Option<PathBuf>,
    /// Peer brokers to run the same workload on, with their binaries.
    peers: Vec<(Peer, PathBuf)>,
    /// Peers left out because their broker is not installed (default only).
    peers_missing: Vec<Peer>,
    /// Share of Herald agents (percent) that stop reading after the warm-up,
    /// in an extra run of each N.
    slow_percent: Option<f64>,
    /// Slow run: large alerts to the slow agents until they are cut.
    slow_burst: bool,
    /// Reconnect storm instead of fan-out rounds (`fanout/storm.rs`).
    storm: bool,
    /// Receipt bursts instead of fan-out rounds (`fanout/receipts.rs`).
    receipt_burst: bool,
    /// Receipt bursts: the agents send their receipts spread evenly over
    /// this window after the release (zero: all at the same moment).
    receipt_spread: Duration,
}

/// `target/` when run as `target/release/deps/fanout-<hash>`.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from("target"))
}

impl Args {
    fn parse(argv: &[String]) -> anyhow::Result<Args> {
        let exe = std::env::current_exe()?;
        // target/release/deps/fanout-… → target/release/herald-server
        let default_bin = exe
            .parent()
            .and_then(Path::parent)
            .map(|d| d.join("herald-server"))
            .unwrap_or_else(|| PathBuf::from("target/release/herald-server"));
        let mut a = Args {
            agents: vec![1000, 10000],
            rounds: 20,
            warmup: 2,
            server_bin: default_bin,
            json: target_dir().join("bench-fanout.json"),
            per_process: 18000,
            connect_parallel: 64,
            enroll_parallel: 32,
            pause: Duration::from_millis(300),
            baseline: true,
            no_receipts: false,
            perf_out: None,
            peers: vec![],
            peers_missing: vec![],
            slow_percent: None,
            slow_burst: false,
            storm: false,
            receipt_burst: false,
            receipt_spread: Duration::ZERO,
        };
        let (mut json_given, mut rounds_given) = (false, false);
        let mut peers_asked: Option<Vec<Peer>> = None;
        let mut peer_bins: HashMap<&str, PathBuf> = HashMap::new();
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
                "--agents" => {
                    a.agents = value()?
                        .split(',')
                        .map(|s| s.trim().parse::<usize>())
                        .collect::<Result<_, _>>()
                        .context("--agents takes a comma-separated list of numbers")?;
                }
                "--rounds" => {
                    a.rounds = value()?.parse()?;
                    rounds_given = true;
                }
                "--warmup" => a.warmup = value()?.parse()?,
                "--server-bin" => a.server_bin = value()?.into(),
                "--json" => {
                    a.json = value()?.into();
                    json_given = true;
                }
                "--agents-per-process" => a.per_process = value()?.parse()?,
                "--connect-parallel" => a.connect_parallel = value()?.parse()?,
                "--enroll-parallel" => a.enroll_parallel = value()?.parse()?,
                "--pause-ms" => a.pause = Duration::from_millis(value()?.parse()?),
                "--no-baseline" => a.baseline = false,
                "--no-receipts" => a.no_receipts = true,
                // Taken up by `main` before any thread starts.
                "--receipts-at-once" => {}
                "--perf-out" => a.perf_out = Some(value()?.into()),
                "--peers" => {
                    let v = value()?;
                    peers_asked = Some(if v == "none" {
                        vec![]
                    } else {
                        v.split(',').map(Peer::parse).collect::<Result<_, _>>()?
                    });
                }
                "--nats-bin" => {
                    peer_bins.insert("nats", value()?.into());
                }
                "--mosquitto-bin" => {
                    peer_bins.insert("mosquitto", value()?.into());
                }
                "--slow-percent" => {
                    let p: f64 = value()?.parse().context("--slow-percent takes a number")?;
                    if !(p > 0.0 && p <= 50.0) {
                        bail!("--slow-percent must be within (0, 50]");
                    }
                    a.slow_percent = Some(p);
                }
                "--slow-burst" => a.slow_burst = true,
                "--storm" => a.storm = true,
                "--receipt-burst" => a.receipt_burst = true,
                "--receipt-spread-ms" => {
                    a.receipt_spread = Duration::from_millis(value()?.parse()?);
                }
                other => bail!("unknown option {other:?} (see the top of tests/benches/fanout.rs)"),
            }
        }
        if a.agents.is_empty() || a.agents.contains(&0) {
            bail!("--agents must list positive numbers");
        }
        if a.rounds == 0 {
            bail!("--rounds must be at least 1");
        }
        if a.per_process == 0 || a.per_process > 19000 {
            bail!("--agents-per-process must be within 1..=19000 (20,000 descriptors per process)");
        }
        if a.slow_burst && a.slow_percent.is_none() {
            bail!("--slow-burst goes with --slow-percent");
        }
        if !a.receipt_spread.is_zero() && !a.receipt_burst {
            bail!("--receipt-spread-ms goes with --receipt-burst");
        }
        if a.storm || a.receipt_burst {
            if a.storm && a.receipt_burst {
                bail!("--storm and --receipt-burst are separate runs: pass one of them");
            }
            if a.slow_percent.is_some() {
                bail!(
                    "--slow-percent belongs to the fan-out rounds, not to --storm or --receipt-burst"
                );
            }
            if let Some(n) = a.agents.iter().find(|n| **n > a.per_process) {
                bail!(
                    "--storm and --receipt-burst keep every agent in the bench process (their \
                     times are taken on one clock): {n} agents is more than --agents-per-process \
                     {}; raise it (at most 19000) or ask for fewer agents",
                    a.per_process
                );
            }
            if !json_given {
                let name = if a.storm {
                    "bench-fanout-storm.json"
                } else {
                    "bench-fanout-receipts.json"
                };
                a.json = target_dir().join(name);
            }
            if a.receipt_burst && !rounds_given {
                a.rounds = 5;
            }
        }
        let explicit = peers_asked.is_some();
        for peer in peers_asked.unwrap_or_else(|| Peer::ALL.to_vec()) {
            if a.peers.iter().any(|(p, _)| *p == peer) {
                continue;
            }
            let bin = match peer_bins.get(peer.name()) {
                Some(b) if b.is_file() => Some(b.clone()),
                Some(b) => bail!("{} does not exist ({})", b.display(), peer.missing()),
                None => peer.find_binary(),
            };
            match bin {
                Some(bin) => a.peers.push((peer, bin)),
                None if explicit => bail!("{}", peer.missing()),
                None => a.peers_missing.push(peer),
            }
        }
        if !a.server_bin.exists() {
            bail!(
                "{} is missing: build it first with `cargo build --release -p herald-server` \
                 or pass --server-bin PATH",
                a.server_bin.display()
            );
        }
        Ok(a)
    }
}

// ---------------------------------------------------------------------------
// Small helpers

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_micros() as i64
}

/// `al-<seq>` → seq.
fn alert_seq(item_id: &str) -> Option<u64> {
    item_id.strip_prefix("al-")?.parse().ok()
}

mod sys {
    /// Soft RLIMIT_NOFILE up to the hard limit (children inherit it).
    pub fn raise_nofile() {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: plain syscalls on a stack value.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
                lim.rlim_cur = lim.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            }
        }
    }

    pub fn cpus() -> usize {
        std::thread::available_parallelism().map_or(0, |n| n.get())
    }

    pub fn nofile() -> u64 {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: plain syscall on a stack value.
        unsafe {
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        }
        lim.rlim_cur
    }

    /// SIGINT to a child process we started.
    pub fn interrupt(pid: u32) {
        // SAFETY: kill(2) on a pid we own.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGINT);
        }
    }

    pub fn clock_ticks() -> u64 {
        // SAFETY: sysconf has no preconditions.
        let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if t > 0 { t as u64 } else { 100 }
    }

    /// Resident set size of a process in KiB.
    pub fn rss_kib(pid: u32) -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(0)
    }

    /// Open sockets of a process.
    pub fn sockets(pid: u32) -> u64 {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| {
                        std::fs::read_link(e.path())
                            .is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
                    })
                    .count() as u64
            })
            .unwrap_or(0)
    }

    /// User + system CPU time of a process, in microseconds.
    pub fn cpu_us(pid: u32) -> u64 {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return 0;
        };
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            return 0;
        };
        // Fields after "(comm)": state is field 3, utime 14, stime 15.
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
            + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
        ticks * 1_000_000 / clock_ticks()
    }

    /// Kernel memory in TCP socket buffers, whole machine (both ends of
    /// every loopback connection), in KiB (`/proc/net/sockstat`).
    pub fn tcp_mem_kib() -> u64 {
        std::fs::read_to_string("/proc/net/sockstat")
            .ok()
            .and_then(|s| {
                let line = s.lines().find(|l| l.starts_with("TCP:"))?;
                let mut f = line.split_whitespace();
                f.find(|w| *w == "mem")?;
                f.next()?.parse::<u64>().ok()
            })
            .map_or(0, |pages| pages * 4)
    }
}

// ---------------------------------------------------------------------------
// Events from simulated agents (in this process or in worker processes)

#[derive(Debug)]
enum Ev {
    /// Agent `agent` received item `key` at `us` (unix µs).
    Rx { agent: u32, key: u64, us: i64 },
    /// A ReceiptAck arrived.
    Ack,
    /// A session ended unexpectedly.
    Lost { agent: u32 },
}

type EvTx = mpsc::UnboundedSender<Ev>;

/// Which server the simulated agents talk to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Herald,
    Bare,
    /// NATS subscribers (async-nats).
    Nats,
    /// MQTT subscribers (rumqttc) of Mosquitto.
    Mqtt,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Herald => "herald",
            Mode::Bare => "bare",
            Mode::Nats => "nats",
            Mode::Mqtt => "mosquitto",
        }
    }

    fn parse(s: &str) -> anyhow::Result<Mode> {
        [Mode::Herald, Mode::Bare, Mode::Nats, Mode::Mqtt]
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| anyhow!("worker: unknown mode {s:?}"))
    }
}

/// Which Herald agents stop reading after the warm-up: every `every`-th
/// (agent index divisible by it); none when `every` is 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct SlowPlan {
    every: usize,
}

impl SlowPlan {
    const NONE: SlowPlan = SlowPlan { every: 0 };

    fn percent(p: f64) -> SlowPlan {
        SlowPlan {
            every: ((100.0 / p).round() as usize).max(1),
        }
    }

    fn is_slow(self, idx: u32) -> bool {
        self.every > 0 && (idx as usize).is_multiple_of(self.every)
    }

    /// Slow agents among indices `0..n`.
    fn count(self, n: usize) -> usize {
        if self.every == 0 {
            0
        } else {
            n.div_ceil(self.every)
        }
    }
}

/// Resolves once `go_slow` turns true; never without a receiver or when
/// its sender is gone.
/// Where a benchmark mode folds what its agents report.
trait EventLog {
    type Ev;
    fn apply(&mut self, ev: Self::Ev);
}

/// Folds events into `log` until `done` or `limit`; returns whether done.
async fn until<L: EventLog>(
    rx: &mut mpsc::UnboundedReceiver<L::Ev>,
    log: &mut L,
    limit: Duration,
    done: impl Fn(&L) -> bool,
) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        while let Ok(ev) = rx.try_recv() {
            log.apply(ev);
        }
        if done(log) {
            return true;
        }
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(ev)) => log.apply(ev),
            Ok(None) | Err(_) => return done(log),
        }
    }
}

/// Opens a framed Herald session to `url` as the agent service does
/// (hello, then the welcome).
async fn open_session(
    url: &str,
    cfg: rustls::ClientConfig,
    idx: u32,
) -> anyhow::Result<(SessionReader, SessionWriter)> {
    let hello = pb::Hello {
        agent_version: "fanout-bench".into(),
        hostname: format!("bench-{idx:05}"),
        os: "bench".into(),
        ..Default::default()
    };
    let (mut inbound, writer) = herald_proto::framed::connect(url, cfg, hello).await?;
    match inbound.message().await? {
        Some(pb::ServerMessage {
            kind: Some(server_message::Kind::Welcome(_)),
        }) => Ok((inbound, writer)),
        other => bail!("expected Welcome, got {other:?}"),
    }
}

/// Agent `idx`'s heartbeat ticker: the phases are spread over the
/// interval, as real agents' would be.
fn heartbeats(idx: u32) -> tokio::time::Interval {
    let phase = Duration::from_millis(u64::from(idx) * 7919 % 20_000);
    tokio::time::interval_at(tokio::time::Instant::now() + phase, HEARTBEAT_EVERY)
}

fn heartbeat() -> pb::AgentMessage {
    pb::AgentMessage {
        kind: Some(agent_message::Kind::Heartbeat(pb::Heartbeat {
            agent_time_unix_ms: now_us() / 1000,
        })),
    }
}

/// `perf record` of process `pid` into `out`, with `FANOUT_PERF_ARGS`
/// (default `-F 999`).
fn perf_record_args(out: &Path) -> Vec<String> {
    let extra = std::env::var("FANOUT_PERF_ARGS").unwrap_or_else(|_| "-F 999".into());
    let mut args: Vec<String> = extra.split_whitespace().map(str::to_owned).collect();
    args.extend(["-o".to_owned(), out.display().to_string()]);
    args
}

fn perf_record(pid: u32, out: &Path) -> anyhow::Result<std::process::Child> {
    std::process::Command::new("perf")
        .arg("record")
        .args(perf_record_args(out))
        .args(["-p", &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("perf record")
}

async fn slow_signal(go_slow: &mut Option<watch::Receiver<bool>>) {
    let Some(rx) = go_slow else {
        return std::future::pending().await;
    };
    if rx.wait_for(|v| *v).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// One Herald agent: its own TLS connection with its own client certificate,
/// one framed session. Returns once `Welcome` arrived; the session then
/// runs in a task until `stop` changes.
#[allow(clippy::too_many_arguments)]
async fn herald_agent(
    idx: u32,
    url: Arc<str>,
    ca: Arc<str>,
    id: ClientIdentity,
    ev: EvTx,
    mut stop: watch::Receiver<bool>,
    receipts: bool,
    mut go_slow: Option<watch::Receiver<bool>>,
) -> anyhow::Result<()> {
    let cfg = herald_proto::tls::client_config(&ServerTrust::CaPem(ca.to_string()), Some(&id))?;
    let (mut inbound, mut writer) = open_session(&url, cfg, idx).await?;
    tokio::spawn(async move {
        let mut hb = heartbeats(idx);
        let mut stalled = false;
        let mut pending: Vec<pb::Receipt> = Vec::new();
        let mut send_at: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                _ = slow_signal(&mut go_slow) => {
                    // From now on nothing reads this connection (a framed
                    // session has no other reader). It stays open until
                    // the phase ends.
                    stalled = true;
                    break;
                }
                _ = hb.tick() => {
                    let _ = writer.send(&heartbeat()).await;
                }
                () = herald_agent::pacing::sleep_until(send_at) => {
                    send_at = None;
                    for r in pending.drain(..) {
                        writer.queue(&pb::AgentMessage {
                            kind: Some(agent_message::Kind::Receipt(r)),
                        });
                    }
                    let _ = writer.flush().await;
                }
                m = inbound.message() => match m {
                    Ok(Some(pb::ServerMessage { kind: Some(server_message::Kind::Delivery(d)) })) => {
                        let us = now_us();
                        if let Some(key) = alert_seq(&d.item_id) {
                            let _ = ev.send(Ev::Rx { agent: idx, key, us });
                        }
                        if !receipts {
                            continue;
                        }
                        pending.push(pb::Receipt {
                            item_id: d.item_id,
                            seq: d.seq,
                            state: pb::DeliveryState::Delivered as i32,
                            at_unix_ms: us / 1000,
                            ..Default::default()
                        });
                        // Paced as the real agent paces them.
                        send_at.get_or_insert_with(|| {
                            tokio::time::Instant::now() + if receipts_at_once() {
                                Duration::ZERO
                            } else {
                                herald_agent::pacing::receipt_delay()
                            }
                        });
                    }
                    Ok(Some(pb::ServerMessage { kind: Some(server_message::Kind::ReceiptAck(a)) })) => {
                        for _ in &a.receipts {
                            let _ = ev.send(Ev::Ack);
                        }
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => {
                        if !*stop.borrow() {
                            let _ = ev.send(Ev::Lost { agent: idx });
                        }
                        break;
                    }
                },
            }
        }
        if stalled {
            let _ = stop.changed().await;
        }
        drop((writer, inbound));
    });
    Ok(())
}

/// Whether agents answer each delivery at once instead of pacing their
/// receipts as the real agent does (`--receipts-at-once`, diagnostic; the
/// flag reaches worker processes through their environment).
fn receipts_at_once() -> bool {
    static AT_ONCE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AT_ONCE.get_or_init(|| std::env::var_os(RECEIPTS_AT_ONCE_ENV).is_some())
}

const RECEIPTS_AT_ONCE_ENV: &str = "FANOUT_RECEIPTS_AT_ONCE";

/// Connects agents `first_idx..` (one per identity), `parallel` at a time.
/// Returns (connected, failed, first error).
#[allow(clippy::too_many_arguments)]
async fn connect_agents(
    mode: Mode,
    url: &str,
    ca: &str,
    ids: Vec<ClientIdentity>,
    first_idx: u32,
    parallel: usize,
    ev: EvTx,
    stop: watch::Receiver<bool>,
    receipts: bool,
    slow: (SlowPlan, watch::Receiver<bool>),
) -> (usize, usize, Option<String>) {
    let url: Arc<str> = url.into();
    let ca: Arc<str> = ca.into();
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(ids.into_iter().enumerate())
        .map(|(i, id)| {
            let (url, ca, ev, stop) = (url.clone(), ca.clone(), ev.clone(), stop.clone());
            let idx = first_idx + i as u32;
            let go_slow = slow.0.is_slow(idx).then(|| slow.1.clone());
            async move {
                let fut = async {
                    match mode {
                        Mode::Herald => {
                            herald_agent(idx, url, ca, id, ev, stop, receipts, go_slow).await
                        }
                        Mode::Bare => baseline::agent(idx, url, ca, id, ev, stop).await,
                        Mode::Nats => peers::nats_subscriber(idx, url, ca, id, ev, stop).await,
                        Mode::Mqtt => peers::mqtt_subscriber(idx, url, ca, id, ev, stop).await,
                    }
                };
                tokio::time::timeout(CONNECT_TIMEOUT, fut)
                    .await
                    .unwrap_or_else(|_| Err(anyhow!("connect timed out")))
            }
        })
        .buffer_unordered(parallel.max(1))
        .collect()
        .await;
    let failed: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| format!("{e:#}")))
        .collect();
    (
        results.len() - failed.len(),
        failed.len(),
        failed.into_iter().next(),
    )
}

// ---------------------------------------------------------------------------
// Agent worker processes (only when N > --agents-per-process)

/// `--agent-worker --mode M --url U --ca-file F --ids-file F --first-idx I
/// --parallel P --receipts yes|no --slow-every E`: connects its agents,
/// prints `ready OK FAILED`, then one line per event (`r AGENT KEY US`, `a`,
/// `l AGENT`) until stdin closes. A `slow` line on stdin makes its slow
/// agents stop reading. `M` is herald, bare, nats or mosquitto (for the
/// peers, `U` is the broker's host:port).
async fn worker_main(argv: &[String]) -> anyhow::Result<()> {
    let mut opts: HashMap<&str, &str> = HashMap::new();
    for pair in argv.chunks(2) {
        if let [k, v] = pair {
            opts.insert(k.as_str(), v.as_str());
        }
    }
    let get = |k: &str| {
        opts.get(k)
            .copied()
            .ok_or_else(|| anyhow!("worker: {k} missing"))
    };
    let mode = Mode::parse(get("--mode")?)?;
    let url = get("--url")?;
    let ca = std::fs::read_to_string(get("--ca-file")?)?;
    let ids: Vec<(String, String)> =
        serde_json::from_str(&std::fs::read_to_string(get("--ids-file")?)?)?;
    let ids = ids
        .into_iter()
        .map(|(cert_pem, key_pem)| ClientIdentity { cert_pem, key_pem })
        .collect();
    let first: u32 = get("--first-idx")?.parse()?;
    let parallel: usize = get("--parallel")?.parse()?;
    let receipts = get("--receipts")? == "yes";
    let plan = SlowPlan {
        every: get("--slow-every")?.parse()?,
    };
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let (slow_tx, slow_rx) = watch::channel(false);
    let (ok, failed, err) = connect_agents(
        mode,
        url,
        &ca,
        ids,
        first,
        parallel,
        ev_tx,
        stop_rx,
        receipts,
        (plan, slow_rx),
    )
    .await;
    if let Some(e) = err {
        eprintln!("agent worker: {failed} agents failed to connect, first error: {e}");
    }
    // Blocking stdout writer on its own thread (tokio's io-std feature is
    // not enabled in this workspace).
    std::thread::spawn(move || {
        use std::io::Write;
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        let _ = writeln!(out, "ready {ok} {failed}");
        let _ = out.flush();
        while let Some(ev) = ev_rx.blocking_recv() {
            let _ = match ev {
                Ev::Rx { agent, key, us } => writeln!(out, "r {agent} {key} {us}"),
                Ev::Ack => writeln!(out, "a"),
                Ev::Lost { agent } => writeln!(out, "l {agent}"),
            };
            // Flush when nothing else is queued, so lines are not held back.
            if ev_rx.is_empty() && out.flush().is_err() {
                break;
            }
        }
    });
    let mut stdin = stdin_lines();
    while let Some(line) = stdin.recv().await {
        if line.trim() == "slow" {
            let _ = slow_tx.send(true);
        }
    }
    let _ = stop_tx.send(true);
    Ok(())
}

/// Lines from stdin, read on a plain thread; the channel closes at EOF.
fn stdin_lines() -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// One line to stdout, flushed.
fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The simulated agents of one phase: in this process, or in workers.
struct Pool {
    stop: watch::Sender<bool>,
    /// Turns true when the slow agents are to stop reading.
    slow: watch::Sender<bool>,
    workers: Vec<tokio::process::Child>,
    _tmp: Option<tempfile::TempDir>,
}

impl Pool {
    async fn start(
        mode: Mode,
        url: &str,
        ca: &str,
        ids: &[ClientIdentity],
        args: &Args,
        ev: EvTx,
        plan: SlowPlan,
    ) -> anyhow::Result<(Pool, usize)> {
        let (stop, stop_rx) = watch::channel(false);
        let (slow, slow_rx) = watch::channel(false);
        if ids.len() <= args.per_process {
            let (ok, failed, err) = connect_agents(
                mode,
                url,
                ca,
                ids.to_vec(),
                0,
                args.connect_parallel,
                ev,
                stop_rx,
                !args.no_receipts,
                (plan, slow_rx),
            )
            .await;
            if let Some(e) = err {
                println!(
                    "  ! {failed} of {} agents did not connect; first error: {e}",
                    ids.len()
                );
            }
            return Ok((
                Pool {
                    stop,
                    slow,
                    workers: vec![],
                    _tmp: None,
                },
                ok,
            ));
        }
        let tmp = tempfile::tempdir()?;
        let ca_file = tmp.path().join("ca.pem");
        std::fs::write(&ca_file, ca)?;
        let exe = std::env::current_exe()?;
        let chunks: Vec<&[ClientIdentity]> = ids.chunks(args.per_process).collect();
        let mut workers = Vec::new();
        let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<(usize, usize)>();
        for (w, chunk) in chunks.iter().enumerate() {
            let ids_file = tmp.path().join(format!("ids-{w}.json"));
            let pairs: Vec<(&str, &str)> = chunk
                .iter()
                .map(|i| (i.cert_pem.as_str(), i.key_pem.as_str()))
                .collect();
            std::fs::write(&ids_file, serde_json::to_vec(&pairs)?)?;
            let first = w * args.per_process;
            let mut child = tokio::process::Command::new(&exe)
                .arg("--agent-worker")
                .args(["--mode", mode.name(), "--url", url])
                .arg("--ca-file")
                .arg(&ca_file)
                .arg("--ids-file")
                .arg(&ids_file)
                .args(["--first-idx", &first.to_string()])
                .args(["--receipts", if args.no_receipts { "no" } else { "yes" }])
                .args(["--slow-every", &plan.every.to_string()])
                .args([
                    "--parallel",
                    &(args.connect_parallel / chunks.len()).max(1).to_string(),
                ])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .kill_on_drop(true)
                .spawn()?;
            let stdout = child.stdout.take().expect("piped stdout");
            let ev = ev.clone();
            let ready_tx = ready_tx.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let f: Vec<&str> = line.split_whitespace().collect();
                    let parsed = match f.as_slice() {
                        ["r", a, k, us] => Some(Ev::Rx {
                            agent: a.parse().unwrap_or(0),
                            key: k.parse().unwrap_or(0),
                            us: us.parse().unwrap_or(0),
                        }),
                        ["a"] => Some(Ev::Ack),
                        ["l", a] => Some(Ev::Lost {
                            agent: a.parse().unwrap_or(0),
                        }),
                        ["ready", ok, failed] => {
                            let _ = ready_tx
                                .send((ok.parse().unwrap_or(0), failed.parse().unwrap_or(0)));
                            None
                        }
                        _ => None,
                    };
                    if let Some(e) = parsed {
                        let _ = ev.send(e);
                    }
                }
            });
            workers.push(child);
        }
        let mut ok_total = 0;
        let deadline = Instant::now() + Duration::from_secs(600);
        for _ in 0..workers.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            let (ok, failed) = tokio::time::timeout(left, ready_rx.recv())
                .await
                .context("agent workers did not connect within 10 minutes")?
                .ok_or_else(|| anyhow!("an agent worker exited before it was ready"))?;
            if failed > 0 {
                println!("  ! a worker reports {failed} agents that did not connect");
            }
            ok_total += ok;
        }
        Ok((
            Pool {
                stop,
                slow,
                workers,
                _tmp: Some(tmp),
            },
            ok_total,
        ))
    }

    /// The slow agents stop reading their connection.
    async fn go_slow(&mut self) {
        let _ = self.slow.send(true);
        for w in &mut self.workers {
            if let Some(stdin) = w.stdin.as_mut() {
                let _ = stdin.write_all(b"slow\n").await;
                let _ = stdin.flush().await;
            }
        }
    }

    fn pids(&self) -> Vec<u32> {
        if self.workers.is_empty() {
            vec![std::process::id()]
        } else {
            self.workers
                .iter()
                .filter_map(tokio::process::Child::id)
                .collect()
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.send(true);
        for w in &mut self.workers {
            drop(w.stdin.take());
        }
        for w in &mut self.workers {
            let _ = tokio::time::timeout(Duration::from_secs(10), w.wait()).await;
            let _ = w.start_kill();
        }
        // Let the connections close before the next phase.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

// ---------------------------------------------------------------------------
// Collecting receive times

struct Collector {
    rx: mpsc::UnboundedReceiver<Ev>,
    /// key → (agent, receive time in unix µs), one per agent.
    got: HashMap<u64, Vec<(u32, i64)>>,
    acks: u64,
    lost: u64,
}

impl Collector {
    fn new(rx: mpsc::UnboundedReceiver<Ev>) -> Self {
        Collector {
            rx,
            got: HashMap::new(),
            acks: 0,
            lost: 0,
        }
    }

    fn apply(&mut self, ev: Ev) {
        match ev {
            Ev::Rx { agent, key, us } => self.got.entry(key).or_default().push((agent, us)),
            Ev::Ack => self.acks += 1,
            Ev::Lost { .. } => self.lost += 1,
        }
    }

    /// Applies events until `done(self)` or `limit` elapsed; returns whether done.
    async fn until(&mut self, limit: Duration, done: impl Fn(&Collector) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            while let Ok(ev) = self.rx.try_recv() {
                self.apply(ev);
            }
            if done(self) {
                return true;
            }
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(ev)) => self.apply(ev),
                Ok(None) | Err(_) => return done(self),
            }
        }
    }

    fn count(&self, key: u64) -> usize {
        self.got.get(&key).map_or(0, Vec::len)
    }

    /// Takes the receive times of `key` as latencies in ms after
    /// `accepted_us`: (all agents, agents that are not slow in `plan`).
    fn take(&mut self, key: u64, accepted_us: i64, plan: SlowPlan) -> (Vec<f64>, Vec<f64>) {
        let mut all = Vec::new();
        let mut others = Vec::new();
        for (agent, us) in self.got.remove(&key).unwrap_or_default() {
            let ms = (us - accepted_us) as f64 / 1000.0;
            all.push(ms);
            if !plan.is_slow(agent) {
                others.push(ms);
            }
        }
        (all, others)
    }
}

// ---------------------------------------------------------------------------
// Statistics

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return f64::NAN;
    }
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

#[derive(Default, Clone, Debug)]
struct Round {
    /// Latencies in ms.
    lat: Vec<f64>,
    missing: usize,
    /// Herald: SendAlert RPC time (request → response), ms.
    rpc_ms: f64,
    /// Herald: accepted → every receipt acknowledged, ms.
    all_acked_ms: Option<f64>,
}

#[derive(Default, Clone, Debug)]
struct PhaseResult {
    connected: usize,
    connect_s: f64,
    rounds: Vec<Round>,
    rss_before_kib: u64,
    rss_connected_kib: u64,
    rss_after_kib: u64,
    agents_rss_before_kib: u64,
    agents_rss_connected_kib: u64,
    server_cpu_us: u64,
    agents_cpu_us: u64,
    lost_sessions: u64,
    wall_s: f64,
    /// With a slow plan: the rounds over the agents that are not slow.
    others: Vec<Round>,
    /// Slow agents that stopped reading after the warm-up (slow run only).
    slow_agents: usize,
    /// Server RSS right after the warm-up (when slow agents stop reading).
    rss_warm_kib: u64,
    /// Open sockets of the server: connected, after the warm-up, after the
    /// rounds.
    sockets: [u64; 3],
    /// Slow run: server RSS and open sockets once the server has had time
    /// to notice the stuck agents, and how long after they stopped reading.
    hold: Option<(u64, u64, f64)>,
    /// Slow run with `--slow-burst`: what the burst did.
    burst: Option<Burst>,
}

impl PhaseResult {
    /// The same phase, counting only the agents that were not slow.
    fn others_only(&self) -> PhaseResult {
        PhaseResult {
            rounds: self.others.clone(),
            connected: self.connected - self.slow_agents,
            ..self.clone()
        }
    }
}

struct Summary {
    samples: usize,
    missing: usize,
    p50: f64,
    p99: f64,
    max: f64,
    med_round_p50: f64,
    med_round_p99: f64,
    med_round_max: f64,
    rss_per_agent_kib: f64,
    rss_per_agent_after_kib: f64,
    agents_rss_per_agent_kib: f64,
    cpu_us_per_delivery: f64,
    agents_cpu_us_per_delivery: f64,
    med_rpc_ms: f64,
    med_all_acked_ms: f64,
}

impl PhaseResult {
    fn summary(&self) -> Summary {
        let mut all: Vec<f64> = self
            .rounds
            .iter()
            .flat_map(|r| r.lat.iter().copied())
            .collect();
        all.sort_by(f64::total_cmp);
        let per_round = |p: f64| -> Vec<f64> {
            self.rounds
                .iter()
                .map(|r| {
                    let mut s = r.lat.clone();
                    s.sort_by(f64::total_cmp);
                    pct(&s, p)
                })
                .collect()
        };
        let n = self.connected.max(1) as f64;
        let deliveries = all.len().max(1) as f64;
        let acked: Vec<f64> = self.rounds.iter().filter_map(|r| r.all_acked_ms).collect();
        Summary {
            samples: all.len(),
            missing: self.rounds.iter().map(|r| r.missing).sum(),
            p50: pct(&all, 50.0),
            p99: pct(&all, 99.0),
            max: all.last().copied().unwrap_or(f64::NAN),
            med_round_p50: median(&per_round(50.0)),
            med_round_p99: median(&per_round(99.0)),
            med_round_max: median(&per_round(100.0)),
            rss_per_agent_kib: (self.rss_connected_kib as f64 - self.rss_before_kib as f64) / n,
            rss_per_agent_after_kib: (self.rss_after_kib as f64 - self.rss_before_kib as f64) / n,
            agents_rss_per_agent_kib: (self.agents_rss_connected_kib as f64
                - self.agents_rss_before_kib as f64)
                / n,
            cpu_us_per_delivery: self.server_cpu_us as f64 / deliveries,
            agents_cpu_us_per_delivery: self.agents_cpu_us as f64 / deliveries,
            med_rpc_ms: median(&self.rounds.iter().map(|r| r.rpc_ms).collect::<Vec<_>>()),
            med_all_acked_ms: if acked.is_empty() {
                f64::NAN
            } else {
                median(&acked)
            },
        }
    }
}

fn sum_rss(pids: &[u32]) -> u64 {
    pids.iter().map(|p| sys::rss_kib(*p)).sum()
}

fn sum_cpu(pids: &[u32]) -> u64 {
    pids.iter().map(|p| sys::cpu_us(*p)).sum()
}

// ---------------------------------------------------------------------------
// The Herald server process

struct ServerProc {
    child: std::process::Child,
    url: String,
}

impl ServerProc {
    fn init(bin: &Path, dir: &Path) -> anyhow::Result<String> {
        let out = std::process::Command::new(bin)
            .args(["init", "--data-dir"])
            .arg(dir)
            .env("HERALD_BOOTSTRAP_PASSWORD", PASSWORD)
            .output()
            .with_context(|| format!("run {} init", bin.display()))?;
        if !out.status.success() {
            bail!(
                "herald-server init failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(std::fs::read_to_string(dir.join("tls/ca.pem"))?)
    }

    fn start(bin: &Path, dir: &Path) -> anyhow::Result<ServerProc> {
        use std::io::BufRead;
        let mut child = std::process::Command::new(bin)
            .args(["run", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .with_context(|| format!("spawn {}", bin.display()))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line)?;
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .ok_or_else(|| anyhow!("herald-server printed {line:?} instead of its address"))?
            .to_owned();
        Ok(ServerProc {
            child,
            url: format!("https://{addr}"),
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server gracefully (SIGINT), so its store is closed.
    fn shutdown(&mut self) {
        sys::interrupt(self.pid());
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Enrolls `n` agents over one channel, `parallel` at a time.
async fn enroll_all(
    url: &str,
    ca: &str,
    token: &str,
    n: usize,
    parallel: usize,
) -> anyhow::Result<Vec<ClientIdentity>> {
    let cfg = herald_proto::tls::client_config(&ServerTrust::CaPem(ca.to_owned()), None)?;
    let channel = herald_proto::tls::connect(url, cfg).await?;
    let results: Vec<anyhow::Result<ClientIdentity>> = futures::stream::iter(0..n)
        .map(|i| {
            let mut client = pb::agent_service_client::AgentServiceClient::new(channel.clone());
            let token = token.to_owned();
            async move {
                let key = rcgen::KeyPair::generate()?;
                let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
                params
                    .distinguished_name
                    .push(rcgen::DnType::CommonName, format!("bench-{i:05}"));
                let csr = params.serialize_request(&key)?.pem()?;
                let resp = client
                    .enroll(pb::EnrollRequest {
                        token,
                        csr_pem: csr,
                        hostname: format!("bench-{i:05}"),
                        os: "bench".into(),
                        agent_version: "fanout-bench".into(),
                    })
                    .await
                    .map_err(|s| anyhow!("enroll refused: {}", s.message()))?
                    .into_inner();
                Ok(ClientIdentity {
                    cert_pem: resp.certificate_pem,
                    key_pem: key.serialize_pem(),
                })
            }
        })
        .buffer_unordered(parallel.max(1))
        .collect()
        .await;
    results.into_iter().collect()
}

// ---------------------------------------------------------------------------
// One N: Herald phase, then the baseline phase

/// What `--slow-burst` did in a slow run.
#[derive(Default, Clone, Debug)]
struct Burst {
    alerts: usize,
    /// Seconds from the first burst alert until the server had closed the
    /// connection of every slow agent; `None` if it had not by the end.
    all_cut_s: Option<f64>,
    peak_rss_kib: u64,
    /// Kernel TCP buffer memory before the burst and at its peak.
    tcp_mem_kib: (u64, u64),
    failed: Option<String>,
}

/// The largest alert body Herald takes (4,000 characters), 12 kB in UTF-8.
fn burst_body() -> String {
    "警".repeat(4000)
}
/// How long a burst may go on without the server cutting every slow agent.
const BURST_LIMIT: Duration = Duration::from_secs(60);

/// Sends 12 kB alerts to `targets` (the slow agents' computers) back to
/// back until the server holds `goal` sockets or fewer (every slow agent
/// cut), sampling the server's RSS and the kernel's TCP memory.
async fn slow_burst(admin: Admin, targets: Vec<String>, server_pid: u32, goal: u64) -> Burst {
    let targets: Vec<pb::AlertTarget> = targets
        .into_iter()
        .map(|id| pb::AlertTarget {
            target: Some(pb::alert_target::Target::ComputerId(id)),
        })
        .collect();
    let body = burst_body();
    let mut b = Burst {
        tcp_mem_kib: (sys::tcp_mem_kib(), 0),
        ..Burst::default()
    };
    let t = Instant::now();
    while t.elapsed() < BURST_LIMIT {
        let mut c = admin.client.clone();
        let sent = c
            .send_alert(admin.req(pb::SendAlertRequest {
                targets: targets.clone(),
                title: format!("Burst {}", b.alerts),
                body: body.clone(),
                priority: pb::Priority::Info as i32,
                expires_unix_ms: 0,
            }))
            .await;
        if let Err(status) = sent {
            b.failed = Some(status.message().to_owned());
            break;
        }
        b.alerts += 1;
        b.peak_rss_kib = b.peak_rss_kib.max(sys::rss_kib(server_pid));
        b.tcp_mem_kib.1 = b.tcp_mem_kib.1.max(sys::tcp_mem_kib());
        // Counting sockets reads every descriptor of the server: not after
        // every alert.
        if b.alerts.is_multiple_of(10) && sys::sockets(server_pid) <= goal {
            b.all_cut_s = Some(t.elapsed().as_secs_f64());
            break;
        }
    }
    b
}

/// Computer ids of the agents `plan` marks slow among the first `n`
/// (enrolled as host names `bench-00000`, …).
async fn slow_computers(admin: &Admin, plan: SlowPlan, n: usize) -> anyhow::Result<Vec<String>> {
    let mut c = admin.client.clone();
    let list = c
        .list_computers(admin.req(pb::ListComputersRequest::default()))
        .await
        .map_err(|s| anyhow!("list computers: {}", s.message()))?
        .into_inner();
    let slow: std::collections::HashSet<String> = (0..n as u32)
        .filter(|i| plan.is_slow(*i))
        .map(|i| format!("bench-{i:05}"))
        .collect();
    Ok(list
        .computers
        .into_iter()
        .filter(|c| slow.contains(&c.hostname))
        .map(|c| c.id)
        .collect())
}

/// One Herald phase on `server`. With `slow_run`, the agents `plan` marks
/// slow connect through a gate and stop reading after the warm-up; either
/// way, with a plan the rounds are also kept over the other agents only.
#[allow(clippy::too_many_arguments)]
async fn bench_herald(
    args: &Args,
    n: usize,
    server: &ServerProc,
    ca: &str,
    ids: &[ClientIdentity],
    plan: SlowPlan,
    slow_run: bool,
) -> anyhow::Result<PhaseResult> {
    let label = if slow_run { "slow" } else { "herald" };
    let mut res = PhaseResult::default();
    let start = Instant::now();
    let admin = Admin::login(&server.url, ca, "admin", PASSWORD).await?;
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let mut col = Collector::new(ev_rx);

    // Let the enrollment commits settle, then measure the server at rest.
    tokio::time::sleep(Duration::from_millis(500)).await;
    res.rss_before_kib = sys::rss_kib(server.pid());
    res.agents_rss_before_kib = sys::rss_kib(std::process::id());
    let t = Instant::now();
    let pool_plan = if slow_run { plan } else { SlowPlan::NONE };
    let (mut pool, connected) =
        Pool::start(Mode::Herald, &server.url, ca, ids, args, ev_tx, pool_plan).await?;
    res.connect_s = t.elapsed().as_secs_f64();
    res.connected = connected;
    if !pool.workers.is_empty() {
        // Worker processes: their whole RSS counts (includes each worker's base).
        res.agents_rss_before_kib = 0;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    res.rss_connected_kib = sys::rss_kib(server.pid());
    res.agents_rss_connected_kib = sum_rss(&pool.pids());
    res.sockets[0] = sys::sockets(server.pid());
    println!(
        "  {label} (server pid {}): {connected}/{n} sessions up in {:.1} s; server RSS {} → {} MiB",
        server.pid(),
        res.connect_s,
        res.rss_before_kib / 1024,
        res.rss_connected_kib / 1024
    );

    let mut cpu0 = (0, 0);
    let mut perf = None;
    let mut want = connected;
    let mut slow_since = None;
    let burst_targets = if slow_run && args.slow_burst {
        slow_computers(&admin, plan, n).await?
    } else {
        Vec::new()
    };
    let mut burst = None;
    for r in 0..args.warmup + args.rounds {
        let measured = r >= args.warmup;
        if r == args.warmup {
            res.rss_warm_kib = sys::rss_kib(server.pid());
            res.sockets[1] = sys::sockets(server.pid());
            if slow_run {
                pool.go_slow().await;
                slow_since = Some(Instant::now());
                res.slow_agents = plan.count(n).min(connected);
                want = connected - res.slow_agents;
                println!(
                    "  {} agents stopped reading; server RSS {} MiB",
                    res.slow_agents,
                    res.rss_warm_kib / 1024
                );
                if !burst_targets.is_empty() {
                    let goal = res.sockets[1].saturating_sub(res.slow_agents as u64);
                    println!(
                        "  burst: 12 kB alerts to those {} agents until the server holds {goal} sockets",
                        burst_targets.len()
                    );
                    burst = Some(tokio::spawn(slow_burst(
                        admin.clone(),
                        burst_targets.clone(),
                        server.pid(),
                        goal,
                    )));
                }
            }
            cpu0 = (sys::cpu_us(server.pid()), sum_cpu(&pool.pids()));
            if let Some(out) = &args.perf_out {
                perf = Some(perf_record(server.pid(), out)?);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        let acks0 = col.acks;
        let t0 = Instant::now();
        let sent = admin
            .send_alert(vec![to_all()], &format!("Fan-out bench round {r}"), 0)
            .await
            .map_err(|s| anyhow!("send_alert: {}", s.message()))?;
        let rpc_ms = t0.elapsed().as_secs_f64() * 1000.0;
        let key =
            alert_seq(&sent.alert_id).ok_or_else(|| anyhow!("odd alert id {}", sent.alert_id))?;
        let accepted_us = sent.accepted_unix_ms * 1000;
        let all_in = col.until(ROUND_TIMEOUT, |c| c.count(key) >= want).await;
        let got = col.count(key);
        let all_acked = args.no_receipts
            || col
                .until(ACK_TIMEOUT, |c| c.acks >= acks0 + want as u64)
                .await;
        let acked_ms =
            (all_acked && !args.no_receipts).then(|| (now_us() - accepted_us) as f64 / 1000.0);
        let (lat, others) = col.take(key, accepted_us, plan);
        let round = Round {
            missing: want.saturating_sub(got),
            lat,
            rpc_ms,
            all_acked_ms: acked_ms,
        };
        report_round(label, r, measured, &round);
        if !all_in {
            println!(
                "    ! round {r}: {} agents did not receive {} within {ROUND_TIMEOUT:?}",
                round.missing, sent.alert_id
            );
        }
        if !all_acked {
            println!(
                "    ! round {r}: only {} of {want} receipts acknowledged within {ACK_TIMEOUT:?}",
                col.acks - acks0
            );
        }
        if measured {
            if plan.every > 0 {
                // In the normal run the slow-to-be agents still receive.
                let expected = if slow_run {
                    want
                } else {
                    want.saturating_sub(plan.count(n))
                };
                res.others.push(Round {
                    missing: expected.saturating_sub(others.len()),
                    lat: others,
                    ..round.clone()
                });
            }
            res.rounds.push(round);
        }
        tokio::time::sleep(args.pause).await;
    }
    if let Some(burst) = burst {
        let b = burst.await?;
        println!(
            "  burst: {} alerts; every slow agent cut after {}; server RSS peak {} MiB; kernel TCP memory {} → {} MiB{}",
            b.alerts,
            b.all_cut_s
                .map_or("— (not within the limit)".into(), |s| format!("{s:.1} s")),
            b.peak_rss_kib / 1024,
            b.tcp_mem_kib.0 / 1024,
            b.tcp_mem_kib.1 / 1024,
            b.failed
                .as_deref()
                .map(|f| format!("; stopped: {f}"))
                .unwrap_or_default()
        );
        res.burst = Some(b);
    }
    res.server_cpu_us = sys::cpu_us(server.pid()).saturating_sub(cpu0.0);
    res.agents_cpu_us = sum_cpu(&pool.pids()).saturating_sub(cpu0.1);
    res.rss_after_kib = sys::rss_kib(server.pid());
    res.sockets[2] = sys::sockets(server.pid());
    if let Some(mut p) = perf {
        sys::interrupt(p.id());
        let _ = p.wait();
        println!(
            "  perf data of the measured rounds: {}",
            args.perf_out
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
    }
    if let Some(since) = slow_since {
        // Give the server the time to notice the stuck agents (see
        // SLOW_HOLD_S), then look again.
        let hold = Duration::from_secs(SLOW_HOLD_S);
        tokio::time::sleep(hold.saturating_sub(since.elapsed())).await;
        res.hold = Some((
            sys::rss_kib(server.pid()),
            sys::sockets(server.pid()),
            since.elapsed().as_secs_f64(),
        ));
    }
    // Drain late events so a lost session is counted.
    col.until(Duration::from_millis(100), |_| false).await;
    res.lost_sessions = col.lost;
    pool.stop().await;
    res.wall_s = start.elapsed().as_secs_f64();
    Ok(res)
}

/// What pushes one message per round in a non-Herald phase.
enum Pusher<'a> {
    Bare(&'a mut baseline::Proc),
    Peer(&'a mut peers::Publisher),
}

impl Pusher<'_> {
    /// Pushes `key`; returns the "accepted" time (unix µs) and the time the
    /// push call took (baseline) or until the broker confirmed (peers), ms.
    async fn push(&mut self, key: u64) -> anyhow::Result<(i64, f64)> {
        match self {
            Pusher::Bare(srv) => {
                let t0 = Instant::now();
                let accepted = srv.push(key).await?;
                Ok((accepted, t0.elapsed().as_secs_f64() * 1000.0))
            }
            Pusher::Peer(p) => p.publish(key).await,
        }
    }
}

/// The rounds of a push phase (bare TLS or a peer): same warm-up, rounds,
/// timeout, pause and statistics as Herald's, without receipts.
#[allow(clippy::too_many_arguments)]
async fn push_rounds(
    args: &Args,
    label: &str,
    key_base: u64,
    server_pid: u32,
    pool: &Pool,
    col: &mut Collector,
    mut pusher: Pusher<'_>,
    res: &mut PhaseResult,
) -> anyhow::Result<()> {
    let connected = res.connected;
    let mut cpu0 = (0, 0);
    for r in 0..args.warmup + args.rounds {
        let measured = r >= args.warmup;
        if r == args.warmup {
            cpu0 = (sys::cpu_us(server_pid), sum_cpu(&pool.pids()));
        }
        let key = key_base + r as u64;
        let (accepted_us_exact, rpc_ms) = pusher.push(key).await?;
        // Same resolution as Herald's accepted_unix_ms (whole milliseconds).
        let accepted_us = accepted_us_exact / 1000 * 1000;
        let all_in = col
            .until(ROUND_TIMEOUT, |c| c.count(key) >= connected)
            .await;
        let got = col.count(key);
        let (lat, _) = col.take(key, accepted_us, SlowPlan::NONE);
        let round = Round {
            missing: connected.saturating_sub(got),
            lat,
            rpc_ms,
            all_acked_ms: None,
        };
        report_round(label, r, measured, &round);
        if !all_in {
            println!(
                "    ! round {r}: {} connections did not receive the {} within {ROUND_TIMEOUT:?}",
                round.missing,
                if label == "bare" { "frame" } else { "message" }
            );
        }
        if measured {
            res.rounds.push(round);
        }
        tokio::time::sleep(args.pause).await;
    }
    res.server_cpu_us = sys::cpu_us(server_pid).saturating_sub(cpu0.0);
    res.agents_cpu_us = sum_cpu(&pool.pids()).saturating_sub(cpu0.1);
    res.rss_after_kib = sys::rss_kib(server_pid);
    res.sockets[2] = sys::sockets(server_pid);
    col.until(Duration::from_millis(100), |_| false).await;
    res.lost_sessions = col.lost;
    Ok(())
}

async fn bench_baseline(
    args: &Args,
    data_dir: &Path,
    ca: &str,
    ids: &[ClientIdentity],
) -> anyhow::Result<PhaseResult> {
    let mut res = PhaseResult::default();
    let start = Instant::now();
    let mut srv = baseline::Proc::start(data_dir).await?;
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let mut col = Collector::new(ev_rx);
    tokio::time::sleep(Duration::from_millis(200)).await;
    res.rss_before_kib = sys::rss_kib(srv.pid);
    res.agents_rss_before_kib = sys::rss_kib(std::process::id());
    let t = Instant::now();
    let (pool, connected) =
        Pool::start(Mode::Bare, &srv.url, ca, ids, args, ev_tx, SlowPlan::NONE).await?;
    res.connect_s = t.elapsed().as_secs_f64();
    res.connected = connected;
    if !pool.workers.is_empty() {
        // Worker processes: their whole RSS counts (includes each worker's base).
        res.agents_rss_before_kib = 0;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    res.rss_connected_kib = sys::rss_kib(srv.pid);
    res.agents_rss_connected_kib = sum_rss(&pool.pids());
    res.sockets[0] = sys::sockets(srv.pid);
    println!(
        "  bare TLS: {connected}/{} connections up in {:.1} s; server RSS {} → {} MiB",
        ids.len(),
        res.connect_s,
        res.rss_before_kib / 1024,
        res.rss_connected_kib / 1024
    );
    let pid = srv.pid;
    let pushed = push_rounds(
        args,
        "bare",
        1_000_000,
        pid,
        &pool,
        &mut col,
        Pusher::Bare(&mut srv),
        &mut res,
    )
    .await;
    pool.stop().await;
    srv.quit().await;
    pushed?;
    res.wall_s = start.elapsed().as_secs_f64();
    Ok(res)
}

/// The same workload on a peer broker: N subscribers with their own
/// certificates, one publisher, one message per round.
async fn bench_peer(
    args: &Args,
    peer: Peer,
    bin: &Path,
    pki: &peers::Pki,
) -> anyhow::Result<PhaseResult> {
    let mut res = PhaseResult::default();
    let start = Instant::now();
    let broker = peers::Broker::start(peer, bin, pki).await?;
    let mut publisher = tokio::time::timeout(
        CONNECT_TIMEOUT,
        peers::Publisher::connect(peer, &broker.addr, pki),
    )
    .await
    .with_context(|| format!("{} publisher: connect timed out", peer.name()))?
    .with_context(|| format!("{} publisher", peer.name()))?;
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let mut col = Collector::new(ev_rx);
    tokio::time::sleep(Duration::from_millis(200)).await;
    res.rss_before_kib = sys::rss_kib(broker.pid());
    res.agents_rss_before_kib = sys::rss_kib(std::process::id());
    let mode = match peer {
        Peer::Nats => Mode::Nats,
        Peer::Mosquitto => Mode::Mqtt,
    };
    let t = Instant::now();
    let (pool, connected) = Pool::start(
        mode,
        &broker.addr,
        &pki.ca_pem,
        &pki.clients,
        args,
        ev_tx,
        SlowPlan::NONE,
    )
    .await?;
    res.connect_s = t.elapsed().as_secs_f64();
    res.connected = connected;
    if !pool.workers.is_empty() {
        res.agents_rss_before_kib = 0;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    res.rss_connected_kib = sys::rss_kib(broker.pid());
    res.agents_rss_connected_kib = sum_rss(&pool.pids());
    res.sockets[0] = sys::sockets(broker.pid());
    println!(
        "  {} (pid {}, {}): {connected}/{} subscribers up in {:.1} s; broker RSS {} → {} MiB",
        peer.title(),
        broker.pid(),
        broker.addr,
        pki.clients.len(),
        res.connect_s,
        res.rss_before_kib / 1024,
        res.rss_connected_kib / 1024
    );
    let key_base = match peer {
        Peer::Nats => 2_000_000,
        Peer::Mosquitto => 3_000_000,
    };
    let pushed = push_rounds(
        args,
        peer.name(),
        key_base,
        broker.pid(),
        &pool,
        &mut col,
        Pusher::Peer(&mut publisher),
        &mut res,
    )
    .await;
    pool.stop().await;
    drop(publisher);
    drop(broker);
    pushed?;
    res.wall_s = start.elapsed().as_secs_f64();
    Ok(res)
}

fn report_round(what: &str, r: usize, measured: bool, round: &Round) {
    let mut s = round.lat.clone();
    s.sort_by(f64::total_cmp);
    let acked = round
        .all_acked_ms
        .map(|a| format!(", all receipts acked {a:.0} ms"))
        .unwrap_or_default();
    println!(
        "    {what:6} {} {r:2}: n={} p50 {:.1} p99 {:.1} max {:.1} ms (send {:.1} ms{acked})",
        if measured { "round " } else { "warmup" },
        s.len(),
        pct(&s, 50.0),
        pct(&s, 99.0),
        s.last().copied().unwrap_or(f64::NAN),
        round.rpc_ms,
    );
}

struct NResult {
    n: usize,
    enroll_s: f64,
    herald: PhaseResult,
    bare: Option<PhaseResult>,
    peers: Vec<(Peer, PhaseResult)>,
    /// The same N again with slow agents, from the same enrolled state.
    slow: Option<PhaseResult>,
}

async fn bench_n(args: &Args, n: usize) -> anyhow::Result<NResult> {
    println!("\n== N = {n} agents ==");
    let Enrolled {
        server,
        ca,
        ids,
        enroll_s,
        dir,
    } = enrolled(args, n).await?;

    let plan = args.slow_percent.map_or(SlowPlan::NONE, SlowPlan::percent);
    // The slow run starts from a copy of the enrolled state, so that both
    // runs see a store with the same history.
    let (server, slow_dir) = if plan.every > 0 {
        let mut server = server;
        server.shutdown();
        drop(server);
        let copy = tempfile::Builder::new()
            .prefix("herald-fanout-slow-")
            .tempdir()?;
        copy_dir(dir.path(), copy.path())?;
        (start_server(args, dir.path(), &ca).await?, Some(copy))
    } else {
        (server, None)
    };
    let herald = bench_herald(args, n, &server, &ca, &ids, plan, false).await?;
    drop(server);
    let slow = match &slow_dir {
        Some(copy) => {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let server = start_server(args, copy.path(), &ca).await?;
            Some(bench_herald(args, n, &server, &ca, &ids, plan, true).await?)
        }
        None => None,
    };
    let bare = if args.baseline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        Some(bench_baseline(args, dir.path(), &ca, &ids).await?)
    } else {
        None
    };
    let mut peer_results = Vec::new();
    if !args.peers.is_empty() {
        let t = Instant::now();
        let pki = tokio::task::spawn_blocking(move || peers::Pki::generate(n)).await??;
        println!(
            "  peers: generated a CA, a broker certificate and {n} client certificates in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        for (peer, bin) in &args.peers {
            tokio::time::sleep(Duration::from_millis(500)).await;
            peer_results.push((*peer, bench_peer(args, *peer, bin, &pki).await?));
        }
    }
    Ok(NResult {
        n,
        enroll_s,
        herald,
        bare,
        peers: peer_results,
        slow,
    })
}

/// Starts the Herald server on `dir` and waits until an admin can log in.
async fn start_server(args: &Args, dir: &Path, ca: &str) -> anyhow::Result<ServerProc> {
    let server = ServerProc::start(&args.server_bin, dir)?;
    login(&server.url, ca, Duration::from_secs(20)).await?;
    Ok(server)
}

// ---------------------------------------------------------------------------
// A server with N enrolled agents (every mode starts from one)

/// A server on a new data dir, with `n` agents enrolled over the real
/// `Enroll` RPC. The server is dropped (killed) before its data dir.
struct Enrolled {
    pub server: ServerProc,
    pub ca: String,
    pub ids: Vec<ClientIdentity>,
    pub enroll_s: f64,
    pub dir: tempfile::TempDir,
}

async fn enrolled(args: &Args, n: usize) -> anyhow::Result<Enrolled> {
    let dir = tempfile::Builder::new()
        .prefix("herald-fanout-")
        .tempdir()?;
    let ca = ServerProc::init(&args.server_bin, dir.path())?;
    let server = ServerProc::start(&args.server_bin, dir.path())?;
    let admin = login(&server.url, &ca, Duration::from_secs(20)).await?;
    let root = admin.root().await.id;
    let token = admin.token(&root, u32::try_from(n)?).await;
    let t = Instant::now();
    let ids = enroll_all(&server.url, &ca, &token, n, args.enroll_parallel).await?;
    let enroll_s = t.elapsed().as_secs_f64();
    println!(
        "  enrolled {n} agents in {enroll_s:.1} s ({:.1} ms each)",
        enroll_s * 1000.0 / n as f64
    );
    Ok(Enrolled {
        server,
        ca,
        ids,
        enroll_s,
        dir,
    })
}

/// Logs the bench admin in, trying every 20 ms for at most `limit`.
async fn login(url: &str, ca: &str, limit: Duration) -> anyhow::Result<Admin> {
    let deadline = Instant::now() + limit;
    loop {
        match Admin::login(url, ca, "admin", PASSWORD).await {
            Ok(a) => return Ok(a),
            Err(e) if Instant::now() >= deadline => {
                return Err(e.context(format!("admin login within {limit:?}")));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Writes a benchmark's JSON summary to `path`.
fn write_json_doc(path: &Path, doc: &serde_json::Value) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, serde_json::to_string_pretty(doc)?)?;
    println!("\nJSON summary written to {}", path.display());
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Report

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() && b.is_finite() {
        format!("{:.2}×", a / b)
    } else {
        "–".into()
    }
}

/// The table's rows: name, figure, decimals.
type Metric = (&'static str, fn(&Summary) -> f64, usize);

const METRICS: [Metric; 11] = [
    ("p50 (all samples)", |s| s.p50, 1),
    ("p99 (all samples)", |s| s.p99, 1),
    ("max", |s| s.max, 1),
    ("median rnd p50", |s| s.med_round_p50, 1),
    ("median rnd p99", |s| s.med_round_p99, 1),
    ("median rnd max", |s| s.med_round_max, 1),
    ("server RSS / agent (KiB)", |s| s.rss_per_agent_kib, 1),
    (
        "server RSS / agent after rounds",
        |s| s.rss_per_agent_after_kib,
        1,
    ),
    ("server CPU / delivery (µs)", |s| s.cpu_us_per_delivery, 1),
    (
        "agents RSS / agent (KiB)",
        |s| s.agents_rss_per_agent_kib,
        1,
    ),
    (
        "agents CPU / delivery (µs)",
        |s| s.agents_cpu_us_per_delivery,
        1,
    ),
];

fn print_table(results: &[NResult], args: &Args) {
    println!("\n=== Quick-alert fan-out: server accepted → agent received (ms) ===");
    println!(
        "rounds: {} measured (+{} warm-up) per N and system; percentiles over all samples; \
         'median rnd' = median over rounds of that round's percentile",
        args.rounds, args.warmup
    );
    for r in results {
        let h = r.herald.summary();
        let b = r.bare.as_ref().map(PhaseResult::summary);
        let peers: Vec<(Peer, Summary)> =
            r.peers.iter().map(|(p, ph)| (*p, ph.summary())).collect();
        println!(
            "\nN = {} (enroll {:.1} s, herald connect {:.1} s{}{})",
            r.n,
            r.enroll_s,
            r.herald.connect_s,
            r.bare
                .as_ref()
                .map(|b| format!(", bare connect {:.1} s", b.connect_s))
                .unwrap_or_default(),
            r.peers
                .iter()
                .map(|(p, ph)| format!(", {} connect {:.1} s", p.name(), ph.connect_s))
                .collect::<String>()
        );
        let mut head = format!(
            "{:<34} {:>12} {:>12} {:>10}",
            "metric", "Herald", "bare TLS", "ratio"
        );
        for (p, _) in &peers {
            head.push_str(&format!(
                " {:>12} {:>10}",
                p.title(),
                format!("H/{}", p.title())
            ));
        }
        println!("{head}");
        for (name, get, prec) in METRICS {
            let hv = get(&h);
            let bv = b.as_ref().map(get);
            let bs = bv
                .map(|v| format!("{v:.prec$}"))
                .unwrap_or_else(|| "–".into());
            let rs = bv.map(|v| ratio(hv, v)).unwrap_or_else(|| "–".into());
            let mut line = format!(
                "{name:<34} {:>12} {bs:>12} {rs:>10}",
                format!("{hv:.prec$}")
            );
            for (_, ps) in &peers {
                let pv = get(ps);
                line.push_str(&format!(
                    " {:>12} {:>10}",
                    format!("{pv:.prec$}"),
                    ratio(hv, pv)
                ));
            }
            println!("{line}");
        }
        println!(
            "samples {} (missing {}), lost sessions {}; send RPC median {:.1} ms; accepted → all receipts acked median {:.0} ms; server RSS {} MiB idle → {} MiB connected → {} MiB after",
            h.samples,
            h.missing,
            r.herald.lost_sessions,
            h.med_rpc_ms,
            h.med_all_acked_ms,
            r.herald.rss_before_kib / 1024,
            r.herald.rss_connected_kib / 1024,
            r.herald.rss_after_kib / 1024
        );
        if let (Some(b), Some(bp)) = (&b, &r.bare) {
            println!(
                "bare samples {} (missing {}), lost connections {}",
                b.samples, b.missing, bp.lost_sessions
            );
        }
        for ((p, ps), (_, ph)) in peers.iter().zip(&r.peers) {
            println!(
                "{} samples {} (missing {}), lost connections {}; publish → broker confirmed median {:.1} ms; broker RSS {} MiB idle → {} MiB connected → {} MiB after",
                p.name(),
                ps.samples,
                ps.missing,
                ph.lost_sessions,
                ps.med_rpc_ms,
                ph.rss_before_kib / 1024,
                ph.rss_connected_kib / 1024,
                ph.rss_after_kib / 1024
            );
        }
        if let Some(slow) = &r.slow {
            print_slow(r.n, &r.herald, slow, args);
        }
    }
}

/// The slow-agent run against the normal run, both over the agents that
/// kept reading.
fn print_slow(n: usize, normal: &PhaseResult, slow: &PhaseResult, args: &Args) {
    let a = normal.others_only().summary();
    let b = slow.others_only().summary();
    println!(
        "\nN = {n}, {} of {} agents ({} %) stop reading after the warm-up \
         (socket no longer read, connection kept open); the other agents:",
        slow.slow_agents,
        slow.connected,
        args.slow_percent.unwrap_or(0.0)
    );
    println!(
        "{:<34} {:>12} {:>12} {:>10}",
        "metric", "normal", "slow run", "slow/norm"
    );
    for (name, get, prec) in METRICS.iter().take(6).chain(METRICS.iter().skip(8).take(1)) {
        let (x, y) = (get(&a), get(&b));
        println!(
            "{name:<34} {:>12} {:>12} {:>10}",
            format!("{x:.prec$}"),
            format!("{y:.prec$}"),
            ratio(y, x)
        );
    }
    let mib = |k: u64| format!("{:.0}", k as f64 / 1024.0);
    for (name, x, y) in [
        (
            "server RSS connected (MiB)",
            normal.rss_connected_kib,
            slow.rss_connected_kib,
        ),
        (
            "server RSS after warm-up (MiB)",
            normal.rss_warm_kib,
            slow.rss_warm_kib,
        ),
        (
            "server RSS after rounds (MiB)",
            normal.rss_after_kib,
            slow.rss_after_kib,
        ),
    ] {
        println!("{name:<34} {:>12} {:>12}", mib(x), mib(y));
    }
    println!(
        "{:<34} {:>12} {:>12}",
        "server sockets warm-up / after",
        format!("{} / {}", normal.sockets[1], normal.sockets[2]),
        format!("{} / {}", slow.sockets[1], slow.sockets[2])
    );
    if let Some((rss, sockets, after_s)) = slow.hold {
        println!(
            "{after_s:.0} s after the slow agents stopped reading: server RSS {} MiB, {sockets} sockets \
             ({} fewer than after the warm-up)",
            mib(rss),
            slow.sockets[1] as i64 - sockets as i64
        );
    }
    if let Some(b) = &slow.burst {
        println!(
            "burst of 12 kB alerts to the slow agents during the rounds: {} alerts; every slow agent cut {}; \
             server RSS peak {} MiB; kernel TCP buffers (both ends, whole machine) {} → peak {} MiB",
            b.alerts,
            b.all_cut_s
                .map_or("— not within the limit".into(), |s| format!(
                    "after {s:.1} s"
                )),
            mib(b.peak_rss_kib),
            mib(b.tcp_mem_kib.0),
            mib(b.tcp_mem_kib.1)
        );
    }
    println!(
        "samples {} / {} (missing {} / {}), lost sessions {} / {}",
        a.samples, b.samples, a.missing, b.missing, normal.lost_sessions, slow.lost_sessions
    );
}

fn json_phase(p: &PhaseResult) -> serde_json::Value {
    let s = p.summary();
    json!({
        "connected": p.connected,
        "connect_s": p.connect_s,
        "samples": s.samples,
        "missing": s.missing,
        "lost_sessions": p.lost_sessions,
        "p50_ms": s.p50, "p99_ms": s.p99, "max_ms": s.max,
        "median_round_p50_ms": s.med_round_p50,
        "median_round_p99_ms": s.med_round_p99,
        "median_round_max_ms": s.med_round_max,
        "round_p99_ms": p.rounds.iter().map(|r| { let mut v = r.lat.clone(); v.sort_by(f64::total_cmp); pct(&v, 99.0) }).collect::<Vec<_>>(),
        "median_send_rpc_ms": s.med_rpc_ms,
        "median_all_receipts_acked_ms": if s.med_all_acked_ms.is_finite() { json!(s.med_all_acked_ms) } else { json!(null) },
        "server_rss_kib": { "before": p.rss_before_kib, "connected": p.rss_connected_kib, "after_rounds": p.rss_after_kib },
        "server_rss_per_agent_kib": s.rss_per_agent_kib,
        "server_rss_per_agent_after_rounds_kib": s.rss_per_agent_after_kib,
        "server_cpu_us_per_delivery": s.cpu_us_per_delivery,
        "agents_rss_per_agent_kib": s.agents_rss_per_agent_kib,
        "agents_cpu_us_per_delivery": s.agents_cpu_us_per_delivery,
        "wall_s": p.wall_s,
    })
}

fn write_json(results: &[NResult], args: &Args) -> anyhow::Result<()> {
    let runs: Vec<serde_json::Value> = results
        .iter()
        .map(|r| {
            let h = r.herald.summary();
            let b = r.bare.as_ref().map(PhaseResult::summary);
            json!({
                "agents": r.n,
                "enroll_s": r.enroll_s,
                "herald": json_phase(&r.herald),
                "bare_tls": r.bare.as_ref().map(json_phase),
                "ratio_herald_over_bare": b.map(|b| json!({
                    "p50": h.p50 / b.p50,
                    "p99": h.p99 / b.p99,
                    "median_round_p50": h.med_round_p50 / b.med_round_p50,
                    "median_round_p99": h.med_round_p99 / b.med_round_p99,
                })),
                "peers": r.peers.iter().map(|(p, ph)| {
                    let ps = ph.summary();
                    (p.name().to_owned(), json!({
                        "result": json_phase(ph),
                        "ratio_herald_over_peer": {
                            "p50": h.p50 / ps.p50,
                            "p99": h.p99 / ps.p99,
                            "max": h.max / ps.max,
                            "median_round_p50": h.med_round_p50 / ps.med_round_p50,
                            "median_round_p99": h.med_round_p99 / ps.med_round_p99,
                            "server_cpu_us_per_delivery": h.cpu_us_per_delivery / ps.cpu_us_per_delivery,
                            "server_rss_per_agent_kib": h.rss_per_agent_kib / ps.rss_per_agent_kib,
                        },
                    }))
                }).collect::<serde_json::Map<_, _>>(),
                "slow_agents": r.slow.as_ref().map(|slow| {
                    let (a, b) = (r.herald.others_only(), slow.others_only());
                    let (sa, sb) = (a.summary(), b.summary());
                    json!({
                        "percent": args.slow_percent,
                        "slow_agents": slow.slow_agents,
                        "normal_run_others": json_phase(&a),
                        "slow_run_others": json_phase(&b),
                        "ratio_slow_over_normal": {
                            "p50": sb.p50 / sa.p50,
                            "p99": sb.p99 / sa.p99,
                            "median_round_p99": sb.med_round_p99 / sa.med_round_p99,
                        },
                        "server_rss_kib": {
                            "normal": { "connected": r.herald.rss_connected_kib, "after_warmup": r.herald.rss_warm_kib, "after_rounds": r.herald.rss_after_kib },
                            "slow": { "connected": slow.rss_connected_kib, "after_warmup": slow.rss_warm_kib, "after_rounds": slow.rss_after_kib },
                        },
                        "server_sockets": { "normal": r.herald.sockets, "slow": slow.sockets },
                        "hold": slow.hold.map(|(rss, sockets, s)| json!({
                            "seconds_after_slow": s, "server_rss_kib": rss, "server_sockets": sockets,
                        })),
                        "burst": slow.burst.as_ref().map(|b| json!({
                            "alert_body_bytes": burst_body().len(),
                            "alerts": b.alerts,
                            "all_cut_s": b.all_cut_s,
                            "server_rss_peak_kib": b.peak_rss_kib,
                            "kernel_tcp_mem_kib": { "before": b.tcp_mem_kib.0, "peak": b.tcp_mem_kib.1 },
                            "failed": b.failed,
                        })),
                    })
                }),
            })
        })
        .collect();
    let doc = json!({
        "benchmark": "quick-alert fan-out, server accepted → agent received",
        "unix_ms": now_us() / 1000,
        "cpus": sys::cpus(),
        "rounds": args.rounds,
        "warmup_rounds": args.warmup,
        "pause_ms": args.pause.as_millis() as u64,
        "agents_send_receipts": !args.no_receipts,
        "peers": args.peers.iter().map(|(p, bin)| json!({
            "name": p.name(),
            "binary": bin.display().to_string(),
            "version": p.version(bin),
        })).collect::<Vec<_>>(),
        "peer_method": PEER_METHOD,
        "runs": runs,
    });
    write_json_doc(&args.json, &doc)
}

async fn bench_main(args: Args) -> anyhow::Result<()> {
    if args.storm {
        return storm::run(&args).await;
    }
    if args.receipt_burst {
        return receipts::run(&args).await;
    }
    println!(
        "fan-out bench: agents {:?}, {} rounds (+{} warm-up), server {}, {} CPUs, fd limit {}",
        args.agents,
        args.rounds,
        args.warmup,
        args.server_bin.display(),
        sys::cpus(),
        sys::nofile()
    );
    for (peer, bin) in &args.peers {
        println!(
            "peer {}: {} ({})",
            peer.name(),
            bin.display(),
            peer.version(bin)
        );
    }
    for peer in &args.peers_missing {
        println!("peer {} left out: {}", peer.name(), peer.missing());
    }
    if !args.peers.is_empty() {
        println!("peers: {PEER_METHOD}");
    }
    let mut results = Vec::new();
    for &n in &args.agents {
        results.push(bench_n(&args, n).await?);
        // Print what we have after every N, in case a later one fails.
        print_table(&results, &args);
        write_json(&results, &args)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The baseline: bare TLS 1.3 push, no HTTP/2, no gRPC, no store

mod baseline {
    use super::*;
    use rustls::pki_types::ServerName;
    use tokio::net::{TcpListener, TcpStream};

    /// The baseline server child process, driven over stdin/stdout.
    pub struct Proc {
        child: tokio::process::Child,
        stdin: tokio::process::ChildStdin,
        lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
        pub pid: u32,
        pub url: String,
    }

    impl Proc {
        pub async fn start(data_dir: &Path) -> anyhow::Result<Proc> {
            let mut child = tokio::process::Command::new(std::env::current_exe()?)
                .arg("--baseline-server")
                .arg(data_dir)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .kill_on_drop(true)
                .spawn()?;
            let stdin = child.stdin.take().expect("stdin");
            let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
            let first = lines.next_line().await?.unwrap_or_default();
            let addr = first
                .strip_prefix("listening on ")
                .ok_or_else(|| anyhow!("baseline server printed {first:?}"))?;
            let pid = child.id().unwrap_or(0);
            Ok(Proc {
                url: format!("https://{addr}"),
                child,
                stdin,
                lines,
                pid,
            })
        }

        /// Pushes frame `key` to every connection; returns the "accepted"
        /// time (unix µs) taken right before the push loop.
        pub async fn push(&mut self, key: u64) -> anyhow::Result<i64> {
            self.stdin
                .write_all(format!("push {key}\n").as_bytes())
                .await?;
            self.stdin.flush().await?;
            let line = self.lines.next_line().await?.unwrap_or_default();
            let f: Vec<&str> = line.split_whitespace().collect();
            match f.as_slice() {
                ["pushed", k, us, _sent] if k.parse::<u64>().ok() == Some(key) => Ok(us.parse()?),
                _ => bail!("baseline server answered {line:?}"),
            }
        }

        pub async fn quit(mut self) {
            let _ = self.stdin.write_all(b"quit\n").await;
            let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
            let _ = self.child.start_kill();
        }
    }

    fn frame(key: u64) -> Arc<[u8]> {
        let mut f = Vec::with_capacity(4 + BARE_PAYLOAD);
        f.extend_from_slice(&(BARE_PAYLOAD as u32).to_be_bytes());
        f.extend_from_slice(&key.to_be_bytes());
        f.resize(4 + BARE_PAYLOAD, b'x');
        f.into()
    }

    /// `--baseline-server DATA_DIR`: the Herald server's own certificate and
    /// key, client certificates required and verified against the Herald CA.
    pub async fn server_main(argv: &[String]) -> anyhow::Result<()> {
        use herald_proto::tls::{certs_from_pem, key_from_pem, provider};
        let dir = PathBuf::from(argv.first().ok_or_else(|| anyhow!("data dir missing"))?);
        let read = |f: &str| std::fs::read_to_string(dir.join("tls").join(f));
        let ca_certs = certs_from_pem(&read("ca.pem")?)?;
        let mut roots = rustls::RootCertStore::empty();
        for c in &ca_certs {
            roots.add(c.clone())?;
        }
        let provider = provider();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()?;
        let mut chain = certs_from_pem(&read("server.pem")?)?;
        chain.extend(ca_certs);
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key_from_pem(&read("server.key")?)?)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        say(&format!("listening on {}", listener.local_addr()?));

        type Conns = Arc<std::sync::Mutex<HashMap<u64, mpsc::Sender<Arc<[u8]>>>>>;
        let conns: Conns = Arc::default();
        let accept_conns = conns.clone();
        tokio::spawn(async move {
            let mut next_id = 0u64;
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                next_id += 1;
                let id = next_id;
                let acceptor = acceptor.clone();
                let conns = accept_conns.clone();
                tokio::spawn(async move {
                    let Ok(Ok(tls)) =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
                    else {
                        return;
                    };
                    let (tx, mut rx) = mpsc::channel::<Arc<[u8]>>(256);
                    conns.lock().expect("lock").insert(id, tx);
                    let (mut rd, mut wr) = tokio::io::split(tls);
                    // "Welcome": registered and ready for pushes.
                    if wr.write_all(&frame(0)).await.is_err() || wr.flush().await.is_err() {
                        conns.lock().expect("lock").remove(&id);
                        return;
                    }
                    let mut buf = [0u8; 512];
                    loop {
                        tokio::select! {
                            f = rx.recv() => {
                                let Some(f) = f else { break };
                                if wr.write_all(&f).await.is_err() || wr.flush().await.is_err() {
                                    break;
                                }
                            }
                            n = rd.read(&mut buf) => if !matches!(n, Ok(n) if n > 0) { break },
                        }
                    }
                    conns.lock().expect("lock").remove(&id);
                });
            }
        });

        let mut stdin = stdin_lines();
        while let Some(line) = stdin.recv().await {
            let f: Vec<&str> = line.split_whitespace().collect();
            match f.as_slice() {
                ["push", key] => {
                    let key: u64 = key.parse()?;
                    let fr = frame(key);
                    let accepted = now_us();
                    let mut sent = 0usize;
                    {
                        let conns = conns.lock().expect("lock");
                        for tx in conns.values() {
                            if tx.try_send(fr.clone()).is_ok() {
                                sent += 1;
                            }
                        }
                    }
                    say(&format!("pushed {key} {accepted} {sent}"));
                }
                ["quit"] => break,
                _ => {}
            }
        }
        Ok(())
    }

    async fn read_frame(
        tls: &mut tokio_rustls::client::TlsStream<TcpStream>,
        buf: &mut Vec<u8>,
    ) -> std::io::Result<u64> {
        let mut len = [0u8; 4];
        tls.read_exact(&mut len).await?;
        let len = u32::from_be_bytes(len) as usize;
        if !(8..=64 * 1024).contains(&len) {
            return Err(std::io::Error::other("bad frame length"));
        }
        buf.resize(len, 0);
        tls.read_exact(buf).await?;
        Ok(u64::from_be_bytes(buf[..8].try_into().unwrap_or_default()))
    }

    /// One bare-TLS client: same client configuration and certificate as
    /// the Herald agent; returns once the welcome frame arrived.
    pub async fn agent(
        idx: u32,
        url: Arc<str>,
        ca: Arc<str>,
        id: ClientIdentity,
        ev: EvTx,
        mut stop: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let cfg = herald_proto::tls::client_config(&ServerTrust::CaPem(ca.to_string()), Some(&id))?;
        let addr = url.strip_prefix("https://").unwrap_or(&url).to_owned();
        let tcp = TcpStream::connect(&addr).await?;
        tcp.set_nodelay(true)?;
        let host = addr
            .rsplit_once(':')
            .map_or(addr.as_str(), |(h, _)| h)
            .to_owned();
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(ServerName::try_from(host)?, tcp)
            .await?;
        let mut buf = vec![0u8; BARE_PAYLOAD];
        if read_frame(&mut tls, &mut buf).await? != 0 {
            bail!("expected the welcome frame");
        }
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    r = read_frame(&mut tls, &mut buf) => match r {
                        Ok(key) => {
                            let us = now_us();
                            let _ = ev.send(Ev::Rx { agent: idx, key, us });
                        }
                        Err(_) => {
                            if !*stop.borrow() {
                                let _ = ev.send(Ev::Lost { agent: idx });
                            }
                            break;
                        }
                    },
                }
            }
        });
        Ok(())
    }
}
