//! Herald's domain logic: plain Rust over plain values. Nothing here does I/O,
//! reads a clock, or knows about tonic, sled or tokio; callers pass `now`.

pub mod alert;
pub mod org;
pub mod perm;
pub mod token;

/// Milliseconds since the Unix epoch; the one time representation of the
/// domain and the wire.
pub type UnixMs = i64;
