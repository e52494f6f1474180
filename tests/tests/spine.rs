//! The secure spine end to end: enrollment, mutual TLS, presence,
//! revocation and reconnects, over real TLS on loopback with real sled stores.

use std::time::{Duration, Instant};

use herald_proto::pb;
use herald_proto::pb::agent_service_client::AgentServiceClient;
use herald_proto::tls::{ClientIdentity, ServerTrust};
use herald_tests::{Admin, TestAgent, TestServer, current_user, now_ms, wait_for};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

async fn agent_client(
    server: &TestServer,
    id: Option<&ClientIdentity>,
) -> anyhow::Result<AgentServiceClient<tonic::transport::Channel>> {
    let cfg = herald_proto::tls::client_config(&ServerTrust::CaPem(server.ca_pem.clone()), id)?;
    Ok(AgentServiceClient::new(
        herald_proto::tls::connect(&server.url(), cfg).await?,
    ))
}

/// Opens a session with `id` and returns the first server message or the error.
async fn try_session(
    server: &TestServer,
    id: Option<&ClientIdentity>,
) -> Result<pb::ServerMessage, String> {
    let mut client = agent_client(server, id).await.map_err(|e| e.to_string())?;
    let hello = pb::AgentMessage {
        kind: Some(pb::agent_message::Kind::Hello(pb::Hello {
            hostname: "probe".into(),
            ..Default::default()
        })),
    };
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(hello).await.map_err(|e| e.to_string())?;
    let resp = client
        .session(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?;
    let mut inbound = resp.into_inner();
    let first = inbound
        .message()
        .await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?;
    drop(tx);
    first.ok_or_else(|| "stream ended".to_string())
}

/// The same as [`try_session`], over a framed session (ALPN
/// herald-session/1), the way the Herald agent connects.
async fn try_framed(
    server: &TestServer,
    id: Option<&ClientIdentity>,
) -> Result<pb::ServerMessage, String> {
    let cfg = herald_proto::tls::client_config(&ServerTrust::CaPem(server.ca_pem.clone()), id)
        .map_err(|e| e.to_string())?;
    let hello = pb::Hello {
        hostname: "probe".into(),
        ..Default::default()
    };
    let (mut inbound, _writer) = herald_proto::framed::connect(&server.url(), cfg, hello)
        .await
        .map_err(|e| e.to_string())?;
    inbound
        .message()
        .await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
        .ok_or_else(|| "stream ended".to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_enroll_into_units_and_show_presence() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let root = admin.root().await;
    assert_eq!(root.path, "/");
    let branches = admin.create_unit(&root.id, "Branches").await;
    let b3 = admin.create_unit(&branches.id, "Branch 3").await;
    let hr = admin.create_unit(&root.id, "HR — Kadry").await;
    assert_eq!(b3.path, "/Branches/Branch 3");

    let t3 = admin.token(&b3.id, 1).await;
    let thr = admin.token(&hr.id, 1).await;
    let mut a1 = TestAgent::enroll(&server.url(), &t3).await;
    let mut a2 = TestAgent::enroll(&server.url(), &thr).await;
    a1.wait_connected(Duration::from_secs(10)).await;
    a2.wait_connected(Duration::from_secs(10)).await;

    // A session part connects; the service names its user from the kernel.
    let session = herald_agent::session::SessionClient::connect(&a1.socket)
        .await
        .expect("session part connects");
    let herald_agent::local::ToSession::Welcome {
        user,
        uid,
        computer_id,
    } = session.welcome.clone()
    else {
        panic!("no welcome")
    };
    let me = current_user();
    assert_eq!((user.as_str(), uid), (me.0.as_str(), me.1));
    assert_eq!(computer_id, a1.computer_id);

    let c1 = wait_for(
        "presence of agent 1 with its user",
        Duration::from_secs(10),
        || {
            let admin = admin.clone();
            let id = a1.computer_id.clone();
            let user = user.clone();
            async move {
                let c = admin.computer(&id).await;
                (c.online && c.logged_in_users == vec![user]).then_some(c)
            }
        },
    )
    .await;
    assert_eq!(c1.org_unit_path, "/Branches/Branch 3");
    assert_eq!(c1.hostname, herald_agent::hostname());
    assert_eq!(c1.agent_version, herald_agent::VERSION);
    assert!(!c1.os.is_empty());
    assert!(c1.last_seen_unix_ms > 0);

    let all = admin.computers().await;
    assert_eq!(all.len(), 2);
    let c2 = all
        .iter()
        .find(|c| c.id == a2.computer_id)
        .expect("agent 2 listed");
    assert!(c2.online);
    assert_eq!(c2.org_unit_path, "/HR — Kadry");

    // Filtering by unit.
    let mut client = admin.client.clone();
    let only_branches = client
        .list_computers(admin.req(pb::ListComputersRequest {
            org_unit_id: branches.id.clone(),
            include_revoked: false,
        }))
        .await
        .expect("list")
        .into_inner()
        .computers;
    assert_eq!(
        only_branches
            .iter()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>(),
        vec![a1.computer_id.as_str()]
    );

    // Stopping an agent shows it offline.
    a2.stop().await;
    wait_for("agent 2 offline", Duration::from_secs(10), || {
        let admin = admin.clone();
        let id = a2.computer_id.clone();
        async move { (!admin.computer(&id).await.online).then_some(()) }
    })
    .await;

    // Enrollment and unit creation are in the audit log.
    let audit = client
        .list_audit_log(admin.req(pb::ListAuditLogRequest::default()))
        .await
        .expect("audit")
        .into_inner()
        .entries;
    let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    for want in [
        "org_unit.create",
        "token.create",
        "computer.enroll",
        "server.init",
    ] {
        assert!(actions.contains(&want), "audit has {want}: {actions:?}");
    }
    assert!(
        audit.windows(2).all(|w| w[0].seq > w[1].seq),
        "newest first"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_refusals() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let root = admin.root().await;
    let unit = admin.create_unit(&root.id, "Branch 1").await;
    let state = tempfile::tempdir().unwrap();

    // A token whose CA fingerprint is not this server's: refused before the
    // token is sent (the TLS handshake fails on the client side).
    let token = admin.token(&unit.id, 5).await;
    let forged = token.replacen(&server.fingerprint, &"ab".repeat(32), 1);
    let err = herald_agent::enroll::enroll(&server.url(), &forged, state.path(), false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("fingerprint"), "{err}");
    let mut c = admin.client.clone();
    let tokens = c
        .list_enrollment_tokens(admin.req(pb::ListEnrollmentTokensRequest {
            include_inactive: true,
        }))
        .await
        .unwrap()
        .into_inner()
        .tokens;
    assert_eq!(
        tokens[0].uses, 0,
        "the forged attempt never reached the server"
    );

    // Over its use count.
    let once = admin.token(&unit.id, 1).await;
    herald_agent::enroll::enroll(&server.url(), &once, state.path(), false)
        .await
        .expect("first use");
    let second = tempfile::tempdir().unwrap();
    let err = herald_agent::enroll::enroll(&server.url(), &once, second.path(), false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("has been used 1 times"), "{err}");

    // Enrolling an enrolled state dir again needs --force.
    let err = herald_agent::enroll::enroll(&server.url(), &token, state.path(), false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--force"), "{err}");

    // Expired.
    let short = c
        .create_enrollment_token(admin.req(pb::CreateEnrollmentTokenRequest {
            org_unit_id: unit.id.clone(),
            valid_for_secs: 1,
            max_uses: 1,
        }))
        .await
        .unwrap()
        .into_inner();
    let expires = short.info.unwrap().expires_unix_ms;
    wait_for("token expiry", Duration::from_secs(5), || async move {
        (now_ms() > expires).then_some(())
    })
    .await;
    let err = herald_agent::enroll::enroll(&server.url(), &short.token, second.path(), false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("expired"), "{err}");

    // Revoked.
    let revoked = c
        .create_enrollment_token(admin.req(pb::CreateEnrollmentTokenRequest {
            org_unit_id: unit.id.clone(),
            valid_for_secs: 600,
            max_uses: 1,
        }))
        .await
        .unwrap()
        .into_inner();
    c.revoke_enrollment_token(admin.req(pb::RevokeEnrollmentTokenRequest {
        id: revoked.info.unwrap().id,
    }))
    .await
    .unwrap();
    let err = herald_agent::enroll::enroll(&server.url(), &revoked.token, second.path(), false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("revoked"), "{err}");

    // Garbage.
    let err = herald_agent::enroll::enroll(&server.url(), "hello", second.path(), false)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("not a Herald enrollment token"),
        "{err}"
    );

    // A CSR that asks to be a CA still gets a plain client certificate.
    let mut req = CertificateParams::new(vec!["evil.example".to_string()]).unwrap();
    req.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    req.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    req.distinguished_name
        .push(DnType::CommonName, "root of all trust");
    let key = KeyPair::generate().unwrap();
    let csr = req.serialize_request(&key).unwrap().pem().unwrap();
    let resp = agent_client(&server, None)
        .await
        .unwrap()
        .enroll(pb::EnrollRequest {
            token: token.clone(),
            csr_pem: csr,
            hostname: "evil".into(),
            os: "x".into(),
            agent_version: "1".into(),
        })
        .await
        .expect("enroll with CA-asking CSR")
        .into_inner();
    let der = herald_proto::tls::certs_from_pem(&resp.certificate_pem)
        .unwrap()
        .remove(0);
    let (is_ca, client_auth, cn) = cert_facts(der.as_ref());
    assert!(!is_ca, "certificate must not be a CA");
    assert!(client_auth, "certificate must be for client auth");
    assert_eq!(
        cn, resp.computer_id,
        "the CN is the server's computer id, not the CSR's"
    );

    // A broken CSR is an invalid argument naming the field.
    let status = agent_client(&server, None)
        .await
        .unwrap()
        .enroll(pb::EnrollRequest {
            token,
            csr_pem: "not a csr".into(),
            hostname: "h".into(),
            os: "x".into(),
            agent_version: "1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("csr_pem"), "{}", status.message());
}

/// (is_ca, client_auth, common name) of a DER certificate.
fn cert_facts(der: &[u8]) -> (bool, bool, String) {
    let (_, cert) = x509_parser::parse_x509_certificate(der).expect("parse cert");
    let client = cert
        .extended_key_usage()
        .ok()
        .flatten()
        .is_some_and(|e| e.value.client_auth);
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .unwrap_or_default()
        .to_owned();
    (cert.is_ca(), client, cn)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_calls_need_a_valid_certificate_and_revocation_cuts_at_once() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let root = admin.root().await;
    let token = admin.token(&root.id, 2).await;
    let mut agent = TestAgent::enroll(&server.url(), &token).await;
    agent.wait_connected(Duration::from_secs(10)).await;

    // No client certificate: the handshake succeeds (enrollment needs that),
    // but the session is refused.
    for err in [
        try_session(&server, None).await.unwrap_err(),
        try_framed(&server, None).await.unwrap_err(),
    ] {
        assert!(
            err.starts_with("Unauthenticated") && err.contains("client certificate is required"),
            "{err}"
        );
    }

    // A certificate from a foreign CA: refused at the handshake.
    let foreign = foreign_identity("c-foreign");
    for err in [
        try_session(&server, Some(&foreign)).await.unwrap_err(),
        try_framed(&server, Some(&foreign)).await.unwrap_err(),
    ] {
        assert!(
            !err.starts_with("Unauthenticated:"),
            "refused by TLS, not by a handler: {err}"
        );
    }

    // An expired certificate signed by the right CA, for a real computer id.
    let expired = expired_identity(&server, &agent.computer_id);
    let err = try_session(&server, Some(&expired)).await.unwrap_err();
    assert!(!err.contains("Welcome"), "{err}");
    let err = try_framed(&server, Some(&expired)).await.unwrap_err();
    assert!(!err.contains("Welcome"), "{err}");

    // The agent's own identity works, either way. (Each new session
    // replaces the one before, the agent's own included; it reconnects.)
    for first in [
        try_session(&server, Some(&agent.identity())).await,
        try_framed(&server, Some(&agent.identity())).await,
    ] {
        let first = first.expect("own identity");
        assert!(matches!(
            first.kind,
            Some(pb::server_message::Kind::Welcome(_))
        ));
    }
    agent.wait_connected(Duration::from_secs(10)).await;

    // Revoke while connected: the live session ends within a second.
    let mut c = admin.client.clone();
    let started = Instant::now();
    c.revoke_computer(admin.req(pb::RevokeComputerRequest {
        id: agent.computer_id.clone(),
    }))
    .await
    .expect("revoke");
    let mut status = agent.status.clone();
    tokio::time::timeout(Duration::from_secs(1), status.wait_for(|s| !s.connected))
        .await
        .expect("session cut within 1 s")
        .expect("status");
    let cut = started.elapsed();
    assert!(cut <= Duration::from_secs(1), "cut after {cut:?}");

    // It cannot come back: the handshake now refuses its certificate.
    let err = try_session(&server, Some(&agent.identity()))
        .await
        .unwrap_err();
    assert!(!err.contains("Welcome"), "{err}");
    // The agent was told why (the framed session's last message), not
    // just cut off.
    wait_for("agent notices revocation", Duration::from_secs(10), || {
        let s = agent.status.borrow().clone();
        async move { (s.revoked && !s.connected).then_some(()) }
    })
    .await;
    let listed = admin.computer(&agent.computer_id).await;
    assert!(listed.revoked && !listed.online);
    // Nor may its revoked computer enroll again through the session path;
    // a new token is needed (and works).
    let again = tempfile::tempdir().unwrap();
    herald_agent::enroll::enroll(&server.url(), &token, again.path(), false)
        .await
        .expect("re-enroll with token");
}

fn foreign_identity(cn: &str) -> ClientIdentity {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "Foreign CA");
    let ca_key = KeyPair::generate().unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, cn);
    leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    ClientIdentity {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

fn expired_identity(server: &TestServer, cn: &str) -> ClientIdentity {
    let tls = server.dir.path().join("tls");
    let ca_pem = std::fs::read_to_string(tls.join("ca.pem")).unwrap();
    let ca_key = KeyPair::from_pem(&std::fs::read_to_string(tls.join("ca.key")).unwrap()).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
    let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, cn);
    leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let now = time::OffsetDateTime::now_utc();
    leaf.not_before = now - time::Duration::days(10);
    leaf.not_after = now - time::Duration::days(1);
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    ClientIdentity {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_restart_agents_reconnect_within_backoff_cap() {
    let mut server = TestServer::start().await;
    let admin = server.admin().await;
    let root = admin.root().await;
    let token = admin.token(&root.id, 20).await;
    let mut agents = Vec::new();
    for _ in 0..8 {
        agents.push(TestAgent::enroll(&server.url(), &token).await);
    }
    for a in &mut agents {
        a.wait_connected(Duration::from_secs(10)).await;
    }
    let before: Vec<u64> = agents.iter().map(|a| a.status.borrow().sessions).collect();
    server.restart().await;
    let cap = herald_tests::fast_backoff().cap;
    for (a, before) in agents.iter_mut().zip(before) {
        let mut st = a.status.clone();
        tokio::time::timeout(
            Duration::from_secs(15),
            st.wait_for(|s| s.connected && s.sessions > before),
        )
        .await
        .expect("agent reconnects after restart")
        .expect("status");
        let longest = a.status.borrow().longest_delay;
        assert!(
            longest <= cap,
            "reconnect delay {longest:?} exceeds the cap {cap:?}"
        );
    }
    let admin = server.admin().await;
    let online = admin.computers().await.iter().filter(|c| c.online).count();
    assert_eq!(online, agents.len());
    let _ = Admin::connect(&server.url(), &server.ca_pem)
        .await
        .expect("admin still reachable");
}

/// A framed session whose agent falls silent is ended by the server after
/// three heartbeat intervals, with the reason as its last frame, and the
/// computer goes offline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_framed_session_is_ended_and_told_why() {
    let config = herald_server::config::Config {
        heartbeat_interval_secs: 1,
        ..Default::default()
    };
    let server = TestServer::start_with(config).await;
    let admin = server.admin().await;
    let root = admin.root().await;
    let token = admin.token(&root.id, 1).await;
    let mut agent = TestAgent::enroll(&server.url(), &token).await;
    agent.wait_connected(Duration::from_secs(10)).await;
    // The real service steps aside; a silent client takes its identity.
    let (mut inbound, _writer, welcome) = agent.take_over_session(&server).await;
    assert_eq!(welcome.heartbeat_interval_secs, 1);
    assert!(admin.computer(&agent.computer_id).await.online);
    let started = Instant::now();
    let end = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match inbound.message().await {
                Ok(Some(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the server ends a silent session");
    let status = end.expect_err("ended with a reason");
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
    assert!(status.message().contains("heartbeat"), "{status:?}");
    let after = started.elapsed();
    assert!(
        after >= Duration::from_secs(2) && after <= Duration::from_secs(8),
        "ended after {after:?}, expected about 3 s"
    );
    wait_for("computer offline", Duration::from_secs(5), || {
        let admin = admin.clone();
        let id = agent.computer_id.clone();
        async move { (!admin.computer(&id).await.online).then_some(()) }
    })
    .await;
}
