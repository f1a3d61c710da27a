//! Connections to backends: one pooled hyper client per service, with the
//! service's protocol, connect timeout and TLS trust.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use portcullis_config::{BackendProtocol, Service};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::body::ProxyBody;

pub type BackendClient = Client<HttpsConnector<HttpConnector>, ProxyBody>;

/// Why a backend client could not be built from a service's settings.
#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    #[error("service {service}: cannot read tls_ca {path}: {source}")]
    ReadCa {
        service: String,
        path: String,
        source: std::io::Error,
    },
    #[error("service {service}: tls_ca {path} holds no usable certificate")]
    EmptyCa { service: String, path: String },
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
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    let connector = match service.protocol {
        BackendProtocol::Http1 => builder.enable_http1().wrap_connector(http),
        BackendProtocol::H2 => builder.enable_http2().wrap_connector(http),
    };
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

fn tls_config(service: &Service, base_dir: &Path) -> Result<ClientConfig, ClientBuildError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|source| ClientBuildError::Tls {
            service: service.name.clone(),
            source,
        })?;
    // ALPN is left to hyper-rustls, which offers what the connector enables.
    let config = if !service.tls_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider())))
            .with_no_client_auth()
    } else {
        builder
            .with_root_certificates(root_store(service, base_dir)?)
            .with_no_client_auth()
    };
    Ok(config)
}

fn root_store(service: &Service, base_dir: &Path) -> Result<RootCertStore, ClientBuildError> {
    let mut roots = RootCertStore::empty();
    match &service.tls_ca {
        Some(ca) => {
            let pem = if ca.trim_start().starts_with("-----BEGIN") {
                ca.clone().into_bytes()
            } else {
                let path = base_dir.join(ca);
                std::fs::read(&path).map_err(|source| ClientBuildError::ReadCa {
                    service: service.name.clone(),
                    path: path.display().to_string(),
                    source,
                })?
            };
            let certs = rustls_pki_types::pem::PemObject::pem_slice_iter(&pem)
                .filter_map(Result::ok)
                .collect::<Vec<CertificateDer<'static>>>();
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(ClientBuildError::EmptyCa {
                    service: service.name.clone(),
                    path: ca.clone(),
                });
            }
        }
        None => {
            // Unreadable system certificates are not fatal: plain-http and
            // private-CA services must keep working on a minimal host.
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
        }
    }
    Ok(roots)
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
