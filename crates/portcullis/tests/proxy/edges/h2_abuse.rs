//! HTTP/2 abuse (PRODUCT.md §9): rapid reset (CVE-2023-44487) with and
//! without reconnects, and floods of control frames on one connection. A reset
//! stream must cost no backend connection, an abusive connection is ended,
//! a source that keeps resetting is refused for a while, and well-behaved
//! clients keep being served throughout.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{Request, StatusCode};
use tokio::io::AsyncWriteExt;

use super::h2raw::*;
use super::raw::*;

fn source(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

const PATH: &str = "/gateway/t/svc/x";

/// One rapid-reset pair on stream `id`, in one of several shapes.
fn reset_pair(variant: usize, id: u32) -> Vec<u8> {
    let mut out = Vec::new();
    match variant {
        // GET, reset with CANCEL.
        0 => {
            out.extend(get_headers(id, PATH));
            out.extend(rst(id, 0x8));
        }
        // POST still expecting its body, reset with NO_ERROR.
        1 => {
            out.extend(frame(HEADERS, END_HEADERS, id, &header_block("POST", PATH)));
            out.extend(rst(id, 0x0));
        }
        // POST with part of its body, reset with PROTOCOL_ERROR.
        2 => {
            out.extend(frame(HEADERS, END_HEADERS, id, &header_block("POST", PATH)));
            out.extend(frame(DATA, 0, id, b"partial"));
            out.extend(rst(id, 0x1));
        }
        // Header block split over a CONTINUATION, reset with INTERNAL_ERROR.
        3 => {
            let block = header_block("GET", PATH);
            let (a, b) = block.split_at(3);
            out.extend(frame(HEADERS, END_STREAM, id, a));
            out.extend(frame(CONTINUATION, END_HEADERS, id, b));
            out.extend(rst(id, 0x2));
        }
        // GET with a PRIORITY frame first, reset with REFUSED_STREAM.
        _ => {
            out.extend(frame(PRIORITY, 0, id, &[0, 0, 0, 0, 16]));
            out.extend(get_headers(id, PATH));
            out.extend(rst(id, 0x7));
        }
    }
    out
}

/// Opens a connection from `from`, sends `pairs` reset pairs, ten per write
/// (few enough that h2's own limit on streams reset before hyper accepted
/// them never trips), and reports whether the gateway ended the connection
/// (GOAWAY or close) and how many pairs it took.
async fn reset_burst(
    addr: SocketAddr,
    from: IpAddr,
    variant: usize,
    pairs: u32,
) -> Option<(bool, u32)> {
    const PER_WRITE: u32 = 10;
    let stream = connect_from(from, addr).await.ok()?;
    let (read, mut write) = stream.into_split();
    let reader = Reader::spawn(read);
    write.write_all(&hello()).await.ok()?;
    let mut sent = 0;
    while sent < pairs {
        let mut bytes = Vec::new();
        for i in 0..PER_WRITE.min(pairs - sent) {
            bytes.extend(reset_pair(variant, 1 + 2 * (sent + i)));
        }
        if write.write_all(&bytes).await.is_err() || reader.seen().ended() {
            break;
        }
        sent += PER_WRITE;
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let seen = reader
        .wait_for(Duration::from_millis(300), |s| s.ended())
        .await;
    Some((seen.ended(), sent))
}

/// Whether a connection from `from` is refused at once: closed without the
/// gateway's SETTINGS or any answer to a request.
async fn refused_at_once(addr: SocketAddr, from: IpAddr) -> bool {
    let Ok(stream) = connect_from(from, addr).await else {
        return true;
    };
    let (read, mut write) = stream.into_split();
    let reader = Reader::spawn(read);
    let mut request = hello();
    request.extend(get_headers(1, PATH));
    let _ = write.write_all(&request).await;
    let seen = reader.wait_for(Duration::from_secs(1), |s| s.closed).await;
    seen.closed && seen.responses() == 0
}

async fn h2c_get_ok(url: &str) -> bool {
    let client = portcullis_testkit::h2c_client();
    let request = Request::get(url).body(portcullis_testkit::empty()).unwrap();
    matches!(
        tokio::time::timeout(Duration::from_secs(5), client.request(request)).await,
        Ok(Ok(r)) if r.status() == StatusCode::OK
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_on_one_connection_costs_no_backend_and_ends_it() {
    let backend = RecordingBackend::start().await;
    let member = member_for(&backend.url(), "", "").await;
    let mut kept_open = Vec::new();
    // Each variant from its own source, so one throttled source does not
    // decide the next variant.
    for variant in 0..5 {
        let from = source(10 + variant as u8);
        let (ended, sent) = reset_burst(member.addr, from, variant, 2000)
            .await
            .expect("first connection is accepted");
        if !ended {
            kept_open.push(format!("variant {variant}: open after {sent} resets"));
        }
    }
    let backend_connections = backend.connections();
    assert!(
        backend_connections <= 5 && kept_open.is_empty(),
        "10,000 reset streams cost {backend_connections} backend connections; {kept_open:#?}"
    );
    assert!(
        h2c_get_ok(&member.url(PATH)).await,
        "a real client is served"
    );
    member.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_with_reconnects_throttles_the_source() {
    let backend = RecordingBackend::start().await;
    let member = member_for(&backend.url(), "", "").await;
    let addr = member.addr;
    let attacker = source(2);
    let stop = Arc::new(AtomicBool::new(false));
    // Two clients, 100 pairs per connection, reconnecting at once.
    let clients: Vec<_> = (0..2)
        .map(|n| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut connections = 0;
                while !stop.load(Ordering::Relaxed) && connections < 60 {
                    let variant = (connections + n) % 5;
                    if reset_burst(addr, attacker, variant, 100).await.is_none() {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    connections += 1;
                }
            })
        })
        .collect();
    // The good client keeps being served from another source meanwhile.
    for _ in 0..5 {
        assert!(
            h2c_get_ok(&member.url(PATH)).await,
            "a real client is served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for client in clients {
        client.await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let refused = refused_at_once(addr, attacker).await;
    let others_refused = refused_at_once(addr, source(3)).await;
    let backend_connections = backend.connections();
    assert!(
        refused && !others_refused && backend_connections <= 5,
        "12,000 reset streams cost {backend_connections} backend connections; \
         the resetting source refused for a while: {refused}; another source refused: {others_refused}"
    );
    assert!(
        h2c_get_ok(&member.url(PATH)).await,
        "a real client is served"
    );
    member.stop().await;
}

/// Flood chunk number `n` of one kind of control frame.
fn flood_chunk(name: &str, n: usize) -> Vec<u8> {
    let mut chunk = Vec::new();
    for i in 0..1000u32 {
        match name {
            "PING" => chunk.extend(ping(0)),
            "PING ACK" => chunk.extend(ping(ACK)),
            "SETTINGS" => chunk.extend(frame(SETTINGS, 0, 0, &[0, 0x3, 0, 0, 0, 100])),
            "WINDOW_UPDATE" => chunk.extend(window_update(0, 1)),
            "stream WINDOW_UPDATE" => chunk.extend(window_update(1, 1)),
            "PRIORITY" => chunk.extend(frame(PRIORITY, 0, 3 + 2 * (i % 100), &[0, 0, 0, 1, 16])),
            "empty DATA" => chunk.extend(frame(DATA, 0, 1, &[])),
            // Whole header blocks of six frames each, on streams that stay
            // open waiting for a body.
            _ => {
                if i % 6 == 0 {
                    let id = 3 + 2 * (n as u32 * 167 + i / 6);
                    let block = header_block("POST", PATH);
                    chunk.extend(frame(HEADERS, 0, id, &block[..1]));
                    for b in &block[1..5] {
                        chunk.extend(frame(CONTINUATION, 0, id, std::slice::from_ref(b)));
                    }
                    chunk.extend(frame(CONTINUATION, END_HEADERS, id, &block[5..]));
                }
            }
        }
    }
    chunk
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_frame_floods_end_the_connection() {
    let backend = RecordingBackend::start().await;
    let member = member_for(&backend.url(), "", "").await;
    let floods = [
        "PING",
        "PING ACK",
        "SETTINGS",
        "WINDOW_UPDATE",
        "stream WINDOW_UPDATE",
        "PRIORITY",
        "empty DATA",
        "CONTINUATION",
    ];
    let mut survived = Vec::new();
    for (n, name) in floods.iter().enumerate() {
        let stream = connect_from(source(20 + n as u8), member.addr)
            .await
            .expect("connect");
        let (read, mut write) = stream.into_split();
        let reader = Reader::spawn(read);
        let mut start = hello();
        // Stream 1 stays open (a POST waiting for its body) for the
        // stream-level floods.
        start.extend(frame(HEADERS, END_HEADERS, 1, &header_block("POST", PATH)));
        write.write_all(&start).await.unwrap();
        let chunks = flood(
            &mut write,
            |n| flood_chunk(name, n),
            Duration::from_secs(6),
            || reader.seen().ended(),
        )
        .await;
        let seen = reader.wait_for(Duration::from_secs(1), |s| s.ended()).await;
        if !seen.ended() {
            survived.push(format!("{name}: {chunks} thousand frames, still open"));
        }
        assert!(
            h2c_get_ok(&member.url(PATH)).await,
            "a real client is served after the {name} flood"
        );
    }
    assert!(survived.is_empty(), "{survived:#?}");
    member.stop().await;
}
