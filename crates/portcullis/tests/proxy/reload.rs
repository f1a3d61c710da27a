//! Hot reload of topologies from the dir store while a request loop runs.

use std::time::Duration;

use http::StatusCode;
use portcullis_demo::DemoBackend;
use portcullis_testkit::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_change_invalid_remove_with_no_failed_request() {
    let first = DemoBackend::spawn("first", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let second = DemoBackend::spawn("second", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let member = TestMember::start(&[("main", &topology("svc", &[first.url()], ""))]).await;

    // A steady loop on the main topology, over one keep-alive client, that must
    // never see an error while the store changes underneath it.
    let load = Load::start(member.url("/gateway/main/svc/loop"), 1);

    let wait = Duration::from_secs(3);
    // Add a topology.
    member.put_topology("extra", &topology("other", &[second.url()], ""));
    let reply = eventually(&member.url("/gateway/extra/other/x"), wait, |r| {
        r.status == StatusCode::OK
    })
    .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "added topology served within 2 s"
    );
    assert_eq!(reply.json()["backend"], "second");

    // Change the main topology to the second backend.
    member.put_topology("main", &topology("svc", &[second.url()], ""));
    let reply = eventually(&member.url("/gateway/main/svc/x"), wait, |r| {
        r.json()["backend"] == "second"
    })
    .await;
    assert_eq!(reply.json()["backend"], "second");

    // An invalid version is refused; the last good one keeps serving.
    member.put_topology(
        "main",
        "[[service]]\nname = \"svc\"\nurls = []\nbogus = 1\n",
    );
    // A valid topology written after the invalid one: once it is served, the
    // store has been read past the invalid version.
    member.put_topology("probe", &topology("p", &[first.url()], ""));
    let probe = eventually(&member.url("/gateway/probe/p/x"), wait, |r| {
        r.status == StatusCode::OK
    })
    .await;
    assert_eq!(
        probe.status,
        StatusCode::OK,
        "a later valid topology applies"
    );
    let reply = get(&member.url("/gateway/main/svc/x")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["backend"], "second");

    // Remove the extra topology.
    member.remove_topology("extra");
    let reply = eventually(&member.url("/gateway/extra/other/x"), wait, |r| {
        r.status == StatusCode::NOT_FOUND
    })
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    let result = load.finish().await;
    result.assert_no_failures();
    assert!(result.ok > 50, "loop ran: {}", result.ok);
    assert!(
        result.seen.contains_key("first") && result.seen.contains_key("second"),
        "{:?}",
        result.seen
    );
    member.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_does_not_cut_an_in_flight_download_or_websocket() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let first = DemoBackend::spawn("first", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let second = DemoBackend::spawn("second", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let member = TestMember::start(&[("main", &topology("svc", &[first.url()], ""))]).await;

    let socket = tokio::net::TcpStream::connect(member.addr).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(
        format!("ws://{}/gateway/main/svc/ws", member.addr),
        socket,
    )
    .await
    .unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text("hello from first")
    );
    let slow = tokio::spawn({
        let url = member.url("/gateway/main/svc/drip/30/100");
        async move { get(&url).await }
    });

    member.put_topology("main", &topology("svc", &[second.url()], ""));
    eventually(
        &member.url("/gateway/main/svc/x"),
        Duration::from_secs(3),
        |r| r.json()["backend"] == "second",
    )
    .await;

    ws.send(Message::text("still here")).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text("still here")
    );
    let reply = slow.await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body.len(), 30);
    member.stop().await;
}

/// Health state survives a reload for a backend whose url did not change: a
/// backend ejected for 30 s stays ejected, and gets no request, after the
/// topology is rewritten around it, even though it is listening again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ejected_backend_stays_ejected_across_a_reload() {
    use portcullis_proxy::ha::Health;
    let a = DemoBackend::spawn("a", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let b = DemoBackend::spawn("b", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let (a_addr, a_url) = (a.addr(), a.url());
    let text = |more: &str| {
        format!(
            "{}\n{more}",
            ha_topology(
                "svc",
                &[a_url.clone(), b.url()],
                "load_balancing = \"round-robin\"\neject_after = 1\neject_for = \"30s\"",
                "",
            )
        )
    };
    let member = TestMember::start(&[("t", &text(""))]).await;
    let url = member.url("/gateway/t/svc/x");
    a.shutdown().await;
    for _ in 0..2 {
        assert_eq!(get(&url).await.json()["backend"], "b");
    }
    let ejected = |member: &TestMember| {
        member.service("t", "svc").backends[0]
            .state
            .health(tokio::time::Instant::now())
    };
    assert_eq!(ejected(&member), Health::Ejected);
    let a = DemoBackend::spawn("a", a_addr).await.unwrap();

    let generation = member.gateway().generation();
    member.put_topology("t", &text(&topology("added", &[b.url()], "")));
    let reply = eventually(
        &member.url("/gateway/t/added/x"),
        Duration::from_secs(5),
        |r| r.status == StatusCode::OK,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "the reload applied");
    assert!(member.gateway().generation() > generation);
    assert_eq!(
        ejected(&member),
        Health::Ejected,
        "still ejected after the reload"
    );
    for _ in 0..10 {
        assert_eq!(get(&url).await.json()["backend"], "b");
    }
    assert_eq!(a.requests(), 0, "the ejected backend got no request");
    member.stop().await;
}
