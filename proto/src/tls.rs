//! TLS 1.3 configuration shared by every Herald client (agent and admin
//! tools): how the server is trusted, and a connector tonic dials through.

use std::io;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// The ALPN protocol gRPC runs over.
pub const ALPN_H2: &[u8] = b"h2";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read PEM: {0}")]
    Pem(#[from] io::Error),
    #[error("no certificate found in the PEM data")]
    NoCertificate,
    #[error("no private key found in the PEM data")]
    NoKey,
    #[error("invalid certificate or key: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("invalid CA fingerprint {0:?}: expected 64 hex digits (SHA-256)")]
    BadFingerprint(String),
    #[error("invalid server address {0:?}: {1}")]
    BadAddress(String, String),
}

/// The crypto provider Herald uses everywhere (ring), so the process never
/// has to guess between two compiled-in providers.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// SHA-256 of a DER certificate, as lower-case hex.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// Normalises a user-typed fingerprint ("AB:CD:..", upper case, spaces) to
/// 64 lower-case hex digits.
pub fn normalize_fingerprint(input: &str) -> Result<String, TlsError> {
    let hexed: String = input
        .chars()
        .filter(|c| !matches!(c, ':' | ' ' | '-'))
        .collect::<String>()
        .to_ascii_lowercase();
    if hexed.len() == 64 && hexed.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(hexed)
    } else {
        Err(TlsError::BadFingerprint(input.to_owned()))
    }
}

pub fn certs_from_pem(pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = rustls_pemfile::certs(&mut pem.as_bytes()).collect::<Result<Vec<_>, _>>()?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    Ok(certs)
}

pub fn key_from_pem(pem: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    rustls_pemfile::private_key(&mut pem.as_bytes())?.ok_or(TlsError::NoKey)
}

/// How a client decides that it talks to the right Herald server.
#[derive(Clone, Debug)]
pub enum ServerTrust {
    /// Trust servers whose certificate chains to one of these CA certificates.
    CaPem(String),
    /// Trust the server if the CA certificate it presents in its chain has
    /// this SHA-256 fingerprint and the server certificate chains to it. This
    /// is how an agent pins the server before it holds the CA file.
    Fingerprint(String),
}

/// A client certificate and its key, PEM.
#[derive(Clone)]
pub struct ClientIdentity {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("key_pem", &"<hidden>")
            .finish()
    }
}

/// A rustls client configuration: TLS 1.3 only, ALPN h2, ring.
pub fn client_config(
    trust: &ServerTrust,
    identity: Option<&ClientIdentity>,
) -> Result<ClientConfig, TlsError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?;
    let builder = match trust {
        ServerTrust::CaPem(pem) => {
            let mut roots = RootCertStore::empty();
            for cert in certs_from_pem(pem)? {
                roots.add(cert)?;
            }
            builder.with_root_certificates(roots)
        }
        ServerTrust::Fingerprint(fp) => {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedCaVerifier {
                    fingerprint: normalize_fingerprint(fp)?,
                    provider: provider.clone(),
                }))
        }
    };
    let mut config = match identity {
        Some(id) => builder
            .with_client_auth_cert(certs_from_pem(&id.cert_pem)?, key_from_pem(&id.key_pem)?)?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(config)
}

/// Verifies the server against a pinned CA fingerprint: the CA certificate
/// must be in the presented chain, and the full WebPKI verification (chain,
/// validity, server name) then runs with that CA as the only root.
#[derive(Debug)]
struct PinnedCaVerifier {
    fingerprint: String,
    provider: Arc<CryptoProvider>,
}

impl PinnedCaVerifier {
    fn algorithms(&self) -> &WebPkiSupportedAlgorithms {
        &self.provider.signature_verification_algorithms
    }
}

impl ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|c| fingerprint(c.as_ref()) == self.fingerprint)
            .ok_or_else(|| {
                rustls::Error::General(
                    "the server's CA does not match the fingerprint in the enrollment token".into(),
                )
            })?;
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            self.provider.clone(),
        )
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
        verifier.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, self.algorithms())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, self.algorithms())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms().supported_schemes()
    }
}

/// Parses a server address: `https://host:port`, `host:port` or `host`
/// (port 7443). Returns the URI tonic uses.
pub fn server_uri(address: &str) -> Result<Uri, TlsError> {
    let with_scheme = if address.contains("://") {
        address.to_owned()
    } else {
        format!("https://{address}")
    };
    let uri: Uri = with_scheme.parse().map_err(|e: http::uri::InvalidUri| {
        TlsError::BadAddress(address.to_owned(), e.to_string())
    })?;
    if uri.scheme_str() != Some("https") {
        return Err(TlsError::BadAddress(
            address.to_owned(),
            "Herald only speaks TLS: use https://".into(),
        ));
    }
    if uri.host().is_none() {
        return Err(TlsError::BadAddress(
            address.to_owned(),
            "no host name".into(),
        ));
    }
    if uri.port_u16().is_none() {
        let authority = format!("{}:{}", uri.host().unwrap_or_default(), DEFAULT_PORT);
        return format!("https://{authority}")
            .parse()
            .map_err(|e: http::uri::InvalidUri| {
                TlsError::BadAddress(address.to_owned(), e.to_string())
            });
    }
    Ok(uri)
}

/// The port Herald listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 7443;

/// A lazily connecting channel to `address` over TLS configured by `config`.
/// The channel reconnects by itself when the connection drops.
pub fn channel(address: &str, config: ClientConfig) -> Result<Channel, TlsError> {
    let uri = server_uri(address)?;
    let endpoint = Endpoint::from(uri)
        .tcp_nodelay(true)
        .connect_timeout(std::time::Duration::from_secs(10))
        .http2_keep_alive_interval(std::time::Duration::from_secs(30))
        .keep_alive_while_idle(true);
    let config = Arc::new(config);
    Ok(
        endpoint.connect_with_connector_lazy(tower::service_fn(move |uri: Uri| {
            let config = config.clone();
            async move { dial(uri, config).await }
        })),
    )
}

/// Connects `channel` eagerly, so that TLS or address errors show up now.
pub async fn connect(address: &str, config: ClientConfig) -> Result<Channel, ConnectError> {
    let uri = server_uri(address)?;
    let endpoint = Endpoint::from(uri)
        .tcp_nodelay(true)
        .connect_timeout(std::time::Duration::from_secs(10))
        .http2_keep_alive_interval(std::time::Duration::from_secs(30))
        .keep_alive_while_idle(true);
    let config = Arc::new(config);
    endpoint
        .connect_with_connector(tower::service_fn(move |uri: Uri| {
            let config = config.clone();
            async move { dial(uri, config).await }
        }))
        .await
        .map_err(|e| ConnectError::Transport(error_chain(&e)))
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot connect to the server: {0}")]
    Transport(String),
}

/// The error and all its sources, joined, so a person sees the real cause
/// ("invalid peer certificate: ...") rather than "transport error".
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

async fn dial(
    uri: Uri,
    config: Arc<ClientConfig>,
) -> io::Result<hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<TcpStream>>> {
    dial_tls(uri, config)
        .await
        .map(hyper_util::rt::TokioIo::new)
}

/// A TLS connection to `uri`'s host and port (7443 if none).
pub(crate) async fn dial_tls(
    uri: Uri,
    config: Arc<ClientConfig>,
) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let host = uri
        .host()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no host in server address"))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(DEFAULT_PORT);
    let tcp = TcpStream::connect((host.as_str(), port)).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from(host)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
}
