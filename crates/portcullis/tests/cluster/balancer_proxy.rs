//! The balancer's `proxy` mode against members that fail before answering:
//! closed connections, black holes at connect and after it. The members are
//! plain targets in a [`MemberTable`] (the store plays no part here); a live
//! member is a demo backend, which answers like one.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, Request, StatusCode};
use portcullis_config::BalancerMode;
use portcullis_demo::DemoBackend;
use portcullis_proxy::balancer::{members_tls, BalancerOptions, MemberTable, MemberTarget};
use portcullis_testkit::*;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

/// A member target at `url`; `in_flight` steers the first choice (least
/// loaded first).
fn target(id: &str, url: String, in_flight: u64) -> MemberTarget {
    MemberTarget {
        id: id.into(),
        url,
        in_flight,
        alive_until_ms: u64::MAX,
        draining: false,
    }
}

/// A balancer serving `members` in proxy mode with `options` changed by `set`.
async fn balancer(
    members: Vec<MemberTarget>,
    set: impl FnOnce(&mut BalancerOptions),
) -> (SocketAddr, watch::Sender<bool>) {
    init();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let table = Arc::new(MemberTable::new(portcullis_proxy::CookieKey::random()));
    table.replace(members);
    let mut options = BalancerOptions::new(BalancerMode::Proxy, members_tls(None).unwrap());
    set(&mut options);
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(portcullis_proxy::balancer::serve(
        listener, table, options, stopped,
    ));
    (addr, stop)
}

/// A member that reads each request and closes without answering; counts
/// the connections it got.
pub(crate) async fn closing_member() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let mut head = [0u8; 4096];
            let _ = socket.read(&mut head).await;
        }
    });
    (url, accepted)
}

async fn demo_member() -> DemoBackend {
    DemoBackend::spawn("live", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

async fn call(addr: SocketAddr, method: Method, body: Option<&'static str>) -> Reply {
    let request = Request::builder()
        .method(method)
        .uri(format!("http://{addr}/x"));
    let request = match body {
        Some(body) => request.body(full(body)),
        None => request.body(empty()),
    };
    send(&client(), request.unwrap()).await
}

/// A member that closes before answering is replaced by another for
/// idempotent requests without a body; a POST gets 502 (it may have been
/// acted on), and so does a request whose body was already sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_closing_before_answering_is_replaced_for_idempotent_requests() {
    let (ghost, reached_ghost) = closing_member().await;
    let live = demo_member().await;
    // The ghost looks idle, so it is always chosen first.
    let (addr, stop) = balancer(
        vec![target("ghost", ghost, 0), target("live", live.url(), 1000)],
        |_| {},
    )
    .await;
    for method in [Method::GET, Method::HEAD, Method::DELETE, Method::OPTIONS] {
        let before = reached_ghost.load(Ordering::SeqCst);
        let reply = call(addr, method.clone(), None).await;
        assert_eq!(reply.status, StatusCode::OK, "{method}: {}", reply.text());
        assert!(
            reached_ghost.load(Ordering::SeqCst) > before,
            "{method} tried the ghost first"
        );
        let cookie = reply.headers["set-cookie"].to_str().unwrap();
        assert!(cookie.starts_with("PORTCULLIS_MEMBER="), "{cookie}");
    }
    let reply = call(addr, Method::POST, None).await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_GATEWAY,
        "POST is not repeated"
    );
    let reply = call(addr, Method::PUT, Some("payload")).await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_GATEWAY,
        "a sent body is not repeated"
    );
    assert!(reply.headers.get("set-cookie").is_none());
    stop.send(true).unwrap();
}

/// A member that accepts connections and never answers (a hung process)
/// costs a client `request_timeout`, then 504, never the OS's timeouts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_member_answers_504_within_the_request_timeout() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let (addr, stop) = balancer(vec![target("hole", url, 0)], |o| {
        o.request_timeout = Duration::from_millis(300);
    })
    .await;
    for method in [Method::GET, Method::POST] {
        let started = Instant::now();
        let reply = call(addr, method.clone(), None).await;
        let took = started.elapsed();
        assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT, "{method}");
        assert_eq!(reply.json()["error"], "member did not answer in time");
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(3),
            "{method} took {took:?}"
        );
    }
    drop(silent);
    stop.send(true).unwrap();
}

/// A member whose connect never completes (its accept queue is full, so its
/// kernel drops the SYN) is given up after `connect_timeout`, and the
/// request, never delivered, goes to another member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_black_hole_is_given_up_after_the_connect_timeout() {
    let (hole, _filled) = full_backlog().await;
    let live = demo_member().await;
    let (addr, stop) = balancer(
        vec![target("hole", hole, 0), target("live", live.url(), 1000)],
        |o| o.connect_timeout = Duration::from_millis(200),
    )
    .await;
    for method in [Method::GET, Method::POST] {
        let started = Instant::now();
        let reply = call(addr, method.clone(), None).await;
        let took = started.elapsed();
        assert_eq!(reply.status, StatusCode::OK, "{method}: {}", reply.text());
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_secs(3),
            "{method} took {took:?}"
        );
    }
    stop.send(true).unwrap();
}

/// A listener with a backlog of one that is never accepted from, with its
/// queue filled: further connects hang. The connections that filled it are
/// returned, to be kept open.
async fn full_backlog() -> (String, Vec<tokio::net::TcpStream>) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    // The listener must outlive the test: leak it into a task that never accepts.
    tokio::spawn(async move {
        let _listener = listener;
        std::future::pending::<()>().await
    });
    let mut filled = Vec::new();
    loop {
        match tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            Ok(Ok(stream)) => filled.push(stream),
            Ok(Err(err)) => panic!("connect to the filled listener: {err}"),
            Err(_) => break,
        }
        assert!(filled.len() < 64, "the accept queue never fills");
    }
    (format!("http://{addr}"), filled)
}
