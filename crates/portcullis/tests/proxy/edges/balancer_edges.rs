//! The strict-edge classes through the balancer in `proxy` mode
//! (`[balancer] mode = "proxy"`) and over TLS: the same payloads get the
//! same refusals, whichever door a client comes in by.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::raw::*;
use portcullis_testkit::TestMember;

async fn balanced_member(url: &str) -> (TestMember, std::net::SocketAddr) {
    let member = member_for(
        url,
        "",
        "[balancer]\nlisten = \"127.0.0.1:0\"\nmode = \"proxy\"",
    )
    .await;
    let addr = member
        .member
        .as_ref()
        .and_then(|m| m.balancer_addr)
        .expect("balancer listening");
    // The balancer proxies once it has read this member's record.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let reply = exchange(
            addr,
            &request("GET", "/gateway/t/svc/ready", "Connection: close\r\n", ""),
            QUIET,
        )
        .await;
        if reply.status() == Some(200) || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (member, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggling_through_the_balancer_is_refused() {
    let backend = RecordingBackend::start().await;
    let (member, addr) = balanced_member(&backend.url()).await;
    let mut failures = Vec::new();
    for (name, bytes, expected) in super::smuggling::cases() {
        let before = backend.complete_requests();
        let reply = exchange(addr, &bytes, QUIET).await;
        let reached = backend.complete_requests() != before;
        if reply.statuses() != vec![expected] || !reply.closed || reached {
            failures.push(format!(
                "{name}: statuses {:?} (want [{expected}]), closed {}, reached backend {reached}",
                reply.statuses(),
                reply.closed
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    member.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_escapes_through_the_balancer_are_refused() {
    let backend = RecordingBackend::start().await;
    let (member, addr) = balanced_member(&backend.url()).await;
    let before = backend.complete_requests();
    let mut failures = Vec::new();
    for escape in super::paths::ESCAPES {
        let target = format!("/gateway/t/svc{escape}");
        let reply = exchange(
            addr,
            &request("GET", &target, "Connection: close\r\n", ""),
            QUIET,
        )
        .await;
        if reply.status() != Some(400) {
            failures.push(format!("{escape}: {:?}", reply.status()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(backend.complete_requests(), before);
    member.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_smuggling_through_the_balancer_never_switches() {
    let backend =
        ScriptedBackend::start(super::upgrades::SWITCH.to_vec(), Duration::from_secs(2)).await;
    let (member, addr) = balanced_member(&backend.url()).await;
    let mut failures = Vec::new();
    for (name, headers) in super::upgrades::smuggling_attempts() {
        let mut bytes = request("GET", "/gateway/t/svc/x", &headers, "");
        bytes.extend_from_slice(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        let reply = exchange(addr, &bytes, QUIET).await;
        if reply.statuses().contains(&101) || reply.status().is_none_or(|s| s < 400) {
            failures.push(format!("{name}: {:?}", reply.statuses()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    member.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggling_over_tls_is_refused() {
    let backend = RecordingBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (member, ca) = super::idle::tls_member(dir.path(), &backend.url()).await;
    let connector = super::idle::tls_connector(&ca, &[b"http/1.1"]);
    let mut failures = Vec::new();
    for (name, bytes, expected) in super::smuggling::cases() {
        let before = backend.complete_requests();
        let stream = TcpStream::connect(member.addr).await.expect("connect");
        let name_ = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = connector.connect(name_, stream).await.expect("handshake");
        let _ = tls.write_all(&bytes).await;
        let mut got = Vec::new();
        let mut buf = [0u8; 8192];
        let mut closed = false;
        loop {
            match tokio::time::timeout(QUIET, tls.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    closed = true;
                    break;
                }
                Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
                Err(_) => break,
            }
        }
        let reply = RawReply { bytes: got, closed };
        let reached = backend.complete_requests() != before;
        if reply.statuses() != vec![expected] || !reply.closed || reached {
            failures.push(format!(
                "{name}: statuses {:?} (want [{expected}]), closed {}, reached backend {reached}",
                reply.statuses(),
                reply.closed
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    member.stop().await;
}
