//! The balancer's own listener (`[balancer] mode = "proxy"`) bounds the life
//! of idle and half-open connections as the gateway listener does.

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::h2raw::*;
use super::raw::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_to_the_balancer_are_closed_in_bounded_time() {
    let backend = RecordingBackend::start().await;
    let member = member_for(
        &backend.url(),
        "",
        "header_read_timeout = \"500ms\"\n[balancer]\nlisten = \"127.0.0.1:0\"\nmode = \"proxy\"",
    )
    .await;
    let addr = member
        .member
        .as_ref()
        .and_then(|m| m.balancer_addr)
        .expect("balancer listening");
    let mut request = hello();
    request.extend(get_headers(1, "/gateway/t/svc/x"));
    let payloads: Vec<(&str, Vec<u8>)> = vec![
        ("one byte P", b"P".to_vec()),
        ("partial preface", b"PRI * HTTP/2.0\r\n".to_vec()),
        ("whole preface", PREFACE.to_vec()),
        ("preface and SETTINGS", hello()),
        ("one h2 request, then idle", request),
        ("one byte G", b"G".to_vec()),
        ("nothing", Vec::new()),
    ];
    let checks = payloads.into_iter().map(|(name, payload)| {
        tokio::spawn(async move {
            let started = Instant::now();
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            stream.write_all(&payload).await.expect("write");
            let closed = closed_within(&mut stream, Duration::from_secs(4)).await;
            (name, closed, started.elapsed())
        })
    });
    let mut open = Vec::new();
    for check in checks {
        let (name, closed, took) = check.await.unwrap();
        if !closed {
            open.push(format!("{name}: still open after {took:?}"));
        }
    }
    assert!(open.is_empty(), "{open:#?}");
    // A real request through the balancer still works.
    let reply = exchange(
        addr,
        &request_to("/gateway/t/svc/x"),
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(reply.status(), Some(200), "{}", reply.text());
    member.stop().await;
}

fn request_to(target: &str) -> Vec<u8> {
    request("GET", target, "Connection: close\r\n", "")
}
