//! Fuzz targets for what a client or an identity provider sends the policy
//! code (docs/fuzzing.md): key sets and signed tokens. Each function panics
//! only when an invariant is broken; `fuzz/` runs them under libFuzzer and
//! `tests/fuzz_corpus.rs` over the committed corpus in every `cargo test`.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use portcullis_config::{JwksSource, JwtPolicy};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::Value;

use crate::jwt::JwtVerifier;
use crate::keys::KeyStore;

/// `portcullis_config::parse_jwks` on any bytes: never panics; every key it
/// keeps is of an algorithm the verifier allows, and it keeps no more keys
/// than the set has RSA, P-256 or Ed25519 entries that are not for
/// encryption, each with a `kid` the set names (or none).
pub fn jwks(data: &[u8]) {
    let Ok(keys) = portcullis_config::parse_jwks(data) else {
        return;
    };
    assert!(!keys.is_empty(), "an accepted set has a key");
    let set: Value = serde_json::from_slice(data).expect("an accepted set is JSON");
    let entries = set["keys"]
        .as_array()
        .expect("an accepted set has a keys array");
    let candidates = entries
        .iter()
        .filter(|k| matches!(k["kty"].as_str(), Some("RSA" | "EC" | "OKP")))
        .filter(|k| k["use"].as_str().is_none_or(|u| u == "sig"))
        .count();
    assert!(
        keys.len() <= candidates,
        "{} keys from {candidates}",
        keys.len()
    );
    for key in &keys {
        use jsonwebtoken::Algorithm::{EdDSA, ES256, RS256};
        assert!(matches!(key.algorithm, RS256 | ES256 | EdDSA), "{key:?}");
        if let Some(kid) = &key.kid {
            assert!(
                entries.iter().any(|k| k["kid"].as_str() == Some(kid)),
                "kid {kid:?} not in the set"
            );
        }
    }
}

const ISSUER: &str = "https://idp.fuzz";
const AUDIENCES: [&str; 2] = ["orders", "billing"];
const LEEWAY: Duration = Duration::from_secs(30);

/// The fixed signing key (a seed, not a secret: it signs fuzz inputs only)
/// and a verifier that trusts its public half under kid `fuzz`.
fn fixture() -> &'static (Ed25519KeyPair, JwtVerifier) {
    static FIXTURE: OnceLock<(Ed25519KeyPair, JwtVerifier)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let pair = Ed25519KeyPair::from_seed_unchecked(&[7; 32]).expect("seed");
        let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        let set = format!(r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","kid":"fuzz","x":"{x}"}}]}}"#);
        let keys = portcullis_config::parse_jwks(set.as_bytes()).expect("fixture set");
        let policy = JwtPolicy {
            jwks: JwksSource::File("fuzz".into()),
            issuer: ISSUER.into(),
            audiences: AUDIENCES.map(String::from).to_vec(),
            leeway: LEEWAY,
        };
        let verifier = JwtVerifier::with_store(&policy, Arc::new(KeyStore::fixed(keys)), None);
        (pair, verifier)
    })
}

/// `JwtVerifier::verify` on tokens that are **signed by the trusted key**,
/// so the fuzzer reaches the claim checks. Input: line 1 is the header JSON
/// (empty: `{"alg":"EdDSA","kid":"fuzz"}`), the rest the claims text, both
/// taken as bytes; a first line of `raw` makes the rest the whole token,
/// unsigned by the target. Never panics; a token it accepts has an EdDSA
/// header, `iss` the issuer, a non-empty string `sub` equal to the
/// principal, an `aud` holding one of the audiences, a numeric `exp` not
/// past the leeway and no `nbf` beyond it, and the principal's groups are
/// the string members of `groups` (within the caps jwt.rs keeps claims
/// to), every kept claim within them too. Verifying again (from the cache) gives
/// the same answer.
pub fn jwt_claims(data: &[u8]) {
    let (_, verifier) = fixture();
    let token = token_for(data);
    let first_answer = verifier.verify(&token);
    assert_eq!(
        verifier.verify(&token),
        first_answer,
        "a second look differs"
    );
    let Ok(principal) = first_answer else {
        return;
    };
    let part = |i: usize| -> Value {
        let text = token.split('.').nth(i).expect("three parts");
        let bytes = URL_SAFE_NO_PAD.decode(text).expect("base64url part");
        serde_json::from_slice(&bytes).expect("a JSON part")
    };
    assert_eq!(part(0)["alg"], "EdDSA");
    let claims = part(1);
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["sub"].as_str(), Some(principal.name.as_str()));
    assert!(!principal.name.is_empty());
    let aud_ok = match &claims["aud"] {
        Value::String(a) => AUDIENCES.contains(&a.as_str()),
        Value::Array(list) => list
            .iter()
            .any(|a| a.as_str().is_some_and(|a| AUDIENCES.contains(&a))),
        _ => false,
    };
    assert!(aud_ok, "aud {:?}", claims["aud"]);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let exp = claims["exp"].as_f64().expect("a numeric exp");
    assert!(exp + LEEWAY.as_secs_f64() + 1.0 >= now, "expired {exp}");
    if let Some(nbf) = claims.get("nbf") {
        let nbf = nbf.as_f64().expect("a numeric nbf");
        assert!(
            nbf - LEEWAY.as_secs_f64() - 1.0 <= now,
            "not yet valid {nbf}"
        );
    }
    // Groups and claims are kept within the caps (jwt.rs): string items of
    // up to MAX_CLAIM_BYTES, at most MAX_CLAIM_VALUES of them.
    use crate::jwt::{MAX_CLAIMS, MAX_CLAIM_BYTES, MAX_CLAIM_VALUES};
    let fits = |s: &&str| s.len() <= MAX_CLAIM_BYTES;
    let groups: Vec<&str> = match &claims["groups"] {
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .filter(fits)
            .take(MAX_CLAIM_VALUES)
            .collect(),
        Value::String(one) if fits(&one.as_str()) => vec![one.as_str()],
        _ => Vec::new(),
    };
    let claim_count = claims.as_object().map_or(0, |o| o.len());
    assert!(
        principal.groups == groups || (principal.groups.is_empty() && claim_count > MAX_CLAIMS),
        "groups {:?} from {:?}",
        principal.groups,
        claims["groups"]
    );
    assert!(principal.claims.len() <= MAX_CLAIMS);
    for (name, values) in &principal.claims {
        assert!(values.len() <= MAX_CLAIM_VALUES, "{name}");
        assert!(values.iter().all(|v| v.len() <= MAX_CLAIM_BYTES), "{name}");
    }
}

/// The token [`jwt_claims`] checks for an input.
fn token_for(data: &[u8]) -> String {
    let (pair, _) = fixture();
    let (first, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(n) => (&data[..n], &data[n + 1..]),
        None => (data, &[][..]),
    };
    if first == b"raw" {
        return String::from_utf8_lossy(rest).into_owned();
    }
    let header: &[u8] = if first.is_empty() {
        br#"{"alg":"EdDSA","kid":"fuzz"}"#
    } else {
        first
    };
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(rest)
    );
    let signature = pair.sign(signing_input.as_bytes());
    format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.as_ref())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signed_inputs_reach_acceptance_and_refusal() {
        let (_, verifier) = fixture();
        let claims = r#"{"iss":"https://idp.fuzz","sub":"alice","aud":"orders","exp":4102444800,"groups":["a",1]}"#;
        let principal = verifier.verify(&token_for(format!("\n{claims}").as_bytes()));
        assert_eq!(
            principal.map(|p| (p.name.clone(), p.groups.clone())),
            Ok(("alice".into(), vec!["a".into()]))
        );
        let other_kid = format!("{{\"alg\":\"EdDSA\",\"kid\":\"x\"}}\n{claims}");
        assert!(verifier.verify(&token_for(other_kid.as_bytes())).is_err());
        jwt_claims(format!("\n{claims}").as_bytes());
    }
}
