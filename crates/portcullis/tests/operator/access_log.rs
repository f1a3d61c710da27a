//! The access log of a real `portcullis serve`: the admin API's log filter
//! turns access lines off and on while it runs.

use std::process::{Command, Stdio};

use http::StatusCode;
use portcullis_demo::DemoBackend;
use portcullis_testkit::*;

/// The access lines in `log`: the target followed by its colon, so that the
/// "log filter changed" line, which quotes the filter, is not one.
fn access_lines(log: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter(|l| l.contains(" portcullis::access: "))
        .map(str::to_string)
        .collect()
}

/// Each line is written before its response is sent, so a request that got
/// its answer has its line in the file already (or never will).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_turns_access_lines_off_and_on_at_run_time() {
    init();
    let live = DemoBackend::spawn("live", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("store/topologies")).unwrap();
    write_topology(dir.path(), "t", &topology("svc", &[live.url()], ""));
    let (port, admin_port) = (free_port(), free_port());
    let config = dir.path().join("portcullis.toml");
    std::fs::write(
        &config,
        format!("[node]\nid = \"proc\"\n[gateway]\nlisten = \"127.0.0.1:{port}\"\nshutdown_grace = \"1s\"\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n[cluster]\nstore = \"dir:{}\"\n", dir.path().join("store").display()),
    )
    .unwrap();
    let log = dir.path().join("stderr.log");
    let _server = ServeProcess {
        child: Command::new(binary())
            .args(["serve", "-c"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
        port,
        config: config.clone(),
    };
    wait_port(port, "gateway");
    wait_port(admin_port, "admin listener");
    let token_out = cli(&config, &["admin", "token"]);
    assert!(token_out.status.success());
    let token = String::from_utf8(token_out.stdout).unwrap();
    let set_filter = |level: &'static str| {
        let url = format!("http://127.0.0.1:{admin_port}/api/v1/log-level");
        let token = token.trim().to_string();
        async move {
            let body = format!("{{\"level\": \"{level}\"}}");
            let put = admin_call(&url, Some(&token), "PUT", &body).await;
            assert_eq!(put.status, StatusCode::OK, "{}", put.text());
        }
    };
    let request = |path: &'static str| {
        let url = format!("http://127.0.0.1:{port}/gateway/t/svc{path}");
        async move { assert_eq!(get(&url).await.status, StatusCode::OK) }
    };

    request("/first").await;
    set_filter("info,portcullis::access=off").await;
    request("/while-off").await;
    set_filter("info").await;
    request("/on-again").await;
    // A filter naming a span: whether a line is wanted is asked per request.
    set_filter("info,[no_such_span]=debug").await;
    request("/span-filter").await;
    set_filter("warn,[no_such_span]=debug").await;
    request("/span-filter-warn").await;

    let lines = access_lines(&log);
    let paths: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.split(" path=\"/gateway/t/svc").nth(1))
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert_eq!(paths, ["/first", "/on-again", "/span-filter"], "{lines:#?}");
    // The fast path writes what the `tracing` path writes: same prefix and
    // fields, differing only in the time, the path and the duration.
    let shape = |line: &str| {
        let (stamp, rest) = line.split_once(' ').unwrap();
        assert_eq!(stamp.len(), "2026-12-01T23:11:32.123456Z".len(), "{line}");
        assert!(stamp.ends_with('Z'), "{line}");
        let rest = rest.split(" path=").next().unwrap().to_string();
        let status = line.split(" status=").nth(1).unwrap();
        let tail = status.split_once(" duration_ms=").unwrap().1;
        (
            rest,
            status.split(' ').next().unwrap().to_string(),
            tail.split_once(' ').unwrap().1.to_string(),
        )
    };
    assert!(
        lines[0].contains("  INFO portcullis::access: member=proc method=GET "),
        "{}",
        lines[0]
    );
    assert_eq!(shape(&lines[1]), shape(&lines[2]));
}
