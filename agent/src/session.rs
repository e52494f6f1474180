//! `herald-agent session`: the per-user part, started inside the desktop
//! session. It connects to the service's local socket and stays connected,
//! which is how the service knows the user is logged in.

use std::path::Path;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::UnixStream;

use crate::local::ToSession;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(
        "cannot reach the herald-agent service at {path}: {source} (is `herald-agent service` running?)"
    )]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("the herald-agent service closed the connection")]
    Closed,
    #[error("unexpected message from the service: {0}")]
    Protocol(String),
}

/// Connects and returns the service's welcome and the open connection.
pub async fn connect(socket: &Path) -> Result<(ToSession, BufReader<UnixStream>), SessionError> {
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|source| SessionError::Connect {
            path: socket.display().to_string(),
            source,
        })?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let n = reader
        .read_line(&mut line)
        .await
        .map_err(|_| SessionError::Closed)?;
    if n == 0 {
        return Err(SessionError::Closed);
    }
    let welcome: ToSession =
        serde_json::from_str(&line).map_err(|e| SessionError::Protocol(e.to_string()))?;
    Ok((welcome, reader))
}

/// Runs until the service goes away.
pub async fn run(socket: &Path) -> Result<(), SessionError> {
    let (welcome, mut reader) = connect(socket).await?;
    let ToSession::Welcome {
        user, computer_id, ..
    } = &welcome;
    println!("connected to the herald-agent service of {computer_id} as {user}");
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line).await {
            Ok(0) | Err(_) => return Err(SessionError::Closed),
            Ok(_) => tracing::debug!(message = %line.trim(), "from service"),
        }
    }
}
