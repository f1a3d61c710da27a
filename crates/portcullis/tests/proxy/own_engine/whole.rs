//! Bodies that arrive whole with their head (`engine::backend`'s whole-body
//! path): relayed exactly, the connection reused at once; a backend that
//! sends more than its Content-Length has its extra bytes neither relayed
//! nor read as the next answer, and its connection is not reused.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use http::{Request, StatusCode};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use super::{own_member, read_request};
use portcullis_testkit::{client, empty, send};

/// A backend that answers every request with `reply` (head and body in
/// one write) and counts the connections it accepts.
async fn backend(reply: &'static [u8]) -> (String, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let accepted = Arc::new(AtomicUsize::new(0));
    let counted = accepted.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut pending = Vec::new();
                while read_request(&mut stream, &mut pending).await.is_some() {
                    if stream.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, accepted, task)
}

/// Sends `count` GETs one after another; the bodies the client got.
async fn bodies(reply: &'static [u8], count: usize) -> (Vec<(StatusCode, Vec<u8>)>, usize) {
    let (url, accepted, task) = backend(reply).await;
    let member = own_member(&url).await;
    let client = client();
    let mut got = Vec::new();
    for i in 0..count {
        let request = Request::get(member.url(&format!("/gateway/t/svc/{i}")))
            .body(empty())
            .expect("request");
        let response = send(&client, request).await;
        got.push((response.status, response.body.to_vec()));
    }
    member.stop().await;
    task.abort();
    (got, accepted.load(Ordering::SeqCst))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_body_is_relayed_and_its_connection_reused() {
    let (got, accepted) = bodies(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 6).await;
    for (status, body) in &got {
        assert_eq!((*status, body.as_slice()), (StatusCode::OK, &b"hello"[..]));
    }
    assert_eq!(
        accepted, 1,
        "one pooled connection for six sequential requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_after_a_whole_body_are_never_relayed_and_end_the_connection() {
    // The extra bytes would be the next request's answer if the connection
    // went back to the pool: `HTTP/1.1 500` smuggled in as the next reply.
    let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 500 X\r\nContent-Length: 0\r\n\r\n";
    let (got, accepted) = bodies(reply, 4).await;
    for (status, body) in &got {
        assert_eq!((*status, body.as_slice()), (StatusCode::OK, &b"ok"[..]));
    }
    assert_eq!(accepted, 4, "no connection with stray bytes is reused");
}
