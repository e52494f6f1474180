//! The one error type of the client library.

use std::path::PathBuf;

use tonic::Code;

/// Everything that can go wrong while talking to a Herald server as an admin.
///
/// Messages are meant to be shown to a person as they are: lower case, no
/// trailing period, and where possible they say what to do next.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached or the TLS handshake failed.
    #[error("cannot connect to {server}: {detail}")]
    Connect { server: String, detail: String },
    /// The server answered the call with an error. `message` is the server's
    /// own words, shown verbatim.
    #[error("{}: {message}", code_text(*.code))]
    Status { code: Code, message: String },
    /// Local configuration is missing or unusable (CA file, saved session,
    /// server address).
    #[error("{0}")]
    Config(String),
    /// Something the user typed cannot be understood (a capability, scope,
    /// duration or org unit that does not exist).
    #[error("{0}")]
    Invalid(String),
    /// A local file could not be read or written. The I/O error is part of
    /// the message (and deliberately not a `source`, so chains do not show it
    /// twice).
    #[error("cannot {action} {}: {cause}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        cause: std::io::Error,
    },
}

impl ClientError {
    /// The gRPC status code if the server refused the call.
    pub fn code(&self) -> Option<Code> {
        match self {
            ClientError::Status { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl From<tonic::Status> for ClientError {
    fn from(status: tonic::Status) -> Self {
        let message = match (status.message(), std::error::Error::source(&status)) {
            // Transport failures may arrive without a message; the cause is
            // in the source chain.
            ("", Some(source)) => herald_proto::tls::error_chain(source),
            ("", None) => "the server gave no details".to_owned(),
            (message, _) => message.to_owned(),
        };
        ClientError::Status {
            code: status.code(),
            message,
        }
    }
}

/// A short, lower-case name for a status code, used as the message prefix.
fn code_text(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "server error",
        Code::InvalidArgument => "invalid request",
        Code::DeadlineExceeded => "timed out",
        Code::NotFound => "not found",
        Code::AlreadyExists => "already exists",
        Code::PermissionDenied => "permission denied",
        Code::ResourceExhausted => "limit reached",
        Code::FailedPrecondition => "refused",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out of range",
        Code::Unimplemented => "not supported by this server",
        Code::Internal => "internal server error",
        Code::Unavailable => "server unavailable",
        Code::DataLoss => "data loss",
        Code::Unauthenticated => "not authenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_messages_keep_the_server_text() {
        let cases = [
            (
                tonic::Status::permission_denied("you may not manage /Branches"),
                "permission denied: you may not manage /Branches",
            ),
            (
                tonic::Status::not_found("no computer abc"),
                "not found: no computer abc",
            ),
            (
                tonic::Status::unauthenticated("session expired"),
                "not authenticated: session expired",
            ),
        ];
        for (status, want) in cases {
            assert_eq!(ClientError::from(status).to_string(), want);
        }
    }
}
