//! The one place where domain and store errors become gRPC statuses.

use tonic::{Code, Status};

use crate::domain::org::OrgError;
use crate::domain::perm::Denied;
use crate::domain::token::TokenError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Org(#[from] OrgError),
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("invalid {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            field,
            message: message.into(),
        }
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Status {
        let code = match &e {
            ApiError::Store(StoreError::Closed) => Code::Unavailable,
            ApiError::Store(_) | ApiError::Internal(_) => Code::Internal,
            ApiError::Org(OrgError::NotFound(_)) | ApiError::NotFound(_) => Code::NotFound,
            ApiError::Org(OrgError::NotEmpty { .. }) => Code::FailedPrecondition,
            ApiError::Org(OrgError::DuplicateName { .. }) | ApiError::AlreadyExists(_) => {
                Code::AlreadyExists
            }
            ApiError::Org(OrgError::Corrupt(_)) => Code::Internal,
            ApiError::Org(_) | ApiError::Invalid { .. } => Code::InvalidArgument,
            ApiError::Denied(_) | ApiError::PermissionDenied(_) => Code::PermissionDenied,
            ApiError::Token(TokenError::Malformed) => Code::InvalidArgument,
            ApiError::Token(TokenError::Unknown) => Code::Unauthenticated,
            ApiError::Token(_) => Code::PermissionDenied,
            ApiError::Unauthenticated(_) => Code::Unauthenticated,
        };
        if code == Code::Internal {
            // Logged here, once; the caller gets a message without internals.
            tracing::error!(error = %e, "internal error");
            return Status::internal(
                "the server hit an internal error (logged on the server); try again",
            );
        }
        Status::new(code, e.to_string())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
