//! Herald's quick-alert popup: the window that shows alerts on screen.
//!
//! The agent's session part starts the `herald-agent-popup` binary when an
//! alert arrives and talks to it in JSON lines over stdin/stdout
//! ([`protocol`]). This library holds everything but that wiring: the pure
//! alert state ([`state`], time passed in as `now`), the egui drawing
//! ([`ui::alerts_ui`]), font loading ([`fonts`]) and right-to-left text
//! ([`bidi`]), so it can be tested headless.
//!
//! **Architecture invariant:** this crate knows nothing about the agent's
//! connection, store or identity, and the resident agent never links it: GUI
//! libraries stay in this separate binary.

pub mod bidi;
pub mod fonts;
pub mod links;
pub mod protocol;
pub mod state;
pub mod ui;
pub mod wrap;

pub use protocol::{AlertSpec, Command, Event, Priority};

/// What a Herald GUI process does first: logs (warnings and up unless
/// `log_env` says otherwise) to stderr, and returns the local UTC offset in
/// seconds. Call it before any thread starts: `time` only reads the local
/// offset while the process has a single thread.
pub fn start_gui_process(log_env: &str) -> i32 {
    let utc_offset_s = time::UtcOffset::current_local_offset()
        .map(|o| o.whole_seconds())
        .unwrap_or(0);
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env(log_env)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    utc_offset_s
}
pub use state::PopupState;
pub use ui::alerts_ui;
