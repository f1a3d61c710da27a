//! Every attack class of the strict-edges suite (`edges::smuggling`,
//! `edges::paths`, PRODUCT.md §9) and more variants of each: framing that
//! two parsers could read differently, malformed heads, bad chunks and
//! trailers, dot segments and encoded separators, CONNECT, oversize heads.
//! A refused payload is followed by a well-formed request that must not be
//! answered: a gateway that guessed a framing would answer it.

use super::{request, Case, Expect, SERVICE};

const T: &str = "/x";

fn post(headers: &str, body: &str) -> Vec<u8> {
    request("POST", T, headers, body)
}

fn raw(text: &str) -> Vec<u8> {
    text.replace("{S}", SERVICE).into_bytes()
}

/// Framing and head rules of PRODUCT.md §9 "Requests": 400 and closed.
fn framing() -> Vec<(&'static str, Vec<u8>)> {
    let te = "Transfer-Encoding: chunked\r\n";
    vec![
        ("cl-then-te", post("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n")),
        ("te-then-cl", post("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", "0\r\n\r\n")),
        ("cl-0-and-te", post("Content-Length: 0\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n")),
        ("cl-differing", post("Content-Length: 5\r\nContent-Length: 6\r\n", "hello!")),
        ("cl-list-differing", post("Content-Length: 5, 6\r\n", "hello!")),
        ("cl-signed-plus", post("Content-Length: +5\r\n", "hello")),
        ("cl-signed-minus", post("Content-Length: -5\r\n", "hello")),
        ("cl-hex", post("Content-Length: 0x5\r\n", "hello")),
        ("cl-space-inside", post("Content-Length: 1 0\r\n", "helloworld")),
        ("cl-overflow", post("Content-Length: 99999999999999999999999\r\n", "hello")),
        ("cl-empty", post("Content-Length: \r\n", "hello")),
        ("cl-letters", post("Content-Length: five\r\n", "hello")),
        ("cl-decimal-point", post("Content-Length: 5.0\r\n", "hello")),
        ("te-gzip-last", post("Transfer-Encoding: chunked, gzip\r\n", "0\r\n\r\n")),
        ("te-gzip-only", post("Transfer-Encoding: gzip\r\n", "0\r\n\r\n")),
        ("te-identity", post("Transfer-Encoding: identity\r\n", "0\r\n\r\n")),
        ("te-xchunked", post("Transfer-Encoding: xchunked\r\n", "0\r\n\r\n")),
        ("te-chunked-suffix", post("Transfer-Encoding: chunkedx\r\n", "0\r\n\r\n")),
        ("te-empty", post("Transfer-Encoding: \r\n", "0\r\n\r\n")),
        ("te-two-fields-last-identity", post("Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n", "0\r\n\r\n")),
        ("te-in-http10", raw("POST {S}/x HTTP/1.0\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")),
        ("obs-fold", post("X-A: one\r\n two\r\n", "")),
        ("obs-fold-tab", post("X-A: one\r\n\ttwo\r\n", "")),
        ("obs-fold-on-te", post("Transfer-Encoding:\r\n chunked\r\n", "0\r\n\r\n")),
        ("obs-fold-first-line", raw("POST {S}/x HTTP/1.1\r\n Host: gw.test\r\n\r\n")),
        ("space-before-colon", post("Content-Length : 5\r\n", "hello")),
        ("tab-before-colon", post("X-A\t: 1\r\n", "")),
        ("space-before-colon-te", post("Transfer-Encoding : chunked\r\n", "0\r\n\r\n")),
        ("nul-in-value", post("X-A: a\0b\r\n", "")),
        ("ctl-in-value", post("X-A: a\x01b\r\n", "")),
        ("del-in-value", post("X-A: a\x7fb\r\n", "")),
        ("ctl-in-name", post("X\x01A: 1\r\n", "")),
        ("nul-in-name", post("X\0A: 1\r\n", "")),
        ("space-in-name", post("X A: 1\r\n", "")),
        ("empty-name", post(": value\r\n", "")),
        ("bare-cr-in-value", post("X-A: a\rb\r\n", "")),
        ("bare-cr-line-end", raw("GET {S}/x HTTP/1.1\rHost: gw.test\r\r\n\r\n")),
        ("bare-lf-line-end", raw("GET {S}/x HTTP/1.1\nHost: gw.test\n\n")),
        ("bare-lf-in-header-block", raw("GET {S}/x HTTP/1.1\r\nHost: gw.test\nX-A: 1\r\n\r\n")),
        ("bare-lf-end-of-head", raw("GET {S}/x HTTP/1.1\r\nHost: gw.test\r\n\n")),
        ("no-host", raw("GET {S}/x HTTP/1.1\r\nX-A: 1\r\n\r\n")),
        ("two-hosts", post("Host: other.test\r\n", "")),
        ("two-hosts-same", post("Host: gw.test\r\n", "")),
        ("two-hosts-mixed-case", post("hOsT: other.test\r\n", "")),
        ("absolute-form-without-host", raw("GET http://gw.test{S}/x HTTP/1.1\r\nX-A: 1\r\n\r\n")),
        ("empty-host-and-host", raw("GET {S}/x HTTP/1.1\r\nHost:\r\nHost: gw.test\r\n\r\n")),
        ("host-list", raw("GET {S}/x HTTP/1.1\r\nHost: gw.test, evil.example\r\n\r\n")),
        ("host-port-over-65535", raw("GET {S}/x HTTP/1.1\r\nHost: gw.test:65616\r\n\r\n")),
        ("host-percent-encoded", raw("GET {S}/x HTTP/1.1\r\nHost: gw%2etest\r\n\r\n")),
        ("host-backslash", raw("GET {S}/x HTTP/1.1\r\nHost: gw.test\\evil\r\n\r\n")),
        ("host-invalid-in-http10", raw("GET {S}/x HTTP/1.0\r\nHost: gw.test;evil\r\n\r\n")),
        ("absolute-form-userinfo", raw("GET http://evil.example@gw.test{S}/x HTTP/1.1\r\nHost: gw.test\r\n\r\n")),
        ("chunk-size-not-hex", post(te, "zz\r\nhello\r\n0\r\n\r\n")),
        ("chunk-size-negative", post(te, "-5\r\nhello\r\n0\r\n\r\n")),
        ("chunk-size-0x", post(te, "0x5\r\nhello\r\n0\r\n\r\n")),
        ("chunk-size-overflow", post(te, "fffffffffffffffff1\r\nhello\r\n0\r\n\r\n")),
        ("chunk-size-space", post(te, "5 5\r\nhello\r\n0\r\n\r\n")),
        ("chunk-data-too-long", post(te, "3\r\nhello\r\n0\r\n\r\n")),
        ("chunk-size-bare-lf", post(te, "5\nhello\r\n0\r\n\r\n")),
        ("chunk-data-bare-lf", post(te, "5\r\nhello\n0\r\n\r\n")),
        ("chunk-size-empty", post(te, "\r\nhello\r\n0\r\n\r\n")),
        ("chunk-ext-bare-lf", post(te, "5;a=b\nc\r\nhello\r\n0\r\n\r\n")),
        ("chunk-ext-ctl", post(te, "5;a=\x01\r\nhello\r\n0\r\n\r\n")),
        ("trailer-obs-fold", post(te, "5\r\nhello\r\n0\r\nX-T: a\r\n b\r\n\r\n")),
        ("trailer-bare-lf", post(te, "5\r\nhello\r\n0\r\nX-T: a\n\r\n")),
        ("trailer-nul", post(te, "5\r\nhello\r\n0\r\nX-T: a\0b\r\n\r\n")),
        ("trailer-space-before-colon", post(te, "5\r\nhello\r\n0\r\nX-T : a\r\n\r\n")),
    ]
}

/// Request lines, targets and framings that are odd rather than ambiguous
/// (compared only: the status is the gateway's own choice). `{S}` is the
/// service prefix.
const ODD: &[(&str, &str)] = &[
    ("line-double-space", "GET  {S}/x HTTP/1.1\r\nHost: gw.test\r\n\r\n"),
    ("line-tab-separator", "GET\t{S}/x HTTP/1.1\r\nHost: gw.test\r\n\r\n"),
    ("line-trailing-space", "GET {S}/x HTTP/1.1 \r\nHost: gw.test\r\n\r\n"),
    ("line-version-1-2", "GET {S}/x HTTP/1.2\r\nHost: gw.test\r\n\r\n"),
    ("line-version-2-0", "GET {S}/x HTTP/2.0\r\nHost: gw.test\r\n\r\n"),
    ("line-version-lowercase", "GET {S}/x http/1.1\r\nHost: gw.test\r\n\r\n"),
    ("line-version-missing", "GET {S}/x\r\nHost: gw.test\r\n\r\n"),
    ("line-version-garbage", "GET {S}/x HTTP/1.1x\r\nHost: gw.test\r\n\r\n"),
    ("line-method-lowercase", "get {S}/x HTTP/1.1\r\nHost: gw.test\r\n\r\n"),
    ("line-method-bad-char", "G(T {S}/x HTTP/1.1\r\nHost: gw.test\r\n\r\n"),
    ("target-space", "GET {S}/a b HTTP/1.1\r\nHost: gw.test\r\n\r\n"),
    ("target-nul", "GET {S}/a\0b HTTP/1.1\r\nHost: gw.test\r\n\r\n"),
    ("target-ctl", "GET {S}/a\x01b HTTP/1.1\r\nHost: gw.test\r\n\r\n"),
    ("target-raw-utf8", "GET {S}/caf\u{e9} HTTP/1.1\r\nHost: gw.test\r\n\r\n"),
    ("target-fragment", "GET {S}/x#frag HTTP/1.1\r\nHost: gw.test\r\n\r\n"),
    ("target-double-slash", "GET {S}//x HTTP/1.1\r\nHost: gw.test\r\n\r\n"),
    ("target-no-leading-slash", "GET gateway/t/svc/x HTTP/1.1\r\nHost: gw.test\r\n\r\n"),
    ("leading-empty-line", "\r\nGET {S}/x HTTP/1.1\r\nHost: gw.test\r\n\r\n"),
    ("leading-space", " GET {S}/x HTTP/1.1\r\nHost: gw.test\r\n\r\n"),
    ("host-with-space", "GET {S}/x HTTP/1.1\r\nHost: gw test\r\n\r\n"),
    ("host-with-userinfo", "GET {S}/x HTTP/1.1\r\nHost: user@gw.test\r\n\r\n"),
    ("host-with-path", "GET {S}/x HTTP/1.1\r\nHost: gw.test/evil\r\n\r\n"),
    ("host-empty", "GET {S}/x HTTP/1.1\r\nHost:\r\n\r\n"),
    ("absolute-form-other-host", "GET http://other.test{S}/x HTTP/1.1\r\nHost: gw.test\r\n\r\n"),
    ("cl-leading-zeros", "POST {S}/x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 005\r\n\r\nhello"),
    ("cl-same-twice", "POST {S}/x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"),
    ("cl-same-list", "POST {S}/x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5, 5\r\n\r\nhello"),
    ("te-uppercase", "POST {S}/x HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: CHUNKED\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
    ("te-chunked-twice", "POST {S}/x HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
    ("te-gzip-then-chunked", "POST {S}/x HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
    ("te-two-fields-chunked", "POST {S}/x HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
    ("te-underscore-name", "POST {S}/x HTTP/1.1\r\nHost: gw.test\r\nTransfer_Encoding: chunked\r\n\r\n"),
    ("chunk-size-leading-zeros", "POST {S}/x HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n005\r\nhello\r\n0\r\n\r\n"),
    ("chunk-size-uppercase-hex", "POST {S}/x HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n"),
    ("chunk-ext-quoted", "POST {S}/x HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\"b;c\"\r\nhello\r\n0\r\n\r\n"),
    ("chunk-size-trailing-space", "POST {S}/x HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n"),
    ("trailer-content-length", "POST {S}/x HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nContent-Length: 50\r\n\r\n"),
    ("trailer-host", "POST {S}/x HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nHost: evil.example\r\n\r\n"),
    ("trailer-transfer-encoding", "POST {S}/x HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n"),
    ("body-holds-a-request", "POST {S}/x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 46\r\n\r\nGET /gateway/t/svc/inner HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("get-with-body-holding-a-request", "GET {S}/x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 46\r\n\r\nGET /gateway/t/svc/inner HTTP/1.1\r\nHost: a\r\n\r\n"),
];

fn request_lines() -> Vec<(String, Vec<u8>)> {
    let mut cases: Vec<(String, Vec<u8>)> = ODD
        .iter()
        .map(|(name, text)| (name.to_string(), raw(text)))
        .collect();
    let long_method = format!(
        "{} {SERVICE}/x HTTP/1.1\r\nHost: gw.test\r\n\r\n",
        "M".repeat(2000)
    );
    cases.push(("line-method-long".into(), long_method.into_bytes()));
    cases
}

/// PRODUCT.md §9 "Paths": 400 and never at the backend. The attack suite's
/// list (`edges::paths::ESCAPES`), then a few more shapes.
const MORE_ESCAPES: &[&str] = &[
    "/a/%2fb",
    "/a/%5cb",
    "/a/./b",
    "/a/../b",
    "/..",
    "/.",
    "/%2e",
    "/a/%2E%2E",
    "/..?q=1",
    "/..%2f?q=1",
];

fn escapes() -> impl Iterator<Item = &'static &'static str> {
    crate::edges::paths::ESCAPES.iter().chain(MORE_ESCAPES)
}

fn connects() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "connect-authority",
            raw("CONNECT backend.internal:22 HTTP/1.1\r\nHost: backend.internal:22\r\n\r\n"),
        ),
        ("connect-gateway-path", request("CONNECT", T, "", "")),
        (
            "connect-with-body",
            request("CONNECT", "/", "Content-Length: 3\r\n", "abc"),
        ),
        (
            "connect-absolute",
            raw("CONNECT http://gw.test{S}/x HTTP/1.1\r\nHost: gw.test\r\n\r\n"),
        ),
        (
            "connect-127",
            raw("CONNECT 127.0.0.1:80 HTTP/1.1\r\nHost: 127.0.0.1:80\r\n\r\n"),
        ),
        (
            "connect-http10",
            raw("CONNECT 127.0.0.1:80 HTTP/1.0\r\n\r\n"),
        ),
    ]
}

/// Heads over the 64 KiB limit: 431 (PRODUCT.md §3).
fn oversize() -> Vec<(&'static str, Vec<u8>)> {
    let many = (0..300)
        .map(|i| format!("X-H{i}: {}\r\n", "v".repeat(250)))
        .collect::<String>();
    vec![
        (
            "oversize-one-header",
            request(
                "GET",
                T,
                &format!("X-Big: {}\r\n", "a".repeat(70 * 1024)),
                "",
            ),
        ),
        ("oversize-many-headers", request("GET", T, &many, "")),
        (
            "oversize-just-over",
            request(
                "GET",
                T,
                &format!("X-Big: {}\r\n", "a".repeat(64 * 1024)),
                "",
            ),
        ),
    ]
}

/// Requests that stop half-way (PRODUCT.md §9 "Slow and idle peers"): the
/// members' 1 s `header_read_timeout` and service `idle` end them.
fn unfinished() -> Vec<Case> {
    let compared = |name: &str, bytes: Vec<u8>| {
        Case::new(
            format!("unfinished-{name}"),
            bytes,
            vec![super::ok()],
            Expect::Compared,
        )
    };
    vec![
        compared("head", raw("GET {S}/x HTTP/1.1\r\nHost: gw.test\r\n")),
        compared("request-line", raw("GET {S}/x HTT")),
        compared("body-cl", post("Content-Length: 10\r\n", "hello")),
        compared(
            "body-chunked",
            post("Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n"),
        ),
        compared(
            "expect-without-body",
            post("Expect: 100-continue\r\nContent-Length: 5\r\n", ""),
        ),
    ]
}

pub fn cases() -> Vec<Case> {
    let smuggled = request("GET", "/smuggled", "", "");
    let then_smuggled = |mut bytes: Vec<u8>| {
        bytes.extend_from_slice(&smuggled);
        bytes
    };
    let mut cases = Vec::new();
    for (name, bytes) in framing() {
        cases.push(Case::refused(
            format!("attack-{name}"),
            then_smuggled(bytes),
            400,
        ));
    }
    for (name, bytes) in request_lines() {
        let expect = Expect::Compared;
        cases.push(Case::new(
            format!("edge-{name}"),
            then_smuggled(bytes),
            vec![super::ok()],
            expect,
        ));
    }
    for (i, escape) in escapes().enumerate() {
        // A refused path may leave the connection open, so nothing follows.
        let bytes = request("GET", escape, "", "");
        cases.push(Case::new(
            format!("path-escape-{i:02}"),
            bytes,
            vec![super::ok()],
            Expect::Rejected(400),
        ));
    }
    for (name, bytes) in connects() {
        cases.push(Case::refused(
            format!("attack-{name}"),
            then_smuggled(bytes),
            405,
        ));
    }
    for (name, bytes) in oversize() {
        cases.push(Case::refused(format!("attack-{name}"), bytes, 431));
    }
    cases.extend(unfinished());
    cases
}
