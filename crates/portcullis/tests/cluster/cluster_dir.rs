//! Several member processes sharing one `dir:` store: config propagation,
//! membership, leaving, and role enforcement, through the real binary.

use std::time::{Duration, Instant};

use http::StatusCode;
use portcullis_demo::DemoBackend;
use portcullis_testkit::*;

/// Writes a member config sharing `store` and starts `portcullis serve` on it.
fn start_member(
    dir: &std::path::Path,
    store: &std::path::Path,
    id: &str,
    role: &str,
    extra: &str,
) -> ServeProcess {
    let port = free_port();
    let config = dir.join(format!("{id}.toml"));
    std::fs::write(
        &config,
        format!(
            "[node]\nid = \"{id}\"\n[gateway]\nlisten = \"127.0.0.1:{port}\"\nshutdown_grace = \"2s\"\n[admin]\nlisten = \"127.0.0.1:{}\"\n[cluster]\nstore = \"dir:{}\"\nrole = \"{role}\"\nheartbeat = \"200ms\"\n{extra}",
            free_port(),
            store.display()
        ),
    )
    .unwrap();
    ServeProcess::start(&config, port)
}

fn status_table(member: &ServeProcess) -> String {
    let out = member.cli(&["cluster", "status"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn row<'a>(table: &'a str, id: &str) -> Option<&'a str> {
    table.lines().find(|l| l.starts_with(&format!("{id} ")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topology_put_on_one_member_serves_on_all_within_2s() {
    init();
    let backend = DemoBackend::spawn("b", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let members: Vec<ServeProcess> = ["m1", "m2", "m3"]
        .iter()
        .map(|id| start_member(dir.path(), &store, id, "manager", ""))
        .collect();
    let file = dir.path().join("sales.toml");
    let mut times = Vec::new();
    for round in 0..20 {
        std::fs::write(
            &file,
            topology(&format!("svc{round}"), &[backend.url()], ""),
        )
        .unwrap();
        let put_at = Instant::now();
        let out = members[0].cli(&["topology", "put", file.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for member in &members {
            let reply = eventually(
                &member.url(&format!("/gateway/sales/svc{round}/x")),
                Duration::from_secs(3),
                |r| r.status == StatusCode::OK,
            )
            .await;
            assert_eq!(reply.status, StatusCode::OK);
        }
        times.push(put_at.elapsed());
    }
    assert!(
        times.iter().all(|t| *t < Duration::from_secs(2)),
        "propagation times {times:?}"
    );
    times.sort();
    eprintln!(
        "dir propagation over 20 changes (put command start to served on all three members): median {:?}, max {:?}",
        times[10], times[19]
    );

    let out = members[1].cli(&["topology", "list"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "sales");
    let out = members[2].cli(&["topology", "get", "sales"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("svc19"));

    // An invalid topology is refused with its key path and line, and not stored.
    std::fs::write(&file, "[[service]]\nname = \"x\"\nurls = []\n").unwrap();
    let out = members[0].cli(&["topology", "put", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("service[0].urls") && stderr.contains(":3"),
        "{stderr}"
    );

    let out = members[0].cli(&["topology", "delete", "sales"]);
    assert!(out.status.success());
    for member in &members {
        let reply = eventually(
            &member.url("/gateway/sales/svc2/x"),
            Duration::from_secs(3),
            |r| r.status == StatusCode::NOT_FOUND,
        )
        .await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
    }
}

/// The dir store's directory emptied under two running members, as an
/// unmounted NFS share leaves its mount point: an outage, not a deletion.
/// Both keep serving their topology through many store polls, and go on
/// after the contents come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emptied_store_directory_undeploys_nothing() {
    init();
    let backend = DemoBackend::spawn("b", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let aside = dir.path().join("aside");
    let members: Vec<ServeProcess> = ["m1", "m2"]
        .iter()
        .map(|id| start_member(dir.path(), &store, id, "manager", ""))
        .collect();
    let file = dir.path().join("sales.toml");
    std::fs::write(&file, topology("svc", &[backend.url()], "")).unwrap();
    let out = members[0].cli(&["topology", "put", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for member in &members {
        let reply = eventually(
            &member.url("/gateway/sales/svc/x"),
            Duration::from_secs(3),
            |r| r.status == StatusCode::OK,
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    std::fs::create_dir(&aside).unwrap();
    for entry in std::fs::read_dir(&store).unwrap() {
        let entry = entry.unwrap();
        std::fs::rename(entry.path(), aside.join(entry.file_name())).unwrap();
    }
    // Many polls of the store (every 500 ms) and heartbeats (200 ms).
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        for member in &members {
            let reply = get(&member.url("/gateway/sales/svc/x")).await;
            assert_eq!(
                reply.status,
                StatusCode::OK,
                "served while the store is empty"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        std::fs::read_dir(&store).unwrap().count(),
        0,
        "nothing written under the empty mount point (heartbeats refused)"
    );
    for entry in std::fs::read_dir(&aside).unwrap() {
        let entry = entry.unwrap();
        std::fs::rename(entry.path(), store.join(entry.file_name())).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    for member in &members {
        let reply = get(&member.url("/gateway/sales/svc/x")).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "served after the store came back"
        );
    }
}

/// Waits until `cluster status` through `member` lists every one of `ids`.
async fn wait_listed(member: &ServeProcess, ids: &[&str]) {
    wait_until(
        &format!("cluster status to list {ids:?}"),
        Duration::from_secs(10),
        || {
            let table = status_table(member);
            ids.iter().all(|id| row(&table, id).is_some())
        },
    )
    .await;
}

/// Members serving the same store show one config hash in `cluster
/// status`; a member that refused a topology the others serve (its
/// `tls_ca` is missing from that member's directory) is flagged as drift
/// within a few heartbeats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_status_flags_a_member_whose_config_drifted() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let (with_ca, without_ca) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&without_ca).unwrap();
    let certs = portcullis::cert::create_certs(&["localhost".to_string()], &with_ca).unwrap();
    std::fs::copy(&certs.ca_cert, with_ca.join("ca.pem")).unwrap();
    let m1 = start_member(&with_ca, &store, "m1", "manager", "");
    let _m2 = start_member(&without_ca, &store, "m2", "manager", "");
    let _m3 = start_member(&with_ca, &store, "m3", "manager", "");
    wait_listed(&m1, &["m1", "m2", "m3"]).await;
    let table = status_table(&m1);
    assert!(
        table.contains("CONFIG") && !table.contains("DRIFT"),
        "{table}"
    );
    let hashes: Vec<&str> = ["m1", "m2", "m3"]
        .iter()
        .map(|id| row(&table, id).unwrap().split_whitespace().nth(7).unwrap())
        .collect();
    assert!(
        hashes.iter().all(|h| h.len() == 16 && *h == hashes[0]),
        "{table}"
    );

    let file = dir.path().join("secure.toml");
    std::fs::write(
        &file,
        "[[service]]\nname = \"s\"\nurls = [\"https://localhost:9\"]\ntls_ca = \"ca.pem\"\n",
    )
    .unwrap();
    let out = m1.cli(&["topology", "put", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until("cluster status to flag m2", Duration::from_secs(10), || {
        row(&status_table(&m1), "m2").is_some_and(|r| r.contains("DRIFT"))
    })
    .await;
    let table = status_table(&m1);
    for id in ["m1", "m3"] {
        assert!(!row(&table, id).unwrap().contains("DRIFT"), "{table}");
    }
    assert!(table.contains("config drift: m2 serve"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_appear_leave_at_once_and_vanish_after_three_missed_heartbeats() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let a = start_member(dir.path(), &store, "alpha", "manager", "");
    let b = start_member(dir.path(), &store, "beta", "worker", "");
    let c = start_member(dir.path(), &store, "gamma", "worker", "");
    wait_listed(&a, &["alpha", "beta", "gamma"]).await;
    let table = status_table(&a);
    for (id, role) in [
        ("alpha", "manager"),
        ("beta", "worker"),
        ("gamma", "worker"),
    ] {
        let line = row(&table, id).unwrap_or_else(|| panic!("{id} missing:\n{table}"));
        assert!(line.contains(role) && line.contains("alive"), "{line}");
    }
    assert!(table.starts_with("ID"), "{table}");

    // SIGKILL: no goodbye; gone once three 200 ms heartbeats are missed.
    b.signal("KILL");
    let killed_at = Instant::now();
    loop {
        let table = status_table(&a);
        if row(&table, "beta").is_some_and(|l| l.contains("gone")) {
            break;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(3),
            "beta still alive:\n{table}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let detected = killed_at.elapsed();
    eprintln!("dir: a SIGKILLed member was reported gone after {detected:?} (heartbeat 200 ms)");
    // Three 200 ms heartbeats, plus one status poll and the CLI start-up.
    assert!(
        detected <= Duration::from_millis(1500),
        "detected after {detected:?}"
    );

    // SIGTERM: the member removes its record before it stops listening.
    let mut c = c;
    c.signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        row(&status_table(&a), "gamma").is_none(),
        "a member that left is not listed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_a_worker_are_refused_naming_the_managers() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let manager = start_member(dir.path(), &store, "boss", "manager", "");
    let worker = start_member(dir.path(), &store, "hand", "worker", "");
    wait_listed(&worker, &["boss", "hand"]).await;
    let file = dir.path().join("t.toml");
    std::fs::write(
        &file,
        topology("svc", &["http://127.0.0.1:9".to_string()], ""),
    )
    .unwrap();
    let out = worker.cli(&["topology", "put", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let manager_config = std::fs::read_to_string(&manager.config).unwrap();
    let admin_listen = manager_config
        .lines()
        .find(|l| l.starts_with("listen = \"127.0.0.1:") && !l.contains(&manager.port.to_string()))
        .unwrap();
    let admin_addr = admin_listen
        .trim_start_matches("listen = \"")
        .trim_end_matches('"');
    assert!(
        stderr.contains("worker") && stderr.contains(admin_addr),
        "{stderr}"
    );
    assert!(
        store.join("topologies/t.toml").metadata().is_err(),
        "nothing stored"
    );
    let out = manager.cli(&["topology", "put", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_balancer_stops_choosing_a_killed_member_within_three_heartbeats() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let balancer_port = free_port();
    let front = start_member(
        dir.path(),
        &store,
        "front",
        "manager",
        &format!("[balancer]\nlisten = \"127.0.0.1:{balancer_port}\"\nmode = \"redirect\"\n"),
    );
    let victim = start_member(dir.path(), &store, "victim", "manager", "");
    wait_port(balancer_port, "balancer");
    let victim_base = format!("http://127.0.0.1:{}", victim.port);
    let url = format!("http://127.0.0.1:{balancer_port}/gateway/t/svc/x");
    // Get an affinity cookie for the victim.
    let deadline = Instant::now() + Duration::from_secs(5);
    let cookie = loop {
        let reply = get(&url).await;
        let location = reply.headers["location"].to_str().unwrap().to_string();
        if location.starts_with(&victim_base) {
            break reply.headers["set-cookie"]
                .to_str()
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .to_string();
        }
        assert!(Instant::now() < deadline, "the victim was never chosen");
    };
    victim.signal("KILL");
    let killed_at = Instant::now();
    loop {
        let request = http::Request::get(&url)
            .header("cookie", &cookie)
            .body(empty())
            .unwrap();
        let reply = send(&client(), request).await;
        if !reply.headers["location"]
            .to_str()
            .unwrap()
            .starts_with(&victim_base)
        {
            break;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(2),
            "the balancer still chooses a dead member"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let moved = killed_at.elapsed();
    eprintln!(
        "balancer: a SIGKILLed member stopped being chosen after {moved:?} (heartbeat 200 ms)"
    );
    // Three 200 ms heartbeats plus one refresh (a quarter heartbeat).
    assert!(moved <= Duration::from_millis(1000), "{moved:?}");
    drop(front);
}
