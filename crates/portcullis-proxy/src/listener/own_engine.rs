//! Client connections on the own HTTP/1.1 engine (`[gateway] engine =
//! "portcullis"`): HTTP/1.1, plain or TLS, goes to `crate::engine`; HTTP/2
//! stays on hyper's server, with tries sent by the engine's connector.

use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, Response};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::{Accepting, Held};
use crate::body::ProxyBody;
use crate::engine::{self, EngineHost, EngineIo, EngineSetup, OwnConnector};
use crate::http::ClientContext;
use crate::hyper_edge::client_request;
use crate::pipeline;
use crate::preface::Detected;
use crate::read_ahead::ReadAhead;
use crate::routing::Gateway;

/// A plain connection's slot: its idle time may be spent in the parking lot,
/// which keeps the slot.
impl EngineHost for Held {
    fn setup(&self) -> &EngineSetup {
        &self.engine_setup
    }

    fn serve_h2<I: EngineIo>(
        &self,
        io: I,
        read: Bytes,
        peer: IpAddr,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(serve_h2(io, read, peer, self))
    }

    fn park(self, stream: TcpStream, peer: IpAddr, deadline: Instant) {
        let accepting = self.0.clone();
        if let Some(lot) = &accepting.lot {
            lot.park(stream, peer, deadline, self);
        }
    }
}

/// The listener's state, for a TLS connection whose slot its outer task
/// holds: TLS connections wait in their tasks (their streams decrypt ahead,
/// so a socket's readiness says nothing about their next request).
impl EngineHost for &Accepting {
    fn setup(&self) -> &EngineSetup {
        &self.engine_setup
    }

    fn serve_h2<I: EngineIo>(
        &self,
        io: I,
        read: Bytes,
        peer: IpAddr,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(serve_h2(io, read, peer, self))
    }
}

/// A TLS connection, for its whole life (its task's future): the
/// handshake, then HTTP/1.1 on the engine or HTTP/2 on hyper. Boxed: a TLS
/// stream's state is large, and the plain connections' tasks need none of it.
pub(super) async fn serve_tls(stream: TcpStream, held: Held, peer: IpAddr) {
    Box::pin(serve_tls_inner(stream, &held, peer)).await
}

async fn serve_tls_inner(stream: TcpStream, accepting: &Accepting, peer: IpAddr) {
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
        Detected::Http1(read) => {
            let tls = ReadAhead::new(read, tls);
            engine::serve(tls, accepting, peer, engine::Start::Accepted).await
        }
        Detected::Http2(read) => serve_h2(tls, read, peer, accepting).await,
        Detected::Closed => {}
    }
}

/// HTTP/2 stays on hyper's server; its tries go through the engine's
/// connector.
async fn serve_h2<I>(io: I, read: Bytes, peer: IpAddr, accepting: &Accepting)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
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
/// connector. Built in its box: hyper moves each stream's future several
/// times on its way into the stream's task (callgrind: about 2,700
/// instructions of `memcpy` per request with the pipeline's multi-KiB
/// future inline), and a box moves as a pointer.
fn handle_h2(
    gateway: Arc<Gateway>,
    client: Arc<ClientContext>,
    request: Request<Incoming>,
) -> Pin<Box<impl Future<Output = Result<Response<ProxyBody>, Infallible>> + Send>> {
    engine::build_boxed(move || async move {
        let request = client_request(request);
        Ok(pipeline::serve(&gateway, &client, request, &OwnConnector::PLAIN).await)
    })
}
