//! What each heraldctl command does. Every command resolves what the user
//! typed (unit paths, capabilities, scopes) against the server, makes one or
//! a few calls, and prints the result as text or JSON.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, anyhow, bail};
use herald_proto::tls::normalize_fingerprint;
use serde_json::{Value, json};

use super::render::{
    ALERT_HEADERS, AUDIT_HEADERS, COMPUTER_HEADERS, TOKEN_HEADERS, admin_json, alert_rows,
    alert_status_json, alert_status_text, alert_summary_json, alert_summary_text, audience_json,
    audience_table, audit_json, audit_rows, computer_details, computer_json, computer_rows, fields,
    grant_rows, grants_line, note, out, out_json, out_json_line, send_alert_json, table,
    token_json, token_rows, unit_json, unit_tree, watch_line,
};
use super::{
    AdminsCommand, AlertCommand, AlertSendArgs, AuditArgs, Cli, Command, ComputersCommand,
    GrantsCommand, LoginArgs, OrgCommand, PasswdArgs, TokenCommand,
};
use crate::alerts::resolve_alert_targets;
use crate::grants::{ScopeSpec, resolve_grants, resolve_scopes};
use crate::session::read_ca_file;
use crate::timefmt::{format_near, format_unix_ms, now_unix_ms, parse_since};
use crate::{AdminClient, AdminRpc, ClientError, SavedSession, ServerTrust, pb, resolve_unit};

/// Environment variable `login` takes the password from when it is not
/// given on stdin.
const PASSWORD_ENV: &str = "HERALD_PASSWORD";

/// Runs one heraldctl command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let ctx = Ctx {
        json: cli.json,
        server: cli.server,
    };
    match cli.command {
        Command::Login(args) => login(&ctx, args).await,
        Command::Logout => logout(&ctx).await,
        Command::Whoami => whoami(&ctx).await,
        Command::Passwd(args) => passwd(&ctx, args).await,
        Command::Org(cmd) => org(&ctx, cmd).await,
        Command::Token(cmd) => token(&ctx, cmd).await,
        Command::Computers(cmd) => computers(&ctx, cmd).await,
        Command::Admins(cmd) => admins(&ctx, cmd).await,
        Command::Grants(cmd) => grants(&ctx, cmd).await,
        Command::Audit(args) => audit(&ctx, args).await,
        Command::Alert(cmd) => alert(&ctx, cmd).await,
    }
}

/// What every command needs from the global flags.
struct Ctx {
    json: bool,
    server: Option<String>,
}

impl Ctx {
    /// Prints the JSON form with --json, else the text form. Only the one
    /// needed is built.
    fn emit(
        &self,
        json: impl FnOnce() -> Value,
        text: impl FnOnce() -> String,
    ) -> anyhow::Result<()> {
        if self.json {
            out_json(&json())
        } else {
            out(&text())
        }
    }

    /// Connects with the saved session, or explains how to log in.
    async fn session(&self) -> anyhow::Result<Session> {
        let path = SavedSession::default_path()?;
        let saved = SavedSession::load(&path)?
            .ok_or_else(|| anyhow!("not logged in: run {}", login_command(None)))?;
        if saved.is_expired(now_unix_ms()) {
            bail!(
                "not logged in: the session of {} expired at {}; run {}",
                saved.user,
                format_unix_ms(saved.expires_unix_ms),
                login_command(Some(&saved))
            );
        }
        let server = self.server.clone().unwrap_or_else(|| saved.server.clone());
        let trust = saved.trust()?;
        let client = AdminClient::connect(&server, trust)
            .await?
            .with_token(saved.token.clone());
        Ok(Session { client, saved })
    }
}

/// A connection made with the saved session.
struct Session {
    client: AdminClient,
    saved: SavedSession,
}

impl Session {
    fn rpc(&self) -> AdminRpc {
        self.client.rpc()
    }

    /// Turns a failed call into the error to show; a refused session token
    /// comes with the command that logs in again.
    fn fail(&self, err: impl Into<ClientError>) -> anyhow::Error {
        match err.into() {
            ClientError::Status {
                code: tonic::Code::Unauthenticated,
                message,
            } => anyhow!(
                "not logged in: {message}; run {}",
                login_command(Some(&self.saved))
            ),
            other => other.into(),
        }
    }

    async fn units(&self) -> anyhow::Result<Vec<pb::OrgUnit>> {
        self.client.units().await.map_err(|e| self.fail(e))
    }
}

/// The login command line to suggest, filled in from the saved session.
fn login_command(saved: Option<&SavedSession>) -> String {
    let Some(s) = saved else {
        return "heraldctl login --server URL --ca-file FILE --user NAME".to_owned();
    };
    let trust = match (&s.ca_file, &s.fingerprint) {
        (Some(file), _) => format!("--ca-file {}", shell_quote(&file.display().to_string())),
        (None, Some(fp)) => format!("--fingerprint {fp}"),
        (None, None) => "--ca-file FILE".to_owned(),
    };
    format!(
        "heraldctl login --server {} {trust} --user {}",
        shell_quote(&s.server),
        shell_quote(&s.user)
    )
}

/// Quotes `word` for a POSIX shell if it needs it.
fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@=,+%".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

// ---------------------------------------------------------------- passwords

/// Reads `names.len()` lines from stdin, one per name, without the line end.
fn stdin_lines(names: &[&str]) -> anyhow::Result<Vec<String>> {
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let line = lines
                .next()
                .ok_or_else(|| anyhow!("expected the {name} on line {} of standard input", i + 1))?
                .context("cannot read standard input")?;
            let line = line.strip_suffix('\r').unwrap_or(&line).to_owned();
            non_empty(line, name)
        })
        .collect()
}

/// One line from stdin (see [`stdin_lines`]).
fn stdin_line(name: &str) -> anyhow::Result<String> {
    Ok(stdin_lines(&[name])?.into_iter().next().unwrap_or_default())
}

fn non_empty(password: String, name: &str) -> anyhow::Result<String> {
    if password.is_empty() {
        bail!("the {name} is empty");
    }
    Ok(password)
}

/// Asks on the terminal without echo.
fn prompt(question: &str, stdin_flag: &str) -> anyhow::Result<String> {
    rpassword::prompt_password(question)
        .map_err(|e| anyhow!("cannot ask for the password ({e}): pass {stdin_flag}"))
}

/// The login password: stdin, else $HERALD_PASSWORD, else the terminal.
fn login_password(user: &str, from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin {
        return stdin_line("password");
    }
    if let Some(password) = std::env::var_os(PASSWORD_ENV) {
        let password = password
            .into_string()
            .map_err(|_| anyhow!("{PASSWORD_ENV} is not valid UTF-8"))?;
        return non_empty(password, "password in HERALD_PASSWORD");
    }
    let password = prompt(
        &format!("password for {user}: "),
        "--password-stdin or set HERALD_PASSWORD",
    )?;
    non_empty(password, "password")
}

/// A new password: stdin, else asked twice on the terminal.
fn new_password(for_whom: &str, from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin {
        return stdin_line("new password");
    }
    let first = non_empty(
        prompt(
            &format!("new password for {for_whom}: "),
            "--password-stdin",
        )?,
        "new password",
    )?;
    let second = prompt("repeat the new password: ", "--password-stdin")?;
    if first != second {
        bail!("the passwords do not match");
    }
    Ok(first)
}

/// Asks a yes/no question on the terminal; without one, tells the user to
/// pass `flag`.
fn confirm(question: &str, flag: &str) -> anyhow::Result<bool> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!("not asking for confirmation without a terminal: pass {flag}");
    }
    let mut stderr = std::io::stderr();
    write!(stderr, "{question} [y/N] ").and_then(|()| stderr.flush())?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

// ------------------------------------------------------------------ session

async fn login(ctx: &Ctx, args: LoginArgs) -> anyhow::Result<()> {
    let path = SavedSession::default_path()?;
    let saved = SavedSession::load(&path).unwrap_or_else(|e| {
        note(&format!("warning: ignoring the saved session: {e}"));
        None
    });
    let server = ctx
        .server
        .clone()
        .or_else(|| saved.as_ref().map(|s| s.server.clone()))
        .ok_or_else(|| anyhow!("login needs the server: pass --server URL"))?;
    let earlier = saved.filter(|s| s.server == server);

    let (trust, ca_file, fingerprint) = if let Some(file) = args.ca_file {
        // Later commands may run from another directory.
        let file = std::path::absolute(&file).unwrap_or(file);
        (read_ca_file(&file)?, Some(file), None)
    } else if let Some(fp) = args.fingerprint {
        let fp = normalize_fingerprint(&fp)?;
        (ServerTrust::Fingerprint(fp.clone()), None, Some(fp))
    } else if let Some(s) = &earlier {
        (s.trust()?, s.ca_file.clone(), s.fingerprint.clone())
    } else {
        bail!("login needs to know how to trust {server}: pass --ca-file FILE or --fingerprint FP");
    };
    let user = args
        .user
        .or_else(|| earlier.map(|s| s.user))
        .ok_or_else(|| anyhow!("login needs the admin name: pass --user NAME"))?;
    let password = login_password(&user, args.password_stdin)?;

    let mut client = AdminClient::connect(&server, trust).await?;
    let response = client.login(&user, &password).await?;
    let name = response
        .admin
        .as_ref()
        .map(|a| a.name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or(user);
    let session = SavedSession {
        server: server.clone(),
        ca_file,
        fingerprint,
        user: name.clone(),
        token: response.session_token,
        expires_unix_ms: response.expires_unix_ms,
    };
    session.save(&path)?;
    ctx.emit(
        || {
            json!({
                "user": name,
                "server": server,
                "expires_unix_ms": session.expires_unix_ms,
                "session_file": path,
            })
        },
        || {
            format!(
                "logged in as {name} to {server} (session valid until {})",
                format_unix_ms(session.expires_unix_ms)
            )
        },
    )
}

async fn logout(ctx: &Ctx) -> anyhow::Result<()> {
    let path = SavedSession::default_path()?;
    let Some(saved) = SavedSession::load(&path)? else {
        return ctx.emit(
            || json!({ "logged_out": false }),
            || "not logged in".to_owned(),
        );
    };
    if !saved.is_expired(now_unix_ms()) {
        let server = ctx.server.clone().unwrap_or_else(|| saved.server.clone());
        let ended = async {
            let client = AdminClient::connect(&server, saved.trust()?)
                .await?
                .with_token(saved.token.clone());
            client.rpc().logout(pb::LogoutRequest {}).await?;
            Ok::<_, ClientError>(())
        }
        .await;
        match ended {
            Ok(()) => {}
            // The server has already forgotten the session.
            Err(e) if e.code() == Some(tonic::Code::Unauthenticated) => {}
            Err(e) => note(&format!(
                "warning: the server did not end the session ({e}); removing it here anyway"
            )),
        }
    }
    SavedSession::delete(&path)?;
    ctx.emit(
        || json!({ "logged_out": true, "user": saved.user, "server": saved.server }),
        || format!("logged out {} from {}", saved.user, saved.server),
    )
}

async fn whoami(ctx: &Ctx) -> anyhow::Result<()> {
    let s = ctx.session().await?;
    let me = s.client.whoami().await.map_err(|e| s.fail(e))?;
    let units = s.units().await?;
    ctx.emit(
        || {
            let mut value = admin_json(&me, &units);
            value["server"] = json!(s.saved.server);
            value["session_expires_unix_ms"] = json!(s.saved.expires_unix_ms);
            value
        },
        || {
            let mut text = fields(&[
                ("name", me.name.clone()),
                ("server", s.saved.server.clone()),
                ("session ends", format_unix_ms(s.saved.expires_unix_ms)),
                ("created", created(me.created_unix_ms, &me.created_by)),
            ]);
            text.push('\n');
            text.push_str(&grants_text(&me, &units));
            text
        },
    )
}

fn created(at_ms: i64, by: &str) -> String {
    if by.is_empty() {
        format_unix_ms(at_ms)
    } else {
        format!("{} by {by}", format_unix_ms(at_ms))
    }
}

fn grants_text(admin: &pb::AdminInfo, units: &[pb::OrgUnit]) -> String {
    if admin.grants.is_empty() {
        format!("{} holds no grants", admin.name)
    } else {
        table(&["CAPABILITY", "SCOPE"], &grant_rows(&admin.grants, units))
    }
}

async fn passwd(ctx: &Ctx, args: PasswdArgs) -> anyhow::Result<()> {
    let s = ctx.session().await?;
    let (old_password, new_password) = if args.stdin {
        let mut lines = stdin_lines(&["current password", "new password"])?;
        let new = lines.pop().unwrap_or_default();
        let old = lines.pop().unwrap_or_default();
        (old, new)
    } else {
        let old = non_empty(prompt("current password: ", "--stdin")?, "current password")?;
        (old, new_password(&s.saved.user, false)?)
    };
    s.rpc()
        .change_own_password(pb::ChangeOwnPasswordRequest {
            old_password,
            new_password,
        })
        .await
        .map_err(|e| s.fail(e))?;
    ctx.emit(
        || json!({ "password_changed": true, "user": s.saved.user }),
        || format!("changed the password of {}", s.saved.user),
    )
}

// ---------------------------------------------------------------- org units

async fn org(ctx: &Ctx, cmd: OrgCommand) -> anyhow::Result<()> {
    let s = ctx.session().await?;
    let units = s.units().await?;
    match cmd {
        OrgCommand::List => ctx.emit(
            || Value::Array(units.iter().map(unit_json).collect()),
            || unit_tree(&units),
        ),
        OrgCommand::Create { parent, name } => {
            let parent = resolve_unit(&units, &parent)?;
            let unit = s
                .rpc()
                .create_org_unit(pb::CreateOrgUnitRequest {
                    parent_id: parent.id.clone(),
                    name,
                })
                .await
                .map_err(|e| s.fail(e))?
                .into_inner();
            ctx.emit(
                || unit_json(&unit),
                || format!("created org unit {} (id {})", unit.path, unit.id),
            )
        }
        OrgCommand::Rename { unit, name } => {
            let before = resolve_unit(&units, &unit)?;
            let after = s
                .rpc()
                .rename_org_unit(pb::RenameOrgUnitRequest {
                    id: before.id.clone(),
                    name,
                })
                .await
                .map_err(|e| s.fail(e))?
                .into_inner();
            ctx.emit(
                || unit_json(&after),
                || format!("renamed org unit {} to {}", before.path, after.path),
            )
        }
        OrgCommand::Move { unit, new_parent } => {
            let before = resolve_unit(&units, &unit)?;
            let parent = resolve_unit(&units, &new_parent)?;
            let after = s
                .rpc()
                .move_org_unit(pb::MoveOrgUnitRequest {
                    id: before.id.clone(),
                    new_parent_id: parent.id.clone(),
                })
                .await
                .map_err(|e| s.fail(e))?
                .into_inner();
            ctx.emit(
                || unit_json(&after),
                || format!("moved org unit {} to {}", before.path, after.path),
            )
        }
        OrgCommand::Delete { unit } => {
            let unit = resolve_unit(&units, &unit)?;
            s.rpc()
                .delete_org_unit(pb::DeleteOrgUnitRequest {
                    id: unit.id.clone(),
                })
                .await
                .map_err(|e| s.fail(e))?;
            ctx.emit(
                || json!({ "deleted": unit_json(unit) }),
                || format!("deleted org unit {} (id {})", unit.path, unit.id),
            )
        }
    }
}

// ------------------------------------------------------- enrollment tokens

async fn token(ctx: &Ctx, cmd: TokenCommand) -> anyhow::Result<()> {
    let s = ctx.session().await?;
    let now = now_unix_ms();
    match cmd {
        TokenCommand::Create {
            unit,
            valid_for,
            uses,
        } => {
            let units = s.units().await?;
            let unit = resolve_unit(&units, &unit)?;
            let created = s
                .rpc()
                .create_enrollment_token(pb::CreateEnrollmentTokenRequest {
                    org_unit_id: unit.id.clone(),
                    valid_for_secs: valid_for.unwrap_or(0),
                    max_uses: uses.unwrap_or(0),
                })
                .await
                .map_err(|e| s.fail(e))?
                .into_inner();
            let info = created.info.clone().unwrap_or_default();
            if ctx.json {
                return out_json(&json!({
                    "token": created.token,
                    "info": token_json(&info, now),
                }));
            }
            out(&created.token)?;
            note(&format!(
                "enrollment token {} for {}: valid until {}, {} use{}; it is shown only this once",
                info.id,
                if info.org_unit_path.is_empty() {
                    &unit.path
                } else {
                    &info.org_unit_path
                },
                format_unix_ms(info.expires_unix_ms),
                info.max_uses.max(1),
                if info.max_uses > 1 { "s" } else { "" },
            ));
            Ok(())
        }
        TokenCommand::List { all } => {
            let tokens = s
                .rpc()
                .list_enrollment_tokens(pb::ListEnrollmentTokensRequest {
                    include_inactive: all,
                })
                .await
                .map_err(|e| s.fail(e))?
                .into_inner()
                .tokens;
            if tokens.is_empty() && !ctx.json {
                note(if all {
                    "no enrollment tokens"
                } else {
                    "no active enrollment tokens (--all lists inactive ones too)"
                });
                return Ok(());
            }
            ctx.emit(
                || Value::Array(tokens.iter().map(|t| token_json(t, now)).collect()),
                || table(&TOKEN_HEADERS, &token_rows(&tokens, now)),
            )
        }
        TokenCommand::Revoke { id } => {
            let revoked = s
                .rpc()
                .revoke_enrollment_token(pb::RevokeEnrollmentTokenRequest { id })
                .await
                .map_err(|e| s.fail(e))?
                .into_inner();
            ctx.emit(
                || token_json(&revoked, now),
                || {
                    format!(
                        "revoked enrollment token {} for {}",
                        revoked.id, revoked.org_unit_path
                    )
                },
            )
        }
    }
}

// ---------------------------------------------------------------- computers

async fn computers(ctx: &Ctx, cmd: ComputersCommand) -> anyhow::Result<()> {
    let s = ctx.session().await?;
    let now = now_unix_ms();
    match cmd {
        ComputersCommand::List { unit, revoked } => {
            let org_unit_id = match unit {
                Some(spec) => resolve_unit(&s.units().await?, &spec)?.id.clone(),
                None => String::new(),
            };
            let list = s
                .rpc()
                .list_computers(pb::ListComputersRequest {
                    org_unit_id,
                    include_revoked: revoked,
                })
                .await
                .map_err(|e| s.fail(e))?
                .into_inner()
                .computers;
            if list.is_empty() && !ctx.json {
                note("no computers");
                return Ok(());
            }
            ctx.emit(
                || Value::Array(list.iter().map(computer_json).collect()),
                || table(&COMPUTER_HEADERS, &computer_rows(&list, now)),
            )
        }
        ComputersCommand::Show { id } => {
            let computer = get_computer(&s, id).await?;
            ctx.emit(
                || computer_json(&computer),
                || computer_details(&computer, now),
            )
        }
        ComputersCommand::Move { id, unit } => {
            let units = s.units().await?;
            let unit = resolve_unit(&units, &unit)?;
            let moved = s
                .rpc()
                .move_computer(pb::MoveComputerRequest {
                    id,
                    org_unit_id: unit.id.clone(),
                })
                .await
                .map_err(|e| s.fail(e))?
                .into_inner();
            ctx.emit(
                || computer_json(&moved),
                || {
                    format!(
                        "moved computer {} ({}) to {}",
                        moved.hostname, moved.id, unit.path
                    )
                },
            )
        }
        ComputersCommand::Revoke { id, yes } => {
            if !yes {
                if !std::io::stdin().is_terminal() {
                    bail!("not revoking computer {id} without confirmation: pass --yes");
                }
                let computer = get_computer(&s, id.clone()).await?;
                let question = format!(
                    "revoke computer {} ({}) in {}? It is disconnected now and must enroll again",
                    computer.hostname, computer.id, computer.org_unit_path
                );
                if !confirm(&question, "--yes")? {
                    bail!("cancelled: computer {id} was not revoked");
                }
            }
            let revoked = s
                .rpc()
                .revoke_computer(pb::RevokeComputerRequest { id })
                .await
                .map_err(|e| s.fail(e))?
                .into_inner();
            ctx.emit(
                || computer_json(&revoked),
                || format!("revoked computer {} ({})", revoked.hostname, revoked.id),
            )
        }
    }
}

async fn get_computer(s: &Session, id: String) -> anyhow::Result<pb::Computer> {
    Ok(s.rpc()
        .get_computer(pb::GetComputerRequest { id })
        .await
        .map_err(|e| s.fail(e))?
        .into_inner())
}

// ------------------------------------------------------- admins and grants

async fn admins(ctx: &Ctx, cmd: AdminsCommand) -> anyhow::Result<()> {
    let s = ctx.session().await?;
    match cmd {
        AdminsCommand::List => {
            let list = list_admins(&s).await?;
            let units = s.units().await?;
            ctx.emit(
                || Value::Array(list.iter().map(|a| admin_json(a, &units)).collect()),
                || {
                    let rows: Vec<Vec<String>> = list
                        .iter()
                        .map(|a| {
                            vec![
                                a.name.clone(),
                                format_unix_ms(a.created_unix_ms),
                                if a.created_by.is_empty() {
                                    "-".to_owned()
                                } else {
                                    a.created_by.clone()
                                },
                                grants_line(&a.grants, &units),
                            ]
                        })
                        .collect();
                    table(&["NAME", "CREATED", "CREATED BY", "GRANTS"], &rows)
                },
            )
        }
        AdminsCommand::Create {
            name,
            password_stdin,
            grants,
        } => {
            let units = if grants.is_empty() {
                Vec::new()
            } else {
                s.units().await?
            };
            let grants = resolve_grants(&grants, &units)?;
            let password = new_password(&name, password_stdin)?;
            let admin = s
                .rpc()
                .create_admin(pb::CreateAdminRequest {
                    name,
                    password,
                    grants,
                })
                .await
                .map_err(|e| s.fail(e))?
                .into_inner();
            ctx.emit(
                || admin_json(&admin, &units),
                || {
                    format!(
                        "created admin {}\n\n{}",
                        admin.name,
                        grants_text(&admin, &units)
                    )
                },
            )
        }
        AdminsCommand::Delete { name } => {
            s.rpc()
                .delete_admin(pb::DeleteAdminRequest { name: name.clone() })
                .await
                .map_err(|e| s.fail(e))?;
            ctx.emit(
                || json!({ "deleted": name }),
                || format!("deleted admin {name}"),
            )
        }
        AdminsCommand::ResetPassword {
            name,
            password_stdin,
        } => {
            let new_password = new_password(&name, password_stdin)?;
            s.rpc()
                .reset_admin_password(pb::ResetAdminPasswordRequest {
                    name: name.clone(),
                    new_password,
                })
                .await
                .map_err(|e| s.fail(e))?;
            ctx.emit(
                || json!({ "password_reset": name }),
                || format!("set a new password for {name}"),
            )
        }
    }
}

async fn list_admins(s: &Session) -> anyhow::Result<Vec<pb::AdminInfo>> {
    Ok(s.rpc()
        .list_admins(pb::ListAdminsRequest {})
        .await
        .map_err(|e| s.fail(e))?
        .into_inner()
        .admins)
}

async fn grants(ctx: &Ctx, cmd: GrantsCommand) -> anyhow::Result<()> {
    let s = ctx.session().await?;
    let units = s.units().await?;
    let admin = match cmd {
        GrantsCommand::List { name } => {
            if name == s.saved.user {
                // Anyone may see their own grants; listing admins needs more.
                s.client.whoami().await.map_err(|e| s.fail(e))?
            } else {
                list_admins(&s)
                    .await?
                    .into_iter()
                    .find(|a| a.name == name)
                    .ok_or_else(|| {
                        anyhow!("no admin named {name:?}: heraldctl admins list shows them")
                    })?
            }
        }
        GrantsCommand::Add {
            name,
            capability,
            scopes,
        } => {
            let grant = grant(capability, &scopes, &units)?;
            s.rpc()
                .add_grant(pb::AddGrantRequest {
                    name,
                    grant: Some(grant),
                })
                .await
                .map_err(|e| s.fail(e))?
                .into_inner()
        }
        GrantsCommand::Revoke {
            name,
            capability,
            scopes,
        } => {
            let grant = grant(capability, &scopes, &units)?;
            s.rpc()
                .revoke_grant(pb::RevokeGrantRequest {
                    name,
                    grant: Some(grant),
                })
                .await
                .map_err(|e| s.fail(e))?
                .into_inner()
        }
    };
    ctx.emit(
        || admin_json(&admin, &units),
        || grants_text(&admin, &units),
    )
}

fn grant(
    capability: pb::Capability,
    scopes: &[ScopeSpec],
    units: &[pb::OrgUnit],
) -> Result<pb::Grant, ClientError> {
    Ok(pb::Grant {
        capability: capability as i32,
        scope: Some(resolve_scopes(scopes, units)?),
    })
}

// ---------------------------------------------------------------- audit log

async fn audit(ctx: &Ctx, args: AuditArgs) -> anyhow::Result<()> {
    let s = ctx.session().await?;
    let units = s.units().await?;
    let org_unit_id = match &args.unit {
        Some(spec) => resolve_unit(&units, spec)?.id.clone(),
        None => String::new(),
    };
    let since_unix_ms = match &args.since {
        Some(when) => parse_since(when, now_unix_ms())?,
        None => 0,
    };
    let entries = s
        .rpc()
        .list_audit_log(pb::ListAuditLogRequest {
            admin: args.admin.unwrap_or_default(),
            action: args.action.unwrap_or_default(),
            org_unit_id,
            since_unix_ms,
            until_unix_ms: 0,
            before_seq: 0,
            limit: args.limit,
        })
        .await
        .map_err(|e| s.fail(e))?
        .into_inner()
        .entries;
    if ctx.json {
        return out_json(&Value::Array(
            entries.iter().map(|e| audit_json(e, &units)).collect(),
        ));
    }
    if entries.is_empty() {
        note("no audit log entries match");
        return Ok(());
    }
    out(&table(&AUDIT_HEADERS, &audit_rows(&entries, &units)))?;
    if entries.len() >= usize::try_from(args.limit).unwrap_or(usize::MAX) {
        note(&format!(
            "showing the newest {} entries; raise --limit to see more",
            entries.len()
        ));
    }
    Ok(())
}

// ------------------------------------------------------------ quick alerts

async fn alert(ctx: &Ctx, cmd: AlertCommand) -> anyhow::Result<()> {
    match cmd {
        AlertCommand::Send(args) => alert_send(ctx, args).await,
        AlertCommand::Status { id, computers } => {
            let s = ctx.session().await?;
            let status = s
                .rpc()
                .get_alert_status(pb::GetAlertStatusRequest {
                    alert_id: id,
                    computers,
                })
                .await
                .map_err(|e| s.fail(e))?
                .into_inner();
            let now = now_unix_ms();
            ctx.emit(
                || alert_status_json(&status, now),
                || alert_status_text(&status, now),
            )
        }
        AlertCommand::Watch { id } => alert_watch(ctx, id).await,
        AlertCommand::List { limit } => {
            let s = ctx.session().await?;
            let alerts = s
                .rpc()
                .list_alerts(pb::ListAlertsRequest { limit })
                .await
                .map_err(|e| s.fail(e))?
                .into_inner()
                .alerts;
            let now = now_unix_ms();
            if alerts.is_empty() && !ctx.json {
                note("no alerts");
                return Ok(());
            }
            ctx.emit(
                || Value::Array(alerts.iter().map(|a| alert_status_json(a, now)).collect()),
                || table(&ALERT_HEADERS, &alert_rows(&alerts, now)),
            )?;
            if !ctx.json && alerts.len() >= usize::try_from(limit).unwrap_or(usize::MAX) {
                note(&format!(
                    "showing the newest {} alerts; raise --limit to see more",
                    alerts.len()
                ));
            }
            Ok(())
        }
        AlertCommand::Cancel { id } => {
            let s = ctx.session().await?;
            let summary = s
                .rpc()
                .cancel_alert(pb::CancelAlertRequest { alert_id: id })
                .await
                .map_err(|e| s.fail(e))?
                .into_inner();
            let now = now_unix_ms();
            ctx.emit(
                || alert_summary_json(&summary, now),
                || {
                    format!(
                        "cancelled alert {}: withdrawn from the screens that still showed it\n\n{}",
                        summary.id,
                        alert_summary_text(&summary, now)
                    )
                },
            )
        }
    }
}

async fn alert_send(ctx: &Ctx, args: AlertSendArgs) -> anyhow::Result<()> {
    let body = if args.body == "-" {
        read_body()?
    } else {
        args.body
    };
    let now = now_unix_ms();
    let expires_unix_ms = match (args.expires, args.until) {
        (Some(d), _) => now.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        (None, Some(at)) => {
            if at <= now {
                bail!(
                    "--until {} is in the past: an alert has to expire later than now",
                    format_unix_ms(at)
                );
            }
            at
        }
        // The server's default.
        (None, None) => 0,
    };
    let s = ctx.session().await?;
    let units = if args.to.iter().any(|t| t.needs_units()) {
        s.units().await?
    } else {
        Vec::new()
    };
    let targets = resolve_alert_targets(&args.to, &units)?;
    if args.dry_run {
        let preview = s
            .rpc()
            .preview_alert_audience(pb::PreviewAlertAudienceRequest { targets })
            .await
            .map_err(|e| s.fail(e))?
            .into_inner();
        if ctx.json {
            return out_json(&audience_json(&preview));
        }
        out(&audience_table(&preview))?;
        note("dry run: nothing was sent");
        return Ok(());
    }
    let sent = s
        .rpc()
        .send_alert(pb::SendAlertRequest {
            targets,
            title: args.title,
            body,
            priority: args.priority as i32,
            expires_unix_ms,
        })
        .await
        .map_err(|e| s.fail(e))?
        .into_inner();
    if ctx.json {
        return out_json(&send_alert_json(&sent));
    }
    out(&sent.alert_id)?;
    note(&format!(
        "alert {} accepted for {} computer{}, expires {}",
        sent.alert_id,
        sent.computers,
        if sent.computers == 1 { "" } else { "s" },
        format_near(sent.expires_unix_ms, now_unix_ms()),
    ));
    if sent.computers == 0 {
        note("warning: no computer is enrolled in the targets, so nobody will see it");
    }
    Ok(())
}

/// The alert body from standard input, all of it.
fn read_body() -> anyhow::Result<String> {
    let mut stdin = std::io::stdin();
    if stdin.is_terminal() {
        note("type the alert text, then Ctrl-D on a line of its own");
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut stdin, &mut bytes).context("cannot read standard input")?;
    let body =
        String::from_utf8(bytes).map_err(|_| anyhow!("the body on standard input is not UTF-8"))?;
    // One final line end is the shell's, not the sender's.
    let body = body
        .strip_suffix("\r\n")
        .or_else(|| body.strip_suffix('\n'))
        .unwrap_or(&body);
    Ok(body.to_owned())
}

/// Prints the status now and then each time its counts change, until the
/// server ends the stream because the alert has settled.
async fn alert_watch(ctx: &Ctx, id: String) -> anyhow::Result<()> {
    let s = ctx.session().await?;
    let mut stream = s
        .rpc()
        .watch_alert(pb::GetAlertStatusRequest {
            alert_id: id.clone(),
            computers: false,
        })
        .await
        .map_err(|e| s.fail(e))?
        .into_inner();
    let mut shown: Option<(Option<pb::AlertCounts>, bool)> = None;
    let mut settled = false;
    while let Some(status) = stream.message().await.map_err(|e| s.fail(e))? {
        let now = now_unix_ms();
        if shown.is_none() && !ctx.json {
            let a = status.alert.clone().unwrap_or_default();
            note(&format!(
                "watching alert {} \"{}\" to {} computer{} (Ctrl-C to stop)",
                a.id,
                a.title,
                a.computers,
                if a.computers == 1 { "" } else { "s" }
            ));
        }
        settled = status.settled;
        let key = (status.counts, status.settled);
        if shown.as_ref() != Some(&key) {
            if ctx.json {
                out_json_line(&alert_status_json(&status, now))?;
            } else {
                out(&watch_line(now, &status))?;
            }
            shown = Some(key);
        }
    }
    if !settled {
        bail!("the server ended the watch of {id} before it settled; run the command again");
    }
    if !ctx.json {
        note(&format!(
            "alert {id} has settled: nothing can change any more"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_hint_is_copy_pasteable() {
        let mut saved = SavedSession {
            server: "herald.example:7443".into(),
            ca_file: Some("/etc/herald/my ca.pem".into()),
            fingerprint: None,
            user: "alice".into(),
            token: "t".into(),
            expires_unix_ms: 0,
        };
        let cases = [
            (
                Some(saved.clone()),
                "heraldctl login --server herald.example:7443 --ca-file '/etc/herald/my ca.pem' --user alice",
            ),
            (
                None,
                "heraldctl login --server URL --ca-file FILE --user NAME",
            ),
        ];
        for (s, want) in cases {
            assert_eq!(login_command(s.as_ref()), want);
        }
        saved.ca_file = None;
        saved.fingerprint = Some("ab".repeat(32));
        saved.user = "o'neil".into();
        assert_eq!(
            login_command(Some(&saved)),
            format!(
                "heraldctl login --server herald.example:7443 --fingerprint {} --user 'o'\\''neil'",
                "ab".repeat(32)
            )
        );
    }
}
