//! The console's network side: a thread with its own tokio runtime owns the
//! [`AdminClient`]. The UI sends [`Request`]s and never waits; every answer
//! comes back as a [`Reply`] on a channel, followed by a call to the waker
//! (`ctx.request_repaint()`). Live alert progress comes from `WatchAlert`
//! streams, one task per watched alert; the dashboard's online/offline
//! counts come from one `WatchPresence` stream per session, opened at login;
//! the recent alerts grow from one `WatchAlertList` stream, opened by the
//! state for admins who may see alerts.
//!
//! When a call fails because the server cannot be reached, the backend says
//! so once ([`Reply::Connection`]) and tries `WhoAmI` with growing pauses
//! until the server answers again; watches wait for that and subscribe anew.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use herald_console::{AdminClient, ClientError, ServerTrust, pb};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Wakes the UI after a reply was queued.
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// Something the UI asks the backend to do.
#[derive(Debug)]
pub enum Request {
    /// Connect and log in with name and password.
    Login {
        server: String,
        trust: ServerTrust,
        user: String,
        password: String,
    },
    /// Connect with a session token obtained elsewhere (`heraldctl login`).
    Resume {
        server: String,
        trust: ServerTrust,
        token: String,
    },
    Logout,
    Fetch(Fetch),
    /// A change; the reply carries `id` back.
    Act {
        id: u64,
        action: Action,
    },
    /// How many computers these targets reach; the reply carries `seq` back.
    Preview {
        seq: u64,
        targets: Vec<pb::AlertTarget>,
    },
    /// Follow an alert's status until it settles.
    Watch {
        alert_id: String,
        computers: bool,
    },
    Unwatch {
        alert_id: String,
    },
    /// Open the presence stream anew (the admin's grants changed, so the
    /// units it covers may have too). Login opens it by itself.
    WatchPresence,
    /// Open (or open anew) the stream of alerts as they are sent or
    /// cancelled. Each time it opens, the recent alerts are listed again
    /// (as [`Fetched::Alerts`], the latest `limit`), so none sent before it
    /// opened is missed.
    WatchAlertList {
        limit: u32,
    },
    /// Close that stream (the admin may no longer see alerts).
    UnwatchAlertList,
}

/// A read of server state.
#[derive(Clone, Debug, PartialEq)]
pub enum Fetch {
    Me,
    Units,
    Computers,
    Tokens,
    Admins,
    Alerts { limit: u32 },
    Audit(pb::ListAuditLogRequest),
}

/// A change to server state.
#[derive(Clone, Debug)]
pub enum Action {
    CreateUnit {
        parent_id: String,
        name: String,
    },
    RenameUnit {
        id: String,
        name: String,
    },
    MoveUnit {
        id: String,
        new_parent_id: String,
    },
    DeleteUnit {
        id: String,
    },
    CreateToken {
        org_unit_id: String,
        valid_for_secs: u64,
        max_uses: u32,
    },
    RevokeToken {
        id: String,
    },
    MoveComputer {
        id: String,
        org_unit_id: String,
    },
    RevokeComputer {
        id: String,
    },
    CreateAdmin {
        name: String,
        password: String,
        grants: Vec<pb::Grant>,
    },
    DeleteAdmin {
        name: String,
    },
    ResetPassword {
        name: String,
        password: String,
    },
    AddGrant {
        name: String,
        grant: pb::Grant,
    },
    RevokeGrant {
        name: String,
        grant: pb::Grant,
    },
    SendAlert(pb::SendAlertRequest),
    CancelAlert {
        id: String,
    },
}

/// What a successful [`Action`] produced.
#[derive(Clone, Debug)]
pub enum Outcome {
    Unit(pb::OrgUnit),
    UnitDeleted,
    Token {
        secret: String,
        info: pb::EnrollmentToken,
    },
    TokenRevoked(pb::EnrollmentToken),
    Computer(pb::Computer),
    Admin(pb::AdminInfo),
    AdminDeleted,
    PasswordSet,
    AlertSent(pb::SendAlertResponse),
    AlertCancelled(pb::AlertSummary),
}

/// What a [`Fetch`] produced.
#[derive(Clone, Debug)]
pub enum Fetched {
    Me(pb::AdminInfo),
    Units(Vec<pb::OrgUnit>),
    Computers(Vec<pb::Computer>),
    Tokens(Vec<pb::EnrollmentToken>),
    Admins(Vec<pb::AdminInfo>),
    Alerts(Vec<pb::AlertStatus>),
    Audit {
        request: pb::ListAuditLogRequest,
        entries: Vec<pb::AuditEntry>,
    },
}

/// The audience of an alert before it is sent.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Audience {
    pub computers: u32,
    pub online: u32,
    /// (unit path, computers, online).
    pub units: Vec<(String, u32, u32)>,
}

/// Whether the server can be reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Connection {
    Online,
    Lost(String),
}

/// An answer from the backend.
#[derive(Debug)]
pub enum Reply {
    LoggedIn {
        server: String,
        me: pb::AdminInfo,
        expires_unix_ms: i64,
    },
    LoginFailed(String),
    LoggedOut,
    /// The server no longer accepts the session token.
    SessionEnded(String),
    Connection(Connection),
    Fetched(Fetched),
    FetchFailed {
        fetch: Fetch,
        error: String,
    },
    Acted {
        id: u64,
        result: Result<Outcome, String>,
    },
    Preview {
        seq: u64,
        result: Result<Audience, String>,
    },
    /// A status from a watch stream.
    AlertStatus(pb::AlertStatus),
    WatchEnded {
        alert_id: String,
        error: Option<String>,
    },
    /// Online/offline counts per unit from the presence stream.
    Presence(pb::PresenceSummary),
    /// The server refused the presence stream; no counts follow.
    PresenceEnded(String),
    /// An alert was sent or cancelled, by anyone.
    AlertListed(pb::AlertSummary),
    /// The server refused the alert list stream; no more alerts follow.
    AlertListEnded(String),
}

/// The UI's handle on the backend thread.
pub struct Backend {
    requests: mpsc::UnboundedSender<Request>,
    replies: std::sync::mpsc::Receiver<Reply>,
}

impl Backend {
    /// Starts the backend thread. `waker` is called after each reply.
    pub fn start(waker: Waker) -> std::io::Result<Backend> {
        let (req_tx, req_rx) = mpsc::unbounded_channel();
        let (reply_tx, reply_rx) = std::sync::mpsc::channel();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("herald-console-net")
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("herald-console-backend".into())
            .spawn(move || {
                let out = Out {
                    tx: reply_tx,
                    waker,
                };
                runtime.block_on(run(req_rx, out));
            })?;
        Ok(Backend {
            requests: req_tx,
            replies: reply_rx,
        })
    }

    pub fn send(&self, request: Request) {
        if self.requests.send(request).is_err() {
            tracing::error!("the console's network thread has stopped");
        }
    }

    /// The next reply, if one is waiting.
    pub fn try_recv(&self) -> Option<Reply> {
        self.replies.try_recv().ok()
    }
}

/// The reply channel and the waker, cloned into every task.
#[derive(Clone)]
struct Out {
    tx: std::sync::mpsc::Sender<Reply>,
    waker: Waker,
}

impl Out {
    fn send(&self, reply: Reply) {
        // The UI has gone away only when the app is closing.
        let _ = self.tx.send(reply);
        (self.waker)();
    }
}

/// The connection shared by the tasks, and whether it currently works.
#[derive(Clone)]
struct Link {
    client: AdminClient,
    online: watch::Sender<bool>,
    out: Out,
}

impl Link {
    /// Sorts an error: unreachable server → connection lost and a retry
    /// loop; refused token → session ended; anything else is the caller's.
    fn classify(&self, error: ClientError) -> String {
        let text = error.to_string();
        if is_unreachable(&error) {
            self.lost(text.clone());
        } else if error.code() == Some(tonic::Code::Unauthenticated) {
            self.out.send(Reply::SessionEnded(text.clone()));
        }
        text
    }

    fn lost(&self, reason: String) {
        let was_online = self.online.send_replace(false);
        if !was_online {
            return;
        }
        self.out.send(Reply::Connection(Connection::Lost(reason)));
        let link = self.clone();
        tokio::spawn(async move {
            let mut pause = Duration::from_millis(500);
            loop {
                tokio::time::sleep(pause).await;
                match link.client.whoami().await {
                    Ok(me) => {
                        link.online.send_replace(true);
                        link.out.send(Reply::Connection(Connection::Online));
                        link.out.send(Reply::Fetched(Fetched::Me(me)));
                        return;
                    }
                    Err(e) if is_unreachable(&e) => {
                        pause = (pause * 2).min(Duration::from_secs(5));
                    }
                    Err(e) => {
                        // Reachable again, but the session is gone.
                        link.online.send_replace(true);
                        link.out.send(Reply::Connection(Connection::Online));
                        if e.code() == Some(tonic::Code::Unauthenticated) {
                            link.out.send(Reply::SessionEnded(e.to_string()));
                        }
                        return;
                    }
                }
            }
        });
    }

    /// Waits until the server can be reached.
    async fn until_online(&self) {
        let mut rx = self.online.subscribe();
        // Errors only if the sender is gone, i.e. the backend is stopping.
        let _ = rx.wait_for(|online| *online).await;
    }
}

/// Whether the error means "cannot reach the server" rather than a refusal.
fn is_unreachable(error: &ClientError) -> bool {
    matches!(error, ClientError::Connect { .. })
        || matches!(
            error.code(),
            Some(tonic::Code::Unavailable | tonic::Code::DeadlineExceeded)
        )
}

/// Internal events of the loop: results of the spawned login.
enum Internal {
    LoggedIn(AdminClient),
}

async fn run(mut requests: mpsc::UnboundedReceiver<Request>, out: Out) {
    let (internal_tx, mut internal) = mpsc::unbounded_channel::<Internal>();
    let mut link: Option<Link> = None;
    let mut watches: HashMap<String, JoinHandle<()>> = HashMap::new();
    let mut presence: Option<JoinHandle<()>> = None;
    let mut alert_list: Option<JoinHandle<()>> = None;
    loop {
        tokio::select! {
            // A login's new connection is taken before the requests the UI
            // sends once it sees the login.
            biased;
            Some(event) = internal.recv() => match event {
                Internal::LoggedIn(client) => {
                    for (_, task) in watches.drain() {
                        task.abort();
                    }
                    for task in [presence.take(), alert_list.take()].into_iter().flatten() {
                        task.abort();
                    }
                    let (online, _) = watch::channel(true);
                    let new = Link { client, online, out: out.clone() };
                    presence = Some(tokio::spawn(follow_presence(new.clone())));
                    link = Some(new);
                }
            },
            request = requests.recv() => {
                let Some(request) = request else { break };
                match request {
                    Request::Login { server, trust, user, password } => {
                        let (out, tx) = (out.clone(), internal_tx.clone());
                        tokio::spawn(async move {
                            match login(&server, trust, &user, &password).await {
                                Ok((client, response)) => {
                                    let _ = tx.send(Internal::LoggedIn(client));
                                    out.send(Reply::LoggedIn {
                                        server,
                                        me: response.admin.unwrap_or_default(),
                                        expires_unix_ms: response.expires_unix_ms,
                                    });
                                }
                                Err(e) => out.send(Reply::LoginFailed(e.to_string())),
                            }
                        });
                    }
                    Request::Resume { server, trust, token } => {
                        let (out, tx) = (out.clone(), internal_tx.clone());
                        tokio::spawn(async move {
                            match resume(&server, trust, token).await {
                                Ok((client, me)) => {
                                    let _ = tx.send(Internal::LoggedIn(client));
                                    out.send(Reply::LoggedIn { server, me, expires_unix_ms: 0 });
                                }
                                Err(e) => out.send(Reply::LoginFailed(e.to_string())),
                            }
                        });
                    }
                    Request::Logout => {
                        for (_, task) in watches.drain() {
                            task.abort();
                        }
                        for task in [presence.take(), alert_list.take()].into_iter().flatten() {
                            task.abort();
                        }
                        if let Some(link) = link.take() {
                            let out = out.clone();
                            tokio::spawn(async move {
                                // Best effort: the token is forgotten either way.
                                let _ = link.client.rpc().logout(pb::LogoutRequest {}).await;
                                out.send(Reply::LoggedOut);
                            });
                        } else {
                            out.send(Reply::LoggedOut);
                        }
                    }
                    Request::Fetch(fetch) => match &link {
                        Some(link) => {
                            let link = link.clone();
                            tokio::spawn(async move {
                                let reply = match fetch_one(&link.client, fetch.clone()).await {
                                    Ok(fetched) => Reply::Fetched(fetched),
                                    Err(e) => Reply::FetchFailed { fetch, error: link.classify(e) },
                                };
                                link.out.send(reply);
                            });
                        }
                        None => out.send(Reply::FetchFailed { fetch, error: not_logged_in() }),
                    },
                    Request::Act { id, action } => match &link {
                        Some(link) => {
                            let link = link.clone();
                            tokio::spawn(async move {
                                let result = act(&link.client, action).await.map_err(|e| link.classify(e));
                                link.out.send(Reply::Acted { id, result });
                            });
                        }
                        None => out.send(Reply::Acted { id, result: Err(not_logged_in()) }),
                    },
                    Request::Preview { seq, targets } => match &link {
                        Some(link) => {
                            let link = link.clone();
                            tokio::spawn(async move {
                                let result = preview(&link.client, targets).await.map_err(|e| link.classify(e));
                                link.out.send(Reply::Preview { seq, result });
                            });
                        }
                        None => out.send(Reply::Preview { seq, result: Err(not_logged_in()) }),
                    },
                    Request::Watch { alert_id, computers } => {
                        if let Some(link) = &link {
                            watches.retain(|_, task| !task.is_finished());
                            if let Some(old) = watches.remove(&alert_id) {
                                old.abort();
                            }
                            let task = tokio::spawn(follow(link.clone(), alert_id.clone(), computers));
                            watches.insert(alert_id, task);
                        }
                    }
                    Request::Unwatch { alert_id } => {
                        if let Some(task) = watches.remove(&alert_id) {
                            task.abort();
                        }
                    }
                    Request::WatchPresence => {
                        if let Some(link) = &link {
                            if let Some(old) = presence.take() {
                                old.abort();
                            }
                            presence = Some(tokio::spawn(follow_presence(link.clone())));
                        }
                    }
                    Request::WatchAlertList { limit } => {
                        if let Some(link) = &link {
                            if let Some(old) = alert_list.take() {
                                old.abort();
                            }
                            alert_list = Some(tokio::spawn(follow_alert_list(link.clone(), limit)));
                        }
                    }
                    Request::UnwatchAlertList => {
                        if let Some(task) = alert_list.take() {
                            task.abort();
                        }
                    }
                }
            }
        }
    }
}

fn not_logged_in() -> String {
    "not logged in".to_owned()
}

async fn login(
    server: &str,
    trust: ServerTrust,
    user: &str,
    password: &str,
) -> Result<(AdminClient, pb::LoginResponse), ClientError> {
    let mut client = AdminClient::connect(server, trust).await?;
    let response = client.login(user, password).await?;
    Ok((client, response))
}

async fn resume(
    server: &str,
    trust: ServerTrust,
    token: String,
) -> Result<(AdminClient, pb::AdminInfo), ClientError> {
    let client = AdminClient::connect(server, trust).await?.with_token(token);
    let me = client.whoami().await?;
    Ok((client, me))
}

async fn fetch_one(client: &AdminClient, fetch: Fetch) -> Result<Fetched, ClientError> {
    let rpc = client.rpc();
    Ok(match fetch {
        Fetch::Me => Fetched::Me(client.whoami().await?),
        Fetch::Units => Fetched::Units(client.units().await?),
        Fetch::Computers => Fetched::Computers(
            rpc.clone()
                .list_computers(pb::ListComputersRequest {
                    org_unit_id: String::new(),
                    include_revoked: true,
                })
                .await?
                .into_inner()
                .computers,
        ),
        Fetch::Tokens => Fetched::Tokens(
            rpc.clone()
                .list_enrollment_tokens(pb::ListEnrollmentTokensRequest {
                    include_inactive: true,
                })
                .await?
                .into_inner()
                .tokens,
        ),
        Fetch::Admins => Fetched::Admins(
            rpc.clone()
                .list_admins(pb::ListAdminsRequest {})
                .await?
                .into_inner()
                .admins,
        ),
        Fetch::Alerts { limit } => Fetched::Alerts(
            rpc.clone()
                .list_alerts(pb::ListAlertsRequest { limit })
                .await?
                .into_inner()
                .alerts,
        ),
        Fetch::Audit(request) => {
            let entries = rpc
                .clone()
                .list_audit_log(request.clone())
                .await?
                .into_inner()
                .entries;
            Fetched::Audit { request, entries }
        }
    })
}

async fn act(client: &AdminClient, action: Action) -> Result<Outcome, ClientError> {
    let mut rpc = client.rpc();
    Ok(match action {
        Action::CreateUnit { parent_id, name } => Outcome::Unit(
            rpc.create_org_unit(pb::CreateOrgUnitRequest { parent_id, name })
                .await?
                .into_inner(),
        ),
        Action::RenameUnit { id, name } => Outcome::Unit(
            rpc.rename_org_unit(pb::RenameOrgUnitRequest { id, name })
                .await?
                .into_inner(),
        ),
        Action::MoveUnit { id, new_parent_id } => Outcome::Unit(
            rpc.move_org_unit(pb::MoveOrgUnitRequest { id, new_parent_id })
                .await?
                .into_inner(),
        ),
        Action::DeleteUnit { id } => {
            rpc.delete_org_unit(pb::DeleteOrgUnitRequest { id }).await?;
            Outcome::UnitDeleted
        }
        Action::CreateToken {
            org_unit_id,
            valid_for_secs,
            max_uses,
        } => {
            let created = rpc
                .create_enrollment_token(pb::CreateEnrollmentTokenRequest {
                    org_unit_id,
                    valid_for_secs,
                    max_uses,
                })
                .await?
                .into_inner();
            Outcome::Token {
                secret: created.token,
                info: created.info.unwrap_or_default(),
            }
        }
        Action::RevokeToken { id } => Outcome::TokenRevoked(
            rpc.revoke_enrollment_token(pb::RevokeEnrollmentTokenRequest { id })
                .await?
                .into_inner(),
        ),
        Action::MoveComputer { id, org_unit_id } => Outcome::Computer(
            rpc.move_computer(pb::MoveComputerRequest { id, org_unit_id })
                .await?
                .into_inner(),
        ),
        Action::RevokeComputer { id } => Outcome::Computer(
            rpc.revoke_computer(pb::RevokeComputerRequest { id })
                .await?
                .into_inner(),
        ),
        Action::CreateAdmin {
            name,
            password,
            grants,
        } => Outcome::Admin(
            rpc.create_admin(pb::CreateAdminRequest {
                name,
                password,
                grants,
            })
            .await?
            .into_inner(),
        ),
        Action::DeleteAdmin { name } => {
            rpc.delete_admin(pb::DeleteAdminRequest { name }).await?;
            Outcome::AdminDeleted
        }
        Action::ResetPassword { name, password } => {
            rpc.reset_admin_password(pb::ResetAdminPasswordRequest {
                name,
                new_password: password,
            })
            .await?;
            Outcome::PasswordSet
        }
        Action::AddGrant { name, grant } => Outcome::Admin(
            rpc.add_grant(pb::AddGrantRequest {
                name,
                grant: Some(grant),
            })
            .await?
            .into_inner(),
        ),
        Action::RevokeGrant { name, grant } => Outcome::Admin(
            rpc.revoke_grant(pb::RevokeGrantRequest {
                name,
                grant: Some(grant),
            })
            .await?
            .into_inner(),
        ),
        Action::SendAlert(request) => {
            Outcome::AlertSent(rpc.send_alert(request).await?.into_inner())
        }
        Action::CancelAlert { id } => Outcome::AlertCancelled(
            rpc.cancel_alert(pb::CancelAlertRequest { alert_id: id })
                .await?
                .into_inner(),
        ),
    })
}

async fn preview(
    client: &AdminClient,
    targets: Vec<pb::AlertTarget>,
) -> Result<Audience, ClientError> {
    let response = client
        .rpc()
        .preview_alert_audience(pb::PreviewAlertAudienceRequest { targets })
        .await?
        .into_inner();
    Ok(Audience {
        computers: response.computers,
        online: response.online,
        units: response
            .units
            .into_iter()
            .map(|u| (u.path, u.computers, u.online))
            .collect(),
    })
}

/// Follows one alert: every status from the watch stream goes to the UI.
/// A stream cut by a lost connection is opened again once the server is
/// back; a refusal ends the watch.
async fn follow(link: Link, alert_id: String, computers: bool) {
    let request = pb::GetAlertStatusRequest {
        alert_id: alert_id.clone(),
        computers,
    };
    let error = follow_stream(
        &link,
        Follow::default(),
        || {
            let (mut rpc, request) = (link.client.rpc(), request.clone());
            async move { rpc.watch_alert(request).await }
        },
        |status| link.out.send(Reply::AlertStatus(status)),
    )
    .await;
    link.out.send(Reply::WatchEnded { alert_id, error });
}

/// How [`follow_stream`] treats a stream.
#[derive(Clone, Copy, Debug, Default)]
struct Follow {
    /// The stream has no natural end: an end means the server went away.
    end_is_cut: bool,
    /// Opening it succeeds only after listing afresh what it follows, so an
    /// opening is progress, as a message is. Without this, a stream with
    /// rare messages would be given up after a few cuts spread over hours.
    open_is_progress: bool,
}

/// Opens a server stream and hands every message to `each`. A stream cut
/// by a lost connection (or, with `end_is_cut`, one that simply ends) is
/// opened again once the server is back, one the server dropped for falling
/// behind (`DATA_LOSS`) at once; a server that keeps failing it (five times
/// in a row without progress) is not retried for ever.
/// Returns `None` when the stream ended normally, or the refusal to show.
async fn follow_stream<T, Open, Opening>(
    link: &Link,
    how: Follow,
    mut open: Open,
    mut each: impl FnMut(T),
) -> Option<String>
where
    Open: FnMut() -> Opening,
    Opening:
        std::future::Future<Output = Result<tonic::Response<tonic::Streaming<T>>, tonic::Status>>,
{
    let mut interruptions = 0u32;
    loop {
        let error = match open().await {
            Ok(response) => {
                if how.open_is_progress {
                    interruptions = 0;
                }
                let mut stream = response.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(message)) => {
                            interruptions = 0;
                            each(message);
                        }
                        Ok(None) if how.end_is_cut => {
                            break ClientError::from(tonic::Status::aborted(
                                "the server ended the stream",
                            ));
                        }
                        Ok(None) => return None,
                        Err(status) => break ClientError::from(status),
                    }
                }
            }
            Err(status) => ClientError::from(status),
        };
        interruptions += 1;
        if error.code() == Some(tonic::Code::DataLoss) && interruptions <= 5 {
            // The server dropped a watcher that fell behind; opening it
            // again starts from a fresh state.
            continue;
        }
        if is_unreachable(&error) || (is_cut(&error) && interruptions <= 5) {
            link.lost(error.to_string());
            link.until_online().await;
            continue;
        }
        return Some(link.classify(error));
    }
}

/// A stream cut mid-way (server restarted, network gone) comes back as a
/// transport-level code: worth waiting for the server and subscribing anew.
fn is_cut(error: &ClientError) -> bool {
    matches!(
        error.code(),
        Some(tonic::Code::Unknown | tonic::Code::Cancelled | tonic::Code::Aborted)
    )
}

/// Follows the online/offline counts for the session: every summary goes
/// to the UI. The stream has no natural end, so an end or a cut means the
/// server went away: once it is back, the stream is opened again, as after
/// a lost connection. A refusal ends it.
async fn follow_presence(link: Link) {
    let error = follow_stream(
        &link,
        Follow {
            end_is_cut: true,
            open_is_progress: false,
        },
        || {
            let mut rpc = link.client.rpc();
            async move { rpc.watch_presence(pb::WatchPresenceRequest {}).await }
        },
        |summary| link.out.send(Reply::Presence(summary)),
    )
    .await;
    if let Some(text) = error {
        link.out.send(Reply::PresenceEnded(text));
    }
}

/// Follows the alerts the admin may see as they are sent or cancelled. The
/// stream has no natural end, so an end or a cut is handled as a lost
/// connection. Every time it opens (at first, after a cut, after falling
/// behind) the recent alerts are listed again once the stream is open, so
/// an alert sent while it was closed is not missed; one that shows up in
/// both is matched by id. A refusal ends it.
async fn follow_alert_list(link: Link, limit: u32) {
    let error = follow_stream(
        &link,
        Follow {
            end_is_cut: true,
            open_is_progress: true,
        },
        || {
            let (link, mut rpc) = (link.clone(), link.client.rpc());
            async move {
                let stream = rpc.watch_alert_list(pb::WatchAlertListRequest {}).await?;
                let alerts = rpc
                    .list_alerts(pb::ListAlertsRequest { limit })
                    .await?
                    .into_inner()
                    .alerts;
                link.out.send(Reply::Fetched(Fetched::Alerts(alerts)));
                Ok(stream)
            }
        },
        |summary| link.out.send(Reply::AlertListed(summary)),
    )
    .await;
    if let Some(text) = error {
        link.out.send(Reply::AlertListEnded(text));
    }
}
