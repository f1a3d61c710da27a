//! Path escape through encodings (PRODUCT.md §9 "Paths"): a request target
//! that a backend decoding once more, or reading `;` or `\` as a separator,
//! would resolve outside the service's base path gets 400, over HTTP/1.1 and
//! HTTP/2, and never reaches the backend.

use http::{Request, StatusCode};

use super::raw::*;
use portcullis_testkit::{empty, h2c_client, send};

pub(crate) const ESCAPES: &[&str] = &[
    "/..%2f..%2fsecret",
    "/..%2F..%2Fsecret",
    "/%2e%2e%2fsecret",
    "/%2e%2e/secret",
    "/%2E%2e/%2e%2E/secret",
    "/%252e%252e/secret",
    "/%252e%252e%252fsecret",
    "/..%252fsecret",
    "/..%5csecret",
    "/..%5C..%5Csecret",
    "/..%255csecret",
    "/..\\..\\secret",
    "/a\\..\\..\\secret",
    "/..;/secret",
    "/..;a=b/secret",
    "/.;/secret",
    "/%2e%2e;jsessionid=1/secret",
    "/..%3b/secret",
    "/../secret",
    "/./../secret",
    "/a/%00/secret",
    "/a%2500b",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoded_escapes_are_refused_over_http1() {
    let backend = RecordingBackend::start().await;
    let member = member_for(&backend.url(), "", "").await;
    let mut failures = Vec::new();
    for escape in ESCAPES {
        let target = format!("/gateway/t/svc{escape}");
        let reply = exchange(
            member.addr,
            &request("GET", &target, "Connection: close\r\n", ""),
            QUIET,
        )
        .await;
        if reply.status() != Some(400) {
            failures.push(format!("{escape}: {:?}", reply.status()));
        }
    }
    assert!(failures.is_empty(), "not refused:\n{}", failures.join("\n"));
    assert_eq!(backend.connections(), 0, "{}", backend.received_text());
    member.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoded_escapes_are_refused_over_h2c() {
    let backend = RecordingBackend::start().await;
    let member = member_for(&backend.url(), "", "").await;
    let client = h2c_client();
    let mut failures = Vec::new();
    // The http crate refuses a raw backslash in a URI, so h2 cases are the
    // percent-encoded ones.
    for escape in ESCAPES.iter().filter(|e| !e.contains('\\')) {
        let url = member.url(&format!("/gateway/t/svc{escape}"));
        let reply = send(&client, Request::get(url).body(empty()).unwrap()).await;
        if reply.status != StatusCode::BAD_REQUEST {
            failures.push(format!("{escape}: {}", reply.status));
        }
    }
    assert!(failures.is_empty(), "not refused:\n{}", failures.join("\n"));
    assert_eq!(backend.connections(), 0, "{}", backend.received_text());
    member.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordinary_odd_paths_still_pass_unchanged() {
    let backend = RecordingBackend::start().await;
    let member = member_for(&backend.url(), "", "").await;
    for path in [
        "/a/.b/c..",
        "/a;v=1/b",
        "/%41%20b",
        "/file.tar.gz",
        "/100%25",
        "/...",
    ] {
        let target = format!("/gateway/t/svc{path}");
        let reply = exchange(
            member.addr,
            &request("GET", &target, "Connection: close\r\n", ""),
            QUIET,
        )
        .await;
        assert_eq!(reply.status(), Some(200), "{path}: {}", reply.text());
        let heads = backend.heads();
        let last = heads.last().expect("a request");
        assert!(
            last.starts_with(&format!("GET {path} HTTP/1.1")),
            "{path} forwarded as {last}"
        );
    }
    member.stop().await;
}
