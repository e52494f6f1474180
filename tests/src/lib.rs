//! Test harness: real Herald servers (in-process or as processes) on
//! loopback port 0 with temp data dirs, real agents, and an admin client.
//! Readiness is polled, never slept for.

pub mod ctl;
pub mod desktop;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use herald_proto::pb;
use herald_proto::pb::admin_service_client::AdminServiceClient;
use herald_proto::tls::{ClientIdentity, ServerTrust};
use tokio::sync::{oneshot, watch};
use tonic::transport::Channel;

pub const PASSWORD: &str = "correct horse battery staple";

/// Polls `check` every 20 ms until it returns `Some`, or panics after `limit`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A server running inside the test process.
pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub addr: SocketAddr,
    pub ca_pem: String,
    pub fingerprint: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(herald_server::config::Config::default()).await
    }

    pub async fn start_with(config: herald_server::config::Config) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let report = herald_server::init(herald_server::InitOptions {
            data_dir: dir.path().to_owned(),
            names: vec![],
            org_name: "City Library".into(),
            admin_name: "admin".into(),
            admin_password: Some(PASSWORD.into()),
        })
        .await
        .expect("init");
        let ca_pem = std::fs::read_to_string(&report.ca_file).expect("ca file");
        let mut s = TestServer {
            dir,
            addr: "127.0.0.1:0".parse().expect("addr"),
            ca_pem,
            fingerprint: report.ca_fingerprint,
            stop: None,
            task: None,
        };
        s.launch(config, "127.0.0.1:0".parse().expect("addr")).await;
        s
    }

    async fn launch(&mut self, config: herald_server::config::Config, addr: SocketAddr) {
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
        self.addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let data_dir = self.dir.path().to_owned();
        self.task = Some(tokio::spawn(async move {
            herald_server::run(&data_dir, config, listener, async {
                let _ = rx.await;
            })
            .await
            .expect("server run");
        }));
        self.stop = Some(tx);
        let url = self.url();
        let ca = self.ca_pem.clone();
        wait_for("server readiness", Duration::from_secs(20), || {
            let url = url.clone();
            let ca = ca.clone();
            async move { Admin::login(&url, &ca, "admin", PASSWORD).await.ok() }
        })
        .await;
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub async fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(20), task)
                .await
                .expect("server stops within 20 s")
                .expect("server task");
        }
    }

    /// Stops the server and starts it again on the same port and data dir.
    pub async fn restart(&mut self) {
        self.stop().await;
        let addr = self.addr;
        self.launch(herald_server::config::Config::default(), addr)
            .await;
    }

    pub async fn admin(&self) -> Admin {
        Admin::login(&self.url(), &self.ca_pem, "admin", PASSWORD)
            .await
            .expect("admin login")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// An admin session: a channel plus the session token.
#[derive(Clone)]
pub struct Admin {
    pub client: AdminServiceClient<Channel>,
    pub token: String,
}

impl Admin {
    pub async fn connect(url: &str, ca_pem: &str) -> anyhow::Result<AdminServiceClient<Channel>> {
        let cfg = herald_proto::tls::client_config(&ServerTrust::CaPem(ca_pem.to_owned()), None)?;
        Ok(AdminServiceClient::new(
            herald_proto::tls::connect(url, cfg).await?,
        ))
    }

    pub async fn login(
        url: &str,
        ca_pem: &str,
        name: &str,
        password: &str,
    ) -> anyhow::Result<Admin> {
        let mut client = Self::connect(url, ca_pem).await?;
        let resp = client
            .login(pb::LoginRequest {
                name: name.into(),
                password: password.into(),
            })
            .await?
            .into_inner();
        Ok(Admin {
            client,
            token: resp.session_token,
        })
    }

    /// A request carrying this admin's session token.
    pub fn req<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        let value = format!("Bearer {}", self.token)
            .parse()
            .expect("ascii token");
        r.metadata_mut().insert(herald_proto::AUTHORIZATION, value);
        r
    }

    pub async fn units(&self) -> Vec<pb::OrgUnit> {
        let mut c = self.client.clone();
        c.list_org_units(self.req(pb::ListOrgUnitsRequest {}))
            .await
            .expect("list units")
            .into_inner()
            .units
    }

    pub async fn root(&self) -> pb::OrgUnit {
        self.units()
            .await
            .into_iter()
            .find(|u| u.parent_id.is_empty())
            .expect("root unit")
    }

    pub async fn create_unit(&self, parent: &str, name: &str) -> pb::OrgUnit {
        let mut c = self.client.clone();
        c.create_org_unit(self.req(pb::CreateOrgUnitRequest {
            parent_id: parent.into(),
            name: name.into(),
        }))
        .await
        .expect("create unit")
        .into_inner()
    }

    pub async fn token(&self, unit: &str, uses: u32) -> String {
        let mut c = self.client.clone();
        c.create_enrollment_token(self.req(pb::CreateEnrollmentTokenRequest {
            org_unit_id: unit.into(),
            valid_for_secs: 3600,
            max_uses: uses,
        }))
        .await
        .expect("create token")
        .into_inner()
        .token
    }

    pub async fn computers(&self) -> Vec<pb::Computer> {
        let mut c = self.client.clone();
        c.list_computers(self.req(pb::ListComputersRequest::default()))
            .await
            .expect("list computers")
            .into_inner()
            .computers
    }

    pub async fn send_alert(
        &self,
        targets: Vec<pb::AlertTarget>,
        title: &str,
        expires_unix_ms: i64,
    ) -> Result<pb::SendAlertResponse, tonic::Status> {
        let mut c = self.client.clone();
        c.send_alert(self.req(pb::SendAlertRequest {
            targets,
            title: title.into(),
            body: format!("{title}: details at https://status.example.org"),
            priority: pb::Priority::Warning as i32,
            expires_unix_ms,
        }))
        .await
        .map(tonic::Response::into_inner)
    }

    pub async fn alert_status(&self, id: &str) -> pb::AlertStatus {
        let mut c = self.client.clone();
        c.get_alert_status(self.req(pb::GetAlertStatusRequest {
            alert_id: id.into(),
            computers: true,
        }))
        .await
        .expect("alert status")
        .into_inner()
    }

    /// Polls the alert's counts until `pred` holds.
    pub async fn wait_counts(
        &self,
        id: &str,
        what: &str,
        pred: impl Fn(&pb::AlertCounts) -> bool,
    ) -> pb::AlertStatus {
        let start = Instant::now();
        loop {
            let st = self.alert_status(id).await;
            if st.counts.as_ref().is_some_and(&pred) {
                return st;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "timed out waiting for {what}: {:?}",
                st.counts
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn computer(&self, id: &str) -> pb::Computer {
        let mut c = self.client.clone();
        c.get_computer(self.req(pb::GetComputerRequest { id: id.into() }))
            .await
            .expect("get computer")
            .into_inner()
    }
}

/// An enrolled agent whose service runs inside the test process.
pub struct TestAgent {
    pub state_dir: tempfile::TempDir,
    pub computer_id: String,
    pub socket: PathBuf,
    pub status: watch::Receiver<herald_agent::service::ServiceStatus>,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

pub fn fast_backoff() -> herald_agent::backoff::Backoff {
    herald_agent::backoff::Backoff {
        base: Duration::from_millis(200),
        cap: Duration::from_secs(2),
    }
}

impl TestAgent {
    pub async fn enroll(url: &str, token: &str) -> TestAgent {
        let state_dir = tempfile::tempdir().expect("temp dir");
        let id = herald_agent::enroll::enroll(url, token, state_dir.path(), false)
            .await
            .expect("enroll");
        Self::start(state_dir, id.info.computer_id, fast_backoff())
    }

    pub fn start(
        state_dir: tempfile::TempDir,
        computer_id: String,
        backoff: herald_agent::backoff::Backoff,
    ) -> TestAgent {
        let socket = state_dir.path().join("session.sock");
        let (stop, stop_rx) = watch::channel(false);
        let (status_tx, status) = watch::channel(Default::default());
        let opts = herald_agent::service::ServiceOptions {
            state_dir: state_dir.path().to_owned(),
            socket: Some(socket.clone()),
            backoff,
        };
        let task = tokio::spawn(async move {
            herald_agent::service::run(opts, stop_rx, status_tx)
                .await
                .expect("agent service");
        });
        TestAgent {
            state_dir,
            computer_id,
            socket,
            status,
            stop,
            task: Some(task),
        }
    }

    pub async fn wait_connected(&mut self, limit: Duration) {
        let status = self.status.clone();
        wait_for("agent connected", limit, || {
            let s = status.borrow().clone();
            async move { s.connected.then_some(()) }
        })
        .await;
    }

    pub fn identity(&self) -> ClientIdentity {
        herald_agent::state::StateDir::new(self.state_dir.path())
            .load()
            .expect("identity")
            .client
    }

    pub async fn stop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }

    /// Stops the agent service and opens a framed session with its
    /// identity in its place, for tests of agents that misbehave (fall
    /// silent, stop reading). Returns the session and its welcome.
    pub async fn take_over_session(
        &mut self,
        server: &TestServer,
    ) -> (
        herald_proto::framed::SessionReader,
        herald_proto::framed::SessionWriter,
        pb::Welcome,
    ) {
        self.stop().await;
        let cfg = herald_proto::tls::client_config(
            &ServerTrust::CaPem(server.ca_pem.clone()),
            Some(&self.identity()),
        )
        .expect("client config");
        let (mut inbound, writer) =
            herald_proto::framed::connect(&server.url(), cfg, pb::Hello::default())
                .await
                .expect("framed session");
        match inbound
            .message()
            .await
            .expect("welcome")
            .and_then(|m| m.kind)
        {
            Some(pb::server_message::Kind::Welcome(w)) => (inbound, writer, w),
            other => panic!("expected a welcome, got {other:?}"),
        }
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Path of a workspace binary, built next to the test executable
/// (`cargo test --workspace` / `cargo nextest run --workspace` build them).
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is missing: run the tests with --workspace so the binaries are built",
        p.display()
    );
    p
}

/// A `herald-server` process on a data dir, killed when dropped.
pub struct ServerProcess {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
}

impl ServerProcess {
    /// `herald-server init` on a new data dir, with the test password.
    pub fn init(data_dir: &Path) -> String {
        let out = std::process::Command::new(bin_path("herald-server"))
            .args(["init", "--data-dir"])
            .arg(data_dir)
            .env("HERALD_BOOTSTRAP_PASSWORD", PASSWORD)
            .output()
            .expect("run herald-server init");
        assert!(
            out.status.success(),
            "init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read_to_string(data_dir.join("tls/ca.pem")).expect("ca.pem")
    }

    /// Starts `herald-server run` on `listen` and waits for its "listening on".
    pub fn start(data_dir: &Path, listen: &str) -> ServerProcess {
        use std::io::BufRead;
        let mut child = std::process::Command::new(bin_path("herald-server"))
            .args(["run", "--listen", listen, "--data-dir"])
            .arg(data_dir)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn herald-server");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read stdout");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .expect("address");
        ServerProcess {
            child,
            addr,
            data_dir: data_dir.to_owned(),
        }
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// `cap` on one unit's subtree.
pub fn grant(cap: pb::Capability, unit: &str) -> pb::Grant {
    pb::Grant {
        capability: cap as i32,
        scope: Some(pb::Scope {
            organisation: false,
            unit_ids: vec![unit.into()],
        }),
    }
}

pub fn to_unit(id: &str) -> pb::AlertTarget {
    pb::AlertTarget {
        target: Some(pb::alert_target::Target::OrgUnitId(id.into())),
    }
}

pub fn to_all() -> pb::AlertTarget {
    pb::AlertTarget {
        target: Some(pb::alert_target::Target::All(true)),
    }
}

/// The OS user running the tests (name, uid): who the agent service sees
/// on its local socket.
pub fn current_user() -> (String, u32) {
    let id = |flag: &str| {
        let out = std::process::Command::new("id")
            .arg(flag)
            .output()
            .expect("run id");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    (id("-un"), id("-u").parse().expect("numeric uid"))
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A logged-in person, as the agent service sees one: a session part on the
/// local socket that reports each alert it receives as displayed.
pub struct FakeUser {
    pub client: herald_agent::session::SessionClient,
    /// Alert ids in the order they arrived.
    pub received: Vec<String>,
}

impl FakeUser {
    pub async fn connect(socket: &Path) -> FakeUser {
        let client = wait_for("session part connects", Duration::from_secs(10), || async {
            herald_agent::session::SessionClient::connect(socket)
                .await
                .ok()
        })
        .await;
        FakeUser {
            client,
            received: Vec::new(),
        }
    }

    /// Waits for the next alert and, if `display`, reports it displayed.
    pub async fn next_alert(&mut self, display: bool) -> herald_agent::items::LocalAlert {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(20), self.client.next())
                .await
                .expect("an alert within 20 s")
                .expect("service connection open");
            if let herald_agent::local::ToSession::Alert(a) = msg {
                self.received.push(a.id.clone());
                if display {
                    self.client
                        .send(&herald_agent::local::FromSession::Displayed {
                            id: a.id.clone(),
                            at_unix_ms: now_ms(),
                        })
                        .await
                        .expect("report displayed");
                }
                return a;
            }
        }
    }

    pub async fn dismiss(&mut self, id: &str) {
        self.client
            .send(&herald_agent::local::FromSession::Dismissed {
                id: id.into(),
                at_unix_ms: now_ms(),
            })
            .await
            .expect("report dismissed");
    }
}
