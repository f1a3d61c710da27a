//! Master secret and aliases end to end: sealed in the store, created on one
//! member and used by `backend_auth` on another, refused clearly under a wrong
//! master secret.

use std::process::{Command, Output};
use std::time::Duration;

use http::StatusCode;
use portcullis_demo::DemoBackend;
use portcullis_testkit::*;

fn write_config(
    dir: &std::path::Path,
    id: &str,
    store: &std::path::Path,
    master: &std::path::Path,
) -> (std::path::PathBuf, u16) {
    let port = free_port();
    let path = dir.join(format!("{id}.toml"));
    std::fs::write(
        &path,
        format!(
            "[node]\nid = \"{id}\"\n[gateway]\nlisten = \"127.0.0.1:{port}\"\nshutdown_grace = \"1s\"\n[cluster]\nstore = \"dir:{}\"\n[secrets]\nmaster = \"file:{}\"\n",
            store.display(),
            master.display()
        ),
    )
    .unwrap();
    (path, port)
}

fn run(args: &[&str], config: Option<&std::path::Path>) -> Output {
    let mut command = Command::new(binary());
    command.args(&args[..1]);
    if let Some(config) = config {
        command.arg("-c").arg(config);
    }
    command
        .args(&args[1..])
        .env("RUST_LOG", "error")
        .output()
        .unwrap()
}

/// `master create` into `dir/master.key`; its path.
fn create_master(dir: &std::path::Path) -> std::path::PathBuf {
    let master = dir.join("master.key");
    let out = run(
        &["master", "create", "--file", master.to_str().unwrap()],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    master
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_created_through_one_member_authenticates_requests_on_another() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let master = create_master(dir.path());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&master).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        !run(
            &["master", "create", "--file", master.to_str().unwrap()],
            None
        )
        .status
        .success(),
        "never overwrites"
    );

    let backend = DemoBackend::spawn("secured", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    std::fs::create_dir_all(store.join("topologies")).unwrap();
    write_topology(
        dir.path(),
        "t",
        &topology(
            "svc",
            &[backend.url()],
            "[service.backend_auth]\nuser = \"svc\"\npassword_alias = \"svc.password\"",
        ),
    );
    let (config_a, _) = write_config(dir.path(), "a", &store, &master);
    let (config_b, port_b) = write_config(dir.path(), "b", &store, &master);
    let _b = ServeProcess::start(&config_b, port_b);
    let url = format!("http://127.0.0.1:{port_b}/gateway/t/svc/x");

    let reply = get(&url).await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "fail closed without the alias"
    );
    assert_eq!(reply.json()["error"], "backend credentials unavailable");

    let out = run(
        &["alias", "create", "svc.password", "--value", "s3cret-value"],
        Some(&config_a),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reply = eventually(&url, Duration::from_secs(3), |r| r.status == StatusCode::OK).await;
    assert_eq!(reply.status, StatusCode::OK);
    // "svc:s3cret-value" in base64.
    assert_eq!(
        reply.json()["headers"]["authorization"],
        "Basic c3ZjOnMzY3JldC12YWx1ZQ=="
    );

    let listed = String::from_utf8(run(&["alias", "list"], Some(&config_a)).stdout).unwrap();
    let names: Vec<&str> = listed.lines().collect();
    assert_eq!(
        names,
        vec!["admin.token", "cluster.cookie-key", "svc.password"],
        "created on first start, values never listed"
    );
    let shown = run(&["alias", "show", "svc.password"], Some(&config_b));
    assert_eq!(
        String::from_utf8_lossy(&shown.stdout).trim(),
        "s3cret-value"
    );

    // The store holds ciphertext only.
    for entry in walk(&store) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains("s3cret-value"),
            "{} holds the plaintext",
            entry.display()
        );
    }

    // Another master secret cannot open the aliases, and says which one.
    let other = dir.path().join("other.key");
    assert!(run(
        &["master", "create", "--file", other.to_str().unwrap()],
        None
    )
    .status
    .success());
    let (config_c, port_c) = write_config(dir.path(), "c", &store, &other);
    let out = run(&["alias", "show", "svc.password"], Some(&config_c));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("svc.password") && stderr.contains("different master secret"),
        "{stderr}"
    );
    let out = Command::new(binary())
        .args(["serve", "-c"])
        .arg(&config_c)
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a member with the wrong master secret does not start"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cluster.cookie-key"), "{stderr}");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port_c)).is_err());

    let out = run(&["alias", "delete", "svc.password"], Some(&config_a));
    assert!(out.status.success());
    let reply = eventually(&url, Duration::from_secs(3), |r| {
        r.status == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// `alias create NAME` without `--value` reads the value from stdin, all of
/// it, less one final newline (a typed or piped line); `alias show` prints
/// it back followed by a newline.
#[test]
fn alias_create_reads_the_value_from_stdin() {
    use std::io::Write;
    use std::process::Stdio;
    init();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    std::fs::create_dir_all(store.join("topologies")).unwrap();
    let master = create_master(dir.path());
    let (config, _) = write_config(dir.path(), "m1", &store, &master);
    for (name, typed, stored) in [
        ("one.line", "piped secret\n", "piped secret"),
        ("two.lines", "first\nsecond\n", "first\nsecond"),
        ("no.newline", "as is", "as is"),
    ] {
        let mut child = cli_command(&config, &["alias", "create", name])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(typed.as_bytes()).unwrap();
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let shown = run(&["alias", "show", name], Some(&config));
        assert!(
            shown.status.success(),
            "{}",
            String::from_utf8_lossy(&shown.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&shown.stdout),
            format!("{stored}\n")
        );
    }
}

/// `admin token --rotate` writes a new token; every member accepts it, and
/// refuses the old one, within one heartbeat (1 s here), without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_admin_token_reaches_every_member_within_one_heartbeat() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let master = create_master(dir.path());
    std::fs::create_dir_all(store.join("topologies")).unwrap();
    let mut members = Vec::new();
    for id in ["a", "b"] {
        let (config, port) = write_config(dir.path(), id, &store, &master);
        let admin_port = free_port();
        let mut text = std::fs::read_to_string(&config).unwrap();
        text = text.replace(
            "[cluster]\n",
            &format!(
                "[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n[cluster]\nheartbeat = \"1s\"\n"
            ),
        );
        std::fs::write(&config, text).unwrap();
        let process = ServeProcess::start(&config, port);
        members.push((
            config,
            process,
            format!("http://127.0.0.1:{admin_port}/api/v1/cluster"),
        ));
    }
    let token = |out: Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let old = token(run(&["admin", "token"], Some(&members[0].0)));
    for (_, _, url) in &members {
        let reply = admin_call(url, Some(&old), "GET", "").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    }
    let new = token(run(&["admin", "token", "--rotate"], Some(&members[0].0)));
    assert!(new.len() >= 32 && new != old, "a new token: {new}");
    let rotated_at = std::time::Instant::now();
    for (_, _, url) in &members {
        let reply = eventually_with(url, Some(&new), Duration::from_secs(5)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    }
    let took = rotated_at.elapsed();
    assert!(
        took <= Duration::from_secs(1),
        "accepted everywhere after {took:?}"
    );
    for (_, _, url) in &members {
        let reply = admin_call(url, Some(&old), "GET", "").await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "the old token is refused"
        );
    }
    // What `admin token` prints now is the new one.
    assert_eq!(token(run(&["admin", "token"], Some(&members[1].0))), new);
}

/// Polls `url` with `token` until it is accepted or `timeout` passes.
async fn eventually_with(url: &str, token: Option<&str>, timeout: Duration) -> Reply {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let reply = admin_call(url, token, "GET", "").await;
        if reply.status == StatusCode::OK || std::time::Instant::now() > deadline {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
