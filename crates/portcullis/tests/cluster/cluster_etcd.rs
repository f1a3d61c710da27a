//! Members on a real etcd (Debian's etcd-server, started here on free loopback
//! ports with its data in a temp dir): propagation, an etcd outage under load,
//! member leases, first-start agreement on the cookie key, and a hot restart.

use std::time::{Duration, Instant};

use http::StatusCode;
use portcullis_demo::DemoBackend;
use portcullis_testkit::*;

use crate::etcd::Etcd;

/// Writes a member config on the etcd store and returns it with its port.
fn member_config(dir: &std::path::Path, store: &str, id: &str) -> (std::path::PathBuf, u16) {
    let port = free_port();
    let admin = free_port();
    let config = dir.join(format!("{id}.toml"));
    std::fs::write(
        &config,
        format!("[node]\nid = \"{id}\"\n[gateway]\nlisten = \"127.0.0.1:{port}\"\nshutdown_grace = \"2s\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n[cluster]\nname = \"t{}\"\nstore = \"{store}\"\nheartbeat = \"200ms\"\n", std::process::id()),
    )
    .unwrap();
    (config, port)
}

/// The admin health URL of a member whose config `member_config` wrote.
fn health_url(config_dir: &std::path::Path, id: &str) -> String {
    let text = std::fs::read_to_string(config_dir.join(format!("{id}.toml"))).unwrap();
    let admin = text
        .split("[admin]\nlisten = \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("admin listen in the config");
    format!("http://{admin}/api/v1/health")
}

fn start_member(dir: &std::path::Path, store: &str, id: &str) -> ServeProcess {
    let (config, port) = member_config(dir, store, id);
    ServeProcess::start(&config, port)
}

fn put(member: &ServeProcess, file: &std::path::Path, name: &str) {
    let out = member.cli(&["topology", "put", file.to_str().unwrap(), "--name", name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topology_changes_reach_every_member_within_1s() {
    init();
    let etcd = Etcd::start();
    let a = DemoBackend::spawn("a", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let b = DemoBackend::spawn("b", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let members = [
        start_member(dir.path(), &etcd.store(), "m1"),
        start_member(dir.path(), &etcd.store(), "m2"),
    ];
    let file = dir.path().join("t.toml");
    std::fs::write(&file, topology("svc", &[a.url()], "")).unwrap();
    put(&members[0], &file, "t");
    eventually(
        &members[1].url("/gateway/t/svc/x"),
        Duration::from_secs(3),
        |r| r.status == StatusCode::OK,
    )
    .await;
    // A request loop on the second member that must not see one failure while
    // the topology changes twenty times under it.
    let requests = Load::start(members[1].url("/gateway/t/svc/x"), 1);
    let mut times = Vec::new();
    for change in 0..20 {
        let (url, name) = if change % 2 == 0 {
            (a.url(), "a")
        } else {
            (b.url(), "b")
        };
        std::fs::write(&file, topology("svc", &[url], "")).unwrap();
        let started = Instant::now();
        put(&members[0], &file, "t");
        for member in &members {
            let reply = eventually(
                &member.url("/gateway/t/svc/x"),
                Duration::from_secs(3),
                |r| r.status == StatusCode::OK && r.json()["backend"] == name,
            )
            .await;
            assert_eq!(reply.json()["backend"], name, "change {change}");
        }
        times.push(started.elapsed());
    }
    let LoadResult { ok, failures, .. } = requests.finish().await;
    assert!(
        failures.is_empty(),
        "requests failed during propagation: {failures:?}"
    );
    assert!(ok > 50, "{ok}");
    times.sort();
    eprintln!("etcd propagation over 20 changes (put command start to served on both members): median {:?}, max {:?}", times[10], times[19]);
    assert!(
        times[19] < Duration::from_secs(1) + Duration::from_millis(300),
        "max {:?} (the put command itself starts a process)",
        times[19]
    );
    let out = members[1].cli(&["cluster", "status"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("m1") && table.contains("m2") && table.matches("alive").count() == 2,
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_etcd_under_load_costs_no_request_and_members_resync() {
    init();
    let etcd = Etcd::start();
    let a = DemoBackend::spawn("a", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let b = DemoBackend::spawn("b", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let member = start_member(dir.path(), &etcd.store(), "m1");
    let file = dir.path().join("t.toml");
    std::fs::write(&file, topology("svc", &[a.url()], "")).unwrap();
    put(&member, &file, "t");
    eventually(
        &member.url("/gateway/t/svc/x"),
        Duration::from_secs(3),
        |r| r.status == StatusCode::OK,
    )
    .await;

    let requests = Load::with_pause(member.url("/gateway/t/svc/x"), 1, Duration::from_millis(5));
    let mut etcd = etcd;
    etcd.stop();
    let outage_started = tokio::time::Instant::now();
    // The admin health says so, while the member keeps serving.
    let health = health_url(dir.path(), "m1");
    let lost = eventually(&health, Duration::from_secs(15), |r| {
        r.json()["store"] == "disconnected"
    })
    .await
    .json();
    assert_eq!(lost["store"], "disconnected", "{lost}");
    assert_eq!(lost["status"], "degraded", "{lost}");
    // 30 s without the store, serving the last good config.
    tokio::time::sleep_until(outage_started + Duration::from_secs(30)).await;
    let during_outage = requests.ok_so_far();
    let etcd = etcd.restart();
    let back = eventually(&health, Duration::from_secs(15), |r| {
        r.json()["store"] == "connected"
    })
    .await
    .json();
    assert_eq!(back["status"], "ok", "{back}");
    // A change made after the store returns reaches the member: it resynced.
    std::fs::write(&file, topology("svc", &[b.url()], "")).unwrap();
    put(&member, &file, "t");
    let reply = eventually(
        &member.url("/gateway/t/svc/x"),
        Duration::from_secs(10),
        |r| r.json()["backend"] == "b",
    )
    .await;
    assert_eq!(
        reply.json()["backend"],
        "b",
        "the member resynced after the outage"
    );
    let LoadResult { failures, .. } = requests.finish().await;
    assert!(
        failures.is_empty(),
        "failed requests: {:?}",
        &failures[..failures.len().min(5)]
    );
    assert!(
        during_outage > 500,
        "requests kept flowing during the outage: {during_outage}"
    );
    drop(etcd);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_starts_share_one_cookie_key_and_dead_members_expire() {
    init();
    let etcd = Etcd::start();
    let backends = [
        DemoBackend::spawn("a", "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap(),
        DemoBackend::spawn("b", "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap(),
        DemoBackend::spawn("c", "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap(),
    ];
    let dir = tempfile::tempdir().unwrap();
    // Three members started at the same moment on an empty store.
    let members: Vec<ServeProcess> = ["m1", "m2", "m3"]
        .iter()
        .map(|id| {
            let (config, port) = member_config(dir.path(), &etcd.store(), id);
            ServeProcess::spawn(&config, port)
        })
        .collect();
    for member in &members {
        wait_port(member.port, "member");
    }
    let file = dir.path().join("t.toml");
    let urls: Vec<String> = backends.iter().map(|b| b.url()).collect();
    std::fs::write(
        &file,
        topology(
            "svc",
            &urls,
            "[service.ha]\nload_balancing = \"round-robin\"\nsticky_session = true",
        ),
    )
    .unwrap();
    put(&members[0], &file, "t");
    for member in &members {
        eventually(
            &member.url("/gateway/t/svc/x"),
            Duration::from_secs(3),
            |r| r.status == StatusCode::OK,
        )
        .await;
    }
    for _ in 0..3 {
        let first = get(&members[0].url("/gateway/t/svc/x")).await;
        let cookie = first.headers["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let backend = first.json()["backend"].clone();
        for member in &members[1..] {
            let mut request = http::Request::get(member.url("/gateway/t/svc/x"));
            request = request.header("cookie", &cookie);
            let reply = send(&client(), request.body(empty()).unwrap()).await;
            assert_eq!(
                reply.json()["backend"],
                backend,
                "a cookie from m1 is honoured by every member"
            );
            assert!(reply.headers.get("set-cookie").is_none());
        }
    }
    // SIGKILL one member: its lease lapses and it leaves the member list.
    let mut members = members;
    let killed = members.remove(2);
    drop(killed);
    let killed_at = Instant::now();
    loop {
        let out = members[0].cli(&["cluster", "status"]);
        let table = String::from_utf8_lossy(&out.stdout).to_string();
        if !table.contains("m3") {
            break;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(4),
            "m3 still listed:\n{table}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "etcd: a SIGKILLed member left the member list after {:?}",
        killed_at.elapsed()
    );
}

/// A hot restart on etcd: the new process writes the record under its own
/// lease and the old one neither removes it nor revokes its lease, so the
/// member stays listed and alive throughout, past the old lease's lifetime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_restarted_member_stays_listed_on_etcd() {
    init();
    let etcd = Etcd::start();
    let backend = DemoBackend::spawn("b", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut member = start_member(dir.path(), &etcd.store(), "m1");
    let file = dir.path().join("t.toml");
    std::fs::write(&file, topology("svc", &[backend.url()], "")).unwrap();
    put(&member, &file, "t");
    let url = member.url("/gateway/t/svc/x");
    eventually(&url, Duration::from_secs(3), |r| r.status == StatusCode::OK).await;
    let load = Load::start(url, 2);
    member.signal("USR2");
    let deadline = Instant::now() + Duration::from_secs(20);
    while member.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the old process still runs");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _successor = Successors::of(&member.config, member.child.id());
    // Longer than a lease (three 200 ms heartbeats, at least 1 s), while the
    // member is polled: it must never be missing or gone.
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_millis(1500) {
        let out = member.cli(&["cluster", "status"]);
        let table = String::from_utf8_lossy(&out.stdout);
        let line = table.lines().find(|l| l.starts_with("m1"));
        assert!(line.is_some_and(|l| l.contains("alive")), "{table}");
    }
    let result = load.finish().await;
    eprintln!(
        "etcd hot restart: {} ok, {} failed",
        result.ok,
        result.failures.len()
    );
    result.assert_no_failures();
}
