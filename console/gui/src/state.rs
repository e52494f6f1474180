//! The console's state and logic, without a window and without a network.
//!
//! The UI reads this state and calls its methods; methods that need the
//! server queue [`Request`]s in an outbox that the app hands to the backend;
//! the backend's [`Reply`]s come back through [`Console::apply`]. So every
//! decision here (what to fetch, what a reply changes, which units may be
//! picked) is testable by feeding replies and reading the outbox.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;

use herald_console::pb;
use herald_console::pb::alert_target::Target;
use herald_console::session::read_ca_file;
use herald_console::timefmt::{format_unix_ms, parse_duration, parse_since, parse_time};
use herald_console::{ClientError, ServerTrust};
use herald_proto::tls::normalize_fingerprint;

use crate::backend::{Action, Audience, Connection, Fetch, Fetched, Outcome, Reply, Request};
use crate::i18n::{Lang, T, Tr};
use crate::perms::{Perms, Screen, UnitTree};
use crate::settings::{Settings, TrustMode};

/// How many alerts the dashboard and the alerts screen list.
pub const RECENT_ALERTS: u32 = 50;
/// How many audit entries one search or "load older" fetches.
pub const AUDIT_PAGE: u32 = 200;

/// The login form. What was typed stays when a login fails.
#[derive(Clone, Debug, Default)]
pub struct LoginForm {
    pub server: String,
    pub trust: TrustMode,
    pub ca_file: String,
    pub fingerprint: String,
    pub user: String,
    pub password: String,
    pub busy: bool,
    pub error: Option<String>,
}

/// A change waiting for the admin's "yes".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Confirm {
    DeleteUnit { id: String },
    RevokeComputer { id: String },
    DeleteAdmin { name: String },
    SendCritical,
    CancelAlert { id: String },
}

/// Which form a pending change belongs to, so its error shows there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Form {
    UnitCreate,
    UnitRename,
    UnitMove,
    UnitDelete,
    TokenCreate,
    TokenRevoke,
    ComputerMove,
    ComputerRevoke,
    AdminCreate,
    AdminDelete,
    AdminPassword,
    GrantAdd,
    GrantRevoke,
    AlertSend,
    AlertCancel,
}

/// A short message at the bottom of the window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub text: String,
    pub error: bool,
}

/// The quick-alert composer.
#[derive(Clone, Debug)]
pub struct Compose {
    pub title: String,
    pub body: String,
    pub priority: pb::Priority,
    /// Index into [`EXPIRY_CHOICES`].
    pub expiry: usize,
    /// Org units picked as the audience.
    pub units: BTreeSet<String>,
    /// "Every computer I may alert".
    pub everyone: bool,
    pub error: Option<String>,
    /// The audience count for `preview_key`, once known.
    pub preview: Option<Result<Audience, String>>,
    preview_seq: u64,
    preview_key: Vec<pb::AlertTarget>,
}

impl Default for Compose {
    fn default() -> Self {
        Self {
            title: String::new(),
            body: String::new(),
            priority: pb::Priority::Info,
            expiry: DEFAULT_EXPIRY,
            units: BTreeSet::new(),
            everyone: false,
            error: None,
            preview: None,
            preview_seq: 0,
            preview_key: Vec::new(),
        }
    }
}

/// How long an alert stays valid: the choices offered, in minutes.
pub const EXPIRY_CHOICES: [(u64, &str); 6] = [
    (15, "15 min"),
    (60, "1 h"),
    (4 * 60, "4 h"),
    (8 * 60, "8 h"),
    (24 * 60, "24 h"),
    (3 * 24 * 60, "3 d"),
];
const DEFAULT_EXPIRY: usize = 2;

/// The alerts screen.
#[derive(Clone, Debug, Default)]
pub struct AlertsView {
    /// The alert whose progress is shown; `None` shows the composer.
    pub opened: Option<String>,
    /// The latest status of the opened alert, with its per-computer rows.
    pub status: Option<pb::AlertStatus>,
    pub compose: Compose,
}

/// The organisation screen.
#[derive(Clone, Debug, Default)]
pub struct OrgView {
    pub selected: Option<String>,
    pub new_unit_name: String,
    pub rename_to: String,
    pub move_to: Option<String>,
    pub filter: String,
    pub show_revoked: bool,
    pub selected_computer: Option<String>,
    pub computer_move_to: Option<String>,
    pub token_valid_for: String,
    pub token_uses: String,
    /// The secret of the token created last and its unit path: shown once.
    pub new_token: Option<(String, String)>,
    /// Indexes into the computer list for the selected unit and filter.
    pub rows: Vec<usize>,
    rows_key: Option<(Option<String>, String, bool, u64)>,
}

/// One grant being put together in a form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantDraft {
    pub capability: pb::Capability,
    pub organisation: bool,
    pub unit: Option<String>,
}

impl Default for GrantDraft {
    fn default() -> Self {
        Self {
            capability: pb::Capability::SendQuickAlerts,
            organisation: false,
            unit: None,
        }
    }
}

impl GrantDraft {
    pub fn to_grant(&self) -> Option<pb::Grant> {
        let scope = if self.organisation {
            pb::Scope {
                organisation: true,
                unit_ids: Vec::new(),
            }
        } else {
            pb::Scope {
                organisation: false,
                unit_ids: vec![self.unit.clone()?],
            }
        };
        Some(pb::Grant {
            capability: self.capability as i32,
            scope: Some(scope),
        })
    }
}

/// The admins screen.
#[derive(Clone, Debug, Default)]
pub struct AdminsView {
    pub selected: Option<String>,
    pub new_name: String,
    pub new_password: String,
    pub new_password_again: String,
    pub new_grants: Vec<GrantDraft>,
    pub grant: GrantDraft,
    pub reset_password: String,
    pub reset_password_again: String,
}

/// The audit log screen.
#[derive(Clone, Debug, Default)]
pub struct AuditView {
    pub admin: String,
    pub action: String,
    pub unit: Option<String>,
    pub since: String,
    pub until: String,
    pub entries: Vec<pb::AuditEntry>,
    /// The last page was full: older entries may exist.
    pub more: bool,
    pub loading: bool,
    pub searched: bool,
    pub error: Option<String>,
}

/// One row of the dashboard: a unit and the computers in its subtree (as
/// far as the admin's grants reach).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnitPresence {
    pub depth: usize,
    pub unit_id: String,
    pub name: String,
    pub online: u32,
    pub offline: u32,
}

/// Everything that exists while logged in.
#[derive(Debug)]
pub struct Session {
    pub server: String,
    pub user: String,
    pub me: pb::AdminInfo,
    pub perms: Perms,
    pub tree: UnitTree,
    pub connection: Connection,
    pub screen: Screen,
    /// All visible computers (revoked ones too), for the organisation
    /// screen, fetched when it is opened; `None` until loaded.
    pub computers: Option<Vec<pb::Computer>>,
    computers_version: u64,
    pub computers_error: Option<String>,
    /// Rows of the dashboard's presence table, with subtree totals, from
    /// the latest presence summary and the unit tree.
    pub presence: Vec<UnitPresence>,
    /// The latest presence summary's counts, each for computers directly in
    /// the unit; `None` until the first summary arrives.
    pub presence_units: Option<Vec<pb::UnitPresence>>,
    /// When the server counted them.
    pub presence_at_ms: i64,
    /// Why no further summaries come (the server refused the stream).
    pub presence_error: Option<String>,
    /// Units of a summary that the tree did not know (or knew by another
    /// path) when the units were last fetched for that reason, so the same
    /// difference does not ask again.
    presence_asked_units: Vec<String>,
    /// Unit lists asked for and not answered yet.
    units_pending: u32,
    pub tokens: Vec<pb::EnrollmentToken>,
    pub admins: Vec<pb::AdminInfo>,
    pub alerts: Option<Vec<pb::AlertStatus>>,
    pub alerts_error: Option<String>,
    /// Alerts whose watch stream is open.
    watching: HashSet<String>,
    /// Whether the stream of sent and cancelled alerts was asked for and
    /// not refused.
    alert_list_open: bool,
    pub alerts_view: AlertsView,
    pub org: OrgView,
    pub admins_view: AdminsView,
    pub audit: AuditView,
    pub confirm: Option<Confirm>,
    pending: HashMap<u64, Form>,
    pub errors: HashMap<Form, String>,
}

impl Session {
    fn new(server: String, user: String, me: pb::AdminInfo) -> Self {
        Self {
            server,
            user,
            perms: Perms::new(&me),
            me,
            tree: UnitTree::default(),
            connection: Connection::Online,
            screen: Screen::Dashboard,
            computers: None,
            computers_version: 0,
            computers_error: None,
            presence: Vec::new(),
            presence_units: None,
            presence_at_ms: 0,
            presence_error: None,
            presence_asked_units: Vec::new(),
            units_pending: 0,
            tokens: Vec::new(),
            admins: Vec::new(),
            alerts: None,
            alerts_error: None,
            watching: HashSet::new(),
            alert_list_open: false,
            alerts_view: AlertsView::default(),
            org: OrgView {
                token_valid_for: "24h".into(),
                token_uses: "1".into(),
                ..OrgView::default()
            },
            admins_view: AdminsView::default(),
            audit: AuditView::default(),
            confirm: None,
            pending: HashMap::new(),
            errors: HashMap::new(),
        }
    }

    pub fn is_busy(&self, form: Form) -> bool {
        self.pending.values().any(|f| *f == form)
    }

    pub fn error(&self, form: Form) -> Option<&str> {
        self.errors.get(&form).map(String::as_str)
    }

    pub fn screens(&self) -> Vec<Screen> {
        self.perms.screens()
    }

    /// Units the admin may pick for `cap`, in tree order with depth.
    pub fn units_with(&self, cap: pb::Capability) -> Vec<(usize, &pb::OrgUnit)> {
        self.tree
            .ordered()
            .filter(|(_, u)| self.perms.allows(cap, &u.id, &self.tree))
            .collect()
    }

    pub fn computer(&self, id: &str) -> Option<&pb::Computer> {
        self.computers.as_ref()?.iter().find(|c| c.id == id)
    }

    pub fn admin(&self, name: &str) -> Option<&pb::AdminInfo> {
        self.admins.iter().find(|a| a.name == name)
    }

    /// Rebuilds the dashboard rows: each unit the summary covers, in tree
    /// order, with the computers of its subtree; units with none are left
    /// out. Depth counts only covered ancestors, so an admin of one branch
    /// sees that branch at the top.
    fn recompute_presence(&mut self) {
        let Some(units) = &self.presence_units else {
            self.presence.clear();
            return;
        };
        let direct: HashMap<&str, (u32, u32)> = units
            .iter()
            .map(|u| (u.org_unit_id.as_str(), (u.online, u.offline)))
            .collect();
        let mut total: HashMap<&str, (u32, u32)> = HashMap::new();
        let mut depth: HashMap<&str, usize> = HashMap::new();
        for (&unit, &(on, off)) in &direct {
            let mut covered_above = 0;
            let mut at = Some(unit);
            // A unit's chain of parents is never longer than the tree.
            for _ in 0..=self.tree.units().len() {
                let Some(id) = at else { break };
                if let Some((key, _)) = direct.get_key_value(id) {
                    let entry = total.entry(key).or_default();
                    entry.0 += on;
                    entry.1 += off;
                    if id != unit {
                        covered_above += 1;
                    }
                }
                at = self
                    .tree
                    .get(id)
                    .filter(|u| !u.parent_id.is_empty())
                    .map(|u| u.parent_id.as_str());
            }
            depth.insert(unit, covered_above);
        }
        self.presence = self
            .tree
            .ordered()
            .filter_map(|(_, u)| {
                let (online, offline) = total.get(u.id.as_str()).copied()?;
                (online + offline > 0).then(|| UnitPresence {
                    depth: depth.get(u.id.as_str()).copied().unwrap_or_default(),
                    unit_id: u.id.clone(),
                    name: u.name.clone(),
                    online,
                    offline,
                })
            })
            .collect();
    }

    /// Units the latest summary names that the tree does not know, or
    /// knows by another path (created, renamed or moved by someone else).
    fn units_behind(&self) -> Vec<String> {
        self.presence_units
            .iter()
            .flatten()
            .filter(|u| {
                self.tree
                    .get(&u.org_unit_id)
                    .is_none_or(|known| known.path != u.path)
            })
            .map(|u| u.org_unit_id.clone())
            .collect()
    }

    /// Brings the organisation screen's computer rows up to date with the
    /// selected unit, the filter and the list. Cheap when nothing changed.
    pub fn update_org_rows(&mut self) {
        let key = (
            self.org.selected.clone(),
            self.org.filter.clone(),
            self.org.show_revoked,
            self.computers_version,
        );
        if self.org.rows_key.as_ref() == Some(&key) {
            return;
        }
        let needle = self.org.filter.trim().to_lowercase();
        let rows = match (&self.computers, &self.org.selected) {
            (Some(list), Some(unit)) => list
                .iter()
                .enumerate()
                .filter(|(_, c)| self.org.show_revoked || !c.revoked)
                .filter(|(_, c)| self.tree.is_within(&c.org_unit_id, unit))
                .filter(|(_, c)| needle.is_empty() || computer_matches(c, &needle))
                .map(|(i, _)| i)
                .collect(),
            _ => Vec::new(),
        };
        self.org.rows = rows;
        self.org.rows_key = Some(key);
    }

    /// Computers in `unit`'s subtree that are not revoked: (total, online).
    pub fn unit_computers(&self, unit: &str) -> (u32, u32) {
        self.presence
            .iter()
            .find(|p| p.unit_id == unit)
            .map_or((0, 0), |p| (p.online + p.offline, p.online))
    }
}

fn computer_matches(c: &pb::Computer, needle: &str) -> bool {
    c.hostname.to_lowercase().contains(needle)
        || c.os.to_lowercase().contains(needle)
        || c.id.to_lowercase().contains(needle)
        || c.agent_version.to_lowercase().contains(needle)
        || c.logged_in_users
            .iter()
            .any(|u| u.to_lowercase().contains(needle))
}

/// The whole console.
#[derive(Debug)]
pub struct Console {
    pub tr: Tr,
    pub settings: Settings,
    settings_path: Option<PathBuf>,
    pub login: LoginForm,
    pub session: Option<Session>,
    /// A session that ended (token refused) with what was typed in it,
    /// restored when the same admin logs in again to the same server.
    stashed: Option<Session>,
    pub notice: Option<Notice>,
    outbox: Vec<Request>,
    next_id: u64,
    /// The time the UI shows things relative to; set by the app each frame.
    pub now_ms: i64,
    /// The local time zone, seconds east of UTC.
    pub utc_offset_s: i32,
}

impl Console {
    /// A console showing the login form filled from `settings`, which are
    /// saved to `settings_path` (if any) after each successful login.
    pub fn new(settings: Settings, settings_path: Option<PathBuf>) -> Self {
        let login = LoginForm {
            server: settings.server.clone(),
            trust: settings.trust,
            ca_file: settings.ca_file.clone(),
            fingerprint: settings.fingerprint.clone(),
            user: settings.user.clone(),
            ..LoginForm::default()
        };
        Self {
            tr: Tr(settings.lang),
            settings,
            settings_path,
            login,
            session: None,
            stashed: None,
            notice: None,
            outbox: Vec::new(),
            next_id: 1,
            now_ms: 0,
            utc_offset_s: 0,
        }
    }

    /// The requests queued since the last call.
    pub fn take_requests(&mut self) -> Vec<Request> {
        std::mem::take(&mut self.outbox)
    }

    fn send(&mut self, request: Request) {
        if matches!(request, Request::Fetch(Fetch::Units))
            && let Some(s) = &mut self.session
        {
            s.units_pending += 1;
        }
        self.outbox.push(request);
    }

    pub fn set_lang(&mut self, lang: Lang) {
        if self.settings.lang == lang {
            return;
        }
        self.settings.lang = lang;
        self.tr = Tr(lang);
        self.save_settings();
    }

    fn save_settings(&self) {
        if let Some(path) = &self.settings_path
            && let Err(error) = self.settings.save(path)
        {
            tracing::warn!(path = %path.display(), %error, "cannot save console settings");
        }
    }

    /// Local date and time, minutes precision: `2025-03-01 09:34`.
    pub fn time(&self, ms: i64) -> String {
        if ms == 0 {
            return "-".to_owned();
        }
        let text = format_unix_ms(ms + i64::from(self.utc_offset_s) * 1000);
        text.get(..16).unwrap_or(&text).to_owned()
    }

    // ------------------------------------------------------------ login

    /// Checks the login form and asks the backend to log in.
    pub fn submit_login(&mut self) {
        let tr = self.tr;
        let f = &mut self.login;
        f.error = None;
        let missing = if f.server.trim().is_empty() {
            Some(T::NeedServer)
        } else if match f.trust {
            TrustMode::CaFile => f.ca_file.trim().is_empty(),
            TrustMode::Fingerprint => f.fingerprint.trim().is_empty(),
        } {
            Some(T::NeedTrust)
        } else if f.user.trim().is_empty() {
            Some(T::NeedUser)
        } else if f.password.is_empty() {
            Some(T::NeedPassword)
        } else {
            None
        };
        if let Some(key) = missing {
            f.error = Some(tr.t(key).to_owned());
            return;
        }
        let trust = match trust_of(f.trust, &f.ca_file, &f.fingerprint) {
            Ok(trust) => trust,
            Err(e) => {
                f.error = Some(e.to_string());
                return;
            }
        };
        f.busy = true;
        let request = Request::Login {
            server: f.server.trim().to_owned(),
            trust,
            user: f.user.trim().to_owned(),
            password: f.password.clone(),
        };
        self.send(request);
    }

    /// Logs in with an existing session token (from `heraldctl login`).
    pub fn resume(&mut self, server: String, trust: ServerTrust, user: String, token: String) {
        self.login.server = server.clone();
        self.login.user = user;
        self.login.busy = true;
        self.send(Request::Resume {
            server,
            trust,
            token,
        });
    }

    pub fn logout(&mut self) {
        self.session = None;
        self.stashed = None;
        self.send(Request::Logout);
    }

    // ------------------------------------------------------------ replies

    /// Takes in one answer from the backend.
    pub fn apply(&mut self, reply: Reply) {
        match reply {
            Reply::LoggedIn { server, me, .. } => self.logged_in(server, me),
            Reply::LoginFailed(error) => {
                self.login.busy = false;
                self.login.error = Some(error);
            }
            Reply::LoggedOut => {}
            Reply::SessionEnded(reason) => {
                // A stream or call of a session already gone may still
                // notice; the login form being typed in is left alone.
                let Some(session) = self.session.take() else {
                    return;
                };
                self.login.server = session.server.clone();
                self.login.user = session.user.clone();
                self.stashed = Some(session);
                self.login.busy = false;
                self.login.password.clear();
                self.login.error = Some(self.tr.fill(T::SessionEnded, &[("reason", &reason)]));
            }
            Reply::Connection(connection) => {
                let back = connection == Connection::Online;
                if let Some(s) = &mut self.session {
                    let was_lost = s.connection != Connection::Online;
                    s.connection = connection;
                    if back && was_lost {
                        self.refresh();
                    }
                }
            }
            Reply::Fetched(fetched) => self.fetched(fetched),
            Reply::FetchFailed { fetch, error } => self.fetch_failed(fetch, error),
            Reply::Acted { id, result } => self.acted(id, result),
            Reply::Preview { seq, result } => {
                if let Some(s) = &mut self.session {
                    let c = &mut s.alerts_view.compose;
                    if c.preview_seq == seq {
                        c.preview = Some(result);
                    }
                }
            }
            Reply::AlertStatus(status) => self.alert_status(status),
            Reply::Presence(summary) => {
                if let Some(s) = &mut self.session {
                    s.presence_units = Some(summary.units);
                    s.presence_at_ms = summary.at_unix_ms;
                    s.presence_error = None;
                    s.recompute_presence();
                }
                self.fetch_units_behind_presence();
            }
            Reply::PresenceEnded(error) => {
                if let Some(s) = &mut self.session {
                    s.presence_error = Some(error);
                }
            }
            Reply::AlertListed(summary) => self.alert_listed(summary),
            Reply::AlertListEnded(error) => {
                if let Some(s) = &mut self.session {
                    s.alert_list_open = false;
                    s.alerts_error = Some(error);
                }
            }
            Reply::WatchEnded { alert_id, error } => {
                if let Some(s) = &mut self.session {
                    s.watching.remove(&alert_id);
                    if let Some(error) = error
                        && s.alerts_view.opened.as_deref() == Some(alert_id.as_str())
                    {
                        self.notice = Some(Notice {
                            text: error,
                            error: true,
                        });
                    }
                }
            }
        }
    }

    fn logged_in(&mut self, server: String, me: pb::AdminInfo) {
        self.login.busy = false;
        self.login.error = None;
        self.login.password.clear();
        let user = me.name.clone();
        tracing::info!(%server, %user, "logged in");
        let mut session = Session::new(server.clone(), user.clone(), me);
        if let Some(old) = self.stashed.take()
            && old.server == server
            && old.user == user
        {
            // Same admin again after the session ran out: keep what was typed.
            session.screen = old.screen;
            session.alerts_view = old.alerts_view;
            session.alerts_view.status = None;
            session.org = old.org;
            session.admins_view = old.admins_view;
            session.audit = old.audit;
        }
        if !session.screens().contains(&session.screen) {
            session.screen = Screen::Dashboard;
        }
        self.session = Some(session);
        self.settings.server = server;
        self.settings.user = user;
        self.settings.trust = self.login.trust;
        match self.login.trust {
            TrustMode::CaFile => self.settings.ca_file = self.login.ca_file.trim().to_owned(),
            TrustMode::Fingerprint => {
                self.settings.fingerprint = self.login.fingerprint.trim().to_owned()
            }
        }
        self.save_settings();
        self.refresh();
    }

    /// Fetches everything the admin may see again.
    pub fn refresh(&mut self) {
        let Some(s) = &mut self.session else { return };
        // Watches restart from the fresh alert list.
        s.watching.clear();
        let perms = s.perms.clone();
        let opened = s.alerts_view.opened.clone();
        // The dashboard's counts come from the presence stream; the
        // computer list is only for the organisation screen.
        let computers = perms.may_see_computers() && s.screen == Screen::Organisation;
        self.send(Request::Fetch(Fetch::Me));
        self.send(Request::Fetch(Fetch::Units));
        if computers {
            self.send(Request::Fetch(Fetch::Computers));
        }
        if perms.may_see_alerts() {
            self.send(Request::Fetch(Fetch::Alerts {
                limit: RECENT_ALERTS,
            }));
        }
        self.follow_alert_list();
        if perms.has_any(pb::Capability::EnrollAgents) {
            self.send(Request::Fetch(Fetch::Tokens));
        }
        if perms.has_any(pb::Capability::ManageAdmins) {
            self.send(Request::Fetch(Fetch::Admins));
        }
        if let Some(id) = opened {
            self.watch(id, true);
        }
    }

    /// Opens the stream of sent and cancelled alerts for an admin who may
    /// see alerts, unless it is open already; closes it for one who may not.
    fn follow_alert_list(&mut self) {
        let Some(s) = &mut self.session else { return };
        let may = s.perms.may_see_alerts();
        if may && !s.alert_list_open {
            s.alert_list_open = true;
            self.send(Request::WatchAlertList {
                limit: RECENT_ALERTS,
            });
        } else if !may && s.alert_list_open {
            s.alert_list_open = false;
            self.send(Request::UnwatchAlertList);
        }
    }

    fn watch(&mut self, alert_id: String, computers: bool) {
        if let Some(s) = &mut self.session {
            s.watching.insert(alert_id.clone());
        }
        self.send(Request::Watch {
            alert_id,
            computers,
        });
    }

    fn fetched(&mut self, fetched: Fetched) {
        let Some(s) = &mut self.session else { return };
        match fetched {
            Fetched::Me(me) => {
                let grants_changed = s.me.grants != me.grants;
                s.perms = Perms::new(&me);
                s.me = me;
                if !s.screens().contains(&s.screen) {
                    s.screen = Screen::Dashboard;
                }
                if grants_changed {
                    // The units the counts cover follow the grants, and so
                    // do the alerts the admin may see.
                    self.send(Request::WatchPresence);
                    if let Some(s) = &mut self.session
                        && s.perms.may_see_alerts()
                    {
                        // Opened anew, or closed below.
                        s.alert_list_open = false;
                    }
                    self.follow_alert_list();
                }
            }
            Fetched::Units(units) => {
                s.units_pending = s.units_pending.saturating_sub(1);
                s.tree = UnitTree::new(units);
                if s.org
                    .selected
                    .as_ref()
                    .is_none_or(|id| s.tree.get(id).is_none())
                {
                    s.org.selected = s.tree.root().map(|u| u.id.clone());
                }
                s.recompute_presence();
                s.org.rows_key = None;
                self.fetch_units_behind_presence();
            }
            Fetched::Computers(list) => {
                s.computers = Some(list);
                s.computers_error = None;
                s.computers_version += 1;
            }
            Fetched::Tokens(tokens) => s.tokens = tokens,
            Fetched::Admins(admins) => {
                s.admins = admins;
                if s.admins_view.selected.is_none() {
                    s.admins_view.selected = Some(s.user.clone());
                }
            }
            Fetched::Alerts(alerts) => {
                s.alerts_error = None;
                let opened = s.alerts_view.opened.clone();
                let to_watch: Vec<String> = alerts
                    .iter()
                    .filter(|a| !a.settled)
                    .filter_map(|a| a.alert.as_ref().map(|x| x.id.clone()))
                    .filter(|id| !s.watching.contains(id) && Some(id) != opened.as_ref())
                    .collect();
                s.alerts = Some(alerts);
                for id in to_watch {
                    self.watch(id, false);
                }
            }
            Fetched::Audit { request, entries } => {
                let a = &mut s.audit;
                a.loading = false;
                a.searched = true;
                a.error = None;
                a.more = entries.len() >= request.limit as usize;
                if request.before_seq == 0 {
                    a.entries = entries;
                } else {
                    a.entries.extend(entries);
                }
            }
        }
    }

    /// Fetches the units again when the presence summary names units the
    /// tree does not know yet, once per difference and not while a fetch
    /// is under way.
    fn fetch_units_behind_presence(&mut self) {
        let Some(s) = &mut self.session else { return };
        if s.units_pending > 0 {
            return;
        }
        let behind = s.units_behind();
        if behind.is_empty() || behind == s.presence_asked_units {
            return;
        }
        s.presence_asked_units = behind;
        self.send(Request::Fetch(Fetch::Units));
    }

    fn fetch_failed(&mut self, fetch: Fetch, error: String) {
        let Some(s) = &mut self.session else { return };
        if fetch == Fetch::Units {
            s.units_pending = s.units_pending.saturating_sub(1);
        }
        match fetch {
            Fetch::Computers => s.computers_error = Some(error),
            Fetch::Alerts { .. } => s.alerts_error = Some(error),
            Fetch::Audit(_) => {
                s.audit.loading = false;
                s.audit.error = Some(error);
            }
            Fetch::Me | Fetch::Units | Fetch::Tokens | Fetch::Admins => {
                self.notice = Some(Notice {
                    text: error,
                    error: true,
                });
            }
        }
    }

    fn alert_status(&mut self, status: pb::AlertStatus) {
        let Some(s) = &mut self.session else { return };
        let Some(id) = status.alert.as_ref().map(|a| a.id.clone()) else {
            return;
        };
        let mut summary = status.clone();
        summary.computers.clear();
        let list = s.alerts.get_or_insert_with(Vec::new);
        match list
            .iter_mut()
            .find(|a| a.alert.as_ref().is_some_and(|x| x.id == id))
        {
            Some(entry) => *entry = summary,
            None => list.insert(0, summary),
        }
        if s.alerts_view.opened.as_deref() == Some(id.as_str()) {
            let mut status = status;
            status.computers.sort_by(|a, b| {
                a.hostname
                    .cmp(&b.hostname)
                    .then(a.computer_id.cmp(&b.computer_id))
            });
            s.alerts_view.status = Some(status);
        }
    }

    /// An alert sent or cancelled by anyone: a new one goes on top of the
    /// recent alerts and is followed live; a known one (the admin's own,
    /// say, already listed from its send) only has its summary replaced.
    fn alert_listed(&mut self, summary: pb::AlertSummary) {
        let Some(s) = &mut self.session else { return };
        let id = summary.id.clone();
        let list = s.alerts.get_or_insert_with(Vec::new);
        if let Some(entry) = list
            .iter_mut()
            .find(|a| a.alert.as_ref().is_some_and(|x| x.id == id))
        {
            entry.alert = Some(summary);
            return;
        }
        list.insert(
            0,
            pb::AlertStatus {
                alert: Some(summary),
                ..Default::default()
            },
        );
        // Alerts pushed off the list are no longer followed, so that their
        // progress does not bring them back.
        let dropped: Vec<String> = list
            .split_off(list.len().min(RECENT_ALERTS as usize))
            .into_iter()
            .filter_map(|a| a.alert.map(|x| x.id))
            .filter(|x| s.alerts_view.opened.as_ref() != Some(x) && s.watching.remove(x))
            .collect();
        let follow = !s.watching.contains(&id) && s.alerts_view.opened.as_deref() != Some(&id);
        for gone in dropped {
            self.send(Request::Unwatch { alert_id: gone });
        }
        if follow {
            self.watch(id, false);
        }
    }

    // ------------------------------------------------------------ changes

    /// Queues a change for `form`; its result lands in [`Self::acted`].
    fn act(&mut self, form: Form, action: Action) {
        let id = self.next_id;
        self.next_id += 1;
        if let Some(s) = &mut self.session {
            s.errors.remove(&form);
            s.pending.insert(id, form);
        }
        self.send(Request::Act { id, action });
    }

    fn acted(&mut self, id: u64, result: Result<Outcome, String>) {
        let tr = self.tr;
        let Some(s) = &mut self.session else { return };
        let Some(form) = s.pending.remove(&id) else {
            return;
        };
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(error) => {
                s.errors.insert(form, error.clone());
                if form == Form::AlertSend {
                    s.alerts_view.compose.error = Some(error.clone());
                }
                self.notice = Some(Notice {
                    text: error,
                    error: true,
                });
                return;
            }
        };
        let mut fetch = Vec::new();
        let mut notice = None;
        match (form, outcome) {
            (Form::UnitCreate, Outcome::Unit(unit)) => {
                s.org.new_unit_name.clear();
                notice = Some(unit.path.clone());
                s.org.selected = Some(unit.id);
                fetch.push(Fetch::Units);
            }
            (Form::UnitRename | Form::UnitMove, Outcome::Unit(unit)) => {
                s.org.rename_to.clear();
                s.org.move_to = None;
                notice = Some(unit.path);
                fetch.extend([Fetch::Units, Fetch::Computers]);
            }
            (Form::UnitDelete, _) => {
                let parent = s
                    .org
                    .selected
                    .as_deref()
                    .and_then(|id| s.tree.get(id))
                    .map(|u| u.parent_id.clone());
                s.org.selected = parent.filter(|p| !p.is_empty());
                fetch.push(Fetch::Units);
            }
            (Form::TokenCreate, Outcome::Token { secret, info }) => {
                s.org.new_token = Some((secret, info.org_unit_path));
                fetch.push(Fetch::Tokens);
            }
            (Form::TokenRevoke, _) => fetch.push(Fetch::Tokens),
            (Form::ComputerMove | Form::ComputerRevoke, Outcome::Computer(computer)) => {
                s.org.computer_move_to = None;
                notice = Some(format!(
                    "{} · {}",
                    computer.hostname, computer.org_unit_path
                ));
                // The dashboard's counts follow from the presence stream.
                if let Some(list) = &mut s.computers
                    && let Some(slot) = list.iter_mut().find(|c| c.id == computer.id)
                {
                    *slot = computer;
                    s.computers_version += 1;
                }
            }
            (Form::AdminCreate, Outcome::Admin(admin)) => {
                let v = &mut s.admins_view;
                v.new_name.clear();
                v.new_password.clear();
                v.new_password_again.clear();
                v.new_grants.clear();
                v.selected = Some(admin.name.clone());
                notice = Some(admin.name);
                fetch.push(Fetch::Admins);
            }
            (Form::AdminDelete, _) => {
                s.admins_view.selected = None;
                fetch.push(Fetch::Admins);
            }
            (Form::AdminPassword, _) => {
                s.admins_view.reset_password.clear();
                s.admins_view.reset_password_again.clear();
                notice = s.admins_view.selected.clone();
            }
            (Form::GrantAdd | Form::GrantRevoke, Outcome::Admin(admin)) => {
                if admin.name == s.user {
                    fetch.push(Fetch::Me);
                }
                match s.admins.iter_mut().find(|a| a.name == admin.name) {
                    Some(slot) => *slot = admin,
                    None => fetch.push(Fetch::Admins),
                }
            }
            (Form::AlertSend, Outcome::AlertSent(sent)) => {
                let c = &mut s.alerts_view.compose;
                c.title.clear();
                c.body.clear();
                c.error = None;
                notice = Some(tr.fill(
                    T::SentNotice,
                    &[
                        ("id", &sent.alert_id),
                        (
                            "computers",
                            &tr.count(crate::i18n::COMPUTERS, u64::from(sent.computers)),
                        ),
                    ],
                ));
                s.alerts_view.opened = Some(sent.alert_id.clone());
                s.alerts_view.status = None;
                s.screen = Screen::Alerts;
                let id = sent.alert_id;
                self.watch(id, true);
                self.send(Request::Fetch(Fetch::Alerts {
                    limit: RECENT_ALERTS,
                }));
            }
            (Form::AlertCancel, _) => fetch.push(Fetch::Alerts {
                limit: RECENT_ALERTS,
            }),
            (form, outcome) => {
                tracing::warn!(?form, ?outcome, "unexpected result for this form");
            }
        }
        if let Some(text) = notice {
            self.notice = Some(Notice { text, error: false });
        }
        for f in fetch {
            self.send(Request::Fetch(f));
        }
    }

    // ------------------------------------------------------------ navigation

    pub fn go(&mut self, screen: Screen) {
        let Some(s) = &mut self.session else { return };
        if !s.screens().contains(&screen) || s.screen == screen {
            return;
        }
        s.screen = screen;
        // The computer list is fetched afresh each time it is opened: it is
        // not kept up to date while other screens are shown.
        if screen == Screen::Organisation && s.perms.may_see_computers() {
            self.send(Request::Fetch(Fetch::Computers));
        }
    }

    /// Shows an alert's live progress with its per-computer table.
    pub fn open_alert(&mut self, id: &str) {
        let previous = {
            let Some(s) = &mut self.session else { return };
            s.screen = Screen::Alerts;
            let previous = s.alerts_view.opened.replace(id.to_owned());
            s.alerts_view.status = None;
            previous
        };
        self.stop_detail_watch(previous);
        self.watch(id.to_owned(), true);
    }

    /// Goes back from an alert's progress to the composer.
    pub fn new_alert(&mut self) {
        let previous = match &mut self.session {
            Some(s) => {
                s.alerts_view.status = None;
                s.alerts_view.opened.take()
            }
            None => return,
        };
        self.stop_detail_watch(previous);
    }

    /// The detail watch of `previous` goes back to a plain one while the
    /// alert is live, so the lists keep updating without per-computer rows.
    fn stop_detail_watch(&mut self, previous: Option<String>) {
        let Some(previous) = previous else { return };
        let live = self
            .session
            .as_ref()
            .and_then(|s| s.alerts.as_ref())
            .and_then(|list| {
                list.iter()
                    .find(|a| a.alert.as_ref().is_some_and(|x| x.id == previous))
            })
            .is_some_and(|a| !a.settled);
        if live {
            self.watch(previous, false);
        } else {
            if let Some(s) = &mut self.session {
                s.watching.remove(&previous);
            }
            self.send(Request::Unwatch { alert_id: previous });
        }
    }

    // ------------------------------------------------------------ quick alerts

    /// The targets the composer's audience stands for. A unit below
    /// another picked unit adds nothing and is left out.
    pub fn compose_targets(&self) -> Vec<pb::AlertTarget> {
        let Some(s) = &self.session else {
            return Vec::new();
        };
        let c = &s.alerts_view.compose;
        if c.everyone {
            return vec![pb::AlertTarget {
                target: Some(Target::All(true)),
            }];
        }
        c.units
            .iter()
            .filter(|id| {
                !c.units
                    .iter()
                    .any(|other| other != *id && s.tree.is_within(id, other))
            })
            .map(|id| pb::AlertTarget {
                target: Some(Target::OrgUnitId(id.clone())),
            })
            .collect()
    }

    /// Asks how many computers the audience reaches when it has changed
    /// since the last ask.
    pub fn update_preview(&mut self) {
        let targets = self.compose_targets();
        let Some(s) = &mut self.session else { return };
        let c = &mut s.alerts_view.compose;
        if targets == c.preview_key {
            return;
        }
        c.preview_key = targets.clone();
        c.preview = None;
        c.preview_seq += 1;
        if targets.is_empty() {
            return;
        }
        let seq = c.preview_seq;
        self.send(Request::Preview { seq, targets });
    }

    /// Whether `unit` is picked, directly or through a picked ancestor.
    pub fn audience_covers(&self, unit: &str) -> bool {
        self.session.as_ref().is_some_and(|s| {
            let c = &s.alerts_view.compose;
            c.everyone || c.units.iter().any(|u| s.tree.is_within(unit, u))
        })
    }

    /// Checks the composer; critical alerts ask for confirmation first.
    pub fn submit_alert(&mut self) {
        let tr = self.tr;
        let targets = self.compose_targets();
        let Some(s) = &mut self.session else { return };
        let c = &mut s.alerts_view.compose;
        c.error = None;
        if c.title.trim().is_empty() {
            c.error = Some(tr.t(T::NeedTitle).to_owned());
            return;
        }
        if targets.is_empty() {
            c.error = Some(tr.t(T::PickAudience).to_owned());
            return;
        }
        if c.priority == pb::Priority::Critical {
            s.confirm = Some(Confirm::SendCritical);
            return;
        }
        self.send_alert();
    }

    fn send_alert(&mut self) {
        let targets = self.compose_targets();
        let now = self.now_ms;
        let Some(s) = &self.session else { return };
        let c = &s.alerts_view.compose;
        let minutes = EXPIRY_CHOICES
            .get(c.expiry)
            .map_or(4 * 60, |(minutes, _)| *minutes);
        let request = pb::SendAlertRequest {
            targets,
            title: c.title.trim().to_owned(),
            body: c.body.trim_end().to_owned(),
            priority: c.priority as i32,
            expires_unix_ms: now + i64::try_from(minutes * 60_000).unwrap_or(i64::MAX / 2),
        };
        self.act(Form::AlertSend, Action::SendAlert(request));
    }

    /// Sends any request as this session, as the composer would. For the
    /// server's refusal to be shown where the composer shows errors.
    pub fn send_alert_request(&mut self, request: pb::SendAlertRequest) {
        self.act(Form::AlertSend, Action::SendAlert(request));
    }

    // ------------------------------------------------------------ confirmations

    pub fn ask(&mut self, confirm: Confirm) {
        if let Some(s) = &mut self.session {
            s.confirm = Some(confirm);
        }
    }

    pub fn answer(&mut self, yes: bool) {
        let Some(confirm) = self.session.as_mut().and_then(|s| s.confirm.take()) else {
            return;
        };
        if !yes {
            return;
        }
        match confirm {
            Confirm::DeleteUnit { id } => self.act(Form::UnitDelete, Action::DeleteUnit { id }),
            Confirm::RevokeComputer { id } => {
                self.act(Form::ComputerRevoke, Action::RevokeComputer { id })
            }
            Confirm::DeleteAdmin { name } => {
                self.act(Form::AdminDelete, Action::DeleteAdmin { name })
            }
            Confirm::SendCritical => self.send_alert(),
            Confirm::CancelAlert { id } => self.act(Form::AlertCancel, Action::CancelAlert { id }),
        }
    }

    // ------------------------------------------------------------ organisation

    pub fn create_unit(&mut self) {
        let Some(s) = &self.session else { return };
        let (Some(parent_id), name) = (s.org.selected.clone(), s.org.new_unit_name.trim()) else {
            return;
        };
        if name.is_empty() {
            return;
        }
        let name = name.to_owned();
        self.act(Form::UnitCreate, Action::CreateUnit { parent_id, name });
    }

    pub fn rename_unit(&mut self) {
        let Some(s) = &self.session else { return };
        let (Some(id), name) = (s.org.selected.clone(), s.org.rename_to.trim()) else {
            return;
        };
        if name.is_empty() {
            return;
        }
        let name = name.to_owned();
        self.act(Form::UnitRename, Action::RenameUnit { id, name });
    }

    pub fn move_unit(&mut self) {
        let Some(s) = &self.session else { return };
        let (Some(id), Some(new_parent_id)) = (s.org.selected.clone(), s.org.move_to.clone())
        else {
            return;
        };
        self.act(Form::UnitMove, Action::MoveUnit { id, new_parent_id });
    }

    pub fn create_token(&mut self) {
        let tr = self.tr;
        let Some(s) = &mut self.session else { return };
        let Some(org_unit_id) = s.org.selected.clone() else {
            return;
        };
        let valid_for = match parse_duration(&s.org.token_valid_for) {
            Ok(d) if d.as_secs() > 0 => d.as_secs(),
            _ => {
                s.errors
                    .insert(Form::TokenCreate, tr.t(T::InvalidDuration).to_owned());
                return;
            }
        };
        let uses = match s.org.token_uses.trim().parse::<u32>() {
            Ok(n) if n >= 1 => n,
            _ => {
                s.errors
                    .insert(Form::TokenCreate, tr.t(T::InvalidUses).to_owned());
                return;
            }
        };
        s.org.new_token = None;
        self.act(
            Form::TokenCreate,
            Action::CreateToken {
                org_unit_id,
                valid_for_secs: valid_for,
                max_uses: uses,
            },
        );
    }

    pub fn revoke_token(&mut self, id: String) {
        self.act(Form::TokenRevoke, Action::RevokeToken { id });
    }

    pub fn move_computer(&mut self) {
        let Some(s) = &self.session else { return };
        let (Some(id), Some(org_unit_id)) = (
            s.org.selected_computer.clone(),
            s.org.computer_move_to.clone(),
        ) else {
            return;
        };
        self.act(Form::ComputerMove, Action::MoveComputer { id, org_unit_id });
    }

    // ------------------------------------------------------------ admins

    pub fn create_admin(&mut self) {
        let tr = self.tr;
        let Some(s) = &mut self.session else { return };
        let v = &s.admins_view;
        let name = v.new_name.trim().to_owned();
        let error = if name.is_empty() {
            Some(tr.t(T::NeedUser))
        } else if v.new_password.is_empty() {
            Some(tr.t(T::NeedPassword))
        } else if v.new_password != v.new_password_again {
            Some(tr.t(T::PasswordsDiffer))
        } else {
            None
        };
        if let Some(error) = error {
            s.errors.insert(Form::AdminCreate, error.to_owned());
            return;
        }
        let grants = merge_grants(v.new_grants.iter().filter_map(GrantDraft::to_grant));
        let password = v.new_password.clone();
        self.act(
            Form::AdminCreate,
            Action::CreateAdmin {
                name,
                password,
                grants,
            },
        );
    }

    pub fn reset_password(&mut self) {
        let tr = self.tr;
        let Some(s) = &mut self.session else { return };
        let v = &s.admins_view;
        let Some(name) = v.selected.clone() else {
            return;
        };
        if v.reset_password.is_empty() {
            s.errors
                .insert(Form::AdminPassword, tr.t(T::NeedPassword).to_owned());
            return;
        }
        if v.reset_password != v.reset_password_again {
            s.errors
                .insert(Form::AdminPassword, tr.t(T::PasswordsDiffer).to_owned());
            return;
        }
        let password = v.reset_password.clone();
        self.act(
            Form::AdminPassword,
            Action::ResetPassword { name, password },
        );
    }

    pub fn add_grant(&mut self) {
        let Some(s) = &self.session else { return };
        let (Some(name), Some(grant)) = (
            s.admins_view.selected.clone(),
            s.admins_view.grant.to_grant(),
        ) else {
            return;
        };
        self.act(Form::GrantAdd, Action::AddGrant { name, grant });
    }

    pub fn revoke_grant(&mut self, name: String, grant: pb::Grant) {
        self.act(Form::GrantRevoke, Action::RevokeGrant { name, grant });
    }

    // ------------------------------------------------------------ audit

    /// Searches the audit log with the filters (`older`: the next page).
    pub fn search_audit(&mut self, older: bool) {
        let tr = self.tr;
        let now = self.now_ms;
        let Some(s) = &mut self.session else { return };
        let a = &mut s.audit;
        let since = match a.since.trim() {
            "" => Ok(0),
            text => parse_since(text, now),
        };
        let until = match a.until.trim() {
            "" => Ok(0),
            text => parse_since(text, now).or_else(|_| parse_time(text)),
        };
        let (since, until) = match (since, until) {
            (Ok(since), Ok(until)) => (since, until),
            (Err(_), _) | (_, Err(_)) => {
                a.error = Some(tr.t(T::InvalidTime).to_owned());
                return;
            }
        };
        let before_seq = if older {
            match a.entries.last() {
                Some(last) => last.seq,
                None => return,
            }
        } else {
            0
        };
        a.loading = true;
        a.error = None;
        let request = pb::ListAuditLogRequest {
            admin: a.admin.trim().to_owned(),
            action: a.action.trim().to_owned(),
            org_unit_id: a.unit.clone().unwrap_or_default(),
            since_unix_ms: since,
            until_unix_ms: until,
            before_seq,
            limit: AUDIT_PAGE,
        };
        self.send(Request::Fetch(Fetch::Audit(request)));
    }
}

/// Grants of the same capability become one grant covering all their scopes.
fn merge_grants(grants: impl Iterator<Item = pb::Grant>) -> Vec<pb::Grant> {
    let mut out: Vec<pb::Grant> = Vec::new();
    for g in grants {
        let scope = g.scope.clone().unwrap_or_default();
        match out.iter_mut().find(|o| o.capability == g.capability) {
            Some(existing) => {
                let s = existing.scope.get_or_insert_with(Default::default);
                s.organisation |= scope.organisation;
                for u in scope.unit_ids {
                    if !s.unit_ids.contains(&u) {
                        s.unit_ids.push(u);
                    }
                }
            }
            None => out.push(g),
        }
    }
    out
}

/// How to trust the server, from the login form.
pub fn trust_of(
    mode: TrustMode,
    ca_file: &str,
    fingerprint: &str,
) -> Result<ServerTrust, ClientError> {
    match mode {
        TrustMode::CaFile => read_ca_file(std::path::Path::new(ca_file.trim())),
        TrustMode::Fingerprint => normalize_fingerprint(fingerprint)
            .map(ServerTrust::Fingerprint)
            .map_err(|e| ClientError::Config(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample;

    fn requests(c: &mut Console) -> Vec<String> {
        c.take_requests()
            .into_iter()
            .map(|r| match r {
                Request::Login { server, .. } => format!("login {server}"),
                Request::Resume { server, .. } => format!("resume {server}"),
                Request::Logout => "logout".into(),
                Request::Fetch(f) => format!("fetch {f:?}")
                    .split([' ', '('])
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" "),
                Request::Act { action, .. } => format!("act {action:?}")
                    .split([' ', '(', '{'])
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" "),
                Request::Preview { targets, .. } => format!("preview {}", targets.len()),
                Request::Watch {
                    alert_id,
                    computers,
                } => format!("watch {alert_id} {computers}"),
                Request::Unwatch { alert_id } => format!("unwatch {alert_id}"),
                Request::WatchPresence => "watch presence".into(),
                Request::WatchAlertList { .. } => "watch alert list".into(),
                Request::UnwatchAlertList => "unwatch alert list".into(),
            })
            .collect()
    }

    fn limited() -> pb::AdminInfo {
        pb::AdminInfo {
            name: "alice".into(),
            grants: vec![pb::Grant {
                capability: pb::Capability::SendQuickAlerts as i32,
                scope: Some(pb::Scope {
                    organisation: false,
                    unit_ids: vec!["u-b3".into()],
                }),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn login_form_checks_before_asking_the_server() {
        let mut c = Console::new(Settings::default(), None);
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----").unwrap();
        // (server, ca file, user, password, error or request)
        let cases = [
            ("", "x", "admin", "pw", "enter the server address"),
            (
                " https://h:7443 ",
                "",
                "admin",
                "pw",
                "enter the CA file or the CA fingerprint",
            ),
            (
                "https://h:7443",
                "/nonexistent/ca.pem",
                "admin",
                "pw",
                "cannot read the CA file",
            ),
            ("https://h:7443", "CA", "", "pw", "enter the user name"),
            ("https://h:7443", "CA", "admin", "", "enter the password"),
            (
                " https://h:7443 ",
                "CA",
                " admin ",
                "pw",
                "login https://h:7443",
            ),
        ];
        for (server, ca_file, user, password, want) in cases {
            c.login = LoginForm {
                server: server.into(),
                ca_file: if ca_file == "CA" {
                    ca.display().to_string()
                } else {
                    ca_file.into()
                },
                user: user.into(),
                password: password.into(),
                ..LoginForm::default()
            };
            c.submit_login();
            let sent = requests(&mut c);
            match &c.login.error {
                Some(error) => {
                    assert!(error.starts_with(want), "{error} vs {want}");
                    assert!(sent.is_empty());
                    assert!(!c.login.busy);
                }
                None => {
                    assert_eq!(sent, [want]);
                    assert!(c.login.busy);
                }
            }
        }
        // A failed login keeps everything typed, password included.
        c.apply(Reply::LoginFailed(
            "not authenticated: wrong name or password".into(),
        ));
        assert_eq!(c.login.user, " admin ");
        assert_eq!(c.login.password, "pw");
        assert!(!c.login.busy);
    }

    #[test]
    fn logging_in_fetches_only_what_the_admin_may_see() {
        let mut c = Console::new(Settings::default(), None);
        c.apply(Reply::LoggedIn {
            server: "https://h".into(),
            me: limited(),
            expires_unix_ms: 0,
        });
        assert_eq!(
            requests(&mut c),
            [
                "fetch Me",
                "fetch Units",
                "fetch Alerts",
                "watch alert list"
            ]
        );
        let s = c.session.as_ref().unwrap();
        assert_eq!(s.screens(), [Screen::Dashboard, Screen::Alerts]);
        // Screens not offered cannot be reached either.
        c.go(Screen::Admins);
        assert_eq!(c.session.as_ref().unwrap().screen, Screen::Dashboard);

        // The dashboard's counts come from the presence stream: the
        // computer list waits for the organisation screen.
        let mut full = sample::console(0);
        full.refresh();
        assert_eq!(
            requests(&mut full),
            [
                "fetch Me",
                "fetch Units",
                "fetch Alerts",
                "fetch Tokens",
                "fetch Admins"
            ]
        );
        full.go(Screen::Organisation);
        assert_eq!(requests(&mut full), ["fetch Computers"]);
        full.refresh();
        assert!(requests(&mut full).contains(&"fetch Computers".to_owned()));
        full.go(Screen::Dashboard);
        full.go(Screen::Organisation);
        assert_eq!(requests(&mut full), ["fetch Computers"]);
    }

    #[test]
    fn live_alerts_are_watched_once() {
        let mut c = sample::console(10);
        // The sample's alert list went in before: only the live one is watched.
        c.apply(Reply::Fetched(Fetched::Alerts(sample::alerts())));
        assert!(requests(&mut c).is_empty(), "already watching al-3");
        c.refresh();
        let sent = requests(&mut c);
        assert!(!sent.iter().any(|r| r.starts_with("watch")), "{sent:?}");
        c.apply(Reply::Fetched(Fetched::Alerts(sample::alerts())));
        assert_eq!(requests(&mut c), ["watch al-3 false"]);

        // Opening it asks for per-computer rows; leaving goes back to counts.
        c.open_alert("al-3");
        assert_eq!(requests(&mut c), ["watch al-3 true"]);
        c.apply(Reply::AlertStatus(sample::alert_detail()));
        let s = c.session.as_ref().unwrap();
        assert_eq!(s.alerts_view.status.as_ref().unwrap().computers.len(), 24);
        // The list entry is updated without the per-computer rows.
        let listed = &s.alerts.as_ref().unwrap()[0];
        assert!(listed.computers.is_empty());
        c.new_alert();
        assert_eq!(requests(&mut c), ["watch al-3 false"]);
        // A settled alert is simply unwatched.
        c.open_alert("al-1");
        c.new_alert();
        assert_eq!(requests(&mut c), ["watch al-1 true", "unwatch al-1"]);
    }

    #[test]
    fn audience_targets_drop_units_inside_picked_units() {
        let mut c = sample::console(30);
        let s = c.session.as_mut().unwrap();
        s.alerts_view.compose.units = ["u-br", "u-b3", "u-it"].map(String::from).into();
        let ids: Vec<String> = c
            .compose_targets()
            .into_iter()
            .map(|t| match t.target {
                Some(Target::OrgUnitId(id)) => id,
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(ids, ["u-br", "u-it"]);
        assert!(c.audience_covers("u-teh"));
        assert!(!c.audience_covers("u-hq"));

        c.update_preview();
        assert_eq!(requests(&mut c), ["preview 2"]);
        c.update_preview();
        assert!(
            requests(&mut c).is_empty(),
            "unchanged audience: no new ask"
        );
        // An answer to an older question is ignored.
        c.apply(Reply::Preview {
            seq: 0,
            result: Ok(Audience::default()),
        });
        assert!(
            c.session
                .as_ref()
                .unwrap()
                .alerts_view
                .compose
                .preview
                .is_none()
        );

        c.session.as_mut().unwrap().alerts_view.compose.everyone = true;
        assert_eq!(
            c.compose_targets(),
            [pb::AlertTarget {
                target: Some(Target::All(true))
            }]
        );
    }

    #[test]
    fn a_refused_send_keeps_the_text_and_shows_the_server_message() {
        let mut c = sample::console(30);
        {
            let compose = &mut c.session.as_mut().unwrap().alerts_view.compose;
            compose.title = "Ewakuacja budynku B".into();
            compose.priority = pb::Priority::Critical;
        }
        c.submit_alert();
        assert_eq!(
            c.session
                .as_ref()
                .unwrap()
                .alerts_view
                .compose
                .error
                .as_deref(),
            Some("Pick at least one org unit.")
        );
        c.session
            .as_mut()
            .unwrap()
            .alerts_view
            .compose
            .units
            .insert("u-b3".into());
        c.submit_alert();
        // Critical: nothing goes out before the admin confirms.
        assert_eq!(
            c.session.as_ref().unwrap().confirm,
            Some(Confirm::SendCritical)
        );
        assert!(requests(&mut c).is_empty());
        c.answer(true);
        assert_eq!(requests(&mut c), ["act SendAlert"]);
        assert!(c.session.as_ref().unwrap().is_busy(Form::AlertSend));

        let refusal = "permission denied: you need the \"send quick alerts\" permission on /Branches/Filia nr 3";
        c.apply(Reply::Acted {
            id: c.next_id - 1,
            result: Err(refusal.into()),
        });
        let s = c.session.as_ref().unwrap();
        assert_eq!(s.alerts_view.compose.error.as_deref(), Some(refusal));
        assert_eq!(s.alerts_view.compose.title, "Ewakuacja budynku B");
        assert_eq!(c.notice.as_ref().map(|n| n.error), Some(true));

        // Accepted: the form empties and the progress view follows the alert.
        c.answer(false);
        c.send_alert();
        requests(&mut c);
        c.apply(Reply::Acted {
            id: c.next_id - 1,
            result: Ok(Outcome::AlertSent(pb::SendAlertResponse {
                alert_id: "al-9".into(),
                computers: 3,
                accepted_unix_ms: sample::NOW,
                expires_unix_ms: sample::NOW + 1,
            })),
        });
        let s = c.session.as_ref().unwrap();
        assert!(s.alerts_view.compose.title.is_empty());
        assert_eq!(s.alerts_view.opened.as_deref(), Some("al-9"));
        assert_eq!(s.screen, Screen::Alerts);
        assert_eq!(requests(&mut c), ["watch al-9 true", "fetch Alerts"]);
        assert_eq!(
            c.notice.as_ref().map(|n| n.text.as_str()),
            Some("Alert al-9 accepted for 3 computers")
        );
    }

    #[test]
    fn an_ended_session_keeps_what_was_typed_for_the_same_admin() {
        let mut c = sample::console(3);
        c.session.as_mut().unwrap().alerts_view.compose.body = "Drafted text".into();
        c.apply(Reply::SessionEnded(
            "not authenticated: session expired".into(),
        ));
        assert!(c.session.is_none());
        assert_eq!(
            c.login.error.as_deref(),
            Some("Your session ended: not authenticated: session expired. Log in again.")
        );
        assert_eq!(c.login.user, "admin");
        // The presence stream of the ended session notices later: what is
        // being typed into the login form stays.
        c.login.password = "typing".into();
        c.apply(Reply::SessionEnded(
            "not authenticated: log in again".into(),
        ));
        assert_eq!(c.login.password, "typing");
        c.apply(Reply::LoggedIn {
            server: "https://herald.example.org:7443".into(),
            me: c.stashed.as_ref().unwrap().me.clone(),
            expires_unix_ms: 0,
        });
        assert_eq!(
            c.session.as_ref().unwrap().alerts_view.compose.body,
            "Drafted text"
        );
    }

    #[test]
    fn a_lost_connection_is_shown_and_everything_is_fetched_when_it_is_back() {
        let mut c = sample::console(3);
        c.apply(Reply::Connection(Connection::Lost(
            "connection refused".into(),
        )));
        assert_eq!(
            c.session.as_ref().unwrap().connection,
            Connection::Lost("connection refused".into())
        );
        assert!(requests(&mut c).is_empty());
        c.apply(Reply::Connection(Connection::Online));
        let sent = requests(&mut c);
        assert!(sent.contains(&"fetch Units".to_owned()), "{sent:?}");
        // The presence stream comes back by itself; the dashboard needs no
        // computer list.
        assert!(!sent.contains(&"fetch Computers".to_owned()), "{sent:?}");
        // While lost, the counts say how old they are.
        c.apply(Reply::Connection(Connection::Lost("gone".into())));
        let s = c.session.as_ref().unwrap();
        assert_eq!(s.presence_at_ms, sample::NOW);
    }

    fn unit_presence(id: &str, path: &str, online: u32, offline: u32) -> pb::UnitPresence {
        pb::UnitPresence {
            org_unit_id: id.into(),
            path: path.into(),
            online,
            offline,
        }
    }

    #[test]
    fn presence_rows_follow_each_summary_within_the_grants() {
        let mut c = Console::new(Settings::default(), None);
        c.apply(Reply::LoggedIn {
            server: "https://h".into(),
            me: limited(),
            expires_unix_ms: 0,
        });
        requests(&mut c);
        assert!(c.session.as_ref().unwrap().presence_units.is_none());
        // Only Filia nr 3 is covered: it is the top row, without indent.
        let branch = |online| pb::PresenceSummary {
            units: vec![unit_presence("u-b3", "/Branches/Filia nr 3", online, 2)],
            at_unix_ms: 5,
        };
        c.apply(Reply::Presence(branch(1)));
        // The units are on their way already: no second ask.
        assert!(requests(&mut c).is_empty());
        let sample = sample::console(0);
        let units = sample.session.as_ref().unwrap().tree.units().to_vec();
        c.apply(Reply::Fetched(Fetched::Units(units.clone())));
        assert!(requests(&mut c).is_empty(), "the tree knows every unit");
        let rows = |c: &Console| -> Vec<(String, usize, u32, u32)> {
            c.session
                .as_ref()
                .unwrap()
                .presence
                .iter()
                .map(|p| (p.unit_id.clone(), p.depth, p.online, p.offline))
                .collect()
        };
        assert_eq!(rows(&c), [("u-b3".into(), 0, 1, 2)]);
        c.apply(Reply::Presence(branch(2)));
        assert_eq!(rows(&c), [("u-b3".into(), 0, 2, 2)]);
        assert!(requests(&mut c).is_empty(), "never polls");

        // A unit created by someone else shows up in a summary: the units
        // are fetched once for it.
        let mut grown = branch(2);
        grown.units.push(unit_presence(
            "u-new",
            "/Branches/Filia nr 3/Czytelnia",
            1,
            0,
        ));
        c.apply(Reply::Presence(grown.clone()));
        assert_eq!(requests(&mut c), ["fetch Units"]);
        c.apply(Reply::Fetched(Fetched::Units(units)));
        c.apply(Reply::Presence(grown));
        assert!(requests(&mut c).is_empty(), "asked once for that unit");

        // A refused stream is shown; the last counts stay.
        c.apply(Reply::PresenceEnded("permission denied: no".into()));
        let s = c.session.as_ref().unwrap();
        assert_eq!(s.presence_error.as_deref(), Some("permission denied: no"));
        assert_eq!(s.presence.len(), 1);
    }

    #[test]
    fn changed_grants_open_the_presence_stream_anew() {
        let mut c = sample::console(3);
        let me = c.session.as_ref().unwrap().me.clone();
        c.apply(Reply::Fetched(Fetched::Me(me)));
        assert!(requests(&mut c).is_empty());
        c.apply(Reply::Fetched(Fetched::Me(limited())));
        assert_eq!(requests(&mut c), ["watch presence", "watch alert list"]);
        // Without "send quick alerts" or "view reports" no alert is listed:
        // the stream is closed rather than refused.
        let mut none = limited();
        none.grants[0].capability = pb::Capability::ManageComputers as i32;
        c.apply(Reply::Fetched(Fetched::Me(none)));
        assert_eq!(requests(&mut c), ["watch presence", "unwatch alert list"]);
    }

    #[test]
    fn alerts_sent_by_anyone_join_the_recent_alerts_once() {
        let mut c = sample::console(3);
        c.apply(Reply::Fetched(Fetched::Alerts(sample::alerts())));
        c.take_requests();
        let listed = |c: &Console| c.session.as_ref().unwrap().alerts.as_ref().unwrap().clone();
        let before = listed(&c).len();
        let summary = |id: &str, cancelled| pb::AlertSummary {
            id: id.into(),
            title: format!("Alert {id}"),
            cancelled,
            ..Default::default()
        };
        // Another admin's alert goes on top and is followed live.
        c.apply(Reply::AlertListed(summary("al-20", false)));
        assert_eq!(requests(&mut c), ["watch al-20 false"]);
        let list = listed(&c);
        assert_eq!(list.len(), before + 1);
        assert_eq!(list[0].alert.as_ref().unwrap().id, "al-20");
        // Its cancellation updates the same row.
        c.apply(Reply::AlertListed(summary("al-20", true)));
        assert!(requests(&mut c).is_empty());
        let list = listed(&c);
        assert_eq!(list.len(), before + 1);
        assert!(list[0].alert.as_ref().unwrap().cancelled);

        // The admin's own alert, already shown from its send, is not listed
        // twice, whichever comes first.
        c.send_alert_request(pb::SendAlertRequest::default());
        let id = c
            .session
            .as_ref()
            .unwrap()
            .pending
            .keys()
            .copied()
            .max()
            .unwrap();
        c.take_requests();
        c.apply(Reply::AlertListed(summary("al-21", false)));
        c.apply(Reply::Acted {
            id,
            result: Ok(Outcome::AlertSent(pb::SendAlertResponse {
                alert_id: "al-21".into(),
                computers: 1,
                ..Default::default()
            })),
        });
        c.apply(Reply::AlertListed(summary("al-21", false)));
        let list = listed(&c);
        assert_eq!(list.len(), before + 2);
        assert_eq!(
            list.iter()
                .filter(|a| a.alert.as_ref().unwrap().id == "al-21")
                .count(),
            1
        );

        // The list keeps its length.
        c.take_requests();
        for i in 0..RECENT_ALERTS {
            c.apply(Reply::AlertListed(summary(&format!("al-x{i}"), false)));
        }
        assert_eq!(listed(&c).len(), RECENT_ALERTS as usize);
        // ...and stops following the live ones it drops.
        let sent = requests(&mut c);
        assert!(sent.contains(&"unwatch al-20".to_owned()), "{sent:?}");
        assert!(
            !sent.contains(&"unwatch al-21".to_owned()),
            "opened: {sent:?}"
        );

        // A refused stream is said, and Refresh asks for it again.
        c.take_requests();
        c.apply(Reply::AlertListEnded("permission denied: no".into()));
        assert!(c.session.as_ref().unwrap().alerts_error.is_some());
        c.refresh();
        assert!(requests(&mut c).contains(&"watch alert list".to_owned()));
    }

    #[test]
    fn presence_adds_up_through_the_tree() {
        let c = sample::console(300);
        let s = c.session.as_ref().unwrap();
        let root = &s.presence[0];
        assert_eq!(
            (root.unit_id.as_str(), root.online + root.offline),
            ("u-root", 300)
        );
        assert_eq!(root.online, 200);
        let branches = s.presence.iter().find(|p| p.unit_id == "u-br").unwrap();
        let leaves: u32 = s
            .presence
            .iter()
            .filter(|p| ["u-b3", "u-b7", "u-b12", "u-tokyo", "u-teh"].contains(&p.unit_id.as_str()))
            .map(|p| p.online + p.offline)
            .sum();
        assert_eq!(branches.online + branches.offline, leaves);
        assert_eq!(s.unit_computers("u-br").0, leaves);
    }

    #[test]
    fn computer_rows_follow_unit_and_filter() {
        let mut c = sample::console(1000);
        let s = c.session.as_mut().unwrap();
        s.org.selected = Some("u-root".into());
        s.update_org_rows();
        assert_eq!(s.org.rows.len(), 1000);
        s.org.selected = Some("u-it".into());
        s.update_org_rows();
        let in_it = s.org.rows.len();
        assert!(in_it > 0 && in_it < 1000);
        s.org.filter = "WINDOWS".into();
        s.update_org_rows();
        assert!(s.org.rows.len() < in_it);
        let list = s.computers.as_ref().unwrap();
        assert!(
            s.org
                .rows
                .iter()
                .all(|&i| list[i].os.contains("Windows") && list[i].org_unit_id == "u-it")
        );
    }
}
