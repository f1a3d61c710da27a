//! TLS termination with a certificate from `cert create`, HTTP/2 by ALPN, and
//! https backends trusted through a private CA.

mod common;

use std::sync::Arc;

use common::*;
use http::{Request, StatusCode, Version};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use portcullis::demo_backend::DemoBackend;

fn tls_client(
    ca: &std::path::Path,
    h2: bool,
) -> Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    TestBody,
> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only();
    let connector = if h2 {
        builder.enable_http2().build()
    } else {
        builder.enable_http1().build()
    };
    let mut client = Client::builder(TokioExecutor::new());
    if h2 {
        client.http2_only(true);
    }
    client.build(connector)
}

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
        let client = tls_client(&certs.ca_cert, h2);
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
    // Plain HTTP to the TLS listener is refused rather than served.
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
    assert!(plain.is_err() || plain.unwrap().status() != StatusCode::OK);
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
