use std::time::Duration;

use serde_json::json;

use super::*;
use crate::test_keys::{claims, hs256, now, unsigned, TestKey};

const ISS: &str = "https://idp.example";

fn policy() -> JwtPolicy {
    JwtPolicy {
        jwks: JwksSource::File("unused".into()),
        issuer: ISS.into(),
        audiences: vec!["orders".into(), "billing".into()],
        leeway: Duration::from_secs(30),
    }
}

fn verifier(keys: &[&TestKey]) -> JwtVerifier {
    let set = portcullis_config::parse_jwks(TestKey::jwks(keys).as_bytes()).unwrap();
    JwtVerifier::with_store(&policy(), Arc::new(KeyStore::fixed(set)), None)
}

#[test]
fn rs256_es256_and_eddsa_tokens_verify_and_give_sub_and_groups() {
    let keys = [TestKey::rsa("r"), TestKey::p256("p"), TestKey::ed25519("e")];
    let verifier = verifier(&keys.iter().collect::<Vec<_>>());
    for key in &keys {
        let mut claims = claims("alice", ISS, "billing");
        claims["groups"] = json!(["analysts", 3, "ops"]);
        let principal = verifier.verify(&key.sign(&claims)).unwrap();
        assert_eq!(principal.name, "alice", "{:?}", key.algorithm);
        assert_eq!(principal.groups, ["analysts", "ops"]);
    }
}

#[test]
fn string_and_string_array_claims_are_kept_within_bounds() {
    let key = TestKey::ed25519("e");
    let verifier = verifier(&[&key]);
    let mut claims = claims("alice", ISS, "orders");
    claims["scope"] = json!("orders:read orders:write");
    claims["roles"] = json!(["a", 1, "b"]);
    claims["nested"] = json!({ "x": "y" });
    claims["huge"] = json!("x".repeat(2000));
    claims["many"] = json!((0..100).map(|i| i.to_string()).collect::<Vec<_>>());
    let principal = verifier.verify(&key.sign(&claims)).unwrap();
    assert_eq!(principal.claims["scope"], ["orders:read orders:write"]);
    assert_eq!(principal.claims["roles"], ["a", "b"]);
    assert_eq!(principal.claims["iss"], [ISS]);
    assert_eq!(principal.claims["many"].len(), 64);
    assert!(!principal.claims.contains_key("nested"));
    assert!(!principal.claims.contains_key("huge"));
    assert!(
        !principal.claims.contains_key("exp"),
        "numbers are not kept"
    );
    assert!(principal.groups.is_empty());
    for i in 0..40 {
        claims[format!("c{i:02}")] = json!("v");
    }
    let principal = verifier.verify(&key.sign(&claims)).unwrap();
    assert_eq!(principal.claims.len(), 32);
}

#[test]
fn alg_none_and_hs256_with_the_public_key_are_refused() {
    let key = TestKey::ed25519("e");
    let verifier = verifier(&[&key]);
    let good = claims("alice", ISS, "orders");
    assert_eq!(
        verifier.verify(&unsigned("e", &good)),
        Err(JwtFailure::Invalid)
    );
    let forged = hs256(&key.public_bytes(), "e", &good);
    assert_eq!(verifier.verify(&forged), Err(JwtFailure::Invalid));
    // The HMAC secret as an `oct` key in the set changes nothing: such keys
    // are never loaded.
    let set = format!(
        r#"{{"keys":[{},{{"kty":"oct","kid":"h","k":"c2VjcmV0"}}]}}"#,
        key.jwk()
    );
    let keys = portcullis_config::parse_jwks(set.as_bytes()).unwrap();
    let with_oct = JwtVerifier::with_store(&policy(), Arc::new(KeyStore::fixed(keys)), None);
    assert_eq!(
        with_oct.verify(&hs256(b"secret", "h", &good)),
        Err(JwtFailure::Invalid)
    );
    assert!(with_oct.verify(&key.sign(&good)).is_ok());
}

#[test]
fn a_token_signed_by_another_key_under_a_known_kid_is_invalid() {
    let real = TestKey::p256("k1");
    let other = TestKey::p256("other").with_kid("k1");
    let verifier = verifier(&[&real]);
    let good = claims("alice", ISS, "orders");
    assert_eq!(
        verifier.verify(&other.sign(&good)),
        Err(JwtFailure::Invalid)
    );
    assert!(verifier.verify(&real.sign(&good)).is_ok());
}

#[test]
fn an_unknown_kid_or_a_kid_of_another_algorithm_is_an_unknown_key() {
    let key = TestKey::ed25519("e");
    let verifier = verifier(&[&key]);
    let good = claims("alice", ISS, "orders");
    let stranger = TestKey::ed25519("new");
    assert_eq!(
        verifier.verify(&stranger.sign(&good)),
        Err(JwtFailure::UnknownKey)
    );
    let p = TestKey::p256("e");
    assert_eq!(verifier.verify(&p.sign(&good)), Err(JwtFailure::UnknownKey));
}

#[test]
fn issuer_audience_and_subject_are_checked() {
    let key = TestKey::ed25519("e");
    let verifier = verifier(&[&key]);
    let check = |claims: serde_json::Value| verifier.verify(&key.sign(&claims));
    assert_eq!(
        check(claims("alice", "https://evil.example", "orders")),
        Err(JwtFailure::Invalid)
    );
    assert_eq!(
        check(claims("alice", ISS, "payroll")),
        Err(JwtFailure::Invalid)
    );
    let mut several = claims("alice", ISS, "x");
    several["aud"] = json!(["payroll", "orders"]);
    assert!(check(several).is_ok(), "one audience of the list suffices");
    assert_eq!(check(claims("", ISS, "orders")), Err(JwtFailure::Invalid));
    let mut no_sub = claims("alice", ISS, "orders");
    no_sub.as_object_mut().unwrap().remove("sub");
    assert_eq!(check(no_sub), Err(JwtFailure::Invalid));
    let mut no_exp = claims("alice", ISS, "orders");
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_eq!(check(no_exp), Err(JwtFailure::Invalid));
}

#[test]
fn exp_and_nbf_hold_within_the_leeway_only() {
    let key = TestKey::rsa("r");
    let verifier = verifier(&[&key]);
    let at = |exp: i64, nbf: i64| {
        let mut c = claims("alice", ISS, "orders");
        c["exp"] = exp.into();
        c["nbf"] = nbf.into();
        verifier.verify(&key.sign(&c))
    };
    let t = now();
    assert!(at(t - 20, t - 100).is_ok(), "expired 20 s ago, leeway 30 s");
    assert_eq!(at(t - 40, t - 100), Err(JwtFailure::Expired));
    assert!(at(t + 100, t + 20).is_ok(), "valid in 20 s, leeway 30 s");
    assert_eq!(at(t + 100, t + 40), Err(JwtFailure::Expired));
    assert_eq!(JwtFailure::Expired.result(), AuthResult::Expired);
}

#[test]
fn malformed_tokens_are_invalid() {
    let verifier = verifier(&[&TestKey::ed25519("e")]);
    for token in ["", "a.b.c", "not-a-token", "a.b"] {
        assert_eq!(
            verifier.verify(token),
            Err(JwtFailure::Invalid),
            "{token:?}"
        );
    }
}

#[test]
fn bytes_that_are_not_text_are_refused_not_read_lossily() {
    let good = TestKey::ed25519("e");
    let checked = verifier(&[&good]);
    let mut token = good.sign(&claims("alice", ISS, "orders")).into_bytes();
    token.push(0xff);
    assert_eq!(checked.verify_bytes(&token), Err(JwtFailure::Invalid));
}

/// A key source that serves whatever set the test last put in it.
struct Served(Arc<std::sync::Mutex<String>>);

impl KeySource for Served {
    fn fetch(&self) -> crate::keys::FetchFuture<'_> {
        let json = self.0.lock().unwrap().clone();
        Box::pin(async move { Ok(portcullis_config::parse_jwks(json.as_bytes())?) })
    }
    fn describe(&self) -> String {
        "served".into()
    }
}

#[tokio::test]
async fn a_verified_token_is_remembered_until_its_key_leaves_the_set() {
    let (a, b) = (TestKey::ed25519("a"), TestKey::ed25519("b"));
    let served = Arc::new(std::sync::Mutex::new(TestKey::jwks(&[&a, &b])));
    let store = Arc::new(KeyStore::fetched(Box::new(Served(served.clone()))));
    assert!(store.refresh().await);
    let verifier = JwtVerifier::with_store(&policy(), store.clone(), None);
    let token = a.sign(&claims("alice", ISS, "orders"));
    for _ in 0..3 {
        assert_eq!(verifier.verify(&token).unwrap().name, "alice");
    }
    assert_eq!(
        verifier.cached_tokens(),
        1,
        "verified once, then remembered"
    );
    assert!(verifier
        .verify(&b.sign(&claims("bob", ISS, "orders")))
        .is_ok());
    assert_eq!(verifier.cached_tokens(), 2);
    // Refused tokens are never remembered.
    let forged = hs256(&a.public_bytes(), "a", &claims("eve", ISS, "orders"));
    assert_eq!(verifier.verify(&forged), Err(JwtFailure::Invalid));
    assert_eq!(verifier.cached_tokens(), 2);
    // Key `a` rotated out: its remembered token no longer passes.
    *served.lock().unwrap() = TestKey::jwks(&[&b]);
    assert!(store.refresh().await);
    assert_eq!(verifier.verify(&token), Err(JwtFailure::UnknownKey));
}

#[test]
fn a_token_is_remembered_until_exp_plus_the_leeway() {
    let t = now() as f64;
    let leeway = Duration::from_secs(30);
    let left = time_left(t + 100.0, leeway).as_secs();
    assert!((128..=130).contains(&left), "{left}");
    let left = time_left(t - 20.0, leeway).as_secs();
    assert!((8..=10).contains(&left), "{left}");
    assert_eq!(time_left(t - 40.0, leeway), Duration::ZERO);
    assert_eq!(time_left(-5.0, leeway), Duration::ZERO);
}

#[tokio::test]
async fn a_token_whose_key_a_url_set_may_gain_is_judged_only_after_waiting() {
    let (a, b) = (TestKey::ed25519("a"), TestKey::ed25519("b"));
    let served = Arc::new(std::sync::Mutex::new(TestKey::jwks(&[&a])));
    let verifier = JwtVerifier::fetching(&policy(), Box::new(Served(served.clone()))).unwrap();
    let auth =
        crate::Authenticator::from_parts(verifier, http::HeaderName::from_static("x-user"), false);
    let bearer = |token: String| {
        let mut map = http::HeaderMap::new();
        let value = http::HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
        map.insert(http::header::AUTHORIZATION, value);
        map
    };
    let with_b = bearer(b.sign(&claims("bob", ISS, "orders")));
    // b is not in the set yet, but a refresh may bring it: no answer now.
    assert!(auth
        .authenticate_headers_now(&with_b, tokio::time::Instant::now())
        .is_none());
    *served.lock().unwrap() = TestKey::jwks(&[&a, &b]);
    let signed_in = auth.authenticate_headers(&with_b).await.unwrap();
    assert_eq!(signed_in.principal.name, "bob");
    // Remembered now: judged at once.
    assert!(matches!(
        auth.authenticate_headers_now(&with_b, tokio::time::Instant::now()),
        Some(Ok(_))
    ));
}
