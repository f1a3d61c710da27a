use super::*;

fn headers(values: &[&str]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for v in values {
        map.append(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
    }
    map
}

fn authz(values: &[&str]) -> Authorization {
    Authorization::take(&mut headers(values))
}

#[test]
fn authorization_leaves_the_head_whole() {
    let mut twice = headers(&["Bearer a", "Basic YTpi"]);
    twice.insert("x-other", HeaderValue::from_static("kept"));
    assert_eq!(Authorization::take(&mut twice), Authorization::Several);
    assert!(twice.get(AUTHORIZATION).is_none());
    assert_eq!(twice.len(), 1);
    let mut once = headers(&["Bearer a"]);
    assert_eq!(
        Authorization::take(&mut once),
        Authorization::One(HeaderValue::from_static("Bearer a"))
    );
    assert!(once.is_empty());
    assert_eq!(Authorization::take(&mut once), Authorization::Absent);
}

#[test]
fn the_bearer_token_is_found_or_the_reason_why_not() {
    assert_eq!(bearer_token(&authz(&["Bearer abc"])), Ok(&b"abc"[..]));
    assert_eq!(bearer_token(&authz(&["bearer  abc "])), Ok(&b"abc"[..]));
    assert_eq!(bearer_token(&authz(&[])), Err(AuthResult::Missing));
    assert_eq!(
        bearer_token(&authz(&["Basic YTpi"])),
        Err(AuthResult::Missing)
    );
    assert_eq!(bearer_token(&authz(&["Bearer"])), Err(AuthResult::Invalid));
    // Another scheme's credentials are not this method's, whatever bytes
    // they hold; a bearer token that is not text is invalid.
    let mut other = HeaderMap::new();
    other.insert(
        AUTHORIZATION,
        HeaderValue::from_bytes(b"Basic \xff").unwrap(),
    );
    assert_eq!(
        bearer_token(&Authorization::take(&mut other)),
        Err(AuthResult::Missing)
    );
    let mut binary = HeaderMap::new();
    binary.insert(
        AUTHORIZATION,
        HeaderValue::from_bytes(b"Bearer a\xffb").unwrap(),
    );
    // Found as bytes; verification then refuses what is not text.
    assert_eq!(
        bearer_token(&Authorization::take(&mut binary)),
        Ok(&b"a\xffb"[..])
    );
    assert_eq!(
        bearer_token(&authz(&["Bearer a", "Bearer b"])),
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
        api_key: None,
        basic: None,
        identity_header: "x-user".into(),
        knox_doas: false,
    }
}

fn build(policy: &AuthPolicy, dir: &Path) -> Result<Authenticator, PolicyError> {
    let api_keys = ApiKeys::default();
    let scope = ServiceScope {
        topology: "t",
        service: "s",
        api_keys: &api_keys,
    };
    Authenticator::build(policy, dir, &scope)
}

#[tokio::test]
async fn an_authenticator_from_a_key_set_file_verifies_and_refuses() {
    use crate::test_keys::{claims, TestKey};
    let dir = tempfile::tempdir().unwrap();
    let key = TestKey::p256("k");
    std::fs::write(dir.path().join("jwks.json"), TestKey::jwks(&[&key])).unwrap();
    let auth = build(&file_policy("jwks.json"), dir.path()).unwrap();
    assert_eq!(auth.identity_header().as_str(), "x-user");
    assert_eq!(auth.jwt().map(JwtVerifier::keys), Some(1));
    let bearer = |token: String| headers(&[&format!("Bearer {token}")]);
    let principal = auth
        .authenticate_headers(&bearer(key.sign(&claims("ann", "iss", "aud"))))
        .await
        .unwrap();
    assert_eq!(principal.method, AuthMethod::Jwt);
    assert_eq!(principal.principal.name, "ann");
    // Without waiting, the same answer: a file set never needs a fetch.
    let now = auth
        .authenticate_headers_now(
            &bearer(key.sign(&claims("ann", "iss", "aud"))),
            tokio::time::Instant::now(),
        )
        .expect("judged at once");
    assert_eq!(now.unwrap().principal.name, "ann");
    // A file set is never refetched: an unknown kid is simply invalid.
    let stranger = TestKey::p256("other");
    let at_once = auth.authenticate_headers_now(
        &bearer(stranger.sign(&claims("ann", "iss", "aud"))),
        tokio::time::Instant::now(),
    );
    assert_eq!(
        at_once.map(|r| r.map_err(|e| e.result).is_err()),
        Some(true)
    );
    let refused = auth
        .authenticate_headers(&bearer(stranger.sign(&claims("ann", "iss", "aud"))))
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
        .authenticate_headers(&headers(&["Basic YTpi"]))
        .await
        .unwrap_err();
    assert_eq!(
        (missing.method, missing.result),
        (None, AuthResult::Missing)
    );
    assert_eq!(missing.challenge, "Bearer realm=\"portcullis\"");
    let missing = build(&file_policy("gone.json"), dir.path());
    assert!(matches!(missing, Err(PolicyError::Jwks(_))));
}

#[tokio::test]
async fn api_keys_are_tried_in_their_place_and_named_in_the_bare_challenge() {
    use crate::test_keys::{claims, TestKey};
    let dir = tempfile::tempdir().unwrap();
    let jwt_key = TestKey::p256("k");
    std::fs::write(dir.path().join("jwks.json"), TestKey::jwks(&[&jwt_key])).unwrap();
    let mut policy = file_policy("jwks.json");
    policy.methods.push(AuthMethod::ApiKey);
    policy.api_key = Some(portcullis_config::ApiKeyPolicy {
        header: "x-key".into(),
    });
    let hasher = portcullis_secrets::ApiKeyHasher::from_cookie_key(&[1; 32], "c");
    let entry = ApiKeyEntry::new("ci".into(), "t".into(), None, None);
    let table = ApiKeyTable::new(
        hasher.clone(),
        [(hasher.hash(b"pcl_k"), entry)],
        &ApiKeyTable::default(),
    );
    let api_keys: ApiKeys = std::sync::Arc::new(arc_swap::ArcSwap::from_pointee(table));
    let scope = ServiceScope {
        topology: "t",
        service: "s",
        api_keys: &api_keys,
    };
    let auth = Authenticator::build(&policy, dir.path(), &scope).unwrap();
    assert_eq!(auth.api_key_header().map(HeaderName::as_str), Some("x-key"));
    let mut with_key = headers(&["Basic YTpi"]);
    with_key.insert("x-key", HeaderValue::from_static("pcl_k"));
    let signed_in = auth.authenticate_headers(&with_key).await.unwrap();
    assert_eq!(signed_in.method, AuthMethod::ApiKey);
    assert_eq!(signed_in.principal.name, "key:ci");
    // A bearer token decides first: a bad one is not retried as a key.
    let mut both = headers(&["Bearer not.a.token"]);
    both.insert("x-key", HeaderValue::from_static("pcl_k"));
    let refused = auth.authenticate_headers(&both).await.unwrap_err();
    assert_eq!(refused.method, Some(AuthMethod::Jwt));
    let token = jwt_key.sign(&claims("ann", "iss", "aud"));
    let mut good_jwt = headers(&[&format!("Bearer {token}")]);
    good_jwt.insert("x-key", HeaderValue::from_static("pcl_wrong"));
    assert_eq!(
        auth.authenticate_headers(&good_jwt).await.unwrap().method,
        AuthMethod::Jwt
    );
    let mut wrong = HeaderMap::new();
    wrong.insert("x-key", HeaderValue::from_static("pcl_wrong"));
    let refused = auth.authenticate_headers(&wrong).await.unwrap_err();
    assert_eq!(
        (refused.method, refused.result),
        (Some(AuthMethod::ApiKey), AuthResult::Invalid)
    );
    assert_eq!(
        refused.challenge,
        "ApiKey realm=\"portcullis\", header=\"x-key\""
    );
    let none = auth
        .authenticate_headers(&HeaderMap::new())
        .await
        .unwrap_err();
    assert_eq!(
        none.challenge,
        "Bearer realm=\"portcullis\", ApiKey realm=\"portcullis\", header=\"x-key\""
    );
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
