//! JWT bearer tokens: RS256, ES256 and EdDSA signatures only, whatever the
//! key set holds (`alg: none` and the HS* family, which would let a public
//! key be used as an HMAC secret, never verify); then `iss`, `aud` (any of
//! the configured audiences), `exp` and `nbf` with the leeway. The
//! principal is `sub`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use portcullis_config::{JwksSource, JwtPolicy};
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;

use crate::keys::{KeySet, KeySource, KeyStore};
use crate::token_cache::TokenCache;
use crate::{AuthResult, PolicyError, Principal};

/// The algorithms a token may be signed with, each with its validation.
const ALGORITHMS: [Algorithm; 3] = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

/// Why a token did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtFailure {
    /// No key in the set for the token's `kid` and algorithm.
    UnknownKey,
    Expired,
    Invalid,
}

impl JwtFailure {
    pub fn result(self) -> AuthResult {
        match self {
            JwtFailure::Expired => AuthResult::Expired,
            JwtFailure::Invalid | JwtFailure::UnknownKey => AuthResult::Invalid,
        }
    }
}

#[derive(serde::Deserialize)]
struct Claims {
    sub: String,
    /// Required and checked by jsonwebtoken; read here for the cache.
    #[serde(default)]
    exp: Option<f64>,
    /// Every other top-level claim; the ones authorization can use (strings
    /// and arrays of strings) are kept on the principal.
    #[serde(flatten)]
    others: serde_json::Map<String, serde_json::Value>,
}

/// Bounds on what a token's claims may make the principal hold. Dropping
/// what is beyond them can only make a `claims` rule fail, never pass.
pub(crate) const MAX_CLAIMS: usize = 32;
pub(crate) const MAX_CLAIM_VALUES: usize = 64;
pub(crate) const MAX_CLAIM_BYTES: usize = 1024;

pub struct JwtVerifier {
    keys: Arc<KeyStore>,
    /// One per entry of [`ALGORITHMS`]: jsonwebtoken checks every listed
    /// algorithm against the key's family, so each key family gets its own.
    validations: [Validation; 3],
    leeway: Duration,
    /// Tokens that verified, so a repeated one skips its signature check.
    cache: TokenCache,
    /// The background refresher of a URL key set; dropping the verifier
    /// (a reload that replaces the service) stops it.
    _refresher: Option<AbortOnDropHandle<()>>,
}

impl JwtVerifier {
    /// A `file:` set is read now; a URL set starts empty and is fetched at
    /// once in the background, on the current runtime.
    pub fn build(policy: &JwtPolicy, base_dir: &Path) -> Result<JwtVerifier, PolicyError> {
        match &policy.jwks {
            JwksSource::File(path) => {
                let bytes = portcullis_config::read_jwks_file(path, base_dir)?;
                let keys = portcullis_config::parse_jwks(&bytes)?;
                Ok(Self::with_store(
                    policy,
                    Arc::new(KeyStore::fixed(keys)),
                    None,
                ))
            }
            JwksSource::Url(url) => {
                let source = crate::fetch::UrlSource::new(url).map_err(PolicyError::Client)?;
                Self::fetching(policy, Box::new(source))
            }
        }
    }

    /// A verifier whose key set comes from `source`, refreshed in the
    /// background on the current runtime.
    pub fn fetching(policy: &JwtPolicy, source: Box<dyn KeySource>) -> Result<Self, PolicyError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| PolicyError::NoRuntime)?;
        let store = Arc::new(KeyStore::fetched(source));
        let task = AbortOnDropHandle::new(runtime.spawn(store.clone().run_refresher()));
        Ok(Self::with_store(policy, store, Some(task)))
    }

    pub(crate) fn with_store(
        policy: &JwtPolicy,
        keys: Arc<KeyStore>,
        refresher: Option<AbortOnDropHandle<()>>,
    ) -> JwtVerifier {
        let validation = |alg: Algorithm| {
            let mut v = Validation::new(alg);
            v.set_issuer(&[&policy.issuer]);
            v.set_audience(&policy.audiences);
            v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
            v.validate_nbf = true;
            v.leeway = policy.leeway.as_secs();
            v
        };
        JwtVerifier {
            keys,
            validations: ALGORITHMS.map(validation),
            leeway: policy.leeway,
            cache: TokenCache::default(),
            _refresher: refresher,
        }
    }

    /// Keys in the set now (0 until a URL set is first fetched).
    pub fn keys(&self) -> usize {
        self.keys.current().key_count()
    }

    /// Verifies `token` against the key set as it is now: from the cache
    /// when it verified with this very set before and has not expired.
    pub fn verify(&self, token: &str) -> Result<Arc<Principal>, JwtFailure> {
        self.verify_bytes(token.as_bytes())
    }

    /// [`JwtVerifier::verify`] on the field's bytes: a remembered token is
    /// found without reading it as text first (a UTF-8 check of a few
    /// hundred bytes cost a fifth of the whole lookup).
    pub fn verify_bytes(&self, token: &[u8]) -> Result<Arc<Principal>, JwtFailure> {
        self.verify_at(token, Instant::now())
    }

    /// [`JwtVerifier::verify_bytes`] with the time already read (the
    /// request's start, which the data plane has at hand).
    pub fn verify_at(&self, token: &[u8], now: Instant) -> Result<Arc<Principal>, JwtFailure> {
        // Before the set is loaded (keys.rs says why).
        let generation = self.keys.generation();
        if let Some(principal) = self.cache.get(token, generation, now) {
            return Ok(principal);
        }
        let text = std::str::from_utf8(token).map_err(|_| JwtFailure::Invalid)?;
        let (principal, exp) = self.verify_signature(text, &self.keys.current())?;
        let principal = Arc::new(principal);
        let ttl = exp.map_or(Duration::ZERO, |exp| time_left(exp, self.leeway));
        self.cache.insert(token, &principal, generation, now, ttl);
        Ok(principal)
    }

    /// Whether an unknown key may appear after a refresh (a URL key set).
    pub fn refreshes(&self) -> bool {
        self.keys.refreshes()
    }

    /// Tokens that verified and are remembered (for tests).
    pub fn cached_tokens(&self) -> usize {
        self.cache.len()
    }

    /// The full check, with the `exp` claim of a token that passed it.
    fn verify_signature(
        &self,
        token: &str,
        keys: &KeySet,
    ) -> Result<(Principal, Option<f64>), JwtFailure> {
        // An unparsable header, `alg: none` included (jsonwebtoken knows no
        // such algorithm), is invalid.
        let header = jsonwebtoken::decode_header(token).map_err(|_| JwtFailure::Invalid)?;
        let index = ALGORITHMS
            .iter()
            .position(|&a| a == header.alg)
            .ok_or(JwtFailure::Invalid)?;
        let mut outcome = Err(JwtFailure::UnknownKey);
        for key in keys.candidates(header.kid.as_deref(), header.alg) {
            let decoded = jsonwebtoken::decode::<Claims>(token, &key.key, &self.validations[index]);
            outcome = match decoded {
                Ok(data) => {
                    let exp = data.claims.exp;
                    return principal(data.claims).map(|p| (p, exp));
                }
                // The signature verified before the time was checked.
                Err(e) if is_time(e.kind()) => return Err(JwtFailure::Expired),
                Err(e) if *e.kind() == ErrorKind::InvalidSignature => Err(JwtFailure::Invalid),
                Err(_) => return Err(JwtFailure::Invalid),
            };
        }
        outcome
    }

    /// See [`KeyStore::refresh_for_unknown`]: true when the set now has a
    /// key the token may be verified with.
    pub async fn refresh_for_unknown_key(&self, token: &str) -> bool {
        let Ok(header) = jsonwebtoken::decode_header(token) else {
            return false;
        };
        let kid = header.kid.as_deref();
        let has_key = |set: &KeySet| set.candidates(kid, header.alg).next().is_some();
        self.keys.refresh_for_unknown(has_key).await
    }
}

/// How long a token with `exp` stays acceptable from now, with the leeway.
fn time_left(exp: f64, leeway: Duration) -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let until = Duration::try_from_secs_f64(exp.max(0.0)).unwrap_or_default() + leeway;
    until.saturating_sub(now)
}

fn is_time(kind: &ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::ExpiredSignature | ErrorKind::ImmatureSignature
    )
}

fn principal(claims: Claims) -> Result<Principal, JwtFailure> {
    if claims.sub.is_empty() {
        return Err(JwtFailure::Invalid);
    }
    let mut kept = std::collections::BTreeMap::new();
    for (name, value) in claims.others {
        if kept.len() == MAX_CLAIMS {
            break;
        }
        if let Some(values) = claim_strings(value) {
            kept.insert(name, values);
        }
    }
    let groups = kept.get("groups").cloned().unwrap_or_default();
    Ok(Principal {
        groups,
        claims: kept,
        ..Principal::named(claims.sub)
    })
}

/// A string claim as one value, an array as its string items; `None` for
/// other kinds (numbers, objects), which authorization does not compare.
fn claim_strings(value: serde_json::Value) -> Option<Vec<String>> {
    let fits = |s: &String| s.len() <= MAX_CLAIM_BYTES;
    match value {
        serde_json::Value::String(one) => fits(&one).then(|| vec![one]),
        serde_json::Value::Array(items) => Some(
            items
                .into_iter()
                .filter_map(|v| match v {
                    serde_json::Value::String(s) if fits(&s) => Some(s),
                    _ => None,
                })
                .take(MAX_CLAIM_VALUES)
                .collect(),
        ),
        _ => None,
    }
}

#[cfg(test)]
#[path = "jwt_tests.rs"]
mod tests;
