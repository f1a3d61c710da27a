//! The pipeline's two edges to an HTTP engine: the connection a try is sent
//! on, and the client's side of an accepted upgrade. hyper's implementations
//! are in `crate::hyper_edge`.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, HOST};
use http::uri::{self, PathAndQuery, Scheme};
use http::{Request, Response, Uri, Version};
use http_body::Body;

use crate::body::ProxyBody;
use crate::error::BoxError;
use crate::http::headers::ForwardedFields;
use crate::http::{ClientContext, ClientHead, RawResponseHead};
use crate::routing::{Backend, ServiceRuntime};

/// One try as a connector sends it: the head every try of the request shares,
/// borrowed (no copy of the header map per try), and what is this try's own.
pub struct TryRequest<'a> {
    /// The client's method and fields, edited for backends. Its uri is the
    /// client's: the try's is `uri`.
    pub head: &'a ClientHead,
    /// When the try started (the request's arrival for the first): a clock
    /// read a connector may use instead of its own.
    pub sent_at: tokio::time::Instant,
    /// Where this try goes.
    pub target: TryTarget<'a>,
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

/// Where a try goes: the backend, and the client's path below the service
/// and query. The own engine writes these pieces into its request line; a
/// `Uri` (an allocation and a parse per try) is built only for hyper's
/// client.
#[derive(Clone, Copy)]
pub struct TryTarget<'a> {
    pub backend: &'a Backend,
    /// The client's path after the service's prefix ("" for none).
    pub rest: &'a str,
    pub query: Option<&'a str>,
}

impl TryTarget<'_> {
    /// The backend's base path, the rest of the client's path, its query:
    /// "/" when both paths are empty.
    pub fn write_path_and_query(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(self.backend.base_path.as_bytes());
        out.extend_from_slice(self.rest.as_bytes());
        if out.len() == start {
            out.push(b'/');
        }
        if let Some(query) = self.query {
            out.push(b'?');
            out.extend_from_slice(query.as_bytes());
        }
    }

    /// The target as an absolute `Uri`. Every piece is valid on its own (the
    /// client's path and query come from its parsed target, the base path
    /// was checked when the backend was built), so the joined one is too;
    /// should that ever fail, the uri has no authority and hyper's client
    /// refuses it, failing the try rather than sending elsewhere.
    pub fn uri(&self) -> Uri {
        let mut path_and_query = Vec::with_capacity(
            self.backend.base_path.len() + self.rest.len() + self.query.map_or(1, |q| q.len() + 2),
        );
        self.write_path_and_query(&mut path_and_query);
        let mut parts = uri::Parts::default();
        parts.scheme = Some(self.backend.scheme.clone());
        parts.authority = Some(self.backend.authority.clone());
        parts.path_and_query = PathAndQuery::from_maybe_shared(Bytes::from(path_and_query)).ok();
        Uri::from_parts(parts).unwrap_or_default()
    }

    /// Whether the backend is reached over plain HTTP.
    pub fn is_plain_http(&self) -> bool {
        self.backend.scheme == Scheme::HTTP
    }
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
        let mut headers = self.head.headers.to_map(9);
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
        *request.uri_mut() = self.target.uri();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(url: &str) -> Backend {
        let url = url::Url::parse(url).unwrap();
        Backend::new("t", "s", &url, false, &crate::CookieKey::random()).unwrap()
    }

    fn line(target: TryTarget<'_>) -> String {
        let mut out = Vec::new();
        target.write_path_and_query(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_target_joins_base_rest_and_query_as_written_and_as_a_uri() {
        let base = backend("http://127.0.0.1:9/base/");
        let full = TryTarget {
            backend: &base,
            rest: "/x/y",
            query: Some("a=1"),
        };
        assert_eq!(line(full), "/base/x/y?a=1");
        assert_eq!(full.uri().to_string(), "http://127.0.0.1:9/base/x/y?a=1");
        let bare = TryTarget {
            backend: &base,
            rest: "",
            query: None,
        };
        assert_eq!(line(bare), "/base");
        assert_eq!(bare.uri().to_string(), "http://127.0.0.1:9/base");
        let root = backend("http://h:1");
        let empty = TryTarget {
            backend: &root,
            rest: "",
            query: Some(""),
        };
        assert_eq!(line(empty), "/?");
        assert_eq!(empty.uri().path(), "/");
        assert!(empty.is_plain_http());
        assert!(!TryTarget {
            backend: &backend("https://h/"),
            ..empty
        }
        .is_plain_http());
    }
}
