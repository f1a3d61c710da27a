//! The admin API end to end: real members on a shared dir store, real
//! backend processes, real HTTP. Every endpoint, its auth, its errors and its
//! effect on every member.

use std::path::Path;
use std::time::Duration;

use http::StatusCode;
use portcullis_testkit::*;
use serde_json::Value;

const FAST_HEALTH: &str = "[service.health]\npath = \"/health\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\nrise = 1\nfall = 1";

fn master_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("master.key");
    portcullis_secrets::MasterSecret::generate()
        .write_new_file(&path)
        .expect("master secret written");
    path
}

/// Polls an admin GET until `check` accepts its JSON, or panics with the last one.
pub(crate) async fn admin_until(
    member: &TestMember,
    path: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let reply = member.admin("GET", path, "").await;
        let json = reply.json();
        if reply.status == StatusCode::OK && check(&json) {
            return json;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: still {} {json}",
            reply.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn backend_state<'a>(backends: &'a Value, id: &str) -> &'a str {
    backends["backends"]
        .as_array()
        .expect("backends array")
        .iter()
        .find(|b| b["id"] == id)
        .and_then(|b| b["state"].as_str())
        .unwrap_or_else(|| panic!("no backend {id} in {backends}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_open_and_everything_else_needs_the_token() {
    let store = tempfile::tempdir().unwrap();
    let member = TestMember::start_admin(store.path(), "gw-1", "manager", None).await;

    let health = get(&member.admin_url("/api/v1/health")).await;
    assert_eq!(health.status, StatusCode::OK);
    let json = health.json();
    assert_eq!(json["status"], "ok");
    assert_eq!(json["store"], "connected");
    assert_eq!(json["member"], "gw-1");
    assert!(json["generation"].is_u64(), "{json}");

    for path in [
        "/api/v1/cluster",
        "/api/v1/topologies",
        "/api/v1/aliases",
        "/api/v1/stats",
        "/api/v1/log-level",
    ] {
        let none = admin_call(&member.admin_url(path), None, "GET", "").await;
        assert_eq!(none.status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(none.json()["error"].as_str().unwrap().contains("token"));
        assert_eq!(none.headers["www-authenticate"], "Bearer");
        let wrong = admin_call(&member.admin_url(path), Some("not-the-token"), "GET", "").await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    // A token one character short or long is refused too.
    let token = member.admin_token();
    let short = admin_call(
        &member.admin_url("/api/v1/cluster"),
        Some(&token[..token.len() - 1]),
        "GET",
        "",
    )
    .await;
    assert_eq!(short.status, StatusCode::UNAUTHORIZED);

    let cluster = member.admin("GET", "/api/v1/cluster", "").await;
    assert_eq!(cluster.status, StatusCode::OK);
    let json = cluster.json();
    assert_eq!(json["self"], "gw-1");
    let members = json["members"].as_array().unwrap();
    assert_eq!(members.len(), 1, "{json}");
    assert_eq!(members[0]["id"], "gw-1");
    assert_eq!(members[0]["role"], "manager");
    assert_eq!(members[0]["alive"], true);
    assert_eq!(members[0]["admin_url"], member.admin_url(""));

    let unknown = member.admin("GET", "/api/v1/nothing-here", "").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(unknown.json()["error"].is_string());
    member.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topologies_are_stored_validated_served_and_deleted() {
    let backend = BackendProcess::spawn("solo");
    let store = tempfile::tempdir().unwrap();
    let member = TestMember::start_admin(store.path(), "gw-1", "manager", None).await;
    let text = topology("echo", &[backend.url()], "");

    let put = member.admin("PUT", "/api/v1/topologies/shop", &text).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text());
    assert_eq!(put.json()["stored"], true);
    let served = eventually(
        &member.url("/gateway/shop/echo/x"),
        Duration::from_secs(5),
        |r| r.status == StatusCode::OK,
    )
    .await;
    assert_eq!(served.status, StatusCode::OK);

    let listed = admin_until(&member, "/api/v1/topologies", "listed live", |j| {
        j["topologies"][0]["live"] == true
    })
    .await;
    assert_eq!(listed["topologies"][0]["name"], "shop");
    assert_eq!(listed["topologies"][0]["services"][0], "echo");
    let one = member
        .admin("GET", "/api/v1/topologies/shop", "")
        .await
        .json();
    assert_eq!(one["toml"], text);

    // Invalid: a string where a number belongs, on line 5. Not stored.
    let bad = format!("{text}[service.ha]\nmax_failover_attempts = \"many\"\n");
    let refused = member.admin("PUT", "/api/v1/topologies/shop", &bad).await;
    assert_eq!(
        refused.status,
        StatusCode::BAD_REQUEST,
        "{}",
        refused.text()
    );
    let json = refused.json();
    assert_eq!(
        json["path"], "service[0].ha.max_failover_attempts",
        "{json}"
    );
    assert_eq!(json["line"], 6, "{json}");
    assert!(json["error"]
        .as_str()
        .unwrap()
        .contains("max_failover_attempts"));
    let still = member
        .admin("GET", "/api/v1/topologies/shop", "")
        .await
        .json();
    assert_eq!(
        still["toml"], text,
        "the invalid topology must not be stored"
    );

    let not_toml = member
        .admin("PUT", "/api/v1/topologies/shop", "[[service]\nname=")
        .await;
    assert_eq!(not_toml.status, StatusCode::BAD_REQUEST);
    assert!(not_toml.json()["line"].is_u64(), "{}", not_toml.text());
    let bad_name = member.admin("PUT", "/api/v1/topologies/..bad", &text).await;
    assert_eq!(
        bad_name.status,
        StatusCode::BAD_REQUEST,
        "{}",
        bad_name.text()
    );

    let missing = member.admin("GET", "/api/v1/topologies/nope", "").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.text());
    let missing = member.admin("DELETE", "/api/v1/topologies/nope", "").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.text());

    let deleted = member.admin("DELETE", "/api/v1/topologies/shop", "").await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text());
    let gone = eventually(
        &member.url("/gateway/shop/echo/x"),
        Duration::from_secs(5),
        |r| r.status == StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    member.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_state_changes_reach_every_member_and_bad_requests_are_refused() {
    let a = BackendProcess::spawn("alpha");
    let b = BackendProcess::spawn("beta");
    let store = tempfile::tempdir().unwrap();
    let one = TestMember::start_admin(store.path(), "gw-1", "manager", None).await;
    let two = TestMember::start_admin(store.path(), "gw-2", "manager", None).await;
    let text = topology(
        "echo",
        &[a.url(), b.url()],
        &format!("[service.ha]\nload_balancing = \"round-robin\"\n{FAST_HEALTH}"),
    );
    assert_eq!(
        one.admin("PUT", "/api/v1/topologies/shop", &text)
            .await
            .status,
        StatusCode::OK
    );
    let path = "/api/v1/topologies/shop/services/echo/backends";
    let listed = admin_until(&two, path, "both backends up on gw-2", |j| {
        j["backends"].as_array().is_some_and(|b| {
            b.len() == 2
                && b.iter()
                    .all(|b| b["state"] == "up" && b["last_check"]["ok"] == true)
        })
    })
    .await;
    // Each member applies the stored topology on its own poll of the store.
    admin_until(&one, path, "both backends up on gw-1", |j| {
        j["backends"]
            .as_array()
            .is_some_and(|b| b.len() == 2 && b.iter().all(|b| b["state"] == "up"))
    })
    .await;
    let first = listed["backends"][0].clone();
    assert_eq!(first["url"], format!("{}/", a.url()));
    assert_eq!(first["admin_state"], "enabled");
    assert_eq!(first["backup"], false);
    let id = first["id"].as_str().unwrap().to_string();

    for _ in 0..6 {
        assert_eq!(
            get(&one.url("/gateway/shop/echo/")).await.status,
            StatusCode::OK
        );
    }
    let counted = one.admin("GET", path, "").await.json();
    let requests: u64 = counted["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(requests, 6, "{counted}");

    let state_path = format!("{path}/{id}/state");
    let drained = one
        .admin("PUT", &state_path, r#"{"state": "draining"}"#)
        .await;
    assert_eq!(drained.status, StatusCode::OK, "{}", drained.text());
    assert_eq!(drained.json()["state"], "draining");
    assert_eq!(
        backend_state(&one.admin("GET", path, "").await.json(), &id),
        "draining"
    );
    admin_until(&two, path, "draining on gw-2", |j| {
        backend_state(j, &id) == "draining"
    })
    .await;
    // Drained: new clients on either member go to the other backend only.
    for member in [&one, &two] {
        for _ in 0..4 {
            let reply = get(&member.url("/gateway/shop/echo/")).await;
            assert!(reply.text().contains("beta"), "{}", reply.text());
        }
    }
    let disabled = two
        .admin("PUT", &state_path, r#"{"state": "disabled"}"#)
        .await;
    assert_eq!(disabled.status, StatusCode::OK);
    admin_until(&one, path, "disabled on gw-1", |j| {
        backend_state(j, &id) == "disabled"
    })
    .await;
    let enabled = one
        .admin("PUT", &state_path, r#"{"state": "enabled"}"#)
        .await;
    assert_eq!(enabled.status, StatusCode::OK);
    admin_until(&two, path, "enabled on gw-2", |j| {
        backend_state(j, &id) == "up"
    })
    .await;

    let bad_json = one.admin("PUT", &state_path, "{state: draining").await;
    assert_eq!(bad_json.status, StatusCode::BAD_REQUEST);
    assert!(bad_json.json()["error"]
        .as_str()
        .unwrap()
        .contains("expected"));
    let bad_state = one
        .admin("PUT", &state_path, r#"{"state": "asleep"}"#)
        .await;
    assert_eq!(
        bad_state.status,
        StatusCode::BAD_REQUEST,
        "{}",
        bad_state.text()
    );
    let unknown_backend = one
        .admin(
            "PUT",
            &format!("{path}/000000000000/state"),
            r#"{"state": "draining"}"#,
        )
        .await;
    assert_eq!(unknown_backend.status, StatusCode::NOT_FOUND);
    for missing in [
        "/api/v1/topologies/shop/services/nope/backends",
        "/api/v1/topologies/nope/services/echo/backends",
    ] {
        let reply = one.admin("GET", missing, "").await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{missing}");
        assert!(reply.json()["error"].as_str().unwrap().contains("nope"));
    }
    one.stop().await;
    two.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_refuses_writes_with_403_naming_the_managers() {
    let a = BackendProcess::spawn("alpha");
    let store = tempfile::tempdir().unwrap();
    let manager = TestMember::start_admin(store.path(), "gw-m", "manager", None).await;
    let worker = TestMember::start_admin(store.path(), "gw-w", "worker", None).await;
    let text = topology("echo", &[a.url()], "");
    assert_eq!(
        manager
            .admin("PUT", "/api/v1/topologies/shop", &text)
            .await
            .status,
        StatusCode::OK
    );
    let path = "/api/v1/topologies/shop/services/echo/backends";
    let listed = admin_until(&worker, path, "worker serves shop", |j| {
        j["backends"].as_array().is_some_and(|b| b.len() == 1)
    })
    .await;
    let id = listed["backends"][0]["id"].as_str().unwrap().to_string();

    let refusals = [
        worker.admin("PUT", "/api/v1/topologies/other", &text).await,
        worker.admin("DELETE", "/api/v1/topologies/shop", "").await,
        worker
            .admin(
                "PUT",
                &format!("{path}/{id}/state"),
                r#"{"state": "disabled"}"#,
            )
            .await,
    ];
    for reply in refusals {
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text());
        let json = reply.json();
        assert!(json["error"].as_str().unwrap().contains("worker"), "{json}");
        let managers = json["managers"].as_array().expect("managers listed");
        assert_eq!(managers.len(), 1, "{json}");
        assert!(managers[0]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:"));
    }
    // Nothing changed, and reads still work on the worker.
    assert_eq!(
        backend_state(&worker.admin("GET", path, "").await.json(), &id),
        "up"
    );
    let missing = manager.admin("GET", "/api/v1/topologies/other", "").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    manager.stop().await;
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliases_are_written_sealed_listed_by_name_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let master = master_file(dir.path());
    let store = dir.path().join("store");
    let member = TestMember::start_admin(&store, "gw-1", "manager", Some(&master)).await;
    let plain = TestMember::start_admin(&store, "gw-2", "manager", None).await;

    let put = member
        .admin(
            "PUT",
            "/api/v1/aliases/hdfs.password",
            r#"{"value": "s3cret-value"}"#,
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text());
    let listed = member.admin("GET", "/api/v1/aliases", "").await;
    let names: Vec<&str> = listed.json()["aliases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_string().leak() as &str)
        .collect();
    assert!(names.contains(&"hdfs.password"), "{names:?}");
    assert!(names.contains(&"admin.token"), "{names:?}");
    assert!(!listed.text().contains("s3cret-value"));
    // Sealed in the store: the value is nowhere in plain text.
    for entry in walk(&store) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains("s3cret-value"),
            "{} holds the value in clear",
            entry.display()
        );
    }
    // The member that sealed it opens it for backend_auth.
    wait_until("the alias to open", Duration::from_secs(5), || {
        member.gateway().credential("hdfs.password").as_deref() == Some("s3cret-value")
    })
    .await;

    for (body, status) in [
        ("not json", StatusCode::BAD_REQUEST),
        (r#"{"val": "x"}"#, StatusCode::BAD_REQUEST),
    ] {
        let reply = member.admin("PUT", "/api/v1/aliases/other", body).await;
        assert_eq!(reply.status, status, "{body}: {}", reply.text());
    }
    let bad_name = member
        .admin("PUT", "/api/v1/aliases/has%20space", r#"{"value": "x"}"#)
        .await;
    assert_eq!(
        bad_name.status,
        StatusCode::BAD_REQUEST,
        "{}",
        bad_name.text()
    );
    for reserved in ["admin.token", "cluster.cookie-key"] {
        let put = member
            .admin(
                "PUT",
                &format!("/api/v1/aliases/{reserved}"),
                r#"{"value": "x"}"#,
            )
            .await;
        assert_eq!(put.status, StatusCode::CONFLICT, "{reserved}");
        let delete = member
            .admin("DELETE", &format!("/api/v1/aliases/{reserved}"), "")
            .await;
        assert_eq!(delete.status, StatusCode::CONFLICT, "{reserved}");
    }
    let unsealable = plain
        .admin("PUT", "/api/v1/aliases/other", r#"{"value": "x"}"#)
        .await;
    assert_eq!(
        unsealable.status,
        StatusCode::CONFLICT,
        "{}",
        unsealable.text()
    );
    assert!(unsealable.json()["error"]
        .as_str()
        .unwrap()
        .contains("[secrets]"));

    let deleted = member
        .admin("DELETE", "/api/v1/aliases/hdfs.password", "")
        .await;
    assert_eq!(deleted.status, StatusCode::OK);
    let again = member
        .admin("DELETE", "/api/v1/aliases/hdfs.password", "")
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    member.stop().await;
    plain.stop().await;
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Value of the first sample of `series` whose labels contain every `labels` pair.
pub(crate) fn sample(metrics: &str, series: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.split(['{', ' '])
                .next()
                .is_some_and(|name| name == series)
        })
        .find(|line| {
            labels
                .iter()
                .all(|(k, v)| line.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_and_follow_a_killed_backend() {
    let a = BackendProcess::spawn("alpha");
    let mut b = BackendProcess::spawn("beta");
    let store = tempfile::tempdir().unwrap();
    let member = TestMember::start_admin(store.path(), "gw-1", "manager", None).await;
    let text = topology(
        "echo",
        &[a.url(), b.url()],
        &format!("[service.ha]\nload_balancing = \"round-robin\"\n{FAST_HEALTH}"),
    );
    assert_eq!(
        member
            .admin("PUT", "/api/v1/topologies/shop", &text)
            .await
            .status,
        StatusCode::OK
    );
    let path = "/api/v1/topologies/shop/services/echo/backends";
    let listed = admin_until(&member, path, "both up", |j| {
        j["backends"]
            .as_array()
            .is_some_and(|b| b.len() == 2 && b.iter().all(|b| b["state"] == "up"))
    })
    .await;
    let id_a = listed["backends"][0]["id"].as_str().unwrap().to_string();
    let id_b = listed["backends"][1]["id"].as_str().unwrap().to_string();

    let scrape = || async { get(&member.admin_url("/metrics")).await };
    let before = scrape().await;
    assert_eq!(before.status, StatusCode::OK);
    assert!(before.headers["content-type"]
        .to_str()
        .unwrap()
        .contains("openmetrics-text"));
    let before = before.text();
    for series in [
        "portcullis_backend_up",
        "portcullis_cluster_members",
        "portcullis_store_connected",
        "portcullis_config_generation",
        "portcullis_failovers_total",
        "portcullis_retry_budget_exhausted_total",
        "portcullis_replay_overflow_total",
    ] {
        assert!(before.contains(series), "{series} missing:\n{before}");
    }
    assert_eq!(
        sample(&before, "portcullis_store_connected", &[]),
        Some(1.0)
    );
    assert!(sample(&before, "portcullis_config_generation", &[]).unwrap() >= 1.0);
    let count = |text: &str, id: &str| {
        sample(
            text,
            "portcullis_requests_total",
            &[("backend", id), ("code", "200")],
        )
        .unwrap_or(0.0)
    };
    let (a0, b0) = (count(&before, &id_a), count(&before, &id_b));

    for _ in 0..10 {
        assert_eq!(
            get(&member.url("/gateway/shop/echo/")).await.status,
            StatusCode::OK
        );
    }
    let after = scrape().await.text();
    assert_eq!(
        count(&after, &id_a) - a0 + count(&after, &id_b) - b0,
        10.0,
        "{after}"
    );
    assert_eq!(
        count(&after, &id_a) - a0,
        5.0,
        "round robin splits evenly:\n{after}"
    );
    let histogram_count = sample(
        &after,
        "portcullis_request_duration_seconds_count",
        &[("topology", "shop"), ("service", "echo")],
    )
    .unwrap();
    assert!(histogram_count >= 10.0, "{after}");
    let inf_bucket = sample(
        &after,
        "portcullis_request_duration_seconds_bucket",
        &[("service", "echo"), ("le", "+Inf")],
    )
    .unwrap();
    assert_eq!(inf_bucket, histogram_count);
    assert_eq!(
        sample(&after, "portcullis_backend_up", &[("backend", &id_b)]),
        Some(1.0)
    );
    assert_eq!(sample(&after, "portcullis_cluster_members", &[]), Some(1.0));

    b.kill();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape().await.text();
        if sample(&text, "portcullis_backend_up", &[("backend", &id_b)]) == Some(0.0) {
            assert_eq!(
                sample(&text, "portcullis_backend_up", &[("backend", &id_a)]),
                Some(1.0)
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "backend_up stayed 1:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let health = get(&member.admin_url("/api/v1/health")).await.json();
    assert_eq!(health["status"], "ok", "one backend left: {health}");
    member.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_and_dashboard_assets_are_served() {
    let a = BackendProcess::spawn("alpha");
    let store = tempfile::tempdir().unwrap();
    let member = TestMember::start_admin(store.path(), "gw-1", "manager", None).await;
    let text = topology("echo", &[a.url()], "");
    member.admin("PUT", "/api/v1/topologies/shop", &text).await;
    eventually(
        &member.url("/gateway/shop/echo/"),
        Duration::from_secs(5),
        |r| r.status == StatusCode::OK,
    )
    .await;
    get(&member.url("/gateway/shop/echo/status/503")).await;
    let stats = member.admin("GET", "/api/v1/stats", "").await.json();
    let service = &stats["topologies"][0]["services"][0];
    assert_eq!(service["name"], "echo");
    assert!(service["requests"].as_u64().unwrap() >= 2, "{stats}");
    assert!(service["errors"].as_u64().unwrap() >= 1, "{stats}");
    let counts = service["latency"]["counts"].as_array().unwrap();
    let bounds = service["latency"]["bounds"].as_array().unwrap();
    assert_eq!(counts.len(), bounds.len() + 1);

    let page = get(&member.admin_url("/")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(page.text().contains("/app.js") && page.text().contains("/dom.js"));
    let policy = page.headers["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("default-src 'self'"), "{policy}");
    assert_eq!(page.headers["x-content-type-options"], "nosniff");
    for asset in ["/dom.js", "/app.js", "/style.css"] {
        let reply = get(&member.admin_url(asset)).await;
        assert_eq!(reply.status, StatusCode::OK, "{asset}");
        assert!(!reply.body.is_empty());
    }
    member.stop().await;
}

/// The log filter is per process, so this runs a real `portcullis serve`.
#[test]
fn the_log_level_changes_at_run_time() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let admin_port = free_port();
    let config = dir.path().join("portcullis.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\nid = \"gw-1\"\n[gateway]\nlisten = \"127.0.0.1:{port}\"\nshutdown_grace = \"1s\"\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n[cluster]\nstore = \"dir:{}\"\n",
            dir.path().join("store").display()
        ),
    )
    .unwrap();
    let server = ServeProcess::start(&config, port);
    wait_port(admin_port, "admin listener");
    let token_out = cli(&config, &["admin", "token"]);
    assert!(token_out.status.success());
    let token = String::from_utf8(token_out.stdout)
        .unwrap()
        .trim()
        .to_string();
    let url = format!("http://127.0.0.1:{admin_port}/api/v1/log-level");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let put = admin_call(
            &url,
            Some(&token),
            "PUT",
            r#"{"level": "debug,portcullis::access=off"}"#,
        )
        .await;
        assert_eq!(put.status, StatusCode::OK, "{}", put.text());
        let now = admin_call(&url, Some(&token), "GET", "").await.json();
        assert_eq!(now["level"], "debug,portcullis::access=off");
        let bad = admin_call(&url, Some(&token), "PUT", r#"{"level": "debug,=[="}"#).await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text());
        assert!(bad.json()["error"]
            .as_str()
            .unwrap()
            .contains("does not parse"));
        let kept = admin_call(&url, Some(&token), "GET", "").await.json();
        assert_eq!(kept["level"], "debug,portcullis::access=off");
        let no_token = admin_call(&url, None, "PUT", r#"{"level": "trace"}"#).await;
        assert_eq!(no_token.status, StatusCode::UNAUTHORIZED);
    });
    drop(server);
}

/// The state path of the first backend of shop/echo.
async fn path_for(member: &TestMember) -> String {
    let listed = member
        .admin("GET", "/api/v1/topologies/shop/services/echo/backends", "")
        .await
        .json();
    let id = listed["backends"][0]["id"].as_str().unwrap();
    format!("/api/v1/topologies/shop/services/echo/backends/{id}/state")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_a_lost_store_and_a_service_without_backends() {
    let a = BackendProcess::spawn("alpha");
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let member = TestMember::start_admin(&store, "gw-1", "manager", None).await;
    member
        .admin(
            "PUT",
            "/api/v1/topologies/shop",
            &topology("echo", &[a.url()], ""),
        )
        .await;
    let served = eventually(
        &member.url("/gateway/shop/echo/"),
        Duration::from_secs(5),
        |r| r.status == StatusCode::OK,
    )
    .await;
    assert_eq!(served.status, StatusCode::OK);
    let health_url = member.admin_url("/api/v1/health");

    std::fs::rename(&store, dir.path().join("moved")).unwrap();
    let lost = eventually(&health_url, Duration::from_secs(5), |r| {
        r.json()["store"] == "disconnected"
    })
    .await
    .json();
    assert_eq!(lost["status"], "degraded", "{lost}");
    let metrics = get(&member.admin_url("/metrics")).await.text();
    assert_eq!(
        sample(&metrics, "portcullis_store_connected", &[]),
        Some(0.0)
    );
    // The last good config keeps serving.
    assert_eq!(
        get(&member.url("/gateway/shop/echo/")).await.status,
        StatusCode::OK
    );
    std::fs::rename(dir.path().join("moved"), &store).unwrap();
    let back = eventually(&health_url, Duration::from_secs(5), |r| {
        r.json()["store"] == "connected"
    })
    .await
    .json();
    assert_eq!(back["status"], "ok", "{back}");

    // The only backend draining: no backend for new clients, so degraded.
    member
        .admin("PUT", &path_for(&member).await, r#"{"state": "draining"}"#)
        .await;
    let draining = get(&health_url).await.json();
    assert_eq!(draining["status"], "degraded", "{draining}");
    // Every backend of the service disabled: degraded, naming the count.
    let listed = member
        .admin("GET", "/api/v1/topologies/shop/services/echo/backends", "")
        .await
        .json();
    let id = listed["backends"][0]["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/topologies/shop/services/echo/backends/{id}/state");
    member.admin("PUT", &path, r#"{"state": "disabled"}"#).await;
    let stranded = get(&health_url).await.json();
    assert_eq!(stranded["status"], "degraded", "{stranded}");
    assert_eq!(stranded["services_without_backends"], 1);
    member.stop().await;
}
