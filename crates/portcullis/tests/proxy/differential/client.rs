//! The raw client: writes a case's bytes to the gateway (in pieces, with a
//! short pause between them) and reads until the gateway closes, or until it
//! has been quiet long enough that nothing more is coming.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::wire::{parse_responses, Framing};

/// Pause between two pieces of a request, so the gateway reads them apart.
pub const PIECE_PAUSE: Duration = Duration::from_millis(30);
/// Quiet time after every expected response has arrived complete: only a
/// close can still come, and a gateway closes right after its last write.
const QUIET_DONE: Duration = Duration::from_millis(300);
/// Quiet time while a response is missing or half-read: well past the
/// members' 1 s timeouts (`header_read_timeout`, the services' `idle`), so a
/// gateway that gives up on a connection is seen closing it, with margin
/// for a loaded machine.
const QUIET_WAITING: Duration = Duration::from_millis(2500);
/// The most any exchange takes.
const MAX: Duration = Duration::from_secs(4);

/// The bytes the client received and whether the gateway closed.
pub struct Received {
    pub bytes: Vec<u8>,
    pub closed: bool,
}

/// What the client expects back, to tell when every answer is in.
pub struct Expecting {
    /// The requests' methods, in order (a HEAD answer has no body).
    pub methods: Vec<String>,
    /// Bytes sent after an upgrade request: after a `101` the backend
    /// echoes them, so that many tunnel bytes are still to come.
    pub tunnel: usize,
}

/// Sends `pieces` to `addr` and reads the answer.
pub async fn exchange(addr: SocketAddr, pieces: &[Vec<u8>], expecting: &Expecting) -> Received {
    let stream = TcpStream::connect(addr).await.expect("connect to gateway");
    let (mut reader, mut writer) = stream.into_split();
    let (done, finished) = tokio::sync::oneshot::channel::<()>();
    let pieces = pieces.to_vec();
    let writing = tokio::spawn(async move {
        for (i, piece) in pieces.iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(PIECE_PAUSE).await;
            }
            // A gateway that refuses early may close before it has all.
            if writer.write_all(piece).await.is_err() {
                break;
            }
        }
        // Dropping the write half would send FIN; keep it open until the
        // reading is over, as a client waiting for its answer would.
        let _ = finished.await;
        drop(writer);
    });
    let received = read_answer(&mut reader, expecting).await;
    let _ = done.send(());
    writing.abort();
    received
}

/// True when the bytes hold every final response the requests ask for, end
/// at a message boundary, the last one does not announce a close, and a
/// tunnel has echoed what was sent into it.
fn all_answered(bytes: &[u8], expecting: &Expecting) -> bool {
    let methods = &expecting.methods;
    let (responses, leftover) = parse_responses(bytes, methods, false);
    if let Some(tunnel) = responses.last().filter(|r| r.framing == Framing::Tunnel) {
        return tunnel.body.len() >= expecting.tunnel;
    }
    if !leftover.is_empty() {
        return false;
    }
    let finals = responses
        .iter()
        .filter(|r| !(100..200).contains(&r.status().unwrap_or(0)) || r.status() == Some(101))
        .count();
    let closing = responses.last().is_some_and(|r| {
        r.values("connection")
            .iter()
            .any(|v| v.to_ascii_lowercase().contains("close"))
    });
    finals >= methods.len().max(1) && !closing
}

async fn read_answer(
    reader: &mut tokio::net::tcp::OwnedReadHalf,
    expecting: &Expecting,
) -> Received {
    let deadline = Instant::now() + MAX;
    let mut bytes = Vec::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let quiet = if all_answered(&bytes, expecting) {
            QUIET_DONE
        } else {
            QUIET_WAITING
        };
        let wait = quiet.min(deadline.saturating_duration_since(Instant::now()));
        match tokio::time::timeout(wait, reader.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                return Received {
                    bytes,
                    closed: true,
                }
            }
            Ok(Ok(n)) => bytes.extend_from_slice(&buf[..n]),
            Err(_) => {
                return Received {
                    bytes,
                    closed: false,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_short_wait_starts_only_once_every_answer_is_in() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let expecting = |count: usize, tunnel: usize| Expecting {
            methods: vec!["GET".to_string(); count],
            tunnel,
        };
        let (get, two) = (expecting(1, 0), expecting(2, 0));
        assert!(all_answered(ok, &get));
        assert!(!all_answered(ok, &two), "one answer of two");
        assert!(!all_answered(&ok[..ok.len() - 1], &get), "half a body");
        assert!(
            !all_answered(b"HTTP/1.1 100 Continue\r\n\r\n", &get),
            "only interim"
        );
        let closing = b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        assert!(
            !all_answered(closing, &get),
            "a close is announced: wait for it"
        );
    }
}
