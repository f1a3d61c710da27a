//! The dashboard's operations views in Chromium: the cluster's totals, a
//! member drained and enabled from its row, config drift, and the page over
//! HTTPS with `[admin] tls`. Fixtures are those of `dashboard.rs`.

use std::path::Path;
use std::time::Duration;

use fantoccini::{Client, Locator};
use futures_util::FutureExt;
use portcullis_testkit::*;
use serde_json::json;

use super::dashboard::{
    require_browser, sign_in, start_browser, start_driver, wait_js, BrowserGuard, Node,
};

/// The live members' figures as the page shows them (exact `data-value`s)
/// and the cluster's totals above them.
const FIGURES: &str = "const v = (n, t) => { const c = n.querySelector('[data-testid=' + t + ']'); const x = c && c.getAttribute('data-value'); return x ? Number(x) : null; }; \
     const rows = Array.from(document.querySelectorAll('[data-testid=member-row][data-alive=true]')); \
     return { members: rows.map(r => [v(r, 'member-rate'), v(r, 'member-errors'), v(r, 'member-in-flight')]), \
              totals: [v(document, 'total-rate'), v(document, 'total-errors'), v(document, 'total-in-flight')] };";

/// The cluster's totals are the sums of the live members' figures, once
/// both members have a rate (m1 carries the test's traffic).
pub(crate) async fn cluster_totals_add_up(browser: &Client) {
    let figures = wait_js(
        browser,
        "rates for both members and a total",
        Duration::from_secs(15),
        FIGURES,
        |v| {
            v["members"].as_array().is_some_and(|m| {
                m.len() == 2 && m.iter().all(|r| r[0].is_number() && r[1].is_number())
            }) && v["totals"][0].as_f64().is_some_and(|r| r > 0.0)
        },
    )
    .await;
    let members = figures["members"].as_array().unwrap();
    for (column, what) in ["requests/s", "errors/s", "in flight"].iter().enumerate() {
        let sum: f64 = members.iter().filter_map(|r| r[column].as_f64()).sum();
        let total = figures["totals"][column].as_f64().unwrap();
        assert!(
            (sum - total).abs() < 1e-9,
            "total {what} {total} is not the members' sum {sum}: {figures}"
        );
    }
    let shown = browser
        .execute(
            "return document.querySelector('[data-testid=total-rate]').textContent;",
            Vec::new(),
        )
        .await
        .unwrap();
    assert!(shown.as_str().is_some_and(|t| t != "–"), "{shown}");
}

/// Drains member m2 from its row, sees it on the page and in the API, then
/// enables it again.
pub(crate) async fn drain_and_enable_a_member(browser: &Client, node: &Node, token: &str) {
    let member_state = "const r = document.querySelector('[data-testid=member-row][data-member-id=m2]'); \
         return r ? [r.dataset.memberState, r.querySelector('[data-testid=member-state]').textContent] : null;";
    for (button, state, badge) in [
        ("member-drain", "draining", "draining"),
        ("member-enable", "enabled", "alive"),
    ] {
        let css = format!("[data-testid=member-row][data-member-id=m2] [data-testid={button}]");
        wait_js(
            browser,
            "the member button enabled",
            Duration::from_secs(5),
            &format!("const b = document.querySelector('{css}'); return b ? !b.disabled : false;"),
            |v| *v == json!(true),
        )
        .await;
        browser
            .find(Locator::Css(&css))
            .await
            .expect("a member state button in m2's row")
            .click()
            .await
            .expect("click the member state button");
        wait_js(
            browser,
            &format!("m2 {state} on the page"),
            Duration::from_secs(5),
            member_state,
            |v| *v == json!([state, badge]),
        )
        .await;
        let cluster = node.api("/api/v1/cluster", token).await.json();
        let m2 = cluster["members"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["id"] == "m2"))
            .cloned()
            .unwrap_or_default();
        assert_eq!(m2["state"], state, "{cluster}");
    }
}

/// A member record with another config hash, written into the store as a
/// member serving a different configuration would: the page flags it, and
/// only it.
pub(crate) async fn drift_is_flagged(browser: &Client, store: &Path) {
    portcullis_cluster::DirStore::new(store)
        .put_member(&portcullis_cluster::MemberRecord {
            id: "m3".into(),
            role: portcullis_cluster::RoleName::Manager,
            public_url: "http://127.0.0.1:9".into(),
            admin_url: None,
            version: "0".into(),
            generation: 1,
            config_hash: "ffffffffffffffff".into(),
            in_flight: 0,
            requests: 0,
            errors: 0,
            // Alive for the rest of the test without heartbeats.
            heartbeat_ms: 600_000,
            updated_at_ms: portcullis_cluster::members::now_ms(),
        })
        .expect("write m3's record");
    wait_js(
        browser,
        "m3 flagged as drifted, m1 and m2 not",
        Duration::from_secs(10),
        "return Array.from(document.querySelectorAll('[data-testid=member-row]')).map(r => [r.dataset.memberId, !!r.querySelector('[data-testid=member-drift]')]);",
        |rows| *rows == json!([["m1", false], ["m2", false], ["m3", true]]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_loads_over_https_with_admin_tls() {
    require_browser();
    init();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let certs =
        portcullis::cert::create_certs(&["localhost".to_string()], &dir.path().join("certs"))
            .unwrap();
    let node = Node::start_with(
        dir.path(),
        &store,
        "m1",
        &format!(
            "tls = {{ cert = {:?}, key = {:?} }}",
            certs.server_cert.display().to_string(),
            certs.server_key.display().to_string()
        ),
    );
    let out = node.process.cli(&["admin", "token"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();

    let (_driver, driver_port) = start_driver(dir.path());
    let user_data_dir = dir.path().join("chromium-profile");
    std::fs::create_dir_all(&user_data_dir).unwrap();
    let _browser_guard = BrowserGuard {
        user_data_dir: user_data_dir.clone(),
    };
    // The test's CA is not in the browser's store; only this test skips the check.
    let browser = start_browser(
        driver_port,
        &user_data_dir,
        &["--ignore-certificate-errors"],
    )
    .await;
    let steps = std::panic::AssertUnwindSafe(async {
        browser
            .goto(&node.admin("/"))
            .await
            .expect("open the dashboard over https");
        sign_in(&browser, &token).await;
        wait_js(
            &browser,
            "the member listed over https, with its https admin URL",
            Duration::from_secs(10),
            "const r = document.querySelector('[data-testid=member-row][data-member-id=m1]'); \
             return [location.protocol, r ? r.dataset.alive : null, \
                     document.querySelector('[data-testid=store-status]').dataset.value];",
            |v| *v == json!(["https:", "true", "connected"]),
        )
        .await;
        let cluster = browser
            .execute(
                "return fetch('/api/v1/cluster', {headers: {authorization: 'Bearer ' + sessionStorage.getItem('portcullis.admin.token')}}).then(r => r.json());",
                Vec::new(),
            )
            .await
            .unwrap();
        assert_eq!(
            cluster["members"][0]["admin_url"],
            node.admin(""),
            "{cluster}"
        );
    });
    let outcome = steps.catch_unwind().await;
    let _ = browser.clone().close().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
