//! Herald's wire contract (`herald.v1`) and the TLS plumbing that both ends of
//! it share: the rustls client configuration (CA file or pinned CA
//! fingerprint, optional client certificate) and the connector tonic dials
//! through.
//!
//! Architecture invariant: this crate knows the shape of messages and how a
//! connection is secured, nothing about what the server stores or decides.

pub mod codec;
pub mod framed;
pub mod tls;

/// Generated protobuf and gRPC code for `herald.v1`.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod pb {
    tonic::include_proto!("herald.v1");

    /// Encoded file descriptor set of `herald.v1`, for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("herald_descriptor");
}

/// Metadata key that carries an admin session token (`Bearer <token>`).
pub const AUTHORIZATION: &str = "authorization";
