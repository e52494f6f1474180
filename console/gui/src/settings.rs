//! What the console remembers between runs: the server, how it is trusted,
//! the last user name and the interface language. Never a password or a
//! session token.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::i18n::Lang;

/// Environment variable naming the directory that holds `console.toml`.
pub const HOME_ENV: &str = "HERALD_CONSOLE_HOME";

/// File name of the settings inside their directory.
pub const SETTINGS_FILE: &str = "console.toml";

/// How the console trusts the server's certificate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrustMode {
    /// The server's CA certificate file (the data dir's `tls/ca.pem`).
    #[default]
    CaFile,
    /// The SHA-256 fingerprint of the server's CA.
    Fingerprint,
}

/// The remembered settings, saved as TOML.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub server: String,
    pub trust: TrustMode,
    pub ca_file: String,
    pub fingerprint: String,
    pub user: String,
    pub lang: Lang,
}

impl Settings {
    /// Where the settings are kept: `$HERALD_CONSOLE_HOME/console.toml`,
    /// else `$XDG_CONFIG_HOME/herald/console.toml`, else
    /// `$HOME/.config/herald/console.toml`.
    pub fn default_path() -> Option<PathBuf> {
        let set = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        if let Some(dir) = set(HOME_ENV) {
            return Some(dir.join(SETTINGS_FILE));
        }
        if let Some(dir) = set("XDG_CONFIG_HOME") {
            return Some(dir.join("herald").join(SETTINGS_FILE));
        }
        set("HOME").map(|dir| dir.join(".config").join("herald").join(SETTINGS_FILE))
    }

    /// Reads the settings at `path`. A missing or damaged file gives the
    /// defaults (logged): the console must open either way.
    pub fn load(path: &Path) -> Settings {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).unwrap_or_else(|error| {
                tracing::warn!(path = %path.display(), %error, "ignoring damaged console settings");
                Settings::default()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Settings::default(),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "cannot read console settings");
                Settings::default()
            }
        }
    }

    /// Writes the settings to `path`, replacing the old file atomically.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let text = toml::to_string(self).map_err(std::io::Error::other)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_loads_without_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join(SETTINGS_FILE);
        assert_eq!(Settings::load(&path), Settings::default());

        let settings = Settings {
            server: "https://herald.example:7443".into(),
            trust: TrustMode::Fingerprint,
            ca_file: String::new(),
            fingerprint: "ab".repeat(32),
            user: "alice".into(),
            lang: Lang::Pl,
        };
        settings.save(&path).unwrap();
        assert_eq!(Settings::load(&path), settings);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains("password") && !text.contains("token"),
            "{text}"
        );

        std::fs::write(&path, "server = 3").unwrap();
        assert_eq!(Settings::load(&path), Settings::default());
    }
}
