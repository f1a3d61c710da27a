//! hyper's HTTP/1 server and client, driven over an in-memory duplex on a
//! current-thread runtime (one per thread, built once), as the reference the
//! engine's head parsers are compared with: what the engine accepts, hyper
//! must accept too, and read the same way.

use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http::header::{HeaderValue, HOST};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::runtime::Runtime;

use crate::listener::MAX_HEADER_BYTES;

/// Room for a whole head (64 KiB) and what follows it, so writing never
/// waits for the other side, which runs on the same thread.
const DUPLEX_BUF: usize = 256 * 1024;

thread_local! {
    static RUNTIME: Runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime for the hyper reference");
}

/// What hyper's server handed its service.
#[derive(Debug)]
pub(super) struct ServerSaw {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub headers: HeaderMap,
    /// The body's length when hyper knows it exactly (0: no body); `None`
    /// for a body with no known end (chunked).
    pub body_length: Option<u64>,
}

/// Feeds `head` to hyper's HTTP/1 server (configured as the listener
/// configures it) and returns what its service was called with, or why it
/// was not (hyper's answer).
pub(super) fn hyper_server(head: &[u8]) -> Result<ServerSaw, String> {
    RUNTIME.with(|runtime| runtime.block_on(serve(head)))
}

async fn serve(head: &[u8]) -> Result<ServerSaw, String> {
    let (mut client, server) = duplex(DUPLEX_BUF);
    client.write_all(head).await.map_err(|e| e.to_string())?;
    // End of input after the head: hyper either has a complete head in its
    // buffer or fails with an incomplete message; it never waits.
    client.shutdown().await.map_err(|e| e.to_string())?;
    let saw: Arc<Mutex<Option<ServerSaw>>> = Arc::default();
    let recorder = Arc::clone(&saw);
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let hint = request.body().size_hint();
        let (parts, _body) = request.into_parts();
        *recorder.lock().unwrap_or_else(PoisonError::into_inner) = Some(ServerSaw {
            method: parts.method,
            uri: parts.uri,
            version: parts.version,
            headers: parts.headers,
            body_length: hint.upper().filter(|&upper| upper == hint.lower()),
        });
        // Not 2xx: a CONNECT is not turned into a tunnel.
        let mut response = Response::new(Empty::<Bytes>::new());
        *response.status_mut() = StatusCode::NOT_FOUND;
        async { Ok::<_, Infallible>(response) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .max_buf_size(MAX_HEADER_BYTES)
        .max_header_size(MAX_HEADER_BYTES);
    let outcome = builder
        .serve_connection(TokioIo::new(server), service)
        .await;
    let seen = saw.lock().unwrap_or_else(PoisonError::into_inner).take();
    match seen {
        Some(seen) => Ok(seen),
        None => {
            let mut answer = Vec::new();
            let _ = client.read_to_end(&mut answer).await;
            Err(format!(
                "{outcome:?}, answered {:?}",
                String::from_utf8_lossy(&answer)
            ))
        }
    }
}

/// How hyper's client framed a response body.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ClientBody {
    /// A known length (0: no body).
    Exact(u64),
    /// No known end: what reading it to the end of input gave.
    Open(Result<Bytes, String>),
}

/// What hyper's client made of a response.
#[derive(Debug)]
pub(super) struct ClientSaw {
    /// The 1xx responses before the final one (101 excepted: that one is
    /// final), as status and headers.
    pub informational: Vec<(StatusCode, HeaderMap)>,
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: ClientBody,
}

/// Sends a `method` request with hyper's HTTP/1 client and answers it with
/// `response` followed by the end of input.
pub(super) fn hyper_client(method: &Method, response: &[u8]) -> Result<ClientSaw, String> {
    RUNTIME.with(|runtime| runtime.block_on(exchange(method, response)))
}

async fn exchange(method: &Method, response: &[u8]) -> Result<ClientSaw, String> {
    let (io, backend) = duplex(DUPLEX_BUF);
    let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
        .handshake::<_, Empty<Bytes>>(TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    let informational: Arc<Mutex<Vec<(StatusCode, HeaderMap)>>> = Arc::default();
    let mut request = Request::new(Empty::<Bytes>::new());
    *request.method_mut() = method.clone();
    *request.uri_mut() = Uri::from_static("/");
    request
        .headers_mut()
        .insert(HOST, HeaderValue::from_static("backend.test"));
    let recorder = Arc::clone(&informational);
    hyper::ext::on_informational(&mut request, move |res| {
        recorder
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((res.status(), res.headers().clone()));
    });
    let client = async move {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        drop(sender);
        let (parts, body) = response.into_parts();
        let hint = body.size_hint();
        let body = match hint.upper().filter(|&upper| upper == hint.lower()) {
            Some(length) => ClientBody::Exact(length),
            None => ClientBody::Open(
                body.collect()
                    .await
                    .map(|collected| collected.to_bytes())
                    .map_err(|e| e.to_string()),
            ),
        };
        Ok::<_, String>((parts, body))
    };
    let (outcome, _, _) = tokio::join!(client, connection, answer(backend, response));
    let (parts, body) = outcome?;
    let informational =
        std::mem::take(&mut *informational.lock().unwrap_or_else(PoisonError::into_inner));
    Ok(ClientSaw {
        informational,
        status: parts.status,
        version: parts.version,
        headers: parts.headers,
        body,
    })
}

/// The backend: reads the request head, then sends `response` and closes.
/// Answering before the request was sent would be an unsolicited response,
/// which hyper rightly refuses.
async fn answer(mut backend: DuplexStream, response: &[u8]) {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match backend.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    if backend.write_all(response).await.is_ok() {
        let _ = backend.shutdown().await;
    }
}
