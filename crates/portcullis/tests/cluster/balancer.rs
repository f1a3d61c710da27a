//! The balancer in front of two members sharing a store: affinity, least
//! in-flight choice, redirect and proxy modes, and a member that leaves.

use std::time::{Duration, Instant};

use http::{Request, StatusCode};
use portcullis_demo::DemoBackend;
use portcullis_member::Member;
use portcullis_testkit::*;

async fn member(
    dir: &std::path::Path,
    store: &std::path::Path,
    id: &str,
    balancer: Option<&str>,
) -> Member {
    let balancer = balancer
        .map(|mode| format!("[balancer]\nlisten = \"127.0.0.1:0\"\nmode = \"{mode}\"\n"))
        .unwrap_or_default();
    let text = format!(
        "[node]\nid = \"{id}\"\n[gateway]\nlisten = \"127.0.0.1:0\"\nshutdown_grace = \"1s\"\n[cluster]\nstore = \"dir:{}\"\nheartbeat = \"200ms\"\n{balancer}",
        store.display()
    );
    let path = dir.join(format!("{id}.toml"));
    std::fs::write(&path, &text).unwrap();
    Member::start(portcullis_config::parse_node_config(&text, &path).unwrap())
        .await
        .unwrap()
}

async fn cluster(mode: &str) -> (tempfile::TempDir, DemoBackend, Member, Member) {
    init();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    std::fs::create_dir_all(store.join("topologies")).unwrap();
    let backend = DemoBackend::spawn("b", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    std::fs::write(
        store.join("topologies/t.toml"),
        topology("svc", &[backend.url()], ""),
    )
    .unwrap();
    let m1 = member(dir.path(), &store, "m1", Some(mode)).await;
    let m2 = member(dir.path(), &store, "m2", None).await;
    wait_until_both_chosen(&m1).await;
    (dir, backend, m1, m2)
}

/// Who the balancer sent a new client to: the redirect's Location, or in
/// proxy mode the member id the backend saw in `X-Forwarded-Server`.
fn chosen(reply: &Reply) -> String {
    match reply.headers.get("location") {
        Some(location) => location.to_str().unwrap().to_string(),
        None => reply.json()["headers"]["x-forwarded-server"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    }
}

/// Waits until the balancer has read both members' records: new clients
/// reach both of them.
async fn wait_until_both_chosen(balancer: &Member) {
    let url = format!("http://{}/gateway/t/svc/x", balancer.balancer_addr.unwrap());
    let started = Instant::now();
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the balancer chose only {seen:?} in 10 s"
        );
        seen.insert(chosen(&get(&url).await));
    }
}

async fn get_with_cookie(url: &str, cookie: Option<&str>) -> Reply {
    let mut request = Request::get(url);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    send(&client(), request.body(empty()).unwrap()).await
}

fn affinity(reply: &Reply) -> Option<String> {
    reply
        .headers
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_mode_sends_307_with_affinity_and_follows_a_leaving_member() {
    let (_dir, _backend, m1, m2) = cluster("redirect").await;
    let balancer = m1.balancer_addr.unwrap();
    let url = format!("http://{balancer}/gateway/t/svc/x?q=1");
    let m2_base = format!("http://127.0.0.1:{}", m2.gateway_addr.port());
    let mut seen = std::collections::BTreeSet::new();
    let mut cookie_for_m2 = None;
    for _ in 0..30 {
        let reply = get_with_cookie(&url, None).await;
        assert_eq!(reply.status, StatusCode::TEMPORARY_REDIRECT);
        let location = reply.headers["location"].to_str().unwrap().to_string();
        assert!(location.ends_with("/gateway/t/svc/x?q=1"), "{location}");
        let cookie = affinity(&reply).expect("a new client gets the affinity cookie");
        assert!(reply.headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("HttpOnly"));
        if location.starts_with(&m2_base) {
            cookie_for_m2 = Some(cookie);
        }
        seen.insert(location);
    }
    assert_eq!(
        seen.len(),
        2,
        "both idle members are chosen (ties at random): {seen:?}"
    );
    let cookie = cookie_for_m2.unwrap();
    for _ in 0..10 {
        let reply = get_with_cookie(&url, Some(&cookie)).await;
        assert!(reply.headers["location"]
            .to_str()
            .unwrap()
            .starts_with(&m2_base));
        assert!(affinity(&reply).is_none(), "a valid cookie is not re-set");
    }
    // The redirect is followed for real: the member serves the request.
    let location = get_with_cookie(&url, Some(&cookie)).await.headers["location"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(get(&location).await.status, StatusCode::OK);

    m2.stop().await;
    let left_at = Instant::now();
    loop {
        let reply = get_with_cookie(&url, Some(&cookie)).await;
        if !reply.headers["location"]
            .to_str()
            .unwrap()
            .starts_with(&m2_base)
        {
            assert!(
                affinity(&reply).is_some(),
                "the cookie moves to the new member"
            );
            break;
        }
        assert!(
            left_at.elapsed() < Duration::from_millis(400),
            "a member that left is still chosen"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    m1.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_mode_forwards_to_one_member_per_client() {
    let (_dir, _backend, m1, m2) = cluster("proxy").await;
    let url = format!("http://{}/gateway/t/svc/x", m1.balancer_addr.unwrap());
    let first = get_with_cookie(&url, None).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    let member = first.json()["headers"]["x-forwarded-server"]
        .as_str()
        .unwrap()
        .to_string();
    let cookie = affinity(&first).unwrap();
    for _ in 0..20 {
        let reply = get_with_cookie(&url, Some(&cookie)).await;
        assert_eq!(
            reply.json()["headers"]["x-forwarded-server"],
            member.as_str()
        );
    }
    let forwarded_for = first.json()["headers"]["x-forwarded-for"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(forwarded_for.starts_with("127.0.0.1"), "{forwarded_for}");
    m2.stop().await;
    m1.stop().await;
}

/// A member that fails without leaving keeps a live-looking record for
/// three heartbeats. In proxy mode the balancer sends a bodiless request it
/// could not get answered there to another member, so clients see no error.
/// (A member whose port refuses connections is also dropped by the
/// balancer's own checks within two heartbeats; this one still accepts
/// connections, so the checks pass and only the retry protects clients.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_mode_sends_bodiless_requests_past_an_unreachable_member() {
    let (dir, _backend, m1, m2) = cluster("proxy").await;
    // A record as a wedged member leaves it: fresh, pointing at a port that
    // accepts and closes without answering, with a long heartbeat so it
    // stays "alive".
    let (ghost_url, _) = super::balancer_proxy::closing_member().await;
    let store = portcullis_cluster::DirStore::new(dir.path().join("store"));
    store
        .put_member(&portcullis_cluster::MemberRecord {
            id: "ghost".into(),
            role: portcullis_cluster::RoleName::Manager,
            public_url: ghost_url,
            admin_url: None,
            version: "0".into(),
            generation: 1,
            config_hash: String::new(),
            in_flight: 0,
            requests: 0,
            errors: 0,
            heartbeat_ms: 60_000,
            updated_at_ms: portcullis_cluster::members::now_ms(),
        })
        .unwrap();
    let url = format!("http://{}/gateway/t/svc/x", m1.balancer_addr.unwrap());
    // A POST lands on the ghost once the balancer has read its record (it
    // re-reads members every heartbeat / 4): until then, only m1 and m2 answer.
    wait_for(
        "the balancer to choose the ghost",
        Duration::from_secs(10),
        || {
            let url = url.clone();
            async move {
                let request = Request::post(&url).body(full("payload")).unwrap();
                send(&client(), request).await.status == StatusCode::BAD_GATEWAY
            }
        },
    )
    .await;
    let mut served_by = std::collections::BTreeSet::new();
    for _ in 0..30 {
        let reply = get_with_cookie(&url, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        served_by.insert(
            reply.json()["headers"]["x-forwarded-server"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert!(
        served_by.iter().all(|m| m == "m1" || m == "m2"),
        "{served_by:?}"
    );
    // A request with a body cannot be replayed: when it lands on the
    // unreachable member it gets the balancer's 502, never a duplicate; when
    // it lands on m1 or m2 it is served. Ties are broken at random, so each
    // of the three is chosen about a third of the time, and 30 requests see
    // both outcomes (the chance they do not is under 1e-5).
    let (mut served, mut refused) = (0, 0);
    for _ in 0..30 {
        let request = Request::post(&url).body(full("payload")).unwrap();
        let reply = send(&client(), request).await;
        match reply.status {
            StatusCode::OK => {
                let by = reply.json()["headers"]["x-forwarded-server"].clone();
                assert!(by == "m1" || by == "m2", "served by {by}");
                served += 1;
            }
            StatusCode::BAD_GATEWAY => {
                assert_eq!(
                    reply.json()["error"],
                    "member unavailable",
                    "{}",
                    reply.text()
                );
                refused += 1;
            }
            other => panic!("unexpected {other}: {}", reply.text()),
        }
    }
    assert!(
        served > 0 && refused > 0,
        "served {served}, refused {refused}"
    );
    m2.stop().await;
    m1.stop().await;
}

/// With no live member to choose (here the only record is one whose member
/// stopped heartbeating a minute ago), the balancer answers 503 with a JSON
/// error in both modes: no redirect, no affinity cookie, nothing forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_live_member_the_balancer_answers_503() {
    use portcullis_cluster::members::now_ms;
    init();
    for mode in [
        portcullis_config::BalancerMode::Redirect,
        portcullis_config::BalancerMode::Proxy,
    ] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let table = std::sync::Arc::new(portcullis_proxy::balancer::MemberTable::new(
            portcullis_proxy::CookieKey::random(),
        ));
        table.replace(portcullis_member::balancer::member_targets(&[
            portcullis_cluster::MemberRecord {
                id: "gone".into(),
                role: portcullis_cluster::RoleName::Manager,
                public_url: format!("http://127.0.0.1:{}", free_port()),
                admin_url: None,
                version: "0".into(),
                generation: 1,
                config_hash: String::new(),
                in_flight: 0,
                requests: 0,
                errors: 0,
                heartbeat_ms: 200,
                updated_at_ms: now_ms() - 60_000,
            },
        ]));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let options = portcullis_proxy::balancer::BalancerOptions::new(
            mode,
            portcullis_proxy::balancer::members_tls(None).unwrap(),
        );
        let serving = tokio::spawn(portcullis_proxy::balancer::serve(
            listener, table, options, stopped,
        ));
        for request in [
            Request::get(format!("http://{addr}/gateway/t/svc/x")).body(empty()),
            Request::post(format!("http://{addr}/gateway/t/svc/x")).body(full("payload")),
        ] {
            let reply = send(&client(), request.unwrap()).await;
            assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{mode:?}");
            assert_eq!(reply.json()["error"], "no live member", "{mode:?}");
            assert!(reply.headers.get("location").is_none(), "{mode:?}");
            assert!(reply.headers.get("set-cookie").is_none(), "{mode:?}");
        }
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), serving)
            .await
            .expect("the balancer stops")
            .unwrap();
    }
}

/// A WebSocket client through the balancer in proxy mode: the upgrade is
/// carried to a member, which carries it to the demo backend, and messages
/// echo both ways through both tunnels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_mode_carries_websockets_to_a_member() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let (_dir, _backend, m1, m2) = cluster("proxy").await;
    let balancer = m1.balancer_addr.unwrap();
    for _ in 0..4 {
        let socket = tokio::net::TcpStream::connect(balancer).await.unwrap();
        let url = format!("ws://{balancer}/gateway/t/svc/ws");
        let (mut ws, response) = tokio_tungstenite::client_async(url, socket)
            .await
            .expect("upgrade through the balancer");
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert!(response.headers().contains_key("set-cookie"));
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::text("hello from b")
        );
        for i in 0..10 {
            ws.send(Message::text(format!("ping {i}"))).await.unwrap();
            assert_eq!(
                ws.next().await.unwrap().unwrap(),
                Message::text(format!("ping {i}"))
            );
        }
        ws.send(Message::binary(vec![7u8; 100_000])).await.unwrap();
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::binary(vec![7u8; 100_000])
        );
        ws.close(None).await.unwrap();
    }
    m2.stop().await;
    m1.stop().await;
}

/// Two members both running a balancer give the same answers: a client's
/// affinity cookie from one balancer keeps it on the same member through the
/// other (the cookie key is the cluster's), and both choose among the same
/// members.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_balancers_honour_each_others_affinity_cookies() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    std::fs::create_dir_all(store.join("topologies")).unwrap();
    let backend = DemoBackend::spawn("b", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    write_topology(dir.path(), "t", &topology("svc", &[backend.url()], ""));
    let m1 = member(dir.path(), &store, "m1", Some("proxy")).await;
    let m2 = member(dir.path(), &store, "m2", Some("proxy")).await;
    wait_until_both_chosen(&m1).await;
    wait_until_both_chosen(&m2).await;
    let urls = [&m1, &m2].map(|m| format!("http://{}/gateway/t/svc/x", m.balancer_addr.unwrap()));
    // A cookie for each member, from each balancer.
    let mut cookies = std::collections::BTreeMap::new();
    while cookies.len() < 4 {
        for (from, url) in urls.iter().enumerate() {
            let reply = get_with_cookie(url, None).await;
            cookies.insert((from, chosen(&reply)), affinity(&reply).unwrap());
        }
    }
    for ((from, member), cookie) in &cookies {
        for url in &urls {
            let reply = get_with_cookie(url, Some(cookie)).await;
            assert_eq!(
                &chosen(&reply),
                member,
                "a cookie from balancer {from} names {member} at every balancer"
            );
            assert!(affinity(&reply).is_none(), "and is not re-set");
        }
    }
    m2.stop().await;
    m1.stop().await;
}
