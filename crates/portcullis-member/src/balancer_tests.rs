//! The balancer's liveness rules, on tokio's paused clock.

use std::sync::atomic::{AtomicBool, Ordering};

use portcullis_cluster::RoleName;
use portcullis_proxy::CookieKey;

use super::*;

const HEARTBEAT: Duration = Duration::from_millis(1000);
/// Wall-clock time of the records (the tests compare deadlines with it).
const HEARD_MS: u64 = 1_000_000;

fn record(id: &str, updated_at_ms: u64) -> MemberRecord {
    MemberRecord {
        id: id.into(),
        role: RoleName::Manager,
        public_url: format!("http://{id}:8443"),
        admin_url: None,
        version: "0".into(),
        generation: 1,
        config_hash: String::new(),
        in_flight: 4,
        requests: 0,
        errors: 0,
        heartbeat_ms: 1000,
        updated_at_ms,
    }
}

fn view() -> BalancerView {
    BalancerView::new(
        Arc::new(MemberTable::new(CookieKey::new([4; 32]))),
        HEARTBEAT,
    )
}

/// The ids alive at wall-clock time `now_ms`.
fn alive(view: &BalancerView, now_ms: u64) -> Vec<String> {
    view.targets(Instant::now())
        .into_iter()
        .filter(|t| t.is_alive(now_ms))
        .map(|t| t.id)
        .collect()
}

fn read_ok(records: Vec<MemberRecord>) -> Result<Vec<MemberRecord>, &'static str> {
    Ok(records)
}

#[test]
fn a_target_is_alive_exactly_while_its_record_is() {
    let record = record("m", 10_000);
    let target = member_target(&record);
    assert_eq!((target.id.as_str(), target.in_flight), ("m", 4));
    assert_eq!(target.url, "http://m:8443");
    for now in [9_000, 10_000, 12_999, 13_000, 20_000] {
        assert_eq!(target.is_alive(now), record.is_alive(now), "at {now}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_drained_member_is_marked_and_its_state_follows_the_store() {
    let view = view();
    let listing = MemberListing {
        records: vec![record("a", HEARD_MS), record("b", HEARD_MS)],
        states: BTreeMap::from([("a".to_string(), MemberState::Draining)]),
    };
    view.store_read(Ok::<_, &str>(listing));
    let draining = |view: &BalancerView| -> Vec<bool> {
        view.targets(Instant::now())
            .iter()
            .map(|t| t.draining)
            .collect()
    };
    assert_eq!(
        draining(&view),
        [true, false],
        "only the drained member drains"
    );
    assert_eq!(
        alive(&view, HEARD_MS),
        ["a", "b"],
        "a drained member is alive"
    );
    view.store_read(read_ok(vec![record("a", HEARD_MS), record("b", HEARD_MS)]));
    assert_eq!(draining(&view), [false, false], "enabled again");
}

#[tokio::test(start_paused = true)]
async fn with_the_store_a_member_needs_a_fresh_record_and_a_passing_check() {
    let view = view();
    view.store_read(read_ok(vec![record("a", HEARD_MS), record("b", HEARD_MS)]));
    assert_eq!(alive(&view, HEARD_MS + 100), ["a", "b"], "not checked yet");
    assert!(alive(&view, HEARD_MS + 3_000).is_empty(), "records age out");
    view.checked(&[("a".into(), false)]);
    assert_eq!(
        alive(&view, HEARD_MS),
        ["a", "b"],
        "one failure is not down"
    );
    view.checked(&[("a".into(), false)]);
    assert_eq!(alive(&view, HEARD_MS), ["b"], "two failures in a row are");
    view.checked(&[("a".into(), true)]);
    assert_eq!(
        alive(&view, HEARD_MS),
        ["a", "b"],
        "one success is up again"
    );
    view.checked(&[("a".into(), false)]);
    view.checked(&[("a".into(), true)]);
    view.checked(&[("a".into(), false)]);
    assert_eq!(
        alive(&view, HEARD_MS),
        ["a", "b"],
        "failures must be consecutive"
    );
}

#[tokio::test(start_paused = true)]
async fn without_the_store_the_last_list_is_judged_by_own_checks_only() {
    let view = view();
    view.store_read(read_ok(vec![record("a", HEARD_MS), record("b", HEARD_MS)]));
    view.store_read(Err::<Vec<MemberRecord>, _>("etcd is down"));
    tokio::time::advance(Duration::from_secs(30)).await;
    let much_later = HEARD_MS + 30_000;
    assert_eq!(
        alive(&view, much_later),
        ["a", "b"],
        "records are not aged out while nobody can renew them"
    );
    view.checked(&[("a".into(), true), ("b".into(), false)]);
    view.checked(&[("a".into(), true), ("b".into(), false)]);
    assert_eq!(alive(&view, much_later), ["a"], "b's checks failed twice");
}

#[tokio::test(start_paused = true)]
async fn a_returning_store_is_trusted_once_records_could_be_renewed() {
    let view = view();
    view.store_read(read_ok(vec![record("a", HEARD_MS)]));
    view.store_read(Err::<Vec<MemberRecord>, _>("etcd is down"));
    tokio::time::advance(Duration::from_secs(30)).await;
    let stale_now = HEARD_MS + 30_000;
    // The store is back, a's record still the old one: a keeps serving.
    view.store_read(read_ok(vec![record("a", HEARD_MS)]));
    assert_eq!(alive(&view, stale_now), ["a"]);
    tokio::time::advance(HEARTBEAT * MISSED_HEARTBEATS - Duration::from_millis(1)).await;
    assert_eq!(alive(&view, stale_now), ["a"], "still renewing");
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(
        alive(&view, stale_now).is_empty(),
        "a record not renewed by then is believed"
    );
}

#[tokio::test(start_paused = true)]
async fn a_record_removed_from_a_reachable_store_is_dropped_at_once() {
    let view = view();
    view.store_read(read_ok(vec![record("a", HEARD_MS), record("b", HEARD_MS)]));
    view.checked(&[("b".into(), false)]);
    view.store_read(read_ok(vec![record("a", HEARD_MS)]));
    assert_eq!(alive(&view, HEARD_MS), ["a"]);
    assert_eq!(
        view.check_targets(),
        [("a".to_string(), "http://a:8443".to_string())]
    );
    // b comes back later: its old failure was forgotten with it.
    view.store_read(read_ok(vec![record("a", HEARD_MS), record("b", HEARD_MS)]));
    view.checked(&[("b".into(), false)]);
    assert_eq!(alive(&view, HEARD_MS), ["a", "b"]);
}

/// The check loop drops a member that stops answering within two rounds
/// (two heartbeats), with the store away, and takes it back after one.
#[tokio::test(start_paused = true)]
async fn the_check_loop_drops_a_dead_member_within_two_heartbeats() {
    let view = Arc::new(view());
    view.store_read(read_ok(vec![record("a", HEARD_MS), record("b", HEARD_MS)]));
    view.store_read(Err::<Vec<MemberRecord>, _>("etcd is down"));
    let b_up = Arc::new(AtomicBool::new(true));
    let probe_b = b_up.clone();
    let probe = move |url: String| {
        let up = !url.contains("//b:") || probe_b.load(Ordering::Relaxed);
        async move {
            if !up {
                // A black hole: the check's timeout decides.
                std::future::pending::<()>().await;
            }
            true
        }
    };
    let checks = tokio::spawn(check_members(
        view.clone(),
        HEARTBEAT,
        check_timeout(HEARTBEAT),
        probe,
    ));
    let now_ms = HEARD_MS + 60_000;
    tokio::time::sleep(HEARTBEAT * 3).await;
    assert_eq!(alive(&view, now_ms), ["a", "b"]);
    b_up.store(false, Ordering::Relaxed);
    let killed = Instant::now();
    while alive(&view, now_ms).len() == 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(alive(&view, now_ms), ["a"]);
    assert!(
        killed.elapsed() <= HEARTBEAT * 2 + check_timeout(HEARTBEAT),
        "dropped after {:?}",
        killed.elapsed()
    );
    b_up.store(true, Ordering::Relaxed);
    tokio::time::sleep(HEARTBEAT + check_timeout(HEARTBEAT)).await;
    assert_eq!(alive(&view, now_ms), ["a", "b"], "one passing check");
    checks.abort();
}

#[tokio::test]
async fn the_tcp_probe_connects_to_the_public_url() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    assert!(tcp_probe(format!("http://127.0.0.1:{port}/")).await);
    drop(listener);
    assert!(!tcp_probe(format!("http://127.0.0.1:{port}/")).await);
    assert!(!tcp_probe("not a url".into()).await);
    assert_eq!(
        host_and_port("https://m.example").as_deref(),
        Some("m.example:443")
    );
}

/// A store that stops answering (a black hole, not a refusal) counts as
/// away after a heartbeat: the last list stays, judged by the checks only.
#[tokio::test(start_paused = true)]
async fn a_store_that_hangs_counts_as_away() {
    let view = Arc::new(view());
    view.store_read(read_ok(vec![record("a", HEARD_MS)]));
    let hung = || std::future::pending::<Result<Vec<MemberRecord>, &'static str>>();
    let reads = tokio::spawn(read_members(view.clone(), HEARTBEAT, hung));
    let much_later = HEARD_MS + 60_000;
    assert!(alive(&view, much_later).is_empty(), "trusted records age");
    tokio::time::sleep(HEARTBEAT * 2).await;
    assert_eq!(alive(&view, much_later), ["a"], "the store is away");
    reads.abort();
}

/// `[balancer]` becomes the listener's options; unreadable TLS files stop
/// the member from starting, naming the key.
#[test]
fn balancer_options_follow_the_config_and_name_bad_tls_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    let config = |balancer: &str| {
        let text = format!("[gateway]\nlisten = \"127.0.0.1:0\"\nheader_read_timeout = \"3s\"\n[balancer]\nlisten = \"127.0.0.1:0\"\nmode = \"proxy\"\nconnect_timeout = \"250ms\"\n{balancer}");
        portcullis_config::parse_node_config(&text, &path).unwrap()
    };
    let plain = config("");
    let options = balancer_options(&plain, plain.balancer.as_ref().unwrap()).unwrap();
    assert_eq!(options.mode, portcullis_config::BalancerMode::Proxy);
    assert_eq!(options.connect_timeout, Duration::from_millis(250));
    assert_eq!(options.request_timeout, Duration::from_secs(60));
    assert_eq!(options.header_read_timeout, Duration::from_secs(3));
    assert!(options.tls.is_none());
    let missing = config("tls = { cert = \"none.pem\", key = \"none.key\" }\n");
    let err = balancer_options(&missing, missing.balancer.as_ref().unwrap())
        .err()
        .expect("missing TLS files are refused");
    assert_eq!(err.to_string(), "balancer.tls");
}
