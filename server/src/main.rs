//! `herald-server`: parses the command line, starts logging, and hands over
//! to the library.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "herald-server", version, about = "Herald's central server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new data dir: certificate authority, server certificate,
    /// store and the bootstrap admin. Refuses an existing data dir.
    Init {
        #[arg(long)]
        data_dir: PathBuf,
        /// Extra DNS name or IP address the server is reached by (repeatable);
        /// localhost, 127.0.0.1 and ::1 are always included.
        #[arg(long = "name")]
        names: Vec<String>,
        /// Name of the organisation (the root org unit).
        #[arg(long, default_value = "Organisation")]
        org_name: String,
        /// Name of the bootstrap admin.
        #[arg(long, default_value = "admin")]
        admin_name: String,
    },
    /// Serve agents and admins.
    Run {
        #[arg(long)]
        data_dir: PathBuf,
        /// Address to listen on (overrides the config file and HERALD_LISTEN).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// TOML config file (see herald-server.example.toml).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print the example configuration file.
    ExampleConfig,
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
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    rt.block_on(async_main(cli))
}

async fn async_main(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Init {
            data_dir,
            names,
            org_name,
            admin_name,
        } => {
            let password = std::env::var("HERALD_BOOTSTRAP_PASSWORD")
                .ok()
                .filter(|p| !p.is_empty());
            let report = herald_server::init(herald_server::InitOptions {
                data_dir: data_dir.clone(),
                names,
                org_name,
                admin_name,
                admin_password: password,
            })
            .await?;
            println!("initialised Herald server in {}", data_dir.display());
            println!("CA certificate:  {}", report.ca_file.display());
            println!("CA fingerprint:  {}", report.ca_fingerprint);
            println!("bootstrap admin: {}", report.admin_name);
            if let Some(pw) = report.generated_password {
                println!("password:        {pw}");
                println!("(shown only this once; set HERALD_BOOTSTRAP_PASSWORD to choose it)");
            }
            println!(
                "start it with:   herald-server run --data-dir {}",
                data_dir.display()
            );
            Ok(())
        }
        Command::Run {
            data_dir,
            listen,
            config,
        } => {
            let mut cfg = herald_server::config::Config::load(config.as_deref())
                .map_err(anyhow::Error::msg)?;
            if let Some(l) = listen {
                cfg.listen = l;
            }
            let listener =
                bind(cfg.listen).with_context(|| format!("cannot listen on {}", cfg.listen))?;
            let addr = listener.local_addr()?;
            // Printed on stdout so scripts and tests can learn the port.
            println!("listening on {addr}");
            herald_server::run(&data_dir, cfg, listener, shutdown_signal()).await?;
            Ok(())
        }
        Command::ExampleConfig => {
            print!("{}", herald_server::config::EXAMPLE);
            Ok(())
        }
    }
}

/// Connections the kernel queues for the server before it accepts them.
/// tokio's `bind` asks for 1,024; after a server restart its whole fleet
/// reconnects within seconds, and a connection that finds the queue full is
/// dropped, its SYN retried only 1, 3, 7 s later. Linux caps this at
/// `net.core.somaxconn` (4,096 by default).
const LISTEN_BACKLOG: u32 = 8192;

fn bind(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
