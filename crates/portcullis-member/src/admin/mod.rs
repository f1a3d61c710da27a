//! The admin listener: the JSON API under `/api/v1`, `/metrics` and the
//! dashboard. Every error leaves here as JSON through [`ApiError`].

mod api;
mod keys;
mod metrics;
mod tls;
pub(crate) mod views;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use portcullis_cluster::{ClusterStore, MemberRecord, StoreError, WriteError};
use portcullis_config::Role;
use portcullis_proxy::Gateway;
use portcullis_secrets::AliasSealer;
use serde_json::json;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Everything the admin handlers read or change.
pub struct AdminContext {
    pub gateway: Arc<Gateway>,
    pub store: ClusterStore,
    pub cluster_name: String,
    pub role: Role,
    /// Seals alias values written through the API; none without `[secrets]`.
    pub sealer: Option<AliasSealer>,
    /// Hashes the API keys created through the API.
    pub api_key_hasher: portcullis_secrets::ApiKeyHasher,
    /// The current admin token (rotations replace it).
    pub token: crate::secrets::AdminToken,
    pub store_connected: Arc<AtomicBool>,
    /// The member records as of the last heartbeat, for metrics and for
    /// answering while the store is away.
    pub members: Arc<ArcSwap<Vec<MemberRecord>>>,
    /// Rate-limit counts the peers posted, read by the exchange task.
    pub rate_reports: Arc<crate::rate_exchange::PeerReports>,
}

impl AdminContext {
    fn store_connected(&self) -> bool {
        self.store_connected.load(Ordering::Relaxed)
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        // Equal-length comparison in constant time; a length mismatch only
        // tells an attacker the length, which is fixed for generated tokens.
        bool::from(presented.as_bytes().ct_eq(self.token.load().as_bytes()))
    }
}

/// An error answer: a status and a JSON body that always has `error`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: serde_json::Value,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl std::fmt::Display) -> ApiError {
        ApiError {
            status,
            body: json!({ "error": message.to_string() }),
        }
    }

    pub fn with(mut self, key: &str, value: serde_json::Value) -> ApiError {
        if let Some(body) = self.body.as_object_mut() {
            body.insert(key.to_string(), value);
        }
        self
    }

    pub fn bad_request(message: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> ApiError {
        match err {
            StoreError::NotFound(what) => ApiError::not_found(format!("{what} does not exist")),
            StoreError::BadName { .. } => ApiError::bad_request(err),
            StoreError::Exists(_) => ApiError::new(StatusCode::CONFLICT, err),
            other => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{other}; nothing was changed"),
            ),
        }
    }
}

impl From<WriteError> for ApiError {
    fn from(err: WriteError) -> ApiError {
        match err {
            WriteError::WorkerRefused { ref managers } => {
                let managers = json!(managers);
                ApiError::new(StatusCode::FORBIDDEN, err).with("managers", managers)
            }
            WriteError::Topology(errors) => {
                let all: Vec<String> = errors.0.iter().map(|e| e.to_string()).collect();
                let (path, line) = errors
                    .first()
                    .map(|e| (e.path.clone(), e.line))
                    .unwrap_or_default();
                ApiError::bad_request(&errors)
                    .with("path", json!(path))
                    .with("line", json!(line))
                    .with("errors", json!(all))
            }
            WriteError::Store(err) => err.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

async fn require_token(
    State(context): State<Arc<AdminContext>>,
    request: Request,
    next: Next,
) -> Response {
    if context.authorized(request.headers()) {
        next.run(request).await
    } else {
        let mut response = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing or wrong admin token: send Authorization: Bearer <admin.token>",
        )
        .into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        response
    }
}

/// A peer's rate-limit counts (`rate_exchange`): members post here with
/// the cluster's admin token.
async fn receive_rate_counts(
    State(context): State<Arc<AdminContext>>,
    Json(report): Json<crate::rate_exchange::DemandReport>,
) -> StatusCode {
    context.rate_reports.store(report);
    StatusCode::NO_CONTENT
}

const INDEX_HTML: &str = include_str!("dashboard/index.html");
const APP_JS: &str = include_str!("dashboard/app.js");
const DOM_JS: &str = include_str!("dashboard/dom.js");
const STYLE_CSS: &str = include_str!("dashboard/style.css");

/// The page loads only its own files and is never framed; the `data:` image
/// is its empty favicon.
const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

pub fn router(context: Arc<AdminContext>) -> Router {
    let protected = api::routes()
        .merge(keys::routes())
        .route(
            crate::rate_exchange::EXCHANGE_PATH,
            post(receive_rate_counts),
        )
        .route_layer(middleware::from_fn_with_state(
            context.clone(),
            require_token,
        ));
    Router::new()
        .route("/api/v1/health", get(api::health))
        .merge(protected)
        .route("/metrics", get(metrics::scrape))
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/dom.js",
            get(|| async { asset("text/javascript; charset=utf-8", DOM_JS) }),
        )
        .route(
            "/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }),
        )
        .fallback(|| async { ApiError::not_found("no such admin endpoint") })
        .with_state(context)
}

/// Serves the admin listener until `shutdown` turns true, over TLS when
/// `tls` is set (`[admin] tls`).
pub async fn serve(
    listener: TcpListener,
    context: Arc<AdminContext>,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let app = router(context);
    if let Some(tls) = tls {
        return tls::serve(listener, app, tls, shutdown).await;
    }
    let stop = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    if let Err(err) = axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
    {
        tracing::error!(error = %err, "admin listener failed");
    }
}
