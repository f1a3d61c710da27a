//! Upgrade smuggling (PRODUCT.md §9 "Upgrades"): only a valid WebSocket
//! handshake is forwarded as an upgrade. An `h2c` (or any other) upgrade
//! reaches the backend without its Upgrade header, and a `101` that answers
//! anything but a forwarded WebSocket upgrade becomes a 502, so a client can
//! never end up talking straight to the backend.

use std::time::Duration;

use super::raw::*;

pub(crate) const SWITCH: &[u8] =
    b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";

pub(crate) fn smuggling_attempts() -> Vec<(&'static str, String)> {
    vec![
        ("h2c-with-settings", "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n".into()),
        ("h2c-without-settings", "Connection: Upgrade\r\nUpgrade: h2c\r\n".into()),
        ("h2c-uppercase", "Connection: upgrade\r\nUpgrade: H2C\r\n".into()),
        ("h2-token", "Connection: Upgrade\r\nUpgrade: h2\r\n".into()),
        ("tls-upgrade", "Connection: Upgrade\r\nUpgrade: TLS/1.2, HTTP/1.1\r\n".into()),
        ("websocket-no-key", "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n".into()),
        ("websocket-bad-key", "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: not-a-key\r\n".into()),
        ("websocket-and-h2c", "Connection: Upgrade\r\nUpgrade: websocket, h2c\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n".into()),
        ("websocket-no-version", "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n".into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_websocket_upgrades_never_switch_protocols() {
    // A backend that switches protocols for anything it is asked.
    let backend = ScriptedBackend::start(SWITCH.to_vec(), Duration::from_secs(2)).await;
    let member = member_for(&backend.url(), "", "").await;
    let mut failures = Vec::new();
    for (name, headers) in smuggling_attempts() {
        // After a 101 an attacker would speak HTTP/2 to the backend.
        let mut bytes = request("GET", "/gateway/t/svc/x", &headers, "");
        bytes.extend_from_slice(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        let reply = exchange(member.addr, &bytes, QUIET).await;
        if reply.status() != Some(502) || reply.statuses().contains(&101) {
            failures.push(format!("{name}: {:?}", reply.statuses()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    member.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_headers_other_than_websocket_are_not_forwarded() {
    let backend = RecordingBackend::start().await;
    let member = member_for(&backend.url(), "", "").await;
    for (name, headers) in smuggling_attempts() {
        let reply = exchange(
            member.addr,
            &request("GET", "/gateway/t/svc/x", &headers, ""),
            QUIET,
        )
        .await;
        assert_eq!(reply.status(), Some(200), "{name}: {}", reply.text());
        // The framing gate stopped reading the connection as HTTP at the
        // upgrade request, so the gateway closes it after the answer.
        assert!(
            reply.closed,
            "{name}: connection left open after a refused upgrade"
        );
        let head = backend
            .heads()
            .pop()
            .expect("forwarded")
            .to_ascii_lowercase();
        assert!(!head.contains("\r\nupgrade:"), "{name}: {head}");
        assert!(!head.contains("http2-settings"), "{name}: {head}");
        assert!(!head.contains("connection: upgrade"), "{name}: {head}");
    }
    member.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_101_without_any_upgrade_asked_is_a_502() {
    let backend = ScriptedBackend::start(SWITCH.to_vec(), Duration::from_secs(2)).await;
    let member = member_for(&backend.url(), "", "").await;
    for method in ["GET", "POST", "PUT", "DELETE", "OPTIONS"] {
        let reply = exchange(
            member.addr,
            &request(method, "/gateway/t/svc/x", "Content-Length: 0\r\n", ""),
            QUIET,
        )
        .await;
        assert_eq!(reply.status(), Some(502), "{method}: {}", reply.text());
    }
    member.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_websocket_handshake_still_switches() {
    let backend = ScriptedBackend::start(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n".to_vec(),
        Duration::from_secs(2),
    )
    .await;
    let member = member_for(&backend.url(), "", "").await;
    let reply = exchange(
        member.addr,
        &request(
            "GET",
            "/gateway/t/svc/ws",
            "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
            "",
        ),
        QUIET,
    )
    .await;
    assert_eq!(reply.status(), Some(101), "{}", reply.text());
    member.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_handshake_the_backend_refuses_is_answered_then_closed() {
    // The backend answers 200 instead of 101: the response is relayed as it
    // is, and nothing the client sends after it is read as HTTP.
    let backend = RecordingBackend::start().await;
    let member = member_for(&backend.url(), "", "").await;
    let handshake = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    for trailer in [
        "",
        "GET /gateway/t/svc/after HTTP/1.1\r\nHost: gw.test\r\n\r\n",
    ] {
        let mut bytes = request("GET", "/gateway/t/svc/ws", handshake, "");
        bytes.extend_from_slice(trailer.as_bytes());
        let reply = exchange(member.addr, &bytes, QUIET).await;
        assert_eq!(reply.statuses(), vec![200], "{}", reply.text());
        assert!(reply.closed, "connection left open");
    }
    assert!(!backend.received_text().contains("/after"));
    member.stop().await;
}
