//! `herald-agent`: parses the command line and hands over to the library.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use herald_agent::backoff::Backoff;

#[derive(Parser)]
#[command(name = "herald-agent", version, about = "Herald's endpoint agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Enroll this computer with a token from your Herald admin.
    Enroll {
        /// Server address, e.g. https://herald.example.org:7443
        #[arg(long)]
        server: String,
        /// The enrollment token (hrld1.…); it also pins the server's CA.
        #[arg(long, env = "HERALD_ENROLL_TOKEN", hide_env_values = true)]
        token: String,
        /// Where the key and certificate are kept.
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Replace an existing enrollment.
        #[arg(long)]
        force: bool,
    },
    /// Run the system service: the computer's session to the server.
    Service {
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Local socket for the per-user session parts.
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Longest pause between reconnect attempts, e.g. 60s.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        max_backoff: Duration,
    },
    /// Run the per-user session part (started in the desktop session).
    Session {
        /// The service's local socket.
        #[arg(long)]
        socket: Option<PathBuf>,
        /// The popup program (default: herald-agent-popup next to this one).
        #[arg(long)]
        popup: Option<PathBuf>,
        /// Do not show desktop notifications (popup only).
        #[arg(long)]
        no_notifications: bool,
    },
    /// Show this computer's enrollment.
    Status {
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async_main(cli))
}

async fn async_main(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Enroll {
            server,
            token,
            state_dir,
            force,
        } => {
            let dir = state_dir.unwrap_or_else(herald_agent::state::default_state_dir);
            let id = herald_agent::enroll::enroll(&server, &token, &dir, force).await?;
            println!(
                "enrolled as {} in {} (state in {})",
                id.info.computer_id,
                id.info.org_unit_path,
                dir.display()
            );
            Ok(())
        }
        Command::Service {
            state_dir,
            socket,
            max_backoff,
        } => {
            let opts = herald_agent::service::ServiceOptions {
                state_dir: state_dir.unwrap_or_else(herald_agent::state::default_state_dir),
                socket: Some(socket.unwrap_or_else(herald_agent::local::default_socket_path)),
                backoff: Backoff {
                    cap: max_backoff,
                    ..Backoff::default()
                },
            };
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                shutdown_signal().await;
                let _ = stop_tx.send(true);
            });
            let (status, _) = tokio::sync::watch::channel(Default::default());
            herald_agent::service::run(opts, stop_rx, status).await?;
            Ok(())
        }
        Command::Session {
            socket,
            popup,
            no_notifications,
        } => {
            let opts = herald_agent::session::SessionOptions {
                socket: socket.unwrap_or_else(herald_agent::local::default_socket_path),
                popup,
                notifications: !no_notifications,
            };
            herald_agent::session::run_forever(opts).await;
            Ok(())
        }
        Command::Status { state_dir } => {
            let dir = state_dir.unwrap_or_else(herald_agent::state::default_state_dir);
            let id = herald_agent::state::StateDir::new(&dir).load()?;
            println!("computer id:  {}", id.info.computer_id);
            println!("org unit:     {}", id.info.org_unit_path);
            println!("server:       {}", id.info.server);
            println!("state dir:    {}", dir.display());
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = term.recv() => {},
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
