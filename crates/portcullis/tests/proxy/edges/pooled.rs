//! Pooled backend connections (PRODUCT.md §9): a GET or HEAD that lands on
//! a pooled connection the backend closed while it was idle is sent again on
//! a new connection and never costs the client an error.

use std::time::Duration;

use http::{Method, Request, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::raw::*;
use portcullis_testkit::{client, empty, send};

#[derive(Clone, Copy, Debug)]
enum Closing {
    /// Answers one request, then closes with the next request unread (RST).
    ResetOnSecond,
    /// Answers one request, reads the next and closes without answering (FIN).
    FinOnSecond,
    /// Answers one request, then closes after a random idle time (0-8 ms).
    RandomIdle,
    /// Answers two requests per connection, then resets on the third.
    ResetOnThird,
    /// Answers one request, reads half of the next head and closes.
    FinMidHead,
}

/// A backend that closes its keep-alive connections in the given way.
async fn closing_backend(mode: Closing) -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let answered = if matches!(mode, Closing::ResetOnThird) {
                    2
                } else {
                    1
                };
                let mut pending = Vec::new();
                let mut buf = [0u8; 4096];
                for _ in 0..answered {
                    while complete_request(&pending).is_none() {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => pending.extend_from_slice(&buf[..n]),
                        }
                    }
                    let used = complete_request(&pending).unwrap_or(0);
                    pending.drain(..used);
                    let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                    if stream.write_all(reply).await.is_err() {
                        return;
                    }
                }
                match mode {
                    Closing::ResetOnSecond | Closing::ResetOnThird => {
                        // Wait for the next request to arrive, leave it unread.
                        let _ = stream.readable().await;
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    Closing::FinOnSecond => {
                        while complete_request(&pending).is_none() {
                            match stream.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => pending.extend_from_slice(&buf[..n]),
                            }
                        }
                        let _ = stream.shutdown().await;
                    }
                    Closing::RandomIdle => {
                        let idle = rand::random::<u64>() % 9;
                        tokio::time::sleep(Duration::from_millis(idle)).await;
                        let _ = stream.shutdown().await;
                    }
                    Closing::FinMidHead => {
                        let _ = stream.read(&mut buf[..8]).await;
                        let _ = stream.shutdown().await;
                    }
                }
            });
        }
    });
    (url, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gets_on_connections_the_backend_closed_never_fail() {
    for mode in [
        Closing::ResetOnSecond,
        Closing::FinOnSecond,
        Closing::RandomIdle,
        Closing::ResetOnThird,
        Closing::FinMidHead,
    ] {
        let (url, task) = closing_backend(mode).await;
        let member = member_for(&url, "", "").await;
        let client = client();
        let mut failures = 0;
        for i in 0..300 {
            let method = if i % 3 == 0 {
                Method::HEAD
            } else {
                Method::GET
            };
            let request = Request::builder()
                .method(method)
                .uri(member.url(&format!("/gateway/t/svc/item/{i}")))
                .body(empty())
                .unwrap();
            if send(&client, request).await.status != StatusCode::OK {
                failures += 1;
            }
            if matches!(mode, Closing::RandomIdle) && i % 10 == 0 {
                tokio::time::sleep(Duration::from_millis(4)).await;
            }
        }
        assert_eq!(failures, 0, "{mode:?}: {failures} of 300 failed");
        member.stop().await;
        task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_is_not_sent_twice() {
    let (url, task) = closing_backend(Closing::FinOnSecond).await;
    let member = member_for(&url, "", "").await;
    let client = client();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let request = Request::post(member.url("/gateway/t/svc/order"))
            .body(portcullis_testkit::full("x"))
            .unwrap();
        statuses.push(send(&client, request).await.status.as_u16());
    }
    // The second and fourth land on a connection that takes the request and
    // closes: a POST may have had effects, so the client hears about it.
    assert!(statuses.contains(&502), "{statuses:?}");
    member.stop().await;
    task.abort();
}
