//! The balancer's client to members in `proxy` mode: plain `http://` or
//! `https://` members, a bounded connect, and TLS verified against
//! `[balancer] members_ca` (or the host's roots without one).

use std::sync::Arc;
use std::time::Duration;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::{ClientConfig, RootCertStore};

use crate::body::ProxyBody;

pub(crate) type MemberClient = Client<HttpsConnector<HttpConnector>, ProxyBody>;

/// rustls refused the balancer's TLS client settings.
#[derive(Debug, thiserror::Error)]
#[error("TLS client setup for members failed: {0}")]
pub struct MembersTlsError(#[from] rustls::Error);

/// The TLS client settings for `https://` members: `roots` are the CAs
/// they must chain to; the host's roots without them.
pub fn members_tls(roots: Option<RootCertStore>) -> Result<Arc<ClientConfig>, MembersTlsError> {
    let roots = roots.unwrap_or_else(|| {
        // Not fatal when unreadable: plain-http members need none.
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        roots
    });
    Ok(Arc::new(
        ClientConfig::builder_with_provider(crate::client::provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(Arc::new(roots))
            .with_no_client_auth(),
    ))
}

/// A pooled client whose connects give up after `connect_timeout`.
pub(crate) fn member_client(connect_timeout: Duration, tls: Arc<ClientConfig>) -> MemberClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    let connector = HttpsConnector::from((http, tls));
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(connector)
}
