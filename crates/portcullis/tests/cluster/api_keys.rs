//! API keys end to end (PRODUCT.md §11): created with the CLI or the admin
//! API, stored as keyed hashes only, followed by every member, refused
//! when revoked, expired or used on another topology, and never forwarded
//! to the backend. Two member processes on a real etcd; one in-process
//! member (admin API) and the CLI on a `dir:` store.

use std::path::Path;
use std::time::{Duration, Instant};

use http::{Request, StatusCode};
use portcullis_demo::DemoBackend;
use portcullis_testkit::*;

use crate::etcd::Etcd;

/// Service `svc` of any topology, behind the api_key method.
fn keyed_topology(backend: &str) -> String {
    topology(
        "svc",
        &[backend.to_string()],
        "[service.auth]\nmethods = [\"api_key\"]\n",
    )
}

/// `GET /gateway/<topology>/svc/who` on `base`, with the key if any.
async fn call(base: &str, topology: &str, key: Option<&str>) -> Reply {
    let mut request = Request::get(format!("{base}/gateway/{topology}/svc/who"));
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    send(&client(), request.body(empty()).unwrap()).await
}

fn run_cli(config: &Path, args: &[&str]) -> String {
    let out = cli(config, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `key create` prints the key alone on stdout.
fn create_key(config: &Path, args: &[&str]) -> String {
    let mut all = vec!["key", "create"];
    all.extend_from_slice(args);
    let key = run_cli(config, &all).trim().to_string();
    assert!(key.starts_with("pcl_") && key.len() == 47, "{key:?}");
    key
}

fn member_config(dir: &Path, store: &str, id: &str) -> (std::path::PathBuf, u16) {
    let port = free_port();
    let config = dir.join(format!("{id}.toml"));
    std::fs::write(
        &config,
        format!("[node]\nid = \"{id}\"\n[gateway]\nlisten = \"127.0.0.1:{port}\"\nshutdown_grace = \"2s\"\n[cluster]\nname = \"k{}\"\nstore = \"{store}\"\nheartbeat = \"200ms\"\n", std::process::id()),
    )
    .unwrap();
    (config, port)
}

/// Waits until `base` answers `status` for the key on `topology`; returns
/// how long that took.
async fn until_status(
    base: &str,
    topology: &str,
    key: Option<&str>,
    status: StatusCode,
    what: &str,
) -> Duration {
    wait_for(what, Duration::from_secs(10), || async {
        call(base, topology, key).await.status == status
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_reach_every_member_on_etcd_within_1s_and_the_store_holds_no_key() {
    init();
    let etcd = Etcd::start();
    let backend = DemoBackend::spawn("b", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (config_a, port_a) = member_config(dir.path(), &etcd.store(), "a");
    let (config_b, port_b) = member_config(dir.path(), &etcd.store(), "b");
    let a = ServeProcess::start(&config_a, port_a);
    let b = ServeProcess::start(&config_b, port_b);
    let file = dir.path().join("keyed.toml");
    std::fs::write(&file, keyed_topology(&backend.url())).unwrap();
    for name in ["t", "u"] {
        run_cli(
            &config_a,
            &["topology", "put", file.to_str().unwrap(), "--name", name],
        );
    }
    let (url_a, url_b) = (a.url(""), b.url(""));
    for base in [&url_a, &url_b] {
        until_status(
            base,
            "u",
            None,
            StatusCode::UNAUTHORIZED,
            "both topologies served",
        )
        .await;
        until_status(
            base,
            "t",
            None,
            StatusCode::UNAUTHORIZED,
            "both topologies served",
        )
        .await;
    }

    let key = create_key(&config_a, &["ci", "--topology", "t"]);
    let created = Instant::now();
    until_status(
        &url_b,
        "t",
        Some(&key),
        StatusCode::OK,
        "member b accepts the key",
    )
    .await;
    let took = created.elapsed();
    eprintln!("member b accepted a new key after {took:?}");
    assert!(
        took < Duration::from_secs(1),
        "b accepted the key after {took:?}"
    );
    let reply = call(&url_a, "t", Some(&key)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let headers = &reply.json()["headers"];
    assert_eq!(
        headers.get("x-api-key"),
        None,
        "the key never reaches the backend: {headers}"
    );
    assert_eq!(headers["x-forwarded-user"], "key:ci", "{headers}");

    // Scoped to topology t: refused on u, with the method's challenge.
    let other = call(&url_b, "u", Some(&key)).await;
    assert_eq!(other.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        other.headers.get("www-authenticate").unwrap(),
        "ApiKey realm=\"portcullis\", header=\"x-api-key\""
    );
    let wrong = call(&url_b, "t", Some("pcl_not-a-key")).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);

    // An expiring key stops working by itself.
    let brief = create_key(&config_b, &["brief", "--topology", "t", "--expires", "2s"]);
    until_status(
        &url_a,
        "t",
        Some(&brief),
        StatusCode::UNAUTHORIZED,
        "the expired key is refused",
    )
    .await;

    // The store holds hashes only.
    let dump = etcd.etcdctl(&["get", "--prefix", ""]);
    let dump = String::from_utf8_lossy(&dump.stdout).to_string();
    assert!(dump.contains("/keys/ci"), "the record is there: {dump}");
    for secret in [&key, &brief] {
        let body = secret.trim_start_matches("pcl_");
        assert!(!dump.contains(body), "etcd holds a key in clear");
    }
    let listed = run_cli(&config_b, &["key", "list"]);
    assert!(listed.contains("ci\tt\t*\tnever"), "{listed}");
    assert!(!listed.contains(key.trim_start_matches("pcl_")), "{listed}");

    run_cli(&config_b, &["key", "revoke", "ci"]);
    let revoked = Instant::now();
    for base in [&url_a, &url_b] {
        until_status(
            base,
            "t",
            Some(&key),
            StatusCode::UNAUTHORIZED,
            "the revoked key is refused",
        )
        .await;
    }
    let took = revoked.elapsed();
    eprintln!("both members refused a revoked key after {took:?}");
    assert!(
        took < Duration::from_secs(1),
        "refused on both after {took:?}"
    );
    let again = cli(&config_a, &["key", "revoke", "ci"]);
    assert!(
        !again.status.success(),
        "a revoked key cannot be revoked twice"
    );
}

/// Every file under `dir`, as text, for a search of the store.
fn all_text(dir: &Path) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            text.push_str(&all_text(&path));
        } else {
            text.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
        }
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_and_the_cli_manage_keys_on_a_dir_store() {
    init();
    let backend = DemoBackend::spawn("b", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let shared = tempfile::tempdir().unwrap();
    let store = shared.path().join("store");
    std::fs::create_dir_all(store.join("topologies")).unwrap();
    let master = shared.path().join("master.key");
    portcullis_secrets::MasterSecret::generate()
        .write_new_file(&master)
        .unwrap();
    let member = TestMember::start_admin(&store, "m", "manager", Some(&master)).await;
    std::fs::write(
        store.join("topologies/t.toml"),
        keyed_topology(&backend.url()),
    )
    .unwrap();
    let base = member.url("");
    until_status(
        &base,
        "t",
        None,
        StatusCode::UNAUTHORIZED,
        "the topology is served",
    )
    .await;

    let created = member
        .admin(
            "POST",
            "/api/v1/keys",
            r#"{"name": "orders", "topology": "t", "service": "svc"}"#,
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let key = created.json()["key"].as_str().unwrap().to_string();
    until_status(
        &base,
        "t",
        Some(&key),
        StatusCode::OK,
        "the key is accepted",
    )
    .await;
    let taken = member
        .admin(
            "POST",
            "/api/v1/keys",
            r#"{"name": "orders", "topology": "t"}"#,
        )
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT, "{}", taken.text());

    let listed = member.admin("GET", "/api/v1/keys", "").await;
    let keys = listed.json()["keys"].clone();
    assert_eq!(keys[0]["name"], "orders", "{keys}");
    assert_eq!(keys[0]["service"], "svc", "{keys}");
    assert!(
        keys[0]["last_used_ms"].as_u64().is_some(),
        "used once: {keys}"
    );
    assert!(!listed.text().contains("hash"), "{}", listed.text());

    // The CLI on the same store, through the binary.
    let config = member.dir.path().join("portcullis.toml");
    let cli_key = create_key(&config, &["batch", "--topology", "t", "--service", "svc"]);
    until_status(
        &base,
        "t",
        Some(&cli_key),
        StatusCode::OK,
        "the CLI's key is accepted",
    )
    .await;
    let listed = run_cli(&config, &["key", "list"]);
    assert!(listed.contains("batch\tt\tsvc\tnever"), "{listed}");

    let store_text = all_text(&store);
    assert!(
        store_text.contains("\"topology\":\"t\""),
        "records are in the store"
    );
    for secret in [&key, &cli_key] {
        assert!(
            !store_text.contains(secret.trim_start_matches("pcl_")),
            "the dir store holds a key in clear"
        );
    }

    let revoked = member.admin("DELETE", "/api/v1/keys/orders", "").await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text());
    until_status(
        &base,
        "t",
        Some(&key),
        StatusCode::UNAUTHORIZED,
        "the revoked key is refused",
    )
    .await;
    assert_eq!(
        call(&base, "t", Some(&cli_key)).await.status,
        StatusCode::OK
    );
    let gone = member.admin("DELETE", "/api/v1/keys/orders", "").await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "{}", gone.text());
    member.stop().await;
}
