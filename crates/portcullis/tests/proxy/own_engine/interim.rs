//! 1xx interim responses (PRODUCT.md §9 "Responses"; RFC 9110 §15.2).

use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use super::{head_end, own_member, read_request, read_until, statuses};

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
const HINTS: &str = "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n";

/// What the backend does for one request.
enum Step {
    Send(Vec<u8>),
    /// Waits until the test says go on.
    Wait(Arc<Notify>),
}

type Script = Arc<dyn Fn(&[u8]) -> Vec<Step> + Send + Sync>;

/// A keep-alive backend that answers each request with the steps `script`
/// gives for it.
async fn backend(script: Script) -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let script = script.clone();
            tokio::spawn(async move {
                let mut pending = Vec::new();
                while let Some(request) = read_request(&mut stream, &mut pending).await {
                    for step in script(&request) {
                        match step {
                            Step::Send(bytes) => {
                                if stream.write_all(&bytes).await.is_err() {
                                    return;
                                }
                            }
                            Step::Wait(go) => go.notified().await,
                        }
                    }
                }
            });
        }
    });
    (url, task)
}

/// Every step sends these bytes.
fn sends(parts: &[&str]) -> Vec<Step> {
    parts
        .iter()
        .map(|p| Step::Send(p.as_bytes().to_vec()))
        .collect()
}

/// True once `bytes` hold a complete `200 ok` (the final answer here).
fn has_final(bytes: &[u8]) -> bool {
    bytes.ends_with(b"\r\n\r\nok")
}

async fn exchange(member_addr: std::net::SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut client = TcpStream::connect(member_addr).await.expect("connect");
    client.write_all(request).await.expect("write");
    read_until(&mut client, |b| has_final(b) || statuses(b).contains(&502)).await
}

fn get(path: &str, version: &str) -> Vec<u8> {
    format!("GET /gateway/t/svc{path} {version}\r\nHost: gw.test\r\n\r\n").into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_hints_reach_the_client_before_the_final_response_exists() {
    let go = Arc::new(Notify::new());
    let backend_go = go.clone();
    let hop = "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\
               Connection: x-private\r\nX-Private: 1\r\nKeep-Alive: timeout=5\r\n\r\n";
    let script: Script = Arc::new(move |request: &[u8]| {
        if request.starts_with(b"GET /hints") {
            let mut steps = sends(&[hop]);
            steps.push(Step::Wait(backend_go.clone()));
            steps.push(Step::Send(OK.to_vec()));
            steps
        } else {
            vec![Step::Send(OK.to_vec())]
        }
    });
    let (url, task) = backend(script).await;
    let member = own_member(&url).await;
    let mut client = TcpStream::connect(member.addr).await.expect("connect");
    client.write_all(&get("/hints", "HTTP/1.1")).await.unwrap();
    // The backend holds its 200 until the client has the 103: relayed at
    // once, not only ahead of the final head.
    let interim = read_until(&mut client, |b| head_end(b).is_some()).await;
    let text = String::from_utf8_lossy(&interim).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 103 early hints\r\n"), "{text:?}");
    assert!(text.contains("link: </a.css>; rel=preload\r\n"), "{text:?}");
    for hop_field in ["connection", "x-private", "keep-alive"] {
        assert!(!text.contains(hop_field), "{hop_field} relayed: {text:?}");
    }
    go.notify_one();
    let rest = read_until(&mut client, has_final).await;
    assert_eq!(statuses(&rest), [200], "{}", String::from_utf8_lossy(&rest));
    // The connection goes on as usual.
    client.write_all(&get("/plain", "HTTP/1.1")).await.unwrap();
    let next = read_until(&mut client, has_final).await;
    assert_eq!(statuses(&next), [200]);
    member.stop().await;
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interim_responses_go_in_order_and_never_to_http10_clients() {
    let script: Script = Arc::new(|_: &[u8]| {
        let processing = "HTTP/1.1 102 Processing\r\n\r\n";
        let second = "HTTP/1.1 103 Early Hints\r\nLink: </b.js>; rel=preload\r\n\r\n";
        let ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        sends(&[processing, HINTS, second, ok])
    });
    let (url, task) = backend(script).await;
    let member = own_member(&url).await;
    let http11 = exchange(member.addr, &get("/x", "HTTP/1.1")).await;
    assert_eq!(statuses(&http11), [102, 103, 103, 200]);
    let text = String::from_utf8_lossy(&http11);
    let (a, b) = (
        text.find("</a.css>").unwrap(),
        text.find("</b.js>").unwrap(),
    );
    assert!(a < b, "hints in the backend's order: {text}");
    let http10 = exchange(member.addr, &get("/x", "HTTP/1.0")).await;
    assert_eq!(
        statuses(&http10),
        [200],
        "{}",
        String::from_utf8_lossy(&http10)
    );
    member.stop().await;
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backends_100_is_dropped_and_an_expect_gets_exactly_one_100() {
    let script: Script = Arc::new(|_: &[u8]| {
        sends(&[
            "HTTP/1.1 100 Continue\r\n\r\n",
            HINTS,
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        ])
    });
    let (url, task) = backend(script).await;
    let member = own_member(&url).await;
    // Without Expect: the backend's 100 means nothing to the client.
    let plain = exchange(member.addr, &get("/x", "HTTP/1.1")).await;
    assert_eq!(statuses(&plain), [103, 200]);
    // With Expect: the engine's own 100 when the body is wanted, and not a
    // second one from the backend (which got the Expect too).
    let mut client = TcpStream::connect(member.addr).await.expect("connect");
    let head = "POST /gateway/t/svc/x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5\r\n\
                Expect: 100-continue\r\n\r\n";
    client.write_all(head.as_bytes()).await.unwrap();
    let continued = read_until(&mut client, |b| head_end(b).is_some()).await;
    assert_eq!(statuses(&continued), [100]);
    client.write_all(b"hello").await.unwrap();
    let rest = read_until(&mut client, has_final).await;
    assert_eq!(
        statuses(&rest),
        [103, 200],
        "{}",
        String::from_utf8_lossy(&rest)
    );
    member.stop().await;
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_interim_responses_pass_and_the_thirty_third_is_a_502() {
    let script: Script = Arc::new(|request: &[u8]| {
        let count = if request.starts_with(b"GET /many") {
            33
        } else {
            32
        };
        let mut steps: Vec<Step> = (0..count)
            .map(|_| Step::Send(HINTS.as_bytes().to_vec()))
            .collect();
        steps.push(Step::Send(OK.to_vec()));
        steps
    });
    let (url, task) = backend(script).await;
    let member = own_member(&url).await;
    let most = exchange(member.addr, &get("/most", "HTTP/1.1")).await;
    let seen = statuses(&most);
    assert_eq!(seen.len(), 33, "{seen:?}");
    assert!(
        seen[..32].iter().all(|s| *s == 103) && seen[32] == 200,
        "{seen:?}"
    );
    let many = exchange(member.addr, &get("/many", "HTTP/1.1")).await;
    let seen = statuses(&many);
    assert_eq!(seen.last(), Some(&502), "{seen:?}");
    assert!(seen.iter().filter(|s| **s == 103).count() <= 32, "{seen:?}");
    member.stop().await;
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_interim_head_is_a_502() {
    let broken = [
        "HTTP/1.1 103 Early Hints\nLink: </a.css>\n\n",
        "HTTP/1.1 103 Early Hints\r\nLink : </a.css>\r\n\r\n",
        "HTTP/1.1 103 Early Hints\r\nContent-Length: x\r\n\r\n",
        "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n continued\r\n\r\n",
        "HTTP/1.1 1033 Early Hints\r\n\r\n",
    ];
    for interim in broken {
        let script: Script = Arc::new(move |_: &[u8]| {
            sends(&[interim, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"])
        });
        let (url, task) = backend(script).await;
        let member = own_member(&url).await;
        let reply = exchange(member.addr, &get("/x", "HTTP/1.1")).await;
        assert_eq!(
            statuses(&reply),
            [502],
            "{interim:?}: {}",
            String::from_utf8_lossy(&reply)
        );
        member.stop().await;
        task.abort();
    }
}
