//! The `portcullis` binary as operators run it: serve with graceful shutdown,
//! memory under a 1 GiB upload, check, cert create and demo.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http::{Request, StatusCode};
use portcullis_demo::DemoBackend;
use portcullis_testkit::*;

/// A child process that is killed if the test ends early (a failed assertion
/// must not leave a server running).
struct Reaped(Child);

impl std::ops::Deref for Reaped {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Reaped {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Starts `portcullis serve` on a free loopback port with one topology.
fn spawn_serve(dir: &std::path::Path, topology_text: &str) -> (Reaped, u16) {
    spawn_serve_logging(dir, topology_text, "warn", Stdio::null())
}

fn spawn_serve_logging(
    dir: &std::path::Path,
    topology_text: &str,
    log: &str,
    stderr: Stdio,
) -> (Reaped, u16) {
    spawn_serve_with_env(dir, topology_text, log, stderr, &[])
}

fn spawn_serve_with_env(
    dir: &std::path::Path,
    topology_text: &str,
    log: &str,
    stderr: Stdio,
    env: &[(&str, &str)],
) -> (Reaped, u16) {
    std::fs::create_dir_all(dir.join("store/topologies")).unwrap();
    write_topology(dir, "t", topology_text);
    let port = free_port();
    std::fs::write(
        dir.join("portcullis.toml"),
        format!("[node]\nid = \"proc\"\n[gateway]\nlisten = \"127.0.0.1:{port}\"\nshutdown_grace = \"10s\"\n[cluster]\nstore = \"dir:./store\"\n"),
    )
    .unwrap();
    let child = Reaped(
        Command::new(binary())
            .args(["serve", "-c"])
            .arg(dir.join("portcullis.toml"))
            .env("RUST_LOG", log)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "serve did not start listening");
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, port)
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_in_flight_request_then_exits_zero() {
    init();
    let backend = DemoBackend::spawn("b", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mut child, port) = spawn_serve(dir.path(), &topology("svc", &[backend.url()], ""));
    let in_flight = tokio::spawn(async move {
        get(&format!("http://127.0.0.1:{port}/gateway/t/svc/sleep/1500")).await
    });
    wait_until(
        "the request to reach the backend",
        Duration::from_secs(10),
        || backend.requests() >= 1,
    )
    .await;
    signal(&child, "TERM");
    // No longer accepting new connections, well before the request ends.
    wait_for(
        "the member to stop listening",
        Duration::from_secs(1),
        || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
        },
    )
    .await;
    let reply = in_flight.await.unwrap();
    assert_eq!(reply.status, StatusCode::OK, "in-flight request finished");
    let status =
        tokio::task::spawn_blocking(move || wait_exit(&mut child, Duration::from_secs(10)))
            .await
            .unwrap();
    assert!(status.success(), "{status:?}");
}

/// The per-core mode (the default of `serve`; `PORTCULLIS_PER_CORE` sets the
/// count): the gateway is served by current-thread runtimes sharing one
/// listening socket; requests on many connections are answered, both
/// runtimes take connections, and SIGTERM still ends it cleanly.
/// `PORTCULLIS_PER_CORE=0` serves from the shared runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_core_runtimes_serve_and_shut_down_cleanly() {
    serves_and_shuts_down_cleanly(&[("PORTCULLIS_PER_CORE", "2")], 2).await;
}

/// Without the variable, `serve` starts one per-core runtime per worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_per_core_runtimes_by_default() {
    serves_and_shuts_down_cleanly(&[("PORTCULLIS_WORKERS", "3")], 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_runtime_serves_and_shuts_down_cleanly() {
    serves_and_shuts_down_cleanly(&[("PORTCULLIS_PER_CORE", "0")], 0).await;
}

/// A second member on a port already served fails to start ("address in
/// use") instead of sharing the port: the per-core runtimes share one socket,
/// not SO_REUSEPORT sockets that a second process could join.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_member_on_the_same_port_fails_to_start() {
    init();
    let backend = DemoBackend::spawn("b", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let (first_dir, second_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let topology_text = topology("svc", &[backend.url()], "");
    let (_first, port) = spawn_serve(first_dir.path(), &topology_text);
    std::fs::create_dir_all(second_dir.path().join("store/topologies")).unwrap();
    write_topology(second_dir.path(), "t", &topology_text);
    std::fs::write(
        second_dir.path().join("portcullis.toml"),
        format!("[node]\nid = \"second\"\n[gateway]\nlisten = \"127.0.0.1:{port}\"\n[cluster]\nstore = \"dir:./store\"\n"),
    )
    .unwrap();
    let mut second = Reaped(
        Command::new(binary())
            .args(["serve", "-c"])
            .arg(second_dir.path().join("portcullis.toml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let status =
        tokio::task::spawn_blocking(move || wait_exit(&mut second, Duration::from_secs(20)))
            .await
            .unwrap();
    assert!(!status.success(), "{status:?}");
}

/// The names of a process's threads.
fn thread_names(pid: u32) -> Vec<String> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_string())
        .collect()
}

/// Serves with `env` and checks that `gateway_threads` per-core threads run.
async fn serves_and_shuts_down_cleanly(env: &[(&str, &str)], gateway_threads: usize) {
    init();
    let backend = DemoBackend::spawn("b", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mut child, port) = spawn_serve_with_env(
        dir.path(),
        &topology("svc", &[backend.url()], ""),
        "warn",
        Stdio::null(),
        env,
    );
    let url = format!("http://127.0.0.1:{port}/gateway/t/svc/x");
    let mut answers = Vec::new();
    for _ in 0..40 {
        // A new connection each time, so the kernel spreads them over the
        // listeners.
        let url = url.clone();
        answers.push(tokio::spawn(async move { get(&url).await.status }));
    }
    for answer in answers {
        assert_eq!(answer.await.unwrap(), StatusCode::OK);
    }
    let names = thread_names(child.id());
    let per_core = names.iter().filter(|n| n.starts_with("gateway-")).count();
    assert_eq!(per_core, gateway_threads, "threads: {names:?}");
    // `serve` turns transparent huge pages off for itself (memory per idle
    // connection, docs/benchmarks.md).
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    assert!(status.contains("THP_enabled:\t0"), "{status}");
    signal(&child, "TERM");
    let status =
        tokio::task::spawn_blocking(move || wait_exit(&mut child, Duration::from_secs(10)))
            .await
            .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_gib_upload_does_not_grow_memory() {
    init();
    let backend = DemoBackend::spawn("b", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mut child, port) = spawn_serve(dir.path(), &topology("svc", &[backend.url()], ""));
    let url = format!("http://127.0.0.1:{port}/gateway/t/svc/sha256");
    // Warm up so allocator pools and connection buffers exist before measuring.
    let reply = send(
        &client(),
        Request::post(&url).body(full(vec![1u8; 1 << 20])).unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let before = peak_rss_kib(child.id());
    let total: u64 = 1 << 30;
    let (body, digest) = pattern_stream(total, 1 << 20);
    let request = Request::post(&url)
        .header("content-length", total.to_string())
        .body(body)
        .unwrap();
    let response = client().request(request).await.unwrap();
    use http_body_util::BodyExt;
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(json["sha256"], digest);
    let after = peak_rss_kib(child.id());
    let growth_mib = (after.saturating_sub(before)) / 1024;
    assert!(
        growth_mib < 64,
        "peak RSS grew by {growth_mib} MiB (before {before} kB, after {after} kB)"
    );
    signal(&child, "TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(10)).success());
}

/// Settings that take no effect are warnings: `check` names them with key
/// path and line on stderr and still exits 0 (issue 14: Knox ignores them
/// silently).
#[test]
fn check_warns_about_ignored_settings_and_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.toml");
    std::fs::write(
        &file,
        "[[service]]\nname = \"a\"\nurls = [\"http://127.0.0.1:1\"]\n\n[service.ha]\nsticky_session = true\nno_fallback = true\n",
    )
    .unwrap();
    let out = Command::new(binary())
        .args(["check"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok:"));
    assert!(
        stderr.contains("warning: ")
            && stderr.contains("t.toml:6:18: service[0].ha.sticky_session: ignored"),
        "{stderr}"
    );
    assert!(
        stderr.contains("t.toml:7:15: service[0].ha.no_fallback: ignored"),
        "{stderr}"
    );
}

/// A member applying a topology with an ignored setting says so in its log.
#[test]
fn a_member_logs_the_ignored_settings_of_a_topology_it_applies() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("serve.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let text = topology(
        "svc",
        &["http://127.0.0.1:1".to_string()],
        "[service.ha]\nload_balancing = \"round-robin\"\nfailback = true\n",
    );
    let (mut child, _port) = spawn_serve_with_env(dir.path(), &text, "warn", log.into(), &[]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let logged = loop {
        let logged = std::fs::read_to_string(&log_path).unwrap_or_default();
        if logged.contains("service[0].ha.failback: ignored") || Instant::now() > deadline {
            break logged;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        logged.contains("topologies/t.toml:6:12: service[0].ha.failback: ignored"),
        "{logged}"
    );
    // Once, not again when the store watcher's first listing (within one
    // 500 ms poll) repeats the topology the member started with. An absence
    // can only be shown by letting that listing happen: three polls.
    std::thread::sleep(Duration::from_millis(1500));
    signal(&child, "TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(10)).success());
    let logged = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert_eq!(
        logged.matches("service[0].ha.failback: ignored").count(),
        1,
        "{logged}"
    );
}

#[test]
fn check_reports_key_path_and_line_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[[service]]\nname = \"a\"\nurls = [\"http://127.0.0.1:1\"]\n",
    )
    .unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[service]]\nname = \"a\"\nurls = [\"http://127.0.0.1:1\"]\n\n[service.ha]\nmax_failover_attemps = 3\n",
    )
    .unwrap();
    let out = Command::new(binary())
        .args(["check"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok:"));

    let out = Command::new(binary())
        .args(["check"])
        .arg(&good)
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.toml:6"), "{stderr}");
    assert!(stderr.contains("service[0].ha"), "{stderr}");
    assert!(stderr.contains("max_failover_attemps"), "{stderr}");

    let config = dir.path().join("portcullis.toml");
    std::fs::write(&config, "[gateway]\nlisten = \"not an address\"\n").unwrap();
    let out = Command::new(binary())
        .args(["check", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("gateway.listen") && stderr.contains(":2"),
        "{stderr}"
    );
}

#[test]
fn cert_create_writes_pem_files_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("tls");
    let run = || {
        Command::new(binary())
            .args([
                "cert",
                "create",
                "--host",
                "localhost",
                "--host",
                "127.0.0.1",
                "--out",
            ])
            .arg(&out_dir)
            .output()
            .unwrap()
    };
    let out = run();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for file in ["ca.crt", "ca.key", "gateway.crt", "gateway.key"] {
        let text = std::fs::read_to_string(out_dir.join(file)).unwrap();
        assert!(text.starts_with("-----BEGIN"), "{file}");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(out_dir.join("gateway.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o077,
        0,
        "key must not be readable by others: {mode:o}"
    );
    let again = run();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("ca.crt"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serves_through_the_gateway_and_stops_on_ctrl_c() {
    init();
    let mut child = Reaped(
        Command::new(binary())
            .arg("demo")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.stdout.take().unwrap();
    let (gateway, dashboard, token) = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        let (mut gateway, mut dashboard, mut signed_in) = (None, None, None);
        let token = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| {
                if let Some(url) = line.strip_prefix("gateway: ") {
                    gateway = Some(url.to_string());
                }
                if let Some(rest) = line.strip_prefix("dashboard of demo-1: ") {
                    dashboard = rest.split_whitespace().next().map(str::to_string);
                }
                if let Some(url) = line.strip_prefix("dashboard, signed in: ") {
                    signed_in = Some(url.to_string());
                }
                line.strip_prefix("admin token (paste it into the dashboard): ")
                    .map(str::to_string)
            })
            .expect("demo prints the admin token");
        // Keep draining so the demo never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let signed_in = signed_in.expect("demo prints a signed-in dashboard url");
        let dashboard = dashboard.expect("demo prints the dashboard url");
        assert!(
            signed_in.starts_with(&format!("{dashboard}#token="))
                && signed_in.len() > dashboard.len() + 7,
            "{signed_in} for {dashboard}"
        );
        (
            gateway.expect("demo prints the gateway url"),
            dashboard,
            token,
        )
    })
    .await
    .unwrap();
    let page = get(&dashboard).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("<html"), "{}", page.text());
    let cluster = admin_call(
        &format!("{dashboard}api/v1/cluster"),
        Some(&token),
        "GET",
        "",
    )
    .await;
    assert_eq!(cluster.status, StatusCode::OK, "{}", cluster.text());
    assert_eq!(cluster.json()["members"].as_array().unwrap().len(), 2);
    let mut names = std::collections::BTreeSet::new();
    let reply = get(&format!("{gateway}hello")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    names.insert(reply.json()["backend"].as_str().unwrap().to_string());
    assert!(
        names
            .iter()
            .all(|n| ["alpha", "beta", "gamma"].contains(&n.as_str())),
        "{names:?}"
    );
    signal(&child, "INT");
    let status =
        tokio::task::spawn_blocking(move || wait_exit(&mut child, Duration::from_secs(15)))
            .await
            .unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_gets_one_access_log_line_with_its_tries() {
    init();
    let dead_addr = {
        let dead = DemoBackend::spawn("dead", "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = dead.addr();
        dead.shutdown().await;
        addr
    };
    let live = DemoBackend::spawn("live", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("stderr.log");
    let log_file = std::fs::File::create(&log_path).unwrap();
    let (mut child, port) = spawn_serve_logging(
        dir.path(),
        &topology("svc", &[format!("http://{dead_addr}"), live.url()], ""),
        "info",
        Stdio::from(log_file),
    );
    let reply = get(&format!("http://127.0.0.1:{port}/gateway/t/svc/hello")).await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = get(&format!("http://127.0.0.1:{port}/gateway/t/nope/x")).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    signal(&child, "TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(10)).success());
    let log = std::fs::read_to_string(&log_path).unwrap();
    let access: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("portcullis::access"))
        .collect();
    assert_eq!(access.len(), 2, "{log}");
    let dead_id = portcullis_proxy::backend_id(
        "t",
        "svc",
        &url::Url::parse(&format!("http://{dead_addr}")).unwrap(),
    );
    let live_id = portcullis_proxy::backend_id("t", "svc", &url::Url::parse(&live.url()).unwrap());
    // Each runtime thread writes its lines when it goes idle, so two
    // requests served by two threads may log in either order: find each
    // line by its path.
    let line_for = |path: &str| {
        let needle = format!("path=\"{path}\"");
        *access
            .iter()
            .find(|l| l.contains(&needle))
            .unwrap_or_else(|| panic!("no line for {path} in {log}"))
    };
    let first = line_for("/gateway/t/svc/hello");
    for expected in [
        "member=proc".to_string(),
        "topology=\"t\"".to_string(),
        "service=\"svc\"".to_string(),
        format!("backend=\"{live_id}\""),
        "status=200".to_string(),
        "tries=2".to_string(),
        format!("{dead_id}:connect-failed,{live_id}:200"),
        "duration_ms=".to_string(),
    ] {
        assert!(first.contains(&expected), "missing {expected} in {first}");
    }
    let second = line_for("/gateway/t/nope/x");
    assert!(
        second.contains("status=404") && second.contains("tries=0"),
        "{second}"
    );
}
