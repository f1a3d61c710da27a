//! hyper as the pipeline's engine: a hyper request goes into the request
//! pipeline (`crate::pipeline`), tries go out on the service's hyper-util
//! client, and upgrades use hyper's upgrade machinery. It sits above both
//! the pipeline and the HTTP rules (`crate::http`), which know nothing of it.

pub(crate) mod upgrade;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::client::legacy::Error as ClientError;

use crate::body::ProxyBody;
use crate::http::strict::{self, HostFields};
use crate::http::{ClientContext, ClientHead};
use crate::pipeline::{
    self, BackendConnector, ClientRequest, ClientUpgrade, ConnectionChoice, TryRequest,
};
use crate::routing::{Gateway, ServiceRuntime};

/// Serves one request. Never fails: every error becomes a JSON response.
pub async fn handle(
    gateway: Arc<Gateway>,
    client: Arc<ClientContext>,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, std::convert::Infallible> {
    let request = client_request(request);
    Ok(pipeline::serve(&gateway, &client, request, &ServiceClient).await)
}

/// A hyper request as the pipeline takes it, with the client's side of a
/// WebSocket upgrade when it asks for one.
pub fn client_request(mut request: Request<Incoming>) -> ClientRequest<Incoming, OnUpgrade> {
    let is_upgrade =
        strict::is_websocket_upgrade(request.method(), request.version(), request.headers());
    let upgrade = is_upgrade.then(|| hyper::upgrade::on(&mut request));
    let (head, body) = request.into_parts();
    ClientRequest {
        hosts: HostFields::of(&head.headers),
        head: Box::new(ClientHead::from_parts(head)),
        body,
        upgrade,
        may_upgrade: true,
    }
}

/// Sends tries on the service's own hyper-util client (its connection pool).
pub struct ServiceClient;

impl BackendConnector for ServiceClient {
    type ResponseBody = Incoming;
    type Error = ClientError;

    /// `connection` is not followed: hyper-util's pool offers no way to
    /// skip its idle connections for one request, so a resend may take a
    /// pooled connection again (hence two resends, `pipeline::attempt`).
    fn send(
        &self,
        service: &ServiceRuntime,
        request: TryRequest<'_>,
        _connection: ConnectionChoice,
    ) -> impl Future<Output = Result<Response<Incoming>, ClientError>> + Send {
        service.client.request(request.into_request())
    }

    fn is_connect(&self, error: &ClientError) -> bool {
        error.is_connect()
    }

    fn closed_before_answer(&self, error: &ClientError) -> bool {
        use std::io::ErrorKind;
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            if let Some(hyper_err) = cause.downcast_ref::<hyper::Error>() {
                if hyper_err.is_incomplete_message() {
                    return true;
                }
            }
            // A close with our request unread in the backend's buffer is a reset.
            if let Some(io) = cause.downcast_ref::<std::io::Error>() {
                return matches!(
                    io.kind(),
                    ErrorKind::ConnectionReset
                        | ErrorKind::BrokenPipe
                        | ErrorKind::ConnectionAborted
                );
            }
            source = cause.source();
        }
        false
    }

    fn client_body_failure(&self, error: &ClientError) -> Option<&'static str> {
        std::error::Error::source(error).and_then(crate::body::body_failure_reason)
    }
}

impl ClientUpgrade for OnUpgrade {
    fn join<R>(self, backend_response: &mut Response<R>, idle: Duration, client: &ClientContext) {
        let backend_upgrade = hyper::upgrade::on(backend_response);
        // Connections that run tunnels themselves take the backend side here.
        if let Some((backend_upgrade, idle)) = client.hand_over_tunnel((backend_upgrade, idle)) {
            upgrade::spawn_tunnel(self, backend_upgrade, idle);
        }
    }
}
