//! Reading a JWT key set (JWKS, RFC 7517). Validation (`portcullis check`,
//! the admin API, a member about to apply a `file:` key set) and the data
//! plane's verifier (files and fetched URLs alike) call the same functions,
//! so a key set that one accepts the other cannot refuse.

use std::path::Path;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("cannot read the key set {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("not a JWK set (a JSON object with a \"keys\" array): {0}")]
    Parse(String),
    #[error("the key set holds no usable RS256, ES256 (P-256) or EdDSA (Ed25519) signature key")]
    NoUsableKey,
}

/// One verification key, prepared once per key set.
#[derive(Clone)]
pub struct JwtKey {
    pub kid: Option<String>,
    /// The only algorithm this key verifies: RS256 for RSA, ES256 for P-256,
    /// EdDSA for Ed25519.
    pub algorithm: Algorithm,
    pub key: DecodingKey,
}

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// The bytes of a `file:` key set, `path` relative to `base_dir` (the
/// member's config directory).
pub fn read_jwks_file(path: &str, base_dir: &Path) -> Result<Vec<u8>, JwksError> {
    let path = base_dir.join(path);
    std::fs::read(&path).map_err(|source| JwksError::Read {
        path: path.display().to_string(),
        source,
    })
}

#[derive(serde::Deserialize)]
struct RawSet {
    keys: Vec<serde_json::Value>,
}

/// The usable keys of a JWK set. Keys of other types, curves or algorithms,
/// and encryption keys, are skipped (an identity provider's set often holds
/// some); at least one must be usable.
pub fn parse_jwks(bytes: &[u8]) -> Result<Vec<JwtKey>, JwksError> {
    let set: RawSet = serde_json::from_slice(bytes).map_err(|e| JwksError::Parse(e.to_string()))?;
    let keys: Vec<JwtKey> = set
        .keys
        .into_iter()
        .filter_map(|value| serde_json::from_value::<Jwk>(value).ok())
        .filter_map(|jwk| usable_key(&jwk))
        .collect();
    if keys.is_empty() {
        return Err(JwksError::NoUsableKey);
    }
    Ok(keys)
}

fn usable_key(jwk: &Jwk) -> Option<JwtKey> {
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return None;
    }
    let algorithm = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            Algorithm::ES256
        }
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            Algorithm::EdDSA
        }
        _ => return None,
    };
    // A key that names its algorithm is used for that one only.
    let declared_fits = match jwk.common.key_algorithm {
        None => true,
        Some(KeyAlgorithm::RS256) => algorithm == Algorithm::RS256,
        Some(KeyAlgorithm::ES256) => algorithm == Algorithm::ES256,
        Some(KeyAlgorithm::EdDSA) => algorithm == Algorithm::EdDSA,
        Some(_) => false,
    };
    if !declared_fits {
        return None;
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(JwtKey {
        kid: jwk.common.key_id.clone(),
        algorithm,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED_KEY: &str = r#"{"kty":"OKP","crv":"Ed25519","kid":"ed","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;

    #[test]
    fn usable_keys_are_kept_and_others_skipped() {
        let set = format!(
            r#"{{"keys":[{ED_KEY},
            {{"kty":"oct","k":"c2VjcmV0","kid":"hmac"}},
            {{"kty":"OKP","crv":"Ed25519","use":"enc","kid":"enc","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}},
            {{"kty":"OKP","crv":"Ed25519","alg":"RS256","kid":"wrong-alg","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}},
            {{"kty":"weird"}}]}}"#
        );
        let keys = parse_jwks(set.as_bytes()).unwrap();
        assert_eq!(keys.len(), 1, "{keys:?}");
        assert_eq!(keys[0].kid.as_deref(), Some("ed"));
        assert_eq!(keys[0].algorithm, Algorithm::EdDSA);
    }

    #[test]
    fn a_set_without_usable_keys_or_not_a_set_is_refused() {
        let only_hmac = br#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#;
        assert!(matches!(parse_jwks(only_hmac), Err(JwksError::NoUsableKey)));
        assert!(matches!(parse_jwks(b"[]"), Err(JwksError::Parse(_))));
        assert!(matches!(
            parse_jwks(b"{\"keys\":[]}"),
            Err(JwksError::NoUsableKey)
        ));
    }

    #[test]
    fn a_missing_file_names_its_path() {
        let err = read_jwks_file("nope.json", Path::new("/nonexistent-dir")).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent-dir/nope.json"),
            "{err}"
        );
    }
}
