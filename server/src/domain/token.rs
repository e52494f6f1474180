//! Enrollment tokens. The string an admin hands out is
//! `hrld1.<CA SHA-256 hex>.<secret>`: the agent pins the server's CA from the
//! fingerprint before it sends anything, and the server keeps only a hash of
//! the secret.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::UnixMs;
use super::org::UnitId;

const PREFIX: &str = "hrld1";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenParts {
    pub ca_fingerprint: String,
    pub secret: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error(
        "this is not a Herald enrollment token (expected hrld1.<fingerprint>.<secret>); copy the whole token"
    )]
    Malformed,
    #[error("unknown enrollment token: ask your admin for a new one")]
    Unknown,
    #[error("the enrollment token has expired: ask your admin for a new one")]
    Expired,
    #[error(
        "the enrollment token has been used {0} times, its limit: ask your admin for a new one"
    )]
    UsedUp(u32),
    #[error("the enrollment token was revoked: ask your admin for a new one")]
    Revoked,
}

pub fn format(ca_fingerprint: &str, secret: &str) -> String {
    format!("{PREFIX}.{ca_fingerprint}.{secret}")
}

pub fn parse(token: &str) -> Result<TokenParts, TokenError> {
    let mut parts = token.trim().split('.');
    let (Some(PREFIX), Some(fp), Some(secret), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let fp_ok = fp.len() == 64 && fp.chars().all(|c| c.is_ascii_hexdigit());
    let secret_ok = secret.len() >= 16
        && secret
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !fp_ok || !secret_ok {
        return Err(TokenError::Malformed);
    }
    Ok(TokenParts {
        ca_fingerprint: fp.to_ascii_lowercase(),
        secret: secret.to_owned(),
    })
}

/// The key the server stores a token under: SHA-256 of the secret, hex.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The short id admins see and revoke by: the first 12 hex digits of the hash.
pub fn short_id(hash: &str) -> String {
    hash.chars().take(12).collect()
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: String,
    pub hash: String,
    pub unit: UnitId,
    pub created_ms: UnixMs,
    pub created_by: String,
    pub expires_ms: UnixMs,
    pub max_uses: u32,
    pub uses: u32,
    pub revoked: bool,
}

impl TokenRecord {
    /// Whether one more computer may enroll with this token at `now`.
    pub fn check_usable(&self, now: UnixMs) -> Result<(), TokenError> {
        if self.revoked {
            Err(TokenError::Revoked)
        } else if now >= self.expires_ms {
            Err(TokenError::Expired)
        } else if self.uses >= self.max_uses {
            Err(TokenError::UsedUp(self.uses))
        } else {
            Ok(())
        }
    }

    pub fn is_active(&self, now: UnixMs) -> bool {
        self.check_usable(now).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parse_cases() {
        let good = format(FP, "s3cr3t-s3cr3t_s3cr3t");
        assert_eq!(
            parse(&good).unwrap(),
            TokenParts {
                ca_fingerprint: FP.into(),
                secret: "s3cr3t-s3cr3t_s3cr3t".into()
            }
        );
        assert!(
            parse(&format!("  {good}\n")).is_ok(),
            "surrounding white space is tolerated"
        );
        for bad in [
            "",
            "hrld1",
            "hrld2.x.y",
            &format!("hrld1.{FP}"),
            &format!("hrld1.{}.secretsecretsecret", &FP[..60]),
            &format!("hrld1.{FP}.short"),
            &format!("hrld1.{FP}.secret secret secret"),
            &format!("{good}.extra"),
        ] {
            assert_eq!(parse(bad), Err(TokenError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn usability() {
        let rec = TokenRecord {
            id: "id".into(),
            hash: "h".into(),
            unit: "u".into(),
            created_ms: 0,
            created_by: "a".into(),
            expires_ms: 1000,
            max_uses: 2,
            uses: 0,
            revoked: false,
        };
        let cases = [
            (TokenRecord { ..rec.clone() }, 10, Ok(())),
            (
                TokenRecord { ..rec.clone() },
                1000,
                Err(TokenError::Expired),
            ),
            (
                TokenRecord {
                    uses: 2,
                    ..rec.clone()
                },
                10,
                Err(TokenError::UsedUp(2)),
            ),
            (
                TokenRecord {
                    revoked: true,
                    ..rec.clone()
                },
                10,
                Err(TokenError::Revoked),
            ),
        ];
        for (r, now, want) in cases {
            assert_eq!(r.check_usable(now), want);
        }
    }
}
