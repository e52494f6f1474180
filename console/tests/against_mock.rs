//! The client library and the heraldctl binary against a stand-in
//! `AdminService` served over TLS 1.3 on 127.0.0.1:0 with a throwaway CA.
//! The stand-in checks the bearer token like the real server and refuses
//! some calls, so the tests see what an admin would see.

// Test helpers outside `#[test]` functions may panic too: a failing setup is
// a failing test.
#![allow(clippy::unwrap_used)]

use std::io;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::task::{Context, Poll};

use herald_console::{AdminClient, ClientError, ServerTrust, pb, resolve_unit};
use herald_proto::pb::admin_service_server::{AdminService, AdminServiceServer};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Server;
use tonic::transport::server::Connected;
use tonic::{Request, Response, Status};

const TOKEN: &str = "tok-1";
const ENROLL_TOKEN: &str = "HERALD-ENROLL-abc";

// ------------------------------------------------------------- the stand-in

struct Mock;

fn check_token<T>(request: &Request<T>) -> Result<(), Status> {
    let header = request
        .metadata()
        .get(herald_proto::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if header == Some(&format!("Bearer {TOKEN}")) {
        Ok(())
    } else {
        Err(Status::unauthenticated(format!(
            "no valid session (got {header:?})"
        )))
    }
}

fn unit(id: &str, parent: &str, name: &str, path: &str) -> pb::OrgUnit {
    pb::OrgUnit {
        id: id.into(),
        parent_id: parent.into(),
        name: name.into(),
        path: path.into(),
        created_unix_ms: 1,
    }
}

fn computer(revoked: bool) -> pb::Computer {
    pb::Computer {
        id: "c1".into(),
        org_unit_id: "u-b3".into(),
        org_unit_path: "/Branches/Branch 3".into(),
        hostname: "pc-01".into(),
        os: "Debian 13".into(),
        agent_version: "0.1.0".into(),
        online: !revoked,
        last_seen_unix_ms: 1,
        logged_in_users: vec!["anna".into()],
        revoked,
        ..Default::default()
    }
}

fn root_admin() -> pb::AdminInfo {
    pb::AdminInfo {
        name: "root".into(),
        grants: vec![
            pb::Grant {
                capability: pb::Capability::SendQuickAlerts as i32,
                scope: Some(pb::Scope {
                    organisation: false,
                    unit_ids: vec!["u-b3".into()],
                }),
            },
            pb::Grant {
                capability: pb::Capability::ViewReports as i32,
                scope: Some(pb::Scope {
                    organisation: true,
                    unit_ids: vec![],
                }),
            },
        ],
        created_unix_ms: 1,
        created_by: String::new(),
    }
}

fn alert_counts(queued: u32, delivered: u32, displayed: u32, cancelled: u32) -> pb::AlertCounts {
    pb::AlertCounts {
        queued,
        delivered,
        displayed,
        dismissed: 0,
        expired: 0,
        cancelled,
    }
}

fn alert_summary(cancelled: bool) -> pb::AlertSummary {
    pb::AlertSummary {
        id: "al-7".into(),
        title: "Evacuate".into(),
        body: "Evacuate now.\nUse the stairs.".into(),
        priority: pb::Priority::Critical as i32,
        sender: "root".into(),
        sender_unit_path: "/Branches/Branch 3".into(),
        accepted_unix_ms: 1_740_818_096_000,
        // 2100-01-01.
        expires_unix_ms: 4_102_444_800_000,
        cancelled,
        computers: 2,
        targets: vec!["/Branches/Branch 3".into()],
    }
}

fn alert_status(counts: pb::AlertCounts, settled: bool) -> pb::AlertStatus {
    pb::AlertStatus {
        alert: Some(alert_summary(counts.cancelled > 0)),
        counts: Some(counts),
        units: vec![pb::UnitAlertCounts {
            org_unit_id: "u-b3".into(),
            org_unit_path: "/Branches/Branch 3".into(),
            counts: Some(counts),
        }],
        computers: vec![],
        settled,
    }
}

/// Implements the listed calls and answers every other one with
/// `unimplemented`. (A macro, so `async_trait` sees the expanded methods.)
macro_rules! mock_service {
    (
        implemented { $($items:tt)* }
        unimplemented { $($name:ident($req:ty) -> $resp:ty;)* }
    ) => {
        #[tonic::async_trait]
        impl AdminService for Mock {
            $($items)*
            $(
                async fn $name(&self, _: Request<$req>) -> Result<Response<$resp>, Status> {
                    Err(Status::unimplemented(stringify!($name)))
                }
            )*
        }
    };
}

mock_service! {
    implemented {
        async fn login(
            &self,
            request: Request<pb::LoginRequest>,
        ) -> Result<Response<pb::LoginResponse>, Status> {
            let req = request.into_inner();
            if req.name != "root" || req.password != "pw" {
                return Err(Status::unauthenticated("wrong name or password"));
            }
            Ok(Response::new(pb::LoginResponse {
                session_token: TOKEN.into(),
                // 2100-01-01.
                expires_unix_ms: 4_102_444_800_000,
                admin: Some(root_admin()),
            }))
        }

        async fn logout(
            &self,
            request: Request<pb::LogoutRequest>,
        ) -> Result<Response<pb::LogoutResponse>, Status> {
            check_token(&request)?;
            Ok(Response::new(pb::LogoutResponse {}))
        }

        async fn who_am_i(
            &self,
            request: Request<pb::WhoAmIRequest>,
        ) -> Result<Response<pb::AdminInfo>, Status> {
            check_token(&request)?;
            Ok(Response::new(root_admin()))
        }

        async fn list_org_units(
            &self,
            request: Request<pb::ListOrgUnitsRequest>,
        ) -> Result<Response<pb::ListOrgUnitsResponse>, Status> {
            check_token(&request)?;
            Ok(Response::new(pb::ListOrgUnitsResponse {
                units: vec![
                    unit("root", "", "Library", "/"),
                    unit("u-br", "root", "Branches", "/Branches"),
                    unit("u-b3", "u-br", "Branch 3", "/Branches/Branch 3"),
                ],
            }))
        }

        async fn create_org_unit(
            &self,
            request: Request<pb::CreateOrgUnitRequest>,
        ) -> Result<Response<pb::OrgUnit>, Status> {
            check_token(&request)?;
            Err(Status::permission_denied("you may not manage org units under /Branches"))
        }

        async fn create_enrollment_token(
            &self,
            request: Request<pb::CreateEnrollmentTokenRequest>,
        ) -> Result<Response<pb::CreateEnrollmentTokenResponse>, Status> {
            check_token(&request)?;
            let req = request.into_inner();
            if req.org_unit_id != "u-b3" || req.valid_for_secs != 86_400 {
                return Err(Status::invalid_argument(format!("unexpected request {req:?}")));
            }
            Ok(Response::new(pb::CreateEnrollmentTokenResponse {
                token: ENROLL_TOKEN.into(),
                info: Some(pb::EnrollmentToken {
                    id: "t1".into(),
                    org_unit_id: req.org_unit_id,
                    org_unit_path: "/Branches/Branch 3".into(),
                    max_uses: req.max_uses.max(1),
                    expires_unix_ms: 4_102_444_800_000,
                    ..Default::default()
                }),
            }))
        }

        async fn list_computers(
            &self,
            request: Request<pb::ListComputersRequest>,
        ) -> Result<Response<pb::ListComputersResponse>, Status> {
            check_token(&request)?;
            Ok(Response::new(pb::ListComputersResponse {
                computers: vec![computer(false)],
            }))
        }

        async fn revoke_computer(
            &self,
            request: Request<pb::RevokeComputerRequest>,
        ) -> Result<Response<pb::Computer>, Status> {
            check_token(&request)?;
            Ok(Response::new(computer(true)))
        }

        async fn send_alert(
            &self,
            request: Request<pb::SendAlertRequest>,
        ) -> Result<Response<pb::SendAlertResponse>, Status> {
            check_token(&request)?;
            let req = request.into_inner();
            let unit = |id: &str| pb::AlertTarget {
                target: Some(pb::alert_target::Target::OrgUnitId(id.into())),
            };
            let pc = |id: &str| pb::AlertTarget {
                target: Some(pb::alert_target::Target::ComputerId(id.into())),
            };
            if req.targets.contains(&pc("c-hr")) {
                return Err(Status::permission_denied(
                    "you need the \"send quick alerts\" permission on /HR",
                ));
            }
            let expected = req.targets == [unit("u-b3"), pc("c1")]
                && req.title == "Evacuate"
                && req.body == "Evacuate now.\nUse the stairs."
                && req.priority == pb::Priority::Critical as i32
                // --until "2100-01-01 00:00"
                && req.expires_unix_ms == 4_102_444_800_000;
            if !expected {
                return Err(Status::invalid_argument(format!("unexpected request {req:?}")));
            }
            Ok(Response::new(pb::SendAlertResponse {
                alert_id: "al-7".into(),
                computers: 2,
                accepted_unix_ms: 1_740_818_096_000,
                expires_unix_ms: req.expires_unix_ms,
            }))
        }

        async fn list_alerts(
            &self,
            request: Request<pb::ListAlertsRequest>,
        ) -> Result<Response<pb::ListAlertsResponse>, Status> {
            check_token(&request)?;
            Ok(Response::new(pb::ListAlertsResponse {
                alerts: vec![alert_status(alert_counts(0, 1, 1, 0), false)],
            }))
        }

        async fn get_alert_status(
            &self,
            request: Request<pb::GetAlertStatusRequest>,
        ) -> Result<Response<pb::AlertStatus>, Status> {
            check_token(&request)?;
            let req = request.into_inner();
            if req.alert_id != "al-7" {
                return Err(Status::not_found(format!("no alert with id {:?}", req.alert_id)));
            }
            let mut status = alert_status(alert_counts(0, 1, 1, 0), false);
            if req.computers {
                status.computers = vec![pb::ComputerDelivery {
                    computer_id: "c1".into(),
                    hostname: "pc-01".into(),
                    org_unit_path: "/Branches/Branch 3".into(),
                    state: pb::DeliveryState::Displayed as i32,
                    delivered_unix_ms: 1_740_818_097_000,
                    displayed_unix_ms: 1_740_818_098_000,
                    dismissed_unix_ms: 0,
                    user: "anna".into(),
                    online: true,
                }];
            }
            Ok(Response::new(status))
        }

        type WatchAlertStream = ReceiverStream<Result<pb::AlertStatus, Status>>;
        type WatchPresenceStream = ReceiverStream<Result<pb::PresenceSummary, Status>>;
        type WatchAlertListStream = ReceiverStream<Result<pb::AlertSummary, Status>>;

        async fn watch_alert_list(
            &self,
            _: Request<pb::WatchAlertListRequest>,
        ) -> Result<Response<Self::WatchAlertListStream>, Status> {
            Err(Status::unimplemented("watch_alert_list"))
        }

        async fn watch_presence(
            &self,
            _: Request<pb::WatchPresenceRequest>,
        ) -> Result<Response<Self::WatchPresenceStream>, Status> {
            Err(Status::unimplemented("watch_presence"))
        }

        /// al-7: three changes, one repeat in between, then settled.
        /// al-8: ends before settling, as when the server shuts down.
        async fn watch_alert(
            &self,
            request: Request<pb::GetAlertStatusRequest>,
        ) -> Result<Response<Self::WatchAlertStream>, Status> {
            check_token(&request)?;
            let id = request.into_inner().alert_id;
            let steps = match id.as_str() {
                "al-7" => vec![
                    alert_status(alert_counts(2, 0, 0, 0), false),
                    alert_status(alert_counts(0, 2, 0, 0), false),
                    alert_status(alert_counts(0, 2, 0, 0), false),
                    alert_status(alert_counts(0, 0, 1, 1), true),
                ],
                "al-8" => vec![alert_status(alert_counts(2, 0, 0, 0), false)],
                _ => return Err(Status::not_found(format!("no alert with id {id:?}"))),
            };
            let (tx, rx) = tokio::sync::mpsc::channel(8);
            for step in steps {
                tx.send(Ok(step)).await.unwrap();
            }
            Ok(Response::new(ReceiverStream::new(rx)))
        }

        async fn cancel_alert(
            &self,
            request: Request<pb::CancelAlertRequest>,
        ) -> Result<Response<pb::AlertSummary>, Status> {
            check_token(&request)?;
            Ok(Response::new(alert_summary(true)))
        }
    }
    unimplemented {
        preview_alert_audience(pb::PreviewAlertAudienceRequest) -> pb::PreviewAlertAudienceResponse;
        change_own_password(pb::ChangeOwnPasswordRequest) -> pb::ChangeOwnPasswordResponse;
        rename_org_unit(pb::RenameOrgUnitRequest) -> pb::OrgUnit;
        move_org_unit(pb::MoveOrgUnitRequest) -> pb::OrgUnit;
        delete_org_unit(pb::DeleteOrgUnitRequest) -> pb::DeleteOrgUnitResponse;
        list_enrollment_tokens(pb::ListEnrollmentTokensRequest) -> pb::ListEnrollmentTokensResponse;
        revoke_enrollment_token(pb::RevokeEnrollmentTokenRequest) -> pb::EnrollmentToken;
        get_computer(pb::GetComputerRequest) -> pb::Computer;
        move_computer(pb::MoveComputerRequest) -> pb::Computer;
        list_admins(pb::ListAdminsRequest) -> pb::ListAdminsResponse;
        create_admin(pb::CreateAdminRequest) -> pb::AdminInfo;
        delete_admin(pb::DeleteAdminRequest) -> pb::DeleteAdminResponse;
        reset_admin_password(pb::ResetAdminPasswordRequest) -> pb::ResetAdminPasswordResponse;
        add_grant(pb::AddGrantRequest) -> pb::AdminInfo;
        revoke_grant(pb::RevokeGrantRequest) -> pb::AdminInfo;
        list_audit_log(pb::ListAuditLogRequest) -> pb::ListAuditLogResponse;
    }
}

// ------------------------------------------------------------ TLS plumbing

/// A server-side TLS stream tonic can serve (tonic's own TLS is off).
struct Tls(tokio_rustls::server::TlsStream<TcpStream>);

impl Connected for Tls {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for Tls {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tls {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

/// A running stand-in: its address, and the CA that signed its certificate.
struct Fixture {
    server: String,
    ca_pem: String,
    ca_fingerprint: String,
    home: tempfile::TempDir,
}

impl Fixture {
    fn ca_file(&self) -> std::path::PathBuf {
        self.home.path().join("ca.pem")
    }
}

async fn start() -> Fixture {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();

    let mut config = rustls::ServerConfig::builder_with_provider(herald_proto::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![server_cert.der().clone(), ca.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        )
        .unwrap();
    config.alpn_protocols = vec![herald_proto::tls::ALPN_H2.to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Tls>>(16);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                // A failed handshake (e.g. a client that distrusts us) is
                // that client's problem only.
                if let Ok(tls) = acceptor.accept(tcp).await {
                    let _ = tx.send(Ok(Tls(tls))).await;
                }
            });
        }
    });
    tokio::spawn(
        Server::builder()
            .add_service(AdminServiceServer::new(Mock))
            .serve_with_incoming(ReceiverStream::new(rx)),
    );

    let home = tempfile::tempdir().unwrap();
    let fixture = Fixture {
        server: addr.to_string(),
        ca_pem: ca.pem(),
        ca_fingerprint: herald_proto::tls::fingerprint(ca.der()),
        home,
    };
    std::fs::write(fixture.ca_file(), &fixture.ca_pem).unwrap();
    fixture
}

// ------------------------------------------------------------------ library

#[tokio::test]
async fn login_stores_the_token_and_sends_it() {
    let fx = start().await;
    let mut client = AdminClient::connect(&fx.server, ServerTrust::CaPem(fx.ca_pem.clone()))
        .await
        .unwrap();
    assert_eq!(client.token(), None);

    let err = client.whoami().await.unwrap_err();
    assert_eq!(err.code(), Some(tonic::Code::Unauthenticated));
    assert_eq!(
        err.to_string(),
        "not authenticated: no valid session (got None)"
    );

    let err = client.login("root", "wrong").await.unwrap_err();
    assert_eq!(err.to_string(), "not authenticated: wrong name or password");
    assert_eq!(client.token(), None);

    client.login("root", "pw").await.unwrap();
    assert_eq!(client.token(), Some(TOKEN));
    assert_eq!(client.whoami().await.unwrap().name, "root");

    // A client made from a saved token, trusting by fingerprint, works the same.
    let saved = AdminClient::connect(
        &fx.server,
        ServerTrust::Fingerprint(fx.ca_fingerprint.clone()),
    )
    .await
    .unwrap()
    .with_token(TOKEN.to_owned());
    let units = saved.units().await.unwrap();
    assert_eq!(
        resolve_unit(&units, "/Branches/Branch 3").unwrap().id,
        "u-b3"
    );
    assert_eq!(saved.unit("Branches").await.unwrap().id, "u-br");
    assert!(matches!(
        saved.unit("/Nowhere").await,
        Err(ClientError::Invalid(m)) if m.starts_with("no org unit \"/Nowhere\": known units are /,")
    ));

    let err = saved
        .rpc()
        .create_org_unit(pb::CreateOrgUnitRequest {
            parent_id: "u-br".into(),
            name: "Branch 4".into(),
        })
        .await
        .map_err(ClientError::from)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "permission denied: you may not manage org units under /Branches"
    );
}

#[tokio::test]
async fn untrusted_or_unreachable_servers_are_connect_errors() {
    let fx = start().await;
    let wrong = ServerTrust::Fingerprint("ab".repeat(32));
    let err = AdminClient::connect(&fx.server, wrong).await.unwrap_err();
    assert!(matches!(&err, ClientError::Connect { .. }), "{err:?}");
    assert!(err.to_string().contains("fingerprint"), "{err}");

    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    };
    let err = AdminClient::connect(
        &format!("127.0.0.1:{port}"),
        ServerTrust::CaPem(fx.ca_pem.clone()),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("cannot connect to 127.0.0.1:{port}: ")),
        "{err}"
    );
}

// ---------------------------------------------------------------- heraldctl

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs heraldctl with the fixture's session directory and `stdin`.
async fn heraldctl(fx: &Fixture, args: &[&str], stdin: &str) -> Run {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_heraldctl"))
        .args(args)
        .env("HERALD_CTL_HOME", fx.home.path())
        .env_remove("HERALD_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    // heraldctl may exit without reading its input (e.g. on a usage error).
    let _ = input.write_all(stdin.as_bytes()).await;
    drop(input);
    let output = child.wait_with_output().await.unwrap();
    Run {
        ok: output.status.success(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heraldctl_session_and_commands() {
    let fx = start().await;
    let ca_file = fx.ca_file().display().to_string();

    let run = heraldctl(&fx, &["whoami"], "").await;
    assert!(!run.ok);
    assert_eq!(
        run.stderr,
        "error: not logged in: run heraldctl login --server URL --ca-file FILE --user NAME\n"
    );

    let login = [
        "login",
        "--server",
        &fx.server,
        "--ca-file",
        &ca_file,
        "--user",
        "root",
        "--password-stdin",
    ];
    let run = heraldctl(&fx, &login, "nope\n").await;
    assert!(!run.ok);
    assert_eq!(
        run.stderr,
        "error: not authenticated: wrong name or password\n"
    );

    let run = heraldctl(&fx, &login, "pw\n").await;
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        format!(
            "logged in as root to {} (session valid until 2100-01-01 00:00:00 UTC)\n",
            fx.server
        )
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(fx.home.path().join("session.toml")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }

    let run = heraldctl(&fx, &["whoami"], "").await;
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("send-quick-alerts  /Branches/Branch 3\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("view-reports       organisation\n"),
        "{}",
        run.stdout
    );

    let run = heraldctl(&fx, &["--json", "org", "list"], "").await;
    assert!(run.ok, "{}", run.stderr);
    let units: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(units[2]["path"], "/Branches/Branch 3");

    let run = heraldctl(&fx, &["org", "list"], "").await;
    assert_eq!(
        run.stdout,
        "UNIT          ID\n/ (Library)   root\n  Branches    u-br\n    Branch 3  u-b3\n"
    );

    let run = heraldctl(
        &fx,
        &[
            "token",
            "create",
            "--unit",
            "Branches/Branch 3",
            "--valid-for",
            "24h",
        ],
        "",
    )
    .await;
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(run.stdout, format!("{ENROLL_TOKEN}\n"));
    assert!(
        run.stderr
            .contains("enrollment token t1 for /Branches/Branch 3"),
        "{}",
        run.stderr
    );

    let run = heraldctl(&fx, &["computers", "list"], "").await;
    assert!(run.ok, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", run.stdout);
    assert!(lines[0].starts_with("ID  HOSTNAME  UNIT"), "{}", run.stdout);
    assert!(
        lines[1].contains("pc-01") && lines[1].contains("online"),
        "{}",
        run.stdout
    );

    let run = heraldctl(&fx, &["computers", "revoke", "c1"], "y\n").await;
    assert!(!run.ok);
    assert_eq!(
        run.stderr,
        "error: not revoking computer c1 without confirmation: pass --yes\n"
    );
    let run = heraldctl(&fx, &["--json", "computers", "revoke", "c1", "--yes"], "").await;
    assert!(run.ok, "{}", run.stderr);
    let revoked: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(revoked["revoked"], true);

    let run = heraldctl(&fx, &["org", "create", "/Branches", "Branch 4"], "").await;
    assert!(!run.ok);
    assert_eq!(
        run.stderr,
        "error: permission denied: you may not manage org units under /Branches\n"
    );
    let run = heraldctl(&fx, &["org", "create", "/Nope", "X"], "").await;
    assert!(!run.ok);
    assert!(
        run.stderr
            .starts_with("error: no org unit \"/Nope\": known units are /, "),
        "{}",
        run.stderr
    );

    let run = heraldctl(&fx, &["logout"], "").await;
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(run.stdout, format!("logged out root from {}\n", fx.server));
    assert!(!fx.home.path().join("session.toml").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heraldctl_login_by_fingerprint_and_expired_session() {
    let fx = start().await;
    // Users paste fingerprints in all kinds of shapes.
    let pasted: Vec<String> = fx
        .ca_fingerprint
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|pair| String::from_utf8_lossy(pair).into_owned())
        .collect();
    let pasted = pasted.join(":");
    let args = [
        "login",
        "--server",
        &fx.server,
        "--fingerprint",
        &pasted,
        "-u",
        "root",
        "--password-stdin",
    ];
    let run = heraldctl(&fx, &args, "pw\r\n").await;
    assert!(run.ok, "{}", run.stderr);

    let wrong = "00".repeat(32);
    let args = [
        "login",
        "--server",
        &fx.server,
        "--fingerprint",
        &wrong,
        "-u",
        "root",
        "--password-stdin",
    ];
    let run = heraldctl(&fx, &args, "pw\n").await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains("does not match the fingerprint"),
        "{}",
        run.stderr
    );

    // Logging in again needs neither trust nor user: the saved session has both.
    let run = heraldctl(&fx, &["login", "--password-stdin"], "pw\n").await;
    assert!(run.ok, "{}", run.stderr);

    let path = fx.home.path().join("session.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains(&format!("fingerprint = \"{}\"", fx.ca_fingerprint)),
        "{text}"
    );
    let expired = text.replace("4102444800000", "1000");
    std::fs::write(&path, expired).unwrap();
    let run = heraldctl(&fx, &["whoami"], "").await;
    assert!(!run.ok);
    assert_eq!(
        run.stderr,
        format!(
            "error: not logged in: the session of root expired at 1970-01-01 00:00:01 UTC; \
             run heraldctl login --server {} --fingerprint {} --user root\n",
            fx.server, fx.ca_fingerprint
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heraldctl_alerts() {
    let fx = start().await;
    let ca_file = fx.ca_file().display().to_string();
    let login = [
        "login",
        "--server",
        &fx.server,
        "--ca-file",
        &ca_file,
        "--user",
        "root",
        "--password-stdin",
    ];
    assert!(heraldctl(&fx, &login, "pw\n").await.ok);

    // The body from stdin; the id alone on stdout, the note on stderr.
    let send = [
        "alert",
        "send",
        "--to",
        "org:/Branches/Branch 3",
        "--to",
        "computer:c1",
        "--title",
        "Evacuate",
        "--body",
        "-",
        "--priority",
        "critical",
        "--until",
        "2100-01-01 00:00",
    ];
    let run = heraldctl(&fx, &send, "Evacuate now.\nUse the stairs.\n").await;
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(run.stdout, "al-7\n");
    assert_eq!(
        run.stderr,
        "alert al-7 accepted for 2 computers, expires 2100-01-01 00:00 UTC\n"
    );

    let mut json_send = vec!["--json"];
    json_send.extend_from_slice(&send);
    let run = heraldctl(&fx, &json_send, "Evacuate now.\nUse the stairs.").await;
    assert!(run.ok, "{}", run.stderr);
    let sent: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(sent["alert_id"], "al-7");
    assert_eq!(sent["computers"], 2);
    assert_eq!(sent["expires_unix_ms"], 4_102_444_800_000_i64);

    // The server's refusal is shown as it is.
    let run = heraldctl(
        &fx,
        &[
            "alert",
            "send",
            "--to",
            "computer:c-hr",
            "--title",
            "t",
            "--body",
            "b",
        ],
        "",
    )
    .await;
    assert!(!run.ok);
    assert_eq!(
        run.stderr,
        "error: permission denied: you need the \"send quick alerts\" permission on /HR\n"
    );
    // Unknown units are caught before sending.
    let run = heraldctl(
        &fx,
        &[
            "alert",
            "send",
            "--to",
            "org:/Nope",
            "--title",
            "t",
            "--body",
            "b",
        ],
        "",
    )
    .await;
    assert!(!run.ok);
    assert!(
        run.stderr
            .starts_with("error: no org unit \"/Nope\": known units are /, "),
        "{}",
        run.stderr
    );
    let run = heraldctl(
        &fx,
        &[
            "alert",
            "send",
            "--to",
            "all",
            "--title",
            "t",
            "--body",
            "b",
            "--until",
            "2001-01-01 00:00",
        ],
        "",
    )
    .await;
    assert!(!run.ok);
    assert!(run.stderr.contains("is in the past"), "{}", run.stderr);

    let run = heraldctl(&fx, &["alert", "status", "al-7", "--computers"], "").await;
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stdout.contains(
            "UNIT                QUEUED  DELIVERED  DISPLAYED  DISMISSED  EXPIRED  CANCELLED\n\
             /Branches/Branch 3  0       1          1          0          0        0\n\
             total               0       1          1          0          0        0\n"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(
            "pc-01     /Branches/Branch 3  displayed  2025-03-01 08:34:58 UTC  anna  yes     c1\n"
        ),
        "{}",
        run.stdout
    );
    let run = heraldctl(&fx, &["alert", "status", "al-9"], "").await;
    assert!(!run.ok);
    assert_eq!(run.stderr, "error: not found: no alert with id \"al-9\"\n");

    // One line per change (the repeat is not shown), then exit 0.
    let run = heraldctl(&fx, &["alert", "watch", "al-7"], "").await;
    assert!(run.ok, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    let after_time: Vec<&str> = lines.iter().map(|l| &l[10..]).collect();
    assert_eq!(
        after_time,
        [
            "queued 2  delivered 0  displayed 0  dismissed 0  expired 0  cancelled 0",
            "queued 0  delivered 2  displayed 0  dismissed 0  expired 0  cancelled 0",
            "queued 0  delivered 0  displayed 1  dismissed 0  expired 0  cancelled 1",
        ]
    );
    assert!(run.stderr.contains("al-7 has settled"), "{}", run.stderr);
    let run = heraldctl(&fx, &["--json", "alert", "watch", "al-7"], "").await;
    assert!(run.ok, "{}", run.stderr);
    let objects: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objects.len(), 3, "{}", run.stdout);
    assert_eq!(objects[2]["settled"], true);
    assert_eq!(objects[2]["counts"]["cancelled"], 1);
    let run = heraldctl(&fx, &["alert", "watch", "al-8"], "").await;
    assert!(!run.ok);
    assert!(
        run.stderr
            .contains("ended the watch of al-8 before it settled"),
        "{}",
        run.stderr
    );

    let run = heraldctl(&fx, &["alert", "list"], "").await;
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "ID    SENT                     PRIORITY  TITLE     SENDER  COMPUTERS  DISPLAYED  STATE\n\
         al-7  2025-03-01 08:34:56 UTC  critical  Evacuate  root    2          1/2        active\n"
    );

    let run = heraldctl(&fx, &["alert", "cancel", "al-7"], "").await;
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stdout.starts_with("cancelled alert al-7: withdrawn"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("state:     cancelled\n"),
        "{}",
        run.stdout
    );
    let run = heraldctl(&fx, &["--json", "alert", "cancel", "al-7"], "").await;
    let summary: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(summary["cancelled"], true);
    assert_eq!(summary["priority"], "critical");
}
