//! Stale pooled connections (PRODUCT.md §9 "Pooled backend connections"):
//! the resend goes out on a new connection, so one resend is enough
//! however many dead connections the pool holds.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use futures_util::future::join_all;
use http::{Request, StatusCode};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Barrier;

use super::{own_member, read_request};
use portcullis_testkit::{client, empty, send, TestClient, TestMember};

/// Keep-alive connections the gateway opens before they go stale.
const POOLED: usize = 4;

#[derive(Default)]
struct Counts {
    accepted: AtomicUsize,
    /// Requests that came on a stale connection and were left unanswered.
    stale_hits: AtomicUsize,
    /// Connections accepted after the old ones went stale.
    new_after: AtomicUsize,
}

/// A backend whose first [`POOLED`] requests are held until all of them
/// have arrived (so the gateway opens that many connections), and whose
/// connections, once `stale` is set, close on their next request without
/// answering: the backend's idle close racing the gateway's reuse, for
/// every pooled connection at once.
async fn backend(
    stale: Arc<AtomicBool>,
    counts: Arc<Counts>,
) -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let warm = Arc::new(Barrier::new(POOLED));
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let born_stale = stale.load(Ordering::SeqCst);
            counts.accepted.fetch_add(1, Ordering::SeqCst);
            if born_stale {
                counts.new_after.fetch_add(1, Ordering::SeqCst);
            }
            let (stale, counts, warm) = (stale.clone(), counts.clone(), warm.clone());
            tokio::spawn(async move {
                let mut pending = Vec::new();
                let mut first = true;
                while read_request(&mut stream, &mut pending).await.is_some() {
                    if !born_stale && stale.load(Ordering::SeqCst) {
                        counts.stale_hits.fetch_add(1, Ordering::SeqCst);
                        let _ = stream.shutdown().await;
                        return;
                    }
                    if first && !born_stale {
                        warm.wait().await;
                    }
                    first = false;
                    let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                    if stream.write_all(ok).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, task)
}

async fn get(client: &TestClient, member: &TestMember, i: usize) -> StatusCode {
    let request = Request::get(member.url(&format!("/gateway/t/svc/item/{i}")))
        .body(empty())
        .expect("request");
    send(client, request).await.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_of_dead_connections_costs_one_new_connection_each_and_no_error() {
    let stale = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let (url, task) = backend(stale.clone(), counts.clone()).await;
    let member = own_member(&url).await;
    let client = client();
    // Warm up: POOLED requests at once, none answered before all arrived,
    // so the gateway holds POOLED pooled connections afterwards.
    let warm = join_all((0..POOLED).map(|i| get(&client, &member, i))).await;
    assert!(warm.iter().all(|s| *s == StatusCode::OK), "{warm:?}");
    assert_eq!(counts.accepted.load(Ordering::SeqCst), POOLED);
    stale.store(true, Ordering::SeqCst);
    // One GET first: before the fix its resends took the next dead pooled
    // connections and it failed after two.
    let mut statuses = vec![get(&client, &member, 100).await];
    // Then a burst, which takes what is left in the pool.
    let burst = (0..POOLED).map(|i| get(&client, &member, 200 + i));
    statuses.extend(join_all(burst).await);
    let errors = statuses.iter().filter(|s| **s != StatusCode::OK).count();
    assert_eq!(errors, 0, "{statuses:?}");
    let hits = counts.stale_hits.load(Ordering::SeqCst);
    let new = counts.new_after.load(Ordering::SeqCst);
    assert!(hits >= 1, "no request met a stale connection");
    assert_eq!(new, hits, "one new connection per stale one ({hits} stale)");
    member.stop().await;
    task.abort();
}
