//! Response framing from a backend (PRODUCT.md §9 "Responses"): a backend
//! that frames its answer ambiguously or wrongly never produces a response
//! that looks complete to the client.

use std::time::Duration;

use super::raw::*;

async fn through_gateway(reply: &[u8], method: &str) -> RawReply {
    let backend = ScriptedBackend::start(reply.to_vec(), Duration::from_millis(200)).await;
    let member = member_for(&backend.url(), "", "").await;
    let got = exchange(
        member.addr,
        &request(method, "/gateway/t/svc/x", "", ""),
        Duration::from_secs(1),
    )
    .await;
    member.stop().await;
    got
}

/// The body of the first response, de-chunked when it is chunked; None when
/// the bytes do not hold one complete response.
fn complete_body(reply: &RawReply) -> Option<Vec<u8>> {
    let bytes = &reply.bytes;
    let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&bytes[..head_end]).to_ascii_lowercase();
    let body = &bytes[head_end..];
    let cl = head
        .lines()
        .filter(|l| l.starts_with("content-length:"))
        .count();
    let te = head.lines().any(|l| l.starts_with("transfer-encoding:"));
    assert!(
        !(cl > 0 && te),
        "Content-Length next to Transfer-Encoding:\n{head}"
    );
    if te {
        let mut out = Vec::new();
        let mut at = 0;
        loop {
            let line_end = at + body[at..].windows(2).position(|w| w == b"\r\n")?;
            let size =
                usize::from_str_radix(std::str::from_utf8(&body[at..line_end]).ok()?, 16).ok()?;
            at = line_end + 2;
            if size == 0 {
                return Some(out);
            }
            out.extend_from_slice(body.get(at..at + size)?);
            at += size + 2;
        }
    }
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().ok())
        .unwrap_or(Some(body.len()))?;
    (body.len() >= length).then(|| body[..length].to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_with_content_length_is_relayed_by_its_chunks() {
    let cases: [&[u8]; 5] = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\na\r\n0123456789\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n01234\r\n5\r\n56789\r\n0\r\n\r\n",
        b"HTTP/1.1 201 Created\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\n012\r\n7\r\n3456789\r\n0\r\n\r\n",
    ];
    for (i, case) in cases.iter().enumerate() {
        let reply = through_gateway(case, "GET").await;
        let body = complete_body(&reply);
        assert_eq!(
            body.as_deref(),
            Some(&b"0123456789"[..]),
            "case {i}: {}",
            reply.text()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_outside_100_to_599_are_502() {
    for status in ["600", "700", "999", "000", "099"] {
        let response = format!("HTTP/1.1 {status} Odd\r\nContent-Length: 2\r\n\r\nok");
        let reply = through_gateway(response.as_bytes(), "GET").await;
        assert_eq!(reply.status(), Some(502), "{status}: {}", reply.text());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_shorter_than_its_framing_never_looks_complete() {
    let cases: [&[u8]; 5] = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\n01234",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n01234\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n01234\r\n0\r\n\r\n",
    ];
    for (i, case) in cases.iter().enumerate() {
        let reply = through_gateway(case, "GET").await;
        // Either an error status, or a response whose framing is visibly
        // unfinished (and the connection closed).
        let looks_complete = reply.status() == Some(200) && complete_body(&reply).is_some();
        assert!(!looks_complete, "case {i}: {}", reply.text());
        assert!(reply.closed, "case {i}: connection left open");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_response_heads_are_502() {
    let cases: [&[u8]; 5] = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
        b"HTTX/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok",
    ];
    for (i, case) in cases.iter().enumerate() {
        let reply = through_gateway(case, "GET").await;
        assert_eq!(reply.status(), Some(502), "case {i}: {}", reply.text());
    }
}
