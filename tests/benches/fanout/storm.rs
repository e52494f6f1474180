//! Reconnect storm (`--storm`): N agents hold their sessions; an alert is
//! sent and, as soon as `SendAlert` has answered, the server is killed with
//! SIGKILL and started again on the same data dir and the same port.
//!
//! The simulated agents here reconnect as the agent service does: the same
//! TLS client configuration and `herald_proto::tls::connect`, the same
//! welcome timeout, and the same pauses between tries, taken from
//! `herald_agent::backoff::Reconnect` (the policy `herald-agent service`
//! runs). Every hello carries the highest delivery seq the agent has seen
//! as its resume cursor; DELIVERED receipts that were not acknowledged are
//! sent again on the next session, as the real agent's pending receipts are.
//!
//! Measured from the moment the new server process is spawned: when it
//! listens, when the first and the last of the N agents are welcomed again,
//! the sessions re-established (and the failed tries) per 250 ms, whether
//! the alert accepted before the kill reaches every agent exactly once
//! (duplicates, which the real agent drops by item id, are counted), and
//! then a new alert: its latency and when it has reached all N agents.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use herald_agent::backoff::{Backoff, Outcome, Reconnect};
use herald_agent::service::WELCOME_TIMEOUT;
use herald_proto::pb;
use herald_proto::pb::{agent_message, server_message};
use herald_proto::tls::ServerTrust;
use herald_tests::{Admin, to_all};
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

use super::{
    Args, CONNECT_TIMEOUT, Enrolled, EventLog, ROUND_TIMEOUT, ServerProc, alert_seq, enrolled,
    login, now_us, pct, perf_record, sys, target_dir, until, write_json_doc,
};

/// Width of one bucket of the reconnect-rate curve.
const BUCKET: Duration = Duration::from_millis(250);
/// The target: all agents back and a new alert at all of them.
const TARGET: Duration = Duration::from_secs(15);
/// How long the agents get to come back after the restart.
const BACK_TIMEOUT: Duration = Duration::from_secs(180);
/// How long the alert sent before the kill gets to reach everybody once
/// they are back.
const RESUME_TIMEOUT: Duration = Duration::from_secs(60);
/// Time for the whole first connection of N agents.
const FIRST_CONNECT_TIMEOUT: Duration = Duration::from_secs(600);

/// Starts `herald-server run` on `listen` (an address, or port 0), its log
/// going to `log`. Returns once it printed its address.
pub(super) fn spawn_server(
    bin: &Path,
    dir: &Path,
    listen: &str,
    rust_log: &str,
    log: &Path,
) -> anyhow::Result<ServerProc> {
    use std::io::BufRead;
    let log_file =
        std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
    let mut child = std::process::Command::new(bin)
        .args(["run", "--listen", listen, "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", rust_log)
        .stdout(std::process::Stdio::piped())
        .stderr(log_file)
        .spawn()
        .with_context(|| format!("spawn {}", bin.display()))?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line)?;
    let Some(addr) = line.trim().strip_prefix("listening on ") else {
        let _ = child.kill();
        let _ = child.wait();
        let why = std::fs::read_to_string(log).unwrap_or_default();
        bail!("herald-server printed {line:?} instead of its address: {why}");
    };
    Ok(ServerProc {
        url: format!("https://{addr}"),
        child,
    })
}

/// Where the server logs of these modes go.
pub(super) fn log_dir() -> anyhow::Result<PathBuf> {
    let dir = target_dir().join("bench-fanout-logs");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The 1-minute load average, to see whether other work shared the cores.
pub(super) fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// Kernel TCP counters (system-wide, from /proc/net/netstat) that show a
/// listen queue overflowing: connections dropped before the server
/// accepted them, and the SYNs clients had to send again.
const TCP_COUNTERS: [&str; 4] = [
    "ListenOverflows",
    "ListenDrops",
    "TCPSynRetrans",
    "TCPReqQFullDrop",
];

fn tcp_counters() -> [u64; 4] {
    let text = std::fs::read_to_string("/proc/net/netstat").unwrap_or_default();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| l.starts_with("TcpExt:"))
        .map(|l| l.split_whitespace().collect())
        .collect();
    let mut out = [0; 4];
    if let [names, values] = rows.as_slice() {
        for (i, want) in TCP_COUNTERS.iter().enumerate() {
            if let Some(pos) = names.iter().position(|n| n == want) {
                out[i] = values.get(pos).and_then(|v| v.parse().ok()).unwrap_or(0);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// The simulated agent

/// Why a try at a session failed, as the agent sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Fail {
    /// TCP connection refused: nothing listens (the server is down).
    Refused,
    /// TCP connect or TLS handshake did not finish within the client's
    /// connect timeout (10 s).
    ConnectTimeout,
    /// Any other connect or TLS handshake error.
    Connect,
    /// The session RPC failed before the welcome.
    Session,
    /// No welcome within the agent's welcome timeout.
    NoWelcome,
}

impl Fail {
    fn name(self) -> &'static str {
        match self {
            Fail::Refused => "connection refused",
            Fail::ConnectTimeout => "connect/handshake timed out",
            Fail::Connect => "connect/handshake failed",
            Fail::Session => "session refused before welcome",
            Fail::NoWelcome => "no welcome in time",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Fail::Refused => "refused",
            Fail::ConnectTimeout => "connect_timeout",
            Fail::Connect => "connect_other",
            Fail::Session => "session_refused",
            Fail::NoWelcome => "no_welcome",
        }
    }

    fn of_connect_error(text: &str) -> Fail {
        let t = text.to_ascii_lowercase();
        if t.contains("refused") {
            Fail::Refused
        } else if t.contains("timed out") || t.contains("timeout") || t.contains("elapsed") {
            Fail::ConnectTimeout
        } else {
            Fail::Connect
        }
    }
}

#[derive(Debug)]
enum Ev {
    /// The server welcomed a session of `agent`.
    Welcome { agent: u32, at: Instant },
    /// `agent` received alert `key`; `dup` when it had it already.
    Rx {
        agent: u32,
        key: u64,
        us: i64,
        at: Instant,
        dup: bool,
    },
    /// A try at a session failed.
    Failed {
        at: Instant,
        kind: Fail,
        why: String,
    },
    /// A session welcomed at `since` ended.
    Ended { since: Instant },
    /// A receipt was acknowledged.
    Ack,
}

/// How one try at a session ended.
enum End {
    /// It had been welcomed at this instant, then it ended.
    Welcomed(Instant),
    Failed(Fail, String),
    Stop,
}

struct Agent {
    idx: u32,
    url: Arc<str>,
    tls: rustls::ClientConfig,
    ev: mpsc::UnboundedSender<Ev>,
    stop: watch::Receiver<bool>,
    /// The highest delivery seq seen: the resume cursor of every hello.
    max_seq: u64,
    /// Item ids received, over all sessions.
    seen: HashSet<String>,
    /// DELIVERED receipts the server has not acknowledged yet, by item id;
    /// sent again at the start of every session.
    pending: BTreeMap<String, pb::Receipt>,
    reconnect: Reconnect,
}

fn agent_msg(kind: agent_message::Kind) -> pb::AgentMessage {
    pb::AgentMessage { kind: Some(kind) }
}

impl Agent {
    /// Holds a session until `stop`: reconnects after every end, pausing as
    /// the agent service does. `first` is released once the first try ends
    /// or is welcomed, which bounds how many agents connect at once at the
    /// start.
    async fn run(mut self, first: OwnedSemaphorePermit) {
        let mut first = Some(first);
        loop {
            let end = self.session(&mut first).await;
            first = None;
            let outcome = match end {
                End::Stop => return,
                End::Welcomed(since) => {
                    let _ = self.ev.send(Ev::Ended { since });
                    Outcome::SessionEnded
                }
                End::Failed(kind, why) => {
                    let _ = self.ev.send(Ev::Failed {
                        at: Instant::now(),
                        kind,
                        why,
                    });
                    Outcome::Failed
                }
            };
            let delay = self.reconnect.random_delay_after(outcome);
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = self.stop.changed() => return,
            }
        }
    }

    async fn session(&mut self, first: &mut Option<OwnedSemaphorePermit>) -> End {
        let mut stop = self.stop.clone();
        let hello = pb::Hello {
            agent_version: "fanout-bench".into(),
            hostname: format!("bench-{:05}", self.idx),
            os: "bench".into(),
            resume_after_seq: self.max_seq,
            ..Default::default()
        };
        let (mut inbound, mut writer) = tokio::select! {
            c = herald_proto::framed::connect(&self.url, self.tls.clone(), hello) => match c {
                Ok(c) => c,
                Err(e) => {
                    let why = e.to_string();
                    return End::Failed(Fail::of_connect_error(&why), why);
                }
            },
            _ = stop.changed() => return End::Stop,
        };
        let welcome = tokio::select! {
            m = tokio::time::timeout(WELCOME_TIMEOUT, inbound.message()) => m,
            _ = stop.changed() => return End::Stop,
        };
        let heartbeat = match welcome {
            Ok(Ok(Some(pb::ServerMessage {
                kind: Some(server_message::Kind::Welcome(w)),
            }))) => Duration::from_secs(u64::from(w.heartbeat_interval_secs.max(1))),
            Ok(Ok(_)) => {
                return End::Failed(
                    Fail::Session,
                    "the server did not welcome the session".into(),
                );
            }
            Ok(Err(s)) => {
                return End::Failed(Fail::Session, format!("{}: {}", s.code(), s.message()));
            }
            Err(_) => {
                return End::Failed(
                    Fail::NoWelcome,
                    format!("no welcome within {} s", WELCOME_TIMEOUT.as_secs()),
                );
            }
        };
        drop(first.take());
        let welcomed = Instant::now();
        let _ = self.ev.send(Ev::Welcome {
            agent: self.idx,
            at: welcomed,
        });
        // Receipts not acknowledged in an earlier session go first.
        for r in self.pending.values() {
            writer.queue(&agent_msg(agent_message::Kind::Receipt(r.clone())));
        }
        if writer.flush().await.is_err() {
            return End::Welcomed(welcomed);
        }
        let mut ticker = tokio::time::interval(heartbeat);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        let silence_limit = heartbeat * 3;
        loop {
            tokio::select! {
                _ = stop.changed() => return End::Stop,
                _ = ticker.tick() => {
                    let hb = pb::Heartbeat { agent_time_unix_ms: now_us() / 1000 };
                    if writer.send(&agent_msg(agent_message::Kind::Heartbeat(hb))).await.is_err() {
                        return End::Welcomed(welcomed);
                    }
                }
                m = tokio::time::timeout(silence_limit, inbound.message()) => match m {
                    Err(_) | Ok(Ok(None)) | Ok(Err(_)) => return End::Welcomed(welcomed),
                    Ok(Ok(Some(msg))) => match msg.kind {
                        Some(server_message::Kind::Delivery(d)) => {
                            let (us, at) = (now_us(), Instant::now());
                            let dup = !self.seen.insert(d.item_id.clone());
                            if let Some(key) = alert_seq(&d.item_id) {
                                let _ = self.ev.send(Ev::Rx { agent: self.idx, key, us, at, dup });
                            }
                            if dup {
                                continue;
                            }
                            self.max_seq = self.max_seq.max(d.seq);
                            let r = pb::Receipt {
                                item_id: d.item_id.clone(),
                                seq: d.seq,
                                state: pb::DeliveryState::Delivered as i32,
                                at_unix_ms: us / 1000,
                                ..Default::default()
                            };
                            self.pending.insert(d.item_id, r.clone());
                            if writer.send(&agent_msg(agent_message::Kind::Receipt(r))).await.is_err() {
                                return End::Welcomed(welcomed);
                            }
                        }
                        Some(server_message::Kind::ReceiptAck(ack)) => {
                            for k in &ack.receipts {
                                if k.state == pb::DeliveryState::Delivered as i32
                                    && self.pending.remove(&k.item_id).is_some()
                                {
                                    let _ = self.ev.send(Ev::Ack);
                                }
                            }
                        }
                        _ => {}
                    },
                },
            }
        }
    }
}

// ---------------------------------------------------------------------------
// What the agents reported

#[derive(Default)]
struct Log {
    /// Welcomes at or after this instant count as "back".
    mark: Option<Instant>,
    /// Per agent: its first welcome at or after `mark`.
    back: Vec<Option<Instant>>,
    back_count: usize,
    /// Every welcome, failed try and session end.
    welcomes: Vec<Instant>,
    fails: Vec<(Instant, Fail)>,
    fail_examples: BTreeMap<Fail, String>,
    /// When the sessions that ended had been welcomed.
    ended: Vec<Instant>,
    /// Per alert key: (agent, unix µs, instant, duplicate).
    rx: HashMap<u64, Vec<(u32, i64, Instant, bool)>>,
    acks: u64,
}

impl Log {
    fn new(n: usize) -> Log {
        Log {
            back: vec![None; n],
            ..Log::default()
        }
    }

    fn apply(&mut self, ev: Ev) {
        match ev {
            Ev::Welcome { agent, at } => {
                self.welcomes.push(at);
                if let (Some(mark), Some(slot)) = (self.mark, self.back.get_mut(agent as usize))
                    && at >= mark
                    && slot.is_none()
                {
                    *slot = Some(at);
                    self.back_count += 1;
                }
            }
            Ev::Rx {
                agent,
                key,
                us,
                at,
                dup,
            } => self.rx.entry(key).or_default().push((agent, us, at, dup)),
            Ev::Failed { at, kind, why } => {
                self.fails.push((at, kind));
                self.fail_examples.entry(kind).or_insert(why);
            }
            Ev::Ended { since } => self.ended.push(since),
            Ev::Ack => self.acks += 1,
        }
    }

    /// Distinct agents that received `key`.
    fn got(&self, key: u64) -> usize {
        self.rx
            .get(&key)
            .map_or(0, |v| v.iter().filter(|r| !r.3).count())
    }

    fn dups(&self, key: u64) -> usize {
        self.rx
            .get(&key)
            .map_or(0, |v| v.iter().filter(|r| r.3).count())
    }

    fn welcomed_since(&self, t: Instant) -> usize {
        self.welcomes.iter().filter(|w| **w >= t).count()
    }
}

impl EventLog for Log {
    type Ev = Ev;

    fn apply(&mut self, ev: Ev) {
        Log::apply(self, ev);
    }
}

// ---------------------------------------------------------------------------
// One N

struct StormResult {
    n: usize,
    enroll_s: f64,
    connected: usize,
    connect_s: f64,
    /// SendAlert RPC of the alert sent before the kill, ms.
    pre_rpc_ms: f64,
    /// Agents that had that alert when the server was killed.
    pre_before_kill: usize,
    /// Kill → new process spawned, ms.
    down_ms: f64,
    /// From spawn: listening, admin login answered, first and last agent
    /// back (s); `None` when not everybody came back in time.
    listening_s: f64,
    first_back_s: Option<f64>,
    all_back_s: Option<f64>,
    back: usize,
    /// Sessions (re)established per bucket, failed tries per bucket.
    curve: Vec<u64>,
    fail_curve: Vec<u64>,
    /// Failed tries between the kill and the spawn, and after the spawn.
    fails_down: BTreeMap<Fail, u64>,
    fails_up: BTreeMap<Fail, u64>,
    fail_examples: BTreeMap<Fail, String>,
    /// Sessions welcomed after the spawn (more than `back` when some were
    /// lost again) and welcomed sessions that ended after the spawn.
    sessions_after: usize,
    lost_after: usize,
    /// Server handshakes the restarted server logged as refused or timed out.
    server_handshake_refused: u64,
    server_handshake_timeouts: u64,
    /// The alert sent before the kill: agents that have it, duplicates,
    /// time from spawn until the last one had it (s).
    pre_got: usize,
    pre_dups: usize,
    pre_all_s: Option<f64>,
    /// The server's count of computers with the pre-kill alert delivered
    /// (or further), once the agents' receipts are in.
    pre_server_delivered: Option<u32>,
    /// The new alert: RPC ms, latencies (ms after accepted), agents that got
    /// it, duplicates, spawn → all N have it (s).
    new_rpc_ms: f64,
    new_lat: Vec<f64>,
    new_got: usize,
    new_dups: usize,
    new_all_s: Option<f64>,
    /// CPU (µs) of the new server from spawn until all were back, and of
    /// the bench process (the agents) over the same time.
    server_cpu_us: u64,
    agents_cpu_us: u64,
    server_rss_kib: u64,
    /// `TCP_COUNTERS` from the kill until all were back.
    tcp: [u64; 4],
    load: (f64, f64),
    log: PathBuf,
}

/// Every N of `--agents`, one storm each; prints and writes the JSON.
pub(super) async fn run(args: &Args) -> anyhow::Result<()> {
    println!(
        "reconnect storm: agents {:?}, server {}, {} CPUs, fd limit {}",
        args.agents,
        args.server_bin.display(),
        sys::cpus(),
        sys::nofile()
    );
    let mut results = Vec::new();
    for &n in &args.agents {
        results.push(storm_n(args, n).await?);
        print_results(&results);
        write_json(&results, args)?;
    }
    Ok(())
}

async fn storm_n(args: &Args, n: usize) -> anyhow::Result<StormResult> {
    println!("\n== reconnect storm, N = {n} agents ==");
    let load0 = loadavg();
    let Enrolled {
        server,
        ca,
        ids,
        enroll_s,
        dir,
    } = enrolled(args, n).await?;
    let mut server = server;
    let addr = server
        .url
        .strip_prefix("https://")
        .unwrap_or(&server.url)
        .to_owned();

    // N agents, `connect_parallel` connecting at a time at first.
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut log = Log::new(n);
    let url: Arc<str> = server.url.as_str().into();
    let gate = Arc::new(Semaphore::new(args.connect_parallel.max(1)));
    let t = Instant::now();
    log.mark = Some(t);
    for (i, id) in ids.iter().enumerate() {
        let tls = herald_proto::tls::client_config(&ServerTrust::CaPem(ca.clone()), Some(id))?;
        let agent = Agent {
            idx: i as u32,
            url: url.clone(),
            tls,
            ev: ev_tx.clone(),
            stop: stop_rx.clone(),
            max_seq: 0,
            seen: HashSet::new(),
            pending: BTreeMap::new(),
            reconnect: Reconnect::new(Backoff::default()),
        };
        let permit = tokio::time::timeout(CONNECT_TIMEOUT, gate.clone().acquire_owned())
            .await
            .context("connecting agents: no progress")??;
        tokio::spawn(agent.run(permit));
    }
    drop(ev_tx);
    let all_up = until(&mut ev_rx, &mut log, FIRST_CONNECT_TIMEOUT, |l| {
        l.back_count >= n
    })
    .await;
    let connected = log.back_count;
    let connect_s = t.elapsed().as_secs_f64();
    println!(
        "  {connected}/{n} sessions up in {connect_s:.1} s (server pid {})",
        server.pid()
    );
    if !all_up {
        println!(
            "  ! {} agents did not connect; first failures: {:?}",
            n - connected,
            log.fail_examples
        );
    }

    // One alert through all of them, so every agent has a resume cursor.
    let admin = login(&server.url, &ca, Duration::from_secs(20)).await?;
    let warm = admin
        .send_alert(vec![to_all()], "Reconnect storm: before", 0)
        .await
        .map_err(|s| anyhow!("send_alert: {}", s.message()))?;
    let warm_key = alert_seq(&warm.alert_id).ok_or_else(|| anyhow!("odd id {}", warm.alert_id))?;
    let acks0 = log.acks;
    if !until(&mut ev_rx, &mut log, ROUND_TIMEOUT, |l| {
        l.got(warm_key) >= connected && l.acks >= acks0 + connected as u64
    })
    .await
    {
        println!(
            "  ! first alert: {} of {connected} received, {} receipts acknowledged",
            log.got(warm_key),
            log.acks - acks0
        );
    }
    tokio::time::sleep(args.pause).await;

    // The alert, then kill -9 as soon as it is accepted.
    let t0 = Instant::now();
    let pre = admin
        .send_alert(vec![to_all()], "Reconnect storm: sent before the kill", 0)
        .await
        .map_err(|s| anyhow!("send_alert: {}", s.message()))?;
    let pre_rpc_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let tcp0 = tcp_counters();
    let _ = server.child.kill();
    let killed = Instant::now();
    let _ = server.child.wait();
    let pre_key = alert_seq(&pre.alert_id).ok_or_else(|| anyhow!("odd id {}", pre.alert_id))?;

    // Restart on the same data dir and port; handshake failures are
    // logged by the server at info level.
    let logfile = log_dir()?.join(format!("storm-{n}-server.log"));
    let bin = args.server_bin.clone();
    let data = dir.path().to_owned();
    let (listen, lf) = (addr.clone(), logfile.clone());
    let spawned = Instant::now();
    let cpu_agents0 = sys::cpu_us(std::process::id());
    let restarted = tokio::task::spawn_blocking(move || {
        spawn_server(&bin, &data, &listen, "warn,herald_server::net=info", &lf)
    })
    .await??;
    let listening_s = spawned.elapsed().as_secs_f64();
    let down_ms = spawned.duration_since(killed).as_secs_f64() * 1000.0;
    // The old process is gone; dropping it only reaps it again.
    drop(std::mem::replace(&mut server, restarted));
    println!(
        "  alert {} accepted in {pre_rpc_ms:.0} ms, server killed at once; restarted {down_ms:.0} ms \
         later (pid {}), listening after {:.0} ms",
        pre.alert_id,
        server.pid(),
        listening_s * 1000.0
    );

    // With --perf-out, a profile of the new server until everybody is back.
    let profile = match &args.perf_out {
        Some(out) => Some(perf_record(server.pid(), out)?),
        None => None,
    };

    // Everybody back.
    log.mark = Some(spawned);
    log.back = vec![None; n];
    log.back_count = 0;
    let all_back = until(&mut ev_rx, &mut log, BACK_TIMEOUT, |l| {
        l.back_count >= connected
    })
    .await;
    let back_at = Instant::now();
    let tcp1 = tcp_counters();
    if let Some(mut p) = profile {
        sys::interrupt(p.id());
        let _ = p.wait();
        if let Some(out) = &args.perf_out {
            println!(
                "  perf data from the restart until all were back: {}",
                out.display()
            );
        }
    }
    let server_cpu_us = sys::cpu_us(server.pid());
    let agents_cpu_us = sys::cpu_us(std::process::id()).saturating_sub(cpu_agents0);
    let server_rss_kib = sys::rss_kib(server.pid());
    let since = |t: Instant| t.duration_since(spawned).as_secs_f64();
    let firsts: Vec<Instant> = log.back.iter().flatten().copied().collect();
    let first_back_s = firsts.iter().min().map(|t| since(*t));
    let all_back_s = all_back
        .then(|| firsts.iter().max().map(|t| since(*t)))
        .flatten();
    let back = log.back_count;
    match all_back_s {
        Some(s) => println!("  all {back} agents back {s:.2} s after the restart"),
        None => println!(
            "  ! only {back} of {connected} agents back within {BACK_TIMEOUT:?} of the restart"
        ),
    }

    // The alert sent before the kill: everybody, exactly once.
    let pre_before_kill = log
        .rx
        .get(&pre_key)
        .map_or(0, |v| v.iter().filter(|r| !r.3 && r.2 < killed).count());
    let pre_all = until(&mut ev_rx, &mut log, RESUME_TIMEOUT, |l| {
        l.got(pre_key) >= connected
    })
    .await;
    let pre_all_s = pre_all
        .then(|| {
            log.rx
                .get(&pre_key)
                .and_then(|v| v.iter().filter(|r| !r.3).map(|r| r.2).max())
                .map(|t| t.saturating_duration_since(spawned).as_secs_f64())
        })
        .flatten();

    // A new alert, as soon as everybody is back (and an admin can log in).
    let admin = login(&server.url, &ca, Duration::from_secs(30)).await?;
    let t1 = Instant::now();
    let new = admin
        .send_alert(vec![to_all()], "Reconnect storm: sent after the restart", 0)
        .await
        .map_err(|s| anyhow!("send_alert: {}", s.message()))?;
    let new_rpc_ms = t1.elapsed().as_secs_f64() * 1000.0;
    let new_key = alert_seq(&new.alert_id).ok_or_else(|| anyhow!("odd id {}", new.alert_id))?;
    let new_all = until(&mut ev_rx, &mut log, ROUND_TIMEOUT, |l| {
        l.got(new_key) >= connected
    })
    .await;
    let accepted_us = new.accepted_unix_ms * 1000;
    let fresh: Vec<&(u32, i64, Instant, bool)> = log
        .rx
        .get(&new_key)
        .map(|v| v.iter().filter(|r| !r.3).collect())
        .unwrap_or_default();
    let mut new_lat: Vec<f64> = fresh
        .iter()
        .map(|r| (r.1 - accepted_us) as f64 / 1000.0)
        .collect();
    new_lat.sort_by(f64::total_cmp);
    let new_all_s = new_all
        .then(|| fresh.iter().map(|r| since(r.2)).reduce(f64::max))
        .flatten();
    let new_got = log.got(new_key);

    // What the server counts for the pre-kill alert once the receipts the
    // agents held are in.
    let pre_server_delivered = server_delivered(&admin, &pre.alert_id, connected).await;
    // Late events: sessions lost or duplicates that arrive after the rest.
    until(&mut ev_rx, &mut log, Duration::from_millis(300), |_| false).await;
    let _ = stop_tx.send(true);

    // The curve, from the spawn to the last agent back.
    let last = firsts.iter().max().copied().unwrap_or(back_at).max(spawned);
    let buckets = (last.duration_since(spawned).as_millis() / BUCKET.as_millis()) as usize + 1;
    let bucket = |t: Instant| (t.duration_since(spawned).as_millis() / BUCKET.as_millis()) as usize;
    let mut curve = vec![0u64; buckets];
    let mut fail_curve = vec![0u64; buckets];
    for w in log.welcomes.iter().filter(|w| **w >= spawned) {
        if let Some(c) = curve.get_mut(bucket(*w)) {
            *c += 1;
        }
    }
    let mut fails_down = BTreeMap::new();
    let mut fails_up = BTreeMap::new();
    for (at, kind) in &log.fails {
        if *at < killed {
            continue;
        }
        if *at < spawned {
            *fails_down.entry(*kind).or_insert(0) += 1;
        } else {
            *fails_up.entry(*kind).or_insert(0) += 1;
            if let Some(c) = fail_curve.get_mut(bucket(*at)) {
                *c += 1;
            }
        }
    }
    let server_log = std::fs::read_to_string(&logfile).unwrap_or_default();
    let count = |what: &str| server_log.lines().filter(|l| l.contains(what)).count() as u64;
    let res = StormResult {
        n,
        enroll_s,
        connected,
        connect_s,
        pre_rpc_ms,
        pre_before_kill,
        down_ms,
        listening_s,
        first_back_s,
        all_back_s,
        back,
        curve,
        fail_curve,
        fails_down,
        fails_up,
        fail_examples: log.fail_examples.clone(),
        sessions_after: log.welcomed_since(spawned),
        lost_after: log.ended.iter().filter(|t| **t >= spawned).count(),
        server_handshake_refused: count("TLS handshake refused"),
        server_handshake_timeouts: count("TLS handshake timed out"),
        pre_got: log.got(pre_key),
        pre_dups: log.dups(pre_key),
        pre_all_s,
        pre_server_delivered,
        new_rpc_ms,
        new_lat,
        new_got,
        new_dups: log.dups(new_key),
        new_all_s,
        server_cpu_us,
        agents_cpu_us,
        server_rss_kib,
        tcp: std::array::from_fn(|i| tcp1[i].saturating_sub(tcp0[i])),
        load: (load0, loadavg()),
        log: logfile,
    };
    drop(server);
    drop(dir);
    // Let the agents' connections close before the next N.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(res)
}

/// The server's count of computers at "delivered" or further for `id`,
/// asked until it reaches `want` or 20 s passed.
async fn server_delivered(admin: &Admin, id: &str, want: usize) -> Option<u32> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = None;
    while Instant::now() < deadline {
        let mut c = admin.client.clone();
        let st = c
            .get_alert_status(admin.req(pb::GetAlertStatusRequest {
                alert_id: id.into(),
                computers: false,
            }))
            .await
            .ok()?
            .into_inner();
        let n = st
            .counts
            .map(|c| c.delivered + c.displayed + c.dismissed)
            .unwrap_or(0);
        last = Some(n);
        if n as usize >= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    last
}

// ---------------------------------------------------------------------------
// Report

fn secs(v: Option<f64>) -> String {
    v.map_or_else(|| "not reached".into(), |s| format!("{s:.2} s"))
}

fn fails_text(m: &BTreeMap<Fail, u64>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter()
        .map(|(k, v)| format!("{v} {}", k.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_results(results: &[StormResult]) {
    println!(
        "\n=== Reconnect storm: kill -9 the server right after an alert is accepted, restart it ==="
    );
    for r in results {
        println!(
            "\nN = {} (enroll {:.1} s, first connect {:.1} s, {} connected; load average {:.2} → {:.2})",
            r.n, r.enroll_s, r.connect_s, r.connected, r.load.0, r.load.1
        );
        println!(
            "{:<52} {:>12}",
            "from the restart (new process spawned)", "time"
        );
        let rows: [(&str, String); 6] = [
            ("server listening", format!("{:.2} s", r.listening_s)),
            ("first agent back (welcomed)", secs(r.first_back_s)),
            (
                "all agents back",
                match r.all_back_s {
                    Some(s) => format!("{s:.2} s"),
                    None => format!("{}/{} back", r.back, r.connected),
                },
            ),
            ("pre-kill alert at every agent", secs(r.pre_all_s)),
            ("new alert at every agent", secs(r.new_all_s)),
            (
                "all back + new alert at all vs target 15 s",
                match r.new_all_s {
                    Some(s) if s <= TARGET.as_secs_f64() => format!("{s:.2} s met"),
                    Some(s) => format!("{s:.2} s MISSED"),
                    None => "MISSED".into(),
                },
            ),
        ];
        for (k, v) in rows {
            println!("{k:<52} {v:>12}");
        }
        let s = &r.new_lat;
        println!(
            "new alert: SendAlert {:.0} ms; latency after accepted p50 {:.1} / p99 {:.1} / max {:.1} ms; \
             {}/{} agents, {} duplicates",
            r.new_rpc_ms,
            pct(s, 50.0),
            pct(s, 99.0),
            s.last().copied().unwrap_or(f64::NAN),
            r.new_got,
            r.connected,
            r.new_dups
        );
        println!(
            "pre-kill alert: SendAlert {:.0} ms; {} agents had it at the kill; {}/{} have it now, \
             {} duplicates; server counts {} delivered",
            r.pre_rpc_ms,
            r.pre_before_kill,
            r.pre_got,
            r.connected,
            r.pre_dups,
            r.pre_server_delivered
                .map_or_else(|| "?".into(), |v| v.to_string())
        );
        println!(
            "failed tries: while down ({:.0} ms) {}; after the restart {}",
            r.down_ms,
            fails_text(&r.fails_down),
            fails_text(&r.fails_up)
        );
        for (k, why) in &r.fail_examples {
            println!("  e.g. {}: {why}", k.name());
        }
        println!(
            "server: {} handshakes refused, {} timed out (its log: {}); sessions welcomed after \
             the restart {}, of them lost again {}",
            r.server_handshake_refused,
            r.server_handshake_timeouts,
            r.log.display(),
            r.sessions_after,
            r.lost_after
        );
        println!(
            "kernel TCP counters from the kill until all back (system-wide): {}",
            TCP_COUNTERS
                .iter()
                .zip(r.tcp)
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "CPU from the restart until all back: server {:.1} s, agents (bench process) {:.1} s; \
             server RSS then {} MiB",
            r.server_cpu_us as f64 / 1e6,
            r.agents_cpu_us as f64 / 1e6,
            r.server_rss_kib / 1024
        );
        print_curve(r);
    }
}

/// The reconnect-rate curve as a text histogram: one row per 250 ms with
/// anything in it (a gap of empty rows is shown as one "…" row).
fn print_curve(r: &StormResult) {
    let peak = r.curve.iter().copied().max().unwrap_or(0).max(1);
    let total: u64 = r.curve.iter().sum();
    println!(
        "sessions re-established per {} ms after the restart (peak {peak}, i.e. {:.0}/s; \
         {total} in all; '!' = failed tries in that bucket):",
        BUCKET.as_millis(),
        peak as f64 * 1000.0 / BUCKET.as_millis() as f64
    );
    let mut cum = 0u64;
    let mut gap = false;
    for (i, (&c, &f)) in r.curve.iter().zip(&r.fail_curve).enumerate() {
        cum += c;
        if c == 0 && f == 0 {
            gap = true;
            continue;
        }
        if gap {
            println!("  {:>6}", "…");
            gap = false;
        }
        let bar = "#".repeat(((c * 40).div_ceil(peak)) as usize);
        println!(
            "  {:>5.2}s {c:>6} {cum:>6} {}{bar}",
            i as f64 * BUCKET.as_secs_f64(),
            if f > 0 {
                format!("!{f:<5} ")
            } else {
                " ".repeat(7)
            }
        );
    }
}

fn write_json(results: &[StormResult], args: &Args) -> anyhow::Result<()> {
    let runs: Vec<serde_json::Value> = results
        .iter()
        .map(|r| {
            let s = &r.new_lat;
            let fails = |m: &BTreeMap<Fail, u64>| {
                m.iter()
                    .map(|(k, v)| (k.key().to_owned(), json!(v)))
                    .collect::<serde_json::Map<_, _>>()
            };
            json!({
                "agents": r.n,
                "enroll_s": r.enroll_s,
                "connected": r.connected,
                "first_connect_s": r.connect_s,
                "load_average": [r.load.0, r.load.1],
                "down_ms": r.down_ms,
                "from_restart_s": {
                    "listening": r.listening_s,
                    "first_back": r.first_back_s,
                    "all_back": r.all_back_s,
                    "pre_kill_alert_at_all": r.pre_all_s,
                    "new_alert_at_all": r.new_all_s,
                },
                "target_s": TARGET.as_secs_f64(),
                "target_met": r.new_all_s.is_some_and(|s| s <= TARGET.as_secs_f64()),
                "back": r.back,
                "bucket_ms": BUCKET.as_millis() as u64,
                "sessions_per_bucket": r.curve,
                "failed_tries_per_bucket": r.fail_curve,
                "failed_tries_while_down": fails(&r.fails_down),
                "failed_tries_after_restart": fails(&r.fails_up),
                "sessions_after_restart": r.sessions_after,
                "sessions_lost_after_restart": r.lost_after,
                "server_handshakes_refused": r.server_handshake_refused,
                "server_handshakes_timed_out": r.server_handshake_timeouts,
                "pre_kill_alert": {
                    "send_rpc_ms": r.pre_rpc_ms,
                    "agents_with_it_at_kill": r.pre_before_kill,
                    "agents_with_it": r.pre_got,
                    "duplicates": r.pre_dups,
                    "server_delivered_count": r.pre_server_delivered,
                },
                "new_alert": {
                    "send_rpc_ms": r.new_rpc_ms,
                    "agents_with_it": r.new_got,
                    "duplicates": r.new_dups,
                    "p50_ms": pct(s, 50.0),
                    "p99_ms": pct(s, 99.0),
                    "max_ms": s.last().copied(),
                },
                "server_cpu_s_until_all_back": r.server_cpu_us as f64 / 1e6,
                "agents_cpu_s_until_all_back": r.agents_cpu_us as f64 / 1e6,
                "server_rss_kib_all_back": r.server_rss_kib,
                "tcp_counters_kill_to_all_back": TCP_COUNTERS
                    .iter()
                    .zip(r.tcp)
                    .map(|(k, v)| ((*k).to_owned(), json!(v)))
                    .collect::<serde_json::Map<_, _>>(),
            })
        })
        .collect();
    let doc = json!({
        "benchmark": "reconnect storm: kill -9 after an accepted alert, restart on the same data dir and port",
        "unix_ms": now_us() / 1000,
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "reconnect_policy": format!("{:?}", Backoff::default()),
        "runs": runs,
    });
    write_json_doc(&args.json, &doc)
}
