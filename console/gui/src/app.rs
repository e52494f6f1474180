//! The console as an eframe app: the state, the backend and the frame loop
//! that joins them (replies in, draw, requests out).

use std::time::{SystemTime, UNIX_EPOCH};

use crate::backend::{Backend, Request};
use crate::state::Console;

/// The console app: pure state plus the handle on the network thread.
pub struct ConsoleApp {
    pub state: Console,
    backend: Option<Backend>,
}

impl ConsoleApp {
    /// An app whose requests go to a running backend.
    pub fn new(state: Console, backend: Backend) -> Self {
        Self {
            state,
            backend: Some(backend),
        }
    }

    /// An app without a network: requests are dropped. For benchmarks and
    /// tests that feed the state directly.
    pub fn offline(state: Console) -> Self {
        Self {
            state,
            backend: None,
        }
    }

    /// Starts a backend that wakes `ctx` after each reply.
    pub fn start(state: Console, ctx: &egui::Context) -> std::io::Result<Self> {
        let ctx = ctx.clone();
        let backend = Backend::start(std::sync::Arc::new(move || ctx.request_repaint()))?;
        Ok(Self::new(state, backend))
    }

    /// Takes in waiting replies. Called at the start of each frame.
    pub fn poll(&mut self) {
        self.state.now_ms = now_ms();
        if let Some(backend) = &self.backend {
            while let Some(reply) = backend.try_recv() {
                self.state.apply(reply);
            }
        }
    }

    /// Hands queued requests to the backend. Called at the end of each frame.
    pub fn flush(&mut self) {
        let requests: Vec<Request> = self.state.take_requests();
        if let Some(backend) = &self.backend {
            for request in requests {
                backend.send(request);
            }
        }
    }

    /// One frame: replies in, the window drawn, requests out.
    pub fn frame(&mut self, ui: &mut egui::Ui) {
        self.poll();
        crate::ui::console_ui(ui, &mut self.state);
        self.flush();
        // Relative times ("12 s ago") move on even when nothing arrives.
        if self.state.session.is_some() {
            ui.ctx()
                .request_repaint_after(std::time::Duration::from_secs(5));
        }
    }
}

impl eframe::App for ConsoleApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.frame(ui);
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
