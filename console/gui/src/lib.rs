//! Herald's admin console: a native egui/eframe app for IT admins.
//!
//! [`state`] holds everything the console knows and decides, with no window
//! and no network, so it is tested by feeding it replies; [`ui`] draws that
//! state and calls its methods; [`backend`] owns the connection to the
//! server on its own thread and tokio runtime, so the UI thread never waits
//! on the network; [`app::ConsoleApp`] ties them together for eframe and
//! for tests. The server's admin calls come from the `herald-console`
//! client library, shared with `heraldctl`.
//!
//! **Architecture invariant:** the console only mirrors permissions. It
//! hides what the server would refuse, but every change goes to the server
//! and a refusal is shown in the server's words. It knows nothing of how the
//! server stores anything.

pub mod app;
pub mod backend;
pub mod i18n;
pub mod perms;
pub mod sample;
pub mod settings;
pub mod state;
pub mod ui;

pub use app::ConsoleApp;
pub use state::Console;
