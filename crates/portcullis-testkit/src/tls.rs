//! A client that trusts one CA (a `portcullis cert create` one), for tests
//! of the gateway's, the admin API's and the balancer's TLS listeners.

use std::path::Path;
use std::sync::Arc;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::requests::TestBody;

pub type HttpsTestClient = Client<HttpsConnector<HttpConnector>, TestBody>;

/// A rustls client configuration (ring provider) trusting the CA in `ca`.
pub fn trusting(ca: &Path) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("the CA file reads") {
        roots
            .add(cert.expect("the CA parses"))
            .expect("the CA is a root");
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// An https-only client trusting `ca`: HTTP/2 only (by ALPN) when `h2`,
/// else HTTP/1.1.
pub fn https_client(ca: &Path, h2: bool) -> HttpsTestClient {
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(trusting(ca))
        .https_only();
    let connector = if h2 {
        builder.enable_http2().build()
    } else {
        builder.enable_http1().build()
    };
    let mut client = Client::builder(TokioExecutor::new());
    client.http2_only(h2);
    client.build(connector)
}

/// A private CA and a certificate it signed for `localhost`: the CA's
/// certificate, the server's certificate and the server's key, all in PEM
/// (what `portcullis cert create` writes), for test servers that speak TLS.
pub fn private_ca_and_localhost_cert() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().expect("a CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("a CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().expect("a server key");
    let server_params =
        CertificateParams::new(vec!["localhost".to_string()]).expect("server parameters");
    let server_cert = server_params
        .signed_by(&server_key, &issuer)
        .expect("a server certificate");
    (ca_cert.pem(), server_cert.pem(), server_key.serialize_pem())
}
