//! The balancer over TLS: `[balancer] tls` terminates TLS for clients, and
//! `proxy` mode reaches `https://` members, verified against
//! `[balancer] members_ca` (certificates from `cert create`).

use std::path::Path;
use std::sync::Arc;

use http::{Request, StatusCode};
use http_body_util::BodyExt;
use portcullis_demo::DemoBackend;
use portcullis_member::Member;
use portcullis_testkit::*;

/// A member whose gateway serves TLS at `https://localhost:PORT`, with a
/// TLS balancer in proxy mode when `balancer` is set.
async fn tls_member(
    dir: &Path,
    id: &str,
    certs: &portcullis::cert::CreatedCerts,
    balancer: bool,
) -> Member {
    let port = free_port();
    let tls = format!(
        "tls = {{ cert = {:?}, key = {:?} }}",
        certs.server_cert.display().to_string(),
        certs.server_key.display().to_string()
    );
    let balancer = if balancer {
        format!(
            "[balancer]\nlisten = \"127.0.0.1:0\"\nmode = \"proxy\"\n{tls}\nmembers_ca = {:?}\n",
            certs.ca_cert.display().to_string()
        )
    } else {
        String::new()
    };
    let text = format!(
        "[node]\nid = \"{id}\"\n[gateway]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"https://localhost:{port}\"\n{tls}\nshutdown_grace = \"1s\"\n[cluster]\nstore = \"dir:{}\"\nheartbeat = \"200ms\"\n{balancer}",
        dir.join("store").display()
    );
    let path = dir.join(format!("{id}.toml"));
    std::fs::write(&path, &text).unwrap();
    Member::start(portcullis_config::parse_node_config(&text, &path).unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_in_front_and_tls_to_the_members() {
    init();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("store/topologies")).unwrap();
    let certs = portcullis::cert::create_certs(
        &["localhost".to_string(), "127.0.0.1".to_string()],
        &dir.path().join("certs"),
    )
    .unwrap();
    let backend = DemoBackend::spawn("b", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    write_topology(dir.path(), "t", &topology("svc", &[backend.url()], ""));
    let m1 = tls_member(dir.path(), "m1", &certs, true).await;
    let m2 = tls_member(dir.path(), "m2", &certs, false).await;
    let url = format!(
        "https://localhost:{}/gateway/t/svc/x",
        m1.balancer_addr.unwrap().port()
    );
    let client = https_client(&certs.ca_cert, false);
    let mut served_by = std::collections::BTreeSet::new();
    let started = std::time::Instant::now();
    while served_by.len() < 2 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "only {served_by:?} answered through the TLS balancer"
        );
        let response = client
            .request(Request::get(&url).body(empty()).unwrap())
            .await
            .expect("a TLS request to the balancer");
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        served_by.insert(json["headers"]["x-forwarded-server"].to_string());
    }
    // A plain-HTTP client at the TLS listener gets no answer in clear.
    let plain = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        client_plain_get(m1.balancer_addr.unwrap()),
    )
    .await
    .expect("the TLS listener closes a plain client");
    assert!(!plain.starts_with("HTTP/1.1 200"), "{plain}");
    m2.stop().await;
    m1.stop().await;
}

/// Sends a plain HTTP request to a TLS listener; what comes back, as text.
async fn client_plain_get(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = socket
        .write_all(b"GET /gateway/t/svc/x HTTP/1.1\r\nHost: a\r\n\r\n")
        .await;
    let mut got = Vec::new();
    let _ = socket.read_to_end(&mut got).await;
    String::from_utf8_lossy(&got).to_string()
}

/// Without `members_ca` an `https://` member signed by a private CA is not
/// trusted: 502, nothing forwarded in clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_member_outside_the_members_ca_is_refused() {
    init();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("store/topologies")).unwrap();
    let certs =
        portcullis::cert::create_certs(&["localhost".to_string()], &dir.path().join("certs"))
            .unwrap();
    let member = tls_member(dir.path(), "m", &certs, false).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let table = Arc::new(portcullis_proxy::balancer::MemberTable::new(
        portcullis_proxy::CookieKey::random(),
    ));
    table.replace(vec![portcullis_proxy::balancer::MemberTarget {
        id: "m".into(),
        url: format!("https://localhost:{}", member.gateway_addr.port()),
        in_flight: 0,
        alive_until_ms: u64::MAX,
        draining: false,
    }]);
    let options = portcullis_proxy::balancer::BalancerOptions::new(
        portcullis_config::BalancerMode::Proxy,
        portcullis_proxy::balancer::members_tls(None).unwrap(),
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(portcullis_proxy::balancer::serve(
        listener, table, options, stopped,
    ));
    let reply = get(&format!("http://{addr}/gateway/t/svc/x")).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.text());
    stop.send(true).unwrap();
    member.stop().await;
}
