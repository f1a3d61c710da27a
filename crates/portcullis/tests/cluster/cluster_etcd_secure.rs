//! Members on an etcd that needs TLS with client certificates and a user
//! and password (`etcd+tls://`, `[cluster] tls`, `user`, `password_file`),
//! and a member that starts while etcd is down, serving from its
//! `[cluster] cache`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use http::StatusCode;
use portcullis_demo::DemoBackend;
use portcullis_testkit::*;

use crate::etcd::{Etcd, MEMBER_PASSWORD, MEMBER_USER};

/// How a member config reaches its store: everything under `[cluster]`
/// after `store`.
struct Access<'a> {
    tls: Option<(&'a Path, Option<(PathBuf, PathBuf)>)>,
    password: Option<&'a str>,
}

/// Writes a member config (with a master secret, so it keeps a cache of
/// its own) and returns it with the member's gateway and admin ports.
fn member_config(dir: &Path, etcd: &Etcd, id: &str, access: &Access<'_>) -> (PathBuf, u16, u16) {
    let master = dir.join("master.key");
    if !master.exists() {
        portcullis_secrets::MasterSecret::generate()
            .write_new_file(&master)
            .unwrap();
    }
    let (port, admin) = (free_port(), free_port());
    let mut cluster = format!(
        "name = \"s{}\"\nstore = \"{}\"\nheartbeat = \"200ms\"\ncache = \"cache-{id}\"\n",
        std::process::id(),
        etcd.store()
    );
    if let Some((ca, client)) = &access.tls {
        let client = client
            .as_ref()
            .map(|(cert, key)| format!(", cert = {cert:?}, key = {key:?}"))
            .unwrap_or_default();
        cluster.push_str(&format!("tls = {{ ca = {ca:?}{client} }}\n"));
    }
    if let Some(password) = access.password {
        let file = dir.join(format!("{id}.password"));
        std::fs::write(&file, format!("{password}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        cluster.push_str(&format!(
            "user = \"{MEMBER_USER}\"\npassword_file = {file:?}\n"
        ));
    }
    let config = dir.join(format!("{id}.toml"));
    std::fs::write(
        &config,
        format!("[node]\nid = \"{id}\"\n[gateway]\nlisten = \"127.0.0.1:{port}\"\nshutdown_grace = \"1s\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n[cluster]\n{cluster}[secrets]\nmaster = \"file:master.key\"\n"),
    )
    .unwrap();
    (config, port, admin)
}

fn put(config: &Path, file: &Path) {
    let out = cli(
        config,
        &["topology", "put", file.to_str().unwrap(), "--name", "t"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The CLI's error when it reaches the store with `access`.
fn refused(dir: &Path, etcd: &Etcd, id: &str, access: &Access<'_>) -> String {
    let (config, _, _) = member_config(dir, etcd, id, access);
    let out = cli(&config, &["topology", "list"]);
    assert!(!out.status.success(), "{id}: the store let it in");
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_reach_etcd_over_tls_as_a_user_and_strangers_are_refused() {
    init();
    let mut etcd = Etcd::start_tls();
    etcd.enable_auth();
    let ca = etcd.certs.as_ref().unwrap().ca_cert.clone();
    let backend = DemoBackend::spawn("a", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let member = Access {
        tls: Some((&ca, Some(etcd.client_cert(MEMBER_USER)))),
        password: Some(MEMBER_PASSWORD),
    };
    let (config1, port1, _) = member_config(dir.path(), &etcd, "m1", &member);
    let (config2, port2, _) = member_config(dir.path(), &etcd, "m2", &member);
    let _m1 = ServeProcess::start(&config1, port1);
    let m2 = ServeProcess::start(&config2, port2);
    let file = dir.path().join("t.toml");
    std::fs::write(&file, topology("svc", &[backend.url()], "")).unwrap();
    put(&config1, &file);
    eventually(&m2.url("/gateway/t/svc/x"), Duration::from_secs(5), |r| {
        r.status == StatusCode::OK
    })
    .await;
    // The member's keys are in etcd, written as the member user over TLS.
    let keys = etcd.etcdctl(&["get", "--prefix", "--keys-only", "/portcullis/"]);
    assert!(
        String::from_utf8_lossy(&keys.stdout).contains("/topologies/t"),
        "{}",
        String::from_utf8_lossy(&keys.stdout)
    );

    let store = etcd.store();
    let wrong_password = Access {
        password: Some("not-the-password"),
        ..member
    };
    let err = refused(dir.path(), &etcd, "wrong", &wrong_password);
    assert!(err.contains(&store), "names the store: {err}");
    assert!(err.contains("authentication failed"), "{err}");
    eprintln!("with a wrong password: {err}");
    // A member with the wrong password stops at once rather than retrying
    // for 30 s, and says why.
    let (config, _, _) = member_config(dir.path(), &etcd, "wrong", &wrong_password);
    let started = Instant::now();
    let out = std::process::Command::new(binary())
        .args(["serve", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&store) && stderr.contains("refused"),
        "{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let no_client_cert = Access {
        tls: Some((&ca, None)),
        password: Some(MEMBER_PASSWORD),
    };
    let err = refused(dir.path(), &etcd, "nocert", &no_client_cert);
    assert!(err.contains(&store), "names the store: {err}");
    assert!(err.contains("client certificate"), "{err}");
    eprintln!("without a client certificate: {err}");
    eprintln!("etcd+tls refusals: wrong password and missing client certificate both name {store}");
}

/// Waits until the cache file of member `id` in `dir` mentions `needle`.
async fn cached(dir: &Path, id: &str, needle: &str) -> String {
    let file = dir.join(format!("cache-{id}/state.json"));
    wait_until(
        &format!("{} to mention {needle}", file.display()),
        Duration::from_secs(10),
        || std::fs::read_to_string(&file).is_ok_and(|t| t.contains(needle)),
    )
    .await;
    std::fs::read_to_string(&file).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_started_while_etcd_is_down_serves_from_its_cache() {
    init();
    let mut etcd = Etcd::start();
    let a = DemoBackend::spawn("a", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let b = DemoBackend::spawn("b", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let plain = Access {
        tls: None,
        password: None,
    };
    let (config, port, admin) = member_config(dir.path(), &etcd, "m1", &plain);
    let member = ServeProcess::start(&config, port);
    let file = dir.path().join("t.toml");
    std::fs::write(&file, topology("svc", &[a.url()], "")).unwrap();
    put(&config, &file);
    let alias_value = "alias-value-5b1e9c";
    let out = cli(
        &config,
        &["alias", "create", "db.password", "--value", alias_value],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(cli(&config, &["admin", "token"]).stdout).unwrap();
    let token = token.trim();
    assert!(token.len() > 20, "{token:?}");
    let text = cached(dir.path(), "m1", "db.password").await;
    assert!(text.contains(&a.url()), "the topology is cached: {text}");
    assert!(
        !text.contains(alias_value),
        "an alias value in clear: {text}"
    );
    assert!(!text.contains(token), "the admin token in clear: {text}");
    assert!(
        text.contains("\"revision\": ") && !text.contains("\"revision\": null"),
        "the etcd revision is kept: {text}"
    );

    drop(member);
    etcd.stop();
    let started = Instant::now();
    let member = ServeProcess::start(&config, port);
    let url = member.url("/gateway/t/svc/x");
    let reply = eventually(&url, Duration::from_secs(10), |r| {
        r.status == StatusCode::OK
    })
    .await;
    let serving_after = started.elapsed();
    assert_eq!(reply.json()["backend"], "a");
    assert!(
        serving_after < Duration::from_secs(6),
        "served from the cache after {serving_after:?}"
    );
    let health = format!("http://127.0.0.1:{admin}/api/v1/health");
    let reply = get(&health).await;
    assert_eq!(reply.json()["store"], "disconnected", "{}", reply.text());
    eprintln!("etcd down: a member started from its cache served after {serving_after:?}");

    let etcd = etcd.restart();
    eventually(&health, Duration::from_secs(15), |r| {
        r.json()["store"] == "connected"
    })
    .await;
    std::fs::write(&file, topology("svc", &[b.url()], "")).unwrap();
    put(&config, &file);
    let reply = eventually(&url, Duration::from_secs(10), |r| {
        r.json()["backend"] == "b"
    })
    .await;
    assert_eq!(reply.json()["backend"], "b", "the member resynced");
    cached(dir.path(), "m1", &b.url()).await;
    drop(etcd);
}
