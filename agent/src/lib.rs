//! The Herald endpoint agent.
//!
//! Two processes: the **service** (one per computer, a system service) holds
//! the computer's key and certificate and its one session to the server; the
//! **session part** (one per logged-in user, started in the desktop session)
//! connects to the service over a local socket. The service learns which OS
//! user a session part runs as from the socket's peer credentials, never from
//! what the session part says.
//!
//! Architecture invariant: the service links no GUI library; windows and
//! notifications belong to the session part.

pub mod backoff;
pub mod core;
pub mod enroll;
pub mod items;
pub mod local;
pub mod pacing;
pub mod service;
pub mod session;
pub mod state;

/// This agent's version, reported to the server.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Host name of this computer.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into())
}

/// "Debian GNU/Linux 12 (bookworm)" from /etc/os-release, else the OS family.
pub fn os_description() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| std::env::consts::OS.to_owned())
}
