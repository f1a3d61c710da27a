//! Connections to backends: one pooled hyper client per service, with the
//! service's protocol, connect timeout and TLS trust.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use portcullis_config::{BackendProtocol, Service};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::body::ProxyBody;

pub type BackendClient = Client<HttpsConnector<TcpConnector>, ProxyBody>;

/// Why a backend client could not be built from a service's settings.
#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    #[error("service {service}: tls_ca: {source}")]
    Ca {
        service: String,
        source: portcullis_config::TlsCaError,
    },
    #[error("service {service}: TLS setup failed: {source}")]
    Tls {
        service: String,
        source: rustls::Error,
    },
}

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Idle pooled connections are closed after this long; kept under common backend
/// keep-alive timeouts so the pool rarely hands out a connection the backend closed.
const POOL_IDLE: Duration = Duration::from_secs(50);

pub fn build_client(service: &Service, base_dir: &Path) -> Result<BackendClient, ClientBuildError> {
    let tls = tls_config(service, base_dir)?;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(service.timeouts.connect));
    http.set_keepalive(Some(Duration::from_secs(30)));
    // https or plain http by the url's scheme, with the shared config (whose
    // ALPN already matches the protocol).
    let connector = HttpsConnector::from((TcpConnector(http), tls));
    let mut client = Client::builder(TokioExecutor::new());
    // The forwarder sets Host itself from a value built once per backend.
    client
        .set_host(false)
        .pool_idle_timeout(POOL_IDLE)
        .pool_max_idle_per_host(1024)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new());
    if service.protocol == BackendProtocol::H2 {
        client
            .http2_only(true)
            .http2_keep_alive_interval(Duration::from_secs(20))
            .http2_adaptive_window(true);
    }
    Ok(client.build(connector))
}

/// `HttpConnector` whose connections do not attach `HttpInfo` (the peer
/// addresses) to every response: nothing here reads it, and inserting it cost
/// an extensions map allocation per proxied response.
#[derive(Clone)]
pub struct TcpConnector(HttpConnector);

type ConnectError = <HttpConnector as tower_service::Service<Uri>>::Error;

impl tower_service::Service<Uri> for TcpConnector {
    type Response = TcpConnection;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<TcpConnection, ConnectError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.0.call(uri);
        Box::pin(async move { connecting.await.map(TcpConnection) })
    }
}

/// A backend TCP connection, as `HttpConnector` made it.
pub struct TcpConnection(TokioIo<tokio::net::TcpStream>);

impl Connection for TcpConnection {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for TcpConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for TcpConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
}

/// What decides a service's TLS client settings. Services that agree share
/// one `ClientConfig`: building one per service, each with its own copy of
/// the system roots read from disk, made a topology of 4,000 services take
/// 28 s and 116 KB per service to apply (issue 11).
#[derive(Clone, PartialEq, Eq, Hash)]
struct TlsKey {
    h2: bool,
    trust: Trust,
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum Trust {
    /// The host's roots.
    System,
    /// A `tls_ca`, by the SHA-256 of its PEM text (so an edited file counts
    /// as new).
    Ca([u8; 32]),
    /// `tls_verify = false`.
    Any,
}

/// Configs in use, held weakly: once the last service using one is dropped,
/// so is the config.
static TLS_CONFIGS: LazyLock<Mutex<HashMap<TlsKey, Weak<ClientConfig>>>> =
    LazyLock::new(Default::default);

/// The host's roots, read once per process: reading and parsing the system
/// bundle costs milliseconds and ~100 KB each time. A changed bundle is seen
/// after a restart.
static SYSTEM_ROOTS: LazyLock<Arc<RootCertStore>> = LazyLock::new(|| {
    // Unreadable system certificates are not fatal: plain-http and
    // private-CA services must keep working on a minimal host.
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    Arc::new(roots)
});

fn tls_config(service: &Service, base_dir: &Path) -> Result<Arc<ClientConfig>, ClientBuildError> {
    let ca = match (&service.tls_ca, service.tls_verify) {
        (Some(ca), true) => {
            let pem = portcullis_config::read_tls_ca(ca, base_dir).map_err(|source| {
                ClientBuildError::Ca {
                    service: service.name.clone(),
                    source,
                }
            })?;
            Some((ca.as_str(), pem))
        }
        _ => None,
    };
    let trust = match (&ca, service.tls_verify) {
        (_, false) => Trust::Any,
        (Some((_, pem)), true) => Trust::Ca(Sha256::digest(pem).into()),
        (None, true) => Trust::System,
    };
    let key = TlsKey {
        h2: service.protocol == BackendProtocol::H2,
        trust,
    };
    let mut configs = TLS_CONFIGS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(config) = configs.get(&key).and_then(Weak::upgrade) {
        return Ok(config);
    }
    let roots = match &ca {
        Some((ca, pem)) => Some(Arc::new(portcullis_config::tls_ca_roots(ca, pem).map_err(
            |source| ClientBuildError::Ca {
                service: service.name.clone(),
                source,
            },
        )?)),
        None => None,
    };
    let config = Arc::new(
        new_tls_config(&key, roots).map_err(|source| ClientBuildError::Tls {
            service: service.name.clone(),
            source,
        })?,
    );
    configs.retain(|_, config| config.strong_count() > 0);
    configs.insert(key, Arc::downgrade(&config));
    Ok(config)
}

fn new_tls_config(
    key: &TlsKey,
    ca_roots: Option<Arc<RootCertStore>>,
) -> Result<ClientConfig, rustls::Error> {
    let builder =
        ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let mut config = match (&key.trust, ca_roots) {
        (Trust::Any, _) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider())))
            .with_no_client_auth(),
        (_, Some(roots)) => builder.with_root_certificates(roots).with_no_client_auth(),
        (_, None) => builder
            .with_root_certificates(SYSTEM_ROOTS.clone())
            .with_no_client_auth(),
    };
    // What hyper-rustls's builder would offer for the protocol: h2 for h2
    // services, nothing (HTTP/1.1) otherwise.
    if key.h2 {
        config.alpn_protocols = vec![b"h2".to_vec()];
    }
    Ok(config)
}

/// `tls_verify = false`: the operator chose to trust any certificate, as with
/// Knox's or nginx's disabled verification. Signatures are still checked so the
/// handshake itself stays sound.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(extra: &str) -> Service {
        let text =
            format!("[[service]]\nname = \"s\"\nurls = [\"https://127.0.0.1:1/\"]\n{extra}\n");
        portcullis_config::parse_topology("t", "t.toml", &text)
            .unwrap()
            .services
            .remove(0)
    }

    fn ca_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["ca.test".to_string()]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    fn base_dir() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR"))
    }

    #[test]
    fn a_missing_ca_file_names_the_service_and_the_path() {
        let mut service = service("");
        service.tls_ca = Some("no/such/ca.pem".to_string());
        let Err(err) = build_client(&service, base_dir()) else {
            panic!("accepted")
        };
        assert!(matches!(err, ClientBuildError::Ca { ref service, .. } if service == "s"));
        assert!(err.to_string().contains("no/such/ca.pem"), "{err}");
    }

    #[test]
    fn a_ca_without_a_certificate_is_refused() {
        let mut service = service("");
        service.tls_ca = Some(
            "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n".to_string(),
        );
        let Err(err) = build_client(&service, base_dir()) else {
            panic!("accepted")
        };
        assert!(matches!(err, ClientBuildError::Ca { .. }), "{err}");
    }

    #[test]
    fn an_unverified_service_never_reads_its_ca() {
        let mut service = service("");
        service.tls_ca = Some("no/such/ca.pem".to_string());
        service.tls_verify = false;
        let config = tls_config(&service, base_dir()).unwrap();
        let other = tls_config(&self::service("tls_verify = false"), base_dir()).unwrap();
        assert!(
            Arc::ptr_eq(&config, &other),
            "one config for every trust-any service"
        );
    }

    #[test]
    fn services_that_agree_share_one_tls_config() {
        let pem = ca_pem();
        let mut first = service("");
        first.tls_ca = Some(pem.clone());
        let mut second = service("");
        second.name = "other".to_string();
        second.tls_ca = Some(pem);
        let a = tls_config(&first, base_dir()).unwrap();
        let b = tls_config(&second, base_dir()).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let mut h2 = first.clone();
        h2.protocol = BackendProtocol::H2;
        let c = tls_config(&h2, base_dir()).unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(c.alpn_protocols, vec![b"h2".to_vec()]);
        assert!(a.alpn_protocols.is_empty());
        let mut other_ca = first.clone();
        other_ca.tls_ca = Some(ca_pem());
        let d = tls_config(&other_ca, base_dir()).unwrap();
        assert!(!Arc::ptr_eq(&a, &d), "a different CA is a different trust");
    }

    #[test]
    fn a_config_no_service_uses_is_let_go() {
        let mut service = service("");
        service.tls_ca = Some(ca_pem());
        let weak = Arc::downgrade(&tls_config(&service, base_dir()).unwrap());
        assert!(weak.upgrade().is_none());
    }
}
