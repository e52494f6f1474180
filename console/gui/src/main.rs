//! `herald-console`: the admin console window.
//!
//! Opens on the login form, filled in from the remembered settings and the
//! command line. With `--cli-session` it logs in with the session
//! `heraldctl login` saved, so a script that logged heraldctl in can open
//! the console already logged in; the password is never stored.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use herald_console::SavedSession;
use herald_console::timefmt::now_unix_ms;
use herald_console_gui::settings::{Settings, TrustMode};
use herald_console_gui::{Console, ConsoleApp};

#[derive(Parser, Debug)]
#[command(name = "herald-console", version, about = "Herald's admin console")]
struct Args {
    /// Server address, e.g. https://herald.example.org:7443.
    #[arg(long, env = "HERALD_SERVER")]
    server: Option<String>,
    /// Trust the server through this CA certificate file.
    #[arg(long, conflicts_with = "fingerprint")]
    ca_file: Option<PathBuf>,
    /// Trust the server through the SHA-256 fingerprint of its CA.
    #[arg(long)]
    fingerprint: Option<String>,
    /// Admin name to fill in.
    #[arg(long)]
    user: Option<String>,
    /// Log in with the session saved by `heraldctl login`.
    #[arg(long)]
    cli_session: bool,
    /// Initial window size in points, WIDTHxHEIGHT.
    #[arg(long, value_parser = parse_size, default_value = "1200x760")]
    window_size: (f32, f32),
    /// Where the console keeps its settings (default: the platform config
    /// dir, or $HERALD_CONSOLE_HOME).
    #[arg(long)]
    settings: Option<PathBuf>,
}

fn main() -> ExitCode {
    let utc_offset_s = herald_popup::start_gui_process("HERALD_CONSOLE_LOG");
    let args = Args::parse();

    let settings_path = args.settings.clone().or_else(Settings::default_path);
    let mut settings = settings_path
        .as_deref()
        .map(Settings::load)
        .unwrap_or_default();
    if let Some(server) = &args.server {
        settings.server = server.clone();
    }
    if let Some(file) = &args.ca_file {
        settings.trust = TrustMode::CaFile;
        settings.ca_file = std::path::absolute(file)
            .unwrap_or_else(|_| file.clone())
            .display()
            .to_string();
    }
    if let Some(fp) = &args.fingerprint {
        settings.trust = TrustMode::Fingerprint;
        settings.fingerprint = fp.clone();
    }
    if let Some(user) = &args.user {
        settings.user = user.clone();
    }
    let mut state = Console::new(settings, settings_path);
    state.utc_offset_s = utc_offset_s;
    if args.cli_session {
        match cli_session() {
            Ok((saved, trust)) => {
                let server = args.server.clone().unwrap_or_else(|| saved.server.clone());
                state.login.trust = if saved.ca_file.is_some() {
                    TrustMode::CaFile
                } else {
                    TrustMode::Fingerprint
                };
                if let Some(file) = &saved.ca_file {
                    state.login.ca_file = file.display().to_string();
                }
                if let Some(fp) = &saved.fingerprint {
                    state.login.fingerprint = fp.clone();
                }
                state.resume(server, trust, saved.user.clone(), saved.token.clone());
            }
            Err(error) => state.login.error = Some(error),
        }
    }

    let ctx = egui::Context::default();
    herald_popup::fonts::install(&ctx);
    let app = match ConsoleApp::start(state, &ctx) {
        Ok(app) => app,
        Err(error) => {
            eprintln!("herald-console: cannot start the network thread: {error}");
            return ExitCode::FAILURE;
        }
    };
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("Herald console")
            .with_app_id("herald-console")
            .with_inner_size([args.window_size.0, args.window_size.1])
            .with_min_inner_size([820.0, 520.0]),
        ..Default::default()
    };
    match eframe::run_native_ext(
        "herald-console",
        options,
        Some(ctx),
        Box::new(|_cc| Ok(Box::new(app))),
    ) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("herald-console: cannot open the window: {error}");
            ExitCode::FAILURE
        }
    }
}

fn parse_size(text: &str) -> Result<(f32, f32), String> {
    let (w, h) = text
        .split_once('x')
        .ok_or_else(|| format!("invalid size {text:?}: use WIDTHxHEIGHT, e.g. 1200x760"))?;
    let number = |s: &str| {
        s.trim()
            .parse::<f32>()
            .ok()
            .filter(|v| *v >= 100.0)
            .ok_or_else(|| format!("invalid size {text:?}: use WIDTHxHEIGHT, each at least 100"))
    };
    Ok((number(w)?, number(h)?))
}

/// The session heraldctl saved, if it is still valid.
fn cli_session() -> Result<(SavedSession, herald_console::ServerTrust), String> {
    let path = SavedSession::default_path().map_err(|e| e.to_string())?;
    let saved = SavedSession::load(&path)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no heraldctl session in {}: log in here", path.display()))?;
    if saved.is_expired(now_unix_ms()) {
        return Err(format!(
            "the heraldctl session of {} has expired: log in here",
            saved.user
        ));
    }
    let trust = saved.trust().map_err(|e| e.to_string())?;
    Ok((saved, trust))
}
