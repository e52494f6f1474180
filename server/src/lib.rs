//! The Herald server: one TLS 1.3 port that admins (gRPC, session tokens)
//! and agents (mutual TLS; enrollment over gRPC, sessions framed) talk to,
//! its certificate authority, and its durable store.
//!
//! Architecture invariant: `domain` knows nothing of tonic, sled or tokio;
//! handlers in `admin` and `agent_svc` convert wire types at the edge and map
//! errors to statuses in `error`; storage is reached only through `store`.

pub mod admin;
pub mod agent_svc;
pub mod alerts;
pub mod ca;
pub mod config;
pub mod convert;
pub mod domain;
pub mod error;
pub mod fanout;
pub mod init;
pub mod ledger;
pub mod net;
pub mod presence;
pub mod state;
pub mod store;

use std::collections::HashSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use herald_proto::pb::admin_service_server::AdminServiceServer;
use herald_proto::pb::agent_service_server::AgentServiceServer;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::ca::{Ca, CaPaths};
use crate::config::Config;
use crate::state::{ComputerRecord, State};
use crate::store::{Db, SledStore, Table};

pub use init::{InitOptions, InitReport, init};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{0}")]
    Setup(String),
    #[error("the server failed: {0}")]
    Serve(String),
}

/// Where the store lives under the data dir.
pub fn store_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("store")
}

/// Opens the data dir and serves on `listener` until `shutdown` resolves.
/// Live agent sessions are ended on shutdown so the server stops promptly.
pub async fn run(
    data_dir: &Path,
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let setup = |what: &str, e: &dyn std::fmt::Display| ServerError::Setup(format!("{what}: {e}"));
    let paths = CaPaths::new(data_dir);
    if !paths.ca_cert().exists() {
        return Err(ServerError::Setup(format!(
            "{} is not an initialised Herald data dir: run herald-server init --data-dir {} first",
            data_dir.display(),
            data_dir.display()
        )));
    }
    let ca = Ca::load(&paths).map_err(|e| setup("cannot load the CA", &e))?;
    let read = |p: PathBuf| {
        std::fs::read_to_string(&p).map_err(|e| setup(&format!("cannot read {}", p.display()), &e))
    };
    let server_cert = read(paths.server_cert())?;
    let server_key = read(paths.server_key())?;
    let store = SledStore::open(
        &store_dir(data_dir),
        Duration::from_millis(config.group_commit_window_ms),
    )
    .map_err(|e| setup("cannot open the store", &e))?;
    let db = Db::new(store);
    let revoked: HashSet<String> = db
        .list::<ComputerRecord>(Table::Computers)
        .map_err(|e| setup("cannot read computers", &e))?
        .into_iter()
        .filter(|c| c.revoked)
        .map(|c| c.cert_serial)
        .collect();
    let revoked = Arc::new(RwLock::new(revoked));
    let tls = net::server_config(&server_cert, &server_key, &ca.cert_pem, revoked.clone())
        .map_err(|e| setup("cannot set up TLS", &e))?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let max_handshakes = config.max_concurrent_handshakes;
    let state = State::new(db, ca, config, revoked, stop_rx)
        .map_err(|e| setup("cannot load the org tree", &e))?;
    let local = listener.local_addr().ok();
    tracing::info!(address = ?local, ca_fingerprint = %state.ca.fingerprint(), "herald-server listening");
    let agent_api = Arc::new(agent_svc::AgentApi::new(state.clone()));
    let framed_api = agent_api.clone();
    let incoming = net::incoming(listener, Arc::new(tls), max_handshakes, move |conn| {
        tokio::spawn(framed_api.clone().serve_framed(conn));
    });
    let admin = AdminServiceServer::new(admin::AdminApi::new(state.clone()));
    let agent = AgentServiceServer::from_arc(agent_api);
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    };
    let served = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .tcp_nodelay(true)
        .add_service(admin)
        .add_service(agent)
        .serve_with_incoming_shutdown(incoming, signal)
        .await
        .map_err(|e| ServerError::Serve(herald_proto::tls::error_chain(&e)));
    // Session tasks finish on the shutdown signal; wait for them so the
    // store is closed (and its lock released) when `run` returns.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while Arc::strong_count(&state) > 1 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(state);
    served
}
