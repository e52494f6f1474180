//! `herald-agent enroll`: generate a key here, pin the server by the CA
//! fingerprint in the token, trade the token and a CSR for a certificate.

use std::path::Path;

use herald_proto::pb;
use herald_proto::pb::agent_service_client::AgentServiceClient;
use herald_proto::tls::{ClientIdentity, ServerTrust};
use rcgen::{CertificateParams, DnType, KeyPair};

use crate::state::{AgentInfo, Identity, StateDir};

#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error(
        "this is not a Herald enrollment token (expected hrld1.<fingerprint>.<secret>): copy the whole token"
    )]
    BadToken,
    #[error(
        "{0} is already enrolled as {1}: pass --force to enroll again (the old identity is replaced)"
    )]
    AlreadyEnrolled(String, String),
    #[error("cannot create a key: {0}")]
    Key(String),
    #[error("{0}")]
    Connect(String),
    #[error("the server refused the enrollment: {0}")]
    Refused(String),
    #[error(transparent)]
    State(#[from] crate::state::StateError),
}

/// The CA fingerprint inside a token, without contacting anybody.
pub fn token_fingerprint(token: &str) -> Result<String, EnrollError> {
    let mut parts = token.trim().split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("hrld1"), Some(fp), Some(_), None) => {
            herald_proto::tls::normalize_fingerprint(fp).map_err(|_| EnrollError::BadToken)
        }
        _ => Err(EnrollError::BadToken),
    }
}

pub async fn enroll(
    server: &str,
    token: &str,
    state_dir: &Path,
    force: bool,
) -> Result<Identity, EnrollError> {
    let dir = StateDir::new(state_dir);
    if dir.is_enrolled() && !force {
        let existing = dir
            .load()
            .map(|i| i.info.computer_id)
            .unwrap_or_else(|_| "an unknown computer".into());
        return Err(EnrollError::AlreadyEnrolled(
            state_dir.display().to_string(),
            existing,
        ));
    }
    let fingerprint = token_fingerprint(token)?;
    let hostname = crate::hostname();
    let key = KeyPair::generate().map_err(|e| EnrollError::Key(e.to_string()))?;
    let mut params = CertificateParams::new(Vec::<String>::new())
        .map_err(|e| EnrollError::Key(e.to_string()))?;
    params
        .distinguished_name
        .push(DnType::CommonName, hostname.clone());
    let csr = params
        .serialize_request(&key)
        .and_then(|c| c.pem())
        .map_err(|e| EnrollError::Key(e.to_string()))?;

    let config = herald_proto::tls::client_config(&ServerTrust::Fingerprint(fingerprint), None)
        .map_err(|e| EnrollError::Connect(e.to_string()))?;
    let channel = herald_proto::tls::connect(server, config)
        .await
        .map_err(|e| EnrollError::Connect(e.to_string()))?;
    let resp = AgentServiceClient::new(channel)
        .enroll(pb::EnrollRequest {
            token: token.trim().to_owned(),
            csr_pem: csr,
            hostname,
            os: crate::os_description(),
            agent_version: crate::VERSION.to_owned(),
        })
        .await
        .map_err(|s| EnrollError::Refused(s.message().to_owned()))?
        .into_inner();
    let identity = Identity {
        info: AgentInfo {
            server: server.to_owned(),
            computer_id: resp.computer_id,
            org_unit_path: resp.org_unit_path,
            certificate_not_after_unix_ms: resp.certificate_not_after_unix_ms,
        },
        ca_pem: resp.ca_chain_pem,
        client: ClientIdentity {
            cert_pem: resp.certificate_pem,
            key_pem: key.serialize_pem(),
        },
    };
    dir.save(&identity)?;
    Ok(identity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_from_token() {
        let fp = "ab".repeat(32);
        assert_eq!(
            token_fingerprint(&format!("hrld1.{fp}.secretsecretsecret")).unwrap(),
            fp
        );
        for bad in ["", "hrld1.x.y", "nope", &format!("hrld1.{fp}")] {
            assert!(token_fingerprint(bad).is_err(), "{bad}");
        }
    }
}
