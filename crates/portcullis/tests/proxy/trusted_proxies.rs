//! `[gateway] trusted_proxies` end to end: the test client connects from
//! 127.0.0.1, which the member trusts as a proxy, so the X-Forwarded-For
//! entries it sends name the client for `cidrs`, the `client_ip` rate limit
//! and X-Real-IP; what lies left of the rightmost untrusted entry (what a
//! client wrote itself) is never believed.

use http::{Request, StatusCode};
use portcullis_demo::DemoBackend;
use portcullis_testkit::*;

async fn get_via(member: &TestMember, path: &str, forwarded_for: &str) -> Reply {
    let request = Request::get(member.url(path))
        .header("x-forwarded-for", forwarded_for)
        .body(empty())
        .unwrap();
    send(&client(), request).await
}

/// A member trusting `trusted` (a TOML list) in front of one echoing
/// backend, with three services: `echo`, `net` (`cidrs`
/// 198.51.100.0/24) and `limited` (one request an hour per client address).
async fn start(trusted: &str) -> (DemoBackend, TestMember) {
    let backend = DemoBackend::spawn("b", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let services = [
        topology("echo", &[backend.url()], ""),
        topology(
            "net",
            &[backend.url()],
            "[service.authorize]\ncidrs = [\"198.51.100.0/24\"]",
        ),
        topology(
            "limited",
            &[backend.url()],
            "[service.rate_limit]\nrequests = 1\nper = \"1h\"\nkey = \"client_ip\"",
        ),
    ];
    let member = TestMember::start_with(
        &[("t", &services.concat())],
        &format!("trusted_proxies = {trusted}"),
    )
    .await;
    (backend, member)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_names_the_client_and_a_forged_entry_does_not() {
    let (_backend, member) = start(r#"["127.0.0.1", "10.0.0.0/8"]"#).await;

    // The edge proxy (10.1.1.1) appended the client it saw; 6.6.6.6 is
    // what that client wrote itself.
    let echo = get_via(
        &member,
        "/gateway/t/echo/x",
        "6.6.6.6, 198.51.100.4, 10.1.1.1",
    )
    .await;
    assert_eq!(echo.status, StatusCode::OK, "{}", echo.text());
    let seen = &echo.json()["headers"];
    assert_eq!(seen["x-real-ip"], "198.51.100.4");
    assert_eq!(
        seen["x-forwarded-for"], "6.6.6.6, 198.51.100.4, 10.1.1.1, 127.0.0.1",
        "the list still ends with the peer"
    );

    let inside = get_via(&member, "/gateway/t/net/x", "198.51.100.4").await;
    assert_eq!(inside.status, StatusCode::OK, "{}", inside.text());
    let outside = get_via(&member, "/gateway/t/net/x", "203.0.113.5").await;
    assert_eq!(outside.status, StatusCode::FORBIDDEN, "{}", outside.text());
    let forged = get_via(&member, "/gateway/t/net/x", "198.51.100.4, 203.0.113.5").await;
    assert_eq!(
        forged.status,
        StatusCode::FORBIDDEN,
        "an entry left of the client's is the client's own claim: {}",
        forged.text()
    );
    let garbled = get_via(&member, "/gateway/t/net/x", "198.51.100.4, unknown").await;
    assert_eq!(
        garbled.status,
        StatusCode::FORBIDDEN,
        "nothing beyond an entry that is no address is believed (the client is then 127.0.0.1)"
    );

    // One request an hour per client address: each address has its own.
    let first = get_via(&member, "/gateway/t/limited/x", "198.51.100.4").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    let again = get_via(&member, "/gateway/t/limited/x", "9.9.9.9, 198.51.100.4").await;
    assert_eq!(
        again.status,
        StatusCode::TOO_MANY_REQUESTS,
        "same client, forged prefix"
    );
    let other = get_via(&member, "/gateway/t/limited/x", "198.51.100.5").await;
    assert_eq!(
        other.status,
        StatusCode::OK,
        "another client: {}",
        other.text()
    );
    member.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_trusted_proxies_the_peer_is_the_client() {
    // Trusting another network only: the loopback peer is no proxy.
    let (_backend, member) = start(r#"["10.0.0.0/8"]"#).await;
    let echo = get_via(&member, "/gateway/t/echo/x", "198.51.100.4").await;
    assert_eq!(echo.json()["headers"]["x-real-ip"], "127.0.0.1");
    let first = get_via(&member, "/gateway/t/limited/x", "198.51.100.4").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    let other = get_via(&member, "/gateway/t/limited/x", "198.51.100.5").await;
    assert_eq!(
        other.status,
        StatusCode::TOO_MANY_REQUESTS,
        "a client cannot buy a new bucket by writing X-Forwarded-For"
    );
    member.stop().await;
}
