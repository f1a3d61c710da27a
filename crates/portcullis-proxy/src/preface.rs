//! Telling an HTTP/2 prior-knowledge connection from an HTTP/1.1 one, within
//! the header timeout.
//!
//! hyper-util's auto builder reads the first bytes with no time limit, so a
//! client that sent `P` (or part of the preface) and then nothing held a
//! connection slot forever. Here the whole 24-byte preface must arrive by the
//! deadline, or the connection is closed.

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

/// The HTTP/2 client connection preface (RFC 9113 §3.4).
pub(crate) const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the first bytes of a connection said.
pub(crate) enum Detected {
    /// Not the HTTP/2 preface; any bytes consumed while telling are given
    /// back, to be read first.
    Http1(Bytes),
    /// The whole preface, consumed; HTTP/2 must read it first.
    Http2(Bytes),
    /// Closed, failed, or too slow to tell.
    Closed,
}

/// Plain TCP: looks without consuming first, so an HTTP/1.1 connection
/// reaches hyper untouched; only a start that matches the preface is read.
pub(crate) async fn detect_tcp(stream: &mut TcpStream, deadline: Instant) -> Detected {
    let mut first = [0u8; PREFACE.len()];
    match timeout_at(deadline, stream.peek(&mut first)).await {
        Ok(Ok(0)) | Ok(Err(_)) | Err(_) => Detected::Closed,
        Ok(Ok(n)) if first[..n] != PREFACE[..n] => Detected::Http1(Bytes::new()),
        Ok(Ok(_)) => detect(stream, deadline).await,
    }
}

/// Reads until the bytes read differ from the preface or hold all of it.
pub(crate) async fn detect<T: AsyncRead + Unpin>(io: &mut T, deadline: Instant) -> Detected {
    let mut buf = [0u8; PREFACE.len()];
    let mut filled = 0;
    loop {
        match timeout_at(deadline, io.read(&mut buf[filled..])).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return Detected::Closed,
            Ok(Ok(n)) => filled += n,
        }
        let read = &buf[..filled];
        if read != &PREFACE[..filled] {
            return Detected::Http1(Bytes::copy_from_slice(read));
        }
        if filled == PREFACE.len() {
            return Detected::Http2(Bytes::from_static(PREFACE));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;

    fn soon() -> Instant {
        Instant::now() + Duration::from_millis(200)
    }

    #[tokio::test]
    async fn the_preface_in_pieces_is_http2() {
        let (mut near, mut far) = tokio::io::duplex(64);
        near.write_all(&PREFACE[..5]).await.unwrap();
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            near.write_all(&PREFACE[5..]).await.unwrap();
            near
        });
        assert!(matches!(detect(&mut far, soon()).await, Detected::Http2(_)));
        drop(writer.await);
    }

    #[tokio::test]
    async fn a_different_byte_is_http1_with_the_bytes_read() {
        let (mut near, mut far) = tokio::io::duplex(64);
        near.write_all(b"PRX").await.unwrap();
        match detect(&mut far, soon()).await {
            Detected::Http1(read) => assert_eq!(read, "PRX"),
            _ => panic!("not HTTP/1"),
        }
    }

    #[tokio::test]
    async fn part_of_the_preface_then_silence_is_closed() {
        let (mut near, mut far) = tokio::io::duplex(64);
        near.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
        assert!(matches!(detect(&mut far, soon()).await, Detected::Closed));
        drop(near);
    }
}
