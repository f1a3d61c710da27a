//! Hot restart (`SIGUSR2`) and reload (`SIGHUP`) of a real `portcullis
//! serve` under a request loop: keep-alive clients and a client opening a
//! new connection per request, none of which may fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use portcullis_demo::DemoBackend;
use portcullis_testkit::wait::wait_for;
use portcullis_testkit::*;

/// A `serve` process run from its own link to the binary (so a test can
/// replace the file at that path), logging at info to a file, with one
/// backend behind topology `t`.
struct Served {
    dir: tempfile::TempDir,
    exe: PathBuf,
    config: PathBuf,
    log: PathBuf,
    port: u16,
    process: ServeProcess,
    _backend: DemoBackend,
}

impl Served {
    async fn start(gateway_extra: &str) -> Served {
        let backend = DemoBackend::spawn("solo", "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("store/topologies")).unwrap();
        write_topology(dir.path(), "t", &topology("svc", &[backend.url()], ""));
        let exe = dir.path().join("portcullis");
        if std::fs::hard_link(binary(), &exe).is_err() {
            std::fs::copy(binary(), &exe).unwrap();
        }
        let port = free_port();
        let config = dir.path().join("portcullis.toml");
        write_config(&config, port, gateway_extra);
        let log = dir.path().join("serve.log");
        let child = Command::new(&exe)
            .args(["serve", "-c"])
            .arg(&config)
            .env("RUST_LOG", "info,portcullis::access=off")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let process = ServeProcess {
            child,
            port,
            config: config.clone(),
        };
        wait_port(port, "member");
        Served {
            dir,
            exe,
            config,
            log,
            port,
            process,
            _backend: backend,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/gateway/t/svc/loop", self.port)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn wait_log(&self, what: &str) {
        wait_for(
            &format!("{what:?} in the log"),
            Duration::from_secs(20),
            || {
                let found = self.log_text().contains(what);
                async move { found }
            },
        )
        .await;
    }

    /// Waits for the original process to exit; its status.
    async fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = self.process.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                started.elapsed() < within,
                "the old process still runs after {within:?}:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The successors started by a hot restart; killed when the guard drops.
    fn successors(&self) -> Successors {
        Successors::of(&self.config, self.process.child.id())
    }
}

fn write_config(config: &Path, port: u16, gateway_extra: &str) {
    let store = config.parent().unwrap().join("store");
    std::fs::write(
        config,
        format!(
            "[node]\nid = \"hot\"\n[gateway]\nlisten = \"127.0.0.1:{port}\"\n{gateway_extra}\n[cluster]\nstore = \"dir:{}\"\nheartbeat = \"200ms\"\n",
            store.display()
        ),
    )
    .unwrap();
}

/// A client that opens a new connection for every request (and closes it).
struct FreshConnections {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<Vec<String>>,
}

impl FreshConnections {
    fn start(port: u16) -> FreshConnections {
        let (stop, ok) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let (stopping, counted) = (stop.clone(), ok.clone());
        let task = tokio::spawn(async move {
            let mut failures = Vec::new();
            while !stopping.load(Ordering::Relaxed) {
                match fresh_request(port).await {
                    Ok(()) => {
                        counted.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(err) => failures.push(err),
                }
            }
            failures
        });
        FreshConnections { stop, ok, task }
    }

    async fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let failures = self.task.await.unwrap();
        (self.ok.load(Ordering::Relaxed), failures)
    }
}

async fn fresh_request(port: u16) -> Result<(), String> {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake {e}"))?;
    tokio::spawn(connection);
    let request = Request::get("/gateway/t/svc/fresh")
        .header("host", "localhost")
        .header("connection", "close")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request {e}"))?;
    if response.status() != StatusCode::OK {
        return Err(format!("status {}", response.status()));
    }
    response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body {e}"))?;
    Ok(())
}

/// Waits until `load` has answered `more` requests beyond now.
async fn more_answers(load: &Load, more: u64) {
    let target = load.ok_so_far() + more;
    wait_for("more answers", Duration::from_secs(20), || {
        let done = load.ok_so_far() >= target;
        async move { done }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_restart_under_load_fails_no_request() {
    init();
    // The admin listener is handed over too.
    let admin_port = free_port();
    let extra = format!("shutdown_grace = \"5s\"\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"");
    let mut served = Served::start(&extra).await;
    let load = Load::start(served.url(), 3);
    let fresh = FreshConnections::start(served.port);
    more_answers(&load, 200).await;
    let old = served.process.child.id();
    served.process.signal("USR2");
    let status = served.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "the old process exited with {status}");
    let successors = served.successors();
    assert_eq!(successors.0.len(), 1, "one new process: {:?}", successors.0);
    assert_ne!(successors.0[0], old);
    more_answers(&load, 200).await;
    let result = load.finish().await;
    let (fresh_ok, fresh_failures) = fresh.finish().await;
    eprintln!(
        "hot restart: keep-alive {} ok, {} failed; new connections {fresh_ok} ok, {} failed",
        result.ok,
        result.failures.len(),
        fresh_failures.len()
    );
    result.assert_no_failures();
    assert!(
        fresh_failures.is_empty(),
        "{:?}",
        &fresh_failures[..fresh_failures.len().min(5)]
    );
    assert!(fresh_ok > 0);
    // The new process has the same id and its record stays: the old one did
    // not remove it on the way out.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let status = served.process.cli(&["cluster", "status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("hot"), "the member record is gone: {text}");
    let log = served.log_text();
    for key in ["gateway.listen", "admin.listen"] {
        let line = format!("serving an inherited listening socket key=\"{key}\"");
        assert!(log.contains(&line), "{line} not in:\n{log}");
    }
    std::net::TcpStream::connect(("127.0.0.1", admin_port)).expect("the admin listener serves");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_successor_that_cannot_start_leaves_the_old_process_serving() {
    init();
    let mut served = Served::start("").await;
    let load = Load::start(served.url(), 2);
    more_answers(&load, 50).await;
    // The upgrade's new binary is broken: a script that exits at once.
    let broken = served.dir.path().join("broken");
    std::fs::write(&broken, "#!/bin/sh\nexit 1\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&broken, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&broken, &served.exe).unwrap();
    served.process.signal("USR2");
    served.wait_log("hot restart failed").await;
    more_answers(&load, 100).await;
    assert!(
        served.process.child.try_wait().unwrap().is_none(),
        "the old process still runs"
    );
    let result = load.finish().await;
    eprintln!(
        "failed successor: {} ok, {} failed",
        result.ok,
        result.failures.len()
    );
    result.assert_no_failures();
    let log = served.log_text();
    assert!(log.contains("exited before it was ready"), "{log}");
}

/// A successor that never becomes ready does not hold up a stop: SIGTERM
/// abandons the hot restart, stops the successor and this process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_during_a_hot_restart_stops_both_processes() {
    init();
    let mut served = Served::start("").await;
    let hanging = served.dir.path().join("hanging");
    std::fs::write(&hanging, "#!/bin/sh\nwhile :; do sleep 0.1; done\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hanging, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&hanging, &served.exe).unwrap();
    served.process.signal("USR2");
    served.wait_log("hot restart: new process started").await;
    let successors = served.successors();
    assert_eq!(successors.0.len(), 1, "{:?}", successors.0);
    served.process.signal("TERM");
    let status = served.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "{status}");
    wait_for("the successor to stop", Duration::from_secs(5), || {
        let gone = served.successors().0.is_empty();
        async move { gone }
    })
    .await;
    assert!(served.log_text().contains("abandoning the new process"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_file_or_a_new_listen_address_is_not_applied_on_reload() {
    init();
    let served = Served::start("").await;
    let load = Load::start(served.url(), 2);
    more_answers(&load, 50).await;
    let port = served.port;
    std::fs::write(
        &served.config,
        format!("[node]\nid = \"hot\"\n[gateway]\nlisten = \"127.0.0.1:{port}\"\nmax_connections = \"many\"\n[cluster]\nstore = \"dir:/nowhere\"\n"),
    )
    .unwrap();
    let check = Command::new(binary())
        .args(["check", "-c"])
        .arg(&served.config)
        .output()
        .unwrap();
    assert!(!check.status.success());
    let message = String::from_utf8_lossy(&check.stderr)
        .lines()
        .next()
        .unwrap()
        .to_string();
    served.process.signal("HUP");
    served.wait_log("reload refused").await;
    let log = served.log_text();
    assert!(log.contains(&message), "{message:?} not logged:\n{log}");
    more_answers(&load, 100).await;
    // A valid file with a new listen address: reported, not applied.
    write_config(&served.config, free_port(), "");
    served.process.signal("HUP");
    served.wait_log("reloaded").await;
    let log = served.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("needs a restart"))
        .unwrap_or_else(|| panic!("no restart notice:\n{log}"));
    assert!(line.contains("gateway.listen"), "{line}");
    more_answers(&load, 100).await;
    let result = load.finish().await;
    eprintln!(
        "invalid reload: {} ok, {} failed",
        result.ok,
        result.failures.len()
    );
    result.assert_no_failures();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_on_the_old_process_stays_open_through_a_hot_restart() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    init();
    let mut served = Served::start("shutdown_grace = \"20s\"").await;
    let addr = format!("127.0.0.1:{}", served.port);
    let socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (mut ws, _) =
        tokio_tungstenite::client_async(format!("ws://{addr}/gateway/t/svc/ws"), socket)
            .await
            .expect("upgrade");
    ws.next().await.unwrap().unwrap();
    served.process.signal("USR2");
    served.wait_log("the new process serves; draining").await;
    let _successors = served.successors();
    assert_eq!(get(&served.url()).await.status, StatusCode::OK);
    for i in 0..10 {
        ws.send(Message::text(format!("ping {i}"))).await.unwrap();
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::text(format!("ping {i}"))
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        served.process.child.try_wait().unwrap().is_none(),
        "the old process waits for the tunnel"
    );
    ws.close(None).await.unwrap();
    // The close handshake completes; the client's socket then closes too.
    while let Some(Ok(_)) = ws.next().await {}
    drop(ws);
    let closed = std::time::Instant::now();
    served.wait_exit(Duration::from_secs(15)).await;
    eprintln!(
        "the old process exited {:?} after the tunnel closed",
        closed.elapsed()
    );
}

/// A TLS client trusting `cas`, without session resumption (so each
/// handshake shows the certificate served now).
fn tls_connector(cas: &[&Path]) -> tokio_rustls::TlsConnector {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for ca in cas {
        for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

type TlsSender = hyper::client::conn::http1::SendRequest<http_body_util::Empty<bytes::Bytes>>;

/// A TLS connection to `port`: its sender and the certificate it was shown.
async fn tls_connect(
    connector: &tokio_rustls::TlsConnector,
    port: u16,
) -> Result<(TlsSender, Vec<u8>), String> {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector
        .connect(name, stream)
        .await
        .map_err(|e| format!("handshake {e}"))?;
    let cert = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    Ok((sender, cert))
}

async fn tls_get(sender: &mut TlsSender) -> Result<(), String> {
    sender.ready().await.map_err(|e| format!("ready {e}"))?;
    let request = Request::get("/gateway/t/svc/tls")
        .header("host", "localhost")
        .body(http_body_util::Empty::new())
        .unwrap();
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request {e}"))?;
    if response.status() != StatusCode::OK {
        return Err(format!("status {}", response.status()));
    }
    response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body {e}"))?;
    Ok(())
}

fn pem_der(path: &Path) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_file(path)
        .unwrap()
        .to_vec()
}

/// New TLS connections to `port`, one request each, until `stop`: the
/// successes and the failures.
fn fresh_tls_loop(
    connector: tokio_rustls::TlsConnector,
    port: u16,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(u64, Vec<String>)> {
    tokio::spawn(async move {
        let (mut ok, mut failures) = (0u64, Vec::new());
        while !stop.load(Ordering::Relaxed) {
            let outcome = async {
                let (mut sender, _) = tls_connect(&connector, port).await?;
                tls_get(&mut sender).await
            };
            match outcome.await {
                Ok(()) => ok += 1,
                Err(err) => failures.push(err),
            }
        }
        (ok, failures)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_renews_the_certificate_without_failing_a_request() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let first =
        portcullis::cert::create_certs(&["localhost".to_string()], &dir.path().join("first"))
            .unwrap();
    let renewed =
        portcullis::cert::create_certs(&["localhost".to_string()], &dir.path().join("renewed"))
            .unwrap();
    let (cert, key) = (
        dir.path().join("gateway.crt"),
        dir.path().join("gateway.key"),
    );
    std::fs::copy(&first.server_cert, &cert).unwrap();
    std::fs::copy(&first.server_key, &key).unwrap();
    let tls = format!(
        "tls = {{ cert = {:?}, key = {:?} }}",
        cert.display().to_string(),
        key.display().to_string()
    );
    let served = Served::start(&tls).await;
    let connector = tls_connector(&[&first.ca_cert, &renewed.ca_cert]);
    let (mut kept, shown) = tls_connect(&connector, served.port).await.unwrap();
    assert_eq!(shown, pem_der(&first.server_cert));
    // A loop of new TLS connections, one request each, beside the kept one.
    let stop = Arc::new(AtomicBool::new(false));
    let fresh = fresh_tls_loop(connector.clone(), served.port, stop.clone());
    let mut kept_ok = 0;
    for _ in 0..20 {
        tls_get(&mut kept).await.unwrap();
        kept_ok += 1;
    }
    std::fs::copy(&renewed.server_cert, &cert).unwrap();
    std::fs::copy(&renewed.server_key, &key).unwrap();
    write_config(
        &served.config,
        served.port,
        &format!("{tls}\nheader_read_timeout = \"7s\"\nmin_body_rate = 10"),
    );
    served.process.signal("HUP");
    served.wait_log("reloaded").await;
    wait_for("a handshake showing the renewed certificate", Duration::from_secs(10), || {
        let connector = connector.clone();
        let (port, want) = (served.port, pem_der(&renewed.server_cert));
        async move { matches!(tls_connect(&connector, port).await, Ok((_, shown)) if shown == want) }
    })
    .await;
    // The connection made before the reload still works.
    for _ in 0..20 {
        tls_get(&mut kept).await.unwrap();
        kept_ok += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let (fresh_ok, failures) = fresh.await.unwrap();
    eprintln!("certificate reload: kept connection {kept_ok} ok; new TLS connections {fresh_ok} ok, {} failed", failures.len());
    assert!(
        failures.is_empty(),
        "{:?}",
        &failures[..failures.len().min(5)]
    );
    assert!(fresh_ok > 0);
    let log = served.log_text();
    assert!(log.contains("gateway.header_read_timeout"), "{log}");
    assert!(log.contains("listener settings changed"), "{log}");
}

/// `[node] log_level` sets the filter when neither `--log-level` nor
/// `RUST_LOG` does, and a reload applies a new value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_level_comes_from_the_file_and_a_reload_changes_it() {
    init();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("store/topologies")).unwrap();
    let (port, config) = (free_port(), dir.path().join("portcullis.toml"));
    let write = |level: &str| {
        std::fs::write(
            &config,
            format!(
                "[node]\nid = \"lv\"\nlog_level = \"{level}\"\n[gateway]\nlisten = \"127.0.0.1:{port}\"\n[cluster]\nstore = \"dir:{}\"\n",
                dir.path().join("store").display()
            ),
        )
        .unwrap()
    };
    write("warn");
    let log = dir.path().join("serve.log");
    let child = Command::new(binary())
        .args(["serve", "-c"])
        .arg(&config)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let process = ServeProcess {
        child,
        port,
        config: config.clone(),
    };
    wait_port(port, "member");
    write("info");
    process.signal("HUP");
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for("the reload in the log", Duration::from_secs(20), || {
        let done = read().contains("reloaded");
        async move { done }
    })
    .await;
    let text = read();
    let (before, after) = text.split_at(text.find("log filter changed").expect(&text));
    assert!(
        !before.contains("gateway listening"),
        "info lines were logged under log_level = \"warn\":\n{text}"
    );
    assert!(after.contains("reloaded"), "{text}");
}
