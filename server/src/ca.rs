//! Herald's own small certificate authority: an ECDSA P-256 root created at
//! `init`, the server's certificate, and the agents' client certificates,
//! which the CA builds itself from the CSR's public key alone.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use time::{Duration as TimeDuration, OffsetDateTime};

use crate::domain::UnixMs;

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("certificate error: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("the certificate signing request is not valid: {0}")]
    BadCsr(String),
}

/// File names under `<data-dir>/tls`.
pub struct CaPaths {
    pub dir: PathBuf,
}

impl CaPaths {
    pub fn new(data_dir: &Path) -> Self {
        CaPaths {
            dir: data_dir.join("tls"),
        }
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.pem")
    }
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }
}

pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
}

/// A signed agent certificate.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    pub pem: String,
    pub serial_hex: String,
    pub not_after_ms: UnixMs,
}

impl Ca {
    /// Creates the CA and the server certificate (valid for `names` plus
    /// localhost, 127.0.0.1 and ::1) and writes them under `paths`, keys 0600.
    pub fn create(
        paths: &CaPaths,
        org_name: &str,
        names: &[String],
        now: OffsetDateTime,
    ) -> Result<Ca, CaError> {
        fs::create_dir_all(&paths.dir).map_err(|source| CaError::Io {
            path: paths.dir.clone(),
            source,
        })?;
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        p.distinguished_name
            .push(DnType::CommonName, format!("Herald CA ({org_name})"));
        p.distinguished_name
            .push(DnType::OrganizationName, org_name);
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        p.not_before = now - TimeDuration::minutes(5);
        p.not_after = now + TimeDuration::days(365 * 20);
        p.serial_number = Some(random_serial());
        let key = KeyPair::generate()?;
        let cert = p.self_signed(&key)?;
        let ca_key_pem = key.serialize_pem();
        let issuer = Issuer::new(p, key);

        let mut sans: Vec<String> = names
            .iter()
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .collect();
        for default in ["localhost", "127.0.0.1", "::1"] {
            if !sans.iter().any(|s| s == default) {
                sans.push(default.into());
            }
        }
        let mut s = CertificateParams::new(sans)?;
        s.distinguished_name
            .push(DnType::CommonName, "Herald server");
        s.is_ca = IsCa::ExplicitNoCa;
        s.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        s.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        s.use_authority_key_identifier_extension = true;
        s.not_before = now - TimeDuration::minutes(5);
        s.not_after = now + TimeDuration::days(825);
        s.serial_number = Some(random_serial());
        let server_key = KeyPair::generate()?;
        let server_cert = s.signed_by(&server_key, &issuer)?;

        write(&paths.ca_cert(), cert.pem().as_bytes(), false)?;
        write(&paths.ca_key(), ca_key_pem.as_bytes(), true)?;
        write(&paths.server_cert(), server_cert.pem().as_bytes(), false)?;
        write(
            &paths.server_key(),
            server_key.serialize_pem().as_bytes(),
            true,
        )?;
        Ok(Ca {
            issuer,
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
        })
    }

    pub fn load(paths: &CaPaths) -> Result<Ca, CaError> {
        let cert_pem = read(&paths.ca_cert())?;
        let key = KeyPair::from_pem(&read(&paths.ca_key())?)?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)?;
        let der = herald_proto::tls::certs_from_pem(&cert_pem)
            .map_err(|e| CaError::BadCsr(format!("CA certificate unreadable: {e}")))?
            .remove(0)
            .to_vec();
        Ok(Ca {
            issuer,
            cert_pem,
            cert_der: der,
        })
    }

    pub fn fingerprint(&self) -> String {
        herald_proto::tls::fingerprint(&self.cert_der)
    }

    /// Signs a client certificate for `computer_id` with the public key of
    /// `csr_pem`. Nothing else is taken from the CSR: names, CA flag, usages
    /// and validity are the CA's choice.
    pub fn sign_agent(
        &self,
        csr_pem: &str,
        computer_id: &str,
        now: OffsetDateTime,
        validity: std::time::Duration,
    ) -> Result<IssuedCert, CaError> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| CaError::BadCsr(e.to_string()))?;
        let mut leaf = CertificateParams::default();
        leaf.distinguished_name = rcgen::DistinguishedName::new();
        leaf.distinguished_name
            .push(DnType::CommonName, computer_id);
        leaf.distinguished_name
            .push(DnType::OrganizationalUnitName, "Herald agent");
        leaf.is_ca = IsCa::ExplicitNoCa;
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        leaf.use_authority_key_identifier_extension = true;
        leaf.not_before = now - TimeDuration::minutes(5);
        let not_after = now + TimeDuration::try_from(validity).unwrap_or(TimeDuration::days(365));
        leaf.not_after = not_after;
        let serial = random_serial();
        let serial_hex = hex::encode(serial.to_bytes());
        leaf.serial_number = Some(serial);
        let cert = leaf.signed_by(&csr.public_key, &self.issuer)?;
        Ok(IssuedCert {
            pem: cert.pem(),
            serial_hex,
            not_after_ms: (not_after.unix_timestamp_nanos() / 1_000_000) as UnixMs,
        })
    }
}

/// 16 random bytes, high bit cleared so the DER integer stays positive.
fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01; // no leading zero byte to be stripped
    SerialNumber::from_slice(&bytes)
}

fn read(path: &Path) -> Result<String, CaError> {
    fs::read_to_string(path).map_err(|source| CaError::Io {
        path: path.to_owned(),
        source,
    })
}

fn write(path: &Path, bytes: &[u8], secret: bool) -> Result<(), CaError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| CaError::Io {
        path: path.to_owned(),
        source,
    };
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(path)
        .map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)
}

/// What the server learns from a client certificate it accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    pub computer_id: String,
    pub serial_hex: String,
}

/// Reads the computer id (CN) and serial from a DER client certificate.
pub fn peer_identity(der: &[u8]) -> Option<PeerIdentity> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_owned();
    Some(PeerIdentity {
        computer_id: cn,
        serial_hex: hex::encode(cert.raw_serial()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csr_asking_for_ca_gets_plain_client_cert() {
        let dir = tempfile::tempdir().unwrap();
        let paths = CaPaths::new(dir.path());
        let now = OffsetDateTime::now_utc();
        let ca = Ca::create(&paths, "Test", &["herald.example".into()], now).unwrap();

        let mut req = CertificateParams::new(vec!["evil.example".to_string()]).unwrap();
        req.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        req.distinguished_name
            .push(DnType::CommonName, "I am the CA");
        req.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let key = KeyPair::generate().unwrap();
        let csr = req.serialize_request(&key).unwrap().pem().unwrap();

        let issued = ca
            .sign_agent(&csr, "c-1", now, std::time::Duration::from_secs(86400))
            .unwrap();
        let der = herald_proto::tls::certs_from_pem(&issued.pem)
            .unwrap()
            .remove(0);
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        assert!(!cert.is_ca());
        let bc = cert.basic_constraints().unwrap().map(|b| b.value.ca);
        assert_ne!(bc, Some(true));
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        assert_eq!(peer_identity(der.as_ref()).unwrap().computer_id, "c-1");
        assert_eq!(
            peer_identity(der.as_ref()).unwrap().serial_hex,
            issued.serial_hex
        );
        let lifetime =
            cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
        assert!(
            (86_000..=87_000).contains(&lifetime),
            "validity is the CA's choice: {lifetime}s"
        );

        // Reloading from disk gives the same CA.
        let again = Ca::load(&paths).unwrap();
        assert_eq!(again.fingerprint(), ca.fingerprint());
        // init refuses to overwrite.
        assert!(Ca::create(&paths, "Test", &[], now).is_err());
    }
}
