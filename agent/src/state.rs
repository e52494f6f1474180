//! What the agent keeps on disk in its state dir: its key (0600), its
//! certificate, the CA it trusts, and where and who it is.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "this computer is not enrolled yet ({path} is missing): run herald-agent enroll --server URL --token TOKEN"
    )]
    NotEnrolled { path: PathBuf },
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is damaged: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

/// The default state dir: /var/lib/herald-agent for root (the system
/// service), else $XDG_STATE_HOME/herald-agent or ~/.local/state/herald-agent.
pub fn default_state_dir() -> PathBuf {
    if nix::unistd::Uid::effective().is_root() {
        return PathBuf::from("/var/lib/herald-agent");
    }
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("herald-agent");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/state/herald-agent")
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AgentInfo {
    pub server: String,
    pub computer_id: String,
    pub org_unit_path: String,
    pub certificate_not_after_unix_ms: i64,
}

/// The enrolled identity, as loaded from the state dir.
#[derive(Clone, Debug)]
pub struct Identity {
    pub info: AgentInfo,
    pub ca_pem: String,
    pub client: herald_proto::tls::ClientIdentity,
}

pub struct StateDir {
    pub dir: PathBuf,
}

impl StateDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StateDir { dir: dir.into() }
    }
    pub fn key(&self) -> PathBuf {
        self.dir.join("agent.key")
    }
    pub fn cert(&self) -> PathBuf {
        self.dir.join("agent.pem")
    }
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    pub fn info(&self) -> PathBuf {
        self.dir.join("agent.toml")
    }

    pub fn is_enrolled(&self) -> bool {
        self.info().exists()
    }

    pub fn load(&self) -> Result<Identity, StateError> {
        if !self.info().exists() {
            return Err(StateError::NotEnrolled { path: self.info() });
        }
        let info_text = read(&self.info())?;
        let info: AgentInfo = toml::from_str(&info_text).map_err(|e| StateError::Corrupt {
            path: self.info(),
            reason: e.to_string(),
        })?;
        Ok(Identity {
            info,
            ca_pem: read(&self.ca())?,
            client: herald_proto::tls::ClientIdentity {
                cert_pem: read(&self.cert())?,
                key_pem: read(&self.key())?,
            },
        })
    }

    /// Writes a new identity. The info file goes last, so a crash midway
    /// leaves the dir "not enrolled" rather than half enrolled.
    pub fn save(&self, id: &Identity) -> Result<(), StateError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| StateError::Io { path, source }
        };
        fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        write_atomic(&self.key(), id.client.key_pem.as_bytes(), 0o600)?;
        write_atomic(&self.cert(), id.client.cert_pem.as_bytes(), 0o644)?;
        write_atomic(&self.ca(), id.ca_pem.as_bytes(), 0o644)?;
        let info = toml::to_string(&id.info).map_err(|e| StateError::Corrupt {
            path: self.info(),
            reason: e.to_string(),
        })?;
        write_atomic(&self.info(), info.as_bytes(), 0o644)
    }
}

fn read(path: &Path) -> Result<String, StateError> {
    fs::read_to_string(path).map_err(|source| StateError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Write to a temp file with `mode`, fsync, rename over `path`, fsync the dir.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StateError> {
    let tmp = path.with_extension("tmp");
    let err = |source| StateError::Io {
        path: path.to_owned(),
        source,
    };
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)?;
    fs::rename(&tmp, path).map_err(err)?;
    if let Some(parent) = path.parent()
        && let Ok(d) = fs::File::open(parent)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn save_load_and_key_mode() {
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::new(dir.path().join("s"));
        assert!(matches!(sd.load(), Err(StateError::NotEnrolled { .. })));
        let id = Identity {
            info: AgentInfo {
                server: "https://h:1".into(),
                computer_id: "c-1".into(),
                org_unit_path: "/A".into(),
                certificate_not_after_unix_ms: 5,
            },
            ca_pem: "CA".into(),
            client: herald_proto::tls::ClientIdentity {
                cert_pem: "CERT".into(),
                key_pem: "KEY".into(),
            },
        };
        sd.save(&id).unwrap();
        let back = sd.load().unwrap();
        assert_eq!(back.info, id.info);
        assert_eq!(back.client.key_pem, "KEY");
        let mode = fs::metadata(sd.key()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
