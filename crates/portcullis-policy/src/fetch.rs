//! Fetching a key set from its URL: a hyper-util client over hyper-rustls
//! with ring and the host's roots, as the data plane's backend clients are
//! built (`portcullis-proxy`'s `client.rs`).

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::{ClientConfig, RootCertStore};

use crate::keys::{FetchError, FetchFuture, KeySource};

/// A fetch that takes longer fails (and the last good set stays).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Key sets are small; a larger answer is not one.
const MAX_BYTES: usize = 1 << 20;

type HttpsClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// The host's roots, read once per process.
pub(crate) static SYSTEM_ROOTS: LazyLock<Arc<RootCertStore>> = LazyLock::new(|| {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    Arc::new(roots)
});

pub struct UrlSource {
    url: http::Uri,
    client: HttpsClient,
}

impl UrlSource {
    pub fn new(url: &url::Url) -> Result<UrlSource, String> {
        let uri: http::Uri = url.as_str().parse().map_err(|e| format!("{url}: {e}"))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(SYSTEM_ROOTS.clone())
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(FETCH_TIMEOUT));
        // Validation allows http:// for loopback hosts only.
        let connector = HttpsConnector::from((http, Arc::new(tls)));
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(UrlSource { url: uri, client })
    }

    async fn get(&self) -> Result<Vec<portcullis_config::JwtKey>, FetchError> {
        let request = http::Request::get(self.url.clone())
            .header(http::header::ACCEPT, "application/json")
            .body(Empty::new())
            .map_err(|e| FetchError::Http(e.to_string()))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| FetchError::Http(e.to_string()))?;
        if response.status() != http::StatusCode::OK {
            return Err(FetchError::Status(response.status()));
        }
        let body = Limited::new(response.into_body(), MAX_BYTES)
            .collect()
            .await
            .map_err(|e| FetchError::Http(e.to_string()))?
            .to_bytes();
        Ok(portcullis_config::parse_jwks(&body)?)
    }
}

impl KeySource for UrlSource {
    fn fetch(&self) -> FetchFuture<'_> {
        Box::pin(async move {
            tokio::time::timeout(FETCH_TIMEOUT, self.get())
                .await
                .map_err(|_| FetchError::Timeout(FETCH_TIMEOUT))?
        })
    }

    fn describe(&self) -> String {
        self.url.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A loopback server answering every request with `body`.
    async fn serving(body: Vec<u8>) -> url::Url {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let body = body.clone();
                tokio::spawn(async move {
                    let mut head = [0u8; 2048];
                    let _ = socket.read(&mut head).await;
                    let start = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                        body.len()
                    );
                    let _ = socket.write_all(start.as_bytes()).await;
                    let _ = socket.write_all(&body).await;
                });
            }
        });
        url::Url::parse(&format!("http://{addr}/jwks.json")).unwrap()
    }

    /// Key sets are small: an answer over `MAX_BYTES` is refused before it
    /// is parsed; one under it is read and parsed (an empty set is then
    /// refused as holding no usable key).
    #[tokio::test]
    async fn a_key_set_over_the_size_limit_is_refused() {
        let small = serving(br#"{"keys": []}"#.to_vec()).await;
        let parsed = UrlSource::new(&small).unwrap().fetch().await;
        assert!(matches!(parsed, Err(FetchError::Jwks(_))), "{parsed:?}");
        // Valid JSON, padded with spaces past the limit.
        let mut large = br#"{"keys": []"#.to_vec();
        large.resize(MAX_BYTES + 1, b' ');
        large.push(b'}');
        let large = serving(large).await;
        let refused = UrlSource::new(&large).unwrap().fetch().await;
        assert!(matches!(refused, Err(FetchError::Http(_))), "{refused:?}");
    }
}
