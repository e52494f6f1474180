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
pub use state::PopupState;
pub use ui::alerts_ui;
