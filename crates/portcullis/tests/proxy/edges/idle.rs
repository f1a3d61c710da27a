//! Slow and idle peers (PRODUCT.md §9): every connection state has a bounded
//! life without progress. The member's `header_read_timeout` is 500 ms here;
//! a half-open connection must be closed within a few of those, and 64 of
//! them must not lock real clients out of a 64-connection listener.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncWriteExt, ReadHalf};
use tokio::net::TcpStream;

use super::h2raw::{self, *};
use super::raw::*;
use portcullis_testkit::TestMember;

const SHORT: &str = "header_read_timeout = \"500ms\"\nmax_connections = 64";

/// Longest a half-open connection may live with a 500 ms timeout: the
/// timeout, a drain of the same length, and scheduling slack.
const BOUND: Duration = Duration::from_secs(4);

/// Opens a connection, writes `payload`, and reports whether the gateway
/// closed it within `BOUND`.
async fn closed_after(addr: std::net::SocketAddr, payload: &[u8]) -> (bool, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(payload).await.expect("write");
    let closed = closed_within(&mut stream, BOUND).await;
    (closed, started.elapsed())
}

/// The payloads a client can send and then fall silent after.
fn half_open_payloads() -> Vec<(&'static str, Vec<u8>)> {
    let mut request = hello();
    request.extend(get_headers(1, "/gateway/t/svc/x"));
    vec![
        ("one byte P", b"P".to_vec()),
        ("PR", b"PR".to_vec()),
        ("partial preface", b"PRI * HTTP/2.0\r\n".to_vec()),
        ("whole preface", PREFACE.to_vec()),
        ("preface and SETTINGS", hello()),
        ("one request, then idle", request),
        ("one byte G", b"G".to_vec()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_plain_connections_are_closed_in_bounded_time() {
    let backend = RecordingBackend::start().await;
    let member = member_for(&backend.url(), "", SHORT).await;
    let addr = member.addr;
    let checks = half_open_payloads().into_iter().map(|(name, payload)| {
        tokio::spawn(async move { (name, closed_after(addr, &payload).await) })
    });
    let mut open = Vec::new();
    for check in checks {
        let (name, (closed, took)) = check.await.unwrap();
        if !closed {
            open.push(format!("{name}: still open after {took:?}"));
        }
    }
    assert!(open.is_empty(), "{open:#?}");
    member.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_one_byte_connections_do_not_lock_out_real_clients() {
    let backend = RecordingBackend::start().await;
    let member = member_for(&backend.url(), "", SHORT).await;
    // Every variant holds all 64 slots at once.
    for payload in [&b"P"[..], b"PRI * HTTP/2.0\r\n", PREFACE, &hello()] {
        let mut squatters = Vec::new();
        for _ in 0..64 {
            let mut stream = TcpStream::connect(member.addr).await.expect("connect");
            stream.write_all(payload).await.expect("write");
            squatters.push(stream);
        }
        let started = Instant::now();
        let reply = tokio::time::timeout(
            Duration::from_secs(5),
            exchange(
                member.addr,
                &request("GET", "/gateway/t/svc/x", "Connection: close\r\n", ""),
                Duration::from_secs(5),
            ),
        )
        .await;
        let status = reply.ok().and_then(|r| r.status());
        assert_eq!(
            status,
            Some(200),
            "a real client after 64 connections sending {:?} (waited {:?})",
            String::from_utf8_lossy(payload),
            started.elapsed()
        );
        drop(squatters);
    }
    member.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_h2c_connection_gets_goaway_and_is_closed() {
    let backend = RecordingBackend::start().await;
    let member = member_for(&backend.url(), "", SHORT).await;
    let stream = TcpStream::connect(member.addr).await.expect("connect");
    let (read, mut write) = stream.into_split();
    let reader = Reader::spawn(read);
    let mut request = hello();
    request.extend(get_headers(1, "/gateway/t/svc/x"));
    write.write_all(&request).await.unwrap();
    let seen = reader
        .wait_for(Duration::from_secs(2), |s| s.responses() > 0)
        .await;
    assert_eq!(seen.responses(), 1, "the request is answered: {seen:?}");
    // Acknowledging nothing, sending nothing: the gateway must end it.
    let seen = reader.wait_for(BOUND, |s| s.closed).await;
    assert!(seen.goaway.is_some(), "GOAWAY before closing: {seen:?}");
    assert!(seen.closed, "an idle h2c connection is closed: {seen:?}");
    member.stop().await;
}

/// A member with TLS (certificates from `cert create`) and a client config
/// that trusts its CA, offering `alpn`.
pub(crate) async fn tls_member(
    dir: &std::path::Path,
    url: &str,
) -> (TestMember, std::path::PathBuf) {
    let certs = portcullis::cert::create_certs(&["localhost".to_string()], dir).unwrap();
    let tls = format!(
        "tls = {{ cert = {:?}, key = {:?} }}\n{SHORT}",
        certs.server_cert.display().to_string(),
        certs.server_key.display().to_string()
    );
    (member_for(url, "", &tls).await, certs.ca_cert)
}

pub(crate) fn tls_connector(ca: &std::path::Path, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// Completes a TLS handshake offering `alpn`, writes `payload`, and reports
/// whether the gateway closed the connection within `BOUND`.
async fn tls_closed_after(
    addr: std::net::SocketAddr,
    ca: &std::path::Path,
    alpn: &[&[u8]],
    payload: &[u8],
) -> bool {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tls_connector(ca, alpn)
        .connect(name, stream)
        .await
        .expect("TLS handshake");
    if !payload.is_empty() {
        tls.write_all(payload).await.expect("write");
    }
    let (mut read, _write): (ReadHalf<_>, _) = tokio::io::split(tls);
    h2raw::closed_within(&mut read, BOUND).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_tls_connections_are_closed_in_bounded_time() {
    portcullis_testkit::init();
    let backend = RecordingBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (member, ca) = tls_member(dir.path(), &backend.url()).await;
    let addr = member.addr;
    let mut request = hello();
    request.extend(get_headers(1, "/gateway/t/svc/x"));
    // (name, ALPN protocols offered, bytes sent after the handshake)
    type Case = (&'static str, Vec<&'static [u8]>, Vec<u8>);
    let after_handshake: Vec<Case> = vec![
        ("ALPN h2, then silence", vec![b"h2"], Vec::new()),
        ("ALPN http/1.1, then silence", vec![b"http/1.1"], Vec::new()),
        ("no ALPN, then silence", vec![], Vec::new()),
        ("no ALPN, one byte P", vec![], b"P".to_vec()),
        ("ALPN h2, preface and SETTINGS", vec![b"h2"], hello()),
        ("ALPN h2, one request, then idle", vec![b"h2"], request),
    ];
    let mut open = Vec::new();
    for (name, alpn, payload) in after_handshake {
        if !tls_closed_after(addr, &ca, &alpn, &payload).await {
            open.push(name.to_string());
        }
    }
    // Before any handshake: silence, and a ClientHello cut short.
    let partial_hello = [
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ];
    for (name, payload) in [
        ("silence", &[][..]),
        ("partial ClientHello", &partial_hello[..]),
    ] {
        if !closed_after(addr, payload).await.0 {
            open.push(name.to_string());
        }
    }
    assert!(open.is_empty(), "still open after {BOUND:?}: {open:?}");
    member.stop().await;
}
