//! Connections to backends: one pooled hyper client per service, with the
//! service's protocol, connect timeout and TLS trust.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
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

use crate::body::ProxyBody;

pub type BackendClient = Client<HttpsConnector<TcpConnector>, ProxyBody>;

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
        BackendProtocol::Http1 => builder.enable_http1().wrap_connector(TcpConnector(http)),
        BackendProtocol::H2 => builder.enable_http2().wrap_connector(TcpConnector(http)),
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
