//! A small real backend for `portcullis demo` and the end-to-end tests: HTTP/1.1
//! and h2c, optional TLS, WebSocket echo, and routes that stream, stall, redirect
//! and fail on demand. Every response names the backend in `x-backend`.

#![forbid(unsafe_code)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = BoxBody<Bytes, BoxError>;

/// Chunk size of `/bytes/N`.
const CHUNK: usize = 64 * 1024;
/// Largest `/bytes/N`: enough for multi-gigabyte streaming tests, bounded so a
/// typo cannot stream forever.
const MAX_BYTES: u64 = 10 << 30;
/// A client that opens a TLS connection and never finishes the handshake must
/// not pin a task forever.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub struct DemoBackend {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_task: Option<JoinHandle<()>>,
}

struct Shared {
    name: String,
    /// Our own base URL, used for absolute redirects to ourselves.
    url: String,
    requests: AtomicU64,
    /// The pattern of `/bytes/N`, long enough to slice any 64 KiB chunk from.
    pattern: Bytes,
    tasks: Tasks,
}

/// Every task that owns a client socket (HTTP connections and upgraded
/// WebSockets). Aborting them all is what makes `shutdown` look like a killed
/// process to the gateway: open connections are reset, not drained.
/// `None` once shut down, so a late upgrade cannot start a task nobody stops.
struct Tasks(Mutex<Option<JoinSet<()>>>);

impl Tasks {
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let mut guard = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(set) = guard.as_mut() {
            // Reap finished tasks so a long-running demo does not accumulate them.
            while set.try_join_next().is_some() {}
            set.spawn(task);
        }
    }

    fn take(&self) -> Option<JoinSet<()>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

impl DemoBackend {
    /// Binds `addr` and serves plain HTTP (HTTP/1.1 or h2c) until shut down or dropped.
    pub async fn spawn(name: &str, addr: SocketAddr) -> std::io::Result<DemoBackend> {
        Self::start(name, addr, None).await
    }

    /// The same routes over TLS (ALPN h2 and http/1.1); `url()` names
    /// "localhost", so the certificate must be valid for it.
    pub async fn spawn_tls(
        name: &str,
        addr: SocketAddr,
        cert_pem: &str,
        key_pem: &str,
    ) -> std::io::Result<DemoBackend> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let invalid = |e: &dyn std::fmt::Display| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())
        };
        let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(&e))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| invalid(&e))?;
        // The provider is named explicitly: the process-wide default may be unset
        // (only ring is compiled in, and nothing installs it).
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(&e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| invalid(&e))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Self::start(
            name,
            addr,
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
        )
        .await
    }

    async fn start(
        name: &str,
        addr: SocketAddr,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> std::io::Result<DemoBackend> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let url = match tls {
            Some(_) => format!("https://localhost:{}", addr.port()),
            // A wildcard bind is still reached over loopback by the demo.
            None if addr.ip().is_unspecified() => format!("http://127.0.0.1:{}", addr.port()),
            None => format!("http://{addr}"),
        };
        let pattern: Vec<u8> = (0..CHUNK + 251).map(|i| (i % 251) as u8).collect();
        let shared = Arc::new(Shared {
            name: name.to_string(),
            url,
            requests: AtomicU64::new(0),
            pattern: Bytes::from(pattern),
            tasks: Tasks(Mutex::new(Some(JoinSet::new()))),
        });
        let accept_task = tokio::spawn(accept_loop(listener, shared.clone(), tls));
        Ok(DemoBackend {
            addr,
            shared,
            accept_task: Some(accept_task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        self.shared.url.clone()
    }

    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// Stops accepting and closes every open connection now, like a killed
    /// process. When it returns, the port refuses connections and every socket
    /// this backend held is closed.
    pub async fn shutdown(mut self) {
        if let Some(task) = self.accept_task.take() {
            task.abort();
            // Awaiting an aborted task returns once its future (and so the
            // listener) has been dropped.
            let _ = task.await;
        }
        if let Some(mut tasks) = self.shared.tasks.take() {
            tasks.shutdown().await;
        }
    }
}

impl Drop for DemoBackend {
    fn drop(&mut self) {
        if let Some(task) = self.accept_task.take() {
            task.abort();
        }
        // Dropping a JoinSet aborts its tasks; no runtime context is needed.
        drop(self.shared.tasks.take());
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::debug!(backend = %shared.name, error = %e, "demo backend accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        shared
            .tasks
            .spawn(serve_connection(shared.clone(), stream, tls.clone()));
    }
}

async fn serve_connection(
    shared: Arc<Shared>,
    stream: TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    match tls {
        None => serve_io(shared, stream).await,
        Some(acceptor) => {
            if let Ok(Ok(stream)) =
                tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
            {
                serve_io(shared, stream).await;
            }
        }
    }
}

async fn serve_io<I>(shared: Arc<Shared>, io: I)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Idle keep-alive connections stay open until the client closes them: an
    // idle close here would race the gateway's pooled reuse and make tests flaky.
    builder
        .http1()
        .keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(None);
    builder.http2().timer(TokioTimer::new());
    let service = service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(route(shared, req).await) }
    });
    let _ = builder
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .await;
}

fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed()
}

fn answer(shared: &Shared, status: StatusCode, value: serde_json::Value) -> Response<Body> {
    let mut response = Response::new(full(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    name_it(shared, response)
}

fn ok(shared: &Shared, value: serde_json::Value) -> Response<Body> {
    answer(shared, StatusCode::OK, value)
}

fn bad_request(shared: &Shared, error: &str) -> Response<Body> {
    answer(
        shared,
        StatusCode::BAD_REQUEST,
        json!({"error": error, "backend": shared.name}),
    )
}

fn name_it(shared: &Shared, mut response: Response<Body>) -> Response<Body> {
    if let Ok(name) = HeaderValue::from_str(&shared.name) {
        response.headers_mut().insert("x-backend", name);
    }
    response
}

async fn route(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    shared.requests.fetch_add(1, Ordering::Relaxed);
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["echo"] => {
            let content_type = req.headers().get(header::CONTENT_TYPE).cloned();
            // The request body is the response body: hyper streams it through
            // frame by frame, so a large upload is never held in memory.
            let mut response = Response::new(req.into_body().map_err(BoxError::from).boxed());
            if let Some(ct) = content_type {
                response.headers_mut().insert(header::CONTENT_TYPE, ct);
            }
            name_it(&shared, response)
        }
        ["sha256"] => {
            let mut hasher = Sha256::new();
            let Some(total) = count_body(req.into_body(), |data| hasher.update(data)).await else {
                return bad_request(&shared, "request body failed");
            };
            ok(
                &shared,
                json!({"sha256": hex::encode(hasher.finalize()), "bytes": total}),
            )
        }
        ["bytes", n] => match n.parse::<u64>() {
            Ok(n) if n <= MAX_BYTES => bytes_response(&shared, n),
            _ => bad_request(&shared, "size must be a number of bytes up to 10 GiB"),
        },
        // 1xx are not final responses; hyper cannot send them as one.
        ["status", code] => match code.parse().ok().filter(|c| (200..=599).contains(c)) {
            Some(code) => match StatusCode::from_u16(code) {
                Ok(status) => {
                    let body = json!({"backend": shared.name, "status": code});
                    answer(&shared, status, body)
                }
                Err(_) => bad_request(&shared, "bad status code"),
            },
            None => bad_request(&shared, "status must be 200..=599"),
        },
        ["redirect"] => redirect(&shared, req.uri().query()),
        ["sleep", ms] => {
            let ms = ms.parse::<u64>().unwrap_or(0).min(600_000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            describe(&shared, req).await
        }
        ["drip", n, ms] => drip(&shared, n, ms),
        ["ws"] => websocket(&shared, req),
        ["health"] => ok(&shared, json!({"status": "up", "backend": shared.name})),
        _ => describe(&shared, req).await,
    }
}

/// Reads a body to its end, handing each data frame to `each`; the number of
/// bytes, or `None` if the body failed. Nothing is buffered beyond one frame.
async fn count_body(mut body: Incoming, mut each: impl FnMut(&[u8])) -> Option<u64> {
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.ok()?;
        if let Some(data) = frame.data_ref() {
            each(data);
            total += data.len() as u64;
        }
    }
    Some(total)
}

fn redirect(shared: &Shared, query: Option<&str>) -> Response<Body> {
    let to = query
        .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("to=")))
        .map(percent_decode)
        .unwrap_or_else(|| "/".to_string());
    let to = if to.starts_with('/') {
        to
    } else {
        format!("/{to}")
    };
    // Absolute and pointing at ourselves, so the gateway must rewrite it.
    let target = format!("{}{}", shared.url, to);
    let Ok(value) = HeaderValue::from_str(&target) else {
        return bad_request(shared, "redirect target is not a valid header value");
    };
    let mut response = answer(
        shared,
        StatusCode::FOUND,
        json!({"backend": shared.name, "location": target}),
    );
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, value.clone());
    headers.insert(header::CONTENT_LOCATION, value);
    response
}

/// `to` is a path, so only %XX escapes are decoded (a '+' stays a '+').
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn bytes_response(shared: &Shared, total: u64) -> Response<Body> {
    let pattern = shared.pattern.clone();
    let stream = futures_util::stream::unfold(0u64, move |offset| {
        // Each chunk is a zero-copy slice of the shared pattern: byte i is
        // i % 251, so a chunk starting at `offset` starts at `offset % 251`.
        let chunk = (offset < total).then(|| {
            let len = (total - offset).min(CHUNK as u64) as usize;
            let start = (offset % 251) as usize;
            pattern.slice(start..start + len)
        });
        async move {
            let chunk = chunk?;
            let next = offset + chunk.len() as u64;
            Some((Ok::<_, BoxError>(Frame::data(chunk)), next))
        }
    });
    let mut response = streamed(shared, stream, "application/octet-stream");
    let length = HeaderValue::from(total);
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, length);
    response
}

/// A response whose body is produced frame by frame, never held whole.
fn streamed<S>(shared: &Shared, stream: S, content_type: &'static str) -> Response<Body>
where
    S: futures_util::Stream<Item = Result<Frame<Bytes>, BoxError>> + Send + Sync + 'static,
{
    let mut response = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    let content_type = HeaderValue::from_static(content_type);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, content_type);
    name_it(shared, response)
}

fn drip(shared: &Shared, n: &str, ms: &str) -> Response<Body> {
    let (Ok(n), Ok(ms)) = (n.parse::<u64>(), ms.parse::<u64>()) else {
        return bad_request(shared, "use /drip/{chunks}/{ms}");
    };
    let n = n.min(100_000);
    let gap = Duration::from_millis(ms.min(60_000));
    let stream = futures_util::stream::unfold(0u64, move |sent| async move {
        if sent >= n {
            return None;
        }
        // The first byte goes out with the headers; the gaps are between bytes.
        if sent > 0 {
            tokio::time::sleep(gap).await;
        }
        let frame = Frame::data(Bytes::from_static(b"."));
        Some((Ok::<_, BoxError>(frame), sent + 1))
    });
    streamed(shared, stream, "text/plain")
}

async fn describe(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let mut headers = serde_json::Map::new();
    for name in req.headers().keys() {
        let mut values: Vec<serde_json::Value> = req
            .headers()
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned().into())
            .collect();
        let value = match values.len() {
            1 => values.swap_remove(0),
            _ => serde_json::Value::Array(values),
        };
        headers.insert(name.as_str().to_string(), value);
    }
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    // Debug of http::Version is exactly "HTTP/1.1" / "HTTP/2.0".
    let version = format!("{:?}", req.version());
    let Some(body_bytes) = count_body(req.into_body(), |_| {}).await else {
        return bad_request(shared, "request body failed");
    };
    ok(
        shared,
        json!({
            "backend": shared.name,
            "method": method,
            "path": path,
            "query": query,
            "version": version,
            "headers": headers,
            "body_bytes": body_bytes,
        }),
    )
}

fn websocket(shared: &Arc<Shared>, mut req: Request<Incoming>) -> Response<Body> {
    let is_ws = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let key = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned();
    let Some(key) = key.filter(|_| is_ws) else {
        return bad_request(shared, "expected a WebSocket upgrade");
    };
    let accept = derive_accept_key(key.as_bytes());
    let Ok(accept) = HeaderValue::from_str(&accept) else {
        return bad_request(shared, "bad Sec-WebSocket-Key");
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let name = shared.name.clone();
    // Tracked with the connections so `shutdown` also cuts open WebSockets.
    shared.tasks.spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            None,
        )
        .await;
        let hello = Message::text(format!("hello from {name}"));
        if ws.send(hello).await.is_err() {
            return;
        }
        // Pings and the close handshake are answered by tungstenite itself while
        // we keep reading; the stream ends once the close has been acknowledged.
        while let Some(Ok(message)) = ws.next().await {
            if matches!(message, Message::Text(_) | Message::Binary(_))
                && ws.send(message).await.is_err()
            {
                break;
            }
        }
    });
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    name_it(shared, response)
}

#[cfg(test)]
mod tests {
    use hyper::client::conn::{http1, http2};
    use tokio::io::{AsyncRead, AsyncWrite};

    use super::*;

    type Reply = (Response<()>, Bytes);
    trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
    impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

    async fn backend(name: &str) -> DemoBackend {
        DemoBackend::spawn(name, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap()
    }

    /// One HTTP/1.1 client connection; the sender stays usable for keep-alive.
    async fn h1(io: impl Io) -> http1::SendRequest<Body> {
        let (sender, conn) = http1::handshake(TokioIo::new(io)).await.unwrap();
        tokio::spawn(conn.with_upgrades());
        sender
    }

    async fn h2(io: impl Io) -> http2::SendRequest<Body> {
        let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .unwrap();
        tokio::spawn(conn);
        sender
    }

    async fn read(response: Response<Incoming>) -> Reply {
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        (Response::from_parts(parts, ()), body)
    }

    fn req(method: &str, path: &str, body: impl Into<Bytes>) -> Request<Body> {
        Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "localhost")
            .body(full(body))
            .unwrap()
    }

    async fn send(client: &mut http1::SendRequest<Body>, request: Request<Body>) -> Reply {
        read(client.send_request(request).await.unwrap()).await
    }

    async fn get(addr: SocketAddr, path: &str) -> Reply {
        let mut client = h1(TcpStream::connect(addr).await.unwrap()).await;
        send(&mut client, req("GET", path, "")).await
    }

    async fn ws_connect(
        addr: SocketAddr,
    ) -> (tokio_tungstenite::WebSocketStream<TcpStream>, Response<()>) {
        let url = format!("ws://127.0.0.1:{}/ws", addr.port());
        let stream = TcpStream::connect(addr).await.unwrap();
        let (ws, response) = tokio_tungstenite::client_async(url, stream).await.unwrap();
        (ws, response.map(|_| ()))
    }

    fn json_of(body: &Bytes) -> serde_json::Value {
        serde_json::from_slice(body).unwrap()
    }

    #[tokio::test]
    async fn default_route_describes_the_request_over_h1_and_h2c() {
        let b = backend("alpha").await;
        assert_eq!(b.url(), format!("http://127.0.0.1:{}", b.addr().port()));
        let mut client = h1(TcpStream::connect(b.addr()).await.unwrap()).await;
        let mut request = req("POST", "/any/path?x=1&y=2", "hello");
        for value in ["a", "b"] {
            let value = HeaderValue::from_static(value);
            request.headers_mut().append("x-multi", value);
        }
        let (response, body) = send(&mut client, request).await;
        assert_eq!(response.headers()["x-backend"], "alpha");
        let mut v = json_of(&body);
        let headers = v["headers"].take();
        assert_eq!(headers["host"], "localhost");
        assert_eq!(headers["x-multi"], json!(["a", "b"]));
        let want = json!({"backend": "alpha", "method": "POST", "path": "/any/path",
            "query": "x=1&y=2", "version": "HTTP/1.1", "headers": null, "body_bytes": 5});
        assert_eq!(v, want);

        let mut client = h2(TcpStream::connect(b.addr()).await.unwrap()).await;
        let request = Request::get(format!("{}/h2", b.url()))
            .body(full(""))
            .unwrap();
        let (response, body) = read(client.send_request(request).await.unwrap()).await;
        assert_eq!(response.headers()["x-backend"], "alpha");
        assert_eq!(json_of(&body)["version"], "HTTP/2.0");
        assert_eq!(b.requests(), 2);

        let (_, body) = get(b.addr(), "/health").await;
        assert_eq!(json_of(&body), json!({"status": "up", "backend": "alpha"}));
    }

    #[tokio::test]
    async fn streams_hash_echo_and_generated_bytes() {
        let b = backend("beta").await;
        let upload: Vec<u8> = (0..5u32 << 20).map(|i| (i * 7 % 256) as u8).collect();
        let mut client = h1(TcpStream::connect(b.addr()).await.unwrap()).await;
        let (_, body) = send(&mut client, req("PUT", "/sha256", upload.clone())).await;
        let v = json_of(&body);
        assert_eq!(v["sha256"], hex::encode(Sha256::digest(&upload)));
        assert_eq!(v["bytes"], 5 << 20);

        let mut echo = req("POST", "/echo", upload.clone());
        echo.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("x/y"));
        let (response, body) = send(&mut client, echo).await;
        assert_eq!(response.headers()[header::CONTENT_TYPE], "x/y");
        assert!(body == upload, "echo returns the body unchanged");

        let (response, body) = send(&mut client, req("GET", "/bytes/1048576", "")).await;
        assert_eq!(response.headers()[header::CONTENT_LENGTH], "1048576");
        assert_eq!(body.len(), 1 << 20);
        assert!(body.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));

        let (response, _) = get(b.addr(), "/status/503").await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()["x-backend"], "beta");
        let (response, _) = get(b.addr(), "/bytes/99999999999999").await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn redirects_to_itself_sleeps_and_drips() {
        let b = backend("gamma").await;
        let (response, _) = get(b.addr(), "/redirect?to=/next%3Fa%3D1").await;
        assert_eq!(response.status(), StatusCode::FOUND);
        let expected = format!("http://127.0.0.1:{}/next?a=1", b.addr().port());
        let headers = response.headers();
        assert_eq!(headers[header::LOCATION], expected.as_str());
        assert_eq!(headers[header::CONTENT_LOCATION], expected.as_str());

        let started = tokio::time::Instant::now();
        let (response, _) = get(b.addr(), "/sleep/120").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(started.elapsed() >= Duration::from_millis(120));

        let started = tokio::time::Instant::now();
        let (_, body) = get(b.addr(), "/drip/3/40").await;
        assert_eq!(&body[..], b"...");
        assert!(started.elapsed() >= Duration::from_millis(80));
    }

    #[tokio::test]
    async fn websocket_greets_then_echoes() {
        let b = backend("delta").await;
        let (mut ws, response) = ws_connect(b.addr()).await;
        assert_eq!(response.headers()["x-backend"], "delta");
        let hello = ws.next().await.unwrap().unwrap();
        assert_eq!(hello, Message::text("hello from delta"));
        ws.send(Message::text("ping me")).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("ping me"));
        ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::binary(vec![1u8, 2, 3])
        );
        ws.send(Message::Ping(Bytes::new())).await.unwrap();
        let pong = ws.next().await.unwrap().unwrap();
        assert!(matches!(pong, Message::Pong(_)), "{pong:?}");
        ws.close(None).await.unwrap();
        while let Some(Ok(_)) = ws.next().await {}

        let (response, _) = get(b.addr(), "/ws").await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn shutdown_refuses_new_connections_and_cuts_open_ones() {
        let b = backend("epsilon").await;
        let addr = b.addr();
        let mut keep_alive = h1(TcpStream::connect(addr).await.unwrap()).await;
        let (response, _) = send(&mut keep_alive, req("GET", "/", "")).await;
        assert_eq!(response.status(), StatusCode::OK);
        let (mut ws, _) = ws_connect(addr).await;
        assert!(ws.next().await.unwrap().is_ok());
        // Mid-response on a third connection: a slow drip.
        let mut dripping = h1(TcpStream::connect(addr).await.unwrap()).await;
        let drip = dripping
            .send_request(req("GET", "/drip/1000/10", ""))
            .await
            .unwrap();

        b.shutdown().await;
        assert!(TcpStream::connect(addr).await.is_err());
        let again = keep_alive.send_request(req("GET", "/", "")).await;
        assert!(again.is_err(), "the kept-alive connection is closed");
        let cut = drip.into_body().collect().await;
        assert!(cut.is_err(), "the response in flight is cut");
        assert!(matches!(ws.next().await, None | Some(Err(_))));
    }

    #[tokio::test]
    async fn tls_variant_serves_h2_and_http1_with_a_private_ca() {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, ServerName};
        let (ca_pem, server_pem, key_pem) =
            portcullis_testkit::tls::private_ca_and_localhost_cert();
        let b = DemoBackend::spawn_tls(
            "secure",
            "127.0.0.1:0".parse().unwrap(),
            &server_pem,
            &key_pem,
        )
        .await
        .unwrap();
        assert_eq!(b.url(), format!("https://localhost:{}", b.addr().port()));
        let mut roots = rustls::RootCertStore::empty();
        let ca = CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap();
        roots.add(ca).unwrap();
        for (alpn, version) in [("h2", "HTTP/2.0"), ("http/1.1", "HTTP/1.1")] {
            let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
            config.alpn_protocols = vec![alpn.as_bytes().to_vec()];
            let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
            let tcp = TcpStream::connect(b.addr()).await.unwrap();
            let name = ServerName::try_from("localhost").unwrap();
            let tls = connector.connect(name, tcp).await.unwrap();
            assert_eq!(tls.get_ref().1.alpn_protocol(), Some(alpn.as_bytes()));
            let request = Request::get(format!("{}/tls", b.url()))
                .header(header::HOST, "localhost")
                .body(full(""))
                .unwrap();
            let response = if alpn == "h2" {
                h2(tls).await.send_request(request).await.unwrap()
            } else {
                h1(tls).await.send_request(request).await.unwrap()
            };
            let (response, body) = read(response).await;
            assert_eq!(response.headers()["x-backend"], "secure");
            assert_eq!(json_of(&body)["version"], version);
        }
    }
}
