//! Sticky sessions end to end (KNOX-843, PRODUCT.md §4): clients keep their
//! backend on every member, forged and stale cookies are replaced,
//! `no_fallback`, excluded user agents, and draining.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use http::{Request, StatusCode};
use portcullis_testkit::*;

use crate::ha::backend;

fn set_cookie(reply: &Reply) -> Option<String> {
    reply
        .headers
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_string())
}

fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_string()
}

async fn get_with(url: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = Request::get(url);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    send(&client(), request.body(empty()).unwrap()).await
}

#[tokio::test]
async fn sticky_clients_keep_their_backend_on_every_member() {
    let backends = vec![backend("a").await, backend("b").await, backend("c").await];
    let urls: Vec<String> = backends.iter().map(|b| b.url()).collect();
    let store = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(store.path().join("topologies")).unwrap();
    std::fs::write(
        store.path().join("topologies/t.toml"),
        ha_topology(
            "svc",
            &urls,
            "load_balancing = \"round-robin\"\nsticky_session = true",
            "",
        ),
    )
    .unwrap();
    let members = [
        TestMember::start_shared(store.path(), "m1").await,
        TestMember::start_shared(store.path(), "m2").await,
    ];
    // Without a cookie, round robin spreads clients over all three.
    let mut first_seen = BTreeSet::new();
    let mut cookies = Vec::new();
    for _ in 0..3 {
        let reply = get(&members[0].url("/gateway/t/svc/x")).await;
        let set = set_cookie(&reply).expect("a new client gets a cookie");
        assert!(set.starts_with("KNOX_BACKEND-svc="), "{set}");
        assert!(
            set.contains("Path=/gateway/t")
                && set.contains("HttpOnly")
                && set.contains("SameSite=Lax"),
            "{set}"
        );
        assert!(!set.contains("Secure"), "plain HTTP: no Secure");
        first_seen.insert(reply.json()["backend"].as_str().unwrap().to_string());
        cookies.push((
            cookie_pair(&set),
            reply.json()["backend"].as_str().unwrap().to_string(),
        ));
    }
    assert_eq!(first_seen.len(), 3, "{first_seen:?}");
    for (cookie, expected) in &cookies {
        for i in 0..100 {
            let member = &members[i % 2];
            let reply = get_with(&member.url("/gateway/t/svc/x"), &[("cookie", cookie)]).await;
            assert_eq!(
                reply.json()["backend"],
                expected.as_str(),
                "request {i} via member {}",
                i % 2 + 1
            );
            assert!(set_cookie(&reply).is_none(), "a valid cookie is not re-set");
        }
    }
    // The value says nothing about the backend.
    for (cookie, _) in &cookies {
        let value = cookie.split_once('=').unwrap().1;
        for b in &backends {
            let url = b.url();
            let digest = {
                use sha2::Digest;
                hex::encode(sha2::Sha256::digest(url.as_bytes()))
            };
            for leak in [
                url.clone(),
                b.addr().port().to_string(),
                "127.0.0.1".to_string(),
                digest[..16].to_string(),
            ] {
                assert!(!value.contains(&leak), "cookie {value} leaks {leak}");
            }
        }
    }
    for member in members {
        member.stop().await;
    }
}

#[tokio::test]
async fn forged_and_stale_cookies_are_replaced() {
    let a = backend("a").await;
    let b = backend("b").await;
    let text = [
        ha_topology("svc", &[a.url(), b.url()], "load_balancing = \"round-robin\"\nsticky_session = true", ""),
        ha_topology("other", &[a.url(), b.url()], "load_balancing = \"round-robin\"\nsticky_session = true\nsticky_session_cookie_name = \"KNOX_BACKEND\"", ""),
    ]
    .join("\n");
    let member = TestMember::start(&[("t", &text)]).await;
    let url = member.url("/gateway/t/svc/x");
    let forged = get_with(
        &url,
        &[("cookie", "KNOX_BACKEND-svc=AAAAAAAAAAAAAAAAAAAAAA")],
    )
    .await;
    assert_eq!(forged.status, StatusCode::OK);
    let replaced = set_cookie(&forged).expect("forged cookie replaced");
    assert_ne!(
        cookie_pair(&replaced),
        "KNOX_BACKEND-svc=AAAAAAAAAAAAAAAAAAAAAA"
    );
    // A valid cookie of another service (a stale value for this one) matches nothing here.
    let other = get(&member.url("/gateway/t/other/x")).await;
    let other_value = cookie_pair(&set_cookie(&other).unwrap())
        .split_once('=')
        .unwrap()
        .1
        .to_string();
    let stale = get_with(
        &url,
        &[("cookie", &format!("KNOX_BACKEND-svc={other_value}"))],
    )
    .await;
    assert!(set_cookie(&stale).is_some(), "stale cookie replaced");
    member.stop().await;
}

#[tokio::test]
async fn no_fallback_answers_503_when_the_sticky_backend_is_down() {
    let a = backend("a").await;
    let b = backend("b").await;
    let health = "[service.health]\npath = \"/health\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\nrise = 1\nfall = 1";
    let text = [
        ha_topology(
            "strict",
            &[a.url(), b.url()],
            "load_balancing = \"round-robin\"\nsticky_session = true\nno_fallback = true",
            health,
        ),
        ha_topology(
            "lenient",
            &[a.url(), b.url()],
            "load_balancing = \"round-robin\"\nsticky_session = true",
            health,
        ),
    ]
    .join("\n");
    let member = TestMember::start(&[("t", &text)]).await;
    let mut cookies = BTreeMap::new();
    for service in ["strict", "lenient"] {
        // Find a cookie for backend "a".
        for _ in 0..4 {
            let reply = get(&member.url(&format!("/gateway/t/{service}/x"))).await;
            if reply.json()["backend"] == "a" {
                cookies.insert(service, cookie_pair(&set_cookie(&reply).unwrap()));
                break;
            }
        }
    }
    let a_addr = a.addr();
    a.shutdown().await;
    let svc = member.service("t", "strict");
    wait_until("a to be seen down", Duration::from_secs(3), || {
        !svc.backends[0].state.is_up(tokio::time::Instant::now())
    })
    .await;
    let strict = get_with(
        &member.url("/gateway/t/strict/x"),
        &[("cookie", &cookies["strict"])],
    )
    .await;
    assert_eq!(
        strict.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        strict.text()
    );
    assert!(!strict.text().contains(&a_addr.to_string()));
    let lenient = get_with(
        &member.url("/gateway/t/lenient/x"),
        &[("cookie", &cookies["lenient"])],
    )
    .await;
    assert_eq!(lenient.status, StatusCode::OK);
    assert_eq!(lenient.json()["backend"], "b");
    assert!(
        set_cookie(&lenient).is_some(),
        "the cookie moves to the new backend"
    );
    member.stop().await;
}

#[tokio::test]
async fn excluded_user_agents_get_no_cookie_and_the_active_backend() {
    let a = backend("a").await;
    let b = backend("b").await;
    let text = ha_topology(
        "svc",
        &[a.url(), b.url()],
        "load_balancing = \"round-robin\"\nsticky_session = true\ndisable_load_balancing_for_user_agents = [\"ODBCDriver\"]",
        "",
    );
    let member = TestMember::start(&[("t", &text)]).await;
    for _ in 0..6 {
        let reply = get_with(
            &member.url("/gateway/t/svc/x"),
            &[("user-agent", "ClouderaODBCDriverforApacheHive/2.6")],
        )
        .await;
        assert_eq!(
            reply.json()["backend"],
            "a",
            "the active backend, as with none"
        );
        assert!(set_cookie(&reply).is_none());
    }
    let reply = get_with(&member.url("/gateway/t/svc/x"), &[("user-agent", "curl/8")]).await;
    assert!(set_cookie(&reply).is_some());
    member.stop().await;
}

#[tokio::test]
async fn draining_keeps_sticky_clients_and_takes_no_new_ones() {
    let a = backend("a").await;
    let b = backend("b").await;
    let text = ha_topology(
        "svc",
        &[a.url(), b.url()],
        "load_balancing = \"round-robin\"\nsticky_session = true",
        "",
    );
    let member = TestMember::start(&[("t", &text)]).await;
    let url = member.url("/gateway/t/svc/x");
    let mut cookie_a = None;
    for _ in 0..4 {
        let reply = get(&url).await;
        if reply.json()["backend"] == "a" {
            cookie_a = Some(cookie_pair(&set_cookie(&reply).unwrap()));
        }
    }
    let cookie_a = cookie_a.expect("round robin reached a");
    let store = portcullis_cluster::DirStore::new(member.dir.path().join("store"));
    let a_id = member.service("t", "svc").backends[0].id.clone();
    store
        .set_backend_state(&a_id, portcullis_config::AdminState::Draining)
        .unwrap();
    let svc = member.service("t", "svc");
    wait_until(
        "draining applied (within 2 s)",
        Duration::from_secs(3),
        || svc.backends[0].state.admin() == portcullis_config::AdminState::Draining,
    )
    .await;
    for _ in 0..10 {
        assert_eq!(
            get(&url).await.json()["backend"],
            "b",
            "no new client goes to a draining backend"
        );
        let sticky = get_with(&url, &[("cookie", &cookie_a)]).await;
        assert_eq!(sticky.json()["backend"], "a", "sticky clients stay");
    }
    store
        .set_backend_state(&a_id, portcullis_config::AdminState::Disabled)
        .unwrap();
    wait_until(
        "disabled applied (within 2 s)",
        Duration::from_secs(3),
        || svc.backends[0].state.admin() == portcullis_config::AdminState::Disabled,
    )
    .await;
    let moved = get_with(&url, &[("cookie", &cookie_a)]).await;
    assert_eq!(moved.json()["backend"], "b", "disabled: no traffic at all");
    assert!(set_cookie(&moved).is_some());
    member.stop().await;
}
