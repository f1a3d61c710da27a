//! The balancer as a high-availability tier (PRODUCT.md §10), end to end:
//! real member processes on a real etcd, the balancer in `proxy` mode in
//! front of two members, etcd stopped for 30 s under a request loop, and one
//! member SIGKILLed during that outage.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use http::{Request, StatusCode};
use portcullis_demo::DemoBackend;
use portcullis_testkit::*;

use super::etcd::Etcd;

const HEARTBEAT_MS: u64 = 300;

/// A member process config on `store`; with `balancer`, it also runs a
/// `proxy` balancer on that port. Returns the config and the gateway port.
fn member_config(dir: &Path, store: &str, id: &str, balancer: Option<u16>) -> (PathBuf, u16) {
    let port = free_port();
    let admin = free_port();
    let balancer = balancer
        .map(|port| format!("[balancer]\nlisten = \"127.0.0.1:{port}\"\nmode = \"proxy\"\n"))
        .unwrap_or_default();
    let config = dir.join(format!("{id}.toml"));
    std::fs::write(
        &config,
        format!("[node]\nid = \"{id}\"\n[gateway]\nlisten = \"127.0.0.1:{port}\"\nshutdown_grace = \"2s\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n[cluster]\nname = \"lb{}\"\nstore = \"{store}\"\nheartbeat = \"{HEARTBEAT_MS}ms\"\n{balancer}", std::process::id()),
    )
    .unwrap();
    (config, port)
}

/// Which member served a request through the balancer (the demo backend
/// echoes the member's `X-Forwarded-Server`).
async fn served_by(url: &str) -> String {
    let reply = get(url).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    reply.json()["headers"]["x-forwarded-server"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Waits until new clients of the balancer reach both members.
async fn wait_until_both_serve(url: &str) {
    let mut seen = BTreeSet::new();
    let started = Instant::now();
    while seen.len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "only {seen:?} served through the balancer"
        );
        seen.insert(served_by(url).await);
    }
}

/// Sends POSTs with a body (which the balancer never replays) until 1 s
/// passes without one landing on a dead member; returns when the last one
/// did, or `None` when none did.
async fn last_post_to_a_dead_member(url: &str) -> Option<Instant> {
    let mut last_refused = None;
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < Duration::from_secs(1) {
        let request = Request::post(url).body(full("not replayable")).unwrap();
        let reply = send(&client(), request).await;
        match reply.status {
            StatusCode::OK => {}
            StatusCode::BAD_GATEWAY => {
                last_refused = Some(Instant::now());
                quiet_since = Instant::now();
            }
            other => panic!("unexpected {other}: {}", reply.text()),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    last_refused
}

/// The test: 0 failed requests through a 30 s etcd outage, and a
/// member SIGKILLed during it dropped by the balancer's own checks within
/// 2 s (the requests that would have gone to it are sent to the other).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_balancer_serves_through_a_30s_etcd_outage_and_drops_a_killed_member_within_2s() {
    init();
    let mut etcd = Etcd::start();
    let backend = DemoBackend::spawn("a", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let balancer_port = free_port();
    let (config1, port1) = member_config(dir.path(), &etcd.store(), "m1", Some(balancer_port));
    let (config2, port2) = member_config(dir.path(), &etcd.store(), "m2", None);
    let m1 = ServeProcess::start(&config1, port1);
    let mut m2 = ServeProcess::start(&config2, port2);
    wait_port(balancer_port, "balancer");
    let file = dir.path().join("t.toml");
    std::fs::write(&file, topology("svc", &[backend.url()], "")).unwrap();
    let out = m1.cli(&["topology", "put", file.to_str().unwrap(), "--name", "t"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for member in [&m1, &m2] {
        let reply = eventually(
            &member.url("/gateway/t/svc/x"),
            Duration::from_secs(10),
            |r| r.status == StatusCode::OK,
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    }
    let url = format!("http://127.0.0.1:{balancer_port}/gateway/t/svc/x");
    wait_until_both_serve(&url).await;

    let requests = Load::with_pause(url.clone(), 2, Duration::from_millis(5));
    etcd.stop();
    let outage_started = Instant::now();
    // Well past the three heartbeats after which records used to age out:
    // both members are still chosen.
    tokio::time::sleep(Duration::from_millis(HEARTBEAT_MS * 10)).await;
    wait_until_both_serve(&url).await;
    let before_kill = requests.ok_so_far();

    m2.child.kill().unwrap();
    let killed_at = Instant::now();
    let _ = m2.child.wait();
    let dropped_after = last_post_to_a_dead_member(&url)
        .await
        .map_or(Duration::ZERO, |last| last - killed_at);
    for _ in 0..20 {
        assert_eq!(served_by(&url).await, "m1", "only the live member serves");
    }

    let outage = Duration::from_secs(30);
    tokio::time::sleep(outage.saturating_sub(outage_started.elapsed())).await;
    let during_outage = requests.ok_so_far();
    let outage_lasted = outage_started.elapsed();
    let etcd = etcd.restart();
    // The load goes on while m1 renews its record and the balancer trusts
    // the store again.
    tokio::time::sleep(Duration::from_millis(HEARTBEAT_MS * 8)).await;
    let result = requests.finish().await;
    println!(
        "etcd outage {outage_lasted:?}: {} requests answered in all ({before_kill} before the kill, \
         {during_outage} by the end of the outage), {} failed; killed member dropped after {dropped_after:?}",
        result.ok,
        result.failures.len()
    );
    result.assert_no_failures();
    assert!(
        before_kill > 100,
        "requests flowed during the outage: {before_kill}"
    );
    assert!(
        dropped_after < Duration::from_secs(2),
        "the killed member was chosen for {dropped_after:?}"
    );
    drop(etcd);
}
