//! Plain hyper clients, request bodies and collected replies.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::BoxError;

pub type TestBody = BoxBody<Bytes, BoxError>;
pub type TestClient = Client<HttpConnector, TestBody>;

/// An HTTP/1.1 client with keep-alive.
pub fn client() -> TestClient {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// An HTTP/2 client with prior knowledge (h2c).
pub fn h2c_client() -> TestClient {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(HttpConnector::new())
}

pub fn empty() -> TestBody {
    Empty::new().map_err(|never| match never {}).boxed()
}

pub fn full(data: impl Into<Bytes>) -> TestBody {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A response with its whole body.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }

    /// The `x-backend` header the demo backends add: who answered.
    pub fn backend(&self) -> Option<&str> {
        self.headers.get("x-backend").and_then(|v| v.to_str().ok())
    }
}

/// Sends `request` and collects the reply; panics on a transport error or
/// when no answer comes within 30 s.
pub async fn send(client: &TestClient, request: Request<TestBody>) -> Reply {
    let response = tokio::time::timeout(Duration::from_secs(30), client.request(request))
        .await
        .expect("answer within 30 s")
        .expect("request succeeds at the HTTP level");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

/// An admin API call; `token` None sends no Authorization header.
pub async fn admin_call(url: &str, token: Option<&str>, method: &str, body: &str) -> Reply {
    let mut request = Request::builder().method(method).uri(url);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    send(&client(), request.body(full(body.to_string())).unwrap()).await
}

pub async fn get(url: &str) -> Reply {
    let request = Request::get(url).body(empty()).unwrap();
    send(&client(), request).await
}

/// Polls `url` until `check` accepts the reply or `timeout` passes; returns
/// the last reply, for the caller to assert on (so the failure message shows
/// what was served instead).
pub async fn eventually(url: &str, timeout: Duration, check: impl Fn(&Reply) -> bool) -> Reply {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let reply = get(url).await;
        if check(&reply) || tokio::time::Instant::now() > deadline {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Deterministic pseudo-random bytes, streamed in chunks, with their SHA-256.
pub fn pattern_stream(total: u64, chunk: usize) -> (TestBody, String) {
    use sha2::{Digest, Sha256};
    const SEED: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut hasher = Sha256::new();
    let mut produced = 0u64;
    let mut seed = SEED;
    let mut chunks = Vec::new();
    // Precompute the digest with the same generator the stream uses.
    while produced < total {
        let n = chunk.min((total - produced) as usize);
        hasher.update(next_block(&mut seed, n));
        produced += n as u64;
        chunks.push(n);
    }
    let digest = hex::encode(hasher.finalize());
    let stream = futures_util::stream::unfold(
        (SEED, chunks.into_iter()),
        |(mut seed, mut sizes)| async move {
            let n = sizes.next()?;
            let block = next_block(&mut seed, n);
            Some((
                Ok::<_, BoxError>(http_body::Frame::data(Bytes::from(block))),
                (seed, sizes),
            ))
        },
    );
    (http_body_util::StreamBody::new(stream).boxed(), digest)
}

fn next_block(seed: &mut u64, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(n);
    out
}
