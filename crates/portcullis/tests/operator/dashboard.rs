//! The dashboard in a real browser: two `portcullis serve` member processes
//! sharing a `dir:` store, two demo backend processes with active health
//! checks, and Debian's headless Chromium driven through chromedriver
//! (WebDriver, with the `fantoccini` client). Everything binds 127.0.0.1.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver`: `bash scripts/setup.sh`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt;
use http::{Request, StatusCode};
use portcullis_testkit::*;
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
pub(crate) const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const TOPOLOGY: &str = "sandbox";
const SERVICE: &str = "WEBHDFS";

/// One `portcullis serve` process with its admin listener.
pub(crate) struct Node {
    pub(crate) process: ServeProcess,
    admin_port: u16,
    admin_scheme: &'static str,
}

impl Node {
    fn start(dir: &Path, store: &Path, id: &str) -> Node {
        Node::start_with(dir, store, id, "")
    }

    /// A node whose `[admin]` section also has `admin_extra` (`tls = ...`).
    pub(crate) fn start_with(dir: &Path, store: &Path, id: &str, admin_extra: &str) -> Node {
        let gateway_port = free_port();
        let admin_port = free_port();
        let config = dir.join(format!("{id}.toml"));
        std::fs::write(
            &config,
            format!(
                "[node]\nid = \"{id}\"\n[gateway]\nlisten = \"127.0.0.1:{gateway_port}\"\nshutdown_grace = \"1s\"\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n{admin_extra}\n[cluster]\nstore = \"dir:{}\"\nrole = \"manager\"\nheartbeat = \"200ms\"\n",
                store.display()
            ),
        )
        .unwrap();
        let process = ServeProcess::start(&config, gateway_port);
        wait_port(admin_port, "admin listener");
        Node {
            process,
            admin_port,
            admin_scheme: if admin_extra.is_empty() {
                "http"
            } else {
                "https"
            },
        }
    }

    pub(crate) fn admin(&self, path: &str) -> String {
        format!(
            "{}://127.0.0.1:{}{path}",
            self.admin_scheme, self.admin_port
        )
    }

    pub(crate) async fn api(&self, path: &str, token: &str) -> Reply {
        let request = Request::get(self.admin(path))
            .header("authorization", format!("Bearer {token}"))
            .body(empty())
            .unwrap();
        send(&client(), request).await
    }

    /// `(id, url, state)` of the service's backends, as this member's API says.
    async fn backend_states(&self, token: &str) -> Vec<(String, String, String)> {
        let reply = self
            .api(
                &format!("/api/v1/topologies/{TOPOLOGY}/services/{SERVICE}/backends"),
                token,
            )
            .await;
        if reply.status != StatusCode::OK {
            return Vec::new();
        }
        reply.json()["backends"]
            .as_array()
            .map(|backends| {
                backends
                    .iter()
                    .map(|b| {
                        (
                            b["id"].as_str().unwrap_or_default().to_string(),
                            b["url"].as_str().unwrap_or_default().to_string(),
                            b["state"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A process the test started, killed (by its pid) on drop.
pub(crate) struct Guard(pub(crate) Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Chromium is started by chromedriver, not by the test. On the normal path
/// the WebDriver session is closed, which ends it; if the test fails first,
/// this finds the browser processes by their command line, which names this
/// test's own fresh `--user-data-dir`, and kills them by pid.
pub(crate) struct BrowserGuard {
    pub(crate) user_data_dir: PathBuf,
}

impl Drop for BrowserGuard {
    fn drop(&mut self) {
        let marker = format!("--user-data-dir={}", self.user_data_dir.display());
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let matches = cmdline
                .split(|b| *b == 0)
                .any(|arg| arg == marker.as_bytes());
            if matches {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

pub(crate) fn require_browser() {
    for path in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(path).exists(),
            "{path} is missing: the dashboard test drives Debian's headless Chromium. \
             Run `bash scripts/setup.sh` to install chromium and chromium-driver."
        );
    }
}

/// Runs `script` in the page until `check` accepts its result, or panics
/// after `timeout` with the last result.
pub(crate) async fn wait_js(
    browser: &Client,
    what: &str,
    timeout: Duration,
    script: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let value = browser
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|e| json!({ "script error": e.to_string() }));
        if check(&value) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not seen within {timeout:?}; last: {value}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const BACKEND_ROWS: &str = "return Array.from(document.querySelectorAll('[data-testid=backend-row]')).map(r => [r.dataset.backendId, r.dataset.state, r.querySelector('[data-testid=backend-state]').textContent]);";
const MEMBER_ROWS: &str = "return Array.from(document.querySelectorAll('[data-testid=member-row]')).map(r => [r.dataset.memberId, r.dataset.alive]);";

fn row_state(rows: &Value, id: &str) -> Option<String> {
    rows.as_array()?
        .iter()
        .find(|r| r[0] == id)
        .and_then(|r| r[1].as_str().map(str::to_string))
}

/// Types `token` into the token form and submits it.
pub(crate) async fn sign_in(browser: &Client, token: &str) {
    let input = browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("[data-testid=token-input]"))
        .await
        .expect("the token form");
    input.send_keys(token).await.unwrap();
    browser
        .find(Locator::Css("[data-testid=token-submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Starts chromedriver, logging to `dir/chromedriver.log`; the guard
/// kills it by pid.
pub(crate) fn start_driver(dir: &Path) -> (Guard, u16) {
    let driver_port = free_port();
    let guard = Guard(
        Command::new(CHROMEDRIVER)
            .arg(format!("--port={driver_port}"))
            .arg(format!(
                "--log-path={}",
                dir.join("chromedriver.log").display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver"),
    );
    wait_port(driver_port, "chromedriver");
    (guard, driver_port)
}

pub(crate) async fn start_browser(
    driver_port: u16,
    user_data_dir: &Path,
    extra_args: &[&str],
) -> Client {
    let mut args = vec![
        "--headless=new".to_string(),
        "--no-sandbox".to_string(),
        "--disable-gpu".to_string(),
        "--disable-quic".to_string(),
        "--no-first-run".to_string(),
        "--disable-background-networking".to_string(),
        "--disable-component-update".to_string(),
        "--disable-sync".to_string(),
        "--window-size=1280,900".to_string(),
        format!("--user-data-dir={}", user_data_dir.display()),
    ];
    args.extend(extra_args.iter().map(|a| a.to_string()));
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": args,
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{driver_port}"))
        .await
        .expect("a WebDriver session with headless Chromium")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_cluster_and_drains_a_backend_on_every_member() {
    require_browser();
    init();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");

    let alpha = BackendProcess::spawn("alpha");
    let mut doomed = Some(alpha);
    let beta = BackendProcess::spawn("beta");
    let urls = [doomed.as_ref().unwrap().url(), beta.url()];

    let m1 = Node::start(dir.path(), &store, "m1");
    let m2 = Node::start(dir.path(), &store, "m2");

    let topology_file = dir.path().join(format!("{TOPOLOGY}.toml"));
    std::fs::write(
        &topology_file,
        topology(
            SERVICE,
            &urls,
            "[service.ha]\nload_balancing = \"round-robin\"\n[service.health]\npath = \"/health\"\ninterval = \"200ms\"\ntimeout = \"200ms\"\nrise = 1\nfall = 2",
        ),
    )
    .unwrap();
    let out = m1
        .process
        .cli(&["topology", "put", topology_file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "topology put: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = m1.process.cli(&["admin", "token"]);
    assert!(
        out.status.success(),
        "admin token: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(!token.is_empty(), "an admin token");

    // Both members serve the topology, both backends up.
    let mut listed = Vec::new();
    for node in [&m1, &m2] {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let states = node.backend_states(&token).await;
            if states.len() == 2 && states.iter().all(|(_, _, s)| s == "up") {
                listed = states;
                break;
            }
            assert!(
                Instant::now() < deadline,
                "member on admin port {} never had two backends up: {states:?}",
                node.admin_port
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let id_of = |url: &str| {
        listed
            .iter()
            .find(|(_, u, _)| u.trim_end_matches('/') == url)
            .map(|(id, _, _)| id.clone())
            .unwrap_or_else(|| panic!("no backend {url} in {listed:?}"))
    };
    let (alpha_id, beta_id) = (id_of(&urls[0]), id_of(&urls[1]));

    // Some traffic through m1, so its rates and chart have something to show.
    let traffic = Load::with_pause(
        format!(
            "http://127.0.0.1:{}/gateway/{TOPOLOGY}/{SERVICE}/hello",
            m1.process.port
        ),
        1,
        Duration::from_millis(25),
    );

    let driver_log = dir.path().join("chromedriver.log");
    let (_driver, driver_port) = start_driver(dir.path());
    let user_data_dir = dir.path().join("chromium-profile");
    std::fs::create_dir_all(&user_data_dir).unwrap();
    let _browser_guard = BrowserGuard {
        user_data_dir: user_data_dir.clone(),
    };
    let browser = start_browser(driver_port, &user_data_dir, &[]).await;

    let screenshot_path = dir.path().join("dashboard.png");
    let steps = std::panic::AssertUnwindSafe(async {
        browser
            .goto(&m1.admin("/"))
            .await
            .expect("open the dashboard");

        // Signed out: the token form. A wrong token brings it back with a
        // message and is not kept.
        sign_in(&browser, "not-the-token").await;
        wait_js(
            &browser,
            "the 401 message on the token form",
            Duration::from_secs(10),
            "const m = document.querySelector('[data-testid=login-message]'); \
             const f = document.querySelector('[data-testid=login]'); \
             return [m && !m.hidden ? m.textContent : null, f && !f.hidden, sessionStorage.length];",
            |v| v[0].as_str().is_some_and(|m| m.contains("401")) && v[1] == true && v[2] == 0,
        )
        .await;
        sign_in(&browser, &token).await;

        // Both members listed, alive.
        wait_js(
            &browser,
            "both members alive",
            Duration::from_secs(10),
            MEMBER_ROWS,
            |rows| {
                let Some(rows) = rows.as_array() else {
                    return false;
                };
                ["m1", "m2"]
                    .iter()
                    .all(|id| rows.iter().any(|r| r[0] == *id && r[1] == "true"))
            },
        )
        .await;

        // Both serve the same configuration: one hash, no drift badge.
        wait_js(
            &browser,
            "one config hash on both members",
            Duration::from_secs(10),
            "return Array.from(document.querySelectorAll('[data-testid=member-config]')).map(c => [c.textContent, !!c.querySelector('[data-testid=member-drift]')]);",
            |cells| {
                let Some(cells) = cells.as_array() else {
                    return false;
                };
                cells.len() == 2
                    && cells.iter().all(|c| {
                        c[0].as_str().is_some_and(|h| h.len() == 16) && c[0] == cells[0][0] && c[1] == false
                    })
            },
        )
        .await;

        // Both backends listed, up.
        wait_js(
            &browser,
            "both backends up",
            Duration::from_secs(10),
            BACKEND_ROWS,
            |rows| {
                row_state(rows, &alpha_id).as_deref() == Some("up")
                    && row_state(rows, &beta_id).as_deref() == Some("up")
            },
        )
        .await;

        // The token lives in sessionStorage only.
        let storage = browser
            .execute(
                "return [Object.keys(sessionStorage).length, localStorage.length, document.cookie];",
                Vec::new(),
            )
            .await
            .unwrap();
        assert_eq!(
            storage,
            json!([1, 0, ""]),
            "token kept in sessionStorage only"
        );

        // A rate computed from two reads, and a chart per service.
        wait_js(
            &browser,
            "a request rate",
            Duration::from_secs(10),
            "const v = document.querySelector('[data-testid=service-rate]'); return v ? v.textContent : null;",
            |v| v.as_str().is_some_and(|s| s != "–" && s != "0"),
        )
        .await;
        let charts = browser
            .find_all(Locator::Css("[data-testid=service-chart]"))
            .await
            .unwrap();
        assert_eq!(charts.len(), 1, "one chart for the one service");

        super::dashboard_ops::cluster_totals_add_up(&browser).await;
        super::dashboard_ops::drain_and_enable_a_member(&browser, &m1, &token).await;

        // A killed backend turns down within a few seconds.
        doomed.take().unwrap().kill();
        let killed_at = Instant::now();
        let rows = wait_js(
            &browser,
            "the killed backend down",
            Duration::from_secs(6),
            BACKEND_ROWS,
            |rows| row_state(rows, &alpha_id).as_deref() == Some("down"),
        )
        .await;
        eprintln!(
            "dashboard: killed backend shown down after {:?}: {rows}",
            killed_at.elapsed()
        );

        // Drain the other one from the page...
        let drain =
            format!("[data-testid=backend-row][data-backend-id=\"{beta_id}\"] [data-testid=drain]");
        browser
            .find(Locator::Css(&drain))
            .await
            .expect("a drain button in beta's row")
            .click()
            .await
            .expect("click drain");
        wait_js(
            &browser,
            "beta draining in the page",
            Duration::from_secs(5),
            BACKEND_ROWS,
            |rows| row_state(rows, &beta_id).as_deref() == Some("draining"),
        )
        .await;

        // ...and both members obey it.
        for node in [&m1, &m2] {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let states = node.backend_states(&token).await;
                let beta = states.iter().find(|(id, _, _)| *id == beta_id);
                if beta.is_some_and(|(_, _, s)| s == "draining") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "member on admin port {} does not show beta draining: {states:?}",
                    node.admin_port
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }

        super::dashboard_ops::drift_is_flagged(&browser, &store).await;

        // Nothing was loaded from anywhere but this member.
        let origin = m1.admin("");
        let resources = browser
            .execute(
                "return performance.getEntriesByType('resource').map(e => e.name);",
                Vec::new(),
            )
            .await
            .unwrap();
        for url in resources.as_array().unwrap() {
            let url = url.as_str().unwrap();
            assert!(url.starts_with(&origin), "loaded {url} from elsewhere");
        }

        // One more refresh, then the picture. A fixed wait: the screenshot is
        // for people to look at, nothing is asserted on the refresh.
        tokio::time::sleep(Duration::from_millis(2200)).await;
        let png = browser.screenshot().await.expect("a screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        std::fs::write(&screenshot_path, &png).unwrap();

        // Signing out forgets the token and shows the form again.
        browser
            .find(Locator::Css("[data-testid=sign-out]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_js(
            &browser,
            "the token form after signing out",
            Duration::from_secs(5),
            "const f = document.querySelector('[data-testid=login]'); \
             return [f && !f.hidden, sessionStorage.length, \
                     document.querySelectorAll('[data-testid=backend-row]').length];",
            |v| *v == json!([true, 0, 0]),
        )
        .await;

        // A URL with the token in its fragment (as `portcullis demo` prints)
        // signs in by itself and drops the fragment from the address bar.
        let fragment: String = token
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        // A fresh load, as when the URL is opened from the terminal.
        browser.goto("about:blank").await.unwrap();
        browser
            .goto(&format!("{}#token={fragment}", m1.admin("/")))
            .await
            .unwrap();
        wait_js(
            &browser,
            "signed in from the URL's fragment",
            Duration::from_secs(10),
            &format!(
                "return [location.hash, sessionStorage.getItem('portcullis.admin.token') === {token:?}, \
                         document.querySelectorAll('[data-testid=member-row]').length];"
            ),
            |v| v[0] == "" && v[1] == true && v[2].as_u64().is_some_and(|n| n >= 2),
        )
        .await;

        // Pasted into the tab that already shows the dashboard, only the
        // fragment changes (no reload): signed out first, it signs in again.
        browser
            .find(Locator::Css("[data-testid=sign-out]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_js(
            &browser,
            "signed out",
            Duration::from_secs(5),
            "return sessionStorage.length;",
            |v| *v == json!(0),
        )
        .await;
        browser
            .goto(&format!("{}#token={fragment}", m1.admin("/")))
            .await
            .unwrap();
        wait_js(
            &browser,
            "signed in again from a changed fragment",
            Duration::from_secs(10),
            &format!(
                "return [location.hash, sessionStorage.getItem('portcullis.admin.token') === {token:?}];"
            ),
            |v| v[0] == "" && v[1] == true,
        )
        .await;
    });
    let outcome = steps.catch_unwind().await;
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .to_path_buf();
    if outcome.is_err() {
        // What the page showed when the test failed.
        if let Ok(png) = browser.screenshot().await {
            let failed = target_dir.join("dashboard-failure.png");
            if std::fs::write(&failed, png).is_ok() {
                eprintln!("dashboard at the failure: {}", failed.display());
            }
        }
    }
    let _ = browser.clone().close().await;
    let LoadResult { ok, failures, .. } = traffic.finish().await;
    eprintln!(
        "traffic through m1 during the test: {ok} answered, {} failed",
        failures.len()
    );
    if let Err(panic) = outcome {
        let log = std::fs::read_to_string(&driver_log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        eprintln!(
            "chromedriver log, last lines:\n{}",
            lines[lines.len().saturating_sub(20)..].join("\n")
        );
        std::panic::resume_unwind(panic);
    }

    let target = target_dir.join("dashboard-screenshot.png");
    std::fs::copy(&screenshot_path, &target).unwrap();
    eprintln!("dashboard screenshot: {}", screenshot_path.display());
    eprintln!("dashboard screenshot (kept): {}", target.display());
    drop(beta);
}
