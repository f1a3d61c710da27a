//! Client connections on the own HTTP/1.1 engine (`[gateway] engine =
//! "portcullis"`): HTTP/1.1, plain or TLS, goes to `crate::engine`; HTTP/2
//! stays on hyper's server, with tries sent by the engine's connector.

use std::convert::Infallible;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::preface::{detect_tcp, Detected};
use super::Connections;
use crate::body::ProxyBody;
use crate::engine::{self, EngineIo, EngineSetup, OwnConnector};
use crate::http::ClientContext;
use crate::hyper_edge::client_request;
use crate::pipeline;
use crate::read_ahead::ReadAhead;
use crate::routing::Gateway;

pub(super) async fn serve_client(
    mut stream: TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    gateway: Arc<Gateway>,
    client: ClientContext,
    connections: &Connections,
    shutdown: watch::Receiver<bool>,
) {
    let peer = client.peer_ip;
    let client = Arc::new(client);
    let setup = EngineSetup {
        gateway,
        client,
        header_timeout: connections.header_read_timeout(),
        shutdown,
    };
    match tls {
        None => {
            let deadline = tokio::time::Instant::now() + connections.header_read_timeout();
            let detected = detect_tcp(&mut stream, deadline).await;
            dispatch(stream, detected, setup, connections, peer).await;
        }
        Some(acceptor) => {
            // Boxed: a handshake's state is large, and as part of this
            // future it would be part of every plain connection too.
            let handshake = Box::pin(connections.handshake(stream, &acceptor, peer));
            let Some((tls, detected)) = handshake.await else {
                return;
            };
            Box::pin(dispatch(tls, detected, setup, connections, peer)).await;
        }
    }
}

async fn dispatch<I: EngineIo>(
    io: I,
    detected: Detected,
    setup: EngineSetup,
    connections: &Connections,
    peer: std::net::IpAddr,
) {
    match detected {
        Detected::Http1(read_ahead) => engine::serve(io, read_ahead, setup).await,
        Detected::Http2(read) => {
            let EngineSetup {
                gateway,
                client,
                shutdown,
                ..
            } = setup;
            let service = move |request: Request<Incoming>| {
                handle_h2(gateway.clone(), client.clone(), request)
            };
            let io = ReadAhead::new(read, io);
            Box::pin(connections.serve_h2(io, peer, service, shutdown)).await
        }
        Detected::Closed => {}
    }
}

/// An HTTP/2 request from hyper's server, with tries on the engine's
/// connector.
async fn handle_h2(
    gateway: Arc<Gateway>,
    client: Arc<ClientContext>,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let request = client_request(request);
    Ok(pipeline::serve(&gateway, &client, request, &OwnConnector).await)
}
