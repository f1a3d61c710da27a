//! The dashboard's gateway-policy figures in Chromium: per service, the auth
//! methods and the 401/403/429 rates, with real refusals made by a
//! `portcullis serve` process (401 from `[service.auth]` without a token,
//! 403 from `[service.authorize] cidrs` the loopback client is not in).
//! Fixtures are those of `dashboard.rs`.

use std::time::Duration;

use futures_util::FutureExt;
use portcullis_policy::test_keys::TestKey;
use portcullis_testkit::*;
use serde_json::Value;

use super::dashboard::{
    require_browser, sign_in, start_browser, start_driver, wait_js, BrowserGuard, Node,
};

/// Each policy card's auth tag and its 401/403/429 figures (`data-value`).
const POLICIES: &str = "const v = (c, t) => { const n = c.querySelector('[data-testid=' + t + ']'); const x = n && n.getAttribute('data-value'); return x ? Number(x) : null; }; \
     const out = {}; \
     for (const c of document.querySelectorAll('[data-testid=service]')) { \
       const tag = c.querySelector('[data-testid=service-auth]'); \
       out[c.dataset.service] = { tag: tag.hidden ? null : tag.textContent, \
         policies: !c.querySelector('[data-testid=service-policies]').hidden, \
         r401: v(c, 'service-401'), r403: v(c, 'service-403'), r429: v(c, 'service-429') }; \
     } \
     return out;";

fn rate(card: &Value, field: &str) -> f64 {
    card[field].as_f64().unwrap_or(-1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_auth_methods_and_refusal_rates_per_service() {
    require_browser();
    init();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let backend = BackendProcess::spawn("alpha");
    let m1 = Node::start_with(dir.path(), &store, "m1", "");
    // The key set is read relative to the member's config directory.
    std::fs::write(
        dir.path().join("jwks.json"),
        TestKey::jwks(&[&TestKey::ed25519("k1")]),
    )
    .unwrap();
    let services = [
        topology(
            "guarded",
            &[backend.url()],
            "[service.auth]\nmethods = [\"jwt\"]\njwt = { jwks = \"file:jwks.json\", issuer = \"https://idp.test\", audiences = [\"orders\"] }",
        ),
        topology(
            "walled",
            &[backend.url()],
            "[service.authorize]\ncidrs = [\"10.0.0.0/8\"]",
        ),
        topology("open", &[backend.url()], ""),
    ];
    let topology_file = dir.path().join("policies.toml");
    std::fs::write(&topology_file, services.concat()).unwrap();
    let out = m1
        .process
        .cli(&["topology", "put", topology_file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "topology put: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = m1.process.cli(&["admin", "token"]);
    assert!(out.status.success(), "admin token");
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let gateway = |service: &str| {
        format!(
            "http://127.0.0.1:{}/gateway/policies/{service}/x",
            m1.process.port
        )
    };
    wait_for(
        "the topology is served",
        Duration::from_secs(10),
        || async { get(&gateway("walled")).await.status == http::StatusCode::FORBIDDEN },
    )
    .await;
    assert_eq!(
        get(&gateway("guarded")).await.status,
        http::StatusCode::UNAUTHORIZED
    );

    // Refusals all along the test: no token, and a client outside 10/8.
    let unauthorized = Load::with_pause(gateway("guarded"), 1, Duration::from_millis(20));
    let forbidden = Load::with_pause(gateway("walled"), 1, Duration::from_millis(20));

    let (_driver, driver_port) = start_driver(dir.path());
    let user_data_dir = dir.path().join("chromium-profile");
    std::fs::create_dir_all(&user_data_dir).unwrap();
    let _browser_guard = BrowserGuard {
        user_data_dir: user_data_dir.clone(),
    };
    let browser = start_browser(driver_port, &user_data_dir, &[]).await;
    let steps = std::panic::AssertUnwindSafe(async {
        browser
            .goto(&m1.admin("/"))
            .await
            .expect("open the dashboard");
        sign_in(&browser, &token).await;
        let cards = wait_js(
            &browser,
            "401 and 403 rates on the policy services",
            Duration::from_secs(20),
            POLICIES,
            |v| rate(&v["guarded"], "r401") > 0.0 && rate(&v["walled"], "r403") > 0.0,
        )
        .await;
        assert_eq!(cards["guarded"]["tag"], "auth: jwt", "{cards}");
        assert_eq!(cards["walled"]["tag"], "no auth, authorize", "{cards}");
        assert_eq!(rate(&cards["guarded"], "r403"), 0.0, "{cards}");
        assert_eq!(rate(&cards["walled"], "r401"), 0.0, "{cards}");
        assert_eq!(rate(&cards["guarded"], "r429"), 0.0, "{cards}");
        assert_eq!(
            cards["open"]["tag"],
            Value::Null,
            "no policy, no tag: {cards}"
        );
        assert_eq!(cards["open"]["policies"], false, "{cards}");
    });
    let outcome = steps.catch_unwind().await;
    let _ = browser.clone().close().await;
    unauthorized.finish().await;
    forbidden.finish().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
