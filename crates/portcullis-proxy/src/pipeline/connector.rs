//! The pipeline's two edges to an HTTP engine: the connection a try is sent
//! on, and the client's side of an accepted upgrade. hyper's implementations
//! are in `crate::hyper_edge`.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, HOST};
use http::{request, Request, Response, Uri, Version};
use http_body::Body;

use crate::body::ProxyBody;
use crate::error::BoxError;
use crate::http::headers::ForwardedFields;
use crate::http::{ClientContext, RawResponseHead};
use crate::routing::ServiceRuntime;

/// One try as a connector sends it: the head every try of the request shares,
/// borrowed (no copy of the header map per try), and what is this try's own.
pub struct TryRequest<'a> {
    /// The client's method and fields, edited for backends. Its uri is the
    /// client's: the try's is `uri`.
    pub head: &'a request::Parts,
    /// The backend's url for this try.
    pub uri: Uri,
    pub version: Version,
    /// What becomes of the head's Host on this try.
    pub host: TryHost<'a>,
    /// X-Real-IP and X-Forwarded-*, which go after the client's fields.
    pub forwarded: ForwardedFields<'a>,
    pub body: ProxyBody,
}

/// The Host a try sends. The prepared head keeps the client's Host (the
/// `preserve_host` one, when that is set): replacing it in the map for each
/// try would cost a removal and an insert per request.
#[derive(Clone, Copy)]
pub enum TryHost<'a> {
    /// The head's own (`preserve_host`).
    Client,
    /// The backend's authority, in place of the head's.
    Backend(&'a HeaderValue),
    /// None: an HTTP/2 backend gets the authority in the uri.
    Omit,
}

impl TryHost<'_> {
    /// Whether the head's own Host field is sent.
    pub fn keeps_client(&self) -> bool {
        matches!(self, TryHost::Client)
    }
}

impl TryRequest<'_> {
    /// The try as one owned request with every field in its map, for
    /// engines that take one (hyper's client).
    pub fn into_request(self) -> Request<ProxyBody> {
        let mut headers = self.head.headers.clone();
        headers.reserve(9);
        match self.host {
            TryHost::Client => {}
            TryHost::Backend(host) => {
                headers.insert(HOST, host.clone());
            }
            TryHost::Omit => {
                headers.remove(HOST);
            }
        }
        self.forwarded.insert_into(&mut headers);
        let mut request = Request::new(self.body);
        *request.method_mut() = self.head.method.clone();
        *request.uri_mut() = self.uri;
        *request.version_mut() = self.version;
        *request.headers_mut() = headers;
        request
    }
}

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
        request: TryRequest<'_>,
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

    /// The response head kept raw, when the connector keeps it so: the
    /// response's map is then empty, and the pipeline edits the raw head.
    /// Boxed, as it travels in the try's futures.
    fn take_raw_head(&self, _body: &mut Self::ResponseBody) -> Option<Box<RawResponseHead>> {
        None
    }
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
