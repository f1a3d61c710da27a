use super::*;

/// A heartbeat short enough that a stray one would show within the wait.
const HEARTBEAT_MS: u64 = 100;

fn config(dir: &std::path::Path, id: &str, extra: &str) -> NodeConfig {
    let store = dir.join("store");
    std::fs::create_dir_all(store.join("topologies")).unwrap();
    let text = format!(
        "[node]\nid = \"{id}\"\n[gateway]\nlisten = \"127.0.0.1:0\"\n[cluster]\nstore = \"dir:{}\"\nheartbeat = \"{HEARTBEAT_MS}ms\"\n{extra}",
        store.display()
    );
    portcullis_config::parse_node_config(&text, &dir.join(format!("{id}.toml"))).unwrap()
}

fn store_of(config: &NodeConfig) -> ClusterStore {
    ClusterStore::open(&config.cluster.store, &config.cluster.name)
}

/// Long enough for several heartbeats.
async fn member_ids(store: &ClusterStore) -> Vec<String> {
    let members = store.members().await.unwrap();
    members.into_iter().map(|m| m.id).collect()
}

async fn a_few_heartbeats() {
    tokio::time::sleep(Duration::from_millis(HEARTBEAT_MS * 6)).await;
}

#[tokio::test]
async fn a_member_that_cannot_bind_leaves_no_record_behind() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().map(|addr| (taken, addr)).unwrap();
    // The balancer binds last: before, the heartbeat was already running
    // by then and kept registering a member that never started.
    let extra = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n[balancer]\nlisten = \"{}\"\nmode = \"proxy\"\n",
        taken.1
    );
    let config = config(dir.path(), "unbound", &extra);
    let store = store_of(&config);
    let err = match Member::start(config).await {
        Ok(_) => panic!("the member started on a port in use"),
        Err(err) => format!("{err:#}"),
    };
    assert!(err.contains("balancer.listen"), "{err}");
    a_few_heartbeats().await;
    let records = store.members().await.unwrap();
    assert!(records.is_empty(), "records left behind: {records:?}");
}

/// After a hot restart the successor has rewritten the record under the
/// same id: the old process must leave it, and remove only a record the
/// successor does not share.
#[tokio::test]
async fn a_handed_over_member_keeps_the_record_its_successor_shares() {
    let dir = tempfile::tempdir().unwrap();
    for (successor, kept) in [("same", true), ("renamed", false)] {
        let config = config(dir.path(), "same", "");
        let store = store_of(&config);
        let member = Member::start(config).await.unwrap();
        assert_eq!(member.listening_sockets().len(), 1, "the gateway's");
        member.stop_handed_over(successor).await;
        let ids = member_ids(&store).await;
        assert_eq!(
            ids.contains(&"same".to_string()),
            kept,
            "{successor}: {ids:?}"
        );
    }
}

#[tokio::test]
async fn dropping_a_member_stops_its_heartbeat() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "dropped", "");
    let store = store_of(&config);
    let member = Member::start(config).await.unwrap();
    let ids = member_ids(&store).await;
    assert_eq!(ids, ["dropped"], "the first record is written at start");
    let addr = member.gateway_addr;
    drop(member);
    // Let the aborted tasks finish unwinding, then forget the record: no
    // heartbeat may write it again.
    tokio::task::yield_now().await;
    store.remove_member("dropped").await.unwrap();
    a_few_heartbeats().await;
    assert!(store.members().await.unwrap().is_empty());
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the gateway listener is closed"
    );
}
