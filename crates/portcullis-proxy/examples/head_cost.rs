//! Parses one response head and one request head N times (the first
//! argument): run under callgrind at two counts and subtract, for the
//! instructions of a parse alone (`bench/perf/head_cost.sh`).

use bytes::BytesMut;
use portcullis_proxy::engine::head::{parse_request, parse_response};

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Thu, 03 Dec 2026 06:12:22 GMT\r\nContent-Type: text/plain\r\nContent-Length: 19\r\nConnection: keep-alive\r\n\r\nhello from backend\n";
const REQUEST: &[u8] = b"GET /gateway/bench/small/ HTTP/1.1\r\nHost: 127.0.0.1:40000\r\n\r\n";

fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let mut kept = 0usize;
    for _ in 0..count {
        let mut buf = BytesMut::from(RESPONSE);
        if let Ok(Some(head)) = parse_response(&mut buf, &http::Method::GET) {
            kept += usize::from(!head.closes);
        }
        let mut buf = BytesMut::from(REQUEST);
        if let Ok(Some(head)) = parse_request(&mut buf) {
            kept += usize::from(head.expects_continue);
        }
    }
    println!("{kept}");
}
