//! High availability end to end: backends that are killed, frozen, reset and
//! brought back, with real sockets and real processes.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, StatusCode};
use portcullis_demo::DemoBackend;
use portcullis_proxy::ha::Health;
use portcullis_testkit::*;
use tokio::io::AsyncReadExt;

pub(crate) async fn backend(name: &str) -> DemoBackend {
    DemoBackend::spawn(name, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_one_of_three_backends_costs_no_get() {
    let backends: Vec<BackendProcess> = ["a", "b", "c"]
        .iter()
        .map(|n| BackendProcess::spawn(n))
        .collect();
    let urls: Vec<String> = backends.iter().map(|b| b.url()).collect();
    let member = TestMember::start(&[(
        "t",
        &ha_topology("svc", &urls, "load_balancing = \"round-robin\"", ""),
    )])
    .await;
    let mut backends = backends;
    let load = Load::start(member.url("/gateway/t/svc/x"), 6);
    wait_until(
        "the load to reach every backend",
        Duration::from_secs(10),
        || load.ok_so_far() > 30,
    )
    .await;
    backends[1].kill();
    let svc = member.service("t", "svc");
    wait_until(
        "the killed backend to be ejected",
        Duration::from_secs(10),
        || svc.backends[1].state.health(tokio::time::Instant::now()) == Health::Ejected,
    )
    .await;
    // Keep the load on past the ejection, so requests meet the dead backend
    // both before and after it is ejected.
    let at_ejection = load.ok_so_far();
    wait_until(
        "100 more requests after the ejection",
        Duration::from_secs(20),
        || load.ok_so_far() > at_ejection + 100,
    )
    .await;
    let result = load.finish().await;
    result.assert_no_failures();
    assert!(result.ok > 100, "{}", result.ok);
    assert!(
        result.seen.contains_key("a") && result.seen.contains_key("c"),
        "{:?}",
        result.seen
    );
    assert_eq!(
        svc.backends[1].state.health(tokio::time::Instant::now()),
        Health::Ejected,
        "the dead backend is ejected"
    );
    let now = tokio::time::Instant::now();
    let dead = svc.backends[1].state.snapshot(now).outcomes;
    let dead_failures = dead.failed + dead.connect_failed;
    assert!(dead_failures > 0, "failed tries are counted");
    assert!(
        svc.stats.failovers() >= dead_failures,
        "each failed try led to another try"
    );
    let answered: u64 = svc
        .backends
        .iter()
        .map(|b| b.state.snapshot(now).outcomes.answered)
        .sum();
    assert!(
        answered >= result.ok,
        "answered {answered} >= ok {}",
        result.ok
    );
    member.stop().await;
}

/// Round robin over a backend that gets SIGSTOP under load and a healthy one,
/// with `ha` and `timeouts` added to the service. Returns the load's result
/// and the frozen backend's health when the load stopped.
async fn freeze_one_of_two(ha: &str, timeouts: &str, frozen_for: Duration) -> (LoadResult, Health) {
    let mut frozen = BackendProcess::spawn("frozen");
    let healthy = BackendProcess::spawn("healthy");
    let member = TestMember::start(&[(
        "t",
        &ha_topology(
            "svc",
            &[frozen.url(), healthy.url()],
            &format!("load_balancing = \"round-robin\"\n{ha}"),
            &format!("[service.timeouts]\n{timeouts}"),
        ),
    )])
    .await;
    let load = Load::start(member.url("/gateway/t/svc/x"), 4);
    wait_until("the load to run", Duration::from_secs(10), || {
        load.ok_so_far() > 20
    })
    .await;
    frozen.signal("STOP");
    // The freeze lasts a fixed time: how requests fare during it is the test.
    tokio::time::sleep(frozen_for).await;
    let result = load.finish().await;
    frozen.signal("CONT");
    let health = member.service("t", "svc").backends[0]
        .state
        .health(tokio::time::Instant::now());
    frozen.kill();
    member.stop().await;
    result.assert_no_failures();
    (result, health)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_backend_delays_no_request_beyond_one_timeout_plus_a_healthy_try() {
    let (result, health) =
        freeze_one_of_two("", "request = \"500ms\"", Duration::from_millis(2500)).await;
    assert!(
        result.slowest < Duration::from_millis(500 + 400),
        "slowest request {:?} exceeds the 500 ms timeout plus one healthy try",
        result.slowest
    );
    assert_eq!(health, Health::Ejected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_stall_timeout_a_frozen_backend_costs_a_fraction_of_the_request_timeout() {
    let (result, health) = freeze_one_of_two(
        "stall_timeout = \"200ms\"",
        "request = \"5s\"",
        Duration::from_millis(2000),
    )
    .await;
    // Without the stall rule the requests caught by the freeze wait the 5 s
    // request timeout.
    assert!(
        result.slowest < Duration::from_millis(200 + 600),
        "slowest request {:?}: more than the 200 ms stall timeout plus a healthy try",
        result.slowest
    );
    assert_eq!(health, Health::Ejected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stall_timeout_spares_a_slow_request_while_its_backend_answers_others() {
    let slow = backend("slow").await;
    let member = TestMember::start(&[(
        "t",
        &ha_topology(
            "svc",
            &[slow.url()],
            "stall_timeout = \"200ms\"",
            "[service.timeouts]\nrequest = \"5s\"",
        ),
    )])
    .await;
    // Alone, a 700 ms request meets a backend that answers nobody for 200 ms:
    // that is what a freeze looks like, so the try is abandoned (504, no other
    // backend to try).
    let started = Instant::now();
    let reply = get(&member.url("/gateway/t/svc/sleep/700")).await;
    assert_eq!(
        reply.status,
        StatusCode::GATEWAY_TIMEOUT,
        "{}",
        reply.text()
    );
    assert!(
        started.elapsed() < Duration::from_millis(650),
        "{:?}",
        started.elapsed()
    );

    // With other requests answered meanwhile, the same request is served.
    let load = Load::start(member.url("/gateway/t/svc/fast"), 2);
    wait_until("the load to run", Duration::from_secs(10), || {
        load.ok_so_far() > 5
    })
    .await;
    let started = Instant::now();
    let reply = get(&member.url("/gateway/t/svc/sleep/700")).await;
    let took = started.elapsed();
    let result = load.finish().await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert!(took >= Duration::from_millis(700), "{took:?}");
    result.assert_no_failures();
    member.stop().await;
}

/// A backend that reads the start of each request and closes the connection
/// without answering: the request reached it, the response never came.
async fn resetting_backend() -> (String, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicU64::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                if let Ok(n) = socket.read(&mut buf).await {
                    if n > 0 {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), seen)
}

#[tokio::test]
async fn non_idempotent_requests_that_reached_a_backend_are_not_resent() {
    let (reset_url, reset_seen) = resetting_backend().await;
    let good = backend("good").await;
    let urls = [reset_url, good.url()];
    let no_eject = "eject_after = 1000";
    let text = [
        ha_topology("post", &urls, no_eject, ""),
        ha_topology("put", &urls, no_eject, ""),
        ha_topology(
            "post_allowed",
            &urls,
            &format!("{no_eject}\nfailover_non_idempotent = true"),
            "",
        ),
        ha_topology(
            "big_post",
            &urls,
            &format!("{no_eject}\nfailover_non_idempotent = true"),
            "",
        ),
    ]
    .join("\n");
    let member = TestMember::start(&[("t", &text)]).await;
    let client = client();

    let reply = send(
        &client,
        Request::post(member.url("/gateway/t/post/x"))
            .body(full("order=1"))
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.text());
    assert_eq!(
        good.requests(),
        0,
        "the POST must not reach a second backend"
    );
    assert_eq!(reset_seen.load(Ordering::Relaxed), 1);

    let reply = send(
        &client,
        Request::put(member.url("/gateway/t/put/x"))
            .body(full("v=1"))
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["x-backend"], "good");
    assert_eq!(
        reply.json()["body_bytes"],
        3,
        "the PUT body was replayed whole"
    );

    let reply = send(
        &client,
        Request::post(member.url("/gateway/t/post_allowed/x"))
            .body(full("order=2"))
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["body_bytes"], 7);

    let before = good.requests();
    let big = vec![b'x'; 2 * 1024 * 1024];
    let reply = send(
        &client,
        Request::post(member.url("/gateway/t/big_post/x"))
            .body(full(big))
            .unwrap(),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_GATEWAY,
        "a 2 MiB body is over the replay buffer"
    );
    assert_eq!(good.requests(), before);
    // Only the body over the buffer counts as a replay overflow.
    for (service, overflows) in [
        ("big_post", 1),
        ("put", 0),
        ("post", 0),
        ("post_allowed", 0),
    ] {
        let stats = &member.service("t", service).stats;
        assert_eq!(stats.replay_overflows(), overflows, "{service}");
        assert_eq!(stats.retry_budget_exhausted(), 0, "{service}");
    }
    member.stop().await;
}

#[tokio::test]
async fn a_get_fails_over_when_the_backend_answers_a_retry_status() {
    let failing = backend("failing").await;
    let good = backend("good").await;
    // The failing backend's url points at /status/503, so every answer is 503.
    let text = ha_topology(
        "svc",
        &[
            format!("{}/status/503", failing.url()),
            format!("{}/status/200", good.url()),
        ],
        "eject_after = 1000",
        "",
    );
    let member = TestMember::start(&[("t", &text)]).await;
    let reply = get(&member.url("/gateway/t/svc")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["x-backend"], "good");
    // Without retry statuses, the 503 goes to the client as it is.
    let text = ha_topology(
        "svc",
        &[format!("{}/status/503", failing.url())],
        "retry_on_status = []",
        "",
    );
    member.put_topology("other", &text);
    let reply = eventually(
        &member.url("/gateway/other/svc"),
        Duration::from_secs(3),
        |r| r.status != StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        reply.json()["backend"],
        "failing",
        "the backend's own answer, not a gateway error"
    );
    member.stop().await;
}

const FAST_HEALTH: &str = "[service.health]\npath = \"/health\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\nrise = 1\nfall = 1";

async fn wait_health(member: &TestMember, service: &str, index: usize, wanted: bool) {
    let svc = member.service("t", service);
    wait_until(
        &format!("backend {index} of {service} to become up={wanted}"),
        Duration::from_secs(5),
        || svc.backends[index].state.is_up(tokio::time::Instant::now()) == wanted,
    )
    .await;
}

#[tokio::test]
async fn failback_returns_to_the_first_url_only_when_asked() {
    let first = backend("first").await;
    let second = backend("second").await;
    let first_addr = first.addr();
    let text = [
        ha_topology("stay", &[first.url(), second.url()], "", FAST_HEALTH),
        ha_topology(
            "back",
            &[first.url(), second.url()],
            "failback = true",
            FAST_HEALTH,
        ),
    ]
    .join("\n");
    let member = TestMember::start(&[("t", &text)]).await;
    for service in ["stay", "back"] {
        assert_eq!(
            get(&member.url(&format!("/gateway/t/{service}/x")))
                .await
                .json()["backend"],
            "first"
        );
    }
    first.shutdown().await;
    wait_health(&member, "stay", 0, false).await;
    wait_health(&member, "back", 0, false).await;
    for service in ["stay", "back"] {
        assert_eq!(
            get(&member.url(&format!("/gateway/t/{service}/x")))
                .await
                .json()["backend"],
            "second"
        );
    }
    let _first = DemoBackend::spawn("first", first_addr).await.unwrap();
    wait_health(&member, "stay", 0, true).await;
    wait_health(&member, "back", 0, true).await;
    for _ in 0..5 {
        assert_eq!(
            get(&member.url("/gateway/t/stay/x")).await.json()["backend"],
            "second",
            "no failback: stays"
        );
        assert_eq!(
            get(&member.url("/gateway/t/back/x")).await.json()["backend"],
            "first",
            "failback: returns"
        );
    }
    member.stop().await;
}

#[tokio::test]
async fn backup_urls_serve_only_while_every_primary_is_down() {
    let primary = backend("primary").await;
    let backup = backend("backup").await;
    let primary_addr = primary.addr();
    let text = topology(
        "svc",
        &[primary.url()],
        &format!(
            "backup_urls = [{:?}]\n[service.ha]\nload_balancing = \"round-robin\"\n{FAST_HEALTH}",
            backup.url()
        ),
    );
    let member = TestMember::start(&[("t", &text)]).await;
    for _ in 0..5 {
        assert_eq!(
            get(&member.url("/gateway/t/svc/x")).await.json()["backend"],
            "primary"
        );
    }
    primary.shutdown().await;
    wait_health(&member, "svc", 0, false).await;
    for _ in 0..5 {
        assert_eq!(
            get(&member.url("/gateway/t/svc/x")).await.json()["backend"],
            "backup"
        );
    }
    let _primary = DemoBackend::spawn("primary", primary_addr).await.unwrap();
    wait_health(&member, "svc", 0, true).await;
    for _ in 0..5 {
        assert_eq!(
            get(&member.url("/gateway/t/svc/x")).await.json()["backend"],
            "primary"
        );
    }
    member.stop().await;
}

#[tokio::test]
async fn a_service_whose_backends_all_look_down_is_still_tried() {
    let a = backend("a").await;
    // The health path answers 404, so checks mark the backend down, yet it serves.
    let text = ha_topology("svc", &[a.url()], "", "[service.health]\npath = \"/status/404\"\ninterval = \"50ms\"\ntimeout = \"50ms\"\nfall = 1");
    let member = TestMember::start(&[("t", &text)]).await;
    wait_health(&member, "svc", 0, false).await;
    let reply = get(&member.url("/gateway/t/svc/x")).await;
    assert_eq!(reply.status, StatusCode::OK);
    member.stop().await;
}

#[tokio::test]
async fn a_backend_is_ejected_after_failed_tries_and_returns_after_eject_for() {
    let a = backend("a").await;
    let b = backend("b").await;
    let a_addr = a.addr();
    let text = ha_topology(
        "svc",
        &[a.url(), b.url()],
        "load_balancing = \"round-robin\"\neject_after = 2\neject_for = \"1s\"",
        "",
    );
    let member = TestMember::start(&[("t", &text)]).await;
    a.shutdown().await;
    for _ in 0..4 {
        assert_eq!(
            get(&member.url("/gateway/t/svc/x")).await.json()["backend"],
            "b"
        );
    }
    let svc = member.service("t", "svc");
    assert_eq!(
        svc.backends[0].state.health(tokio::time::Instant::now()),
        Health::Ejected
    );
    let ejected_seen = Instant::now();
    let _a = DemoBackend::spawn("a", a_addr).await.unwrap();
    wait_until(
        "a to return after eject_for = 1s",
        Duration::from_secs(5),
        || svc.backends[0].state.is_up(tokio::time::Instant::now()),
    )
    .await;
    // Generous for a loaded machine, yet well under the doubled 2 s a second
    // ejection would impose.
    assert!(
        ejected_seen.elapsed() < Duration::from_millis(1900),
        "a came back {:?} after its ejection was seen",
        ejected_seen.elapsed()
    );
    let mut seen = BTreeSet::new();
    for _ in 0..4 {
        seen.insert(
            get(&member.url("/gateway/t/svc/x")).await.json()["backend"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert!(seen.contains("a"), "{seen:?}");
    member.stop().await;
}

/// A backend whose health answers follow a script, one status per check.
async fn scripted_health(statuses: Vec<u16>) -> String {
    use hyper::service::service_fn;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let script = Arc::new(std::sync::Mutex::new(statuses.into_iter()));
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let script = script.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_req| {
                    let status = script.lock().unwrap().next().unwrap_or(200);
                    async move {
                        Ok::<_, std::convert::Infallible>(
                            http::Response::builder()
                                .status(status)
                                .body(http_body_util::Full::new(bytes::Bytes::new()))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(socket), service)
                .await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn rise_and_fall_thresholds_prevent_flapping() {
    // Two failures then one success, over and over: never `fall = 3` in a row.
    let mut script: Vec<u16> = [500, 500, 200].repeat(8);
    // Then three failures: down; then one success (not `rise = 2`), a failure, then two successes: up.
    script.extend([500, 500, 500, 200, 500, 200, 200]);
    let checks = script.len();
    let url = scripted_health(script).await;
    let text = ha_topology(
        "svc",
        &[url],
        "",
        "[service.health]\ninterval = \"30ms\"\ntimeout = \"30ms\"\nrise = 2\nfall = 3",
    );
    let member = TestMember::start(&[("t", &text)]).await;
    let svc = member.service("t", "svc");
    let mut states = Vec::new();
    let deadline = Instant::now() + Duration::from_millis(30 * checks as u64 + 600);
    while Instant::now() < deadline {
        let up = svc.backends[0].state.is_up(tokio::time::Instant::now());
        if states.last() != Some(&up) {
            states.push(up);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        states,
        vec![true, false, true],
        "exactly one down period, no flapping"
    );
    member.stop().await;
}

#[tokio::test]
async fn websocket_upgrades_fail_over_before_the_101() {
    use futures_util::StreamExt;
    let dead = backend("dead").await;
    let dead_url = dead.url();
    dead.shutdown().await;
    let live = backend("live").await;
    let member = TestMember::start(&[("t", &topology("svc", &[dead_url, live.url()], ""))]).await;
    let socket = tokio::net::TcpStream::connect(member.addr).await.unwrap();
    let (mut ws, _) =
        tokio_tungstenite::client_async(format!("ws://{}/gateway/t/svc/ws", member.addr), socket)
            .await
            .unwrap();
    let hello = ws.next().await.unwrap().unwrap();
    assert_eq!(hello.to_text().unwrap(), "hello from live");
    member.stop().await;
}
