//! Fixtures for end-to-end tests: real members on loopback port 0, real demo
//! backends, and a plain hyper client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use portcullis::app::Member;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type TestBody = BoxBody<Bytes, BoxError>;

pub fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let _ = tracing_subscriber_init();
}

fn tracing_subscriber_init() -> Option<()> {
    // Logs only when asked, so test output stays readable.
    std::env::var("TEST_LOG").ok()?;
    Some(())
}

/// A member with its own temporary store directory.
pub struct TestMember {
    pub member: Option<Member>,
    pub dir: tempfile::TempDir,
    pub addr: SocketAddr,
}

impl TestMember {
    pub async fn start(topologies: &[(&str, &str)]) -> TestMember {
        Self::start_with(topologies, "").await
    }

    /// `gateway_extra` is appended to the `[gateway]` table.
    pub async fn start_with(topologies: &[(&str, &str)], gateway_extra: &str) -> TestMember {
        init();
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("store/topologies")).unwrap();
        for (name, text) in topologies {
            write_topology(dir.path(), name, text);
        }
        let store = dir.path().join("store");
        Self::start_on_store(dir, &store, "test-member", gateway_extra, "").await
    }

    /// A member using an existing store directory (shared by several members);
    /// `dir` holds its own config file.
    pub async fn start_shared(store: &Path, id: &str) -> TestMember {
        init();
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_on_store(dir, store, id, "", "").await
    }

    /// A member with an admin listener on a free loopback port. `role` is
    /// "manager" or "worker"; `master` is a master secret file for `[secrets]`.
    pub async fn start_admin(
        store: &Path,
        id: &str,
        role: &str,
        master: Option<&Path>,
    ) -> TestMember {
        init();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut tail = format!(
            "role = \"{role}\"\nheartbeat = \"200ms\"\n[admin]\nlisten = \"127.0.0.1:0\"\n"
        );
        if let Some(master) = master {
            tail.push_str(&format!(
                "[secrets]\nmaster = \"file:{}\"\n",
                master.display()
            ));
        }
        Self::start_on_store(dir, store, id, "", &tail).await
    }

    async fn start_on_store(
        dir: tempfile::TempDir,
        store: &Path,
        id: &str,
        gateway_extra: &str,
        cluster_tail: &str,
    ) -> TestMember {
        let config_path = dir.path().join("portcullis.toml");
        let text = format!(
            "[node]\nid = \"{id}\"\n[gateway]\nlisten = \"127.0.0.1:0\"\nshutdown_grace = \"5s\"\n{gateway_extra}\n[cluster]\nstore = \"dir:{}\"\n{cluster_tail}",
            store.display()
        );
        std::fs::write(&config_path, &text).unwrap();
        let config =
            portcullis_config::parse_node_config(&text, &config_path).expect("valid config");
        let member = Member::start(config).await.expect("member starts");
        let addr = member.gateway_addr;
        TestMember {
            member: Some(member),
            dir,
            addr,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// URL of `path` on the admin listener.
    pub fn admin_url(&self, path: &str) -> String {
        let member = self.member.as_ref().expect("running");
        format!("http://{}{}", member.admin_addr.expect("[admin] set"), path)
    }

    pub fn admin_token(&self) -> String {
        self.member
            .as_ref()
            .expect("running")
            .admin_token()
            .to_string()
    }

    /// An admin API call with this member's token.
    pub async fn admin(&self, method: &str, path: &str, body: &str) -> Reply {
        admin_call(
            &self.admin_url(path),
            Some(&self.admin_token()),
            method,
            body,
        )
        .await
    }

    pub fn put_topology(&self, name: &str, text: &str) {
        write_topology(self.dir.path(), name, text);
    }

    pub fn gateway(&self) -> &portcullis_proxy::Gateway {
        &self.member.as_ref().expect("running").gateway
    }

    /// The live runtime of one service, to look at backend state.
    pub fn service(
        &self,
        topology: &str,
        service: &str,
    ) -> std::sync::Arc<portcullis_proxy::routing::ServiceRuntime> {
        match self.gateway().service(topology, service) {
            portcullis_proxy::routing::Lookup::Found(s) => s,
            _ => panic!("no service {topology}/{service}"),
        }
    }

    pub fn remove_topology(&self, name: &str) {
        std::fs::remove_file(
            self.dir
                .path()
                .join(format!("store/topologies/{name}.toml")),
        )
        .unwrap();
    }

    pub async fn stop(mut self) {
        if let Some(member) = self.member.take() {
            member.stop().await;
        }
    }
}

pub fn write_topology(dir: &Path, name: &str, text: &str) {
    let topologies = dir.join("store/topologies");
    let tmp = topologies.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, topologies.join(format!("{name}.toml"))).unwrap();
}

/// A topology with one service `name` over `urls`.
pub fn topology(service: &str, urls: &[String], extra: &str) -> String {
    let urls: Vec<String> = urls.iter().map(|u| format!("{u:?}")).collect();
    format!(
        "[[service]]\nname = \"{service}\"\nurls = [{}]\n{extra}\n",
        urls.join(", ")
    )
}

pub fn client() -> Client<HttpConnector, TestBody> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

pub fn h2c_client() -> Client<HttpConnector, TestBody> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(HttpConnector::new())
}

pub fn empty() -> TestBody {
    Empty::new().map_err(|never| match never {}).boxed()
}

pub fn full(data: impl Into<Bytes>) -> TestBody {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed()
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }
}

pub async fn send(client: &Client<HttpConnector, TestBody>, request: Request<TestBody>) -> Reply {
    let response = tokio::time::timeout(Duration::from_secs(30), client.request(request))
        .await
        .expect("answer within 30 s")
        .expect("request succeeds at the HTTP level");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

/// An admin API call; `token` None sends no Authorization header.
pub async fn admin_call(url: &str, token: Option<&str>, method: &str, body: &str) -> Reply {
    let mut request = Request::builder().method(method).uri(url);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    send(&client(), request.body(full(body.to_string())).unwrap()).await
}

pub async fn get(url: &str) -> Reply {
    let request = Request::get(url).body(empty()).unwrap();
    send(&client(), request).await
}

/// Polls `url` until `check` accepts the reply or `timeout` passes.
pub async fn eventually(url: &str, timeout: Duration, check: impl Fn(&Reply) -> bool) -> Reply {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let reply = get(url).await;
        if check(&reply) || tokio::time::Instant::now() > deadline {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Path of the built `portcullis` binary (cargo builds it for integration tests).
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_portcullis"))
}

/// Deterministic pseudo-random bytes, streamed in chunks, with their SHA-256.
pub fn pattern_stream(total: u64, chunk: usize) -> (TestBody, String) {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    let mut produced = 0u64;
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut chunks = Vec::new();
    // Precompute the digest with the same generator the stream uses.
    while produced < total {
        let n = chunk.min((total - produced) as usize);
        let block = next_block(&mut seed, n);
        hasher.update(&block);
        produced += n as u64;
        chunks.push(n);
    }
    let digest = hex::encode(hasher.finalize());
    let stream = futures_util::stream::unfold(
        (0x9E37_79B9_7F4A_7C15u64, chunks.into_iter()),
        |(mut seed, mut sizes)| async move {
            let n = sizes.next()?;
            let block = next_block(&mut seed, n);
            Some((
                Ok::<_, BoxError>(http_body::Frame::data(Bytes::from(block))),
                (seed, sizes),
            ))
        },
    );
    (http_body_util::StreamBody::new(stream).boxed(), digest)
}

fn next_block(seed: &mut u64, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(n);
    out
}

/// A demo backend in its own process, so a test can kill it (SIGKILL) or
/// freeze it (SIGSTOP) for real. Killed on drop.
pub struct BackendProcess {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    pub name: String,
}

impl BackendProcess {
    pub fn spawn(name: &str) -> BackendProcess {
        Self::spawn_on(name, "127.0.0.1:0".parse().unwrap())
    }

    pub fn spawn_on(name: &str, addr: SocketAddr) -> BackendProcess {
        use std::io::BufRead;
        let mut child = std::process::Command::new(binary())
            .args([
                "demo-backend",
                "--name",
                name,
                "--listen",
                &addr.to_string(),
            ])
            .env("RUST_LOG", "error")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start backend process");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected backend output {line:?}"))
            .parse()
            .unwrap();
        BackendProcess {
            child,
            addr,
            name: name.to_string(),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name}");
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for BackendProcess {
    fn drop(&mut self) {
        // A frozen process must be resumed to die promptly on some kernels.
        let _ = std::process::Command::new("kill")
            .args(["-CONT".to_string(), self.child.id().to_string()])
            .stderr(std::process::Stdio::null())
            .status();
        self.kill();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_port(port: u16, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not start listening on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a CLI command against the store of the member config `config`:
/// `cli(config, &["topology", "put", "f.toml"])` runs `portcullis topology -c config put f.toml`.
pub fn cli(config: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(binary())
        .args(&args[..1])
        .arg("-c")
        .arg(config)
        .args(&args[1..])
        .env("RUST_LOG", "error")
        .output()
        .unwrap()
}

/// `portcullis serve -c CONFIG` as a process, killed on drop.
pub struct ServeProcess {
    pub child: std::process::Child,
    pub port: u16,
    pub config: PathBuf,
}

impl ServeProcess {
    /// Starts the process without waiting for its listener.
    pub fn spawn(config: &Path, port: u16) -> ServeProcess {
        let child = std::process::Command::new(binary())
            .args(["serve", "-c"])
            .arg(config)
            .env("RUST_LOG", "error")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        ServeProcess {
            child,
            port,
            config: config.to_path_buf(),
        }
    }

    pub fn start(config: &Path, port: u16) -> ServeProcess {
        let process = Self::spawn(config, port);
        wait_port(port, "member");
        process
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        cli(&self.config, args)
    }

    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GETs `url` back to back (with `pause` between requests) until stopped,
/// counting successes as they happen and keeping every failure.
pub struct RequestLoop {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pub ok: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<Vec<String>>,
}

impl RequestLoop {
    pub fn start(url: String, pause: Duration) -> RequestLoop {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ok = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let task = {
            let (stop, ok) = (stop.clone(), ok.clone());
            tokio::spawn(async move {
                let client = client();
                let mut failures = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let request = Request::get(&url).body(empty()).unwrap();
                    match client.request(request).await {
                        Ok(r) if r.status() == StatusCode::OK => {
                            match r.into_body().collect().await {
                                Ok(_) => {
                                    ok.fetch_add(1, Ordering::Relaxed);
                                }
                                Err(e) => failures.push(format!("body {e}")),
                            }
                        }
                        Ok(r) => failures.push(format!("status {}", r.status())),
                        Err(e) => failures.push(e.to_string()),
                    }
                    if !pause.is_zero() {
                        tokio::time::sleep(pause).await;
                    }
                }
                failures
            })
        };
        RequestLoop { stop, ok, task }
    }

    pub fn ok_so_far(&self) -> u64 {
        self.ok.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stops the loop; returns (successes, failures).
    pub async fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let failures = self.task.await.unwrap();
        (self.ok.load(std::sync::atomic::Ordering::Relaxed), failures)
    }
}
