//! The session `heraldctl login` leaves behind for later commands: which
//! server, how it is trusted, who is logged in and the session token.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use herald_proto::tls::{ServerTrust, normalize_fingerprint};
use serde::{Deserialize, Serialize};

use crate::ClientError;

/// Environment variable naming the directory that holds `session.toml`.
pub const HOME_ENV: &str = "HERALD_CTL_HOME";

/// File name of the saved session inside its directory.
pub const SESSION_FILE: &str = "session.toml";

/// A logged-in admin session, saved as TOML with mode 0600.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedSession {
    /// Server address as given at login.
    pub server: String,
    /// The CA certificate file the server is trusted by (absolute path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Or the pinned SHA-256 fingerprint of the server's CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// The admin the session belongs to.
    pub user: String,
    /// The bearer token; a secret, hidden from `Debug`.
    pub token: String,
    /// When the server stops accepting the token.
    pub expires_unix_ms: i64,
}

impl std::fmt::Debug for SavedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SavedSession")
            .field("server", &self.server)
            .field("ca_file", &self.ca_file)
            .field("fingerprint", &self.fingerprint)
            .field("user", &self.user)
            .field("token", &"<hidden>")
            .field("expires_unix_ms", &self.expires_unix_ms)
            .finish()
    }
}

impl SavedSession {
    /// Where the session is kept: `$HERALD_CTL_HOME/session.toml`, else
    /// `$XDG_CONFIG_HOME/herald/session.toml`, else
    /// `$HOME/.config/herald/session.toml`.
    pub fn default_path() -> Result<PathBuf, ClientError> {
        session_path(
            std::env::var_os(HOME_ENV),
            std::env::var_os("XDG_CONFIG_HOME"),
            std::env::var_os("HOME"),
        )
        .ok_or_else(|| {
            ClientError::Config(format!(
                "cannot tell where to keep the session: set {HOME_ENV} or HOME"
            ))
        })
    }

    /// Reads the session at `path`; `None` if there is none.
    pub fn load(path: &Path) -> Result<Option<Self>, ClientError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(cause) => {
                return Err(ClientError::Io {
                    action: "read the saved session",
                    path: path.to_owned(),
                    cause,
                });
            }
        };
        toml::from_str(&text).map(Some).map_err(|e| {
            ClientError::Config(format!(
                "the saved session {} is damaged ({}); log in again",
                path.display(),
                e.message()
            ))
        })
    }

    /// Writes the session to `path` (mode 0600, directory created with mode
    /// 0700 if missing), replacing any earlier one atomically.
    pub fn save(&self, path: &Path) -> Result<(), ClientError> {
        let io_err = |action: &'static str, at: &Path| {
            let at = at.to_owned();
            move |cause| ClientError::Io {
                action,
                path: at,
                cause,
            }
        };
        let text = toml::to_string(self)
            .map_err(|e| ClientError::Config(format!("cannot encode the session: {e}")))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir).map_err(io_err("create the directory", dir))?;
        }
        let mut tmp_name = path.as_os_str().to_owned();
        tmp_name.push(".tmp");
        let tmp = PathBuf::from(tmp_name);
        write_private(&tmp, text.as_bytes()).map_err(io_err("write the session to", &tmp))?;
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io_err("save the session as", path)(e)
        })
    }

    /// Removes the session at `path`. Returns whether there was one.
    pub fn delete(path: &Path) -> Result<bool, ClientError> {
        match std::fs::remove_file(path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(cause) => Err(ClientError::Io {
                action: "remove the saved session",
                path: path.to_owned(),
                cause,
            }),
        }
    }

    /// Whether the server no longer accepts the token at `now_ms`.
    pub fn is_expired(&self, now_ms: i64) -> bool {
        self.expires_unix_ms <= now_ms
    }

    /// How to trust the server again: reads the CA file, or uses the
    /// fingerprint.
    pub fn trust(&self) -> Result<ServerTrust, ClientError> {
        match (&self.ca_file, &self.fingerprint) {
            (Some(file), _) => read_ca_file(file),
            (None, Some(fp)) => Ok(ServerTrust::Fingerprint(
                normalize_fingerprint(fp).map_err(|e| ClientError::Config(e.to_string()))?,
            )),
            (None, None) => Err(ClientError::Config(
                "the saved session says neither a CA file nor a fingerprint; log in again"
                    .to_owned(),
            )),
        }
    }
}

/// Reads a PEM CA certificate file as a [`ServerTrust`].
pub fn read_ca_file(path: &Path) -> Result<ServerTrust, ClientError> {
    std::fs::read_to_string(path)
        .map(ServerTrust::CaPem)
        .map_err(|cause| ClientError::Io {
            action: "read the CA file",
            path: path.to_owned(),
            cause,
        })
}

/// The session path from the values of `HERALD_CTL_HOME`, `XDG_CONFIG_HOME`
/// and `HOME`; empty values count as unset.
fn session_path(
    herald_home: Option<OsString>,
    xdg_config: Option<OsString>,
    home: Option<OsString>,
) -> Option<PathBuf> {
    let set = |v: Option<OsString>| v.filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = set(herald_home) {
        return Some(dir.join(SESSION_FILE));
    }
    if let Some(dir) = set(xdg_config) {
        return Some(dir.join("herald").join(SESSION_FILE));
    }
    set(home).map(|dir| dir.join(".config").join("herald").join(SESSION_FILE))
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// Writes `bytes` to a file only its owner can read.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let file = options.open(path)?;
        // A stale temp file may have been created with another mode.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        write_all_synced(file, bytes)
    }
    #[cfg(not(unix))]
    {
        write_all_synced(options.open(path)?, bytes)
    }
}

fn write_all_synced(mut file: std::fs::File, bytes: &[u8]) -> std::io::Result<()> {
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> SavedSession {
        SavedSession {
            server: "https://herald.example:7443".into(),
            ca_file: Some("/etc/herald/ca.pem".into()),
            fingerprint: None,
            user: "alice".into(),
            token: "secret-token".into(),
            expires_unix_ms: 1_740_818_096_000,
        }
    }

    #[test]
    fn session_path_prefers_herald_home() {
        let os = |s: &str| Some(OsString::from(s));
        let cases = [
            ((os("/h"), os("/x"), os("/home/a")), Some("/h/session.toml")),
            (
                (os(""), os("/x"), os("/home/a")),
                Some("/x/herald/session.toml"),
            ),
            (
                (None, None, os("/home/a")),
                Some("/home/a/.config/herald/session.toml"),
            ),
            (
                (None, os(""), os("/home/a")),
                Some("/home/a/.config/herald/session.toml"),
            ),
            ((None, None, None), None),
        ];
        for ((h, x, home), want) in cases {
            assert_eq!(session_path(h, x, home), want.map(PathBuf::from));
        }
    }

    #[test]
    fn saves_loads_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join(SESSION_FILE);
        assert_eq!(SavedSession::load(&path).unwrap(), None);

        session().save(&path).unwrap();
        assert_eq!(SavedSession::load(&path).unwrap(), Some(session()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let dir_mode = std::fs::metadata(path.parent().unwrap())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(dir_mode & 0o777, 0o700);
        }

        let mut other = session();
        other.fingerprint = Some("ab".repeat(32));
        other.ca_file = None;
        other.save(&path).unwrap();
        assert_eq!(SavedSession::load(&path).unwrap(), Some(other));

        assert!(SavedSession::delete(&path).unwrap());
        assert!(!SavedSession::delete(&path).unwrap());
    }

    #[test]
    fn damaged_session_says_log_in_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SESSION_FILE);
        std::fs::write(&path, "server = 3").unwrap();
        let err = SavedSession::load(&path).unwrap_err().to_string();
        assert!(err.ends_with("; log in again"), "{err}");
    }

    #[test]
    fn debug_hides_the_token() {
        let text = format!("{:?}", session());
        assert!(!text.contains("secret-token"), "{text}");
    }

    #[test]
    fn expiry_and_trust() {
        let s = session();
        assert!(!s.is_expired(s.expires_unix_ms - 1));
        assert!(s.is_expired(s.expires_unix_ms));

        let mut fp = session();
        fp.ca_file = None;
        fp.fingerprint = Some("AB:".repeat(31) + "AB");
        assert!(matches!(fp.trust(), Ok(ServerTrust::Fingerprint(f)) if f == "ab".repeat(32)));
        fp.fingerprint = None;
        assert!(fp.trust().is_err());
    }
}
