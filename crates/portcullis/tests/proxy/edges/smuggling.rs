//! Request smuggling (RFC 9112 §6, PRODUCT.md §9 "Requests"): every message
//! two parsers could frame differently gets 400 and a closed connection, and
//! no complete request of it reaches the backend (a chunked body is streamed,
//! so its head may have gone ahead of the bad chunk; the backend then sees a
//! cut-off request and a closed connection). A well-formed request sent after the
//! payload on the same connection must not be answered either: the gateway
//! has closed the connection rather than guessed where the next request
//! starts.

use super::raw::*;

const T: &str = "/gateway/t/svc/x";

/// (name, raw request bytes, expected status)
pub(crate) fn cases() -> Vec<(&'static str, Vec<u8>, u16)> {
    let r = |h: &str, body: &str| request("POST", T, h, body);
    let mut cases: Vec<(&'static str, Vec<u8>, u16)> = vec![
        ("cl-then-te", r("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"), 400),
        ("te-then-cl", r("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", "0\r\n\r\n"), 400),
        ("cl-differing", r("Content-Length: 5\r\nContent-Length: 6\r\n", "hello!"), 400),
        ("cl-list-differing", r("Content-Length: 5, 6\r\n", "hello!"), 400),
        ("cl-signed-plus", r("Content-Length: +5\r\n", "hello"), 400),
        ("cl-signed-minus", r("Content-Length: -5\r\n", "hello"), 400),
        ("cl-hex", r("Content-Length: 0x5\r\n", "hello"), 400),
        ("cl-space-inside", r("Content-Length: 1 0\r\n", "helloworld"), 400),
        ("te-gzip-last", r("Transfer-Encoding: chunked, gzip\r\n", "0\r\n\r\n"), 400),
        ("te-gzip-only", r("Transfer-Encoding: gzip\r\n", "0\r\n\r\n"), 400),
        ("te-identity", r("Transfer-Encoding: identity\r\n", "0\r\n\r\n"), 400),
        ("te-xchunked", r("Transfer-Encoding: xchunked\r\n", "0\r\n\r\n"), 400),
        ("te-two-fields-last-identity", r("Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n", "0\r\n\r\n"), 400),
        ("te-in-http10", b"POST /gateway/t/svc/x HTTP/1.0\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(), 400),
        ("obs-fold", r("X-A: one\r\n two\r\n", ""), 400),
        ("obs-fold-tab", r("X-A: one\r\n\ttwo\r\n", ""), 400),
        ("space-before-colon", r("Content-Length : 5\r\n", "hello"), 400),
        ("tab-before-colon", r("X-A\t: 1\r\n", ""), 400),
        ("nul-in-value", r("X-A: a\0b\r\n", ""), 400),
        ("ctl-in-value", r("X-A: a\x01b\r\n", ""), 400),
        ("ctl-in-name", r("X\x01A: 1\r\n", ""), 400),
        ("bare-cr-in-value", r("X-A: a\rb\r\n", ""), 400),
        ("bare-lf-line-end", b"GET /gateway/t/svc/x HTTP/1.1\nHost: gw.test\n\n".to_vec(), 400),
        ("bare-lf-in-header-block", b"GET /gateway/t/svc/x HTTP/1.1\r\nHost: gw.test\nX-A: 1\r\n\r\n".to_vec(), 400),
        ("no-host", b"GET /gateway/t/svc/x HTTP/1.1\r\nX-A: 1\r\n\r\n".to_vec(), 400),
        ("two-hosts", r("Host: other.test\r\n", ""), 400),
        ("two-hosts-same", r("Host: gw.test\r\n", ""), 400),
        ("two-hosts-mixed-case", r("hOsT: other.test\r\n", ""), 400),
        ("absolute-form-without-host", b"GET http://gw.test/gateway/t/svc/x HTTP/1.1\r\nX-A: 1\r\n\r\n".to_vec(), 400),
        ("empty-host-and-host", b"GET /gateway/t/svc/x HTTP/1.1\r\nHost:\r\nHost: gw.test\r\n\r\n".to_vec(), 400),
        ("host-list", b"GET /gateway/t/svc/x HTTP/1.1\r\nHost: gw.test, evil.example\r\n\r\n".to_vec(), 400),
        ("host-userinfo", b"GET /gateway/t/svc/x HTTP/1.1\r\nHost: evil.example@gw.test\r\n\r\n".to_vec(), 400),
        ("host-path", b"GET /gateway/t/svc/x HTTP/1.1\r\nHost: gw.test/evil\r\n\r\n".to_vec(), 400),
        ("host-port-over-65535", b"GET /gateway/t/svc/x HTTP/1.1\r\nHost: gw.test:65616\r\n\r\n".to_vec(), 400),
        ("host-percent-encoded", b"GET /gateway/t/svc/x HTTP/1.1\r\nHost: gw%2etest\r\n\r\n".to_vec(), 400),
        ("host-invalid-in-http10", b"GET /gateway/t/svc/x HTTP/1.0\r\nHost: gw.test;evil\r\n\r\n".to_vec(), 400),
        ("absolute-form-userinfo", b"GET http://evil.example@gw.test/gateway/t/svc/x HTTP/1.1\r\nHost: gw.test\r\n\r\n".to_vec(), 400),
        ("chunk-size-not-hex", r("Transfer-Encoding: chunked\r\n", "zz\r\nhello\r\n0\r\n\r\n"), 400),
        ("chunk-size-negative", r("Transfer-Encoding: chunked\r\n", "-5\r\nhello\r\n0\r\n\r\n"), 400),
        ("chunk-size-0x", r("Transfer-Encoding: chunked\r\n", "0x5\r\nhello\r\n0\r\n\r\n"), 400),
        ("chunk-size-overflow", r("Transfer-Encoding: chunked\r\n", "fffffffffffffffff1\r\nhello\r\n0\r\n\r\n"), 400),
        ("chunk-size-space", r("Transfer-Encoding: chunked\r\n", "5 5\r\nhello\r\n0\r\n\r\n"), 400),
        ("chunk-data-too-long", r("Transfer-Encoding: chunked\r\n", "3\r\nhello\r\n0\r\n\r\n"), 400),
        ("chunk-size-bare-lf", r("Transfer-Encoding: chunked\r\n", "5\nhello\r\n0\r\n\r\n"), 400),
        ("connect-authority", b"CONNECT backend.internal:22 HTTP/1.1\r\nHost: backend.internal:22\r\n\r\n".to_vec(), 405),
        ("connect-gateway-path", request("CONNECT", T, "", ""), 405),
        ("connect-lowercase-body", request("CONNECT", "/gateway/t/svc/", "Content-Length: 3\r\n", "abc"), 405),
        ("connect-absolute", request("CONNECT", "http://gw.test/gateway/t/svc/x", "", ""), 405),
        ("connect-127", b"CONNECT 127.0.0.1:80 HTTP/1.1\r\nHost: 127.0.0.1:80\r\n\r\n".to_vec(), 405),
    ];
    // Every refused payload is followed by a well-formed request that, if the
    // gateway guessed a framing and kept the connection, would be answered.
    for (_, bytes, _) in cases.iter_mut() {
        bytes.extend_from_slice(&request("GET", "/gateway/t/svc/smuggled", "", ""));
    }
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_requests_are_refused_and_never_reach_the_backend() {
    let backend = RecordingBackend::start().await;
    let member = member_for(&backend.url(), "", "").await;
    let mut failures = Vec::new();
    for (name, bytes, expected) in cases() {
        let before = backend.complete_requests();
        let reply = exchange(member.addr, &bytes, QUIET).await;
        let statuses = reply.statuses();
        // A refused body may have had its head streamed to the backend, but
        // the backend must never have received a complete request.
        let reached = backend.complete_requests() != before;
        if statuses != vec![expected] || !reply.closed || reached {
            failures.push(format!(
                "{name}: statuses {statuses:?} (want [{expected}]), closed {}, reached backend {reached}",
                reply.closed
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        cases().len(),
        failures.join("\n")
    );
    assert!(!backend.received_text().contains("smuggled"));
    member.stop().await;
}
