//! Every error the data plane can answer with, and the one place that turns an
//! error into a client response. Backend addresses never appear in a response.

use http::{header, Response, StatusCode};

use crate::body::{self, ProxyBody};

/// Which side of the proxy an error came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Backend,
    Gateway,
}

/// Why a request could not be proxied.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("no route for this path")]
    NoRoute,
    #[error("unknown topology")]
    UnknownTopology { topology: String },
    #[error("unknown service")]
    UnknownService { topology: String, service: String },
    #[error("backend connection failed: {source}")]
    Connect {
        topology: String,
        service: String,
        #[source]
        source: BoxError,
    },
    #[error("backend failed before answering: {source}")]
    Backend {
        topology: String,
        service: String,
        #[source]
        source: BoxError,
    },
    #[error("backend did not answer within {timeout:?}")]
    Timeout {
        topology: String,
        service: String,
        timeout: std::time::Duration,
    },
    #[error("no backend could be tried")]
    NoBackend { topology: String, service: String },
    #[error("the alias for backend credentials is missing or cannot be opened")]
    MissingCredentials { topology: String, service: String },
    #[error("bad request: {reason}")]
    BadRequest { reason: &'static str },
    #[error("method not allowed: {reason}")]
    MethodNotAllowed { reason: &'static str },
    /// The backend sent a response head §9 forbids relaying.
    #[error("backend response refused: {reason}")]
    BadResponse {
        topology: String,
        service: String,
        reason: &'static str,
    },
    /// `[service.auth]` refused the request: no or bad credentials. The
    /// challenge is the `WWW-Authenticate` value (RFC 6750).
    #[error("unauthorized")]
    Unauthorized {
        topology: String,
        service: String,
        /// Boxed: inline it made every `ProxyError`, and so every request's
        /// future, 24 bytes larger (`the_pipeline_future_is_bounded`).
        challenge: Box<header::HeaderValue>,
    },
    /// `[service.rate_limit]` refused the request: over the limit for its
    /// key. The quota and window go into the draft `RateLimit-*` fields.
    #[error("rate limited")]
    RateLimited {
        topology: String,
        service: String,
        retry_after_secs: u64,
        quota: u64,
        window_secs: u64,
    },
    /// `[service.auth]` could not check the credentials: the LDAP
    /// directory is down. 503, not 401: the client did nothing wrong.
    #[error("authentication unavailable")]
    AuthUnavailable { topology: String, service: String },
    /// `[service.authorize]` refused the caller: a 403, with no word on
    /// which rule failed.
    #[error("forbidden")]
    Forbidden { topology: String, service: String },
    /// The client's request body broke off or was too slow.
    #[error("request body: {reason}")]
    ClientBody { reason: &'static str },
}

pub use crate::body::BoxError;

/// A strict-edge refusal (PRODUCT.md §9) as the client's answer.
impl From<crate::http::strict::Refusal> for ProxyError {
    fn from(refusal: crate::http::strict::Refusal) -> ProxyError {
        match refusal {
            crate::http::strict::Refusal::BadRequest(reason) => ProxyError::BadRequest { reason },
            crate::http::strict::Refusal::MethodNotAllowed(reason) => {
                ProxyError::MethodNotAllowed { reason }
            }
        }
    }
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::NoRoute
            | ProxyError::UnknownTopology { .. }
            | ProxyError::UnknownService { .. } => StatusCode::NOT_FOUND,
            ProxyError::Connect { .. }
            | ProxyError::Backend { .. }
            | ProxyError::BadResponse { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::NoBackend { .. }
            | ProxyError::MissingCredentials { .. }
            | ProxyError::AuthUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ProxyError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ProxyError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ProxyError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ProxyError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::ClientBody { .. } => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// Which side failed, for logs and metrics.
    pub fn side(&self) -> Side {
        match self {
            ProxyError::BadRequest { .. }
            | ProxyError::MethodNotAllowed { .. }
            | ProxyError::ClientBody { .. } => Side::Client,
            ProxyError::Connect { .. }
            | ProxyError::Backend { .. }
            | ProxyError::BadResponse { .. }
            | ProxyError::Timeout { .. } => Side::Backend,
            _ => Side::Gateway,
        }
    }

    fn public_message(&self) -> &'static str {
        match self {
            ProxyError::NoRoute => "not found",
            ProxyError::UnknownTopology { .. } => "unknown topology",
            ProxyError::UnknownService { .. } => "unknown service",
            ProxyError::Connect { .. } => "backend unavailable",
            ProxyError::Backend { .. } => "backend failed",
            ProxyError::Timeout { .. } => "backend timeout",
            ProxyError::NoBackend { .. } => "no backend available",
            ProxyError::MissingCredentials { .. } => "backend credentials unavailable",
            // Nothing on why: no help for someone trying tokens.
            ProxyError::Unauthorized { .. } => "unauthorized",
            ProxyError::RateLimited { .. } => "too many requests",
            ProxyError::AuthUnavailable { .. } => "authentication unavailable",
            ProxyError::Forbidden { .. } => "forbidden",
            ProxyError::BadRequest { reason }
            | ProxyError::MethodNotAllowed { reason }
            | ProxyError::ClientBody { reason } => reason,
            ProxyError::BadResponse { .. } => "backend failed",
        }
    }

    fn names(&self) -> (Option<&str>, Option<&str>) {
        match self {
            ProxyError::NoRoute
            | ProxyError::BadRequest { .. }
            | ProxyError::MethodNotAllowed { .. }
            | ProxyError::ClientBody { .. } => (None, None),
            ProxyError::UnknownTopology { topology } => (Some(topology), None),
            ProxyError::UnknownService { topology, service }
            | ProxyError::Connect {
                topology, service, ..
            }
            | ProxyError::Backend {
                topology, service, ..
            }
            | ProxyError::Timeout {
                topology, service, ..
            }
            | ProxyError::BadResponse {
                topology, service, ..
            }
            | ProxyError::NoBackend { topology, service }
            | ProxyError::Forbidden { topology, service }
            | ProxyError::Unauthorized {
                topology, service, ..
            }
            | ProxyError::RateLimited {
                topology, service, ..
            }
            | ProxyError::MissingCredentials { topology, service }
            | ProxyError::AuthUnavailable { topology, service } => (Some(topology), Some(service)),
        }
    }

    /// The JSON response a client sees. Only names the client already sent are
    /// echoed; the error's source (which may hold an address) is not.
    pub fn into_response(&self) -> Response<ProxyBody> {
        let (topology, service) = self.names();
        let mut json = serde_json::json!({ "error": self.public_message() });
        if let Some(topology) = topology {
            json["topology"] = topology.into();
        }
        if let Some(service) = service {
            json["service"] = service.into();
        }
        let mut response = json_response(self.status(), &json);
        match self {
            ProxyError::Unauthorized { challenge, .. } => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, (**challenge).clone());
            }
            ProxyError::RateLimited {
                retry_after_secs,
                quota,
                window_secs,
                ..
            } => rate_limit_fields(&mut response, *retry_after_secs, *quota, *window_secs),
            _ => {}
        }
        response
    }
}

/// `Retry-After` and the fields of draft-ietf-httpapi-ratelimit-headers
/// (checked against -10): the policy's quota and window, and none left
/// for `t` seconds.
fn rate_limit_fields(
    response: &mut Response<ProxyBody>,
    retry_after_secs: u64,
    quota: u64,
    window_secs: u64,
) {
    let fields = [
        (header::RETRY_AFTER, retry_after_secs.to_string()),
        (
            header::HeaderName::from_static("ratelimit-policy"),
            format!("\"default\";q={quota};w={window_secs}"),
        ),
        (
            header::HeaderName::from_static("ratelimit"),
            format!("\"default\";r=0;t={retry_after_secs}"),
        ),
    ];
    for (name, value) in fields {
        // Digits, quotes and semicolons only: always a valid value.
        if let Ok(value) = header::HeaderValue::try_from(value) {
            response.headers_mut().insert(name, value);
        }
    }
}

/// The shape of every answer the gateway or the balancer makes itself: a
/// JSON body with an `error` field (PRODUCT.md §3).
pub fn json_error(status: StatusCode, message: &str) -> Response<ProxyBody> {
    json_response(status, &serde_json::json!({ "error": message }))
}

fn json_response(status: StatusCode, json: &serde_json::Value) -> Response<ProxyBody> {
    let mut response = Response::new(body::full(json.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn error_bodies_do_not_leak_the_source() {
        let err = ProxyError::Connect {
            topology: "t".into(),
            service: "s".into(),
            source: "connect to 10.1.2.3:8080 refused".into(),
        };
        assert_eq!(err.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(err.side(), Side::Backend);
        let body = err
            .into_response()
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(!text.contains("10.1.2.3"), "{text}");
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["service"], "s");
        assert_eq!(json["topology"], "t");
    }

    #[test]
    fn a_rate_limited_answer_carries_retry_after_and_the_draft_fields() {
        let err = ProxyError::RateLimited {
            topology: "t".into(),
            service: "s".into(),
            retry_after_secs: 3,
            quota: 100,
            window_secs: 60,
        };
        let response = err.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let field = |name: &str| response.headers()[name].to_str().unwrap().to_string();
        assert_eq!(field("retry-after"), "3");
        assert_eq!(field("ratelimit-policy"), "\"default\";q=100;w=60");
        assert_eq!(field("ratelimit"), "\"default\";r=0;t=3");
        assert_eq!(field("content-type"), "application/json");
    }
}
