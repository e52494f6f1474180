//! The agent session without HTTP/2: `AgentService.Session`'s messages as
//! length-prefixed frames on a TLS connection that negotiated ALPN
//! [`ALPN`].
//!
//! An agent session is one long-lived stream of small messages, and the
//! server holds one per connected computer. Over gRPC each costs an HTTP/2
//! connection (with its read and write buffers and its own task), a task
//! for the stream, and two task wake-ups per message the server pushes.
//! Framed, a session is one task on the server that reads frames and writes
//! its queue, with buffers that exist only while a message is in flight.
//!
//! A frame is a 4-byte big-endian length and then that many bytes of an
//! encoded protobuf message: `AgentMessage` from agent to server,
//! `ServerMessage` from server to agent. The agent's first frame is a
//! `Hello`; the server's last is a `SessionEnd` when it has a reason to
//! give, which the agent sees as the gRPC status it stands for.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use bytes::{Buf, BufMut, BytesMut};
use prost::Message;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tonic::{Code, Status};

use crate::pb;
use crate::tls::{ConnectError, server_uri};

/// The ALPN protocol of a framed session.
pub const ALPN: &[u8] = b"herald-session/1";

/// Largest frame the agent accepts from the server (an alert is at most a
/// few KiB; a backlog is sent as separate frames).
pub const MAX_SERVER_FRAME: usize = 1 << 20;
/// Largest frame the server accepts from an agent.
pub const MAX_AGENT_FRAME: usize = 64 * 1024;

/// The most one read takes from the connection.
const READ_CHUNK: usize = 2048;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("a frame of {0} bytes is larger than the {1} bytes allowed")]
    TooLarge(usize, usize),
    #[error("a frame is not a valid message: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("the connection closed in the middle of a frame")]
    Truncated,
}

/// Appends `msg` to `buf` as one frame.
pub fn encode<M: Message>(msg: &M, buf: &mut BytesMut) {
    let len = msg.encoded_len();
    buf.reserve(4 + len);
    // Lengths are bounded by what the receiver accepts (at most 1 MiB).
    buf.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
    // Cannot fail: the room was reserved above.
    let _ = msg.encode(buf);
}

/// Reads frames from `io`. Holds no buffer between frames.
pub struct FrameReader<R> {
    io: R,
    buf: BytesMut,
    max: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(io: R, max: usize) -> Self {
        FrameReader {
            io,
            buf: BytesMut::new(),
            max,
        }
    }

    /// The next message, or `None` when the peer closed the connection
    /// between frames. Cancel-safe: bytes read before a cancellation stay
    /// for the next call.
    pub async fn next<M: Message + Default>(&mut self) -> Result<Option<M>, FrameError> {
        loop {
            if self.buf.len() >= 4 {
                let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]])
                    as usize;
                if len > self.max {
                    return Err(FrameError::TooLarge(len, self.max));
                }
                if self.buf.len() >= 4 + len {
                    self.buf.advance(4);
                    let msg = M::decode(&self.buf[..len])?;
                    self.buf.advance(len);
                    if self.buf.is_empty() {
                        // An idle session keeps no read buffer.
                        self.buf = BytesMut::new();
                    }
                    return Ok(Some(msg));
                }
            }
            if self.fill().await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(FrameError::Truncated)
                };
            }
        }
    }

    /// Reads what is there (at most [`READ_CHUNK`] bytes) onto the buffer.
    /// The read goes through a buffer on the stack, copied before the poll
    /// returns, so a session waiting for its agent holds no read buffer.
    async fn fill(&mut self) -> io::Result<usize> {
        std::future::poll_fn(|cx| {
            let mut chunk = [0u8; READ_CHUNK];
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut self.io).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) => {
                    self.buf.extend_from_slice(read.filled());
                    Poll::Ready(Ok(read.filled().len()))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }
}

/// Writes frames to `io`: queue any number, then flush them in one write.
pub struct FrameWriter<W> {
    io: W,
    buf: BytesMut,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    pub fn new(io: W) -> Self {
        FrameWriter {
            io,
            buf: BytesMut::new(),
        }
    }

    pub fn queue<M: Message>(&mut self, msg: &M) {
        encode(msg, &mut self.buf);
    }

    /// Bytes queued and not yet written.
    pub fn queued(&self) -> usize {
        self.buf.len()
    }

    /// Writes what is queued. Not cancel-safe: a cancelled flush leaves the
    /// stream in an unknown state, so the connection must be dropped.
    pub async fn flush(&mut self) -> io::Result<()> {
        self.io.write_all(&self.buf).await?;
        // An idle session keeps no write buffer either.
        self.buf = BytesMut::new();
        self.io.flush().await
    }

    pub async fn send<M: Message>(&mut self, msg: &M) -> io::Result<()> {
        self.queue(msg);
        self.flush().await
    }

    /// Closes the connection (TLS close_notify, then the write side).
    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.io.shutdown().await
    }
}

/// The status a `SessionEnd` stands for.
pub fn end_status(end: &pb::SessionEnd) -> Status {
    Status::new(Code::from(end.code), end.message.clone())
}

/// The `SessionEnd` that reports `status`.
pub fn end_message(status: &Status) -> pb::ServerMessage {
    pb::ServerMessage {
        kind: Some(pb::server_message::Kind::End(pb::SessionEnd {
            code: status.code() as i32,
            message: status.message().to_owned(),
        })),
    }
}

type ClientTls = tokio_rustls::client::TlsStream<TcpStream>;

/// The agent's receiving half of a framed session.
pub struct SessionReader(FrameReader<ReadHalf<ClientTls>>);

/// The agent's sending half of a framed session.
pub struct SessionWriter(FrameWriter<WriteHalf<ClientTls>>);

impl SessionReader {
    /// The next message from the server, in the shape a gRPC stream gives
    /// it: `Ok(None)` when the server closed the session without a reason,
    /// `Err` with the server's status (from its `SessionEnd`) or with
    /// `unavailable` when the connection broke. Cancel-safe.
    pub async fn message(&mut self) -> Result<Option<pb::ServerMessage>, Status> {
        match self.0.next::<pb::ServerMessage>().await {
            Ok(Some(pb::ServerMessage {
                kind: Some(pb::server_message::Kind::End(end)),
            })) => Err(end_status(&end)),
            Ok(m) => Ok(m),
            Err(e) => Err(Status::unavailable(format!("the session broke: {e}"))),
        }
    }
}

impl SessionWriter {
    pub async fn send(&mut self, msg: &pb::AgentMessage) -> io::Result<()> {
        self.0.send(msg).await
    }

    /// Queues `msg` to go with the next [`SessionWriter::flush`].
    pub fn queue(&mut self, msg: &pb::AgentMessage) {
        self.0.queue(msg);
    }

    pub async fn flush(&mut self) -> io::Result<()> {
        self.0.flush().await
    }

    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.0.shutdown().await
    }
}

/// Opens a framed session to `address` with `config` (which must carry the
/// agent's client certificate) and sends `hello`. Fails with a message a
/// person can act on when the server does not offer framed sessions.
pub async fn connect(
    address: &str,
    mut config: ClientConfig,
    hello: pb::Hello,
) -> Result<(SessionReader, SessionWriter), ConnectError> {
    config.alpn_protocols = vec![ALPN.to_vec()];
    let uri = server_uri(address)?;
    let tls = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        crate::tls::dial_tls(uri, Arc::new(config)),
    )
    .await
    .map_err(|_| ConnectError::Transport("no TLS connection within 10 s".into()))?
    .map_err(|e| ConnectError::Transport(crate::tls::error_chain(&e)))?;
    if tls.get_ref().1.alpn_protocol() != Some(ALPN) {
        return Err(ConnectError::Transport(
            "the server does not offer framed agent sessions (ALPN herald-session/1): \
             it is older than this agent"
                .into(),
        ));
    }
    let (rd, wr) = tokio::io::split(tls);
    let mut writer = SessionWriter(FrameWriter::new(wr));
    let hello = pb::AgentMessage {
        kind: Some(pb::agent_message::Kind::Hello(hello)),
    };
    writer
        .send(&hello)
        .await
        .map_err(|e| ConnectError::Transport(format!("cannot send the hello: {e}")))?;
    Ok((
        SessionReader(FrameReader::new(rd, MAX_SERVER_FRAME)),
        writer,
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn heartbeat(ms: i64) -> pb::AgentMessage {
        pb::AgentMessage {
            kind: Some(pb::agent_message::Kind::Heartbeat(pb::Heartbeat {
                agent_time_unix_ms: ms,
            })),
        }
    }

    #[tokio::test]
    async fn frames_round_trip_whatever_the_read_sizes() {
        let mut bytes = BytesMut::new();
        for ms in [1, 2, 1_700_000_000_000] {
            encode(&heartbeat(ms), &mut bytes);
        }
        // Delivered one byte at a time, the frames still come out whole.
        let (mut a, b) = tokio::io::duplex(1);
        let wire = bytes.to_vec();
        tokio::spawn(async move { a.write_all(&wire).await });
        let mut r = FrameReader::new(b, MAX_AGENT_FRAME);
        for ms in [1, 2, 1_700_000_000_000] {
            assert_eq!(
                r.next::<pb::AgentMessage>().await.unwrap(),
                Some(heartbeat(ms))
            );
        }
        assert_eq!(r.next::<pb::AgentMessage>().await.unwrap(), None);
    }

    #[tokio::test]
    async fn oversized_truncated_and_garbled_frames_are_errors() {
        let cases: [(&[u8], &str); 3] = [
            (&[0, 1, 0, 1], "larger than"),
            (&[0, 0, 0, 9, 1, 2], "in the middle of a frame"),
            (&[0, 0, 0, 2, 0xff, 0xff], "not a valid message"),
        ];
        for (wire, want) in cases {
            let mut r = FrameReader::new(wire, MAX_AGENT_FRAME);
            let err = r.next::<pb::AgentMessage>().await.unwrap_err();
            assert!(err.to_string().contains(want), "{wire:?}: {err}");
        }
    }

    #[test]
    fn a_session_end_stands_for_its_status() {
        let m = end_message(&Status::permission_denied("revoked"));
        let Some(pb::server_message::Kind::End(end)) = m.kind else {
            panic!("not an end: {m:?}");
        };
        let s = end_status(&end);
        assert_eq!((s.code(), s.message()), (Code::PermissionDenied, "revoked"));
    }
}
