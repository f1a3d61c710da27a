//! Forwarding headers (PRODUCT.md §9 "Forwarded headers"), HTTP/2 cookies
//! and the Host rules: what the backend sees about the client is what the
//! gateway observed, never what the client claimed.

use http::{Request, StatusCode};

use super::raw::*;
use portcullis_testkit::{empty, h2c_client, send};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_claims_about_its_origin_are_removed_or_overwritten() {
    let backend = RecordingBackend::start().await;
    let member = member_for(&backend.url(), "", "").await;
    let claims = [
        ("Forwarded", "for=10.9.9.9;proto=https;host=admin.internal"),
        ("X-Original-URL", "/admin/secret"),
        ("X-Rewrite-URL", "/admin/secret"),
        ("X-Forwarded-Prefix", "/admin"),
        ("True-Client-IP", "10.9.9.9"),
        ("X-Real-IP", "10.9.9.9"),
        ("X-Client-IP", "10.9.9.9"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Server", "trusted-member"),
        ("X-Forwarded-Context", "/gateway/other"),
    ];
    for (name, value) in claims {
        let reply = exchange(
            member.addr,
            &request(
                "GET",
                "/gateway/t/svc/x",
                &format!("{name}: {value}\r\nConnection: close\r\n"),
                "",
            ),
            QUIET,
        )
        .await;
        assert_eq!(reply.status(), Some(200), "{name}");
        let head = backend.heads().pop().expect("forwarded");
        assert!(
            !head.contains(value),
            "{name}: {value} reached the backend:\n{head}"
        );
    }
    let head = backend.heads().pop().unwrap().to_ascii_lowercase();
    assert!(head.contains("x-real-ip: 127.0.0.1"), "{head}");
    assert!(head.contains("x-forwarded-proto: http\r\n"), "{head}");
    member.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_cookie_fields_reach_an_http1_backend_as_one() {
    let backend = RecordingBackend::start().await;
    let member = member_for(&backend.url(), "", "").await;
    let client = h2c_client();
    for count in 2..=6 {
        let mut request = Request::get(member.url("/gateway/t/svc/x"));
        for i in 0..count {
            request = request.header("cookie", format!("c{i}=v{i}"));
        }
        let reply = send(&client, request.body(empty()).unwrap()).await;
        assert_eq!(reply.status, StatusCode::OK);
        let head = backend.heads().pop().expect("forwarded");
        let cookies: Vec<&str> = head
            .lines()
            .filter(|l| l.to_ascii_lowercase().starts_with("cookie:"))
            .collect();
        let expected = (0..count)
            .map(|i| format!("c{i}=v{i}"))
            .collect::<Vec<_>>()
            .join("; ");
        assert_eq!(cookies, vec![format!("cookie: {expected}")], "{head}");
    }
    member.stop().await;
}

async fn redirecting_backend() -> ScriptedBackend {
    ScriptedBackend::start_with(
        |addr| {
            format!(
                "HTTP/1.1 302 Found\r\nLocation: http://{addr}/next\r\nContent-Length: 0\r\n\r\n"
            )
            .into_bytes()
        },
        std::time::Duration::from_millis(100),
    )
    .await
}

async fn location_for(member: &portcullis_testkit::TestMember, host: &str) -> String {
    let reply = exchange(
        member.addr,
        format!("GET /gateway/t/svc/x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
        QUIET,
    )
    .await;
    reply.header("location").unwrap_or_default()
}

/// Valid Host values that name someone else: the Location must not follow them.
const HOSTILE_HOSTS: [&str; 4] = [
    "evil.example",
    "evil.example:80",
    "127.0.0.1:22",
    "[::1]:8443",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn location_is_rewritten_to_public_url_not_to_the_clients_host() {
    let backend = redirecting_backend().await;
    let member = member_for(
        &backend.url(),
        "",
        "public_url = \"https://gw.example.com:9443\"",
    )
    .await;
    for host in HOSTILE_HOSTS {
        let location = location_for(&member, host).await;
        assert_eq!(
            location, "https://gw.example.com:9443/gateway/t/svc/next",
            "Host {host}"
        );
    }
    member.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_public_url_only_a_plain_host_is_reflected() {
    let backend = redirecting_backend().await;
    let member = member_for(&backend.url(), "", "").await;
    assert_eq!(
        location_for(&member, "gw.example:8080").await,
        "http://gw.example:8080/gateway/t/svc/next"
    );
    // Valid Host values (PRODUCT.md §9) that are still no plain authority:
    // the backend's own Location is relayed, not one built from them.
    for host in ["svc_a.internal", "~user.example", ""] {
        let location = location_for(&member, host).await;
        assert!(
            location.starts_with("http://localhost/gateway/t/svc/"),
            "Host {host}: {location}"
        );
    }
    member.stop().await;
}

/// Host values that are no host name or address with a port (RFC 9112 §3.2,
/// PRODUCT.md §9) are refused before anything is forwarded, so none can
/// reach a backend's `X-Forwarded-Host` or a rewritten `Location`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_that_are_no_authority_are_refused_and_never_forwarded() {
    let backend = RecordingBackend::start().await;
    let member = member_for(&backend.url(), "", "").await;
    let invalid = [
        "a.b/c",
        "x:1@y",
        "evil.example\\@gw",
        "gw%2fevil",
        "h\"q",
        "gw.test, evil.example",
        "gw.test:65536",
        "gw test",
    ];
    for version in ["1.1", "1.0"] {
        for host in invalid {
            let reply = exchange(
                member.addr,
                format!("GET /gateway/t/svc/x HTTP/{version}\r\nHost: {host}\r\n\r\n").as_bytes(),
                QUIET,
            )
            .await;
            assert_eq!(reply.status(), Some(400), "HTTP/{version} Host {host}");
        }
    }
    assert!(backend.heads().is_empty(), "{:?}", backend.heads());
    member.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_host_cannot_supply_its_own_forwarded_host() {
    let backend = RecordingBackend::start().await;
    let member = member_for(&backend.url(), "", "").await;
    // HTTP/1.0 needs no Host; found by the forwarded_headers fuzz target.
    for value in ["evil.example", "evil.example:443", "a, b", "x", "10.0.0.1"] {
        let reply = exchange(
            member.addr,
            format!("GET /gateway/t/svc/x HTTP/1.0\r\nX-Forwarded-Host: {value}\r\n\r\n")
                .as_bytes(),
            QUIET,
        )
        .await;
        assert_eq!(reply.status(), Some(200), "{}", reply.text());
        let head = backend.heads().pop().expect("forwarded");
        assert!(
            !head.to_ascii_lowercase().contains("x-forwarded-host"),
            "{head}"
        );
    }
    member.stop().await;
}

/// RFC 9112 §3.2.2: with an absolute-form target, its authority names the
/// host and a Host field beside it is ignored: the backend's
/// `X-Forwarded-Host` is the target's, never the field's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absolute_form_target_names_the_forwarded_host() {
    let backend = RecordingBackend::start().await;
    let member = member_for(&backend.url(), "", "").await;
    let reply = exchange(
        member.addr,
        b"GET http://gw.example:8080/gateway/t/svc/x HTTP/1.1\r\nHost: other.example\r\n\r\n",
        QUIET,
    )
    .await;
    assert_eq!(reply.status(), Some(200), "{}", reply.text());
    let head = backend
        .heads()
        .pop()
        .expect("forwarded")
        .to_ascii_lowercase();
    assert!(
        head.contains("x-forwarded-host: gw.example:8080\r\n"),
        "{head}"
    );
    assert!(!head.contains("other.example"), "{head}");
    member.stop().await;
}
