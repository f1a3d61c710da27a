//! Admin API for operations (PRODUCT.md §10): draining a member, backend
//! states in `/metrics`, and the admin listener over TLS.

use std::time::Duration;

use http::StatusCode;
use portcullis_testkit::*;
use serde_json::Value;

use super::admin_api::{admin_until, sample};

fn member_view<'a>(cluster: &'a Value, id: &str) -> &'a Value {
    cluster["members"]
        .as_array()
        .expect("members array")
        .iter()
        .find(|m| m["id"] == id)
        .unwrap_or_else(|| panic!("no member {id} in {cluster}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_state_is_set_by_managers_only_and_shown_per_member() {
    let store = tempfile::tempdir().unwrap();
    let manager = TestMember::start_admin(store.path(), "gw-m", "manager", None).await;
    let worker = TestMember::start_admin(store.path(), "gw-w", "worker", None).await;
    wait_for("both records", Duration::from_secs(10), || async {
        manager.admin("GET", "/api/v1/cluster", "").await.json()["members"]
            .as_array()
            .is_some_and(|m| m.len() == 2)
    })
    .await;
    let path = "/api/v1/cluster/members/gw-w/state";
    let drained = manager.admin("PUT", path, r#"{"state": "draining"}"#).await;
    assert_eq!(drained.status, StatusCode::OK, "{}", drained.text());
    assert_eq!(drained.json()["state"], "draining");
    // The worker's own heartbeats rewrite its record; the state stays.
    let drained_at = portcullis_cluster::members::now_ms();
    wait_for(
        "two more heartbeats of the worker",
        Duration::from_secs(5),
        || async {
            let cluster = manager.admin("GET", "/api/v1/cluster", "").await.json();
            member_view(&cluster, "gw-w")["updated_at_ms"].as_u64() > Some(drained_at + 250)
        },
    )
    .await;
    let metrics = get(&manager.admin_url("/metrics")).await.text();
    for (member, draining) in [("gw-w", 1.0), ("gw-m", 0.0)] {
        assert_eq!(
            sample(
                &metrics,
                "portcullis_member_draining",
                &[("member", member)]
            ),
            Some(draining),
            "{member}:\n{metrics}"
        );
    }
    for reader in [&manager, &worker] {
        let cluster = reader.admin("GET", "/api/v1/cluster", "").await.json();
        assert_eq!(
            member_view(&cluster, "gw-w")["state"],
            "draining",
            "{cluster}"
        );
        assert_eq!(
            member_view(&cluster, "gw-m")["state"],
            "enabled",
            "{cluster}"
        );
    }

    let refused = worker
        .admin(
            "PUT",
            "/api/v1/cluster/members/gw-m/state",
            r#"{"state": "draining"}"#,
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text());
    let managers = refused.json()["managers"].clone();
    assert_eq!(managers, serde_json::json!([manager.admin_url("")]));
    let unknown = manager
        .admin(
            "PUT",
            "/api/v1/cluster/members/nobody/state",
            r#"{"state": "draining"}"#,
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.text());
    for body in [r#"{"state": "disabled"}"#, r#"{"state": 1}"#, "draining"] {
        let bad = manager.admin("PUT", path, body).await;
        assert_eq!(
            bad.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            bad.text()
        );
        assert!(
            bad.json()["error"].as_str().unwrap().contains("enabled"),
            "{}",
            bad.text()
        );
    }

    let enabled = manager.admin("PUT", path, r#"{"state": "enabled"}"#).await;
    assert_eq!(enabled.status, StatusCode::OK);
    let cluster = manager.admin("GET", "/api/v1/cluster", "").await.json();
    assert_eq!(
        member_view(&cluster, "gw-w")["state"],
        "enabled",
        "{cluster}"
    );
    manager.stop().await;
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_records_count_answered_requests_and_errors() {
    let a = BackendProcess::spawn("alpha");
    let store = tempfile::tempdir().unwrap();
    let member = TestMember::start_admin(store.path(), "gw-1", "manager", None).await;
    let text = topology("echo", &[a.url()], "");
    assert_eq!(
        member
            .admin("PUT", "/api/v1/topologies/shop", &text)
            .await
            .status,
        StatusCode::OK
    );
    eventually(
        &member.url("/gateway/shop/echo/"),
        Duration::from_secs(10),
        |r| r.status == StatusCode::OK,
    )
    .await;
    for _ in 0..5 {
        get(&member.url("/gateway/shop/echo/")).await;
    }
    wait_for(
        "the record counts the requests",
        Duration::from_secs(5),
        || async {
            let cluster = member.admin("GET", "/api/v1/cluster", "").await.json();
            member_view(&cluster, "gw-1")["requests"].as_u64() >= Some(6)
        },
    )
    .await;
    let cluster = member.admin("GET", "/api/v1/cluster", "").await.json();
    assert_eq!(member_view(&cluster, "gw-1")["errors"], 0, "{cluster}");
    member.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_state_metric_tells_draining_from_failing() {
    let a = BackendProcess::spawn("alpha");
    let store = tempfile::tempdir().unwrap();
    let member = TestMember::start_admin(store.path(), "gw-1", "manager", None).await;
    let text = topology("echo", &[a.url()], "");
    member.admin("PUT", "/api/v1/topologies/shop", &text).await;
    let path = "/api/v1/topologies/shop/services/echo/backends";
    let listed = admin_until(&member, path, "the backend is up", |j| {
        j["backends"][0]["state"] == "up"
    })
    .await;
    let id = listed["backends"][0]["id"].as_str().unwrap().to_string();
    let state_of = |metrics: &str, state: &str| {
        sample(
            metrics,
            "portcullis_backend_state",
            &[("backend", &id), ("state", state)],
        )
    };
    let metrics = get(&member.admin_url("/metrics")).await.text();
    for (state, value) in [
        ("up", 1.0),
        ("down", 0.0),
        ("ejected", 0.0),
        ("draining", 0.0),
        ("disabled", 0.0),
    ] {
        assert_eq!(
            state_of(&metrics, state),
            Some(value),
            "{state}:\n{metrics}"
        );
    }
    let drain = member
        .admin(
            "PUT",
            &format!("{path}/{id}/state"),
            r#"{"state": "draining"}"#,
        )
        .await;
    assert_eq!(drain.status, StatusCode::OK);
    let metrics = get(&member.admin_url("/metrics")).await.text();
    assert_eq!(state_of(&metrics, "draining"), Some(1.0), "{metrics}");
    assert_eq!(state_of(&metrics, "up"), Some(0.0), "{metrics}");
    assert_eq!(
        sample(&metrics, "portcullis_backend_up", &[("backend", &id)]),
        Some(1.0),
        "backend_up keeps meaning 'takes traffic': a draining backend serves its sticky clients"
    );
    member.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_is_served_over_tls_and_plain_http_is_refused() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let certs =
        portcullis::cert::create_certs(&["localhost".to_string()], &dir.path().join("certs"))
            .unwrap();
    let text = format!(
        "[node]\nid = \"gw-tls\"\n[gateway]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntls = {{ cert = {:?}, key = {:?} }}\n[cluster]\nstore = \"dir:{}\"\nheartbeat = \"200ms\"\n",
        certs.server_cert.display().to_string(),
        certs.server_key.display().to_string(),
        dir.path().join("store").display()
    );
    let path = dir.path().join("portcullis.toml");
    std::fs::write(&path, &text).unwrap();
    let member = portcullis_member::Member::start(
        portcullis_config::parse_node_config(&text, &path).unwrap(),
    )
    .await
    .unwrap();
    let port = member.admin_addr.unwrap().port();
    let token = member.admin_token().to_string();
    for h2 in [false, true] {
        let client = https_client(&certs.ca_cert, h2);
        let health = client
            .request(
                http::Request::get(format!("https://localhost:{port}/api/v1/health"))
                    .body(empty())
                    .unwrap(),
            )
            .await
            .expect("health over TLS");
        assert_eq!(health.status(), StatusCode::OK);
        let cluster = client
            .request(
                http::Request::get(format!("https://localhost:{port}/api/v1/cluster"))
                    .header("authorization", format!("Bearer {token}"))
                    .body(empty())
                    .unwrap(),
            )
            .await
            .expect("cluster over TLS");
        assert_eq!(cluster.status(), StatusCode::OK);
        let body = http_body_util::BodyExt::collect(cluster.into_body())
            .await
            .unwrap()
            .to_bytes();
        let json: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            json["members"][0]["admin_url"],
            format!("https://127.0.0.1:{port}"),
            "the record advertises the https admin URL: {json}"
        );
    }
    // Plain HTTP to the TLS port: the handshake fails and the connection
    // closes; the client gets an error, not a hang and not an answer.
    let plain = tokio::time::timeout(
        Duration::from_secs(5),
        send_plain(&format!("http://127.0.0.1:{port}/api/v1/health")),
    )
    .await
    .expect("plain HTTP to the TLS port ends promptly");
    assert!(plain.is_err(), "plain HTTP got an answer: {plain:?}");
    member.stop().await;
}

async fn send_plain(url: &str) -> Result<StatusCode, String> {
    client()
        .request(http::Request::get(url).body(empty()).unwrap())
        .await
        .map(|r| r.status())
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_admin_certificate_stops_the_start_naming_admin_tls() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[node]\nid = \"gw-bad\"\n[gateway]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntls = {{ cert = \"missing.crt\", key = \"missing.key\" }}\n[cluster]\nstore = \"dir:{}\"\n",
        dir.path().join("store").display()
    );
    let path = dir.path().join("portcullis.toml");
    let config = portcullis_config::parse_node_config(&text, &path).unwrap();
    let Err(err) = portcullis_member::Member::start(config).await else {
        panic!("a member started without its admin certificate");
    };
    let chain = format!("{:#}", anyhow::Error::from(err));
    assert!(
        chain.starts_with("admin.tls") && chain.contains("missing.crt"),
        "{chain}"
    );
}
