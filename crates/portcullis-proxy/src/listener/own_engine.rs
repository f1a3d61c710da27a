//! Client connections on the own HTTP/1.1 engine (`[gateway] engine =
//! "portcullis"`): HTTP/1.1, plain or TLS, goes to `crate::engine`; HTTP/2
//! stays on hyper's server, with tries sent by the engine's connector.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, Response};
use tokio::net::TcpStream;

use super::preface::{detect_tcp, Detected};
use super::{Accepting, Slot};
use crate::body::ProxyBody;
use crate::engine::{self, EngineIo, OwnConnector};
use crate::http::ClientContext;
use crate::hyper_edge::client_request;
use crate::pipeline;
use crate::read_ahead::ReadAhead;
use crate::routing::Gateway;

/// One connection on the own engine, for its whole life: spawned as the
/// connection's task, so what it holds while the connection idles is all the
/// connection costs. Every state but plain HTTP/1.1 is boxed.
pub(super) async fn serve_client(mut stream: TcpStream, peer: IpAddr, accepting: Arc<Accepting>) {
    let _slot = Slot::held_by(&accepting);
    let setup = &accepting.engine_setup;
    if accepting.tls.is_some() {
        let serving = Box::pin(serve_tls(stream, peer, &accepting));
        return serving.await;
    }
    let deadline = tokio::time::Instant::now() + accepting.connections.header_read_timeout();
    // Matched into the engine's future, not kept beside it: a value still
    // in scope at an await keeps its room in this future.
    let serving = match detect_tcp(&mut stream, deadline).await {
        Detected::Http1(read_ahead) => engine::serve(stream, read_ahead, setup, peer),
        Detected::Http2(read) => {
            let serving = Box::pin(serve_h2(stream, read, peer, &accepting));
            return serving.await;
        }
        Detected::Closed => return,
    };
    serving.await
}

/// TLS: the handshake, then HTTP/1.1 on the engine or HTTP/2 on hyper.
async fn serve_tls(stream: TcpStream, peer: IpAddr, accepting: &Accepting) {
    let Some(acceptor) = &accepting.tls else {
        return;
    };
    // Boxed: a handshake's state is large, and it is over once the
    // connection idles.
    let handshake = Box::pin(accepting.connections.handshake(stream, acceptor, peer));
    let Some((tls, detected)) = handshake.await else {
        return;
    };
    match detected {
        Detected::Http1(read_ahead) => {
            engine::serve(tls, read_ahead, &accepting.engine_setup, peer).await
        }
        Detected::Http2(read) => serve_h2(tls, read, peer, accepting).await,
        Detected::Closed => {}
    }
}

/// HTTP/2 stays on hyper's server; its tries go through the engine's
/// connector.
async fn serve_h2<I: EngineIo>(io: I, read: Bytes, peer: IpAddr, accepting: &Accepting) {
    let gateway = accepting.gateway.clone();
    let client = Arc::new(accepting.engine_setup.client_context(peer));
    let service =
        move |request: Request<Incoming>| handle_h2(gateway.clone(), client.clone(), request);
    let io = ReadAhead::new(read, io);
    let shutdown = accepting.shutdown.clone();
    accepting
        .connections
        .serve_h2(io, peer, service, shutdown)
        .await
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
