//! `herald-agent-popup`: shows quick alerts read as JSON lines from stdin and
//! reports `displayed`/`dismissed` events as JSON lines on stdout. Exits once
//! it has shown an alert and none is left.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use herald_popup::protocol::{Command, parse_line};
use herald_popup::{PopupState, alerts_ui, fonts};

/// What the stdin thread hands to the UI thread.
enum Input {
    Command(Command),
    /// Stdin reached end of file (or failed): no more commands will come.
    Closed,
}

fn main() -> ExitCode {
    let utc_offset_s = herald_popup::start_gui_process("HERALD_POPUP_LOG");

    let ctx = egui::Context::default();
    fonts::install(&ctx);
    let (tx, rx) = mpsc::channel();
    spawn_stdin_reader(tx, ctx.clone());

    let app = PopupApp {
        state: PopupState::new(now_ms(), utc_offset_s),
        rx,
        stdout_ok: true,
    };
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("Herald — alert")
            .with_app_id("herald-alert")
            .with_inner_size([520.0, 360.0])
            .with_min_inner_size([320.0, 200.0])
            .with_resizable(true)
            .with_always_on_top(),
        centered: true,
        ..Default::default()
    };
    match eframe::run_native_ext(
        "herald-alert",
        options,
        Some(ctx),
        Box::new(|_cc| Ok(Box::new(app))),
    ) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "cannot open the alert window");
            ExitCode::FAILURE
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Reads stdin line by line on its own thread and wakes the UI for each command.
fn spawn_stdin_reader(tx: Sender<Input>, ctx: egui::Context) {
    let spawned = std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let line = match line {
                    Ok(line) => line,
                    Err(error) => {
                        tracing::warn!(%error, "cannot read stdin");
                        break;
                    }
                };
                if let Some(command) = parse_line(&line) {
                    if tx.send(Input::Command(command)).is_err() {
                        return; // The window is gone.
                    }
                    ctx.request_repaint();
                }
            }
            let _ = tx.send(Input::Closed);
            ctx.request_repaint();
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot start the stdin reader");
    }
}

struct PopupApp {
    state: PopupState,
    rx: Receiver<Input>,
    /// False once a write to stdout failed (the agent went away); we keep
    /// showing the alerts but stop writing.
    stdout_ok: bool,
}

impl PopupApp {
    fn flush_events(&mut self) {
        let events = self.state.take_events();
        if events.is_empty() || !self.stdout_ok {
            return;
        }
        let mut out = std::io::stdout().lock();
        let result = events
            .iter()
            .try_for_each(|event| writeln!(out, "{}", event.to_line()))
            .and_then(|()| out.flush());
        if let Err(error) = result {
            tracing::warn!(%error, "cannot write events to stdout; the agent will not hear of them");
            self.stdout_ok = false;
        }
    }
}

impl eframe::App for PopupApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        let now = now_ms();
        while let Ok(input) = self.rx.try_recv() {
            match input {
                Input::Command(command) => self.state.apply(command, now),
                Input::Closed => self.state.input_closed(),
            }
        }
        self.state.expire(now);
        self.state.now_ms = now;
        if ctx.input(|i| i.viewport().close_requested()) {
            // Closed by the window manager: everything seen counts as dismissed.
            self.state.close_all(now);
            self.flush_events();
        }
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        egui::Frame::central_panel(ui.style()).show(ui, |ui| alerts_ui(ui, &mut self.state));
        self.flush_events();

        let now = self.state.now_ms;
        if self.state.should_exit() {
            ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
        } else if let Some(at) = self.state.next_wakeup_ms(now) {
            let wait = u64::try_from((at - now).max(1)).unwrap_or(1);
            ui.ctx().request_repaint_after(Duration::from_millis(wait));
        }
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        self.state.close_all(now_ms());
        self.flush_events();
    }
}
