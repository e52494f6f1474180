//! `herald-server` settings: defaults, then a TOML file, then `HERALD_*`
//! environment variables.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// The example file shipped in the repository; it documents every option.
pub const EXAMPLE: &str = include_str!("../herald-server.example.toml");

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    pub heartbeat_interval_secs: u32,
    pub admin_session_ttl_secs: u64,
    pub agent_cert_validity_days: u32,
    pub token_default_validity_secs: u64,
    pub token_max_validity_days: u32,
    pub group_commit_window_ms: u64,
    pub agent_send_queue: usize,
    pub max_concurrent_handshakes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], herald_proto::tls::DEFAULT_PORT)),
            heartbeat_interval_secs: 30,
            admin_session_ttl_secs: 8 * 3600,
            agent_cert_validity_days: 365,
            token_default_validity_secs: 7 * 86400,
            token_max_validity_days: 90,
            group_commit_window_ms: 2,
            agent_send_queue: 256,
            max_concurrent_handshakes: 512,
        }
    }
}

const ENV_KEYS: [&str; 9] = [
    "listen",
    "heartbeat_interval_secs",
    "admin_session_ttl_secs",
    "agent_cert_validity_days",
    "token_default_validity_secs",
    "token_max_validity_days",
    "group_commit_window_ms",
    "agent_send_queue",
    "max_concurrent_handshakes",
];

impl Config {
    /// Defaults, then `file` if given, then `HERALD_*` variables.
    pub fn load(file: Option<&Path>) -> Result<Config, String> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(f) = file {
            if !f.exists() {
                return Err(format!("config file {} does not exist", f.display()));
            }
            fig = fig.merge(Toml::file(f));
        }
        let config: Config = fig
            .merge(Env::prefixed("HERALD_").only(&ENV_KEYS))
            .extract()
            .map_err(|e| format!("invalid configuration: {e}"))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        if self.heartbeat_interval_secs == 0 {
            return Err("heartbeat_interval_secs must be at least 1".into());
        }
        if self.agent_send_queue < 8 {
            return Err("agent_send_queue must be at least 8".into());
        }
        if self.max_concurrent_handshakes == 0 {
            return Err("max_concurrent_handshakes must be at least 1".into());
        }
        if self.agent_cert_validity_days == 0 || self.token_max_validity_days == 0 {
            return Err("validity periods must be at least one day".into());
        }
        Ok(())
    }

    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_secs(u64::from(self.heartbeat_interval_secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_file_matches_defaults() {
        let parsed: Config = toml::from_str(EXAMPLE).unwrap();
        assert_eq!(parsed, Config::default());
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure signature
    fn file_then_env_layering() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "h.toml",
                "listen = \"127.0.0.1:9000\"\nheartbeat_interval_secs = 5\n",
            )?;
            jail.set_env("HERALD_HEARTBEAT_INTERVAL_SECS", "7");
            jail.set_env("HERALD_BOOTSTRAP_PASSWORD", "ignored by config");
            let c = Config::load(Some(Path::new("h.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(c.listen, "127.0.0.1:9000".parse().unwrap());
            assert_eq!(c.heartbeat_interval_secs, 7);
            jail.create_file("bad.toml", "lisen = 1\n")?;
            assert!(
                Config::load(Some(Path::new("bad.toml")))
                    .unwrap_err()
                    .contains("lisen")
            );
            Ok(())
        });
    }
}
