//! Gateway policies (PRODUCT.md §11, docs/policies.md): who may call a
//! service and who the backend is told the caller is. Built from a
//! service's `[service.auth]`, used by the data plane after routing and
//! before forwarding. This slice has one method, JWT bearer tokens.
//!
//! Nothing here knows the data plane's types: it takes request headers and
//! gives a [`Principal`] or an [`AuthResult`] to answer with.
#![forbid(unsafe_code)]

mod doas;
mod fetch;
mod jwt;
mod keys;
#[cfg(any(test, feature = "test-keys"))]
pub mod test_keys;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use http::header::{HeaderMap, HeaderName, AUTHORIZATION};
use portcullis_config::{AuthMethod, AuthPolicy};

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
    /// The token's `groups` claim (strings only), for authorization (next
    /// slice); empty when absent.
    pub groups: Vec<String>,
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
}

impl AuthResult {
    pub const ALL: [AuthResult; 4] = [
        AuthResult::Ok,
        AuthResult::Missing,
        AuthResult::Invalid,
        AuthResult::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuthResult::Ok => "ok",
            AuthResult::Missing => "missing",
            AuthResult::Invalid => "invalid",
            AuthResult::Expired => "expired",
        }
    }

    /// The `WWW-Authenticate` value a refused request gets (RFC 6750 §3):
    /// an error code only when credentials were sent.
    pub fn challenge(self) -> &'static str {
        match self {
            AuthResult::Missing | AuthResult::Ok => "Bearer realm=\"portcullis\"",
            AuthResult::Invalid | AuthResult::Expired => {
                "Bearer realm=\"portcullis\", error=\"invalid_token\""
            }
        }
    }
}

/// Authentication results of one service, by result; kept across reloads by
/// the data plane's service stats. Only JWT exists, so no method index yet.
#[derive(Debug, Default)]
pub struct AuthCounts([AtomicU64; 4]);

impl AuthCounts {
    pub fn count(&self, result: AuthResult) {
        self.0[result as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// `(method, result, count)` for every result counted at least once.
    pub fn snapshot(&self) -> Vec<(&'static str, AuthResult, u64)> {
        AuthResult::ALL
            .iter()
            .map(|&r| {
                (
                    AuthMethod::Jwt.as_str(),
                    r,
                    self.0[r as usize].load(Ordering::Relaxed),
                )
            })
            .filter(|(_, _, n)| *n > 0)
            .collect()
    }
}

/// A service's `[service.auth]`, ready for requests.
pub struct Authenticator {
    jwt: JwtVerifier,
    identity_header: HeaderName,
    knox_doas: bool,
}

impl Authenticator {
    /// Reads a `file:` key set now; a URL key set is fetched in the
    /// background on the current tokio runtime until this is dropped.
    pub fn build(policy: &AuthPolicy, base_dir: &Path) -> Result<Authenticator, PolicyError> {
        let identity_header = HeaderName::from_bytes(policy.identity_header.as_bytes())
            .map_err(|_| PolicyError::IdentityHeader(policy.identity_header.clone()))?;
        // Validation guarantees the table for the one method there is.
        let Some(jwt) = &policy.jwt else {
            return Err(PolicyError::Client("no jwt table".into()));
        };
        Ok(Authenticator {
            jwt: JwtVerifier::build(jwt, base_dir)?,
            identity_header,
            knox_doas: policy.knox_doas,
        })
    }

    pub fn from_parts(jwt: JwtVerifier, identity_header: HeaderName, knox_doas: bool) -> Self {
        Authenticator {
            jwt,
            identity_header,
            knox_doas,
        }
    }

    pub fn identity_header(&self) -> &HeaderName {
        &self.identity_header
    }

    /// The JWT verifier, for its key count.
    pub fn jwt(&self) -> &JwtVerifier {
        &self.jwt
    }

    pub fn knox_doas(&self) -> bool {
        self.knox_doas
    }

    /// Authenticates a request by its headers. A token whose key is not in
    /// the set may wait for one refresh of a URL key set.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, AuthResult> {
        let token = bearer_token(headers)?;
        match self.jwt.verify(token) {
            Ok(principal) => Ok(principal),
            Err(JwtFailure::UnknownKey) => {
                if self.jwt.refresh_for_unknown_key(token).await {
                    self.jwt.verify(token).map_err(JwtFailure::result)
                } else {
                    Err(AuthResult::Invalid)
                }
            }
            Err(failure) => Err(failure.result()),
        }
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
    use http::HeaderValue;

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
        assert_eq!(auth.jwt().keys(), 1);
        let bearer = |token: String| headers(&[&format!("Bearer {token}")]);
        let principal = auth
            .authenticate(&bearer(key.sign(&claims("ann", "iss", "aud"))))
            .await
            .unwrap();
        assert_eq!(principal.name, "ann");
        // A file set is never refetched: an unknown kid is simply invalid.
        let stranger = TestKey::p256("other");
        let refused = auth
            .authenticate(&bearer(stranger.sign(&claims("ann", "iss", "aud"))))
            .await;
        assert_eq!(refused, Err(AuthResult::Invalid));
        assert_eq!(
            auth.authenticate(&headers(&[])).await,
            Err(AuthResult::Missing)
        );
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
        counts.count(AuthResult::Ok);
        counts.count(AuthResult::Ok);
        counts.count(AuthResult::Expired);
        assert_eq!(
            counts.snapshot(),
            vec![("jwt", AuthResult::Ok, 2), ("jwt", AuthResult::Expired, 1)]
        );
    }
}
