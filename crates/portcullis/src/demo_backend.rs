//! A small real backend for `portcullis demo` and the end-to-end tests: HTTP/1.1
//! and h2c, optional TLS, WebSocket echo, and routes that stream, stall, redirect
//! and fail on demand. Every response names the backend in `x-backend`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = BoxBody<Bytes, BoxError>;

const CHUNK: usize = 64 * 1024;

pub struct DemoBackend {
    addr: SocketAddr,
    url: String,
    requests: Arc<AtomicU64>,
    stop: watch::Sender<bool>,
    accept_task: Option<tokio::task::JoinHandle<()>>,
}

struct Shared {
    name: String,
    addr: SocketAddr,
    requests: Arc<AtomicU64>,
    /// The pattern of `/bytes/N`, long enough to slice any 64 KiB chunk from.
    pattern: Bytes,
}

impl DemoBackend {
    /// Binds `addr` and serves plain HTTP (HTTP/1.1 or h2c) until shut down or dropped.
    pub async fn spawn(name: &str, addr: SocketAddr) -> std::io::Result<DemoBackend> {
        Self::start(name, addr, None).await
    }

    /// The same routes over TLS for "localhost" (ALPN h2 and http/1.1).
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
            None => format!("http://{addr}"),
        };
        let requests = Arc::new(AtomicU64::new(0));
        let pattern: Vec<u8> = (0..CHUNK + 251).map(|i| (i % 251) as u8).collect();
        let shared = Arc::new(Shared {
            name: name.to_string(),
            addr,
            requests: requests.clone(),
            pattern: Bytes::from(pattern),
        });
        let (stop, stop_rx) = watch::channel(false);
        let accept_task = tokio::spawn(accept_loop(listener, shared, tls, stop_rx));
        Ok(DemoBackend {
            addr,
            url,
            requests,
            stop,
            accept_task: Some(accept_task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        self.url.clone()
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Stops accepting and closes every open connection now, like a killed process.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.accept_task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for DemoBackend {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => return,
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let tls = tls.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(route(shared, req).await) }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            match tls {
                None => {
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    tokio::select! {
                        _ = conn => {}
                        _ = stopped(&mut stop) => {}
                    }
                }
                Some(acceptor) => {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    tokio::select! {
                        _ = conn => {}
                        _ = stopped(&mut stop) => {}
                    }
                }
            }
        });
    }
}

/// Resolves once the stop flag is set; the watch guard never crosses an await.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed()
}

fn json(shared: &Shared, status: StatusCode, value: serde_json::Value) -> Response<Body> {
    let mut response = Response::new(full(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    name_it(shared, response)
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
            let mut response = Response::new(req.into_body().map_err(BoxError::from).boxed());
            if let Some(ct) = content_type {
                response.headers_mut().insert(header::CONTENT_TYPE, ct);
            }
            name_it(&shared, response)
        }
        ["sha256"] => {
            let mut hasher = Sha256::new();
            let mut total = 0u64;
            let mut body = req.into_body();
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(frame) => {
                        if let Some(data) = frame.data_ref() {
                            hasher.update(data);
                            total += data.len() as u64;
                        }
                    }
                    Err(_) => {
                        return json(
                            &shared,
                            StatusCode::BAD_REQUEST,
                            serde_json::json!({"error": "body failed"}),
                        )
                    }
                }
            }
            json(
                &shared,
                StatusCode::OK,
                serde_json::json!({"sha256": hex::encode(hasher.finalize()), "bytes": total}),
            )
        }
        ["bytes", n] => match n.parse::<u64>() {
            Ok(n) if n <= 10 << 30 => bytes_response(&shared, n),
            _ => json(
                &shared,
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": "bad size"}),
            ),
        },
        ["status", code] => match code
            .parse::<u16>()
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
        {
            Some(status) => json(
                &shared,
                status,
                serde_json::json!({"backend": shared.name, "status": status.as_u16()}),
            ),
            None => json(
                &shared,
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": "bad status"}),
            ),
        },
        ["redirect"] => {
            let to = req
                .uri()
                .query()
                .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("to=")))
                .map(percent_decode)
                .unwrap_or_else(|| "/".to_string());
            let target = format!("http://{}{}", shared.addr, to);
            let mut response = json(
                &shared,
                StatusCode::FOUND,
                serde_json::json!({"location": target}),
            );
            if let Ok(value) = HeaderValue::from_str(&target) {
                response
                    .headers_mut()
                    .insert(header::LOCATION, value.clone());
                response
                    .headers_mut()
                    .insert(header::CONTENT_LOCATION, value);
            }
            response
        }
        ["sleep", ms] => {
            let ms = ms.parse::<u64>().unwrap_or(0).min(600_000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            describe(&shared, req).await
        }
        ["drip", n, ms] => {
            let n = n.parse::<u64>().unwrap_or(0).min(100_000);
            let gap = Duration::from_millis(ms.parse::<u64>().unwrap_or(0).min(60_000));
            let stream = futures_util::stream::unfold(0u64, move |sent| async move {
                if sent >= n {
                    return None;
                }
                if sent > 0 {
                    tokio::time::sleep(gap).await;
                }
                Some((
                    Ok::<_, BoxError>(Frame::data(Bytes::from_static(b"."))),
                    sent + 1,
                ))
            });
            name_it(
                &shared,
                Response::new(BodyExt::boxed(StreamBody::new(stream))),
            )
        }
        ["ws"] => websocket(shared, req),
        ["health"] => json(
            &shared,
            StatusCode::OK,
            serde_json::json!({"status": "up", "backend": shared.name}),
        ),
        _ => describe(&shared, req).await,
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(v) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).to_string()
}

fn bytes_response(shared: &Arc<Shared>, total: u64) -> Response<Body> {
    let pattern = shared.pattern.clone();
    let stream = futures_util::stream::unfold(0u64, move |offset| {
        let pattern = pattern.clone();
        async move {
            if offset >= total {
                return None;
            }
            let len = (total - offset).min(CHUNK as u64) as usize;
            let start = (offset % 251) as usize;
            let chunk = pattern.slice(start..start + len);
            Some((Ok::<_, BoxError>(Frame::data(chunk)), offset + len as u64))
        }
    });
    let mut response = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(total));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    name_it(shared, response)
}

async fn describe(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let mut headers = serde_json::Map::new();
    for name in req.headers().keys() {
        let values: Vec<serde_json::Value> = req
            .headers()
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).to_string().into())
            .collect();
        let value = if values.len() == 1 {
            values.into_iter().next().unwrap_or_default()
        } else {
            serde_json::Value::Array(values)
        };
        headers.insert(name.as_str().to_string(), value);
    }
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let version = format!("{:?}", req.version());
    let body_bytes = match req.into_body().collect().await {
        Ok(body) => body.to_bytes().len(),
        Err(_) => 0,
    };
    json(
        shared,
        StatusCode::OK,
        serde_json::json!({
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

fn websocket(shared: Arc<Shared>, mut req: Request<Incoming>) -> Response<Body> {
    let key = req.headers().get("sec-websocket-key").cloned();
    let is_ws = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let Some(key) = key.filter(|_| is_ws) else {
        return json(
            &shared,
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": "expected a WebSocket upgrade"}),
        );
    };
    let accept = derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(&mut req);
    let name = shared.name.clone();
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            None,
        )
        .await;
        if ws
            .send(Message::text(format!("hello from {name}")))
            .await
            .is_err()
        {
            return;
        }
        while let Some(Ok(message)) = ws.next().await {
            let reply = match message {
                Message::Text(_) | Message::Binary(_) => message,
                Message::Close(_) => break,
                // Pings are answered by tungstenite itself.
                _ => continue,
            };
            if ws.send(reply).await.is_err() {
                break;
            }
        }
    });
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        headers.insert("sec-websocket-accept", accept);
    }
    name_it(&shared, response)
}
