//! TLS termination with a certificate from `cert create`, HTTP/2 by ALPN, and
//! https backends trusted through a private CA.

use std::sync::Arc;

use http::{Request, StatusCode, Version};
use http_body_util::BodyExt;
use portcullis_demo::DemoBackend;
use portcullis_testkit::*;

#[tokio::test]
async fn tls_termination_with_http1_and_http2_by_alpn() {
    init();
    let certs_dir = tempfile::tempdir().unwrap();
    let certs =
        portcullis::cert::create_certs(&["localhost".to_string()], certs_dir.path()).unwrap();
    let backend = DemoBackend::spawn("plain", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let member = TestMember::start_with(
        &[("t", &topology("svc", &[backend.url()], ""))],
        &format!(
            "tls = {{ cert = {:?}, key = {:?} }}",
            certs.server_cert.display().to_string(),
            certs.server_key.display().to_string()
        ),
    )
    .await;
    let url = format!("https://localhost:{}/gateway/t/svc/x", member.addr.port());
    for h2 in [false, true] {
        let client = https_client(&certs.ca_cert, h2);
        let response = client
            .request(Request::get(&url).body(empty()).unwrap())
            .await
            .expect("TLS request");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.version(),
            if h2 {
                Version::HTTP_2
            } else {
                Version::HTTP_11
            }
        );
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["headers"]["x-forwarded-proto"], "https");
        assert_eq!(json["backend"], "plain");
    }
    // Plain HTTP to the TLS listener is refused rather than served: the TLS
    // handshake fails on the first bytes and the member closes the
    // connection, with no HTTP response at all (at most a TLS alert).
    assert_plain_http_gets_no_response(member.addr.port()).await;
    let plain = client()
        .request(
            Request::get(format!(
                "http://127.0.0.1:{}/gateway/t/svc/x",
                member.addr.port()
            ))
            .body(empty())
            .unwrap(),
        )
        .await;
    assert!(
        plain.is_err(),
        "a plain HTTP client gets an error, not a response"
    );
    member.stop().await;
}

#[tokio::test]
async fn https_backend_with_private_ca_and_verification() {
    init();
    let certs_dir = tempfile::tempdir().unwrap();
    let certs =
        portcullis::cert::create_certs(&["localhost".to_string()], certs_dir.path()).unwrap();
    let cert_pem = std::fs::read_to_string(&certs.server_cert).unwrap();
    let key_pem = std::fs::read_to_string(&certs.server_key).unwrap();
    let backend = DemoBackend::spawn_tls(
        "secure",
        "127.0.0.1:0".parse().unwrap(),
        &cert_pem,
        &key_pem,
    )
    .await
    .unwrap();
    assert!(backend.url().starts_with("https://localhost:"));
    let ca = certs.ca_cert.display().to_string();
    let text = format!(
        "{}\n{}\n{}",
        topology("trusted", &[backend.url()], &format!("tls_ca = {ca:?}")),
        topology("untrusted", &[backend.url()], ""),
        topology("unverified", &[backend.url()], "tls_verify = false"),
    );
    let member = TestMember::start(&[("t", &text)]).await;
    let reply = get(&member.url("/gateway/t/trusted/x")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json()["backend"], "secure");
    // Without the CA the certificate is not trusted: the backend cannot be used.
    let reply = get(&member.url("/gateway/t/untrusted/x")).await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.text()
    );
    let reply = get(&member.url("/gateway/t/unverified/x")).await;
    assert_eq!(reply.status, StatusCode::OK);
    member.stop().await;
}

/// Sends a plain HTTP request to a TLS port and reads until the member
/// closes: no byte of it is an HTTP response.
async fn assert_plain_http_gets_no_response(port: u16) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    socket
        .write_all(b"GET /gateway/t/svc/x HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        socket.read_to_end(&mut answer),
    )
    .await
    .expect("the member closes the connection");
    // A reset after the alert is a close too.
    let _ = read;
    assert!(
        !answer.starts_with(b"HTTP/"),
        "plain HTTP was answered: {:?}",
        String::from_utf8_lossy(&answer)
    );
    // A TLS alert record (content type 21) or nothing.
    assert!(
        answer.is_empty() || answer[0] == 0x15,
        "neither nothing nor a TLS alert: {answer:?}"
    );
}

/// The sticky cookie carries `Secure` when the client connection is TLS, and
/// only then: the same topology on a plain listener sets it without.
#[tokio::test]
async fn the_sticky_cookie_is_secure_over_tls_only() {
    init();
    let certs_dir = tempfile::tempdir().unwrap();
    let certs =
        portcullis::cert::create_certs(&["localhost".to_string()], certs_dir.path()).unwrap();
    let a = DemoBackend::spawn("a", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let b = DemoBackend::spawn("b", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let text = ha_topology(
        "svc",
        &[a.url(), b.url()],
        "load_balancing = \"round-robin\"\nsticky_session = true",
        "",
    );
    let tls_member = TestMember::start_with(
        &[("t", &text)],
        &format!(
            "tls = {{ cert = {:?}, key = {:?} }}",
            certs.server_cert.display().to_string(),
            certs.server_key.display().to_string()
        ),
    )
    .await;
    let plain_member = TestMember::start(&[("t", &text)]).await;

    let url = format!(
        "https://localhost:{}/gateway/t/svc/x",
        tls_member.addr.port()
    );
    for h2 in [false, true] {
        let response = https_client(&certs.ca_cert, h2)
            .request(Request::get(&url).body(empty()).unwrap())
            .await
            .expect("TLS request");
        assert_eq!(response.status(), StatusCode::OK);
        let cookie = response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(cookie.starts_with("KNOX_BACKEND-svc="), "{cookie}");
        assert!(
            cookie.ends_with("; Path=/gateway/t; HttpOnly; SameSite=Lax; Secure"),
            "{cookie}"
        );
    }
    let plain = get(&plain_member.url("/gateway/t/svc/x")).await;
    let cookie = plain.headers["set-cookie"].to_str().unwrap();
    assert!(
        cookie.ends_with("; Path=/gateway/t; HttpOnly; SameSite=Lax"),
        "no Secure on a plain connection: {cookie}"
    );
    tls_member.stop().await;
    plain_member.stop().await;
}

/// `protocol = "h2"` to an https backend: HTTP/2 negotiated by ALPN, for
/// HTTP/1.1 and HTTP/2 clients alike; the default stays HTTP/1.1.
#[tokio::test]
async fn protocol_h2_speaks_http2_to_a_tls_backend() {
    init();
    let certs_dir = tempfile::tempdir().unwrap();
    let certs =
        portcullis::cert::create_certs(&["localhost".to_string()], certs_dir.path()).unwrap();
    let cert_pem = std::fs::read_to_string(&certs.server_cert).unwrap();
    let key_pem = std::fs::read_to_string(&certs.server_key).unwrap();
    let backend = DemoBackend::spawn_tls(
        "secure",
        "127.0.0.1:0".parse().unwrap(),
        &cert_pem,
        &key_pem,
    )
    .await
    .unwrap();
    let ca = certs.ca_cert.display().to_string();
    let text = format!(
        "{}\n{}",
        topology(
            "h2",
            &[backend.url()],
            &format!("protocol = \"h2\"\ntls_ca = {ca:?}")
        ),
        topology("h1", &[backend.url()], &format!("tls_ca = {ca:?}")),
    );
    let member = TestMember::start(&[("t", &text)]).await;
    for client in [client(), h2c_client()] {
        let request = Request::get(member.url("/gateway/t/h2/x"))
            .body(empty())
            .unwrap();
        let reply = send(&client, request).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert_eq!(reply.json()["backend"], "secure");
        assert_eq!(reply.json()["version"], "HTTP/2.0");
        // A POST body crosses the HTTP/2 hop whole.
        let request = Request::post(member.url("/gateway/t/h2/echo"))
            .body(full("over h2"))
            .unwrap();
        let reply = send(&client, request).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(&reply.body[..], b"over h2");
    }
    let reply = get(&member.url("/gateway/t/h1/x")).await;
    assert_eq!(reply.json()["version"], "HTTP/1.1");
    member.stop().await;
}

/// A rustls client that keeps its `ClientConfig` resumes on its next
/// connection to the gateway's TLS listener (a ticket from the first), and the
/// resumed connection serves requests like any other.
#[tokio::test]
async fn a_second_tls_connection_from_the_same_client_resumes() {
    use rustls::pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    init();
    let certs_dir = tempfile::tempdir().unwrap();
    let certs =
        portcullis::cert::create_certs(&["localhost".to_string()], certs_dir.path()).unwrap();
    let backend = DemoBackend::spawn("plain", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let member = TestMember::start_with(
        &[("t", &topology("svc", &[backend.url()], ""))],
        &format!(
            "tls = {{ cert = {:?}, key = {:?} }}",
            certs.server_cert.display().to_string(),
            certs.server_key.display().to_string()
        ),
    )
    .await;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(&certs.ca_cert).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let mut kinds = Vec::new();
    for _ in 0..3 {
        let tcp = tokio::net::TcpStream::connect(member.addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = connector.connect(name, tcp).await.expect("handshake");
        kinds.push(tls.get_ref().1.handshake_kind());
        tls.write_all(
            b"GET /gateway/t/svc/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
        // Reading to the end also takes in the ticket sent after the handshake.
        let mut answer = Vec::new();
        let _ = tls.read_to_end(&mut answer).await;
        assert!(
            answer.starts_with(b"HTTP/1.1 200"),
            "{:?}",
            String::from_utf8_lossy(&answer)
        );
    }
    use rustls::HandshakeKind::{Full, Resumed};
    assert_eq!(kinds, [Some(Full), Some(Resumed), Some(Resumed)]);
    member.stop().await;
}
