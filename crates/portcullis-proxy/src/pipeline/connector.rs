//! The pipeline's two edges to an HTTP engine: the connection a try is sent
//! on, and the client's side of an accepted upgrade. hyper's implementations
//! are in `crate::hyper_edge`.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;

use crate::body::ProxyBody;
use crate::error::BoxError;
use crate::http::ClientContext;
use crate::routing::ServiceRuntime;

/// Which connection a try may go out on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionChoice {
    /// An idle pooled connection if there is one, else a new one.
    Pooled,
    /// A new connection, never a pooled one: the resend of a GET or HEAD
    /// whose pooled connection turned out closed (PRODUCT.md §9). Other
    /// pooled connections to the backend may be just as dead (it closed
    /// them all after its idle timeout), so only a new one makes a single
    /// resend enough. A connector whose pool cannot be bypassed may treat
    /// it as `Pooled` and must say so.
    New,
}

/// Sends one try to a backend of a service and tells its failures apart.
pub trait BackendConnector {
    type ResponseBody: Body<Data = Bytes, Error: Into<BoxError>> + Send + Sync + 'static;
    type Error: std::error::Error + Send + Sync + 'static;

    /// Sends `request` (its uri names the backend) over one of the service's
    /// connections, as `connection` says, and resolves with the response
    /// head.
    fn send(
        &self,
        service: &ServiceRuntime,
        request: Request<ProxyBody>,
        connection: ConnectionChoice,
    ) -> impl Future<Output = Result<Response<Self::ResponseBody>, Self::Error>> + Send;

    /// Nothing reached the backend: any method may go elsewhere.
    fn is_connect(&self, error: &Self::Error) -> bool;

    /// The backend closed the connection before any byte of an answer: what a
    /// pooled connection closed while idle looks like once a request is on it.
    fn closed_before_answer(&self, error: &Self::Error) -> bool;

    /// Why the client's request body failed the try, when it did (too slow,
    /// or idle too long): the client's fault, not the backend's.
    fn client_body_failure(&self, error: &Self::Error) -> Option<&'static str>;
}

/// The client's side of a WebSocket upgrade, joined to the backend's side
/// once the backend answers 101.
pub trait ClientUpgrade: Send {
    /// Starts the tunnel between this client and the backend that sent
    /// `backend_response`; it ends after `idle` without traffic.
    fn join<R>(self, backend_response: &mut Response<R>, idle: Duration, client: &ClientContext);
}

/// For engines that do not offer upgrades: there is never a value.
impl ClientUpgrade for std::convert::Infallible {
    fn join<R>(self, _: &mut Response<R>, _: Duration, _: &ClientContext) {
        match self {}
    }
}
