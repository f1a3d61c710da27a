//! Reads and writes on a plain socket tried at once, before tokio's polled
//! path.
//!
//! A polled read or write (`poll_read`, `write_all`) spends its budget check,
//! its readiness poll and its future's steps around the system call: about
//! 200 instructions of a plain socket's read or write against about 90 for
//! `try_read` / `try_write` (callgrind, issue 13). The engine reads only
//! once the reactor said readable and nearly every write fits the socket's
//! buffer, so the tried call nearly always does the work; when it would
//! block, the polled path runs as before and registers for the wake-up.
//!
//! Only a `TcpStream` tries; TLS streams and split halves say `None` and
//! take the polled path. Tried calls skip tokio's cooperative budget; a
//! connection still yields once per request, when it awaits its backend's
//! answer (that socket's readiness was cleared by the last response's short
//! read, and only the reactor sets it again).

use std::io;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, Interest};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;

use crate::read_ahead::ReadAhead;

type TlsStream = tokio_rustls::server::TlsStream<TcpStream>;

/// A stream the engine reads from.
pub(crate) trait QuickRead: AsyncRead + Unpin {
    /// One read into `buf`'s free room at once: `Some(Ok(0))` at the end of
    /// the stream, `None` when the read would wait (the caller polls).
    fn try_read_now(&mut self, _buf: &mut BytesMut) -> Option<io::Result<usize>> {
        None
    }
}

/// A stream the engine writes to.
pub(crate) trait QuickWrite: AsyncWrite + Unpin {
    /// One write of `bytes` at once; `None` when it would wait.
    fn try_write_now(&mut self, _bytes: &[u8]) -> Option<io::Result<usize>> {
        None
    }
}

impl QuickRead for TcpStream {
    fn try_read_now(&mut self, buf: &mut BytesMut) -> Option<io::Result<usize>> {
        let stream = &*self;
        let room = buf.capacity() - buf.len();
        let mut read = 0;
        let tried = stream.try_io(Interest::READABLE, || {
            read = stream.try_read_buf(buf)?;
            // A short read drained the socket: its readiness is cleared, as
            // tokio's own `poll_read` clears it (edge-triggered epoll sends
            // a new event for new bytes). Left set, the next read would make
            // a system call only to hear "would block".
            if read > 0 && read < room {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(read)
        });
        match tried {
            Ok(n) => Some(Ok(n)),
            Err(_) if read > 0 => Some(Ok(read)),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => None,
            Err(err) => Some(Err(err)),
        }
    }
}

impl QuickWrite for TcpStream {
    fn try_write_now(&mut self, bytes: &[u8]) -> Option<io::Result<usize>> {
        match self.try_write(bytes) {
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => None,
            tried => Some(tried),
        }
    }
}

impl QuickRead for OwnedReadHalf {}
impl QuickRead for ReadAhead<TlsStream> {}
impl QuickWrite for ReadAhead<TlsStream> {}
impl<T: AsyncRead + Unpin> QuickRead for tokio::io::ReadHalf<T> {}
impl<T: AsyncWrite + Unpin> QuickWrite for tokio::io::WriteHalf<T> {}
#[cfg(test)]
impl QuickWrite for Vec<u8> {}
#[cfg(test)]
impl QuickRead for &[u8] {}

/// How many of `bytes` one write at once took (0 when it would wait); the
/// caller writes the rest polled. Not an `async fn` of its own: awaited
/// inside one, its state made a request's future 32 bytes bigger.
pub(crate) fn write_now<W: QuickWrite>(io: &mut W, bytes: &[u8]) -> io::Result<usize> {
    io.try_write_now(bytes).unwrap_or(Ok(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (client.unwrap(), accepted.unwrap().0)
    }

    /// A tried read takes what is there, then says "would block" without a
    /// read (a short read cleared the readiness) until new bytes come, and
    /// reads the end of the stream as zero.
    #[tokio::test]
    async fn a_tried_read_takes_what_is_there_and_then_waits() {
        let (mut near, mut far) = pair().await;
        let mut buf = BytesMut::with_capacity(64);
        assert!(near.try_read_now(&mut buf).is_none(), "nothing sent yet");
        far.write_all(b"hello").await.unwrap();
        near.readable().await.unwrap();
        assert_eq!(near.try_read_now(&mut buf).unwrap().unwrap(), 5);
        assert_eq!(&buf[..], b"hello");
        assert!(near.try_read_now(&mut buf).is_none(), "drained");
        far.write_all(b" again").await.unwrap();
        near.readable().await.unwrap();
        assert_eq!(near.try_read_now(&mut buf).unwrap().unwrap(), 6);
        assert_eq!(&buf[..], b"hello again");
        drop(far);
        near.readable().await.unwrap();
        assert_eq!(near.try_read_now(&mut buf).unwrap().unwrap(), 0);
    }

    /// A write larger than the socket's buffers takes part at once; the
    /// rest goes through the polled path while the far side reads, and
    /// every byte arrives in order.
    #[tokio::test]
    async fn write_all_sends_every_byte_past_a_full_socket() {
        let (mut near, mut far) = pair().await;
        let bytes: Vec<u8> = (0..8 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
        let reading = tokio::spawn(async move {
            let mut got = Vec::new();
            far.read_to_end(&mut got).await.unwrap();
            got
        });
        let at_once = write_now(&mut near, &bytes).unwrap();
        assert!(at_once < bytes.len(), "{at_once} bytes at once");
        near.write_all(&bytes[at_once..]).await.unwrap();
        drop(near);
        assert!(reading.await.unwrap() == bytes);
    }
}
