//! The TLS 1.3 listener: Herald owns the accept loop (rather than tonic's
//! built-in TLS) so it can check revocation during the handshake, bound the
//! handshakes in flight, and hand the peer's identity to the RPC handlers.

use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tonic::transport::server::Connected;

use crate::ca::{PeerIdentity, peer_identity};

/// Serials of revoked client certificates, shared with the handshake.
pub type RevokedSerials = Arc<RwLock<HashSet<String>>>;

/// What a handler learns about the connection a request came in on.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    pub remote: Option<SocketAddr>,
    /// Present when the peer showed a client certificate signed by the
    /// Herald CA, valid now and not revoked.
    pub peer: Option<PeerIdentity>,
}

pub struct TlsConn {
    inner: TlsStream<TcpStream>,
    info: ConnInfo,
}

impl TlsConn {
    pub fn info(&self) -> &ConnInfo {
        &self.info
    }
}

impl Connected for TlsConn {
    type ConnectInfo = ConnInfo;
    fn connect_info(&self) -> ConnInfo {
        self.info.clone()
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Accepts client certificates signed by the Herald CA (checked by WebPKI:
/// chain, validity, no CA flag) unless their serial is revoked. A client
/// without a certificate is let through: enrollment and admin calls need
/// none, and every agent call checks for one.
#[derive(Debug)]
struct HeraldClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    revoked: RevokedSerials,
}

impl ClientCertVerifier for HeraldClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        false
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let id = peer_identity(end_entity.as_ref()).ok_or(rustls::Error::InvalidCertificate(
            rustls::CertificateError::BadEncoding,
        ))?;
        let revoked = self
            .revoked
            .read()
            .map(|set| set.contains(&id.serial_hex))
            .unwrap_or(true);
        if revoked {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Revoked,
            ));
        }
        Ok(verified)
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// TLS 1.3 only, ALPN h2 (gRPC) or herald-session/1 (framed agent
/// sessions), server chain = [server certificate, CA] so agents
/// can pin the CA by fingerprint.
pub fn server_config(
    server_chain_pem: &str,
    server_key_pem: &str,
    ca_pem: &str,
    revoked: RevokedSerials,
) -> Result<ServerConfig, herald_proto::tls::TlsError> {
    use herald_proto::tls::{certs_from_pem, key_from_pem, provider};
    let provider = provider();
    let mut roots = RootCertStore::empty();
    let ca_certs = certs_from_pem(ca_pem)?;
    for c in &ca_certs {
        roots.add(c.clone())?;
    }
    let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| herald_proto::tls::TlsError::Rustls(rustls::Error::General(e.to_string())))?;
    let verifier = Arc::new(HeraldClientVerifier { inner, revoked });
    let mut chain = certs_from_pem(server_chain_pem)?;
    chain.extend(ca_certs);
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key_from_pem(server_key_pem)?)?;
    config.alpn_protocols = vec![
        herald_proto::tls::ALPN_H2.to_vec(),
        herald_proto::framed::ALPN.to_vec(),
    ];
    Ok(config)
}

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Kernel send buffer of a framed agent session (the kernel doubles it
/// for its bookkeeping): at 50 ms round trip still about 2.5 MB/s per
/// agent, and a stuck agent holds at most this much before it is cut.
const SESSION_SEND_BUFFER: usize = 128 * 1024;

/// Accepts TCP connections on `listener`, runs TLS handshakes concurrently
/// (at most `max_handshakes` at once, each bounded in time) and yields the
/// finished connections. Failed handshakes are logged and dropped; accept
/// errors (e.g. out of file descriptors) pause briefly instead of ending the
/// loop. Connections that negotiated a framed agent session go to
/// `framed` instead of the stream. The stream ends when the returned
/// receiver is dropped.
pub fn incoming(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    max_handshakes: usize,
    framed: impl Fn(TlsConn) + Clone + Send + Sync + 'static,
) -> tokio_stream::wrappers::ReceiverStream<Result<TlsConn, io::Error>> {
    let (tx, rx) = mpsc::channel(256);
    let acceptor = TlsAcceptor::from(config);
    let permits = Arc::new(Semaphore::new(max_handshakes));
    tokio::spawn(async move {
        loop {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let (tcp, remote) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed; pausing");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = tx.closed() => break,
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            let framed = framed.clone();
            tokio::spawn(async move {
                let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await;
                drop(permit);
                let tls = match handshake {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::info!(%remote, error = %e, "TLS handshake refused");
                        return;
                    }
                    Err(_) => {
                        tracing::info!(%remote, "TLS handshake timed out");
                        return;
                    }
                };
                let session = tls.get_ref().1.alpn_protocol() == Some(herald_proto::framed::ALPN);
                let peer = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|certs| certs.first())
                    .and_then(|leaf| peer_identity(leaf.as_ref()));
                let conn = TlsConn {
                    inner: tls,
                    info: ConnInfo {
                        remote: Some(remote),
                        peer,
                    },
                };
                if session {
                    // Left to autotune, the kernel grows the send buffer of
                    // an agent that stops reading to net.ipv4.tcp_wmem's
                    // maximum (4 MiB) before its queue fills and it is cut.
                    // A session carries small messages: a fixed buffer
                    // bounds what a stuck agent holds in the kernel.
                    let _ = socket2::SockRef::from(conn.inner.get_ref().0)
                        .set_send_buffer_size(SESSION_SEND_BUFFER);
                    framed(conn);
                } else {
                    let _ = tx.send(Ok(conn)).await;
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
