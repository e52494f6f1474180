//! The JSON-lines protocol between the agent's session part and the popup.
//!
//! One command per line on stdin, one event per line on stdout. Parsing never
//! panics: a line that is not a valid command is logged and ignored, so a bad
//! line from a newer agent cannot take down alerts that are already on screen.

use serde::{Deserialize, Serialize};

/// How urgent an alert is; decides its colour and whether it can be closed at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    #[default]
    Info,
    Warning,
    Critical,
}

impl Priority {
    /// The label shown on the card's badge.
    pub fn label(self) -> &'static str {
        match self {
            Self::Info => "INFO",
            Self::Warning => "WARNING",
            Self::Critical => "CRITICAL",
        }
    }
}

/// Everything the popup needs to show one alert.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct AlertSpec {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub priority: Priority,
    /// Org-unit path of the sender, e.g. `/Branches/Branch 3`.
    #[serde(default)]
    pub sender_unit: String,
    #[serde(default)]
    pub sender: String,
    pub sent_unix_ms: i64,
    /// After this instant the alert is stale and is removed without an event.
    #[serde(default)]
    pub expires_unix_ms: Option<i64>,
}

/// A line read from stdin.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    Show(AlertSpec),
    Withdraw { id: String },
}

/// A line written to stdout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The alert was painted on screen for the first time.
    Displayed { id: String, at_unix_ms: i64 },
    /// The person closed the alert.
    Dismissed { id: String, at_unix_ms: i64 },
}

impl Event {
    /// The event as one JSON line, without the trailing newline.
    pub fn to_line(&self) -> String {
        // Serialising a tagged enum of strings and integers cannot fail; fall
        // back to an empty object rather than panicking if serde ever disagrees.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }
}

/// Parses one stdin line. Blank lines are skipped quietly; anything else
/// that is not a valid command is logged and skipped.
pub fn parse_line(line: &str) -> Option<Command> {
    let line = line.trim();
    if line.is_empty() {
        return None;
    }
    match serde_json::from_str::<Command>(line) {
        Ok(Command::Show(spec)) if spec.id.is_empty() => {
            tracing::warn!("ignoring show command without an id");
            None
        }
        Ok(command) => Some(command),
        Err(error) => {
            tracing::warn!(%error, line_len = line.len(), "ignoring bad input line");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str, priority: Priority, expires: Option<i64>) -> AlertSpec {
        AlertSpec {
            id: id.into(),
            title: "T".into(),
            body: "B".into(),
            priority,
            sender_unit: "/Branches/Branch 3".into(),
            sender: "alice".into(),
            sent_unix_ms: 1_764_000_000_000,
            expires_unix_ms: expires,
        }
    }

    #[test]
    fn parse_line_table() {
        let cases: &[(&str, Option<Command>)] = &[
            (
                r#"{"type":"show","id":"al-1","title":"T","body":"B","priority":"critical","sender_unit":"/Branches/Branch 3","sender":"alice","sent_unix_ms":1764000000000,"expires_unix_ms":1764014400000}"#,
                Some(Command::Show(spec(
                    "al-1",
                    Priority::Critical,
                    Some(1_764_014_400_000),
                ))),
            ),
            (
                r#"{"type":"show","id":"al-2","title":"T","body":"B","priority":"warning","sender_unit":"/Branches/Branch 3","sender":"alice","sent_unix_ms":1764000000000,"extra":true}"#,
                Some(Command::Show(spec("al-2", Priority::Warning, None))),
            ),
            (
                r#"  {"type":"withdraw","id":"al-1"}  "#,
                Some(Command::Withdraw { id: "al-1".into() }),
            ),
            ("", None),
            ("   ", None),
            ("not json", None),
            ("{", None),
            ("[]", None),
            ("null", None),
            (r#"{"type":"explode","id":"x"}"#, None),
            (r#"{"id":"al-1"}"#, None),
            (r#"{"type":"withdraw"}"#, None),
            (
                r#"{"type":"show","id":"x","title":"T","sent_unix_ms":"yesterday"}"#,
                None,
            ),
            (
                r#"{"type":"show","id":"x","title":"T","priority":"urgent","sent_unix_ms":1}"#,
                None,
            ),
            (
                r#"{"type":"show","id":"","title":"T","sent_unix_ms":1}"#,
                None,
            ),
        ];
        for (line, want) in cases {
            assert_eq!(&parse_line(line), want, "line: {line:?}");
        }
    }

    #[test]
    fn show_defaults_optional_fields() {
        let got = parse_line(r#"{"type":"show","id":"a","title":"T","sent_unix_ms":5}"#);
        let Some(Command::Show(spec)) = got else {
            panic!("expected show, got {got:?}");
        };
        assert_eq!(spec.priority, Priority::Info);
        assert_eq!(spec.body, "");
        assert_eq!(spec.expires_unix_ms, None);
    }

    #[test]
    fn event_lines() {
        let cases = [
            (
                Event::Displayed {
                    id: "al-1".into(),
                    at_unix_ms: 7,
                },
                r#"{"type":"displayed","id":"al-1","at_unix_ms":7}"#,
            ),
            (
                Event::Dismissed {
                    id: "al-\"2".into(),
                    at_unix_ms: 8,
                },
                r#"{"type":"dismissed","id":"al-\"2","at_unix_ms":8}"#,
            ),
        ];
        for (event, want) in cases {
            assert_eq!(event.to_line(), want);
        }
    }
}
