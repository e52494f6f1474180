//! Receipt burst (`--receipt-burst`): N agents hold their sessions; each
//! round one alert reaches all of them (the agents here send no DELIVERED
//! receipt when it arrives), then every agent sends a DISPLAYED receipt for
//! it at the same moment: a watch channel released once, read by N agent
//! tasks. Each agent measures from sending its receipt to the
//! `ReceiptAck` that names it; the round's throughput is N over the time
//! from the release to the last acknowledgement.
//!
//! The server's disk syncs during each burst are counted with
//! `perf stat -e syscalls:sys_enter_fdatasync,… -p PID` (kernel counters,
//! switched on at the release and off after the last acknowledgement; no
//! tracing of the process), with its syscalls and context switches; without
//! a usable `perf` they are left out and said so. `--perf-out FILE` also
//! records a profile of the server during the measured bursts. Afterwards every round's alert is
//! looked up through the admin API, once live and once after the server was
//! killed with SIGKILL and started again on the same data dir, so the
//! counts come from what was on disk.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use futures::StreamExt;
use herald_proto::pb;
use herald_proto::pb::{agent_message, server_message};
use herald_proto::tls::{ClientIdentity, ServerTrust};
use herald_tests::{Admin, to_all};
use serde_json::json;
use tokio::sync::{mpsc, watch};

use super::storm::{loadavg, log_dir, spawn_server};
use super::{
    ACK_TIMEOUT, Args, CONNECT_TIMEOUT, Enrolled, EventLog, ROUND_TIMEOUT, alert_seq, enrolled,
    heartbeat, heartbeats, login, median, now_us, open_session, pct, perf_record_args, sys, until,
    write_json_doc,
};

/// The targets.
const TARGET_RATE: f64 = 20_000.0;
const TARGET_P99_MS: f64 = 50.0;

#[derive(Debug)]
enum Ev {
    /// An agent received alert `key`.
    Rx { key: u64 },
    /// An agent's DISPLAYED receipt for `key` was acknowledged: sent
    /// `sent_after` the release, acknowledged `lat` after it was sent.
    Acked {
        key: u64,
        sent_after: Duration,
        lat: Duration,
        at: Instant,
    },
    /// The released alert had not reached this agent.
    NoDelivery,
    /// A session ended.
    Lost,
}

/// What is released: the alert to acknowledge, when, and over how long a
/// window the agents spread their receipts (zero: all at once).
#[derive(Clone, Copy, Debug)]
struct Release {
    key: u64,
    at: Instant,
    spread: Duration,
}

/// One agent: its own TLS connection and client certificate, one session.
/// Returns once welcomed; the session then runs in a task until `stop`.
/// With a spread, agent `idx` of `n` sends its receipt `spread · idx / n`
/// after the release.
#[allow(clippy::too_many_arguments)]
async fn agent(
    idx: u32,
    n: usize,
    url: Arc<str>,
    ca: Arc<str>,
    id: ClientIdentity,
    ev: mpsc::UnboundedSender<Ev>,
    mut release: watch::Receiver<Release>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let cfg = herald_proto::tls::client_config(&ServerTrust::CaPem(ca.to_string()), Some(&id))?;
    let (mut inbound, mut writer) = open_session(&url, cfg, idx).await?;
    release.borrow_and_update();
    tokio::spawn(async move {
        let mut hb = heartbeats(idx);
        // Alerts received, by key: (item id, seq).
        let mut got: HashMap<u64, (String, u64)> = HashMap::new();
        // Receipts sent and not yet acknowledged, by item id.
        let mut waiting: HashMap<String, (u64, Instant, Duration)> = HashMap::new();
        // A released receipt waiting for this agent's turn in the spread.
        let mut due: Option<(Release, tokio::time::Instant)> = None;
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                _ = hb.tick() => {
                    let _ = writer.send(&heartbeat()).await;
                }
                r = release.changed() => {
                    if r.is_err() {
                        break;
                    }
                    let rel = *release.borrow_and_update();
                    let offset = rel.spread.mul_f64(f64::from(idx) / n.max(1) as f64);
                    due = Some((rel, tokio::time::Instant::from_std(rel.at + offset)));
                }
                () = async {
                    match due {
                        Some((_, at)) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => {
                    let Some((rel, _)) = due.take() else { continue };
                    let (key, released) = (rel.key, rel.at);
                    let Some((item_id, seq)) = got.remove(&key) else {
                        let _ = ev.send(Ev::NoDelivery);
                        continue;
                    };
                    got.retain(|k, _| *k > key);
                    let sent = Instant::now();
                    waiting.insert(item_id.clone(), (key, sent, sent.duration_since(released)));
                    let receipt = pb::Receipt {
                        item_id,
                        seq,
                        state: pb::DeliveryState::Displayed as i32,
                        at_unix_ms: now_us() / 1000,
                        user: "bench".into(),
                    };
                    if writer.send(&pb::AgentMessage {
                        kind: Some(agent_message::Kind::Receipt(receipt)),
                    }).await.is_err() {
                        let _ = ev.send(Ev::Lost);
                        break;
                    }
                }
                m = inbound.message() => match m {
                    Ok(Some(pb::ServerMessage { kind: Some(server_message::Kind::Delivery(d)) })) => {
                        if let Some(key) = alert_seq(&d.item_id) {
                            got.insert(key, (d.item_id, d.seq));
                            let _ = ev.send(Ev::Rx { key });
                        }
                    }
                    Ok(Some(pb::ServerMessage { kind: Some(server_message::Kind::ReceiptAck(a)) })) => {
                        let now = Instant::now();
                        for k in a.receipts {
                            if k.state != pb::DeliveryState::Displayed as i32 {
                                continue;
                            }
                            if let Some((key, sent, sent_after)) = waiting.remove(&k.item_id) {
                                let _ = ev.send(Ev::Acked {
                                    key,
                                    sent_after,
                                    lat: now.duration_since(sent),
                                    at: now,
                                });
                            }
                        }
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => {
                        if !*stop.borrow() {
                            let _ = ev.send(Ev::Lost);
                        }
                        break;
                    }
                },
            }
        }
        drop((writer, inbound));
    });
    Ok(())
}

// ---------------------------------------------------------------------------
// What the agents reported

#[derive(Default)]
struct Log {
    rx: HashMap<u64, usize>,
    /// Per key: (sent after the release, ack latency, ack instant).
    acked: HashMap<u64, Vec<(Duration, Duration, Instant)>>,
    no_delivery: usize,
    lost: usize,
}

impl Log {
    fn apply(&mut self, ev: Ev) {
        match ev {
            Ev::Rx { key } => *self.rx.entry(key).or_default() += 1,
            Ev::Acked {
                key,
                sent_after,
                lat,
                at,
            } => self
                .acked
                .entry(key)
                .or_default()
                .push((sent_after, lat, at)),
            Ev::NoDelivery => self.no_delivery += 1,
            Ev::Lost => self.lost += 1,
        }
    }

    fn acks(&self, key: u64) -> usize {
        self.acked.get(&key).map_or(0, Vec::len)
    }
}

impl EventLog for Log {
    type Ev = Ev;

    fn apply(&mut self, ev: Ev) {
        Log::apply(self, ev);
    }
}

// ---------------------------------------------------------------------------
// The server seen through perf

/// What `perf stat` counts in the server during one burst.
const EVENTS: [&str; 5] = [
    "syscalls:sys_enter_fdatasync",
    "syscalls:sys_enter_fsync",
    "syscalls:sys_enter_sync_file_range",
    "raw_syscalls:sys_enter",
    "context-switches",
];

/// Counts of `EVENTS` in the server during one burst.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    fdatasync: u64,
    fsync: u64,
    sync_file_range: u64,
    syscalls: u64,
    switches: u64,
}

impl Counts {
    /// Disk syncs: fdatasync and fsync (sync_file_range only starts
    /// write-back; it does not make anything durable).
    fn syncs(&self) -> u64 {
        self.fdatasync + self.fsync
    }
}

/// Whether `perf stat` can count `EVENTS` here; the reason when it cannot.
fn perf_usable() -> Result<(), String> {
    let out = std::process::Command::new("perf")
        .args(["stat", "-x", ",", "-e", &EVENTS.join(","), "--", "true"])
        .output()
        .map_err(|e| format!("cannot run perf: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "perf stat failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A `perf` process (`stat` or `record`) attached to the server with its
/// events off, switched on and off through perf's control FIFO; perf
/// acknowledges each switch, so a burst is released only once counting is
/// on.
struct Perf {
    child: std::process::Child,
    ctl: std::fs::File,
    acks: mpsc::UnboundedReceiver<()>,
    _fifos: tempfile::TempDir,
}

impl Perf {
    /// `perf SUBCOMMAND ARGS -D -1 --control fifo:CTL,ACK -p PID`.
    fn attach(subcommand: &str, args: &[String], pid: u32) -> anyhow::Result<Perf> {
        let fifos = tempfile::tempdir()?;
        let (ctl_path, ack_path) = (fifos.path().join("ctl"), fifos.path().join("ack"));
        let made = std::process::Command::new("mkfifo")
            .arg(&ctl_path)
            .arg(&ack_path)
            .status()
            .context("mkfifo")?;
        anyhow::ensure!(made.success(), "mkfifo failed");
        let child = std::process::Command::new("perf")
            .arg(subcommand)
            .args(args)
            .args(["-D", "-1", "--control"])
            .arg(format!(
                "fifo:{},{}",
                ctl_path.display(),
                ack_path.display()
            ))
            .args(["-p", &pid.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .with_context(|| format!("perf {subcommand}"))?;
        // Read and write: opening never waits for perf.
        let ctl = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&ctl_path)?;
        // perf opens the acknowledgement FIFO for writing and waits for this
        // reader; the thread ends when perf exits.
        let (ack_tx, acks) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            let Ok(f) = std::fs::File::open(&ack_path) else {
                return;
            };
            for line in std::io::BufReader::new(f).lines() {
                if line.is_err() || ack_tx.send(()).is_err() {
                    return;
                }
            }
        });
        Ok(Perf {
            child,
            ctl,
            acks,
            _fifos: fifos,
        })
    }

    /// Sends `enable` or `disable` and waits for perf's acknowledgement.
    async fn switch(&mut self, command: &str) -> anyhow::Result<()> {
        use std::io::Write;
        writeln!(self.ctl, "{command}")?;
        tokio::time::timeout(Duration::from_secs(10), self.acks.recv())
            .await
            .with_context(|| format!("perf did not acknowledge {command:?}"))?
            .ok_or_else(|| anyhow!("perf exited"))
    }

    /// Ends perf (SIGINT, as Ctrl-C would: it writes its output then).
    fn finish(mut self) -> anyhow::Result<()> {
        sys::interrupt(self.child.id());
        self.child.wait()?;
        Ok(())
    }
}

/// Switches a `perf stat` off, ends it and reads what it counted.
async fn stop_stat(mut p: Perf, out: &Path) -> anyhow::Result<Counts> {
    p.switch("disable").await?;
    p.finish()?;
    parse_stat(&std::fs::read_to_string(out)?)
}

/// `perf stat` output (`-x ,`) → counts of `EVENTS`.
fn parse_stat(text: &str) -> anyhow::Result<Counts> {
    let mut c = Counts::default();
    let mut found = 0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split(',').collect();
        let [count, _, event, ..] = f.as_slice() else {
            continue;
        };
        // "<not counted>": the event never ran, i.e. nothing happened.
        let v: u64 = if count.starts_with('<') {
            0
        } else {
            count
                .parse()
                .with_context(|| format!("perf stat counted {count:?} for {event}"))?
        };
        let slot = match *event {
            "syscalls:sys_enter_fdatasync" => &mut c.fdatasync,
            "syscalls:sys_enter_fsync" => &mut c.fsync,
            "syscalls:sys_enter_sync_file_range" => &mut c.sync_file_range,
            "raw_syscalls:sys_enter" => &mut c.syscalls,
            "context-switches" => &mut c.switches,
            _ => continue,
        };
        *slot = v;
        found += 1;
    }
    anyhow::ensure!(found == EVENTS.len(), "perf stat wrote no counts: {text:?}");
    Ok(c)
}

// ---------------------------------------------------------------------------
// One N

struct Round {
    alert_id: String,
    measured: bool,
    acked: usize,
    /// Ack latencies, ms, sorted.
    lat: Vec<f64>,
    /// Release → the last agent sent its receipt, ms.
    last_sent_ms: f64,
    /// Release → the last ack, s.
    span_s: f64,
    counts: Option<Counts>,
    server_cpu_us: u64,
    /// CPU of the bench process (the agents) over the burst, µs.
    agents_cpu_us: u64,
}

impl Round {
    fn rate(&self) -> f64 {
        self.acked as f64 / self.span_s
    }

    fn per_receipt(&self, v: u64) -> f64 {
        v as f64 / self.acked.max(1) as f64
    }
}

struct BurstResult {
    n: usize,
    enroll_s: f64,
    connected: usize,
    connect_s: f64,
    rounds: Vec<Round>,
    perf: Result<(), String>,
    /// Per round alert: computers counted displayed, live and after the
    /// server was killed and started again.
    displayed_live: Vec<Option<u32>>,
    displayed_restarted: Vec<Option<u32>>,
    no_delivery: usize,
    lost: usize,
    load: (f64, f64),
}

impl BurstResult {
    fn measured(&self) -> impl Iterator<Item = &Round> {
        self.rounds.iter().filter(|r| r.measured)
    }
}

pub(super) async fn run(args: &Args) -> anyhow::Result<()> {
    println!(
        "receipt burst: agents {:?}, {} rounds (+{} warm-up), receipts {}, server {}, {} CPUs, \
         fd limit {}",
        args.agents,
        args.rounds,
        args.warmup,
        if args.receipt_spread.is_zero() {
            "all at the same moment".to_owned()
        } else {
            format!("spread over {} ms", args.receipt_spread.as_millis())
        },
        args.server_bin.display(),
        sys::cpus(),
        sys::nofile()
    );
    let mut results = Vec::new();
    for &n in &args.agents {
        results.push(burst_n(args, n).await?);
        print_results(&results);
        write_json(&results, args)?;
    }
    Ok(())
}

async fn burst_n(args: &Args, n: usize) -> anyhow::Result<BurstResult> {
    println!("\n== receipt burst, N = {n} agents ==");
    let load0 = loadavg();
    let perf = perf_usable();
    if let Err(why) = &perf {
        println!("  ! disk syncs are not counted: {why}");
    }
    let Enrolled {
        server,
        ca,
        ids,
        enroll_s,
        dir,
    } = enrolled(args, n).await?;
    let mut server = server;

    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let (release_tx, release_rx) = watch::channel(Release {
        key: 0,
        at: Instant::now(),
        spread: Duration::ZERO,
    });
    let mut log = Log::default();
    let t = Instant::now();
    let (url, ca_arc): (Arc<str>, Arc<str>) = (server.url.as_str().into(), ca.as_str().into());
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(ids.iter().cloned().enumerate())
        .map(|(i, id)| {
            let fut = agent(
                i as u32,
                n,
                url.clone(),
                ca_arc.clone(),
                id,
                ev_tx.clone(),
                release_rx.clone(),
                stop_rx.clone(),
            );
            async move {
                tokio::time::timeout(CONNECT_TIMEOUT, fut)
                    .await
                    .unwrap_or_else(|_| Err(anyhow!("connect timed out")))
            }
        })
        .buffer_unordered(args.connect_parallel.max(1))
        .collect()
        .await;
    drop(ev_tx);
    let connect_s = t.elapsed().as_secs_f64();
    let connected = results.iter().filter(|r| r.is_ok()).count();
    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
        println!(
            "  ! {} of {n} agents did not connect; first error: {e:#}",
            n - connected
        );
    }
    println!(
        "  {connected}/{n} sessions up in {connect_s:.1} s (server pid {})",
        server.pid()
    );

    let admin = login(&server.url, &ca, Duration::from_secs(20)).await?;
    let stat_out = log_dir()?.join(format!("receipts-{n}-perf-stat.csv"));
    // With --perf-out, a profile of the server during the measured bursts
    // only (recording is switched on at each release and off after the
    // last acknowledgement).
    let mut profile = match (&args.perf_out, &perf) {
        (Some(out), Ok(())) => Some(Perf::attach(
            "record",
            &perf_record_args(out),
            server.pid(),
        )?),
        (Some(_), Err(why)) => {
            println!("  ! --perf-out: no profile ({why})");
            None
        }
        (None, _) => None,
    };
    let stat_args: Vec<String> = [
        "-x",
        ",",
        "-e",
        &EVENTS.join(","),
        "-o",
        &stat_out.display().to_string(),
    ]
    .map(str::to_owned)
    .to_vec();
    let mut rounds = Vec::new();
    for r in 0..args.warmup + args.rounds {
        let measured = r >= args.warmup;
        let sent = admin
            .send_alert(vec![to_all()], &format!("Receipt burst round {r}"), 0)
            .await
            .map_err(|s| anyhow!("send_alert: {}", s.message()))?;
        let key =
            alert_seq(&sent.alert_id).ok_or_else(|| anyhow!("odd alert id {}", sent.alert_id))?;
        if !until(&mut ev_rx, &mut log, ROUND_TIMEOUT, |l| {
            l.rx.get(&key).copied().unwrap_or(0) >= connected
        })
        .await
        {
            println!(
                "    ! round {r}: {} of {connected} agents received {} within {ROUND_TIMEOUT:?}",
                log.rx.get(&key).copied().unwrap_or(0),
                sent.alert_id
            );
        }
        // Let the fan-out's traffic settle.
        tokio::time::sleep(args.pause).await;
        let stat = match &perf {
            Ok(()) => {
                let mut p = Perf::attach("stat", &stat_args, server.pid())?;
                p.switch("enable").await?;
                Some(p)
            }
            Err(_) => None,
        };
        if measured && let Some(p) = profile.as_mut() {
            p.switch("enable").await?;
        }
        let cpu0 = (sys::cpu_us(server.pid()), sys::cpu_us(std::process::id()));
        let released = Instant::now();
        release_tx.send_replace(Release {
            key,
            at: released,
            spread: args.receipt_spread,
        });
        let all = until(&mut ev_rx, &mut log, ACK_TIMEOUT, |l| {
            l.acks(key) >= connected
        })
        .await;
        let server_cpu_us = sys::cpu_us(server.pid()).saturating_sub(cpu0.0);
        let agents_cpu_us = sys::cpu_us(std::process::id()).saturating_sub(cpu0.1);
        if measured && let Some(p) = profile.as_mut() {
            p.switch("disable").await?;
        }
        // Anything the server does right after the last ack counts too.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let counts = match stat {
            Some(p) => match stop_stat(p, &stat_out).await {
                Ok(c) => Some(c),
                Err(e) => {
                    println!("    ! round {r}: {e:#}");
                    None
                }
            },
            None => None,
        };
        let acked = log.acked.remove(&key).unwrap_or_default();
        let mut lat: Vec<f64> = acked.iter().map(|a| a.1.as_secs_f64() * 1000.0).collect();
        lat.sort_by(f64::total_cmp);
        let last = acked.iter().map(|a| a.2).max().unwrap_or(released);
        let round = Round {
            alert_id: sent.alert_id.clone(),
            measured,
            acked: acked.len(),
            lat,
            last_sent_ms: acked
                .iter()
                .map(|a| a.0.as_secs_f64() * 1000.0)
                .fold(0.0, f64::max),
            span_s: last.duration_since(released).as_secs_f64().max(1e-6),
            counts,
            server_cpu_us,
            agents_cpu_us,
        };
        report_round(r, &round);
        if !all {
            println!(
                "    ! round {r}: only {} of {connected} receipts acknowledged within {ACK_TIMEOUT:?}",
                round.acked
            );
        }
        rounds.push(round);
        tokio::time::sleep(args.pause).await;
    }
    until(&mut ev_rx, &mut log, Duration::from_millis(100), |_| false).await;
    if let Some(p) = profile {
        p.finish()?;
        if let Some(out) = &args.perf_out {
            println!("  perf data of the measured bursts: {}", out.display());
        }
    }

    // Durability: the server's counts, live and from disk after kill -9.
    let ids: Vec<String> = rounds.iter().map(|r| r.alert_id.clone()).collect();
    let displayed_live = displayed(&admin, &ids).await;
    let _ = stop_tx.send(true);
    drop(admin);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = server.child.kill();
    let _ = server.child.wait();
    let logfile = log_dir()?.join(format!("receipts-{n}-restart.log"));
    let (bin, data) = (args.server_bin.clone(), dir.path().to_owned());
    let restarted = tokio::task::spawn_blocking(move || {
        spawn_server(&bin, &data, "127.0.0.1:0", "warn", &logfile)
    })
    .await??;
    drop(std::mem::replace(&mut server, restarted));
    let admin = login(&server.url, &ca, Duration::from_secs(30)).await?;
    let displayed_restarted = displayed(&admin, &ids).await;
    drop(admin);
    drop(server);
    drop(dir);
    Ok(BurstResult {
        n,
        enroll_s,
        connected,
        connect_s,
        rounds,
        perf,
        displayed_live,
        displayed_restarted,
        no_delivery: log.no_delivery,
        lost: log.lost,
        load: (load0, loadavg()),
    })
}

/// Computers the server counts as displayed (or dismissed) per alert.
async fn displayed(admin: &Admin, ids: &[String]) -> Vec<Option<u32>> {
    let mut out = Vec::new();
    for id in ids {
        let mut c = admin.client.clone();
        let st = c
            .get_alert_status(admin.req(pb::GetAlertStatusRequest {
                alert_id: id.clone(),
                computers: false,
            }))
            .await;
        out.push(
            st.ok()
                .and_then(|s| s.into_inner().counts.map(|c| c.displayed + c.dismissed)),
        );
    }
    out
}

// ---------------------------------------------------------------------------
// Report

fn report_round(r: usize, round: &Round) {
    let counts = round.counts.map_or_else(
        || "syncs not counted".into(),
        |c| {
            format!(
                "{} fdatasync, {} fsync, {} sync_file_range, {} syscalls, {} context switches",
                c.fdatasync, c.fsync, c.sync_file_range, c.syscalls, c.switches
            )
        },
    );
    println!(
        "    {} {r:2}: {} acks in {:.0} ms = {:.0}/s; ack p50 {:.1} p99 {:.1} max {:.1} ms; \
         last receipt sent {:.0} ms after the release; server {counts}; CPU per receipt: \
         server {:.0} µs, agents {:.0} µs",
        if round.measured { "round " } else { "warmup" },
        round.acked,
        round.span_s * 1000.0,
        round.rate(),
        pct(&round.lat, 50.0),
        pct(&round.lat, 99.0),
        round.lat.last().copied().unwrap_or(f64::NAN),
        round.last_sent_ms,
        round.per_receipt(round.server_cpu_us),
        round.per_receipt(round.agents_cpu_us),
    );
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

fn print_results(results: &[BurstResult]) {
    println!("\n=== Receipt burst: every agent sends a DISPLAYED receipt at once ===");
    for b in results {
        let m: Vec<&Round> = b.measured().collect();
        println!(
            "\nN = {} (enroll {:.1} s, connect {:.1} s, {} connected; {} measured rounds; \
             load average {:.2} → {:.2})",
            b.n,
            b.enroll_s,
            b.connect_s,
            b.connected,
            m.len(),
            b.load.0,
            b.load.1
        );
        println!(
            "{:>5} {:>6} {:>7} {:>10} {:>7} {:>7} {:>7} {:>9} {:>6} {:>10} {:>9} {:>9} {:>10} {:>10}",
            "round",
            "acks",
            "span ms",
            "receipts/s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "last sent",
            "syncs",
            "rcpts/sync",
            "sysc/rcpt",
            "csw/rcpt",
            "srv µs/rc",
            "agt µs/rc"
        );
        for (i, r) in m.iter().enumerate() {
            let n = r.acked.max(1) as f64;
            let c = |f: &dyn Fn(&Counts) -> f64, prec: usize| {
                r.counts
                    .map_or_else(|| "–".into(), |c| format!("{:.prec$}", f(&c)))
            };
            println!(
                "{:>5} {:>6} {:>7.0} {:>10.0} {:>7.1} {:>7.1} {:>7.1} {:>9.0} {:>6} {:>10} {:>9} {:>9} {:>10.1} {:>10.1}",
                i + 1,
                r.acked,
                r.span_s * 1000.0,
                r.rate(),
                pct(&r.lat, 50.0),
                pct(&r.lat, 99.0),
                r.lat.last().copied().unwrap_or(f64::NAN),
                r.last_sent_ms,
                c(&|c| c.syncs() as f64, 0),
                c(&|c| n / c.syncs().max(1) as f64, 0),
                c(&|c| c.syscalls as f64 / n, 1),
                c(&|c| c.switches as f64 / n, 2),
                r.per_receipt(r.server_cpu_us),
                r.per_receipt(r.agents_cpu_us),
            );
        }
        let med = |f: fn(&Round) -> f64| median(&m.iter().map(|r| f(r)).collect::<Vec<_>>());
        let rate = med(Round::rate);
        let p99 = med(|r| pct(&r.lat, 99.0));
        println!(
            "median: {rate:.0} receipts/s (target ≥ {TARGET_RATE:.0}: {}); ack p50 {:.1} ms, \
             p99 {p99:.1} ms (target ≤ {TARGET_P99_MS:.0}: {}), max {:.1} ms; last receipt sent \
             {:.0} ms after the release",
            met(rate >= TARGET_RATE),
            med(|r| pct(&r.lat, 50.0)),
            met(p99 <= TARGET_P99_MS),
            med(|r| r.lat.last().copied().unwrap_or(f64::NAN)),
            med(|r| r.last_sent_ms),
        );
        let syncs: Vec<(u64, usize)> = m
            .iter()
            .filter_map(|r| r.counts.map(|c| (c.syncs(), r.acked)))
            .collect();
        match &b.perf {
            Ok(()) if !syncs.is_empty() => {
                let most = syncs.iter().map(|s| s.0).max().unwrap_or(0);
                let fewest_receipts = syncs.iter().map(|s| s.1).min().unwrap_or(0);
                println!(
                    "disk syncs (fdatasync + fsync) per burst: {} for {} receipts each: {}",
                    syncs
                        .iter()
                        .map(|s| s.0.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    fewest_receipts,
                    if (most as usize) < fewest_receipts {
                        "never one per receipt"
                    } else {
                        "as many syncs as receipts or more"
                    }
                );
            }
            Ok(()) => println!("disk syncs: perf gave no counts"),
            Err(why) => println!("disk syncs: not counted ({why})"),
        }
        let full = |v: &[Option<u32>]| {
            v.iter()
                .filter(|c| c.is_some_and(|c| c as usize >= b.connected))
                .count()
        };
        let counts = b
            .displayed_restarted
            .iter()
            .map(|c| c.map_or_else(|| "?".into(), |c| c.to_string()))
            .collect::<Vec<_>>()
            .join(", ");
        println!(
            "durability: alerts with every computer counted displayed: {}/{} live, {}/{} after \
             kill -9 and restart (counts after restart: {counts}); agents without the released \
             alert {}, sessions lost {}",
            full(&b.displayed_live),
            b.rounds.len(),
            full(&b.displayed_restarted),
            b.rounds.len(),
            b.no_delivery,
            b.lost
        );
    }
}

fn write_json(results: &[BurstResult], args: &Args) -> anyhow::Result<()> {
    let runs: Vec<serde_json::Value> = results
        .iter()
        .map(|b| {
            let m: Vec<&Round> = b.measured().collect();
            let med = |f: fn(&Round) -> f64| median(&m.iter().map(|r| f(r)).collect::<Vec<_>>());
            let mut all: Vec<f64> = m.iter().flat_map(|r| r.lat.iter().copied()).collect();
            all.sort_by(f64::total_cmp);
            json!({
                "agents": b.n,
                "enroll_s": b.enroll_s,
                "connected": b.connected,
                "connect_s": b.connect_s,
                "load_average": [b.load.0, b.load.1],
                "median_receipts_per_s": med(Round::rate),
                "median_ack_p50_ms": med(|r| pct(&r.lat, 50.0)),
                "median_ack_p99_ms": med(|r| pct(&r.lat, 99.0)),
                "median_ack_max_ms": med(|r| r.lat.last().copied().unwrap_or(f64::NAN)),
                "ack_p99_all_samples_ms": pct(&all, 99.0),
                "targets": { "receipts_per_s": TARGET_RATE, "ack_p99_ms": TARGET_P99_MS },
                "syncs_counted": b.perf.is_ok(),
                "syncs_not_counted_because": b.perf.as_ref().err(),
                "rounds": b.rounds.iter().map(|r| json!({
                    "alert_id": r.alert_id,
                    "measured": r.measured,
                    "acked": r.acked,
                    "span_ms": r.span_s * 1000.0,
                    "receipts_per_s": r.rate(),
                    "ack_p50_ms": pct(&r.lat, 50.0),
                    "ack_p99_ms": pct(&r.lat, 99.0),
                    "ack_max_ms": r.lat.last().copied(),
                    "last_receipt_sent_after_release_ms": r.last_sent_ms,
                    "fdatasync": r.counts.map(|c| c.fdatasync),
                    "fsync": r.counts.map(|c| c.fsync),
                    "sync_file_range": r.counts.map(|c| c.sync_file_range),
                    "syscalls": r.counts.map(|c| c.syscalls),
                    "context_switches": r.counts.map(|c| c.switches),
                    "server_cpu_us_per_receipt": r.per_receipt(r.server_cpu_us),
                    "agents_cpu_us_per_receipt": r.per_receipt(r.agents_cpu_us),
                })).collect::<Vec<_>>(),
                "displayed_live": b.displayed_live,
                "displayed_after_kill_and_restart": b.displayed_restarted,
                "agents_without_released_alert": b.no_delivery,
                "sessions_lost": b.lost,
            })
        })
        .collect();
    let doc = json!({
        "benchmark": "receipt burst: N agents send a DISPLAYED receipt at once",
        "unix_ms": now_us() / 1000,
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "rounds": args.rounds,
        "warmup_rounds": args.warmup,
        "receipt_spread_ms": args.receipt_spread.as_millis() as u64,
        "perf_stat_events": EVENTS,
        "runs": runs,
    });
    write_json_doc(&args.json, &doc)
}
