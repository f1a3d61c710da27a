//! Backend answers (PRODUCT.md §3, §9 "Responses" and "Upgrades"):
//! well-framed ones of every kind, and the ways a backend gets framing,
//! status lines, interim answers and heads wrong. `{backend}` in a reply is
//! the backend's own address.

use portcullis_testkit::raw_backend::{After, Reply};

use super::{request, Case, Expect, SERVICE};

/// (name, reply, what the backend does after it)
type Scripted = (&'static str, &'static str, After);

const KEEP: After = After::KeepAlive;
const CLOSE: After = After::Close;

const FRAMED: &[Scripted] = &[
    ("cl", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello", KEEP),
    ("cl-empty", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", KEEP),
    ("cl-leading-zeros", "HTTP/1.1 200 OK\r\nContent-Length: 005\r\n\r\nhello", KEEP),
    ("cl-same-twice", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", KEEP),
    ("cl-same-list", "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello", KEEP),
    ("chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", KEEP),
    ("chunked-several", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n2\r\nbc\r\n3\r\ndef\r\n0\r\n\r\n", KEEP),
    ("chunked-empty", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", KEEP),
    ("chunked-extension", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0;end\r\n\r\n", KEEP),
    ("chunked-trailers", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n5\r\nhello\r\n0\r\nX-Checksum: 99\r\n\r\n", KEEP),
    ("chunked-trailer-content-length", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nContent-Length: 50\r\n\r\n", KEEP),
    ("chunked-uppercase", "HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED\r\n\r\n5\r\nhello\r\n0\r\n\r\n", KEEP),
    ("chunked-uppercase-hex", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n", KEEP),
    ("te-gzip-chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", KEEP),
    ("te-gzip-only-close", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nhello", CLOSE),
    ("close-delimited", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end", CLOSE),
    ("close-delimited-empty", "HTTP/1.1 200 OK\r\n\r\n", CLOSE),
    ("close-delimited-http10", "HTTP/1.0 200 OK\r\n\r\nold style", CLOSE),
    ("http10-with-cl", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("http10-keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("204", "HTTP/1.1 204 No Content\r\n\r\n", KEEP),
    ("204-cl-0", "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", KEEP),
    ("204-with-body", "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello", KEEP),
    ("204-chunked", "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", KEEP),
    ("304", "HTTP/1.1 304 Not Modified\r\nETag: \"a\"\r\n\r\n", KEEP),
    ("304-with-cl", "HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n", KEEP),
    ("304-with-body", "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\nhello", KEEP),
    ("large-cl", "", KEEP),
    ("large-chunked", "", KEEP),
];

const INTERIM: &[Scripted] = &[
    ("100-then-200", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("103-then-200", "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("100-103-200", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.js>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("two-103", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </b>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("102-processing", "HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("1xx-with-body-bytes", "HTTP/1.1 100 Continue\r\nContent-Length: 3\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("103-hop-by-hop", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\nConnection: X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("103-content-length", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("103-then-404", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found", KEEP),
    ("199-unknown", "HTTP/1.1 199 Odd\r\nX-Stage: 1\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("many-103-32", "", KEEP),
    ("many-103-33", "", KEEP),
    ("many-100-40", "", KEEP),
    ("1xx-broken-bare-lf", "HTTP/1.1 103 Early Hints\nLink: </a>\n\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("1xx-broken-space-before-colon", "HTTP/1.1 103 Early Hints\r\nLink : </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("1xx-broken-obs-fold", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n </b>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("1xx-broken-content-length", "HTTP/1.1 103 Early Hints\r\nContent-Length: x\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("1xx-broken-nul-in-value", "HTTP/1.1 103 Early Hints\r\nLink: </a\0>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("101-unasked", "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n", After::Echo),
    ("101-unasked-websocket", "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n", After::Echo),
];

/// PRODUCT.md §9 "Responses": ambiguous or broken answers.
const BROKEN: &[Scripted] = &[
    ("cl-and-te", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n0\r\n\r\n", KEEP),
    ("te-and-cl", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\na\r\n0123456789\r\n0\r\n\r\n", KEEP),
    ("cl-100-and-te", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n0\r\n\r\n", KEEP),
    ("cl-0-and-te", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n01234\r\n5\r\n56789\r\n0\r\n\r\n", KEEP),
    ("cl-and-te-close", "HTTP/1.1 201 Created\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\n012\r\n7\r\n3456789\r\n0\r\n\r\n", CLOSE),
    ("status-600", "HTTP/1.1 600 Odd\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("status-700", "HTTP/1.1 700 Odd\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("status-999", "HTTP/1.1 999 Odd\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("status-000", "HTTP/1.1 000 Odd\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("status-099", "HTTP/1.1 099 Odd\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("status-2000", "HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("status-letters", "HTTP/1.1 2xx OK\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("status-two-digits", "HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("cl-differing", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok", KEEP),
    ("cl-list-differing", "HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok", KEEP),
    ("cl-signed", "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok", KEEP),
    ("cl-letters", "HTTP/1.1 200 OK\r\nContent-Length: two\r\n\r\nok", KEEP),
    ("header-without-colon", "HTTP/1.1 200 OK\r\nBad Header\r\n\r\nok", KEEP),
    ("obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("space-before-colon", "HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok", KEEP),
    ("nul-in-value", "HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("ctl-in-name", "HTTP/1.1 200 OK\r\nX\x01A: 1\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("bare-cr-in-value", "HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("version-httx", "HTTX/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("version-2", "HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("version-lowercase", "http/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("version-missing", "200 OK\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("reason-missing", "HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("reason-empty", "HTTP/1.1 200 \r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("reason-odd", "HTTP/1.1 200 Very Fine Indeed\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("garbage", "hello, this is not HTTP\r\n\r\n", CLOSE),
    ("empty-then-close", "", CLOSE),
    ("bare-lf-everywhere", "HTTP/1.1 200 OK\nContent-Length: 2\n\nok", KEEP),
    ("bare-lf-end-of-head", "HTTP/1.1 200 OK\r\nContent-Length: 2\n\r\nok", KEEP),
    ("bare-lf-between-headers", "HTTP/1.1 200 OK\r\nX-A: 1\nContent-Length: 2\r\n\r\nok", KEEP),
    ("bare-lf-status-line", "HTTP/1.1 200 OK\nContent-Length: 2\r\n\r\nok", KEEP),
    ("short-cl-close", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", CLOSE),
    ("short-cl-nothing-close", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", CLOSE),
    ("short-chunk-close", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\n01234", CLOSE),
    ("no-last-chunk-close", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n01234\r\n", CLOSE),
    ("bad-chunk-size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n01234\r\n0\r\n\r\n", CLOSE),
    ("chunk-data-too-long", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n", KEEP),
    ("short-cl-keep", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", KEEP),
    ("short-chunk-keep", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\n01234", KEEP),
    ("longer-than-cl", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA BYTES", KEEP),
    ("bytes-after-last-chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\nEXTRA", KEEP),
    ("two-responses-for-one", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfalse", KEEP),
];

const HEADERS: &[Scripted] = &[
    ("location-backend", "HTTP/1.1 302 Found\r\nLocation: http://{backend}/next\r\nContent-Length: 0\r\n\r\n", KEEP),
    ("location-backend-query", "HTTP/1.1 302 Found\r\nLocation: http://{backend}/next?a=1&b=2\r\nContent-Length: 0\r\n\r\n", KEEP),
    ("location-backend-root", "HTTP/1.1 301 Moved Permanently\r\nLocation: http://{backend}/\r\nContent-Length: 0\r\n\r\n", KEEP),
    ("location-backend-https", "HTTP/1.1 302 Found\r\nLocation: https://{backend}/next\r\nContent-Length: 0\r\n\r\n", KEEP),
    ("location-relative", "HTTP/1.1 302 Found\r\nLocation: /next\r\nContent-Length: 0\r\n\r\n", KEEP),
    ("location-other-host", "HTTP/1.1 302 Found\r\nLocation: http://other.example/next\r\nContent-Length: 0\r\n\r\n", KEEP),
    ("location-on-201", "HTTP/1.1 201 Created\r\nLocation: http://{backend}/items/7\r\nContent-Length: 0\r\n\r\n", KEEP),
    ("content-location-backend", "HTTP/1.1 200 OK\r\nContent-Location: http://{backend}/doc\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("set-cookie-one", "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("set-cookie-two", "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("set-cookie-attributes", "HTTP/1.1 200 OK\r\nSet-Cookie: id=7; Path=/; HttpOnly; Secure; SameSite=Lax\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("set-cookie-expires", "HTTP/1.1 200 OK\r\nSet-Cookie: id=7; Expires=Wed, 21 Oct 2037 07:28:00 GMT\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("connection-close-cl", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", CLOSE),
    ("connection-close-chunked", "HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", CLOSE),
    ("connection-close-but-open", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("connection-names-header", "HTTP/1.1 200 OK\r\nConnection: X-Internal\r\nX-Internal: secret\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("keep-alive-header", "HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5, max=100\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("proxy-authenticate", "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=x\r\nContent-Length: 0\r\n\r\n", KEEP),
    ("upgrade-on-200", "HTTP/1.1 200 OK\r\nUpgrade: h2c\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("trailer-header-with-cl", "HTTP/1.1 200 OK\r\nTrailer: X-T\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("server-and-date", "HTTP/1.1 200 OK\r\nServer: backend/1.0\r\nDate: Tue, 01 Dec 2026 00:00:00 GMT\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("duplicate-headers", "HTTP/1.1 200 OK\r\nX-A: 1\r\nX-A: 2\r\nVary: Accept\r\nVary: Cookie\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("header-empty-value", "HTTP/1.1 200 OK\r\nX-Empty:\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("header-obs-text", "HTTP/1.1 200 OK\r\nX-A: caf\u{e9}\r\nContent-Length: 2\r\n\r\nok", KEEP),
    ("status-404", "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found", KEEP),
    ("status-500", "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops", KEEP),
    ("status-502", "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n", KEEP),
    ("status-503-retried", "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n", KEEP),
    ("status-599", "HTTP/1.1 599 Custom\r\nContent-Length: 2\r\n\r\nok", KEEP),
];

/// Replies too large to write inline.
fn expand(name: &str, reply: &str) -> Vec<u8> {
    match name {
        "large-cl" => {
            let body = "x".repeat(200 * 1024);
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
        }
        "large-chunked" => {
            let chunk = format!("4000\r\n{}\r\n", "y".repeat(0x4000));
            format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{}0\r\n\r\n",
                chunk.repeat(12)
            )
            .into_bytes()
        }
        "many-103-32" | "many-103-33" | "many-100-40" => {
            let (interim, count) = match name {
                "many-103-32" => ("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", 32),
                "many-103-33" => ("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", 33),
                _ => ("HTTP/1.1 100 Continue\r\n\r\n", 40),
            };
            format!(
                "{}HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                interim.repeat(count)
            )
            .into_bytes()
        }
        _ => reply.as_bytes().to_vec(),
    }
}

fn reply(name: &str, text: &str, after: After) -> Reply {
    Reply {
        bytes: expand(name, text),
        after,
    }
}

/// The requests each scripted answer is tried with: (suffix, request).
fn askers(name: &str) -> Vec<(&'static str, Vec<u8>)> {
    let get = request("GET", "/x", "", "");
    let head = request("HEAD", "/x", "", "");
    let post = request("POST", "/x", "Content-Length: 5\r\n", "hello");
    let http10 = format!("GET {SERVICE}/x HTTP/1.0\r\nHost: gw.test\r\n\r\n").into_bytes();
    let pipelined = [get.clone(), request("GET", "/second", "", "")].concat();
    let mut askers = vec![("get", get)];
    let framing_matters =
        name.starts_with("cl") || name.starts_with("chunked") || name.starts_with("close");
    if framing_matters || name.starts_with("20") || name.starts_with("30") {
        askers.push(("head", head));
    }
    if framing_matters
        || name.starts_with("10")
        || name.starts_with("status-")
        || name.starts_with("location")
    {
        askers.push(("post", post));
    }
    if framing_matters || name.starts_with("10") || name.starts_with("http10") {
        askers.push(("http10", http10));
    }
    if name.starts_with("longer")
        || name.starts_with("bytes-after")
        || name.starts_with("two-responses")
        || name.starts_with("connection-close")
    {
        askers.push(("pipelined", pipelined));
    }
    askers
}

/// Pooled connections (PRODUCT.md §9 "Pooled backend connections"): two
/// requests on one client connection; the backend answers the first, then
/// closes its connection when the second arrives on it. A retry lands on a
/// new connection and gets the third reply.
fn pooled() -> Vec<Case> {
    let ok_reply = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let head_reply = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n";
    let get = request("GET", "/1", "", "");
    let head = request("HEAD", "/1", "", "");
    let post = request("POST", "/1", "Content-Length: 2\r\n", "hi");
    let script = |answer: &str, dying: Reply| {
        vec![
            Reply::keep(answer.as_bytes()),
            dying,
            Reply::keep(answer.as_bytes()),
        ]
    };
    let unanswered = || Reply::close(Vec::new());
    let half_head = || Reply::close(&b"HTTP/1.1 200 OK\r\nContent-Le"[..]);
    let closing = || {
        Reply::close(&b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"[..])
    };
    let case = |name: &str, requests: Vec<Vec<u8>>, answer: &str, dying: Reply| {
        Case::new(
            format!("pooled-{name}"),
            requests.concat(),
            script(answer, dying),
            Expect::Forwarded,
        )
    };
    vec![
        case(
            "closed-unanswered-get",
            vec![get.clone(), get.clone()],
            ok_reply,
            unanswered(),
        ),
        case(
            "closed-unanswered-head",
            vec![head.clone(), head.clone()],
            head_reply,
            unanswered(),
        ),
        case(
            "closed-unanswered-post",
            vec![post.clone(), post.clone()],
            ok_reply,
            unanswered(),
        ),
        case(
            "closed-unanswered-post-then-get",
            vec![post.clone(), get.clone()],
            ok_reply,
            unanswered(),
        ),
        case(
            "closed-mid-head-get",
            vec![get.clone(), get.clone()],
            ok_reply,
            half_head(),
        ),
        case(
            "closed-mid-head-post",
            vec![post.clone(), post],
            ok_reply,
            half_head(),
        ),
        case(
            "connection-close-then-next",
            vec![get.clone(), get.clone(), get],
            ok_reply,
            closing(),
        ),
    ]
}

pub fn cases() -> Vec<Case> {
    let mut cases = pooled();
    for (group, table) in [
        ("framed", FRAMED),
        ("interim", INTERIM),
        ("broken", BROKEN),
        ("headers", HEADERS),
    ] {
        for (name, text, after) in table {
            for (asker, bytes) in askers(name) {
                let script = vec![reply(name, text, *after)];
                cases.push(Case::new(
                    format!("response-{group}-{name}-{asker}"),
                    bytes,
                    script,
                    Expect::Forwarded,
                ));
            }
        }
    }
    cases
}
