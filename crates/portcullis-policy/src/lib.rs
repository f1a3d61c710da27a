//! Gateway policies (PRODUCT.md §11, docs/policies.md): who may call a
//! service and who the backend is told the caller is. Built from a
//! service's `[service.auth]`, used by the data plane after routing and
//! before forwarding. Methods: JWT bearer tokens and Basic (LDAP or an
//! htpasswd file).
//!
//! Nothing here knows the data plane's types: it takes request headers and
//! gives a [`Principal`] or an [`AuthResult`] to answer with.
#![forbid(unsafe_code)]

mod api_key;
mod authorize;
mod basic;
mod basic_cache;
mod doas;
mod fetch;
#[doc(hidden)]
pub mod fuzzing;
mod htpasswd;
mod jwt;
mod keys;
mod ldap;
pub mod rate_limit;
#[cfg(any(test, feature = "test-keys"))]
pub mod test_keys;
mod token_cache;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use http::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};
use portcullis_config::{AuthMethod, AuthPolicy};

pub use api_key::{
    ApiKeyEntry, ApiKeyTable, ApiKeys, PRINCIPAL_PREFIX as API_KEY_PRINCIPAL_PREFIX,
};
pub use authorize::admits;
pub use basic::{basic_credentials, BasicVerifier, BASIC_CHALLENGE};
pub use doas::with_doas;
pub use jwt::{JwtFailure, JwtVerifier};
pub use keys::{FetchError, KeySource};

/// Why an authenticator could not be built from its config.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("auth.jwt.jwks: {0}")]
    Jwks(#[from] portcullis_config::JwksError),
    #[error("auth.jwt.jwks: {0}")]
    Client(String),
    #[error("auth: no tokio runtime to refresh the key set in")]
    NoRuntime,
    #[error("auth.basic: {0}")]
    Basic(String),
    #[error("auth.identity_header: {0:?} is not a header name")]
    IdentityHeader(String),
    #[error("auth.api_key.header: {0:?} is not a header name")]
    ApiKeyHeader(String),
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// For JWT, the token's `sub`.
    pub name: String,
    /// For `[service.authorize] groups`: the JWT `groups` claim (strings
    /// only), or the directory's groups; empty when there are none.
    pub groups: Vec<String>,
    /// For `[service.authorize] claims`: a token's top-level claims that are
    /// strings (one value) or arrays of strings, bounded in number and
    /// size; empty for methods without claims.
    pub claims: std::collections::BTreeMap<String, Vec<String>>,
    /// `name` as a header value, made once: a remembered principal is
    /// asserted on every request, and a clone of this is a reference count.
    header_value: std::sync::OnceLock<Option<HeaderValue>>,
}

impl Principal {
    /// A principal with a name only (no groups, no claims).
    pub fn named(name: impl Into<String>) -> Principal {
        Principal {
            name: name.into(),
            groups: Vec::new(),
            claims: std::collections::BTreeMap::new(),
            header_value: std::sync::OnceLock::new(),
        }
    }

    /// The name as a header value for the identity header; `None` when it
    /// cannot be one (control characters).
    pub fn header_value(&self) -> Option<&HeaderValue> {
        self.header_value
            .get_or_init(|| HeaderValue::from_bytes(self.name.as_bytes()).ok())
            .as_ref()
    }
}

/// How one authentication ended, as counted in
/// `portcullis_auth_total{result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthResult {
    Ok,
    /// No bearer credentials at all.
    Missing,
    /// Credentials that do not verify: bad signature, refused algorithm,
    /// unknown key, wrong issuer or audience, malformed.
    Invalid,
    /// A good signature, but past `exp` (or before `nbf`) beyond the leeway.
    Expired,
    /// The credentials could not be checked: the LDAP directory is down or
    /// failing. Answered with 503, not 401: the client did nothing wrong.
    Unavailable,
    /// Authenticated (or not needed) but refused by `[service.authorize]`:
    /// a 403. Counted instead of `Ok`, so each request is counted once.
    Denied,
}

impl AuthResult {
    pub const ALL: [AuthResult; 6] = [
        AuthResult::Ok,
        AuthResult::Missing,
        AuthResult::Invalid,
        AuthResult::Expired,
        AuthResult::Unavailable,
        AuthResult::Denied,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuthResult::Ok => "ok",
            AuthResult::Missing => "missing",
            AuthResult::Invalid => "invalid",
            AuthResult::Expired => "expired",
            AuthResult::Unavailable => "unavailable",
            AuthResult::Denied => "denied",
        }
    }

    /// The `WWW-Authenticate` value a refused request gets (RFC 6750 §3):
    /// an error code only when credentials were sent.
    pub fn challenge(self) -> &'static str {
        match self {
            AuthResult::Missing | AuthResult::Ok | AuthResult::Unavailable | AuthResult::Denied => {
                "Bearer realm=\"portcullis\""
            }
            AuthResult::Invalid | AuthResult::Expired => {
                "Bearer realm=\"portcullis\", error=\"invalid_token\""
            }
        }
    }
}

/// Authentication results of one service, by method and result; kept
/// across reloads by the data plane's service stats. "No method found
/// credentials" is counted under the method label `none`.
#[derive(Debug, Default)]
pub struct AuthCounts([[AtomicU64; AuthResult::ALL.len()]; METHOD_SLOTS]);

/// Slot 0 is "no method", then one per [`AuthMethod`].
const METHOD_SLOTS: usize = 1 + AuthMethod::ALL.len();

fn method_slot(method: Option<AuthMethod>) -> usize {
    method.map_or(0, |m| 1 + m as usize)
}

impl AuthCounts {
    pub fn count(&self, method: Option<AuthMethod>, result: AuthResult) {
        self.0[method_slot(method)][result as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// `(method, result, count)` for every pair counted at least once.
    pub fn snapshot(&self) -> Vec<(&'static str, AuthResult, u64)> {
        let methods = std::iter::once(None).chain(AuthMethod::ALL.into_iter().map(Some));
        let mut out = Vec::new();
        for method in methods {
            for result in AuthResult::ALL {
                let n = self.0[method_slot(method)][result as usize].load(Ordering::Relaxed);
                if n > 0 {
                    out.push((method.map_or("none", AuthMethod::as_str), result, n));
                }
            }
        }
        out
    }
}

/// The request's `Authorization` fields, taken out of its head once, before
/// any method looks: the backends never see them, and one lookup serves
/// both the methods and the removal (callgrind: a read and a later removal
/// cost two hash lookups per request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorization {
    Absent,
    One(HeaderValue),
    /// Two or more fields: no method reads such a request's credentials.
    Several,
}

impl Authorization {
    /// Removes every `Authorization` field from `headers`.
    pub fn take(headers: &mut HeaderMap) -> Authorization {
        // `remove` keeps the first value and drops the others; the map's
        // value count says whether there were others. One lookup: the
        // entry API's removal costs half again as much (callgrind).
        let fields_before = headers.len();
        match headers.remove(AUTHORIZATION) {
            None => Authorization::Absent,
            Some(_) if fields_before - headers.len() > 1 => Authorization::Several,
            Some(value) => Authorization::One(value),
        }
    }

    /// The one field: `Missing` without one, `Invalid` with several.
    fn field(&self) -> Result<&HeaderValue, AuthResult> {
        match self {
            Authorization::Absent => Err(AuthResult::Missing),
            Authorization::One(value) => Ok(value),
            Authorization::Several => Err(AuthResult::Invalid),
        }
    }
}

/// What the methods read of a request: its `Authorization` (already out of
/// the head) and the rest of its fields (an API key's header).
pub struct Credentials<'a> {
    pub authorization: &'a Authorization,
    pub headers: &'a HeaderMap,
}

/// Why a request was refused, for the 401 and the count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The method whose credentials were refused; `None` when no method
    /// found credentials of its kind.
    pub method: Option<AuthMethod>,
    pub result: AuthResult,
    /// The `WWW-Authenticate` value: the refusing method's challenge, or
    /// every configured method's when none found credentials.
    pub challenge: HeaderValue,
}

/// A signed-in caller and the method that signed them in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub method: AuthMethod,
    /// Shared: a JWT's principal comes from the verified-token cache, and a
    /// clone of its claims per request would cost more than the lookup.
    pub principal: Arc<Principal>,
}

/// What one method made of a request.
enum Attempt {
    /// No credentials of this method's kind: the next method is tried.
    NotMine,
    /// Credentials of this kind were found and judged; no other method is
    /// tried (a bad token is not retried as something else).
    Decided(Result<Arc<Principal>, AuthResult>),
}

/// One configured method, ready for requests. Each method's slice adds its
/// variant here. A handful per service, built once per apply: their sizes
/// do not matter.
#[allow(clippy::large_enum_variant)]
enum Method {
    /// Boxed: a verifier is several times larger than the other methods.
    Jwt(Box<JwtVerifier>),
    ApiKey(api_key::ApiKeyVerifier),
    Basic(BasicVerifier),
}

impl Method {
    fn kind(&self) -> AuthMethod {
        match self {
            Method::Jwt(_) => AuthMethod::Jwt,
            Method::ApiKey(_) => AuthMethod::ApiKey,
            Method::Basic(_) => AuthMethod::Basic,
        }
    }

    fn as_jwt(&self) -> Option<&JwtVerifier> {
        match self {
            Method::Jwt(jwt) => Some(jwt.as_ref()),
            Method::ApiKey(_) | Method::Basic(_) => None,
        }
    }

    /// What this method makes of the request without waiting: `None` when
    /// it must wait (a JWT whose key needs a key set refresh, Basic
    /// credentials not in the cache). Most requests end here, and the
    /// caller then needs no future for them at all.
    fn attempt_now(&self, request: &Credentials<'_>, now: tokio::time::Instant) -> Option<Attempt> {
        Some(match self {
            Method::Jwt(jwt) => match bearer_token(request.authorization) {
                Err(AuthResult::Missing) => Attempt::NotMine,
                Err(result) => Attempt::Decided(Err(result)),
                Ok(token) => match jwt.verify_at(token, now) {
                    Err(JwtFailure::UnknownKey) if jwt.refreshes() => return None,
                    judged => Attempt::Decided(judged.map_err(JwtFailure::result)),
                },
            },
            Method::ApiKey(keys) => match keys.attempt(request.headers) {
                api_key::KeyAttempt::Absent => Attempt::NotMine,
                api_key::KeyAttempt::Judged(result) => Attempt::Decided(result),
            },
            Method::Basic(basic) => match basic_credentials(request.authorization) {
                Err(AuthResult::Missing) => Attempt::NotMine,
                Err(result) => Attempt::Decided(Err(result)),
                Ok((user, password)) => {
                    Attempt::Decided(basic.cached(&user, &password)?.map(Arc::new))
                }
            },
        })
    }

    async fn attempt(&self, request: &Credentials<'_>) -> Attempt {
        if let Some(judged) = self.attempt_now(request, tokio::time::Instant::now()) {
            return judged;
        }
        match self {
            Method::Jwt(jwt) => match bearer_token(request.authorization) {
                Err(result) => Attempt::Decided(Err(result)),
                Ok(token) => Attempt::Decided(verify_bearer(jwt, token).await),
            },
            // Never reached: an API key is always judged at once.
            Method::ApiKey(_) => Attempt::NotMine,
            Method::Basic(basic) => match basic_credentials(request.authorization) {
                Err(result) => Attempt::Decided(Err(result)),
                // A cache miss's future (a directory round trip) is large:
                // boxed, so that it does not grow every request's future
                // (`the_pipeline_future_is_bounded` in the proxy).
                Ok((user, password)) => {
                    Attempt::Decided(Box::pin(basic.verify(&user, &password)).await.map(Arc::new))
                }
            },
        }
    }

    /// The challenge (RFC 9110 §11.6.1) this method answers with.
    fn challenge(&self, result: AuthResult) -> HeaderValue {
        match self {
            Method::Jwt(_) => HeaderValue::from_static(result.challenge()),
            Method::ApiKey(keys) => keys.challenge().clone(),
            Method::Basic(_) => HeaderValue::from_static(BASIC_CHALLENGE),
        }
    }
}

/// A token whose key is not in the set may wait for one refresh of a URL
/// key set.
async fn verify_bearer(jwt: &JwtVerifier, token: &[u8]) -> Result<Arc<Principal>, AuthResult> {
    let Ok(token) = std::str::from_utf8(token) else {
        return Err(AuthResult::Invalid);
    };
    match jwt.verify(token) {
        Ok(principal) => Ok(principal),
        Err(JwtFailure::UnknownKey) => {
            if jwt.refresh_for_unknown_key(token).await {
                jwt.verify(token).map_err(JwtFailure::result)
            } else {
                Err(AuthResult::Invalid)
            }
        }
        Err(failure) => Err(failure.result()),
    }
}

/// Which service an authenticator is built for, and the member's API key
/// table (keys are scoped to a topology and maybe a service).
pub struct ServiceScope<'a> {
    pub topology: &'a str,
    pub service: &'a str,
    pub api_keys: &'a ApiKeys,
}

/// A service's `[service.auth]`, ready for requests.
pub struct Authenticator {
    /// In the configured order.
    methods: Vec<Method>,
    /// Every method's bare challenge, for a request with no credentials.
    bare_challenge: HeaderValue,
    identity_header: HeaderName,
    knox_doas: bool,
}

impl Authenticator {
    /// Reads a `file:` key set now; a URL key set is fetched in the
    /// background on the current tokio runtime until this is dropped.
    pub fn build(
        policy: &AuthPolicy,
        base_dir: &Path,
        scope: &ServiceScope<'_>,
    ) -> Result<Authenticator, PolicyError> {
        let identity_header = HeaderName::from_bytes(policy.identity_header.as_bytes())
            .map_err(|_| PolicyError::IdentityHeader(policy.identity_header.clone()))?;
        let mut methods = Vec::with_capacity(policy.methods.len());
        for method in &policy.methods {
            methods.push(match method {
                // Validation guarantees the table of every listed method.
                AuthMethod::Jwt => {
                    let Some(jwt) = &policy.jwt else {
                        return Err(PolicyError::Client("no jwt table".into()));
                    };
                    Method::Jwt(Box::new(JwtVerifier::build(jwt, base_dir)?))
                }
                AuthMethod::ApiKey => Method::ApiKey(api_key_method(policy, scope)?),
                AuthMethod::Basic => {
                    let Some(basic) = &policy.basic else {
                        return Err(PolicyError::Basic("no basic table".into()));
                    };
                    Method::Basic(BasicVerifier::build(basic, base_dir)?)
                }
            });
        }
        Ok(Self::with_methods(
            methods,
            identity_header,
            policy.knox_doas,
        ))
    }

    /// An authenticator with the JWT method only, for tests that bring
    /// their own key source.
    pub fn from_parts(jwt: JwtVerifier, identity_header: HeaderName, knox_doas: bool) -> Self {
        Self::with_methods(vec![Method::Jwt(Box::new(jwt))], identity_header, knox_doas)
    }

    fn with_methods(methods: Vec<Method>, identity_header: HeaderName, knox_doas: bool) -> Self {
        let bare: Vec<HeaderValue> = methods
            .iter()
            .map(|m| m.challenge(AuthResult::Missing))
            .collect();
        let bare: Vec<&str> = bare.iter().filter_map(|v| v.to_str().ok()).collect();
        // Realm strings and header names only, so always a valid field value.
        let bare_challenge = HeaderValue::from_str(&bare.join(", "))
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer realm=\"portcullis\""));
        Authenticator {
            methods,
            bare_challenge,
            identity_header,
            knox_doas,
        }
    }

    pub fn identity_header(&self) -> &HeaderName {
        &self.identity_header
    }

    /// The JWT verifier, if the service has the method.
    pub fn jwt(&self) -> Option<&JwtVerifier> {
        self.methods.iter().find_map(Method::as_jwt)
    }

    /// The API key header, if the service has the method: removed from
    /// the request before it is forwarded.
    pub fn api_key_header(&self) -> Option<&HeaderName> {
        self.methods.iter().find_map(|m| match m {
            Method::ApiKey(keys) => Some(keys.header()),
            Method::Jwt(_) | Method::Basic(_) => None,
        })
    }

    pub fn knox_doas(&self) -> bool {
        self.knox_doas
    }

    /// Tries the methods in order; the first that finds credentials of its
    /// kind decides.
    pub async fn authenticate(&self, request: &Credentials<'_>) -> Result<Authenticated, Refusal> {
        for method in &self.methods {
            match method.attempt(request).await {
                Attempt::NotMine => continue,
                decided => return self.decided(method, decided),
            }
        }
        Err(self.nothing_found())
    }

    /// [`Authenticator::authenticate`] without waiting: `None` when a method
    /// must wait (then call `authenticate`, which judges again).
    /// `now` is the request's start: remembered tokens expire by it.
    pub fn authenticate_now(
        &self,
        request: &Credentials<'_>,
        now: tokio::time::Instant,
    ) -> Option<Result<Authenticated, Refusal>> {
        for method in &self.methods {
            match method.attempt_now(request, now)? {
                Attempt::NotMine => continue,
                decided => return Some(self.decided(method, decided)),
            }
        }
        Some(Err(self.nothing_found()))
    }

    /// [`Authenticator::authenticate`] for a whole head, as the proxy's
    /// phase calls it.
    #[cfg(test)]
    pub(crate) async fn authenticate_headers(
        &self,
        headers: &HeaderMap,
    ) -> Result<Authenticated, Refusal> {
        let mut headers = headers.clone();
        let authorization = Authorization::take(&mut headers);
        self.authenticate(&Credentials {
            authorization: &authorization,
            headers: &headers,
        })
        .await
    }

    #[cfg(test)]
    pub(crate) fn authenticate_headers_now(
        &self,
        headers: &HeaderMap,
        now: tokio::time::Instant,
    ) -> Option<Result<Authenticated, Refusal>> {
        let mut headers = headers.clone();
        let authorization = Authorization::take(&mut headers);
        let request = Credentials {
            authorization: &authorization,
            headers: &headers,
        };
        self.authenticate_now(&request, now)
    }

    fn decided(&self, method: &Method, attempt: Attempt) -> Result<Authenticated, Refusal> {
        match attempt {
            Attempt::Decided(Ok(principal)) => Ok(Authenticated {
                method: method.kind(),
                principal,
            }),
            Attempt::Decided(Err(result)) => Err(Refusal {
                method: Some(method.kind()),
                result,
                challenge: method.challenge(result),
            }),
            Attempt::NotMine => Err(self.nothing_found()),
        }
    }

    fn nothing_found(&self) -> Refusal {
        Refusal {
            method: None,
            result: AuthResult::Missing,
            challenge: self.bare_challenge.clone(),
        }
    }
}

fn api_key_method(
    policy: &AuthPolicy,
    scope: &ServiceScope<'_>,
) -> Result<api_key::ApiKeyVerifier, PolicyError> {
    let header = policy
        .api_key
        .as_ref()
        .map_or(portcullis_config::ApiKeyPolicy::DEFAULT_HEADER, |p| {
            p.header.as_str()
        });
    let header = HeaderName::from_bytes(header.as_bytes())
        .map_err(|_| PolicyError::ApiKeyHeader(header.to_string()))?;
    Ok(api_key::ApiKeyVerifier::new(
        header,
        scope.topology,
        scope.service,
        scope.api_keys.clone(),
    ))
}

/// The token of the one `Authorization: Bearer` field. Another scheme
/// counts as no bearer credentials; two Authorization fields as invalid.
fn bearer_token(authorization: &Authorization) -> Result<&[u8], AuthResult> {
    let value = authorization.field()?;
    // Bytes, not `to_str`: the edge already checked the field's bytes, and
    // a per-character walk over a few hundred bytes of token cost more
    // than the cached verification itself (callgrind).
    let bytes = value.as_bytes();
    // The scheme is a token and one space ends it (RFC 9110 §11.4).
    let (scheme, rest) = bytes.split_at(bytes.len().min(7));
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        // `Bearer` alone: this method's scheme without a token.
        if bytes.eq_ignore_ascii_case(b"bearer") {
            return Err(AuthResult::Invalid);
        }
        return Err(AuthResult::Missing);
    }
    let token = rest.trim_ascii();
    if token.is_empty() {
        return Err(AuthResult::Invalid);
    }
    // Bytes: a remembered token is found as bytes, and one that is not
    // text fails verification (`JwtVerifier::verify_bytes`).
    Ok(token)
}

#[cfg(test)]
#[path = "lib_tests.rs"]
mod tests;
