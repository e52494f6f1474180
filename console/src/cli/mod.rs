//! `heraldctl`: the command line over [`crate::AdminClient`]. Argument
//! definitions live here; what each command does is in `commands`, how it
//! shows its results in `render`.
//!
//! Every command prints text for people by default and JSON with `--json`.
//! Results go to stdout, notes and prompts to stderr, so output can be piped
//! and captured.

mod commands;
mod render;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::alerts::AlertTargetSpec;
use crate::grants::{GrantSpec, ScopeSpec};
use crate::pb;

pub use commands::run;

const SCOPE_HELP: &str = "\
Capabilities: manage-org-units, enroll-agents, manage-computers, send-quick-alerts,
send-messages, manage-courses, answer-chat, manage-tickets, view-reports,
manage-admins, view-audit-log.

Scopes: \"org\" for the whole organisation, or \"unit:UNIT\" for the subtree under an
org unit, where UNIT is the unit's id or path (e.g. \"unit:/Branches/Branch 3\").";

/// Administer a Herald server: org units, enrollment tokens, computers,
/// admin accounts, grants, the audit log and quick alerts.
///
/// Log in once with `heraldctl login`; the session is saved in
/// $HERALD_CTL_HOME/session.toml (else $XDG_CONFIG_HOME/herald, else
/// ~/.config/herald) and used by every later command until it expires.
#[derive(Debug, Parser)]
#[command(name = "heraldctl", version, propagate_version = true)]
pub struct Cli {
    /// Print machine-readable JSON instead of text
    #[arg(long, global = true)]
    pub json: bool,

    /// Server address: https://host:port, host:port or host (port 7443).
    /// For `login`, the server to log in to; for other commands it
    /// overrides the address saved at login
    #[arg(long, global = true, value_name = "URL")]
    pub server: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Log in to a server and save the session for later commands
    ///
    /// The password is read from the first line of standard input with
    /// --password-stdin, else from the HERALD_PASSWORD environment variable,
    /// else asked for on the terminal. Logging in again to the same server
    /// may leave out --ca-file/--fingerprint and --user: they are taken from
    /// the saved session.
    Login(LoginArgs),
    /// End the session on the server and remove the saved session
    Logout,
    /// Show who you are logged in as and the grants you hold
    Whoami,
    /// Change your own password
    Passwd(PasswdArgs),
    /// List and change the org unit tree
    #[command(subcommand)]
    Org(OrgCommand),
    /// Create, list and revoke enrollment tokens for new computers
    #[command(subcommand)]
    Token(TokenCommand),
    /// List, inspect, move and revoke enrolled computers
    #[command(subcommand)]
    Computers(ComputersCommand),
    /// List, create and delete admin accounts
    #[command(subcommand)]
    Admins(AdminsCommand),
    /// Show, add and revoke an admin's grants (capability + scope)
    #[command(subcommand)]
    Grants(GrantsCommand),
    /// Show the audit log of admin actions, newest first
    Audit(AuditArgs),
    /// Send quick alerts to screens, follow their delivery, cancel them
    #[command(subcommand)]
    Alert(AlertCommand),
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// PEM file with the server's CA certificate
    #[arg(long, value_name = "FILE", conflicts_with = "fingerprint")]
    pub ca_file: Option<PathBuf>,

    /// SHA-256 fingerprint of the server's CA certificate (64 hex digits;
    /// colons and upper case are fine), instead of --ca-file
    #[arg(long, value_name = "FP")]
    pub fingerprint: Option<String>,

    /// Admin account to log in as
    #[arg(long, short = 'u', value_name = "NAME")]
    pub user: Option<String>,

    /// Read the password from the first line of standard input
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Args)]
pub struct PasswdArgs {
    /// Read the current password and the new one from the first two lines
    /// of standard input instead of asking on the terminal
    #[arg(long)]
    pub stdin: bool,
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Show the org unit tree with the id of every unit
    List,
    /// Create an org unit under PARENT
    Create {
        /// Parent unit: id or path ("/" is the root)
        parent: String,
        /// Name of the new unit
        name: String,
    },
    /// Rename an org unit
    Rename {
        /// The unit: id or path
        unit: String,
        /// Its new name
        name: String,
    },
    /// Move an org unit, with everything under it, to a new parent
    Move {
        /// The unit: id or path
        unit: String,
        /// The new parent: id or path
        new_parent: String,
    },
    /// Delete an org unit
    Delete {
        /// The unit: id or path
        unit: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an enrollment token and print it
    ///
    /// In text mode only the token goes to stdout, so
    /// `TOKEN=$(heraldctl token create --unit /Branches)` works. The token is
    /// shown only once.
    Create {
        /// Org unit the enrolled computers join: id or path
        #[arg(long, value_name = "UNIT")]
        unit: String,
        /// How long the token stays valid, e.g. 30m, 24h, 7days (default:
        /// the server's)
        #[arg(long, value_name = "DURATION", value_parser = parse_valid_for)]
        valid_for: Option<u64>,
        /// How many computers may enroll with it (default 1)
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        uses: Option<u32>,
    },
    /// List enrollment tokens (active ones unless --all)
    List {
        /// Also list expired, used up and revoked tokens
        #[arg(long)]
        all: bool,
    },
    /// Revoke an enrollment token so no further computer can use it
    Revoke {
        /// Token id as shown by `token list` (not the token itself)
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ComputersCommand {
    /// List enrolled computers
    List {
        /// Only computers in this unit's subtree: id or path
        #[arg(long, value_name = "UNIT")]
        unit: Option<String>,
        /// Also list revoked computers
        #[arg(long)]
        revoked: bool,
    },
    /// Show one computer in detail
    Show {
        /// Computer id
        id: String,
    },
    /// Move a computer to another org unit
    Move {
        /// Computer id
        id: String,
        /// The unit to move it to: id or path
        #[arg(long, value_name = "UNIT")]
        unit: String,
    },
    /// Revoke a computer: drop its connection and refuse its certificate
    ///
    /// This cannot be undone; the computer has to enroll again with a new
    /// token. Asks for confirmation unless --yes is given.
    Revoke {
        /// Computer id
        id: String,
        /// Do not ask for confirmation
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminsCommand {
    /// List admin accounts and their grants
    List,
    /// Create an admin account
    ///
    /// The password is read from standard input with --password-stdin, else
    /// asked for twice on the terminal.
    #[command(after_help = SCOPE_HELP)]
    Create {
        /// Name of the new admin
        name: String,
        /// Read the new admin's password from the first line of standard input
        #[arg(long)]
        password_stdin: bool,
        /// A grant as CAPABILITY=SCOPE, e.g. view-reports=org or
        /// "send-quick-alerts=unit:/Branches/Branch 3"; repeat for more
        #[arg(long = "grant", value_name = "CAP=SCOPE", value_parser = parse_grant)]
        grants: Vec<GrantSpec>,
    },
    /// Delete an admin account
    Delete {
        /// Admin name
        name: String,
    },
    /// Set a new password for another admin
    ResetPassword {
        /// Admin name
        name: String,
        /// Read the new password from the first line of standard input
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum GrantsCommand {
    /// Show an admin's grants
    List {
        /// Admin name
        name: String,
    },
    /// Give an admin a capability in one or more scopes
    #[command(after_help = SCOPE_HELP)]
    Add {
        /// Admin name
        name: String,
        /// Capability, e.g. send-messages
        #[arg(value_parser = parse_cap)]
        capability: pb::Capability,
        /// Where it applies: "org" or "unit:UNIT" (several allowed)
        #[arg(required = true, value_parser = parse_scope)]
        scopes: Vec<ScopeSpec>,
    },
    /// Take a capability away from an admin in one or more scopes
    #[command(after_help = SCOPE_HELP)]
    Revoke {
        /// Admin name
        name: String,
        /// Capability, e.g. send-messages
        #[arg(value_parser = parse_cap)]
        capability: pb::Capability,
        /// Where to take it away: "org" or "unit:UNIT" (several allowed)
        #[arg(required = true, value_parser = parse_scope)]
        scopes: Vec<ScopeSpec>,
    },
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only actions by this admin
    #[arg(long, value_name = "NAME")]
    pub admin: Option<String>,
    /// Only this action, e.g. computer.revoke
    #[arg(long, value_name = "ACTION")]
    pub action: Option<String>,
    /// Only actions concerning this org unit: id or path
    #[arg(long, value_name = "UNIT")]
    pub unit: Option<String>,
    /// Only entries since this long ago (e.g. 2h, 3days) or since a UTC time
    /// (e.g. 2025-03-01T08:00:00Z)
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Show at most this many entries
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,
}

const TARGET_HELP: &str = "\
Targets (--to, repeat for more; they add up):
  org:PATH      every computer in an org unit's subtree, e.g. \"org:/Branches/Branch 3\"
  org:ID        the same, by unit id
  computer:ID   one computer (ids as shown by `heraldctl computers list`)
  all           every computer you may send quick alerts to

You need \"send-quick-alerts\" on every target; if one is out of reach the
whole alert is refused and nothing is sent.";

#[derive(Debug, Subcommand)]
pub enum AlertCommand {
    /// Send a quick alert: shown on screen at once, no click needed
    ///
    /// In text mode only the alert id goes to stdout, so
    /// `ID=$(heraldctl alert send ...)` works; how many computers it went to
    /// and when it expires is noted on stderr.
    #[command(after_help = TARGET_HELP)]
    Send(AlertSendArgs),
    /// Show how far an alert has got: counts per state, per org unit and,
    /// with --computers, per computer
    Status {
        /// Alert id, e.g. al-12
        id: String,
        /// Also list every computer with its state, when it displayed the
        /// alert, on whose screen, and whether it is online
        #[arg(long)]
        computers: bool,
    },
    /// Follow an alert live: a line each time the counts change
    ///
    /// Ends by itself (exit code 0) once nothing can change any more: every
    /// copy dismissed, expired or cancelled. With --json, prints one JSON
    /// object per line.
    Watch {
        /// Alert id, e.g. al-12
        id: String,
    },
    /// List recent alerts, newest first
    List {
        /// Show at most this many alerts
        #[arg(long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=500))]
        limit: u32,
    },
    /// Cancel an alert: withdraw it from screens that still show it
    Cancel {
        /// Alert id, e.g. al-12
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct AlertSendArgs {
    /// Who gets it: org:PATH, org:ID, computer:ID or all (repeat for more)
    #[arg(long = "to", value_name = "TARGET", required = true, value_parser = parse_target)]
    pub to: Vec<AlertTargetSpec>,
    /// The headline (one line, at most 200 characters)
    #[arg(long, value_name = "TEXT")]
    pub title: String,
    /// The text (at most 4000 characters; http(s) links become clickable);
    /// "-" reads it from standard input
    #[arg(long, value_name = "TEXT")]
    pub body: String,
    /// How urgent: info, warning or critical
    #[arg(long, value_name = "PRIORITY", default_value = "info", value_parser = parse_prio)]
    pub priority: pb::Priority,
    /// Stop showing it after this long, e.g. 30m or 2h (default: the
    /// server's, 4h; at most 7 days)
    #[arg(long, value_name = "DURATION", value_parser = parse_expires, conflicts_with = "until")]
    pub expires: Option<std::time::Duration>,
    /// Stop showing it at this time: UTC "YYYY-MM-DD HH:MM" or RFC 3339
    /// (e.g. 2025-03-01T14:00:00+01:00)
    #[arg(long, value_name = "TIME", value_parser = parse_until)]
    pub until: Option<i64>,
    /// Send nothing: show how many computers (and how many online) each
    /// unit would get it on
    #[arg(long)]
    pub dry_run: bool,
}

fn parse_target(input: &str) -> Result<AlertTargetSpec, String> {
    AlertTargetSpec::parse(input).map_err(|e| e.to_string())
}

fn parse_prio(input: &str) -> Result<pb::Priority, String> {
    crate::parse_priority(input).map_err(|e| e.to_string())
}

/// How long an alert stays up: at least a second.
fn parse_expires(input: &str) -> Result<std::time::Duration, String> {
    let d = crate::timefmt::parse_duration(input).map_err(|e| e.to_string())?;
    if d.as_secs() == 0 {
        return Err("the alert must stay up for at least 1s".to_owned());
    }
    Ok(d)
}

fn parse_until(input: &str) -> Result<i64, String> {
    crate::timefmt::parse_time(input).map_err(|e| e.to_string())
}

fn parse_cap(input: &str) -> Result<pb::Capability, String> {
    crate::parse_capability(input).map_err(|e| e.to_string())
}

fn parse_scope(input: &str) -> Result<ScopeSpec, String> {
    ScopeSpec::parse(input).map_err(|e| e.to_string())
}

fn parse_grant(input: &str) -> Result<GrantSpec, String> {
    GrantSpec::parse(input).map_err(|e| e.to_string())
}

/// A token lifetime in whole seconds, at least one.
fn parse_valid_for(input: &str) -> Result<u64, String> {
    let secs = crate::timefmt::parse_duration(input)
        .map_err(|e| e.to_string())?
        .as_secs();
    if secs == 0 {
        return Err("the token must be valid for at least 1s".to_owned());
    }
    Ok(secs)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_typical_command_lines() {
        let ok = [
            vec![
                "heraldctl",
                "login",
                "--server",
                "h:7443",
                "--ca-file",
                "ca.pem",
                "--user",
                "root",
            ],
            vec!["heraldctl", "--json", "org", "list"],
            vec!["heraldctl", "org", "create", "/", "Branches"],
            vec![
                "heraldctl",
                "token",
                "create",
                "--unit",
                "/Branches",
                "--valid-for",
                "24h",
                "--uses",
                "3",
            ],
            vec!["heraldctl", "computers", "revoke", "abc", "--yes"],
            vec![
                "heraldctl",
                "admins",
                "create",
                "bob",
                "--password-stdin",
                "--grant",
                "send-quick-alerts=unit:/Branches/Branch 3",
                "--grant",
                "view-reports=org",
            ],
            vec![
                "heraldctl",
                "grants",
                "add",
                "bob",
                "send-messages",
                "org",
                "unit:/HR",
            ],
            vec![
                "heraldctl",
                "audit",
                "--since",
                "2h",
                "--limit",
                "5",
                "--json",
            ],
            vec![
                "heraldctl",
                "alert",
                "send",
                "--to",
                "org:/Branches/Branch 3",
                "--to",
                "computer:c-12",
                "--title",
                "Network outage",
                "--body",
                "-",
                "--priority",
                "critical",
                "--expires",
                "2h",
            ],
            vec![
                "heraldctl",
                "alert",
                "send",
                "--to",
                "all",
                "--title",
                "t",
                "--body",
                "b",
                "--until",
                "2025-03-01 14:00",
            ],
            vec!["heraldctl", "alert", "status", "al-12", "--computers"],
            vec!["heraldctl", "--json", "alert", "watch", "al-12"],
            vec!["heraldctl", "alert", "list", "--limit", "5"],
            vec!["heraldctl", "alert", "cancel", "al-12"],
        ];
        for args in ok {
            assert!(Cli::try_parse_from(&args).is_ok(), "{args:?}");
        }
        let bad = [
            vec!["heraldctl", "login", "--ca-file", "a", "--fingerprint", "b"],
            vec!["heraldctl", "token", "create", "--unit", "/", "--uses", "0"],
            vec![
                "heraldctl",
                "token",
                "create",
                "--unit",
                "/",
                "--valid-for",
                "soon",
            ],
            vec![
                "heraldctl",
                "token",
                "create",
                "--unit",
                "/",
                "--valid-for",
                "10ms",
            ],
            vec!["heraldctl", "grants", "add", "bob", "fly", "org"],
            vec!["heraldctl", "grants", "add", "bob", "send-messages"],
            vec!["heraldctl", "grants", "add", "bob", "send-messages", "/HR"],
            vec![
                "heraldctl",
                "admins",
                "create",
                "bob",
                "--grant",
                "view-reports",
            ],
            vec!["heraldctl", "audit", "--limit", "0"],
            // Alerts: a target, a title and a body are needed.
            vec!["heraldctl", "alert", "send", "--title", "t", "--body", "b"],
            vec!["heraldctl", "alert", "send", "--to", "all", "--body", "b"],
            vec![
                "heraldctl",
                "alert",
                "send",
                "--to",
                "/HR",
                "--title",
                "t",
                "--body",
                "b",
            ],
            vec![
                "heraldctl",
                "alert",
                "send",
                "--to",
                "all",
                "--title",
                "t",
                "--body",
                "b",
                "--priority",
                "urgent",
            ],
            vec![
                "heraldctl",
                "alert",
                "send",
                "--to",
                "all",
                "--title",
                "t",
                "--body",
                "b",
                "--expires",
                "1h",
                "--until",
                "2025-03-01 14:00",
            ],
            vec![
                "heraldctl",
                "alert",
                "send",
                "--to",
                "all",
                "--title",
                "t",
                "--body",
                "b",
                "--until",
                "14:00",
            ],
            vec![
                "heraldctl",
                "alert",
                "send",
                "--to",
                "all",
                "--title",
                "t",
                "--body",
                "b",
                "--expires",
                "0s",
            ],
            vec!["heraldctl", "alert", "status"],
            vec!["heraldctl", "alert", "list", "--limit", "0"],
        ];
        for args in bad {
            assert!(Cli::try_parse_from(&args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn alert_send_collects_targets_and_defaults() {
        let parse = |extra: &[&str]| {
            let mut args = vec![
                "heraldctl",
                "alert",
                "send",
                "--to",
                "org:/HR",
                "--to",
                "all",
                "--title",
                "t",
                "--body",
                "b",
            ];
            args.extend_from_slice(extra);
            match Cli::try_parse_from(&args).map(|c| c.command) {
                Ok(Command::Alert(AlertCommand::Send(a))) => a,
                other => panic!("{args:?}: {other:?}"),
            }
        };
        let a = parse(&[]);
        assert_eq!(
            a.to,
            [AlertTargetSpec::Unit("/HR".into()), AlertTargetSpec::All]
        );
        assert_eq!(a.priority, pb::Priority::Info);
        assert_eq!((a.expires, a.until), (None, None));

        let a = parse(&["--priority", "warning", "--expires", "90m"]);
        assert_eq!(a.priority, pb::Priority::Warning);
        assert_eq!(a.expires.map(|d| d.as_secs()), Some(5400));

        let a = parse(&["--until", "2025-03-01T15:00:00+01:00"]);
        assert_eq!(a.until, Some(1_740_837_600_000));
    }
}
