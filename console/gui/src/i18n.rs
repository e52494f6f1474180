//! The console's words in English and Polish.
//!
//! Every visible label goes through [`Tr`]: a key of the catalogue, with
//! `{name}` placeholders filled by [`Tr::fill`], and plural forms chosen by
//! [`Tr::count`] (Polish has three). Server messages and content (unit
//! names, alert text) are shown as they come.

use serde::{Deserialize, Serialize};

/// A language the interface can be shown in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    #[default]
    En,
    Pl,
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::En, Lang::Pl];

    /// The language's own name, for the switcher.
    pub fn native_name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Pl => "Polski",
        }
    }
}

macro_rules! catalogue {
    ($($key:ident => $en:literal, $pl:literal;)*) => {
        /// A text of the interface.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum T { $($key),* }

        impl T {
            /// Every key, for completeness tests.
            pub const ALL: &'static [T] = &[$(T::$key),*];

            fn en(self) -> &'static str {
                match self { $(T::$key => $en),* }
            }

            fn pl(self) -> &'static str {
                match self { $(T::$key => $pl),* }
            }
        }
    };
}

catalogue! {
    AppTitle => "Herald console", "Konsola Herald";
    // Login
    LoginHeading => "Log in to a Herald server", "Logowanie do serwera Herald";
    Server => "Server", "Serwer";
    ServerHint => "https://herald.example.org:7443", "https://herald.example.org:7443";
    TrustBy => "Trust the server by", "Zaufaj serwerowi przez";
    CaFile => "CA file", "Plik CA";
    CaFilePath => "CA file path", "Ścieżka pliku CA";
    FingerprintValue => "SHA-256 of the CA", "SHA-256 certyfikatu CA";
    CaFileHint => "/var/lib/herald/tls/ca.pem", "/var/lib/herald/tls/ca.pem";
    Fingerprint => "CA fingerprint", "Odcisk CA";
    FingerprintHint => "SHA-256, 64 hex digits", "SHA-256, 64 cyfry szesnastkowe";
    User => "User", "Użytkownik";
    Password => "Password", "Hasło";
    LogIn => "Log in", "Zaloguj";
    LoggingIn => "Logging in…", "Logowanie…";
    LogOut => "Log out", "Wyloguj";
    NeedServer => "enter the server address", "podaj adres serwera";
    NeedTrust => "enter the CA file or the CA fingerprint", "podaj plik CA albo odcisk CA";
    NeedUser => "enter the user name", "podaj nazwę użytkownika";
    NeedPassword => "enter the password", "podaj hasło";
    SessionEnded => "Your session ended: {reason}. Log in again.", "Sesja wygasła: {reason}. Zaloguj się ponownie.";
    // Header
    Connected => "Connected", "Połączono";
    ConnectionLost => "Connection lost: {reason} — retrying", "Utracono połączenie: {reason} — ponawiam";
    LoggedInAs => "{user} on {server}", "{user} na {server}";
    Refresh => "Refresh", "Odśwież";
    Language => "Language", "Język";
    Dismiss => "Dismiss", "Zamknij";
    // Navigation
    NavDashboard => "Dashboard", "Pulpit";
    NavAlerts => "Quick alerts", "Szybkie alerty";
    NavOrganisation => "Organisation", "Organizacja";
    NavAdmins => "Admins", "Administratorzy";
    NavAudit => "Audit log", "Dziennik zdarzeń";
    // Dashboard
    ComputersPerUnit => "Computers per org unit", "Komputery w jednostkach";
    Unit => "Org unit", "Jednostka";
    Online => "Online", "Online";
    Offline => "Offline", "Offline";
    Total => "Total", "Razem";
    NoComputersYet => "No computers enrolled yet.", "Nie zarejestrowano jeszcze komputerów.";
    PresenceAsOf => "Counts as of {time}, not updated while the server cannot be reached.", "Stan z {time}; bez aktualizacji, dopóki serwer jest nieosiągalny.";
    RecentAlerts => "Recent alerts", "Ostatnie alerty";
    NoAlertsYet => "No alerts sent yet.", "Nie wysłano jeszcze alertów.";
    AlertsHidden => "You may not see alerts.", "Nie możesz przeglądać alertów.";
    Loading => "Loading…", "Wczytywanie…";
    Open => "Open", "Otwórz";
    // Alerts
    NewAlert => "New quick alert", "Nowy szybki alert";
    Title => "Title", "Tytuł";
    Body => "Message", "Treść";
    Priority => "Priority", "Priorytet";
    PriorityInfo => "Info", "Informacja";
    PriorityWarning => "Warning", "Ostrzeżenie";
    PriorityCritical => "Critical", "Krytyczny";
    Expires => "Expires after", "Wygasa po";
    Audience => "Audience", "Odbiorcy";
    EveryoneAllowed => "Every computer I may alert", "Wszystkie komputery, do których mogę wysyłać";
    PickAudience => "Pick at least one org unit.", "Wybierz co najmniej jedną jednostkę.";
    NeedTitle => "enter a title", "podaj tytuł";
    Reaches => "Reaches {computers} ({online} online now)", "Dotrze do: {computers} (teraz online: {online})";
    ReachEstimate => "About {computers} ({online} online now), from the computers you can see", "Około {computers} (teraz online: {online}), wg komputerów, które widzisz";
    ReachUnknown => "The number of computers is known once sent.", "Liczba komputerów będzie znana po wysłaniu.";
    Counting => "Counting computers…", "Liczenie komputerów…";
    Send => "Send", "Wyślij";
    Sending => "Sending…", "Wysyłanie…";
    ConfirmCritical => "Send a CRITICAL alert?", "Wysłać alert KRYTYCZNY?";
    ConfirmCriticalBody => "It takes over the screen of {computers} and cannot be closed for 5 seconds.", "Zajmie ekran na: {computers} i nie da się go zamknąć przez 5 sekund.";
    Cancel => "Cancel", "Anuluj";
    Back => "Back", "Wróć";
    SentNotice => "Alert {id} accepted for {computers}", "Alert {id} przyjęty dla: {computers}";
    Alert => "Alert", "Alert";
    Sender => "Sender", "Nadawca";
    SentAt => "Sent", "Wysłano";
    ExpiresAt => "Expires", "Wygasa";
    Targets => "Sent to", "Adresaci";
    Live => "Live", "Na żywo";
    Settled => "Settled: nothing can change any more", "Zakończony: nic się już nie zmieni";
    SettledShort => "settled", "zakończony";
    CancelledAlert => "Cancelled", "Anulowany";
    CancelAlert => "Cancel alert", "Anuluj alert";
    ConfirmCancelAlert => "Withdraw this alert from every screen that still shows it?", "Wycofać ten alert ze wszystkich ekranów, które go jeszcze pokazują?";
    SeenOnScreen => "On screen: {seen} of {total}", "Na ekranie: {seen} z {total}";
    Overall => "Overall", "Łącznie";
    PerUnit => "Per org unit", "Według jednostek";
    PerComputer => "Per computer", "Według komputerów";
    StateQueued => "queued", "w kolejce";
    StateDelivered => "delivered", "dostarczony";
    StateDisplayed => "displayed", "wyświetlony";
    StateDismissed => "dismissed", "zamknięty";
    StateExpired => "expired", "wygasły";
    StateCancelled => "cancelled", "anulowany";
    StateUnknown => "unknown", "nieznany";
    Hostname => "Computer", "Komputer";
    State => "State", "Stan";
    ShownTo => "Shown to", "Pokazany";
    DeliveredAt => "Delivered", "Dostarczono";
    DisplayedAt => "Displayed", "Wyświetlono";
    NoAlertSelected => "Pick an alert on the left, or write a new one.", "Wybierz alert po lewej albo napisz nowy.";
    // Organisation
    OrgTree => "Org units", "Jednostki";
    Computers => "Computers", "Komputery";
    Tokens => "Enrollment tokens", "Tokeny rejestracji";
    NewChildUnit => "New unit inside", "Nowa jednostka wewnątrz";
    Name => "Name", "Nazwa";
    Create => "Create", "Utwórz";
    Rename => "Rename", "Zmień nazwę";
    MoveTo => "Move to", "Przenieś do";
    Move => "Move", "Przenieś";
    Delete => "Delete", "Usuń";
    DeleteUnitConfirm => "Delete the org unit {unit}? Only an empty unit can be deleted.", "Usunąć jednostkę {unit}? Można usunąć tylko pustą jednostkę.";
    PickUnit => "Pick an org unit on the left.", "Wybierz jednostkę po lewej.";
    Filter => "Filter", "Filtr";
    FilterHint => "host name, OS, user…", "nazwa, system, użytkownik…";
    ShowRevoked => "Show revoked", "Pokaż odwołane";
    Os => "OS", "System";
    AgentVersion => "Agent", "Agent";
    LastSeen => "Last seen", "Ostatnio";
    LoggedInUsers => "Logged-in users", "Zalogowani";
    Revoked => "revoked", "odwołany";
    RevokeComputer => "Revoke", "Odwołaj";
    RevokeComputerConfirm => "Revoke computer {host}? It is disconnected now and has to enroll again.", "Odwołać komputer {host}? Zostanie rozłączony i musi zarejestrować się ponownie.";
    MoveComputer => "Move computer to", "Przenieś komputer do";
    Enrolled => "Enrolled", "Zarejestrowany";
    CertValidUntil => "Certificate valid until", "Certyfikat ważny do";
    ComputersShown => "{shown} of {total} shown", "Pokazano {shown} z {total}";
    ValidFor => "Valid for", "Ważny przez";
    Uses => "Uses", "Użycia";
    CreateToken => "Create token", "Utwórz token";
    TokenCreated => "New token for {unit} — copy it now, it is shown only once:", "Nowy token dla {unit} — skopiuj go teraz, jest pokazywany tylko raz:";
    Copy => "Copy", "Kopiuj";
    Copied => "Copied", "Skopiowano";
    Revoke => "Revoke", "Odwołaj";
    TokenId => "Token", "Token";
    Created => "Created", "Utworzono";
    CreatedBy => "By", "Przez";
    Active => "active", "aktywny";
    Inactive => "inactive", "nieaktywny";
    NoTokens => "No active tokens for this unit.", "Brak aktywnych tokenów dla tej jednostki.";
    InvalidDuration => "invalid duration: use e.g. 30m, 24h or 7days", "błędny czas: np. 30m, 24h albo 7days";
    InvalidUses => "uses must be a whole number from 1", "liczba użyć musi być liczbą całkowitą od 1";
    // Admins
    AdminsList => "Admins", "Administratorzy";
    NewAdmin => "New admin", "Nowy administrator";
    RepeatPassword => "Repeat password", "Powtórz hasło";
    PasswordsDiffer => "the passwords differ", "hasła są różne";
    Grants => "Grants", "Uprawnienia";
    NoGrants => "No grants.", "Brak uprawnień.";
    AddGrant => "Add grant", "Dodaj uprawnienie";
    Capability => "Capability", "Uprawnienie";
    Scope => "Where", "Zakres";
    WholeOrganisation => "Whole organisation", "Cała organizacja";
    ResetPassword => "Set new password", "Ustaw nowe hasło";
    DeleteAdmin => "Delete admin", "Usuń administratora";
    DeleteAdminConfirm => "Delete admin {name}? Their sessions end at once.", "Usunąć administratora {name}? Jego sesje zostaną zakończone.";
    PickAdmin => "Pick an admin on the left.", "Wybierz administratora po lewej.";
    GrantsToGive => "Grants to give", "Nadawane uprawnienia";
    You => "you", "ty";
    // Audit
    AuditAdmin => "Admin", "Administrator";
    AuditAction => "Action", "Akcja";
    AuditActionHint => "e.g. alert. or computer.revoke", "np. alert. albo computer.revoke";
    AnyUnit => "Any unit", "Dowolna jednostka";
    Since => "Since", "Od";
    Until => "Until", "Do";
    SinceHint => "2h, 3days or 2025-03-01 08:00", "2h, 3days albo 2025-03-01 08:00";
    Search => "Search", "Szukaj";
    When => "When", "Kiedy";
    Target => "Target", "Obiekt";
    Details => "Details", "Szczegóły";
    LoadOlder => "Load older entries", "Wczytaj starsze wpisy";
    NoAuditEntries => "No entries match.", "Brak pasujących wpisów.";
    InvalidTime => "invalid time: use 2h, 3days or 2025-03-01 08:00 (UTC)", "błędny czas: np. 2h, 3days albo 2025-03-01 08:00 (UTC)";
    // Capabilities
    CapManageOrgUnits => "manage org units", "zarządzanie jednostkami";
    CapEnrollAgents => "enroll agents", "rejestracja agentów";
    CapManageComputers => "manage computers", "zarządzanie komputerami";
    CapSendQuickAlerts => "send quick alerts", "wysyłanie szybkich alertów";
    CapSendMessages => "send messages", "wysyłanie wiadomości";
    CapManageCourses => "manage courses", "zarządzanie kursami";
    CapAnswerChat => "answer chat", "odpowiadanie na czacie";
    CapManageTickets => "manage tickets", "obsługa zgłoszeń";
    CapViewReports => "view reports", "raporty";
    CapManageAdmins => "manage admins", "zarządzanie administratorami";
    CapViewAuditLog => "view audit log", "dziennik zdarzeń";
    // Times
    Never => "never", "nigdy";
    JustNow => "just now", "przed chwilą";
    SecondsAgo => "{n} s ago", "{n} s temu";
    MinutesAgo => "{n} min ago", "{n} min temu";
    HoursAgo => "{n} h ago", "{n} godz. temu";
    DaysAgo => "{n} d ago", "{n} dni temu";
    // Counted nouns: one, few, many (English uses one and many).
    ComputerOne => "{n} computer", "{n} komputer";
    ComputerFew => "{n} computers", "{n} komputery";
    ComputerMany => "{n} computers", "{n} komputerów";
}

/// A counted noun: which keys hold its singular, "few" and "many" forms.
#[derive(Clone, Copy, Debug)]
pub struct Noun {
    pub one: T,
    pub few: T,
    pub many: T,
}

pub const COMPUTERS: Noun = Noun {
    one: T::ComputerOne,
    few: T::ComputerFew,
    many: T::ComputerMany,
};

/// Translates for one language.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tr(pub Lang);

impl Tr {
    /// The text of `key`.
    pub fn t(self, key: T) -> &'static str {
        match self.0 {
            Lang::En => key.en(),
            Lang::Pl => key.pl(),
        }
    }

    /// The text of `key` with each `{name}` replaced by its value.
    pub fn fill(self, key: T, args: &[(&str, &str)]) -> String {
        let mut text = self.t(key).to_owned();
        for (name, value) in args {
            text = text.replace(&format!("{{{name}}}"), value);
        }
        text
    }

    /// "1 computer", "3 komputery", "5 komputerów".
    pub fn count(self, noun: Noun, n: u64) -> String {
        let key = match plural_form(self.0, n) {
            Plural::One => noun.one,
            Plural::Few => noun.few,
            Plural::Many => noun.many,
        };
        self.fill(key, &[("n", &n.to_string())])
    }

    /// How long ago `then_ms` was, seen from `now_ms`; zero is "never".
    pub fn ago(self, now_ms: i64, then_ms: i64) -> String {
        if then_ms == 0 {
            return self.t(T::Never).to_owned();
        }
        let secs = now_ms.saturating_sub(then_ms) / 1000;
        let (key, n) = match secs {
            s if s < 5 => return self.t(T::JustNow).to_owned(),
            s if s < 60 => (T::SecondsAgo, s),
            s if s < 3600 => (T::MinutesAgo, s / 60),
            s if s < 48 * 3600 => (T::HoursAgo, s / 3600),
            s => (T::DaysAgo, s / 86_400),
        };
        self.fill(key, &[("n", &n.to_string())])
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Plural {
    One,
    Few,
    Many,
}

/// CLDR plural categories for whole numbers.
fn plural_form(lang: Lang, n: u64) -> Plural {
    match lang {
        Lang::En => {
            if n == 1 {
                Plural::One
            } else {
                Plural::Many
            }
        }
        Lang::Pl => {
            let (ten, hundred) = (n % 10, n % 100);
            if n == 1 {
                Plural::One
            } else if (2..=4).contains(&ten) && !(12..=14).contains(&hundred) {
                Plural::Few
            } else {
                Plural::Many
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placeholders(text: &str) -> Vec<&str> {
        let mut out: Vec<&str> = text
            .split('{')
            .skip(1)
            .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
            .collect();
        out.sort_unstable();
        out
    }

    #[test]
    fn every_key_is_translated_with_the_same_placeholders() {
        for key in T::ALL {
            let (en, pl) = (Tr(Lang::En).t(*key), Tr(Lang::Pl).t(*key));
            assert!(!en.trim().is_empty(), "{key:?} has no English text");
            assert!(!pl.trim().is_empty(), "{key:?} has no Polish text");
            assert_eq!(
                placeholders(en),
                placeholders(pl),
                "placeholders of {key:?}"
            );
        }
    }

    #[test]
    fn counts_use_the_right_plural() {
        let cases = [
            (Lang::En, 0, "0 computers"),
            (Lang::En, 1, "1 computer"),
            (Lang::En, 2, "2 computers"),
            (Lang::Pl, 0, "0 komputerów"),
            (Lang::Pl, 1, "1 komputer"),
            (Lang::Pl, 2, "2 komputery"),
            (Lang::Pl, 4, "4 komputery"),
            (Lang::Pl, 5, "5 komputerów"),
            (Lang::Pl, 12, "12 komputerów"),
            (Lang::Pl, 22, "22 komputery"),
            (Lang::Pl, 114, "114 komputerów"),
            (Lang::Pl, 10_000, "10000 komputerów"),
        ];
        for (lang, n, want) in cases {
            assert_eq!(Tr(lang).count(COMPUTERS, n), want, "{lang:?} {n}");
        }
    }

    #[test]
    fn ages_read_naturally() {
        let now = 1_000_000_000_000;
        let cases = [
            (Lang::En, 0, "never"),
            (Lang::En, now - 1_000, "just now"),
            (Lang::En, now - 12_000, "12 s ago"),
            (Lang::En, now - 300_000, "5 min ago"),
            (Lang::Pl, now - 3 * 3_600_000, "3 godz. temu"),
            (Lang::Pl, now - 3 * 86_400_000, "3 dni temu"),
            (Lang::Pl, now + 60_000, "przed chwilą"),
        ];
        for (lang, then, want) in cases {
            assert_eq!(Tr(lang).ago(now, then), want);
        }
    }

    #[test]
    fn fill_replaces_every_placeholder() {
        let text = Tr(Lang::En).fill(T::ConnectionLost, &[("reason", "connection refused")]);
        assert_eq!(text, "Connection lost: connection refused — retrying");
    }
}
