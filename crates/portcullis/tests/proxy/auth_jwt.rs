//! `[service.auth]` with JWT, end to end: a member in front of a demo
//! backend that echoes the headers it got, keys generated here, and the key
//! set served by a small HTTP server on loopback that the test can change
//! or stop.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use portcullis_demo::DemoBackend;
use portcullis_policy::test_keys::{claims, hs256, now, unsigned, TestKey};
use portcullis_policy::AuthResult;
use portcullis_testkit::*;
use tokio::net::TcpListener;

pub(super) const ISS: &str = "https://idp.test";

/// A key set server: serves what `jwks` holds; stops when dropped.
pub(super) struct JwksServer {
    addr: SocketAddr,
    jwks: Arc<Mutex<String>>,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    pub(super) async fn start(jwks: String) -> JwksServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let jwks = Arc::new(Mutex::new(jwks));
        let served = jwks.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let served = served.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |_: Request<Incoming>| {
                        let body = served.lock().unwrap().clone();
                        async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body)))) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        JwksServer { addr, jwks, task }
    }

    fn url(&self) -> String {
        format!("http://{}/jwks.json", self.addr)
    }

    fn serve(&self, jwks: String) {
        *self.jwks.lock().unwrap() = jwks;
    }

    /// Stops listening and drops every open connection.
    pub(super) async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

pub(super) fn auth_topology(backend: &str, jwks: &str, extra: &str) -> String {
    topology(
        "svc",
        &[backend.to_string()],
        &format!(
            "[service.auth]\nmethods = [\"jwt\"]\njwt = {{ jwks = \"{jwks}\", issuer = \"{ISS}\", audiences = [\"orders\", \"billing\"], leeway = \"5s\" }}\n{extra}"
        ),
    )
}

pub(super) async fn start(jwks: &JwksServer, extra: &str) -> (DemoBackend, TestMember) {
    let backend = DemoBackend::spawn("b", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let text = auth_topology(&backend.url(), &jwks.url(), extra);
    let member = TestMember::start(&[("t", &text)]).await;
    // The key set is fetched in the background right after the topology is
    // applied: wait for it, so no test spends its unknown-key refresh on it.
    wait_until("the key set is fetched", Duration::from_secs(10), || {
        member
            .service("t", "svc")
            .auth
            .as_ref()
            .is_some_and(|a| a.jwt().is_some_and(|j| j.keys() > 0))
    })
    .await;
    (backend, member)
}

/// `GET /gateway/t/svc/<path>` with `headers`.
pub(super) async fn call(member: &TestMember, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = Request::get(member.url(&format!("/gateway/t/svc/{path}")));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(&client(), request.body(empty()).unwrap()).await
}

pub(super) async fn with_token(member: &TestMember, token: &str) -> Reply {
    call(
        member,
        "who",
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await
}

fn assert_refused(reply: &Reply, challenge: &str, what: &str) {
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "{what}: {}",
        reply.text()
    );
    assert_eq!(
        reply
            .headers
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some(challenge),
        "{what}"
    );
    assert_eq!(reply.json()["error"], "unauthorized", "{what}: no detail");
    assert_eq!(
        reply.text().matches(':').count(),
        3,
        "{what}: error, topology, service only: {}",
        reply.text()
    );
}

const BARE: &str = "Bearer realm=\"portcullis\"";
const INVALID: &str = "Bearer realm=\"portcullis\", error=\"invalid_token\"";

pub(super) fn auth_counts(member: &TestMember) -> Vec<(AuthResult, u64)> {
    let service = member.service("t", "svc");
    service
        .stats
        .auth
        .snapshot()
        .into_iter()
        .map(|(_, r, n)| (r, n))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_tokens_pass_with_the_principal_and_bad_ones_get_401() {
    let rsa = TestKey::rsa("r1");
    let ec = TestKey::p256("p1");
    let ed = TestKey::ed25519("e1");
    let server = JwksServer::start(TestKey::jwks(&[&rsa, &ec, &ed])).await;
    let (_backend, member) = start(&server, "").await;
    let good = claims("alice", ISS, "orders");

    for key in [&rsa, &ec, &ed] {
        let reply = call(
            &member,
            "who",
            &[
                ("authorization", &format!("Bearer {}", key.sign(&good))),
                ("x-forwarded-user", "root"),
                ("X-Forwarded-User", "admin"),
                // A hop-by-hop strip of the name must not take the
                // gateway's own field with it.
                ("connection", "x-forwarded-user"),
            ],
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{:?}: {}",
            key.algorithm,
            reply.text()
        );
        let headers = &reply.json()["headers"];
        assert_eq!(
            headers["x-forwarded-user"], "alice",
            "client copies replaced: {headers}"
        );
        assert_eq!(
            headers.get("authorization"),
            None,
            "the token never reaches the backend"
        );
    }

    let missing = call(&member, "who", &[]).await;
    assert_refused(&missing, BARE, "no token");
    let basic = call(&member, "who", &[("authorization", "Basic YTpi")]).await;
    assert_refused(&basic, BARE, "another scheme");

    let mut expired = claims("alice", ISS, "orders");
    expired["exp"] = (now() - 60).into();
    assert_refused(
        &with_token(&member, &ed.sign(&expired)).await,
        INVALID,
        "expired beyond the leeway",
    );
    let mut within = claims("alice", ISS, "orders");
    within["exp"] = (now() - 2).into();
    assert_eq!(
        with_token(&member, &ed.sign(&within)).await.status,
        StatusCode::OK,
        "within the leeway"
    );

    assert_refused(
        &with_token(&member, &unsigned("e1", &good)).await,
        INVALID,
        "alg none",
    );
    let forged = hs256(&rsa.public_bytes(), "r1", &good);
    assert_refused(
        &with_token(&member, &forged).await,
        INVALID,
        "HS256 with the public key",
    );
    let impostor = TestKey::ed25519("x").with_kid("e1");
    assert_refused(
        &with_token(&member, &impostor.sign(&good)).await,
        INVALID,
        "another key",
    );
    let elsewhere = claims("alice", ISS, "payroll");
    assert_refused(
        &with_token(&member, &ec.sign(&elsewhere)).await,
        INVALID,
        "another audience",
    );
    let other_issuer = claims("alice", "https://evil.test", "orders");
    assert_refused(
        &with_token(&member, &ec.sign(&other_issuer)).await,
        INVALID,
        "another issuer",
    );

    assert_eq!(
        auth_counts(&member),
        [
            // "none found credentials" comes first, then jwt's results.
            (AuthResult::Missing, 2),
            (AuthResult::Ok, 4),
            (AuthResult::Invalid, 5),
            (AuthResult::Expired, 1)
        ]
    );
    member.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knox_doas_carries_the_principal_in_the_query_and_a_chosen_header() {
    let key = TestKey::ed25519("e1");
    let server = JwksServer::start(TestKey::jwks(&[&key])).await;
    let (_backend, member) = start(
        &server,
        "identity_header = \"X-Remote-User\"\nknox_doas = true",
    )
    .await;
    let token = key.sign(&claims("bob smith", ISS, "billing"));
    let reply = call(
        &member,
        "v1/x?op=LISTSTATUS&doAs=root&DOAS=hdfs",
        &[
            ("authorization", &format!("Bearer {token}")),
            ("x-remote-user", "root"),
        ],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let json = reply.json();
    assert_eq!(json["query"], "op=LISTSTATUS&doAs=bob+smith", "{json}");
    assert_eq!(json["headers"]["x-remote-user"], "bob smith");
    assert_eq!(json["headers"].get("x-forwarded-user"), None);

    let utf8 = key.sign(&claims("zoë", ISS, "orders"));
    let reply = with_token(&member, &utf8).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json()["headers"]["x-remote-user"], "zoë");
    assert_eq!(reply.json()["query"], "doAs=zo%C3%AB");
    let control = key.sign(&claims("eve\r\nx-admin: 1", ISS, "orders"));
    assert_refused(
        &with_token(&member, &control).await,
        INVALID,
        "a sub that is no header value",
    );
    member.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_passes_at_once_and_a_vanished_key_set_server_keeps_the_last_set() {
    let old = TestKey::p256("k1");
    let new = TestKey::ed25519("k2");
    let server = JwksServer::start(TestKey::jwks(&[&old])).await;
    let (_backend, member) = start(&server, "").await;
    let good = claims("carol", ISS, "orders");
    assert_eq!(
        with_token(&member, &old.sign(&good)).await.status,
        StatusCode::OK
    );

    // The identity provider publishes a new key and signs with it: the
    // unknown kid makes the member fetch the set again, now, not in 5 min.
    server.serve(TestKey::jwks(&[&old, &new]));
    let reply = with_token(&member, &new.sign(&good)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json()["headers"]["x-forwarded-user"], "carol");

    // Within 10 s another unknown kid gets no fetch: the set the server now
    // serves is not seen.
    let third = TestKey::rsa("k3");
    server.serve(TestKey::jwks(&[&old, &new, &third]));
    let reply = with_token(&member, &third.sign(&good)).await;
    assert_refused(
        &reply,
        INVALID,
        "unknown kid within 10 s of the last refresh",
    );

    // The server goes away; once 10 s have passed, an unknown kid makes the
    // member try (and fail) to fetch: the last good set stays in use.
    server.stop().await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let stranger = TestKey::ed25519("k4");
    assert_refused(
        &with_token(&member, &stranger.sign(&good)).await,
        INVALID,
        "unknown kid, no server",
    );
    for key in [&old, &new] {
        let reply = with_token(&member, &key.sign(&good)).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{}: {}",
            key.kid,
            reply.text()
        );
    }
    member.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_are_scraped_as_portcullis_auth_total() {
    let key = TestKey::ed25519("e1");
    let server = JwksServer::start(TestKey::jwks(&[&key])).await;
    let backend = DemoBackend::spawn("b", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("store/topologies")).unwrap();
    write_topology(
        root.path(),
        "t",
        &auth_topology(&backend.url(), &server.url(), ""),
    );
    let member = TestMember::start_admin(&root.path().join("store"), "gw-1", "manager", None).await;
    wait_until("the key set is fetched", Duration::from_secs(10), || {
        matches!(member.gateway().service("t", "svc"), portcullis_proxy::routing::Lookup::Found(s)
            if s.auth.as_ref().is_some_and(|a| a.jwt().is_some_and(|j| j.keys() > 0)))
    })
    .await;
    let token = key.sign(&claims("dave", ISS, "orders"));
    assert_eq!(with_token(&member, &token).await.status, StatusCode::OK);
    assert_eq!(with_token(&member, &token).await.status, StatusCode::OK);
    assert_eq!(
        call(&member, "who", &[]).await.status,
        StatusCode::UNAUTHORIZED
    );
    let metrics = get(&member.admin_url("/metrics")).await.text();
    let series = |method: &str, result: &str| {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("portcullis_auth_total{")
                    && l.contains("topology=\"t\"")
                    && l.contains("service=\"svc\"")
                    && l.contains(&format!("method=\"{method}\""))
                    && l.contains(&format!("result=\"{result}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_string)
    };
    assert_eq!(series("jwt", "ok").as_deref(), Some("2"), "{metrics}");
    // No method found credentials: counted under "none".
    assert_eq!(series("none", "missing").as_deref(), Some("1"), "{metrics}");
    assert_eq!(
        series("jwt", "invalid"),
        None,
        "results not seen are left out"
    );
    member.stop().await;
    server.stop().await;
}
