//! `[service.rate_limit]` across members (PRODUCT.md §11): two in-process
//! members on one dir store exchange their counts over their real admin
//! listeners; a client alternates between them at 3× the limit. And a
//! member whose peer is alive in the store but unreachable falls back to
//! its even share.

use std::time::Duration;

use http::{Request, StatusCode};
use portcullis_cluster::{ClusterStore, MemberRecord, RoleName};
use portcullis_config::StoreLocation;
use portcullis_demo::DemoBackend;
use portcullis_testkit::*;
use tokio::time::Instant;

const LIMIT: u64 = 20;
const BURST: u64 = 10;

fn limited_topology(backend: &str) -> String {
    topology(
        "svc",
        &[backend.to_string()],
        &format!("[service.rate_limit]\nrequests = {LIMIT}\nper = \"1s\"\nkey = \"header:X-Client\"\nburst = {BURST}\n"),
    )
}

/// Waits until the member's last heartbeat listed `live` live members (the
/// count its exchange divides by).
async fn wait_live(member: &TestMember, live: usize) {
    let gauge = format!("portcullis_cluster_members {live}\n");
    let url = member.admin_url("/metrics");
    let reply = eventually(&url, Duration::from_secs(10), |r| r.text().contains(&gauge)).await;
    assert!(reply.text().contains(&gauge), "{}", reply.text());
}

/// Waits until `member` serves the service (probes carry no X-Client, so
/// they use another bucket than the load).
async fn wait_served(member: &TestMember) {
    let reply = eventually(
        &member.url("/gateway/rl/svc/x"),
        Duration::from_secs(10),
        |r| r.status == StatusCode::OK,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
}

/// Offers `rate` requests a second for `duration`, round robin over
/// `targets`; returns (admitted, refused) and checks every refusal.
async fn offer(targets: &[&TestMember], rate: u32, duration: Duration) -> (u64, u64) {
    let client = client();
    let total = (duration.as_secs_f64() * f64::from(rate)) as u32;
    let step = Duration::from_secs(1) / rate;
    let start = Instant::now();
    let (mut admitted, mut refused) = (0, 0);
    for i in 0..total {
        let target = targets[i as usize % targets.len()];
        let request = Request::get(target.url("/gateway/rl/svc/x"))
            .header("x-client", "load")
            .body(empty())
            .unwrap();
        let reply = send(&client, request).await;
        match reply.status {
            StatusCode::OK => admitted += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                refused += 1;
                check_refusal(&reply);
            }
            other => panic!("unexpected {other}: {}", reply.text()),
        }
        tokio::time::sleep_until(start + step * (i + 1)).await;
    }
    (admitted, refused)
}

fn check_refusal(reply: &Reply) {
    let field = |name: &str| reply.headers[name].to_str().unwrap().to_string();
    let retry_after: u64 = field("retry-after").parse().unwrap();
    assert!(retry_after >= 1);
    assert_eq!(
        field("ratelimit-policy"),
        format!("\"default\";q={LIMIT};w=1")
    );
    assert_eq!(
        field("ratelimit"),
        format!("\"default\";r=0;t={retry_after}")
    );
    let json = reply.json();
    assert_eq!(json["error"], "too many requests");
    assert_eq!(json["service"], "svc");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_together_admit_the_limit_at_three_times_the_rate() {
    init();
    let backend = DemoBackend::spawn("b", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    std::fs::create_dir_all(store.join("topologies")).unwrap();
    write_topology(dir.path(), "rl", &limited_topology(&backend.url()));
    let a = TestMember::start_admin(&store, "a", "manager", None).await;
    let b = TestMember::start_admin(&store, "b", "manager", None).await;
    for member in [&a, &b] {
        wait_served(member).await;
        wait_live(member, 2).await;
    }

    let seconds = 10;
    let (admitted, refused) =
        offer(&[&a, &b], 3 * LIMIT as u32, Duration::from_secs(seconds)).await;
    let expected = LIMIT * seconds + BURST;
    let (on_a, on_b) = (
        a.service("rl", "svc").stats.rate_limited(),
        b.service("rl", "svc").stats.rate_limited(),
    );
    println!(
        "rate limit {LIMIT}/s burst {BURST}, 2 members, {} offered over {seconds} s: {admitted} admitted (expected {expected}, {:+.1}%), {refused} refused ({on_a} on a, {on_b} on b)",
        admitted + refused,
        (admitted as f64 - expected as f64) * 100.0 / expected as f64,
    );
    let tolerance = expected / 10;
    assert!(
        admitted.abs_diff(expected) <= tolerance,
        "admitted {admitted}, expected {expected} ± {tolerance}"
    );
    assert_eq!(
        on_a + on_b,
        refused,
        "portcullis_rate_limited_total counts every 429"
    );
    assert!(on_a > 0 && on_b > 0, "both members enforce their share");
    let metrics = a.admin("GET", "/metrics", "").await.text();
    assert!(
        metrics.contains(&format!(
            "portcullis_rate_limited_total{{topology=\"rl\",service=\"svc\"}} {on_a}"
        )),
        "{metrics}"
    );
    a.stop().await;
    b.stop().await;
}

/// A member record the test keeps alive in the store, for a peer whose
/// admin listener nobody can reach (port 1 on loopback refuses).
fn ghost_record() -> MemberRecord {
    MemberRecord {
        id: "ghost".into(),
        role: RoleName::Manager,
        public_url: "http://127.0.0.1:1".into(),
        admin_url: Some("http://127.0.0.1:1".into()),
        version: "test".into(),
        generation: 0,
        config_hash: String::new(),
        in_flight: 0,
        requests: 0,
        errors: 0,
        heartbeat_ms: 200,
        updated_at_ms: portcullis_cluster::members::now_ms(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_cannot_reach_its_peer_admits_its_even_share() {
    init();
    let backend = DemoBackend::spawn("b", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    std::fs::create_dir_all(store.join("topologies")).unwrap();
    write_topology(dir.path(), "rl", &limited_topology(&backend.url()));
    let writer = ClusterStore::open(&StoreLocation::Dir(store.clone()), "default");
    let heartbeat = tokio::spawn(async move {
        loop {
            let _ = writer.put_member(&ghost_record()).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let a = TestMember::start_admin(&store, "a", "manager", None).await;
    wait_served(&a).await;
    wait_live(&a, 2).await;

    let seconds = 5;
    let (admitted, refused) = offer(&[&a], 3 * LIMIT as u32, Duration::from_secs(seconds)).await;
    // limit ÷ 2 live members, and half the burst.
    let share = LIMIT / 2 * seconds + BURST / 2;
    println!(
        "peer unreachable: {} offered over {seconds} s at one member: {admitted} admitted (even share {share}), {refused} refused",
        admitted + refused
    );
    let tolerance = share / 10 + 1;
    assert!(
        admitted.abs_diff(share) <= tolerance,
        "admitted {admitted}, expected the even share {share} ± {tolerance} (the whole limit would be {})",
        LIMIT * seconds + BURST
    );
    heartbeat.abort();
    a.stop().await;
}
