//! Draining a member with the CLI, behind a balancer in `redirect` mode on a
//! dir store: new clients leave it, affinity clients stay, it keeps serving,
//! and `enable` brings new clients back.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{Request, StatusCode};
use portcullis_demo::DemoBackend;
use portcullis_member::Member;
use portcullis_testkit::*;

/// A member on `store` (a balancer in redirect mode when `balancer`), and
/// its config file, which the CLI reads to find the store.
async fn member(dir: &Path, store: &Path, id: &str, balancer: bool) -> (Member, PathBuf) {
    let balancer = if balancer {
        "[balancer]\nlisten = \"127.0.0.1:0\"\nmode = \"redirect\"\n"
    } else {
        ""
    };
    let text = format!(
        "[node]\nid = \"{id}\"\n[gateway]\nlisten = \"127.0.0.1:0\"\nshutdown_grace = \"1s\"\n[cluster]\nstore = \"dir:{}\"\nheartbeat = \"200ms\"\n{balancer}",
        store.display()
    );
    let path = dir.join(format!("{id}.toml"));
    std::fs::write(&path, &text).unwrap();
    let member = Member::start(portcullis_config::parse_node_config(&text, &path).unwrap())
        .await
        .unwrap();
    (member, path)
}

/// Where the balancer redirects a client carrying `cookie` (none: a new
/// client), and the affinity cookie it sets, if any.
async fn redirect(url: &str, cookie: Option<&str>) -> (String, Option<String>) {
    let mut request = Request::get(url);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let reply = send(&client(), request.body(empty()).unwrap()).await;
    assert_eq!(reply.status, StatusCode::TEMPORARY_REDIRECT);
    let location = reply.headers["location"].to_str().unwrap().to_string();
    let cookie = reply
        .headers
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string());
    (location, cookie)
}

/// The members (by base URL) that `count` new clients were sent to.
async fn new_clients_go_to(url: &str, count: usize) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for _ in 0..count {
        let (location, _) = redirect(url, None).await;
        seen.insert(location.split("/gateway").next().unwrap().to_string());
    }
    seen
}

fn cli_ok(config: &Path, args: &[&str]) -> String {
    let output = cli(config, args);
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_member_keeps_its_affinity_clients_and_gets_no_new_ones() {
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
    let (front, config) = member(dir.path(), &store, "front", true).await;
    let (a, _) = member(dir.path(), &store, "a", false).await;
    let a_base = format!("http://127.0.0.1:{}", a.gateway_addr.port());
    let url = format!("http://{}/gateway/t/svc/x", front.balancer_addr.unwrap());
    wait_for(
        "new clients reach both members",
        Duration::from_secs(10),
        || async { new_clients_go_to(&url, 8).await.len() == 2 },
    )
    .await;
    let mut a_cookie = None;
    while a_cookie.is_none() {
        let (location, cookie) = redirect(&url, None).await;
        if location.starts_with(&a_base) {
            a_cookie = cookie;
        }
    }
    let a_cookie = a_cookie.unwrap();

    assert!(cli_ok(&config, &["cluster", "drain", "a"]).contains("draining"));
    wait_for(
        "new clients avoid the drained member",
        Duration::from_secs(5),
        || async { !new_clients_go_to(&url, 8).await.contains(&a_base) },
    )
    .await;
    assert_eq!(
        new_clients_go_to(&url, 40).await.len(),
        1,
        "no new client goes to the drained member"
    );
    for _ in 0..10 {
        let (location, cookie) = redirect(&url, Some(&a_cookie)).await;
        assert!(
            location.starts_with(&a_base),
            "an affinity client stays: {location}"
        );
        assert!(cookie.is_none(), "its cookie is kept");
    }
    assert_eq!(
        get(&format!("{a_base}/gateway/t/svc/x")).await.status,
        StatusCode::OK,
        "the drained member keeps serving"
    );
    let status = cli_ok(&config, &["cluster", "status"]);
    let row = status.lines().find(|l| l.starts_with("a ")).unwrap();
    assert!(row.contains("draining"), "{status}");

    cli_ok(&config, &["cluster", "enable", "a"]);
    wait_for(
        "new clients reach the enabled member again",
        Duration::from_secs(5),
        || async { new_clients_go_to(&url, 8).await.contains(&a_base) },
    )
    .await;
    let unknown = cli(&config, &["cluster", "drain", "nobody"]);
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("no member \"nobody\""),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );
    a.stop().await;
    front.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_states_on_etcd_are_their_own_keys_and_survive_heartbeats() {
    init();
    let etcd = super::etcd::Etcd::start();
    let endpoint = etcd.store().trim_start_matches("etcd://").to_string();
    let store = portcullis_cluster::ClusterStore::Etcd(portcullis_cluster::EtcdStore::new(
        vec![endpoint],
        "drain",
    ));
    let record = portcullis_cluster::MemberRecord {
        id: "m1".into(),
        role: portcullis_cluster::RoleName::Manager,
        public_url: "http://127.0.0.1:1".into(),
        admin_url: None,
        version: "0".into(),
        generation: 1,
        config_hash: String::new(),
        in_flight: 0,
        requests: 7,
        errors: 1,
        heartbeat_ms: 1000,
        updated_at_ms: portcullis_cluster::members::now_ms(),
    };
    store.put_member(&record).await.unwrap();
    store
        .set_member_state("m1", portcullis_cluster::MemberState::Draining)
        .await
        .unwrap();
    // A heartbeat rewrites the record; the state is another key.
    store.put_member(&record).await.unwrap();
    let states = store.member_states().await.unwrap();
    assert_eq!(
        states.get("m1"),
        Some(&portcullis_cluster::MemberState::Draining)
    );
    let members = store.members().await.unwrap();
    assert_eq!(members.len(), 1, "a state is not a member record");
    assert_eq!((members[0].requests, members[0].errors), (7, 1));
    store
        .set_member_state("m1", portcullis_cluster::MemberState::Enabled)
        .await
        .unwrap();
    assert!(store.member_states().await.unwrap().is_empty());
    assert!(store
        .set_member_state("../m1", portcullis_cluster::MemberState::Draining)
        .await
        .is_err());
}
