//! `[service.authorize]` end to end: a member in front of a backend that
//! echoes what it got, JWT callers (the fixtures of `auth_jwt`), and the
//! client's address on loopback for `cidrs`.

use http::StatusCode;
use portcullis_demo::DemoBackend;
use portcullis_policy::test_keys::{claims, TestKey};
use portcullis_policy::AuthResult;
use portcullis_testkit::*;
use serde_json::json;

use crate::auth_jwt::{auth_counts, call, start, with_token, JwksServer, ISS};

fn assert_forbidden(reply: &Reply, what: &str) {
    assert_eq!(
        reply.status,
        StatusCode::FORBIDDEN,
        "{what}: {}",
        reply.text()
    );
    assert_eq!(
        reply.json(),
        json!({ "error": "forbidden", "topology": "t", "service": "svc" }),
        "{what}: the §3 body, no word on which rule failed"
    );
    assert_eq!(reply.headers.get("www-authenticate"), None, "{what}");
}

fn assert_admitted(reply: &Reply, user: &str, what: &str) {
    assert_eq!(reply.status, StatusCode::OK, "{what}: {}", reply.text());
    assert_eq!(reply.json()["headers"]["x-forwarded-user"], user, "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_groups_and_claims_admit_or_forbid_jwt_callers() {
    let key = TestKey::ed25519("e1");
    let server = JwksServer::start(TestKey::jwks(&[&key])).await;
    // OR within a kind, AND across kinds (the default mode).
    let (_backend, member) = start(
        &server,
        "[service.authorize]\nusers = [\"alice\", \"bob\"]\ngroups = [\"analysts\"]\nclaims = { scope = \"orders:read\" }",
    )
    .await;
    let token = |sub: &str, groups: &[&str], scope: &str| {
        let mut c = claims(sub, ISS, "orders");
        c["groups"] = json!(groups);
        c["scope"] = json!(scope);
        key.sign(&c)
    };
    let reply = with_token(&member, &token("alice", &["analysts"], "orders:read")).await;
    assert_admitted(&reply, "alice", "user, group and scope");
    let reply = with_token(
        &member,
        &token("bob", &["ops", "analysts"], "profile orders:read email"),
    )
    .await;
    assert_admitted(&reply, "bob", "the scope as one word among several");

    let denied = [
        (
            token("carol", &["analysts"], "orders:read"),
            "a user not listed",
        ),
        (
            token("alice", &["ops"], "orders:read"),
            "a group not listed",
        ),
        (token("alice", &[], "orders:read"), "no groups"),
        (
            token("alice", &["analysts"], "orders:write"),
            "another scope",
        ),
        (
            token("alice", &["analysts"], "orders:readonly"),
            "a scope word that only starts alike",
        ),
    ];
    for (token, what) in &denied {
        assert_forbidden(&with_token(&member, token).await, what);
    }
    // A caller without credentials is still a 401, not a 403.
    assert_eq!(
        call(&member, "who", &[]).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        auth_counts(&member),
        [
            (AuthResult::Missing, 1),
            (AuthResult::Ok, 2),
            (AuthResult::Denied, 5)
        ],
        "a denied request is counted as denied, not also as ok"
    );
    member.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_array_and_the_any_mode() {
    let key = TestKey::p256("p1");
    let server = JwksServer::start(TestKey::jwks(&[&key])).await;
    let (_backend, member) = start(
        &server,
        "[service.authorize]\nusers = [\"root\"]\nclaims = { roles = \"reader\" }\nmode = \"any\"",
    )
    .await;
    let mut reader = claims("dave", ISS, "orders");
    reader["roles"] = json!(["writer", "reader"]);
    let reply = with_token(&member, &key.sign(&reader)).await;
    assert_admitted(&reply, "dave", "the claim array holds the value");
    let root = key.sign(&claims("root", ISS, "orders"));
    assert_admitted(&with_token(&member, &root).await, "root", "the user alone");
    let mut writer = claims("erin", ISS, "orders");
    writer["roles"] = json!("writer");
    assert_forbidden(&with_token(&member, &key.sign(&writer)).await, "neither");
    member.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_networks_admit_loopback_and_forbid_the_rest() {
    // The test client connects from 127.0.0.1.
    let key = TestKey::ed25519("e1");
    let server = JwksServer::start(TestKey::jwks(&[&key])).await;
    let (_backend, member) = start(
        &server,
        "[service.authorize]\nusers = [\"alice\"]\ncidrs = [\"10.0.0.0/8\"]",
    )
    .await;
    let alice = key.sign(&claims("alice", ISS, "orders"));
    assert_forbidden(
        &with_token(&member, &alice).await,
        "the right user from outside 10.0.0.0/8",
    );
    assert_eq!(
        call(&member, "who", &[("x-forwarded-for", "10.1.2.3")])
            .await
            .status,
        StatusCode::UNAUTHORIZED,
        "authentication comes first"
    );
    let spoofed = call(
        &member,
        "who",
        &[
            ("authorization", &format!("Bearer {alice}")),
            ("x-forwarded-for", "10.1.2.3"),
        ],
    )
    .await;
    assert_forbidden(&spoofed, "a client's X-Forwarded-For is not its address");
    member.stop().await;
    server.stop().await;

    // cidrs alone need no [service.auth]: anyone from the network passes.
    let backend = DemoBackend::spawn("b", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let services = [
        topology(
            "home",
            &[backend.url()],
            "[service.authorize]\ncidrs = [\"127.0.0.1/32\"]",
        ),
        topology(
            "svc",
            &[backend.url()],
            "[service.authorize]\ncidrs = [\"10.0.0.0/8\", \"::1\"]",
        ),
    ];
    let member = TestMember::start(&[("t", &services.concat())]).await;
    let home = get(&member.url("/gateway/t/home/x")).await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.text());
    assert_eq!(home.json()["headers"].get("x-forwarded-user"), None);
    let away = get(&member.url("/gateway/t/svc/x")).await;
    assert_forbidden(&away, "127.0.0.1 is not in 10.0.0.0/8");
    let counts = member.service("t", "svc").stats.auth.snapshot();
    assert_eq!(counts, [("none", AuthResult::Denied, 1)]);
    assert!(member.service("t", "home").stats.auth.snapshot().is_empty());
    member.stop().await;
}
