//! Load-balancing policies and failover settings end to end, with real
//! backends over real sockets: `least-requests`, `random`, slow start,
//! `failover_sleep`, the `max_failover_attempts` cap, `enabled = false` and
//! the retry budget. Where the behaviour is statistical, the assertions are
//! ranges far from what the wrong behaviour would give.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use http::StatusCode;
use portcullis_demo::DemoBackend;
use portcullis_testkit::*;

async fn backend(name: &str) -> DemoBackend {
    DemoBackend::spawn(name, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// Sends `n` GETs one after the other; returns who answered each, in order.
async fn answers(url: &str, n: usize) -> Vec<String> {
    let client = client();
    let mut order = Vec::with_capacity(n);
    for _ in 0..n {
        let request = http::Request::get(url).body(empty()).unwrap();
        let reply = send(&client, request).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        order.push(reply.backend().unwrap_or_default().to_string());
    }
    order
}

fn counts(order: &[String]) -> BTreeMap<&str, usize> {
    let mut counts = BTreeMap::new();
    for name in order {
        *counts.entry(name.as_str()).or_default() += 1;
    }
    counts
}

/// `least-requests` sends new requests away from a backend holding one that
/// does not finish: the frozen backend keeps its request in flight, and every
/// later request goes to the other one. Round robin or random would send
/// about half of them into the freeze.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_requests_avoids_the_backend_with_requests_in_flight() {
    let mut frozen = BackendProcess::spawn("frozen");
    let free = backend("free").await;
    let text = ha_topology(
        "svc",
        &[frozen.url(), free.url()],
        "load_balancing = \"least-requests\"",
        "[service.timeouts]\nrequest = \"30s\"",
    );
    let member = TestMember::start(&[("t", &text)]).await;
    let url = member.url("/gateway/t/svc/x");
    let svc = member.service("t", "svc");
    frozen.signal("STOP");
    // Requests sent in the background, one at a time, until one is stuck in
    // the freeze (after that, least-requests sends none there) and every
    // other one has finished (so none is in flight on
    // the free backend when the measured requests start).
    let mut stuck: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    wait_until(
        "a request stuck on the frozen backend, none elsewhere",
        Duration::from_secs(20),
        || {
            let on_frozen = svc.backends[0].state.in_flight() as usize;
            let finished = stuck.iter().filter(|t| t.is_finished()).count();
            // A request the free backend answered counts as in flight until
            // the gateway has relayed its last byte, which may be just after
            // the client read it.
            let on_free = svc.backends[1].state.in_flight();
            let settled = finished + on_frozen == stuck.len() && on_free == 0;
            if settled && on_frozen == 0 {
                let url = url.clone();
                stuck.push(tokio::spawn(async move {
                    let _ = client()
                        .request(http::Request::get(url).body(empty()).unwrap())
                        .await;
                }));
            }
            settled && on_frozen == 1
        },
    )
    .await;
    // One at a time, each once the free backend holds none: with one in
    // flight on each (the last answer's tail still being relayed) the two
    // would tie, and a tie may go either way.
    let mut order = Vec::new();
    for _ in 0..30 {
        wait_until("the free backend idle", Duration::from_secs(5), || {
            svc.backends[1].state.in_flight() == 0
        })
        .await;
        let answer = tokio::time::timeout(Duration::from_secs(20), answers(&url, 1))
            .await
            .expect("no request waits on the frozen backend");
        order.extend(answer);
    }
    assert!(order.iter().all(|b| b == "free"), "{order:?}");
    frozen.kill();
    for request in stuck {
        request.abort();
    }
    member.stop().await;
}

/// `random` spreads uniformly but, unlike round robin, not in a cycle: over
/// 300 requests each of three backends gets about a third, and the same
/// backend often answers twice in a row (about 100 times; never with round
/// robin).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_spreads_uniformly_without_a_cycle() {
    let backends = [backend("a").await, backend("b").await, backend("c").await];
    let urls: Vec<String> = backends.iter().map(DemoBackend::url).collect();
    let text = ha_topology("svc", &urls, "load_balancing = \"random\"", "");
    let member = TestMember::start(&[("t", &text)]).await;
    let order = answers(&member.url("/gateway/t/svc/x"), 300).await;
    let counts = counts(&order);
    assert_eq!(counts.len(), 3, "{counts:?}");
    // Expected 100 each, standard deviation about 8.
    assert!(
        counts.values().all(|&n| (60..=140).contains(&n)),
        "{counts:?}"
    );
    let repeats = order.windows(2).filter(|w| w[0] == w[1]).count();
    assert!(
        (40..=160).contains(&repeats),
        "{repeats} repeats in {order:?}"
    );
    member.stop().await;
}

/// A backend back from an ejection starts at a tenth of its share and ramps
/// up over `slow_start`: right after its return it answers far fewer than
/// half of the requests; once the ramp is over, exactly half (round robin).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_start_ramps_a_returning_backend_up_to_its_share() {
    let a = backend("a").await;
    let b = backend("b").await;
    let a_addr = a.addr();
    let slow_start = Duration::from_secs(3);
    let text = ha_topology(
        "svc",
        &[a.url(), b.url()],
        "load_balancing = \"round-robin\"\nslow_start = \"3s\"\neject_after = 1\neject_for = \"1s\"",
        "",
    );
    let member = TestMember::start(&[("t", &text)]).await;
    let url = member.url("/gateway/t/svc/x");
    let svc = member.service("t", "svc");
    a.shutdown().await;
    answers(&url, 2).await;
    let _a = DemoBackend::spawn("a", a_addr).await.unwrap();
    wait_until(
        "a to return after its ejection",
        Duration::from_secs(10),
        || svc.backends[0].state.is_up(tokio::time::Instant::now()),
    )
    .await;
    let returned = Instant::now();
    let early = answers(&url, 20).await;
    let early_took = returned.elapsed();
    let early_a = counts(&early).get("a").copied().unwrap_or(0);
    wait_until("the slow start to end", Duration::from_secs(10), || {
        svc.backends[0]
            .state
            .weight(tokio::time::Instant::now(), slow_start)
            >= 1.0
    })
    .await;
    let late = answers(&url, 20).await;
    let late_a = counts(&late).get("a").copied().unwrap_or(0);
    // Weights 0.1 to 0.4 over the first 1.2 s: a share of 9 to 29%.
    if early_took < Duration::from_millis(1200) {
        assert!(
            early_a <= 6,
            "a answered {early_a} of 20 just after returning"
        );
    }
    assert!(
        (9..=11).contains(&late_a),
        "a answered {late_a} of 20 after the ramp"
    );
    eprintln!("slow start: a answered {early_a}/20 in the {early_took:?} after its return, {late_a}/20 after the ramp");
    assert!(early_a < late_a, "early {early_a}, late {late_a}");
    member.stop().await;
}

/// `failover_sleep` is waited between a failed try and the next one, without
/// blocking a thread: on a one-thread runtime another service answers at once
/// while a request sleeps.
#[tokio::test(flavor = "current_thread")]
async fn failover_sleep_separates_tries_without_blocking_a_thread() {
    let live = backend("live").await;
    let other = backend("other").await;
    let dead = format!("http://127.0.0.1:{}", free_port());
    let text = format!(
        "{}\n{}",
        ha_topology("svc", &[dead, live.url()], "failover_sleep = \"1s\"", ""),
        topology("other", &[other.url()], ""),
    );
    let member = TestMember::start(&[("t", &text)]).await;
    let started = Instant::now();
    let slow = tokio::spawn(get_owned(member.url("/gateway/t/svc/x")));
    let svc = member.service("t", "svc");
    // The failover is counted just before its sleep.
    wait_until("the first try to fail", Duration::from_secs(5), || {
        svc.stats.failovers() == 1
    })
    .await;
    let during = Instant::now();
    let reply = get(&member.url("/gateway/t/other/x")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        during.elapsed() < Duration::from_millis(500),
        "another request waited {:?}: the sleep blocked the thread",
        during.elapsed()
    );
    let reply = slow.await.unwrap();
    let took = started.elapsed();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.backend(), Some("live"));
    assert!(took >= Duration::from_secs(1), "failed over after {took:?}");
    member.stop().await;
}

async fn get_owned(url: String) -> Reply {
    get(&url).await
}

/// Backends that all answer a `retry_on_status` status: each request is
/// tried `1 + max_failover_attempts` times, then the last answer goes to the
/// client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_failover_attempts_caps_the_tries_of_a_request() {
    let backends = [
        backend("a").await,
        backend("b").await,
        backend("c").await,
        backend("d").await,
    ];
    let urls: Vec<String> = backends.iter().map(DemoBackend::url).collect();
    let text = ha_topology(
        "svc",
        &urls,
        "load_balancing = \"round-robin\"\nmax_failover_attempts = 2\neject_after = 100",
        "",
    );
    let member = TestMember::start(&[("t", &text)]).await;
    for request in 1..=5u64 {
        let reply = get(&member.url("/gateway/t/svc/status/503")).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(reply.backend().is_some(), "the backend's own answer");
        let tries: u64 = backends.iter().map(DemoBackend::requests).sum();
        assert_eq!(tries, 3 * request, "1 try + 2 failovers per request");
    }
    let svc = member.service("t", "svc");
    assert_eq!(svc.stats.failovers(), 10);
    member.stop().await;
}

/// `enabled = false`: the first url only. A dead first url is not failed
/// over (503: no backend could be tried) and the second url never sees a
/// request; `enabled = true` fails over for the same pair.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ha_disabled_uses_the_first_url_only() {
    let first = backend("first").await;
    let second = backend("second").await;
    let spare = backend("spare").await;
    let dead = format!("http://127.0.0.1:{}", free_port());
    let text = format!(
        "{}\n{}\n{}",
        ha_topology("off", &[first.url(), second.url()], "enabled = false", ""),
        ha_topology(
            "deadoff",
            &[dead.clone(), spare.url()],
            "enabled = false",
            ""
        ),
        ha_topology("deadon", &[dead, spare.url()], "enabled = true", ""),
    );
    let member = TestMember::start(&[("t", &text)]).await;
    let order = answers(&member.url("/gateway/t/off/x"), 10).await;
    assert!(order.iter().all(|b| b == "first"), "{order:?}");
    assert_eq!(second.requests(), 0);
    for _ in 0..3 {
        let reply = get(&member.url("/gateway/t/deadoff/x")).await;
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            reply.text()
        );
        assert_eq!(reply.json()["service"], "deadoff");
    }
    assert_eq!(spare.requests(), 0, "no failover with enabled = false");
    let reply = get(&member.url("/gateway/t/deadon/x")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.backend(), Some("spare"));
    member.stop().await;
}

/// Retries caused by `retry_on_status` are capped by the service's retry
/// budget: 20% of its requests over 10 s, at least 10 per second (100 per
/// window). 150 failing requests in one window get 100 retries, not 150.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_budget_caps_status_retries() {
    let a = backend("a").await;
    let b = backend("b").await;
    let text = ha_topology(
        "svc",
        &[a.url(), b.url()],
        "load_balancing = \"round-robin\"\nmax_failover_attempts = 1\neject_after = 100",
        "",
    );
    let member = TestMember::start(&[("t", &text)]).await;
    let url = member.url("/gateway/t/svc/status/503");
    let client = client();
    let started = Instant::now();
    for _ in 0..150 {
        let reply = send(&client, http::Request::get(&url).body(empty()).unwrap()).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    }
    let took = started.elapsed();
    let retries = a.requests() + b.requests() - 150;
    if took < Duration::from_secs(9) {
        assert_eq!(retries, 100, "all 150 requests fell in one 10 s window");
    } else {
        // A very loaded machine: the window moved on and freed some budget.
        assert!(
            (100..150).contains(&retries),
            "{retries} retries in {took:?}"
        );
    }
    member.stop().await;
}
