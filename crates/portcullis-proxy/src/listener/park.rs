//! Plain-TCP HTTP/1.1 client connections that give their buffers back while
//! they are idle.
//!
//! hyper's HTTP/1 server keeps an 8 KiB read buffer and an 8 KiB write buffer
//! for the whole life of a connection, so 10,000 idle keep-alive clients cost
//! about 23 KB each (nginx: 0.7 KB, because it frees its buffers between
//! requests). Here a connection that has had no request for `PARK_AFTER` is
//! "parked": hyper is asked to end the connection without shutting the socket
//! (keep-alive was already promised in the responses it sent), the socket is
//! taken back with any bytes hyper had read ahead, and hyper's state is
//! dropped. The parked connection is a socket and a small task waiting for
//! readability; the next request gets a fresh hyper connection.
//!
//! A connection under steady load never parks: a request has started in every
//! `PARK_AFTER` window. Upgrades (WebSocket) cannot go through hyper's upgrade
//! machinery when the socket is taken back this way, so the forwarder leaves
//! the backend side of a tunnel with the client context and this loop runs
//! the tunnel once hyper has written the `101`.

use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Context;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::body::ProxyBody;
use crate::h1gate::{GateStatus, GatedIo};
use crate::http::ClientContext;
use crate::hyper_edge::{client_request, upgrade, ServiceClient};
use crate::pipeline;
use crate::read_ahead::ReadAhead;
use crate::routing::Gateway;

/// Idle time after which a connection's hyper state is dropped. Between one
/// and two of these pass before an idle connection is parked.
pub const PARK_AFTER: Duration = Duration::from_millis(10);

pub(super) struct Parking {
    pub gateway: Arc<Gateway>,
    pub client: Arc<ClientContext>,
    pub builder: Arc<http1::Builder>,
    /// Longest wait for a parked connection's next request.
    pub idle_limit: Duration,
    pub shutdown: watch::Receiver<bool>,
    /// Bytes already read from the socket (while telling HTTP/1.1 from
    /// HTTP/2), to be read first.
    pub read_ahead: Bytes,
}

/// Requests started and in flight on one hyper connection. Shared with the
/// service, which runs inside the connection's own poll, so relaxed ordering
/// is enough.
#[derive(Default)]
struct SessionRequests {
    started: AtomicU64,
    finished: AtomicU64,
    /// Whether the latest request came with a body. Its response can be
    /// complete before hyper has read the whole body; ending the connection
    /// then would leave body bytes to be read as the next request. Once a
    /// later request has started, the body before it was consumed.
    latest_had_body: AtomicBool,
}

type ServiceFuture = Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, Infallible>> + Send>>;

/// Serves `stream` (HTTP/1.1, already known not to be HTTP/2) until the client
/// closes it, an error ends it, it idles past `idle_limit`, or shutdown.
pub(super) async fn serve(stream: TcpStream, mut setup: Parking) {
    // Every byte from the client passes the strict framing gate before hyper
    // sees it (PRODUCT.md §9); the gate's state lives as long as the socket.
    let mut stream = GatedIo::new(stream);
    let gate = stream.status();
    setup.client.attach_gate(gate.clone());
    let mut read_ahead = std::mem::take(&mut setup.read_ahead);
    // Bytes read while telling HTTP/1.1 from HTTP/2 went past the gate.
    if let Err(refusal) = stream.gate_mut().feed_counted(&read_ahead) {
        let _ = stream
            .write_all(&GateStatus::response(refusal.violation))
            .await;
        let _ = stream.shutdown().await;
        return;
    }
    // Set when a parked session handed back the start of a request: the next
    // session must see a whole request before it may park, or a client
    // sending its head slowly would get a fresh header timeout every time.
    let mut holds_partial_request = !read_ahead.is_empty();
    loop {
        if read_ahead.is_empty() {
            tokio::select! {
                ready = stream.get_ref().readable() => if ready.is_err() { return },
                _ = tokio::time::sleep(setup.idle_limit) => return,
                _ = setup.shutdown.wait_for(|stop| *stop) => return,
            }
        }
        let requests = Arc::new(SessionRequests::default());
        let service = counting_service(&setup, &requests);
        let io = TokioIo::new(ReadAhead::new(read_ahead, stream));
        // Boxed so that a parked connection's task does not keep room for it.
        let mut connection = Box::new(setup.builder.serve_connection(io, service));
        let mut window = ParkWindow::new(holds_partial_request);
        let ended = poll_fn(|cx| {
            if window.session_should_end(cx, &requests, &setup.shutdown) {
                Pin::new(&mut *connection).graceful_shutdown();
            }
            connection.poll_without_shutdown(cx)
        })
        .await;
        if let Err(err) = ended {
            tracing::debug!(error = %err, peer = %setup.client.peer_ip, "client connection ended with an error");
            // A head cut off by the gate looks like an incomplete message to
            // hyper; the refusal below still has to be written.
            if gate.violation().is_none() {
                return;
            }
        }
        let parts = (*connection).into_parts();
        let (unread, socket) = parts.io.into_inner().into_parts();
        stream = socket;
        read_ahead = join(parts.read_buf, unread);
        if let Some(violation) = gate.violation() {
            // hyper saw end-of-file where the bad bytes began and answered
            // everything before them; the refusal comes last, then the close.
            if let Some(refusal) = gate.take_refusal(violation) {
                let _ = stream.write_all(&refusal).await;
            }
            let _ = stream.shutdown().await;
            return;
        }
        if let Some((backend, idle)) = setup.client.take_tunnel() {
            let client = ReadAhead::new(read_ahead, stream);
            // Boxed: room for the tunnel's state would otherwise be part of
            // every parked connection's task.
            Box::pin(upgrade::tunnel(client, backend, idle)).await;
            return;
        }
        if !window.parking || window.stopping {
            // hyper ended the exchange itself (`Connection: close`, HTTP/1.0,
            // the client's end of stream) or shutdown began: close as hyper would.
            let _ = stream.shutdown().await;
            return;
        }
        stream.gate_mut().release_idle_memory();
        setup.gateway.count_parked_connection();
        holds_partial_request = !read_ahead.is_empty();
    }
}

/// The hyper service of one session: the request handler, counting the
/// requests it starts and finishes into `requests`.
fn counting_service(
    setup: &Parking,
    requests: &Arc<SessionRequests>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<ProxyBody>,
    Error = Infallible,
    Future = ServiceFuture,
> {
    let (gateway, client, requests) = (
        setup.gateway.clone(),
        setup.client.clone(),
        requests.clone(),
    );
    service_fn(move |request: Request<Incoming>| -> ServiceFuture {
        let has_body = !hyper::body::Body::is_end_stream(request.body());
        requests.latest_had_body.store(has_body, Ordering::Relaxed);
        requests.started.fetch_add(1, Ordering::Relaxed);
        let (gateway, client, requests) = (gateway.clone(), client.clone(), requests.clone());
        // The pipeline's future is made inside the boxed one, not wrapped in
        // `hyper_edge::handle`'s: each future moved into another is copied
        // whole, and these are kilobytes, once per request.
        Box::pin(async move {
            let request = client_request(request);
            let response = pipeline::serve(&gateway, &client, request, &ServiceClient).await;
            requests.finished.fetch_add(1, Ordering::Relaxed);
            Ok(response)
        })
    })
}

/// Looks at a session once per `PARK_AFTER` window and decides when it ends:
/// at shutdown, or after a whole window without a new request.
struct ParkWindow {
    tick: tokio::time::Interval,
    /// Requests started as of the previous tick.
    seen: u64,
    /// The session ends so that the connection parks.
    parking: bool,
    /// The session ends because the member is shutting down.
    stopping: bool,
    holds_partial_request: bool,
}

impl ParkWindow {
    fn new(holds_partial_request: bool) -> ParkWindow {
        let mut tick =
            tokio::time::interval_at(tokio::time::Instant::now() + PARK_AFTER, PARK_AFTER);
        // Missed ticks must not fire back to back: two ticks with no time
        // between them would see no new request and park a busy connection.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ParkWindow {
            tick,
            seen: 0,
            parking: false,
            stopping: false,
            holds_partial_request,
        }
    }

    /// True once, when the session should be ended gracefully now.
    fn session_should_end(
        &mut self,
        cx: &mut Context<'_>,
        requests: &SessionRequests,
        shutdown: &watch::Receiver<bool>,
    ) -> bool {
        while !self.parking && !self.stopping && self.tick.poll_tick(cx).is_ready() {
            if *shutdown.borrow() {
                self.stopping = true;
                return true;
            }
            let started = requests.started.load(Ordering::Relaxed);
            let finished = requests.finished.load(Ordering::Relaxed);
            // A response head has been written when its service future
            // finished, so ending keep-alive now adds no `Connection:
            // close` to anything.
            let quiet = started == self.seen
                && started == finished
                && !requests.latest_had_body.load(Ordering::Relaxed)
                && !(self.holds_partial_request && started == 0);
            self.seen = started;
            if quiet {
                self.parking = true;
                return true;
            }
        }
        false
    }
}

/// The bytes read ahead of hyper, in a buffer of their own: hyper's read
/// buffer comes back as a view that keeps its whole 8 KiB allocation alive,
/// even when empty, and a parked connection must not hold it.
fn join(first: Bytes, second: Bytes) -> Bytes {
    if first.is_empty() && second.is_empty() {
        return Bytes::new();
    }
    let mut joined = BytesMut::with_capacity(first.len() + second.len());
    joined.extend_from_slice(&first);
    joined.extend_from_slice(&second);
    joined.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn read_ahead_bytes_come_first_then_the_stream() {
        let (mut near, far) = tokio::io::duplex(64);
        near.write_all(b" world").await.unwrap();
        drop(near);
        let mut stream = ReadAhead::new(Bytes::from_static(b"hello"), far);
        let mut all = String::new();
        stream.read_to_string(&mut all).await.unwrap();
        assert_eq!(all, "hello world");
    }

    #[test]
    fn join_keeps_order_and_lets_go_of_the_buffers_it_was_given() {
        assert_eq!(
            join(Bytes::from_static(b"ab"), Bytes::from_static(b"cd")),
            "abcd"
        );
        let mut big = BytesMut::with_capacity(8192);
        big.extend_from_slice(b"xy");
        let big = big.freeze();
        let kept = join(big.clone(), Bytes::new());
        assert_eq!(kept, "xy");
        assert_ne!(kept.as_ptr(), big.as_ptr());
        let empty_view = big.slice(2..);
        assert!(join(empty_view, Bytes::new()).is_empty());
    }
}
