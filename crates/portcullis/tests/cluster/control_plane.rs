//! The control plane's promises (PRODUCT.md §9): applying a large topology
//! never stalls the data plane; what `check` or the admin API accepts, every
//! member applies; one bad file in a dir store does not block the others.

use std::time::{Duration, Instant};

use http::StatusCode;
use portcullis_demo::DemoBackend;
use portcullis_testkit::*;

/// `services` services over one url each.
fn large_topology(services: usize, url: &str) -> String {
    (0..services)
        .map(|i| format!("[[service]]\nname = \"s{i}\"\nurls = [\"{url}/s{i}\"]\n\n"))
        .collect()
}

/// Waits until the member's generation passes `after`; returns how long it took.
async fn applied(member: &TestMember, after: u64, started: Instant) -> Duration {
    while member.gateway().generation() <= after {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "not applied in 2 minutes"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    started.elapsed()
}

/// One runtime thread, as in a member whose every worker is busy: whatever
/// CPU work the control plane does on the async threads shows up as the
/// request loop's latency.
#[tokio::test(flavor = "current_thread")]
async fn a_large_topology_applies_without_stalling_requests() {
    init();
    let backend = BackendProcess::spawn("steady");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("store/topologies")).unwrap();
    write_topology(dir.path(), "small", &topology("echo", &[backend.url()], ""));
    let store = dir.path().join("store");
    let member = TestMember::start_admin(&store, "gw", "manager", None).await;
    let large = large_topology(4000, &backend.url());

    for how in ["admin PUT", "dir store write"] {
        // One loop, a request every 2 ms; its slowest round (request and
        // pause) shows a stall whether it hits a request or the pause.
        let requests = Load::with_pause(
            member.url("/gateway/small/echo/x"),
            1,
            Duration::from_millis(2),
        );
        wait_until("the request loop to run", Duration::from_secs(10), || {
            requests.ok_so_far() > 5
        })
        .await;
        let generation = member.gateway().generation();
        let started = Instant::now();
        if how == "admin PUT" {
            let put = member
                .admin("PUT", "/api/v1/topologies/large", &large)
                .await;
            assert_eq!(put.status, StatusCode::OK, "{}", put.text());
        } else {
            write_topology(dir.path(), "large2", &large);
        }
        let took = applied(&member, generation, started).await;
        // A few more rounds after the apply, so a stall at its very end counts.
        let at_apply = requests.ok_so_far();
        wait_until("requests after the apply", Duration::from_secs(10), || {
            requests.ok_so_far() > at_apply + 5
        })
        .await;
        let result = requests.finish().await;
        result.assert_no_failures();
        let (slowest, count) = (result.slowest, result.ok);
        eprintln!("{how}: applied in {took:?}; {count} requests meanwhile, slowest {slowest:?}");
        assert!(count > 0, "no request was answered");
        assert!(
            slowest * 4 < took,
            "{how}: a request waited {slowest:?} while the topology took {took:?} to apply"
        );
    }
    member.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topology_file_that_is_not_utf8_does_not_block_the_others() {
    let backend = DemoBackend::spawn("b", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let member = TestMember::start(&[("first", &topology("one", &[backend.url()], ""))]).await;
    let served = |path: &str| {
        let url = member.url(path);
        async move { eventually(&url, Duration::from_secs(5), |r| r.status == StatusCode::OK).await }
    };
    assert_eq!(served("/gateway/first/one/x").await.status, StatusCode::OK);

    // A new file and a replaced one, neither UTF-8.
    let topologies = member.dir.path().join("store/topologies");
    std::fs::write(
        topologies.join("broken.toml"),
        b"[[service]]\nname = \"\xff\xfe\"\n",
    )
    .unwrap();
    std::fs::write(topologies.join("first.toml"), b"\xc3\x28 not text").unwrap();
    // Other changes still apply...
    member.put_topology("second", &topology("two", &[backend.url()], ""));
    assert_eq!(served("/gateway/second/two/x").await.status, StatusCode::OK);
    // ...and the topology whose file became unreadable keeps its last good version.
    assert_eq!(
        get(&member.url("/gateway/first/one/x")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(&member.url("/gateway/broken/x/y")).await.status,
        StatusCode::NOT_FOUND
    );
    member.stop().await;
}

/// A service over `n` distinct urls, one per line from line 4.
fn many_urls(n: usize) -> String {
    let urls: Vec<String> = (0..n)
        .map(|i| format!("  \"http://127.0.0.1:9/b{i}\",\n"))
        .collect();
    format!(
        "[[service]]\nname = \"big\"\nurls = [\n{}]\n",
        urls.concat()
    )
}

const MISSING_CA: &str =
    "[[service]]\nname = \"s\"\nurls = [\"https://127.0.0.1:9\"]\ntls_ca = \"missing-ca.pem\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_refuses_what_no_member_could_apply() {
    let store = tempfile::tempdir().unwrap();
    let member = TestMember::start_admin(store.path(), "gw", "manager", None).await;

    member
        .admin("PUT", "/api/v1/topologies/ok", &many_urls(64))
        .await
        .json();
    let refused = member
        .admin("PUT", "/api/v1/topologies/big", &many_urls(65))
        .await;
    assert_eq!(
        refused.status,
        StatusCode::BAD_REQUEST,
        "{}",
        refused.text()
    );
    let json = refused.json();
    assert_eq!(json["path"], "service[0].urls", "{json}");
    assert_eq!(json["line"], 3, "{json}");

    let refused = member
        .admin("PUT", "/api/v1/topologies/ca", MISSING_CA)
        .await;
    assert_eq!(
        refused.status,
        StatusCode::BAD_REQUEST,
        "{}",
        refused.text()
    );
    let json = refused.json();
    assert_eq!(json["path"], "service[0].tls_ca", "{json}");
    assert_eq!(json["line"], 4, "{json}");
    assert!(
        json["error"].as_str().unwrap().contains("missing-ca.pem"),
        "{json}"
    );

    for name in ["big", "ca"] {
        let stored = member
            .admin("GET", &format!("/api/v1/topologies/{name}"), "")
            .await;
        assert_eq!(stored.status, StatusCode::NOT_FOUND, "{name} was stored");
    }
    let ok = member.admin("GET", "/api/v1/topologies/ok", "").await;
    assert_eq!(ok.status, StatusCode::OK, "64 urls are fine");
    member.stop().await;
}

#[test]
fn check_refuses_what_no_member_could_apply() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.toml");
    let ca = dir.path().join("ca.toml");
    std::fs::write(&big, many_urls(65)).unwrap();
    std::fs::write(&ca, MISSING_CA).unwrap();
    let out = std::process::Command::new(binary())
        .arg("check")
        .arg(&big)
        .arg(&ca)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("big.toml:3:") && stderr.contains("service[0].urls: expected at most 64"),
        "{stderr}"
    );
    assert!(
        stderr.contains("ca.toml:4:")
            && stderr.contains("service[0].tls_ca")
            && stderr.contains("missing-ca.pem"),
        "{stderr}"
    );
}
