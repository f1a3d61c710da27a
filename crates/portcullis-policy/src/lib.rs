//! Gateway policies (PRODUCT.md §11, docs/policies.md): who may call a
//! service and who the backend is told the caller is. Built from a
//! service's `[service.auth]`, used by the data plane after routing and
//! before forwarding. This slice has one method, JWT bearer tokens.
//!
//! Nothing here knows the data plane's types: it takes request headers and
//! gives a [`Principal`] or an [`AuthResult`] to answer with.
#![forbid(unsafe_code)]

mod authorize;
mod doas;
mod fetch;
mod jwt;
mod keys;
#[cfg(any(test, feature = "test-keys"))]
pub mod test_keys;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use http::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};
use portcullis_config::{AuthMethod, AuthPolicy};

pub use authorize::admits;
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
    #[error("auth.identity_header: {0:?} is not a header name")]
    IdentityHeader(String),
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
}

impl Principal {
    /// A principal with a name only (no groups, no claims).
    pub fn named(name: impl Into<String>) -> Principal {
        Principal {
            name: name.into(),
            groups: Vec::new(),
            claims: std::collections::BTreeMap::new(),
        }
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
    /// Authenticated (or not needed) but refused by `[service.authorize]`:
    /// a 403. Counted instead of `Ok`, so each request is counted once.
    Denied,
}

impl AuthResult {
    pub const ALL: [AuthResult; 5] = [
        AuthResult::Ok,
        AuthResult::Missing,
        AuthResult::Invalid,
        AuthResult::Expired,
        AuthResult::Denied,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuthResult::Ok => "ok",
            AuthResult::Missing => "missing",
            AuthResult::Invalid => "invalid",
            AuthResult::Expired => "expired",
            AuthResult::Denied => "denied",
        }
    }

    /// The `WWW-Authenticate` value a refused request gets (RFC 6750 §3):
    /// an error code only when credentials were sent.
    pub fn challenge(self) -> &'static str {
        match self {
            AuthResult::Missing | AuthResult::Ok | AuthResult::Denied => {
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
    pub principal: Principal,
}

/// What one method made of a request.
enum Attempt {
    /// No credentials of this method's kind: the next method is tried.
    NotMine,
    /// Credentials of this kind were found and judged; no other method is
    /// tried (a bad token is not retried as something else).
    Decided(Result<Principal, AuthResult>),
}

/// One configured method, ready for requests. Each method's slice adds its
/// variant here.
enum Method {
    Jwt(JwtVerifier),
}

impl Method {
    fn kind(&self) -> AuthMethod {
        match self {
            Method::Jwt(_) => AuthMethod::Jwt,
        }
    }

    fn as_jwt(&self) -> Option<&JwtVerifier> {
        match self {
            Method::Jwt(jwt) => Some(jwt),
        }
    }

    async fn attempt(&self, headers: &HeaderMap) -> Attempt {
        match self {
            Method::Jwt(jwt) => match bearer_token(headers) {
                Err(AuthResult::Missing) => Attempt::NotMine,
                Err(result) => Attempt::Decided(Err(result)),
                Ok(token) => Attempt::Decided(verify_bearer(jwt, token).await),
            },
        }
    }

    /// The challenge (RFC 9110 §11.6.1) this method answers with.
    fn challenge(&self, result: AuthResult) -> &'static str {
        match self {
            Method::Jwt(_) => result.challenge(),
        }
    }
}

/// A token whose key is not in the set may wait for one refresh of a URL
/// key set.
async fn verify_bearer(jwt: &JwtVerifier, token: &str) -> Result<Principal, AuthResult> {
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
    pub fn build(policy: &AuthPolicy, base_dir: &Path) -> Result<Authenticator, PolicyError> {
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
                    Method::Jwt(JwtVerifier::build(jwt, base_dir)?)
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
        Self::with_methods(vec![Method::Jwt(jwt)], identity_header, knox_doas)
    }

    fn with_methods(methods: Vec<Method>, identity_header: HeaderName, knox_doas: bool) -> Self {
        let bare: Vec<&str> = methods
            .iter()
            .map(|m| m.challenge(AuthResult::Missing))
            .collect();
        // Static realm strings only, so always a valid field value.
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

    pub fn knox_doas(&self) -> bool {
        self.knox_doas
    }

    /// Tries the methods in order; the first that finds credentials of its
    /// kind decides.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Authenticated, Refusal> {
        for method in &self.methods {
            match method.attempt(headers).await {
                Attempt::NotMine => continue,
                Attempt::Decided(Ok(principal)) => {
                    return Ok(Authenticated {
                        method: method.kind(),
                        principal,
                    })
                }
                Attempt::Decided(Err(result)) => {
                    return Err(Refusal {
                        method: Some(method.kind()),
                        result,
                        challenge: HeaderValue::from_static(method.challenge(result)),
                    })
                }
            }
        }
        Err(Refusal {
            method: None,
            result: AuthResult::Missing,
            challenge: self.bare_challenge.clone(),
        })
    }
}

/// The token of the one `Authorization: Bearer` field. Another scheme
/// counts as no bearer credentials; two Authorization fields as invalid.
fn bearer_token(headers: &HeaderMap) -> Result<&str, AuthResult> {
    let mut fields = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = fields.next() else {
        return Err(AuthResult::Missing);
    };
    if fields.next().is_some() {
        return Err(AuthResult::Invalid);
    }
    let value = value.to_str().map_err(|_| AuthResult::Invalid)?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthResult::Missing);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthResult::Invalid);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn the_bearer_token_is_found_or_the_reason_why_not() {
        assert_eq!(bearer_token(&headers(&["Bearer abc"])), Ok("abc"));
        assert_eq!(bearer_token(&headers(&["bearer  abc "])), Ok("abc"));
        assert_eq!(bearer_token(&headers(&[])), Err(AuthResult::Missing));
        assert_eq!(
            bearer_token(&headers(&["Basic YTpi"])),
            Err(AuthResult::Missing)
        );
        assert_eq!(
            bearer_token(&headers(&["Bearer"])),
            Err(AuthResult::Invalid)
        );
        assert_eq!(
            bearer_token(&headers(&["Bearer a", "Bearer b"])),
            Err(AuthResult::Invalid)
        );
    }

    fn file_policy(jwks: &str) -> AuthPolicy {
        AuthPolicy {
            methods: vec![AuthMethod::Jwt],
            jwt: Some(portcullis_config::JwtPolicy {
                jwks: portcullis_config::JwksSource::File(jwks.into()),
                issuer: "iss".into(),
                audiences: vec!["aud".into()],
                leeway: std::time::Duration::ZERO,
            }),
            identity_header: "x-user".into(),
            knox_doas: false,
        }
    }

    #[tokio::test]
    async fn an_authenticator_from_a_key_set_file_verifies_and_refuses() {
        use crate::test_keys::{claims, TestKey};
        let dir = tempfile::tempdir().unwrap();
        let key = TestKey::p256("k");
        std::fs::write(dir.path().join("jwks.json"), TestKey::jwks(&[&key])).unwrap();
        let auth = Authenticator::build(&file_policy("jwks.json"), dir.path()).unwrap();
        assert_eq!(auth.identity_header().as_str(), "x-user");
        assert_eq!(auth.jwt().map(JwtVerifier::keys), Some(1));
        let bearer = |token: String| headers(&[&format!("Bearer {token}")]);
        let principal = auth
            .authenticate(&bearer(key.sign(&claims("ann", "iss", "aud"))))
            .await
            .unwrap();
        assert_eq!(principal.method, AuthMethod::Jwt);
        assert_eq!(principal.principal.name, "ann");
        // A file set is never refetched: an unknown kid is simply invalid.
        let stranger = TestKey::p256("other");
        let refused = auth
            .authenticate(&bearer(stranger.sign(&claims("ann", "iss", "aud"))))
            .await;
        let refused = refused.unwrap_err();
        assert_eq!(
            (refused.method, refused.result),
            (Some(AuthMethod::Jwt), AuthResult::Invalid)
        );
        assert!(refused
            .challenge
            .to_str()
            .unwrap()
            .contains("invalid_token"));
        let missing = auth
            .authenticate(&headers(&["Basic YTpi"]))
            .await
            .unwrap_err();
        assert_eq!(
            (missing.method, missing.result),
            (None, AuthResult::Missing)
        );
        assert_eq!(missing.challenge, "Bearer realm=\"portcullis\"");
        let missing = Authenticator::build(&file_policy("gone.json"), dir.path());
        assert!(matches!(missing, Err(PolicyError::Jwks(_))));
    }

    #[test]
    fn challenges_follow_rfc_6750() {
        assert_eq!(
            AuthResult::Missing.challenge(),
            "Bearer realm=\"portcullis\""
        );
        assert!(AuthResult::Expired
            .challenge()
            .ends_with("error=\"invalid_token\""));
    }

    #[test]
    fn counts_are_kept_per_result() {
        let counts = AuthCounts::default();
        let jwt = Some(AuthMethod::Jwt);
        counts.count(jwt, AuthResult::Ok);
        counts.count(jwt, AuthResult::Ok);
        counts.count(jwt, AuthResult::Expired);
        counts.count(None, AuthResult::Missing);
        assert_eq!(
            counts.snapshot(),
            vec![
                ("none", AuthResult::Missing, 1),
                ("jwt", AuthResult::Ok, 2),
                ("jwt", AuthResult::Expired, 1)
            ]
        );
    }
}
