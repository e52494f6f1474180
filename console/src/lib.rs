//! Herald's admin client: a small library over the `herald.v1` `AdminService`
//! (connecting over TLS, logging in, carrying the session token, naming
//! org units, capabilities and scopes the way admins type them, keeping a
//! saved session) and `heraldctl`, the scriptable command line built on it.
//! The desktop console uses the same library.
//!
//! Architecture invariant: this crate knows the wire contract and how to talk
//! to the server, nothing about how or where the server stores anything. It
//! never decides what an admin may do; it sends the request and shows the
//! server's answer.

pub mod alerts;
pub mod cli;
mod client;
mod error;
pub mod grants;
pub mod session;
pub mod timefmt;

pub use alerts::{AlertTargetSpec, parse_alert_target, parse_priority};
pub use client::{AdminClient, AdminRpc, BearerToken, resolve_unit};
pub use error::ClientError;
pub use grants::{GrantSpec, ScopeSpec, capability_name, parse_capability};
pub use herald_proto::pb;
pub use herald_proto::tls::ServerTrust;
pub use session::SavedSession;
