//! Slow request bodies (PRODUCT.md §9 "Slow and idle peers"): a client that
//! trickles its body below `[gateway] min_body_rate` (default 1 KiB/s over
//! 10 s) is cut with 408, and the backend connection it held is released, so
//! a handful of slow clients cannot hold every worker of a backend.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::raw::*;

const HUNDRED: &str = "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy";

/// A backend that reads forever and counts the connections open to it.
async fn counting_backend() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().unwrap());
    let open = Arc::new(AtomicUsize::new(0));
    let counter = open.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counter = counter.clone();
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
                counter.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (url, open)
}

/// Sends `head`, then `pieces` one by one with `every` between them, and
/// returns the reply and how long until the gateway answered or closed.
async fn trickle(
    addr: std::net::SocketAddr,
    head: String,
    pieces: Vec<&'static str>,
    every: Duration,
) -> (RawReply, Duration) {
    let started = Instant::now();
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    writer.write_all(head.as_bytes()).await.expect("head");
    let writing = async move {
        for piece in pieces {
            tokio::time::sleep(every).await;
            if writer.write_all(piece.as_bytes()).await.is_err() {
                break;
            }
        }
        // Then nothing more, with the socket open: the rate rule, not the
        // idle timeout or a close, must end it.
        std::future::pending::<()>().await;
    };
    let mut reply = Vec::new();
    let reading = async {
        let mut buf = [0u8; 4096];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => reply.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::select! {
        _ = reading => {}
        _ = writing => {}
        _ = tokio::time::sleep(Duration::from_secs(30)) => {}
    }
    (
        RawReply {
            bytes: reply,
            closed: true,
        },
        started.elapsed(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_bodies_are_cut_and_release_the_backend() {
    let (url, open) = counting_backend().await;
    // timeouts.idle is long, so only the rate rule can cut these.
    let member = member_for(&url, "[service.timeouts]\nidle = \"5m\"", "").await;
    let cl = |n: usize| {
        format!(
            "POST /gateway/t/svc/upload HTTP/1.1\r\nHost: gw.test\r\nContent-Length: {n}\r\n\r\n"
        )
    };
    let chunked = "POST /gateway/t/svc/upload HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n".to_string();
    let cases: Vec<(&str, String, Vec<&'static str>, Duration)> = vec![
        (
            "1 byte/s, Content-Length",
            cl(1000),
            vec!["x"; 40],
            Duration::from_secs(1),
        ),
        (
            "1 chunk/s, chunked",
            chunked.clone(),
            vec!["1\r\nx\r\n"; 40],
            Duration::from_secs(1),
        ),
        (
            "100 bytes/s",
            cl(100_000),
            vec![HUNDRED; 40],
            Duration::from_secs(1),
        ),
        (
            "silence after the head",
            cl(10),
            vec![],
            Duration::from_secs(1),
        ),
        (
            "silence mid-chunk",
            chunked,
            vec!["a\r\n01234"],
            Duration::from_millis(10),
        ),
    ];
    let runs = cases.into_iter().map(|(name, head, pieces, every)| {
        let addr = member.addr;
        async move { (name, trickle(addr, head, pieces, every).await) }
    });
    let results = futures_util::future::join_all(runs).await;
    for (name, (reply, took)) in results {
        assert_eq!(reply.status(), Some(408), "{name}: {}", reply.text());
        assert!(took < Duration::from_secs(20), "{name}: cut after {took:?}");
    }
    // Every backend connection the slow clients held is closed.
    let deadline = Instant::now() + Duration::from_secs(5);
    while open.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        open.load(Ordering::SeqCst),
        0,
        "backend connections still held"
    );
    member.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_at_a_normal_pace_is_not_cut() {
    let backend = RecordingBackend::start().await;
    let member = member_for(&backend.url(), "", "min_body_rate = 100").await;
    // 2,000 bytes/s for 12 s against 100 bytes/s.
    let pieces = vec!["z".repeat(200).leak() as &'static str; 120];
    let head = "POST /gateway/t/svc/upload HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 24000\r\nConnection: close\r\n\r\n".to_string();
    let (reply, _) = trickle(member.addr, head, pieces, Duration::from_millis(100)).await;
    assert_eq!(reply.status(), Some(200), "{}", reply.text());
    member.stop().await;
}
